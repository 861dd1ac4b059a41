//! Bindings for the Gamma-Gamma spend model with covariates on `gamma`
//! ([`crate::models::covariates::gamma_gamma`]): the Python layer hands over the spend columns,
//! one covariate matrix (one row per customer) and its column names.

use numpy::{PyArray1, PyReadonlyArray1, PyReadonlyArray2};
use pyo3::prelude::*;
use pyo3::types::PyDict;

use super::bayes::{draws_to_dict, options, parse_priors, Settings};
use super::map::{mode_on, mode_to_dict};
use super::spend::spend_input;
use super::{fit_options, fit_result_to_dict, run, to_numpy};
use crate::error::ClvError;
use crate::fit::{FitOptions, Likelihood};
use crate::models::covariates::gamma_gamma::{
    customer_params, fit_spend_covariates, GammaGammaCovariates, SpendCovariateRows,
};

type Names = (String, String, String);

/// Fit Gamma-Gamma with covariates on `gamma` to the customers with repeat transactions;
/// `covariates` is `customers x columns`, `covariate_names` its columns and `coefficient_names`
/// the names the result gives the coefficients. The dict also holds `n_excluded`.
#[pyfunction]
#[pyo3(signature = (frequency, monetary_value, weights, names, covariates, covariate_names, coefficient_names, penalizer=0.0, covariate_penalizer=0.0, max_iter=0, tol=0.0, n_jobs=None))]
#[allow(clippy::too_many_arguments)]
fn gamma_gamma_fit_covariates<'py>(
    py: Python<'py>,
    frequency: PyReadonlyArray1<'py, f64>,
    monetary_value: PyReadonlyArray1<'py, f64>,
    weights: Option<PyReadonlyArray1<'py, f64>>,
    names: Names,
    covariates: PyReadonlyArray2<'py, f64>,
    covariate_names: Vec<String>,
    coefficient_names: Vec<String>,
    penalizer: f64,
    covariate_penalizer: f64,
    max_iter: u64,
    tol: f64,
    n_jobs: Option<i64>,
) -> PyResult<Bound<'py, PyDict>> {
    let (columns, names) = spend_input(&frequency, &monetary_value, weights.as_ref(), names)?;
    let matrix = covariates.as_array();
    let (res, rows, excluded) = run(py, n_jobs, |exec, interrupt| {
        let rows = SpendCovariateRows::new(&columns, &names, matrix, &covariate_names)?;
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
        let opts = FitOptions {
            coefficient_penalizer: covariate_penalizer,
            ..fit_options(exec, interrupt, penalizer, max_iter, tol)
        };
        let res = fit_spend_covariates(&rows, &coefficient_names, &names, &opts)?;
        Ok((res, rows.len(), rows.excluded))
    })?;
    let d = fit_result_to_dict(py, &res, rows)?;
    d.set_item("n_excluded", excluded)?;
    Ok(d)
}

/// The repeat buyers' rows with covariates, refused when there is none or when the names do not
/// match the matrix.
fn spend_rows<'a>(
    columns: &crate::data::SpendColumns<'_>,
    names: &crate::data::SpendNames,
    matrix: numpy::ndarray::ArrayView2<'a, f64>,
    covariate_names: &[String],
    coefficient_names: &[String],
) -> crate::Result<SpendCovariateRows<'a>> {
    let rows = SpendCovariateRows::new(columns, names, matrix, covariate_names)?;
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
    if rows.is_empty() {
        return Err(ClvError::invalid_data(
            &names.frequency,
            None,
            None,
            "no customer has a repeat transaction (frequency > 0): spend cannot be modelled",
        ));
    }
    Ok(rows)
}

/// Posterior draws of Gamma-Gamma with covariates on `gamma` (the coefficients sampled with
/// `p, q, gamma`, named `coefficient_names`); the dict also holds `n_excluded`.
#[pyfunction]
#[pyo3(signature = (frequency, monetary_value, weights, names, covariates, covariate_names, coefficient_names, priors, settings, n_jobs=None))]
#[allow(clippy::too_many_arguments)]
fn gamma_gamma_sample_covariates<'py>(
    py: Python<'py>,
    frequency: PyReadonlyArray1<'py, f64>,
    monetary_value: PyReadonlyArray1<'py, f64>,
    weights: Option<PyReadonlyArray1<'py, f64>>,
    names: Names,
    covariates: PyReadonlyArray2<'py, f64>,
    covariate_names: Vec<String>,
    coefficient_names: Vec<String>,
    priors: &str,
    settings: Settings,
    n_jobs: Option<i64>,
) -> PyResult<Bound<'py, PyDict>> {
    let (columns, names) = spend_input(&frequency, &monetary_value, weights.as_ref(), names)?;
    let priors = parse_priors(priors)?;
    let matrix = covariates.as_array();
    let (mut draws, rows, total, excluded) = run(py, n_jobs, |exec, interrupt| {
        let rows = spend_rows(
            &columns,
            &names,
            matrix,
            &covariate_names,
            &coefficient_names,
        )?;
        let lik = GammaGammaCovariates::new(&rows);
        let draws = crate::bayes::sample(&lik, &priors, &options(settings, exec, interrupt))?;
        Ok((draws, rows.len(), lik.total_weight(), rows.excluded))
    })?;
    draws.names.truncate(3);
    draws.names.extend(coefficient_names);
    let d = draws_to_dict(py, &draws, rows, total)?;
    d.set_item("n_excluded", excluded)?;
    Ok(d)
}

