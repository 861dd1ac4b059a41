//! The chain rule of the covariate likelihoods ([`Columns`]): a customer's (or group's)
//! log-likelihood, gradient and Hessian in its own parameters, added in column coordinates
//! (log shared parameters, one coordinate per covariate column) and mapped to the shared
//! parameters and the coefficients.

use super::rows::RowMajor;
use super::{CovariateModel, Links};
use crate::fit::FusedPass;
use crate::models::bgnbd::LaneDerivatives;
use crate::models::RowDerivatives;
use ndarray::Array2;

/// Column coordinates: the logs of the four shared parameters, then one coordinate per
/// purchase column and per dropout column (tied columns are separate here and summed into their
/// coefficient by [`Columns::gradient`] and [`Columns::hessian`]).
///
/// Each per-customer parameter's log is its shared log plus `sign z . g` of its process, so a
/// customer's gradient in the column coordinates is `w s_i g_r[r_i]` and its Hessian
/// `w s_i s_j Hr[r_i][r_j]`, with `g_r` and `Hr` the gradient and 6 x 6 Hessian in the reduced
/// coordinates (log shared parameters, purchase predictor, dropout predictor), `r_i` the reduced
/// coordinate of column `i` and `s_i` its scale (1, or the covariate value): O(C^2) per
/// customer with no matrix products.
pub(super) struct Columns {
    /// Reduced coordinate of each column coordinate (0..4 shared, 4 purchase, 5 dropout).
    reduced: Vec<usize>,
    /// Coefficient (0..4 shared, then 4 + coefficient index) of each column coordinate.
    coefficient: Vec<usize>,
    /// Sums of the customers added 4 at a time ([`Columns::add_gradient_x4`]), one lane each:
    /// `[entry][lane]` for the log-likelihood and the gradient (`1 + C` entries).
    gradient_lanes: Vec<[f64; 4]>,
    /// Likewise for the entries of the Hessian accumulator ([`Columns::add_hessian_x4`]).
    lane_sums: Vec<[f64; 4]>,
    /// The covariate values of a block of customers staged by [`Columns::stage_block`]
    /// column by column, 4 customers (lanes) a vector: `[(column - 4) * groups + group]`, with
    /// `groups` = [`STAGED_GROUPS`].
    staged: Vec<[f64; 4]>,
    /// Number of purchase columns.
    purchase_len: usize,
}

/// Groups of 4 customers in a block staged by [`Columns::stage_block`]: small enough for the
/// staged values to stay in the first-level cache.
pub(super) const STAGED_GROUPS: usize = 16;

/// The gradient (6) and Hessian (6 x 6) in the reduced coordinates.
type Reduced = ([f64; 6], [[f64; 6]; 6]);

impl Columns {
    pub(super) fn new(links: &Links) -> Self {
        let (p, q) = (links.purchase.len(), links.dropout.len());
        let mut reduced: Vec<usize> = (0..4).collect();
        reduced.extend(std::iter::repeat_n(4, p));
        reduced.extend(std::iter::repeat_n(5, q));
        let mut coefficient: Vec<usize> = (0..4).collect();
        coefficient.extend(links.purchase.iter().chain(&links.dropout).map(|c| 4 + c));
        Columns {
            gradient_lanes: Vec::new(),
            lane_sums: Vec::new(),
            staged: Vec::new(),
            purchase_len: p,
            reduced,
            coefficient,
        }
    }

    /// Number of column coordinates.
    pub(super) fn len(&self) -> usize {
        self.reduced.len()
    }

    /// Width of the Hessian accumulator: the log-likelihood and the gradient (C) exactly as in
    /// a gradient pass ([`Columns::add_gradient`]), then the Hessian (C x C, upper triangle
    /// used).
    pub(super) fn hessian_width(&self) -> usize {
        let c = self.len();
        1 + c + c * c
    }

