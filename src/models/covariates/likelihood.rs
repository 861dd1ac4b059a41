//! The likelihood of a covariate model customer by customer ([`CovariateLikelihood`]): a pass
//! over the rows 4 customers at a time through the model's SIMD form, each customer at its own
//! parameters, summed by the chain rule of [`Columns`].

use std::marker::PhantomData;

use super::columns::{Columns, STAGED_GROUPS};
use super::point::Point;
use super::rows::RowMajor;
use super::{CovariateModel, CovariateRows, Links};
use crate::fit::{Domain, FusedPass, Likelihood, ParamSpec};
use crate::parallel::{Exec, CHUNK_ROWS};
use crate::special::RisingTable;
use ndarray::Array2;

/// The likelihood of a covariate model over customer rows, for the fitting engine.
pub struct CovariateLikelihood<'r, 'a, M: CovariateModel> {
    rows: &'r CovariateRows<'a>,
    links: &'r Links,
    specs: Vec<ParamSpec>,
    /// Length of the per-frequency table of the terms of `r` ([`RisingTable`]).
    shape_len: usize,
    /// The order in which passes take the rows ([`frequency_order`]).
    order: Vec<usize>,
    _model: PhantomData<M>,
}

impl<'r, 'a, M: CovariateModel> CovariateLikelihood<'r, 'a, M> {
    pub fn new(rows: &'r CovariateRows<'a>, links: &'r Links) -> Self {
        CovariateLikelihood {
            rows,
            links,
            specs: coefficient_specs::<M>(links),
            shape_len: shape_table_len(&rows.frequency),
            order: frequency_order(&rows.frequency),
            _model: PhantomData,
        }
    }
}

/// Tables of the terms of `r` cover whole frequencies up to the data's largest, at most this
/// many (larger frequencies compute theirs).
const MAX_SHAPE_TABLE: usize = 1 << 16;

/// The length of a [`RisingTable`] that covers every whole frequency of `frequency` (capped).
fn shape_table_len(frequency: &[f64]) -> usize {
    let largest = frequency
        .iter()
        .filter(|x| x.is_finite())
        .fold(0.0_f64, |m, &x| m.max(x));
    (largest.min(MAX_SHAPE_TABLE as f64) as usize) + 1
}

/// Whole frequencies up to this many get a class of their own in [`frequency_order`] (larger
/// or fractional ones share one): past it the rows' rising products are no longer formed in
/// the 4-lane loop.
const ORDERED_FREQUENCIES: usize = 17;

/// The rows in the order in which the passes take them, 4 at a time: within each chunk of
/// [`CHUNK_ROWS`] rows (the unit of [`Exec::chunked_sum`], so that the order, and the sums,
/// do not depend on the number of threads) by frequency, stably. Lanes of one frequency do the
/// same work (the rising products run to one length; a BG/NBD customer without repeat purchases
/// has no dropout terms, and 4 of them skip those altogether), where customers in file order
/// mix frequencies and each group of 4 waits for its slowest lane. The chunk's rows stay in the
/// processor's caches, so taking them out of order costs little.
fn frequency_order(frequency: &[f64]) -> Vec<usize> {
    let class = |x: f64| {
        // (`as` saturates: negative, fractional and non-finite values fail the comparison.)
        let whole = x as usize;
        if whole as f64 == x && whole <= ORDERED_FREQUENCIES {
            whole
        } else {
            ORDERED_FREQUENCIES + 1
        }
    };
    let mut order = Vec::with_capacity(frequency.len());
    for start in (0..frequency.len()).step_by(CHUNK_ROWS) {
        let chunk = start..(start + CHUNK_ROWS).min(frequency.len());
        let mut counts = [0usize; ORDERED_FREQUENCIES + 2];
        for &x in &frequency[chunk.clone()] {
            counts[class(x)] += 1;
        }
        let mut next = [0usize; ORDERED_FREQUENCIES + 2];
        let mut offset = start;
        for (first, count) in next.iter_mut().zip(counts) {
            *first = offset;
            offset += count;
        }
        order.resize(chunk.end, 0);
        for i in chunk {
            let slot = &mut next[class(frequency[i])];
            order[*slot] = i;
            *slot += 1;
        }
    }
    order
}