/// The posterior mode of Gamma-Gamma with covariates on `gamma`; the dict also holds
/// `n_excluded`.
#[pyfunction]
#[pyo3(signature = (frequency, monetary_value, weights, names, covariates, covariate_names, coefficient_names, priors, max_iter=0, tol=0.0, n_jobs=None))]
#[allow(clippy::too_many_arguments)]
fn gamma_gamma_map_covariates<'py>(
    py: Python<'py>,
    frequency: PyReadonlyArray1<'py, f64>,
    monetary_value: PyReadonlyArray1<'py, f64>,
    weights: Option<PyReadonlyArray1<'py, f64>>,
    names: Names,
    covariates: PyReadonlyArray2<'py, f64>,
    covariate_names: Vec<String>,
    coefficient_names: Vec<String>,
    priors: &str,
    max_iter: u64,
    tol: f64,
    n_jobs: Option<i64>,
) -> PyResult<Bound<'py, PyDict>> {
    let (columns, names) = spend_input(&frequency, &monetary_value, weights.as_ref(), names)?;
    let priors = parse_priors(priors)?;
    let matrix = covariates.as_array();
    let (mut mode, excluded) = run(py, n_jobs, |exec, interrupt| {
        let rows = spend_rows(
            &columns,
            &names,
            matrix,
            &covariate_names,
            &coefficient_names,
        )?;
        let lik = GammaGammaCovariates::new(&rows);
        let mode = mode_on(&lik, &priors, rows.len(), exec, interrupt, max_iter, tol)?;
        Ok((mode, rows.excluded))
    })?;
    mode.0.names.truncate(3);
    mode.0.names.extend(coefficient_names);
    let d = mode_to_dict(py, &mode)?;
    d.set_item("n_excluded", excluded)?;
    Ok(d)
}

/// Per-customer `expected_spend` (conditional; the customer's population mean for frequency
/// 0), `population_mean` (mean spend per transaction of a customer with these covariates) or
/// `log_likelihood` (NaN for frequency 0), each customer at their own `gamma`.
#[pyfunction]
#[pyo3(signature = (quantity, params, frequency, monetary_value, names, covariates, covariate_names, n_jobs=None))]
#[allow(clippy::too_many_arguments)]
fn gamma_gamma_predict_covariates<'py>(
    py: Python<'py>,
    quantity: &str,
    params: Vec<f64>,
    frequency: PyReadonlyArray1<'py, f64>,
    monetary_value: PyReadonlyArray1<'py, f64>,
    names: Names,
    covariates: PyReadonlyArray2<'py, f64>,
    covariate_names: Vec<String>,
    n_jobs: Option<i64>,
) -> PyResult<Bound<'py, PyArray1<f64>>> {
    let (columns, names) = spend_input(&frequency, &monetary_value, None, names)?;
    let matrix = covariates.as_array();
    let out = run(py, n_jobs, |exec, _| {
        columns.validate(&names)?;
        if matrix.nrows() != columns.frequency.len() {
            return Err(ClvError::invalid_data(
                "covariates",
                None,
                None,
                format!(
                    "{} rows of covariates for {} customers",
                    matrix.nrows(),
                    columns.frequency.len()
                ),
            ));
        }
        let models = customer_params(&params, matrix, &covariate_names)?;
        let mut out = vec![0.0; models.len()];
        let each = |i: usize| -> crate::Result<f64> {
            let (p, x, m) = (&models[i], columns.frequency[i], columns.monetary[i]);
            match quantity {
                "expected_spend" => p.conditional_expected_spend(x, m),
                "population_mean" => p.population_mean(),
                "log_likelihood" => Ok(if x > 0.0 {
                    p.log_likelihood(x, m)
                } else {
                    f64::NAN
                }),
                other => Err(ClvError::invalid_parameter(
                    "quantity",
                    format!("unknown quantity `{other}`"),
                )),
            }
        };
        // The first failure (in row order) is the error: never a negative or infinite spend.
        let failed = std::sync::Mutex::new(None::<(usize, ClvError)>);
        exec.fill(&mut out, |i| {
            each(i).unwrap_or_else(|e| {
                let mut slot = failed.lock().unwrap_or_else(|p| p.into_inner());
                if slot.as_ref().is_none_or(|(row, _)| i < *row) {
                    *slot = Some((i, e));
                }
                f64::NAN
            })
        });
        if let Some((_, e)) = failed.into_inner().unwrap_or_else(|p| p.into_inner()) {
            return Err(e);
        }
        Ok(out)
    })?;
    Ok(to_numpy(py, out))
}

pub(super) fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(gamma_gamma_fit_covariates, m)?)?;
    m.add_function(wrap_pyfunction!(gamma_gamma_sample_covariates, m)?)?;
    m.add_function(wrap_pyfunction!(gamma_gamma_map_covariates, m)?)?;
    m.add_function(wrap_pyfunction!(gamma_gamma_predict_covariates, m)?)?;
    Ok(())
}
