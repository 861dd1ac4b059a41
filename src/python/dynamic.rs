//! Bindings for the Pareto/NBD and the BG/NBD with time-varying covariates: the Python layer
//! hands over the summaries, each customer's covariate pieces and the piece in effect at each
//! repeat purchase.

use numpy::{PyArray1, PyReadonlyArray1, PyReadonlyArray2};
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::PyDict;

use super::rfm::{rfm_names, CovariateArgs, Design, Names};
use super::{fit_options, fit_result_to_dict, run, slice, to_numpy};
use crate::data::RfmNames;
use crate::error::Result as CoreResult;
use crate::fit::{FitOptions, FitResult};
use crate::models::bgnbd_dynamic;
use crate::models::churn_dynamic::{self, ChurnPanel};
use crate::models::covariates::churn::model_parameters;
use crate::models::covariates::Links;
use crate::models::pnbd_dynamic::{self, DynamicRows, Quantity};
use crate::parallel::Exec;

/// The customers as the Python layer hands them over: frequency, recency, T, piece offsets,
/// piece starts, purchase offsets and the piece of each repeat purchase.
type Customers<'py> = (
    PyReadonlyArray1<'py, f64>,
    PyReadonlyArray1<'py, f64>,
    PyReadonlyArray1<'py, f64>,
    PyReadonlyArray1<'py, i64>,
    PyReadonlyArray1<'py, f64>,
    PyReadonlyArray1<'py, i64>,
    PyReadonlyArray1<'py, i64>,
);

/// Borrowed summaries and piece starts with the index arrays as `usize`.
struct Borrowed<'a> {
    frequency: &'a [f64],
    recency: &'a [f64],
    age: &'a [f64],
    piece_starts: &'a [f64],
    piece_offsets: Vec<usize>,
    purchase_offsets: Vec<usize>,
    purchase_pieces: Vec<usize>,
}

fn indices(array: &PyReadonlyArray1<'_, i64>, name: &str) -> PyResult<Vec<usize>> {
    array
        .as_array()
        .iter()
        .map(|&v| usize::try_from(v))
        .collect::<Result<_, _>>()
        .map_err(|_| PyValueError::new_err(format!("`{name}` must hold non-negative indices")))
}

impl<'a> Borrowed<'a> {
    fn new(c: &'a Customers<'_>) -> PyResult<Self> {
        Ok(Borrowed {
            frequency: slice(&c.0, "frequency")?,
            recency: slice(&c.1, "recency")?,
            age: slice(&c.2, "T")?,
            piece_offsets: indices(&c.3, "piece_offsets")?,
            piece_starts: slice(&c.4, "piece_starts")?,
            purchase_offsets: indices(&c.5, "purchase_offsets")?,
            purchase_pieces: indices(&c.6, "purchase_pieces")?,
        })
    }

    fn rows<'b>(&'b self, design: &'b Design<'b>) -> DynamicRows<'b> {
        DynamicRows {
            frequency: self.frequency,
            recency: self.recency,
            age: self.age,
            piece_offsets: &self.piece_offsets,
            piece_starts: self.piece_starts,
            purchase: design.purchase.view(),
            dropout: design.dropout.view(),
            purchase_offsets: &self.purchase_offsets,
            purchase_pieces: &self.purchase_pieces,
        }
    }
}

/// What a purchase model with time-varying covariates does with the customers' rows: its fit,
/// or one prediction into `out`.
type FitWith<'f> = &'f (dyn Fn(&DynamicRows<'_>, &Links, &RfmNames, &FitOptions<'_>) -> CoreResult<FitResult>
         + Sync);
type PredictWith<'f> =
    &'f (dyn Fn(&DynamicRows<'_>, &Links, &Exec, &mut [f64]) -> CoreResult<()> + Sync);

