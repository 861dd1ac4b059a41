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
//!
//! Where to look:
//!
//! - this file: the [`CovariateModel`] trait a model implements, [`Links`] (which coefficient
//!   each covariate column uses), and the entry points [`fit_with_covariates`] and
//!   [`customer_models`];
//! - `rows`: the customers' summaries and covariate matrices ([`CovariateRows`]);
//! - `point`: one point of the parameter space and each customer's shifted parameters;
//! - `columns`: the chain rule from a customer's derivatives in its own parameters to the
//!   shared parameters and the coefficients;
//! - `likelihood`: the likelihood customer by customer, 4 at a time ([`CovariateLikelihood`]);
//! - `groups`: customers grouped by identical covariates, each group through the base model's
//!   own likelihood pass ([`Groups`], [`GroupedLikelihood`]);
//! - `bg_family`, `pareto` and `bgbb`: each model's rows (its [`CovariateModel`]
//!   implementation);
//! - `churn`: sBG and BdW with covariates on `alpha`, from per-customer records (its own
//!   likelihood, like `gamma_gamma`);
//! - `gamma_gamma`: the Gamma-Gamma spend model with covariates on its scale `gamma` (its own
//!   likelihood: one process, three parameters, no [`CovariateModel`]);
//! - `ggnbd`: the GGompertz/NBD with covariates on `alpha` and `beta` (five parameters and a
//!   numerical integral: its own likelihood over dual numbers, no [`CovariateModel`]).
//!
//! [`StaticCovariates`] is what the Python layer dispatches on: the fit and the per-customer
//! models, for every [`CovariateModel`] and for the GGompertz/NBD.

mod bg_family;
mod bgbb;
pub mod churn;
mod columns;
pub mod gamma_gamma;
pub mod ggnbd;
mod groups;
mod likelihood;
mod pareto;
mod point;
mod rows;

pub use ggnbd::{GgNbdCovariateLikelihood, GgNbdGroupedLikelihood};
pub use groups::{GroupedLikelihood, Groups};
pub use likelihood::CovariateLikelihood;
pub use rows::CovariateRows;
pub use rows::{row_slice, standard_layout, RowMajor};

use super::bgnbd::LaneDerivatives;
use super::RfmModel;
use crate::data::{Rfm, RfmNames};
use crate::error::{ClvError, Result};
use crate::fit::{fit, FitOptions, FitResult, Likelihood};
use crate::parallel::Exec;
use crate::special::RisingTerms;
use ndarray::ArrayView2;
use point::Point;

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
    /// purchase rate) for a model that reads `shape` (BG/BB does not), and one sign per process.
    const LINKS: &'static [(usize, Process, f64)];

    /// One customer's log-likelihood with its gradient and, when `SECOND`, its Hessian in the
    /// natural parameters (in [`RfmModel::specs`] order). `ln_params` are the parameters' logs
    /// and `shape` the terms of `r` at the customer's frequency `x` (no covariate shifts `r`, so
    /// a pass reads them from a [`RisingTable`](crate::special::RisingTable)).
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

/// A model that takes time-invariant covariates in its purchase and dropout processes: how it
/// is fitted with them and each customer's model at a fitted point.
pub trait StaticCovariates: RfmModel + Send {
    /// Fit with covariates (the result names the coefficients after [`Links::names`]).
    fn fit_covariates(
        rows: &CovariateRows<'_>,
        links: &Links,
        names: &RfmNames,
        opts: &FitOptions<'_>,
    ) -> Result<FitResult>;

    /// Each customer's model at `params` (model parameters, then coefficients), for
    /// predictions; fails naming the row if a customer's parameters leave their domain.
    fn customer_models(
        rows: &CovariateRows<'_>,
        links: &Links,
        params: &[f64],
        exec: &Exec,
    ) -> Result<Vec<Self>>;
}

impl<M: CovariateModel> StaticCovariates for M {
    fn fit_covariates(
        rows: &CovariateRows<'_>,
        links: &Links,
        names: &RfmNames,
        opts: &FitOptions<'_>,
    ) -> Result<FitResult> {
        fit_with_covariates::<M>(rows, links, names, opts)
    }

