//! The curvature at the optimum: the Hessian of the objective in unconstrained coordinates
//! (the model's analytic one, or central differences of its analytic gradient), the covariance
//! of the natural parameters by the delta method, the inverse Hessian a warm start passes on,
//! and which parameters the data identify only weakly.

use ndarray::{Array2, ArrayView2};

use super::linalg::{cholesky_inverse, symmetric_eigen};
use super::objective::{EvalError, Objective, StartCurvature};
use super::Likelihood;
use crate::error::{ClvError, Result};

/// The covariance of the natural parameters, the inverse Hessian of the mean objective in
/// unconstrained coordinates (both `None` when the Hessian is not positive definite), the
/// Hessian's condition number, and which parameters are weakly identified.
type Curvature = (Option<Array2<f64>>, Option<Array2<f64>>, f64, Vec<bool>);

/// Eigenvalues below this fraction of the largest mark directions the data barely identify.
pub(super) const WEAK_CURVATURE: f64 = 1e-8;
/// Parameters loading more than this on such a direction are reported as weakly identified.
const WEAK_LOADING: f64 = 0.1;

/// Covariance of the natural parameters: the inverse Hessian of the total negative penalised
/// log-likelihood in unconstrained coordinates (from the model's analytic Hessian, or central
/// differences of the analytic gradient, symmetrised), mapped by the delta method `J C J` with
/// `J = diag(d theta / d u)`.
/// Returns `None` when the Hessian is not positive definite, and the condition number.
/// `known` is that Hessian when the last step of the fit already formed it at `u`.
pub(super) fn covariance<L: Likelihood>(
    objective: &Objective<'_, '_, L>,
    u: &[f64],
    theta: &[f64],
    known: Option<Array2<f64>>,
) -> Result<Curvature> {
    let hessian = match known {
        Some(h) => h,
        None => match objective.lik.hessian(theta, &objective.opts.exec) {
            Some(h_theta) => unconstrained_hessian(objective, u, theta, h_theta.view(), None)?,
            None => differenced_hessian(objective, u)?,
        },
    };
    curvature_from_hessian(objective, theta, hessian)
}

/// The Hessian of the total objective `-ll + W pen sum(theta^2)` in unconstrained coordinates
/// from the log-likelihood Hessian in natural coordinates: `J (-H + 2 W pen I) J` plus the
/// gradient term `diag(dF/dtheta * d2theta/du2)`, which vanishes at an exact optimum.
/// `gradient` is the objective's gradient at `u` when the caller has it from the same pass
/// (else the latest evaluation's, or a new pass).
pub(super) fn unconstrained_hessian<L: Likelihood>(
    objective: &Objective<'_, '_, L>,
    u: &[f64],
    theta: &[f64],
    h_theta: ArrayView2<'_, f64>,
    gradient: Option<&[f64]>,
) -> Result<Array2<f64>> {
    let k = u.len();
    let grad_u = match gradient {
        Some(g) => g.to_vec(),
        None => objective.at(u).map_err(hessian_error)?.1,
    };
    let jac = objective.jacobian(theta);
    let mut hessian = Array2::zeros((k, k));
    for i in 0..k {
        for j in 0..k {
            let penalty = if i == j {
                2.0 * objective.penalty(&objective.specs[i]) * objective.weight
            } else {
                0.0
            };
            hessian[[i, j]] = jac[i] * (-h_theta[[i, j]] + penalty) * jac[j];
        }
        // dF/du_i = dF/dtheta_i * J_i, and d2theta/du2 = J (log), J (1 - 2 theta) (logit) or
        // 0 (identity).
        hessian[[i, i]] +=
            grad_u[i] * objective.weight * objective.specs[i].domain.curvature(theta[i]);
    }
    if hessian.iter().any(|v| !v.is_finite()) {
        return Err(hessian_error(EvalError::NotFinite));
    }
    Ok(hessian)
}

