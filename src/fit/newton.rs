//! Newton's method in a trust region, for starts near the optimum (warm starts) and models
//! with a fused value/gradient/Hessian pass.

use super::covariance::WEAK_CURVATURE;
use super::lbfgs::MAX_STEP;
use super::linalg::{inf_norm, norm, symmetric_eigen};
use super::objective::{EvalError, Objective};
use super::{Likelihood, StartOutcome};
use crate::error::{ClvError, Result};
use ndarray::Array2;

/// Trust radius of the first Newton step (Euclidean, unconstrained coordinates): a factor e on
/// the positive parameters. A warm start's steps are shorter; the radius grows while the
/// quadratic model predicts well.
const NEWTON_START_RADIUS: f64 = 1.0;
/// A Newton step is taken when the objective falls by at least this share of the predicted
/// decrease.
const NEWTON_MIN_RATIO: f64 = 1e-4;
/// Trial points of steps from a point whose gradient (infinity norm) is above this are
/// evaluated by the model's coarse pass ([`Likelihood::loglik_gradient_hessian_coarse`]): the
/// steps there decrease the objective by far more than the coarse pass's error
/// ([`super::COARSE_PRECISION`] a customer), and its shorter series make the first passes of a
/// warm start cheaper. Below it every pass is exact, and a fit ends only on an exact pass.
const COARSE_ABOVE: f64 = 1e-4;

/// The trust-region step `p = -(H + sigma I)^-1 g` in the eigenbasis of a symmetric `H`
/// (eigenvalues `curvature`, gradient components `grad`): the Newton step (`sigma = 0`) when
/// `H` is positive definite and the step is within `radius`, else the `sigma` above
/// `max(0, -min curvature)` that puts it on the radius (by bisection: the length falls
/// monotonically in sigma there). With an indefinite `H` (far from the optimum) this is the
/// step of the trust-region method, along the directions of negative curvature too; when the
/// gradient has (almost) no component along the most negative one (the "hard case", e.g. at a
/// saddle point), the step is completed to the radius along it.
fn trust_region_step(grad: &[f64], curvature: &[f64], radius: f64) -> Vec<f64> {
    let step = |sigma: f64| -> Vec<f64> {
        grad.iter()
            .zip(curvature)
            .map(|(g, c)| -g / (c + sigma))
            .collect()
    };
    let (most_negative, least) =
        curvature
            .iter()
            .copied()
            .enumerate()
            .fold(
                (0, f64::INFINITY),
                |a, (m, c)| if c < a.1 { (m, c) } else { a },
            );
    if least > 0.0 {
        let newton = step(0.0);
        if norm(&newton) <= radius {
            return newton;
        }
    }
    // For sigma above `floor`, |p(sigma)| <= |g| / (sigma - floor): the upper end of the
    // bracket is on or inside the radius (or, where it rounds to `floor`, just above it).
    let floor = (-least).max(0.0);
    let above_floor = floor + floor.abs() * 4.0 * f64::EPSILON + f64::MIN_POSITIVE;
    let (mut low, mut high) = (floor, (floor + norm(grad) / radius).max(above_floor));
    for _ in 0..200 {
        let mid = 0.5 * (low + high);
        if !(mid > low && mid < high) {
            break;
        }
        if norm(&step(mid)) > radius {
            low = mid;
        } else {
            high = mid;
        }
        if high - low <= 1e-10 * high {
            break;
        }
    }
    let mut p = step(high);
    let length = norm(&p);
    if least < 0.0 && length < radius {
        // Out to the radius along the most negative curvature, downhill (or either way, at no
        // slope): |p + tau e_m| = radius.
        let m = most_negative;
        let reach = (p[m] * p[m] + radius * radius - length * length).sqrt();
        p[m] = if grad[m] > 0.0 || (grad[m] == 0.0 && p[m] < 0.0) {
            -reach
        } else {
            reach
        };
    }
    p
}

