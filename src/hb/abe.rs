//! The hierarchical Pareto/NBD of Abe (2009), "Counting your customers one by one: a
//! hierarchical Bayes extension to the Pareto/NBD model", Marketing Science 28(3), 541-553.
//!
//! Customer `i` buys at Poisson rate `lambda_i` while alive and drops out at exponential rate
//! `mu_i`; the log-rates are bivariate normal with covariates `x_i` (a row of the design
//! matrix, intercept first) in the mean:
//!
//! ```text
//! (ln lambda_i, ln mu_i)' ~ N(B' x_i, Sigma),
//! Sigma ~ InverseWishart(nu, v I),   B | Sigma ~ MatrixNormal(0, (a I)^-1, Sigma).
//! ```
//!
//! The sampler is Gibbs, in the structure of the paper's: per customer (conditionally
//! independent given the population, so in parallel), the pair `(ln lambda_i, ln mu_i)` by a
//! joint elliptical slice step (Murray, Adams & MacKay 2010) on the customer's Pareto/NBD
//! likelihood (the dropout time summed out rather than drawn as in Abe's appendix: see
//! [`update_customer`]) under the population's bivariate normal; then the population
//! `(B, Sigma)` by its conjugate multivariate-regression update (see
//! [`super::draw_regression`]), followed by Metropolis steps in partially non-centred coordinates
//! ([`partially_non_centred_steps`]). P(alive at T) at a draw is
//!
//! ```text
//! P(alive | lambda, mu) = 1 / (1 + mu / (lambda + mu) (exp((lambda + mu)(T - t_x)) - 1)).
//! ```
//!
//! Default priors (see `DEFAULT_PRIOR`): `a = 0.01` (each coefficient's prior standard
//! deviation is 10 times the population spread: flat over any plausible log-rate per unit of
//! a covariate scaled to order one), `nu = 4`, `v = 1` (the least informative inverse-Wishart
//! with a finite mean, whose mean is the identity: a factor of e between customers one standard
//! deviation apart). Thousands of customers outweigh both.

use ndarray::Array2;

use super::RegressionStats;
use super::{draw_regression, iteration_key, HbOptions, Poller, RegressionPrior};
use crate::bayes::predict::{posterior_predict, PosteriorPrediction, PredictOptions};
use crate::error::{ClvError, Result};
use crate::parallel::Exec;
use crate::random::Rng;
use nalgebra::{DMatrix, Matrix2};

/// The default population prior (see the module documentation).
pub const DEFAULT_PRIOR: RegressionPrior = RegressionPrior {
    coefficient_precision: 0.01,
    dof: 4.0,
    scale: 1.0,
};

/// Salt of the chains' starting points.
const INIT_SALT: u64 = 0xa54f_f53a_5f1d_36f1;

/// The data: each customer's frequency `x`, recency `t_x`, age `T`, and a row-major
/// `n x p` design matrix (its first column the intercept, 1 for every customer).
#[derive(Clone, Copy)]
pub struct AbeData<'a> {
    pub frequency: &'a [f64],
    pub recency: &'a [f64],
    pub age: &'a [f64],
    pub design: &'a [f64],
    pub n_covariates: usize,
}

impl AbeData<'_> {
    pub fn len(&self) -> usize {
        self.frequency.len()
    }

    pub fn is_empty(&self) -> bool {
        self.frequency.is_empty()
    }

    fn row(&self, i: usize) -> &[f64] {
        let p = self.n_covariates;
        &self.design[i * p..(i + 1) * p]
    }

    fn check(&self) -> Result<()> {
        let n = self.len();
        if n < 2 {
            return Err(ClvError::invalid_data(
                "frequency",
                None,
                None,
                "the hierarchical model needs at least 2 customers",
            ));
        }
        if self.recency.len() != n || self.age.len() != n {
            return Err(ClvError::invalid_data(
                "recency",
                None,
                None,
                "frequency, recency and T must have the same length",
            ));
        }
        if self.n_covariates == 0 || self.design.len() != n * self.n_covariates {
            return Err(ClvError::invalid_data(
                "covariates",
                None,
                None,
                "the design matrix must have one row per customer and at least the intercept",
            ));
        }
        for i in 0..n {
            let (x, t_x, t) = (self.frequency[i], self.recency[i], self.age[i]);
            if !(x >= 0.0 && x.is_finite() && x.fract() == 0.0) {
                return Err(ClvError::invalid_data(
                    "frequency",
                    Some(i),
                    Some(x),
                    "must be a whole number >= 0",
                ));
            }
            if !(t.is_finite() && t > 0.0) {
                return Err(ClvError::invalid_data("T", Some(i), Some(t), "must be > 0"));
            }
            if !(t_x >= 0.0 && t_x <= t) || (x == 0.0 && t_x != 0.0) {
                return Err(ClvError::invalid_data(
                    "recency",
                    Some(i),
                    Some(t_x),
                    "must lie in [0, T], and be 0 when frequency is 0",
                ));
            }
            if let Some(&v) = self.row(i).iter().find(|v| !v.is_finite()) {
                return Err(ClvError::invalid_data(
                    "covariates",
                    Some(i),
                    Some(v),
                    "must be finite",
                ));
            }
        }
        Ok(())
    }
}

/// Draws of the hierarchical Pareto/NBD.
#[derive(Debug, Clone, PartialEq)]
pub struct AbeDraws {
    pub chains: usize,
    /// Kept draws per chain.
    pub draws: usize,
    /// `(chains * draws) x (2 p + 3)`, chain-major: the coefficients of `ln lambda` (p), of
    /// `ln mu` (p), then `Sigma`'s var of `ln lambda`, covariance, var of `ln mu`.
    pub population: Array2<f64>,
    /// Customer draws kept for predictions: `(ln lambda, ln mu)` as f32, draw-major
    /// (`customer_draws x n x 2`).
    pub customer: Vec<f32>,
    /// Number of customer draws kept (over all chains).
    pub n_customer_draws: usize,
    /// Posterior means over every kept draw of every chain: `lambda`, `mu`, P(alive at T).
    pub mean_lambda: Vec<f64>,
    pub mean_mu: Vec<f64>,
    pub mean_p_alive: Vec<f64>,
}

/// P(alive at T | lambda, mu, x, t_x, T).
#[inline]
pub fn p_alive(lambda: f64, mu: f64, t_x: f64, t: f64) -> f64 {
    let total = lambda + mu;
    let ratio = mu / total * ((total * (t - t_x)).exp_m1());
    1.0 / (1.0 + ratio)
}

/// Expected purchases in `(T, T + horizon]` given `(lambda, mu)` and the customer's history.
#[inline]
pub fn expected_purchases(lambda: f64, mu: f64, t_x: f64, t: f64, horizon: f64) -> f64 {
    let alive = p_alive(lambda, mu, t_x, t);
    // lambda (1 - e^(-mu h)) / mu, which tends to lambda h as mu h -> 0.
    let mh = mu * horizon;
    let per_alive = if mh < 1e-8 {
        lambda * horizon * (1.0 - 0.5 * mh)
    } else {
        lambda * (-(-mh).exp_m1()) / mu
    };
    alive * per_alive
}

/// Elliptical slice steps per customer and iteration (see [`update_customer`]).
const ELLIPTICAL_STEPS: usize = 1;

