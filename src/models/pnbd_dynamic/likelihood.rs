//! One customer's likelihood under time-varying covariates, with its gradient, by
//! Gauss-Legendre panels piece by piece (see the module documentation of [`super`]), and the
//! likelihood over all customers for the fitting engine ([`DynamicLikelihood`]).

use super::DynamicRows;
use crate::fit::{Domain, Likelihood, ParamSpec};
use crate::models::covariates::Links;
use crate::models::covariates::RowMajor;
use crate::models::pnbd::ParetoNbdParams;
use crate::models::RfmModel;
use crate::parallel::Exec;
use crate::special::{digamma, ln_gamma};

/// Largest change of the log-integrand over one quadrature panel.
pub(super) const MAX_PANEL_LOG_CHANGE: f64 = 1.5;

/// Panels whose bound is below the running sum times `e^-NEGLIGIBLE` are skipped.
const NEGLIGIBLE: f64 = 40.0;

/// Gauss-Legendre 8-point rule on [-1, 1]: positive nodes and their weights.
const GL_NODES: [f64; 4] = [
    0.183_434_642_495_649_8,
    0.525_532_409_916_329,
    0.796_666_477_413_626_7,
    0.960_289_856_497_536_3,
];
const GL_WEIGHTS: [f64; 4] = [
    0.362_683_783_378_362,
    0.313_706_645_877_887_3,
    0.222_381_034_453_374_5,
    0.101_228_536_290_376_3,
];

/// The shared parameters and the coefficient of each covariate column.
pub(super) struct Point {
    pub(super) r: f64,
    pub(super) alpha: f64,
    pub(super) s: f64,
    pub(super) beta: f64,
    /// Coefficient of each purchase column, and of each dropout column.
    pub(super) purchase: Vec<f64>,
    pub(super) dropout: Vec<f64>,
}

impl Point {
    pub(super) fn new(params: &[f64], links: &Links) -> Point {
        let coefficients = &params[4..];
        Point {
            r: params[0],
            alpha: params[1],
            s: params[2],
            beta: params[3],
            purchase: links.purchase.iter().map(|&c| coefficients[c]).collect(),
            dropout: links.dropout.iter().map(|&c| coefficients[c]).collect(),
        }
    }

