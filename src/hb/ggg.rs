//! Pareto/GGG of Platzer & Reutterer (2016), "Ticking away the moments: timing regularity
//! helps to better predict customer activity", Marketing Science 35(5), 779-799.
//!
//! Customer `i` has gamma inter-transaction times with shape `k_i` and rate `k_i lambda_i`
//! (mean `1 / lambda_i`; the larger `k_i`, the more regular), and an exponential lifetime
//! `tau_i` of rate `mu_i`; across customers
//!
//! ```text
//! k_i ~ Gamma(t, gamma),   lambda_i ~ Gamma(r, alpha),   mu_i ~ Gamma(s, beta)   (rates).
//! ```
//!
//! Given `(k, lambda, tau)`, the `x` repeat transactions up to `t_x` and none in
//! `(t_x, min(tau, T)]` have likelihood
//!
//! ```text
//! prod_j f(ITT_j; k, k lambda) * Q(k, k lambda (min(tau, T) - t_x))
//!   = (k lambda)^(k x) / Gamma(k)^x exp((k - 1) litt - k lambda t_x) * Q(...),
//! ```
//!
//! with `litt` the sum of the logs of the inter-transaction times and `Q` the regularized
//! upper incomplete gamma function: `x`, `t_x`, `T` and `litt` are sufficient.
//!
//! The sampler is Gibbs, as in the paper: per customer (in parallel), `ln k` and `ln lambda`
//! by slice steps, `tau` by Metropolis-Hastings steps with an independence proposal (a mixture
//! of the uniform on `(t_x, T)` and `t_x` plus the exponential lifetime), `mu` from its
//! conjugate `Gamma(s + 1, beta + tau)`; then each population pair: the rate from its
//! conjugate gamma (prior `1 / rate`, scale-free), the shape by a slice step on its log (prior
//! density `(1 + shape)^-2`, proper and free of any unit).

use super::{iteration_key, slice_step, HbOptions, Poller};
use crate::bayes::predict::{posterior_predict, PosteriorPrediction, PredictOptions};
use crate::error::{ClvError, Result};
use crate::parallel::Exec;
use crate::random::Rng;
use crate::special::ln_gamma;

/// `ln Q(a, x)`, the log of the regularized upper incomplete gamma function (series for
/// `x < a + 1`, Lentz's continued fraction otherwise; Numerical Recipes 6.2), finite far into
/// the tail where `Q` itself underflows.
pub fn ln_gamma_q(a: f64, x: f64) -> f64 {
    if x <= 0.0 {
        return 0.0;
    }
    let ln_prefix = -x + a * x.ln() - ln_gamma(a);
    if x < a + 1.0 {
        // P(a, x) = e^-x x^a / Gamma(a + 1) sum_n x^n / ((a + 1) ... (a + n)).
        let (mut term, mut sum, mut ap) = (1.0 / a, 1.0 / a, a);
        for _ in 0..10_000 {
            ap += 1.0;
            term *= x / ap;
            sum += term;
            if term.abs() < sum.abs() * 1e-16 {
                break;
            }
        }
        let p = (ln_prefix + sum.ln()).exp();
        return (-p).ln_1p();
    }
    let tiny = 1e-300;
    let mut b = x + 1.0 - a;
    let mut c = 1.0 / tiny;
    let mut d = 1.0 / b;
    let mut h = d;
    for i in 1..10_000 {
        let an = -(i as f64) * (i as f64 - a);
        b += 2.0;
        d = an * d + b;
        if d.abs() < tiny {
            d = tiny;
        }
        c = b + an / c;
        if c.abs() < tiny {
            c = tiny;
        }
        d = 1.0 / d;
        let delta = d * c;
        h *= delta;
        if (delta - 1.0).abs() < 1e-16 {
            break;
        }
    }
    ln_prefix + h.ln()
}

/// The data: frequency `x`, recency `t_x`, age `T` and `litt` (sum of the logs of the
/// inter-transaction times) per customer.
#[derive(Clone, Copy)]
pub struct GggData<'a> {
    pub frequency: &'a [f64],
    pub recency: &'a [f64],
    pub age: &'a [f64],
    pub litt: &'a [f64],
}

