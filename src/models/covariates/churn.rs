//! Time-invariant covariates in the contractual churn models, sBG and BdW
//! ([`crate::models::bdw`]), from per-customer records.
//!
//! A customer's churn probability is `theta ~ Beta(alpha, beta)` (with discrete-Weibull
//! duration dependence `c` for BdW). Covariates act on `alpha` through an exponential link,
//!
//! ```text
//! alpha_i = alpha0 exp(z_i . g)
//! ```
//!
//! so `exp(z_i . g)` multiplies the odds `alpha_i / beta` of the customer's mean churn
//! probability `alpha_i / (alpha_i + beta)` (a positive coefficient: more churn), the form
//! Fader & Hardie (2007, "Incorporating time-invariant covariates into the Pareto/NBD and BG/NBD
//! models") give one parameter of a heterogeneity distribution; `beta` (and `c`) stay shared.
//!
//! Covariates belong to customers, so these fits need one record per customer (periods
//! observed, churned or not, optional weight, and that customer's covariates): a cohort's
//! survivor counts carry no covariates. The likelihood is the base model's per record at the
//! customer's `alpha_i` (sBG rows in closed form, BdW rows from a per-pass table of the `beta`
//! terms and the customer's own ln-gamma, digamma and trigamma values, the rest over [`Dual`]
//! numbers in `alpha_i, beta, c`), with the gradient in the coefficients by the chain rule
//! through `ln alpha_i` and an analytic Hessian, whose value at the estimate gives the standard
//! errors.

use ndarray::{Array2, ArrayView2, CowArray, Ix2};

use super::check_finite;
use super::rows::{standard_layout, RowMajor};
use crate::dual::Dual;
use crate::error::{ClvError, Result};
use crate::fit::{
    fit, fit_in_stages, Domain, FitOptions, FitResult, FusedPass, Likelihood, ParamSpec, Staging,
};
use crate::models::bdw::{check_customers, ln_survival, Bdw, BdwParams, ChurnData, PARAMS};
use crate::parallel::Exec;
use crate::special::{
    digamma, digamma_diff, ln_gamma_diff, ln_gamma_digamma_trigamma_lanes, trigamma,
};

/// Distinct covariate vectors beyond which records are not merged: with continuous
/// covariates nearly every customer has their own vector, found out after reading this many
/// rows (so trying costs little), and merging could save nothing.
pub const MAX_MERGED_VECTORS: usize = 4096;

/// Churn records with covariates, the rows the likelihood reads. With few distinct covariate
/// vectors (categorical covariates, dummies) these are the distinct (periods, churned,
/// covariates) records of the customers with weight > 0, with their summed weights, in a
/// canonical order; otherwise (continuous covariates) one row per customer with weight > 0, in
/// the caller's order.
#[derive(Debug, Clone)]
pub struct ChurnCovariateRows<'a> {
    pub periods: Vec<f64>,
    pub churned: Vec<bool>,
    pub weights: Vec<f64>,
    /// `len() x columns`, standard layout.
    pub covariates: CowArray<'a, f64, Ix2>,
    /// Whether the rows are merged records (else one row per customer).
    merged: bool,
}

impl<'a> ChurnCovariateRows<'a> {
    /// Validate the records (the rules of [`check_customers`], one pass that builds nothing:
    /// the base model's start comes from the rows the fit's first stage reads, see
    /// [`fit_churn_covariates`]) and the covariate
    /// matrix (`periods.len() x names.len()`, finite values), then merge identical records
    /// when there are at most [`MAX_MERGED_VECTORS`] distinct covariate vectors.
    ///
    /// Records repeat when the covariates are categorical (a few dozen distinct vectors times
    /// the few distinct (periods, churned) pairs); merging them makes such a fit as cheap as
    /// the base model's. The vectors are found by hashing their bit patterns (no sort of the
    /// customers); continuous covariates stop the search after [`MAX_MERGED_VECTORS`] rows.
    pub fn new(
        periods: &[f64],
        churned: &[f64],
        weights: Option<&[f64]>,
        covariates: ArrayView2<'a, f64>,
        covariate_names: &[String],
    ) -> Result<Self> {
        Self::with_max_vectors(
            periods,
            churned,
            weights,
            covariates,
            covariate_names,
            MAX_MERGED_VECTORS,
        )
    }

    /// [`Self::new`] merging records only when there are at most `max_vectors` distinct
    /// covariate vectors (0: never).
    pub fn with_max_vectors(
        periods: &[f64],
        churned: &[f64],
        weights: Option<&[f64]>,
        covariates: ArrayView2<'a, f64>,
        covariate_names: &[String],
        max_vectors: usize,
    ) -> Result<Self> {
        check_customers(periods, churned, weights)?;
        let n = periods.len();
        if covariates.dim() != (n, covariate_names.len()) {
            return Err(ClvError::invalid_data(
                "covariates",
                None,
                None,
                format!(
                    "expected {n} x {} covariate values, got {} x {}",
                    covariate_names.len(),
                    covariates.nrows(),
                    covariates.ncols()
                ),
            ));
        }
        check_finite(covariates, covariate_names)?;
        let matrix = standard_layout(covariates);
        let weight = |i: usize| weights.map_or(1.0, |w| w[i]);
        let kept: Vec<usize> = (0..n).filter(|&i| weight(i) > 0.0).collect();
        let columns = matrix.ncols();
        let merged = {
            let rows = RowMajor::new(&matrix);
            merge_records(periods, churned, &weight, rows, &kept, max_vectors)
        };
        let mut out = ChurnCovariateRows {
            periods: Vec::new(),
            churned: Vec::new(),
            weights: Vec::new(),
            covariates: CowArray::from(ndarray::Array2::zeros((0, columns))),
            merged: merged.is_some(),
        };
        match merged {
            Some(records) => {
                let rows = RowMajor::new(&matrix);
                let mut values = Vec::with_capacity(records.len() * columns);
                for (i, w) in records {
                    out.periods.push(periods[i]);
                    out.churned.push(churned[i] == 1.0);
                    out.weights.push(w);
                    values.extend_from_slice(rows.row(i));
                }
                out.covariates = CowArray::from(
                    ndarray::Array2::from_shape_vec((out.periods.len(), columns), values)
                        .expect("whole rows"),
                );
            }
            None => {
                out.periods = kept.iter().map(|&i| periods[i]).collect();
                out.churned = kept.iter().map(|&i| churned[i] == 1.0).collect();
                out.weights = kept.iter().map(|&i| weight(i)).collect();
                out.covariates = if kept.len() == n {
                    matrix
                } else {
                    let rows = RowMajor::new(&matrix);
                    let mut values = Vec::with_capacity(kept.len() * columns);
                    for &i in &kept {
                        values.extend_from_slice(rows.row(i));
                    }
                    CowArray::from(
                        ndarray::Array2::from_shape_vec((kept.len(), columns), values)
                            .expect("whole rows"),
                    )
                };
            }
        }
        Ok(out)
    }

    /// Number of rows (distinct records when merged, else customers with weight > 0).
    pub fn len(&self) -> usize {
        self.periods.len()
    }

    /// Whether there is no record.
    pub fn is_empty(&self) -> bool {
        self.periods.is_empty()
    }

    /// Number of covariate columns (coefficients).
    pub fn n_covariates(&self) -> usize {
        self.covariates.ncols()
    }

