//! Individual-level hierarchical Bayes: Gibbs samplers over every customer's own latent rates,
//! in the structure of the papers' samplers.
//!
//! Each iteration updates every customer's latent quantities given the population parameters
//! (conditionally independent across customers, so they run in parallel on the crate's pool),
//! then the population parameters given the customers (conjugate updates). A customer's update
//! draws its randomness from its own stream, `Rng::for_stream(key(seed, chain, iteration),
//! customer)`, and the population's sufficient statistics are summed over fixed chunks in a
//! fixed order ([`Exec::chunked_sum`]), so the draws depend on the seed, the chain and the data
//! only: bit-identical for any thread count, and whether chains run in parallel or one after
//! the other.
//!
//! This module holds what every such model shares: the options, the per-draw random keys,
//! the univariate slice sampler (Neal 2003, stepping out and shrinkage), the conjugate update
//! of a multivariate normal regression with an inverse-Wishart covariance, and the chain
//! driver. [`abe`] is the hierarchical Pareto/NBD of Abe (2009).

pub mod abe;
pub mod ggg;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use nalgebra::{DMatrix, Matrix2};

use crate::error::{ClvError, Result};
use crate::parallel::Exec;
use crate::random::Rng;

/// Options of a hierarchical sample.
#[derive(Clone)]
pub struct HbOptions<'a> {
    /// Number of chains.
    pub chains: usize,
    /// Draws kept per chain (after tuning and thinning).
    pub draws: usize,
    /// Iterations discarded at the start of each chain (burn-in).
    pub tune: usize,
    /// Keep every `thin`-th iteration after tuning.
    pub thin: usize,
    /// Seed of every random choice.
    pub seed: u64,
    /// Per-customer draws kept for predictions, in total over the chains (spread evenly over
    /// the kept draws); the population parameters keep every draw.
    pub customer_draws: usize,
    /// Where chains and customer updates run.
    pub exec: Exec,
    /// Polled a few times a second; returning true stops with [`ClvError::Interrupted`].
    pub interrupt: Option<&'a (dyn Fn() -> bool + Sync)>,
    /// Counts finished iterations over every chain (for a progress display, which reads it
    /// from `interrupt`); out of `chains x (tune + draws x thin)`.
    pub progress: Option<&'a AtomicUsize>,
}

impl Default for HbOptions<'_> {
    fn default() -> Self {
        HbOptions {
            chains: 4,
            draws: 1000,
            tune: 1000,
            thin: 1,
            seed: 0,
            customer_draws: 400,
            exec: Exec::Serial,
            interrupt: None,
            progress: None,
        }
    }
}

impl HbOptions<'_> {
    pub(crate) fn check(&self) -> Result<()> {
        let bad = |name: &str, rule: &str| Err(ClvError::invalid_parameter(name, rule.to_string()));
        if self.chains == 0 || self.chains > 1024 {
            return bad("chains", "must be a whole number from 1 to 1024");
        }
        if self.draws == 0 {
            return bad("draws", "must be a whole number >= 1");
        }
        if self.thin == 0 {
            return bad("thin", "must be a whole number >= 1");
        }
        if self.customer_draws == 0 {
            return bad("customer_draws", "must be a whole number >= 1");
        }
        Ok(())
    }

    /// Every how many kept draws a chain stores the customers' draws, and how many it stores.
    pub(crate) fn customer_stride(&self) -> (usize, usize) {
        let total = self.chains * self.draws;
        let stride = total.div_ceil(self.customer_draws.min(total)).max(1);
        (stride, self.draws.div_ceil(stride))
    }
}

/// Salt of the sampler's random keys (apart from any other use of the same seed).
const KEY_SALT: u64 = 0x3c6e_f372_fe94_f82b;

/// The random key of iteration `iteration` of chain `chain`: customer `i` draws from
/// `Rng::for_stream(key, i)`, the population from `Rng::for_stream(key, u64::MAX)`.
pub(crate) fn iteration_key(seed: u64, chain: usize, iteration: usize) -> u64 {
    let stream = ((chain as u64) << 40) ^ iteration as u64;
    Rng::for_stream(seed ^ KEY_SALT, stream).next_u64()
}

/// How often a chain polls the interrupt check.
pub(crate) const POLL_EVERY: Duration = Duration::from_millis(200);

/// Counts iterations into `progress` and polls `interrupt` at most every [`POLL_EVERY`].
pub(crate) struct Poller<'a> {
    check: Option<&'a (dyn Fn() -> bool + Sync)>,
    done: Option<&'a AtomicUsize>,
    last: Instant,
}

impl<'a> Poller<'a> {
    pub(crate) fn new(opts: &HbOptions<'a>) -> Self {
        Poller {
            check: opts.interrupt,
            done: opts.progress,
            last: Instant::now(),
        }
    }