/// One customer's update given the population: [`ELLIPTICAL_STEPS`] elliptical slice steps
/// (Murray, Adams & MacKay 2010, "Elliptical slice sampling", AISTATS) on the pair
/// `(ln lambda, ln mu)` jointly, whose prior is the population's bivariate normal
/// `N(mean, L L')` (`mean = B' x_i`, `chol` the lower Cholesky factor `L` of `Sigma`) and whose
/// likelihood is the customer's Pareto/NBD individual likelihood with the dropout time summed
/// out ([`customer_log_likelihood`]).
///
/// Why joint: for a customer without repeat purchases (most of CDNOW) the likelihood is a
/// ridge (either a low purchase rate or an early dropout explains the silence), so the two
/// log-rates are correlated given the data, which one-coordinate slice steps follow slowly.
/// An elliptical step moves both coordinates along an ellipse through the current point and a
/// fresh prior draw, needs no step size, and always ends at a point of the slice (the
/// shrinking bracket closes on the current point). Measured on CDNOW (docs/design.md): it
/// costs less per iteration than the two slice steps it replaced and raises the population's
/// smallest bulk ESS somewhat, but the slow direction left is the population's dropout spread
/// against the customers' rates, not the customers' own updates (more elliptical steps per
/// iteration did not raise it).
///
/// Abe's sampler augments the data with the alive indicator and the dropout time instead;
/// summing them out removes the coupling of the dropout rate to a drawn indicator (on CDNOW
/// that chain stuck). Nothing needs them drawn afterwards: P(alive) and expected purchases are
/// their exact conditional expectations given the rates ([`p_alive`]), which is the
/// Rao-Blackwellised form of averaging the indicator.
#[inline]
fn update_customer(
    state: &mut [f64; 2],
    x: f64,
    t_x: f64,
    t: f64,
    mean: [f64; 2],
    chol: &Matrix2<f64>,
    rng: &mut Rng,
) {
    let (l11, l21, l22) = (chol[(0, 0)], chol[(1, 0)], chol[(1, 1)]);
    let log_likelihood =
        |f: [f64; 2]| customer_log_likelihood(mean[0] + f[0], mean[1] + f[1], x, t_x, t);
    // The deviation from the population mean, whose prior is N(0, L L').
    let mut f = [state[0] - mean[0], state[1] - mean[1]];
    let mut current = log_likelihood(f);
    for _ in 0..ELLIPTICAL_STEPS {
        let (z0, z1) = (rng.normal(), rng.normal());
        let nu = [l11 * z0, l21 * z0 + l22 * z1];
        let level = current - rng.exponential(1.0);
        let mut angle = rng.uniform() * std::f64::consts::TAU;
        let (mut low, mut high) = (angle - std::f64::consts::TAU, angle);
        loop {
            let (sin, cos) = angle.sin_cos();
            let proposal = [f[0] * cos + nu[0] * sin, f[1] * cos + nu[1] * sin];
            let value = log_likelihood(proposal);
            if value > level {
                f = proposal;
                current = value;
                break;
            }
            if angle < 0.0 {
                low = angle;
            } else {
                high = angle;
            }
            // The bracket shrinks towards angle 0, the current point, which is on the slice;
            // in floating point stop there rather than loop.
            if high - low < 1e-12 {
                break;
            }
            angle = low + rng.uniform() * (high - low);
        }
    }
    *state = [mean[0] + f[0], mean[1] + f[1]];
}

/// One chain's output.
struct ChainOut {
    population: Vec<f64>,
    customer: Vec<f32>,
    sum_lambda: Vec<f64>,
    sum_mu: Vec<f64>,
    sum_p_alive: Vec<f64>,
}

fn population_mean(b: &DMatrix<f64>, row: &[f64]) -> [f64; 2] {
    let mut m = [0.0; 2];
    for (j, &xj) in row.iter().enumerate() {
        m[0] += b[(j, 0)] * xj;
        m[1] += b[(j, 1)] * xj;
    }
    m
}

/// The Pareto/NBD log-likelihood of one customer at log-rates `(u, v)` (Schmittlein, Morrison
/// & Colombo 1987, the individual level, with the dropout time summed out):
/// `lambda^x / (lambda + mu) (mu e^-(lambda + mu) t_x + lambda e^-(lambda + mu) T)`, in logs
/// (both sums by [`ln_add_exp`], so that neither rate's size overflows or loses the other).
#[inline]
fn customer_log_likelihood(u: f64, v: f64, x: f64, t_x: f64, t: f64) -> f64 {
    let (lambda, mu) = (u.exp(), v.exp());
    let total = lambda + mu;
    // One logarithm, `ln((mu + lambda e^-S (T - t_x)) / S)`, wherever nothing under- or
    // overflows (every draw the sampler makes in practice); the two log-sums otherwise.
    let fast = x * u - total * t_x + ((mu + lambda * (-total * (t - t_x)).exp()) / total).ln();
    if fast.is_finite() {
        return fast;
    }
    x * u - ln_add_exp(u, v) - total * t_x + ln_add_exp(v, u - total * (t - t_x))
}

/// [`customer_log_likelihood`] and its derivatives in `u` and `v`: with `S = lambda + mu`,
/// `a = u - S (T - t_x)` and `r = e^a / (e^v + e^a)` (the weight of "alive at T"),
/// `d/du = x - lambda / S - lambda t_x + r (1 - lambda (T - t_x))` and
/// `d/dv = -mu / S - mu t_x + (1 - r) - r mu (T - t_x)`.
#[inline]
fn customer_log_likelihood_gradient(u: f64, v: f64, x: f64, t_x: f64, t: f64) -> (f64, f64, f64) {
    let (lambda, mu) = (u.exp(), v.exp());
    let total = lambda + mu;
    let gap = t - t_x;
    let alive_term = lambda * (-total * gap).exp();
    let end = mu + alive_term;
    let value = x * u - total * t_x + (end / total).ln();
    let (value, alive) = if value.is_finite() && end > 0.0 {
        (value, alive_term / end)
    } else {
        // Under- or overflow: the log-sums (as [`customer_log_likelihood`]).
        let a = u - total * gap;
        let ln_end = ln_add_exp(v, a);
        (
            x * u - ln_add_exp(u, v) - total * t_x + ln_end,
            (a - ln_end).exp(),
        )
    };
    let du = x - lambda / total - lambda * t_x + alive * (1.0 - lambda * gap);
    let dv = -mu / total - mu * t_x + (1.0 - alive) - alive * mu * gap;
    (value, du, dv)
}

/// `ln(e^a + e^b)` without overflow or underflow.
#[inline]
fn ln_add_exp(a: f64, b: f64) -> f64 {
    let (high, low) = if a >= b { (a, b) } else { (b, a) };
    high + (low - high).exp().ln_1p()
}