impl GggData<'_> {
    pub fn len(&self) -> usize {
        self.frequency.len()
    }

    pub fn is_empty(&self) -> bool {
        self.frequency.is_empty()
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
        if self.recency.len() != n || self.age.len() != n || self.litt.len() != n {
            return Err(ClvError::invalid_data(
                "litt",
                None,
                None,
                "frequency, recency, T and litt must have the same length",
            ));
        }
        for i in 0..n {
            let (x, t_x, t, l) = (
                self.frequency[i],
                self.recency[i],
                self.age[i],
                self.litt[i],
            );
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
            if !(t_x >= 0.0 && t_x <= t) || (x == 0.0 && t_x != 0.0) || (x > 0.0 && t_x == 0.0) {
                return Err(ClvError::invalid_data(
                    "recency",
                    Some(i),
                    Some(t_x),
                    "must lie in (0, T] when frequency > 0, and be 0 when frequency is 0",
                ));
            }
            // The mean of the logs is at most the log of the mean (Jensen).
            if !l.is_finite() || (x > 0.0 && l > x * (t_x / x).ln() + 1e-9 * (1.0 + l.abs())) {
                return Err(ClvError::invalid_data(
                    "litt",
                    Some(i),
                    Some(l),
                    "must be the sum of the logs of the x inter-transaction times (at most \
                     x ln(recency / x)); compute it with summarize_transactions(..., \
                     regularity=True)",
                ));
            }
        }
        Ok(())
    }
}

/// Population parameter names, in the order of [`GggDraws::population`]'s columns.
pub const POPULATION: [&str; 6] = ["t", "gamma", "r", "alpha", "s", "beta"];

/// Draws of the Pareto/GGG.
#[derive(Debug, Clone, PartialEq)]
pub struct GggDraws {
    pub chains: usize,
    pub draws: usize,
    /// `(chains * draws) x 6`, chain-major: t, gamma, r, alpha, s, beta.
    pub population: ndarray::Array2<f64>,
    /// Customer draws kept for predictions: `(k, lambda, mu, tau)` as f32, draw-major
    /// (`customer_draws x n x 4`).
    pub customer: Vec<f32>,
    pub n_customer_draws: usize,
    /// Posterior means over every kept draw: k, lambda, mu, tau, P(alive at T).
    pub means: [Vec<f64>; 5],
}

/// Customer state: k, lambda, mu, tau.
type State = [f64; 4];

/// Log of the likelihood terms that depend on `(k, lambda)` given `tau`.
#[inline]
fn ln_lik(k: f64, lambda: f64, x: f64, t_x: f64, litt: f64, gap: f64) -> f64 {
    let rate = k * lambda;
    let ll = if x > 0.0 {
        x * (k * rate.ln() - ln_gamma(k)) + (k - 1.0) * litt - rate * t_x
    } else {
        0.0
    };
    ll + ln_gamma_q(k, rate * gap)
}

