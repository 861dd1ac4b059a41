//! Customers grouped by identical covariate values ([`Groups`]), and the likelihood over the
//! groups ([`GroupedLikelihood`]): each group shares its parameters, so the base model's own
//! likelihood pass serves it. Rows are keyed by the bit patterns of their covariate values.

use std::marker::PhantomData;

use super::columns::Columns;
use super::likelihood::{coefficient_specs, default_start};
use super::point::Point;
use super::rows::row_slice;
use super::{CovariateModel, CovariateRows, Links};
use crate::data::{Rfm, RfmColumns};
use crate::fit::{FusedPass, Likelihood, ParamSpec};
use crate::parallel::Exec;
use ndarray::Array2;

/// Rows per block when [`Groups`] keys rows in parallel.
const KEY_BLOCK_ROWS: usize = 1 << 16;

/// The bit patterns of a row's covariate values (purchase, then dropout), -0.0 folded into 0.0.
#[inline]
fn row_bits(row: [&[f64]; 2]) -> impl Iterator<Item = u64> + '_ {
    row[0].iter().chain(row[1]).map(|v| (v + 0.0).to_bits())
}

/// [`KeyHasher`]'s hash of a row's covariate values.
#[inline]
fn row_hash(row: [&[f64]; 2]) -> u64 {
    use std::hash::Hasher;
    let mut hasher = KeyHasher::default();
    for word in row_bits(row) {
        hasher.add(word);
    }
    hasher.finish()
}

/// Whether two rows hold the same covariate values (0.0 and -0.0 alike).
#[inline]
fn same_values(a: [&[f64]; 2], b: [&[f64]; 2]) -> bool {
    row_bits(a).eq(row_bits(b))
}

/// Hashes the bit patterns of a row's covariate values (keys of [`Groups`]): a multiply-rotate
/// mix per word (as rustc's FxHasher) with a final avalanche, since the values of small whole
/// numbers and flags differ only in their high bits. The keys are the caller's own data, so no
/// protection against adversarial collisions is needed.
#[derive(Default)]
pub(super) struct KeyHasher(u64);

pub(super) type KeyHash = std::hash::BuildHasherDefault<KeyHasher>;

impl KeyHasher {
    #[inline]
    pub(super) fn add(&mut self, word: u64) {
        self.0 = (self.0.rotate_left(5) ^ word).wrapping_mul(0x517c_c1b7_2722_0a95);
    }
}

impl std::hash::Hasher for KeyHasher {
    fn write(&mut self, bytes: &[u8]) {
        for chunk in bytes.chunks(8) {
            let mut word = [0u8; 8];
            word[..chunk.len()].copy_from_slice(chunk);
            self.add(u64::from_le_bytes(word));
        }
    }

    fn write_u64(&mut self, word: u64) {
        self.add(word);
    }

    fn write_usize(&mut self, word: usize) {
        self.add(word as u64);
    }

