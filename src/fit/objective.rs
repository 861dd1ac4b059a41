//! The objective the engine minimises: the mean negative penalised log-likelihood per customer
//! in unconstrained coordinates, with its gradient (and, from a model's fused pass, the Hessian
//! of the total objective), keeping the latest evaluation so that the end of a fit needs no
//! extra pass over the data.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Mutex;

use ndarray::Array2;

use super::covariance::unconstrained_hessian;
use super::{Domain, FitOptions, Likelihood, ParamSpec};
use crate::error::ClvError;

/// The objective in unconstrained coordinates.
pub(super) struct Objective<'l, 'o, L: Likelihood> {
    pub(super) lik: &'l L,
    pub(super) specs: &'l [ParamSpec],
    pub(super) opts: &'o FitOptions<'o>,
    pub(super) weight: f64,
    pub(super) evaluations: AtomicU64,
    pub(super) interrupted: AtomicBool,
    /// The latest evaluation (point, unpenalised log-likelihood, gradient of the objective), so
    /// that the final log-likelihood and the covariance need no extra pass over the data.
    pub(super) latest: Mutex<Option<Evaluation>>,
}

/// A point in unconstrained coordinates, the unpenalised log-likelihood there, and the gradient
/// of the objective.
type Evaluation = (Vec<f64>, f64, Vec<f64>);

/// The objective, its gradient and the Hessian of the total objective (unconstrained
/// coordinates), when finite.
pub(super) type Fused = (f64, Vec<f64>, Option<Array2<f64>>);

/// The objective and its gradient (unconstrained coordinates).
pub(super) type CostGradient = (f64, Vec<f64>);

/// The inverse mean Hessian at a start, and the objective with its gradient there when the
/// pass that formed the Hessian gave them.
pub(super) type StartCurvature = (Option<Array2<f64>>, Option<CostGradient>);

/// Why an evaluation produced no value.
pub(super) enum EvalError {
    /// The log-likelihood or its gradient is not finite here: the step went too far.
    NotFinite,
    /// The caller asked to stop.
    Interrupted,
}

impl<L: Likelihood> Objective<'_, '_, L> {
    /// The L2 penalty weight of a parameter (per customer).
    pub(super) fn penalty(&self, spec: &ParamSpec) -> f64 {
        match spec.domain {
            Domain::Real => self.opts.coefficient_penalizer,
            _ => self.opts.penalizer,
        }
    }

    pub(super) fn natural(&self, u: &[f64]) -> Vec<f64> {
        self.specs
            .iter()
            .zip(u)
            .map(|(s, &v)| s.domain.to_natural(v))
            .collect()
    }

    /// The natural parameters at `u`, unless the caller asked to stop or a parameter left its
    /// domain (an overflow of the transform: the step went too far).
    pub(super) fn natural_checked(&self, u: &[f64]) -> std::result::Result<Vec<f64>, EvalError> {
        if let Some(check) = self.opts.interrupt {
            if check() {
                self.interrupted.store(true, Ordering::Relaxed);
                return Err(EvalError::Interrupted);
            }
        }
        let theta = self.natural(u);
        if theta
            .iter()
            .zip(self.specs)
            .any(|(&t, s)| !s.domain.contains(t))
        {
            return Err(EvalError::NotFinite);
        }
        Ok(theta)
    }

    /// Mean negative penalised log-likelihood and its gradient in unconstrained coordinates.
    pub(super) fn evaluate(&self, u: &[f64]) -> std::result::Result<(f64, Vec<f64>), EvalError> {
        let theta = self.natural_checked(u)?;
        self.evaluations.fetch_add(1, Ordering::Relaxed);
        let (ll, grad_theta) = self.lik.loglik_and_gradient(&theta, &self.opts.exec);
        self.record(u, &theta, ll, &grad_theta)
    }

    /// [`Objective::evaluate`] from the model's coarse pass
    /// ([`Likelihood::loglik_and_gradient_coarse`]); not kept as the latest evaluation (a fit's
    /// result never comes from a coarse pass).
    pub(super) fn evaluate_coarse(
        &self,
        u: &[f64],
    ) -> std::result::Result<(f64, Vec<f64>), EvalError> {
        let theta = self.natural_checked(u)?;
        self.evaluations.fetch_add(1, Ordering::Relaxed);
        let (ll, grad_theta) = self.lik.loglik_and_gradient_coarse(&theta, &self.opts.exec);
        self.objective(&theta, ll, &grad_theta)
    }

