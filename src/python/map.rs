//! Bindings for MAP fits (`method="map"`): the posterior mode under the same priors as the
//! NUTS fits ([`crate::bayes::posterior_mode`]), by the maximum-likelihood engine, returned
//! like a maximum-likelihood fit with the log posterior and the priors used.

use numpy::PyReadonlyArray1;
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::PyDict;

use super::bayes::parse_priors;
use super::rfm::{rfm_names, CovariateArgs, Design, Names};
use super::spend::spend_input;
use super::{fit_options, fit_result_to_dict, rfm_columns, run};
use crate::bayes::{posterior_mode, PriorTerm};
use crate::error::ClvError;
use crate::fit::{FitResult, Likelihood};
use crate::models::bdw::Bdw;
use crate::models::bgbb::BgBb;
use crate::models::bgnbd::BgNbd;
use crate::models::covariates::{
    CovariateLikelihood, CovariateModel, CovariateRows, GgNbdCovariateLikelihood,
};
use crate::models::gamma_gamma::GammaGamma;
use crate::models::ggnbd::GgNbd;
use crate::models::nbd::Nbd;
use crate::models::pnbd::ParetoNbd;
use crate::models::pnbd_correlated::{fit_from_positions, CorrelatedParetoNbdByPosition};
use crate::models::{BgBbParams, BgNbdParams, MbgNbdParams, ParetoNbdParams, RfmModel};
use crate::parallel::Exec;

/// A MAP fit, the log posterior at the mode, the priors used and the fit's row count.
pub(super) type Mode = (FitResult, f64, Vec<PriorTerm>, usize);

pub(super) fn mode_on<L: Likelihood>(
    lik: &L,
    priors: &[PriorTerm],
    rows: usize,
    exec: &Exec,
    interrupt: &(dyn Fn() -> bool + Sync),
    max_iter: u64,
    tol: f64,
) -> crate::Result<Mode> {
    let (fit, log_posterior, priors) = posterior_mode(
        lik,
        priors,
        &fit_options(exec, interrupt, 0.0, max_iter, tol),
    )?;
    Ok((fit, log_posterior, priors, rows))
}

pub(super) fn mode_to_dict<'py>(py: Python<'py>, mode: &Mode) -> PyResult<Bound<'py, PyDict>> {
    let (fit, log_posterior, priors, rows) = mode;
    let d = fit_result_to_dict(py, fit, *rows)?;
    d.set_item("log_posterior", *log_posterior)?;
    d.set_item(
        "priors",
        serde_json::to_string(priors).map_err(|e| PyValueError::new_err(e.to_string()))?,
    )?;
    Ok(d)
}

fn mode_covariates<M: CovariateModel>(
    rows: &CovariateRows<'_>,
    design: &Design<'_>,
    priors: &[PriorTerm],
    exec: &Exec,
    interrupt: &(dyn Fn() -> bool + Sync),
    max_iter: u64,
    tol: f64,
) -> crate::Result<Mode> {
    let lik = CovariateLikelihood::<M>::new(rows, &design.links);
    mode_on(&lik, priors, rows.len(), exec, interrupt, max_iter, tol)
}

/// The posterior mode of a model on (frequency, recency, T) summaries (with covariates for
/// BG/NBD, MBG/NBD, Pareto/NBD, GGompertz/NBD and BG/BB).
#[pyfunction]
#[pyo3(signature = (model, frequency, recency, T, weights, names, priors, max_iter=0, tol=0.0, n_jobs=None, covariates=None))]
#[allow(non_snake_case, clippy::too_many_arguments)]
fn rfm_map<'py>(
    py: Python<'py>,
    model: &str,
    frequency: PyReadonlyArray1<'py, f64>,
    recency: PyReadonlyArray1<'py, f64>,
    T: PyReadonlyArray1<'py, f64>,
    weights: Option<PyReadonlyArray1<'py, f64>>,
    names: Names,
    priors: &str,
    max_iter: u64,
    tol: f64,
    n_jobs: Option<i64>,
    covariates: Option<CovariateArgs<'py>>,
) -> PyResult<Bound<'py, PyDict>> {
    let columns = rfm_columns(&frequency, &recency, &T, weights.as_ref())?;
    let names = rfm_names(names);
    let priors = parse_priors(priors)?;
    if let Some(args) = &covariates {
        let design = Design::new(args)?;
        let mut mode = run(py, n_jobs, |exec, interrupt| {
            columns.validate_on(&names, exec)?;
            let rows = design.rows(&columns)?;
            crate::models::check_fittable(&rows.frequency, &names)?;
            match model {
                "bgnbd" => mode_covariates::<BgNbdParams>(
                    &rows, &design, &priors, exec, interrupt, max_iter, tol,
                ),
                "mbgnbd" => mode_covariates::<MbgNbdParams>(
                    &rows, &design, &priors, exec, interrupt, max_iter, tol,
                ),
                "pnbd" => mode_covariates::<ParetoNbdParams>(
                    &rows, &design, &priors, exec, interrupt, max_iter, tol,
                ),
                "ggnbd" => mode_on(
                    &GgNbdCovariateLikelihood::new(&rows, &design.links),
                    &priors,
                    rows.len(),
                    exec,
                    interrupt,
                    max_iter,
                    tol,
                ),
                "bgbb" => {
                    BgBbParams::validate_more(&columns, &names)?;
                    mode_covariates::<BgBbParams>(
                        &rows, &design, &priors, exec, interrupt, max_iter, tol,
                    )
                }
                other => Err(ClvError::invalid_parameter(
                    "model",
                    format!(
                        "`{other}` does not take covariates \\
                         (BG/NBD, MBG/NBD, Pareto/NBD, GGompertz/NBD and BG/BB do)"
                    ),
                )),
            }
        })?;
        let base = mode.0.names.len() - design.links.len();
        mode.0.names.truncate(base);
        mode.0.names.extend(design.links.names.iter().cloned());
        return mode_to_dict(py, &mode);
    }
    let mode = run(py, n_jobs, |exec, interrupt| {
        columns.validate_on(&names, exec)?;
        if model == "bgbb" {
            BgBbParams::validate_more(&columns, &names)?;
        }
        let data = columns.compress_on(exec);
        crate::models::check_fittable(&data.frequency, &names)?;
        let rows = data.len();
        // Every model's mode with the same arguments.
        macro_rules! mode {
            ($lik:expr) => {
                mode_on(&$lik, &priors, rows, exec, interrupt, max_iter, tol)
            };
        }
        match model {
            "bgnbd" => mode!(BgNbd::with_variant(&data, false)),
            "mbgnbd" => mode!(BgNbd::with_variant(&data, true)),
            "pnbd" => mode!(ParetoNbd::new(&data)),
            "ggnbd" => mode!(GgNbd::new(&data)),
            "bgbb" => mode!(BgBb::new(&data)),
            "nbd" => mode!(Nbd { data: &data }),
            "pnbdcor" => mode!(CorrelatedParetoNbdByPosition::new(&data)).map(|mut mode| {
                fit_from_positions(&mut mode.0);
                mode
            }),
            other => Err(ClvError::invalid_parameter(
                "model",
                format!("unknown model `{other}`"),
            )),
        }
    })?;
    mode_to_dict(py, &mode)
}

