//! Bindings for the contractual (subscription) models: sBG and BdW.

use numpy::{PyArray1, PyReadonlyArray1};
use pyo3::prelude::*;
use pyo3::types::PyDict;

use super::{fit_options, fit_result_to_dict, run, slice, to_numpy};
use crate::data::check_lengths;
use crate::error::ClvError;
use crate::fit::fit;
use crate::models::bdw::{Bdw, BdwParams, ChurnData};

fn params_of(model: &str, params: &[f64]) -> crate::Result<BdwParams> {
    match model {
        "sbg" => {
            crate::fit::check_params(&crate::models::bdw::PARAMS[..2], params)?;
            Ok(BdwParams::new(params[0], params[1], 1.0))
        }
        "bdw" => BdwParams::from_slice(params),
        other => Err(ClvError::invalid_parameter(
            "model",
            format!("unknown model `{other}`"),
        )),
    }
}

/// The churn data a fit or a sample takes: survivor counts, or per-customer records.
pub(super) struct ChurnArrays<'a> {
    survivors: Option<&'a [f64]>,
    periods: Option<&'a [f64]>,
    churned: Option<&'a [f64]>,
    weights: Option<&'a [f64]>,
}

impl<'a> ChurnArrays<'a> {
    pub(super) fn new(
        survivors: &'a Option<PyReadonlyArray1<'_, f64>>,
        periods: &'a Option<PyReadonlyArray1<'_, f64>>,
        churned: &'a Option<PyReadonlyArray1<'_, f64>>,
        weights: &'a Option<PyReadonlyArray1<'_, f64>>,
    ) -> PyResult<Self> {
        let view = |a: &'a Option<PyReadonlyArray1<'_, f64>>, name: &str| match a {
            Some(s) => slice(s, name).map(Some),
            None => Ok(None),
        };
        Ok(ChurnArrays {
            survivors: view(survivors, "survivors")?,
            periods: view(periods, "periods")?,
            churned: view(churned, "churned")?,
            weights: view(weights, "weights")?,
        })
    }

    /// The validated churn data.
    pub(super) fn data(&self) -> crate::Result<ChurnData> {
        match (self.survivors, self.periods, self.churned) {
            (Some(s), None, None) => ChurnData::from_survivors(s),
            (None, Some(p), Some(c)) => {
                if let Some(w) = self.weights {
                    check_lengths(&[("weights", w.len())], p.len())?;
                }
                ChurnData::from_customers(p, c, self.weights)
            }
            _ => Err(ClvError::invalid_parameter(
                "survivors",
                "give either `survivors` (cohort counts) or `periods` and `churned` \
                 (one row per customer)",
            )),
        }
    }
}

/// Fit sBG or BdW from survivor counts or per-customer (periods, churned) records.
#[pyfunction]
#[pyo3(signature = (model, survivors=None, periods=None, churned=None, weights=None, penalizer=0.0, max_iter=0, tol=0.0))]
#[allow(clippy::too_many_arguments)]
fn churn_fit<'py>(
    py: Python<'py>,
    model: &str,
    survivors: Option<PyReadonlyArray1<'py, f64>>,
    periods: Option<PyReadonlyArray1<'py, f64>>,
    churned: Option<PyReadonlyArray1<'py, f64>>,
    weights: Option<PyReadonlyArray1<'py, f64>>,
    penalizer: f64,
    max_iter: u64,
    tol: f64,
) -> PyResult<Bound<'py, PyDict>> {
    let arrays = ChurnArrays::new(&survivors, &periods, &churned, &weights)?;
    let (res, rows) = run(py, Some(1), |exec, interrupt| {
        let data = arrays.data()?;
        let opts = fit_options(exec, interrupt, penalizer, max_iter, tol);
        let lik = if model == "sbg" {
            Bdw::shifted_beta_geometric(&data)
        } else {
            params_of(model, &[1.0, 1.0, 1.0])?;
            Bdw::new(&data)
        };
        Ok((fit(&lik, &opts)?, data.periods.len()))
    })?;
    fit_result_to_dict(py, &res, rows)
}

