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

//!
//! The engine's parts, each in its file: [`objective`] (the objective in unconstrained
//! coordinates and its evaluation), [`lbfgs`] (the quasi-Newton search every fit uses),
//! [`newton`] (trust-region Newton steps with a model's fused value/gradient/Hessian pass),
//! [`covariance`] (the Hessian at the optimum, the covariance and the identification check) and
//! [`linalg`] (the small dense linear algebra they share).

mod covariance;
mod lbfgs;
pub mod linalg;
mod newton;
mod objective;

use ndarray::Array2;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Mutex;

use crate::error::{ClvError, Result};
use crate::parallel::Exec;
use covariance::{covariance, hessian_error, inverse_of, start_inverse_hessian};
use lbfgs::lbfgs;
use newton::newton;
use objective::Objective;

/// The set a parameter lives in, which fixes its unconstrained transform.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Domain {
    /// (0, inf), optimised as log(theta).
    Positive,
    /// (0, 1), optimised as logit(theta).
    UnitInterval,
    /// Any finite number (a covariate coefficient), optimised as itself.
    Real,
}

impl Domain {
    pub(crate) fn to_unconstrained(self, theta: f64) -> f64 {
        match self {
            Domain::Positive => theta.ln(),
            Domain::UnitInterval => (theta / (1.0 - theta)).ln(),
            Domain::Real => theta,
        }
    }

    pub(crate) fn to_natural(self, u: f64) -> f64 {
        match self {
            Domain::Positive => u.exp(),
            Domain::UnitInterval => crate::special::logistic(u),
            Domain::Real => u,
        }
    }

    /// d2 theta / d u2 divided by d theta / d u, at `theta`.
    pub(crate) fn curvature(self, theta: f64) -> f64 {
        match self {
            Domain::Positive => 1.0,
            Domain::UnitInterval => 1.0 - 2.0 * theta,
            Domain::Real => 0.0,
        }
    }

    /// ln |d theta / d u| at `u`, formed from `u` (for the logit, `ln theta + ln(1 - theta)`
    /// without rounding `theta` near 0 or 1).
    pub(crate) fn log_jacobian(self, u: f64) -> f64 {
        match self {
            Domain::Positive => u,
            Domain::UnitInterval => -(crate::special::log1p_exp(-u) + crate::special::log1p_exp(u)),
            Domain::Real => 0.0,
        }
    }

    /// d theta / d u at `theta`.
    pub(crate) fn jacobian(self, theta: f64) -> f64 {
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
    fn hessian(&self, _params: &[f64], _exec: &Exec) -> Option<Array2<f64>> {
        None
    }

    /// The log-likelihood, its gradient and its Hessian (natural parameters) from one pass over
    /// the data, when the model has such a fused pass (used by Newton steps,
    /// [`FitOptions::newton`]); `None` otherwise.
    fn loglik_gradient_hessian(&self, _params: &[f64], _exec: &Exec) -> Option<FusedPass> {
        None
    }

    /// Whether the model has coarse passes of its own
    /// ([`Likelihood::loglik_and_gradient_coarse`]); Newton takes them only then.
    fn has_coarse_passes(&self) -> bool {
        false
    }

    /// [`Likelihood::loglik_and_gradient`] to a coarser precision (series summed to about
    /// [`COARSE_PRECISION`] of each row's value instead of to rounding), for Newton's steps far
    /// from the optimum, where only the step's direction and a clear decrease matter; the exact
    /// pass by default. A fit never ends on a coarse pass.
    fn loglik_and_gradient_coarse(&self, params: &[f64], exec: &Exec) -> (f64, Vec<f64>) {
        self.loglik_and_gradient(params, exec)
    }

    /// [`Likelihood::loglik_gradient_hessian`] to the precision of
    /// [`Likelihood::loglik_and_gradient_coarse`]; the exact pass by default.
    fn loglik_gradient_hessian_coarse(&self, params: &[f64], exec: &Exec) -> Option<FusedPass> {
        self.loglik_gradient_hessian(params, exec)
    }

    /// Whether every starting point is tried and the best optimum kept (for surfaces known to
    /// be flat or to have several local optima), rather than stopping at the first that
    /// converges.
    fn try_all_starts(&self) -> bool {
        false
    }
}

/// Relative precision of a row's value in a coarse pass
/// ([`Likelihood::loglik_and_gradient_coarse`]): far below the objective's decrease in any step
/// Newton takes on coarse passes (see [`newton`]'s `COARSE_ABOVE`).
pub const COARSE_PRECISION: f64 = 1e-10;

/// The log-likelihood, its gradient and its Hessian (`k x k`) in the natural parameters.
pub type FusedPass = (f64, Vec<f64>, Array2<f64>);

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
    pub initial_inverse_hessian: Option<Array2<f64>>,
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
    /// With [`FitOptions::newton`] and an [`FitOptions::initial_inverse_hessian`]: the first
    /// Newton step takes that curvature (scaled to the data's customers) as its model, so the
    /// start costs a gradient pass instead of a fused pass. For warm starts from a pooled fit
    /// whose data resemble this fit's (segments of it): when the step does not decrease the
    /// objective as that model predicts, the start's own Hessian is evaluated and Newton goes
    /// on as without it. The estimate and its covariance are the same optimum's: the end of
    /// the fit is always a fused pass at the estimate.
    pub newton_given_curvature: bool,
    /// Stop at the first start that converges even for models that try every start (set for
    /// the subsample of [`fit_with_warm_start`], whose optimum only seeds the full fit).
    pub first_start_only: bool,
}