/// What a pass over customer rows reads.
struct Pass<'p, 'a> {
    rows: &'p CovariateRows<'a>,
    /// The rows in the order the pass takes them ([`frequency_order`]).
    order: &'p [usize],
    /// `rows`' purchase and dropout matrices.
    matrices: [RowMajor<'p>; 2],
    point: &'p Point,
    shape: &'p RisingTable,
}

impl Pass<'_, '_> {
    /// Add the log-likelihood and column gradient (`!SECOND`, to `acc` as in
    /// [`Columns::add_gradient`]) or the fused log-likelihood, gradient and Hessian (`SECOND`,
    /// as in [`Columns::add_hessian`], through `columns`) of the customers in `range`, 4 at a
    /// time ([`CovariateModel::row_derivatives_x4`]), in the order of [`Pass::order`].
    #[inline(always)]
    fn run<M: CovariateModel, const SECOND: bool>(
        &self,
        range: std::ops::Range<usize>,
        acc: &mut [f64],
        columns: &mut Columns,
    ) {
        let rows = self.rows;
        let [purchase, dropout] = self.matrices;
        let covariates = |i: usize| [purchase.row(i), dropout.row(i)];
        let order = &self.order[range.clone()];
        let mut at = 0;
        // The covariates of each block of `STAGED_GROUPS` groups of 4 are staged column by
        // column for the linear predictors and the gradient (and Hessian) sums.
        let mut group = STAGED_GROUPS;
        while at + 4 <= order.len() {
            if group == STAGED_GROUPS {
                let groups = ((order.len() - at) / 4).min(STAGED_GROUPS);
                columns.stage_block(self.matrices, &order[at..at + 4 * groups]);
                group = 0;
            }
            let lanes = [order[at], order[at + 1], order[at + 2], order[at + 3]];
            let x = lanes.map(|i| rows.frequency[i]);
            let t_x = lanes.map(|i| rows.recency[i]);
            let age = lanes.map(|i| rows.age[i]);
            let [theta, ln_theta] = self.point.customers_x4::<M>(columns.staged(), group);
            let mut shape = [(0.0, 0.0, 0.0); 4];
            for (terms, &x) in shape.iter_mut().zip(&x) {
                *terms = self.shape.get::<SECOND>(x);
            }
            let rows_x4 = M::row_derivatives_x4::<SECOND>(&theta, &ln_theta, &shape, x, t_x, age);
            let w = lanes.map(|i| rows.weight(i));
            if SECOND {
                columns.add_hessian_x4::<M>(w, &theta, &rows_x4, group);
            } else {
                let (value, gradient, _) = &rows_x4;
                columns.add_gradient_x4::<M>(w, &theta, value, gradient, group);
            }
            group += 1;
            at += 4;
        }
        for &i in &order[at..] {
            let z = covariates(i);
            let x = rows.frequency[i];
            let (theta, ln_theta) = self.point.customer::<M>(z);
            let row = M::row_derivatives::<SECOND>(
                &theta,
                &ln_theta,
                self.shape.get::<SECOND>(x),
                x,
                rows.recency[i],
                rows.age[i],
            );
            if SECOND {
                columns.add_hessian::<M>(acc, z, rows.weight(i), &theta, &row);
            } else {
                Columns::add_gradient::<M>(acc, z, rows.weight(i), &theta, row.0, &row.1);
            }
        }
        columns.flush(acc);
    }

    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2")]
    fn run_avx2<M: CovariateModel, const SECOND: bool>(
        &self,
        range: std::ops::Range<usize>,
        acc: &mut [f64],
        columns: &mut Columns,
    ) {
        self.run::<M, SECOND>(range, acc, columns);
    }

    /// [`Pass::run`] with 256-bit vectors where the processor has them (no fused multiply-add,
    /// so the same bits either way).
    fn run_dispatch<M: CovariateModel, const SECOND: bool>(
        &self,
        range: std::ops::Range<usize>,
        acc: &mut [f64],
        columns: &mut Columns,
    ) {
        #[cfg(target_arch = "x86_64")]
        if std::arch::is_x86_feature_detected!("avx2") {
            // SAFETY: the processor supports AVX2 (checked just above).
            return unsafe { self.run_avx2::<M, SECOND>(range, acc, columns) };
        }
        self.run::<M, SECOND>(range, acc, columns);
    }
}

impl<M: CovariateModel> Likelihood for CovariateLikelihood<'_, '_, M> {
    fn params(&self) -> &[ParamSpec] {
        &self.specs
    }

    fn starts(&self) -> Vec<Vec<f64>> {
        default_start(self.links)
    }

