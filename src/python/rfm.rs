//! Bindings for the models on (frequency, recency, T) summaries, one set of functions for all of
//! them: the model is named by its [`RfmModel::NAME`] and dispatched to the core here.

use ndarray::{CowArray, Ix2};
use numpy::{PyArray1, PyReadonlyArray1, PyReadonlyArray2};
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::PyDict;

use super::{fit_options, fit_result_to_dict, rfm_columns, run, slice, to_numpy};
use crate::data::{check_lengths, check_non_negative, Counts, RfmColumns, RfmCounts, RfmNames};
use crate::error::ClvError;
use crate::fit::FitOptions;
use crate::models::covariates::{self, CovariateRows, Links, StaticCovariates};
use crate::models::{
    BgBbParams, BgCnbdParams, BgNbdParams, CorrelatedParetoNbdParams, GgNbdParams, MbgCnbdParams,
    MbgNbdParams, NbdParams, ParetoNbdParams, RfmModel,
};
use crate::parallel::{Exec, CHUNK_ROWS};

pub(super) type Names = (String, String, String, String);

pub(super) fn rfm_names(names: Names) -> RfmNames {
    RfmNames {
        frequency: names.0,
        recency: names.1,
        age: names.2,
        weights: names.3,
    }
}

/// Run `$body` with `$M` the parameter type named `$model` among the listed ones, or return
/// `$unknown(name)` for any other name.
macro_rules! dispatch {
    ($model:expr, $M:ident => $body:expr; $($name:literal => $T:ty),+; $unknown:expr) => {
        match $model {
            $($name => {
                type $M = $T;
                $body
            })+
            other => Err(PyValueError::new_err($unknown(other))),
        }
    };
}

/// Run `$body` with `$M` the parameter type of the model named `$model`.
macro_rules! with_model {
    ($model:expr, $M:ident => $body:expr) => {
        dispatch!($model, $M => $body;
            "bgnbd" => BgNbdParams, "bgbb" => BgBbParams, "mbgnbd" => MbgNbdParams,
            "pnbd" => ParetoNbdParams, "ggnbd" => GgNbdParams, "nbd" => NbdParams,
            "pnbdcor" => CorrelatedParetoNbdParams;
            |other: &str| format!("unknown model `{other}`"))
    };
}

/// Run `$body` with `$M` the parameter type of the model named `$model`, among the models that
/// predict through this module: those of [`with_model!`] and the regularity models, which are
/// fitted for a given `k` in `super::regularity` and predict with `[r, alpha, a, b, k]`.
macro_rules! with_predicting_model {
    ($model:expr, $M:ident => $body:expr) => {
        dispatch!($model, $M => $body;
            "bgnbd" => BgNbdParams, "bgbb" => BgBbParams, "mbgnbd" => MbgNbdParams,
            "pnbd" => ParetoNbdParams, "ggnbd" => GgNbdParams, "nbd" => NbdParams,
            "pnbdcor" => CorrelatedParetoNbdParams, "bgcnbd" => BgCnbdParams, "mbgcnbd" => MbgCnbdParams;
            |other: &str| format!("unknown model `{other}`"))
    };
}

/// Run `$body` with `$M` the parameter type of the covariate model named `$model`.
macro_rules! with_covariate_model {
    ($model:expr, $M:ident => $body:expr) => {
        dispatch!($model, $M => $body;
            "bgnbd" => BgNbdParams, "mbgnbd" => MbgNbdParams, "pnbd" => ParetoNbdParams,
            "bgbb" => BgBbParams, "ggnbd" => GgNbdParams;
            |other: &str| format!(
                "`{other}` does not take covariates \
                 (BG/NBD, MBG/NBD, Pareto/NBD, GGompertz/NBD and BG/BB do)"
            ))
    };
}

// For the posterior predictions of `super::posterior`.
pub(super) use {dispatch, with_covariate_model, with_predicting_model};

/// Covariates as the Python layer hands them over: the purchase and dropout matrices (one row
/// per customer), the coefficient index of each of their columns, the columns' names, and the
/// coefficients' names.
pub(super) type CovariateArgs<'py> = (
    PyReadonlyArray2<'py, f64>,
    PyReadonlyArray2<'py, f64>,
    Vec<usize>,
    Vec<usize>,
    Vec<String>,
    Vec<String>,
    Vec<String>,
);

/// Borrowed covariate matrices with their links and column names.
pub(super) struct Design<'a> {
    /// Customers (rows of both matrices).
    customers: usize,
    /// `customers x purchase columns` in standard layout: numpy's C-contiguous matrix
    /// borrowed as it is (the Python layer hands such), any other layout copied.
    pub(super) purchase: CowArray<'a, f64, Ix2>,
    /// `customers x dropout columns`, likewise.
    pub(super) dropout: CowArray<'a, f64, Ix2>,
    pub(super) links: Links,
    pub(super) names: [Vec<String>; 2],
}