/// `log p(B, Sigma)` up to a constant, with `Sigma = L L'`, plus the log-Jacobian of the
/// coordinates the non-centred steps move (`ln L11`, `L21`, `ln L22`): `Sigma -> L` has
/// Jacobian `4 L11^2 L22`, and the logs add `L11 L22`.
fn ln_population_prior(b: &DMatrix<f64>, l: &Matrix2<f64>, prior: &RegressionPrior) -> f64 {
    let (l11, l21, l22) = (l[(0, 0)], l[(1, 0)], l[(1, 1)]);
    let p = b.nrows() as f64;
    let ln_det = 2.0 * (l11.ln() + l22.ln());
    // Sigma^-1 = L^-T L^-1, with L^-1 = [[1/l11, 0], [-l21/(l11 l22), 1/l22]].
    let inv = Matrix2::new(1.0 / l11, 0.0, -l21 / (l11 * l22), 1.0 / l22);
    let sigma_inv = inv.transpose() * inv;
    let btb = b.transpose() * b;
    let trace_b = (0..2)
        .map(|i| (0..2).map(|j| sigma_inv[(i, j)] * btb[(j, i)]).sum::<f64>())
        .sum::<f64>();
    let trace_v = prior.scale * (sigma_inv[(0, 0)] + sigma_inv[(1, 1)]);
    -0.5 * (prior.dof + 3.0) * ln_det
        - 0.5 * trace_v
        - 0.5 * p * ln_det
        - 0.5 * prior.coefficient_precision * trace_b
        + 3.0 * l11.ln()
        + 2.0 * l22.ln()
}

/// Random-walk proposals of the population per iteration in the partially non-centred
/// coordinates ([`partially_non_centred_steps`]).
const BLOCK_STEPS: usize = 3;

/// A customer's Gaussian approximation of its own log-likelihood in `theta = (ln lambda,
/// ln mu)`: `ln L(theta) ~ shift' theta - theta' P theta / 2` up to a constant, from the
/// likelihood's gradient and curvature at the customer's mean draw over an adaptation window
/// (the curvature's negative eigenvalues set to zero, so `P` is positive semi-definite).
/// All zero, "no information", until the first window ends.
#[derive(Clone, Copy, Default)]
struct LikelihoodApprox {
    /// `P` as `(P11, P12, P22)`.
    precision: [f64; 3],
    shift: [f64; 2],
}

impl LikelihoodApprox {
    /// The expansion of customer `(x, t_x, t)`'s log-likelihood about `theta`.
    fn at(theta: [f64; 2], x: f64, t_x: f64, t: f64) -> Self {
        let h = 1e-4;
        let grad = |u: f64, v: f64| {
            let (_, du, dv) = customer_log_likelihood_gradient(u, v, x, t_x, t);
            [du, dv]
        };
        let [u, v] = theta;
        let g = grad(u, v);
        let (up, um) = (grad(u + h, v), grad(u - h, v));
        let (vp, vm) = (grad(u, v + h), grad(u, v - h));
        // Minus the Hessian.
        let a = -(up[0] - um[0]) / (2.0 * h);
        let c = -(vp[1] - vm[1]) / (2.0 * h);
        let b = -0.25 * ((up[1] - um[1]) + (vp[0] - vm[0])) / h;
        let precision = positive_part(a, b, c);
        if !(g[0].is_finite() && g[1].is_finite() && precision.iter().all(|p| p.is_finite())) {
            return LikelihoodApprox::default();
        }
        let [p11, p12, p22] = precision;
        LikelihoodApprox {
            precision,
            shift: [g[0] + p11 * u + p12 * v, g[1] + p12 * u + p22 * v],
        }
    }
}

/// The positive semi-definite part of the symmetric `[[a, b], [b, c]]` (negative eigenvalues
/// set to zero), as `(11, 12, 22)`.
fn positive_part(a: f64, b: f64, c: f64) -> [f64; 3] {
    let half_trace = 0.5 * (a + c);
    let radius = (0.25 * (a - c) * (a - c) + b * b).sqrt();
    let (high, low) = (half_trace + radius, half_trace - radius);
    if low >= 0.0 {
        return [a, b, c];
    }
    if high <= 0.0 {
        return [0.0; 3];
    }
    // high * e e' with e the unit eigenvector of `high`.
    let (e0, e1) = if a >= c { (high - c, b) } else { (b, high - a) };
    let norm = e0 * e0 + e1 * e1;
    if norm == 0.0 {
        return [0.0; 3];
    }
    [
        high * e0 * e0 / norm,
        high * e0 * e1 / norm,
        high * e1 * e1 / norm,
    ]
}

/// A customer's coordinates under the population: its conditional given `(B, Sigma)` with its
/// likelihood replaced by its [`LikelihoodApprox`] is `N(mean, A^-1)`, `A = Sigma^-1 + P = R R'`
/// (`R` lower triangular, as `(R11, R21, R22)`); the partially non-centred coordinate of
/// `theta` is `R' (theta - mean)`.
struct CustomerMap {
    mean: [f64; 2],
    r: [f64; 3],
}

impl CustomerMap {
    /// `sigma_inv` is `Sigma^-1` as `(11, 12, 22)`, `m` the population mean `B' x_i`.
    #[inline]
    fn new(approx: &LikelihoodApprox, sigma_inv: [f64; 3], m: [f64; 2]) -> Self {
        let [s11, s12, s22] = sigma_inv;
        let [p11, p12, p22] = approx.precision;
        let r11 = (s11 + p11).sqrt();
        let r21 = (s12 + p12) / r11;
        let r22 = (s22 + p22 - r21 * r21).sqrt();
        let b0 = s11 * m[0] + s12 * m[1] + approx.shift[0];
        let b1 = s12 * m[0] + s22 * m[1] + approx.shift[1];
        // A mean = b: R y = b, then R' mean = y.
        let y0 = b0 / r11;
        let y1 = (b1 - r21 * y0) / r22;
        let mean1 = y1 / r22;
        let mean0 = (y0 - r21 * mean1) / r11;
        CustomerMap {
            mean: [mean0, mean1],
            r: [r11, r21, r22],
        }
    }

    #[inline]
    fn coordinate(&self, theta: [f64; 2]) -> [f64; 2] {
        let [r11, r21, r22] = self.r;
        let d = [theta[0] - self.mean[0], theta[1] - self.mean[1]];
        [r11 * d[0] + r21 * d[1], r22 * d[1]]
    }

    #[inline]
    fn theta(&self, rho: [f64; 2]) -> [f64; 2] {
        let [r11, r21, r22] = self.r;
        let d1 = rho[1] / r22;
        let d0 = (rho[0] - r21 * d1) / r11;
        [self.mean[0] + d0, self.mean[1] + d1]
    }

    /// `ln |d theta / d rho|`.
    #[inline]
    fn ln_jacobian(&self) -> f64 {
        -(self.r[0] * self.r[2]).ln()
    }
}

/// `Sigma^-1` as `(11, 12, 22)` from `Sigma`'s lower Cholesky factor.
fn precision_from_factor(l: &Matrix2<f64>) -> [f64; 3] {
    let (l11, l21, l22) = (l[(0, 0)], l[(1, 0)], l[(1, 1)]);
    // L^-1 = [[1/l11, 0], [-l21/(l11 l22), 1/l22]], Sigma^-1 = L^-T L^-1.
    let (i11, i21, i22) = (1.0 / l11, -l21 / (l11 * l22), 1.0 / l22);
    [i11 * i11 + i21 * i21, i21 * i22, i22 * i22]
}

