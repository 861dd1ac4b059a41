//! Bayesian fits: posterior draws by the No-U-Turn Sampler of the `nuts-rs` crate (the engine
//! of nutpie; not written here) over a model's own likelihood pass.
//!
//! A model's [`Likelihood`] (weighted log-likelihood and analytic gradient over compressed
//! rows, on the crate's pool) plus a log prior ([`prior`]) plus the log-Jacobian of the
//! unconstrained transforms (log for positive parameters, logit for probabilities) is the
//! density nuts-rs samples ([`posterior`]). Chains run in parallel on the crate's pool; chain
//! `c` takes its sampler randomness from a ChaCha8 generator seeded with `seed` on stream
//! `c + 1` (as nuts-rs's own driver does) and its starting jitter from stream `c` of the
//! crate's generator, and the likelihood sums are bit-identical for any thread count, so the
//! draws of every chain depend on `seed` and the chain index only.
//!
//! Chains move in coordinates whitened by the Laplace approximation at the posterior mode
//! (found by the maximum-likelihood engine with the log prior added): `u = mode + L z`, with
//! `L L^T` the inverse Hessian there ([`posterior::Whitening`]), so that nuts-rs's adaptation,
//! which starts from a unit mass matrix, starts from a nearly standard normal posterior and
//! the correlations its diagonal mass matrix cannot undo are gone: shorter trajectories and a
//! warm-up that converges within a few draws. Draws are mapped back before they are stored.
//! Each chain starts at the mode jittered by a uniform draw in (-1, 1) on every whitened
//! coordinate (about one posterior standard deviation), so that R-hat can see chains that do
//! not mix.

pub mod bg_value;
pub mod hierarchical;
pub mod posterior;
pub mod predict;
pub mod prior;

use std::time::{Duration, Instant};

use ndarray::Array2;
use nuts_rs::rand::rngs::ChaCha8Rng;
use nuts_rs::rand::SeedableRng;
use nuts_rs::{Chain, CpuMath, DiagNutsSettings, KineticEnergyKind, Settings};

use crate::error::{ClvError, Result};
use crate::fit::{FitOptions, FusedPass, Likelihood, ParamSpec};
use crate::parallel::Exec;
use posterior::{Density, LogPosterior, Whitening};
pub use prior::{complete_priors, default_prior, Prior, PriorTerm};

/// Options of a posterior sample.
#[derive(Clone)]
pub struct SampleOptions<'a> {
    /// Number of chains (run in parallel).
    pub chains: usize,
    /// Draws kept per chain, after tuning.
    pub draws: u64,
    /// Tuning (warm-up) draws per chain: step size and diagonal mass matrix adaptation,
    /// discarded.
    pub tune: u64,
    /// Seed of every random choice (chain `c` uses streams derived from it and `c`).
    pub seed: u64,
    /// Maximum tree depth (at most `2^max_depth - 1` leapfrog steps per draw).
    pub max_depth: u64,
    /// Target mean acceptance statistic of the step-size adaptation.
    pub target_accept: f64,
    /// Where chains and likelihood sums run.
    pub exec: Exec,
    /// Polled a few times a second per chain; returning true stops with
    /// [`ClvError::Interrupted`].
    pub interrupt: Option<&'a (dyn Fn() -> bool + Sync)>,
}

impl Default for SampleOptions<'_> {
    fn default() -> Self {
        SampleOptions {
            chains: 4,
            draws: 1000,
            tune: 1000,
            seed: 0,
            max_depth: 10,
            target_accept: 0.8,
            exec: Exec::Serial,
            interrupt: None,
        }
    }
}

