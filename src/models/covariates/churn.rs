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
//! customer's `alpha_i` (over [`Dual`] numbers in `alpha_i, beta, c`), with the gradient in the
//! coefficients by the chain rule through `ln alpha_i`; the Hessian (for standard errors) is
//! the fitting engine's central difference of that exact gradient, as for the base models.

use ndarray::{ArrayView2, CowArray, Ix2};

use super::check_finite;
use super::rows::{standard_layout, RowMajor};
use crate::dual::Dual;
use crate::error::{ClvError, Result};
use crate::fit::{fit, Domain, FitOptions, FitResult, Likelihood, ParamSpec};
use crate::models::bdw::{ln_churn, ln_survival, Bdw, BdwParams, ChurnData, PARAMS};
use crate::parallel::Exec;

/// Churn records with covariates: the distinct (periods, churned, covariates) rows of the
/// customers with weight > 0, with their summed weights, in a canonical order.
#[derive(Debug, Clone)]
pub struct ChurnCovariateRows<'a> {
    pub periods: Vec<f64>,
    pub churned: Vec<bool>,
    pub weights: Vec<f64>,
    /// `len() x columns`, standard layout.
    pub covariates: CowArray<'a, f64, Ix2>,
}

impl<'a> ChurnCovariateRows<'a> {
    /// Validate the records (the rules of [`ChurnData::from_customers`]) and the covariate
    /// matrix (`periods.len() x names.len()`, finite values), then merge identical records.
    ///
    /// Records repeat when the covariates are categorical (a few dozen distinct vectors times
    /// the few distinct (periods, churned) pairs); merging them makes such a fit as cheap as
    /// the base model's, and costs a sort of the rows otherwise.
    pub fn new(
        periods: &[f64],
        churned: &[f64],
        weights: Option<&[f64]>,
        covariates: ArrayView2<'a, f64>,
        covariate_names: &[String],
    ) -> Result<Self> {
        ChurnData::from_customers(periods, churned, weights)?;
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
        let rows = RowMajor::new(&matrix);
        let weight = |i: usize| weights.map_or(1.0, |w| w[i]);
        let key = |i: usize| (periods[i], churned[i], rows.row(i));
        let mut order: Vec<usize> = (0..n).filter(|&i| weight(i) > 0.0).collect();
        let compare = |&i: &usize, &j: &usize| {
            let ((pi, ci, zi), (pj, cj, zj)) = (key(i), key(j));
            pi.total_cmp(&pj).then(ci.total_cmp(&cj)).then_with(|| {
                zi.iter()
                    .zip(zj)
                    .map(|(a, b)| a.total_cmp(b))
                    .find(|o| o.is_ne())
                    .unwrap_or(std::cmp::Ordering::Equal)
            })
        };
        order.sort_unstable_by(compare);
        let mut out = ChurnCovariateRows {
            periods: Vec::new(),
            churned: Vec::new(),
            weights: Vec::new(),
            covariates: CowArray::from(ndarray::Array2::zeros((0, covariates.ncols()))),
        };
        let mut values: Vec<f64> = Vec::new();
        let mut last: Option<usize> = None;
        for &i in &order {
            if last.is_some_and(|j| compare(&i, &j).is_eq()) {
                *out.weights.last_mut().expect("a row was kept") += weight(i);
                continue;
            }
            out.periods.push(periods[i]);
            out.churned.push(churned[i] == 1.0);
            out.weights.push(weight(i));
            values.extend_from_slice(rows.row(i));
            last = Some(i);
        }
        out.covariates = CowArray::from(
            ndarray::Array2::from_shape_vec((out.periods.len(), covariates.ncols()), values)
                .expect("whole rows"),
        );
        Ok(out)
    }

    /// Number of distinct records.
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

    /// The records without covariates (the base model's data).
    fn base_data(&self) -> Result<ChurnData> {
        let churned: Vec<f64> = self
            .churned
            .iter()
            .map(|&c| f64::from(u8::from(c)))
            .collect();
        ChurnData::from_customers(&self.periods, &churned, Some(&self.weights))
    }
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

    /// Each record at its `alpha_i`: the row's derivatives in `(alpha_i, beta, c)` by duals,
    /// `d/d alpha0 = alpha_i/alpha0 d/d alpha_i` and `d/dg = alpha_i z d/d alpha_i`.
    fn loglik_and_gradient(&self, params: &[f64], exec: &Exec) -> (f64, Vec<f64>) {
        let rows = self.rows;
        let k = self.model_parameters();
        let coefficients = &params[k..];
        let (alpha0, beta) = (params[0], params[1]);
        let c = if self.free_c {
            Dual::<3>::variable(params[2], 2)
        } else {
            Dual::constant(1.0)
        };
        let b = Dual::<3>::variable(beta, 1);
        let matrix = RowMajor::new(&rows.covariates);
        let width = 1 + params.len();
        let acc = exec.chunked_sum(rows.len(), width, |range, acc| {
            for i in range {
                let w = rows.weights[i];
                if w == 0.0 {
                    continue;
                }
                let z = matrix.row(i);
                let alpha = customer_alpha(alpha0, z, coefficients);
                let a = Dual::<3>::variable(alpha, 0);
                let t = rows.periods[i];
                let ll = if rows.churned[i] {
                    ln_churn(a, b, c, t)
                } else {
                    ln_survival(a, b, c, t)
                };
                acc[0] += w * ll.v;
                // d/d ln alpha_i, shared by alpha0 (divided by alpha0 below) and the coefficients.
                let d_ln_alpha = w * ll.d[0] * alpha;
                acc[1] += d_ln_alpha;
                acc[2] += w * ll.d[1];
                if k == 3 {
                    acc[3] += w * ll.d[2];
                }
                for (a, v) in acc[1 + k..].iter_mut().zip(z) {
                    *a += d_ln_alpha * v;
                }
            }
        });
        let mut gradient = acc[1..].to_vec();
        gradient[0] /= alpha0;
        (acc[0], gradient)
    }
}

/// Fit sBG (`free_c` false) or BdW with covariates on `alpha`: the base model first (its
/// estimate, every coefficient 0, is the start; the caller's `opts.start` wins), then all
/// records. The result names the coefficients `coefficient_names`.
pub fn fit_churn_covariates(
    rows: &ChurnCovariateRows<'_>,
    free_c: bool,
    coefficient_names: &[String],
    opts: &FitOptions<'_>,
) -> Result<FitResult> {
    let start = match &opts.start {
        Some(start) => start.clone(),
        None => {
            let data = rows.base_data()?;
            let base = if free_c {
                Bdw::new(&data)
            } else {
                Bdw::shifted_beta_geometric(&data)
            };
            let mut start = fit(&base, opts)?.params;
            start.extend(std::iter::repeat_n(0.0, rows.n_covariates()));
            start
        }
    };
    let k = if free_c { 3 } else { 2 };
    let mut res = fit(
        &ChurnCovariates::new(rows, free_c),
        &FitOptions {
            start: Some(start),
            ..opts.clone()
        },
    )?;
    res.names.truncate(k);
    res.names.extend(coefficient_names.iter().cloned());
    Ok(res)
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
