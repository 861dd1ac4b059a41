//! Bindings for BG/NBD.

use numpy::{PyArray1, PyReadonlyArray1};
use pyo3::prelude::*;
use pyo3::types::PyDict;

use super::{fit_result_to_dict, run, slice, to_numpy};
use crate::data::{check_lengths, check_non_negative, Rfm, RfmColumns, RfmNames};
use crate::error::ClvError;
use crate::fit::{fit, fit_with_warm_start, FitOptions};
use crate::models::bgnbd::{self, BgNbd, BgNbdParams};

type Names = (String, String, String, String);

fn rfm_names(names: Names) -> RfmNames {
    RfmNames {
        frequency: names.0,
        recency: names.1,
        age: names.2,
        weights: names.3,
    }
}

/// Fit BG/NBD; returns the fit as a dict.
#[pyfunction]
#[pyo3(signature = (frequency, recency, T, weights, names, penalizer=0.0, max_iter=0, tol=0.0, n_jobs=None, start=None))]
#[allow(non_snake_case, clippy::too_many_arguments)]
fn bgnbd_fit<'py>(
    py: Python<'py>,
    frequency: PyReadonlyArray1<'py, f64>,
    recency: PyReadonlyArray1<'py, f64>,
    T: PyReadonlyArray1<'py, f64>,
    weights: Option<PyReadonlyArray1<'py, f64>>,
    names: Names,
    penalizer: f64,
    max_iter: u64,
    tol: f64,
    n_jobs: Option<i64>,
    start: Option<Vec<f64>>,
) -> PyResult<Bound<'py, PyDict>> {
    let columns = RfmColumns {
        frequency: slice(&frequency, "frequency")?,
        recency: slice(&recency, "recency")?,
        age: slice(&T, "T")?,
        weights: match &weights {
            Some(w) => Some(slice(w, "weights")?),
            None => None,
        },
    };
    let names = rfm_names(names);
    let (res, n_rows) = run(py, n_jobs, |exec, interrupt| {
        columns.validate_on(&names, exec)?;
        let data = columns.compress_on(exec);
        let opts = FitOptions {
            penalizer,
            max_iter,
            gradient_tolerance: tol,
            exec: exec.clone(),
            interrupt: Some(interrupt),
            start,
            initial_inverse_hessian: None,
        };
        let res = fit_with_warm_start(
            &data,
            data.len(),
            Rfm::subsample,
            |d, o| fit(&BgNbd::new(d), o),
            &opts,
        )?;
        Ok((res, data.len()))
    })?;
    fit_result_to_dict(py, &res, n_rows)
}

/// Apply a per-customer BG/NBD function to validated columns, in parallel.
fn per_customer<'py>(
    py: Python<'py>,
    params: Vec<f64>,
    columns: RfmColumns<'_>,
    names: Names,
    n_jobs: Option<i64>,
    f: impl Fn(&BgNbdParams, f64, f64, f64, usize) -> f64 + Sync,
) -> PyResult<Bound<'py, PyArray1<f64>>> {
    let names = rfm_names(names);
    let out = run(py, n_jobs, |exec, _| {
        let p = BgNbdParams::from_slice(&params)?;
        columns.validate_on(&names, exec)?;
        let mut out = vec![0.0; columns.len()];
        bgnbd::predict_rows(exec, &columns, &mut out, |x, t_x, age, i| {
            f(&p, x, t_x, age, i)
        });
        Ok(out)
    })?;
    Ok(to_numpy(py, out))
}

macro_rules! rfm {
    ($frequency:expr, $recency:expr, $T:expr) => {
        RfmColumns::new(
            slice(&$frequency, "frequency")?,
            slice(&$recency, "recency")?,
            slice(&$T, "T")?,
        )
    };
}

/// Per-customer log-likelihood.
#[pyfunction]
#[pyo3(signature = (params, frequency, recency, T, names, n_jobs=None))]
#[allow(non_snake_case)]
fn bgnbd_log_likelihood<'py>(
    py: Python<'py>,
    params: Vec<f64>,
    frequency: PyReadonlyArray1<'py, f64>,
    recency: PyReadonlyArray1<'py, f64>,
    T: PyReadonlyArray1<'py, f64>,
    names: Names,
    n_jobs: Option<i64>,
) -> PyResult<Bound<'py, PyArray1<f64>>> {
    per_customer(
        py,
        params,
        rfm!(frequency, recency, T),
        names,
        n_jobs,
        |p, x, t_x, age, _| bgnbd::log_likelihood(p, x, t_x, age),
    )
}