    /// Every `stride`-th row's record without covariates, merged: the base model's data.
    fn base_data(&self, stride: usize) -> ChurnData {
        ChurnData::from_checked_records(
            self.periods.iter().step_by(stride).copied().collect(),
            self.churned.iter().step_by(stride).copied().collect(),
            self.weights.iter().step_by(stride).copied().collect(),
        )
    }

    /// Every `stride`-th row (the warm-start subsample).
    fn subsample(&self, stride: usize) -> ChurnCovariateRows<'a> {
        let pick = |v: &[f64]| v.iter().step_by(stride).copied().collect();
        let rows = self.covariates.slice(ndarray::s![..;stride as isize, ..]);
        ChurnCovariateRows {
            periods: pick(&self.periods),
            churned: self.churned.iter().step_by(stride).copied().collect(),
            weights: pick(&self.weights),
            covariates: CowArray::from(rows.as_standard_layout().into_owned()),
            merged: self.merged,
        }
    }
}

/// The distinct (periods, churned, covariates) records among the rows `kept` (each as its first
/// row and its summed weight), in the canonical order (periods, churned, then the covariate
/// values), or `None` when the rows hold more than `max_vectors` distinct covariate vectors
/// (or a period count too large to key, never met in practice).
fn merge_records(
    periods: &[f64],
    churned: &[f64],
    weight: &impl Fn(usize) -> f64,
    rows: RowMajor<'_>,
    kept: &[usize],
    max_vectors: usize,
) -> Option<Vec<(usize, f64)>> {
    use super::groups::{KeyHash, KeyHasher};
    use std::collections::HashMap;
    use std::hash::Hasher;
    // The record key below has 22 bits for the vector id.
    let max_vectors = max_vectors.min(1 << 22);
    let bits = |i: usize| rows.row(i).iter().map(|v| (v + 0.0).to_bits());
    // Covariate vectors by the hash of their bit patterns (-0.0 as 0.0); rows whose hashes
    // match are compared value by value with each candidate vector's first row.
    let mut vectors: HashMap<u64, Vec<u32>, KeyHash> = HashMap::default();
    let mut first_rows: Vec<usize> = Vec::new();
    // Records keyed by (period count, churned, vector id) packed in one word.
    let mut records: HashMap<u64, usize, KeyHash> = HashMap::default();
    let mut merged: Vec<(usize, f64)> = Vec::new();
    const MAX_PERIODS: f64 = (1u64 << 40) as f64;
    for &i in kept {
        let mut hasher = KeyHasher::default();
        for word in bits(i) {
            hasher.add(word);
        }
        let candidates = vectors.entry(hasher.finish()).or_default();
        let id = match candidates
            .iter()
            .copied()
            .find(|&v| bits(first_rows[v as usize]).eq(bits(i)))
        {
            Some(v) => v,
            None => {
                if first_rows.len() >= max_vectors {
                    return None;
                }
                candidates.push(first_rows.len() as u32);
                first_rows.push(i);
                (first_rows.len() - 1) as u32
            }
        };
        let t = periods[i];
        if t >= MAX_PERIODS {
            return None;
        }
        let key = ((t as u64) << 23) | (u64::from(churned[i] == 1.0) << 22) | u64::from(id);
        let slot = records.entry(key).or_insert_with(|| {
            merged.push((i, 0.0));
            merged.len() - 1
        });
        merged[*slot].1 += weight(i);
    }
    let order = |&(i, _): &(usize, f64), &(j, _): &(usize, f64)| {
        periods[i]
            .total_cmp(&periods[j])
            .then(churned[i].total_cmp(&churned[j]))
            .then_with(|| {
                rows.row(i)
                    .iter()
                    .zip(rows.row(j))
                    .map(|(a, b)| a.total_cmp(b))
                    .find(|o| o.is_ne())
                    .unwrap_or(std::cmp::Ordering::Equal)
            })
    };
    merged.sort_unstable_by(order);
    Some(merged)
}

/// `alpha0 exp(z . g)`.
#[inline]
pub fn customer_alpha(alpha: f64, z: &[f64], coefficients: &[f64]) -> f64 {
    let dot: f64 = z.iter().zip(coefficients).map(|(v, g)| v * g).sum();
    alpha * dot.exp()
}

/// The number of model parameters of `model` (`sbg`: alpha, beta; `bdw`: alpha, beta, c).
pub fn model_parameters(model: &str) -> Result<usize> {
    match model {
        "sbg" => Ok(2),
        "bdw" => Ok(3),
        other => Err(ClvError::invalid_parameter(
            "model",
            format!("unknown model `{other}`"),
        )),
    }
}

/// Each customer's parameters at `params` (model parameters, then coefficients) for covariate
/// rows `covariates`, for predictions. Fails naming the row when a customer's `alpha_i` leaves
/// `(0, inf)`.
pub fn customer_params(
    model: &str,
    params: &[f64],
    covariates: ArrayView2<'_, f64>,
    covariate_names: &[String],
) -> Result<Vec<BdwParams>> {
    let k = model_parameters(model)?;
    if params.len() != k + covariates.ncols() || covariate_names.len() != covariates.ncols() {
        return Err(ClvError::invalid_parameter(
            "params",
            format!(
                "expected {} values ({k} model parameters and {} coefficients), got {}",
                k + covariates.ncols(),
                covariates.ncols(),
                params.len()
            ),
        ));
    }
    crate::fit::check_params(&PARAMS[..k], &params[..k])?;
    check_finite(covariates, covariate_names)?;
    let c = if k == 3 { params[2] } else { 1.0 };
    let matrix = standard_layout(covariates);
    let rows = RowMajor::new(&matrix);
    (0..matrix.nrows())
        .map(|i| {
            let a = customer_alpha(params[0], rows.row(i), &params[k..]);
            if !(a > 0.0 && a.is_finite()) {
                return Err(ClvError::invalid_data(
                    "covariates",
                    Some(i),
                    None,
                    format!("give this customer alpha = {a}, outside (0, inf)"),
                ));
            }
            Ok(BdwParams::new(a, params[1], c))
        })
        .collect()
}

/// The sBG (`c` held at 1) or BdW likelihood with covariates on `alpha`, record by record.
/// Parameters: `alpha0, beta, (c)`, then one coefficient per covariate column.
pub struct ChurnCovariates<'r, 'a> {
    rows: &'r ChurnCovariateRows<'a>,
    free_c: bool,
    specs: Vec<ParamSpec>,
}

impl<'r, 'a> ChurnCovariates<'r, 'a> {
    /// `free_c`: BdW (estimate `c`); else sBG.
    pub fn new(rows: &'r ChurnCovariateRows<'a>, free_c: bool) -> Self {
        let k = if free_c { 3 } else { 2 };
        let mut specs = PARAMS[..k].to_vec();
        specs.extend((0..rows.n_covariates()).map(|_| ParamSpec {
            name: "coefficient",
            domain: Domain::Real,
        }));
        ChurnCovariates {
            rows,
            free_c,
            specs,
        }
    }

    fn model_parameters(&self) -> usize {
        if self.free_c {
            3
        } else {
            2
        }
    }
}