/// Newton's method from `u0` with the model's fused value/gradient/Hessian pass
/// ([`FitOptions::newton`]), each iteration one pass, in a trust region: the Newton step when it
/// is within the radius, else the Levenberg-Marquardt step on the radius. That shortens the
/// poorly determined directions first, where a line search along the Newton direction tries
/// points far out along them (whose passes cost more on some models: Pareto/NBD's rows then
/// need quadrature). Where the Hessian is not positive definite (a start on a flat ridge) the
/// step is the trust region's along the negative curvature too. `None` when the model has no
/// fused pass. Stops unconverged (with the last Hessian, for L-BFGS to go on from there) at a
/// Hessian that is not finite or when no step decreases the objective. With
/// [`FitOptions::newton_given_curvature`](super::FitOptions::newton_given_curvature) the start
/// is a gradient pass and the first step is taken on the given curvature, once; a model
/// without a fused pass then costs that one gradient pass more. Far from the optimum (the
/// gradient above [`COARSE_ABOVE`]) the passes are the model's coarse ones; the fit converges
/// only on an exact pass, which gives its estimate, log-likelihood and covariance.
pub(super) fn newton<L: Likelihood>(
    objective: &Objective<'_, '_, L>,
    u0: &[f64],
    max_iter: u64,
    tol: f64,
) -> Result<Option<StartOutcome>> {
    let interrupted = |e: EvalError| match e {
        EvalError::Interrupted => Some(ClvError::Interrupted),
        EvalError::NotFinite => None,
    };
    // The value, gradient and exact Hessian at `u`; `Ok(None)` (no fused pass, or not finite
    // there) ends the Newton phase, an interruption passes through.
    let exact = |u: &[f64]| match objective.evaluate_with_hessian(u, false) {
        Ok(v) => Ok(v),
        Err(e) => match interrupted(e) {
            Some(e) => Err(e),
            None => Ok(None),
        },
    };
    let given = if objective.opts.newton_given_curvature {
        objective
            .opts
            .initial_inverse_hessian
            .as_ref()
            .and_then(|inverse| hessian_of_inverse(inverse, objective.weight))
    } else {
        None
    };
    // With a given curvature (the pooled fit's), the first step needs only the gradient here,
    // and only coarsely (the start of a warm fit is far from the optimum; where it is not, the
    // exact pass follows).
    let coarse_passes = objective.lik.has_coarse_passes();
    let mut model_only = given.is_some();
    let mut coarse_here = model_only && coarse_passes;
    let (mut cost, mut grad, mut hessian) = match given {
        Some(h) => match if coarse_here {
            objective.evaluate_coarse(u0)
        } else {
            objective.evaluate(u0)
        } {
            Ok((c, g)) => (c, g, Some(h)),
            Err(e) => match interrupted(e) {
                Some(e) => return Err(e),
                None => return Ok(None),
            },
        },
        // (Not finite at the start: L-BFGS reports it.)
        None => match exact(u0)? {
            Some(v) => v,
            None => return Ok(None),
        },
    };
    let mut u = u0.to_vec();
    let mut iterations = 0;
    let mut radius = NEWTON_START_RADIUS;
    let stop = |u: Vec<f64>, cost: f64, gnorm: f64, iterations: u64, hessian, why: String| {
        Ok(Some(StartOutcome {
            u,
            cost,
            gradient_norm: gnorm,
            iterations,
            termination: why,
            converged: false,
            hessian,
        }))
    };
    loop {
        let gnorm = inf_norm(&grad);
        if (model_only || coarse_here) && gnorm <= tol {
            // The exact pass at the point (for the convergence test, the result and the
            // covariance and the saddle test).
            match exact(&u)? {
                Some(v) => (cost, grad, hessian) = v,
                None => return Ok(None),
            }
            model_only = false;
            coarse_here = false;
            continue;
        }
        // A small gradient where the Hessian has clearly negative curvature is a saddle point,
        // not an optimum: step away from it along that curvature. (Curvature within rounding
        // of zero, as along a direction the data barely identify, is an optimum's.)
        let saddle = gnorm <= tol
            && hessian.as_ref().is_some_and(|h| {
                let values = symmetric_eigen(h.view()).0;
                let largest = values.iter().fold(0.0f64, |a, v| a.max(v.abs()));
                values.iter().any(|&v| v < -WEAK_CURVATURE * largest)
            });
        if gnorm <= tol && !saddle {
            return Ok(Some(StartOutcome {
                u,
                cost,
                gradient_norm: gnorm,
                iterations,
                termination: format!(
                    "gradient norm {gnorm:.2e} below the tolerance {tol:.0e} (Newton steps)"
                ),
                converged: true,
                hessian,
            }));
        }
        if iterations >= max_iter {
            return stop(u, cost, gnorm, iterations, hessian, "max_iter".into());
        }
        let Some(h) = &hessian else {
            return stop(u, cost, gnorm, iterations, None, "no finite Hessian".into());
        };
        let (values, vectors) = symmetric_eigen(h.view());
        if values.iter().any(|v| !v.is_finite()) {
            return stop(u, cost, gnorm, iterations, None, "no finite Hessian".into());
        }
        // The step in the eigenbasis of the mean Hessian: components of the gradient and the
        // eigenvalues (the Hessian is of the total objective, hence the weight).
        let k = u.len();
        let grad_eigen: Vec<f64> = (0..k)
            .map(|m| (0..k).map(|j| vectors[[j, m]] * grad[j]).sum())
            .collect();
        let curvature: Vec<f64> = values.iter().map(|v| v / objective.weight).collect();
        // Rounding of the objective, and the coarse pass's error when the point's cost is from
        // one (a trial's exact cost is then compared with it).
        let noise = 64.0 * f64::EPSILON * cost.abs().max(1.0)
            + if coarse_here {
                16.0 * super::COARSE_PRECISION
            } else {
                0.0
            };
        let coarse = coarse_passes && gnorm > COARSE_ABOVE;
        let mut accepted = None;
        for _ in 0..30 {
            let step_eigen = trust_region_step(&grad_eigen, &curvature, radius);
            let length = norm(&step_eigen);
            let trial: Vec<f64> = (0..k)
                .map(|i| u[i] + (0..k).map(|m| vectors[[i, m]] * step_eigen[m]).sum::<f64>())
                .collect();
            // The decrease the quadratic model predicts.
            let predicted: f64 = -(0..k)
                .map(|m| step_eigen[m] * (grad_eigen[m] + 0.5 * curvature[m] * step_eigen[m]))
                .sum::<f64>();
            let outcome = match objective.evaluate_with_hessian(&trial, coarse) {
                Ok(Some(v)) => Some(v),
                Ok(None) => return Ok(None),
                Err(e) => match interrupted(e) {
                    Some(e) => return Err(e),
                    None => None,
                },
            };
            let ratio = match &outcome {
                Some((c, _, _)) => (cost - c) / predicted,
                None => f64::NEG_INFINITY,
            };
            // The radius follows how well the quadratic model predicted the decrease.
            if ratio < 0.25 {
                radius = 0.25
                    * if length.is_finite() {
                        length.min(radius)
                    } else {
                        radius
                    };
            } else if ratio > 0.75 && length >= 0.99 * radius {
                radius = (2.0 * radius).min(MAX_STEP);
            }
            if let Some((c, g, h)) = outcome {
                // A real decrease, or (when the predicted decrease is below rounding noise) a
                // smaller gradient.
                let decrease = c < cost && ratio > NEWTON_MIN_RATIO;
                let within_noise = predicted < noise && c <= cost + noise;
                if decrease || (within_noise && inf_norm(&g) < gnorm) {
                    accepted = Some((trial, c, g, h));
                    break;
                }
            }
            // A given curvature gets one trial: if it does not predict the objective, the
            // point's own Hessian does better than a shorter step on the wrong model.
            if model_only {
                break;
            }
        }
        if accepted.is_none() && model_only {
            // The given curvature did not predict the objective: the point's own from here on
            // (exact: a coarse pass would do as well only where the gradient is large).
            match exact(&u)? {
                Some(v) => (cost, grad, hessian) = v,
                None => return Ok(None),
            }
            model_only = false;
            coarse_here = false;
            radius = NEWTON_START_RADIUS;
            continue;
        }
        model_only = false;
        iterations += 1;
        let Some((next_u, next_cost, next_grad, next_hessian)) = accepted else {
            return stop(u, cost, gnorm, iterations, hessian, "no decrease".into());
        };
        u = next_u;
        coarse_here = coarse;
        cost = next_cost;
        grad = next_grad;
        hessian = next_hessian;
    }
}