impl<'a> Design<'a> {
    pub(super) fn new(args: &'a CovariateArgs<'_>) -> PyResult<Self> {
        let customers = args.0.as_array().nrows();
        if args.1.as_array().nrows() != customers {
            return Err(PyValueError::new_err(format!(
                "the purchase and dropout covariate matrices have {} and {} rows",
                customers,
                args.1.as_array().nrows()
            )));
        }
        Ok(Design {
            customers,
            purchase: covariates::standard_layout(args.0.as_array()),
            dropout: covariates::standard_layout(args.1.as_array()),
            links: Links {
                purchase: args.2.clone(),
                dropout: args.3.clone(),
                names: args.6.clone(),
            },
            names: [args.4.clone(), args.5.clone()],
        })
    }

    /// The customer rows with these covariates, validated.
    pub(super) fn rows<'c>(&'c self, columns: &RfmColumns<'c>) -> crate::Result<CovariateRows<'c>> {
        let rows = CovariateRows::new(columns, self.purchase.view(), self.dropout.view());
        rows.validate(&self.links, [&self.names[0], &self.names[1]])?;
        Ok(rows)
    }
}

/// Fit a model with covariates; returns the fit as a dict.
#[pyfunction]
#[pyo3(signature = (model, frequency, recency, T, weights, names, covariates, penalizer=0.0, covariate_penalizer=0.0, max_iter=0, tol=0.0, n_jobs=None))]
#[allow(non_snake_case, clippy::too_many_arguments)]
fn rfm_fit_covariates<'py>(
    py: Python<'py>,
    model: &str,
    frequency: PyReadonlyArray1<'py, f64>,
    recency: PyReadonlyArray1<'py, f64>,
    T: PyReadonlyArray1<'py, f64>,
    weights: Option<PyReadonlyArray1<'py, f64>>,
    names: Names,
    covariates: CovariateArgs<'py>,
    penalizer: f64,
    covariate_penalizer: f64,
    max_iter: u64,
    tol: f64,
    n_jobs: Option<i64>,
) -> PyResult<Bound<'py, PyDict>> {
    let columns = rfm_columns(&frequency, &recency, &T, weights.as_ref())?;
    let design = Design::new(&covariates)?;
    let names = rfm_names(names);
    let res = with_covariate_model!(model, M => run(py, n_jobs, |exec, interrupt| {
        columns.validate_on(&names, exec)?;
        M::validate_more(&columns, &names)?;
        let rows = design.rows(&columns)?;
        let opts = FitOptions {
            coefficient_penalizer: covariate_penalizer,
            ..fit_options(exec, interrupt, penalizer, max_iter, tol)
        };
        M::fit_covariates(&rows, &design.links, &names, &opts)
    }))?;
    fit_result_to_dict(py, &res, columns.len())
}

/// One model for every customer, or one per customer (covariates).
pub(super) enum Models<'m, M> {
    Shared(&'m M),
    PerCustomer(&'m [M]),
}

impl<M> Models<'_, M> {
    #[inline]
    fn at(&self, i: usize) -> &M {
        match self {
            Models::Shared(m) => m,
            Models::PerCustomer(models) => &models[i],
        }
    }

    fn shared(&self) -> Option<&M> {
        match self {
            Models::Shared(m) => Some(m),
            Models::PerCustomer(_) => None,
        }
    }
}

