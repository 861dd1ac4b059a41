//! Bindings for individual-level hierarchical Bayes ([`crate::hb`]): the sampler's draws as a
//! dict of numpy arrays, and per-customer predictions streamed over the kept customer draws.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

use numpy::{PyArray1, PyReadonlyArray1, PyReadonlyArray2, ToPyArray};
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::PyDict;

use super::posterior::to_dict;
use super::{run, slice};
use crate::bayes::predict::PredictOptions;
use crate::hb::abe::{self, AbeData, Quantity};
use crate::hb::ggg::{self, GggData, GggQuantity};
use crate::hb::{HbOptions, RegressionPrior};

/// `(chains, draws, tune, thin, seed, customer_draws)`.
type HbSettings = (usize, usize, usize, usize, u64, usize);

/// Run a sampler with the GIL released, handing it an interrupt check that also reports
/// progress: `progress(done, total)` is called with the iterations finished over every chain
/// whenever the sampler polls for Ctrl-C (a few times a second), and once at the end. An
/// exception in `progress` stops the sampler and is raised.
fn sample_with_progress<T: Send>(
    py: Python<'_>,
    n_jobs: Option<i64>,
    settings: HbSettings,
    progress: Option<Py<PyAny>>,
    work: impl FnOnce(HbOptions<'_>) -> crate::Result<T> + Send,
) -> PyResult<T> {
    let (chains, draws, tune, thin, seed, customer_draws) = settings;
    let total = chains * (tune + draws * thin);
    let done = AtomicUsize::new(0);
    let failed: Mutex<Option<PyErr>> = Mutex::new(None);
    let report = |py: Python<'_>, callback: &Py<PyAny>| -> bool {
        match callback.call1(py, (done.load(Ordering::Relaxed), total)) {
            Ok(_) => false,
            Err(e) => {
                *failed.lock().unwrap_or_else(|p| p.into_inner()) = Some(e);
                true
            }
        }
    };
    let result = run(py, n_jobs, |exec, interrupt| {
        let check = || {
            interrupt()
                || progress
                    .as_ref()
                    .is_some_and(|cb| Python::attach(|py| report(py, cb)))
        };
        work(HbOptions {
            chains,
            draws,
            tune,
            thin,
            seed,
            customer_draws,
            exec: exec.clone(),
            interrupt: Some(&check),
            progress: Some(&done),
        })
    });
    if let Some(e) = failed.lock().unwrap_or_else(|p| p.into_inner()).take() {
        return Err(e);
    }
    let value = result?;
    if let Some(cb) = &progress {
        if report(py, cb) {
            if let Some(e) = failed.lock().unwrap_or_else(|p| p.into_inner()).take() {
                return Err(e);
            }
        }
    }
    Ok(value)
}

/// Posterior draws of the hierarchical Pareto/NBD (Abe 2009). `design` is the `n x p` design
/// matrix (intercept first); `prior` is `(coefficient precision, inverse-Wishart degrees of
/// freedom, inverse-Wishart scale)`.
#[pyfunction]
#[pyo3(signature = (frequency, recency, T, design, settings, prior, n_jobs=None, progress=None))]
#[allow(non_snake_case, clippy::too_many_arguments)]
fn abe_sample<'py>(
    py: Python<'py>,
    frequency: PyReadonlyArray1<'py, f64>,
    recency: PyReadonlyArray1<'py, f64>,
    T: PyReadonlyArray1<'py, f64>,
    design: PyReadonlyArray2<'py, f64>,
    settings: HbSettings,
    prior: (f64, f64, f64),
    n_jobs: Option<i64>,
    progress: Option<Py<PyAny>>,
) -> PyResult<Bound<'py, PyDict>> {
    let p = design.as_array().ncols();
    let design_values = design
        .as_slice()
        .map_err(|_| PyValueError::new_err("design must be a C-contiguous float64 matrix"))?;
    let data = AbeData {
        frequency: slice(&frequency, "frequency")?,
        recency: slice(&recency, "recency")?,
        age: slice(&T, "T")?,
        design: design_values,
        n_covariates: p,
    };
    let prior = RegressionPrior {
        coefficient_precision: prior.0,
        dof: prior.1,
        scale: prior.2,
    };
    let result = sample_with_progress(py, n_jobs, settings, progress, |opts| {
        abe::sample(&data, &prior, &opts)
    })?;
    let out = PyDict::new(py);
    out.set_item("chains", result.chains)?;
    out.set_item("draws", result.draws)?;
    out.set_item("population", result.population.to_pyarray(py))?;
    out.set_item("customer", PyArray1::from_vec(py, result.customer))?;
    out.set_item("n_customer_draws", result.n_customer_draws)?;
    out.set_item("mean_lambda", PyArray1::from_vec(py, result.mean_lambda))?;
    out.set_item("mean_mu", PyArray1::from_vec(py, result.mean_mu))?;
    out.set_item("mean_p_alive", PyArray1::from_vec(py, result.mean_p_alive))?;
    Ok(out)
}