/// Longest history (in periods) the sBG rows take in closed form (a product of at most this
/// many factors `alpha_i + beta + j`, kept far from overflow by [`FAST_SBG_MAX_SUM`]).
const FAST_SBG_MAX_PERIODS: usize = 64;
/// Largest `alpha_i + beta` of the closed-form sBG rows: `(1e4 + 64)^64 < 1e257`.
const FAST_SBG_MAX_SUM: f64 = 1e4;
/// Smallest `alpha_i + beta` of the closed-form sBG rows (the product starts with it).
const FAST_SBG_MIN_SUM: f64 = 1e-250;

/// A record's log-likelihood with its derivatives in the row parameters
/// `(ln alpha_i, beta, c)`: value, gradient, and (in the fused pass) the upper triangle of the
/// Hessian `[ll, lb, lc, bb, bc, cc]`. The `c` entries are 0 for sBG.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
struct RowTerms {
    v: f64,
    g: [f64; 3],
    h: [f64; 6],
}

impl RowTerms {
    /// A row's terms in `(ln alpha_i, beta, c)` from its value, gradient and (with `hessian`)
    /// Hessian in `(alpha_i, beta, c)`: d/d ln alpha = alpha d/d alpha, d2/d ln alpha2 =
    /// alpha^2 d2 + alpha d.
    #[inline(always)]
    fn to_ln_alpha(alpha: f64, v: f64, g: [f64; 3], hessian: Option<[f64; 6]>) -> RowTerms {
        RowTerms {
            v,
            g: [g[0] * alpha, g[1], g[2]],
            h: hessian.map_or([0.0; 6], |h| {
                [
                    alpha * (alpha * h[0] + g[0]),
                    alpha * h[1],
                    alpha * h[2],
                    h[3],
                    h[4],
                    h[5],
                ]
            }),
        }
    }
}

/// Per pass: the sums over `j < m` of `ln(beta + j)`, `1/(beta + j)` and `1/(beta + j)^2`, for
/// `m = 0..=FAST_SBG_MAX_PERIODS` (the part of a closed-form sBG row shared by all customers).
struct BetaSums {
    ln: [f64; FAST_SBG_MAX_PERIODS + 1],
    inv: [f64; FAST_SBG_MAX_PERIODS + 1],
    inv2: [f64; FAST_SBG_MAX_PERIODS + 1],
}

impl BetaSums {
    fn new(beta: f64) -> Self {
        let mut sums = BetaSums {
            ln: [0.0; FAST_SBG_MAX_PERIODS + 1],
            inv: [0.0; FAST_SBG_MAX_PERIODS + 1],
            inv2: [0.0; FAST_SBG_MAX_PERIODS + 1],
        };
        for m in 0..FAST_SBG_MAX_PERIODS {
            let x = beta + m as f64;
            let inv = 1.0 / x;
            sums.ln[m + 1] = sums.ln[m] + x.ln();
            sums.inv[m + 1] = sums.inv[m] + inv;
            sums.inv2[m + 1] = sums.inv2[m] + inv * inv;
        }
        sums
    }
}

/// An sBG record in closed form (`t` whole, at most [`FAST_SBG_MAX_PERIODS`]): with
/// `s = alpha + beta`, `ln P(T = t) = ln alpha + sum_{j<t-1} ln(beta + j) - sum_{j<t} ln(s + j)`
/// and `ln S(t) = sum_{j<t} ln(beta + j) - sum_{j<t} ln(s + j)` (ratios of rising factorials);
/// the second sum is the log of one product. Derivatives: `d/d alpha` of the last sum is
/// `sum 1/(s + j)`, the second `-sum 1/(s + j)^2`.
#[inline(always)]
fn sbg_row<const HESSIAN: bool>(
    ln_alpha: f64,
    alpha: f64,
    t: usize,
    churned: bool,
    beta: f64,
    sums: &BetaSums,
) -> RowTerms {
    let s = alpha + beta;
    let (mut product, mut d1, mut d2) = (1.0, 0.0, 0.0);
    for j in 0..t {
        let x = s + j as f64;
        product *= x;
        let inv = 1.0 / x;
        d1 += inv;
        if HESSIAN {
            d2 += inv * inv;
        }
    }
    let m = t - usize::from(churned);
    let ch = f64::from(u8::from(churned));
    let mut row = RowTerms {
        v: ch * ln_alpha + sums.ln[m] - product.ln(),
        g: [ch - alpha * d1, sums.inv[m] - d1, 0.0],
        h: [0.0; 6],
    };
    if HESSIAN {
        row.h = [
            alpha * (alpha * d2 - d1),
            alpha * d2,
            0.0,
            d2 - sums.inv2[m],
            0.0,
            0.0,
        ];
    }
    row
}

/// Per pass (BdW): the parts of a record's `ln S(t)` that involve `beta` and `c` only, for whole
/// `t` in `1..=FAST_SBG_MAX_PERIODS` at `u = t^c`, as [`ln_survival_second`] forms them:
/// `[u, ln t, ln G(beta + u) - ln G(beta), psi(beta + u) - psi(beta), psi(beta + u),
/// psi'(beta + u) - psi'(beta), psi'(beta + u)]`.
struct BdwBetaTerms {
    terms: [[f64; 7]; FAST_SBG_MAX_PERIODS + 1],
}

impl BdwBetaTerms {
    /// `None` when some `t^c` overflows (rows then take the dual-number route).
    fn new(beta: f64, c: f64) -> Option<Self> {
        let mut terms = [[0.0; 7]; FAST_SBG_MAX_PERIODS + 1];
        let tri_beta = trigamma(beta);
        for (t, row) in terms.iter_mut().enumerate().skip(1) {
            let lt = (t as f64).ln();
            let u = (c * lt).exp();
            if !u.is_finite() {
                return None;
            }
            let tri_end = trigamma(beta + u);
            *row = [
                u,
                lt,
                ln_gamma_diff(beta, u),
                digamma_diff(beta, u),
                digamma(beta + u),
                tri_end - tri_beta,
                tri_end,
            ];
        }
        Some(BdwBetaTerms { terms })
    }
}

/// `alpha + beta` below which a BdW row takes `ln G`, `psi` and `psi'` at `alpha + beta` and
/// `alpha + beta + t^c` by their shared recurrence; above it, the differences are formed
/// without cancellation ([`ln_gamma_diff`], [`digamma_diff`]).
const SHARED_RECURRENCE_MAX: f64 = 10.0;

