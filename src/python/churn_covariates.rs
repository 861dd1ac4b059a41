//! Bindings for sBG and BdW with covariates on `alpha`
//! ([`crate::models::covariates::churn`]): per-customer records, one covariate matrix (one row
//! per customer) and its column names.

use numpy::{PyArray1, PyReadonlyArray1, PyReadonlyArray2};
use pyo3::prelude::*;
use pyo3::types::PyDict;

use super::bayes::{draws_to_dict, options, parse_priors, Settings};
use super::contractual::{check_churn_periods, churn_second_argument};
use super::map::{mode_on, mode_to_dict};
use super::{fit_options, fit_result_to_dict, run, slice, to_numpy};
use crate::data::check_lengths;
use crate::error::ClvError;
use crate::fit::{FitOptions, Likelihood};
use crate::models::covariates::churn::{
    customer_params, fit_churn_covariates, model_parameters, ChurnCovariateRows, ChurnCovariates,
};

/// The validated records of `model` with their covariates, and whether `c` is free (BdW).
#[allow(clippy::too_many_arguments)]
fn churn_rows<'a>(
    model: &str,
    periods: &[f64],
    churned: &[f64],
    weights: Option<&[f64]>,
    matrix: numpy::ndarray::ArrayView2<'a, f64>,
    covariate_names: &[String],
    coefficient_names: &[String],
) -> crate::Result<(ChurnCovariateRows<'a>, bool)> {
    let free_c = model_parameters(model)? == 3;
    if let Some(w) = weights {
        check_lengths(&[("weights", w.len())], periods.len())?;
    }
    let rows = ChurnCovariateRows::new(periods, churned, weights, matrix, covariate_names)?;
    if coefficient_names.len() != rows.n_covariates() {
        return Err(ClvError::invalid_parameter(
            "covariates",
            format!(
                "{} columns but {} coefficient names",
                rows.n_covariates(),
                coefficient_names.len()
            ),
        ));
    }
    Ok((rows, free_c))
}

/// Posterior draws (`bayesian`) or the posterior mode of sBG/BdW with covariates on `alpha`.
#[pyfunction]
#[pyo3(signature = (model, periods, churned, weights, covariates, covariate_names, coefficient_names, priors, settings=None, max_iter=0, tol=0.0))]
#[allow(clippy::too_many_arguments)]
fn churn_bayes_covariates<'py>(
    py: Python<'py>,
    model: &str,
    periods: PyReadonlyArray1<'py, f64>,
    churned: PyReadonlyArray1<'py, f64>,
    weights: Option<PyReadonlyArray1<'py, f64>>,
    covariates: PyReadonlyArray2<'py, f64>,
    covariate_names: Vec<String>,
    coefficient_names: Vec<String>,
    priors: &str,
    settings: Option<Settings>,
    max_iter: u64,
    tol: f64,
) -> PyResult<Bound<'py, PyDict>> {
    let periods = slice(&periods, "periods")?;
    let churned = slice(&churned, "churned")?;
    let weights = weights.as_ref().map(|w| slice(w, "weights")).transpose()?;
    let matrix = covariates.as_array();
    let priors = parse_priors(priors)?;
    let names = &coefficient_names;
    let rows_of = || {
        churn_rows(
            model,
            periods,
            churned,
            weights,
            matrix,
            &covariate_names,
            names,
        )
    };
    // (The model's name is checked inside `rows_of`.)
    let k = if model == "bdw" { 3 } else { 2 };
    match settings {
        Some(settings) => {
            let (mut draws, rows, total) = run(py, None, |exec, interrupt| {
                let (rows, free_c) = rows_of()?;
                let lik = ChurnCovariates::new(&rows, free_c);
                let draws =
                    crate::bayes::sample(&lik, &priors, &options(settings, exec, interrupt))?;
                Ok((draws, rows.len(), lik.total_weight()))
            })?;
            draws.names.truncate(k);
            draws.names.extend(coefficient_names.iter().cloned());
            draws_to_dict(py, &draws, rows, total)
        }
        None => {
            let mut mode = run(py, None, |exec, interrupt| {
                let (rows, free_c) = rows_of()?;
                let lik = ChurnCovariates::new(&rows, free_c);
                mode_on(&lik, &priors, rows.len(), exec, interrupt, max_iter, tol)
            })?;
            mode.0.names.truncate(k);
            mode.0.names.extend(coefficient_names.iter().cloned());
            mode_to_dict(py, &mode)
        }
    }
}

