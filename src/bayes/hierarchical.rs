//! Partial pooling across segments: one model per segment whose unconstrained parameters come
//! from a population distribution, sampled jointly by the same NUTS driver ([`super::sample`]).
//!
//! For a model with parameters `theta_j` on domains `D_j` (log for positive parameters, logit
//! for probabilities, identity for coefficients: `u = D_j(theta)`), segment `s` has
//!
//! ```text
//! u_sj = mu_j + sigma_j z_sj,   z_sj ~ Normal(0, 1),   theta_sj = D_j^-1(u_sj),
//! mu_j ~ Normal(m_j, 2),        sigma_j ~ HalfNormal(1),
//! ```
//!
//! sampled in a partially non-centred parameterisation: the sampler moves `t_sj` with
//! `u_sj = w_sj mu_j + sigma_j^w_sj t_sj`, where `w_sj = 1` is the non-centred form (`t = z`),
//! which has no funnel between `sigma` and the parameters of segments that carry little
//! information, and `w_sj` near 0 the centred form (`t = u`), which has no strong correlation
//! between `z` and `(mu, sigma)` for segments whose data pin the parameter down (there the
//! non-centred form takes a hundred leapfrog steps per draw where the centred takes a few).
//! `w_sj` is chosen per segment and parameter from the segment's information (see
//! `choose_centring`); the model, and so the posterior, is the same for any choice. The
//! log density sums each segment's own likelihood pass over its compressed rows
//! ([`Likelihood::loglik_and_gradient`]), segments in parallel on the crate's pool and summed
//! in segment order, so the draws are bit-identical for any thread count.
//!
//! The hierarchy is itself a [`Likelihood`] (parameters `mu`, `sigma`, `t`; the population
//! priors and a `Normal(0, 1)` on every `t` are prior terms, the likelihood adds the rest of
//! the population density of partially centred coordinates), so sampling, the starting point,
//! the Jacobians of `sigma`'s log transform and the chains' seeding are the single-model
//! driver's, unchanged.
//!
//! Default population priors, and why:
//! - `mu_j ~ Normal(m_j, 2)` with `m_j` the unconstrained starting value of the largest
//!   segment (the model's own data-derived start): the same weakly informative
//!   `LogNormal(ln s, 2)` the single-model fits put on a positive parameter, now on the
//!   population's centre; in any time or currency unit it says the same.
//! - `sigma_j ~ HalfNormal(1)`: a spread of 1 on the log scale is a factor of e between
//!   segments one standard deviation apart; the prior leaves factors of 10 to 20 (sigma 2.3 to
//!   3) plausible but has its mode at 0 (no difference between segments), so segments the
//!   data cannot tell apart are pooled. Gelman (2006, "Prior distributions for variance
//!   parameters in hierarchical models") advises half-normal or half-t priors on a group
//!   spread over the inverse-gamma(eps, eps) that is informative near 0 and makes the
//!   posterior depend on eps; PyMC-Marketing's hierarchical examples use HalfNormal too.

use crate::error::{ClvError, Result};
use ndarray::Array2;

use crate::fit::linalg::cholesky_inverse;
use crate::fit::{Domain, FitOptions, Likelihood, ParamSpec};
use crate::parallel::Exec;

use super::prior::{Prior, PriorTerm};
use super::{sample_in, Frame, PosteriorDraws, SampleOptions};

/// Standard deviation of the default Normal prior on each population mean (unconstrained
/// scale).
pub const MEAN_PRIOR_SD: f64 = 2.0;

/// Scale of the default HalfNormal prior on each population spread (unconstrained scale).
pub const SPREAD_PRIOR_SD: f64 = 1.0;

/// The population spread (unconstrained scale) assumed when choosing how centred each
/// segment's coordinates are: half the prior's scale, a moderate difference between segments.
const TYPICAL_SPREAD: f64 = 0.5;

/// Starting population spread (unconstrained scale) of the mode search.
const START_SPREAD: f64 = 0.3;