/// The bindings' shared part of the two purchase models' fits: borrow the arrays, validate the
/// rows, fit with the covariate penalty; `extra_check` is a model's own rule on the rows.
#[allow(clippy::too_many_arguments)]
fn dynamic_fit<'py>(
    py: Python<'py>,
    customers: Customers<'py>,
    names: Names,
    covariates: CovariateArgs<'py>,
    penalizer: f64,
    covariate_penalizer: f64,
    max_iter: u64,
    tol: f64,
    n_jobs: Option<i64>,
    extra_check: &(dyn Fn(&DynamicRows<'_>, &Design<'_>) -> CoreResult<()> + Sync),
    fit_model: FitWith<'_>,
) -> PyResult<Bound<'py, PyDict>> {
    let borrowed = Borrowed::new(&customers)?;
    let design = Design::new(&covariates)?;
    let names = rfm_names(names);
    let rows = borrowed.rows(&design);
    let res = run(py, n_jobs, |exec, interrupt| {
        rows.validate(&design.links, [&design.names[0], &design.names[1]], &names)?;
        extra_check(&rows, &design)?;
        let opts = FitOptions {
            coefficient_penalizer: covariate_penalizer,
            ..fit_options(exec, interrupt, penalizer, max_iter, tol)
        };
        fit_model(&rows, &design.links, &names, &opts)
    })?;
    fit_result_to_dict(py, &res, rows.len())
}

/// The bindings' shared part of the two purchase models' per-customer predictions (as
/// [`dynamic_fit`] for the fits).
fn dynamic_predict<'py>(
    py: Python<'py>,
    customers: Customers<'py>,
    names: Names,
    covariates: CovariateArgs<'py>,
    n_jobs: Option<i64>,
    extra_check: &(dyn Fn(&DynamicRows<'_>, &Design<'_>) -> CoreResult<()> + Sync),
    predict: PredictWith<'_>,
) -> PyResult<Bound<'py, PyArray1<f64>>> {
    let borrowed = Borrowed::new(&customers)?;
    let design = Design::new(&covariates)?;
    let names = rfm_names(names);
    let rows = borrowed.rows(&design);
    let out = run(py, n_jobs, |exec, _| {
        rows.validate(&design.links, [&design.names[0], &design.names[1]], &names)?;
        extra_check(&rows, &design)?;
        let mut out = vec![0.0; rows.len()];
        predict(&rows, &design.links, exec, &mut out)?;
        Ok(out)
    })?;
    Ok(to_numpy(py, out))
}

/// No rule beyond the shared validation (the Pareto/NBD takes any covariate path).
fn no_extra_check(_: &DynamicRows<'_>, _: &Design<'_>) -> CoreResult<()> {
    Ok(())
}

/// The BG/NBD's dropout happens at purchases: its dropout covariates must not change.
fn static_dropout(rows: &DynamicRows<'_>, design: &Design<'_>) -> CoreResult<()> {
    bgnbd_dynamic::check_static_dropout(rows, &design.names[1])
}

/// Fit the Pareto/NBD with time-varying covariates; returns the fit as a dict.
#[pyfunction]
#[pyo3(signature = (customers, names, covariates, penalizer=0.0, covariate_penalizer=0.0, max_iter=0, tol=0.0, n_jobs=None))]
#[allow(clippy::too_many_arguments)]
fn pnbd_dynamic_fit<'py>(
    py: Python<'py>,
    customers: Customers<'py>,
    names: Names,
    covariates: CovariateArgs<'py>,
    penalizer: f64,
    covariate_penalizer: f64,
    max_iter: u64,
    tol: f64,
    n_jobs: Option<i64>,
) -> PyResult<Bound<'py, PyDict>> {
    dynamic_fit(
        py,
        customers,
        names,
        covariates,
        penalizer,
        covariate_penalizer,
        max_iter,
        tol,
        n_jobs,
        &no_extra_check,
        &pnbd_dynamic::fit_dynamic,
    )
}