/// The Hessian of the total objective (`weight` customers) from an inverse Hessian of the mean
/// objective, when that is positive definite and finite.
fn hessian_of_inverse(inverse: &Array2<f64>, weight: f64) -> Option<Array2<f64>> {
    let (values, vectors) = symmetric_eigen(inverse.view());
    if !values.iter().all(|v| v.is_finite() && *v > 0.0) {
        return None;
    }
    let k = values.len();
    Some(Array2::from_shape_fn((k, k), |(i, j)| {
        (0..k)
            .map(|m| vectors[[i, m]] * vectors[[j, m]] * weight / values[m])
            .sum()
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trust_region_steps() {
        let model = |g: &[f64], c: &[f64], p: &[f64]| -> f64 {
            (0..g.len())
                .map(|m| p[m] * (g[m] + 0.5 * c[m] * p[m]))
                .sum()
        };
        // Positive definite, the Newton step within the radius: the Newton step.
        let (g, c) = ([1.0, -2.0], [4.0, 8.0]);
        assert_eq!(trust_region_step(&g, &c, 1.0), vec![-0.25, 0.25]);
        // Beyond the radius (a flat direction): on the radius, shortened mostly along the flat
        // direction, and a descent step of the quadratic model.
        let (g, c) = ([1.0, 1.0], [4.0, 1e-6]);
        let p = trust_region_step(&g, &c, 0.5);
        assert!((norm(&p) - 0.5).abs() < 1e-8, "{p:?}");
        assert!(p[0] < 0.0 && p[1] < 0.0 && p[1] < p[0], "{p:?}");
        assert!(model(&g, &c, &p) < 0.0);
        // Indefinite: on the radius, and it decreases the model more than the steepest-descent
        // step of the same length.
        let (g, c) = ([1.0, 0.1], [2.0, -3.0]);
        let p = trust_region_step(&g, &c, 1.0);
        assert!((norm(&p) - 1.0).abs() < 1e-8, "{p:?}");
        let steepest: Vec<f64> = g.iter().map(|v| -v / norm(&g)).collect();
        assert!(model(&g, &c, &p) < model(&g, &c, &steepest), "{p:?}");
        // The hard case, a saddle point: no slope along the negative curvature, yet the step
        // goes there, to the radius.
        let (g, c) = ([0.0, 1e-9], [-2.0, 3.0]);
        let p = trust_region_step(&g, &c, 0.5);
        assert!((norm(&p) - 0.5).abs() < 1e-8 && p[0].abs() > 0.49, "{p:?}");
        assert!(model(&g, &c, &p) < -0.2);
        // A bracket that rounds to its floor (a tiny gradient against a huge negative
        // curvature) still gives a finite step.
        let p = trust_region_step(&[0.0, 2e-8], &[-1e9, 1.0], 1.0);
        assert!(p.iter().all(|v| v.is_finite()), "{p:?}");
    }
}