    fn total_weight(&self) -> f64 {
        (0..self.rows.len()).map(|i| self.rows.weight(i)).sum()
    }

    fn loglik_and_gradient(&self, params: &[f64], exec: &Exec) -> (f64, Vec<f64>) {
        let (rows, links) = (self.rows, self.links);
        let columns = Columns::new(links);
        let point = Point::new(links, params);
        let shape = RisingTable::new(params[0], self.shape_len);
        let pass = Pass {
            rows,
            order: &self.order,
            matrices: rows.matrices(),
            point: &point,
            shape: &shape,
        };
        let acc = exec.chunked_sum(rows.len(), 1 + columns.len(), |range, acc| {
            pass.run_dispatch::<M, false>(range, acc, &mut Columns::new(links));
        });
        columns.gradient(params, &acc)
    }

    fn hessian(&self, params: &[f64], exec: &Exec) -> Option<Array2<f64>> {
        self.loglik_gradient_hessian(params, exec)
            .map(|(_, _, h)| h)
    }

    /// `sum_i A_i' H_i A_i` in (log shared parameters, coefficients), with `H_i` the row's
    /// Hessian in the logs of its own parameters and `A_i` their (constant) derivatives, mapped
    /// to the natural scale of the shared parameters; the log-likelihood and gradient come
    /// with it.
    fn loglik_gradient_hessian(&self, params: &[f64], exec: &Exec) -> Option<FusedPass> {
        let (rows, links) = (self.rows, self.links);
        let columns = Columns::new(links);
        let point = Point::new(links, params);
        let shape = RisingTable::new(params[0], self.shape_len);
        let pass = Pass {
            rows,
            order: &self.order,
            matrices: rows.matrices(),
            point: &point,
            shape: &shape,
        };
        let acc = exec.chunked_sum(rows.len(), columns.hessian_width(), |range, acc| {
            pass.run_dispatch::<M, true>(range, acc, &mut Columns::new(links));
        });
        Some(columns.fused(params, &acc))
    }
}
pub(super) fn coefficient_specs<M: CovariateModel>(links: &Links) -> Vec<ParamSpec> {
    let mut specs = M::specs().to_vec();
    specs.extend(links.names.iter().map(|_| ParamSpec {
        name: "coefficient",
        domain: Domain::Real,
    }));
    specs
}

pub(super) fn default_start(links: &Links) -> Vec<Vec<f64>> {
    // Only used without a caller-given start; `fit_with_covariates` always gives one.
    let mut start = vec![1.0; 4];
    start.extend(std::iter::repeat_n(0.0, links.len()));
    vec![start]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::RfmColumns;
    use crate::models::covariates::rows::matrix;
    use crate::models::covariates::tests::simulated;
    use crate::models::testing::rel;
    use crate::models::{BgNbdParams, MbgNbdParams, ParetoNbdParams};

    fn check_derivatives<M: CovariateModel>(truth: &[f64]) {
        let (x, t_x, age, purchase, dropout, links) = simulated::<M>(400, truth, 7);
        let mut point = truth.to_vec();
        point[0] *= 1.1;
        point[4] += 0.05;
        check_derivatives_at::<M>(&x, &t_x, &age, &purchase, &dropout, &links, &point);
        // The flag tied across the processes: one coefficient for two columns.
        let tied = Links {
            purchase: vec![0, 1],
            dropout: vec![0],
            names: vec!["flag".into(), "size".into()],
        };
        check_derivatives_at::<M>(&x, &t_x, &age, &purchase, &dropout, &tied, &point[..6]);
    }

    fn check_derivatives_at<M: CovariateModel>(
        x: &[f64],
        t_x: &[f64],
        age: &[f64],
        purchase: &[f64],
        dropout: &[f64],
        links: &Links,
        point: &[f64],
    ) {
        let point = point.to_vec();
        let columns = RfmColumns::new(x, t_x, age);
        let rows = CovariateRows::new(
            &columns,
            matrix(purchase, links.purchase.len()),
            matrix(dropout, links.dropout.len()),
        );
        let lik = CovariateLikelihood::<M>::new(&rows, links);
        let exec = Exec::Serial;
        let at = |p: &[f64]| lik.loglik_and_gradient(p, &exec);
        let (_, gradient) = at(&point);
        // Steps of 1e-4 keep the rounding of the summed special functions (about 1e-12
        // absolute) well below the tolerance; the truncation error is O(h^2).
        for k in 0..point.len() {
            let h = 1e-4 * point[k].abs().max(0.1);
            let (mut up, mut down) = (point.clone(), point.clone());
            up[k] += h;
            down[k] -= h;
            let numeric = (at(&up).0 - at(&down).0) / (2.0 * h);
            let scale = numeric.abs().max(gradient[k].abs()).max(1.0);
            assert!(
                (gradient[k] - numeric).abs() <= 1e-6 * scale,
                "{}: component {k}: analytic {} vs numeric {numeric}",
                M::NAME,
                gradient[k]
            );
        }
        // The Hessian against central differences of the analytic gradient.
        let hessian = lik.hessian(&point, &exec).unwrap();
        for j in 0..point.len() {
            let h = 1e-5 * point[j].abs().max(1e-2);
            let (mut up, mut down) = (point.clone(), point.clone());
            up[j] += h;
            down[j] -= h;
            let (g_up, g_down) = (at(&up).1, at(&down).1);
            for i in 0..point.len() {
                let numeric = (g_up[i] - g_down[i]) / (2.0 * h);
                let scale = numeric.abs().max(hessian[[i, j]].abs()).max(1.0);
                assert!(
                    (hessian[[i, j]] - numeric).abs() <= 1e-5 * scale,
                    "{}: H[{i}][{j}] analytic {} vs numeric {numeric}",
                    M::NAME,
                    hessian[[i, j]]
                );
            }
        }
    }

    /// The gradient pass runs customers 4 at a time through `row_derivatives_x4`, in the
    /// frequency order, each lane summing its own customers: the same bits as summing
    /// `row_derivatives` customer by customer into 4 lane sums (the customer at position `i` of
    /// a chunk's order into lane `i mod 4`; the tail of fewer than 4 customers straight into the
    /// chunk's total, then the lanes added as `(0 + 1) + (2 + 3)`), including frequencies past the products' limit (x > 16) and
    /// customers without a repeat purchase in the same lanes; and within rounding of the plain
    /// customer-by-customer sum (the lanes only reorder it).
    fn check_lanes_match_rows<M: CovariateModel>(truth: &[f64]) {
        let (mut x, t_x, age, purchase, dropout, links) = simulated::<M>(403, truth, 11);
        for i in (0..x.len()).step_by(37) {
            x[i] = 20.0 + i as f64 % 5.0;
        }
        let columns = RfmColumns::new(&x, &t_x, &age);
        let rows = CovariateRows::new(
            &columns,
            matrix(&purchase, links.purchase.len()),
            matrix(&dropout, links.dropout.len()),
        );
        let lik = CovariateLikelihood::<M>::new(&rows, &links);
        let mut point = truth.to_vec();
        point[4] += 0.1;
        let (value, gradient) = lik.loglik_and_gradient(&point, &Exec::Serial);
        let columns = Columns::new(&links);
        let model_point = Point::new(&links, &point);
        let shape = RisingTable::new(point[0], shape_table_len(&x));
        let width = 1 + columns.len();
        // (One chunk: 403 rows.)
        assert!(rows.len() < crate::parallel::CHUNK_ROWS);
        let (mut acc, mut lanes, mut plain) = (
            vec![0.0; width],
            vec![vec![0.0; width]; 4],
            vec![0.0; width],
        );
        let whole = rows.len() / 4 * 4;
        let mut taken = vec![false; rows.len()];
        for (position, &i) in lik.order.iter().enumerate() {
            assert!(
                !std::mem::replace(&mut taken[i], true),
                "row {i} taken twice"
            );
            let z = rows.covariates(i);
            let (theta, ln_theta) = model_point.customer::<M>(z);
            let (ll, g, _) = M::row_derivatives::<false>(
                &theta,
                &ln_theta,
                shape.get::<false>(x[i]),
                x[i],
                t_x[i],
                age[i],
            );
            let sum = if position < whole {
                &mut lanes[position % 4]
            } else {
                &mut acc
            };
            Columns::add_gradient::<M>(sum, z, 1.0, &theta, ll, &g);
            Columns::add_gradient::<M>(&mut plain, z, 1.0, &theta, ll, &g);
        }
        assert!(taken.iter().all(|&t| t), "every row taken");
        // The order within the chunk: by frequency class (the whole frequencies up to
        // `ORDERED_FREQUENCIES`, then the rest).
        let class = |i: usize| x[i].min((ORDERED_FREQUENCIES + 1) as f64);
        assert!(lik.order.windows(2).all(|w| class(w[0]) <= class(w[1])));
        for (e, total) in acc.iter_mut().enumerate() {
            *total += (lanes[0][e] + lanes[1][e]) + (lanes[2][e] + lanes[3][e]);
        }
        let (want_value, want_gradient) = columns.gradient(&point, &acc);
        assert_eq!(value.to_bits(), want_value.to_bits(), "{}", M::NAME);
        for (g, w) in gradient.iter().zip(&want_gradient) {
            assert_eq!(
                g.to_bits(),
                w.to_bits(),
                "{}: {gradient:?} vs {want_gradient:?}",
                M::NAME
            );
        }
        let (plain_value, plain_gradient) = columns.gradient(&point, &plain);
        assert!(rel(value, plain_value) < 1e-13, "{}", M::NAME);
        let scale = plain_gradient.iter().fold(1.0_f64, |m, v| m.max(v.abs()));
        for (g, w) in gradient.iter().zip(&plain_gradient) {
            assert!(
                (g - w).abs() <= 1e-12 * scale,
                "{}: {gradient:?} vs {plain_gradient:?}",
                M::NAME
            );
        }
        let fused = lik.loglik_gradient_hessian(&point, &Exec::Serial).unwrap();
        let mut columns = Columns::new(&links);
        let mut acc = vec![0.0; columns.hessian_width()];
        for i in 0..rows.len() {
            let z = rows.covariates(i);
            let (theta, ln_theta) = model_point.customer::<M>(z);
            let row = M::row_derivatives::<true>(
                &theta,
                &ln_theta,
                shape.get::<true>(x[i]),
                x[i],
                t_x[i],
                age[i],
            );
            let first = M::row_derivatives::<false>(
                &theta,
                &ln_theta,
                shape.get::<false>(x[i]),
                x[i],
                t_x[i],
                age[i],
            );
            // Second derivatives come with exactly the first-order value and gradient.
            assert_eq!((row.0, row.1), (first.0, first.1), "{}", M::NAME);
            columns.add_hessian::<M>(&mut acc, z, 1.0, &theta, &row);
        }
        columns.flush(&mut acc);
        // A fused pass returns the gradient pass's log-likelihood and gradient to the bit (L-BFGS
        // compares them); its Hessian sums each lane apart, then the lanes: not the same bits.
        assert_eq!(fused.0.to_bits(), value.to_bits(), "{}", M::NAME);
        assert_eq!(fused.1, gradient, "{}", M::NAME);
        let want = columns.fused(&point, &acc);
        assert!(rel(fused.0, want.0) < 1e-13, "{}", M::NAME);
        let close = |a: &[f64], b: &[f64]| {
            let scale = b.iter().fold(1.0_f64, |m, v| m.max(v.abs()));
            a.iter().zip(b).all(|(x, y)| (x - y).abs() <= 1e-12 * scale)
        };
        assert!(close(&fused.1, &want.1), "{}", M::NAME);
        for (a, b) in fused.2.outer_iter().zip(want.2.outer_iter()) {
            let (a, b) = (a.as_slice().unwrap(), b.as_slice().unwrap());
            assert!(close(a, b), "{}: {a:?} vs {b:?}", M::NAME);
        }
    }

    #[test]
    fn lanes_give_the_bits_of_rows() {
        check_lanes_match_rows::<BgNbdParams>(&[0.8, 4.0, 0.7, 2.5, 0.5, -0.3, 0.4]);
        check_lanes_match_rows::<MbgNbdParams>(&[0.8, 4.0, 0.7, 2.5, 0.5, -0.3, 0.4]);
        check_lanes_match_rows::<ParetoNbdParams>(&[0.8, 4.0, 0.6, 10.0, 0.5, -0.3, 0.4]);
    }

    #[test]
    fn gradients_and_hessians_match_finite_differences() {
        check_derivatives::<BgNbdParams>(&[0.8, 4.0, 0.7, 2.5, 0.5, -0.3, 0.4]);
        check_derivatives::<MbgNbdParams>(&[0.8, 4.0, 0.7, 2.5, 0.5, -0.3, 0.4]);
        check_derivatives::<ParetoNbdParams>(&[0.8, 4.0, 0.6, 10.0, 0.5, -0.3, 0.4]);
    }
}
