//! Time-invariant covariates in the purchase and dropout processes (Fader & Hardie 2007,
//! "Incorporating time-invariant covariates into the Pareto/NBD and BG/NBD models", with the
//! parameterisation of CLVTools):
//!
//! ```text
//! Pareto/NBD          alpha_i = alpha0 exp(-z_purchase,i . g_purchase)
//!                     beta_i  = beta0  exp(-z_dropout,i . g_dropout)
//! BG/NBD, MBG/NBD     alpha_i = alpha0 exp(-z_purchase,i . g_purchase)
//!                     a_i     = a0     exp( z_dropout,i . g_dropout)
//!                     b_i     = b0     exp( z_dropout,i . g_dropout)
//! ```
//!
//! so a positive purchase coefficient raises the purchase rate, and a positive Pareto/NBD
//! dropout coefficient raises the dropout rate. The shape parameters (r, s) are shared. Each
//! customer's likelihood is the base model's at that customer's parameters; its gradient and
//! Hessian in the shared parameters and the coefficients follow by the chain rule from the
//! base model's per-row derivatives ([`CovariateModel::row_derivatives`]), through the log of
//! each per-customer parameter, which is linear in (log of the shared parameter, coefficients).
//!
//! A covariate may act on both processes with one coefficient (an equality constraint): the
//! columns of both processes name their coefficient ([`Links`]), and columns that share one are
//! tied.

use std::borrow::Cow;

use super::bgnbd::LaneDerivatives;
use super::RfmModel;
use crate::data::{Rfm, RfmColumns, RfmNames};
use crate::error::{ClvError, Result};
use crate::fit::{fit, Domain, FitOptions, FitResult, FusedPass, Likelihood, ParamSpec};
use crate::parallel::Exec;
use crate::special::{RisingTable, RisingTerms};

/// The process a covariate acts on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Process {
    Purchase = 0,
    Dropout = 1,
}

/// A model whose per-customer parameters covariates can shift.
pub trait CovariateModel: RfmModel + Send {
    /// `(parameter index, process, sign)`: parameter `k` of customer `i` is
    /// `theta_k exp(sign * z_process,i . g_process)`. Never parameter 0 (`r`, the shape of the
    /// purchase rate), and one sign per process.
    const LINKS: &'static [(usize, Process, f64)];

    /// One customer's log-likelihood with its gradient and, when `SECOND`, its Hessian in the
    /// natural parameters (in [`RfmModel::specs`] order). `ln_params` are the parameters' logs
    /// and `shape` the terms of `r` at the customer's frequency `x` (no covariate shifts `r`, so
    /// a pass reads them from a [`RisingTable`]).
    fn row_derivatives<const SECOND: bool>(
        params: &[f64; 4],
        ln_params: &[f64; 4],
        shape: RisingTerms,
        x: f64,
        t_x: f64,
        age: f64,
    ) -> super::RowDerivatives;

    /// [`CovariateModel::row_derivatives`] for 4 customers at once, as structures of arrays
    /// (`params[m][l]`: parameter `m` of lane `l`; the derivatives likewise), for models with a
    /// form that compiles to SIMD; by default one call per customer.
    #[inline(always)]
    fn row_derivatives_x4<const SECOND: bool>(
        params: &[[f64; 4]; 4],
        ln_params: &[[f64; 4]; 4],
        shape: &[RisingTerms; 4],
        x: [f64; 4],
        t_x: [f64; 4],
        age: [f64; 4],
    ) -> LaneDerivatives {
        let mut out: LaneDerivatives = ([0.0; 4], [[0.0; 4]; 4], [[[0.0; 4]; 4]; 4]);
        for l in 0..4 {
            let (v, g, h) = Self::row_derivatives::<SECOND>(
                &lane(params, l),
                &lane(ln_params, l),
                shape[l],
                x[l],
                t_x[l],
                age[l],
            );
            out.0[l] = v;
            for m in 0..4 {
                out.1[m][l] = g[m];
                for n in 0..4 {
                    out.2[m][n][l] = h[m][n];
                }
            }
        }
        out
    }

    /// The summed log-likelihood of compressed rows that share `params`, with its gradient
    /// and, when `SECOND`, its Hessian: the base model's own likelihood pass (customers with
    /// identical covariates share their parameters).
    fn group_derivatives<const SECOND: bool>(
        params: &[f64; 4],
        data: &Rfm,
        exec: &Exec,
    ) -> super::RowDerivatives;
}

/// `(value, gradient, Hessian)` of a base likelihood as a [`super::RowDerivatives`].
fn base_derivatives<L: Likelihood, const SECOND: bool>(
    lik: &L,
    params: &[f64; 4],
    exec: &Exec,
) -> super::RowDerivatives {
    let fused = if SECOND {
        lik.loglik_gradient_hessian(params, exec)
    } else {
        None
    };
    let (value, gradient, second) = match fused {
        Some((value, gradient, hessian)) => (value, gradient, Some(hessian)),
        None => {
            let (value, gradient) = lik.loglik_and_gradient(params, exec);
            let hessian = if SECOND {
                lik.hessian(params, exec)
            } else {
                None
            };
            (value, gradient, hessian)
        }
    };
    let mut hessian = [[f64::NAN; 4]; 4];
    if let Some(h) = second {
        for (row, values) in hessian.iter_mut().zip(&h) {
            row.copy_from_slice(values);
        }
    }
    (value, std::array::from_fn(|k| gradient[k]), hessian)
}

/// Which coefficient each covariate column of each process uses (columns that share a
/// coefficient are tied across the processes), and the coefficients' names.
#[derive(Debug, Clone, Default)]
pub struct Links {
    /// Coefficient index of each purchase-process column.
    pub purchase: Vec<usize>,
    /// Coefficient index of each dropout-process column.
    pub dropout: Vec<usize>,
    /// Name of each coefficient, in order.
    pub names: Vec<String>,
}

impl Links {
    pub(crate) fn columns(&self, process: Process) -> &[usize] {
        match process {
            Process::Purchase => &self.purchase,
            Process::Dropout => &self.dropout,
        }
    }

    /// Number of coefficients.
    pub fn len(&self) -> usize {
        self.names.len()
    }

    /// Whether there are no coefficients.
    pub fn is_empty(&self) -> bool {
        self.names.is_empty()
    }