/// Posterior draws and the sampler's statistics per draw, chain-major: draw `d` of chain `c`
/// is row `c * draws + d`.
#[derive(Debug, Clone, PartialEq)]
pub struct PosteriorDraws {
    /// Parameter names, in order.
    pub names: Vec<String>,
    pub chains: usize,
    pub draws: usize,
    /// `(chains * draws) x k` draws on the natural scale.
    pub values: Array2<f64>,
    /// Log posterior density of each draw (unconstrained coordinates, up to a constant).
    pub log_density: Vec<f64>,
    /// Whether the trajectory of each draw diverged.
    pub diverging: Vec<bool>,
    /// Tree depth of each draw.
    pub tree_depth: Vec<u64>,
    /// Whether each draw hit the maximum tree depth.
    pub max_depth_reached: Vec<bool>,
    /// Leapfrog steps of each draw.
    pub n_steps: Vec<u64>,
    /// Step size of each draw (fixed after tuning, per chain).
    pub step_size: Vec<f64>,
    /// Hamiltonian energy of each draw (for the E-BFMI).
    pub energy: Vec<f64>,
    /// Divergences during tuning (not in the draws, but worth knowing).
    pub tuning_divergences: u64,
    /// The prior terms used, defaults included.
    pub priors: Vec<PriorTerm>,
    /// The point the chains were jittered around (natural scale): the posterior mode, or
    /// the model's starting point when no mode was found.
    pub initial_point: Vec<f64>,
    /// Whether `initial_point` is the posterior mode.
    pub initial_point_is_mode: bool,
    /// The options' maximum tree depth.
    pub max_depth: u64,
}

/// A model's likelihood with a log prior added (natural scale, no Jacobian): maximised by the
/// fitting engine, it gives the posterior mode.
struct WithPriors<'a, L: Likelihood> {
    lik: &'a L,
    priors: &'a [PriorTerm],
}

impl<L: Likelihood> Likelihood for WithPriors<'_, L> {
    fn params(&self) -> &[ParamSpec] {
        self.lik.params()
    }
    fn starts(&self) -> Vec<Vec<f64>> {
        self.lik.starts()
    }
    fn total_weight(&self) -> f64 {
        self.lik.total_weight()
    }
    fn loglik_and_gradient(&self, params: &[f64], exec: &Exec) -> (f64, Vec<f64>) {
        let (mut ll, mut grad) = self.lik.loglik_and_gradient(params, exec);
        for term in self.priors {
            if !term.add(params, &mut ll, &mut grad) {
                return (f64::NAN, grad);
            }
        }
        (ll, grad)
    }
    fn loglik_gradient_hessian(&self, _params: &[f64], _exec: &Exec) -> Option<FusedPass> {
        None
    }
    fn try_all_starts(&self) -> bool {
        self.lik.try_all_starts()
    }
}

/// The posterior mode (MAP) of `lik` under `priors` (parameters without a term get
/// [`default_prior`]): the fitting engine's optimiser on the log likelihood plus the log prior
/// on the natural scale (no Jacobian: the mode of the posterior density of the parameters
/// themselves, as PyMC's `find_MAP` gives). The covariance is the inverse Hessian of the log
/// posterior at the mode (the Laplace approximation). Returns the fit, with `log_likelihood`
/// the log-likelihood alone at the mode, the log posterior there (up to the evidence), and
/// the prior terms used.
pub fn posterior_mode<L: Likelihood>(
    lik: &L,
    priors: &[PriorTerm],
    opts: &FitOptions<'_>,
) -> Result<(crate::fit::FitResult, f64, Vec<PriorTerm>)> {
    let specs = lik.params();
    let first_start = lik
        .starts()
        .first()
        .cloned()
        .ok_or_else(|| ClvError::Internal("the model offered no starting point".into()))?;
    let priors = complete_priors(specs, priors, &first_start)?;
    let mut fit = crate::fit::fit(
        &WithPriors {
            lik,
            priors: &priors,
        },
        opts,
    )?;
    let log_posterior = fit.log_likelihood;
    fit.log_likelihood = lik.loglik_and_gradient(&fit.params, &opts.exec).0;
    Ok((fit, log_posterior, priors))
}

/// Salt of the starting-jitter streams (apart from any stream a simulation uses with the same
/// seed).
const JITTER_SALT: u64 = 0x6a09_e667_f3bc_c908;

/// Tries at a jittered starting point with a finite density before a chain starts at the
/// unjittered one.
const JITTER_TRIES: usize = 20;

