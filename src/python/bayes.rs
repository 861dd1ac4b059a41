//! Bindings for Bayesian fits (NUTS over a model's likelihood): one sampling function per data
//! layout, returning the draws and the sampler's statistics as a dict of numpy arrays.

use numpy::{PyArray1, PyReadonlyArray1, ToPyArray};
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::PyDict;

use super::rfm::{rfm_names, CovariateArgs, Design, Names};
use super::spend::spend_input;
use super::{rfm_columns, run};
use crate::bayes::{sample, PosteriorDraws, PriorTerm, SampleOptions};
use crate::error::ClvError;
use crate::fit::Likelihood;
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
use crate::models::pnbd_correlated::{
    correlation_at_position, correlations_from_positions, CorrelatedParetoNbdByPosition,
};
use crate::models::{
    BgBbParams, BgNbdParams, CorrelatedParetoNbdParams, GgNbdParams, MbgNbdParams, NbdParams,
    ParetoNbdParams, RfmModel,
};
use crate::parallel::Exec;

/// The sampler's settings as the Python layer hands them over:
/// `(chains, draws, tune, seed, target_accept, max_depth)`.
pub(super) type Settings = (usize, u64, u64, u64, f64, u64);

/// Prior terms from their JSON form (`[{"kind": "single", "index": 0, "prior": {"dist":
/// "gamma", "shape": 2, "rate": 1}}, ...]`).
pub(super) fn parse_priors(priors: &str) -> PyResult<Vec<PriorTerm>> {
    serde_json::from_str(priors)
        .map_err(|e| PyValueError::new_err(format!("priors: not a list of prior terms ({e})")))
}

pub(super) fn options<'a>(
    settings: Settings,
    exec: &Exec,
    interrupt: &'a (dyn Fn() -> bool + Sync),
) -> SampleOptions<'a> {
    let (chains, draws, tune, seed, target_accept, max_depth) = settings;
    SampleOptions {
        chains,
        draws,
        tune,
        seed,
        target_accept,
        max_depth,
        exec: exec.clone(),
        interrupt: Some(interrupt),
    }
}

pub(super) fn draws_to_dict<'py>(
    py: Python<'py>,
    d: &PosteriorDraws,
    n_rows: usize,
    n_observations: f64,
) -> PyResult<Bound<'py, PyDict>> {
    let out = PyDict::new(py);
    out.set_item("names", &d.names)?;
    out.set_item("chains", d.chains)?;
    out.set_item("draws", d.draws)?;
    out.set_item("values", d.values.to_pyarray(py))?;
    out.set_item("log_density", PyArray1::from_slice(py, &d.log_density))?;
    out.set_item("diverging", PyArray1::from_slice(py, &d.diverging))?;
    out.set_item("tree_depth", PyArray1::from_slice(py, &d.tree_depth))?;
    out.set_item(
        "max_depth_reached",
        PyArray1::from_slice(py, &d.max_depth_reached),
    )?;
    out.set_item("n_steps", PyArray1::from_slice(py, &d.n_steps))?;
    out.set_item("step_size", PyArray1::from_slice(py, &d.step_size))?;
    out.set_item("energy", PyArray1::from_slice(py, &d.energy))?;
    out.set_item("tuning_divergences", d.tuning_divergences)?;
    out.set_item("max_depth", d.max_depth)?;
    out.set_item(
        "priors",
        serde_json::to_string(&d.priors).map_err(|e| PyValueError::new_err(e.to_string()))?,
    )?;
    out.set_item("initial_point", &d.initial_point)?;
    out.set_item("initial_point_is_mode", d.initial_point_is_mode)?;
    out.set_item("n_rows", n_rows)?;
    out.set_item("n_observations", n_observations)?;
    Ok(out)
}

fn sample_on<L: Likelihood>(
    lik: &L,
    priors: &[PriorTerm],
    settings: Settings,
    exec: &Exec,
    interrupt: &(dyn Fn() -> bool + Sync),
) -> crate::Result<PosteriorDraws> {
    sample(lik, priors, &options(settings, exec, interrupt))
}