    pub(crate) fn check(&self) -> Result<()> {
        let n = self.names.len();
        let mut used = vec![false; n];
        for &c in self.purchase.iter().chain(&self.dropout) {
            if c >= n {
                return Err(ClvError::invalid_parameter(
                    "covariates",
                    format!("coefficient index {c} out of range (there are {n} coefficients)"),
                ));
            }
            used[c] = true;
        }
        if let Some(c) = used.iter().position(|u| !u) {
            return Err(ClvError::invalid_parameter(
                "covariates",
                format!(
                    "coefficient `{}` is used by no covariate column",
                    self.names[c]
                ),
            ));
        }
        Ok(())
    }
}

/// Refuse a non-finite value in a row-major covariate matrix with columns `column_names`,
/// naming its column and row.
pub(crate) fn check_finite(values: &[f64], column_names: &[String]) -> Result<()> {
    let p = column_names.len();
    if p > 0 {
        if let Some(at) = values.iter().position(|v| !v.is_finite()) {
            return Err(ClvError::invalid_data(
                &column_names[at % p],
                Some(at / p),
                Some(values[at]),
                "covariate values must be finite numbers (no NaN or missing values)",
            ));
        }
    }
    Ok(())
}

/// Customer summaries with covariates: the summary columns and, per process, a row-major
/// matrix of covariate values (one row per customer).
#[derive(Debug, Clone)]
pub struct CovariateRows<'a> {
    pub frequency: Cow<'a, [f64]>,
    pub recency: Cow<'a, [f64]>,
    pub age: Cow<'a, [f64]>,
    pub weights: Option<Cow<'a, [f64]>>,
    /// `len() x links.purchase.len()` values, row-major.
    pub purchase: Cow<'a, [f64]>,
    /// `len() x links.dropout.len()` values, row-major.
    pub dropout: Cow<'a, [f64]>,
}

impl<'a> CovariateRows<'a> {
    /// Borrow summary columns and covariate matrices.
    pub fn new(columns: &RfmColumns<'a>, purchase: &'a [f64], dropout: &'a [f64]) -> Self {
        CovariateRows {
            frequency: Cow::Borrowed(columns.frequency),
            recency: Cow::Borrowed(columns.recency),
            age: Cow::Borrowed(columns.age),
            weights: columns.weights.map(Cow::Borrowed),
            purchase: Cow::Borrowed(purchase),
            dropout: Cow::Borrowed(dropout),
        }
    }

    /// Number of customers.
    pub fn len(&self) -> usize {
        self.frequency.len()
    }

    /// Whether there are no customers.
    pub fn is_empty(&self) -> bool {
        self.frequency.is_empty()
    }

    /// The summary columns.
    pub fn columns(&self) -> RfmColumns<'_> {
        RfmColumns {
            frequency: &self.frequency,
            recency: &self.recency,
            age: &self.age,
            weights: self.weights.as_deref(),
        }
    }

    fn weight(&self, i: usize) -> f64 {
        self.weights.as_ref().map_or(1.0, |w| w[i])
    }

    /// Check the matrices' shapes and that every covariate value is finite (naming the
    /// covariate column and the first offending row); `names` name the columns of each process.
    pub fn validate(&self, links: &Links, names: [&[String]; 2]) -> Result<()> {
        links.check()?;
        for (process, values) in [
            (Process::Purchase, &self.purchase),
            (Process::Dropout, &self.dropout),
        ] {
            let p = links.columns(process).len();
            let column_names = names[process as usize];
            if column_names.len() != p {
                return Err(ClvError::invalid_parameter(
                    "covariates",
                    format!("{p} columns but {} names", column_names.len()),
                ));
            }
            if values.len() != self.len() * p {
                return Err(ClvError::invalid_data(
                    "covariates",
                    None,
                    None,
                    format!(
                        "expected {} x {p} covariate values, got {}",
                        self.len(),
                        values.len()
                    ),
                ));
            }
            check_finite(values, column_names)?;
        }
        Ok(())
    }

    /// Row `i` of the purchase and dropout matrices.
    #[inline]
    fn covariates(&self, links: &Links, i: usize) -> [&[f64]; 2] {
        let (p, q) = (links.purchase.len(), links.dropout.len());
        [
            &self.purchase[i * p..(i + 1) * p],
            &self.dropout[i * q..(i + 1) * q],
        ]
    }

    /// Every `stride`-th row (the warm-start subsample).
    fn subsample(&self, links: &Links, stride: usize) -> CovariateRows<'static> {
        let pick = |v: &[f64]| -> Cow<'static, [f64]> {
            Cow::Owned(v.iter().step_by(stride).copied().collect())
        };
        let pick_rows = |v: &[f64], p: usize| -> Cow<'static, [f64]> {
            if p == 0 {
                return Cow::Owned(Vec::new());
            }
            Cow::Owned(
                v.chunks_exact(p)
                    .step_by(stride)
                    .flatten()
                    .copied()
                    .collect(),
            )
        };
        CovariateRows {
            frequency: pick(&self.frequency),
            recency: pick(&self.recency),
            age: pick(&self.age),
            weights: self.weights.as_deref().map(pick),
            purchase: pick_rows(&self.purchase, links.purchase.len()),
            dropout: pick_rows(&self.dropout, links.dropout.len()),
        }
    }
}

/// Lane `l` of a structure of arrays (`values[m][l]` for parameter `m`).
#[inline(always)]
fn lane(values: &[[f64; 4]; 4], l: usize) -> [f64; 4] {
    [values[0][l], values[1][l], values[2][l], values[3][l]]
}

/// The sign with which each process's linear predictor enters the logs of the parameters it
/// shifts (every link of one process has the same sign: checked by a test).
#[inline]
fn process_signs<M: CovariateModel>() -> [f64; 2] {
    let mut signs = [1.0; 2];
    for &(_, process, sign) in M::LINKS {
        signs[process as usize] = sign;
    }
    signs
}

/// One point of the parameter space, prepared for a pass over the customers: the shared
/// parameters with their logs, and the coefficient of each covariate column of each process
/// (tied columns repeat theirs), so that a linear predictor is a plain dot product.
struct Point {
    theta: [f64; 4],
    ln_theta: [f64; 4],
    coefficients: [Vec<f64>; 2],
}

impl Point {
    fn new(links: &Links, params: &[f64]) -> Self {
        let theta = [params[0], params[1], params[2], params[3]];
        let gather = |columns: &[usize]| columns.iter().map(|&c| params[4 + c]).collect();
        Point {
            theta,
            ln_theta: theta.map(f64::ln),
            coefficients: [gather(&links.purchase), gather(&links.dropout)],
        }
    }