    fn finish(&self) -> u64 {
        // The splitmix64 finaliser: every bit of the state reaches the low bits.
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
}

/// Customers grouped by identical covariate values, each group's summaries compressed: where
/// covariates take few distinct values (channels, regions, flags) every group shares its
/// parameters, so the base model's own likelihood pass serves it.
pub struct Groups {
    /// One row of covariate values per group (`groups x purchase columns`), as in
    /// [`CovariateRows`].
    purchase: Array2<f64>,
    /// `groups x dropout columns`.
    dropout: Array2<f64>,
    data: Vec<Rfm>,
}

impl Groups {
    /// The groups of `rows`, or `None` when there are more than `max_groups`.
    pub fn new(rows: &CovariateRows<'_>, max_groups: usize, exec: &Exec) -> Option<Self> {
        // Rows keyed by the bit patterns of their covariate values, block by block in
        // parallel: each block's distinct vectors in the order they first appear, with a local
        // id per row. Merging the blocks in order gives every vector the id of its first
        // appearance in all rows, as one pass in order would.
        let blocks: Vec<std::ops::Range<usize>> = (0..rows.len())
            .step_by(KEY_BLOCK_ROWS)
            .map(|start| start..(start + KEY_BLOCK_ROWS).min(rows.len()))
            .collect();
        // (When both processes read one matrix, the purchase values alone are the key: half
        // the words to hash and compare.)
        let alias = rows.dropout_is_purchase();
        let key_of = |i: usize, key: &mut Vec<u64>| {
            key.clear();
            key.extend(row_bits(rows.key_values(i, alias)));
        };
        let keyed: Vec<Option<(Vec<usize>, Vec<u32>)>> = exec.map(&blocks, |range| {
            // Each row's vector hashed without building a key; rows whose hashes match are
            // compared value by value with the first row of each candidate group.
            let mut index: std::collections::HashMap<u64, Vec<u32>, KeyHash> = Default::default();
            let mut first_rows: Vec<usize> = Vec::new();
            let mut local = Vec::with_capacity(range.len());
            for i in range.clone() {
                let row = rows.key_values(i, alias);
                let candidates = index.entry(row_hash(row)).or_default();
                let found = candidates
                    .iter()
                    .copied()
                    .find(|&g| same_values(rows.key_values(first_rows[g as usize], alias), row));
                let g = match found {
                    Some(g) => g,
                    None => {
                        if first_rows.len() == max_groups {
                            return None;
                        }
                        let g = first_rows.len() as u32;
                        candidates.push(g);
                        first_rows.push(i);
                        g
                    }
                };
                local.push(g);
            }
            Some((first_rows, local))
        });
        let mut index: std::collections::HashMap<Vec<u64>, usize, KeyHash> = Default::default();
        let mut group_of = Vec::with_capacity(rows.len());
        let (mut purchase, mut dropout) = (Vec::new(), Vec::new());
        let mut key = Vec::new();
        for block in keyed {
            let (first_rows, local) = block?;
            let mut global = Vec::with_capacity(first_rows.len());
            for &i in &first_rows {
                key_of(i, &mut key);
                let g = match index.get(key.as_slice()) {
                    Some(&g) => g,
                    None => {
                        let g = index.len();
                        if g == max_groups {
                            return None;
                        }
                        index.insert(key.clone(), g);
                        let [zp, zd] = rows.covariates(i);
                        purchase.extend_from_slice(zp);
                        dropout.extend_from_slice(zd);
                        g
                    }
                };
                global.push(g);
            }
            group_of.extend(local.iter().map(|&g| global[g as usize]));
        }
        // Each group's rows in their original order (a counting sort), gathered and compressed:
        // groups in parallel when there are enough of them to share out, else one by one with
        // the parallel compression.
        let n_groups = index.len();
        let mut starts = vec![0usize; n_groups + 1];
        for &g in &group_of {
            starts[g + 1] += 1;
        }
        for g in 0..n_groups {
            starts[g + 1] += starts[g];
        }
        let mut next = starts.clone();
        let mut order = vec![0usize; group_of.len()];
        for (i, &g) in group_of.iter().enumerate() {
            order[next[g]] = i;
            next[g] += 1;
        }
        let compress = |g: &usize, on: &Exec| {
            let members = &order[starts[*g]..starts[*g + 1]];
            let gather = |v: &[f64]| -> Vec<f64> { members.iter().map(|&i| v[i]).collect() };
            let weights = rows.weights.as_deref().map(gather);
            RfmColumns {
                frequency: &gather(&rows.frequency),
                recency: &gather(&rows.recency),
                age: &gather(&rows.age),
                weights: weights.as_deref(),
            }
            .compress_on(on)
        };
        let groups: Vec<usize> = (0..n_groups).collect();
        let data = if n_groups >= 2 * exec.threads() {
            exec.map(&groups, |g| compress(g, &Exec::Serial))
        } else {
            groups.iter().map(|g| compress(g, exec)).collect()
        };
        let matrix = |values: Vec<f64>, columns: usize| {
            Array2::from_shape_vec((n_groups, columns), values)
                .expect("one row of covariate values per group")
        };
        Some(Groups {
            purchase: matrix(purchase, rows.purchase.ncols()),
            dropout: matrix(dropout, rows.dropout.ncols()),
            data,
        })
    }

    /// Each group's compressed summaries.
    pub(super) fn data(&self) -> &[Rfm] {
        &self.data
    }

    /// Group `g`'s purchase and dropout covariate values.
    pub(super) fn covariates(&self, g: usize) -> [&[f64]; 2] {
        [row_slice(&self.purchase, g), row_slice(&self.dropout, g)]
    }
}

/// The likelihood of a covariate model over [`Groups`]: per group, the base model's
/// likelihood pass at the group's parameters, combined by the same chain rule as per customer.
pub struct GroupedLikelihood<'r, M: CovariateModel> {
    groups: &'r Groups,
    links: &'r Links,
    specs: Vec<ParamSpec>,
    _model: PhantomData<M>,
}