/// The result of a fit.
#[derive(Debug, Clone, PartialEq)]
pub struct FitResult {
    /// Parameter names, in order.
    pub names: Vec<String>,
    /// Estimates on the natural scale.
    pub params: Vec<f64>,
    /// Covariance of the estimates (`k x k`, natural scale), when the Hessian is invertible.
    pub covariance: Option<Array2<f64>>,
    /// Why there is no covariance when the Hessian is not the reason (in words).
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
    pub inverse_hessian: Option<Array2<f64>>,
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
            .map(|c| c.diag().iter().map(|v| v.max(0.0).sqrt()).collect())
    }
}

/// Where one start's search ended.
struct StartOutcome {
    u: Vec<f64>,
    cost: f64,
    gradient_norm: f64,
    iterations: u64,
    termination: String,
    converged: bool,
    /// The Hessian of the total objective at `u` (unconstrained coordinates), when the last
    /// evaluation formed it (Newton steps).
    hessian: Option<Array2<f64>>,
}

const DEFAULT_MAX_ITER: u64 = 1000;
const DEFAULT_GRADIENT_TOLERANCE: f64 = 1e-8;

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
                    start_curvature.as_ref()
                } else {
                    opts.initial_inverse_hessian
                        .as_ref()
                        .or(start_curvature.as_ref())
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

/// How [`fit_in_stages`] reaches a large data set's optimum.
#[derive(Debug, Clone, Default)]
pub struct Staging {
    /// A start the model supplies (e.g. the optimum of a simpler nested model), used by every
    /// stage and by the fallback; unlike a caller's [`FitOptions::start`] it does not disable
    /// the subsample stage. `None`: the model's own starting points.
    pub start: Option<Vec<f64>>,
    /// The subsample: every `stride`-th row. `None`: every `rows / WARM_START_SAMPLE`-th row
    /// above [`WARM_START_ROWS`] rows, no subsample below; `Some(s)` with `s < 2`: none.
    pub stride: Option<usize>,
    /// Whether the subsample's own fit starts from a fit to a tenth as many rows (every
    /// `10 stride`-th row), which takes the dozen or more iterations of a cold start at a
    /// tenth of their cost; not worth it from a start already near the optimum.
    pub seed_stage: bool,
    /// Whether the fit of all rows takes its first Newton step on the subsample's curvature
    /// ([`FitOptions::newton_given_curvature`]; with [`FitOptions::newton`]).
    pub full_step_on_sample_curvature: bool,
    /// Whether the subsample's fit (and its seed stage) takes Newton steps
    /// ([`FitOptions::newton`]): for a model with an analytic fused pass whose start is far from
    /// the subsample's optimum in a direction the start's curvature does not know (a nested
    /// model's optimum: L-BFGS there spends a dozen or more iterations learning the curvature
    /// that a fused pass gives at once). The fit of all rows keeps the caller's method.
    pub newton_on_sample: bool,
}

impl Staging {
    /// The staging of [`fit_with_warm_start`]: the model's own starts, the default subsample,
    /// its seed stage, L-BFGS (or Newton) from the subsample's curvature.
    pub fn cold() -> Self {
        Staging {
            seed_stage: true,
            ..Staging::default()
        }
    }
}

/// The result of [`fit_in_stages`].
#[derive(Debug, Clone)]
pub struct StagedFit {
    pub result: FitResult,
    /// Whether the result is the fit of all rows from the subsample's optimum (not the direct
    /// fit or the fallback).
    pub through_subsample: bool,
}

/// Fit large data in stages ([`fit_with_warm_start`] with the model's own starts, and any
/// staging): first a systematic subsample (every k-th row of the canonical order; with
/// [`Staging::seed_stage`], its own fit starts from a fit to a tenth as many rows), then all
/// rows from the subsample's estimate and curvature, which typically needs only a few
/// full-data iterations. The answer is the full-data optimum either way; only the path to it is
/// shorter: when the fit from the subsample does not converge, all rows are fitted from the
/// start of the direct fit (never worse than a cold start). Data too small for
/// [`Staging::stride`], or a caller-given [`FitOptions::start`], are fitted directly.
///
/// `fit_on(data, options)` fits the model to some rows (usually `fit(&Model::new(data), options)`).
pub fn fit_in_stages<D>(
    data: &D,
    rows: usize,
    subsample: impl Fn(&D, usize) -> D,
    fit_on: impl Fn(&D, &FitOptions<'_>) -> Result<FitResult>,
    opts: &FitOptions<'_>,
    staging: &Staging,
) -> Result<StagedFit> {
    let direct_opts = match (&opts.start, &staging.start) {
        (None, Some(start)) => FitOptions {
            start: Some(start.clone()),
            ..opts.clone()
        },
        _ => opts.clone(),
    };
    let stride = match staging.stride {
        _ if opts.start.is_some() => 0,
        Some(stride) => stride,
        None if rows > WARM_START_ROWS => rows / WARM_START_SAMPLE,
        None => 0,
    };
    let direct = |result| StagedFit {
        result,
        through_subsample: false,
    };
    if stride < 2 {
        return fit_on(data, &direct_opts).map(direct);
    }
    let sample = subsample(data, stride);
    let sample_opts = FitOptions {
        first_start_only: true,
        newton: direct_opts.newton || staging.newton_on_sample,
        ..direct_opts.clone()
    };
    let seeded = if staging.seed_stage {
        let seed_stride = match staging.stride {
            None => rows / (WARM_START_SAMPLE / 10),
            Some(stride) => 10 * stride,
        };
        match fit_on(&subsample(data, seed_stride), &sample_opts) {
            Ok(s) if s.converged => Some(FitOptions {
                start: Some(s.params),
                initial_inverse_hessian: s.inverse_hessian,
                ..sample_opts.clone()
            }),
            Err(ClvError::Interrupted) => return Err(ClvError::Interrupted),
            _ => None,
        }
    } else {
        None
    };
    let first = match &seeded {
        Some(seeded_opts) => match fit_on(&sample, seeded_opts) {
            Ok(f) if !f.converged => fit_on(&sample, &sample_opts),
            first => first,
        },
        None => fit_on(&sample, &sample_opts),
    };
    let first = match first {
        Err(ClvError::Interrupted) => return Err(ClvError::Interrupted),
        // (A failed subsample fit leaves the direct fit.)
        first => first.ok().filter(|f| f.converged),
    };
    let Some(first) = first else {
        return fit_on(data, &direct_opts).map(direct);
    };
    let full_opts = FitOptions {
        start: Some(first.params),
        initial_inverse_hessian: first.inverse_hessian,
        newton_given_curvature: opts.newton_given_curvature
            || staging.full_step_on_sample_curvature,
        ..opts.clone()
    };
    let res = fit_on(data, &full_opts)?;
    if res.converged {
        return Ok(StagedFit {
            result: res,
            through_subsample: true,
        });
    }
    // Never worse than a cold start: fall back to the direct fit.
    fit_on(data, &direct_opts).map(direct)
}

/// Fit large data in stages: first a stratified subsample of about [`WARM_START_SAMPLE`]
/// rows (every k-th row of the canonical order; its own fit starts from a fit to a tenth as
/// many rows), then the full data from the subsample's estimate, which typically needs only a
/// few full-data iterations. The answer is the full-data optimum either way; only the path to
/// it is shorter. Smaller data (or a caller-given start) are fitted directly
/// ([`fit_in_stages`] with [`Staging::cold`]).
///
/// `fit_on(data, options)` fits the model to some rows (usually `fit(&Model::new(data), options)`).
pub fn fit_with_warm_start<D>(
    data: &D,
    rows: usize,
    subsample: impl Fn(&D, usize) -> D,
    fit_on: impl Fn(&D, &FitOptions<'_>) -> Result<FitResult>,
    opts: &FitOptions<'_>,
) -> Result<FitResult> {
    fit_in_stages(data, rows, subsample, fit_on, opts, &Staging::cold()).map(|s| s.result)
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::array;

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
        assert!((cov[[0, 0]] / (var / n) - 1.0).abs() < 1e-5);
        assert!((cov[[1, 1]] / (var / (2.0 * n)) - 1.0).abs() < 1e-5);
        assert!(cov[[0, 1]].abs() < 1e-9);
        assert_eq!(cov[[0, 1]], cov[[1, 0]]);
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
            let hessian = array![[-n / (s * s), h_ms], [h_ms, h_ss]];
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
            let hessian = array![[-1.0, 0.0], [0.0, 1.0 - 3.0 * p[1] * p[1]]];
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
                    assert!((cov[[i, j]] - want[[i, j]]).abs() <= 1e-6 * want[[i, i]].abs());
                }
            }
        }
    }

    #[test]
    fn newton_from_a_given_curvature_reaches_the_same_optimum() {
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
        let pooled = plain.inverse_hessian.clone().unwrap();
        let start = vec![plain.params[0] * 1.02, plain.params[1] * 0.9];
        let warm = |inverse: Array2<f64>, start: Vec<f64>| FitOptions {
            newton: true,
            newton_given_curvature: true,
            initial_inverse_hessian: Some(inverse),
            start: Some(start),
            ..FitOptions::default()
        };
        // A curvature that predicts well (the optimum's own), a misleading one (a hundred
        // times too flat: the first step overshoots, and the start's own Hessian takes over),
        // and a start at the optimum (converged at once: the fused pass there still gives the
        // covariance).
        let cases = [
            warm(pooled.clone(), start.clone()),
            warm(&pooled * 100.0, start.clone()),
            warm(pooled.clone(), plain.params.clone()),
        ];
        for (case, opts) in cases.iter().enumerate() {
            model.1.store(0, Ordering::Relaxed);
            let res = fit(&model, opts).unwrap();
            assert!(
                res.converged && res.termination.contains("Newton"),
                "{case}: {}",
                res.termination
            );
            let fused = model.1.load(Ordering::Relaxed);
            // The start took a gradient pass; every later point a fused pass.
            assert_eq!(fused + 1, res.n_evaluations, "{case}: {res:?}");
            if case == 0 {
                assert!(res.n_evaluations <= 6, "{res:?}");
            }
            for (a, b) in res.params.iter().zip(&plain.params) {
                assert!(
                    (a - b).abs() < 1e-7,
                    "{case}: {:?} vs {:?}",
                    res.params,
                    plain.params
                );
            }
            assert!(
                (res.log_likelihood - plain.log_likelihood).abs()
                    < 1e-9 * plain.log_likelihood.abs()
            );
            let (cov, want) = (
                res.covariance.as_ref().unwrap(),
                plain.covariance.as_ref().unwrap(),
            );
            for i in 0..2 {
                for j in 0..2 {
                    assert!(
                        (cov[[i, j]] - want[[i, j]]).abs() <= 1e-6 * want[[i, i]].abs(),
                        "{case}: {cov:?} vs {want:?}"
                    );
                }
            }
        }
    }

    /// [`NormalFused`] whose coarse passes are off by the most a coarse pass may be
    /// ([`COARSE_PRECISION`] a customer in the value, making every coarse point look better;
    /// the gradient by 1e-8 relative, the Hessian by 1e-6), counting them.
    struct NormalCoarse(NormalFused, AtomicU64);

    impl Likelihood for NormalCoarse {
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
            self.0.loglik_gradient_hessian(p, exec)
        }
        fn has_coarse_passes(&self) -> bool {
            true
        }
        fn loglik_and_gradient_coarse(&self, p: &[f64], exec: &Exec) -> (f64, Vec<f64>) {
            let (ll, gradient, _) = self.loglik_gradient_hessian_coarse(p, exec).unwrap();
            (ll, gradient)
        }
        fn loglik_gradient_hessian_coarse(&self, p: &[f64], exec: &Exec) -> Option<FusedPass> {
            self.1.fetch_add(1, Ordering::Relaxed);
            let (ll, gradient, hessian) = self.0.loglik_gradient_hessian(p, exec)?;
            Some((
                ll + COARSE_PRECISION * self.total_weight(),
                gradient.iter().map(|g| g * (1.0 + 1e-8)).collect(),
                hessian * (1.0 + 1e-6),
            ))
        }
    }

    /// Newton's first passes from a warm start are coarse where the gradient is large, and
    /// the fit still ends on the exact optimum: its log-likelihood is the exact pass's there
    /// (not a coarse one's), its estimate and covariance those of L-BFGS on exact passes.
    #[test]
    fn newton_on_coarse_passes_far_away_ends_on_the_exact_optimum() {
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
        let model = NormalCoarse(
            NormalFused(Normal { values }, AtomicU64::new(0)),
            AtomicU64::new(0),
        );
        for given_curvature in [false, true] {
            model.1.store(0, Ordering::Relaxed);
            let opts = FitOptions {
                newton: true,
                newton_given_curvature: given_curvature,
                initial_inverse_hessian: plain.inverse_hessian.clone(),
                start: Some(vec![plain.params[0] * 1.05, plain.params[1] * 0.7]),
                ..FitOptions::default()
            };
            let res = fit(&model, &opts).unwrap();
            assert!(
                res.converged && res.termination.contains("Newton"),
                "{}",
                res.termination
            );
            let coarse = model.1.load(Ordering::Relaxed);
            assert!(
                coarse >= 1 && coarse < res.n_evaluations,
                "{coarse} {res:?}"
            );
            let exact = model.0.loglik_and_gradient(&res.params, &opts.exec).0;
            assert_eq!(res.log_likelihood.to_bits(), exact.to_bits());
            for (a, b) in res.params.iter().zip(&plain.params) {
                assert!(
                    (a - b).abs() < 1e-7,
                    "{:?} vs {:?}",
                    res.params,
                    plain.params
                );
            }
            let (cov, want) = (
                res.covariance.as_ref().unwrap(),
                plain.covariance.as_ref().unwrap(),
            );
            for i in 0..2 {
                for j in 0..2 {
                    assert!((cov[[i, j]] - want[[i, j]]).abs() <= 1e-6 * want[[i, i]].abs());
                }
            }
        }
    }

    /// [`Normal`] with its fused pass, recording where each fused pass was taken.
    struct NormalRecorded(NormalFused, Mutex<Vec<Vec<f64>>>);

    impl Likelihood for NormalRecorded {
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
            self.1.lock().unwrap().push(p.to_vec());
            self.0.loglik_gradient_hessian(p, exec)
        }
    }

    /// The fallback of a given curvature: a curvature a hundred times too flat, from a start
    /// off the optimum in `mu` alone (2.5%), so the first step goes to the trust radius, 1,
    /// along `mu`: a factor e down in `mu + 10`, far past the optimum, where the objective is
    /// higher, so the step must be refused. The start's own Hessian is then evaluated (a fused pass at
    /// the start, which the recording shows), and Newton reaches the optimum and covariance.
    #[test]
    fn newton_falls_back_to_the_exact_curvature_when_the_given_one_fails() {
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
        let model = NormalRecorded(
            NormalFused(Normal { values }, AtomicU64::new(0)),
            Mutex::new(Vec::new()),
        );
        let start = vec![plain.params[0] + 0.3, plain.params[1]];
        let opts = FitOptions {
            newton: true,
            newton_given_curvature: true,
            initial_inverse_hessian: Some(plain.inverse_hessian.clone().unwrap() * 100.0),
            start: Some(start.clone()),
            ..FitOptions::default()
        };
        let res = fit(&model, &opts).unwrap();
        assert!(
            res.converged && res.termination.contains("Newton"),
            "{}",
            res.termination
        );
        let points = model.1.lock().unwrap().clone();
        // The refused trial on the given curvature, then the start's own
        // Hessian, then Newton's steps; the start itself took a gradient pass.
        assert!(points.len() >= 3, "{points:?}");
        assert!(
            (points[0][0] / (start[0] / std::f64::consts::E) - 1.0).abs() < 0.05,
            "{points:?}"
        );
        let at_start =
            |p: &[f64]| (0..2).all(|i| (p[i] - start[i]).abs() <= 1e-12 * start[i].abs());
        assert!(!at_start(&points[0]) && at_start(&points[1]), "{points:?}");
        assert_eq!(points.len() as u64 + 1, res.n_evaluations, "{res:?}");
        for (a, b) in res.params.iter().zip(&plain.params) {
            assert!(
                (a - b).abs() < 1e-7,
                "{:?} vs {:?}",
                res.params,
                plain.params
            );
        }
        assert!(
            (res.log_likelihood - plain.log_likelihood).abs() < 1e-9 * plain.log_likelihood.abs()
        );
        let (cov, want) = (
            res.covariance.as_ref().unwrap(),
            plain.covariance.as_ref().unwrap(),
        );
        for i in 0..2 {
            for j in 0..2 {
                assert!(
                    (cov[[i, j]] - want[[i, j]]).abs() <= 1e-6 * want[[i, i]].abs(),
                    "{cov:?} vs {want:?}"
                );
            }
        }
    }

    /// Both stagings of [`fit_in_stages`] take the subsample route and reach the direct fit's
    /// optimum and covariance; a caller's start (or too small a stride) fits directly.
    #[test]
    fn staged_fits_reach_the_direct_optimum() {
        let values: Vec<f64> = (0..3000)
            .map(|i| ((i * 7919) % 1000) as f64 / 100.0 - 3.0)
            .collect();
        let data = Normal { values };
        let every = |d: &Normal, stride: usize| Normal {
            values: d.values.iter().step_by(stride).copied().collect(),
        };
        let on = |d: &Normal, o: &FitOptions<'_>| {
            fit(
                &NormalFused(
                    Normal {
                        values: d.values.clone(),
                    },
                    AtomicU64::new(0),
                ),
                o,
            )
        };
        let opts = FitOptions {
            gradient_tolerance: 1e-10,
            ..FitOptions::default()
        };
        let direct = fit(&data, &opts).unwrap();
        let newton = FitOptions {
            newton: true,
            ..opts.clone()
        };
        let cases = [
            (
                Staging {
                    stride: Some(7),
                    ..Staging::cold()
                },
                &opts,
                true,
            ),
            (
                Staging {
                    start: Some(vec![11.0, 2.0]),
                    stride: Some(7),
                    seed_stage: false,
                    full_step_on_sample_curvature: true,
                    newton_on_sample: false,
                },
                &newton,
                true,
            ),
            (
                Staging {
                    start: Some(vec![11.0, 2.0]),
                    stride: Some(7),
                    newton_on_sample: true,
                    ..Staging::default()
                },
                &opts,
                true,
            ),
            (
                Staging {
                    stride: Some(1),
                    ..Staging::cold()
                },
                &opts,
                false,
            ),
        ];
        for (case, (staging, o, staged)) in cases.iter().enumerate() {
            let res = fit_in_stages(&data, 3000, every, on, o, staging).unwrap();
            assert_eq!(res.through_subsample, *staged, "{case}");
            let r = res.result;
            assert!(r.converged, "{case}: {}", r.termination);
            for (a, b) in r.params.iter().zip(&direct.params) {
                assert!(
                    (a - b).abs() < 1e-7,
                    "{case}: {:?} vs {:?}",
                    r.params,
                    direct.params
                );
            }
            let (cov, want) = (r.covariance.unwrap(), direct.covariance.clone().unwrap());
            for i in 0..2 {
                assert!((cov[[i, i]] / want[[i, i]] - 1.0).abs() < 1e-6, "{case}");
            }
        }
        let given = FitOptions {
            start: Some(vec![12.0, 3.0]),
            ..opts.clone()
        };
        let staging = Staging {
            stride: Some(7),
            ..Staging::cold()
        };
        let res = fit_in_stages(&data, 3000, every, on, &given, &staging).unwrap();
        assert!(!res.through_subsample && res.result.converged);
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
}