/// A frequency column as the Python layer hands it over: float64, or an integer column taken
/// as it is (no float64 copy; see [`Counts`]).
pub(super) enum CountsArg<'py> {
    Float(PyReadonlyArray1<'py, f64>),
    I64(PyReadonlyArray1<'py, i64>),
    I32(PyReadonlyArray1<'py, i32>),
    U64(PyReadonlyArray1<'py, u64>),
    U32(PyReadonlyArray1<'py, u32>),
}

impl<'a, 'py> FromPyObject<'a, 'py> for CountsArg<'py> {
    type Error = PyErr;

    /// The variant of the array's dtype, found by type checks (a derived extraction tries each
    /// variant in turn and builds a Python error for every miss: about 8 us for an int64 column,
    /// a sixth of P(alive) for CDNOW's 2,357 customers). Anything that is none of these is
    /// refused as the float64 variant refuses it.
    fn extract(obj: Borrowed<'a, 'py, PyAny>) -> PyResult<Self> {
        if obj.cast::<PyArray1<i64>>().is_ok() {
            return Ok(CountsArg::I64(obj.extract()?));
        }
        if obj.cast::<PyArray1<i32>>().is_ok() {
            return Ok(CountsArg::I32(obj.extract()?));
        }
        if obj.cast::<PyArray1<u64>>().is_ok() {
            return Ok(CountsArg::U64(obj.extract()?));
        }
        if obj.cast::<PyArray1<u32>>().is_ok() {
            return Ok(CountsArg::U32(obj.extract()?));
        }
        Ok(CountsArg::Float(obj.extract()?))
    }
}

impl CountsArg<'_> {
    fn counts(&self) -> PyResult<Counts<'_>> {
        let contiguous = |_| PyValueError::new_err("`frequency` must be a contiguous array");
        Ok(match self {
            CountsArg::Float(v) => Counts::Float(slice(v, "frequency")?),
            CountsArg::I64(v) => Counts::I64(v.as_slice().map_err(contiguous)?),
            CountsArg::I32(v) => Counts::I32(v.as_slice().map_err(contiguous)?),
            CountsArg::U64(v) => Counts::U64(v.as_slice().map_err(contiguous)?),
            CountsArg::U32(v) => Counts::U32(v.as_slice().map_err(contiguous)?),
        })
    }
}

/// Fit a model; returns the fit as a dict. `frequency` may be an integer column (read in
/// place, validated and compressed like a float64 one, bit for bit).
#[pyfunction]
#[pyo3(signature = (model, frequency, recency, T, weights, names, penalizer=0.0, max_iter=0, tol=0.0, n_jobs=None, start=None))]
#[allow(non_snake_case, clippy::too_many_arguments)]
fn rfm_fit<'py>(
    py: Python<'py>,
    model: &str,
    frequency: CountsArg<'py>,
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
    let input = RfmCounts {
        frequency: frequency.counts()?,
        recency: slice(&recency, "recency")?,
        age: slice(&T, "T")?,
        weights: match &weights {
            Some(w) => Some(slice(w, "weights")?),
            None => None,
        },
    };
    let names = rfm_names(names);
    let (res, n_rows) = with_model!(model, M => run(py, n_jobs, |exec, interrupt| {
        input.validate_on(&names, exec)?;
        validate_more::<M>(&input, &names)?;
        let data = input.compress_on(exec);
        crate::models::check_fittable(&data.frequency, &names)?;
        let opts = FitOptions {
            start,
            ..fit_options(exec, interrupt, penalizer, max_iter, tol)
        };
        Ok((M::fit(&data, &opts)?, data.len()))
    }))?;
    fit_result_to_dict(py, &res, n_rows)
}

/// [`RfmModel::validate_more`] on columns whose frequency may be integers: float64 columns as
/// they are; otherwise block by block, each block's frequencies converted (no float64 copy of
/// the whole column), the rows of an error shifted back to the input's. The models' own rules
/// are rules of each row, so the first row breaking one is the same either way.
fn validate_more<M: RfmModel>(input: &RfmCounts<'_>, names: &RfmNames) -> crate::Result<()> {
    /// The rows `range` of `input`, with these frequencies.
    fn rows<'b>(
        input: &RfmCounts<'b>,
        range: std::ops::Range<usize>,
        frequency: &'b [f64],
    ) -> RfmColumns<'b> {
        RfmColumns {
            frequency,
            recency: &input.recency[range.clone()],
            age: &input.age[range.clone()],
            weights: input.weights.map(|w| &w[range]),
        }
    }
    if !M::HAS_MORE_RULES {
        return Ok(());
    }
    let counts = input.frequency;
    if let Counts::Float(x) = counts {
        return M::validate_more(&rows(input, 0..x.len(), x), names);
    }
    let n = counts.len();
    let mut block = vec![0.0; CHUNK_ROWS.min(n)];
    for start in (0..n).step_by(CHUNK_ROWS) {
        let range = start..(start + CHUNK_ROWS).min(n);
        let block = &mut block[..range.len()];
        convert_counts(counts, start, block);
        M::validate_more(&rows(input, range, block), names).map_err(|err| match err {
            ClvError::InvalidData(mut d) => {
                d.row = d.row.map(|r| r + start);
                ClvError::InvalidData(d)
            }
            other => other,
        })?;
    }
    Ok(())
}

/// One value, or one per customer, of a per-customer argument.
pub(super) struct PerRow<'a> {
    pub(super) name: &'static str,
    pub(super) values: &'a [f64],
}