/// Posterior draws of a covariate model (the coefficients with the model's parameters), and
/// the customers' total weight.
fn sample_covariates<M: CovariateModel>(
    rows: &CovariateRows<'_>,
    design: &Design<'_>,
    priors: &[PriorTerm],
    settings: Settings,
    exec: &Exec,
    interrupt: &(dyn Fn() -> bool + Sync),
) -> crate::Result<(PosteriorDraws, f64)> {
    let lik = CovariateLikelihood::<M>::new(rows, &design.links);
    let total = lik.total_weight();
    Ok((sample_on(&lik, priors, settings, exec, interrupt)?, total))
}

/// Posterior draws of a model on (frequency, recency, T) summaries.
///
/// With `covariates` (BG/NBD, MBG/NBD, Pareto/NBD, GGompertz/NBD, BG/BB), the coefficients are sampled with the
/// model's parameters (customer by customer: the covariate likelihood pass of the
/// maximum-likelihood fit) and named after the covariates.
#[pyfunction]
#[pyo3(signature = (model, frequency, recency, T, weights, names, priors, settings, n_jobs=None, covariates=None))]
#[allow(non_snake_case, clippy::too_many_arguments)]
fn rfm_sample<'py>(
    py: Python<'py>,
    model: &str,
    frequency: PyReadonlyArray1<'py, f64>,
    recency: PyReadonlyArray1<'py, f64>,
    T: PyReadonlyArray1<'py, f64>,
    weights: Option<PyReadonlyArray1<'py, f64>>,
    names: Names,
    priors: &str,
    settings: Settings,
    n_jobs: Option<i64>,
    covariates: Option<CovariateArgs<'py>>,
) -> PyResult<Bound<'py, PyDict>> {
    let columns = rfm_columns(&frequency, &recency, &T, weights.as_ref())?;
    let names = rfm_names(names);
    let priors = parse_priors(priors)?;
    if let Some(args) = &covariates {
        let design = Design::new(args)?;
        let (mut draws, rows, total) = run(py, n_jobs, |exec, interrupt| {
            columns.validate_on(&names, exec)?;
            let rows = design.rows(&columns)?;
            crate::models::check_fittable(&rows.frequency, &names)?;
            let (draws, total) = match model {
                "bgnbd" => sample_covariates::<BgNbdParams>(
                    &rows, &design, &priors, settings, exec, interrupt,
                ),
                "mbgnbd" => sample_covariates::<MbgNbdParams>(
                    &rows, &design, &priors, settings, exec, interrupt,
                ),
                "pnbd" => sample_covariates::<ParetoNbdParams>(
                    &rows, &design, &priors, settings, exec, interrupt,
                ),
                "ggnbd" => {
                    let lik = GgNbdCovariateLikelihood::new(&rows, &design.links);
                    let total = lik.total_weight();
                    sample_on(&lik, &priors, settings, exec, interrupt).map(|d| (d, total))
                }
                "bgbb" => {
                    BgBbParams::validate_more(&columns, &names)?;
                    sample_covariates::<BgBbParams>(
                        &rows, &design, &priors, settings, exec, interrupt,
                    )
                }
                other => Err(ClvError::invalid_parameter(
                    "model",
                    format!(
                        "`{other}` does not take covariates \\
                         (BG/NBD, MBG/NBD, Pareto/NBD, GGompertz/NBD and BG/BB do)"
                    ),
                )),
            }?;
            Ok((draws, rows.len(), total))
        })?;
        let base = draws.names.len() - design.links.len();
        draws.names.truncate(base);
        draws.names.extend(design.links.names.iter().cloned());
        return draws_to_dict(py, &draws, rows, total);
    }
    let (draws, rows, total) = run(py, n_jobs, |exec, interrupt| {
        columns.validate_on(&names, exec)?;
        if model == "bgbb" {
            BgBbParams::validate_more(&columns, &names)?;
        }
        let data = columns.compress_on(exec);
        crate::models::check_fittable(&data.frequency, &names)?;
        let draws = match model {
            "bgnbd" => sample_on(
                &BgNbd::with_variant(&data, false),
                &priors,
                settings,
                exec,
                interrupt,
            ),
            "mbgnbd" => sample_on(
                &BgNbd::with_variant(&data, true),
                &priors,
                settings,
                exec,
                interrupt,
            ),
            "pnbd" => sample_on(&ParetoNbd::new(&data), &priors, settings, exec, interrupt),
            "ggnbd" => sample_on(&GgNbd::new(&data), &priors, settings, exec, interrupt),
            "bgbb" => sample_on(&BgBb::new(&data), &priors, settings, exec, interrupt),
            "nbd" => sample_on(&Nbd { data: &data }, &priors, settings, exec, interrupt),
            "pnbdcor" => {
                // Sampled in the correlation's position within its range (see
                // `POSITION_PARAMS`), stored as the correlation itself.
                let lik = CorrelatedParetoNbdByPosition::new(&data);
                sample_on(&lik, &priors, settings, exec, interrupt).map(|mut d| {
                    correlations_from_positions(d.values.view_mut());
                    d.initial_point[4] = correlation_at_position(&d.initial_point).0;
                    d
                })
            }
            other => Err(ClvError::invalid_parameter(
                "model",
                format!("unknown model `{other}`"),
            )),
        }?;
        Ok((draws, data.len(), data.total_weight()))
    })?;
    // (The parameter types name the same parameters as the likelihoods; checked here so that a
    // renamed parameter cannot silently mislabel draws.)
    let expected: &[crate::fit::ParamSpec] = match model {
        "bgnbd" | "mbgnbd" => BgNbdParams::specs(),
        "pnbd" => ParetoNbdParams::specs(),
        "ggnbd" => GgNbdParams::specs(),
        "pnbdcor" => CorrelatedParetoNbdParams::specs(),
        "nbd" => NbdParams::specs(),
        _ => BgBbParams::specs(),
    };
    debug_assert!(expected
        .iter()
        .map(|s| s.name)
        .eq(draws.names.iter().map(|s| s.as_str())));
    draws_to_dict(py, &draws, rows, total)
}