    /// The purchase and dropout rate multipliers `exp(g1 . x_k)`, `exp(g2 . z_k)` of piece `k`.
    #[inline]
    pub(super) fn multipliers(
        &self,
        [purchase, dropout]: [RowMajor<'_>; 2],
        k: usize,
    ) -> (f64, f64) {
        (
            dot(purchase.row(k), &self.purchase).exp(),
            dot(dropout.row(k), &self.dropout).exp(),
        )
    }
}

/// One customer's log-likelihood and, when `GRADIENT`, its gradient in (r, alpha, s, beta,
/// purchase columns, dropout columns), plus P(alive at T).
pub(super) struct Row {
    pub(super) log_likelihood: f64,
    pub(super) probability_alive: f64,
    /// Cumulative intensities at T.
    pub(super) a_t: f64,
    pub(super) b_t: f64,
}

/// Working buffers of one thread.
pub(super) struct Scratch {
    /// d A / d g1 and d B / d g2 at the start of the current piece, and at T.
    d_a: Vec<f64>,
    d_b: Vec<f64>,
    d_a_t: Vec<f64>,
    d_b_t: Vec<f64>,
    /// The same at the start of the piece holding t_x.
    d_a_tx: Vec<f64>,
    d_b_tx: Vec<f64>,
    /// Per piece of the customer before T: the purchase and dropout multipliers and A, B at
    /// the piece's start.
    pieces: Vec<[f64; 4]>,
    /// Gradient in (r, alpha, s, beta, purchase columns, dropout columns), relative scale.
    gradient: Vec<f64>,
}

impl Scratch {
    pub(super) fn new(p: usize, q: usize) -> Scratch {
        Scratch {
            d_a: vec![0.0; p],
            d_b: vec![0.0; q],
            d_a_t: vec![0.0; p],
            d_b_t: vec![0.0; q],
            d_a_tx: vec![0.0; p],
            d_b_tx: vec![0.0; q],
            pieces: Vec::new(),
            gradient: vec![0.0; 4 + p + q],
        }
    }
}

pub(super) fn dot(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

/// Customer `i`'s likelihood (and gradient into `scratch.gradient`, absolute scale).
pub(super) fn row<const GRADIENT: bool>(
    rows: &DynamicRows<'_>,
    point: &Point,
    i: usize,
    scratch: &mut Scratch,
) -> Row {
    let (p, q) = (point.purchase.len(), point.dropout.len());
    let (x, t_x, age) = (rows.frequency[i], rows.recency[i], rows.age[i]);
    let (r, alpha, s, beta) = (point.r, point.alpha, point.s, point.beta);
    let rx = r + x;
    let range = rows.pieces(i);
    let matrices = rows.matrices();
    let [purchase, dropout] = matrices;
    let purchase_row = |k: usize| purchase.row(k);
    let dropout_row = |k: usize| dropout.row(k);
    let end_of = |k: usize| rows.piece_end(i, k);

    // First pass: each piece's multipliers, A and B (and their coefficient derivatives) at
    // the piece starts, at t_x and at T.
    if GRADIENT {
        scratch.d_a.iter_mut().for_each(|v| *v = 0.0);
        scratch.d_b.iter_mut().for_each(|v| *v = 0.0);
    }
    scratch.pieces.clear();
    let (mut a, mut b) = (0.0, 0.0);
    let (mut a_tx, mut b_tx) = (0.0, 0.0);
    // The piece holding t_x (where the integral starts), as an offset into `range`.
    let mut tx_piece = 0;
    for k in range.clone() {
        let start = rows.piece_starts[k];
        if start >= age {
            break;
        }
        let len = end_of(k).min(age) - start;
        let (e, f) = point.multipliers(matrices, k);
        scratch.pieces.push([e, f, a, b]);
        if t_x >= start && t_x <= start + len {
            a_tx = a + e * (t_x - start);
            b_tx = b + f * (t_x - start);
            if t_x < start + len || tx_piece == 0 {
                tx_piece = k - range.start;
                if GRADIENT {
                    scratch.d_a_tx.copy_from_slice(&scratch.d_a);
                    scratch.d_b_tx.copy_from_slice(&scratch.d_b);
                }
            }
        }
        a += e * len;
        b += f * len;
        if GRADIENT {
            for (d, v) in scratch.d_a.iter_mut().zip(purchase_row(k)) {
                *d += e * len * v;
            }
            for (d, v) in scratch.d_b.iter_mut().zip(dropout_row(k)) {
                *d += f * len * v;
            }
        }
    }
    if age == 0.0 {
        a_tx = 0.0;
        b_tx = 0.0;
    }
    let (a_t, b_t) = (a, b);
    if GRADIENT {
        scratch.d_a_t.copy_from_slice(&scratch.d_a);
        scratch.d_b_t.copy_from_slice(&scratch.d_b);
    }

    // The two terms, relative to `reference` (the larger of the first term and the
    // integrand's power part at t_x).
    // In `alpha^r beta^s / ((alpha + A)^(r+x) (beta + B)^s)` the factors `alpha^-x` and
    // `(1 + A / alpha)`, `(1 + B / beta)` are kept apart: no cancellation of `r ln(alpha)`
    // against `r ln(alpha + A)` when r or s is large.
    let ln_first = -rx * (a_t / alpha).ln_1p() - s * (b_t / beta).ln_1p();
    let ln_s_over_beta = s.ln() - beta.ln();
    let ln_start = ln_s_over_beta - rx * (a_tx / alpha).ln_1p() - (s + 1.0) * (b_tx / beta).ln_1p();
    let reference = ln_first.max(ln_start);
    let first = (ln_first - reference).exp();
    let mut total = first;
    // Gradient sums (relative scale) over the integral, in (r, alpha, s, beta) and the
    // coefficient columns.
    let g = &mut scratch.gradient;
    if GRADIENT {
        g.iter_mut().for_each(|v| *v = 0.0);
        g[0] = -first * (a_t / alpha).ln_1p();
        g[1] = -first * rx / (alpha + a_t);
        g[2] = -first * (b_t / beta).ln_1p();
        g[3] = -first * s / (beta + b_t);
        for j in 0..p {
            g[4 + j] = -first * rx / (alpha + a_t) * scratch.d_a_t[j];
        }
        for j in 0..q {
            g[4 + p + j] = -first * s / (beta + b_t) * scratch.d_b_t[j];
        }
    }

    // Second pass: the integral over [t_x, T], piece by piece from the piece holding t_x.
    if t_x < age {
        if GRADIENT {
            scratch.d_a.copy_from_slice(&scratch.d_a_tx);
            scratch.d_b.copy_from_slice(&scratch.d_b_tx);
        }
        for offset in tx_piece..scratch.pieces.len() {
            let k = range.start + offset;
            let [e, f, a, b] = scratch.pieces[offset];
            let start = rows.piece_starts[k];
            let end = end_of(k).min(age);
            {
                let from = start.max(t_x);
                // Sums over the piece's nodes: weight, weight / (alpha + A), weight * offset /
                // (alpha + A), and the same for B; weight * ln(alpha + A), ln(beta + B).
                let mut sums = [0.0f64; 7];
                // A and B where the integral enters the piece.
                let (a1, b1) = (a + e * (from - start), b + f * (from - start));
                let (c1, c2) = (alpha + a1, beta + b1);
                let length = end - from;
                // Each factor's log may change by half the panel budget: the widths grow
                // with the factors' scales (geometric panels where a factor falls fast).
                let (scale_a, scale_b) = (c1 / e, c2 / f);
                // (At most doubling the distance to each factor's pole, so the 8-point rule
                // stays exact to rounding however small the exponent.)
                let (grow_a, grow_b) = (
                    (0.5 * MAX_PANEL_LOG_CHANGE / rx).exp_m1().min(1.0),
                    (0.5 * MAX_PANEL_LOG_CHANGE / (s + 1.0)).exp_m1().min(1.0),
                );
                let ln_f = f.ln();
                let mut lo = 0.0;
                while lo < length {
                    let step = ((scale_a + lo) * grow_a).min((scale_b + lo) * grow_b);
                    let hi = if step.is_finite() && step > 0.0 && lo + step < length {
                        lo + step
                    } else {
                        length
                    };
                    let width = hi - lo;
                    // The integrand decreases within the piece: its value at the panel's
                    // start times the rest of the piece bounds everything left of it.
                    let ln_lo = ln_s_over_beta + ln_f
                        - rx * ((a1 + e * lo) / alpha).ln_1p()
                        - (s + 1.0) * ((b1 + f * lo) / beta).ln_1p()
                        - reference;
                    if ln_lo + (length - lo).ln() < total.ln() - NEGLIGIBLE {
                        break;
                    }
                    let (mid, half) = (lo + 0.5 * width, 0.5 * width);
                    for (node, weight) in GL_NODES.iter().zip(GL_WEIGHTS) {
                        for u in [mid - half * node, mid + half * node] {
                            let (big_a, big_b) = (c1 + e * u, c2 + f * u);
                            // ln((alpha + A) / alpha) and ln((beta + B) / beta).
                            let ln_a = ((a1 + e * u) / alpha).ln_1p();
                            let ln_b = ((b1 + f * u) / beta).ln_1p();
                            let term =
                                (ln_s_over_beta + ln_f - rx * ln_a - (s + 1.0) * ln_b - reference)
                                    .exp()
                                    * weight
                                    * half;
                            total += term;
                            if GRADIENT {
                                let offset = from - start + u;
                                sums[0] += term;
                                sums[1] += term / big_a;
                                sums[2] += term * offset / big_a;
                                sums[3] += term / big_b;
                                sums[4] += term * offset / big_b;
                                sums[5] += term * ln_a;
                                sums[6] += term * ln_b;
                            }
                        }
                    }
                    lo = hi;
                }
                if GRADIENT {
                    g[0] -= sums[5];
                    g[1] -= rx * sums[1];
                    g[2] += sums[0] / s - sums[6];
                    g[3] -= (s + 1.0) * sums[3];
                    for j in 0..p {
                        g[4 + j] -=
                            rx * (sums[1] * scratch.d_a[j] + sums[2] * e * purchase_row(k)[j]);
                    }
                    for j in 0..q {
                        g[4 + p + j] += sums[0] * dropout_row(k)[j]
                            - (s + 1.0)
                                * (sums[3] * scratch.d_b[j] + sums[4] * f * dropout_row(k)[j]);
                    }
                }
            }
            let len = end - start;
            if GRADIENT {
                for (d, v) in scratch.d_a.iter_mut().zip(purchase_row(k)) {
                    *d += e * len * v;
                }
                for (d, v) in scratch.d_b.iter_mut().zip(dropout_row(k)) {
                    *d += f * len * v;
                }
            }
        }
    }

    let bought = &rows.purchase_pieces[rows.purchase_offsets[i]..rows.purchase_offsets[i + 1]];
    let at_purchases: f64 = bought
        .iter()
        .map(|&k| dot(purchase_row(k), &point.purchase))
        .sum();
    let log_likelihood =
        ln_gamma(rx) - ln_gamma(r) - x * alpha.ln() + at_purchases + reference + total.ln();
    if GRADIENT {
        g.iter_mut().for_each(|v| *v /= total);
        g[0] += digamma(rx) - digamma(r);
        g[1] += r / alpha;
        g[3] += s / beta;
        for &k in bought {
            for (gj, v) in g[4..4 + p].iter_mut().zip(purchase_row(k)) {
                *gj += v;
            }
        }
    }
    Row {
        log_likelihood,
        probability_alive: first / total,
        a_t,
        b_t,
    }
}

/// The likelihood of the time-varying covariate model, for the fitting engine: parameters
/// (r, alpha, s, beta, coefficients in the order of [`Links::names`]).
pub struct DynamicLikelihood<'r, 'a> {
    rows: &'r DynamicRows<'a>,
    links: &'r Links,
    pub(super) specs: Vec<ParamSpec>,
}

impl<'r, 'a> DynamicLikelihood<'r, 'a> {
    pub fn new(rows: &'r DynamicRows<'a>, links: &'r Links) -> Self {
        let mut specs = ParetoNbdParams::specs().to_vec();
        specs.extend(links.names.iter().map(|_| ParamSpec {
            name: "coefficient",
            domain: Domain::Real,
        }));
        DynamicLikelihood { rows, links, specs }
    }
}

impl Likelihood for DynamicLikelihood<'_, '_> {
    fn params(&self) -> &[ParamSpec] {
        &self.specs
    }

    fn starts(&self) -> Vec<Vec<f64>> {
        // Only used without a caller-given start; `fit_dynamic` always gives one.
        let mut start = vec![1.0; 4];
        start.extend(std::iter::repeat_n(0.0, self.links.len()));
        vec![start]
    }

    fn total_weight(&self) -> f64 {
        self.rows.len() as f64
    }

    fn loglik_and_gradient(&self, params: &[f64], exec: &Exec) -> (f64, Vec<f64>) {
        let point = Point::new(params, self.links);
        let (p, q) = (point.purchase.len(), point.dropout.len());
        let rows = self.rows;
        let width = 1 + 4 + p + q;
        let acc = exec.chunked_sum(rows.len(), width, |range, acc| {
            let mut scratch = Scratch::new(p, q);
            for i in range {
                let result = row::<true>(rows, &point, i, &mut scratch);
                acc[0] += result.log_likelihood;
                for (a, g) in acc[1..].iter_mut().zip(&scratch.gradient) {
                    *a += g;
                }
            }
        });
        // Columns to coefficients (tied columns share one).
        let mut gradient = acc[1..5].to_vec();
        gradient.resize(4 + self.links.len(), 0.0);
        for (j, &c) in self.links.purchase.iter().enumerate() {
            gradient[4 + c] += acc[5 + j];
        }
        for (j, &c) in self.links.dropout.iter().enumerate() {
            gradient[4 + c] += acc[5 + p + j];
        }
        (acc[0], gradient)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::RfmColumns;
    use crate::models::covariates::{CovariateLikelihood, CovariateRows};
    use crate::models::pnbd_dynamic::tests::{links, simulate, Owned};
    use crate::models::pnbd_dynamic::{predict, OwnedRows, Quantity};
    use ndarray::{array, Array2, ArrayView2};

    #[test]
    fn constant_covariates_give_the_time_invariant_model() {
        // Each customer's covariates are constant but split into pieces: the likelihood and
        // its gradient equal the time-invariant covariate model's.
        let mut o = simulate(300, &[0.6, 8.0, 0.8, 10.0, 0.4, -0.3], 3, 30.0);
        for i in 0..o.frequency.len() {
            let range = o.piece_offsets[i]..o.piece_offsets[i + 1];
            let first = range.start;
            for k in range {
                o.purchase[[k, 0]] = o.purchase[[first, 0]];
                o.dropout[[k, 0]] = o.dropout[[first, 0]];
            }
        }
        let l = links(1, 1);
        let rows = o.rows();
        let columns = RfmColumns {
            frequency: &o.frequency,
            recency: &o.recency,
            age: &o.age,
            weights: None,
        };
        let firsts: Vec<usize> = o.piece_offsets[..o.frequency.len()].to_vec();
        let z1: Vec<f64> = firsts.iter().map(|&k| o.purchase[[k, 0]]).collect();
        let z2: Vec<f64> = firsts.iter().map(|&k| o.dropout[[k, 0]]).collect();
        let static_rows = CovariateRows::new(
            &columns,
            ArrayView2::from_shape((z1.len(), 1), &z1).unwrap(),
            ArrayView2::from_shape((z2.len(), 1), &z2).unwrap(),
        );
        let exec = Exec::with_jobs(Some(1)).unwrap();
        for point in [
            [0.6, 8.0, 0.8, 10.0, 0.4, -0.3],
            [2.0, 3.0, 0.3, 40.0, -1.0, 1.5],
        ] {
            let (v1, g1) = DynamicLikelihood::new(&rows, &l).loglik_and_gradient(&point, &exec);
            let (v2, g2) = CovariateLikelihood::<ParetoNbdParams>::new(&static_rows, &l)
                .loglik_and_gradient(&point, &exec);
            assert!((v1 - v2).abs() < 1e-9 * v2.abs(), "{v1} vs {v2}");
            for (a, b) in g1.iter().zip(&g2) {
                assert!((a - b).abs() < 1e-7 * (1.0 + b.abs()), "{g1:?} vs {g2:?}");
            }
        }
    }

    #[test]
    fn gradient_matches_finite_differences() {
        let o = simulate(200, &[0.6, 8.0, 0.8, 10.0, 0.4, -0.3], 5, 30.0);
        let l = links(1, 1);
        let rows = o.rows();
        let lik = DynamicLikelihood::new(&rows, &l);
        let exec = Exec::with_jobs(Some(1)).unwrap();
        let point = [0.7, 6.0, 1.1, 12.0, 0.3, -0.5];
        let (_, gradient) = lik.loglik_and_gradient(&point, &exec);
        for j in 0..point.len() {
            let h = 1e-6 * point[j].abs().max(1.0);
            let mut up = point;
            let mut down = point;
            up[j] += h;
            down[j] -= h;
            let fd = (lik.loglik_and_gradient(&up, &exec).0
                - lik.loglik_and_gradient(&down, &exec).0)
                / (2.0 * h);
            assert!(
                (fd - gradient[j]).abs() < 1e-5 * (1.0 + fd.abs()),
                "parameter {j}: {fd} vs {}",
                gradient[j]
            );
        }
    }

    #[test]
    fn large_histories_keep_the_integral_accurate() {
        // One customer with 400 purchases early and a long silence: the integrand falls by
        // hundreds of orders of magnitude across the first piece; compare against a brute
        // force midpoint sum on a fine grid (in logs).
        let o = Owned {
            frequency: vec![400.0],
            recency: vec![2.5],
            age: vec![40.0],
            piece_offsets: vec![0, 3],
            piece_starts: vec![0.0, 10.0, 20.0],
            purchase: array![[0.0], [1.0], [0.5]],
            dropout: array![[1.0], [-1.0], [0.0]],
            purchase_offsets: vec![0, 400],
            purchase_pieces: vec![0; 400],
        };
        let l = links(1, 1);
        let rows = o.rows();
        let point = [0.6, 8.0, 0.8, 10.0, 0.4, -0.3];
        let exec = Exec::with_jobs(Some(1)).unwrap();
        let (value, _) = DynamicLikelihood::new(&rows, &l).loglik_and_gradient(&point, &exec);
        // Brute force: A, B piecewise linear; integrand summed on 2M midpoints.
        let (r, alpha, s, beta): (f64, f64, f64, f64) = (0.6, 8.0, 0.8, 10.0);
        let e = |t: f64| f64::exp(0.4 * [0.0, 1.0, 0.5][((t / 10.0) as usize).min(2)]);
        let f = |t: f64| f64::exp(-0.3 * [1.0, -1.0, 0.0][((t / 10.0) as usize).min(2)]);
        let steps = 2_000_000;
        let dt: f64 = 40.0 / steps as f64;
        let (mut a, mut b) = (0.0, 0.0);
        let mut terms = vec![];
        for m in 0..steps {
            let t = (m as f64 + 0.5) * dt;
            let (am, bm) = (a + e(t) * 0.5 * dt, b + f(t) * 0.5 * dt);
            if t > 2.5 {
                terms.push(
                    s.ln() + f(t).ln()
                        - (r + 400.0) * (alpha + am).ln()
                        - (s + 1.0) * (beta + bm).ln()
                        + dt.ln(),
                );
            }
            a += e(t) * dt;
            b += f(t) * dt;
        }
        terms.push(-(r + 400.0) * (alpha + a).ln() - s * (beta + b).ln());
        let max = terms.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
        let ln_sum = max + terms.iter().map(|v| (v - max).exp()).sum::<f64>().ln();
        let expected = ln_gamma(r + 400.0) - ln_gamma(r)
            + r * alpha.ln()
            + s * beta.ln()
            + 400.0 * 0.0
            + ln_sum;
        assert!((value - expected).abs() < 1e-7, "{value} vs {expected}");
    }

    #[test]
    fn steep_purchase_multipliers_keep_the_whole_integral() {
        // exp(g1 x) = e^40 makes (alpha + A)^-r fall over 1e-17 of a unit of time; the rest of
        // the piece still carries half the likelihood (mpmath, 40 digits: -0.83195227017864,
        // P(alive) 0.49299974990031).
        let o = OwnedRows {
            frequency: vec![0.0],
            recency: vec![0.0],
            age: vec![10.0],
            piece_offsets: vec![0, 1],
            piece_starts: vec![0.0],
            purchase: array![[40.0]],
            dropout: Array2::zeros((1, 0)),
            purchase_offsets: vec![0, 0],
            purchase_pieces: vec![],
        };
        let l = Links {
            purchase: vec![0],
            dropout: vec![],
            names: vec!["x".into()],
        };
        let exec = Exec::with_jobs(Some(1)).unwrap();
        let params = [0.02, 1.0, 1.0, 10.0, 1.0];
        let mut out = [0.0];
        for (quantity, expected) in [
            (Quantity::LogLikelihood, -0.831_952_270_178_642_2),
            (Quantity::ProbabilityAlive, 0.492_999_749_900_307),
        ] {
            predict(&o.rows(), &l, &params, quantity, &[0.0], &exec, &mut out).unwrap();
            assert!(
                (out[0] - expected).abs() < 1e-10,
                "{quantity:?}: {}",
                out[0]
            );
        }
        // A linear predictor beyond exp's range is refused, naming the customer.
        let err = predict(
            &o.rows(),
            &l,
            &[0.02, 1.0, 1.0, 10.0, 20.0],
            Quantity::LogLikelihood,
            &[0.0],
            &exec,
            &mut out,
        )
        .unwrap_err();
        assert!(err.to_string().contains("overflow"), "{err}");
    }
}