/// How often a chain polls the interrupt check.
const POLL_EVERY: Duration = Duration::from_millis(200);

fn check_options(opts: &SampleOptions<'_>) -> Result<()> {
    let bad = |name: &str, rule: &str| Err(ClvError::invalid_parameter(name, rule.to_string()));
    if opts.chains == 0 || opts.chains > 1024 {
        return bad("chains", "must be a whole number from 1 to 1024");
    }
    if opts.draws == 0 {
        return bad("draws", "must be a whole number >= 1");
    }
    if !(opts.target_accept > 0.0 && opts.target_accept < 1.0) {
        return bad("target_accept", "must lie strictly between 0 and 1");
    }
    if opts.max_depth == 0 || opts.max_depth > 30 {
        return bad("max_depth", "must be a whole number from 1 to 30");
    }
    Ok(())
}

/// One chain's kept draws and statistics.
struct ChainDraws {
    values: Vec<f64>,
    log_density: Vec<f64>,
    diverging: Vec<bool>,
    tree_depth: Vec<u64>,
    max_depth_reached: Vec<bool>,
    n_steps: Vec<u64>,
    step_size: Vec<f64>,
    energy: Vec<f64>,
    tuning_divergences: u64,
}

fn sampler_error(e: impl std::fmt::Display) -> ClvError {
    ClvError::Convergence {
        reason: format!("the NUTS sampler stopped: {e}"),
    }
}

/// Draw from the posterior of `lik` under `priors` (parameters without a term get
/// [`default_prior`]).
pub fn sample<L: Likelihood>(
    lik: &L,
    priors: &[PriorTerm],
    opts: &SampleOptions<'_>,
) -> Result<PosteriorDraws> {
    sample_in(lik, priors, opts, None)
}

/// An approximation of a posterior that the chains are whitened by instead of the Laplace
/// approximation at the mode (for models whose joint mode search is not the way to one: a
/// hierarchy's). Any centre and positive definite covariance give a valid frame (whitening
/// only reparameterises); the closer to the posterior's, the fewer steps per draw.
pub(crate) struct Frame {
    /// The centre, natural scale.
    pub(crate) centre: Vec<f64>,
    /// The covariance in unconstrained coordinates.
    pub(crate) covariance: Array2<f64>,
}

/// How far along each whitened axis [`follows_laplace`] looks, in Laplace standard deviations.
const PROBE: f64 = 2.0;

/// How much the log density's fall there may differ from a standard normal's (`PROBE^2 / 2`),
/// relatively. Measured: CDNOW's BG/NBD posterior (PyMC-Marketing's priors), where the
/// exact-normal trajectories diverge, is 11% off on its first axis; 1M customers are within
/// 2.5% on every axis. 5% leaves both a margin.
const PROBE_TOLERANCE: f64 = 0.05;

/// Whether the posterior in the whitened coordinates of `whitening` falls off as a standard
/// normal does along every axis: at `PROBE` standard deviations either side of the centre the
/// log density is within `PROBE_TOLERANCE` of `PROBE^2 / 2` below its value at the centre
/// (`2 k` passes). True of a large sample's posterior, where the Laplace approximation is
/// accurate; false of a skewed one, or where the frame's scale was shrunk (a Laplace standard
/// deviation above 1).
fn follows_laplace<L: Likelihood>(posterior: &LogPosterior<'_, L>, whitening: &Whitening) -> bool {
    let k = whitening.centre.len();
    let (mut u, mut g) = (vec![0.0; k], vec![0.0; k]);
    let Some(at_centre) = posterior.log_density(&whitening.centre, &mut g) else {
        return false;
    };
    let mut z = vec![0.0; k];
    for i in 0..k {
        for side in [-PROBE, PROBE] {
            z[i] = side;
            whitening.to_unconstrained(&z, &mut u);
            let fall = posterior.log_density(&u, &mut g).map(|v| at_centre - v);
            let expected = 0.5 * PROBE * PROBE;
            if !fall.is_some_and(|f| (f / expected - 1.0).abs() <= PROBE_TOLERANCE) {
                return false;
            }
        }
        z[i] = 0.0;
    }
    true
}