/// Posterior draws of Gamma-Gamma on the customers with repeat transactions.
#[pyfunction]
#[pyo3(signature = (frequency, monetary_value, weights, names, priors, settings, n_jobs=None))]
#[allow(clippy::too_many_arguments)]
fn gamma_gamma_sample<'py>(
    py: Python<'py>,
    frequency: PyReadonlyArray1<'py, f64>,
    monetary_value: PyReadonlyArray1<'py, f64>,
    weights: Option<PyReadonlyArray1<'py, f64>>,
    names: (String, String, String),
    priors: &str,
    settings: Settings,
    n_jobs: Option<i64>,
) -> PyResult<Bound<'py, PyDict>> {
    let (columns, names) = spend_input(&frequency, &monetary_value, weights.as_ref(), names)?;
    let priors = parse_priors(priors)?;
    let (draws, rows, total, excluded) = run(py, n_jobs, |exec, interrupt| {
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
        let draws = sample_on(&lik, &priors, settings, exec, interrupt)?;
        Ok((
            draws,
            data.frequency.len(),
            lik.total_weight(),
            data.excluded,
        ))
    })?;
    let d = draws_to_dict(py, &draws, rows, total)?;
    d.set_item("n_excluded", excluded)?;
    Ok(d)
}

/// Posterior draws of sBG or BdW from survivor counts or per-customer records.
#[pyfunction]
#[pyo3(signature = (model, priors, settings, survivors=None, periods=None, churned=None, weights=None))]
#[allow(clippy::too_many_arguments)]
fn churn_sample<'py>(
    py: Python<'py>,
    model: &str,
    priors: &str,
    settings: Settings,
    survivors: Option<PyReadonlyArray1<'py, f64>>,
    periods: Option<PyReadonlyArray1<'py, f64>>,
    churned: Option<PyReadonlyArray1<'py, f64>>,
    weights: Option<PyReadonlyArray1<'py, f64>>,
) -> PyResult<Bound<'py, PyDict>> {
    let arrays = super::contractual::ChurnArrays::new(&survivors, &periods, &churned, &weights)?;
    let priors = parse_priors(priors)?;
    // (Chains run on all cores, or CLVRS_NUM_THREADS: the contractual models take no n_jobs.)
    let (draws, rows, total) = run(py, None, |exec, interrupt| {
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
        let draws = sample_on(&lik, &priors, settings, exec, interrupt)?;
        Ok((draws, data.periods.len(), lik.total_weight()))
    })?;
    draws_to_dict(py, &draws, rows, total)
}

pub(super) fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(rfm_sample, m)?)?;
    m.add_function(wrap_pyfunction!(gamma_gamma_sample, m)?)?;
    m.add_function(wrap_pyfunction!(churn_sample, m)?)?;
    Ok(())
}
