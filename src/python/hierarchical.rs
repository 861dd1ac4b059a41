//! Bindings for partial pooling across segments (one joint NUTS run over every segment's
//! parameters and the population's; [`crate::bayes::hierarchical`]).

use numpy::{PyArray1, PyReadonlyArray1};
use pyo3::prelude::*;
use pyo3::types::PyDict;

use super::bayes::{draws_to_dict, options, parse_priors, Settings};
use super::rfm::{rfm_names, Names};
use super::{rfm_columns, run};
use crate::bayes::hierarchical::{sample_pooled, PooledDraws};
use crate::bayes::{PriorTerm, SampleOptions};
use crate::error::ClvError;
use crate::fit::Likelihood;
use crate::models::bgbb::BgBb;
use crate::models::bgnbd::BgNbd;
use crate::models::ggnbd::GgNbd;
use crate::models::pnbd::ParetoNbd;
use crate::models::{BgBbParams, RfmModel};
use crate::segments::{rows_data, split_rows};

fn pooled<L: Likelihood>(
    segments: Vec<L>,
    priors: &[PriorTerm],
    opts: &SampleOptions<'_>,
) -> crate::Result<PooledDraws> {
    sample_pooled(&segments, priors, opts)
}

/// Posterior draws of a model fitted to every segment with partial pooling: row `i` belongs
/// to segment `codes[i]` in `0..n_segments`. The draws' columns are the population means and
/// spreads (unconstrained scale), then each segment's parameters.
#[pyfunction]
#[pyo3(signature = (model, frequency, recency, T, weights, codes, n_segments, names, priors, settings, n_jobs=None))]
#[allow(non_snake_case, clippy::too_many_arguments)]
fn rfm_sample_pooled<'py>(
    py: Python<'py>,
    model: &str,
    frequency: PyReadonlyArray1<'py, f64>,
    recency: PyReadonlyArray1<'py, f64>,
    T: PyReadonlyArray1<'py, f64>,
    weights: Option<PyReadonlyArray1<'py, f64>>,
    codes: PyReadonlyArray1<'py, i64>,
    n_segments: usize,
    names: Names,
    priors: &str,
    settings: Settings,
    n_jobs: Option<i64>,
) -> PyResult<Bound<'py, PyDict>> {
    let columns = rfm_columns(&frequency, &recency, &T, weights.as_ref())?;
    let codes = codes.as_slice()?;
    let names = rfm_names(names);
    let priors = parse_priors(priors)?;
    let (draws, rows, customers) = run(py, n_jobs, |exec, interrupt| {
        columns.validate_on(&names, exec)?;
        if model == "bgbb" {
            BgBbParams::validate_more(&columns, &names)?;
        }
        crate::data::check_lengths(&[("segment", codes.len())], columns.len())?;
        crate::models::check_fittable(columns.frequency, &names)?;
        let (order, starts) = split_rows(codes, n_segments)?;
        let ids: Vec<usize> = (0..n_segments).collect();
        let data = exec.map(&ids, |&s| {
            rows_data(&columns, &order[starts[s]..starts[s + 1]])
        });
        let opts = options(settings, exec, interrupt);
        let draws = match model {
            "bgnbd" | "mbgnbd" => pooled(
                data.iter()
                    .map(|d| BgNbd::with_variant(d, model == "mbgnbd"))
                    .collect(),
                &priors,
                &opts,
            ),
            "pnbd" => pooled(data.iter().map(ParetoNbd::new).collect(), &priors, &opts),
            "ggnbd" => pooled(data.iter().map(GgNbd::new).collect(), &priors, &opts),
            "bgbb" => pooled(data.iter().map(BgBb::new).collect(), &priors, &opts),
            other => Err(ClvError::invalid_parameter(
                "model",
                format!("`{other}` has no partial pooling"),
            )),
        }?;
        let rows: Vec<usize> = data.iter().map(|d| d.len()).collect();
        let customers: Vec<f64> = data.iter().map(|d| d.total_weight()).collect();
        Ok((draws, rows, customers))
    })?;
    let out = draws_to_dict(py, &draws.draws, rows.iter().sum(), customers.iter().sum())?;
    out.set_item("n_segments", draws.n_segments)?;
    out.set_item("k", draws.k)?;
    out.set_item("segment_rows", PyArray1::from_slice(py, &rows))?;
    out.set_item("segment_customers", PyArray1::from_slice(py, &customers))?;
    Ok(out)
}

pub(super) fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(rfm_sample_pooled, m)?)?;
    Ok(())
}