/// `ln S(t)` (whole `t <= FAST_SBG_MAX_PERIODS`) with its gradient and (`HESSIAN`) Hessian in
/// `(alpha, beta, c)`, the terms of [`ln_survival_second`]: the `beta` ones from the pass's
/// table, the customer's at `s = alpha + beta` and `s + u` (`at_s`, `at_end`: `ln G`, `psi`,
/// `psi'` there, read when `s` is below [`SHARED_RECURRENCE_MAX`]).
#[inline(always)]
fn bdw_survival<const HESSIAN: bool>(
    s: f64,
    at_s: (f64, f64, f64),
    at_end: (f64, f64, f64),
    t: usize,
    table: &BdwBetaTerms,
) -> (f64, [f64; 3], [f64; 6]) {
    if t == 0 {
        return (0.0, [0.0; 3], [0.0; 6]);
    }
    let [u, lt, a_rise, a_b, a_u, a_bb, a_uu] = table.terms[t];
    let (b_rise, b_s, b_u, b_uu, b_ss) = if s < SHARED_RECURRENCE_MAX {
        let (lg_end, psi_end, tri_end) = at_end;
        let (lg_s, psi_s, tri_s) = at_s;
        (
            lg_end - lg_s,
            psi_end - psi_s,
            psi_end,
            tri_end,
            tri_end - tri_s,
        )
    } else {
        let b_uu = if HESSIAN { trigamma(s + u) } else { 0.0 };
        let b_ss = if HESSIAN { b_uu - trigamma(s) } else { 0.0 };
        (
            ln_gamma_diff(s, u),
            digamma_diff(s, u),
            digamma(s + u),
            b_uu,
            b_ss,
        )
    };
    let (u1, u2) = (u * lt, u * lt * lt);
    let g = [-b_s, a_b - b_s, (a_u - b_u) * u1];
    let h = if HESSIAN {
        [
            -b_ss,
            -b_ss,
            -b_uu * u1,
            a_bb - b_ss,
            (a_uu - b_uu) * u1,
            (a_uu - b_uu) * u1 * u1 + (a_u - b_u) * u2,
        ]
    } else {
        [0.0; 6]
    };
    (a_rise - b_rise, g, h)
}

/// The arguments of a BdW record's special functions at the customer's own `s = alpha + beta`
/// (whole `t <= FAST_SBG_MAX_PERIODS`): `s`, `s + t^c` and `s + (t - 1)^c` (the last read only
/// for a churned customer).
#[inline(always)]
fn bdw_arguments(s: f64, t: usize, table: &BdwBetaTerms) -> [f64; 3] {
    [
        s,
        s + table.terms[t][0],
        s + table.terms[t.saturating_sub(1)][0],
    ]
}

/// A BdW record (whole `t <= FAST_SBG_MAX_PERIODS`), its special functions at the customer's
/// own arguments ([`bdw_arguments`]) one at a time: [`bdw_row_from`].
#[cfg(test)]
fn bdw_row<const HESSIAN: bool>(
    alpha: f64,
    beta: f64,
    t: usize,
    churned: bool,
    table: &BdwBetaTerms,
) -> RowTerms {
    let at = bdw_arguments(alpha + beta, t, table)
        .map(crate::special::ln_gamma_digamma_trigamma::<HESSIAN>);
    bdw_row_from::<HESSIAN>(alpha, beta, t, churned, table, &at)
}

/// A BdW record (whole `t <= FAST_SBG_MAX_PERIODS`) from [`bdw_survival`], given `ln G`, `psi`
/// and `psi'` at its [`bdw_arguments`] (`at`; read when `alpha + beta` is below
/// [`SHARED_RECURRENCE_MAX`]): the terms at `alpha + beta` are shared by `S(t - 1)` and `S(t)`,
/// and each argument's three special functions come from one recurrence, so a churned row
/// needs three of them (about 8 apart over the dual numbers), which the pass forms for a
/// whole chunk of rows at once in SIMD lanes ([`ln_gamma_digamma_trigamma_lanes`]).
/// `ln P(T = t)` combines the two survival terms as in [`dual_row`].
#[inline(always)]
fn bdw_row_from<const HESSIAN: bool>(
    alpha: f64,
    beta: f64,
    t: usize,
    churned: bool,
    table: &BdwBetaTerms,
    at: &[(f64, f64, f64); 3],
) -> RowTerms {
    let s = alpha + beta;
    let (mut v, mut g, mut h) = bdw_survival::<HESSIAN>(s, at[0], at[1], t, table);
    if churned {
        let (v_before, g_before, h_before) = bdw_survival::<HESSIAN>(s, at[0], at[2], t - 1, table);
        let d = v - v_before;
        let q = 1.0 / (-d).exp_m1();
        let dd: [f64; 3] = std::array::from_fn(|x| g[x] - g_before[x]);
        if HESSIAN {
            let pairs = [(0, 0), (0, 1), (0, 2), (1, 1), (1, 2), (2, 2)];
            for (e, &(x, y)) in pairs.iter().enumerate() {
                h[e] = h_before[e] - q * (h[e] - h_before[e]) - q * (1.0 + q) * dd[x] * dd[y];
            }
        }
        v = v_before + (-d.exp_m1()).ln();
        g = std::array::from_fn(|x| g_before[x] - q * dd[x]);
    }
    RowTerms::to_ln_alpha(alpha, v, g, HESSIAN.then_some(h))
}

/// Gradient and Hessian of `ln S(t)` in `(alpha, beta, c)` (upper triangle as in
/// [`RowTerms`]), from `ln S = [ln G(beta + u) - ln G(beta)] - [ln G(s + u) - ln G(s)]`,
/// `s = alpha + beta`, `u = t^c` (`free_c` false: `c` held, its entries 0).
fn ln_survival_second(alpha: f64, beta: f64, c: f64, t: f64, free_c: bool) -> ([f64; 3], [f64; 6]) {
    if t <= 0.0 {
        return ([0.0; 3], [0.0; 6]);
    }
    let lt = t.ln();
    let u = (c * lt).exp();
    let s = alpha + beta;
    let (b_s, b_u) = (digamma_diff(s, u), digamma(s + u));
    let b_uu = trigamma(s + u);
    let b_ss = b_uu - trigamma(s);
    let (a_b, a_u) = (digamma_diff(beta, u), digamma(beta + u));
    let a_uu = trigamma(beta + u);
    let a_bb = a_uu - trigamma(beta);
    let (u1, u2) = if free_c {
        (u * lt, u * lt * lt)
    } else {
        (0.0, 0.0)
    };
    let g = [-b_s, a_b - b_s, (a_u - b_u) * u1];
    let h = [
        -b_ss,
        -b_ss,
        -b_uu * u1,
        a_bb - b_ss,
        (a_uu - b_uu) * u1,
        (a_uu - b_uu) * u1 * u1 + (a_u - b_u) * u2,
    ];
    (g, h)
}

/// A record by the base model's dual-number route (any `c`, any `t`), with its Hessian by
/// [`ln_survival_second`] in the fused pass: `ln P(T = t) = a + ln(1 - e^(b - a))` with
/// `a = ln S(t - 1)`, `b = ln S(t)`, whose Hessian is
/// `H_a - q H_d - q (1 + q) grad_d grad_d'`, `d = b - a`, `q = 1 / (e^-d - 1)`.
fn dual_row<const HESSIAN: bool>(
    alpha: f64,
    b: Dual<3>,
    c: Dual<3>,
    t: f64,
    churned: bool,
    free_c: bool,
) -> RowTerms {
    let a = Dual::<3>::variable(alpha, 0);
    let (ll, second) = if churned {
        let before = ln_survival(a, b, c, t - 1.0);
        let now = ln_survival(a, b, c, t);
        let ll = before + (-(now - before).exp_m1()).ln();
        let second = HESSIAN.then(|| {
            let (_, h_before) = ln_survival_second(alpha, b.v, c.v, t - 1.0, free_c);
            let (_, h_now) = ln_survival_second(alpha, b.v, c.v, t, free_c);
            let d = now - before;
            let q = 1.0 / (-d.v).exp_m1();
            let pairs = [(0, 0), (0, 1), (0, 2), (1, 1), (1, 2), (2, 2)];
            let mut h = [0.0; 6];
            for (e, &(x, y)) in pairs.iter().enumerate() {
                h[e] = h_before[e] - q * (h_now[e] - h_before[e]) - q * (1.0 + q) * d.d[x] * d.d[y];
            }
            h
        });
        (ll, second)
    } else {
        let ll = ln_survival(a, b, c, t);
        let second = HESSIAN.then(|| ln_survival_second(alpha, b.v, c.v, t, free_c).1);
        (ll, second)
    };
    RowTerms::to_ln_alpha(alpha, ll.v, ll.d, second)
}