    /// The parameters of a customer with covariate rows `z` (purchase, dropout) and their
    /// logs: each shifted log is the shared one plus `sign z . g` of its process, so the logs
    /// come without a logarithm and one exponential per process serves all its parameters.
    #[inline]
    fn customer<M: CovariateModel>(&self, z: [&[f64]; 2]) -> ([f64; 4], [f64; 4]) {
        let signs = process_signs::<M>();
        let shift: [f64; 2] = std::array::from_fn(|process| {
            let dot: f64 = z[process]
                .iter()
                .zip(&self.coefficients[process])
                .map(|(v, g)| v * g)
                .sum();
            signs[process] * dot
        });
        let factor = shift.map(crate::fastmath::exp);
        let (mut theta, mut ln_theta) = (self.theta, self.ln_theta);
        for &(k, process, _) in M::LINKS {
            theta[k] *= factor[process as usize];
            ln_theta[k] += shift[process as usize];
        }
        (theta, ln_theta)
    }

    /// [`Point::customer`] of 4 customers (lanes) at once as structures of arrays
    /// (`[theta, ln_theta]`, each `[parameter][lane]`), the exponentials over arrays so that
    /// they compile to SIMD.
    #[inline(always)]
    fn customers_x4<M: CovariateModel>(&self, z: &[[&[f64]; 2]; 4]) -> [[[f64; 4]; 4]; 2] {
        let signs = process_signs::<M>();
        let mut shift = [[0.0; 4]; 2];
        for (process, lanes) in shift.iter_mut().enumerate() {
            for (l, value) in lanes.iter_mut().enumerate() {
                let dot: f64 = z[l][process]
                    .iter()
                    .zip(&self.coefficients[process])
                    .map(|(v, g)| v * g)
                    .sum();
                *value = signs[process] * dot;
            }
        }
        let mut factor = [[0.0; 4]; 2];
        for (factors, shifts) in factor.iter_mut().zip(&shift) {
            for (f, s) in factors.iter_mut().zip(shifts) {
                *f = crate::fastmath::exp(*s);
            }
        }
        // Structures of arrays: theta[m][l] is parameter m of lane l.
        let mut theta = self.theta.map(|v| [v; 4]);
        let mut ln_theta = self.ln_theta.map(|v| [v; 4]);
        for &(k, process, _) in M::LINKS {
            let process = process as usize;
            for l in 0..4 {
                theta[k][l] *= factor[process][l];
                ln_theta[k][l] += shift[process][l];
            }
        }
        [theta, ln_theta]
    }
}

/// The parameters of customer `i`: the shared ones (`params[..4]`) shifted by the
/// covariates with the coefficients `params[4..]`.
#[cfg(test)]
fn customer_params<M: CovariateModel>(
    rows: &CovariateRows<'_>,
    links: &Links,
    params: &[f64],
    i: usize,
) -> [f64; 4] {
    Point::new(links, params)
        .customer::<M>(rows.covariates(links, i))
        .0
}

/// Each customer's model, for predictions. Fails naming the row if a customer's parameters
/// leave their domain (the covariates push a parameter to 0 or infinity).
pub fn customer_models<M: CovariateModel>(
    rows: &CovariateRows<'_>,
    links: &Links,
    params: &[f64],
    exec: &Exec,
) -> Result<Vec<M>> {
    check_param_count::<M>(links, params)?;
    let point = Point::new(links, params);
    let indices: Vec<usize> = (0..rows.len()).collect();
    let models: Vec<Result<M>> = exec.map(&indices, |&i| {
        M::from_slice(&point.customer::<M>(rows.covariates(links, i)).0).map_err(|e| {
            ClvError::invalid_data(
                "covariates",
                Some(i),
                None,
                format!("give this customer parameters outside their domain ({e})"),
            )
        })
    });
    models.into_iter().collect()
}

fn check_param_count<M: CovariateModel>(links: &Links, params: &[f64]) -> Result<()> {
    let expected = M::specs().len() + links.len();
    if params.len() != expected {
        return Err(ClvError::invalid_parameter(
            "params",
            format!(
                "expected {expected} values ({} model parameters and {} coefficients), got {}",
                M::specs().len(),
                links.len(),
                params.len()
            ),
        ));
    }
    crate::fit::check_params(M::specs(), &params[..M::specs().len()])?;
    if let Some(c) = params[M::specs().len()..]
        .iter()
        .position(|v| !v.is_finite())
    {
        return Err(ClvError::invalid_parameter(
            &links.names[c],
            "coefficients must be finite numbers",
        ));
    }
    Ok(())
}

/// The likelihood of a covariate model over customer rows, for the fitting engine.
pub struct CovariateLikelihood<'r, 'a, M: CovariateModel> {
    rows: &'r CovariateRows<'a>,
    links: &'r Links,
    specs: Vec<ParamSpec>,
    /// Length of the per-frequency table of the terms of `r` ([`RisingTable`]).
    shape_len: usize,
    _model: std::marker::PhantomData<M>,
}

