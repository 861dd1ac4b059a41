//! The model-independent fitting engine.
//!
//! A model supplies a [`Likelihood`]: its parameters with their domains, starting points, and the
//! weighted log-likelihood with its analytic gradient. The engine maximises it over unconstrained
//! coordinates (log for positive parameters, logit for probabilities) with L-BFGS (see
//! [`lbfgs`] for why it is not argmin's), then computes the covariance matrix from the Hessian at the
//! optimum (the model's analytic Hessian, or central differences of its analytic gradient), mapped
//! to the natural scale by the delta method.
//!
//! The objective is the mean negative log-likelihood per customer plus `penalizer * sum(theta^2)`
//! (the same L2 penalty as `lifetimes`), so tolerances do not depend on the number of customers.

use serde::{Deserialize, Serialize};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Mutex;

use crate::error::{ClvError, Result};
use crate::parallel::Exec;

/// The set a parameter lives in, which fixes its unconstrained transform.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Domain {
    /// (0, inf), optimised as log(theta).
    Positive,
    /// (0, 1), optimised as logit(theta).
    UnitInterval,
    /// Any finite number (a covariate coefficient), optimised as itself.
    Real,
}

impl Domain {
    fn to_unconstrained(self, theta: f64) -> f64 {
        match self {
            Domain::Positive => theta.ln(),
            Domain::UnitInterval => (theta / (1.0 - theta)).ln(),
            Domain::Real => theta,
        }
    }

    fn to_natural(self, u: f64) -> f64 {
        match self {
            Domain::Positive => u.exp(),
            Domain::UnitInterval => crate::special::logistic(u),
            Domain::Real => u,
        }
    }

    /// d2 theta / d u2 divided by d theta / d u, at `theta`.
    fn curvature(self, theta: f64) -> f64 {
        match self {
            Domain::Positive => 1.0,
            Domain::UnitInterval => 1.0 - 2.0 * theta,
            Domain::Real => 0.0,
        }
    }

    /// d theta / d u at `theta`.
    fn jacobian(self, theta: f64) -> f64 {
        match self {
            Domain::Positive => theta,
            Domain::UnitInterval => theta * (1.0 - theta),
            Domain::Real => 1.0,
        }
    }

    /// Whether `theta` is inside the domain.
    pub fn contains(self, theta: f64) -> bool {
        match self {
            Domain::Positive => theta.is_finite() && theta > 0.0,
            Domain::UnitInterval => theta > 0.0 && theta < 1.0,
            Domain::Real => theta.is_finite(),
        }
    }
}

/// A model parameter: its name and domain.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ParamSpec {
    pub name: &'static str,
    pub domain: Domain,
}

/// Check that `values` are valid for `specs` (count and domains).
pub fn check_params(specs: &[ParamSpec], values: &[f64]) -> Result<()> {
    if specs.len() != values.len() {
        return Err(ClvError::invalid_parameter(
            "params",
            format!(
                "expected {} values ({}), got {}",
                specs.len(),
                names(specs),
                values.len()
            ),
        ));
    }
    for (spec, &v) in specs.iter().zip(values) {
        if !spec.domain.contains(v) {
            let rule = match spec.domain {
                Domain::Positive => "must be a finite number > 0",
                Domain::UnitInterval => "must lie strictly between 0 and 1",
                Domain::Real => "must be a finite number",
            };
            return Err(ClvError::invalid_parameter(
                spec.name,
                format!("{rule}, got {v}"),
            ));
        }
    }
    Ok(())
}

fn names(specs: &[ParamSpec]) -> String {
    specs.iter().map(|s| s.name).collect::<Vec<_>>().join(", ")
}

/// What a model gives the engine.
pub trait Likelihood: Sync {
    /// Parameter names and domains, in the order used everywhere else.
    fn params(&self) -> &[ParamSpec];

    /// Starting points on the natural scale, best first; later ones are tried only if the first
    /// does not converge.
    fn starts(&self) -> Vec<Vec<f64>>;

    /// Sum of the row weights (the number of customers).
    fn total_weight(&self) -> f64;

    /// The weighted log-likelihood sum and its gradient with respect to the natural parameters.
    fn loglik_and_gradient(&self, params: &[f64], exec: &Exec) -> (f64, Vec<f64>);

    /// The Hessian of the weighted log-likelihood sum with respect to the natural parameters,
    /// when the model has it in closed form (one pass over the data instead of `2k` gradient
    /// evaluations); `None` lets the engine difference the analytic gradient.
    fn hessian(&self, _params: &[f64], _exec: &Exec) -> Option<Vec<Vec<f64>>> {
        None
    }

    /// The log-likelihood, its gradient and its Hessian (natural parameters) from one pass over
    /// the data, when the model has such a fused pass (used by Newton steps,
    /// [`FitOptions::newton`]); `None` otherwise.
    fn loglik_gradient_hessian(&self, _params: &[f64], _exec: &Exec) -> Option<FusedPass> {
        None
    }

    /// Whether every starting point is tried and the best optimum kept (for surfaces known to
    /// be flat or to have several local optima), rather than stopping at the first that
    /// converges.
    fn try_all_starts(&self) -> bool {
        false
    }
}

/// The log-likelihood, its gradient and its Hessian in the natural parameters.
pub type FusedPass = (f64, Vec<f64>, Vec<Vec<f64>>);

