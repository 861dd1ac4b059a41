//! Bindings for the predictions of a Bayesian fit: each per-customer prediction of a model
//! streamed over its posterior draws ([`crate::bayes::predict`]), as the posterior mean and
//! standard deviation and, on request, an equal-tailed credible interval.

use ndarray::{s, ArrayView2, CowArray, Ix2};
use numpy::{PyArray1, PyReadonlyArray1, PyReadonlyArray2};
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::PyDict;

use super::rfm::{
    dispatch, predict, rfm_names, with_covariate_model, with_predicting_model, CovariateArgs,
    Design, Models, Names, PerCustomerArgs, PerRow,
};
use super::{run, slice};
use crate::bayes::bg_value::{bg_posterior_predict, Quantity, SpendInput};
use crate::bayes::predict::{posterior_predict, PosteriorPrediction, PredictOptions};
use crate::data::{check_lengths, check_non_negative, RfmColumns, SpendColumns, SpendNames};
use crate::error::ClvError;
use crate::models::covariates::{self, CovariateRows, StaticCovariates};
use crate::models::gamma_gamma::GammaGammaParams;
use crate::models::{
    BgBbParams, BgCnbdParams, BgNbdParams, CorrelatedParetoNbdParams, GgNbdParams, MbgCnbdParams,
    MbgNbdParams, NbdParams, ParetoNbdParams, RfmModel,
};
use crate::parallel::Exec;

pub(super) fn to_dict<'py>(
    py: Python<'py>,
    p: PosteriorPrediction,
) -> PyResult<Bound<'py, PyDict>> {
    let out = PyDict::new(py);
    out.set_item("mean", PyArray1::from_vec(py, p.mean))?;
    out.set_item("sd", PyArray1::from_vec(py, p.sd))?;
    if let (Some(lower), Some(upper)) = (p.lower, p.upper) {
        out.set_item("lower", PyArray1::from_vec(py, lower))?;
        out.set_item("upper", PyArray1::from_vec(py, upper))?;
    }
    Ok(out)
}

fn options<'a>(
    level: Option<f64>,
    bins: usize,
    exec: &Exec,
    interrupt: &'a (dyn Fn() -> bool + Sync),
) -> PredictOptions<'a> {
    PredictOptions {
        level,
        bins,
        exec: exec.clone(),
        interrupt: Some(interrupt),
        ..PredictOptions::default()
    }
}

/// `values` for the customers of `range`: one value stays one value.
fn sub<'a>(values: &'a [f64], range: &std::ops::Range<usize>) -> &'a [f64] {
    if values.len() == 1 {
        values
    } else {
        &values[range.clone()]
    }
}

/// The Gamma-Gamma spend per transaction of each customer at one draw.
struct SpendDraws<'a> {
    draws: CowArray<'a, f64, Ix2>,
    columns: SpendColumns<'a>,
}

impl SpendDraws<'_> {
    fn fill(&self, s: usize, range: std::ops::Range<usize>, out: &mut [f64]) -> crate::Result<()> {
        let draw = self.draws.row(s % self.draws.nrows());
        let p = GammaGammaParams::from_slice(draw.as_slice().unwrap_or(&draw.to_vec()))?;
        for (o, i) in out.iter_mut().zip(range) {
            *o =
                p.conditional_expected_spend(self.columns.frequency[i], self.columns.monetary[i])?;
        }
        Ok(())
    }

    /// Each customer's log-likelihood of their mean spend at one draw (customers with repeat
    /// transactions: the spend model says nothing of the others).
    fn fill_log_likelihood(
        &self,
        s: usize,
        range: std::ops::Range<usize>,
        out: &mut [f64],
    ) -> crate::Result<()> {
        let draw = self.draws.row(s % self.draws.nrows());
        let p = GammaGammaParams::from_slice(draw.as_slice().unwrap_or(&draw.to_vec()))?;
        for (o, i) in out.iter_mut().zip(range) {
            *o = p.log_likelihood(self.columns.frequency[i], self.columns.monetary[i]);
        }
        Ok(())
    }
}