/// P(alive at T) per customer.
#[pyfunction]
#[pyo3(signature = (params, frequency, recency, T, names, n_jobs=None))]
#[allow(non_snake_case)]
fn bgnbd_probability_alive<'py>(
    py: Python<'py>,
    params: Vec<f64>,
    frequency: PyReadonlyArray1<'py, f64>,
    recency: PyReadonlyArray1<'py, f64>,
    T: PyReadonlyArray1<'py, f64>,
    names: Names,
    n_jobs: Option<i64>,
) -> PyResult<Bound<'py, PyArray1<f64>>> {
    let columns = rfm!(frequency, recency, T);
    let names = rfm_names(names);
    let out = run(py, n_jobs, |exec, _| {
        let p = BgNbdParams::from_slice(&params)?;
        columns.validate_on(&names, exec)?;
        let mut out = vec![0.0; columns.len()];
        bgnbd::probability_alive_bulk(&p, &columns, exec, &mut out);
        Ok(out)
    })?;
    Ok(to_numpy(py, out))
}

/// Expected purchases in (T, T + t] per customer; `t` has one value or one per customer.
#[pyfunction]
#[pyo3(signature = (params, frequency, recency, T, t, names, n_jobs=None))]
#[allow(non_snake_case, clippy::too_many_arguments)]
fn bgnbd_expected_purchases<'py>(
    py: Python<'py>,
    params: Vec<f64>,
    frequency: PyReadonlyArray1<'py, f64>,
    recency: PyReadonlyArray1<'py, f64>,
    T: PyReadonlyArray1<'py, f64>,
    t: PyReadonlyArray1<'py, f64>,
    names: Names,
    n_jobs: Option<i64>,
) -> PyResult<Bound<'py, PyArray1<f64>>> {
    let columns = rfm!(frequency, recency, T);
    let horizon = slice(&t, "t")?;
    run(py, Some(1), |_, _| {
        check_non_negative("t", horizon, false)?;
        if horizon.len() != 1 && horizon.len() != columns.len() {
            return Err(ClvError::invalid_data(
                "t",
                None,
                None,
                format!(
                    "must be one value or one per customer ({}), got {}",
                    columns.len(),
                    horizon.len()
                ),
            ));
        }
        Ok(())
    })?;
    let names = rfm_names(names);
    let out = run(py, n_jobs, |exec, _| {
        let p = BgNbdParams::from_slice(&params)?;
        columns.validate_on(&names, exec)?;
        let mut out = vec![0.0; columns.len()];
        if horizon.len() == 1 {
            bgnbd::conditional_expected_purchases_bulk(&p, &columns, horizon[0], exec, &mut out);
        } else {
            bgnbd::predict_rows(exec, &columns, &mut out, |x, t_x, age, i| {
                bgnbd::conditional_expected_purchases(&p, x, t_x, age, horizon[i])
            });
        }
        Ok(out)
    })?;
    Ok(to_numpy(py, out))
}

/// E[X(t)] for a new customer, for each t.
#[pyfunction]
#[pyo3(signature = (params, t, n_jobs=None))]
fn bgnbd_expected_purchases_new_customer<'py>(
    py: Python<'py>,
    params: Vec<f64>,
    t: PyReadonlyArray1<'py, f64>,
    n_jobs: Option<i64>,
) -> PyResult<Bound<'py, PyArray1<f64>>> {
    let horizon = slice(&t, "t")?;
    let out = run(py, n_jobs, |exec, _| {
        let p = BgNbdParams::from_slice(&params)?;
        check_non_negative("t", horizon, false)?;
        let mut out = vec![0.0; horizon.len()];
        exec.fill(&mut out, |i| {
            bgnbd::expected_purchases_new_customer(&p, horizon[i])
        });
        Ok(out)
    })?;
    Ok(to_numpy(py, out))
}

/// P(X(t) = n) for a new customer, element-wise over equal-length `n` and `t`.
#[pyfunction]
#[pyo3(signature = (params, n, t, n_jobs=None))]
fn bgnbd_purchase_count_probability<'py>(
    py: Python<'py>,
    params: Vec<f64>,
    n: PyReadonlyArray1<'py, f64>,
    t: PyReadonlyArray1<'py, f64>,
    n_jobs: Option<i64>,
) -> PyResult<Bound<'py, PyArray1<f64>>> {
    let counts = slice(&n, "n")?;
    let horizon = slice(&t, "t")?;
    let out = run(py, n_jobs, |exec, _| {
        let p = BgNbdParams::from_slice(&params)?;
        check_non_negative("n", counts, true)?;
        check_non_negative("t", horizon, false)?;
        check_lengths(&[("t", horizon.len())], counts.len())?;
        let mut out = vec![0.0; counts.len()];
        exec.fill(&mut out, |i| {
            bgnbd::purchase_count_probability(&p, counts[i] as u64, horizon[i])
        });
        Ok(out)
    })?;
    Ok(to_numpy(py, out))
}

pub(super) fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(bgnbd_fit, m)?)?;
    m.add_function(wrap_pyfunction!(bgnbd_log_likelihood, m)?)?;
    m.add_function(wrap_pyfunction!(bgnbd_probability_alive, m)?)?;
    m.add_function(wrap_pyfunction!(bgnbd_expected_purchases, m)?)?;
    m.add_function(wrap_pyfunction!(bgnbd_expected_purchases_new_customer, m)?)?;
    m.add_function(wrap_pyfunction!(bgnbd_purchase_count_probability, m)?)?;
    Ok(())
}