/// One model per segment with its unconstrained parameters drawn from a population.
pub struct Hierarchical<'a, L: Likelihood> {
    segments: &'a [L],
    /// The segment model's parameters.
    base: Vec<ParamSpec>,
    /// `mu` (k), `sigma` (k), `z` (segments x k, segment-major).
    specs: Vec<ParamSpec>,
    /// How non-centred each segment parameter's coordinate is (segment-major, in [0, 1]):
    /// 1 for segments that say little about it, towards 0 for those that pin it down.
    centring: Vec<f64>,
}

impl<'a, L: Likelihood> Hierarchical<'a, L> {
    /// The hierarchy over `segments` (at least two, all of the same model).
    pub fn new(segments: &'a [L]) -> Result<Self> {
        if segments.len() < 2 {
            return Err(ClvError::invalid_parameter(
                "pooling",
                format!(
                    "partial pooling needs at least 2 segments to estimate a population from, \
                     got {}",
                    segments.len()
                ),
            ));
        }
        let base = segments[0].params().to_vec();
        let k = base.len();
        let mut specs = Vec::with_capacity(k * (2 + segments.len()));
        specs.extend((0..k).map(|_| ParamSpec {
            name: "mu",
            domain: Domain::Real,
        }));
        specs.extend((0..k).map(|_| ParamSpec {
            name: "sigma",
            domain: Domain::Positive,
        }));
        specs.extend((0..k * segments.len()).map(|_| ParamSpec {
            name: "z",
            domain: Domain::Real,
        }));
        let mut model = Hierarchical {
            segments,
            base,
            specs,
            centring: vec![1.0; k * segments.len()],
        };
        model.centring = model.choose_centring();
        Ok(model)
    }

    /// The centring weight of each segment parameter: `1 / (1 + s^2 I)` with `I` the
    /// segment's information about the unconstrained parameter (minus the second derivative
    /// of its log-likelihood at the population centre, by differencing the analytic gradient)
    /// and `s` a typical population spread ([`TYPICAL_SPREAD`]): the weight that makes the
    /// sampled coordinate's conditional posterior independent of the population's in the
    /// Gaussian case (Papaspiliopoulos, Roberts and Skold 2007; Gorinova, Moore and Hoffman
    /// 2020, "Automatic reparameterisation of probabilistic programs"). Non-centred (1) where
    /// the data are weak, which avoids the funnel; centred (near 0) where they are strong,
    /// which avoids the strong correlation between `z` and `(mu, sigma)` that makes a
    /// non-centred sampler take hundreds of steps per draw on large segments.
    fn choose_centring(&self) -> Vec<f64> {
        let k = self.k();
        let centre = self.centre();
        let gradient_in_u = |s: usize, u: &[f64]| -> Option<Vec<f64>> {
            let theta: Vec<f64> = self
                .base
                .iter()
                .zip(u)
                .map(|(spec, &v)| spec.domain.to_natural(v))
                .collect();
            if theta
                .iter()
                .zip(&self.base)
                .any(|(&t, spec)| !spec.domain.contains(t))
            {
                return None;
            }
            let (_, g) = self.segments[s].loglik_and_gradient(&theta, &Exec::Serial);
            let du: Vec<f64> = self
                .base
                .iter()
                .zip(theta.iter().zip(g))
                .map(|(spec, (&t, g))| g * spec.domain.jacobian(t))
                .collect();
            du.iter().all(|v| v.is_finite()).then_some(du)
        };
        const STEP: f64 = 1e-4;
        let mut out = Vec::with_capacity(k * self.segments.len());
        for s in 0..self.segments.len() {
            let at = gradient_in_u(s, &centre);
            for j in 0..k {
                let mut moved = centre.clone();
                moved[j] += STEP;
                let information = match (&at, gradient_in_u(s, &moved)) {
                    (Some(g0), Some(g1)) => (g0[j] - g1[j]) / STEP,
                    _ => 0.0,
                };
                let information = if information.is_finite() {
                    information.max(0.0)
                } else {
                    0.0
                };
                out.push(1.0 / (1.0 + TYPICAL_SPREAD * TYPICAL_SPREAD * information));
            }
        }
        out
    }

    fn k(&self) -> usize {
        self.base.len()
    }