impl PerRow<'_> {
    pub(super) fn check(&self, rows: usize, integer: bool) -> crate::Result<()> {
        check_non_negative(self.name, self.values, integer)?;
        check_horizon_limit(self.name, self.values, f64::INFINITY)?;
        if self.values.len() != 1 && self.values.len() != rows {
            return Err(ClvError::invalid_data(
                self.name,
                None,
                None,
                format!(
                    "must be one value or one per customer ({rows}), got {}",
                    self.values.len()
                ),
            ));
        }
        Ok(())
    }

    #[inline]
    fn at(&self, i: usize) -> f64 {
        if self.values.len() == 1 {
            self.values[0]
        } else {
            self.values[i]
        }
    }
}

/// The per-customer arguments of a prediction as the bindings receive them: the horizon `t`
/// (named `discount_rate` for the DERT, which reads a rate there) and the counts `n`, each one
/// value or one per customer. Shared by the point predictions ([`rfm_predict`]) and the
/// posterior ones (`super::posterior`), so both name, check and limit them alike.
pub(super) struct PerCustomerArgs<'a> {
    pub(super) horizon: Option<PerRow<'a>>,
    pub(super) counts: Option<PerRow<'a>>,
}

impl<'a> PerCustomerArgs<'a> {
    pub(super) fn new(
        quantity: &str,
        t: &'a Option<PyReadonlyArray1<'_, f64>>,
        n: &'a Option<PyReadonlyArray1<'_, f64>>,
    ) -> PyResult<Self> {
        let t_name = if quantity == "expected_residual_transactions" {
            "discount_rate"
        } else {
            "t"
        };
        Ok(PerCustomerArgs {
            horizon: match t {
                Some(t) => Some(PerRow {
                    name: t_name,
                    values: slice(t, t_name)?,
                }),
                None => None,
            },
            counts: match n {
                Some(n) => Some(PerRow {
                    name: "n",
                    values: slice(n, "n")?,
                }),
                None => None,
            },
        })
    }

    /// The rules of each argument for `rows` customers, and the model's longest horizon
    /// ([`RfmModel::MAX_HORIZON`]) where the quantity's cost grows with the horizon (expected
    /// purchases, P(alive) and the DERT cost the same at any horizon).
    pub(super) fn check<M: RfmModel>(&self, quantity: &str, rows: usize) -> crate::Result<()> {
        if let Some(h) = &self.horizon {
            h.check(rows, false)?;
            if !matches!(
                quantity,
                "expected_residual_transactions" | "expected_purchases" | "probability_alive"
            ) {
                check_horizon_limit(h.name, h.values, M::MAX_HORIZON)?;
            }
        }
        if let Some(c) = &self.counts {
            c.check(rows, true)?;
        }
        Ok(())
    }

    /// The arguments of the customers `range` (a single value serves every block).
    pub(super) fn block(&self, range: &std::ops::Range<usize>) -> PerCustomerArgs<'a> {
        let part = |arg: &Option<PerRow<'a>>| {
            arg.as_ref().map(|a| PerRow {
                name: a.name,
                values: if a.values.len() == 1 {
                    a.values
                } else {
                    &a.values[range.clone()]
                },
            })
        };
        PerCustomerArgs {
            horizon: part(&self.horizon),
            counts: part(&self.counts),
        }
    }
}

/// Refuse horizons beyond `limit` (a model's [`RfmModel::MAX_HORIZON`]).
pub(super) fn check_horizon_limit(name: &str, values: &[f64], limit: f64) -> crate::Result<()> {
    match values.iter().position(|&v| v > limit) {
        Some(i) => Err(ClvError::invalid_data(
            name,
            Some(i),
            Some(values[i]),
            format!("must be at most {limit} for this model (it visits each period one by one)"),
        )),
        None => Ok(()),
    }
}

fn unsupported(model: &str, quantity: &str) -> ClvError {
    ClvError::invalid_parameter(
        "quantity",
        format!("`{quantity}` is not available for `{model}`"),
    )
}