/// The adaptive random-walk proposal of the population steps: the covariance of the
/// coordinates over adaptation windows of doubling length (from 5% of the burn-in; the last
/// one runs to 90% of it rather than leave a shorter one after it), and a scale tuned towards
/// an acceptance rate of 0.234; both fixed after the burn-in. At each window's end the
/// customers' [`LikelihoodApprox`] are refreshed too (in [`run_chain`]).
pub(crate) struct AdaptiveProposal {
    window_ends: Vec<usize>,
    count: f64,
    mean: Vec<f64>,
    /// Sum of outer products of deviations (Welford), `d x d`.
    scatter: DMatrix<f64>,
    ln_scale: f64,
    /// Lower Cholesky factor of the last window's covariance (regularised).
    factor: Option<DMatrix<f64>>,
}

impl AdaptiveProposal {
    fn new(d: usize, tune: usize) -> Self {
        let last = tune - tune / 10;
        let mut window_ends = Vec::new();
        let (mut start, mut len) = (0, (tune / 20).max(2 * d + 20));
        while start + len <= last {
            let mut end = start + len;
            if end + 2 * len > last {
                end = last;
            }
            window_ends.push(end);
            start = end;
            len *= 2;
        }
        AdaptiveProposal {
            window_ends,
            count: 0.0,
            mean: vec![0.0; d],
            scatter: DMatrix::zeros(d, d),
            ln_scale: 0.0,
            factor: None,
        }
    }

    fn tune_scale(&mut self, it: usize, accepted: bool) {
        let rate = (1.0 / ((it + 1) as f64).sqrt()).min(0.5);
        self.ln_scale += rate * (f64::from(u8::from(accepted)) - 0.234);
    }

    /// Burn-in iteration `it` ended at coordinates `phi`; true when a window ended.
    fn observe(&mut self, it: usize, phi: &[f64]) -> bool {
        self.count += 1.0;
        let delta: Vec<f64> = phi.iter().zip(&self.mean).map(|(x, m)| x - m).collect();
        for (m, dx) in self.mean.iter_mut().zip(&delta) {
            *m += dx / self.count;
        }
        let d = phi.len();
        for i in 0..d {
            for j in 0..d {
                self.scatter[(i, j)] += delta[i] * (phi[j] - self.mean[j]);
            }
        }
        if self.window_ends.first() != Some(&(it + 1)) {
            return false;
        }
        self.window_ends.remove(0);
        let cov = &self.scatter / (self.count - 1.0) + DMatrix::identity(d, d) * 1e-6;
        if let Some(c) = cov.cholesky() {
            self.factor = Some(c.l());
        }
        self.count = 0.0;
        self.mean.iter_mut().for_each(|m| *m = 0.0);
        self.scatter.fill(0.0);
        true
    }

    /// The lower Cholesky factor of the proposal covariance: `2.38^2 / d` times the learnt
    /// covariance, times the tuned scale; a small diagonal step until a window ended.
    fn factor(&self, d: usize) -> DMatrix<f64> {
        let scale = self.ln_scale.exp();
        match &self.factor {
            Some(c) => c * (2.38 / (d as f64).sqrt() * scale),
            None => DMatrix::identity(d, d) * (0.02 * scale),
        }
    }
}

/// Random-walk Metropolis steps on the population in partially non-centred coordinates
/// (Papaspiliopoulos, Roberts & Skold 2007): each customer's `rho_i = R_i' (theta_i - mean_i)`
/// ([`CustomerMap`]) is held fixed while `(B, ln L11, L21, ln L22)` takes block random-walk
/// steps, the customers' log-rates moving with the population as
/// `theta_i = mean_i + R_i^-T rho_i`, accepted on the joint density of the population and the
/// customers in these coordinates (prior, the customers' normal densities and Pareto/NBD
/// likelihoods, and the map's Jacobian).
///
/// Why: the conjugate (centred) update of `Sigma` given the customers' rates barely moves it
/// (thousands of rates pin it), and the non-centred one (`rho_i` the standardised deviation,
/// the previous move here) barely moves it either, because the customers' likelihoods, each
/// weak but thousands together, pin the standardised deviations' scale: CDNOW's dropout
/// spread is in between, where neither parameterisation (nor their interweaving, Yu & Meng
/// 2011) mixes. Centring each customer by how much its own data say (`P_i`: zero gives the
/// non-centred coordinates, a large `P_i` the centred ones) makes the population's
/// conditional given the `rho_i` close to its marginal posterior, whatever each customer's
/// information. The approximations only set the coordinates: the acceptance uses the exact
/// densities, so the chain targets the same posterior whatever they are.
///
/// `adapt` is the burn-in iteration (the proposal is fixed after it). Returns the new `Sigma`;
/// `state` and `b` are updated in place.
#[allow(clippy::too_many_arguments)]
fn partially_non_centred_steps(
    data: &AbeData<'_>,
    prior: &RegressionPrior,
    approx: &[LikelihoodApprox],
    state: &mut [[f64; 2]],
    b: &mut DMatrix<f64>,
    sigma: &Matrix2<f64>,
    adaptive: &mut AdaptiveProposal,
    adapt: Option<usize>,
    exec: &Exec,
    rng: &mut Rng,
) -> Result<Matrix2<f64>> {
    let n = data.len();
    let p = data.n_covariates;
    let mut l = sigma
        .cholesky()
        .ok_or_else(|| ClvError::Internal("a covariance draw is not positive definite".into()))?
        .l();
    let sigma_inv = precision_from_factor(&l);
    let rho: Vec<[f64; 2]> = (0..n)
        .map(|i| {
            let m = population_mean(b, data.row(i));
            CustomerMap::new(&approx[i], sigma_inv, m).coordinate(state[i])
        })
        .collect();
    // The joint log-density in (B, ln L11, L21, ln L22, rho), up to a constant.
    let total = |b: &DMatrix<f64>, l: &Matrix2<f64>| -> f64 {
        let sigma_inv = precision_from_factor(l);
        let [s11, s12, s22] = sigma_inv;
        let customers = exec.chunked_sum(n, 1, |range, acc| {
            for i in range {
                let m = population_mean(b, data.row(i));
                let map = CustomerMap::new(&approx[i], sigma_inv, m);
                let theta = map.theta(rho[i]);
                let (d0, d1) = (theta[0] - m[0], theta[1] - m[1]);
                acc[0] += customer_log_likelihood(
                    theta[0],
                    theta[1],
                    data.frequency[i],
                    data.recency[i],
                    data.age[i],
                ) - 0.5 * (s11 * d0 * d0 + 2.0 * s12 * d0 * d1 + s22 * d1 * d1)
                    + map.ln_jacobian();
            }
        })[0];
        // Each customer's normal density's -ln det(Sigma) / 2.
        customers - n as f64 * (l[(0, 0)] * l[(1, 1)]).ln() + ln_population_prior(b, l, prior)
    };
    let mut current = total(b, &l);
    let d = 2 * p + 3;
    let factor = adaptive.factor(d);
    for _ in 0..BLOCK_STEPS {
        let phi = non_centred_coordinates(b, &l);
        let z: Vec<f64> = (0..d).map(|_| rng.normal()).collect();
        let proposal: Vec<f64> = (0..d)
            .map(|i| phi[i] + (0..=i).map(|j| factor[(i, j)] * z[j]).sum::<f64>())
            .collect();
        let (b_new, l_new) = non_centred_from(&proposal, p);
        let proposed = total(&b_new, &l_new);
        let accept = proposed.is_finite() && rng.uniform().ln() < proposed - current;
        if accept {
            *b = b_new;
            l = l_new;
            current = proposed;
        }
        if let Some(it) = adapt {
            adaptive.tune_scale(it, accept);
        }
    }
    let sigma_inv = precision_from_factor(&l);
    for (i, s) in state.iter_mut().enumerate() {
        let m = population_mean(b, data.row(i));
        *s = CustomerMap::new(&approx[i], sigma_inv, m).theta(rho[i]);
    }
    Ok(l * l.transpose())
}