    /// Segment `s`'s natural parameters at the hierarchy's parameters `p`.
    fn segment_params(&self, p: &[f64], s: usize) -> Vec<f64> {
        self.base
            .iter()
            .enumerate()
            .map(|(j, spec)| spec.domain.to_natural(self.unconstrained(p, s, j)))
            .collect()
    }

    /// Segment `s`'s unconstrained parameter `j`: `u = w mu + sigma^w t` for the sampled
    /// coordinate `t` and centring weight `w` (`mu + sigma t` non-centred, `t` centred).
    fn unconstrained(&self, p: &[f64], s: usize, j: usize) -> f64 {
        let k = self.k();
        let w = self.centring[s * k + j];
        let (mu, sigma, t) = (p[j], p[k + j], p[2 * k + s * k + j]);
        w * mu + sigma.powf(w) * t
    }

    /// The population centre `m` (unconstrained): the largest segment's own first start.
    fn centre(&self) -> Vec<f64> {
        let largest = self
            .segments
            .iter()
            .enumerate()
            .max_by(|a, b| a.1.total_weight().total_cmp(&b.1.total_weight()))
            .map_or(0, |(i, _)| i);
        let start = self.segments[largest]
            .starts()
            .into_iter()
            .next()
            .unwrap_or_else(|| vec![1.0; self.k()]);
        self.base
            .iter()
            .zip(start)
            .map(|(spec, t)| spec.domain.to_unconstrained(t))
            .collect()
    }

    /// The frame the chains are whitened by ([`Frame`]), built from each segment's own fit
    /// rather than the joint mode (which a hierarchy may not have: the density grows without
    /// bound as a spread shrinks to 0 with its segments' coordinates at the population mean).
    /// Segment `s`'s maximum-likelihood estimate `v_s` with Hessian `H_s` (unconstrained)
    /// gives the population centre `mu_j` (mean of the `v_sj`) and spread `sigma_j` (their
    /// standard deviation, clamped to [0.05, 1]); with the population density as a Gaussian
    /// prior, the segment's posterior is about `Normal(P^-1 (H_s v_s + mu / sigma^2), P^-1)`
    /// with `P = H_s + diag(sigma^-2)`, mapped to the sampled coordinates `t = (u - w mu) /
    /// sigma^w`: one block per segment, its parameters' correlations included (BG/NBD's `a`
    /// and `b`, `r` and `alpha`, which a diagonal mass matrix cannot undo). The population's
    /// own coordinates get their standard errors, `sigma / sqrt(S)` for the means and
    /// `1 / sqrt(2 S)` for the log spreads, and no correlations. A segment whose fit failed
    /// contributes nothing (`H_s = 0`: its block is the population's). Each fit runs serially,
    /// so the frame is the same for any thread count.
    pub(crate) fn frame(&self, exec: &Exec) -> Frame {
        let k = self.k();
        let n = self.segments.len();
        let centre = self.centre();
        let ids: Vec<usize> = (0..n).collect();
        let fits: Vec<Option<(Vec<f64>, Array2<f64>)>> = exec.map(&ids, |&s| {
            let fit = crate::fit::fit(&self.segments[s], &FitOptions::default()).ok()?;
            let cov = fit.covariance.as_ref()?;
            if !fit.converged {
                return None;
            }
            let jac: Vec<f64> = self
                .base
                .iter()
                .zip(&fit.params)
                .map(|(spec, &t)| spec.domain.jacobian(t))
                .collect();
            let cov_u = Array2::from_shape_fn((k, k), |(i, j)| cov[[i, j]] / (jac[i] * jac[j]));
            let information = cholesky_inverse(cov_u.view())?;
            let v: Vec<f64> = self
                .base
                .iter()
                .zip(&fit.params)
                .map(|(spec, &t)| spec.domain.to_unconstrained(t))
                .collect();
            v.iter().all(|x| x.is_finite()).then_some((v, information))
        });
        let fitted: Vec<&(Vec<f64>, Array2<f64>)> = fits.iter().flatten().collect();
        let (mut mu, mut sigma) = (centre.clone(), vec![TYPICAL_SPREAD; k]);
        if fitted.len() >= 2 {
            let m = fitted.len() as f64;
            for j in 0..k {
                mu[j] = fitted.iter().map(|(v, _)| v[j]).sum::<f64>() / m;
                let var = fitted
                    .iter()
                    .map(|(v, _)| (v[j] - mu[j]).powi(2))
                    .sum::<f64>()
                    / (m - 1.0);
                sigma[j] = var.sqrt().clamp(0.05, 1.0);
            }
        }
        let dim = self.specs.len();
        let mut point = Vec::with_capacity(dim);
        point.extend_from_slice(&mu);
        point.extend_from_slice(&sigma);
        let mut covariance = Array2::zeros((dim, dim));
        for j in 0..k {
            covariance[[j, j]] = sigma[j] * sigma[j] / n as f64;
            covariance[[k + j, k + j]] = 1.0 / (2.0 * n as f64);
        }
        for (s, fit) in fits.iter().enumerate() {
            // The segment's approximate posterior in u: precision P, mean P^-1 b.
            let mut precision = Array2::zeros((k, k));
            let mut b: Vec<f64> = (0..k).map(|j| mu[j] / (sigma[j] * sigma[j])).collect();
            if let Some((v, h)) = fit {
                precision += h;
                for i in 0..k {
                    b[i] += (0..k).map(|j| h[[i, j]] * v[j]).sum::<f64>();
                }
            }
            for j in 0..k {
                precision[[j, j]] += 1.0 / (sigma[j] * sigma[j]);
            }
            let cov_u = cholesky_inverse(precision.view()).unwrap_or_else(|| {
                Array2::from_shape_fn(
                    (k, k),
                    |(i, j)| {
                        if i == j {
                            sigma[j] * sigma[j]
                        } else {
                            0.0
                        }
                    },
                )
            });
            let offset = 2 * k + s * k;
            for i in 0..k {
                let u: f64 = (0..k).map(|j| cov_u[[i, j]] * b[j]).sum();
                let w = self.centring[s * k + i];
                let u = if u.is_finite() { u } else { mu[i] };
                point.push((u - w * mu[i]) / sigma[i].powf(w));
                for j in 0..k {
                    // dt / du = sigma^-w, per coordinate.
                    let scale = sigma[i].powf(-w) * sigma[j].powf(-self.centring[s * k + j]);
                    covariance[[offset + i, offset + j]] = cov_u[[i, j]] * scale;
                }
            }
        }
        Frame {
            centre: point,
            covariance,
        }
    }