#[allow(clippy::too_many_arguments)]
fn update_customer(
    state: &mut State,
    x: f64,
    t_x: f64,
    t: f64,
    litt: f64,
    pop: &[f64; 6],
    rng: &mut Rng,
) {
    let [mut k, mut lambda, _, mut tau] = *state;
    let [shape_k, rate_k, shape_l, rate_l, shape_m, rate_m] = *pop;
    let gap = tau.min(t) - t_x;
    // ln k: likelihood, Gamma(t, gamma) prior, Jacobian.
    let width = 1.0 / (1.0 + x).sqrt() + 0.5;
    let lk = slice_step(k.ln(), width, rng, |u| {
        let kk = u.exp();
        if !(kk.is_finite() && kk > 1e-8 && kk < 1e6) {
            return f64::NEG_INFINITY;
        }
        ln_lik(kk, lambda, x, t_x, litt, gap) + shape_k * u - rate_k * kk
    });
    k = lk.exp();
    // ln lambda.
    let width = 2.0 / (1.0 + k * x).sqrt();
    let ll = slice_step(lambda.ln(), width, rng, |u| {
        let l = u.exp();
        if !(l.is_finite() && l > 0.0) {
            return f64::NEG_INFINITY;
        }
        ln_lik(k, l, x, t_x, litt, gap) + shape_l * u - rate_l * l
    });
    lambda = ll.exp();
    // tau with mu summed out (mu ~ Gamma(s, beta), tau | mu ~ Exponential(mu): tau is Lomax,
    // density s beta^s / (beta + tau)^(s + 1)), by Metropolis-Hastings with the independence
    // proposal q = 1/2 Uniform(t_x, T) + 1/2 (T + Lomax(s, beta + T)), the latter the exact
    // conditional beyond T (where the likelihood is constant in tau).
    let span = t - t_x;
    let ln_target = |v: f64| {
        -(shape_m + 1.0) * (rate_m + v).ln() + ln_gamma_q(k, k * lambda * (v.min(t) - t_x))
    };
    let tail_scale = rate_m + t;
    let ln_proposal = |v: f64| {
        let uniform = if v < t && span > 0.0 { 1.0 / span } else { 0.0 };
        let tail = if v > t {
            shape_m * (shape_m * tail_scale.ln() - (shape_m + 1.0) * (rate_m + v).ln()).exp()
        } else {
            0.0
        };
        if span > 0.0 {
            (0.5 * (uniform + tail)).ln()
        } else {
            tail.ln()
        }
    };
    for _ in 0..2 {
        let proposal = if span > 0.0 && rng.uniform() < 0.5 {
            t_x + span * rng.uniform()
        } else {
            t + tail_scale * (rng.uniform().powf(-1.0 / shape_m) - 1.0)
        };
        let ratio = ln_target(proposal) - ln_target(tau) + ln_proposal(tau) - ln_proposal(proposal);
        if ratio.is_finite() && rng.uniform().ln() < ratio {
            tau = proposal;
        }
    }
    // mu | tau ~ Gamma(s + 1, beta + tau): drawn for the output only.
    let mu = rng.gamma(shape_m + 1.0) / (rate_m + tau);
    *state = [k, lambda, mu, tau];
}

/// The dropout pair `(s, beta)` given the lifetimes (mu summed out: Lomax), each by a slice
/// step on its log with the priors of [`update_pair`]; `sum_ln(beta)` is `sum ln(beta + tau_i)`.
fn update_dropout(
    shape: f64,
    rate: f64,
    n: f64,
    sum_ln: impl Fn(f64) -> f64,
    rng: &mut Rng,
) -> (f64, f64) {
    let ln_lik = |s: f64, b: f64, total: f64| n * s.ln() + n * s * b.ln() - (s + 1.0) * total;
    let total = sum_ln(rate);
    let u = slice_step(shape.ln(), 0.5, rng, |u| {
        let s = u.exp();
        if !(s.is_finite() && s > 1e-8 && s < 1e8) {
            return f64::NEG_INFINITY;
        }
        ln_lik(s, rate, total) - 2.0 * s.ln_1p() + u
    });
    let shape = u.exp();
    let w = slice_step(rate.ln(), 0.5, rng, |w| {
        let b = w.exp();
        if !(b.is_finite() && b > 1e-12 && b < 1e12) {
            return f64::NEG_INFINITY;
        }
        // Prior 1 / beta: flat in ln beta.
        ln_lik(shape, b, sum_ln(b))
    });
    (shape, w.exp())
}

/// One (shape, rate) pair of the population given the customers' `n` values with sum `sum`
/// and sum of logs `sum_ln`: rate from its conjugate gamma (prior `1 / rate`), shape by a
/// slice step on its log (prior `(1 + shape)^-2`).
fn update_pair(shape: f64, n: f64, sum: f64, sum_ln: f64, rng: &mut Rng) -> (f64, f64) {
    let rate = rng.gamma(n * shape) / sum;
    let ln_rate = rate.ln();
    let u = slice_step(shape.ln(), 0.5, rng, |u| {
        let a = u.exp();
        if !(a.is_finite() && a > 1e-8 && a < 1e8) {
            return f64::NEG_INFINITY;
        }
        n * (a * ln_rate - ln_gamma(a)) + a * sum_ln - 2.0 * a.ln_1p() + u
    });
    (u.exp(), rate)
}