/// Per-customer predictions of `quantity` for the model named `model`:
/// `log_likelihood`, `probability_alive` (at T, or at T + t when `t` is given),
/// `expected_purchases` (in (T, T + t]), `purchase_count_probability` (n purchases in
/// (T, T + t]) and `expected_residual_transactions` (`t` is the continuous discount rate).
/// `t` and `n` hold one value or one per customer.
#[pyfunction]
#[pyo3(signature = (model, quantity, params, frequency, recency, T, names, t=None, n=None, n_jobs=None, covariates=None))]
#[allow(non_snake_case, clippy::too_many_arguments)]
fn rfm_predict<'py>(
    py: Python<'py>,
    model: &str,
    quantity: &str,
    params: Vec<f64>,
    frequency: CountsArg<'py>,
    recency: PyReadonlyArray1<'py, f64>,
    T: PyReadonlyArray1<'py, f64>,
    names: Names,
    t: Option<PyReadonlyArray1<'py, f64>>,
    n: Option<PyReadonlyArray1<'py, f64>>,
    n_jobs: Option<i64>,
    covariates: Option<CovariateArgs<'py>>,
) -> PyResult<Bound<'py, PyArray1<f64>>> {
    let input = RfmCounts {
        frequency: frequency.counts()?,
        recency: slice(&recency, "recency")?,
        age: slice(&T, "T")?,
        weights: None,
    };
    let design = match &covariates {
        Some(args) => Some(Design::new(args)?),
        None => None,
    };
    let names = rfm_names(names);
    let args = PerCustomerArgs::new(quantity, &t, &n)?;
    let (horizon, counts) = (&args.horizon, &args.counts);
    let mut out = vec![0.0; input.frequency.len()];
    match &design {
        None => with_predicting_model!(model, M => run(py, n_jobs, |exec, _| {
            let p = M::from_slice(&params)?;
            input.validate_on(&names, exec)?;
            args.check::<M>(quantity, input.frequency.len())?;
            validate_more::<M>(&input, &names)?;
            if quantity == "probability_alive" && horizon.is_none() {
                probability_alive_by_blocks(&p, &input, exec, &mut out);
                return Ok(());
            }
            let frequency = float_frequency(input.frequency, exec);
            let columns = RfmColumns::new(&frequency, input.recency, input.age);
            let models = Models::Shared(&p);
            predict(&models, quantity, &columns, horizon.as_ref(), counts.as_ref(), exec, &mut out)
        }))?,
        Some(design) => with_covariate_model!(model, M => run(py, n_jobs, |exec, _| {
            input.validate_on(&names, exec)?;
            args.check::<M>(quantity, input.frequency.len())?;
            validate_more::<M>(&input, &names)?;
            let frequency = float_frequency(input.frequency, exec);
            let columns = RfmColumns::new(&frequency, input.recency, input.age);
            let rows = design.rows(&columns)?;
            let each = M::customer_models(&rows, &design.links, &params, exec)?;
            let models = Models::PerCustomer(&each);
            predict(&models, quantity, &columns, horizon.as_ref(), counts.as_ref(), exec, &mut out)
        }))?,
    }
    Ok(to_numpy(py, out))
}

/// The frequency column as float64: borrowed when it is one, else converted in parallel
/// (`value as f64`, as [`Counts::get`] reads it).
fn float_frequency<'a>(counts: Counts<'a>, exec: &Exec) -> std::borrow::Cow<'a, [f64]> {
    if let Counts::Float(x) = counts {
        return std::borrow::Cow::Borrowed(x);
    }
    let mut x = vec![0.0; counts.len()];
    exec.fill_blocks(&mut x, |start, block| convert_counts(counts, start, block));
    std::borrow::Cow::Owned(x)
}

/// `out[j] = counts[start + j] as f64` (one loop per integer type, so each compiles to SIMD).
fn convert_counts(counts: Counts<'_>, start: usize, out: &mut [f64]) {
    fn convert<T: Copy>(from: &[T], out: &mut [f64], as_f64: impl Fn(T) -> f64) {
        for (slot, &v) in out.iter_mut().zip(from) {
            *slot = as_f64(v);
        }
    }
    let rows = start..start + out.len();
    match counts {
        Counts::Float(x) => out.copy_from_slice(&x[rows]),
        Counts::I64(x) => convert(&x[rows], out, |v| v as f64),
        Counts::I32(x) => convert(&x[rows], out, f64::from),
        Counts::U64(x) => convert(&x[rows], out, |v| v as f64),
        Counts::U32(x) => convert(&x[rows], out, f64::from),
    }
}

/// P(alive) at T for every row, block by block: each block's frequencies converted to float64
/// where they are integers (no float64 copy of the whole column), then the model's bulk
/// kernel on the block. Every model's [`RfmModel::probability_alive_bulk`] gives a row a value
/// that depends on that row alone, so the values are those of one call on all rows.
fn probability_alive_by_blocks<M: RfmModel>(
    p: &M,
    input: &RfmCounts<'_>,
    exec: &Exec,
    out: &mut [f64],
) {
    exec.fill_blocks(out, |start, block| {
        let rows = start..start + block.len();
        let mut converted = [0.0; CHUNK_ROWS];
        let frequency: &[f64] = match input.frequency {
            Counts::Float(x) => &x[rows.clone()],
            counts => {
                convert_counts(counts, start, &mut converted[..block.len()]);
                &converted[..block.len()]
            }
        };
        let columns = RfmColumns::new(frequency, &input.recency[rows.clone()], &input.age[rows]);
        p.probability_alive_bulk(&columns, &Exec::Serial, block);
    });
}

