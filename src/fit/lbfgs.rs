//! L-BFGS with a backtracking line search that treats non-finite points as "too far".

use ndarray::{Array2, ArrayView1};

use super::linalg::{along, dot, inf_norm};
use super::objective::{CostGradient, EvalError, Objective};
use super::{Likelihood, StartOutcome};
use crate::error::{ClvError, Result};

/// A line search that can make no further progress is accepted as convergence when the gradient
/// is already this small: the optimum is then determined to within rounding of the objective.
const STALLED_GRADIENT_TOLERANCE: f64 = 1e-5;
/// Pairs (s, y) kept by L-BFGS.
const MEMORY: usize = 10;
/// Largest change of any unconstrained coordinate in one step (a factor e^5 on a positive
/// parameter): keeps the first steps, taken before curvature is known, from leaping into
/// regions where the likelihood underflows.
pub(super) const MAX_STEP: f64 = 5.0;
/// Armijo sufficient-decrease constant.
const ARMIJO: f64 = 1e-4;

/// L-BFGS (Nocedal & Wright 2006, algorithm 7.4) with a backtracking Armijo line search that
/// treats a non-finite objective as "too far" and shrinks the step, and with curvature pairs
/// skipped when `s'y` is not clearly positive (so the inverse-Hessian estimate stays positive
/// definite without a Wolfe search). Written here rather than taken from argmin because argmin's
/// line searches stop with an error at the first non-finite trial point, which the likelihoods of
/// these models produce far from the optimum (underflow of rates near zero).
/// `start` is the objective and its gradient at `u0` when already evaluated.
pub(super) fn lbfgs<L: Likelihood>(
    objective: &Objective<'_, '_, L>,
    u0: Vec<f64>,
    h0: Option<&Array2<f64>>,
    start: Option<CostGradient>,
    max_iter: u64,
    tol: f64,
) -> Result<StartOutcome> {
    let interrupted = || ClvError::Interrupted;
    let unusable = |u: Vec<f64>, why: &str| StartOutcome {
        u,
        cost: f64::INFINITY,
        gradient_norm: f64::INFINITY,
        iterations: 0,
        termination: why.to_string(),
        converged: false,
        hessian: None,
    };
    let evaluation = match start {
        Some(v) => Ok(v),
        None => objective.evaluate(&u0),
    };
    let (mut cost, mut grad) = match evaluation {
        Ok(v) => v,
        Err(EvalError::Interrupted) => return Err(interrupted()),
        Err(EvalError::NotFinite) => {
            return Ok(unusable(
                u0,
                "the log-likelihood is not finite at the starting point",
            ))
        }
    };
    let mut u = u0;
    let mut history: std::collections::VecDeque<(Vec<f64>, Vec<f64>, f64)> =
        std::collections::VecDeque::with_capacity(MEMORY);
    let n = u.len();
    let mut iterations = 0;
    // The Hessian at `u` when the evaluation there formed it, and the previous gradient norm.
    let mut hessian: Option<Array2<f64>> = None;
    let mut previous_gnorm = f64::INFINITY;
    loop {
        let gnorm = inf_norm(&grad);
        if gnorm <= tol {
            return Ok(StartOutcome {
                u,
                cost,
                gradient_norm: gnorm,
                iterations,
                termination: format!("gradient norm {gnorm:.2e} below the tolerance {tol:.0e}"),
                converged: true,
                hessian,
            });
        }
        // When the gradient shrinks steadily enough that the next point should meet the
        // tolerance, evaluate it with the model's fused pass (if it has one): its Hessian is
        // then the covariance's, which saves a pass at the end.
        let final_step = previous_gnorm.is_finite()
            && gnorm * (gnorm / previous_gnorm) <= FINAL_STEP_FRACTION * tol;
        previous_gnorm = gnorm;
        if iterations >= max_iter {
            return Ok(StartOutcome {
                u,
                cost,
                gradient_norm: gnorm,
                iterations,
                termination: format!(
                    "reached the maximum of {max_iter} iterations (gradient norm {gnorm:.2e}); raise max_iter or try another start"
                ),
                converged: false,
                hessian: None,
            });
        }
        // Two-loop recursion: direction = -H grad.
        let mut q = grad.clone();
        let mut alphas = Vec::with_capacity(history.len());
        for (s, y, rho) in history.iter().rev() {
            let a = rho * dot(s, &q);
            for i in 0..n {
                q[i] -= a * y[i];
            }
            alphas.push(a);
        }
        match (h0, history.is_empty()) {
            (Some(h0), _) => {
                q = h0.rows().into_iter().map(|row| dot_row(row, &q)).collect();
            }
            (None, true) => {
                let scale = 1.0 / gnorm.max(1.0);
                q.iter_mut().for_each(|v| *v *= scale);
            }
            (None, false) => {
                let (s, y, _) = history.back().expect("history is not empty");
                let gamma = dot(s, y) / dot(y, y);
                q.iter_mut().for_each(|v| *v *= gamma);
            }
        }
        for ((s, y, rho), a) in history.iter().zip(alphas.iter().rev()) {
            let b = rho * dot(y, &q);
            for i in 0..n {
                q[i] += s[i] * (a - b);
            }
        }
        let mut direction: Vec<f64> = q.iter().map(|v| -v).collect();
        let mut slope = dot(&grad, &direction);
        if !(slope < 0.0) {
            // Not a descent direction (rounding in the memory): restart from steepest descent.
            history.clear();
            direction = grad.iter().map(|g| -g / gnorm.max(1.0)).collect();
            slope = dot(&grad, &direction);
        }
        let mut step = (MAX_STEP / inf_norm(&direction)).min(1.0);
        // Changes of the cost below this are rounding noise (a mean over many rows).
        let noise = 64.0 * f64::EPSILON * cost.abs().max(1.0);
        // Backtracking line search.
        let mut accepted = None;
        for _ in 0..50 {
            let trial = along(&u, &direction, step);
            let evaluation = if final_step {
                match objective.evaluate_with_hessian(&trial, false) {
                    Ok(Some(fused)) => Ok(fused),
                    Ok(None) => objective.evaluate(&trial).map(|(c, g)| (c, g, None)),
                    Err(e) => Err(e),
                }
            } else {
                objective.evaluate(&trial).map(|(c, g)| (c, g, None))
            };
            match evaluation {
                Err(EvalError::Interrupted) => return Err(interrupted()),
                // Strict decrease: once steps are so short that the cost no longer changes in
                // floating point, the search has converged as far as rounding allows.
                Ok((c, g, h)) if c < cost && c <= cost + ARMIJO * step * slope => {
                    accepted = Some((trial, c, g, h));
                    break;
                }
                _ => step *= 0.5,
            }
            // Near a stationary point the predicted decrease sinks below the noise: shorter
            // steps cannot show a decrease either.
            if gnorm <= STALLED_GRADIENT_TOLERANCE && -step * slope < noise {
                break;
            }
        }
        iterations += 1;
        let Some((next_u, next_cost, next_grad, next_hessian)) = accepted else {
            let converged = gnorm <= STALLED_GRADIENT_TOLERANCE;
            let termination = if converged {
                format!("no further decrease possible within rounding (gradient norm {gnorm:.2e})")
            } else {
                format!(
                    "the line search found no decrease (gradient norm {gnorm:.2e}); the likelihood may be flat or ill-conditioned here: try another start or a small penalizer"
                )
            };
            return Ok(StartOutcome {
                u,
                cost,
                gradient_norm: gnorm,
                iterations,
                termination,
                converged,
                hessian: None,
            });
        };
        let s: Vec<f64> = next_u.iter().zip(&u).map(|(a, b)| a - b).collect();
        let y: Vec<f64> = next_grad.iter().zip(&grad).map(|(a, b)| a - b).collect();
        let sy = dot(&s, &y);
        if sy > 1e-12 * dot(&s, &s).sqrt() * dot(&y, &y).sqrt() && sy > 0.0 {
            if history.len() == MEMORY {
                history.pop_front();
            }
            history.push_back((s, y, 1.0 / sy));
        }
        u = next_u;
        cost = next_cost;
        grad = next_grad;
        hessian = next_hessian;
    }
}

/// [`lbfgs`] evaluates a trial point with the fused value/gradient/Hessian pass when the
/// gradient norm, shrinking at its latest rate, would fall below this fraction of the tolerance
/// there.
const FINAL_STEP_FRACTION: f64 = 0.5;

/// [`dot`] of a matrix row with a vector, in the same order (so that the result does not depend
/// on the row's memory layout).
fn dot_row(row: ArrayView1<'_, f64>, v: &[f64]) -> f64 {
    row.iter().zip(v).map(|(x, y)| x * y).sum()
}