/// A per-customer prediction (`log_likelihood`, `probability_alive`, `expected_purchases`,
/// `expected_residual_transactions`) with horizons or discount rates `t` (one per customer).
#[pyfunction]
#[pyo3(signature = (quantity, params, customers, names, covariates, t, n_jobs=None))]
#[allow(clippy::too_many_arguments)]
fn pnbd_dynamic_predict<'py>(
    py: Python<'py>,
    quantity: &str,
    params: Vec<f64>,
    customers: Customers<'py>,
    names: Names,
    covariates: CovariateArgs<'py>,
    t: PyReadonlyArray1<'py, f64>,
    n_jobs: Option<i64>,
) -> PyResult<Bound<'py, PyArray1<f64>>> {
    let quantity = match quantity {
        "log_likelihood" => Quantity::LogLikelihood,
        "probability_alive" => Quantity::ProbabilityAlive,
        "expected_purchases" => Quantity::ExpectedPurchases,
        "expected_residual_transactions" => Quantity::ResidualTransactions,
        other => return Err(PyValueError::new_err(format!("unknown quantity `{other}`"))),
    };
    let horizons = slice(&t, "t")?;
    dynamic_predict(
        py,
        customers,
        names,
        covariates,
        n_jobs,
        &no_extra_check,
        &|rows, links, exec, out| {
            pnbd_dynamic::predict(rows, links, &params, quantity, horizons, exec, out)
        },
    )
}

/// Fit the BG/NBD with time-varying purchase covariates; returns the fit as a dict.
#[pyfunction]
#[pyo3(signature = (customers, names, covariates, penalizer=0.0, covariate_penalizer=0.0, max_iter=0, tol=0.0, n_jobs=None))]
#[allow(clippy::too_many_arguments)]
fn bgnbd_dynamic_fit<'py>(
    py: Python<'py>,
    customers: Customers<'py>,
    names: Names,
    covariates: CovariateArgs<'py>,
    penalizer: f64,
    covariate_penalizer: f64,
    max_iter: u64,
    tol: f64,
    n_jobs: Option<i64>,
) -> PyResult<Bound<'py, PyDict>> {
    dynamic_fit(
        py,
        customers,
        names,
        covariates,
        penalizer,
        covariate_penalizer,
        max_iter,
        tol,
        n_jobs,
        &static_dropout,
        &bgnbd_dynamic::fit_dynamic,
    )
}

/// A per-customer prediction of the BG/NBD with time-varying purchase covariates
/// (`log_likelihood`, `probability_alive`, `expected_purchases`) with horizons `t` (one per
/// customer; read by `expected_purchases` only).
#[pyfunction]
#[pyo3(signature = (quantity, params, customers, names, covariates, t, n_jobs=None))]
#[allow(clippy::too_many_arguments)]
fn bgnbd_dynamic_predict<'py>(
    py: Python<'py>,
    quantity: &str,
    params: Vec<f64>,
    customers: Customers<'py>,
    names: Names,
    covariates: CovariateArgs<'py>,
    t: PyReadonlyArray1<'py, f64>,
    n_jobs: Option<i64>,
) -> PyResult<Bound<'py, PyArray1<f64>>> {
    let quantity = match quantity {
        "log_likelihood" => bgnbd_dynamic::Quantity::LogLikelihood,
        "probability_alive" => bgnbd_dynamic::Quantity::ProbabilityAlive,
        "expected_purchases" => bgnbd_dynamic::Quantity::ExpectedPurchases,
        other => return Err(PyValueError::new_err(format!("unknown quantity `{other}`"))),
    };
    let horizons = slice(&t, "t")?;
    dynamic_predict(
        py,
        customers,
        names,
        covariates,
        n_jobs,
        &static_dropout,
        &|rows, links, exec, out| {
            bgnbd_dynamic::predict(rows, links, &params, quantity, horizons, exec, out)
        },
    )
}

/// A subscription panel as the Python layer hands it over: periods, churned (0/1), piece
/// offsets, piece starts.
type ChurnCustomers<'py> = (
    PyReadonlyArray1<'py, f64>,
    PyReadonlyArray1<'py, f64>,
    PyReadonlyArray1<'py, i64>,
    PyReadonlyArray1<'py, f64>,
);

/// The panel of [`ChurnCustomers`] with its piece offsets as `usize` (`offsets`).
fn churn_panel<'a>(
    customers: &'a ChurnCustomers<'_>,
    offsets: &'a [usize],
    covariates: &'a PyReadonlyArray2<'_, f64>,
) -> PyResult<ChurnPanel<'a>> {
    Ok(ChurnPanel {
        periods: slice(&customers.0, "periods")?,
        churned: slice(&customers.1, "churned")?,
        piece_offsets: offsets,
        piece_starts: slice(&customers.3, "piece_starts")?,
        covariates: covariates.as_array(),
    })
}