    /// Called once per iteration: counts it, and checks for an interrupt a few times a second.
    pub(crate) fn poll(&mut self) -> Result<()> {
        if let Some(done) = self.done {
            done.fetch_add(1, Ordering::Relaxed);
        }
        if let Some(check) = self.check {
            if self.last.elapsed() >= POLL_EVERY {
                self.last = Instant::now();
                if check() {
                    return Err(ClvError::Interrupted);
                }
            }
        }
        Ok(())
    }
}

/// Most stepping-out steps on each side of a slice.
const MAX_STEPS_OUT: usize = 32;

/// One slice-sampling update (Neal 2003, "Slice sampling", Annals of Statistics 31(3), with
/// stepping out and shrinkage) of a univariate log density `log_f` from `x0` with initial
/// interval width `w`. `log_f(x0)` must be finite. The update leaves the density invariant for
/// any `w`; a `w` near the density's scale makes it cheap.
pub(crate) fn slice_step(x0: f64, w: f64, rng: &mut Rng, log_f: impl Fn(f64) -> f64) -> f64 {
    let level = log_f(x0) - rng.exponential(1.0);
    let mut left = x0 - w * rng.uniform();
    let mut right = left + w;
    // Stepping out, at most MAX_STEPS_OUT steps in all, split at random between the sides.
    let mut j = (rng.uniform() * MAX_STEPS_OUT as f64) as usize;
    let mut k = MAX_STEPS_OUT - 1 - j;
    while j > 0 && log_f(left) > level {
        left -= w;
        j -= 1;
    }
    while k > 0 && log_f(right) > level {
        right += w;
        k -= 1;
    }
    loop {
        let x = left + rng.uniform() * (right - left);
        if log_f(x) > level {
            return x;
        }
        if x < x0 {
            left = x;
        } else {
            right = x;
        }
        if right - left < 1e-12 * (1.0 + x0.abs()) {
            return x0;
        }
    }
}

/// Prior of a multivariate normal regression `y_i ~ N(B' x_i, Sigma)` (`y_i` in R^2, `x_i` in
/// R^p): `Sigma ~ InverseWishart(nu, V)` and, given `Sigma`, `B ~ MatrixNormal(0, A^-1, Sigma)`
/// (row precision `A = a I`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RegressionPrior {
    /// Prior precision `a` of each coefficient (in units of `Sigma`).
    pub coefficient_precision: f64,
    /// Degrees of freedom `nu` of the inverse-Wishart.
    pub dof: f64,
    /// Scale `V = v I` of the inverse-Wishart.
    pub scale: f64,
}

/// Sufficient statistics of the regression: `X'X` (p x p), `X'Y` (p x 2), `Y'Y` (2 x 2).
pub(crate) struct RegressionStats {
    pub xtx: DMatrix<f64>,
    pub xty: DMatrix<f64>,
    pub yty: Matrix2<f64>,
    pub n: f64,
}

/// Draw `(B, Sigma)` from their conditional posterior given the statistics (Rossi, Allenby and
/// McCulloch 2005, "Bayesian Statistics and Marketing", section 2.12: the conjugate update of
/// a multivariate regression). Returns `B` (p x 2) and `Sigma`.
pub(crate) fn draw_regression(
    stats: &RegressionStats,
    prior: &RegressionPrior,
    rng: &mut Rng,
) -> Result<(DMatrix<f64>, Matrix2<f64>)> {
    let p = stats.xtx.nrows();
    let a_n = &stats.xtx + DMatrix::identity(p, p) * prior.coefficient_precision;
    let chol_a = a_n.clone().cholesky().ok_or_else(|| {
        ClvError::Internal("the covariates' cross-product is not positive definite".into())
    })?;
    let b_tilde = chol_a.solve(&stats.xty);
    // S = Y'Y - B~' A_n B~ (the residual cross-product plus the prior's share, B0 = 0).
    let fitted = b_tilde.transpose() * &a_n * &b_tilde;
    let s = Matrix2::new(
        stats.yty[(0, 0)] - fitted[(0, 0)],
        stats.yty[(0, 1)] - fitted[(0, 1)],
        stats.yty[(1, 0)] - fitted[(1, 0)],
        stats.yty[(1, 1)] - fitted[(1, 1)],
    );
    let s = (s + s.transpose()) * 0.5 + Matrix2::identity() * prior.scale;
    let sigma = draw_inverse_wishart(prior.dof + stats.n, &s, rng)?;
    // B = B~ + C Z R' with C C' = A_n^-1 (C = L_A^-T) and R R' = Sigma.
    let r = sigma
        .cholesky()
        .ok_or_else(|| ClvError::Internal("a covariance draw is not positive definite".into()))?
        .l();
    let z = DMatrix::from_fn(p, 2, |_, _| rng.normal());
    let zr = z * DMatrix::from_fn(2, 2, |i, j| r[(j, i)]);
    let l_a = chol_a.l();
    let c_zr = l_a
        .transpose()
        .solve_upper_triangular(&zr)
        .ok_or_else(|| ClvError::Internal("triangular solve failed".into()))?;
    Ok((b_tilde + c_zr, sigma))
}