impl<'r, 'a, M: CovariateModel> CovariateLikelihood<'r, 'a, M> {
    pub fn new(rows: &'r CovariateRows<'a>, links: &'r Links) -> Self {
        CovariateLikelihood {
            rows,
            links,
            specs: coefficient_specs::<M>(links),
            shape_len: shape_table_len(&rows.frequency),
            _model: std::marker::PhantomData,
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
struct Columns {
    /// Reduced coordinate of each column coordinate (0..4 shared, 4 purchase, 5 dropout).
    reduced: Vec<usize>,
    /// Coefficient (0..4 shared, then 4 + coefficient index) of each column coordinate.
    coefficient: Vec<usize>,
    /// Sums of the customers added 4 at a time ([`Columns::add_hessian_x4`]), one lane each:
    /// `[entry][lane]` for the entries of the Hessian accumulator.
    lane_sums: Vec<[f64; 4]>,
    /// Scratch of [`Columns::add_hessian_x4`]: each column's scale (1, or the covariate value)
    /// in each lane.
    lane_scales: Vec<[f64; 4]>,
}

/// The gradient (6) and Hessian (6 x 6) in the reduced coordinates.
type Reduced = ([f64; 6], [[f64; 6]; 6]);

impl Columns {
    fn new(links: &Links) -> Self {
        let (p, q) = (links.purchase.len(), links.dropout.len());
        let mut reduced: Vec<usize> = (0..4).collect();
        reduced.extend(std::iter::repeat(4).take(p));
        reduced.extend(std::iter::repeat(5).take(q));
        let mut coefficient: Vec<usize> = (0..4).collect();
        coefficient.extend(links.purchase.iter().chain(&links.dropout).map(|c| 4 + c));
        Columns {
            lane_sums: Vec::new(),
            lane_scales: vec![[1.0; 4]; reduced.len()],
            reduced,
            coefficient,
        }
    }

    /// Number of column coordinates.
    fn len(&self) -> usize {
        self.reduced.len()
    }

    /// Width of the Hessian accumulator: the log-likelihood and the gradient (C) exactly as in
    /// a gradient pass ([`Columns::add_gradient`]), then the Hessian (C x C, upper triangle
    /// used).
    fn hessian_width(&self) -> usize {
        let c = self.len();
        1 + c + c * c
    }

    /// Add one customer's (or group's) weighted log-likelihood `ll` and gradient `g` (natural
    /// parameters `theta`) to `acc` = [value, gradient in the column coordinates].
    #[inline]
    #[allow(clippy::too_many_arguments)]
    fn add_gradient<M: CovariateModel>(
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
    fn add_hessian<M: CovariateModel>(
        &self,
        acc: &mut [f64],
        z: [&[f64]; 2],
        w: f64,
        theta: &[f64; 4],
        (ll, g, h): &super::RowDerivatives,
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

    /// [`Columns::add_hessian`] for 4 customers at once (lane `l`: covariate rows `z[l]`, weight
    /// `w[l]`; parameters and derivatives as structures of arrays). The log-likelihood and
    /// gradient of `first` (those of a gradient pass) are added lane by lane by
    /// [`Columns::add_gradient`]; the Hessian terms of `second`, every step over the lanes so
    /// that it compiles to SIMD, into each lane's own [`Columns::lane_sums`], which
    /// [`Columns::flush`] adds to the accumulator.
    #[inline(always)]
    #[allow(clippy::too_many_arguments)]
    fn add_hessian_x4<M: CovariateModel>(
        &mut self,
        acc: &mut [f64],
        z: &[[&[f64]; 2]; 4],
        w: [f64; 4],
        theta: &[[f64; 4]; 4],
        (value, g, h): &LaneDerivatives,
    ) {
        for l in 0..4 {
            let (value, gradient) = (value[l], lane(g, l));
            Self::add_gradient::<M>(acc, z[l], w[l], &lane(theta, l), value, &gradient);
        }
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
        // Column scales without and with the weight.
        let p = z[0][0].len();
        let scale = &mut self.lane_scales;
        for (i, s) in scale.iter_mut().enumerate().skip(4) {
            *s = if i < 4 + p {
                [0, 1, 2, 3].map(|l| z[l][0][i - 4])
            } else {
                [0, 1, 2, 3].map(|l| z[l][1][i - 4 - p])
            };
        }
        let (scale, sums) = (&self.lane_scales, &mut self.lane_sums);
        for i in 0..c {
            let u = self.reduced[i];
            let weighted = mul(&w, &scale[i]);
            for j in i..c {
                let term = mul(&weighted, &mul(&scale[j], &h_r[u][self.reduced[j]]));
                add_to(&mut sums[i * c + j], &term);
            }
        }
    }

    /// Add the lanes of [`Columns::add_hessian_x4`] to `acc`, in lane order (after the last
    /// customer of a chunk).
    fn flush(&mut self, acc: &mut [f64]) {
        let c = self.len();
        let hessian = &mut acc[1 + c..1 + c + c * c];
        for (total, lanes) in hessian.iter_mut().zip(&mut self.lane_sums) {
            *total += (lanes[0] + lanes[1]) + (lanes[2] + lanes[3]);
            *lanes = [0.0; 4];
        }
    }

    /// The log-likelihood and its gradient in the natural scale of the shared parameters and
    /// the coefficients, from the sums of [`Columns::add_gradient`].
    fn gradient(&self, params: &[f64], acc: &[f64]) -> (f64, Vec<f64>) {
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
    fn fused(&self, params: &[f64], acc: &[f64]) -> FusedPass {
        let (value, gradient) = self.gradient(params, &acc[..1 + self.len()]);
        (value, gradient, self.hessian(params, acc))
    }

    /// The Hessian in the natural scale of the shared parameters and the coefficients, from the
    /// sums of [`Columns::add_hessian`]: tied columns summed into their coefficient.
    fn hessian(&self, params: &[f64], acc: &[f64]) -> Vec<Vec<f64>> {
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
fn natural_hessian(params: &[f64], acc: &[f64]) -> Vec<Vec<f64>> {
    let k = params.len();
    let (g_v, h_v) = acc.split_at(k);
    let scale = |m: usize| if m < 4 { params[m] } else { 1.0 };
    let mut hessian = vec![vec![0.0; k]; k];
    for m in 0..k {
        for n in m..k {
            let mut v = h_v[m * k + n];
            if m == n && m < 4 {
                // d2/dtheta2 = (d2/dv2 - d/dv) / theta^2 for v = ln theta.
                v -= g_v[m];
            }
            v /= scale(m) * scale(n);
            hessian[m][n] = v;
            hessian[n][m] = v;
        }
    }
    hessian
}

/// What a pass over customer rows reads.
struct Pass<'p, 'a> {
    rows: &'p CovariateRows<'a>,
    links: &'p Links,
    point: &'p Point,
    shape: &'p RisingTable,
}

impl Pass<'_, '_> {
    /// Add the log-likelihood and column gradient (`!SECOND`, to `acc` as in
    /// [`Columns::add_gradient`]) or the fused log-likelihood, gradient and Hessian (`SECOND`,
    /// as in [`Columns::add_hessian`], through `columns`) of the customers in `range`, 4 at a
    /// time ([`CovariateModel::row_derivatives_x4`]), in customer order.
    #[inline(always)]
    fn run<M: CovariateModel, const SECOND: bool>(
        &self,
        range: std::ops::Range<usize>,
        acc: &mut [f64],
        columns: &mut Columns,
    ) {
        let (rows, links) = (self.rows, self.links);
        let mut i = range.start;
        while i + 4 <= range.end {
            let z = [0, 1, 2, 3].map(|l| rows.covariates(links, i + l));
            let mut x = [0.0; 4];
            x.copy_from_slice(&rows.frequency[i..i + 4]);
            let mut t_x = [0.0; 4];
            t_x.copy_from_slice(&rows.recency[i..i + 4]);
            let mut age = [0.0; 4];
            age.copy_from_slice(&rows.age[i..i + 4]);
            let [theta, ln_theta] = self.point.customers_x4::<M>(&z);
            let mut shape = [(0.0, 0.0, 0.0); 4];
            for (terms, &x) in shape.iter_mut().zip(&x) {
                *terms = self.shape.get::<SECOND>(x);
            }
            let rows_x4 = M::row_derivatives_x4::<SECOND>(&theta, &ln_theta, &shape, x, t_x, age);
            if SECOND {
                let w = [0, 1, 2, 3].map(|l| rows.weight(i + l));
                columns.add_hessian_x4::<M>(acc, &z, w, &theta, &rows_x4);
            } else {
                let (value, gradient, _) = rows_x4;
                for l in 0..4 {
                    let w = rows.weight(i + l);
                    let g = lane(&gradient, l);
                    Columns::add_gradient::<M>(acc, z[l], w, &lane(&theta, l), value[l], &g);
                }
            }
            i += 4;
        }
        for i in i..range.end {
            let z = rows.covariates(links, i);
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
        if SECOND {
            columns.flush(acc);
        }
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
            links,
            point: &point,
            shape: &shape,
        };
        let acc = exec.chunked_sum(rows.len(), 1 + columns.len(), |range, acc| {
            pass.run_dispatch::<M, false>(range, acc, &mut Columns::new(links));
        });
        columns.gradient(params, &acc)
    }

    fn hessian(&self, params: &[f64], exec: &Exec) -> Option<Vec<Vec<f64>>> {
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
            links,
            point: &point,
            shape: &shape,
        };
        let acc = exec.chunked_sum(rows.len(), columns.hessian_width(), |range, acc| {
            pass.run_dispatch::<M, true>(range, acc, &mut Columns::new(links));
        });
        Some(columns.fused(params, &acc))
    }
}

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
struct KeyHasher(u64);

type KeyHash = std::hash::BuildHasherDefault<KeyHasher>;

impl KeyHasher {
    #[inline]
    fn add(&mut self, word: u64) {
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
    /// One row of covariate values per group, as in [`CovariateRows`].
    purchase: Vec<f64>,
    dropout: Vec<f64>,
    data: Vec<Rfm>,
}

impl Groups {
    /// The groups of `rows`, or `None` when there are more than `max_groups`.
    pub fn new(
        rows: &CovariateRows<'_>,
        links: &Links,
        max_groups: usize,
        exec: &Exec,
    ) -> Option<Self> {
        // Rows keyed by the bit patterns of their covariate values, block by block in
        // parallel: each block's distinct vectors in the order they first appear, with a local
        // id per row. Merging the blocks in order gives every vector the id of its first
        // appearance in all rows, as one pass in order would.
        let blocks: Vec<std::ops::Range<usize>> = (0..rows.len())
            .step_by(KEY_BLOCK_ROWS)
            .map(|start| start..(start + KEY_BLOCK_ROWS).min(rows.len()))
            .collect();
        let key_of = |i: usize, key: &mut Vec<u64>| {
            key.clear();
            key.extend(row_bits(rows.covariates(links, i)));
        };
        let keyed: Vec<Option<(Vec<usize>, Vec<u32>)>> = exec.map(&blocks, |range| {
            // Each row's vector hashed without building a key; rows whose hashes match are
            // compared value by value with the first row of each candidate group.
            let mut index: std::collections::HashMap<u64, Vec<u32>, KeyHash> = Default::default();
            let mut first_rows: Vec<usize> = Vec::new();
            let mut local = Vec::with_capacity(range.len());
            for i in range.clone() {
                let row = rows.covariates(links, i);
                let candidates = index.entry(row_hash(row)).or_default();
                let found = candidates
                    .iter()
                    .copied()
                    .find(|&g| same_values(rows.covariates(links, first_rows[g as usize]), row));
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
                        let [zp, zd] = rows.covariates(links, i);
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
        Some(Groups {
            purchase,
            dropout,
            data,
        })
    }

    fn covariates(&self, links: &Links, g: usize) -> [&[f64]; 2] {
        let (p, q) = (links.purchase.len(), links.dropout.len());
        [
            &self.purchase[g * p..(g + 1) * p],
            &self.dropout[g * q..(g + 1) * q],
        ]
    }
}

/// The likelihood of a covariate model over [`Groups`]: per group, the base model's
/// likelihood pass at the group's parameters, combined by the same chain rule as per customer.
pub struct GroupedLikelihood<'r, M: CovariateModel> {
    groups: &'r Groups,
    links: &'r Links,
    specs: Vec<ParamSpec>,
    _model: std::marker::PhantomData<M>,
}

impl<'r, M: CovariateModel> GroupedLikelihood<'r, M> {
    pub fn new(groups: &'r Groups, links: &'r Links) -> Self {
        GroupedLikelihood {
            groups,
            links,
            specs: coefficient_specs::<M>(links),
            _model: std::marker::PhantomData,
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
            let z = self.groups.covariates(self.links, g);
            let (theta, _) = point.customer::<M>(z);
            let (ll, grad, _) = M::group_derivatives::<false>(&theta, data, exec);
            Columns::add_gradient::<M>(&mut acc, z, 1.0, &theta, ll, &grad);
        }
        columns.gradient(params, &acc)
    }

    fn hessian(&self, params: &[f64], exec: &Exec) -> Option<Vec<Vec<f64>>> {
        self.loglik_gradient_hessian(params, exec)
            .map(|(_, _, h)| h)
    }

    fn loglik_gradient_hessian(&self, params: &[f64], exec: &Exec) -> Option<FusedPass> {
        let columns = Columns::new(self.links);
        let point = Point::new(self.links, params);
        let mut acc = vec![0.0; columns.hessian_width()];
        for (g, data) in self.groups.data.iter().enumerate() {
            let z = self.groups.covariates(self.links, g);
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

fn coefficient_specs<M: CovariateModel>(links: &Links) -> Vec<ParamSpec> {
    let mut specs = M::specs().to_vec();
    specs.extend(links.names.iter().map(|_| ParamSpec {
        name: "coefficient",
        domain: Domain::Real,
    }));
    specs
}

fn default_start(links: &Links) -> Vec<Vec<f64>> {
    // Only used without a caller-given start; `fit_with_covariates` always gives one.
    let mut start = vec![1.0; 4];
    start.extend(std::iter::repeat(0.0).take(links.len()));
    vec![start]
}

/// The base model's estimate that starts the subsample fit comes from every this-many-th row of
/// the subsample: it only seeds the covariate fit, which moves away from it anyway.
const BASE_START_STRIDE: usize = 5;

/// Rows per block when [`Groups`] keys rows in parallel.
const KEY_BLOCK_ROWS: usize = 1 << 16;

/// Use [`Groups`] when customers average at least this many per distinct covariate vector.
const MIN_CUSTOMERS_PER_GROUP: usize = 20;

/// Fit a covariate model: the base model first (its estimate, with all coefficients 0, is the
/// start), then on large data a subsample from there, then all rows. The result names the
/// coefficients after [`Links::names`].
pub fn fit_with_covariates<M: CovariateModel>(
    rows: &CovariateRows<'_>,
    links: &Links,
    names: &RfmNames,
    opts: &FitOptions<'_>,
) -> Result<FitResult> {
    super::check_fittable(&rows.frequency, names)?;
    // The base model's estimate on some rows, with every coefficient at 0 (or the caller's
    // start).
    let start_on = |data: &CovariateRows<'_>, first_start_only: bool| -> Result<Vec<f64>> {
        if let Some(start) = &opts.start {
            return Ok(start.clone());
        }
        let base_opts = FitOptions {
            first_start_only,
            ..opts.clone()
        };
        let base = M::fit(&data.columns().compress_on(&opts.exec), &base_opts)?;
        let mut start = base.params;
        start.extend(std::iter::repeat(0.0).take(links.len()));
        Ok(start)
    };
    let mut result = None;
    if rows.len() > crate::fit::WARM_START_ROWS && !links.is_empty() {
        // A subsample first, started from the base model fitted to it; its optimum and
        // curvature start the fit of all rows (the base model is never fitted to all rows).
        let sample = rows.subsample(links, rows.len() / crate::fit::WARM_START_SAMPLE);
        // (One start suffices there: the fits that follow refine it.)
        let base_start = match start_on(&sample.subsample(links, BASE_START_STRIDE), true) {
            Err(ClvError::Interrupted) => return Err(ClvError::Interrupted),
            // (A base fit that fails on the subsample leaves the fit to all rows.)
            start => start.ok(),
        };
        if let Some(start) = base_start {
            let (first, grouped) = fit_rows::<M>(
                &sample,
                links,
                &FitOptions {
                    start: Some(start),
                    first_start_only: true,
                    newton: true,
                    curvature_at_start: true,
                    ..opts.clone()
                },
                true,
            )?;
            if first.converged {
                // (Starting from the curvature of all rows at the subsample's optimum instead,
                // one fused pass, saves no iteration: the optimum is too far for Newton's
                // quadratic convergence to set in at once.)
                let warm = FitOptions {
                    start: Some(first.params),
                    initial_inverse_hessian: first.inverse_hessian,
                    ..opts.clone()
                };
                // Covariate vectors that do not repeat in the subsample (continuous values) are
                // not grouped in all rows either: a choice of speed (a vector may still repeat
                // there, with thousands of distinct vectors), the estimates are the same.
                result =
                    Some(fit_rows::<M>(rows, links, &warm, grouped)?.0).filter(|r| r.converged);
            }
        }
    }
    // Never worse than starting from the base model fitted to all rows.
    let mut result = match result {
        Some(r) => r,
        None => {
            let start = start_on(rows, false)?;
            let from_base = FitOptions {
                start: Some(start),
                newton: true,
                curvature_at_start: true,
                ..opts.clone()
            };
            fit_rows::<M>(rows, links, &from_base, true)?.0
        }
    };
    result.names.truncate(M::specs().len());
    result.names.extend(links.names.iter().cloned());
    Ok(result)
}

/// One fit on all of `rows`: by groups of customers with identical covariates when they
/// repeat enough ([`Groups`]) and `try_groups`, else customer by customer. Also says whether it
/// went by groups.
fn fit_rows<M: CovariateModel>(
    rows: &CovariateRows<'_>,
    links: &Links,
    opts: &FitOptions<'_>,
    try_groups: bool,
) -> Result<(FitResult, bool)> {
    let max_groups = rows.len() / MIN_CUSTOMERS_PER_GROUP;
    let groups = if try_groups {
        Groups::new(rows, links, max_groups, &opts.exec)
    } else {
        None
    };
    match groups {
        Some(groups) => Ok((
            fit(&GroupedLikelihood::<M>::new(&groups, links), opts)?,
            true,
        )),
        None => Ok((
            fit(&CovariateLikelihood::<M>::new(rows, links), opts)?,
            false,
        )),
    }
}

impl CovariateModel for super::BgNbdParams {
    const LINKS: &'static [(usize, Process, f64)] = &[
        (1, Process::Purchase, -1.0),
        (2, Process::Dropout, 1.0),
        (3, Process::Dropout, 1.0),
    ];

    #[inline(always)]
    fn row_derivatives_x4<const SECOND: bool>(
        params: &[[f64; 4]; 4],
        ln_params: &[[f64; 4]; 4],
        shape: &[RisingTerms; 4],
        x: [f64; 4],
        t_x: [f64; 4],
        age: [f64; 4],
    ) -> LaneDerivatives {
        super::bgnbd::row_derivatives_x4::<SECOND>(false, params, ln_params, shape, x, t_x, age)
    }

    fn row_derivatives<const SECOND: bool>(
        params: &[f64; 4],
        ln_params: &[f64; 4],
        shape: RisingTerms,
        x: f64,
        t_x: f64,
        age: f64,
    ) -> super::RowDerivatives {
        let p = super::BgNbdParams::new(params[0], params[1], params[2], params[3]);
        super::bgnbd::row_derivatives::<SECOND>(&p, ln_params, shape, x, t_x, age)
    }

    fn group_derivatives<const SECOND: bool>(
        params: &[f64; 4],
        data: &Rfm,
        exec: &Exec,
    ) -> super::RowDerivatives {
        base_derivatives::<_, SECOND>(&super::BgNbd::new(data), params, exec)
    }
}

impl CovariateModel for super::MbgNbdParams {
    const LINKS: &'static [(usize, Process, f64)] = super::BgNbdParams::LINKS;

    #[inline(always)]
    fn row_derivatives_x4<const SECOND: bool>(
        params: &[[f64; 4]; 4],
        ln_params: &[[f64; 4]; 4],
        shape: &[RisingTerms; 4],
        x: [f64; 4],
        t_x: [f64; 4],
        age: [f64; 4],
    ) -> LaneDerivatives {
        super::bgnbd::row_derivatives_x4::<SECOND>(true, params, ln_params, shape, x, t_x, age)
    }

    fn row_derivatives<const SECOND: bool>(
        params: &[f64; 4],
        ln_params: &[f64; 4],
        shape: RisingTerms,
        x: f64,
        t_x: f64,
        age: f64,
    ) -> super::RowDerivatives {
        let p = super::MbgNbdParams::new(params[0], params[1], params[2], params[3]);
        super::bgnbd::row_derivatives::<SECOND>(&p.0, ln_params, shape, x, t_x, age)
    }

    fn group_derivatives<const SECOND: bool>(
        params: &[f64; 4],
        data: &Rfm,
        exec: &Exec,
    ) -> super::RowDerivatives {
        base_derivatives::<_, SECOND>(&super::BgNbd::modified(data), params, exec)
    }
}

impl CovariateModel for super::ParetoNbdParams {
    const LINKS: &'static [(usize, Process, f64)] =
        &[(1, Process::Purchase, -1.0), (3, Process::Dropout, -1.0)];

    fn row_derivatives<const SECOND: bool>(
        params: &[f64; 4],
        _ln_params: &[f64; 4],
        shape: RisingTerms,
        x: f64,
        t_x: f64,
        age: f64,
    ) -> super::RowDerivatives {
        super::pnbd::row_derivatives::<SECOND>(params, shape, x, t_x, age)
    }

    fn group_derivatives<const SECOND: bool>(
        params: &[f64; 4],
        data: &Rfm,
        exec: &Exec,
    ) -> super::RowDerivatives {
        base_derivatives::<_, SECOND>(&super::pnbd::ParetoNbd::new(data), params, exec)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::models::testing::rel;
    use crate::models::{BgNbdParams, MbgNbdParams, ParetoNbdParams};
    use crate::random::Rng;

    /// What [`Point::customer`] relies on: no link shifts `r` (whose terms a pass tabulates by
    /// frequency) and each process shifts its parameters with one sign.
    fn check_links<M: CovariateModel>() {
        let signs = process_signs::<M>();
        for &(k, process, sign) in M::LINKS {
            assert!(k != 0 && k < 4, "{}: link to parameter {k}", M::NAME);
            assert_eq!(sign, signs[process as usize], "{}", M::NAME);
            assert_eq!(sign.abs(), 1.0);
        }
    }

    #[test]
    fn links_leave_r_alone_with_one_sign_per_process() {
        check_links::<BgNbdParams>();
        check_links::<MbgNbdParams>();
        check_links::<ParetoNbdParams>();
    }

    /// Simulated summaries (x, t_x, T), covariate matrices (purchase, dropout) and links.
    type Simulated = (Vec<f64>, Vec<f64>, Vec<f64>, Vec<f64>, Vec<f64>, Links);

    /// `n` customers with two purchase covariates (a 0/1 flag and a standard normal) and one
    /// dropout covariate (the flag), histories drawn from `M` at `truth` (shared parameters,
    /// then the purchase coefficients, then the dropout coefficient).
    fn simulated<M: CovariateModel>(n: usize, truth: &[f64], seed: u64) -> Simulated {
        let links = Links {
            purchase: vec![0, 1],
            dropout: vec![2],
            names: vec!["flag".into(), "size".into(), "flag_dropout".into()],
        };
        let mut rng = Rng::for_stream(seed, u64::MAX);
        let mut purchase = Vec::with_capacity(2 * n);
        let mut dropout = Vec::with_capacity(n);
        let mut ages = Vec::with_capacity(n);
        for _ in 0..n {
            let flag = if rng.uniform() < 0.4 { 1.0 } else { 0.0 };
            let size = rng.normal();
            purchase.extend([flag, size]);
            dropout.push(flag);
            ages.push(20.0 + 30.0 * rng.uniform());
        }
        let (mut x, mut t_x) = (Vec::with_capacity(n), Vec::with_capacity(n));
        {
            let rows = CovariateRows {
                frequency: Cow::Owned(vec![0.0; n]),
                recency: Cow::Owned(vec![0.0; n]),
                age: Cow::Borrowed(&ages),
                weights: None,
                purchase: Cow::Borrowed(&purchase),
                dropout: Cow::Borrowed(&dropout),
            };
            for i in 0..n {
                let p = M::from_slice(&customer_params::<M>(&rows, &links, truth, i)).unwrap();
                let (xi, ti) = p.simulate(&[ages[i]], seed.wrapping_add(i as u64)).unwrap();
                x.push(xi[0]);
                t_x.push(ti[0]);
            }
        }
        (x, t_x, ages, purchase, dropout, links)
    }

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
        let rows = CovariateRows::new(&columns, purchase, dropout);
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
                let scale = numeric.abs().max(hessian[i][j].abs()).max(1.0);
                assert!(
                    (hessian[i][j] - numeric).abs() <= 1e-5 * scale,
                    "{}: H[{i}][{j}] analytic {} vs numeric {numeric}",
                    M::NAME,
                    hessian[i][j]
                );
            }
        }
    }

    /// The gradient pass runs customers 4 at a time through `row_gradients_x4`: the same bits
    /// as summing `row_derivatives` customer by customer, including frequencies past the
    /// products' limit (x > 16), customers without a repeat purchase in the same lanes, and a
    /// tail of fewer than 4 customers.
    fn check_lanes_match_rows<M: CovariateModel>(truth: &[f64]) {
        let (mut x, t_x, age, purchase, dropout, links) = simulated::<M>(403, truth, 11);
        for i in (0..x.len()).step_by(37) {
            x[i] = 20.0 + i as f64 % 5.0;
        }
        let columns = RfmColumns::new(&x, &t_x, &age);
        let rows = CovariateRows::new(&columns, &purchase, &dropout);
        let lik = CovariateLikelihood::<M>::new(&rows, &links);
        let mut point = truth.to_vec();
        point[4] += 0.1;
        let (value, gradient) = lik.loglik_and_gradient(&point, &Exec::Serial);
        let columns = Columns::new(&links);
        let model_point = Point::new(&links, &point);
        let shape = RisingTable::new(point[0], shape_table_len(&x));
        let mut acc = vec![0.0; 1 + columns.len()];
        for i in 0..rows.len() {
            let z = rows.covariates(&links, i);
            let (theta, ln_theta) = model_point.customer::<M>(z);
            let (ll, g, _) = M::row_derivatives::<false>(
                &theta,
                &ln_theta,
                shape.get::<false>(x[i]),
                x[i],
                t_x[i],
                age[i],
            );
            Columns::add_gradient::<M>(&mut acc, z, 1.0, &theta, ll, &g);
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
        let fused = lik.loglik_gradient_hessian(&point, &Exec::Serial).unwrap();
        let mut columns = Columns::new(&links);
        let mut acc = vec![0.0; columns.hessian_width()];
        for i in 0..rows.len() {
            let z = rows.covariates(&links, i);
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
        for (a, b) in fused.2.iter().zip(&want.2) {
            assert!(close(a, b), "{}: {a:?} vs {b:?}", M::NAME);
        }
    }

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
        let rows = CovariateRows::new(&columns, &purchase, &dropout);
        let links = Links {
            purchase: vec![0],
            dropout: vec![1],
            names: vec!["p".into(), "d".into()],
        };
        let exec = Exec::with_jobs(Some(2)).unwrap();
        let groups = Groups::new(&rows, &links, 1000, &exec).unwrap();
        let mut first: Vec<f64> = Vec::new();
        for &v in &purchase {
            if !first.contains(&v) {
                first.push(v);
            }
        }
        assert_eq!(groups.purchase, first);
        for (g, &v) in first.iter().enumerate() {
            let count = purchase.iter().filter(|&&p| p == v).count() as f64;
            assert_eq!(groups.data[g].total_weight(), count, "group {g}");
            assert_eq!(groups.dropout[g], v * 2.0);
        }
        // Too many groups, only visible once the blocks are merged.
        assert!(Groups::new(&rows, &links, first.len() - 1, &exec).is_none());
        assert!(Groups::new(&rows, &links, first.len(), &Exec::Serial).is_some());
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

    /// With every coefficient at 0 the likelihood is the base model's: same value and the same
    /// gradient in the shared parameters, and 0 coefficients mean the base model's predictions.
    fn check_zero_coefficients<M: CovariateModel>(base: &[f64]) {
        let data = crate::models::testing::cdnow();
        let columns = data.columns();
        let n = data.len();
        let size: Vec<f64> = (0..n).map(|i| (i % 7) as f64 - 3.0).collect();
        let links = Links {
            purchase: vec![0],
            dropout: vec![1],
            names: vec!["size".into(), "size_dropout".into()],
        };
        let rows = CovariateRows::new(&columns, &size, &size);
        let lik = CovariateLikelihood::<M>::new(&rows, &links);
        let mut params = base.to_vec();
        params.extend([0.0, 0.0]);
        let exec = Exec::Serial;
        let (ll, gradient) = lik.loglik_and_gradient(&params, &exec);
        let expected: f64 = (0..n)
            .map(|i| {
                let m = M::from_slice(base).unwrap();
                data.weight(i) * m.log_likelihood(data.frequency[i], data.recency[i], data.age[i])
            })
            .sum();
        assert!(rel(ll, expected) < 1e-12, "{}: {ll} vs {expected}", M::NAME);
        let fitted = M::fit(&data, &FitOptions::default()).unwrap();
        let mut at_optimum = fitted.params.clone();
        at_optimum.extend([0.0, 0.0]);
        let (ll_opt, g_opt) = lik.loglik_and_gradient(&at_optimum, &exec);
        assert!(rel(ll_opt, fitted.log_likelihood) < 1e-12);
        for (k, g) in g_opt[..4].iter().enumerate() {
            // The base optimum is stationary in the shared parameters.
            assert!(
                (g * at_optimum[k]).abs() < 1e-3,
                "{}: {k}: {g} {gradient:?}",
                M::NAME
            );
        }
        let models = customer_models::<M>(&rows, &links, &at_optimum, &exec).unwrap();
        let base_model = M::from_slice(&fitted.params).unwrap();
        for i in [0, 5, 100, 1000] {
            let (x, t_x, age) = (data.frequency[i], data.recency[i], data.age[i]);
            assert_eq!(
                models[i].probability_alive(x, t_x, age),
                base_model.probability_alive(x, t_x, age)
            );
        }
    }

    #[test]
    fn zero_coefficients_give_the_base_model() {
        check_zero_coefficients::<BgNbdParams>(&[0.243, 4.414, 0.793, 2.426]);
        check_zero_coefficients::<MbgNbdParams>(&[0.525, 6.183, 0.891, 1.614]);
        check_zero_coefficients::<ParetoNbdParams>(&[0.553, 10.58, 0.606, 11.67]);
    }

    fn check_recovery<M: CovariateModel>(truth: &[f64]) {
        let (x, t_x, age, purchase, dropout, links) = simulated::<M>(5_000, truth, 11);
        let columns = RfmColumns::new(&x, &t_x, &age);
        let rows = CovariateRows::new(&columns, &purchase, &dropout);
        let names = [links.names[..2].to_vec(), links.names[2..].to_vec()];
        rows.validate(&links, [&names[0], &names[1]]).unwrap();
        let res =
            fit_with_covariates::<M>(&rows, &links, &RfmNames::default(), &FitOptions::default())
                .unwrap();
        assert!(res.converged, "{}: {}", M::NAME, res.termination);
        assert_eq!(res.names[4..], links.names[..]);
        let se = res.standard_errors().unwrap();
        for k in 0..truth.len() {
            let z = (res.params[k] - truth[k]) / se[k];
            assert!(
                z.abs() < 4.5,
                "{}: {} = {} (se {}) vs truth {}",
                M::NAME,
                res.names[k],
                res.params[k],
                se[k],
                truth[k]
            );
        }
    }

    #[test]
    fn fits_recover_simulated_coefficients() {
        check_recovery::<BgNbdParams>(&[0.8, 4.0, 0.7, 2.5, 0.5, -0.3, 0.4]);
        check_recovery::<ParetoNbdParams>(&[0.8, 4.0, 0.6, 10.0, 0.5, -0.3, 0.4]);
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
        let rows = CovariateRows::new(&columns, &purchase, &dropout);
        let exec = Exec::Serial;
        let groups = Groups::new(&rows, &links, 100, &exec).unwrap();
        assert_eq!(groups.data.len(), 4);
        assert!(Groups::new(&rows, &links, 3, &exec).is_none());
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
                let scale = h_r[i][j]
                    .abs()
                    .max(h_r[i][i].abs().sqrt() * h_r[j][j].abs().sqrt())
                    .max(1.0);
                assert!(
                    (h_g[i][j] - h_r[i][j]).abs() < 1e-6 * scale,
                    "{}: H[{i}][{j}] {} vs {}",
                    M::NAME,
                    h_g[i][j],
                    h_r[i][j]
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

    #[test]
    fn tied_coefficients_and_bad_values_are_handled() {
        let links = Links {
            purchase: vec![0],
            dropout: vec![0],
            names: vec!["flag".into()],
        };
        let (x, t_x, age) = (vec![1.0, 0.0], vec![2.0, 0.0], vec![5.0, 5.0]);
        let columns = RfmColumns::new(&x, &t_x, &age);
        let z = [1.0, f64::NAN];
        let rows = CovariateRows::new(&columns, &z, &z);
        let names = vec!["flag".to_string()];
        let err = rows.validate(&links, [&names, &names]).unwrap_err();
        assert!(err.to_string().contains("flag"), "{err}");
        let unused = Links {
            purchase: vec![0],
            dropout: vec![],
            names: vec!["a".into(), "b".into()],
        };
        assert!(unused.check().is_err());
    }
}