/// Options of one fit.
#[derive(Clone, Default)]
pub struct FitOptions<'a> {
    /// L2 penalty on the natural parameters (0 for plain maximum likelihood), except covariate
    /// coefficients ([`Domain::Real`]).
    pub penalizer: f64,
    /// L2 penalty on the covariate coefficients ([`Domain::Real`] parameters).
    pub coefficient_penalizer: f64,
    /// Maximum L-BFGS iterations per start (0 means the default, 1000).
    pub max_iter: u64,
    /// Converged when the infinity norm of the objective's gradient (unconstrained coordinates,
    /// mean per customer) is below this (0 means the default, 1e-8).
    pub gradient_tolerance: f64,
    /// Where the likelihood sums run.
    pub exec: Exec,
    /// Polled at every evaluation; returning true stops the fit with [`ClvError::Interrupted`].
    pub interrupt: Option<&'a (dyn Fn() -> bool + Sync)>,
    /// Start here instead of the model's own starting points.
    pub start: Option<Vec<f64>>,
    /// Initial inverse-Hessian estimate of the objective (unconstrained coordinates, mean per
    /// customer) for L-BFGS, e.g. from a fit to a subsample; the identity scaling otherwise.
    pub initial_inverse_hessian: Option<Vec<Vec<f64>>>,
    /// Scale L-BFGS by the model's analytic Hessian at each start (when the model has one, no
    /// `initial_inverse_hessian` is given and that Hessian is positive definite there): one
    /// Hessian pass that saves many iterations on badly scaled problems (covariate
    /// coefficients next to shape parameters).
    pub curvature_at_start: bool,
    /// Take Newton steps with the model's fused value/gradient/Hessian pass
    /// ([`Likelihood::loglik_gradient_hessian`]) when it has one: for starts close to the
    /// optimum (a warm start), where each step squares the error, so a fit takes a few passes and
    /// the last one's Hessian gives the covariance. L-BFGS takes over from where Newton stops
    /// (a Hessian that is not finite, or no step that decreases the objective).
    pub newton: bool,
    /// Stop at the first start that converges even for models that try every start (set for
    /// the subsample of [`fit_with_warm_start`], whose optimum only seeds the full fit).
    pub first_start_only: bool,
}

/// The result of a fit.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FitResult {
    /// Parameter names, in order.
    pub names: Vec<String>,
    /// Estimates on the natural scale.
    pub params: Vec<f64>,
    /// Covariance of the estimates (row-major, natural scale), when the Hessian is invertible.
    pub covariance: Option<Vec<Vec<f64>>>,
    /// Why there is no covariance when the Hessian is not the reason (in words).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub covariance_note: Option<String>,
    /// Weighted log-likelihood at the estimates (without the penalty).
    pub log_likelihood: f64,
    /// Number of customers (sum of weights).
    pub n_observations: f64,
    /// Whether the optimiser met the gradient tolerance.
    pub converged: bool,
    /// Why the optimiser stopped, in words.
    pub termination: String,
    /// L-BFGS iterations of the start that was kept.
    pub n_iter: u64,
    /// Log-likelihood evaluations over all starts.
    pub n_evaluations: u64,
    /// Number of starting points tried.
    pub n_starts: usize,
    /// Infinity norm of the objective's gradient at the estimates.
    pub gradient_norm: f64,
    /// Ratio of the largest to the smallest eigenvalue of the Hessian (unconstrained coordinates).
    pub hessian_condition: f64,
    /// For each parameter, whether the data identify it only weakly: it loads on a direction
    /// of (nearly) zero or negative curvature of the log-likelihood (log/logit coordinates).
    pub weakly_identified: Vec<bool>,
    /// Inverse Hessian of the objective (unconstrained coordinates, mean per customer), when it
    /// exists: the curvature a warm start passes on.
    #[serde(skip)]
    pub inverse_hessian: Option<Vec<Vec<f64>>>,
}

impl FitResult {
    /// Akaike information criterion, `2k - 2 ln L`.
    pub fn aic(&self) -> f64 {
        2.0 * self.params.len() as f64 - 2.0 * self.log_likelihood
    }

    /// Bayesian information criterion, `k ln n - 2 ln L`.
    pub fn bic(&self) -> f64 {
        self.params.len() as f64 * self.n_observations.ln() - 2.0 * self.log_likelihood
    }

    /// Standard errors (square roots of the covariance diagonal).
    pub fn standard_errors(&self) -> Option<Vec<f64>> {
        self.covariance
            .as_ref()
            .map(|c| (0..c.len()).map(|i| c[i][i].max(0.0).sqrt()).collect())
    }
}

/// The objective in unconstrained coordinates.
struct Objective<'l, 'o, L: Likelihood> {
    lik: &'l L,
    specs: &'l [ParamSpec],
    opts: &'o FitOptions<'o>,
    weight: f64,
    evaluations: AtomicU64,
    interrupted: AtomicBool,
    /// The latest evaluation (point, unpenalised log-likelihood, gradient of the objective), so
    /// that the final log-likelihood and the covariance need no extra pass over the data.
    latest: Mutex<Option<Evaluation>>,
}

/// A point in unconstrained coordinates, the unpenalised log-likelihood there, and the gradient
/// of the objective.
type Evaluation = (Vec<f64>, f64, Vec<f64>);

/// The objective, its gradient and the Hessian of the total objective (unconstrained
/// coordinates), when finite.
type Fused = (f64, Vec<f64>, Option<Vec<Vec<f64>>>);

/// The objective and its gradient (unconstrained coordinates).
type CostGradient = (f64, Vec<f64>);

/// The inverse mean Hessian at a start, and the objective with its gradient there when the
/// pass that formed the Hessian gave them.
type StartCurvature = (Option<Vec<Vec<f64>>>, Option<CostGradient>);

/// Why an evaluation produced no value.
enum EvalError {
    /// The log-likelihood or its gradient is not finite here: the step went too far.
    NotFinite,
    /// The caller asked to stop.
    Interrupted,
}

impl<L: Likelihood> Objective<'_, '_, L> {
    /// The L2 penalty weight of a parameter (per customer).
    fn penalty(&self, spec: &ParamSpec) -> f64 {
        match spec.domain {
            Domain::Real => self.opts.coefficient_penalizer,
            _ => self.opts.penalizer,
        }
    }

    fn natural(&self, u: &[f64]) -> Vec<f64> {
        self.specs
            .iter()
            .zip(u)
            .map(|(s, &v)| s.domain.to_natural(v))
            .collect()
    }

