//! Bindings for separate posteriors per segment (`fit_segments(..., method="nuts",
//! pooling="none")`): one NUTS run per segment, segments in parallel on the crate's pool and
//! each run serial (chains one after another, likelihood sums in the calling thread), so the
//! draws of a segment are those of its own fit with its seed, for any thread count.

use numpy::PyReadonlyArray1;
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList};

use super::bayes::{draws_to_dict, options, parse_priors, Settings};
use super::rfm::{rfm_names, Names};
use super::{rfm_columns, run};
use crate::bayes::{sample, PosteriorDraws, PriorTerm, SampleOptions};
use crate::data::Rfm;
use crate::error::ClvError;
use crate::models::bgbb::BgBb;
use crate::models::bgnbd::BgNbd;
use crate::models::ggnbd::GgNbd;
use crate::models::pnbd::ParetoNbd;
use crate::models::{BgBbParams, RfmModel};
use crate::parallel::Exec;
use crate::segments::{rows_data, split_rows};

/// One segment's posterior draws (or why it has none), its distinct rows and customers.
struct SegmentDraws {
    result: crate::Result<PosteriorDraws>,
    rows: usize,
    customers: f64,
}

fn sample_segment(
    model: &str,
    data: &Rfm,
    priors: &[PriorTerm],
    opts: &SampleOptions<'_>,
) -> crate::Result<PosteriorDraws> {
    match model {
        "bgnbd" | "mbgnbd" => sample(&BgNbd::with_variant(data, model == "mbgnbd"), priors, opts),
        "pnbd" => sample(&ParetoNbd::new(data), priors, opts),
        "ggnbd" => sample(&GgNbd::new(data), priors, opts),
        "bgbb" => sample(&BgBb::new(data), priors, opts),
        other => Err(ClvError::invalid_parameter(
            "model",
            format!("unknown model `{other}`"),
        )),
    }
}

/// Posterior draws of a model fitted to each segment alone: row `i` belongs to segment
/// `codes[i]` in `0..n_segments`, and segment `s` samples with `seeds[s]`. Returns a list with,
/// per segment, the draws as `rfm_sample` returns them, or `{"error": message}` for a segment
/// smaller than `min_customers` or whose data cannot be fitted (no repeat buyer); `segment`
/// and `customers` in both.
#[pyfunction]
#[pyo3(signature = (model, frequency, recency, T, weights, codes, n_segments, names, priors, settings, seeds, min_customers=0.0, n_jobs=None))]
#[allow(non_snake_case, clippy::too_many_arguments)]
fn rfm_sample_segments<'py>(
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
    seeds: Vec<u64>,
    min_customers: f64,
    n_jobs: Option<i64>,
) -> PyResult<Bound<'py, PyList>> {
    let columns = rfm_columns(&frequency, &recency, &T, weights.as_ref())?;
    let codes = codes.as_slice()?;
    let names = rfm_names(names);
    let priors = parse_priors(priors)?;
    let segments = run(py, n_jobs, |exec, interrupt| {
        columns.validate_on(&names, exec)?;
        if model == "bgbb" {
            BgBbParams::validate_more(&columns, &names)?;
        }
        crate::data::check_lengths(&[("segment", codes.len())], columns.len())?;
        crate::data::check_lengths(&[("seeds", seeds.len())], n_segments)?;
        let (order, starts) = split_rows(codes, n_segments)?;
        let ids: Vec<usize> = (0..n_segments).collect();
        // One level of parallelism: segments on the pool, each run serial.
        let segments = exec.map(&ids, |&s| {
            let data = rows_data(&columns, &order[starts[s]..starts[s + 1]]);
            let customers = data.total_weight();
            let result = if customers < min_customers {
                Err(ClvError::invalid_data(
                    "segment",
                    None,
                    None,
                    format!(
                        "has {customers} customers, fewer than the {min_customers} required to \
                         fit (min_customers)"
                    ),
                ))
            } else {
                crate::models::check_fittable(&data.frequency, &names).and_then(|()| {
                    let opts = SampleOptions {
                        seed: seeds[s],
                        ..options(settings, &Exec::Serial, interrupt)
                    };
                    sample_segment(model, &data, &priors, &opts)
                })
            };
            SegmentDraws {
                result,
                rows: data.len(),
                customers,
            }
        });
        if segments
            .iter()
            .any(|d| matches!(d.result, Err(ClvError::Interrupted)))
        {
            return Err(ClvError::Interrupted);
        }
        Ok(segments)
    })?;
    let out = PyList::empty(py);
    for (s, segment) in segments.iter().enumerate() {
        let d = match &segment.result {
            Ok(draws) => draws_to_dict(py, draws, segment.rows, segment.customers)?,
            Err(e) => {
                let d = PyDict::new(py);
                d.set_item("error", e.to_string())?;
                d
            }
        };
        d.set_item("segment", s)?;
        d.set_item("customers", segment.customers)?;
        out.append(d)?;
    }
    Ok(out)
}

pub(super) fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(rfm_sample_segments, m)?)?;
    Ok(())
}
