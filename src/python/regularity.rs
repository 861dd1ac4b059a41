//! Bindings for the regularity models (BG/CNBD-k, MBG/CNBD-k: fitting for a given `k` or over a
//! range of `k`, simulation with `litt`) and the inter-purchase times of a transaction log.

use numpy::{PyArray1, PyReadonlyArray1};
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList};

use super::rfm::{rfm_names, Names};
use super::{fit_options, fit_result_to_dict, rfm_columns, run, slice, to_numpy};
use crate::data::regularity::inter_purchase_gaps;
use crate::data::transactions::{Period, TransactionColumns};
use crate::data::RfmColumns;
use crate::error::ClvError;
use crate::models::cnbd::{self, check_k, CnbdParams, TimingTotals};

fn modified(model: &str) -> PyResult<bool> {
    match model {
        "bgcnbd" => Ok(false),
        "mbgcnbd" => Ok(true),
        other => Err(pyo3::exceptions::PyValueError::new_err(format!(
            "unknown regularity model `{other}`"
        ))),
    }
}

/// Check `litt` (finite, 0 without repeat purchases, at most `x ln(t_x / x)`: the logs of `x`
/// gaps summing to `t_x`) and return its weighted total with that of the frequencies.
fn timing_totals(
    columns: &RfmColumns<'_>,
    litt: &[f64],
    litt_name: &str,
) -> crate::Result<TimingTotals> {
    crate::data::check_lengths(&[(litt_name, litt.len())], columns.len())?;
    let (mut total, mut repeats) = (0.0, 0.0);
    for (i, &l) in litt.iter().enumerate() {
        let x = columns.frequency[i];
        let t_x = columns.recency[i];
        let bad = |rule: &str| Err(ClvError::invalid_data(litt_name, Some(i), Some(l), rule));
        if !l.is_finite() {
            return bad(
                "must be a finite number (the sum of the logs of the inter-purchase times)",
            );
        }
        if x == 0.0 && l != 0.0 {
            return bad("must be 0 when frequency is 0 (there is no inter-purchase time)");
        }
        if x > 0.0 {
            // Jensen: the mean log of x gaps is at most the log of their mean, t_x / x.
            let bound = x * (t_x / x).ln();
            if !(l <= bound + 1e-9 * bound.abs().max(1.0)) {
                return bad(
                    "must not exceed frequency * ln(recency / frequency) (the logs of \
                     `frequency` gaps that add up to `recency`): is it in another time unit \
                     than recency, or from another period?",
                );
            }
        }
        let w = columns.weights.map_or(1.0, |w| w[i]);
        total += w * l;
        repeats += w * x;
    }
    Ok(TimingTotals {
        litt: total,
        repeats,
    })
}

/// Fit BG/CNBD-k (`model = "bgcnbd"`) or MBG/CNBD-k (`"mbgcnbd"`) for the given `k`, or over
/// `k = 1..max_k` when `k` is None (then `litt` is required). Returns the chosen fit's dict with
/// `k` and `regularity_profile` (one dict per `k` tried: `k`, `log_likelihood`, `params`,
/// `converged`).
#[pyfunction]
#[pyo3(signature = (model, frequency, recency, T, weights, litt, names, litt_name="litt", k=None, max_k=12.0, penalizer=0.0, max_iter=0, tol=0.0, n_jobs=None))]
#[allow(non_snake_case, clippy::too_many_arguments)]
fn cnbd_fit<'py>(
    py: Python<'py>,
    model: &str,
    frequency: PyReadonlyArray1<'py, f64>,
    recency: PyReadonlyArray1<'py, f64>,
    T: PyReadonlyArray1<'py, f64>,
    weights: Option<PyReadonlyArray1<'py, f64>>,
    litt: Option<PyReadonlyArray1<'py, f64>>,
    names: Names,
    litt_name: &str,
    k: Option<f64>,
    max_k: f64,
    penalizer: f64,
    max_iter: u64,
    tol: f64,
    n_jobs: Option<i64>,
) -> PyResult<Bound<'py, PyDict>> {
    let modified = modified(model)?;
    let columns = rfm_columns(&frequency, &recency, &T, weights.as_ref())?;
    let litt = match &litt {
        Some(l) => Some(slice(l, litt_name)?),
        None => None,
    };
    let names = rfm_names(names);
    let (profile, n_rows) = run(py, n_jobs, |exec, interrupt| {
        columns.validate_on(&names, exec)?;
        let timing = match litt {
            Some(l) => Some(timing_totals(&columns, l, litt_name)?),
            None => None,
        };
        let data = columns.compress_on(exec);
        crate::models::check_fittable(&data.frequency, &names)?;
        let opts = fit_options(exec, interrupt, penalizer, max_iter, tol);
        let profile = match k {
            Some(k) => {
                let k = check_k(k)?;
                vec![(k, cnbd::fit_k(&data, k, modified, timing, &opts)?)]
            }
            None => {
                let timing = timing.ok_or_else(|| {
                    ClvError::invalid_data(
                        litt_name,
                        None,
                        None,
                        "is needed to choose k (the likelihoods of different k differ by the \
                         timing term (k-1) litt - x ln((k-1)!)): summarize_transactions(..., \
                         regularity=True) adds it, or give k",
                    )
                })?;
                let max_k = check_k(max_k).map_err(|_| {
                    ClvError::invalid_parameter(
                        "max_k",
                        format!(
                            "must be a whole number from 1 to {}, got {max_k}",
                            cnbd::MAX_K
                        ),
                    )
                })?;
                cnbd::fit_profile(&data, modified, timing, max_k, &opts)?
            }
        };
        Ok((profile, data.len()))
    })?;
    // The best converged fit (any fit when none converged).
    let best = profile
        .iter()
        .enumerate()
        .max_by(|(_, a), (_, b)| {
            (a.1.converged, a.1.log_likelihood)
                .partial_cmp(&(b.1.converged, b.1.log_likelihood))
                .unwrap_or(std::cmp::Ordering::Equal)
        })
        .map(|(i, _)| i)
        .unwrap_or(0);
    let (k_best, res) = &profile[best];
    let d = fit_result_to_dict(py, res, n_rows)?;
    d.set_item("k", *k_best)?;
    let rows = PyList::empty(py);
    for (k, r) in &profile {
        let row = PyDict::new(py);
        row.set_item("k", *k)?;
        row.set_item("log_likelihood", r.log_likelihood)?;
        row.set_item("params", &r.params)?;
        row.set_item("converged", r.converged)?;
        rows.append(row)?;
    }
    d.set_item("regularity_profile", rows)?;
    Ok(d)
}