/// Fit sBG (`model="sbg"`) or BdW (`"bdw"`) with covariates on `alpha` to per-customer
/// records; returns the fit as a dict.
#[pyfunction]
#[pyo3(signature = (model, periods, churned, weights, covariates, covariate_names, coefficient_names, penalizer=0.0, covariate_penalizer=0.0, max_iter=0, tol=0.0, n_jobs=None))]
#[allow(clippy::too_many_arguments)]
fn churn_fit_covariates<'py>(
    py: Python<'py>,
    model: &str,
    periods: PyReadonlyArray1<'py, f64>,
    churned: PyReadonlyArray1<'py, f64>,
    weights: Option<PyReadonlyArray1<'py, f64>>,
    covariates: PyReadonlyArray2<'py, f64>,
    covariate_names: Vec<String>,
    coefficient_names: Vec<String>,
    penalizer: f64,
    covariate_penalizer: f64,
    max_iter: u64,
    tol: f64,
    n_jobs: Option<i64>,
) -> PyResult<Bound<'py, PyDict>> {
    let periods = slice(&periods, "periods")?;
    let churned = slice(&churned, "churned")?;
    let weights = weights.as_ref().map(|w| slice(w, "weights")).transpose()?;
    let matrix = covariates.as_array();
    let (res, rows) = run(py, n_jobs, |exec, interrupt| {
        let (rows, free_c) = churn_rows(
            model,
            periods,
            churned,
            weights,
            matrix,
            &covariate_names,
            &coefficient_names,
        )?;
        let opts = FitOptions {
            coefficient_penalizer: covariate_penalizer,
            ..fit_options(exec, interrupt, penalizer, max_iter, tol)
        };
        Ok((
            fit_churn_covariates(&rows, free_c, &coefficient_names, &opts)?,
            rows.len(),
        ))
    })?;
    fit_result_to_dict(py, &res, rows)
}

/// Per-customer predictions, each customer at their own `alpha`: `survival`,
/// `churn_probability`, `retention_rate` (of period `t`), `probability_active` and
/// `expected_renewals` (`k` periods after tenure `t`), `residual_lifetime` (DERL at tenure `t`
/// with discount rate `k`). `t` and `k` hold one value per customer.
#[pyfunction]
#[pyo3(signature = (model, quantity, params, covariates, covariate_names, t, k=None))]
#[allow(clippy::too_many_arguments)]
fn churn_predict_covariates<'py>(
    py: Python<'py>,
    model: &str,
    quantity: &str,
    params: Vec<f64>,
    covariates: PyReadonlyArray2<'py, f64>,
    covariate_names: Vec<String>,
    t: PyReadonlyArray1<'py, f64>,
    k: Option<PyReadonlyArray1<'py, f64>>,
) -> PyResult<Bound<'py, PyArray1<f64>>> {
    let t = slice(&t, "t")?;
    let k = k.as_ref().map(|k| slice(k, "k")).transpose()?;
    let matrix = covariates.as_array();
    let out = run(py, Some(1), |_, _| {
        let customers = customer_params(model, &params, matrix, &covariate_names)?;
        check_lengths(&[("t", t.len())], customers.len())?;
        check_churn_periods(quantity, t)?;
        let second = |name: &str| churn_second_argument(quantity, name, k, t.len());
        let each = customers.iter().zip(t);
        let out: Vec<f64> = match quantity {
            "survival" => each.map(|(p, &t)| p.survival(t)).collect(),
            "churn_probability" => each.map(|(p, &t)| p.churn_probability(t)).collect(),
            "retention_rate" => each.map(|(p, &t)| p.retention_rate(t)).collect(),
            "probability_active" => {
                let k = second("periods")?;
                each.zip(k)
                    .map(|((p, &t), &k)| p.probability_active(t, k))
                    .collect()
            }
            "expected_renewals" => {
                let k = second("periods")?;
                each.zip(k)
                    .map(|((p, &t), &k)| p.expected_renewals(t, k))
                    .collect()
            }
            "residual_lifetime" => {
                let k = second("discount_rate")?;
                each.zip(k)
                    .map(|((p, &t), &d)| p.discounted_expected_residual_lifetime(t, d))
                    .collect::<crate::Result<Vec<f64>>>()?
            }
            other => {
                return Err(ClvError::invalid_parameter(
                    "quantity",
                    format!("unknown quantity `{other}`"),
                ))
            }
        };
        Ok(out)
    })?;
    Ok(to_numpy(py, out))
}

pub(super) fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(churn_fit_covariates, m)?)?;
    m.add_function(wrap_pyfunction!(churn_bayes_covariates, m)?)?;
    m.add_function(wrap_pyfunction!(churn_predict_covariates, m)?)?;
    Ok(())
}