    /// The objective, its gradient and the Hessian of the total objective (unconstrained
    /// coordinates) from the model's fused pass; `Ok(None)` when the model has none. The
    /// Hessian is `None` when it is not finite (the objective and gradient still count).
    /// With `coarse`, from the model's coarse pass
    /// ([`Likelihood::loglik_gradient_hessian_coarse`]), not kept as the latest evaluation.
    pub(super) fn evaluate_with_hessian(
        &self,
        u: &[f64],
        coarse: bool,
    ) -> std::result::Result<Option<Fused>, EvalError> {
        let theta = self.natural_checked(u)?;
        let pass = if coarse {
            self.lik
                .loglik_gradient_hessian_coarse(&theta, &self.opts.exec)
        } else {
            self.lik.loglik_gradient_hessian(&theta, &self.opts.exec)
        };
        let Some((ll, grad_theta, h_theta)) = pass else {
            return Ok(None);
        };
        self.evaluations.fetch_add(1, Ordering::Relaxed);
        let (cost, grad) = if coarse {
            self.objective(&theta, ll, &grad_theta)?
        } else {
            self.record(u, &theta, ll, &grad_theta)?
        };
        // The gradient of this pass (a coarse one is not the latest evaluation).
        let hessian = match unconstrained_hessian(self, u, &theta, h_theta.view(), Some(&grad)) {
            Ok(h) => Some(h),
            Err(ClvError::Interrupted) => return Err(EvalError::Interrupted),
            Err(_) => None,
        };
        Ok(Some((cost, grad, hessian)))
    }

    /// The objective and its gradient in unconstrained coordinates from the log-likelihood and
    /// its gradient at `theta`, kept as the latest evaluation.
    pub(super) fn record(
        &self,
        u: &[f64],
        theta: &[f64],
        ll: f64,
        grad_theta: &[f64],
    ) -> std::result::Result<(f64, Vec<f64>), EvalError> {
        let (cost, grad) = self.objective(theta, ll, grad_theta)?;
        *self.latest.lock().unwrap_or_else(|e| e.into_inner()) =
            Some((u.to_vec(), ll, grad.clone()));
        Ok((cost, grad))
    }

    /// The objective and its gradient in unconstrained coordinates from the log-likelihood and
    /// its gradient at `theta`.
    fn objective(
        &self,
        theta: &[f64],
        ll: f64,
        grad_theta: &[f64],
    ) -> std::result::Result<(f64, Vec<f64>), EvalError> {
        let cost = -ll / self.weight
            + self
                .specs
                .iter()
                .zip(theta)
                .map(|(s, t)| self.penalty(s) * t * t)
                .sum::<f64>();
        let grad: Vec<f64> = self
            .specs
            .iter()
            .zip(theta.iter().zip(grad_theta))
            .map(|(s, (&t, &g))| {
                (-g / self.weight + 2.0 * self.penalty(s) * t) * s.domain.jacobian(t)
            })
            .collect();
        if !cost.is_finite() || grad.iter().any(|g| !g.is_finite()) {
            return Err(EvalError::NotFinite);
        }
        Ok((cost, grad))
    }

    /// The log-likelihood and objective gradient at `u`, from the latest evaluation when it was
    /// at `u` (as it is at the end of a fit), else evaluated afresh.
    pub(super) fn at(&self, u: &[f64]) -> std::result::Result<(f64, Vec<f64>), EvalError> {
        if let Some((at, ll, grad)) = self
            .latest
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .as_ref()
        {
            if at.as_slice() == u {
                return Ok((*ll, grad.clone()));
            }
        }
        self.evaluate(u)?;
        self.at(u)
    }

    /// d theta / d u at `theta`.
    pub(super) fn jacobian(&self, theta: &[f64]) -> Vec<f64> {
        self.specs
            .iter()
            .zip(theta)
            .map(|(s, &t)| s.domain.jacobian(t))
            .collect()
    }
}