/// `(B, L)` from the coordinates `(B column-major, ln L11, L21, ln L22)`.
fn non_centred_from(phi: &[f64], p: usize) -> (DMatrix<f64>, Matrix2<f64>) {
    let b = DMatrix::from_column_slice(p, 2, &phi[..2 * p]);
    let l = Matrix2::new(phi[2 * p].exp(), 0.0, phi[2 * p + 1], phi[2 * p + 2].exp());
    (b, l)
}

/// The coordinates of `(B, L)`.
fn non_centred_coordinates(b: &DMatrix<f64>, l: &Matrix2<f64>) -> Vec<f64> {
    let mut phi: Vec<f64> = b.iter().copied().collect();
    phi.extend([l[(0, 0)].ln(), l[(1, 0)], l[(1, 1)].ln()]);
    phi
}

fn run_chain(
    data: &AbeData<'_>,
    prior: &RegressionPrior,
    opts: &HbOptions<'_>,
    chain: usize,
    exec: &Exec,
    xtx: &DMatrix<f64>,
) -> Result<ChainOut> {
    let n = data.len();
    let p = data.n_covariates;
    let (stride, stored) = opts.customer_stride();
    // Starting point: population means at the pooled rates, each customer at its own rate
    // (half a purchase added so that customers without repeat purchases start finite), all
    // jittered per chain so that R-hat can see chains that do not mix.
    let mut init = Rng::for_stream(opts.seed ^ INIT_SALT, chain as u64);
    let total_x: f64 = data.frequency.iter().sum();
    let total_t: f64 = data.age.iter().sum();
    let mut b = DMatrix::zeros(p, 2);
    b[(0, 0)] = ((total_x + 0.5) / total_t).ln() + init.uniform() - 0.5;
    b[(0, 1)] = (n as f64 / total_t).ln() + init.uniform() - 0.5;
    let mut sigma = Matrix2::identity();
    let mut state: Vec<[f64; 2]> = (0..n)
        .map(|i| {
            [
                ((data.frequency[i] + 0.5) / data.age[i]).ln() + 0.5 * init.normal(),
                b[(0, 1)] + 0.5 * init.normal(),
            ]
        })
        .collect();
    let mut out = ChainOut {
        population: Vec::with_capacity(opts.draws * (2 * p + 3)),
        customer: Vec::with_capacity(stored * n * 2),
        sum_lambda: vec![0.0; n],
        sum_mu: vec![0.0; n],
        sum_p_alive: vec![0.0; n],
    };
    let mut poller = Poller::new(opts);
    let mut adaptive = AdaptiveProposal::new(2 * p + 3, opts.tune);
    // The customers' likelihood approximations (none until the first adaptation window ends),
    // and the sums of their draws over the current window.
    let mut approx = vec![LikelihoodApprox::default(); n];
    let mut window_sum = vec![[0.0; 2]; n];
    let mut window_count = 0.0;
    let iterations = opts.tune + opts.draws * opts.thin;
    for it in 0..iterations {
        let key = iteration_key(opts.seed, chain, it);
        let chol = sigma
            .cholesky()
            .ok_or_else(|| ClvError::Internal("a covariance draw is not positive definite".into()))?
            .l();
        let (b_ref, chol_ref) = (&b, &chol);
        exec.fill_blocks(&mut state, |start, block| {
            for (offset, s) in block.iter_mut().enumerate() {
                let i = start + offset;
                let mut rng = Rng::for_stream(key, i as u64);
                let mean = population_mean(b_ref, data.row(i));
                update_customer(
                    s,
                    data.frequency[i],
                    data.recency[i],
                    data.age[i],
                    mean,
                    chol_ref,
                    &mut rng,
                );
            }
        });
        // X'Y and Y'Y, summed in fixed chunks.
        let sums = exec.chunked_sum(n, 2 * p + 3, |range, acc| {
            for i in range {
                let [u, v] = state[i];
                for (j, &xj) in data.row(i).iter().enumerate() {
                    acc[j] += xj * u;
                    acc[p + j] += xj * v;
                }
                acc[2 * p] += u * u;
                acc[2 * p + 1] += u * v;
                acc[2 * p + 2] += v * v;
            }
        });
        let stats = RegressionStats {
            xtx: xtx.clone(),
            xty: DMatrix::from_fn(p, 2, |j, k| sums[k * p + j]),
            yty: Matrix2::new(
                sums[2 * p],
                sums[2 * p + 1],
                sums[2 * p + 1],
                sums[2 * p + 2],
            ),
            n: n as f64,
        };
        let mut rng = Rng::for_stream(key, u64::MAX);
        let (new_b, new_sigma) = draw_regression(&stats, prior, &mut rng)?;
        b = new_b;
        sigma = new_sigma;
        let mut rng = Rng::for_stream(key, u64::MAX - 1);
        let adapt = (it < opts.tune).then_some(it);
        sigma = partially_non_centred_steps(
            data,
            prior,
            &approx,
            &mut state,
            &mut b,
            &sigma,
            &mut adaptive,
            adapt,
            exec,
            &mut rng,
        )?;
        if it < opts.tune {
            for (sum, s) in window_sum.iter_mut().zip(&state) {
                sum[0] += s[0];
                sum[1] += s[1];
            }
            window_count += 1.0;
            let l = sigma
                .cholesky()
                .ok_or_else(|| {
                    ClvError::Internal("a covariance draw is not positive definite".into())
                })?
                .l();
            if adaptive.observe(it, &non_centred_coordinates(&b, &l)) {
                let (sums, count) = (&window_sum, window_count);
                exec.fill(&mut approx, |i| {
                    let mean = [sums[i][0] / count, sums[i][1] / count];
                    LikelihoodApprox::at(mean, data.frequency[i], data.recency[i], data.age[i])
                });
                window_sum.iter_mut().for_each(|s| *s = [0.0; 2]);
                window_count = 0.0;
            }
        }
        if it >= opts.tune && (it - opts.tune + 1).is_multiple_of(opts.thin) {
            let kept = (it - opts.tune + 1) / opts.thin - 1;
            out.population.extend(b.column(0).iter());
            out.population.extend(b.column(1).iter());
            out.population
                .extend([sigma[(0, 0)], sigma[(0, 1)], sigma[(1, 1)]]);
            for (i, s) in state.iter().enumerate() {
                let (lambda, mu) = (s[0].exp(), s[1].exp());
                out.sum_lambda[i] += lambda;
                out.sum_mu[i] += mu;
                out.sum_p_alive[i] += p_alive(lambda, mu, data.recency[i], data.age[i]);
            }
            if kept.is_multiple_of(stride) {
                out.customer
                    .extend(state.iter().flat_map(|s| [s[0] as f32, s[1] as f32]));
            }
        }
        poller.poll()?;
    }
    Ok(out)
}