const INIT_SALT: u64 = 0x510e_527f_ade6_82d1;

fn p_alive_at(state: &State, t: f64) -> f64 {
    if state[3] > t {
        1.0
    } else {
        0.0
    }
}

struct ChainOut {
    population: Vec<f64>,
    customer: Vec<f32>,
    sums: [Vec<f64>; 5],
}

fn run_chain(
    data: &GggData<'_>,
    opts: &HbOptions<'_>,
    chain: usize,
    exec: &Exec,
) -> Result<ChainOut> {
    let n = data.len();
    let (stride, stored) = opts.customer_stride();
    let mut init = Rng::for_stream(opts.seed ^ INIT_SALT, chain as u64);
    let jitter = |rng: &mut Rng| (rng.uniform() - 0.5).exp();
    // Starting point: k = 1 (Poisson purchasing), each customer's own rate, alive.
    let mut pop = [
        1.0 * jitter(&mut init),
        1.0 * jitter(&mut init),
        1.0 * jitter(&mut init),
        1.0,
        1.0 * jitter(&mut init),
        1.0,
    ];
    let mean_t = data.age.iter().sum::<f64>() / n as f64;
    pop[3] = mean_t * jitter(&mut init);
    pop[5] = 4.0 * mean_t * jitter(&mut init);
    let mut state: Vec<State> = (0..n)
        .map(|i| {
            let lambda = (data.frequency[i] + 0.5) / data.age[i] * jitter(&mut init);
            [
                jitter(&mut init),
                lambda,
                1.0 / (4.0 * mean_t),
                data.age[i] * 1.5,
            ]
        })
        .collect();
    let mut out = ChainOut {
        population: Vec::with_capacity(opts.draws * 6),
        customer: Vec::with_capacity(stored * n * 4),
        sums: Default::default(),
    };
    for s in out.sums.iter_mut() {
        *s = vec![0.0; n];
    }
    let mut poller = Poller::new(opts);
    let iterations = opts.tune + opts.draws * opts.thin;
    for it in 0..iterations {
        let key = iteration_key(opts.seed, chain, it);
        let pop_ref = &pop;
        exec.fill_blocks(&mut state, |start, block| {
            for (offset, s) in block.iter_mut().enumerate() {
                let i = start + offset;
                let mut rng = Rng::for_stream(key, i as u64);
                update_customer(
                    s,
                    data.frequency[i],
                    data.recency[i],
                    data.age[i],
                    data.litt[i],
                    pop_ref,
                    &mut rng,
                );
            }
        });
        let sums = exec.chunked_sum(n, 6, |range, acc| {
            for i in range {
                let [k, lambda, mu, _] = state[i];
                acc[0] += k;
                acc[1] += k.ln();
                acc[2] += lambda;
                acc[3] += lambda.ln();
                acc[4] += mu;
                acc[5] += mu.ln();
            }
        });
        let mut rng = Rng::for_stream(key, u64::MAX);
        for j in 0..2 {
            let (shape, rate) =
                update_pair(pop[2 * j], n as f64, sums[2 * j], sums[2 * j + 1], &mut rng);
            pop[2 * j] = shape;
            pop[2 * j + 1] = rate;
        }
        let lifetimes = &state;
        let sum_ln = |b: f64| {
            exec.chunked_sum(n, 1, |range, acc| {
                for i in range {
                    acc[0] += (b + lifetimes[i][3]).ln();
                }
            })[0]
        };
        let (shape, rate) = update_dropout(pop[4], pop[5], n as f64, sum_ln, &mut rng);
        pop[4] = shape;
        pop[5] = rate;
        if it >= opts.tune && (it - opts.tune + 1).is_multiple_of(opts.thin) {
            let kept = (it - opts.tune + 1) / opts.thin - 1;
            out.population.extend(pop);
            for (i, s) in state.iter().enumerate() {
                for j in 0..4 {
                    out.sums[j][i] += s[j];
                }
                out.sums[4][i] += p_alive_at(s, data.age[i]);
            }
            if kept.is_multiple_of(stride) {
                out.customer
                    .extend(state.iter().flat_map(|s| s.map(|v| v as f32)));
            }
        }
        poller.poll()?;
    }
    Ok(out)
}