/// The posterior mode of Gamma-Gamma on the customers with repeat transactions.
#[pyfunction]
#[pyo3(signature = (frequency, monetary_value, weights, names, priors, max_iter=0, tol=0.0, n_jobs=None))]
#[allow(clippy::too_many_arguments)]
fn gamma_gamma_map<'py>(
    py: Python<'py>,
    frequency: PyReadonlyArray1<'py, f64>,
    monetary_value: PyReadonlyArray1<'py, f64>,
    weights: Option<PyReadonlyArray1<'py, f64>>,
    names: (String, String, String),
    priors: &str,
    max_iter: u64,
    tol: f64,
    n_jobs: Option<i64>,
) -> PyResult<Bound<'py, PyDict>> {
    let (columns, names) = spend_input(&frequency, &monetary_value, weights.as_ref(), names)?;
    let priors = parse_priors(priors)?;
    let (mode, excluded) = run(py, n_jobs, |exec, interrupt| {
        columns.validate(&names)?;
        let data = columns.compress();
        if data.frequency.is_empty() {
            return Err(ClvError::invalid_data(
                &names.frequency,
                None,
                None,
                "no customer has a repeat transaction (frequency > 0): spend cannot be modelled",
            ));
        }
        let lik = GammaGamma::new(&data);
        let mode = mode_on(
            &lik,
            &priors,
            data.frequency.len(),
            exec,
            interrupt,
            max_iter,
            tol,
        )?;
        Ok((mode, data.excluded))
    })?;
    let d = mode_to_dict(py, &mode)?;
    d.set_item("n_excluded", excluded)?;
    Ok(d)
}

/// The posterior mode of sBG or BdW from survivor counts or per-customer records.
#[pyfunction]
#[pyo3(signature = (model, priors, survivors=None, periods=None, churned=None, weights=None, max_iter=0, tol=0.0))]
#[allow(clippy::too_many_arguments)]
fn churn_map<'py>(
    py: Python<'py>,
    model: &str,
    priors: &str,
    survivors: Option<PyReadonlyArray1<'py, f64>>,
    periods: Option<PyReadonlyArray1<'py, f64>>,
    churned: Option<PyReadonlyArray1<'py, f64>>,
    weights: Option<PyReadonlyArray1<'py, f64>>,
    max_iter: u64,
    tol: f64,
) -> PyResult<Bound<'py, PyDict>> {
    let arrays = super::contractual::ChurnArrays::new(&survivors, &periods, &churned, &weights)?;
    let priors = parse_priors(priors)?;
    let mode = run(py, None, |exec, interrupt| {
        let data = arrays.data()?;
        let lik = match model {
            "sbg" => Bdw::shifted_beta_geometric(&data),
            "bdw" => Bdw::new(&data),
            other => {
                return Err(ClvError::invalid_parameter(
                    "model",
                    format!("unknown model `{other}`"),
                ))
            }
        };
        mode_on(
            &lik,
            &priors,
            data.periods.len(),
            exec,
            interrupt,
            max_iter,
            tol,
        )
    })?;
    mode_to_dict(py, &mode)
}

pub(super) fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(rfm_map, m)?)?;
    m.add_function(wrap_pyfunction!(gamma_gamma_map, m)?)?;
    m.add_function(wrap_pyfunction!(churn_map, m)?)?;
    Ok(())
}