/// The body of [`rfm_predict`] for one model type.
#[allow(clippy::too_many_arguments)]
pub(super) fn predict<'a, M: RfmModel>(
    p: &Models<'_, M>,
    quantity: &str,
    columns: &RfmColumns<'_>,
    horizon: Option<&'a PerRow<'a>>,
    counts: Option<&'a PerRow<'a>>,
    exec: &Exec,
    out: &mut [f64],
) -> crate::Result<()> {
    let require = |arg: Option<&'a PerRow<'a>>, name: &str| {
        arg.ok_or_else(|| ClvError::invalid_parameter(name, format!("`{quantity}` needs `{name}`")))
    };
    // Per-row values, failing if the model cannot serve them (the same for every row).
    let rows = |out: &mut [f64], f: &(dyn Fn(f64, f64, f64, usize) -> Option<f64> + Sync)| {
        let supported = std::sync::atomic::AtomicBool::new(true);
        let value = |x: f64, t_x: f64, age: f64, i: usize| {
            f(x, t_x, age, i).unwrap_or_else(|| {
                supported.store(false, std::sync::atomic::Ordering::Relaxed);
                f64::NAN
            })
        };
        if M::FEW_DISTINCT_HISTORIES && p.shared().is_some() {
            // Once per distinct (history, horizon, count) within a block: the row enters `f`
            // only through them when the model is shared.
            let key = |i: usize| {
                [
                    columns.frequency[i],
                    columns.recency[i],
                    columns.age[i],
                    horizon.map_or(0.0, |h| h.at(i)),
                    counts.map_or(0.0, |c| c.at(i)),
                ]
            };
            crate::models::fill_memoized(exec, out, key, |i| {
                value(columns.frequency[i], columns.recency[i], columns.age[i], i)
            });
        } else {
            crate::models::predict_rows(exec, columns, out, value);
        }
        if supported.into_inner() {
            Ok(())
        } else {
            Err(unsupported(M::NAME, quantity))
        }
    };
    match quantity {
        "log_likelihood" => rows(out, &|x, t_x, age, i| {
            Some(p.at(i).log_likelihood(x, t_x, age))
        }),
        "probability_alive" => match (horizon, p.shared()) {
            (None, Some(shared)) => {
                shared.probability_alive_bulk(columns, exec, out);
                Ok(())
            }
            (None, None) => rows(out, &|x, t_x, age, i| {
                Some(p.at(i).probability_alive(x, t_x, age))
            }),
            (Some(h), _) => rows(out, &|x, t_x, age, i| {
                p.at(i).probability_alive_after(x, t_x, age, h.at(i))
            }),
        },
        "expected_purchases" => {
            let h = require(horizon, "t")?;
            // (A horizon given per customer but the same for all, as lifetimes' wrappers
            // broadcast it, takes the single horizon's route: the same values either way.)
            let single = h
                .values
                .first()
                .filter(|&&t| h.values.iter().all(|v| v.to_bits() == t.to_bits()));
            match (p.shared(), single) {
                (Some(shared), Some(&t)) => {
                    shared.conditional_expected_purchases_bulk(columns, t, exec, out);
                    Ok(())
                }
                _ => rows(out, &|x, t_x, age, i| {
                    Some(p.at(i).conditional_expected_purchases(x, t_x, age, h.at(i)))
                }),
            }
        }
        "purchase_count_probability" => {
            let h = require(horizon, "t")?;
            let c = require(counts, "n")?;
            rows(out, &|x, t_x, age, i| {
                p.at(i)
                    .conditional_purchase_count_probability(c.at(i) as u64, x, t_x, age, h.at(i))
            })
        }
        "expected_residual_transactions" => {
            let h = require(horizon, "discount_rate")?;
            if let Some(i) = (0..h.values.len()).find(|&i| !(h.values[i] > 0.0)) {
                return Err(ClvError::invalid_data(
                    "discount_rate",
                    Some(i),
                    Some(h.values[i]),
                    "must be positive",
                ));
            }
            rows(out, &|x, t_x, age, i| {
                p.at(i).expected_residual_transactions(x, t_x, age, h.at(i))
            })
        }
        other => Err(ClvError::invalid_parameter(
            "quantity",
            format!("unknown quantity `{other}`"),
        )),
    }
}