    /// The default priors: `Normal(m_j, 2)` on `mu_j`, `HalfNormal(1)` on `sigma_j`, and the
    /// `Normal(0, 1)` of every `z`; `overrides` (indices into `mu`, `sigma`) replace defaults.
    pub fn priors(&self, overrides: &[PriorTerm]) -> Result<Vec<PriorTerm>> {
        let k = self.k();
        let centre = self.centre();
        let mut terms: Vec<PriorTerm> = (0..self.specs.len())
            .map(|i| PriorTerm::Single {
                index: i,
                prior: if i < k {
                    Prior::Normal {
                        mu: centre[i],
                        sigma: MEAN_PRIOR_SD,
                    }
                } else if i < 2 * k {
                    Prior::HalfNormal {
                        sigma: SPREAD_PRIOR_SD,
                    }
                } else {
                    Prior::Normal {
                        mu: 0.0,
                        sigma: 1.0,
                    }
                },
            })
            .collect();
        for term in overrides {
            let index = match *term {
                PriorTerm::Single { index, .. } if index < 2 * k => index,
                _ => {
                    return Err(ClvError::invalid_parameter(
                        "priors",
                        "with partial pooling only the population means and spreads take \
                         priors (one distribution each)",
                    ))
                }
            };
            term.check(&self.specs)?;
            terms[index] = *term;
        }
        Ok(terms)
    }
}