impl ChurnCovariates<'_, '_> {
    /// One pass over the rows: the log-likelihood, its gradient and (`HESSIAN`) its Hessian in
    /// the natural parameters.
    ///
    /// Each row's terms in `(ln alpha_i, beta, c)` ([`RowTerms`]) map to the parameters through
    /// `ln alpha_i = ln alpha0 + z . g`: with `x = (ln alpha0, g)` and `z~ = (1, z)` the
    /// gradient in `x` is `sum w g_l z~`, the Hessian block `sum w h_ll z~ z~'`, the cross
    /// terms with `beta` and `c` `sum w h_lb z~` and `sum w h_lc z~`; `alpha0` itself takes
    /// `d/d alpha0 = (d/d ln alpha0) / alpha0` and
    /// `d2/d alpha0^2 = (d2/d ln alpha0^2 - d/d ln alpha0) / alpha0^2`. The `x` rows of the
    /// Hessian are one matrix product a chunk, `Z~' [w h_ll z~ | w h_lb | w h_lc]` (ndarray's
    /// `dot`): an outer product accumulated row by row made the fused pass cost twice the
    /// gradient pass at 5 covariates.
    ///
    /// sBG rows with at most [`FAST_SBG_MAX_PERIODS`] periods take the closed form
    /// ([`sbg_row`]), BdW rows with as many the terms of [`bdw_row_from`] (their special
    /// functions for the chunk at once, in SIMD lanes), the rest the base model's dual numbers
    /// ([`dual_row`]). The rows are summed in fixed chunks, so the result is the same for any
    /// number of threads.
    fn pass<const HESSIAN: bool>(
        &self,
        params: &[f64],
        exec: &Exec,
    ) -> (f64, Vec<f64>, Option<Array2<f64>>) {
        let rows = self.rows;
        let k = self.model_parameters();
        let p = rows.n_covariates();
        let coefficients = &params[k..];
        let (alpha0, beta) = (params[0], params[1]);
        let ln_alpha0 = alpha0.ln();
        let free_c = self.free_c;
        let c = if free_c {
            Dual::<3>::variable(params[2], 2)
        } else {
            Dual::constant(1.0)
        };
        let b = Dual::<3>::variable(beta, 1);
        let sums = BetaSums::new(beta);
        let bdw_table = if free_c {
            BdwBetaTerms::new(beta, params[2])
        } else {
            None
        };
        let fast_sum = |alpha: f64| {
            let s = alpha + beta;
            !free_c && (FAST_SBG_MIN_SUM..=FAST_SBG_MAX_SUM).contains(&s)
        };
        let matrix = RowMajor::new(&rows.covariates);
        let q = p + 1;
        // Layout: value; gradient in x (q), beta, c; then the Hessian: x block (q x q, upper
        // triangle used), x-beta (q), x-c (q), beta-beta, beta-c, c-c.
        let (g_at, h_at) = (1, 3 + q);
        let width = if HESSIAN {
            h_at + q * q + 2 * q + 3
        } else {
            h_at
        };
        let acc = exec.chunked_sum(rows.len(), width, |range, acc| {
            let first = range.start;
            // Each row's `ln alpha_i - ln alpha0 = z . g` and `alpha_i` first, and (BdW) the
            // special functions at the rows' own arguments for the whole chunk at once, in SIMD
            // lanes (rows that do not read them give a stand-in argument).
            let n = range.len();
            let (mut dots, mut alphas) = (vec![0.0; n], vec![0.0; n]);
            for i in range.clone() {
                let dot: f64 = matrix
                    .row(i)
                    .iter()
                    .zip(coefficients)
                    .map(|(v, g)| v * g)
                    .sum();
                dots[i - first] = dot;
                alphas[i - first] = alpha0 * dot.exp();
            }
            let special = bdw_table.as_ref().map(|table| {
                let mut arguments = vec![1.0; 3 * n];
                for (r, &alpha) in alphas.iter().enumerate() {
                    let s = alpha + beta;
                    let whole = rows.periods[first + r] as usize;
                    if s > 0.0 && s < SHARED_RECURRENCE_MAX && whole <= FAST_SBG_MAX_PERIODS {
                        arguments[3 * r..3 * r + 3]
                            .copy_from_slice(&bdw_arguments(s, whole, table));
                    }
                }
                let mut out = [vec![0.0; 3 * n], vec![0.0; 3 * n], vec![0.0; 3 * n]];
                let [lg, psi, tri] = &mut out;
                ln_gamma_digamma_trigamma_lanes::<HESSIAN>(&arguments, lg, psi, tri);
                out
            });
            // The Hessian's `x` rows for this chunk as one matrix product,
            // `Z~' [h_ll z~ | h_lb | h_lc]` (weighted), instead of an outer product a row.
            let (mut left, mut right) = if HESSIAN {
                (
                    Array2::<f64>::zeros((range.len(), q)),
                    Array2::<f64>::zeros((range.len(), q + 2)),
                )
            } else {
                (Array2::zeros((0, 0)), Array2::zeros((0, 0)))
            };
            for i in range {
                let w = rows.weights[i];
                if w == 0.0 {
                    continue;
                }
                let z = matrix.row(i);
                let (dot, alpha) = (dots[i - first], alphas[i - first]);
                let t = rows.periods[i];
                let whole = t as usize;
                let row = if whole <= FAST_SBG_MAX_PERIODS && fast_sum(alpha) {
                    sbg_row::<HESSIAN>(ln_alpha0 + dot, alpha, whole, rows.churned[i], beta, &sums)
                } else if let Some(table) = bdw_table.as_ref().filter(|_| {
                    whole <= FAST_SBG_MAX_PERIODS
                        && (whole > 0 || !rows.churned[i])
                        && alpha > 0.0
                        && alpha.is_finite()
                }) {
                    let [lg, psi, tri] = special.as_ref().expect("BdW rows' special functions");
                    let r = 3 * (i - first);
                    let at = [r, r + 1, r + 2].map(|j| (lg[j], psi[j], tri[j]));
                    bdw_row_from::<HESSIAN>(alpha, beta, whole, rows.churned[i], table, &at)
                } else {
                    dual_row::<HESSIAN>(alpha, b, c, t, rows.churned[i], free_c)
                };
                acc[0] += w * row.v;
                let d_ln_alpha = w * row.g[0];
                acc[g_at] += d_ln_alpha;
                for (a, v) in acc[g_at + 1..g_at + q].iter_mut().zip(z) {
                    *a += d_ln_alpha * v;
                }
                acc[g_at + q] += w * row.g[1];
                acc[g_at + q + 1] += w * row.g[2];
                if HESSIAN {
                    let r = i - first;
                    let ll = w * row.h[0];
                    let (mut l, mut m) = (left.row_mut(r), right.row_mut(r));
                    l[0] = 1.0;
                    m[0] = ll;
                    for (x, &v) in z.iter().enumerate() {
                        l[x + 1] = v;
                        m[x + 1] = ll * v;
                    }
                    m[q] = w * row.h[1];
                    m[q + 1] = w * row.h[2];
                    let tail = h_at + q * q + 2 * q;
                    acc[tail] += w * row.h[3];
                    acc[tail + 1] += w * row.h[4];
                    acc[tail + 2] += w * row.h[5];
                }
            }
            if HESSIAN {
                let block = left.t().dot(&right);
                let h = &mut acc[h_at..];
                for x in 0..q {
                    for y in x..q {
                        h[x * q + y] += block[[x, y]];
                    }
                    h[q * q + x] += block[[x, q]];
                    h[q * q + q + x] += block[[x, q + 1]];
                }
            }
        });
        // Natural parameters: alpha0, beta, (c), coefficients. `x` index 0 is ln alpha0.
        let n_params = k + p;
        let index_x = |x: usize| if x == 0 { 0 } else { k + x - 1 };
        let mut gradient = vec![0.0; n_params];
        gradient[0] = acc[g_at] / alpha0;
        for x in 1..q {
            gradient[index_x(x)] = acc[g_at + x];
        }
        gradient[1] = acc[g_at + q];
        if k == 3 {
            gradient[2] = acc[g_at + q + 1];
        }
        let hessian = HESSIAN.then(|| {
            let h = &acc[h_at..];
            let mut out = Array2::zeros((n_params, n_params));
            // d/d alpha0 = (1/alpha0) d/d ln alpha0.
            let scale = |x: usize| if x == 0 { 1.0 / alpha0 } else { 1.0 };
            for x in 0..q {
                for y in x..q {
                    let mut v = h[x * q + y] * scale(x) * scale(y);
                    if x == 0 && y == 0 {
                        v -= acc[g_at] / (alpha0 * alpha0);
                    }
                    out[[index_x(x), index_x(y)]] = v;
                    out[[index_x(y), index_x(x)]] = v;
                }
                let b_x = h[q * q + x] * scale(x);
                out[[1, index_x(x)]] = b_x;
                out[[index_x(x), 1]] = b_x;
                if k == 3 {
                    let c_x = h[q * q + q + x] * scale(x);
                    out[[2, index_x(x)]] = c_x;
                    out[[index_x(x), 2]] = c_x;
                }
            }
            let tail = q * q + 2 * q;
            out[[1, 1]] = h[tail];
            if k == 3 {
                out[[1, 2]] = h[tail + 1];
                out[[2, 1]] = h[tail + 1];
                out[[2, 2]] = h[tail + 2];
            }
            out
        });
        (acc[0], gradient, hessian)
    }
}