/// A per-customer quantity of the hierarchical Pareto/NBD (`lambda`, `mu`, `probability_alive`
/// or `expected_purchases` over `t`), streamed over the kept customer draws `customer`
/// (draw-major `(ln lambda, ln mu)` as float32). Returns `mean`, `sd` and, with `level`,
/// `lower` and `upper`.
#[pyfunction]
#[pyo3(signature = (quantity, customer, recency, T, t, level=None, bins=512, n_jobs=None))]
#[allow(non_snake_case, clippy::too_many_arguments)]
fn abe_predict<'py>(
    py: Python<'py>,
    quantity: &str,
    customer: PyReadonlyArray1<'py, f32>,
    recency: PyReadonlyArray1<'py, f64>,
    T: PyReadonlyArray1<'py, f64>,
    t: PyReadonlyArray1<'py, f64>,
    level: Option<f64>,
    bins: usize,
    n_jobs: Option<i64>,
) -> PyResult<Bound<'py, PyDict>> {
    let quantity = match quantity {
        "lambda" => Quantity::Lambda,
        "mu" => Quantity::Mu,
        "probability_alive" => Quantity::ProbabilityAlive,
        "expected_purchases" => Quantity::ExpectedPurchases,
        other => return Err(PyValueError::new_err(format!("unknown quantity `{other}`"))),
    };
    let customer = customer
        .as_slice()
        .map_err(|_| PyValueError::new_err("customer draws must be a contiguous float32 array"))?;
    let (recency, age, horizon) = (
        slice(&recency, "recency")?,
        slice(&T, "T")?,
        slice(&t, "t")?,
    );
    let result = run(py, n_jobs, |exec, interrupt| {
        abe::predict(
            quantity,
            customer,
            recency,
            age,
            horizon,
            &PredictOptions {
                level,
                bins,
                exec: exec.clone(),
                interrupt: Some(interrupt),
                ..PredictOptions::default()
            },
        )
    })?;
    to_dict(py, result)
}

/// Posterior draws of the Pareto/GGG (Platzer & Reutterer 2016) from `x`, `t_x`, `T` and
/// `litt` per customer.
#[pyfunction]
#[pyo3(signature = (frequency, recency, T, litt, settings, n_jobs=None, progress=None))]
#[allow(non_snake_case, clippy::too_many_arguments)]
fn ggg_sample<'py>(
    py: Python<'py>,
    frequency: PyReadonlyArray1<'py, f64>,
    recency: PyReadonlyArray1<'py, f64>,
    T: PyReadonlyArray1<'py, f64>,
    litt: PyReadonlyArray1<'py, f64>,
    settings: HbSettings,
    n_jobs: Option<i64>,
    progress: Option<Py<PyAny>>,
) -> PyResult<Bound<'py, PyDict>> {
    let data = GggData {
        frequency: slice(&frequency, "frequency")?,
        recency: slice(&recency, "recency")?,
        age: slice(&T, "T")?,
        litt: slice(&litt, "litt")?,
    };
    let result = sample_with_progress(py, n_jobs, settings, progress, |opts| {
        ggg::sample(&data, &opts)
    })?;
    let out = PyDict::new(py);
    out.set_item("chains", result.chains)?;
    out.set_item("draws", result.draws)?;
    out.set_item("names", ggg::POPULATION.to_vec())?;
    out.set_item("population", result.population.to_pyarray(py))?;
    out.set_item("customer", PyArray1::from_vec(py, result.customer))?;
    out.set_item("n_customer_draws", result.n_customer_draws)?;
    let [k, lambda, mu, tau, alive] = result.means;
    out.set_item("mean_k", PyArray1::from_vec(py, k))?;
    out.set_item("mean_lambda", PyArray1::from_vec(py, lambda))?;
    out.set_item("mean_mu", PyArray1::from_vec(py, mu))?;
    out.set_item("mean_tau", PyArray1::from_vec(py, tau))?;
    out.set_item("mean_p_alive", PyArray1::from_vec(py, alive))?;
    Ok(out)
}

/// A per-customer quantity of the Pareto/GGG (`k`, `lambda`, `mu`, `alive`, or `purchases`
/// over `t`, simulated per draw from `seed`), streamed over the kept customer draws.
#[pyfunction]
#[pyo3(signature = (quantity, customer, recency, T, t, seed, level=None, bins=512, n_jobs=None))]
#[allow(non_snake_case, clippy::too_many_arguments)]
fn ggg_predict<'py>(
    py: Python<'py>,
    quantity: &str,
    customer: PyReadonlyArray1<'py, f32>,
    recency: PyReadonlyArray1<'py, f64>,
    T: PyReadonlyArray1<'py, f64>,
    t: PyReadonlyArray1<'py, f64>,
    seed: u64,
    level: Option<f64>,
    bins: usize,
    n_jobs: Option<i64>,
) -> PyResult<Bound<'py, PyDict>> {
    let quantity = match quantity {
        "k" => GggQuantity::K,
        "lambda" => GggQuantity::Lambda,
        "mu" => GggQuantity::Mu,
        "alive" => GggQuantity::Alive,
        "purchases" => GggQuantity::Purchases,
        other => return Err(PyValueError::new_err(format!("unknown quantity `{other}`"))),
    };
    let customer = customer
        .as_slice()
        .map_err(|_| PyValueError::new_err("customer draws must be a contiguous float32 array"))?;
    let (recency, age, horizon) = (
        slice(&recency, "recency")?,
        slice(&T, "T")?,
        slice(&t, "t")?,
    );
    let result = run(py, n_jobs, |exec, interrupt| {
        ggg::predict(
            quantity,
            customer,
            recency,
            age,
            horizon,
            seed,
            &PredictOptions {
                level,
                bins,
                exec: exec.clone(),
                interrupt: Some(interrupt),
                ..PredictOptions::default()
            },
        )
    })?;
    to_dict(py, result)
}

pub(super) fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(abe_sample, m)?)?;
    m.add_function(wrap_pyfunction!(abe_predict, m)?)?;
    m.add_function(wrap_pyfunction!(ggg_sample, m)?)?;
    m.add_function(wrap_pyfunction!(ggg_predict, m)?)?;
    Ok(())
}
