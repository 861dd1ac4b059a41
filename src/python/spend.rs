//! Bindings for the Gamma-Gamma spend model.

use numpy::{PyArray1, PyReadonlyArray1};
use pyo3::prelude::*;
use pyo3::types::PyDict;

use super::{fit_options, fit_result_to_dict, run, slice, to_numpy};
use crate::data::{SpendColumns, SpendNames};
use crate::error::ClvError;
use crate::models::gamma_gamma::{fit_in_units, GammaGammaParams};

type Names = (String, String, String);

fn spend_names(names: Names) -> SpendNames {
    SpendNames {
        frequency: names.0,
        monetary: names.1,
        weights: names.2,
    }
}

/// The spend columns and their names as every Gamma-Gamma binding (fit, NUTS, MAP) takes them.
pub(super) fn spend_input<'a>(
    frequency: &'a PyReadonlyArray1<'_, f64>,
    monetary_value: &'a PyReadonlyArray1<'_, f64>,
    weights: Option<&'a PyReadonlyArray1<'_, f64>>,
    names: Names,
) -> PyResult<(SpendColumns<'a>, SpendNames)> {
    let columns = SpendColumns {
        frequency: slice(frequency, "frequency")?,
        monetary: slice(monetary_value, "monetary_value")?,
        weights: weights.map(|w| slice(w, "weights")).transpose()?,
    };
    Ok((columns, spend_names(names)))
}

/// Fit Gamma-Gamma on the customers with repeat transactions; the dict also holds `n_excluded`
/// (the weight of customers with none).
#[pyfunction]
#[pyo3(signature = (frequency, monetary_value, weights, names, penalizer=0.0, max_iter=0, tol=0.0, n_jobs=None))]
#[allow(clippy::too_many_arguments)]
fn gamma_gamma_fit<'py>(
    py: Python<'py>,
    frequency: PyReadonlyArray1<'py, f64>,
    monetary_value: PyReadonlyArray1<'py, f64>,
    weights: Option<PyReadonlyArray1<'py, f64>>,
    names: Names,
    penalizer: f64,
    max_iter: u64,
    tol: f64,
    n_jobs: Option<i64>,
) -> PyResult<Bound<'py, PyDict>> {
    let (columns, names) = spend_input(&frequency, &monetary_value, weights.as_ref(), names)?;
    let (res, rows, excluded) = run(py, n_jobs, |exec, interrupt| {
        columns.validate(&names)?;
        let data = columns.compress();
        if data.is_empty() {
            return Err(ClvError::invalid_data(
                &names.frequency,
                None,
                None,
                "no customer has a repeat transaction (frequency > 0): spend cannot be modelled",
            ));
        }
        let opts = fit_options(exec, interrupt, penalizer, max_iter, tol);
        Ok((fit_in_units(&data, &opts)?, data.len(), data.excluded))
    })?;
    let d = fit_result_to_dict(py, &res, rows)?;
    d.set_item("n_excluded", excluded)?;
    Ok(d)
}

/// Per-customer `expected_spend` (conditional; the population mean for frequency 0) or
/// `log_likelihood` (NaN for frequency 0, which carries no spend information).
#[pyfunction]
#[pyo3(signature = (quantity, params, frequency, monetary_value, names, n_jobs=None))]
fn gamma_gamma_predict<'py>(
    py: Python<'py>,
    quantity: &str,
    params: Vec<f64>,
    frequency: PyReadonlyArray1<'py, f64>,
    monetary_value: PyReadonlyArray1<'py, f64>,
    names: Names,
    n_jobs: Option<i64>,
) -> PyResult<Bound<'py, PyArray1<f64>>> {
    let columns = SpendColumns {
        frequency: slice(&frequency, "frequency")?,
        monetary: slice(&monetary_value, "monetary_value")?,
        weights: None,
    };
    let names = spend_names(names);
    let out = run(py, n_jobs, |exec, _| {
        let p = GammaGammaParams::from_slice(&params)?;
        columns.validate(&names)?;
        let mut out = vec![0.0; columns.frequency.len()];
        match quantity {
            "expected_spend" => {
                // Refuse rather than return a negative or infinite spend.
                if columns.frequency.contains(&0.0) {
                    p.population_mean()?;
                }
                let failed = std::sync::Mutex::new(None);
                exec.fill(&mut out, |i| {
                    p.conditional_expected_spend(columns.frequency[i], columns.monetary[i])
                        .unwrap_or_else(|e| {
                            failed
                                .lock()
                                .unwrap_or_else(|p| p.into_inner())
                                .get_or_insert(e);
                            f64::NAN
                        })
                });
                if let Some(e) = failed.into_inner().unwrap_or_else(|p| p.into_inner()) {
                    return Err(e);
                }
            }
            "log_likelihood" => exec.fill(&mut out, |i| {
                let x = columns.frequency[i];
                if x > 0.0 {
                    p.log_likelihood(x, columns.monetary[i])
                } else {
                    f64::NAN
                }
            }),
            other => {
                return Err(ClvError::invalid_parameter(
                    "quantity",
                    format!("unknown quantity `{other}`"),
                ))
            }
        }
        Ok(out)
    })?;
    Ok(to_numpy(py, out))
}

/// The population mean spend per transaction (an error when it is infinite, q <= 1).
#[pyfunction]
fn gamma_gamma_population_mean(py: Python<'_>, params: Vec<f64>) -> PyResult<f64> {
    run(py, Some(1), |_, _| {
        GammaGammaParams::from_slice(&params)?.population_mean()
    })
}

pub(super) fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(gamma_gamma_fit, m)?)?;
    m.add_function(wrap_pyfunction!(gamma_gamma_predict, m)?)?;
    m.add_function(wrap_pyfunction!(gamma_gamma_population_mean, m)?)?;
    Ok(())
}