/// Draw from the posterior of the Pareto/GGG.
pub fn sample(data: &GggData<'_>, opts: &HbOptions<'_>) -> Result<GggDraws> {
    opts.check()?;
    data.check()?;
    let n = data.len();
    let chain_ids: Vec<usize> = (0..opts.chains).collect();
    let results: Vec<Result<ChainOut>> = if opts.chains > 1 && opts.exec.threads() > 1 {
        opts.exec
            .map(&chain_ids, |&c| run_chain(data, opts, c, &Exec::Serial))
    } else {
        chain_ids
            .iter()
            .map(|&c| run_chain(data, opts, c, &opts.exec))
            .collect()
    };
    let rows = opts.chains * opts.draws;
    let mut population = Vec::with_capacity(rows * 6);
    let mut customer = Vec::new();
    let mut means: [Vec<f64>; 5] = Default::default();
    for m in means.iter_mut() {
        *m = vec![0.0; n];
    }
    for result in results {
        let c = result?;
        population.extend(c.population);
        customer.extend(c.customer);
        for (m, s) in means.iter_mut().zip(&c.sums) {
            for (a, b) in m.iter_mut().zip(s) {
                *a += b;
            }
        }
    }
    for m in means.iter_mut() {
        for v in m.iter_mut() {
            *v /= rows as f64;
        }
    }
    let n_customer_draws = customer.len() / (4 * n);
    Ok(GggDraws {
        chains: opts.chains,
        draws: opts.draws,
        population: ndarray::Array2::from_shape_vec((rows, 6), population)
            .map_err(|e| ClvError::Internal(format!("draw layout: {e}")))?,
        customer,
        n_customer_draws,
        means,
    })
}

/// A per-customer quantity of the Pareto/GGG at a customer draw.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum GggQuantity {
    K,
    Lambda,
    Mu,
    /// Whether the customer is alive at `T` (0 or 1 at a draw; its mean is P(alive)).
    Alive,
    /// Purchases in `(T, T + t]` simulated at the draw (their mean is the expected number).
    Purchases,
}

/// Purchases in `(T, T + horizon]` of a customer at one draw, simulated: the renewal process
/// of gamma(k, k lambda) gaps from `t_x`, conditioned on no event in `(t_x, T]` (the first
/// future gap drawn from the gamma conditioned to exceed `T - t_x` by rejection, or by
/// restarting from `T` when that is too unlikely for rejection), until the end of the
/// lifetime (`tau`, or for a customer alive at `T`, `tau` itself: drawn beyond `T`).
fn simulate_purchases(s: &[f32], t_x: f64, t: f64, horizon: f64, rng: &mut Rng) -> f64 {
    let (k, lambda, tau) = (f64::from(s[0]), f64::from(s[1]), f64::from(s[3]));
    if tau <= t || horizon <= 0.0 {
        return 0.0;
    }
    let end = tau.min(t + horizon);
    let rate = k * lambda;
    let wait = t - t_x;
    let mut time = None;
    for _ in 0..64 {
        let gap = rng.gamma(k) / rate;
        if gap > wait {
            time = Some(t_x + gap);
            break;
        }
    }
    // When a gap beyond the wait is too rare to hit, the process is far into the gamma's
    // tail, where the remaining time is nearly exponential at the tail's rate.
    let first = time.unwrap_or_else(|| t + rng.exponential(rate));
    if first > end {
        return 0.0;
    }
    1.0 + renewals_within(k, rate, end - first, rng)
}

