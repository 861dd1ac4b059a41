//! The Python bindings: the only code that knows about Python. It converts arrays, releases the
//! GIL around the core, turns Ctrl-C into KeyboardInterrupt, catches panics, and maps
//! [`ClvError`] to the exception classes of `clvrs.exceptions`.

mod bayes;
mod churn_covariates;
mod contractual;
mod dynamic;
mod hb;
mod hierarchical;
mod map;
mod posterior;
mod regularity;
mod rfm;
mod separate;
mod spend;
mod spend_covariates;
mod transactions;

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Mutex;

use numpy::{PyArray1, PyReadonlyArray1, ToPyArray};
use pyo3::prelude::*;
use pyo3::types::PyDict;

use crate::data::RfmColumns;
use crate::error::ClvError;
use crate::fit::FitResult;
use crate::parallel::Exec;

/// Raise the `clvrs.exceptions` class matching `err`, with structured attributes for data errors.
fn to_pyerr(py: Python<'_>, err: ClvError) -> PyErr {
    let class_name = match &err {
        ClvError::InvalidData(_) => "InvalidDataError",
        ClvError::InvalidParameter { .. } => "InvalidParameterError",
        ClvError::Convergence { .. } => "ConvergenceError",
        ClvError::Interrupted => {
            return pyo3::exceptions::PyKeyboardInterrupt::new_err("interrupted");
        }
        _ => "ClvError",
    };
    let build = || -> PyResult<PyErr> {
        let module = py.import("clvrs.exceptions")?;
        let class = module.getattr(class_name)?;
        let exc = class.call1((err.to_string(),))?;
        match &err {
            ClvError::InvalidData(d) => {
                exc.setattr("column", &d.column)?;
                exc.setattr("row", d.row)?;
                exc.setattr("rule", &d.rule)?;
            }
            ClvError::InvalidParameter { name, .. } => exc.setattr("parameter", name)?,
            _ => {}
        }
        Ok(PyErr::from_value(exc))
    };
    build().unwrap_or_else(|e| e)
}

/// Run `work` with the GIL released, on the executor for `n_jobs`; panics become `ClvError`
/// (never a Rust panic across the boundary) and Ctrl-C pressed meanwhile becomes
/// KeyboardInterrupt when `work` polls the interrupt check it is given.
fn run<T: Send>(
    py: Python<'_>,
    n_jobs: Option<i64>,
    work: impl FnOnce(&Exec, &(dyn Fn() -> bool + Sync)) -> crate::Result<T> + Send,
) -> PyResult<T> {
    let pending: Mutex<Option<PyErr>> = Mutex::new(None);
    let check = || {
        Python::attach(|py| match py.check_signals() {
            Ok(()) => false,
            Err(e) => {
                *pending.lock().unwrap_or_else(|p| p.into_inner()) = Some(e);
                true
            }
        })
    };
    let outcome = py.detach(|| {
        catch_unwind(AssertUnwindSafe(|| {
            let exec = Exec::with_jobs(n_jobs)?;
            work(&exec, &check)
        }))
    });
    if let Some(e) = pending.lock().unwrap_or_else(|p| p.into_inner()).take() {
        return Err(e);
    }
    match outcome {
        Ok(Ok(value)) => Ok(value),
        Ok(Err(err)) => Err(to_pyerr(py, err)),
        Err(panic) => {
            let text = panic
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_else(|| "unknown panic".into());
            Err(to_pyerr(
                py,
                ClvError::Internal(format!("{text} (please report this bug)")),
            ))
        }
    }
}

/// A contiguous f64 view of a 1-d array (numpy arrays are made contiguous by the Python layer).
fn slice<'a>(array: &'a PyReadonlyArray1<'_, f64>, name: &str) -> PyResult<&'a [f64]> {
    array.as_slice().map_err(|_| {
        pyo3::exceptions::PyValueError::new_err(format!(
            "`{name}` must be a contiguous float64 array"
        ))
    })
}