fn draws_matrix<'a>(
    draws: &'a PyReadonlyArray2<'_, f64>,
    k: Option<usize>,
) -> PyResult<CowArray<'a, f64, Ix2>> {
    let view: ArrayView2<'a, f64> = draws.as_array();
    if view.nrows() == 0 || k.is_some_and(|k| view.ncols() != k) {
        return Err(PyValueError::new_err(format!(
            "draws: need a (draws x parameters) matrix with at least one draw, got {:?}",
            view.shape()
        )));
    }
    Ok(covariates::standard_layout(view))
}

/// Posterior predictions of an RFM model: `quantity` as for `rfm_predict` (with `t` and `n`),
/// or `weighted_expected_purchases` (`horizons`, `weights`), for every draw (row of `draws`),
/// streamed. Each draw's prediction is multiplied by `scale` (one value or one per customer)
/// and, with `spend_draws`, by the Gamma-Gamma expected spend of the customer (`spend_frequency`,
/// `spend_monetary`) at spend draw `s mod spend draws`: posterior customer value.
/// Returns a dict with `mean`, `sd` and, with `level`, `lower` and `upper`.
#[pyfunction]
#[pyo3(signature = (model, quantity, draws, frequency, recency, T, names, t=None, n=None, horizons=None, weights=None, scale=None, spend_draws=None, spend_frequency=None, spend_monetary=None, level=None, bins=512, n_jobs=None, covariates=None))]
#[allow(non_snake_case, clippy::too_many_arguments)]
fn rfm_posterior_predict<'py>(
    py: Python<'py>,
    model: &str,
    quantity: &str,
    draws: PyReadonlyArray2<'py, f64>,
    frequency: PyReadonlyArray1<'py, f64>,
    recency: PyReadonlyArray1<'py, f64>,
    T: PyReadonlyArray1<'py, f64>,
    names: Names,
    t: Option<PyReadonlyArray1<'py, f64>>,
    n: Option<PyReadonlyArray1<'py, f64>>,
    horizons: Option<Vec<f64>>,
    weights: Option<Vec<f64>>,
    scale: Option<PyReadonlyArray1<'py, f64>>,
    spend_draws: Option<PyReadonlyArray2<'py, f64>>,
    spend_frequency: Option<PyReadonlyArray1<'py, f64>>,
    spend_monetary: Option<PyReadonlyArray1<'py, f64>>,
    level: Option<f64>,
    bins: usize,
    n_jobs: Option<i64>,
    covariates: Option<CovariateArgs<'py>>,
) -> PyResult<Bound<'py, PyDict>> {
    let columns = RfmColumns::new(
        slice(&frequency, "frequency")?,
        slice(&recency, "recency")?,
        slice(&T, "T")?,
    );
    let n_customers = columns.len();
    let draws = draws_matrix(&draws, None)?;
    let design = match &covariates {
        Some(args) => Some(Design::new(args)?),
        None => None,
    };
    let args = PerCustomerArgs::new(quantity, &t, &n)?;
    let scale = match &scale {
        Some(v) => Some(slice(v, "scale")?),
        None => None,
    };
    let spend = match (&spend_draws, &spend_frequency, &spend_monetary) {
        (Some(d), Some(f), Some(m)) => Some(SpendDraws {
            draws: draws_matrix(d, Some(3))?,
            columns: SpendColumns {
                frequency: slice(f, "frequency")?,
                monetary: slice(m, "monetary_value")?,
                weights: None,
            },
        }),
        (None, None, None) => None,
        _ => {
            return Err(PyValueError::new_err(
                "spend_draws, spend_frequency and spend_monetary go together",
            ))
        }
    };
    let names = rfm_names(names);
    let weighted = quantity == "weighted_expected_purchases";
    let check = |exec: &Exec| -> crate::Result<Vec<(f64, f64)>> {
        columns.validate_on(&names, exec)?;
        if let Some(v) = scale {
            check_non_negative("scale", v, false)?;
            if v.len() != 1 {
                check_lengths(&[("scale", v.len())], n_customers)?;
            }
        }
        if let Some(sp) = &spend {
            check_lengths(
                &[
                    ("spend frequency", sp.columns.frequency.len()),
                    ("monetary_value", sp.columns.monetary.len()),
                ],
                n_customers,
            )?;
            sp.columns.validate(&SpendNames {
                frequency: "frequency".into(),
                monetary: "monetary_value".into(),
                weights: "weights".into(),
            })?;
        }
        if !weighted {
            return Ok(Vec::new());
        }
        let (h, w) = match (&horizons, &weights) {
            (Some(h), Some(w)) => (h, w),
            _ => {
                return Err(ClvError::invalid_parameter(
                    "horizons",
                    "`weighted_expected_purchases` needs horizons and weights".to_string(),
                ))
            }
        };
        check_non_negative("horizons", h, false)?;
        check_lengths(&[("weights", w.len())], h.len())?;
        Ok(w.iter().copied().zip(h.iter().copied()).collect())
    };
    // Scale by the fixed factor and the spend at this draw.
    let finish = |s: usize, range: &std::ops::Range<usize>, out: &mut [f64]| -> crate::Result<()> {
        if let Some(v) = scale {
            let v = sub(v, range);
            for (j, o) in out.iter_mut().enumerate() {
                *o *= v[if v.len() == 1 { 0 } else { j }];
            }
        }
        if let Some(sp) = &spend {
            let mut spent = vec![0.0; out.len()];
            sp.fill(s, range.clone(), &mut spent)?;
            for (o, m) in out.iter_mut().zip(spent) {
                *o *= m;
            }
        }
        Ok(())
    };
    let block_columns = |range: &std::ops::Range<usize>| {
        RfmColumns::new(
            &columns.frequency[range.clone()],
            &columns.recency[range.clone()],
            &columns.age[range.clone()],
        )
    };
    let result = match &design {
        None => with_predicting_model!(model, M => run(py, n_jobs, |exec, interrupt| {
            if draws.ncols() != M::specs().len() {
                return Err(ClvError::invalid_parameter(
                    "draws",
                    format!("has {} columns; `{}` has {} parameters", draws.ncols(), M::NAME, M::specs().len()),
                ));
            }
            let pairs = check(exec)?;
            args.check::<M>(quantity, n_customers)?;
            M::validate_more(&columns, &names)?;
            if let Some(result) = bg_fast_path(
                model, quantity, &draws, &columns, &args.horizon, &args.counts, &pairs, scale, &spend,
                &options(level, bins, exec, interrupt),
            )? {
                return Ok(result);
            }
            let f = |s: usize, range: std::ops::Range<usize>, out: &mut [f64]| -> crate::Result<()> {
                let row = draws.row(s);
                let p = M::from_slice(row.as_slice().unwrap_or(&row.to_vec()))?;
                let cols = block_columns(&range);
                if weighted {
                    p.weighted_expected_purchases_bulk(&cols, &pairs, &Exec::Serial, out);
                } else {
                    let block = args.block(&range);
                    predict(&Models::Shared(&p), quantity, &cols, block.horizon.as_ref(), block.counts.as_ref(), &Exec::Serial, out)?;
                }
                finish(s, &range, out)
            };
            posterior_predict(n_customers, draws.nrows(), f, &options(level, bins, exec, interrupt))
        }))?,
        Some(design) => with_covariate_model!(model, M => run(py, n_jobs, |exec, interrupt| {
            let pairs = check(exec)?;
            args.check::<M>(quantity, n_customers)?;
            M::validate_more(&columns, &names)?;
            design.rows(&columns)?;
            let f = |s: usize, range: std::ops::Range<usize>, out: &mut [f64]| -> crate::Result<()> {
                let row = draws.row(s);
                let params = row.to_vec();
                let cols = block_columns(&range);
                let rows = CovariateRows::new(
                    &cols,
                    design.purchase.slice(s![range.clone(), ..]),
                    design.dropout.slice(s![range.clone(), ..]),
                );
                let each = M::customer_models(&rows, &design.links, &params, &Exec::Serial)?;
                if weighted {
                    for (i, o) in out.iter_mut().enumerate() {
                        *o = pairs
                            .iter()
                            .map(|&(w, t)| w * each[i].conditional_expected_purchases(cols.frequency[i], cols.recency[i], cols.age[i], t))
                            .sum();
                    }
                } else {
                    let block = args.block(&range);
                    predict(&Models::PerCustomer(&each), quantity, &cols, block.horizon.as_ref(), block.counts.as_ref(), &Exec::Serial, out)?;
                }
                finish(s, &range, out)
            };
            posterior_predict(n_customers, draws.nrows(), f, &options(level, bins, exec, interrupt))
        }))?,
    };
    to_dict(py, result)
}