impl<L: Likelihood> Likelihood for Hierarchical<'_, L> {
    fn params(&self) -> &[ParamSpec] {
        &self.specs
    }

    fn starts(&self) -> Vec<Vec<f64>> {
        let k = self.k();
        let mut start = self.centre();
        start.extend(std::iter::repeat_n(START_SPREAD, k));
        start.extend(std::iter::repeat_n(0.0, k * self.segments.len()));
        vec![start]
    }

    fn total_weight(&self) -> f64 {
        self.segments.iter().map(|s| s.total_weight()).sum()
    }

    fn loglik_and_gradient(&self, p: &[f64], exec: &Exec) -> (f64, Vec<f64>) {
        let k = self.k();
        let ids: Vec<usize> = (0..self.segments.len()).collect();
        // Each segment's log-likelihood and its gradient in the segment's unconstrained
        // parameters u (chain rule through the inverse transform); summed below in segment
        // order whatever the threads.
        let parts = exec.map(&ids, |&s| {
            let theta = self.segment_params(p, s);
            if theta
                .iter()
                .zip(&self.base)
                .any(|(&t, spec)| !spec.domain.contains(t))
            {
                return (f64::NAN, vec![0.0; k]);
            }
            let (ll, g) = self.segments[s].loglik_and_gradient(&theta, exec);
            let du = self
                .base
                .iter()
                .zip(theta.iter().zip(g))
                .map(|(spec, (&t, g))| g * spec.domain.jacobian(t))
                .collect::<Vec<f64>>();
            (ll, du)
        });
        // With u = w mu + sigma^w t and e = (u - mu) / sigma, the population density of u in t
        // is log N(t; (1 - w) mu sigma^-w, sigma^(1 - w)) = -e^2 / 2 - (1 - w) ln sigma (+
        // const). The prior terms give every t a Normal(0, 1) (the non-centred case, w = 1);
        // the difference is added here: -e^2 / 2 + t^2 / 2 - (1 - w) ln sigma.
        let mut total = 0.0;
        let mut grad = vec![0.0; p.len()];
        for (s, (ll, du)) in parts.into_iter().enumerate() {
            total += ll;
            for j in 0..k {
                let w = self.centring[s * k + j];
                let (mu, sigma) = (p[j], p[k + j]);
                let ti = 2 * k + s * k + j;
                let t = p[ti];
                let sigma_w = sigma.powf(w);
                let u = w * mu + sigma_w * t;
                let e = (u - mu) / sigma;
                let du_dsigma = w * sigma_w / sigma * t;
                total += -0.5 * e * e + 0.5 * t * t - (1.0 - w) * sigma.ln();
                grad[j] += du[j] * w - e * (w - 1.0) / sigma;
                grad[k + j] += du[j] * du_dsigma - e * (du_dsigma - e) / sigma - (1.0 - w) / sigma;
                grad[ti] = du[j] * sigma_w - e * sigma_w / sigma + t;
            }
        }
        (total, grad)
    }
}

/// Draws of a partial-pooling fit: population means and spreads (unconstrained scale) and
/// every segment's parameters (natural scale).
#[derive(Debug, Clone, PartialEq)]
pub struct PooledDraws {
    /// The joint sample; its `values` columns are `mu` (k), `sigma` (k), then segment `s`'s
    /// natural parameters (k each, segment-major), and its `priors` the population terms only.
    pub draws: PosteriorDraws,
    pub n_segments: usize,
    /// Parameters per segment.
    pub k: usize,
}