/// Element-wise predictions over `t` (and `k`): `survival`, `churn_probability`,
/// `retention_rate` (of period t), `probability_active` and `expected_renewals` (k periods after
/// tenure t), `residual_lifetime` (DERL at tenure t with discount rate k).
#[pyfunction]
#[pyo3(signature = (model, quantity, params, t, k=None))]
fn churn_predict<'py>(
    py: Python<'py>,
    model: &str,
    quantity: &str,
    params: Vec<f64>,
    t: PyReadonlyArray1<'py, f64>,
    k: Option<PyReadonlyArray1<'py, f64>>,
) -> PyResult<Bound<'py, PyArray1<f64>>> {
    let t = slice(&t, "t")?;
    let k = match &k {
        Some(k) => Some(slice(k, "k")?),
        None => None,
    };
    let out = run(py, Some(1), |_, _| {
        let p = params_of(model, &params)?;
        check_churn_periods(quantity, t)?;
        let second = |name: &str| churn_second_argument(quantity, name, k, t.len());
        let out: Vec<f64> = match quantity {
            "survival" => t.iter().map(|&t| p.survival(t)).collect(),
            "churn_probability" => t.iter().map(|&t| p.churn_probability(t)).collect(),
            "retention_rate" => t.iter().map(|&t| p.retention_rate(t)).collect(),
            "probability_active" => {
                let k = second("periods")?;
                t.iter()
                    .zip(k)
                    .map(|(&t, &k)| p.probability_active(t, k))
                    .collect()
            }
            "expected_renewals" => {
                let k = second("periods")?;
                t.iter()
                    .zip(k)
                    .map(|(&t, &k)| p.expected_renewals(t, k))
                    .collect()
            }
            "residual_lifetime" => {
                let k = second("discount_rate")?;
                t.iter()
                    .zip(k)
                    .map(|(&t, &d)| p.discounted_expected_residual_lifetime(t, d))
                    .collect::<crate::Result<Vec<f64>>>()?
            }
            other => {
                return Err(ClvError::invalid_parameter(
                    "quantity",
                    format!("unknown quantity `{other}`"),
                ))
            }
        };
        Ok(out)
    })?;
    Ok(to_numpy(py, out))
}

pub(super) fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(churn_fit, m)?)?;
    m.add_function(wrap_pyfunction!(churn_predict, m)?)?;
    Ok(())
}

/// The element-wise rules on `t` of a churn prediction: whole periods, from 1 for the
/// per-period rates (churn probability, retention rate), else from 0.
pub(super) fn check_churn_periods(quantity: &str, t: &[f64]) -> crate::Result<()> {
    let first = if quantity == "churn_probability" || quantity == "retention_rate" {
        1.0
    } else {
        0.0
    };
    if let Some(i) = t
        .iter()
        .position(|&v| !(v.is_finite() && v >= first && v.fract() == 0.0))
    {
        return Err(ClvError::invalid_data(
            "t",
            Some(i),
            Some(t[i]),
            format!("must be a whole number of periods >= {first}"),
        ));
    }
    Ok(())
}

/// The second argument `name` a churn prediction needs (periods ahead, or the discount rate of
/// the residual lifetime), one per `t`, checked.
pub(super) fn churn_second_argument<'a>(
    quantity: &str,
    name: &str,
    k: Option<&'a [f64]>,
    rows: usize,
) -> crate::Result<&'a [f64]> {
    let whole = quantity != "residual_lifetime";
    let k =
        k.ok_or_else(|| ClvError::invalid_parameter(name, format!("`{quantity}` needs `{name}`")))?;
    check_lengths(&[(name, k.len())], rows)?;
    if let Some(i) = k
        .iter()
        .position(|&v| !(v.is_finite() && v >= 0.0 && (!whole || v.fract() == 0.0)))
    {
        return Err(ClvError::invalid_data(
            name,
            Some(i),
            Some(k[i]),
            if whole {
                "must be a whole number of periods >= 0"
            } else {
                "must be a finite rate >= 0"
            },
        ));
    }
    Ok(k)
}