/// Draw from the posterior of the hierarchical Pareto/NBD.
pub fn sample(
    data: &AbeData<'_>,
    prior: &RegressionPrior,
    opts: &HbOptions<'_>,
) -> Result<AbeDraws> {
    opts.check()?;
    data.check()?;
    let n = data.len();
    let p = data.n_covariates;
    let xtx_sums = opts.exec.chunked_sum(n, p * p, |range, acc| {
        for i in range {
            let row = data.row(i);
            for j in 0..p {
                for k in 0..p {
                    acc[j * p + k] += row[j] * row[k];
                }
            }
        }
    });
    let xtx = DMatrix::from_row_slice(p, p, &xtx_sums);
    if xtx.clone().cholesky().is_none() {
        return Err(ClvError::invalid_data(
            "covariates",
            None,
            None,
            "the covariates are collinear (with each other or with the intercept): drop one",
        ));
    }
    // Chains in parallel (each serial over customers) when there are threads for them, else
    // one after the other with the customers in parallel: the same draws either way.
    let chain_ids: Vec<usize> = (0..opts.chains).collect();
    let parallel_chains = opts.chains > 1 && opts.exec.threads() > 1;
    let results: Vec<Result<ChainOut>> = if parallel_chains {
        opts.exec.map(&chain_ids, |&c| {
            run_chain(data, prior, opts, c, &Exec::Serial, &xtx)
        })
    } else {
        chain_ids
            .iter()
            .map(|&c| run_chain(data, prior, opts, c, &opts.exec, &xtx))
            .collect()
    };
    let k = 2 * p + 3;
    let rows = opts.chains * opts.draws;
    let mut population = Vec::with_capacity(rows * k);
    let mut customer = Vec::new();
    let (mut mean_lambda, mut mean_mu, mut mean_p_alive) =
        (vec![0.0; n], vec![0.0; n], vec![0.0; n]);
    for result in results {
        let c = result?;
        population.extend(c.population);
        customer.extend(c.customer);
        for i in 0..n {
            mean_lambda[i] += c.sum_lambda[i];
            mean_mu[i] += c.sum_mu[i];
            mean_p_alive[i] += c.sum_p_alive[i];
        }
    }
    for v in [&mut mean_lambda, &mut mean_mu, &mut mean_p_alive] {
        for m in v.iter_mut() {
            *m /= rows as f64;
        }
    }
    let n_customer_draws = customer.len() / (2 * n);
    Ok(AbeDraws {
        chains: opts.chains,
        draws: opts.draws,
        population: Array2::from_shape_vec((rows, k), population)
            .map_err(|e| ClvError::Internal(format!("draw layout: {e}")))?,
        customer,
        n_customer_draws,
        mean_lambda,
        mean_mu,
        mean_p_alive,
    })
}

/// A per-customer quantity of the hierarchical Pareto/NBD at a customer draw.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Quantity {
    Lambda,
    Mu,
    ProbabilityAlive,
    /// Expected purchases in `(T, T + t]` (`t` per customer or one for all).
    ExpectedPurchases,
}

/// Stream `quantity` over the kept customer draws (`customer`, draw-major `draws x n x 2`
/// log-rates) for the customers' histories (`recency`, `age`), with `horizon` (one value or
/// one per customer) for expected purchases.
pub fn predict(
    quantity: Quantity,
    customer: &[f32],
    recency: &[f64],
    age: &[f64],
    horizon: &[f64],
    opts: &PredictOptions<'_>,
) -> Result<PosteriorPrediction> {
    let n = recency.len();
    if n == 0 || age.len() != n || !customer.len().is_multiple_of(2 * n) || customer.is_empty() {
        return Err(ClvError::invalid_parameter(
            "customer_draws",
            format!(
                "do not match the {n} customers the model was fitted on: refit, or pass the \
                 fitted customers"
            ),
        ));
    }
    if quantity == Quantity::ExpectedPurchases {
        if horizon.len() != 1 && horizon.len() != n {
            return Err(ClvError::invalid_parameter(
                "t",
                format!(
                    "needs one value or one per customer ({n}), got {}",
                    horizon.len()
                ),
            ));
        }
        if let Some(&h) = horizon.iter().find(|h| !(h.is_finite() && **h >= 0.0)) {
            return Err(ClvError::invalid_parameter(
                "t",
                format!("must be finite and >= 0, got {h}"),
            ));
        }
    }
    let n_draws = customer.len() / (2 * n);
    posterior_predict(
        n,
        n_draws,
        |s, range, out| {
            let draw = &customer[s * 2 * n..(s + 1) * 2 * n];
            for (o, i) in out.iter_mut().zip(range) {
                let lambda = f64::from(draw[2 * i]).exp();
                let mu = f64::from(draw[2 * i + 1]).exp();
                *o = match quantity {
                    Quantity::Lambda => lambda,
                    Quantity::Mu => mu,
                    Quantity::ProbabilityAlive => p_alive(lambda, mu, recency[i], age[i]),
                    Quantity::ExpectedPurchases => {
                        let h = horizon[if horizon.len() == 1 { 0 } else { i }];
                        expected_purchases(lambda, mu, recency[i], age[i], h)
                    }
                };
            }
            Ok(())
        },
        opts,
    )
}