/// Sample the partial-pooling posterior of `segments` (one likelihood each, same model).
/// `overrides` are prior terms on the population parameters (index `j` is `mu_j`, `k + j`
/// is `sigma_j`).
pub fn sample_pooled<L: Likelihood>(
    segments: &[L],
    overrides: &[PriorTerm],
    opts: &SampleOptions<'_>,
) -> Result<PooledDraws> {
    let model = Hierarchical::new(segments)?;
    let priors = model.priors(overrides)?;
    let frame = model.frame(&opts.exec);
    let mut draws = sample_in(&model, &priors, opts, Some(frame))?;
    let k = model.k();
    let n_segments = segments.len();
    let names: Vec<String> = model.base.iter().map(|s| s.name.to_string()).collect();
    let scale = |d: Domain| match d {
        Domain::Positive => "log_",
        Domain::UnitInterval => "logit_",
        Domain::Real => "",
    };
    let mut out_names: Vec<String> = Vec::with_capacity(k * (2 + n_segments));
    for prefix in ["mu", "sigma"] {
        out_names.extend(
            model
                .base
                .iter()
                .zip(&names)
                .map(|(s, n)| format!("{prefix}_{}{n}", scale(s.domain))),
        );
    }
    for s in 0..n_segments {
        out_names.extend(names.iter().map(|n| format!("{n}[{s}]")));
    }
    // z -> the segments' natural parameters, draw by draw.
    for mut row in draws.values.rows_mut() {
        let p = row.to_vec();
        for s in 0..n_segments {
            let theta = model.segment_params(&p, s);
            for j in 0..k {
                row[2 * k + s * k + j] = theta[j];
            }
        }
    }
    let centre = draws.initial_point.clone();
    draws.initial_point = (0..n_segments)
        .flat_map(|s| model.segment_params(&centre, s))
        .collect();
    draws.priors.retain(|t| t.indices()[0] < 2 * k);
    draws.names = out_names;
    Ok(PooledDraws {
        draws,
        n_segments,
        k,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Poisson counts per segment with rate `lambda_s`: the segment likelihood.
    struct Counts {
        counts: Vec<f64>,
    }

    static RATE: [ParamSpec; 1] = [ParamSpec {
        name: "lambda",
        domain: Domain::Positive,
    }];

    impl Likelihood for Counts {
        fn params(&self) -> &[ParamSpec] {
            &RATE
        }
        fn starts(&self) -> Vec<Vec<f64>> {
            let mean = self.counts.iter().sum::<f64>() / self.counts.len() as f64;
            vec![vec![mean.max(0.1)]]
        }
        fn total_weight(&self) -> f64 {
            self.counts.len() as f64
        }
        fn loglik_and_gradient(&self, p: &[f64], exec: &Exec) -> (f64, Vec<f64>) {
            let lambda = p[0];
            let acc = exec.chunked_sum(self.counts.len(), 2, |range, acc| {
                for &x in &self.counts[range] {
                    acc[0] += x * lambda.ln() - lambda;
                    acc[1] += x / lambda - 1.0;
                }
            });
            (acc[0], vec![acc[1]])
        }
    }

    /// Segments with rates spread around 2 on the log scale; `sizes` customers each.
    fn segments(sizes: &[usize]) -> Vec<Counts> {
        sizes
            .iter()
            .enumerate()
            .map(|(s, &n)| {
                let rate = 2.0 * (0.4 * ((s as f64) * 1.7).sin()).exp();
                let mut rng = crate::random::Rng::for_stream(17, s as u64);
                // Poisson counts: arrivals of a rate-`rate` process in unit time.
                let mut poisson = || {
                    let (mut t, mut x) = (rng.exponential(rate), 0.0);
                    while t < 1.0 {
                        x += 1.0;
                        t += rng.exponential(rate);
                    }
                    x
                };
                Counts {
                    counts: (0..n).map(|_| poisson()).collect(),
                }
            })
            .collect()
    }

    #[test]
    fn gradient_matches_finite_differences() {
        // Sizes from 2 to 5,000: centring weights from 1/2 (weak data) to near 0 (strong).
        let segs = segments(&[30, 2, 5000]);
        let model = Hierarchical::new(&segs).unwrap();
        let w = &model.centring;
        assert!(w[1] > w[0] && w[0] > w[2] && w[2] < 0.01, "{w:?}");
        let p = [0.6, 0.4, -0.3, 1.2, 0.5];
        let (_, g) = model.loglik_and_gradient(&p, &Exec::Serial);
        for j in 0..p.len() {
            let (mut up, mut down) = (p, p);
            up[j] += 1e-6;
            down[j] -= 1e-6;
            let fd = (model.loglik_and_gradient(&up, &Exec::Serial).0
                - model.loglik_and_gradient(&down, &Exec::Serial).0)
                / 2e-6;
            // (Rounding in a log-likelihood of 10^4 limits the differences to about 1e-5.)
            assert!(
                (fd - g[j]).abs() < 1e-4 * (1.0 + g[j].abs()),
                "{j}: {fd} vs {}",
                g[j]
            );
        }
    }

    #[test]
    fn frame_centres_segments_at_their_shrunk_estimates() {
        // Two large segments keep their own rates; the 3-customer one is pulled toward the
        // population; the covariance is positive definite (a valid whitening).
        let segs = segments(&[2000, 2000, 3]);
        let model = Hierarchical::new(&segs).unwrap();
        let frame = model.frame(&Exec::Serial);
        assert!(super::super::posterior::Whitening::laplace(
            frame.centre.clone(),
            frame.covariance.view()
        )
        .is_some());
        let own = |s: usize| segs[s].counts.iter().sum::<f64>() / segs[s].counts.len() as f64;
        let sigma = frame.centre[1];
        let at = |s: usize| model.segment_params(&frame.centre, s)[0];
        for s in 0..2 {
            assert!(
                (at(s) / own(s) - 1.0).abs() < 0.01,
                "{s}: {} vs {}",
                at(s),
                own(s)
            );
        }
        let centre = frame.centre[0].exp();
        assert!(sigma > 0.0 && (at(2) - centre).abs() < (own(2) - centre).abs());
        // The same frame whatever the threads.
        let pooled = model.frame(&Exec::with_jobs(Some(2)).unwrap());
        assert_eq!(pooled.centre, frame.centre);
        assert_eq!(pooled.covariance, frame.covariance);
    }

    #[test]
    fn one_segment_is_refused_and_priors_cover_population_only() {
        let segs = segments(&[30]);
        assert!(matches!(
            Hierarchical::new(&segs),
            Err(ClvError::InvalidParameter { .. })
        ));
        let segs = segments(&[30, 40]);
        let model = Hierarchical::new(&segs).unwrap();
        let on_z = PriorTerm::Single {
            index: 2,
            prior: Prior::Normal {
                mu: 0.0,
                sigma: 1.0,
            },
        };
        assert!(model.priors(&[on_z]).is_err());
        let on_sigma = PriorTerm::Single {
            index: 1,
            prior: Prior::HalfNormal { sigma: 0.5 },
        };
        assert_eq!(model.priors(&[on_sigma]).unwrap()[1], on_sigma);
        // A prior outside the parameter's domain is refused.
        let bad = PriorTerm::Single {
            index: 1,
            prior: Prior::Normal {
                mu: 0.0,
                sigma: 1.0,
            },
        };
        assert!(model.priors(&[bad]).is_err());
    }

    #[test]
    fn small_segments_shrink_and_draws_do_not_depend_on_threads() {
        // Two large segments and one of 3 customers: its posterior mean lies between its own
        // mean count and the population's, and the large ones keep their own.
        let segs = segments(&[2000, 2000, 3]);
        let run = |jobs: i64| {
            let opts = SampleOptions {
                chains: 2,
                draws: 300,
                tune: 300,
                seed: 3,
                exec: Exec::with_jobs(Some(jobs)).unwrap(),
                ..SampleOptions::default()
            };
            sample_pooled(&segs, &[], &opts).unwrap()
        };
        let one = run(1);
        assert_eq!(one, run(2));
        let d = &one.draws;
        assert_eq!(d.values.ncols(), 2 + 3);
        assert_eq!(d.names[0], "mu_log_lambda");
        assert_eq!(d.names[4], "lambda[2]");
        let mean = |c: usize| d.values.column(c).mean().unwrap();
        for s in 0..2 {
            let own = segs[s].counts.iter().sum::<f64>() / 2000.0;
            assert!((mean(2 + s) / own - 1.0).abs() < 0.03, "{s}");
        }
        assert_eq!(d.priors.len(), 2);
        // The 3-customer segment is pulled from its own mean toward the population's centre.
        let own = segs[2].counts.iter().sum::<f64>() / 3.0;
        let centre = mean(0).exp();
        let pooled = mean(4);
        assert!(
            (pooled - centre).abs() < 0.8 * (own - centre).abs(),
            "{pooled} vs own {own}, population {centre}"
        );
    }
}