impl Likelihood for ChurnCovariates<'_, '_> {
    fn params(&self) -> &[ParamSpec] {
        &self.specs
    }

    fn starts(&self) -> Vec<Vec<f64>> {
        // Only used without a caller-given start; `fit_churn_covariates` always gives one.
        let mut start = vec![1.0; self.model_parameters()];
        start.extend(std::iter::repeat_n(0.0, self.rows.n_covariates()));
        vec![start]
    }

    fn total_weight(&self) -> f64 {
        self.rows.weights.iter().sum()
    }

    fn loglik_and_gradient(&self, params: &[f64], exec: &Exec) -> (f64, Vec<f64>) {
        let (ll, gradient, _) = self.pass::<false>(params, exec);
        (ll, gradient)
    }

    fn hessian(&self, params: &[f64], exec: &Exec) -> Option<Array2<f64>> {
        self.pass::<true>(params, exec).2
    }

    fn loglik_gradient_hessian(&self, params: &[f64], exec: &Exec) -> Option<FusedPass> {
        let (ll, gradient, hessian) = self.pass::<true>(params, exec);
        Some((ll, gradient, hessian?))
    }
}

/// Fit sBG (`free_c` false) or BdW with covariates on `alpha`: the base model first (its
/// estimate on the records of the first stage, every coefficient 0, is the start; the
/// caller's `opts.start` wins), then all records. The result names the coefficients
/// `coefficient_names`.
pub fn fit_churn_covariates(
    rows: &ChurnCovariateRows<'_>,
    free_c: bool,
    coefficient_names: &[String],
    opts: &FitOptions<'_>,
) -> Result<FitResult> {
    // One row per customer (continuous covariates) and many of them: a subsample first.
    let stride = (!rows.merged && rows.len() > crate::fit::WARM_START_ROWS)
        .then(|| rows.len() / crate::fit::WARM_START_SAMPLE);
    Ok(fit_churn_covariates_staged(rows, free_c, coefficient_names, opts, stride)?.0)
}