/// Simulate a data set from the model (for recovery and calibration tests): `n` customers with
/// the design `design` (row-major, p columns), population `b` (p x 2, column-major: the
/// coefficients of ln lambda, then of ln mu) and `sigma`, observed for `age[i]`.
pub fn simulate(
    design: &[f64],
    p: usize,
    b: &[f64],
    sigma: [f64; 3],
    age: &[f64],
    seed: u64,
) -> Result<(Vec<f64>, Vec<f64>)> {
    let n = age.len();
    let s = Matrix2::new(sigma[0], sigma[1], sigma[1], sigma[2]);
    let l = s
        .cholesky()
        .ok_or_else(|| ClvError::invalid_parameter("sigma", "must be positive definite"))?
        .l();
    let mut frequency = vec![0.0; n];
    let mut recency = vec![0.0; n];
    for i in 0..n {
        let mut rng = Rng::for_stream(seed, i as u64);
        let row = &design[i * p..(i + 1) * p];
        let (mut m0, mut m1) = (0.0, 0.0);
        for j in 0..p {
            m0 += b[j] * row[j];
            m1 += b[p + j] * row[j];
        }
        let (z0, z1) = (rng.normal(), rng.normal());
        let lambda = (m0 + l[(0, 0)] * z0).exp();
        let mu = (m1 + l[(1, 0)] * z0 + l[(1, 1)] * z1).exp();
        let end = rng.exponential(mu).min(age[i]);
        let mut t = 0.0;
        loop {
            t += rng.exponential(lambda);
            if t > end {
                break;
            }
            frequency[i] += 1.0;
            recency[i] = t;
        }
    }
    Ok((frequency, recency))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn simulated(n: usize, seed: u64) -> (Vec<f64>, Vec<f64>, Vec<f64>, Vec<f64>) {
        let age: Vec<f64> = (0..n).map(|i| 30.0 + (i % 10) as f64).collect();
        let design = vec![1.0; n];
        let (x, t_x) = simulate(&design, 1, &[-2.0, -3.5], [0.5, 0.1, 0.6], &age, seed).unwrap();
        (x, t_x, age, design)
    }

    #[test]
    fn predictions_are_in_range_and_limits_hold() {
        assert_eq!(p_alive(0.5, 0.1, 10.0, 10.0), 1.0);
        let p = p_alive(0.5, 0.1, 1.0, 30.0);
        assert!(p > 0.0 && p < 1e-6);
        // mu -> 0: lambda h.
        let e = expected_purchases(0.2, 1e-12, 10.0, 10.0, 5.0);
        assert!((e - 1.0).abs() < 1e-9);
        let e = expected_purchases(0.2, 0.05, 10.0, 10.0, 5.0);
        assert!((e - 0.2 * (1.0 - (-0.25f64).exp()) / 0.05).abs() < 1e-12);
    }

    #[test]
    fn sampler_recovers_population_and_is_thread_independent() {
        let (x, t_x, age, design) = simulated(1500, 4);
        let data = AbeData {
            frequency: &x,
            recency: &t_x,
            age: &age,
            design: &design,
            n_covariates: 1,
        };
        let run = |jobs: i64| {
            let opts = HbOptions {
                chains: 2,
                draws: 150,
                tune: 150,
                seed: 8,
                customer_draws: 40,
                exec: Exec::with_jobs(Some(jobs)).unwrap(),
                ..HbOptions::default()
            };
            sample(&data, &DEFAULT_PRIOR, &opts).unwrap()
        };
        let one = run(1);
        let two = run(2);
        assert_eq!(one, two);
        assert_eq!(one.population.dim(), (300, 5));
        // Every 8th of 150 draws per chain: 19 per chain, at most the 40 asked for.
        assert_eq!(one.n_customer_draws, 38);
        let mean = |j: usize| one.population.column(j).mean().unwrap();
        assert!((mean(0) + 2.0).abs() < 0.15, "{}", mean(0));
        assert!((mean(1) + 3.5).abs() < 0.5, "{}", mean(1));
        assert!((mean(2) - 0.5).abs() < 0.2, "{}", mean(2));
        let pred = predict(
            Quantity::ProbabilityAlive,
            &one.customer,
            &t_x,
            &age,
            &[],
            &PredictOptions {
                level: Some(0.9),
                ..PredictOptions::default()
            },
        )
        .unwrap();
        let lower = pred.lower.unwrap();
        let upper = pred.upper.unwrap();
        for i in 0..x.len() {
            assert!((0.0..=1.0).contains(&pred.mean[i]));
            // (The mean of a skewed posterior can lie outside an equal-tailed interval.)
            assert!(0.0 <= lower[i] && lower[i] <= upper[i] && upper[i] <= 1.0 + 1e-12);
        }
    }

    #[test]
    fn elliptical_update_leaves_the_customer_posterior_invariant() {
        // A customer without repeat purchases (the correlated case) and one with several:
        // the chain's means and covariance of (ln lambda, ln mu) match a quadrature of
        // prior x likelihood on a fine grid.
        let mean = [-2.0, -3.0];
        let sigma = Matrix2::new(1.0, 0.3, 0.3, 1.5);
        let chol = sigma.cholesky().unwrap().l();
        let inv = sigma.try_inverse().unwrap();
        for &(x, t_x, t) in &[(0.0, 0.0, 30.0), (4.0, 20.0, 30.0)] {
            let log_post = |u: f64, v: f64| {
                let (a, b) = (u - mean[0], v - mean[1]);
                customer_log_likelihood(u, v, x, t_x, t)
                    - 0.5 * (inv[(0, 0)] * a * a + 2.0 * inv[(0, 1)] * a * b + inv[(1, 1)] * b * b)
            };
            let (h, m) = (0.02, 600);
            let mut w = [0.0; 6];
            for i in 0..m {
                for j in 0..m {
                    let u = mean[0] - 6.0 + h * i as f64;
                    let v = mean[1] - 7.0 + h * j as f64;
                    let p = log_post(u, v).exp();
                    for (k, f) in [1.0, u, v, u * u, u * v, v * v].iter().enumerate() {
                        w[k] += p * f;
                    }
                }
            }
            let want: Vec<f64> = w.iter().map(|s| s / w[0]).collect();
            let mut rng = Rng::new(17);
            let mut state = mean;
            let n = 60_000;
            let mut got = [0.0; 6];
            for _ in 0..n {
                update_customer(&mut state, x, t_x, t, mean, &chol, &mut rng);
                let [u, v] = state;
                for (k, f) in [1.0, u, v, u * u, u * v, v * v].iter().enumerate() {
                    got[k] += f / n as f64;
                }
            }
            let var = |g: &[f64], a: usize, b: usize, ab: usize| g[ab] - g[a] * g[b];
            assert!((got[1] - want[1]).abs() < 0.04, "{x}: {got:?} vs {want:?}");
            assert!((got[2] - want[2]).abs() < 0.05, "{x}: {got:?} vs {want:?}");
            for (a, b, ab) in [(1, 1, 3), (1, 2, 4), (2, 2, 5)] {
                let (g, w) = (var(&got, a, b, ab), var(&want, a, b, ab));
                assert!((g - w).abs() < 0.06, "{x}: {got:?} vs {want:?}");
            }
        }
    }

    #[test]
    fn gradients_match_finite_differences() {
        let h = 1e-6;
        for &(u, v, x, t_x, t) in &[
            (-2.0, -3.0, 0.0, 0.0, 30.0),
            (-1.5, -4.0, 4.0, 20.0, 30.0),
            (0.5, -0.5, 2.0, 1.0, 3.0),
        ] {
            let (value, du, dv) = customer_log_likelihood_gradient(u, v, x, t_x, t);
            let f = |u, v| customer_log_likelihood(u, v, x, t_x, t);
            assert!((value - f(u, v)).abs() < 1e-12);
            // The one-logarithm form against the two log-sums.
            let total = u.exp() + v.exp();
            let sums =
                x * u - ln_add_exp(u, v) - total * t_x + ln_add_exp(v, u - total * (t - t_x));
            assert!(
                (value - sums).abs() < 1e-12 * (1.0 + sums.abs()),
                "{value} vs {sums}"
            );
            assert!((du - (f(u + h, v) - f(u - h, v)) / (2.0 * h)).abs() < 1e-6);
            assert!((dv - (f(u, v + h) - f(u, v - h)) / (2.0 * h)).abs() < 1e-6);
        }
    }

    #[test]
    fn partially_non_centred_map_inverts_and_has_its_jacobian() {
        // A customer with repeat purchases (curvature in both directions) and one without.
        let sigma = Matrix2::new(1.3, 0.2, 0.2, 2.6);
        let sigma_inv = precision_from_factor(&sigma.cholesky().unwrap().l());
        let inv = sigma.try_inverse().unwrap();
        assert!((sigma_inv[0] - inv[(0, 0)]).abs() < 1e-12);
        assert!((sigma_inv[1] - inv[(0, 1)]).abs() < 1e-12);
        assert!((sigma_inv[2] - inv[(1, 1)]).abs() < 1e-12);
        for &(x, t_x, t) in &[(4.0, 20.0, 30.0), (0.0, 0.0, 30.0)] {
            let approx = LikelihoodApprox::at([-2.5, -3.5], x, t_x, t);
            let [p11, p12, p22] = approx.precision;
            assert!(p11 >= 0.0 && p22 >= 0.0 && p11 * p22 - p12 * p12 >= -1e-12);
            let map = CustomerMap::new(&approx, sigma_inv, [-3.0, -3.2]);
            let theta = [-2.2, -4.1];
            let back = map.theta(map.coordinate(theta));
            assert!((back[0] - theta[0]).abs() < 1e-12 && (back[1] - theta[1]).abs() < 1e-12);
            // ln |d theta / d rho| by finite differences.
            let rho = map.coordinate(theta);
            let h = 1e-6;
            let column = |k: usize| {
                let (mut up, mut down) = (rho, rho);
                up[k] += h;
                down[k] -= h;
                let (a, b) = (map.theta(up), map.theta(down));
                [(a[0] - b[0]) / (2.0 * h), (a[1] - b[1]) / (2.0 * h)]
            };
            let (c0, c1) = (column(0), column(1));
            let det = (c0[0] * c1[1] - c0[1] * c1[0]).abs().ln();
            assert!(
                (det - map.ln_jacobian()).abs() < 1e-6,
                "{det} vs {}",
                map.ln_jacobian()
            );
            // With the approximation's mean: the conditional mean solves (S + P) mean = S m + h.
            let [s11, s12, s22] = sigma_inv;
            let [m0, m1] = map.mean;
            let lhs0 = (s11 + p11) * m0 + (s12 + p12) * m1;
            let lhs1 = (s12 + p12) * m0 + (s22 + p22) * m1;
            let rhs0 = s11 * -3.0 + s12 * -3.2 + approx.shift[0];
            let rhs1 = s12 * -3.0 + s22 * -3.2 + approx.shift[1];
            assert!((lhs0 - rhs0).abs() < 1e-9 && (lhs1 - rhs1).abs() < 1e-9);
        }
        // The positive part of an indefinite matrix keeps its positive eigenvalue.
        let [a, b, c] = positive_part(1.0, 2.0, 1.0);
        assert!((a - 1.5).abs() < 1e-12 && (b - 1.5).abs() < 1e-12 && (c - 1.5).abs() < 1e-12);
        assert_eq!(positive_part(-1.0, 0.0, -2.0), [0.0; 3]);
    }

    #[test]
    fn population_posterior_matches_importance_sampling_on_small_data() {
        // Three customers (rates of order one, so that a proper prior of order one is not
        // swamped): the whole sampler's posterior means of the population parameters against
        // self-normalised importance sampling of the same posterior from its prior (B, Sigma
        // drawn by the conjugate update with no data, each customer's log-rates from the
        // population, weighted by the customers' likelihoods). A wrong population move shifts
        // these means by many standard errors: leaving out the partially non-centred map's
        // Jacobian moved the mean of the log_mu intercept by 6.3 combined standard errors.
        let frequency = [0.0, 2.0, 5.0];
        let recency = [0.0, 1.5, 2.8];
        let age = [3.0, 3.0, 3.5];
        let design = [1.0, 1.0, 1.0];
        let data = AbeData {
            frequency: &frequency,
            recency: &recency,
            age: &age,
            design: &design,
            n_covariates: 1,
        };
        let prior = RegressionPrior {
            coefficient_precision: 1.0,
            dof: 8.0,
            scale: 5.0,
        };
        // Importance sampling: weighted means and their standard errors (delta method).
        let mut rng = Rng::new(31);
        let empty = RegressionStats {
            xtx: DMatrix::zeros(1, 1),
            xty: DMatrix::zeros(1, 2),
            yty: Matrix2::zeros(),
            n: 0.0,
        };
        let m = 400_000;
        let mut draws = Vec::with_capacity(m);
        let mut ln_w = Vec::with_capacity(m);
        for _ in 0..m {
            let (b, sigma) = draw_regression(&empty, &prior, &mut rng).unwrap();
            let l = sigma.cholesky().unwrap().l();
            let mut ln_weight = 0.0;
            for i in 0..3 {
                let (z0, z1) = (rng.normal(), rng.normal());
                let u = b[(0, 0)] + l[(0, 0)] * z0;
                let v = b[(0, 1)] + l[(1, 0)] * z0 + l[(1, 1)] * z1;
                ln_weight += customer_log_likelihood(u, v, frequency[i], recency[i], age[i]);
            }
            draws.push([
                b[(0, 0)],
                b[(0, 1)],
                sigma[(0, 0)],
                sigma[(0, 1)],
                sigma[(1, 1)],
            ]);
            ln_w.push(ln_weight);
        }
        let top = ln_w.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        let w: Vec<f64> = ln_w.iter().map(|l| (l - top).exp()).collect();
        let w_sum: f64 = w.iter().sum();
        let w_sq: f64 = w.iter().map(|w| w * w).sum();
        let is_ess = w_sum * w_sum / w_sq;
        assert!(is_ess > 20_000.0, "{is_ess}");
        let opts = HbOptions {
            chains: 4,
            draws: 5000,
            tune: 500,
            seed: 3,
            customer_draws: 4,
            ..HbOptions::default()
        };
        let fit = sample(&data, &prior, &opts).unwrap();
        for k in 0..5 {
            let want = draws.iter().zip(&w).map(|(d, w)| d[k] * w).sum::<f64>() / w_sum;
            let want_se = (draws
                .iter()
                .zip(&w)
                .map(|(d, w)| (w * (d[k] - want)).powi(2))
                .sum::<f64>())
            .sqrt()
                / w_sum;
            // The chains' standard error by batch means (40 batches of 500 draws).
            let column = fit.population.column(k);
            let got = column.mean().unwrap();
            let batches: Vec<f64> = column
                .to_vec()
                .chunks(500)
                .map(|c| c.iter().sum::<f64>() / c.len() as f64)
                .collect();
            let nb = batches.len() as f64;
            let batch_var = batches.iter().map(|x| (x - got).powi(2)).sum::<f64>() / (nb - 1.0);
            let got_se = (batch_var / nb).sqrt();
            let z = (got - want) / want_se.hypot(got_se);
            eprintln!("{k}: chain {got:.4} +- {got_se:.4}, importance {want:.4} +- {want_se:.4}, z {z:.2}");
            assert!(
                z.abs() < 4.5,
                "{k}: {got} +- {got_se} vs {want} +- {want_se}"
            );
        }
    }

    #[test]
    fn bad_input_is_refused() {
        let data = AbeData {
            frequency: &[1.0, 0.0],
            recency: &[2.0, 1.0],
            age: &[3.0, 3.0],
            design: &[1.0, 1.0],
            n_covariates: 1,
        };
        assert!(matches!(
            sample(&data, &DEFAULT_PRIOR, &HbOptions::default()),
            Err(ClvError::InvalidData(_))
        ));
        let data = AbeData {
            frequency: &[1.0, 0.0, 2.0],
            recency: &[2.0, 0.0, 2.5],
            age: &[3.0, 3.0, 3.0],
            design: &[1.0, 2.0, 1.0, 2.0, 1.0, 2.0],
            n_covariates: 2,
        };
        assert!(matches!(
            sample(&data, &DEFAULT_PRIOR, &HbOptions::default()),
            Err(ClvError::InvalidData(_))
        ));
    }
}