/// Summary columns borrowed from the Python layer's float64 arrays.
fn rfm_columns<'a>(
    frequency: &'a PyReadonlyArray1<'_, f64>,
    recency: &'a PyReadonlyArray1<'_, f64>,
    age: &'a PyReadonlyArray1<'_, f64>,
    weights: Option<&'a PyReadonlyArray1<'_, f64>>,
) -> PyResult<RfmColumns<'a>> {
    Ok(RfmColumns {
        frequency: slice(frequency, "frequency")?,
        recency: slice(recency, "recency")?,
        age: slice(age, "T")?,
        weights: weights.map(|w| slice(w, "weights")).transpose()?,
    })
}

fn fit_result_to_dict<'py>(
    py: Python<'py>,
    res: &FitResult,
    n_rows: usize,
) -> PyResult<Bound<'py, PyDict>> {
    let d = PyDict::new(py);
    d.set_item("names", &res.names)?;
    d.set_item("params", &res.params)?;
    // A 2-D float64 array (k x k), or None.
    d.set_item(
        "covariance",
        res.covariance.as_ref().map(|c| c.to_pyarray(py)),
    )?;
    if let Some(note) = &res.covariance_note {
        d.set_item("covariance_note", note)?;
    }
    d.set_item("log_likelihood", res.log_likelihood)?;
    d.set_item("n_observations", res.n_observations)?;
    d.set_item("n_rows", n_rows)?;
    d.set_item("converged", res.converged)?;
    d.set_item("termination", &res.termination)?;
    d.set_item("n_iter", res.n_iter)?;
    d.set_item("n_evaluations", res.n_evaluations)?;
    d.set_item("n_starts", res.n_starts)?;
    d.set_item("gradient_norm", res.gradient_norm)?;
    d.set_item("hessian_condition", res.hessian_condition)?;
    d.set_item("weakly_identified", &res.weakly_identified)?;
    Ok(d)
}

/// The options every fit binding passes: its penalty, iteration limit and tolerance, on the
/// executor and interrupt check of [`run`].
fn fit_options<'a>(
    exec: &Exec,
    interrupt: &'a (dyn Fn() -> bool + Sync),
    penalizer: f64,
    max_iter: u64,
    tol: f64,
) -> crate::fit::FitOptions<'a> {
    crate::fit::FitOptions {
        penalizer,
        max_iter,
        gradient_tolerance: tol,
        exec: exec.clone(),
        interrupt: Some(interrupt),
        ..crate::fit::FitOptions::default()
    }
}

fn to_numpy(py: Python<'_>, values: Vec<f64>) -> Bound<'_, PyArray1<f64>> {
    PyArray1::from_vec(py, values)
}

/// Raise a Rust panic inside the GIL-released region (tests that panics map to ClvError).
#[pyfunction]
fn _panic_for_test(py: Python<'_>, message: String) -> PyResult<()> {
    run(py, Some(1), |_, _| -> crate::Result<()> {
        panic!("{message}")
    })
}

/// Number of threads `n_jobs` resolves to (reads CLVRS_NUM_THREADS when None).
#[pyfunction]
#[pyo3(signature = (n_jobs=None))]
fn resolve_n_jobs(py: Python<'_>, n_jobs: Option<i64>) -> PyResult<usize> {
    run(py, n_jobs, |exec, _| Ok(exec.threads()))
}

#[pymodule]
fn _core(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    m.add_function(wrap_pyfunction!(_panic_for_test, m)?)?;
    m.add_function(wrap_pyfunction!(resolve_n_jobs, m)?)?;
    rfm::register(m)?;
    bayes::register(m)?;
    hierarchical::register(m)?;
    hb::register(m)?;
    dynamic::register(m)?;
    contractual::register(m)?;
    churn_covariates::register(m)?;
    spend::register(m)?;
    spend_covariates::register(m)?;
    transactions::register(m)?;
    regularity::register(m)?;
    posterior::register(m)?;
    map::register(m)?;
    separate::register(m)?;
    Ok(())
}