/// New-customer predictions: `expected_purchases` (E[X(t)] for each t) or
/// `purchase_count_probability` (P(X(t) = n), element-wise over equal-length n and t). With
/// `covariates`, element `i` is for a new customer with the covariates of row `i`.
#[pyfunction]
#[pyo3(signature = (model, quantity, params, t, n=None, n_jobs=None, covariates=None))]
#[allow(clippy::too_many_arguments)]
fn rfm_new_customer<'py>(
    py: Python<'py>,
    model: &str,
    quantity: &str,
    params: Vec<f64>,
    t: PyReadonlyArray1<'py, f64>,
    n: Option<PyReadonlyArray1<'py, f64>>,
    n_jobs: Option<i64>,
    covariates: Option<CovariateArgs<'py>>,
) -> PyResult<Bound<'py, PyArray1<f64>>> {
    let horizon = slice(&t, "t")?;
    let counts = match &n {
        Some(n) => Some(slice(n, "n")?),
        None => None,
    };
    let design = match &covariates {
        Some(args) => Some(Design::new(args)?),
        None => None,
    };
    let out = match &design {
        None => with_predicting_model!(model, M => run(py, n_jobs, |exec, _| {
            let p = M::from_slice(&params)?;
            new_customer(&Models::Shared(&p), quantity, horizon, counts, exec)
        }))?,
        Some(design) => with_covariate_model!(model, M => run(py, n_jobs, |exec, _| {
            check_lengths(&[("t", horizon.len())], design.customers)?;
            // New customers have no history: only their covariates matter.
            let none = vec![0.0; design.customers];
            let columns = RfmColumns::new(&none, &none, &none);
            let rows = design.rows(&columns)?;
            let each = M::customer_models(&rows, &design.links, &params, exec)?;
            new_customer(&Models::PerCustomer(&each), quantity, horizon, counts, exec)
        }))?,
    };
    Ok(to_numpy(py, out))
}

/// The body of [`rfm_new_customer`] for one model type.
fn new_customer<M: RfmModel>(
    p: &Models<'_, M>,
    quantity: &str,
    horizon: &[f64],
    counts: Option<&[f64]>,
    exec: &Exec,
) -> crate::Result<Vec<f64>> {
    check_non_negative("t", horizon, false)?;
    // (Only the count probability visits each period; the callers name their own argument.)
    if quantity == "purchase_count_probability" {
        check_horizon_limit("t", horizon, M::MAX_HORIZON)?;
    }
    let mut out = vec![0.0; horizon.len()];
    match (quantity, counts) {
        ("expected_purchases", _) => {
            exec.fill(&mut out, |i| {
                p.at(i).expected_purchases_new_customer(horizon[i])
            });
        }
        ("purchase_count_probability", Some(counts)) => {
            check_non_negative("n", counts, true)?;
            check_lengths(&[("t", horizon.len())], counts.len())?;
            if horizon.is_empty() {
                return Ok(out);
            }
            if p.at(0).purchase_count_probability(0, 0.0).is_none() {
                return Err(unsupported(M::NAME, quantity));
            }
            exec.fill(&mut out, |i| {
                p.at(i)
                    .purchase_count_probability(counts[i] as u64, horizon[i])
                    .unwrap_or(f64::NAN)
            });
        }
        _ => {
            return Err(ClvError::invalid_parameter(
                "quantity",
                format!("unknown quantity `{quantity}` (or missing `n`)"),
            ))
        }
    }
    Ok(out)
}

/// `sum_j weights[j] E[X(T, T + horizons[j])]` per customer (discounted purchase streams).
#[pyfunction]
#[pyo3(signature = (model, params, frequency, recency, T, names, horizons, weights, n_jobs=None, covariates=None))]
#[allow(non_snake_case, clippy::too_many_arguments)]
fn rfm_weighted_expected_purchases<'py>(
    py: Python<'py>,
    model: &str,
    params: Vec<f64>,
    frequency: PyReadonlyArray1<'py, f64>,
    recency: PyReadonlyArray1<'py, f64>,
    T: PyReadonlyArray1<'py, f64>,
    names: Names,
    horizons: Vec<f64>,
    weights: Vec<f64>,
    n_jobs: Option<i64>,
    covariates: Option<CovariateArgs<'py>>,
) -> PyResult<Bound<'py, PyArray1<f64>>> {
    let columns = RfmColumns::new(
        slice(&frequency, "frequency")?,
        slice(&recency, "recency")?,
        slice(&T, "T")?,
    );
    let design = match &covariates {
        Some(args) => Some(Design::new(args)?),
        None => None,
    };
    let names = rfm_names(names);
    let check = |exec: &Exec| -> crate::Result<Vec<(f64, f64)>> {
        columns.validate_on(&names, exec)?;
        check_non_negative("horizons", &horizons, false)?;
        check_lengths(&[("weights", weights.len())], horizons.len())?;
        Ok(weights
            .iter()
            .copied()
            .zip(horizons.iter().copied())
            .collect())
    };
    let mut out = vec![0.0; columns.len()];
    match &design {
        None => with_predicting_model!(model, M => run(py, n_jobs, |exec, _| {
            let p = M::from_slice(&params)?;
            let pairs = check(exec)?;
            M::validate_more(&columns, &names)?;
            p.weighted_expected_purchases_bulk(&columns, &pairs, exec, &mut out);
            Ok(())
        }))?,
        Some(design) => with_covariate_model!(model, M => run(py, n_jobs, |exec, _| {
            let pairs = check(exec)?;
            let rows = design.rows(&columns)?;
            let each = M::customer_models(&rows, &design.links, &params, exec)?;
            crate::models::predict_rows(exec, &columns, &mut out, |x, t_x, age, i| {
                pairs
                    .iter()
                    .map(|&(w, t)| w * each[i].conditional_expected_purchases(x, t_x, age, t))
                    .sum()
            });
            Ok(())
        }))?,
    }
    Ok(to_numpy(py, out))
}