/// [`sample`] whitened by `frame` when given (no mode search), else by the Laplace
/// approximation at the posterior mode.
pub(crate) fn sample_in<L: Likelihood>(
    lik: &L,
    priors: &[PriorTerm],
    opts: &SampleOptions<'_>,
    frame: Option<Frame>,
) -> Result<PosteriorDraws> {
    check_options(opts)?;
    let specs = lik.params();
    let k = specs.len();
    if !(lik.total_weight() > 0.0) {
        return Err(ClvError::invalid_data(
            "weights",
            None,
            None,
            "must have a positive total",
        ));
    }
    let starts = lik.starts();
    let first_start = starts
        .first()
        .cloned()
        .ok_or_else(|| ClvError::Internal("the model offered no starting point".into()))?;
    let priors = complete_priors(specs, priors, &first_start)?;
    let from_frame = frame.is_some();

    // The posterior mode as the chains' centre; the model's start when there is none (an
    // improper flat prior on a parameter the data do not pin down).
    let (centre, is_mode, covariance) = match frame {
        Some(frame) => (frame.centre, false, Some(frame.covariance)),
        None => {
            let with_priors = WithPriors {
                lik,
                priors: &priors,
            };
            let mode = crate::fit::fit(
                &with_priors,
                &FitOptions {
                    exec: opts.exec.clone(),
                    interrupt: opts.interrupt,
                    ..FitOptions::default()
                },
            );
            match mode {
                Err(ClvError::Interrupted) => return Err(ClvError::Interrupted),
                Ok(fit)
                    if fit.converged
                        && specs
                            .iter()
                            .zip(&fit.params)
                            .all(|(s, &t)| s.domain.contains(t)) =>
                {
                    // The fit's covariance is of the natural parameters, `J C J` with
                    // `J = diag(d theta / d u)`: `C` is the Laplace covariance in `u`.
                    let jac: Vec<f64> = specs
                        .iter()
                        .zip(&fit.params)
                        .map(|(s, &t)| s.domain.jacobian(t))
                        .collect();
                    let cov_u = fit.covariance.map(|cov| {
                        Array2::from_shape_fn((k, k), |(i, j)| cov[[i, j]] / (jac[i] * jac[j]))
                    });
                    (fit.params, true, cov_u)
                }
                _ => (first_start, false, None),
            }
        }
    };
    let posterior = LogPosterior {
        lik,
        specs,
        priors: &priors,
        exec: opts.exec.clone(),
    };
    let u0: Vec<f64> = specs
        .iter()
        .zip(&centre)
        .map(|(s, &t)| s.domain.to_unconstrained(t))
        .collect();
    let mut scratch = vec![0.0; k];
    if posterior.log_density(&u0, &mut scratch).is_none() {
        return Err(ClvError::Convergence {
            reason: format!(
                "the log posterior is not finite at the starting point {centre:?}: check that \
                 the priors' supports cover plausible values"
            ),
        });
    }
    let laplace = covariance.and_then(|cov_u| Whitening::laplace(u0.clone(), cov_u.view()));
    // Where the whitened posterior is close to a standard normal, nuts-rs's exact-normal
    // trajectories (the standard normal part of the Hamiltonian integrated exactly, a rotation
    // in each (position, velocity) plane; the leapfrog kicks carry only the rest) take fewer
    // steps than plain leapfrog, whose step must shrink with the dimension: about half on a
    // hierarchy's hundreds of coordinates. Where it is not (a skewed posterior: CDNOW's
    // BG/NBD under PyMC-Marketing's priors) the kicks diverge in the tails, so a single
    // model's Laplace frame must first pass `follows_laplace`; a hierarchy's frame is used as
    // it is (docs/design.md).
    let trajectory_kind = match &laplace {
        Some(w) if from_frame || (is_mode && follows_laplace(&posterior, w)) => {
            KineticEnergyKind::ExactNormal
        }
        _ => KineticEnergyKind::Euclidean,
    };
    let whitening = laplace.unwrap_or_else(|| Whitening::unit(u0.clone()));

    let mut settings = DiagNutsSettings {
        num_tune: opts.tune,
        num_draws: opts.draws,
        maxdepth: opts.max_depth,
        num_chains: opts.chains,
        seed: opts.seed,
        trajectory_kind,
        ..DiagNutsSettings::default()
    };
    settings.adapt_options.step_size_settings.target_accept = opts.target_accept;
    if trajectory_kind == KineticEnergyKind::ExactNormal {
        // A step of pi under the exact-normal rotation maps a standard normal's x to -x; half
        // of that is the longest useful step (nuts-rs's own setting for these trajectories).
        settings
            .adapt_options
            .step_size_settings
            .adapt_options
            .dual_average
            .max_step_size = std::f64::consts::FRAC_PI_2;
    }

    let run_chain = |&c: &usize| -> Result<ChainDraws> {
        // The start: the centre jittered by a uniform draw in (-1, 1) on every whitened
        // coordinate (about one Laplace standard deviation).
        let mut jitter = crate::random::Rng::for_stream(opts.seed ^ JITTER_SALT, c as u64);
        let mut init = vec![0.0; k];
        let (mut u, mut g) = (vec![0.0; k], vec![0.0; k]);
        for _ in 0..JITTER_TRIES {
            let trial: Vec<f64> = (0..k).map(|_| 2.0 * jitter.uniform() - 1.0).collect();
            whitening.to_unconstrained(&trial, &mut u);
            if posterior.log_density(&u, &mut g).is_some() {
                init = trial;
                break;
            }
        }
        let mut rng = ChaCha8Rng::seed_from_u64(opts.seed);
        rng.set_stream(c as u64 + 1);
        let math = CpuMath::new(Density::new(&posterior, &whitening));
        let mut chain = settings
            .new_chain(c as u64, math, &mut rng)
            .map_err(sampler_error)?;
        chain.set_position(&init).map_err(sampler_error)?;
        let n = opts.draws as usize;
        let mut out = ChainDraws {
            values: Vec::with_capacity(n * k),
            log_density: Vec::with_capacity(n),
            diverging: Vec::with_capacity(n),
            tree_depth: Vec::with_capacity(n),
            max_depth_reached: Vec::with_capacity(n),
            n_steps: Vec::with_capacity(n),
            step_size: Vec::with_capacity(n),
            energy: Vec::with_capacity(n),
            tuning_divergences: 0,
        };
        let mut polled = Instant::now();
        for i in 0..opts.tune + opts.draws {
            let (position, _, stats, progress) = chain.expanded_draw().map_err(sampler_error)?;
            if i < opts.tune {
                out.tuning_divergences += u64::from(progress.diverging);
            } else {
                whitening.to_unconstrained(&position, &mut u);
                out.values.extend(posterior.natural(&u));
                out.log_density.push(stats.point.logp);
                out.diverging.push(progress.diverging);
                out.tree_depth.push(stats.depth);
                out.max_depth_reached.push(stats.maxdepth_reached);
                out.n_steps.push(progress.num_steps);
                out.step_size.push(progress.step_size);
                out.energy.push(stats.point.energy);
            }
            if let Some(check) = opts.interrupt {
                if polled.elapsed() >= POLL_EVERY {
                    polled = Instant::now();
                    if check() {
                        return Err(ClvError::Interrupted);
                    }
                }
            }
        }
        Ok(out)
    };
    let chain_ids: Vec<usize> = (0..opts.chains).collect();
    let results = opts.exec.map(&chain_ids, run_chain);

    let n = opts.draws as usize;
    let rows = opts.chains * n;
    let mut draws = PosteriorDraws {
        names: specs.iter().map(|s| s.name.to_string()).collect(),
        chains: opts.chains,
        draws: n,
        values: Array2::zeros((rows, k)),
        log_density: Vec::with_capacity(rows),
        diverging: Vec::with_capacity(rows),
        tree_depth: Vec::with_capacity(rows),
        max_depth_reached: Vec::with_capacity(rows),
        n_steps: Vec::with_capacity(rows),
        step_size: Vec::with_capacity(rows),
        energy: Vec::with_capacity(rows),
        tuning_divergences: 0,
        priors,
        initial_point: centre,
        initial_point_is_mode: is_mode,
        max_depth: opts.max_depth,
    };
    let mut values = Vec::with_capacity(rows * k);
    for result in results {
        let c = result?;
        values.extend(c.values);
        draws.log_density.extend(c.log_density);
        draws.diverging.extend(c.diverging);
        draws.tree_depth.extend(c.tree_depth);
        draws.max_depth_reached.extend(c.max_depth_reached);
        draws.n_steps.extend(c.n_steps);
        draws.step_size.extend(c.step_size);
        draws.energy.extend(c.energy);
        draws.tuning_divergences += c.tuning_divergences;
    }
    draws.values = Array2::from_shape_vec((rows, k), values)
        .map_err(|e| ClvError::Internal(format!("draw layout: {e}")))?;
    Ok(draws)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fit::Domain;

    /// Poisson counts with a rate `lambda` and a beta-binomial-free success probability `p`:
    /// with a Gamma(a0, b0) prior on lambda and a Beta(c0, d0) prior on p the posterior is
    /// Gamma(a0 + sum x, b0 + n) x Beta(c0 + s, d0 + f), known exactly. The likelihood is
    /// summed over rows with the crate's chunked reduction so that thread counts are exercised.
    struct Conjugate {
        counts: Vec<f64>,
        successes: f64,
        failures: f64,
    }

    static CONJUGATE: [ParamSpec; 2] = [
        ParamSpec {
            name: "lambda",
            domain: Domain::Positive,
        },
        ParamSpec {
            name: "p",
            domain: Domain::UnitInterval,
        },
    ];

    impl Likelihood for Conjugate {
        fn params(&self) -> &[ParamSpec] {
            &CONJUGATE
        }
        fn starts(&self) -> Vec<Vec<f64>> {
            vec![vec![1.0, 0.5]]
        }
        fn total_weight(&self) -> f64 {
            self.counts.len() as f64
        }
        fn loglik_and_gradient(&self, p: &[f64], exec: &Exec) -> (f64, Vec<f64>) {
            let (lambda, q) = (p[0], p[1]);
            let acc = exec.chunked_sum(self.counts.len(), 2, |range, acc| {
                for &x in &self.counts[range] {
                    acc[0] += x * lambda.ln() - lambda;
                    acc[1] += x / lambda - 1.0;
                }
            });
            let (s, f) = (self.successes, self.failures);
            (
                acc[0] + s * q.ln() + f * (-q).ln_1p(),
                vec![acc[1], s / q - f / (1.0 - q)],
            )
        }
    }

    /// [`follows_laplace`]'s cases: two real parameters with a normal likelihood (means 1.5
    /// and 0.5, sds 0.2 and 0.3), or the first with the poisson rate of two events in unit
    /// exposure as the second (ln lambda's posterior is skewed).
    struct ProbeModel {
        skewed: bool,
    }

    static REAL_PAIR: [ParamSpec; 2] = [
        ParamSpec {
            name: "m",
            domain: Domain::Real,
        },
        ParamSpec {
            name: "v",
            domain: Domain::Real,
        },
    ];

    static REAL_AND_RATE: [ParamSpec; 2] = [
        ParamSpec {
            name: "m",
            domain: Domain::Real,
        },
        ParamSpec {
            name: "lambda",
            domain: Domain::Positive,
        },
    ];

    impl Likelihood for ProbeModel {
        fn params(&self) -> &[ParamSpec] {
            if self.skewed {
                &REAL_AND_RATE
            } else {
                &REAL_PAIR
            }
        }
        fn starts(&self) -> Vec<Vec<f64>> {
            vec![vec![1.0, 1.0]]
        }
        fn total_weight(&self) -> f64 {
            1.0
        }
        fn loglik_and_gradient(&self, p: &[f64], _exec: &Exec) -> (f64, Vec<f64>) {
            let z = (p[0] - 1.5) / 0.2;
            let (second, slope) = if self.skewed {
                (2.0 * p[1].ln() - p[1], 2.0 / p[1] - 1.0)
            } else {
                let w = (p[1] - 0.5) / 0.3;
                (-0.5 * w * w, -w / 0.3)
            };
            (-0.5 * z * z + second, vec![-z / 0.2, slope])
        }
    }

    #[test]
    fn the_probe_accepts_a_normal_posterior_and_refuses_a_skewed_one_or_a_misscaled_frame() {
        let posterior = |model: &'static ProbeModel| LogPosterior {
            lik: model,
            specs: model.params(),
            priors: &[],
            exec: Exec::Serial,
        };
        static NORMAL: ProbeModel = ProbeModel { skewed: false };
        static SKEWED: ProbeModel = ProbeModel { skewed: true };
        let frame = |centre: [f64; 2], sd: [f64; 2]| Whitening {
            centre: centre.to_vec(),
            factor: vec![sd[0], 0.0, 0.0, sd[1]],
        };
        // The exact frame of a normal posterior: accepted.
        assert!(follows_laplace(
            &posterior(&NORMAL),
            &frame([1.5, 0.5], [0.2, 0.3])
        ));
        // A frame twice as wide on one axis: the fall at 2 frame sds is 8, not 2: refused.
        assert!(!follows_laplace(
            &posterior(&NORMAL),
            &frame([1.5, 0.5], [0.4, 0.3])
        ));
        // ln lambda with lambda^2 e^-lambda and the log Jacobian: density e^(3u - e^u), mode
        // ln 3, Laplace sd 1/sqrt(3); at +-2 sds it falls by 3.06 and 1.41, not 2: refused.
        let laplace = [0.2, 1.0 / 3f64.sqrt()];
        assert!(!follows_laplace(
            &posterior(&SKEWED),
            &frame([1.5, 3f64.ln()], laplace)
        ));
    }

    fn conjugate() -> Conjugate {
        // 5,000 rows: more than one chunk of the parallel sums.
        Conjugate {
            counts: (0..5_000).map(|i| ((i * 7) % 5) as f64 * 0.01).collect(),
            successes: 7.0,
            failures: 13.0,
        }
    }

    fn conjugate_priors() -> Vec<PriorTerm> {
        vec![
            PriorTerm::Single {
                index: 0,
                prior: Prior::Gamma {
                    shape: 2.0,
                    rate: 3.0,
                },
            },
            PriorTerm::Single {
                index: 1,
                prior: Prior::Beta { a: 2.0, b: 2.0 },
            },
        ]
    }

    #[test]
    fn draws_match_a_known_posterior() {
        let model = conjugate();
        let opts = SampleOptions {
            seed: 11,
            ..SampleOptions::default()
        };
        let draws = sample(&model, &conjugate_priors(), &opts).unwrap();
        assert_eq!(draws.values.dim(), (4000, 2));
        // lambda | x ~ Gamma(2 + sum x, 3 + n); p | s, f ~ Beta(9, 15).
        let shape = 2.0 + model.counts.iter().sum::<f64>();
        let rate = 3.0 + model.counts.len() as f64;
        let (beta_a, beta_b) = (9.0, 15.0);
        let truths = [
            (shape / rate, shape.sqrt() / rate),
            (
                beta_a / (beta_a + beta_b),
                (beta_a * beta_b / ((beta_a + beta_b).powi(2) * (beta_a + beta_b + 1.0))).sqrt(),
            ),
        ];
        for (j, (mean, sd)) in truths.into_iter().enumerate() {
            let col = draws.values.column(j);
            let m = col.mean().unwrap();
            let s = col.std(1.0);
            // NUTS draws of such a posterior are nearly independent: 4000 draws give a Monte
            // Carlo standard error of sd / 63 or so; 5 such errors is a test that can fail.
            assert!(
                (m - mean).abs() < 5.0 * sd / 4000f64.sqrt() * 1.5,
                "{j}: {m} vs {mean}"
            );
            assert!((s / sd - 1.0).abs() < 0.08, "{j}: sd {s} vs {sd}");
        }
        assert_eq!(draws.diverging.iter().filter(|&&d| d).count(), 0);
        assert!(draws.initial_point_is_mode);
    }

    #[test]
    fn draws_are_bit_identical_for_any_thread_count_and_follow_the_seed() {
        let model = conjugate();
        let run = |jobs: i64, seed: u64| {
            let opts = SampleOptions {
                chains: 3,
                draws: 200,
                tune: 200,
                seed,
                exec: Exec::with_jobs(Some(jobs)).unwrap(),
                ..SampleOptions::default()
            };
            sample(&model, &conjugate_priors(), &opts).unwrap()
        };
        let one = run(1, 5);
        let two = run(2, 5);
        let three = run(3, 5);
        assert_eq!(one, two);
        assert_eq!(one, three);
        let other = run(2, 6);
        assert_ne!(one.values, other.values);
        // Chains differ from each other.
        let first = one.values.row(0).to_vec();
        assert_ne!(first, one.values.row(200).to_vec());
    }

    #[test]
    fn options_are_checked() {
        let model = conjugate();
        for opts in [
            SampleOptions {
                chains: 0,
                ..SampleOptions::default()
            },
            SampleOptions {
                draws: 0,
                ..SampleOptions::default()
            },
            SampleOptions {
                target_accept: 1.0,
                ..SampleOptions::default()
            },
        ] {
            assert!(matches!(
                sample(&model, &[], &opts),
                Err(ClvError::InvalidParameter { .. })
            ));
        }
    }

    #[test]
    fn posterior_mode_is_the_known_mode_with_the_laplace_covariance() {
        let model = conjugate();
        let (fit, log_posterior, priors) =
            posterior_mode(&model, &conjugate_priors(), &FitOptions::default()).unwrap();
        assert_eq!(priors.len(), 2);
        // lambda | x ~ Gamma(shape, rate): mode (shape - 1) / rate, and the curvature of the
        // log density there is -(shape - 1) / mode^2; p | s, f ~ Beta(9, 15): mode 8 / 22,
        // curvature -8 / p^2 - 14 / (1 - p)^2.
        let shape = 2.0 + model.counts.iter().sum::<f64>();
        let rate = 3.0 + model.counts.len() as f64;
        let lambda = (shape - 1.0) / rate;
        let p = 8.0 / 22.0;
        assert!(
            (fit.params[0] / lambda - 1.0).abs() < 1e-6,
            "{:?}",
            fit.params
        );
        assert!((fit.params[1] / p - 1.0).abs() < 1e-6, "{:?}", fit.params);
        let cov = fit.covariance.unwrap();
        let var_lambda = lambda * lambda / (shape - 1.0);
        let var_p = 1.0 / (8.0 / (p * p) + 14.0 / ((1.0 - p) * (1.0 - p)));
        assert!((cov[[0, 0]] / var_lambda - 1.0).abs() < 1e-4);
        assert!((cov[[1, 1]] / var_p - 1.0).abs() < 1e-4);
        assert!(cov[[0, 1]].abs() < 1e-9 * (var_lambda * var_p).sqrt().max(1e-300) + 1e-12);
        // The log-likelihood alone, and the log posterior above it by the log prior.
        let (ll, _) = model.loglik_and_gradient(&fit.params, &Exec::Serial);
        assert_eq!(fit.log_likelihood, ll);
        assert!(log_posterior != ll);
    }

    #[test]
    fn interrupt_stops_sampling() {
        let model = conjugate();
        let stop = || true;
        let opts = SampleOptions {
            interrupt: Some(&stop),
            ..SampleOptions::default()
        };
        assert_eq!(
            sample(&model, &conjugate_priors(), &opts).unwrap_err(),
            ClvError::Interrupted
        );
    }
}