/// BG/NBD and MBG/NBD expected purchases (one horizon for all customers), weighted sums of
/// them (customer value) and P(alive), without covariates: the per-draw tables and exact
/// intervals of [`crate::bayes::bg_value`]. `None` for anything else (the generic path).
#[allow(clippy::too_many_arguments)]
fn bg_fast_path(
    model: &str,
    quantity: &str,
    draws: &CowArray<'_, f64, Ix2>,
    columns: &RfmColumns<'_>,
    horizon: &Option<PerRow<'_>>,
    counts: &Option<PerRow<'_>>,
    pairs: &[(f64, f64)],
    scale: Option<&[f64]>,
    spend: &Option<SpendDraws<'_>>,
    opts: &PredictOptions<'_>,
) -> crate::Result<Option<PosteriorPrediction>> {
    let modified = match model {
        "bgnbd" => false,
        "mbgnbd" => true,
        _ => return Ok(None),
    };
    let single;
    let quantity = match (quantity, horizon, counts) {
        ("weighted_expected_purchases", _, None) => Quantity::Weighted(pairs),
        ("expected_purchases", Some(h), None) if h.values.len() == 1 => {
            single = [(1.0, h.values[0])];
            Quantity::Weighted(&single)
        }
        ("probability_alive", None, None) => Quantity::ProbabilityAlive,
        _ => return Ok(None),
    };
    let params = draws
        .rows()
        .into_iter()
        .map(|row| {
            let mut p = BgNbdParams::from_slice(row.as_slice().unwrap_or(&row.to_vec()))?;
            p.modified = modified;
            Ok(p)
        })
        .collect::<crate::Result<Vec<_>>>()?;
    let spend_params;
    let spend_input = match spend {
        Some(sp) => {
            spend_params = sp
                .draws
                .rows()
                .into_iter()
                .map(|row| GammaGammaParams::from_slice(row.as_slice().unwrap_or(&row.to_vec())))
                .collect::<crate::Result<Vec<_>>>()?;
            Some(SpendInput {
                draws: &spend_params,
                frequency: sp.columns.frequency,
                monetary: sp.columns.monetary,
            })
        }
        None => None,
    };
    bg_posterior_predict(
        &params,
        columns,
        &quantity,
        scale,
        spend_input.as_ref(),
        opts,
    )
}