/// Fit one model per segment (`segment` holds codes `0..n_segments`); returns a list with, per
/// segment, a fit dict or an error message, and the segment's size.
#[pyfunction]
#[pyo3(signature = (model, frequency, recency, T, weights, segment, n_segments, names, min_customers=1.0, penalizer=0.0, max_iter=0, tol=0.0, n_jobs=None))]
#[allow(non_snake_case, clippy::too_many_arguments)]
fn rfm_fit_segments<'py>(
    py: Python<'py>,
    model: &str,
    frequency: PyReadonlyArray1<'py, f64>,
    recency: PyReadonlyArray1<'py, f64>,
    T: PyReadonlyArray1<'py, f64>,
    weights: Option<PyReadonlyArray1<'py, f64>>,
    segment: PyReadonlyArray1<'py, i64>,
    n_segments: usize,
    names: Names,
    min_customers: f64,
    penalizer: f64,
    max_iter: u64,
    tol: f64,
    n_jobs: Option<i64>,
) -> PyResult<Bound<'py, pyo3::types::PyList>> {
    let columns = rfm_columns(&frequency, &recency, &T, weights.as_ref())?;
    let codes = segment.as_slice()?;
    let names = rfm_names(names);
    let fits = with_model!(model, M => run(py, n_jobs, |exec, interrupt| {
        let opts = fit_options(exec, interrupt, penalizer, max_iter, tol);
        let fits = crate::segments::fit_segments::<M>(
            &columns, &names, codes, n_segments, min_customers, &opts, exec,
        )?;
        if fits.iter().any(|f| matches!(f.result, Err(ClvError::Interrupted))) {
            return Err(ClvError::Interrupted);
        }
        Ok(fits)
    }))?;
    let out = pyo3::types::PyList::empty(py);
    for f in fits {
        let d = match &f.result {
            Ok(res) => fit_result_to_dict(py, res, f.rows)?,
            Err(e) => {
                let d = PyDict::new(py);
                d.set_item("error", e.to_string())?;
                d
            }
        };
        d.set_item("segment", f.segment)?;
        d.set_item("customers", f.customers)?;
        out.append(d)?;
    }
    Ok(out)
}

/// Simulated `(frequency, recency)` columns.
type Histories<'py> = (Bound<'py, PyArray1<f64>>, Bound<'py, PyArray1<f64>>);

/// Simulated histories `(frequency, recency)` for customers of ages `T`.
#[pyfunction]
#[pyo3(signature = (model, params, T, seed))]
#[allow(non_snake_case)]
fn rfm_simulate<'py>(
    py: Python<'py>,
    model: &str,
    params: Vec<f64>,
    T: PyReadonlyArray1<'py, f64>,
    seed: u64,
) -> PyResult<Histories<'py>> {
    let ages = slice(&T, "T")?;
    let (x, t_x) = with_predicting_model!(model, M => run(py, Some(1), |_, _| {
        let p = M::from_slice(&params)?;
        check_non_negative("T", ages, false)?;
        p.simulate(ages, seed)
            .ok_or_else(|| unsupported(M::NAME, "simulate"))
    }))?;
    Ok((to_numpy(py, x), to_numpy(py, t_x)))
}

pub(super) fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(rfm_simulate, m)?)?;
    m.add_function(wrap_pyfunction!(rfm_fit_segments, m)?)?;
    m.add_function(wrap_pyfunction!(rfm_weighted_expected_purchases, m)?)?;
    m.add_function(wrap_pyfunction!(rfm_fit, m)?)?;
    m.add_function(wrap_pyfunction!(rfm_fit_covariates, m)?)?;
    m.add_function(wrap_pyfunction!(rfm_predict, m)?)?;
    m.add_function(wrap_pyfunction!(rfm_new_customer, m)?)?;
    Ok(())
}