/// Check customer summaries with `litt` as [`cnbd_fit`] does (the columns' rules, then
/// `litt`'s) without fitting: for fits of parts of the data (segments), so that an error names
/// the first offending row of the whole data.
#[pyfunction]
#[pyo3(signature = (frequency, recency, T, weights, litt, names, litt_name="litt"))]
#[allow(non_snake_case, clippy::too_many_arguments)]
fn cnbd_check_litt<'py>(
    py: Python<'py>,
    frequency: PyReadonlyArray1<'py, f64>,
    recency: PyReadonlyArray1<'py, f64>,
    T: PyReadonlyArray1<'py, f64>,
    weights: Option<PyReadonlyArray1<'py, f64>>,
    litt: PyReadonlyArray1<'py, f64>,
    names: Names,
    litt_name: &str,
) -> PyResult<()> {
    let columns = rfm_columns(&frequency, &recency, &T, weights.as_ref())?;
    let litt = slice(&litt, litt_name)?;
    let names = rfm_names(names);
    run(py, None, |exec, _| {
        columns.validate_on(&names, exec)?;
        timing_totals(&columns, litt, litt_name)?;
        Ok(())
    })
}

/// Simulated `(frequency, recency, litt)` columns.
type Histories<'py> = (
    Bound<'py, PyArray1<f64>>,
    Bound<'py, PyArray1<f64>>,
    Bound<'py, PyArray1<f64>>,
);

/// Simulated histories with `litt` for customers of ages `T`; `params` are `[r, alpha, a, b, k]`.
#[pyfunction]
#[pyo3(signature = (model, params, T, seed))]
#[allow(non_snake_case)]
fn cnbd_simulate<'py>(
    py: Python<'py>,
    model: &str,
    params: Vec<f64>,
    T: PyReadonlyArray1<'py, f64>,
    seed: u64,
) -> PyResult<Histories<'py>> {
    let modified = modified(model)?;
    let ages = slice(&T, "T")?;
    let (x, t_x, litt) = run(py, Some(1), |_, _| {
        let p = CnbdParams::from_values(&params, modified)?;
        crate::data::check_non_negative("T", ages, false)?;
        Ok(cnbd::simulate(&p, ages, seed))
    })?;
    Ok((to_numpy(py, x), to_numpy(py, t_x), to_numpy(py, litt)))
}

/// Inter-purchase statistics per customer code of a transaction log (codes and times as for
/// `summarize_transactions`, `end_period` the summary's): a dict of arrays `count`, `litt`,
/// `last`, `previous` (see `data::regularity::Gaps`).
#[pyfunction]
#[pyo3(signature = (customer, time_ns, n_customers, freq, freq_multiplier, end_period, after_ns=None, time_unit_ns=1, customer_offset=0, n_jobs=None))]
#[allow(clippy::too_many_arguments)]
fn transaction_gaps<'py>(
    py: Python<'py>,
    customer: PyReadonlyArray1<'py, i64>,
    time_ns: PyReadonlyArray1<'py, i64>,
    n_customers: usize,
    freq: &str,
    freq_multiplier: f64,
    end_period: i64,
    after_ns: Option<i64>,
    time_unit_ns: i64,
    customer_offset: i64,
    n_jobs: Option<i64>,
) -> PyResult<Bound<'py, PyDict>> {
    let customer = customer.as_slice()?;
    let time_ns = time_ns.as_slice()?;
    let gaps = run(py, n_jobs, |exec, _| {
        let period = Period::parse(freq)?;
        if time_unit_ns < 1 {
            return Err(ClvError::invalid_parameter(
                "time_unit_ns",
                format!("must be >= 1, got {time_unit_ns}"),
            ));
        }
        let columns = TransactionColumns {
            customer,
            time_ns,
            amount: None,
            customer_offset,
        };
        let after = after_ns.map(|t| period.index_in(t, time_unit_ns));
        Ok(inter_purchase_gaps(
            &columns,
            n_customers,
            period,
            time_unit_ns,
            freq_multiplier,
            end_period,
            after,
            exec,
        ))
    })?;
    let d = PyDict::new(py);
    d.set_item("count", to_numpy(py, gaps.count))?;
    d.set_item("litt", to_numpy(py, gaps.litt))?;
    d.set_item("last", to_numpy(py, gaps.last))?;
    d.set_item("previous", to_numpy(py, gaps.previous))?;
    Ok(d)
}

pub(super) fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(cnbd_fit, m)?)?;
    m.add_function(wrap_pyfunction!(cnbd_simulate, m)?)?;
    m.add_function(wrap_pyfunction!(cnbd_check_litt, m)?)?;
    m.add_function(wrap_pyfunction!(transaction_gaps, m)?)?;
    Ok(())
}