/// Posterior predictions of the Gamma-Gamma expected spend per transaction (the population
/// mean for customers without repeat transactions), or with `quantity="log_likelihood"` each
/// customer's log-likelihood (customers with repeat transactions only), streamed over `draws`
/// (rows p, q, gamma).
#[pyfunction]
#[pyo3(signature = (draws, frequency, monetary_value, level=None, bins=512, n_jobs=None, quantity="expected_spend"))]
#[allow(clippy::too_many_arguments)]
fn gamma_gamma_posterior_predict<'py>(
    py: Python<'py>,
    draws: PyReadonlyArray2<'py, f64>,
    frequency: PyReadonlyArray1<'py, f64>,
    monetary_value: PyReadonlyArray1<'py, f64>,
    level: Option<f64>,
    bins: usize,
    n_jobs: Option<i64>,
    quantity: &str,
) -> PyResult<Bound<'py, PyDict>> {
    let spend = SpendDraws {
        draws: draws_matrix(&draws, Some(3))?,
        columns: SpendColumns {
            frequency: slice(&frequency, "frequency")?,
            monetary: slice(&monetary_value, "monetary_value")?,
            weights: None,
        },
    };
    let n_customers = spend.columns.frequency.len();
    let n_draws = spend.draws.nrows();
    let result = run(py, n_jobs, |exec, interrupt| {
        let opts = options(level, bins, exec, interrupt);
        match quantity {
            "expected_spend" => posterior_predict(
                n_customers,
                n_draws,
                |s, range, out| spend.fill(s, range, out),
                &opts,
            ),
            "log_likelihood" => posterior_predict(
                n_customers,
                n_draws,
                |s, range, out| spend.fill_log_likelihood(s, range, out),
                &opts,
            ),
            other => Err(ClvError::invalid_parameter(
                "quantity",
                format!("unknown quantity `{other}`"),
            )),
        }
    })?;
    to_dict(py, result)
}

pub(super) fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(rfm_posterior_predict, m)?)?;
    m.add_function(wrap_pyfunction!(gamma_gamma_posterior_predict, m)?)?;
    Ok(())
}