/// A draw of `InverseWishart(dof, scale)` in two dimensions: the inverse of a Wishart draw with
/// `scale^-1` by Bartlett's decomposition.
pub(crate) fn draw_inverse_wishart(
    dof: f64,
    scale: &Matrix2<f64>,
    rng: &mut Rng,
) -> Result<Matrix2<f64>> {
    let not_pd = || ClvError::Internal("an inverse-Wishart scale is not positive definite".into());
    let inv = scale.try_inverse().ok_or_else(not_pd)?;
    let l = inv.cholesky().ok_or_else(not_pd)?.l();
    let a = Matrix2::new(
        (2.0 * rng.gamma(dof / 2.0)).sqrt(),
        0.0,
        rng.normal(),
        (2.0 * rng.gamma((dof - 1.0) / 2.0)).sqrt(),
    );
    let la = l * a;
    let w = la * la.transpose();
    w.try_inverse().ok_or_else(not_pd)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slice_sampler_draws_a_known_density() {
        // Gamma(3, 2) on the log scale: density exp(3 u - 2 e^u).
        let mut rng = Rng::new(3);
        let mut u = 0.0;
        let n = 40_000;
        let mut sum = 0.0;
        let mut sum_sq = 0.0;
        for _ in 0..n {
            u = slice_step(u, 1.0, &mut rng, |v| 3.0 * v - 2.0 * v.exp());
            let x = u.exp();
            sum += x;
            sum_sq += x * x;
        }
        let mean = sum / n as f64;
        let var = sum_sq / n as f64 - mean * mean;
        // Mean 1.5, variance 0.75; slice draws are nearly independent here.
        assert!((mean - 1.5).abs() < 0.03, "{mean}");
        assert!((var - 0.75).abs() < 0.05, "{var}");
    }

    #[test]
    fn inverse_wishart_has_its_mean() {
        // E[Sigma] = V / (nu - p - 1).
        let mut rng = Rng::new(9);
        let v = Matrix2::new(2.0, 0.5, 0.5, 1.0);
        let nu = 12.0;
        let n = 40_000;
        let mut mean = Matrix2::zeros();
        for _ in 0..n {
            mean += draw_inverse_wishart(nu, &v, &mut rng).unwrap();
        }
        mean /= n as f64;
        let want = v / (nu - 3.0);
        for (got, want) in mean.iter().zip(want.iter()) {
            assert!((got - want).abs() < 0.01, "{mean} vs {want}");
        }
    }

    #[test]
    fn regression_draws_centre_on_least_squares() {
        // Many observations: B near the least-squares solution, Sigma near the residual
        // covariance.
        let mut rng = Rng::new(5);
        let n = 20_000;
        let (b0, b1) = ([1.0, -2.0], [0.5, 0.3]);
        let mut xtx = DMatrix::zeros(2, 2);
        let mut xty = DMatrix::zeros(2, 2);
        let mut yty = Matrix2::zeros();
        for _ in 0..n {
            let x = [1.0, rng.normal()];
            let e0 = rng.normal();
            let e1 = 0.5 * e0 + rng.normal();
            let y = [b0[0] + b1[0] * x[1] + e0, b0[1] + b1[1] * x[1] + e1];
            for i in 0..2 {
                for j in 0..2 {
                    xtx[(i, j)] += x[i] * x[j];
                    xty[(i, j)] += x[i] * y[j];
                    yty[(i, j)] += y[i] * y[j];
                }
            }
        }
        let stats = RegressionStats {
            xtx,
            xty,
            yty,
            n: n as f64,
        };
        let prior = RegressionPrior {
            coefficient_precision: 0.01,
            dof: 4.0,
            scale: 1.0,
        };
        let (b, sigma) = draw_regression(&stats, &prior, &mut rng).unwrap();
        assert!(
            (b[(0, 0)] - 1.0).abs() < 0.05 && (b[(0, 1)] + 2.0).abs() < 0.05,
            "{b}"
        );
        assert!(
            (b[(1, 0)] - 0.5).abs() < 0.05 && (b[(1, 1)] - 0.3).abs() < 0.05,
            "{b}"
        );
        assert!((sigma[(0, 0)] - 1.0).abs() < 0.05, "{sigma}");
        assert!((sigma[(0, 1)] - 0.5).abs() < 0.05, "{sigma}");
        assert!((sigma[(1, 1)] - 1.25).abs() < 0.06, "{sigma}");
    }
}