    /// The natural parameters at `u`, unless the caller asked to stop or a parameter left its
    /// domain (an overflow of the transform: the step went too far).
    fn natural_checked(&self, u: &[f64]) -> std::result::Result<Vec<f64>, EvalError> {
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
    fn evaluate(&self, u: &[f64]) -> std::result::Result<(f64, Vec<f64>), EvalError> {
        let theta = self.natural_checked(u)?;
        self.evaluations.fetch_add(1, Ordering::Relaxed);
        let (ll, grad_theta) = self.lik.loglik_and_gradient(&theta, &self.opts.exec);
        self.record(u, &theta, ll, &grad_theta)
    }

    /// The objective, its gradient and the Hessian of the total objective (unconstrained
    /// coordinates) from the model's fused pass; `Ok(None)` when the model has none. The
    /// Hessian is `None` when it is not finite (the objective and gradient still count).
    fn evaluate_with_hessian(&self, u: &[f64]) -> std::result::Result<Option<Fused>, EvalError> {
        let theta = self.natural_checked(u)?;
        let Some((ll, grad_theta, h_theta)) =
            self.lik.loglik_gradient_hessian(&theta, &self.opts.exec)
        else {
            return Ok(None);
        };
        self.evaluations.fetch_add(1, Ordering::Relaxed);
        let (cost, grad) = self.record(u, &theta, ll, &grad_theta)?;
        let hessian = match unconstrained_hessian(self, u, &theta, &h_theta) {
            Ok(h) => Some(h),
            Err(ClvError::Interrupted) => return Err(EvalError::Interrupted),
            Err(_) => None,
        };
        Ok(Some((cost, grad, hessian)))
    }

    /// The objective and its gradient in unconstrained coordinates from the log-likelihood and
    /// its gradient at `theta`, kept as the latest evaluation.
    fn record(
        &self,
        u: &[f64],
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
        *self.latest.lock().unwrap_or_else(|e| e.into_inner()) =
            Some((u.to_vec(), ll, grad.clone()));
        Ok((cost, grad))
    }

    /// The log-likelihood and objective gradient at `u`, from the latest evaluation when it was
    /// at `u` (as it is at the end of a fit), else evaluated afresh.
    fn at(&self, u: &[f64]) -> std::result::Result<(f64, Vec<f64>), EvalError> {
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
    fn jacobian(&self, theta: &[f64]) -> Vec<f64> {
        self.specs
            .iter()
            .zip(theta)
            .map(|(s, &t)| s.domain.jacobian(t))
            .collect()
    }
}

struct StartOutcome {
    u: Vec<f64>,
    cost: f64,
    gradient_norm: f64,
    iterations: u64,
    termination: String,
    converged: bool,
    /// The Hessian of the total objective at `u` (unconstrained coordinates), when the last
    /// evaluation formed it (Newton steps).
    hessian: Option<Vec<Vec<f64>>>,
}

const DEFAULT_MAX_ITER: u64 = 1000;
const DEFAULT_GRADIENT_TOLERANCE: f64 = 1e-8;
/// A line search that can make no further progress is accepted as convergence when the gradient
/// is already this small: the optimum is then determined to within rounding of the objective.
const STALLED_GRADIENT_TOLERANCE: f64 = 1e-5;
/// Pairs (s, y) kept by L-BFGS.
const MEMORY: usize = 10;
/// Largest change of any unconstrained coordinate in one step (a factor e^5 on a positive
/// parameter): keeps the first steps, taken before curvature is known, from leaping into
/// regions where the likelihood underflows.
const MAX_STEP: f64 = 5.0;
/// Armijo sufficient-decrease constant.
const ARMIJO: f64 = 1e-4;
/// Trust radius of the first Newton step (Euclidean, unconstrained coordinates): a factor e on
/// the positive parameters. A warm start's steps are shorter; the radius grows while the
/// quadratic model predicts well.
const NEWTON_START_RADIUS: f64 = 1.0;
/// A Newton step is taken when the objective falls by at least this share of the predicted
/// decrease.
const NEWTON_MIN_RATIO: f64 = 1e-4;

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

/// Fit a model by maximum (penalised) likelihood.
pub fn fit<L: Likelihood>(lik: &L, opts: &FitOptions<'_>) -> Result<FitResult> {
    let specs = lik.params();
    for (name, value) in [
        ("penalizer", opts.penalizer),
        ("covariate_penalizer", opts.coefficient_penalizer),
    ] {
        if !(value >= 0.0 && value.is_finite()) {
            return Err(ClvError::invalid_parameter(
                name,
                format!("must be a finite number >= 0, got {value}"),
            ));
        }
    }
    let weight = lik.total_weight();
    if !(weight > 0.0) {
        return Err(ClvError::invalid_data(
            "weights",
            None,
            None,
            "must have a positive total",
        ));
    }
    let starts = match &opts.start {
        Some(s) => {
            check_params(specs, s)?;
            vec![s.clone()]
        }
        None => lik.starts(),
    };
    let objective = Objective {
        lik,
        specs,
        opts,
        weight,
        evaluations: AtomicU64::new(0),
        interrupted: AtomicBool::new(false),
        latest: Mutex::new(None),
    };
    let max_iter = if opts.max_iter == 0 {
        DEFAULT_MAX_ITER
    } else {
        opts.max_iter
    };
    let tol = if opts.gradient_tolerance > 0.0 {
        opts.gradient_tolerance
    } else {
        DEFAULT_GRADIENT_TOLERANCE
    };

    let mut best: Option<StartOutcome> = None;
    let mut n_starts = 0;
    for start in &starts {
        n_starts += 1;
        let u0: Vec<f64> = specs
            .iter()
            .zip(start)
            .map(|(s, &t)| s.domain.to_unconstrained(t))
            .collect();
        let newton_outcome = if opts.newton {
            newton(&objective, &u0, max_iter, tol)?
        } else {
            None
        };
        let outcome = match newton_outcome {
            Some(outcome) if outcome.converged => outcome,
            stopped => {
                // L-BFGS from the start, or from where Newton stopped with its curvature.
                let (u0, newton_iterations, newton_curvature) = match stopped {
                    Some(o) => {
                        let inverse = match o.hessian {
                            Some(h) => inverse_of(&objective, &o.u, h)?,
                            None => None,
                        };
                        (o.u, o.iterations, inverse)
                    }
                    None => (u0, 0, None),
                };
                let newton_curvature_used = newton_curvature.is_some();
                let (start_curvature, evaluated) = if newton_curvature_used {
                    (newton_curvature, None)
                } else if opts.curvature_at_start && opts.initial_inverse_hessian.is_none() {
                    start_inverse_hessian(&objective, &u0)?
                } else {
                    (None, None)
                };
                // Newton's curvature where it stopped is the point's own; a given one is from
                // elsewhere (a subsample, a pooled fit).
                let h0 = if newton_curvature_used {
                    start_curvature.as_deref()
                } else {
                    opts.initial_inverse_hessian
                        .as_deref()
                        .or(start_curvature.as_deref())
                };
                let mut outcome = lbfgs(&objective, u0, h0, evaluated, max_iter, tol)?;
                outcome.iterations += newton_iterations;
                outcome
            }
        };
        let better = match &best {
            None => true,
            Some(b) => {
                (outcome.converged && !b.converged)
                    || (outcome.converged == b.converged && outcome.cost < b.cost)
            }
        };
        let done = outcome.converged && (opts.first_start_only || !lik.try_all_starts());
        if better {
            best = Some(outcome);
        }
        if done {
            break;
        }
    }
    let best =
        best.ok_or_else(|| ClvError::Internal("the model offered no starting point".into()))?;
    if !best.cost.is_finite() {
        return Err(ClvError::Convergence {
            reason: format!("no finite log-likelihood was found ({})", best.termination),
        });
    }

    let mut termination = best.termination;
    if n_starts > 1 && lik.try_all_starts() && !opts.first_start_only {
        termination = format!("{termination} (best of {n_starts} starting points)");
    }
    let theta = objective.natural(&best.u);
    if let Some(note) = runaway_note(specs, &theta) {
        termination = format!("{termination}; {note}");
    }
    let (ll, _) = objective.at(&best.u).map_err(hessian_error)?;
    let (covariance, inverse_hessian, condition, weakly_identified) =
        match covariance(&objective, &best.u, &theta, best.hessian) {
            Ok(curvature) => curvature,
            // The estimate is usable without standard errors: a fit at the edge of the
            // parameter space (a parameter running off to 0 or infinity) can have non-finite
            // likelihood values next to it.
            Err(ClvError::Convergence { reason }) => {
                termination = format!("{termination}; no standard errors: {reason}");
                (None, None, f64::INFINITY, vec![true; theta.len()])
            }
            Err(e) => return Err(e),
        };
    Ok(FitResult {
        names: specs.iter().map(|s| s.name.to_string()).collect(),
        params: theta,
        covariance,
        covariance_note: None,
        log_likelihood: ll,
        n_observations: weight,
        converged: best.converged,
        termination,
        n_iter: best.iterations,
        n_evaluations: objective.evaluations.load(Ordering::Relaxed),
        n_starts,
        gradient_norm: best.gradient_norm,
        hessian_condition: condition,
        weakly_identified,
        inverse_hessian,
    })
}

/// Positive parameters beyond these bounds are running off to 0 or infinity.
const RUNAWAY_BOUNDS: (f64, f64) = (1e-8, 1e8);

/// Whether a positive parameter's estimate is beyond [`RUNAWAY_BOUNDS`].
fn runs_away(spec: &ParamSpec, value: f64) -> bool {
    spec.domain == Domain::Positive && !(value > RUNAWAY_BOUNDS.0 && value < RUNAWAY_BOUNDS.1)
}

/// Whether any estimate runs off to 0 or infinity (a plateau of the likelihood, where a fit
/// can stop without being at the optimum of a better-identified neighbourhood).
pub fn any_runs_away(specs: &[ParamSpec], theta: &[f64]) -> bool {
    specs.iter().zip(theta).any(|(s, &t)| runs_away(s, t))
}

/// Why a fit may not settle, when positive parameters head for 0 or infinity: the data do not
/// identify them (for example customers without heterogeneity in a rate), and what to do.
fn runaway_note(specs: &[ParamSpec], theta: &[f64]) -> Option<String> {
    let runaway: Vec<String> = specs
        .iter()
        .zip(theta)
        .filter(|(s, &t)| runs_away(s, t))
        .map(|(s, t)| format!("{} = {t:.3e}", s.name))
        .collect();
    (!runaway.is_empty()).then(|| {
        format!(
            "{} heading for 0 or infinity: the data do not pin {} down (customers that look \
             alike leave no heterogeneity to estimate, or a simpler nested model fits as well), \
             and the log-likelihood there may be imprecise; a small penalizer (e.g. 0.001) \
             keeps the estimates finite, or use a simpler model",
            runaway.join(", "),
            if runaway.len() == 1 { "it" } else { "them" }
        )
    })
}

/// Rows above which [`fit_with_warm_start`] first fits a subsample.
pub const WARM_START_ROWS: usize = 200_000;
/// Rows in that subsample (about).
pub const WARM_START_SAMPLE: usize = 50_000;

/// Fit large data in two stages: first a stratified subsample of about [`WARM_START_SAMPLE`]
/// rows (every k-th row of the canonical order), then the full data from the subsample's
/// estimate, which typically needs only a few full-data iterations. The answer is the full-data
/// optimum either way; only the path to it is shorter. Smaller data (or a caller-given start) are
/// fitted directly.
///
/// `fit_on(data, options)` fits the model to some rows (usually `fit(&Model::new(data), options)`).
pub fn fit_with_warm_start<D>(
    data: &D,
    rows: usize,
    subsample: impl Fn(&D, usize) -> D,
    fit_on: impl Fn(&D, &FitOptions<'_>) -> Result<FitResult>,
    opts: &FitOptions<'_>,
) -> Result<FitResult> {
    if rows <= WARM_START_ROWS || opts.start.is_some() {
        return fit_on(data, opts);
    }
    let sample = subsample(data, rows / WARM_START_SAMPLE);
    let first = fit_on(
        &sample,
        &FitOptions {
            first_start_only: true,
            ..opts.clone()
        },
    )?;
    let mut full_opts = opts.clone();
    if first.converged {
        full_opts.start = Some(first.params);
        full_opts.initial_inverse_hessian = first.inverse_hessian;
    }
    let mut res = fit_on(data, &full_opts)?;
    if !res.converged && first.converged {
        // Never worse than a cold start: fall back to the model's own starting points.
        res = fit_on(data, opts)?;
    }
    Ok(res)
}

/// The point `u + step * direction`.
/// Euclidean norm.
fn norm(v: &[f64]) -> f64 {
    v.iter().map(|x| x * x).sum::<f64>().sqrt()
}

fn along(u: &[f64], direction: &[f64], step: f64) -> Vec<f64> {
    u.iter().zip(direction).map(|(x, d)| x + step * d).collect()
}

fn inf_norm(v: &[f64]) -> f64 {
    v.iter().fold(0.0, |m, x| m.max(x.abs()))
}

fn dot(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

/// L-BFGS (Nocedal & Wright 2006, algorithm 7.4) with a backtracking Armijo line search that
/// treats a non-finite objective as "too far" and shrinks the step, and with curvature pairs
/// skipped when `s'y` is not clearly positive (so the inverse-Hessian estimate stays positive
/// definite without a Wolfe search). Written here rather than taken from argmin because argmin's
/// line searches stop with an error at the first non-finite trial point, which the likelihoods of
/// these models produce far from the optimum (underflow of rates near zero).
/// `start` is the objective and its gradient at `u0` when already evaluated.
fn lbfgs<L: Likelihood>(
    objective: &Objective<'_, '_, L>,
    u0: Vec<f64>,
    h0: Option<&[Vec<f64>]>,
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
    let mut hessian: Option<Vec<Vec<f64>>> = None;
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
                q = (0..n).map(|i| dot(&h0[i], &q)).collect();
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
                match objective.evaluate_with_hessian(&trial) {
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

/// The covariance of the natural parameters, the inverse Hessian of the mean objective in
/// unconstrained coordinates (both `None` when the Hessian is not positive definite), the
/// Hessian's condition number, and which parameters are weakly identified.
type Curvature = (Option<Vec<Vec<f64>>>, Option<Vec<Vec<f64>>>, f64, Vec<bool>);

/// Eigenvalues below this fraction of the largest mark directions the data barely identify.
const WEAK_CURVATURE: f64 = 1e-8;
/// Parameters loading more than this on such a direction are reported as weakly identified.
const WEAK_LOADING: f64 = 0.1;

/// Covariance of the natural parameters: the inverse Hessian of the total negative penalised
/// log-likelihood in unconstrained coordinates (from the model's analytic Hessian, or central
/// differences of the analytic gradient, symmetrised), mapped by the delta method `J C J` with
/// `J = diag(d theta / d u)`.
/// Returns `None` when the Hessian is not positive definite, and the condition number.
/// `known` is that Hessian when the last step of the fit already formed it at `u`.
fn covariance<L: Likelihood>(
    objective: &Objective<'_, '_, L>,
    u: &[f64],
    theta: &[f64],
    known: Option<Vec<Vec<f64>>>,
) -> Result<Curvature> {
    let hessian = match known {
        Some(h) => h,
        None => match objective.lik.hessian(theta, &objective.opts.exec) {
            Some(h_theta) => unconstrained_hessian(objective, u, theta, &h_theta)?,
            None => differenced_hessian(objective, u)?,
        },
    };
    curvature_from_hessian(objective, theta, hessian)
}

/// The Hessian of the total objective `-ll + W pen sum(theta^2)` in unconstrained coordinates
/// from the log-likelihood Hessian in natural coordinates: `J (-H + 2 W pen I) J` plus the
/// gradient term `diag(dF/dtheta * d2theta/du2)`, which vanishes at an exact optimum.
fn unconstrained_hessian<L: Likelihood>(
    objective: &Objective<'_, '_, L>,
    u: &[f64],
    theta: &[f64],
    h_theta: &[Vec<f64>],
) -> Result<Vec<Vec<f64>>> {
    let k = u.len();
    let (_, grad_u) = objective.at(u).map_err(hessian_error)?;
    let jac = objective.jacobian(theta);
    let mut hessian = vec![vec![0.0; k]; k];
    for i in 0..k {
        for j in 0..k {
            let penalty = if i == j {
                2.0 * objective.penalty(&objective.specs[i]) * objective.weight
            } else {
                0.0
            };
            hessian[i][j] = jac[i] * (-h_theta[i][j] + penalty) * jac[j];
        }
        // dF/du_i = dF/dtheta_i * J_i, and d2theta/du2 = J (log), J (1 - 2 theta) (logit) or
        // 0 (identity).
        hessian[i][i] +=
            grad_u[i] * objective.weight * objective.specs[i].domain.curvature(theta[i]);
    }
    if hessian.iter().flatten().any(|v| !v.is_finite()) {
        return Err(hessian_error(EvalError::NotFinite));
    }
    Ok(hessian)
}

/// The inverse Hessian of the objective (unconstrained coordinates, mean per customer) at `u`
/// from the model's analytic Hessian, when it has one and it is positive definite there, and
/// the objective with its gradient when the same pass gave them.
fn start_inverse_hessian<L: Likelihood>(
    objective: &Objective<'_, '_, L>,
    u: &[f64],
) -> Result<StartCurvature> {
    // With a fused pass, one pass gives the Hessian and the objective with its gradient (which
    // L-BFGS then need not evaluate again).
    match objective.evaluate_with_hessian(u) {
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
    let hessian = match unconstrained_hessian(objective, u, &theta, &h_theta) {
        Ok(h) => h,
        Err(ClvError::Interrupted) => return Err(ClvError::Interrupted),
        Err(_) => return Ok((None, None)),
    };
    let (_, inverse, _, _) = curvature_from_hessian(objective, &theta, hessian)?;
    Ok((inverse, None))
}

/// The inverse mean Hessian (unconstrained coordinates) at `u` from the total Hessian there,
/// when it is positive definite.
fn inverse_of<L: Likelihood>(
    objective: &Objective<'_, '_, L>,
    u: &[f64],
    hessian: Vec<Vec<f64>>,
) -> Result<Option<Vec<Vec<f64>>>> {
    let theta = objective.natural(u);
    let (_, inverse, _, _) = curvature_from_hessian(objective, &theta, hessian)?;
    Ok(inverse)
}

/// Newton's method from `u0` with the model's fused value/gradient/Hessian pass
/// ([`FitOptions::newton`]), each iteration one pass, in a trust region: the Newton step when it
/// is within the radius, else the Levenberg-Marquardt step on the radius. That shortens the
/// poorly determined directions first, where a line search along the Newton direction tries
/// points far out along them (whose passes cost more on some models: Pareto/NBD's rows then
/// need quadrature). Where the Hessian is not positive definite (a start on a flat ridge) the
/// step is the trust region's along the negative curvature too. `None` when the model has no
/// fused pass. Stops unconverged (with the last Hessian, for L-BFGS to go on from there) at a
/// Hessian that is not finite or when no step decreases the objective.
fn newton<L: Likelihood>(
    objective: &Objective<'_, '_, L>,
    u0: &[f64],
    max_iter: u64,
    tol: f64,
) -> Result<Option<StartOutcome>> {
    let interrupted = |e: EvalError| match e {
        EvalError::Interrupted => Some(ClvError::Interrupted),
        EvalError::NotFinite => None,
    };
    let (mut cost, mut grad, mut hessian) = match objective.evaluate_with_hessian(u0) {
        Ok(Some(v)) => v,
        Ok(None) => return Ok(None),
        Err(e) => match interrupted(e) {
            Some(e) => return Err(e),
            // Not finite at the start: L-BFGS reports it.
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
        // A small gradient where the Hessian has clearly negative curvature is a saddle point,
        // not an optimum: step away from it along that curvature. (Curvature within rounding
        // of zero, as along a direction the data barely identify, is an optimum's.)
        let saddle = gnorm <= tol
            && hessian.as_ref().is_some_and(|h| {
                let values = symmetric_eigen(h).0;
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
        let (values, vectors) = symmetric_eigen(h);
        if values.iter().any(|v| !v.is_finite()) {
            return stop(u, cost, gnorm, iterations, None, "no finite Hessian".into());
        }
        // The step in the eigenbasis of the mean Hessian: components of the gradient and the
        // eigenvalues (the Hessian is of the total objective, hence the weight).
        let k = u.len();
        let grad_eigen: Vec<f64> = (0..k)
            .map(|m| (0..k).map(|j| vectors[j][m] * grad[j]).sum())
            .collect();
        let curvature: Vec<f64> = values.iter().map(|v| v / objective.weight).collect();
        let noise = 64.0 * f64::EPSILON * cost.abs().max(1.0);
        let mut accepted = None;
        for _ in 0..30 {
            let step_eigen = trust_region_step(&grad_eigen, &curvature, radius);
            let length = norm(&step_eigen);
            let trial: Vec<f64> = (0..k)
                .map(|i| u[i] + (0..k).map(|m| vectors[i][m] * step_eigen[m]).sum::<f64>())
                .collect();
            // The decrease the quadratic model predicts.
            let predicted: f64 = -(0..k)
                .map(|m| step_eigen[m] * (grad_eigen[m] + 0.5 * curvature[m] * step_eigen[m]))
                .sum::<f64>();
            let outcome = match objective.evaluate_with_hessian(&trial) {
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
        }
        iterations += 1;
        let Some((next_u, next_cost, next_grad, next_hessian)) = accepted else {
            return stop(u, cost, gnorm, iterations, hessian, "no decrease".into());
        };
        u = next_u;
        cost = next_cost;
        grad = next_grad;
        hessian = next_hessian;
    }
}

/// Central differences of the analytic gradient in unconstrained coordinates, symmetrised.
fn differenced_hessian<L: Likelihood>(
    objective: &Objective<'_, '_, L>,
    u: &[f64],
) -> Result<Vec<Vec<f64>>> {
    let k = u.len();
    let mut hessian = vec![vec![0.0; k]; k];
    for j in 0..k {
        let h = 1e-5 * u[j].abs().max(1.0);
        let mut up = u.to_vec();
        let mut down = u.to_vec();
        up[j] += h;
        down[j] -= h;
        let (_, g_up) = objective.evaluate(&up).map_err(hessian_error)?;
        let (_, g_down) = objective.evaluate(&down).map_err(hessian_error)?;
        for i in 0..k {
            hessian[i][j] = (g_up[i] - g_down[i]) / (2.0 * h) * objective.weight;
        }
    }
    for i in 0..k {
        for j in 0..i {
            let mean = 0.5 * (hessian[i][j] + hessian[j][i]);
            hessian[i][j] = mean;
            hessian[j][i] = mean;
        }
    }
    Ok(hessian)
}

/// Covariance (delta method), inverse mean Hessian and condition number from the unconstrained
/// Hessian of the total objective.
fn curvature_from_hessian<L: Likelihood>(
    objective: &Objective<'_, '_, L>,
    theta: &[f64],
    hessian: Vec<Vec<f64>>,
) -> Result<Curvature> {
    let k = theta.len();
    let (values, vectors) = symmetric_eigen(&hessian);
    let max = values.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
    let min = values.iter().cloned().fold(f64::INFINITY, f64::min);
    let condition = if min > 0.0 { max / min } else { f64::INFINITY };
    let mut weak = vec![false; k];
    for (m, &value) in values.iter().enumerate() {
        if !(value > WEAK_CURVATURE * max.abs()) {
            for i in 0..k {
                weak[i] |= vectors[i][m].abs() > WEAK_LOADING;
            }
        }
    }
    if !(min > 0.0) || !condition.is_finite() || condition > 1e16 {
        return Ok((None, None, condition, weak));
    }
    let jac = objective.jacobian(theta);
    let mut cov = vec![vec![0.0; k]; k];
    let mut inverse = vec![vec![0.0; k]; k];
    for i in 0..k {
        for j in 0..=i {
            let inv: f64 = (0..k)
                .map(|m| vectors[i][m] * vectors[j][m] / values[m])
                .sum();
            let c = jac[i] * inv * jac[j];
            cov[i][j] = c;
            cov[j][i] = c;
            inverse[i][j] = inv * objective.weight;
            inverse[j][i] = inv * objective.weight;
        }
    }
    Ok((Some(cov), Some(inverse), condition, weak))
}

fn hessian_error(e: EvalError) -> ClvError {
    match e {
        EvalError::Interrupted => ClvError::Interrupted,
        EvalError::NotFinite => ClvError::Convergence {
            reason:
                "the log-likelihood is not finite next to the estimate, so no Hessian can be formed"
                    .into(),
        },
    }
}

/// Eigen-decomposition of a small symmetric matrix by cyclic Jacobi rotations:
/// returns (eigenvalues, eigenvectors as columns: `vectors[row][m]` for eigenvalue `m`).
pub fn symmetric_eigen(matrix: &[Vec<f64>]) -> (Vec<f64>, Vec<Vec<f64>>) {
    let n = matrix.len();
    let mut a: Vec<Vec<f64>> = matrix.to_vec();
    let mut v = vec![vec![0.0; n]; n];
    for (i, row) in v.iter_mut().enumerate() {
        row[i] = 1.0;
    }
    for _sweep in 0..100 {
        let off: f64 = (0..n)
            .flat_map(|i| (0..n).filter(move |&j| j != i).map(move |j| (i, j)))
            .map(|(i, j)| a[i][j] * a[i][j])
            .sum();
        let scale: f64 = (0..n).map(|i| a[i][i] * a[i][i]).sum();
        if off <= 1e-30 * scale.max(f64::MIN_POSITIVE) {
            break;
        }
        for p in 0..n {
            for q in (p + 1)..n {
                if a[p][q] == 0.0 {
                    continue;
                }
                let theta = (a[q][q] - a[p][p]) / (2.0 * a[p][q]);
                let t = theta.signum() / (theta.abs() + (theta * theta + 1.0).sqrt());
                let t = if theta == 0.0 { 1.0 } else { t };
                let c = 1.0 / (t * t + 1.0).sqrt();
                let s = t * c;
                for k in 0..n {
                    let akp = a[k][p];
                    let akq = a[k][q];
                    a[k][p] = c * akp - s * akq;
                    a[k][q] = s * akp + c * akq;
                }
                for k in 0..n {
                    let apk = a[p][k];
                    let aqk = a[q][k];
                    a[p][k] = c * apk - s * aqk;
                    a[q][k] = s * apk + c * aqk;
                }
                for row in v.iter_mut() {
                    let vkp = row[p];
                    let vkq = row[q];
                    row[p] = c * vkp - s * vkq;
                    row[q] = s * vkp + c * vkq;
                }
            }
        }
    }
    ((0..n).map(|i| a[i][i]).collect(), v)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Weighted normal sample with known mean and standard deviation: the MLE and its covariance
    /// are known in closed form, which tests the optimiser, the Hessian and the delta method.
    struct Normal {
        values: Vec<f64>,
    }

    static NORMAL_PARAMS: [ParamSpec; 2] = [
        ParamSpec {
            name: "mu_plus_10",
            domain: Domain::Positive,
        },
        ParamSpec {
            name: "sigma",
            domain: Domain::Positive,
        },
    ];

    impl Likelihood for Normal {
        fn params(&self) -> &[ParamSpec] {
            &NORMAL_PARAMS
        }
        fn starts(&self) -> Vec<Vec<f64>> {
            vec![vec![1.0, 1.0]]
        }
        fn total_weight(&self) -> f64 {
            self.values.len() as f64
        }
        fn loglik_and_gradient(&self, p: &[f64], exec: &Exec) -> (f64, Vec<f64>) {
            let (m, s) = (p[0] - 10.0, p[1]);
            let acc = exec.chunked_sum(self.values.len(), 3, |range, acc| {
                for &x in &self.values[range] {
                    let z = (x - m) / s;
                    acc[0] += -0.5 * z * z - s.ln();
                    acc[1] += z / s;
                    acc[2] += z * z / s - 1.0 / s;
                }
            });
            (acc[0], vec![acc[1], acc[2]])
        }
    }

    #[test]
    fn recovers_closed_form_estimates_and_covariance() {
        let values: Vec<f64> = (0..1000)
            .map(|i| ((i * 7919) % 1000) as f64 / 100.0 - 3.0)
            .collect();
        let n = values.len() as f64;
        let mean = values.iter().sum::<f64>() / n;
        let var = values.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / n;
        let model = Normal { values };
        let res = fit(&model, &FitOptions::default()).unwrap();
        assert!(res.converged, "{}", res.termination);
        assert!((res.params[0] - 10.0 - mean).abs() < 1e-7);
        assert!((res.params[1] - var.sqrt()).abs() < 1e-7);
        let cov = res.covariance.unwrap();
        // Var(mu) = sigma^2 / n, Var(sigma) = sigma^2 / (2n), Cov = 0.
        assert!((cov[0][0] / (var / n) - 1.0).abs() < 1e-5);
        assert!((cov[1][1] / (var / (2.0 * n)) - 1.0).abs() < 1e-5);
        assert!(cov[0][1].abs() < 1e-9);
        assert_eq!(cov[0][1], cov[1][0]);
    }

    /// [`Normal`] with its analytic Hessian as a fused pass (counting its calls), for Newton
    /// steps and the last step of L-BFGS.
    struct NormalFused(Normal, AtomicU64);

    impl Likelihood for NormalFused {
        fn params(&self) -> &[ParamSpec] {
            &NORMAL_PARAMS
        }
        fn starts(&self) -> Vec<Vec<f64>> {
            self.0.starts()
        }
        fn total_weight(&self) -> f64 {
            self.0.total_weight()
        }
        fn loglik_and_gradient(&self, p: &[f64], exec: &Exec) -> (f64, Vec<f64>) {
            self.0.loglik_and_gradient(p, exec)
        }
        fn loglik_gradient_hessian(&self, p: &[f64], exec: &Exec) -> Option<FusedPass> {
            self.1.fetch_add(1, Ordering::Relaxed);
            let (ll, gradient) = self.0.loglik_and_gradient(p, exec);
            let (m, s) = (p[0] - 10.0, p[1]);
            let (mut h_ms, mut h_ss) = (0.0, 0.0);
            for &x in &self.0.values {
                let z = (x - m) / s;
                h_ms += -2.0 * z / (s * s);
                h_ss += (1.0 - 3.0 * z * z) / (s * s);
            }
            let n = self.0.values.len() as f64;
            let hessian = vec![vec![-n / (s * s), h_ms], vec![h_ms, h_ss]];
            Some((ll, gradient, hessian))
        }
    }

    /// `-ll = a^2 / 2 - b^2 / 2 + b^4 / 4`: a saddle point at the origin (zero gradient,
    /// negative curvature in b), minima at `b = +-1`.
    struct Saddle;

    static SADDLE_PARAMS: [ParamSpec; 2] = [
        ParamSpec {
            name: "a",
            domain: Domain::Real,
        },
        ParamSpec {
            name: "b",
            domain: Domain::Real,
        },
    ];

    impl Likelihood for Saddle {
        fn params(&self) -> &[ParamSpec] {
            &SADDLE_PARAMS
        }
        fn starts(&self) -> Vec<Vec<f64>> {
            vec![vec![0.0, 0.0]]
        }
        fn total_weight(&self) -> f64 {
            1.0
        }
        fn loglik_and_gradient(&self, p: &[f64], _exec: &Exec) -> (f64, Vec<f64>) {
            let (a, b) = (p[0], p[1]);
            let ll = -(0.5 * a * a - 0.5 * b * b + 0.25 * b.powi(4));
            (ll, vec![-a, b - b.powi(3)])
        }
        fn loglik_gradient_hessian(&self, p: &[f64], exec: &Exec) -> Option<FusedPass> {
            let (ll, gradient) = self.loglik_and_gradient(p, exec);
            let hessian = vec![vec![-1.0, 0.0], vec![0.0, 1.0 - 3.0 * p[1] * p[1]]];
            Some((ll, gradient, hessian))
        }
    }

    #[test]
    fn newton_steps_leave_a_saddle_point() {
        let res = fit(
            &Saddle,
            &FitOptions {
                newton: true,
                ..FitOptions::default()
            },
        )
        .unwrap();
        assert!(
            res.converged && res.termination.contains("Newton"),
            "{}",
            res.termination
        );
        assert!(res.params[0].abs() < 1e-8 && (res.params[1].abs() - 1.0).abs() < 1e-8);
        assert!((res.log_likelihood - 0.25).abs() < 1e-12, "{res:?}");
    }

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

    #[test]
    fn newton_steps_reach_the_lbfgs_optimum_and_covariance() {
        let values: Vec<f64> = (0..1000)
            .map(|i| ((i * 7919) % 1000) as f64 / 100.0 - 3.0)
            .collect();
        let plain = fit(
            &Normal {
                values: values.clone(),
            },
            &FitOptions::default(),
        )
        .unwrap();
        let model = NormalFused(Normal { values }, AtomicU64::new(0));
        // Near the optimum (a warm start): a few Newton steps, with the last Hessian as the
        // covariance's.
        let near = FitOptions {
            newton: true,
            start: Some(vec![plain.params[0] * 1.02, plain.params[1] * 0.9]),
            ..FitOptions::default()
        };
        let res = fit(&model, &near).unwrap();
        assert!(
            res.converged && res.termination.contains("Newton"),
            "{}",
            res.termination
        );
        assert!(res.n_iter <= 6 && res.n_evaluations <= 8, "{res:?}");
        // Far away the Hessian is indefinite (at the start mu + 10 = 1): trust-region steps
        // get there too.
        let far = FitOptions {
            newton: true,
            ..FitOptions::default()
        };
        let from_far = fit(&model, &far).unwrap();
        assert!(from_far.converged, "{}", from_far.termination);
        // Plain L-BFGS takes its last step with the fused pass, whose Hessian is then the
        // covariance's (the model has no separate Hessian: without it the covariance would
        // come from differenced gradients).
        model.1.store(0, Ordering::Relaxed);
        let lbfgs_only = fit(&model, &FitOptions::default()).unwrap();
        assert!(lbfgs_only.converged, "{}", lbfgs_only.termination);
        assert!(model.1.load(Ordering::Relaxed) >= 1);
        for r in [&res, &from_far, &lbfgs_only] {
            for (a, b) in r.params.iter().zip(&plain.params) {
                assert!((a - b).abs() < 1e-7, "{:?} vs {:?}", r.params, plain.params);
            }
            let (cov, want) = (
                r.covariance.as_ref().unwrap(),
                plain.covariance.as_ref().unwrap(),
            );
            for i in 0..2 {
                for j in 0..2 {
                    assert!((cov[i][j] - want[i][j]).abs() <= 1e-6 * want[i][i].abs());
                }
            }
        }
    }

    #[test]
    fn interrupt_stops_the_fit() {
        let model = Normal {
            values: vec![1.0, 2.0, 3.0],
        };
        let stop = || true;
        let opts = FitOptions {
            interrupt: Some(&stop),
            ..FitOptions::default()
        };
        assert_eq!(fit(&model, &opts).unwrap_err(), ClvError::Interrupted);
    }

    #[test]
    fn eigen_decomposition_reconstructs_the_matrix() {
        let m = vec![
            vec![4.0, 1.0, 0.5],
            vec![1.0, 3.0, 0.2],
            vec![0.5, 0.2, 1.0],
        ];
        let (vals, vecs) = symmetric_eigen(&m);
        for i in 0..3 {
            for j in 0..3 {
                let r: f64 = (0..3).map(|k| vecs[i][k] * vals[k] * vecs[j][k]).sum();
                assert!((r - m[i][j]).abs() < 1e-12);
            }
        }
    }
}