/// [`fit_churn_covariates`], first on every `stride`-th row when given (and no start is);
/// also says whether the fit of all rows started from the subsample's optimum.
fn fit_churn_covariates_staged(
    rows: &ChurnCovariateRows<'_>,
    free_c: bool,
    coefficient_names: &[String],
    opts: &FitOptions<'_>,
    stride: Option<usize>,
) -> Result<(FitResult, bool)> {
    let base_start = match &opts.start {
        Some(_) => None,
        None => {
            // The base model fitted to the rows the first stage reads (every `stride`-th):
            // a start for that stage, which moves from there anyway. (Its fit to all records
            // cost a pass over them and a sort of their records, about a base model's whole
            // fit, for a start the subsample's optimum replaces.)
            let data = rows.base_data(stride.filter(|&s| s >= 2).unwrap_or(1));
            let base = if free_c {
                Bdw::new(&data)
            } else {
                Bdw::shifted_beta_geometric(&data)
            };
            let mut start = fit(&base, opts)?.params;
            start.extend(std::iter::repeat_n(0.0, rows.n_covariates()));
            Some(start)
        }
    };
    // From the base model's optimum Newton steps with the analytic Hessian converge in a few
    // passes, and the last one's Hessian gives the covariance. With a stride, those steps
    // first on a systematic subsample, then on all rows from its optimum, the first step on
    // the subsample's curvature (a gradient pass instead of a fused one). Its optimum is
    // within a few of its standard errors of all rows', so a few fused passes of all rows
    // follow (3-4 at 1M): the last, at the estimate, gives the covariance.
    let staging = Staging {
        start: base_start,
        stride: Some(stride.unwrap_or(0)),
        seed_stage: false,
        full_step_on_sample_curvature: true,
        newton_on_sample: false,
    };
    let newton = FitOptions {
        newton: true,
        ..opts.clone()
    };
    let staged = fit_in_stages(
        rows,
        rows.len(),
        |r, s| r.subsample(s),
        |r, o| fit(&ChurnCovariates::new(r, free_c), o),
        &newton,
        &staging,
    )?;
    let mut res = staged.result;
    let k = if free_c { 3 } else { 2 };
    res.names.truncate(k);
    res.names.extend(coefficient_names.iter().cloned());
    Ok((res, staged.through_subsample))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::models::covariates::rows::matrix;
    use crate::models::testing::rel;
    use crate::random::Rng;

    /// `n` customers with a 0/1 flag and a standard normal covariate, churn drawn from sBG
    /// (`c = 1`) or BdW at `truth` (`alpha0, beta, c, g_flag, g_size`), observed for up to
    /// 12 periods (censored: still active).
    fn simulated(n: usize, truth: &[f64], seed: u64) -> (Vec<f64>, Vec<f64>, Vec<f64>) {
        let mut rng = Rng::for_stream(seed, u64::MAX);
        let (mut periods, mut churned, mut z) = (Vec::new(), Vec::new(), Vec::new());
        for _ in 0..n {
            let flag = if rng.uniform() < 0.4 { 1.0 } else { 0.0 };
            let size = rng.normal();
            let alpha = customer_alpha(truth[0], &[flag, size], &truth[3..]);
            let theta = rng.beta(alpha, truth[1]);
            let horizon = 4.0 + (rng.uniform() * 9.0).floor();
            // Survives period t with probability (1 - theta)^(t^c - (t-1)^c).
            let mut t = 1.0_f64;
            let mut gone = 0.0;
            while t <= horizon {
                let exposure = t.powf(truth[2]) - (t - 1.0).powf(truth[2]);
                if rng.uniform() > (1.0 - theta).powf(exposure) {
                    gone = 1.0;
                    break;
                }
                t += 1.0;
            }
            periods.push(if gone == 1.0 { t } else { horizon });
            churned.push(gone);
            z.extend([flag, size]);
        }
        (periods, churned, z)
    }

    fn names() -> Vec<String> {
        vec!["flag".into(), "size".into()]
    }

    #[test]
    fn zero_coefficients_give_the_base_model() {
        let (periods, churned, z) = simulated(600, &[1.0, 3.0, 1.0, 0.0, 0.0], 3);
        let rows =
            ChurnCovariateRows::new(&periods, &churned, None, matrix(&z, 2), &names()).unwrap();
        let data = ChurnData::from_customers(&periods, &churned, None).unwrap();
        for free_c in [false, true] {
            let base_lik = if free_c {
                Bdw::new(&data)
            } else {
                Bdw::shifted_beta_geometric(&data)
            };
            let at: &[f64] = if free_c {
                &[0.8, 2.5, 0.9]
            } else {
                &[0.8, 2.5]
            };
            let (ll_base, g_base) = base_lik.loglik_and_gradient(at, &Exec::Serial);
            let mut with = at.to_vec();
            with.extend([0.0, 0.0]);
            let lik = ChurnCovariates::new(&rows, free_c);
            let (ll, g) = lik.loglik_and_gradient(&with, &Exec::Serial);
            assert!(rel(ll, ll_base) < 1e-13, "{ll} vs {ll_base}");
            for j in 0..at.len() {
                assert!(rel(g[j], g_base[j]) < 1e-11, "{j}: {g:?} vs {g_base:?}");
            }
        }
    }

    #[test]
    fn gradient_matches_finite_differences() {
        let (periods, churned, z) = simulated(400, &[1.0, 3.0, 0.8, 0.5, -0.3], 5);
        let rows =
            ChurnCovariateRows::new(&periods, &churned, None, matrix(&z, 2), &names()).unwrap();
        for (free_c, point) in [
            (false, vec![0.9, 2.8, 0.4, -0.2]),
            (true, vec![0.9, 2.8, 0.85, 0.4, -0.2]),
        ] {
            let lik = ChurnCovariates::new(&rows, free_c);
            let at = |q: &[f64]| lik.loglik_and_gradient(q, &Exec::Serial);
            let (_, gradient) = at(&point);
            for k in 0..point.len() {
                let h = 1e-5 * point[k].abs().max(0.1);
                let (mut up, mut down) = (point.clone(), point.clone());
                up[k] += h;
                down[k] -= h;
                let numeric = (at(&up).0 - at(&down).0) / (2.0 * h);
                let scale = numeric.abs().max(gradient[k].abs()).max(1.0);
                assert!(
                    (gradient[k] - numeric).abs() <= 1e-6 * scale,
                    "{free_c} {k}: {} vs {numeric}",
                    gradient[k]
                );
            }
        }
    }

    /// A hand-made record set mixing the closed-form sBG rows and the dual-number rows: periods
    /// past [`FAST_SBG_MAX_PERIODS`], period 0, weights, churned and active customers.
    fn mixed_rows() -> (Vec<f64>, Vec<f64>, Vec<f64>, Vec<f64>) {
        let (mut periods, mut churned, mut z) = simulated(300, &[1.0, 3.0, 0.8, 0.5, -0.3], 7);
        periods.extend([0.0, 70.0, 90.0, 1.0, 65.0]);
        churned.extend([0.0, 1.0, 0.0, 1.0, 1.0]);
        z.extend([1.0, 0.3, 0.0, -1.2, 1.0, 2.0, 0.0, 0.1, 1.0, -0.4]);
        let weights = (0..periods.len()).map(|i| 1.0 + (i % 3) as f64).collect();
        (periods, churned, z, weights)
    }

    #[test]
    fn closed_form_sbg_rows_match_the_dual_route() {
        let sums = BetaSums::new(2.7);
        for &(alpha, t, churned) in &[
            (0.9_f64, 1usize, true),
            (0.9, 1, false),
            (0.05, 7, true),
            (3.5, 12, false),
            (40.0, 64, true),
            (1e-3, 30, false),
            (1.2, 0, false),
        ] {
            let fast = sbg_row::<true>(alpha.ln(), alpha, t, churned, 2.7, &sums);
            let b = Dual::<3>::variable(2.7, 1);
            let slow = dual_row::<true>(alpha, b, Dual::constant(1.0), t as f64, churned, false);
            assert!(
                (fast.v - slow.v).abs() <= 1e-13 * slow.v.abs().max(1.0),
                "{fast:?} {slow:?}"
            );
            for (x, y) in fast.g.iter().zip(&slow.g).chain(fast.h.iter().zip(&slow.h)) {
                assert!(
                    (x - y).abs() <= 1e-10 * y.abs().max(1.0),
                    "{t} {churned}: {fast:?} {slow:?}"
                );
            }
        }
    }

    /// The fit through a subsample (as for a million customers with continuous covariates)
    /// reaches the optimum of the fit from the base model's estimate, with its covariance.
    #[test]
    fn subsample_first_reaches_the_same_optimum() {
        let (periods, churned, z) = simulated(3_000, &[1.0, 3.0, 0.8, 0.5, -0.3], 13);
        // (Too few customers to give up merging on their own: one row per customer, as with
        // continuous covariates at scale.)
        let rows = ChurnCovariateRows::with_max_vectors(
            &periods,
            &churned,
            None,
            matrix(&z, 2),
            &names(),
            0,
        )
        .unwrap();
        assert!(!rows.merged);
        let opts = FitOptions {
            gradient_tolerance: 1e-10,
            ..FitOptions::default()
        };
        for free_c in [false, true] {
            let (direct, _) =
                fit_churn_covariates_staged(&rows, free_c, &names(), &opts, None).unwrap();
            let (staged, through_subsample) =
                fit_churn_covariates_staged(&rows, free_c, &names(), &opts, Some(7)).unwrap();
            assert!(
                through_subsample,
                "{free_c}: the subsample's fit was not used"
            );
            assert!(direct.converged && staged.converged);
            assert_eq!(staged.names, direct.names);
            let (cov_d, cov_s) = (direct.covariance.unwrap(), staged.covariance.unwrap());
            for j in 0..direct.params.len() {
                let se = cov_d[[j, j]].sqrt();
                assert!(
                    (staged.params[j] - direct.params[j]).abs() <= 1e-6 * se,
                    "{free_c} {j}: {:?} vs {:?}",
                    staged.params,
                    direct.params
                );
                assert!(rel(cov_s[[j, j]], cov_d[[j, j]]) < 1e-6);
            }
        }
    }

    #[test]
    fn bdw_rows_match_the_dual_route() {
        for &c in &[0.7, 1.0, 1.6] {
            let table = BdwBetaTerms::new(2.7, c).unwrap();
            let b = Dual::<3>::variable(2.7, 1);
            let c_dual = Dual::<3>::variable(c, 2);
            for &(alpha, t, churned) in &[
                (0.9_f64, 1usize, true),
                (0.9, 1, false),
                (0.05, 7, true),
                (3.5, 12, false),
                (40.0, 64, true),
                (1e-3, 30, false),
                (8.0, 5, true),
                (1.2, 0, false),
            ] {
                for hessian in [false, true] {
                    let fast = if hessian {
                        bdw_row::<true>(alpha, 2.7, t, churned, &table)
                    } else {
                        bdw_row::<false>(alpha, 2.7, t, churned, &table)
                    };
                    let slow = dual_row::<true>(alpha, b, c_dual, t as f64, churned, true);
                    assert!(
                        (fast.v - slow.v).abs() <= 1e-13 * slow.v.abs().max(1.0),
                        "{fast:?} {slow:?}"
                    );
                    let h = if hessian { &fast.h[..] } else { &[][..] };
                    for (x, y) in fast.g.iter().chain(h).zip(slow.g.iter().chain(&slow.h)) {
                        assert!(
                            (x - y).abs() <= 1e-10 * y.abs().max(1.0),
                            "{c} {t} {churned}: {fast:?} {slow:?}"
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn fused_pass_hessian_matches_differences_of_the_gradient() {
        let (periods, churned, z, weights) = mixed_rows();
        let rows =
            ChurnCovariateRows::new(&periods, &churned, Some(&weights), matrix(&z, 2), &names())
                .unwrap();
        for (free_c, point) in [
            (false, vec![0.9, 2.8, 0.4, -0.2]),
            (true, vec![0.9, 2.8, 0.85, 0.4, -0.2]),
        ] {
            let lik = ChurnCovariates::new(&rows, free_c);
            let (ll, gradient) = lik.loglik_and_gradient(&point, &Exec::Serial);
            let (ll_f, g_f, hessian) = lik.loglik_gradient_hessian(&point, &Exec::Serial).unwrap();
            // The fused pass returns exactly the gradient pass's value and gradient.
            assert_eq!((ll, &gradient), (ll_f, &g_f));
            for k in 0..point.len() {
                let h = 1e-5 * point[k].abs().max(0.1);
                let (mut up, mut down) = (point.clone(), point.clone());
                up[k] += h;
                down[k] -= h;
                let (g_up, g_down) = (
                    lik.loglik_and_gradient(&up, &Exec::Serial).1,
                    lik.loglik_and_gradient(&down, &Exec::Serial).1,
                );
                for j in 0..point.len() {
                    let numeric = (g_up[j] - g_down[j]) / (2.0 * h);
                    let scale = numeric.abs().max(hessian[[j, k]].abs()).max(1.0);
                    assert!(
                        (hessian[[j, k]] - numeric).abs() <= 1e-6 * scale,
                        "{free_c} ({j}, {k}): {} vs {numeric}",
                        hessian[[j, k]]
                    );
                }
            }
        }
    }

    #[test]
    fn merged_and_per_customer_rows_agree_and_threads_do_not_change_bits() {
        // Categorical covariates: 6 distinct vectors, so the records merge.
        let (periods, churned, z) = simulated(9_000, &[1.0, 3.0, 1.0, 0.5, -0.3], 11);
        let z: Vec<f64> = z
            .chunks(2)
            .flat_map(|r| [r[0], (r[1].clamp(-1.0, 1.0)).round()])
            .collect();
        let weights: Vec<f64> = (0..periods.len()).map(|i| (i % 4) as f64).collect();
        let merged =
            ChurnCovariateRows::new(&periods, &churned, Some(&weights), matrix(&z, 2), &names())
                .unwrap();
        let single = ChurnCovariateRows::with_max_vectors(
            &periods,
            &churned,
            Some(&weights),
            matrix(&z, 2),
            &names(),
            0,
        )
        .unwrap();
        assert!(merged.len() < 200, "{}", merged.len());
        assert_eq!(single.len(), weights.iter().filter(|&&w| w > 0.0).count());
        let pools = [
            Exec::with_jobs(Some(2)).unwrap(),
            Exec::with_jobs(Some(3)).unwrap(),
        ];
        for (free_c, point) in [
            (false, vec![0.9, 2.8, 0.4, -0.2]),
            (true, vec![0.9, 2.8, 0.85, 0.4, -0.2]),
        ] {
            let (a, b) = (
                ChurnCovariates::new(&merged, free_c),
                ChurnCovariates::new(&single, free_c),
            );
            let (ll_a, g_a, h_a) = a.loglik_gradient_hessian(&point, &Exec::Serial).unwrap();
            let (ll_b, g_b, h_b) = b.loglik_gradient_hessian(&point, &Exec::Serial).unwrap();
            assert!(rel(ll_a, ll_b) < 1e-12, "{ll_a} vs {ll_b}");
            for j in 0..point.len() {
                assert!(
                    (g_a[j] - g_b[j]).abs() <= 1e-12 * ll_b.abs(),
                    "{j}: {g_a:?} vs {g_b:?}"
                );
                for k in 0..point.len() {
                    assert!((h_a[[j, k]] - h_b[[j, k]]).abs() <= 1e-12 * ll_b.abs());
                }
            }
            // The same bits for any number of threads (the per-customer rows span 2+ chunks).
            for pool in &pools {
                let (ll, g, h) = b.loglik_gradient_hessian(&point, pool).unwrap();
                assert_eq!((ll.to_bits(), &g, &h), (ll_b.to_bits(), &g_b, &h_b));
            }
        }
    }

    #[test]
    fn fit_recovers_simulated_coefficients() {
        for (free_c, truth) in [
            (false, vec![1.0, 3.0, 1.0, 0.5, -0.3]),
            (true, vec![1.0, 3.0, 0.7, 0.5, -0.3]),
        ] {
            let (periods, churned, z) = simulated(2_000, &truth, 9);
            let rows =
                ChurnCovariateRows::new(&periods, &churned, None, matrix(&z, 2), &names()).unwrap();
            let res =
                fit_churn_covariates(&rows, free_c, &names(), &FitOptions::default()).unwrap();
            assert!(res.converged, "{}", res.termination);
            let want: Vec<f64> = if free_c {
                truth.clone()
            } else {
                vec![truth[0], truth[1], truth[3], truth[4]]
            };
            let se = res.standard_errors().unwrap();
            for k in 0..want.len() {
                let z = (res.params[k] - want[k]) / se[k];
                assert!(
                    z.abs() < 4.5,
                    "{free_c} {}: {} (se {}) vs {}",
                    res.names[k],
                    res.params[k],
                    se[k],
                    want[k]
                );
            }
        }
    }
}