    /// Add one customer's (or group's) weighted log-likelihood `ll` and gradient `g` (natural
    /// parameters `theta`) to `acc` = [value, gradient in the column coordinates].
    #[inline]
    #[allow(clippy::too_many_arguments)]
    pub(super) fn add_gradient<M: CovariateModel>(
        acc: &mut [f64],
        z: [&[f64]; 2],
        w: f64,
        theta: &[f64; 4],
        ll: f64,
        g: &[f64; 4],
    ) {
        acc[0] += w * ll;
        let g_log: [f64; 4] = std::array::from_fn(|k| w * g[k] * theta[k]);
        let mut g_process = [0.0; 2];
        for &(k, process, sign) in M::LINKS {
            g_process[process as usize] += sign * g_log[k];
        }
        let (shared, columns) = acc[1..].split_at_mut(4);
        for (a, v) in shared.iter_mut().zip(g_log) {
            *a += v;
        }
        let (purchase, dropout) = columns.split_at_mut(z[0].len());
        for (a, v) in purchase.iter_mut().zip(z[0]) {
            *a += g_process[0] * v;
        }
        for (a, v) in dropout.iter_mut().zip(z[1]) {
            *a += g_process[1] * v;
        }
    }

    /// The gradient and Hessian of one customer in the reduced coordinates, from those in its
    /// natural parameters: `d ln theta_k / d u` is 1 for the log of its own shared parameter and
    /// `sign` for its process's predictor.
    #[inline]
    fn reduced<M: CovariateModel>(theta: &[f64; 4], g: &[f64; 4], h: &[[f64; 4]; 4]) -> Reduced {
        let g_log: [f64; 4] = std::array::from_fn(|a| g[a] * theta[a]);
        let h_log: [[f64; 4]; 4] = std::array::from_fn(|a| {
            std::array::from_fn(|b| {
                theta[a] * theta[b] * h[a][b] + if a == b { g_log[a] } else { 0.0 }
            })
        });
        let mut g_r = [0.0; 6];
        g_r[..4].copy_from_slice(&g_log);
        // Columns first (h_log times the map), then rows.
        let mut right = [[0.0; 6]; 4];
        for (row, h_row) in right.iter_mut().zip(&h_log) {
            row[..4].copy_from_slice(h_row);
        }
        for &(k, process, sign) in M::LINKS {
            let u = 4 + process as usize;
            g_r[u] += sign * g_log[k];
            for (row, h_row) in right.iter_mut().zip(&h_log) {
                row[u] += sign * h_row[k];
            }
        }
        let mut h_r = [[0.0; 6]; 6];
        h_r[..4].copy_from_slice(&right);
        for &(k, process, sign) in M::LINKS {
            let u = 4 + process as usize;
            for (value, r) in h_r[u].iter_mut().zip(&right[k]) {
                *value += sign * r;
            }
        }
        (g_r, h_r)
    }