impl<'r, M: CovariateModel> GroupedLikelihood<'r, M> {
    pub fn new(groups: &'r Groups, links: &'r Links) -> Self {
        GroupedLikelihood {
            groups,
            links,
            specs: coefficient_specs::<M>(links),
            _model: PhantomData,
        }
    }
}

impl<M: CovariateModel> Likelihood for GroupedLikelihood<'_, M> {
    fn params(&self) -> &[ParamSpec] {
        &self.specs
    }

    fn starts(&self) -> Vec<Vec<f64>> {
        default_start(self.links)
    }

    fn total_weight(&self) -> f64 {
        self.groups.data.iter().map(Rfm::total_weight).sum()
    }

    fn loglik_and_gradient(&self, params: &[f64], exec: &Exec) -> (f64, Vec<f64>) {
        let columns = Columns::new(self.links);
        let point = Point::new(self.links, params);
        let mut acc = vec![0.0; 1 + columns.len()];
        for (g, data) in self.groups.data.iter().enumerate() {
            let z = self.groups.covariates(g);
            let (theta, _) = point.customer::<M>(z);
            let (ll, grad, _) = M::group_derivatives::<false>(&theta, data, exec);
            Columns::add_gradient::<M>(&mut acc, z, 1.0, &theta, ll, &grad);
        }
        columns.gradient(params, &acc)
    }

    fn hessian(&self, params: &[f64], exec: &Exec) -> Option<Array2<f64>> {
        self.loglik_gradient_hessian(params, exec)
            .map(|(_, _, h)| h)
    }

    fn loglik_gradient_hessian(&self, params: &[f64], exec: &Exec) -> Option<FusedPass> {
        let columns = Columns::new(self.links);
        let point = Point::new(self.links, params);
        let mut acc = vec![0.0; columns.hessian_width()];
        for (g, data) in self.groups.data.iter().enumerate() {
            let z = self.groups.covariates(g);
            let (theta, _) = point.customer::<M>(z);
            let group = M::group_derivatives::<true>(&theta, data, exec);
            if group.2.iter().flatten().any(|v| v.is_nan()) {
                // The base model has no closed-form Hessian: difference the gradient.
                return None;
            }
            columns.add_hessian::<M>(&mut acc, z, 1.0, &theta, &group);
        }
        Some(columns.fused(params, &acc))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::models::covariates::rows::matrix;
    use crate::models::covariates::CovariateLikelihood;
    use crate::models::testing::rel;
    use crate::models::{BgNbdParams, MbgNbdParams, ParetoNbdParams};

    #[test]
    fn groups_number_vectors_by_first_appearance_across_key_blocks() {
        // Vector j first appears at row 30_000 j, so later key blocks bring new groups; -0.0
        // and 0.0 are one value.
        let n = 5 * KEY_BLOCK_ROWS / 2;
        let vector = |i: usize| -> f64 {
            let newest = i / 30_000;
            let j = (i * 7919) % (newest + 1);
            if j == 0 && i % 2 == 1 {
                -0.0
            } else {
                j as f64
            }
        };
        let purchase: Vec<f64> = (0..n).map(vector).collect();
        let dropout: Vec<f64> = purchase.iter().map(|v| v * 2.0).collect();
        let (x, t_x, age) = (vec![1.0; n], vec![2.0; n], vec![5.0; n]);
        let columns = RfmColumns::new(&x, &t_x, &age);
        let rows = CovariateRows::new(&columns, matrix(&purchase, 1), matrix(&dropout, 1));
        let exec = Exec::with_jobs(Some(2)).unwrap();
        let groups = Groups::new(&rows, 1000, &exec).unwrap();
        let mut first: Vec<f64> = Vec::new();
        for &v in &purchase {
            if !first.contains(&v) {
                first.push(v);
            }
        }
        assert_eq!(groups.purchase.column(0).to_vec(), first);
        for (g, &v) in first.iter().enumerate() {
            let count = purchase.iter().filter(|&&p| p == v).count() as f64;
            assert_eq!(groups.data[g].total_weight(), count, "group {g}");
            assert_eq!(groups.dropout[[g, 0]], v * 2.0);
        }
        // Too many groups, only visible once the blocks are merged.
        assert!(Groups::new(&rows, first.len() - 1, &exec).is_none());
        assert!(Groups::new(&rows, first.len(), &Exec::Serial).is_some());
    }

    /// One matrix passed for both processes is keyed by its purchase values alone: the same
    /// groups as from two separate copies.
    #[test]
    fn one_matrix_for_both_processes_gives_the_same_groups() {
        let n = 3 * KEY_BLOCK_ROWS / 2;
        let values: Vec<f64> = (0..n)
            .flat_map(|i| [(i % 3) as f64, ((i * 7) % 5) as f64])
            .collect();
        let (x, t_x, age) = (vec![1.0; n], vec![2.0; n], vec![5.0; n]);
        let columns = RfmColumns::new(&x, &t_x, &age);
        let shared = matrix(&values, 2);
        let copy = values.clone();
        let aliased = CovariateRows::new(&columns, shared, shared);
        let separate = CovariateRows::new(&columns, shared, matrix(&copy, 2));
        assert!(aliased.dropout_is_purchase() && !separate.dropout_is_purchase());
        let exec = Exec::with_jobs(Some(2)).unwrap();
        let (a, b) = (
            Groups::new(&aliased, 100, &exec).unwrap(),
            Groups::new(&separate, 100, &exec).unwrap(),
        );
        assert_eq!(a.data.len(), 15);
        assert_eq!((&a.purchase, &a.dropout), (&b.purchase, &b.dropout));
        for (ga, gb) in a.data.iter().zip(&b.data) {
            assert_eq!(ga.total_weight(), gb.total_weight());
        }
        assert!(Groups::new(&aliased, 14, &exec).is_none());
    }

    /// Customers with few distinct covariate values go through the base models' likelihood
    /// passes per group: the same value, gradient and Hessian as customer by customer.
    fn check_groups_match_rows<M: CovariateModel>(point: &[f64]) {
        let data = crate::models::testing::cdnow();
        let columns = data.columns();
        let n = data.len();
        let purchase: Vec<f64> = (0..n)
            .flat_map(|i| [(i % 2) as f64, (i % 3 == 0) as u8 as f64])
            .collect();
        let dropout: Vec<f64> = (0..n).map(|i| (i % 3 == 0) as u8 as f64).collect();
        let links = Links {
            purchase: vec![0, 1],
            dropout: vec![1],
            names: vec!["odd".into(), "third".into()],
        };
        let rows = CovariateRows::new(&columns, matrix(&purchase, 2), matrix(&dropout, 1));
        let exec = Exec::Serial;
        let groups = Groups::new(&rows, 100, &exec).unwrap();
        assert_eq!(groups.data.len(), 4);
        assert!(Groups::new(&rows, 3, &exec).is_none());
        let by_row = CovariateLikelihood::<M>::new(&rows, &links);
        let by_group = GroupedLikelihood::<M>::new(&groups, &links);
        assert_eq!(by_row.total_weight(), by_group.total_weight());
        let (ll_r, g_r) = by_row.loglik_and_gradient(point, &exec);
        let (ll_g, g_g) = by_group.loglik_and_gradient(point, &exec);
        assert!(rel(ll_g, ll_r) < 1e-12, "{}: {ll_g} vs {ll_r}", M::NAME);
        let (h_r, h_g) = (
            by_row.hessian(point, &exec).unwrap(),
            by_group.hessian(point, &exec).unwrap(),
        );
        for i in 0..point.len() {
            assert!(
                (g_g[i] - g_r[i]).abs() < 1e-8 * g_r[i].abs().max(1.0),
                "{}: {g_g:?} vs {g_r:?}",
                M::NAME
            );
            for j in 0..point.len() {
                let scale = h_r[[i, j]]
                    .abs()
                    .max(h_r[[i, i]].abs().sqrt() * h_r[[j, j]].abs().sqrt())
                    .max(1.0);
                assert!(
                    (h_g[[i, j]] - h_r[[i, j]]).abs() < 1e-6 * scale,
                    "{}: H[{i}][{j}] {} vs {}",
                    M::NAME,
                    h_g[[i, j]],
                    h_r[[i, j]]
                );
            }
        }
    }

    #[test]
    fn grouped_and_per_customer_likelihoods_agree() {
        check_groups_match_rows::<BgNbdParams>(&[0.3, 4.0, 0.8, 2.4, 0.2, -0.3]);
        check_groups_match_rows::<MbgNbdParams>(&[0.5, 6.0, 0.9, 1.6, 0.2, -0.3]);
        check_groups_match_rows::<ParetoNbdParams>(&[0.55, 10.0, 0.6, 11.0, 0.2, -0.3]);
    }
}