    fn customer_models(
        rows: &CovariateRows<'_>,
        links: &Links,
        params: &[f64],
        exec: &Exec,
    ) -> Result<Vec<Self>> {
        customer_models::<M>(rows, links, params, exec)
    }
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
    let hessian = match second {
        Some(h) => std::array::from_fn(|a| std::array::from_fn(|b| h[[a, b]])),
        None => [[f64::NAN; 4]; 4],
    };
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

/// Refuse a non-finite value in a covariate matrix (one row per customer) with columns
/// `column_names`, naming its column and the first offending row (rows in order).
pub(crate) fn check_finite(values: ArrayView2<'_, f64>, column_names: &[String]) -> Result<()> {
    // A plain scan of the slice where there is one: ndarray's indexed iterator took twice
    // as long on a 1M x 5 matrix.
    let first_bad = match values.as_slice() {
        Some(flat) => flat.iter().position(|v| !v.is_finite()).map(|k| {
            let columns = values.ncols();
            ((k / columns, k % columns), &flat[k])
        }),
        None => values.indexed_iter().find(|(_, v)| !v.is_finite()),
    };
    if let Some(((row, column), value)) = first_bad {
        return Err(ClvError::invalid_data(
            &column_names[column],
            Some(row),
            Some(*value),
            "covariate values must be finite numbers (no NaN or missing values)",
        ));
    }
    Ok(())
}

/// Lane `l` of a structure of arrays (`values[m][l]` for parameter `m`).
#[inline(always)]
fn lane(values: &[[f64; 4]; 4], l: usize) -> [f64; 4] {
    [values[0][l], values[1][l], values[2][l], values[3][l]]
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
        M::from_slice(&point.customer::<M>(rows.covariates(i)).0).map_err(|e| {
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
    check_param_count_for(M::specs(), links, params)
}

/// Refuse `params` unless they are valid model parameters (`specs`) followed by one finite
/// value per coefficient of `links`.
fn check_param_count_for(
    specs: &[crate::fit::ParamSpec],
    links: &Links,
    params: &[f64],
) -> Result<()> {
    let k = specs.len();
    let expected = k + links.len();
    if params.len() != expected {
        return Err(ClvError::invalid_parameter(
            "params",
            format!(
                "expected {expected} values ({} model parameters and {} coefficients), got {}",
                k,
                links.len(),
                params.len()
            ),
        ));
    }
    crate::fit::check_params(specs, &params[..k])?;
    if let Some(c) = params[k..].iter().position(|v| !v.is_finite()) {
        return Err(ClvError::invalid_parameter(
            &links.names[c],
            "coefficients must be finite numbers",
        ));
    }
    Ok(())
}

/// The base model's estimate that starts the subsample fit comes from every this-many-th row of
/// the subsample: it only seeds the covariate fit, which moves away from it anyway.
const BASE_START_STRIDE: usize = 5;

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
        start.extend(std::iter::repeat_n(0.0, links.len()));
        Ok(start)
    };
    let mut result = None;
    if rows.len() > crate::fit::WARM_START_ROWS && !links.is_empty() {
        // A subsample first, started from the base model fitted to it; its optimum and
        // curvature start the fit of all rows (the base model is never fitted to all rows).
        let sample = rows.subsample(rows.len() / crate::fit::WARM_START_SAMPLE);
        // (One start suffices there: the fits that follow refine it.)
        let base_start = match start_on(&sample.subsample(BASE_START_STRIDE), true) {
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
        Groups::new(rows, max_groups, &opts.exec)
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
#[cfg(test)]
mod tests {
    use super::rows::matrix;
    use super::*;
    use crate::data::RfmColumns;
    use crate::models::testing::rel;
    use crate::models::{BgNbdParams, MbgNbdParams, ParetoNbdParams};
    use crate::random::Rng;
    use std::borrow::Cow;

    /// Simulated summaries (x, t_x, T), covariate matrices (purchase, dropout) and links.
    pub(super) type Simulated = (Vec<f64>, Vec<f64>, Vec<f64>, Vec<f64>, Vec<f64>, Links);

    /// `n` customers with two purchase covariates (a 0/1 flag and a standard normal) and one
    /// dropout covariate (the flag), histories drawn from `M` at `truth` (shared parameters,
    /// then the purchase coefficients, then the dropout coefficient).
    pub(super) fn simulated<M: CovariateModel>(n: usize, truth: &[f64], seed: u64) -> Simulated {
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
                purchase: matrix(&purchase, 2).into(),
                dropout: matrix(&dropout, 1).into(),
            };
            for i in 0..n {
                let p =
                    M::from_slice(&point::customer_params::<M>(&rows, &links, truth, i)).unwrap();
                let (xi, ti) = p.simulate(&[ages[i]], seed.wrapping_add(i as u64)).unwrap();
                x.push(xi[0]);
                t_x.push(ti[0]);
            }
        }
        (x, t_x, ages, purchase, dropout, links)
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
        let rows = CovariateRows::new(&columns, matrix(&size, 1), matrix(&size, 1));
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
        let rows = CovariateRows::new(
            &columns,
            matrix(&purchase, links.purchase.len()),
            matrix(&dropout, links.dropout.len()),
        );
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
}