    /// Add one customer's (or group's) weighted log-likelihood, gradient and Hessian (natural
    /// parameters `theta`) in the column coordinates to `acc`: the log-likelihood and gradient
    /// by [`Columns::add_gradient`], so that they have the bits of a gradient pass.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn add_hessian<M: CovariateModel>(
        &self,
        acc: &mut [f64],
        z: [&[f64]; 2],
        w: f64,
        theta: &[f64; 4],
        (ll, g, h): &RowDerivatives,
    ) {
        Self::add_gradient::<M>(acc, z, w, theta, *ll, g);
        let (_, h_r) = Self::reduced::<M>(theta, g, h);
        let c = self.len();
        let p = z[0].len();
        // (Customers mostly go 4 at a time through `add_hessian_x4`; this serves the few left
        // over at the end of a chunk, and groups.)
        let scale = |i: usize| match i {
            0..=3 => 1.0,
            _ if i < 4 + p => z[0][i - 4],
            _ => z[1][i - 4 - p],
        };
        let hessian = &mut acc[1 + c..1 + c + c * c];
        for i in 0..c {
            let (weighted, h_row) = (w * scale(i), &h_r[self.reduced[i]]);
            for j in i..c {
                hessian[i * c + j] += weighted * (scale(j) * h_row[self.reduced[j]]);
            }
        }
    }

    /// [`Columns::add_gradient`] for 4 customers at once (lane `l`: weight `w[l]`; parameters,
    /// log-likelihoods and gradients as structures of arrays; their covariates group `group` of
    /// the block last staged by [`Columns::stage_block`]), every step over the lanes so that it
    /// compiles to SIMD, into each lane's own [`Columns::gradient_lanes`], which
    /// [`Columns::flush`] adds to the accumulator. The same products as
    /// [`Columns::add_gradient`]; only the order of the sums differs (by lane, then the lanes),
    /// which depends on the chunk and never on the number of threads.
    #[inline(always)]
    pub(super) fn add_gradient_x4<M: CovariateModel>(
        &mut self,
        w: [f64; 4],
        theta: &[[f64; 4]; 4],
        value: &[f64; 4],
        g: &[[f64; 4]; 4],
        group: usize,
    ) {
        let c = self.len();
        if self.gradient_lanes.is_empty() {
            self.gradient_lanes = vec![[0.0; 4]; 1 + c];
        }
        let p = self.purchase_len;
        let sums = &mut self.gradient_lanes[..1 + c];
        for l in 0..4 {
            sums[0][l] += w[l] * value[l];
        }
        let mut g_log = [[0.0; 4]; 4];
        for (k, row) in g_log.iter_mut().enumerate() {
            for l in 0..4 {
                row[l] = w[l] * g[k][l] * theta[k][l];
            }
        }
        let mut g_process = [[0.0; 4]; 2];
        for &(k, process, sign) in M::LINKS {
            for l in 0..4 {
                g_process[process as usize][l] += sign * g_log[k][l];
            }
        }
        for (sum, v) in sums[1..5].iter_mut().zip(&g_log) {
            for l in 0..4 {
                sum[l] += v[l];
            }
        }
        let staged = &self.staged;
        for (j, sum) in sums[5..].iter_mut().enumerate() {
            let (z, factor) = (
                &staged[j * STAGED_GROUPS + group],
                &g_process[usize::from(j >= p)],
            );
            for l in 0..4 {
                sum[l] += factor[l] * z[l];
            }
        }
    }

    /// [`Columns::add_hessian`] for 4 customers at once (lane `l`: weight `w[l]`; parameters
    /// and derivatives as structures of arrays; their covariates are group `group` of the block
    /// last staged by [`Columns::stage_block`]). The log-likelihood and gradient (those of a
    /// gradient pass) are added by [`Columns::add_gradient_x4`]; the Hessian terms, every step over the lanes so that it compiles to SIMD, into each lane's own
    /// [`Columns::lane_sums`], which [`Columns::flush`] adds to the accumulator.
    #[inline(always)]
    pub(super) fn add_hessian_x4<M: CovariateModel>(
        &mut self,
        w: [f64; 4],
        theta: &[[f64; 4]; 4],
        (value, g, h): &LaneDerivatives,
        group: usize,
    ) {
        self.add_gradient_x4::<M>(w, theta, value, g, group);
        let c = self.len();
        if self.lane_sums.is_empty() {
            self.lane_sums = vec![[0.0; 4]; c * c];
        }
        let mul = |a: &[f64; 4], b: &[f64; 4]| -> [f64; 4] {
            let mut out = [0.0; 4];
            for l in 0..4 {
                out[l] = a[l] * b[l];
            }
            out
        };
        let add_to = |sum: &mut [f64; 4], v: &[f64; 4]| {
            for l in 0..4 {
                sum[l] += v[l];
            }
        };
        // In the logs of each lane's own parameters, then the reduced coordinates.
        let g_log: [[f64; 4]; 4] = std::array::from_fn(|m| mul(&g[m], &theta[m]));
        let mut h_log = [[[0.0; 4]; 4]; 4];
        for a in 0..4 {
            for b in 0..4 {
                h_log[a][b] = mul(&mul(&theta[a], &theta[b]), &h[a][b]);
                if a == b {
                    add_to(&mut h_log[a][b], &g_log[a]);
                }
            }
        }
        let mut g_r = [[0.0; 4]; 6];
        g_r[..4].copy_from_slice(&g_log);
        let mut right = [[[0.0; 4]; 6]; 4];
        for (row, h_row) in right.iter_mut().zip(&h_log) {
            row[..4].copy_from_slice(h_row);
        }
        for &(k, process, sign) in M::LINKS {
            let u = 4 + process as usize;
            for l in 0..4 {
                g_r[u][l] += sign * g_log[k][l];
            }
            for (row, h_row) in right.iter_mut().zip(&h_log) {
                for l in 0..4 {
                    row[u][l] += sign * h_row[k][l];
                }
            }
        }
        let mut h_r = [[[0.0; 4]; 6]; 6];
        h_r[..4].copy_from_slice(&right);
        for &(k, process, sign) in M::LINKS {
            let u = 4 + process as usize;
            for v in 0..6 {
                for l in 0..4 {
                    h_r[u][v][l] += sign * right[k][v][l];
                }
            }
        }
        // Row i of the column Hessian: (w s_i) (s_j Hr[r_i][r_j]) for j >= i, the scales s
        // of the covariate columns read from the staged block (1 for the shared columns,
        // where the products are then exact: the same bits as multiplying by 1).
        let (c, p) = (self.len(), self.purchase_len);
        let staged = &self.staged;
        let scale = |i: usize| staged[(i - 4) * STAGED_GROUPS + group];
        let sums = &mut self.lane_sums[..c * c];
        for i in 0..c {
            let (u, weighted) = if i < 4 {
                (i, w)
            } else {
                (self.reduced[i], mul(&w, &scale(i)))
            };
            let row = &mut sums[i * c..(i + 1) * c];
            for (j, sum) in row.iter_mut().enumerate().take(4).skip(i) {
                add_to(sum, &mul(&weighted, &h_r[u][j]));
            }
            // The purchase columns (reduced coordinate 4), then the dropout columns (5).
            for (v, columns) in [(4, 4..4 + p), (5, 4 + p..c)] {
                let h = &h_r[u][v];
                for j in columns.start.max(i)..columns.end {
                    add_to(&mut row[j], &mul(&weighted, &mul(&scale(j), h)));
                }
            }
        }
    }

    /// The block last staged by [`Columns::stage_block`].
    pub(super) fn staged(&self) -> &[[f64; 4]] {
        &self.staged
    }

    /// Stage the covariate values of the customers `rows` (`4 * groups` of them, `groups` at
    /// most [`STAGED_GROUPS`]) for [`super::point::Point::customers_x4`],
    /// [`Columns::add_gradient_x4`] and [`Columns::add_hessian_x4`], column by column: read
    /// there as one vector per column and 4 customers, instead of 4 scalars a column each time.
    pub(super) fn stage_block(&mut self, matrices: [RowMajor<'_>; 2], rows: &[usize]) {
        let c = self.len();
        let p = self.purchase_len;
        if self.staged.len() != (c - 4) * STAGED_GROUPS {
            self.staged = vec![[0.0; 4]; (c - 4) * STAGED_GROUPS];
        }
        let (purchase, dropout) = self.staged.split_at_mut(p * STAGED_GROUPS);
        let stage = |staged: &mut [[f64; 4]], matrix: RowMajor<'_>| {
            for (k, column) in staged.chunks_exact_mut(STAGED_GROUPS).enumerate() {
                for (slot, lanes) in column.iter_mut().zip(rows.chunks_exact(4)) {
                    for (value, &i) in slot.iter_mut().zip(lanes) {
                        *value = matrix.get(i, k);
                    }
                }
            }
        };
        stage(purchase, matrices[0]);
        if matrices[0].same(&matrices[1]) {
            // Both processes read one matrix (the same columns): staged once.
            dropout.copy_from_slice(purchase);
        } else {
            stage(dropout, matrices[1]);
        }
    }

    /// Add the lanes of [`Columns::add_gradient_x4`] and [`Columns::add_hessian_x4`] to `acc`
    /// (a gradient or a Hessian accumulator), in lane order (after the last customer of a
    /// chunk).
    pub(super) fn flush(&mut self, acc: &mut [f64]) {
        let add = |totals: &mut [f64], lanes: &mut [[f64; 4]]| {
            for (total, lanes) in totals.iter_mut().zip(lanes) {
                *total += (lanes[0] + lanes[1]) + (lanes[2] + lanes[3]);
                *lanes = [0.0; 4];
            }
        };
        let c = self.len();
        add(&mut acc[..1 + c], &mut self.gradient_lanes);
        if acc.len() > 1 + c {
            add(&mut acc[1 + c..1 + c + c * c], &mut self.lane_sums);
        }
    }

    /// The log-likelihood and its gradient in the natural scale of the shared parameters and
    /// the coefficients, from the sums of [`Columns::add_gradient`].
    pub(super) fn gradient(&self, params: &[f64], acc: &[f64]) -> (f64, Vec<f64>) {
        let mut gradient = vec![0.0; params.len()];
        for (&c, v) in self.coefficient.iter().zip(&acc[1..]) {
            gradient[c] += v;
        }
        for m in 0..4 {
            gradient[m] /= params[m];
        }
        (acc[0], gradient)
    }

    /// The log-likelihood, gradient and Hessian in the natural scale of the shared parameters
    /// and the coefficients from the sums of [`Columns::add_hessian`].
    pub(super) fn fused(&self, params: &[f64], acc: &[f64]) -> FusedPass {
        let (value, gradient) = self.gradient(params, &acc[..1 + self.len()]);
        (value, gradient, self.hessian(params, acc))
    }

    /// The Hessian in the natural scale of the shared parameters and the coefficients, from the
    /// sums of [`Columns::add_hessian`]: tied columns summed into their coefficient.
    pub(super) fn hessian(&self, params: &[f64], acc: &[f64]) -> Array2<f64> {
        let (c, k) = (self.len(), params.len());
        let (gradient, hessian) = acc[1..].split_at(c);
        let mut sums = vec![0.0; k + k * k];
        for i in 0..c {
            let ci = self.coefficient[i];
            sums[ci] += gradient[i];
            for j in i..c {
                let (cj, v) = (self.coefficient[j], hessian[i * c + j]);
                sums[k + ci * k + cj] += v;
                if i != j {
                    sums[k + cj * k + ci] += v;
                }
            }
        }
        natural_hessian(params, &sums)
    }
}

/// The Hessian in the natural scale of the shared parameters (and the coefficients) from the
/// gradient and Hessian sums in (log shared parameters, coefficients).
fn natural_hessian(params: &[f64], acc: &[f64]) -> Array2<f64> {
    let k = params.len();
    let (g_v, h_v) = acc.split_at(k);
    let scale = |m: usize| if m < 4 { params[m] } else { 1.0 };
    let mut hessian = Array2::zeros((k, k));
    for m in 0..k {
        for n in m..k {
            let mut v = h_v[m * k + n];
            if m == n && m < 4 {
                // d2/dtheta2 = (d2/dv2 - d/dv) / theta^2 for v = ln theta.
                v -= g_v[m];
            }
            v /= scale(m) * scale(n);
            hessian[[m, n]] = v;
            hessian[[n, m]] = v;
        }
    }
    hessian
}