/// Fit sBG (`model="sbg"`) or BdW (`"bdw"`) with time-varying covariates per period
/// ([`churn_dynamic`]); `covariates` holds one row per piece, `covariate_names` its columns and
/// `coefficient_names` the coefficients' names. Returns the fit as a dict.
#[pyfunction]
#[pyo3(signature = (model, customers, covariates, covariate_names, coefficient_names, penalizer=0.0, covariate_penalizer=0.0, max_iter=0, tol=0.0, n_jobs=None))]
#[allow(clippy::too_many_arguments)]
fn churn_dynamic_fit<'py>(
    py: Python<'py>,
    model: &str,
    customers: ChurnCustomers<'py>,
    covariates: PyReadonlyArray2<'py, f64>,
    covariate_names: Vec<String>,
    coefficient_names: Vec<String>,
    penalizer: f64,
    covariate_penalizer: f64,
    max_iter: u64,
    tol: f64,
    n_jobs: Option<i64>,
) -> PyResult<Bound<'py, PyDict>> {
    let offsets = indices(&customers.2, "piece_offsets")?;
    let panel = churn_panel(&customers, &offsets, &covariates)?;
    let res = run(py, n_jobs, |exec, interrupt| {
        let free_c = model_parameters(model)? == 3;
        panel.validate(&covariate_names)?;
        let opts = FitOptions {
            coefficient_penalizer: covariate_penalizer,
            ..fit_options(exec, interrupt, penalizer, max_iter, tol)
        };
        churn_dynamic::fit_churn_dynamic(&panel, free_c, &coefficient_names, &opts)
    })?;
    fit_result_to_dict(py, &res, panel.len())
}

/// A per-customer prediction of sBG/BdW with time-varying covariates (`log_likelihood`,
/// `survival`, `retention_rate`, `expected_renewals`) `t` periods ahead (one per customer),
/// refused past `covered` (the last period of each customer its covariates describe).
#[pyfunction]
#[pyo3(signature = (model, quantity, params, customers, covariates, covariate_names, t, covered, n_jobs=None))]
#[allow(clippy::too_many_arguments)]
fn churn_dynamic_predict<'py>(
    py: Python<'py>,
    model: &str,
    quantity: &str,
    params: Vec<f64>,
    customers: ChurnCustomers<'py>,
    covariates: PyReadonlyArray2<'py, f64>,
    covariate_names: Vec<String>,
    t: PyReadonlyArray1<'py, f64>,
    covered: PyReadonlyArray1<'py, f64>,
    n_jobs: Option<i64>,
) -> PyResult<Bound<'py, PyArray1<f64>>> {
    let quantity = match quantity {
        "log_likelihood" => churn_dynamic::Quantity::LogLikelihood,
        "survival" => churn_dynamic::Quantity::Survival,
        "retention_rate" => churn_dynamic::Quantity::RetentionRate,
        "expected_renewals" => churn_dynamic::Quantity::ExpectedRenewals,
        other => return Err(PyValueError::new_err(format!("unknown quantity `{other}`"))),
    };
    let offsets = indices(&customers.2, "piece_offsets")?;
    let panel = churn_panel(&customers, &offsets, &covariates)?;
    let horizons = slice(&t, "t")?;
    let covered = slice(&covered, "covered")?;
    let out = run(py, n_jobs, |exec, _| {
        let free_c = model_parameters(model)? == 3;
        panel.validate(&covariate_names)?;
        let mut out = vec![0.0; panel.len()];
        churn_dynamic::predict(
            &panel, free_c, &params, quantity, horizons, covered, exec, &mut out,
        )?;
        Ok(out)
    })?;
    Ok(to_numpy(py, out))
}

pub(super) fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(churn_dynamic_fit, m)?)?;
    m.add_function(wrap_pyfunction!(churn_dynamic_predict, m)?)?;
    m.add_function(wrap_pyfunction!(pnbd_dynamic_fit, m)?)?;
    m.add_function(wrap_pyfunction!(pnbd_dynamic_predict, m)?)?;
    m.add_function(wrap_pyfunction!(bgnbd_dynamic_fit, m)?)?;
    m.add_function(wrap_pyfunction!(bgnbd_dynamic_predict, m)?)?;
    Ok(())
}