/// The number of gamma(k, rate) gaps whose running sum stays within `span`: exact in
/// distribution at a cost logarithmic in the count (a long horizon with a long lifetime meant
/// billions of single gaps). The sum of `m` gaps is gamma(m k, rate), so whole blocks are
/// drawn at once while they fit; the block that overshoots is split by the gamma bridge (the
/// first `h` of `m` gaps take a Beta(h k, (m - h) k) share of the block's sum) until one gap
/// is left.
fn renewals_within(k: f64, rate: f64, span: f64, rng: &mut Rng) -> f64 {
    let mut count = 0.0;
    let mut left = span;
    loop {
        // A block expected to fill about half of what is left.
        let m = (0.5 * left * rate).floor().max(1.0);
        let sum = rng.gamma(m * k) / rate;
        if sum <= left {
            count += m;
            left -= sum;
            continue;
        }
        // The running sum crosses `left` inside this block of `m` gaps summing to `sum`.
        let (mut m, mut sum) = (m, sum);
        while m > 1.0 {
            let h = (0.5 * m).floor();
            let head = sum * rng.beta(h * k, (m - h) * k);
            if head <= left {
                count += h;
                left -= head;
                sum -= head;
                m -= h;
            } else {
                sum = head;
                m = h;
            }
        }
        return count;
    }
}

/// Salt of the prediction simulations.
const PREDICT_SALT: u64 = 0x9b05_688c_2b3e_6c1f;