/// The inverse Hessian of the objective (unconstrained coordinates, mean per customer) at `u`
/// from the model's analytic Hessian, when it has one and it is positive definite there, and
/// the objective with its gradient when the same pass gave them.
pub(super) fn start_inverse_hessian<L: Likelihood>(
    objective: &Objective<'_, '_, L>,
    u: &[f64],
) -> Result<StartCurvature> {
    // With a fused pass, one pass gives the Hessian and the objective with its gradient (which
    // L-BFGS then need not evaluate again).
    match objective.evaluate_with_hessian(u, false) {
        Ok(Some((cost, grad, hessian))) => {
            let inverse = match hessian {
                Some(h) => inverse_of(objective, u, h)?,
                None => None,
            };
            return Ok((inverse, Some((cost, grad))));
        }
        Ok(None) => {}
        Err(EvalError::Interrupted) => return Err(ClvError::Interrupted),
        Err(EvalError::NotFinite) => return Ok((None, None)),
    }
    let theta = objective.natural(u);
    let Some(h_theta) = objective.lik.hessian(&theta, &objective.opts.exec) else {
        return Ok((None, None));
    };
    let hessian = match unconstrained_hessian(objective, u, &theta, h_theta.view(), None) {
        Ok(h) => h,
        Err(ClvError::Interrupted) => return Err(ClvError::Interrupted),
        Err(_) => return Ok((None, None)),
    };
    let (_, inverse, _, _) = curvature_from_hessian(objective, &theta, hessian)?;
    Ok((inverse, None))
}

/// The inverse mean Hessian (unconstrained coordinates) at `u` from the total Hessian there,
/// when it is positive definite.
pub(super) fn inverse_of<L: Likelihood>(
    objective: &Objective<'_, '_, L>,
    u: &[f64],
    hessian: Array2<f64>,
) -> Result<Option<Array2<f64>>> {
    let theta = objective.natural(u);
    let (_, inverse, _, _) = curvature_from_hessian(objective, &theta, hessian)?;
    Ok(inverse)
}

/// Central differences of the analytic gradient in unconstrained coordinates, symmetrised.
fn differenced_hessian<L: Likelihood>(
    objective: &Objective<'_, '_, L>,
    u: &[f64],
) -> Result<Array2<f64>> {
    let k = u.len();
    let mut hessian = Array2::zeros((k, k));
    for j in 0..k {
        let h = 1e-5 * u[j].abs().max(1.0);
        let mut up = u.to_vec();
        let mut down = u.to_vec();
        up[j] += h;
        down[j] -= h;
        let (_, g_up) = objective.evaluate(&up).map_err(hessian_error)?;
        let (_, g_down) = objective.evaluate(&down).map_err(hessian_error)?;
        for i in 0..k {
            hessian[[i, j]] = (g_up[i] - g_down[i]) / (2.0 * h) * objective.weight;
        }
    }
    for i in 0..k {
        for j in 0..i {
            let mean = 0.5 * (hessian[[i, j]] + hessian[[j, i]]);
            hessian[[i, j]] = mean;
            hessian[[j, i]] = mean;
        }
    }
    Ok(hessian)
}

/// Covariance (delta method), inverse mean Hessian and condition number from the unconstrained
/// Hessian of the total objective.
fn curvature_from_hessian<L: Likelihood>(
    objective: &Objective<'_, '_, L>,
    theta: &[f64],
    hessian: Array2<f64>,
) -> Result<Curvature> {
    let k = theta.len();
    let (values, vectors) = symmetric_eigen(hessian.view());
    let max = values.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
    let min = values.iter().cloned().fold(f64::INFINITY, f64::min);
    let condition = if min > 0.0 { max / min } else { f64::INFINITY };
    let mut weak = vec![false; k];
    for (m, &value) in values.iter().enumerate() {
        if !(value > WEAK_CURVATURE * max.abs()) {
            for i in 0..k {
                weak[i] |= vectors[[i, m]].abs() > WEAK_LOADING;
            }
        }
    }
    if !(min > 0.0) || !condition.is_finite() || condition > 1e16 {
        return Ok((None, None, condition, weak));
    }
    let Some(inverse) = cholesky_inverse(hessian.view()) else {
        return Ok((None, None, condition, weak));
    };
    let jac = objective.jacobian(theta);
    // Delta method J C J, formed on the lower triangle and mirrored (exactly symmetric).
    let cov_entry = |i: usize, j: usize| {
        let (i, j) = (i.max(j), i.min(j));
        jac[i] * inverse[[i, j]] * jac[j]
    };
    let cov = Array2::from_shape_fn((k, k), |(i, j)| cov_entry(i, j));
    // The inverse of the mean Hessian (the objective is per customer).
    let inverse = inverse * objective.weight;
    Ok((Some(cov), Some(inverse), condition, weak))
}

pub(super) fn hessian_error(e: EvalError) -> ClvError {
    match e {
        EvalError::Interrupted => ClvError::Interrupted,
        EvalError::NotFinite => ClvError::Convergence {
            reason:
                "the log-likelihood is not finite next to the estimate, so no Hessian can be formed"
                    .into(),
        },
    }
}