/// Stream `quantity` over the kept customer draws (`customer`, draw-major `draws x n x 4`).
pub fn predict(
    quantity: GggQuantity,
    customer: &[f32],
    recency: &[f64],
    age: &[f64],
    horizon: &[f64],
    seed: u64,
    opts: &PredictOptions<'_>,
) -> Result<PosteriorPrediction> {
    let n = recency.len();
    if n == 0 || age.len() != n || customer.is_empty() || !customer.len().is_multiple_of(4 * n) {
        return Err(ClvError::invalid_parameter(
            "customer_draws",
            format!("do not match the {n} customers the model was fitted on"),
        ));
    }
    if quantity == GggQuantity::Purchases && horizon.len() != 1 && horizon.len() != n {
        return Err(ClvError::invalid_parameter(
            "t",
            format!(
                "needs one value or one per customer ({n}), got {}",
                horizon.len()
            ),
        ));
    }
    let n_draws = customer.len() / (4 * n);
    posterior_predict(
        n,
        n_draws,
        |s, range, out| {
            let draw = &customer[s * 4 * n..(s + 1) * 4 * n];
            for (o, i) in out.iter_mut().zip(range) {
                let c = &draw[4 * i..4 * i + 4];
                *o = match quantity {
                    GggQuantity::K => f64::from(c[0]),
                    GggQuantity::Lambda => f64::from(c[1]),
                    GggQuantity::Mu => f64::from(c[2]),
                    GggQuantity::Alive => {
                        if f64::from(c[3]) > age[i] {
                            1.0
                        } else {
                            0.0
                        }
                    }
                    GggQuantity::Purchases => {
                        let h = horizon[if horizon.len() == 1 { 0 } else { i }];
                        let stream = (s as u64) << 32 ^ i as u64;
                        let mut rng = Rng::for_stream(seed ^ PREDICT_SALT, stream);
                        simulate_purchases(c, recency[i], age[i], h, &mut rng)
                    }
                };
            }
            Ok(())
        },
        opts,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn block_renewal_counts_match_gap_by_gap_counts() {
        // Same distribution as counting single gaps: mean and variance agree within Monte
        // Carlo error, for regular (k = 4), exponential (k = 1) and clumpy (k = 0.3) gaps.
        for (k, rate, span) in [(4.0, 2.0, 30.0), (1.0, 1.0, 12.5), (0.3, 0.6, 40.0)] {
            let reps = 20_000;
            let (mut rng_a, mut rng_b) = (Rng::new(5), Rng::new(6));
            let (mut sa, mut sa2, mut sb, mut sb2) = (0.0, 0.0, 0.0, 0.0);
            for _ in 0..reps {
                let a = renewals_within(k, rate, span, &mut rng_a);
                let (mut n, mut time) = (0.0, 0.0);
                loop {
                    time += rng_b.gamma(k) / rate;
                    if time > span {
                        break;
                    }
                    n += 1.0;
                }
                sa += a;
                sa2 += a * a;
                sb += n;
                sb2 += n * n;
            }
            let r = f64::from(reps);
            let (ma, mb) = (sa / r, sb / r);
            let (va, vb) = (sa2 / r - ma * ma, sb2 / r - mb * mb);
            let se = ((va + vb) / r).sqrt();
            assert!(
                (ma - mb).abs() < 5.0 * se,
                "k {k}: mean {ma} vs {mb} (se {se})"
            );
            assert!((va / vb - 1.0).abs() < 0.08, "k {k}: variance {va} vs {vb}");
        }
        // A count far beyond what single gaps could reach (mean gap k / rate = 2: about
        // 5e14 gaps, relative sd 3e-8), in a few hundred draws.
        let mut rng = Rng::new(7);
        let n = renewals_within(2.0, 1.0, 1e15, &mut rng);
        assert!((n / 5e14 - 1.0).abs() < 1e-6, "{n}");
    }

    #[test]
    fn log_upper_incomplete_gamma_matches_known_values() {
        // Q(1, x) = e^-x; Q(2, x) = (1 + x) e^-x; Q(0.5, x) = erfc(sqrt x).
        for x in [0.01, 0.5, 1.0, 3.0, 10.0, 200.0] {
            assert!((ln_gamma_q(1.0, x) + x).abs() < 1e-12, "{x}");
            let want = (1.0 + x).ln() - x;
            assert!((ln_gamma_q(2.0, x) - want).abs() < 1e-12, "{x}");
        }
        // erfc(1) = 0.157299207050285.
        assert!((ln_gamma_q(0.5, 1.0) - 0.157_299_207_050_285_f64.ln()).abs() < 1e-12);
        assert_eq!(ln_gamma_q(3.0, 0.0), 0.0);
        assert!(ln_gamma_q(3.0, 1e4).is_finite());
    }

    #[test]
    fn sampler_is_thread_independent_and_recovers_regularity() {
        // Customers with gamma(k = 4) gaps at rate 0.5 a week, long-lived, 52 weeks.
        let n = 300;
        let mut rng = Rng::new(1);
        let (mut x, mut t_x, mut litt) = (vec![0.0; n], vec![0.0; n], vec![0.0; n]);
        let age = vec![52.0; n];
        for i in 0..n {
            let mut time = 0.0;
            loop {
                let gap = rng.gamma(4.0) / (4.0 * 0.5);
                if time + gap > 52.0 {
                    break;
                }
                time += gap;
                x[i] += 1.0;
                t_x[i] = time;
                litt[i] += gap.ln();
            }
        }
        let data = GggData {
            frequency: &x,
            recency: &t_x,
            age: &age,
            litt: &litt,
        };
        let run = |jobs: i64| {
            let opts = HbOptions {
                chains: 2,
                draws: 60,
                tune: 60,
                seed: 3,
                customer_draws: 20,
                exec: Exec::with_jobs(Some(jobs)).unwrap(),
                ..HbOptions::default()
            };
            sample(&data, &opts).unwrap()
        };
        let one = run(1);
        assert_eq!(one, run(2));
        // Every iteration of every chain is counted for a progress display.
        let done = std::sync::atomic::AtomicUsize::new(0);
        let counted = HbOptions {
            chains: 2,
            draws: 5,
            tune: 3,
            thin: 2,
            progress: Some(&done),
            ..HbOptions::default()
        };
        sample(&data, &counted).unwrap();
        assert_eq!(done.into_inner(), 2 * (3 + 5 * 2));
        // Mean regularity k = t / gamma near 4.
        let mean_k: f64 = one.means[0].iter().sum::<f64>() / n as f64;
        assert!((mean_k - 4.0).abs() < 1.0, "{mean_k}");
        let pred = predict(
            GggQuantity::Purchases,
            &one.customer,
            &t_x,
            &age,
            &[52.0],
            1,
            &PredictOptions::default(),
        )
        .unwrap();
        let total: f64 = pred.mean.iter().sum();
        // About 26 purchases a year each while alive.
        assert!(
            total > 10.0 * n as f64 && total < 30.0 * n as f64,
            "{total}"
        );
    }
}
