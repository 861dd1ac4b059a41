//! BG/NBD: the beta-geometric / negative-binomial model of Fader, Hardie & Lee (2005),
//! "Counting Your Customers the Easy Way: An Alternative to the Pareto/NBD Model",
//! Marketing Science 24(2), 275-284.
//!
//! While active, a customer buys at Poisson rate `lambda ~ Gamma(r, alpha)`; after each repeat
//! purchase they become inactive with probability `p ~ Beta(a, b)`. For a customer with `x` repeat
//! purchases, the last at `t_x`, observed for time `T` since the first purchase (FHL 2005, eq. 6):
//!
//! ```text
//! L = B(a, b+x)/B(a, b) * Gamma(r+x) alpha^r / (Gamma(r) (alpha+T)^(r+x))
//!   + [x > 0] B(a+1, b+x-1)/B(a, b) * Gamma(r+x) alpha^r / (Gamma(r) (alpha+t_x)^(r+x))
//! ```
//!
//! evaluated in log space as `A1 + A2 + ln(1 + exp(A3 - A2))`.
//!
//! Predictions avoid the Gaussian hypergeometric closed forms (which divide by `a - 1` and have
//! poles when `a + b + x <= 1`): the expected number of purchases of an active customer is written
//! as a negative-binomial mixture of truncated geometric sums, all of whose terms are positive
//! (see [`active_expected_purchases`]).

use super::RfmModel;
use crate::chebyshev::{self, Interpolant};
use crate::data::{Rfm, RfmColumns};
use crate::error::Result;
use crate::fit::{
    check_params, fit, fit_with_warm_start, Domain, FitOptions, FitResult, FusedPass, Likelihood,
    ParamSpec,
};
use crate::parallel::Exec;
use crate::random::Rng;
use crate::special::{
    digamma_diff, ln_gamma_diff, ln_negative_binomial_pmf, log1p_exp, logistic,
    negative_binomial_upper_tail, rising_terms, trigamma, RisingTerms, SERIES_TOLERANCE,
};

/// Parameter names and domains: r, alpha (purchase rate), a, b (dropout).
pub static PARAMS: [ParamSpec; 4] = [
    ParamSpec {
        name: "r",
        domain: Domain::Positive,
    },
    ParamSpec {
        name: "alpha",
        domain: Domain::Positive,
    },
    ParamSpec {
        name: "a",
        domain: Domain::Positive,
    },
    ParamSpec {
        name: "b",
        domain: Domain::Positive,
    },
];

/// BG/NBD parameters.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BgNbdParams {
    pub r: f64,
    pub alpha: f64,
    pub a: f64,
    pub b: f64,
    /// MBG/NBD (Batislam, Denizel & Filiztekin 2007): the dropout coin is also tossed right
    /// after the first purchase, so a customer can be gone before any repeat purchase.
    pub modified: bool,
}

impl BgNbdParams {
    /// From a slice in the order of [`PARAMS`], checking the domains.
    pub fn from_slice(values: &[f64]) -> Result<Self> {
        check_params(&PARAMS, values)?;
        Ok(BgNbdParams::new(values[0], values[1], values[2], values[3]))
    }

    /// BG/NBD parameters (no dropout at the first purchase).
    pub const fn new(r: f64, alpha: f64, a: f64, b: f64) -> Self {
        BgNbdParams {
            r,
            alpha,
            a,
            b,
            modified: false,
        }
    }

    /// The number of dropout coins an active customer with `x` repeat purchases has survived:
    /// `x` for BG/NBD, `x + 1` for MBG/NBD. Every formula of both models depends on the dropout
    /// process only through it.
    #[inline]
    pub fn flips(&self, x: f64) -> f64 {
        if self.modified {
            x + 1.0
        } else {
            x
        }
    }
}

/// Log-likelihood of one customer.
pub fn log_likelihood(p: &BgNbdParams, x: f64, t_x: f64, age: f64) -> f64 {
    // r ln(alpha) - (r + x) ln(alpha + T), without the cancellation of its two large terms
    // when r is huge (a fit running off to the Poisson limit).
    let a1 = ln_gamma_diff(p.r, x) - x * p.alpha.ln();
    let a2 = ln_beta_shift(p.a, p.b, p.flips(x)) - (p.r + x) * (age / p.alpha).ln_1p();
    if p.flips(x) == 0.0 {
        return a1 + a2;
    }
    a1 + a2 + log1p_exp(dropout_log_odds(p, x, t_x, age))
}

/// `ln B(a, b + x) - ln B(a, b)`, precise even when a and b are huge.
fn ln_beta_shift(a: f64, b: f64, x: f64) -> f64 {
    ln_gamma_diff(b, x) - ln_gamma_diff(a + b, x)
}

/// `A3 - A2`: the log odds that the customer dropped out right after the last purchase, versus
/// still being active at `T`.
fn dropout_log_odds(p: &BgNbdParams, x: f64, t_x: f64, age: f64) -> f64 {
    p.a.ln() - (p.b + (p.flips(x) - 1.0)).ln() + (p.r + x) * ((age - t_x) / (p.alpha + t_x)).ln_1p()
}

/// Probability that a customer with history (x, t_x, T) is still active at T (FHL 2005, eq. 11
/// rearranged): `1 / (1 + [x > 0] a/(b+x-1) ((alpha+T)/(alpha+t_x))^(r+x))`.
pub fn probability_alive(p: &BgNbdParams, x: f64, t_x: f64, age: f64) -> f64 {
    if p.flips(x) == 0.0 {
        return 1.0;
    }
    logistic(-dropout_log_odds(p, x, t_x, age))
}

/// [`probability_alive`] for many customers, in parallel and vectorised (branch-free, with the
/// crate's SIMD-friendly `ln` and `exp`; agrees with the scalar function to about 1e-14).
pub fn probability_alive_bulk(
    p: &BgNbdParams,
    columns: &RfmColumns<'_>,
    exec: &Exec,
    out: &mut [f64],
) {
    exec.fill_blocks(out, |start, block| {
        let rows = start..start + block.len();
        probability_alive_block_dispatch(
            p,
            &columns.frequency[rows.clone()],
            &columns.recency[rows.clone()],
            &columns.age[rows],
            block,
        );
    });
}

#[inline(always)]
fn probability_alive_block(p: &BgNbdParams, x: &[f64], t_x: &[f64], age: &[f64], out: &mut [f64]) {
    use crate::fastmath::{exp, ln, ln_1p};
    let ln_a = p.a.ln();
    for (((slot, &x), &t_x), &age) in out.iter_mut().zip(x).zip(t_x).zip(age) {
        // For x = 0 the odds are -inf (P = 1); computed on a harmless stand-in to stay branch-free.
        let k = p.flips(x);
        let repeat = k > 0.0;
        let bx1 = if repeat { p.b + (k - 1.0) } else { 1.0 };
        // ln((alpha + T) / (alpha + t_x)) as ln_1p of the relative gap: no cancellation when
        // t_x is close to T and r + x is large.
        let odds = ln_a - ln(bx1) + (p.r + x) * ln_1p((age - t_x) / (p.alpha + t_x));
        // logistic(-odds), exact in both tails.
        let e = exp(-odds.abs());
        let alive = if odds > 0.0 { e } else { 1.0 } / (1.0 + e);
        *slot = if repeat { alive } else { 1.0 };
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
fn probability_alive_block_avx2(
    p: &BgNbdParams,
    x: &[f64],
    t_x: &[f64],
    age: &[f64],
    out: &mut [f64],
) {
    probability_alive_block(p, x, t_x, age, out)
}

fn probability_alive_block_dispatch(
    p: &BgNbdParams,
    x: &[f64],
    t_x: &[f64],
    age: &[f64],
    out: &mut [f64],
) {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx2") {
        // SAFETY: the processor supports AVX2 (checked just above).
        return unsafe { probability_alive_block_avx2(p, x, t_x, age, out) };
    }
    probability_alive_block(p, x, t_x, age, out)
}

/// Expected number of purchases in the next `t` time units of a customer who is active now and
/// whose posterior is `lambda ~ Gamma(k, rate)`, `p ~ Beta(a_post, b_post)`.
///
/// Given `lambda`, the number of purchase opportunities in `t` is Poisson; mixed over the gamma
/// posterior it is negative binomial, `J ~ NB(k, w)` with `w = t / (rate + t)`. Given `J = j`
/// opportunities the customer completes `min(j, G)` purchases, `G` geometric in `p`, whose mean
/// is `S_j = sum_{i<j} E[(1-p)^i] = sum_{i<j} (b_post)_i / (a_post + b_post)_i`. So the answer is
/// `E[S_J]`, a sum of positive terms, finite for every parameter value (the closed form
/// `(c-1)/(a-1) [1 - ... 2F1(...)]` of FHL eq. 10 is the same quantity with a removable pole at
/// a = 1 and true poles where a + b + x <= 1).
///
/// The sum starts at the mode of `J` with an unnormalised weight 1 and runs both ways until the
/// remaining terms are below [`SERIES_TOLERANCE`] of the totals (a rigorous bound on each tail);
/// dividing by the sum of the weights normalises it. No gamma function is evaluated, so the
/// result keeps full precision even when `J` is concentrated on millions of opportunities, and
/// the error is a few ulps times the number of terms.
pub fn active_expected_purchases(k: f64, rate: f64, t: f64, a_post: f64, b_post: f64) -> f64 {
    if !(t > 0.0) {
        return 0.0;
    }
    let c = a_post + b_post;
    let w = t / (rate + t);
    // Mode of NB(k, w).
    let mode = if k > 1.0 {
        ((k - 1.0) * w / (1.0 - w)).floor()
    } else {
        0.0
    };
    // The series needs about `mode` terms plus a tail of about 40 / (1 - w); past a few hundred
    // thousand the integral over the dropout probability is cheaper (and as accurate).
    if mode + 40.0 * (rate + t) / rate > SERIES_MAX_TERMS {
        return active_expected_purchases_by_quadrature(k, t.ln() - rate.ln(), a_post, b_post);
    }
    // S_j and the next increment m_j = (b_post)_j / (c)_j at j = mode.
    let mut s_mode = 0.0;
    let mut m_mode = 1.0;
    let mut i = 0.0;
    while i < mode {
        s_mode += m_mode;
        m_mode *= (b_post + i) / (c + i);
        i += 1.0;
    }

    // Upwards from the mode: `p` is P(J = j) / P(J = mode).
    let (mut sum, mut norm) = (0.0, 0.0);
    let (mut j, mut p, mut s, mut m) = (mode, 1.0, s_mode, m_mode);
    loop {
        sum += p * s;
        norm += p;
        s += m;
        // One division for both ratios: (b + j) / (c + j) and w (k + j) / (j + 1).
        let inv = 1.0 / ((c + j) * (j + 1.0));
        m *= (b_post + j) * (j + 1.0) * inv;
        let ratio = w * (k + j) * (c + j) * inv;
        p *= ratio;
        j += 1.0;
        // Beyond here P(J = j + i) <= p rho^i and S_{j+i} <= s + i m (m is decreasing).
        let rho = if k >= 1.0 { ratio } else { w };
        if p == 0.0 {
            break;
        }
        if rho < 1.0 {
            let geometric = 1.0 / (1.0 - rho);
            let tail_sum = p * geometric * (s + m * rho * geometric);
            if tail_sum <= SERIES_TOLERANCE * sum && p * geometric <= SERIES_TOLERANCE * norm {
                break;
            }
        }
    }
    // Downwards from the mode (only when the mode is above 0).
    let (mut j, mut p, mut s, mut m) = (mode, 1.0, s_mode, m_mode);
    while j > 0.0 {
        // Step from j to j - 1.
        let ratio = j / (w * (k + j - 1.0));
        p *= ratio;
        m *= (c + j - 1.0) / (b_post + j - 1.0);
        s -= m;
        j -= 1.0;
        sum += p * s;
        norm += p;
        // Going down, the pmf ratio shrinks and S decreases, so the rest is below p / (1 - ratio)
        // (times S for the main sum).
        if ratio < 1.0 && p / (1.0 - ratio) <= SERIES_TOLERANCE * norm.min(sum / s.max(1.0)) {
            break;
        }
    }
    sum / norm
}

/// Terms above which [`active_expected_purchases`] integrates instead of summing.
const SERIES_MAX_TERMS: f64 = 2e5;

/// The same quantity as [`active_expected_purchases`] as an integral over the posterior of the
/// dropout probability, `E_p[(1 - (1 + p z)^-k) / p]` with `p ~ Beta(a_post, b_post)` and
/// `ln_z = ln(t / rate)` (given p, the number of purchases of an active customer in t is
/// `(1 - E[(1-p)^J]) / p` over the gamma-mixed Poisson count J).
///
/// Double-exponential quadrature in the logit of p, centred on the posterior's mode there,
/// `ln(a / b)`, and scaled by its spread `sqrt(1/a + 1/b)`: `logit p = m + s sinh(tau)`. The
/// integrand becomes `g(p) p^a (1-p)^b / B(a, b) s cosh(tau)`, evaluated in log space, which
/// decays doubly exponentially in both directions whether the posterior is diffuse (tiny a) or
/// concentrated (huge a and b). The trapezoid rule is refined until two levels agree to 1e-13.
/// Used where the series would need more than [`SERIES_MAX_TERMS`] terms.
pub fn active_expected_purchases_by_quadrature(k: f64, ln_z: f64, a_post: f64, b_post: f64) -> f64 {
    let centre = a_post.ln() - b_post.ln();
    let scale = (1.0 / a_post + 1.0 / b_post).sqrt();
    let ln_pq = |u: f64| (-log1p_exp(-u), -log1p_exp(u));
    // The density is normalised by its own quadrature (no ln B(a, b), whose ln-gamma terms lose
    // digits when a and b are large), relative to its value at the centre.
    let (ln_p0, ln_q0) = ln_pq(centre);
    let shift = a_post * ln_p0 + b_post * ln_q0;
    // (g(p) f(p), f(p)) times the Jacobian, at tau.
    let integrand = |tau: f64| {
        let u = centre + scale * tau.sinh();
        let (ln_p, ln_q) = ln_pq(u);
        // ln g with g = (1 - (1 + p z)^-k) / p, in logs so that neither p z, its powers nor 1/p
        // overflow; g tends to k z as p z -> 0.
        let ln_pz = ln_p + ln_z;
        let ln_g = if ln_pz < -40.0 {
            k.ln() + ln_z + (-0.5 * (k + 1.0) * ln_pz.exp()).ln_1p()
        } else {
            let ln_1p_pz = if ln_pz > 40.0 {
                ln_pz + (-ln_pz).exp()
            } else {
                ln_pz.exp().ln_1p()
            };
            (-(-k * ln_1p_pz).exp_m1()).ln() - ln_p
        };
        let ln_density = a_post * ln_p + b_post * ln_q - shift + (scale * tau.cosh()).ln();
        ((ln_g + ln_density).exp(), ln_density.exp())
    };
    // Trapezoid sums outwards from 0 until the terms are negligible (tau = 40 at the most: far
    // past where p or 1 - p underflows for any parameter in range).
    let trapezoid = |h: f64| {
        let (mut num, mut den) = integrand(0.0);
        for sign in [1.0, -1.0] {
            let mut j = 1.0;
            loop {
                let (gf, f) = integrand(sign * j * h);
                num += gf;
                den += f;
                if (gf <= 1e-18 * num && f <= 1e-18 * den && j * h > 2.0) || j * h > 40.0 {
                    break;
                }
                j += 1.0;
            }
        }
        num / den
    };
    let mut h = 0.25;
    let mut previous = trapezoid(h);
    loop {
        h *= 0.5;
        let current = trapezoid(h);
        let settled = (current - previous).abs() <= 1e-14 * current.abs() && current > 0.0;
        if settled || h < 1e-4 {
            return current;
        }
        previous = current;
    }
}

/// Expected number of purchases in (T, T + t] for a customer with history (x, t_x, T)
/// (FHL 2005, eq. 10): P(active) times the expectation for an active customer, whose posterior is
/// `lambda ~ Gamma(r + x, alpha + T)`, `p ~ Beta(a, b + x)` (`b + x + 1` for MBG/NBD).
pub fn conditional_expected_purchases(p: &BgNbdParams, x: f64, t_x: f64, age: f64, t: f64) -> f64 {
    probability_alive(p, x, t_x, age)
        * active_expected_purchases(p.r + x, p.alpha + age, t, p.a, p.b + p.flips(x))
}

/// Rows whose interpolants are evaluated in lockstep by [`conditional_expected_purchases_bulk`].
const LOCKSTEP: usize = 8;

/// Rows below which [`conditional_expected_purchases_bulk`] evaluates every row directly.
const BULK_MIN_ROWS: usize = 10_000;
/// Customers sharing a frequency below which that frequency is evaluated directly.
const BULK_MIN_GROUP: usize = 64;
/// Relative accuracy demanded of the interpolants in [`conditional_expected_purchases_bulk`].
const BULK_TOLERANCE: f64 = 1e-13;

/// [`conditional_expected_purchases`] for many customers and one horizon `t`, in parallel.
///
/// The active-customer part depends only on (x, T), and for a fixed x it is a smooth function of
/// T. For every frequency shared by enough customers it is replaced by a piecewise Chebyshev
/// interpolant in ln(alpha + T) over that frequency's range, accepted only if it reproduces the series to
/// [`BULK_TOLERANCE`] relative at the points between its nodes (otherwise those rows are
/// evaluated directly). Each row then costs one P(alive) and one short polynomial. Returns the
/// number of rows served by an interpolant.
pub fn conditional_expected_purchases_bulk(
    p: &BgNbdParams,
    columns: &RfmColumns<'_>,
    t: f64,
    exec: &Exec,
    out: &mut [f64],
) -> usize {
    weighted_expected_purchases_bulk(p, columns, &[(1.0, t)], exec, out)
}

/// `sum_j w_j E[X(T, T + t_j)]` for every row and the `(w_j, t_j)` in `horizons`, in parallel
/// (discounted sums over several horizons, e.g. customer value, cost one interpolant per
/// frequency like a single horizon: the weighted sum of the active-customer expectations is
/// itself smooth in T). Returns the number of rows served by an interpolant.
pub fn weighted_expected_purchases_bulk(
    p: &BgNbdParams,
    columns: &RfmColumns<'_>,
    horizons: &[(f64, f64)],
    exec: &Exec,
    out: &mut [f64],
) -> usize {
    // The active-customer part for frequency x at rate alpha + T = rate.
    let active_sum = |x: f64, rate: f64| -> f64 {
        horizons
            .iter()
            .map(|&(w, t)| w * active_expected_purchases(p.r + x, rate, t, p.a, p.b + p.flips(x)))
            .sum()
    };
    let direct = |i: usize| {
        let (x, age) = (columns.frequency[i], columns.age[i]);
        probability_alive(p, x, columns.recency[i], age) * active_sum(x, p.alpha + age)
    };
    let n = columns.len();
    if n < BULK_MIN_ROWS {
        exec.fill(out, direct);
        return 0;
    }
    // Range of T and count for each frequency (frequencies are whole numbers: see validation).
    let max_x = columns.frequency.iter().fold(0.0f64, |m, &x| m.max(x));
    // Count and range of T for each frequency: dense per-chunk tables when the frequencies are
    // small (the usual case), else sparse maps, so one customer with a huge frequency cannot
    // make every chunk allocate a table that large.
    type Group = (usize, f64, f64);
    let merge = |g: &mut Group, q: Group| *g = (g.0 + q.0, g.1.min(q.1), g.2.max(q.2));
    let groups: std::collections::BTreeMap<u64, Group> = if max_x <= 1024.0 {
        let slots = max_x as usize + 1;
        let dense = exec.chunked_reduce(
            n,
            || vec![(0usize, f64::INFINITY, f64::NEG_INFINITY); slots],
            |range, acc: &mut Vec<Group>| {
                for i in range {
                    let age = columns.age[i];
                    merge(&mut acc[columns.frequency[i] as usize], (1, age, age));
                }
            },
            |total, part| total.iter_mut().zip(part).for_each(|(g, q)| merge(g, q)),
        );
        (0u64..).zip(dense).filter(|(_, g)| g.0 > 0).collect()
    } else {
        exec.chunked_reduce(
            n,
            std::collections::BTreeMap::new,
            |range, acc: &mut std::collections::BTreeMap<u64, Group>| {
                for i in range {
                    let age = columns.age[i];
                    let g = acc
                        .entry(columns.frequency[i] as u64)
                        .or_insert((0, age, age));
                    merge(g, (1, age, age));
                }
            },
            |total, part| {
                for (x, q) in part {
                    merge(total.entry(x).or_insert((0, q.1, q.2)), q);
                }
            },
        )
    };
    // One interpolant per well-populated frequency, built in parallel, in the variable
    // v = ln(alpha + T): the function's singularities (alpha + T = 0 and alpha + T = -t) lie at
    // v = -inf and at imaginary distance pi from the real axis, so pieces of a fixed width in v
    // converge geometrically whatever the scale of T.
    let populated: Vec<(u64, Group)> = groups
        .into_iter()
        .filter(|(_, g)| g.0 >= BULK_MIN_GROUP)
        .collect();
    let built: Vec<Option<Interpolant>> = exec.map(&populated, |&(x, (_, lo, hi))| {
        let x = x as f64;
        let active = |v: f64| active_sum(x, v.exp());
        let ln = crate::fastmath::ln;
        Interpolant::fit(active, ln(p.alpha + lo), ln(p.alpha + hi), BULK_TOLERANCE)
    });
    let interpolants: std::collections::HashMap<u64, Interpolant> = populated
        .iter()
        .zip(built)
        .filter_map(|(&(x, _), f)| f.map(|f| (x, f)))
        .collect();
    // Rows find their interpolant through a table indexed by frequency when frequencies are
    // small, else through the map.
    let table: Option<Vec<Option<&Interpolant>>> =
        (max_x <= 1024.0).then(|| (0..=max_x as u64).map(|x| interpolants.get(&x)).collect());
    // P(alive) with the vectorised kernel, then times the active-customer expectation: four
    // rows at a time through their interpolants, the rest (and rows without one) directly.
    probability_alive_bulk(p, columns, exec, out);
    let active = |x: f64, age: f64| active_sum(x, p.alpha + age);
    let lookup = |i: usize| {
        let x = columns.frequency[i];
        let v = crate::fastmath::ln(p.alpha + columns.age[i]);
        let found = match &table {
            Some(table) => table[x as usize],
            None => interpolants.get(&(x as u64)),
        };
        found.filter(|f| f.covers(v)).map(|f| f.locate(v))
    };
    let interpolated = std::sync::atomic::AtomicUsize::new(0);
    exec.fill_blocks(out, |start, block| {
        let mut quads = block.chunks_exact_mut(LOCKSTEP);
        let mut row = start;
        let mut direct = 0;
        for quad in &mut quads {
            let found: [_; LOCKSTEP] = std::array::from_fn(|l| lookup(row + l));
            if found.iter().all(Option::is_some) {
                let found = found.map(|f| f.expect("checked"));
                let values = chebyshev::eval_many(found.map(|(c, _)| c), found.map(|(_, u)| u));
                for (slot, v) in quad.iter_mut().zip(values) {
                    *slot *= v;
                }
            } else {
                for (l, slot) in quad.iter_mut().enumerate() {
                    let i = row + l;
                    *slot *= match found[l] {
                        Some((c, u)) => chebyshev::eval_many([c], [u])[0],
                        None => {
                            direct += 1;
                            active(columns.frequency[i], columns.age[i])
                        }
                    };
                }
            }
            row += LOCKSTEP;
        }
        for (l, slot) in quads.into_remainder().iter_mut().enumerate() {
            let i = row + l;
            *slot *= match lookup(i) {
                Some((c, u)) => chebyshev::eval_many([c], [u])[0],
                None => {
                    direct += 1;
                    active(columns.frequency[i], columns.age[i])
                }
            };
        }
        interpolated.fetch_add(block.len() - direct, std::sync::atomic::Ordering::Relaxed);
    });
    interpolated.into_inner()
}

/// E[X(t)]: expected purchases of a new customer in (0, t] (FHL 2005, eq. 9).
/// For MBG/NBD the customer first survives the coin at the first purchase (probability
/// `b / (a + b)`), after which `p ~ Beta(a, b + 1)`.
pub fn expected_purchases_new_customer(p: &BgNbdParams, t: f64) -> f64 {
    if p.modified {
        p.b / (p.a + p.b) * active_expected_purchases(p.r, p.alpha, t, p.a, p.b + 1.0)
    } else {
        active_expected_purchases(p.r, p.alpha, t, p.a, p.b)
    }
}

/// P(X(t) = n): probability that a new customer makes `n` purchases in (0, t] (FHL 2005, eq. 8).
/// The second term's `1 - sum` is a negative-binomial upper tail, summed directly.
pub fn purchase_count_probability(p: &BgNbdParams, n: u64, t: f64) -> f64 {
    let nf = n as f64;
    if !(t > 0.0) {
        return if n == 0 { 1.0 } else { 0.0 };
    }
    let w = t / (p.alpha + t);
    let ln_w = w.ln();
    let ln_1mw = (p.alpha / (p.alpha + t)).ln();
    // k dropout coins survived by a customer still active after n purchases.
    let k = p.flips(nf);
    let shift = ln_beta_shift(p.a, p.b, k);
    let first = (shift + ln_negative_binomial_pmf(p.r, nf, ln_w, ln_1mw)).exp();
    if k == 0.0 {
        return first;
    }
    // Dropped out at the k-th coin, after the n-th purchase (which happened by t):
    // B(a + 1, b + k - 1) / B(a, b) = a / (b + k - 1) * B(a, b + k) / B(a, b).
    let at_least_n = if n == 0 {
        1.0
    } else {
        negative_binomial_upper_tail(p.r, n, w, ln_w, ln_1mw)
    };
    let second = (p.a / (p.b + (k - 1.0))) * shift.exp() * at_least_n;
    (first + second).min(1.0)
}

/// The BG/NBD (or MBG/NBD) likelihood over compressed customer rows, for the fitting engine.
pub struct BgNbd<'a> {
    data: &'a Rfm,
    /// MBG/NBD instead of BG/NBD (see [`BgNbdParams::modified`]).
    modified: bool,
    /// Distinct frequencies, ascending.
    distinct_x: Vec<f64>,
    /// Maximal runs of consecutive rows with equal frequency: (first row, index into
    /// `distinct_x`). Compressed data is sorted by frequency, so there are few runs; every term
    /// that depends on x only (ln Gamma, digamma, ln Beta) is computed once per distinct x per
    /// evaluation, and the rows of a run go through a SIMD-friendly kernel.
    runs: Vec<(usize, usize)>,
}

/// Per-evaluation terms that depend on the frequency only (`k` is the number of dropout coins
/// survived, [`BgNbdParams::flips`]).
#[derive(Clone, Copy, Default)]
struct XTerms {
    /// ln Gamma(r+x) - ln Gamma(r) + ln B(a, b+k) - ln B(a, b)
    ln_const: f64,
    /// psi(r+x) - psi(r)
    d_r: f64,
    /// psi(a+b) - psi(a+b+k)
    d_a: f64,
    /// psi(b+k) - psi(a+b+k) - psi(b) + psi(a+b)
    d_b: f64,
    /// ln a - ln(b+k-1), the constant part of the dropout log odds (k > 0)
    ln_odds: f64,
    /// 1 / (b+k-1) (k > 0)
    inv_bx1: f64,
}

impl<'a> BgNbd<'a> {
    /// Prepare compressed rows (from [`RfmColumns::compress`]) for fitting BG/NBD.
    pub fn new(data: &'a Rfm) -> Self {
        Self::with_variant(data, false)
    }

    /// Prepare compressed rows for fitting MBG/NBD.
    pub fn modified(data: &'a Rfm) -> Self {
        Self::with_variant(data, true)
    }

    /// Prepare compressed rows for fitting BG/NBD, or MBG/NBD when `modified`.
    pub fn with_variant(data: &'a Rfm, modified: bool) -> Self {
        let mut distinct_x: Vec<f64> = data.frequency.clone();
        distinct_x.sort_unstable_by(f64::total_cmp);
        distinct_x.dedup();
        let mut runs = Vec::new();
        for (i, &x) in data.frequency.iter().enumerate() {
            if i == 0 || data.frequency[i - 1] != x {
                runs.push((i, distinct_x.partition_point(|v| *v < x)));
            }
        }
        BgNbd {
            data,
            modified,
            distinct_x,
            runs,
        }
    }

    fn params_at(&self, values: &[f64]) -> BgNbdParams {
        BgNbdParams {
            modified: self.modified,
            ..BgNbdParams::new(values[0], values[1], values[2], values[3])
        }
    }

    fn x_terms(&self, p: &BgNbdParams) -> Vec<XTerms> {
        let (r, a, b) = (p.r, p.a, p.b);
        let ln_a = a.ln();
        self.distinct_x
            .iter()
            .map(|&x| {
                let k = p.flips(x);
                let psi_ab_shift = digamma_diff(a + b, k);
                XTerms {
                    ln_const: ln_gamma_diff(r, x) + ln_beta_shift(a, b, k),
                    d_r: digamma_diff(r, x),
                    d_a: -psi_ab_shift,
                    d_b: digamma_diff(b, k) - psi_ab_shift,
                    ln_odds: if k > 0.0 {
                        ln_a - (b + (k - 1.0)).ln()
                    } else {
                        0.0
                    },
                    inv_bx1: if k > 0.0 { 1.0 / (b + (k - 1.0)) } else { 0.0 },
                }
            })
            .collect()
    }

    /// Per-row log-likelihoods of the compressed rows (unweighted), for diagnostics.
    pub fn row_log_likelihoods(&self, p: &BgNbdParams) -> Vec<f64> {
        let d = self.data;
        (0..d.len())
            .map(|i| log_likelihood(p, d.frequency[i], d.recency[i], d.age[i]))
            .collect()
    }
}

/// One customer's log-likelihood with its gradient and, when `SECOND`, its Hessian in
/// (r, alpha, a, b): the per-row form of the sums of [`BgNbd`], for data whose customers each
/// have their own alpha, a and b (covariates). `ln_p` holds the logs of the parameters (a
/// covariate pass has them without taking logarithms) and `shape` the terms of `r` at `x`
/// (the same for every customer with `x` purchases).
pub fn row_derivatives<const SECOND: bool>(
    p: &BgNbdParams,
    ln_p: &[f64; 4],
    shape: RisingTerms,
    x: f64,
    t_x: f64,
    age: f64,
) -> super::RowDerivatives {
    use crate::fastmath::{ln, ln_1p};
    let (r, alpha, a, b) = (p.r, p.alpha, p.a, p.b);
    let k = p.flips(x);
    let rx = r + x;
    let inv_alpha = 1.0 / alpha;
    let inv_at = 1.0 / (alpha + age);
    // ln((alpha + T) / alpha): r ln(alpha) - (r + x) ln(alpha + T) = -x ln(alpha) - (r + x) L1
    // keeps full precision when r is huge.
    let l1 = ln_1p(age * inv_alpha);
    let (ln_r, psi_r, trigamma_r) = shape;
    let mut value = ln_r - x * ln_p[1] - rx * l1;
    let mut gradient = [psi_r - l1, r * inv_alpha - rx * inv_at, 0.0, 0.0];
    let mut hessian = [[0.0; 4]; 4];
    if SECOND {
        hessian[0][0] = trigamma_r;
        hessian[0][1] = inv_alpha - inv_at;
        hessian[1][1] = -r * inv_alpha * inv_alpha + rx * inv_at * inv_at;
    }
    // With no dropout coin (x = 0 in BG/NBD) a and b do not enter.
    if k > 0.0 {
        // ln[B(a, b+k) / B(a, b)] and its derivatives.
        let (ln_beta, [psi_b, psi_ab], [trigamma_b, trigamma_ab]) = beta_shift::<SECOND>(a, b, k);
        value += ln_beta;
        gradient[2] = -psi_ab;
        gradient[3] = psi_b - psi_ab;
        // The dropout weight s = logistic(odds) and q = s (1 - s), with L and D as in `add_row`.
        let inv_atx = 1.0 / (alpha + t_x);
        let ib = 1.0 / (b + (k - 1.0));
        let l = ln_1p((age - t_x) * inv_atx);
        let d = inv_at - inv_atx;
        let ln_bk = if k == 1.0 { ln_p[3] } else { ln(b + (k - 1.0)) };
        let odds = ln_p[2] - ln_bk + rx * l;
        // ln(1 + e^odds), s = logistic(odds) and q = s (1 - s) from one exp, exact in both
        // tails (as in `add_row`).
        let e = crate::fastmath::exp(-odds.abs());
        value += odds.max(0.0) + ln_1p(e);
        let s = if odds >= 0.0 { 1.0 } else { e } / (1.0 + e);
        let q = e / ((1.0 + e) * (1.0 + e));
        gradient[0] += s * l;
        gradient[1] += rx * s * d;
        let inv_a = 1.0 / a;
        gradient[2] += s * inv_a;
        gradient[3] -= s * ib;
        if SECOND {
            hessian[0][0] += q * l * l;
            hessian[0][1] += s * d + rx * q * l * d;
            hessian[0][2] = q * l * inv_a;
            hessian[0][3] = -q * l * ib;
            hessian[1][1] += rx * s * (inv_atx * inv_atx - inv_at * inv_at) + rx * rx * q * d * d;
            hessian[1][2] = rx * q * d * inv_a;
            hessian[1][3] = -rx * q * d * ib;
            hessian[2][2] = -trigamma_ab + (q - s) * inv_a * inv_a;
            hessian[2][3] = -trigamma_ab - q * ib * inv_a;
            hessian[3][3] = trigamma_b - trigamma_ab + (s + q) * ib * ib;
        }
    }
    if SECOND {
        for i in 0..4 {
            for j in 0..i {
                hessian[i][j] = hessian[j][i];
            }
        }
    }
    (value, gradient, hessian)
}

/// `[f64; 4]` with lane `l` set to the expression: a plain loop over the lanes, which the
/// compiler turns into SIMD where `std::array::from_fn` (a call per lane) would not.
macro_rules! lanes {
    (|$l:ident| $value:expr) => {{
        let mut out = [0.0f64; 4];
        for $l in 0..4 {
            out[$l] = $value;
        }
        out
    }};
}

/// The log-likelihood of 4 lanes, the gradient as `gradient[m][lane]` and the Hessian as
/// `hessian[m][n][lane]`.
pub type LaneDerivatives = ([f64; 4], [[f64; 4]; 4], [[[f64; 4]; 4]; 4]);

/// [`row_derivatives`] for 4 customers at once, as structures of arrays: `theta[m][l]` is
/// parameter `m` (r, alpha, a, b) of lane `l` (r is shared), `ln_theta` their logs, `shape[l]`
/// the terms of `r` at `x[l]`, `modified` the variant; the Hessian only when `SECOND` (else 0).
/// Each lane does the same arithmetic as one call (so the same bits), in straight-line loops
/// over the lanes that compile to SIMD (as [`run_sums`]); lanes without a dropout coin compute
/// the dropout terms too and discard them.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
pub fn row_derivatives_x4<const SECOND: bool>(
    modified: bool,
    theta: &[[f64; 4]; 4],
    ln_theta: &[[f64; 4]; 4],
    shape: &[RisingTerms; 4],
    x: [f64; 4],
    t_x: [f64; 4],
    age: [f64; 4],
) -> LaneDerivatives {
    use crate::fastmath::{exp, ln, ln_1p};
    let r = theta[0][0];
    let [_, alpha, a, b] = *theta;
    let [_, ln_alpha, ln_a, ln_b] = *ln_theta;
    let coins = if modified { 1.0 } else { 0.0 };
    let k = lanes!(|l| x[l] + coins);
    let rx = lanes!(|l| r + x[l]);
    let inv_alpha = lanes!(|l| 1.0 / alpha[l]);
    let inv_at = lanes!(|l| 1.0 / (alpha[l] + age[l]));
    let l1 = lanes!(|l| ln_1p(age[l] * inv_alpha[l]));
    // The rising products of b and a + b over the lanes' coins, lanes past their own k
    // keeping their values (all lanes small whole numbers, as in `beta_shift`).
    let small = (0..4).all(|l| k[l] <= 16.0 && k[l].fract() == 0.0 && a[l] + b[l] < 1e15);
    let (ln_beta, psi_b, psi_ab, second_b, second_ab) = if small {
        let ab = lanes!(|l| a[l] + b[l]);
        let k_max = k.iter().fold(0.0_f64, |m, &v| m.max(v));
        let (mut p_b, mut d_b, mut dd_b) = ([1.0; 4], [0.0; 4], [0.0; 4]);
        let (mut p_ab, mut d_ab, mut dd_ab) = ([1.0; 4], [0.0; 4], [0.0; 4]);
        let mut j = 0.0;
        while j < k_max {
            for l in 0..4 {
                let on = j < k[l];
                let (f_b, f_ab) = (b[l] + j, ab[l] + j);
                if SECOND {
                    let next_dd_b = dd_b[l] * f_b + 2.0 * d_b[l];
                    let next_dd_ab = dd_ab[l] * f_ab + 2.0 * d_ab[l];
                    dd_b[l] = if on { next_dd_b } else { dd_b[l] };
                    dd_ab[l] = if on { next_dd_ab } else { dd_ab[l] };
                }
                let (next_d_b, next_d_ab) = (d_b[l] * f_b + p_b[l], d_ab[l] * f_ab + p_ab[l]);
                d_b[l] = if on { next_d_b } else { d_b[l] };
                d_ab[l] = if on { next_d_ab } else { d_ab[l] };
                p_b[l] *= if on { f_b } else { 1.0 };
                p_ab[l] *= if on { f_ab } else { 1.0 };
            }
            j += 1.0;
        }
        let ratio = lanes!(|l| p_b[l] / p_ab[l]);
        let mut ln_beta = lanes!(|l| ln(ratio[l]));
        for l in 0..4 {
            if !(ratio[l] >= f64::MIN_POSITIVE) {
                ln_beta[l] = ln(p_b[l]) - ln(p_ab[l]);
            }
        }
        let psi_b = lanes!(|l| d_b[l] / p_b[l]);
        let psi_ab = lanes!(|l| d_ab[l] / p_ab[l]);
        let (second_b, second_ab) = if SECOND {
            (
                lanes!(|l| dd_b[l] / p_b[l] - psi_b[l] * psi_b[l]),
                lanes!(|l| dd_ab[l] / p_ab[l] - psi_ab[l] * psi_ab[l]),
            )
        } else {
            ([0.0; 4], [0.0; 4])
        };
        (ln_beta, psi_b, psi_ab, second_b, second_ab)
    } else {
        let mut terms = [[0.0; 4]; 5];
        for l in 0..4 {
            if k[l] > 0.0 {
                let (v, [p_b, p_ab], [s_b, s_ab]) = beta_shift::<SECOND>(a[l], b[l], k[l]);
                for (term, value) in terms.iter_mut().zip([v, p_b, p_ab, s_b, s_ab]) {
                    term[l] = value;
                }
            }
        }
        let [ln_beta, psi_b, psi_ab, second_b, second_ab] = terms;
        (ln_beta, psi_b, psi_ab, second_b, second_ab)
    };
    let inv_atx = lanes!(|l| 1.0 / (alpha[l] + t_x[l]));
    let b_k1 = lanes!(|l| b[l] + (k[l] - 1.0));
    let ib = lanes!(|l| 1.0 / b_k1[l]);
    let big_l = lanes!(|l| ln_1p((age[l] - t_x[l]) * inv_atx[l]));
    let d = lanes!(|l| inv_at[l] - inv_atx[l]);
    // (Lanes without a coin have b - 1 here, possibly not positive: discarded below.)
    let ln_b_k1 = lanes!(|l| ln(b_k1[l]));
    let ln_bk = lanes!(|l| if k[l] == 1.0 { ln_b[l] } else { ln_b_k1[l] });
    let odds = lanes!(|l| ln_a[l] - ln_bk[l] + rx[l] * big_l[l]);
    let e = lanes!(|l| exp(-odds[l].abs()));
    let log1p = lanes!(|l| odds[l].max(0.0) + ln_1p(e[l]));
    let s = lanes!(|l| if odds[l] >= 0.0 { 1.0 } else { e[l] } / (1.0 + e[l]));
    let inv_a = lanes!(|l| 1.0 / a[l]);
    // The sums in the order of `row_derivatives`; `on(l, v)` keeps v for lanes with a coin.
    let active = lanes!(|l| if k[l] > 0.0 { 1.0 } else { 0.0 });
    let base = lanes!(|l| shape[l].0 - x[l] * ln_alpha[l] - rx[l] * l1[l]);
    let value = lanes!(|l| if active[l] > 0.0 {
        (base[l] + ln_beta[l]) + log1p[l]
    } else {
        base[l]
    });
    let g_r = lanes!(|l| {
        let g = shape[l].1 - l1[l];
        if active[l] > 0.0 {
            g + s[l] * big_l[l]
        } else {
            g
        }
    });
    let g_alpha = lanes!(|l| {
        let g = r * inv_alpha[l] - rx[l] * inv_at[l];
        if active[l] > 0.0 {
            g + rx[l] * s[l] * d[l]
        } else {
            g
        }
    });
    let g_a = lanes!(|l| if active[l] > 0.0 {
        -psi_ab[l] + s[l] * inv_a[l]
    } else {
        0.0
    });
    let g_b = lanes!(|l| if active[l] > 0.0 {
        (psi_b[l] - psi_ab[l]) - s[l] * ib[l]
    } else {
        0.0
    });
    let mut hessian = [[[0.0; 4]; 4]; 4];
    if SECOND {
        let q = lanes!(|l| e[l] / ((1.0 + e[l]) * (1.0 + e[l])));
        let on = |l: usize, v: f64| if active[l] > 0.0 { v } else { 0.0 };
        let upper = [
            (
                0,
                0,
                lanes!(|l| {
                    let h = shape[l].2;
                    if active[l] > 0.0 {
                        h + q[l] * big_l[l] * big_l[l]
                    } else {
                        h
                    }
                }),
            ),
            (
                0,
                1,
                lanes!(|l| {
                    let h = inv_alpha[l] - inv_at[l];
                    if active[l] > 0.0 {
                        h + (s[l] * d[l] + rx[l] * q[l] * big_l[l] * d[l])
                    } else {
                        h
                    }
                }),
            ),
            (0, 2, lanes!(|l| on(l, q[l] * big_l[l] * inv_a[l]))),
            (0, 3, lanes!(|l| on(l, -q[l] * big_l[l] * ib[l]))),
            (
                1,
                1,
                lanes!(|l| {
                    let h = -r * inv_alpha[l] * inv_alpha[l] + rx[l] * inv_at[l] * inv_at[l];
                    if active[l] > 0.0 {
                        h + (rx[l] * s[l] * (inv_atx[l] * inv_atx[l] - inv_at[l] * inv_at[l])
                            + rx[l] * rx[l] * q[l] * d[l] * d[l])
                    } else {
                        h
                    }
                }),
            ),
            (1, 2, lanes!(|l| on(l, rx[l] * q[l] * d[l] * inv_a[l]))),
            (1, 3, lanes!(|l| on(l, -rx[l] * q[l] * d[l] * ib[l]))),
            (
                2,
                2,
                lanes!(|l| on(l, -second_ab[l] + (q[l] - s[l]) * inv_a[l] * inv_a[l])),
            ),
            (
                2,
                3,
                lanes!(|l| on(l, -second_ab[l] - q[l] * ib[l] * inv_a[l])),
            ),
            (
                3,
                3,
                lanes!(|l| {
                    on(
                        l,
                        second_b[l] - second_ab[l] + (s[l] + q[l]) * ib[l] * ib[l],
                    )
                }),
            ),
        ];
        for (i, j, v) in upper {
            hessian[i][j] = v;
            hessian[j][i] = v;
        }
    }
    (value, [g_r, g_alpha, g_a, g_b], hessian)
}

/// `ln[B(a, b+k) / B(a, b)] = [ln Gamma(b+k) - ln Gamma(b)] - [ln Gamma(a+b+k) - ln Gamma(a+b)]`
/// with the digamma differences `[psi(b+k) - psi(b), psi(a+b+k) - psi(a+b)]` and, when
/// `SECOND`, the trigamma differences (else 0). For a small whole `k` both rising products
/// are formed in one loop and share one logarithm.
#[inline]
fn beta_shift<const SECOND: bool>(a: f64, b: f64, k: f64) -> (f64, [f64; 2], [f64; 2]) {
    const MAX_FACTORS: f64 = 16.0;
    let ab = a + b;
    if k <= MAX_FACTORS && k.fract() == 0.0 && ab < 1e15 {
        // Products P with their first and second derivatives P' and P'' (without divisions in
        // the loop): psi(z+k) - psi(z) = P'/P and psi'(z+k) - psi'(z) = P''/P - (P'/P)^2. The
        // subtraction loses at most a factor k of precision (S1^2 <= k S2 for the sums
        // S1 = sum 1/(z+j) and S2 = sum 1/(z+j)^2).
        let (mut p_b, mut d_b, mut dd_b) = (1.0, 0.0, 0.0);
        let (mut p_ab, mut d_ab, mut dd_ab) = (1.0, 0.0, 0.0);
        let mut j = 0.0;
        while j < k {
            let (f_b, f_ab) = (b + j, ab + j);
            if SECOND {
                dd_b = dd_b * f_b + 2.0 * d_b;
                dd_ab = dd_ab * f_ab + 2.0 * d_ab;
            }
            d_b = d_b * f_b + p_b;
            p_b *= f_b;
            d_ab = d_ab * f_ab + p_ab;
            p_ab *= f_ab;
            j += 1.0;
        }
        let (psi_b, psi_ab) = (d_b / p_b, d_ab / p_ab);
        let (second_b, second_ab) = if SECOND {
            (dd_b / p_b - psi_b * psi_b, dd_ab / p_ab - psi_ab * psi_ab)
        } else {
            (0.0, 0.0)
        };
        // The ratio is below 1; below the normal range (a >> b) the two logs are taken apart.
        let ratio = p_b / p_ab;
        let ln_ratio = if ratio >= f64::MIN_POSITIVE {
            crate::fastmath::ln(ratio)
        } else {
            crate::fastmath::ln(p_b) - crate::fastmath::ln(p_ab)
        };
        (ln_ratio, [psi_b, psi_ab], [second_b, second_ab])
    } else {
        let (ln_b, psi_b, second_b) = rising_terms::<SECOND>(b, k);
        let (ln_ab, psi_ab, second_ab) = rising_terms::<SECOND>(ab, k);
        (ln_b - ln_ab, [psi_b, psi_ab], [second_b, second_ab])
    }
}

/// Indices of the weighted per-run sums that the log-likelihood, gradient and Hessian are built
/// from (`at = alpha + T`, `atx = alpha + t_x`, `LN1P_AGE` the sum of `ln(at / alpha)`, `L = ln(at / atx)`, `D = 1/at - 1/atx`, `s` the
/// dropout weight `logistic(odds)` and `q = s (1 - s)`; the terms with `s` vanish when x = 0).
mod sum {
    pub const W: usize = 0;
    pub const LN1P_AGE: usize = 1;
    pub const INV_AT: usize = 2;
    pub const LOG1P_ODDS: usize = 3;
    pub const S: usize = 4;
    pub const S_L: usize = 5;
    pub const S_D: usize = 6;
    // The Hessian pass adds these.
    pub const INV_AT2: usize = 7;
    pub const S_D2: usize = 8;
    pub const Q: usize = 9;
    pub const Q_L: usize = 10;
    pub const Q_D: usize = 11;
    pub const Q_LL: usize = 12;
    pub const Q_LD: usize = 13;
    pub const Q_DD: usize = 14;
    pub const ALL: usize = 15;
}

type Lanes = [[f64; LANES]; sum::ALL];

const LANES: usize = 4;

/// One row's contribution to the lanes of [`run_sums`]; the second-order sums only when
/// `SECOND` (the Hessian pass).
#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn add_row<const SECOND: bool>(
    lanes: &mut Lanes,
    lane: usize,
    age: f64,
    t_x: f64,
    wt: f64,
    alpha: f64,
    rx: f64,
    ln_odds: f64,
    repeat: bool,
) {
    use crate::fastmath::{exp, ln_1p};
    let at = alpha + age;
    let inv_at = 1.0 / at;
    lanes[sum::W][lane] += wt;
    // (1 / alpha is loop-invariant and hoisted: a multiplication per row, not a division.)
    lanes[sum::LN1P_AGE][lane] += wt * ln_1p(age * (1.0 / alpha));
    lanes[sum::INV_AT][lane] += wt * inv_at;
    if SECOND {
        lanes[sum::INV_AT2][lane] += wt * inv_at * inv_at;
    }
    if repeat {
        let atx = alpha + t_x;
        let inv_atx = 1.0 / atx;
        let l = ln_1p((age - t_x) * inv_atx);
        let d = inv_at - inv_atx;
        let odds = ln_odds + rx * l;
        let e = exp(-odds.abs());
        let log1p = odds.max(0.0) + ln_1p(e);
        let s = if odds >= 0.0 { 1.0 } else { e } / (1.0 + e);
        let ws = wt * s;
        lanes[sum::LOG1P_ODDS][lane] += wt * log1p;
        lanes[sum::S][lane] += ws;
        lanes[sum::S_L][lane] += ws * l;
        lanes[sum::S_D][lane] += ws * d;
        if SECOND {
            // q = s (1 - s) = e / (1 + e)^2, exact in both tails.
            let wq = wt * e / ((1.0 + e) * (1.0 + e));
            lanes[sum::S_D2][lane] += ws * (inv_atx * inv_atx - inv_at * inv_at);
            lanes[sum::Q][lane] += wq;
            lanes[sum::Q_L][lane] += wq * l;
            lanes[sum::Q_D][lane] += wq * d;
            lanes[sum::Q_LL][lane] += wq * l * l;
            lanes[sum::Q_LD][lane] += wq * l * d;
            lanes[sum::Q_DD][lane] += wq * d * d;
        }
    }
}

/// Sums over rows with frequency `x` (`rx = r + x`, `ln_odds` as in [`XTerms`]), 4 rows at a
/// time in independent lanes so that the loop compiles to SIMD; the lanes are added in a fixed
/// order, so the result depends only on the rows.
#[inline(always)]
fn run_sums<const SECOND: bool>(
    age: &[f64],
    t_x: &[f64],
    w: &[f64],
    alpha: f64,
    rx: f64,
    ln_odds: f64,
    repeat: bool,
) -> [f64; sum::ALL] {
    let mut lanes: Lanes = [[0.0; LANES]; sum::ALL];
    let n = age.len();
    let full = n / LANES * LANES;
    let (age_body, age_tail) = age.split_at(full);
    let (tx_body, tx_tail) = t_x.split_at(full);
    let (w_body, w_tail) = w.split_at(full);
    for ((a4, t4), w4) in age_body
        .chunks_exact(LANES)
        .zip(tx_body.chunks_exact(LANES))
        .zip(w_body.chunks_exact(LANES))
    {
        for lane in 0..LANES {
            add_row::<SECOND>(
                &mut lanes, lane, a4[lane], t4[lane], w4[lane], alpha, rx, ln_odds, repeat,
            );
        }
    }
    for (lane, ((&a1, &t1), &w1)) in age_tail.iter().zip(tx_tail).zip(w_tail).enumerate() {
        add_row::<SECOND>(&mut lanes, lane, a1, t1, w1, alpha, rx, ln_odds, repeat);
    }
    lanes.map(|l| l.iter().sum::<f64>())
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
fn run_sums_avx2<const SECOND: bool>(
    age: &[f64],
    t_x: &[f64],
    w: &[f64],
    alpha: f64,
    rx: f64,
    ln_odds: f64,
    repeat: bool,
) -> [f64; sum::ALL] {
    run_sums::<SECOND>(age, t_x, w, alpha, rx, ln_odds, repeat)
}

/// [`run_sums`] with 256-bit vectors where the processor has them. No fused multiply-add is
/// used, so the results are the same bits either way.
fn run_sums_dispatch<const SECOND: bool>(
    age: &[f64],
    t_x: &[f64],
    w: &[f64],
    alpha: f64,
    rx: f64,
    ln_odds: f64,
    repeat: bool,
) -> [f64; sum::ALL] {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx2") {
        // SAFETY: the processor supports AVX2 (checked just above).
        return unsafe { run_sums_avx2::<SECOND>(age, t_x, w, alpha, rx, ln_odds, repeat) };
    }
    run_sums::<SECOND>(age, t_x, w, alpha, rx, ln_odds, repeat)
}

impl BgNbd<'_> {
    /// Visit every run of equal frequency (clipped to the chunks of the executor) with its sums:
    /// `visit(x index, sums, acc)` adds the run's contribution to `acc` (`width` values).
    fn sum_runs<const SECOND: bool>(
        &self,
        p: &BgNbdParams,
        terms: &[XTerms],
        exec: &Exec,
        width: usize,
        visit: impl Fn(usize, &[f64; sum::ALL], &mut [f64]) + Sync,
    ) -> Vec<f64> {
        let d = self.data;
        exec.chunked_sum(d.len(), width, |range, acc| {
            // The runs that overlap this chunk, each clipped to it.
            let first = self
                .runs
                .partition_point(|&(start, _)| start <= range.start)
                - 1;
            for (k, &(start, xi)) in self.runs.iter().enumerate().skip(first) {
                if start >= range.end {
                    break;
                }
                let end = self.runs.get(k + 1).map_or(d.len(), |&(s, _)| s);
                let rows = start.max(range.start)..end.min(range.end);
                let x = self.distinct_x[xi];
                let sums = run_sums_dispatch::<SECOND>(
                    &d.age[rows.clone()],
                    &d.recency[rows.clone()],
                    d.weights_of(rows),
                    p.alpha,
                    p.r + x,
                    terms[xi].ln_odds,
                    p.flips(x) > 0.0,
                );
                visit(xi, &sums, acc);
            }
        })
    }
}

impl Likelihood for BgNbd<'_> {
    fn params(&self) -> &[ParamSpec] {
        &PARAMS
    }

    fn starts(&self) -> Vec<Vec<f64>> {
        // The purchase rate of repeat buyers suggests alpha for r = 1; dropout starts neutral.
        let (alpha, _) = self.data.start_scales();
        vec![
            vec![1.0, alpha, 1.0, 1.0],
            vec![0.5, alpha * 0.5, 0.5, 2.0],
            vec![2.0, alpha * 2.0, 2.0, 5.0],
            vec![1.0, 1.0, 1.0, 1.0],
        ]
    }

    fn total_weight(&self) -> f64 {
        self.data.total_weight()
    }

    fn loglik_and_gradient(&self, params: &[f64], exec: &Exec) -> (f64, Vec<f64>) {
        let p = self.params_at(params);
        let terms = self.x_terms(&p);
        let acc = self.sum_runs::<false>(&p, &terms, exec, 5, |xi, sums, acc| {
            self.add_first_order(&p, &terms, xi, sums, acc);
        });
        (acc[0], acc[1..].to_vec())
    }

    /// The analytic Hessian of the log-likelihood in (r, alpha, a, b), from one pass over the
    /// rows (the second-order sums of [`add_row`]) and trigamma terms per distinct frequency.
    fn hessian(&self, params: &[f64], exec: &Exec) -> Option<Vec<Vec<f64>>> {
        self.loglik_gradient_hessian(params, exec)
            .map(|(_, _, hessian)| hessian)
    }

    /// The log-likelihood, gradient and Hessian from one pass: the first-order sums of
    /// [`add_row`] do not depend on the second-order ones, so the value and gradient have the
    /// bits of [`Likelihood::loglik_and_gradient`].
    fn loglik_gradient_hessian(&self, params: &[f64], exec: &Exec) -> Option<FusedPass> {
        let p = self.params_at(params);
        let terms = self.x_terms(&p);
        let second = SecondOrder::new(&p);
        let acc = self.sum_runs::<true>(&p, &terms, exec, 15, |xi, sums, acc| {
            let (first, upper) = acc.split_at_mut(5);
            self.add_first_order(&p, &terms, xi, sums, first);
            self.add_second_order(&p, &second, &terms, xi, sums, upper);
        });
        // Upper triangle in the order rr, ra(lpha), ra, rb, aa(lpha), ..., bb.
        let upper = [[0, 1, 2, 3], [1, 4, 5, 6], [2, 5, 7, 8], [3, 6, 8, 9]];
        let hessian = upper
            .iter()
            .map(|row| row.iter().map(|&k| acc[5 + k]).collect())
            .collect();
        Some((acc[0], acc[1..5].to_vec(), hessian))
    }
}

/// The trigamma values of one point that every run's second-order terms use.
struct SecondOrder {
    tg_r: f64,
    tg_ab: f64,
    tg_b: f64,
}

impl SecondOrder {
    fn new(p: &BgNbdParams) -> Self {
        SecondOrder {
            tg_r: trigamma(p.r),
            tg_ab: trigamma(p.a + p.b),
            tg_b: trigamma(p.b),
        }
    }
}

impl BgNbd<'_> {
    /// Add a run's log-likelihood and gradient (r, alpha, a, b) to `acc` (5 values).
    #[inline]
    fn add_first_order(
        &self,
        p: &BgNbdParams,
        terms: &[XTerms],
        xi: usize,
        sums: &[f64; sum::ALL],
        acc: &mut [f64],
    ) {
        let (r, alpha, a) = (p.r, p.alpha, p.a);
        let xt = &terms[xi];
        let x = self.distinct_x[xi];
        let rx = r + x;
        let w = sums[sum::W];
        // r ln(alpha) - (r + x) ln(alpha + T) summed as -x ln(alpha) - (r + x) ln(1 + T/alpha):
        // no cancellation when r is huge.
        acc[0] +=
            w * (xt.ln_const - x * alpha.ln()) - rx * sums[sum::LN1P_AGE] + sums[sum::LOG1P_ODDS];
        acc[1] += w * xt.d_r - sums[sum::LN1P_AGE] + sums[sum::S_L];
        acc[2] += w * r / alpha - rx * sums[sum::INV_AT] + rx * sums[sum::S_D];
        acc[3] += w * xt.d_a + sums[sum::S] / a;
        acc[4] += w * xt.d_b - sums[sum::S] * xt.inv_bx1;
    }

    /// Add a run's Hessian (upper triangle, 10 values) to `acc`.
    #[inline]
    fn add_second_order(
        &self,
        p: &BgNbdParams,
        second: &SecondOrder,
        terms: &[XTerms],
        xi: usize,
        sums: &[f64; sum::ALL],
        acc: &mut [f64],
    ) {
        let (r, alpha, a, b) = (p.r, p.alpha, p.a, p.b);
        let SecondOrder { tg_r, tg_ab, tg_b } = *second;
        let x = self.distinct_x[xi];
        let (rx, ib) = (r + x, terms[xi].inv_bx1);
        let w = sums[sum::W];
        let k = p.flips(x);
        let tg_abx = trigamma(a + b + k);
        let (q, q_l, q_d) = (sums[sum::Q], sums[sum::Q_L], sums[sum::Q_D]);
        acc[0] += w * (trigamma(r + x) - tg_r) + sums[sum::Q_LL];
        acc[1] += w / alpha - sums[sum::INV_AT] + sums[sum::S_D] + rx * sums[sum::Q_LD];
        acc[2] += q_l / a;
        acc[3] -= q_l * ib;
        acc[4] += -w * r / (alpha * alpha)
            + rx * sums[sum::INV_AT2]
            + rx * sums[sum::S_D2]
            + rx * rx * sums[sum::Q_DD];
        acc[5] += rx * q_d / a;
        acc[6] -= rx * q_d * ib;
        acc[7] += w * (tg_ab - tg_abx) + (q - sums[sum::S]) / (a * a);
        acc[8] += w * (tg_ab - tg_abx) - q * ib / a;
        acc[9] += w * (trigamma(b + k) - tg_abx - tg_b + tg_ab) + (sums[sum::S] + q) * ib * ib;
    }
}

/// Draw customer histories from the BG/NBD (or MBG/NBD) process: for each age `T` in `ages`, the number of
/// repeat purchases `x` and the time of the last one `t_x` (0 when `x = 0`). Customer `i` uses
/// random stream `i` of `seed`, so the draws do not depend on how the work is split.
pub fn simulate(p: &BgNbdParams, ages: &[f64], seed: u64) -> (Vec<f64>, Vec<f64>) {
    let mut x = Vec::with_capacity(ages.len());
    let mut t_x = Vec::with_capacity(ages.len());
    for (i, &age) in ages.iter().enumerate() {
        let mut rng = Rng::for_stream(seed, i as u64);
        let lambda = rng.gamma(p.r) / p.alpha;
        let drop = rng.beta(p.a, p.b);
        let (mut count, mut last, mut now) = (0.0, 0.0, 0.0);
        // MBG/NBD: the first coin is tossed at the first purchase.
        let gone_at_start = p.modified && rng.uniform() < drop;
        if !gone_at_start {
            loop {
                now += rng.exponential(lambda);
                if !(now <= age) {
                    break;
                }
                count += 1.0;
                last = now;
                if rng.uniform() < drop {
                    break;
                }
            }
        }
        x.push(count);
        t_x.push(last);
    }
    (x, t_x)
}

pub use super::predict_rows;

/// The BG/NBD family: BG/NBD ([`BgNbdParams`]) and MBG/NBD
/// ([`MbgNbdParams`](super::MbgNbdParams)) differ only in [`BgNbdParams::modified`], which every
/// formula reads through [`BgNbdParams::flips`], so one implementation of [`RfmModel`] (and of
/// the covariate rows) serves both; a member says which it is and wraps its parameters.
pub trait BgFamily: Copy + Send + Sync {
    /// The member's [`RfmModel::NAME`].
    const MODEL_NAME: &'static str;

    /// [`BgNbdParams::modified`] of the member: whether the dropout coin is also tossed at the
    /// first purchase.
    const MODIFIED: bool;

    /// The member's parameters, with [`BgNbdParams::modified`] set to [`BgFamily::MODIFIED`].
    fn bg(&self) -> &BgNbdParams;

    /// The member with parameters `p` (whose `modified` is [`BgFamily::MODIFIED`]).
    fn from_bg(p: BgNbdParams) -> Self;

    /// Parameters (r, alpha, a, b) of the member, as [`BgNbdParams`].
    fn bg_params(r: f64, alpha: f64, a: f64, b: f64) -> BgNbdParams {
        BgNbdParams {
            modified: Self::MODIFIED,
            ..BgNbdParams::new(r, alpha, a, b)
        }
    }
}

impl BgFamily for BgNbdParams {
    const MODEL_NAME: &'static str = "bgnbd";
    const MODIFIED: bool = false;

    fn bg(&self) -> &BgNbdParams {
        self
    }

    fn from_bg(p: BgNbdParams) -> Self {
        p
    }
}

impl<M: BgFamily> RfmModel for M {
    const NAME: &'static str = M::MODEL_NAME;

    fn specs() -> &'static [ParamSpec] {
        &PARAMS
    }

    fn from_slice(values: &[f64]) -> Result<Self> {
        let p = BgNbdParams::from_slice(values)?;
        Ok(M::from_bg(M::bg_params(p.r, p.alpha, p.a, p.b)))
    }

    fn fit(data: &Rfm, opts: &FitOptions<'_>) -> Result<FitResult> {
        fit_with_warm_start(
            data,
            data.len(),
            Rfm::subsample,
            |d, o| fit(&BgNbd::with_variant(d, M::MODIFIED), o),
            opts,
        )
    }

    fn simulate(&self, ages: &[f64], seed: u64) -> Option<(Vec<f64>, Vec<f64>)> {
        Some(simulate(self.bg(), ages, seed))
    }

    fn log_likelihood(&self, x: f64, t_x: f64, age: f64) -> f64 {
        log_likelihood(self.bg(), x, t_x, age)
    }

    fn probability_alive(&self, x: f64, t_x: f64, age: f64) -> f64 {
        probability_alive(self.bg(), x, t_x, age)
    }

    fn conditional_expected_purchases(&self, x: f64, t_x: f64, age: f64, t: f64) -> f64 {
        conditional_expected_purchases(self.bg(), x, t_x, age, t)
    }

    fn expected_purchases_new_customer(&self, t: f64) -> f64 {
        expected_purchases_new_customer(self.bg(), t)
    }

    fn purchase_count_probability(&self, n: u64, t: f64) -> Option<f64> {
        Some(purchase_count_probability(self.bg(), n, t))
    }

    fn probability_alive_bulk(&self, columns: &RfmColumns<'_>, exec: &Exec, out: &mut [f64]) {
        probability_alive_bulk(self.bg(), columns, exec, out);
    }

    fn conditional_expected_purchases_bulk(
        &self,
        columns: &RfmColumns<'_>,
        t: f64,
        exec: &Exec,
        out: &mut [f64],
    ) {
        conditional_expected_purchases_bulk(self.bg(), columns, t, exec, out);
    }

    fn weighted_expected_purchases_bulk(
        &self,
        columns: &RfmColumns<'_>,
        horizons: &[(f64, f64)],
        exec: &Exec,
        out: &mut [f64],
    ) {
        weighted_expected_purchases_bulk(self.bg(), columns, horizons, exec, out);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fit::{fit, FitOptions};
    use crate::models::testing::cdnow;

    const PUBLISHED: BgNbdParams = BgNbdParams::new(0.242594, 4.413587, 0.792925, 2.425891);

    #[test]
    fn fused_pass_has_the_bits_of_the_gradient_pass() {
        let data = cdnow();
        for model in [BgNbd::new(&data), BgNbd::modified(&data)] {
            let params = [0.3, 5.0, 0.9, 2.7];
            let exec = Exec::Serial;
            let (value, gradient) = model.loglik_and_gradient(&params, &exec);
            let (fused_value, fused_gradient, hessian) =
                model.loglik_gradient_hessian(&params, &exec).unwrap();
            assert_eq!(fused_value.to_bits(), value.to_bits());
            assert_eq!(fused_gradient, gradient);
            // Symmetric, and the Hessian of the finite differences of the gradient.
            for i in 0..4 {
                let h = 1e-6 * params[i];
                let (mut up, mut down) = (params, params);
                up[i] += h;
                down[i] -= h;
                let (g_up, g_down) = (
                    model.loglik_and_gradient(&up, &exec).1,
                    model.loglik_and_gradient(&down, &exec).1,
                );
                for j in 0..4 {
                    assert_eq!(hessian[i][j], hessian[j][i]);
                    let numeric = (g_up[j] - g_down[j]) / (2.0 * h);
                    assert!(rel(hessian[i][j], numeric) < 1e-5, "{i} {j}");
                }
            }
        }
    }

    #[test]
    fn beta_shift_matches_its_definition() {
        // For a whole k the terms are finite sums over the factors (b + j) and (a + b + j);
        // otherwise the gamma functions. Including a >> b, where the ratio of the two rising
        // products underflows, and b so small that psi(b) itself is imprecise.
        let reference = |a: f64, b: f64, k: f64| -> (f64, [f64; 2], [f64; 2]) {
            if k.fract() != 0.0 {
                return (
                    ln_gamma_diff(b, k) - ln_gamma_diff(a + b, k),
                    [digamma_diff(b, k), digamma_diff(a + b, k)],
                    [
                        trigamma(b + k) - trigamma(b),
                        trigamma(a + b + k) - trigamma(a + b),
                    ],
                );
            }
            let factors = |z: f64| (0..k as usize).map(move |j| z + j as f64);
            let ln: f64 =
                factors(b).map(f64::ln).sum::<f64>() - factors(a + b).map(f64::ln).sum::<f64>();
            let psi = |z: f64| factors(z).map(|f| 1.0 / f).sum::<f64>();
            let second = |z: f64| -factors(z).map(|f| 1.0 / (f * f)).sum::<f64>();
            (ln, [psi(b), psi(a + b)], [second(b), second(a + b)])
        };
        let close = |got: f64, want: f64, tol: f64| (got - want).abs() <= tol * want.abs().max(1.0);
        for (a, b) in [
            (0.79, 2.43),
            (1e-9, 5.0),
            (40.0, 1e-3),
            (1e14, 1e-150),
            (3.0, 2e15),
        ] {
            for k in [1.0_f64, 2.0, 5.0, 16.0, 17.0, 60.0, 3.5] {
                if b < 1e-100 && k.fract() != 0.0 {
                    continue;
                }
                let got = beta_shift::<true>(a, b, k);
                let want = reference(a, b, k);
                assert!(
                    close(got.0, want.0, 1e-12),
                    "{a} {b} {k}: {got:?} vs {want:?}"
                );
                for i in 0..2 {
                    assert!(
                        close(got.1[i], want.1[i], 1e-12),
                        "{a} {b} {k}: {got:?} vs {want:?}"
                    );
                    assert!(
                        close(got.2[i], want.2[i], 1e-9),
                        "{a} {b} {k}: {got:?} vs {want:?}"
                    );
                }
                let first = beta_shift::<false>(a, b, k);
                assert_eq!((first.0, first.1, first.2), (got.0, got.1, [0.0, 0.0]));
            }
        }
    }

    fn rel(a: f64, b: f64) -> f64 {
        ((a - b) / b).abs()
    }

    /// A few awkward histories: x = 0, t_x = 0 with x > 0, T = 0, t_x near T, x in the hundreds.
    fn awkward_rows() -> Rfm {
        let x = [0.0, 1.0, 3.0, 7.0, 0.0, 2.0, 40.0, 1.0, 250.0];
        let t_x = [0.0, 5.0, 20.0, 30.5, 0.0, 38.0, 38.9, 0.0, 39.5];
        let age = [10.0, 20.0, 30.0, 38.0, 0.0, 39.0, 39.0, 12.0, 40.0];
        RfmColumns::new(&x, &t_x, &age).compress()
    }

    /// `n` customers drawn at the CDNOW estimates with ages spread over 26 .. 78 weeks.
    fn simulated(n: usize, seed: u64) -> (Vec<f64>, Vec<f64>, Vec<f64>) {
        let ages: Vec<f64> = (0..n)
            .map(|i| 26.0 + 52.0 * ((i * 7919) % n) as f64 / n as f64)
            .collect();
        let (x, t_x) = simulate(&CDNOW_ROUNDED, &ages, seed);
        (x, t_x, ages)
    }

    const CDNOW_ROUNDED: BgNbdParams = BgNbdParams::new(0.243, 4.414, 0.793, 2.426);

    /// Central difference of `f` in coordinate `j` at `theta` (relative step 1e-6).
    fn central_difference<T>(
        theta: [f64; 4],
        j: usize,
        f: impl Fn(&[f64; 4]) -> T,
        sub: impl Fn(T, T) -> T,
    ) -> (T, f64) {
        let h = 1e-6 * theta[j];
        let (mut up, mut down) = (theta, theta);
        up[j] += h;
        down[j] -= h;
        (sub(f(&up), f(&down)), 2.0 * h)
    }

    #[test]
    fn gradient_matches_finite_differences_at_random_points() {
        let data = awkward_rows();
        let model = BgNbd::new(&data);
        let mut rng = Rng::new(2024);
        for _ in 0..60 {
            // Parameters log-uniform over 1e-2 .. 1e2.
            let theta: [f64; 4] = std::array::from_fn(|_| 10f64.powf(4.0 * rng.uniform() - 2.0));
            let (_, grad) = model.loglik_and_gradient(&theta, &Exec::Serial);
            for j in 0..4 {
                let ll = |t: &[f64; 4]| model.loglik_and_gradient(t, &Exec::Serial).0;
                let (diff, step) = central_difference(theta, j, ll, |a, b| a - b);
                let numeric = diff / step;
                let scale = numeric.abs().max(grad[j].abs()).max(1.0);
                assert!(
                    (grad[j] - numeric).abs() < 1e-5 * scale,
                    "param {j} at {theta:?}: {} vs {numeric}",
                    grad[j]
                );
            }
        }
    }

    #[test]
    fn analytic_hessian_matches_finite_differences_of_the_gradient() {
        let data = awkward_rows();
        let model = BgNbd::new(&data);
        let mut rng = Rng::new(77);
        for _ in 0..40 {
            let theta: [f64; 4] = std::array::from_fn(|_| 10f64.powf(3.0 * rng.uniform() - 1.5));
            let hessian = model.hessian(&theta, &Exec::Serial).unwrap();
            for j in 0..4 {
                let grad = |t: &[f64; 4]| model.loglik_and_gradient(t, &Exec::Serial).1;
                let diff =
                    |a: Vec<f64>, b: Vec<f64>| a.iter().zip(&b).map(|(u, d)| u - d).collect();
                let (delta, step) = central_difference(theta, j, grad, diff);
                for i in 0..4 {
                    let numeric = delta[i] / step;
                    let scale = numeric.abs().max(hessian[i][j].abs()).max(1.0);
                    assert!(
                        (hessian[i][j] - numeric).abs() < 1e-5 * scale,
                        "H[{i}][{j}] at {theta:?}: {} vs {numeric}",
                        hessian[i][j]
                    );
                }
            }
        }
    }

    #[test]
    fn closed_form_checks() {
        // x = 0: P(alive) = 1 and ln L = A1 + A2.
        let p = PUBLISHED;
        assert_eq!(probability_alive(&p, 0.0, 0.0, 30.0), 1.0);
        // Large x stays finite (Hardie's note 027 stability case).
        let q = BgNbdParams::new(0.25, 4.0, 0.8, 2.5);
        assert!(log_likelihood(&q, 200.0, 38.0, 40.0).is_finite());
        // Purchase-count probabilities sum to one and E[X(t)] is their mean.
        let t = 39.0;
        let probs: Vec<f64> = (0..400)
            .map(|n| purchase_count_probability(&p, n, t))
            .collect();
        let total: f64 = probs.iter().sum();
        assert!(rel(total, 1.0) < 1e-10, "{total}");
        let mean: f64 = probs.iter().enumerate().map(|(n, q)| n as f64 * q).sum();
        assert!(rel(mean, expected_purchases_new_customer(&p, t)) < 1e-8);
    }

    #[test]
    fn published_prediction_figures() {
        // Fader, Hardie & Lee (2005) and Hardie's BG/NBD spreadsheet, CDNOW parameters.
        let p = PUBLISHED;
        for (t, want) in [(1.0, 0.0532), (3.0, 0.1506), (32.0, 1.0437)] {
            let got = expected_purchases_new_customer(&p, t);
            assert!((got - want).abs() < 5e-5, "E[X({t})] = {got}");
        }
        // The published E[X(78)] = 1.8576 is not reproduced by an exact evaluation of FHL eq. 9 at
        // these parameters: mpmath at 30 digits gives 1.857950287 (the Python tests check this
        // against mpmath directly); we match the exact value.
        let got = expected_purchases_new_customer(&p, 78.0);
        assert!((got - 1.857_950_287).abs() < 1e-8, "E[X(78)] = {got}");
        let got = conditional_expected_purchases(&p, 2.0, 30.43, 38.86, 39.0);
        assert!((got - 1.226).abs() < 5e-4, "{got}");
        // Published at the rounded estimates (0.243, 4.414, 0.793, 2.426).
        let rounded = BgNbdParams::new(0.243, 4.414, 0.793, 2.426);
        let got = purchase_count_probability(&rounded, 0, 39.0);
        assert!((got - 0.5737864).abs() < 5e-8, "{got}");
    }

    #[test]
    fn reproduces_the_published_cdnow_fit() {
        let data = cdnow();
        let res = fit(&BgNbd::new(&data), &FitOptions::default()).unwrap();
        assert!(res.converged, "{}", res.termination);
        let want = [0.24259, 4.41353, 0.79289, 2.42575];
        for (got, want) in res.params.iter().zip(want) {
            assert!(rel(*got, want) < 1e-3, "{:?}", res.params);
        }
        assert!(
            (res.log_likelihood + 9582.43).abs() < 0.01,
            "{}",
            res.log_likelihood
        );
        let se = res.standard_errors().unwrap();
        assert!(se.iter().all(|s| s.is_finite() && *s > 0.0));
        let cov = res.covariance.unwrap();
        for i in 0..4 {
            for j in 0..4 {
                assert_eq!(cov[i][j], cov[j][i]);
            }
        }
    }

    #[test]
    fn fit_is_bit_identical_for_any_thread_count() {
        let data = cdnow();
        let serial = fit(&BgNbd::new(&data), &FitOptions::default()).unwrap();
        let opts = FitOptions {
            exec: Exec::with_jobs(Some(3)).unwrap(),
            ..FitOptions::default()
        };
        let parallel = fit(&BgNbd::new(&data), &opts).unwrap();
        assert_eq!(serial, parallel);
    }

    #[test]
    fn bulk_expected_purchases_match_direct_evaluation() {
        let truth = CDNOW_ROUNDED;
        let n = 40_000;
        let (x, t_x, ages) = simulated(n, 9);
        let columns = RfmColumns::new(&x, &t_x, &ages);
        for (p, t) in [
            (truth, 52.0),
            (BgNbdParams::new(2.0, 0.01, 0.3, 0.4), 400.0),
        ] {
            let mut bulk = vec![0.0; n];
            conditional_expected_purchases_bulk(
                &p,
                &columns,
                t,
                &Exec::with_jobs(Some(2)).unwrap(),
                &mut bulk,
            );
            let mut serial = vec![0.0; n];
            conditional_expected_purchases_bulk(&p, &columns, t, &Exec::Serial, &mut serial);
            assert_eq!(bulk, serial);
            for i in 0..n {
                let direct = conditional_expected_purchases(&p, x[i], t_x[i], ages[i], t);
                assert!(
                    (bulk[i] - direct).abs() <= 1e-13 * direct,
                    "row {i}: {} vs {direct}",
                    bulk[i]
                );
            }
        }
    }

    #[test]
    fn bulk_probability_alive_matches_the_scalar_formula() {
        let truth = CDNOW_ROUNDED;
        let (mut x, mut t_x, mut ages) = simulated(20_003, 3);
        x.push(400.0);
        t_x.push(10.0);
        ages.push(78.0);
        let columns = RfmColumns::new(&x, &t_x, &ages);
        for p in [truth, BgNbdParams::new(5.0, 1e-3, 50.0, 0.01)] {
            let mut bulk = vec![0.0; x.len()];
            probability_alive_bulk(&p, &columns, &Exec::with_jobs(Some(2)).unwrap(), &mut bulk);
            for i in 0..x.len() {
                let scalar = probability_alive(&p, x[i], t_x[i], ages[i]);
                assert!(
                    (bulk[i] - scalar).abs() <= 1e-13 * scalar + 1e-300,
                    "row {i}: {} vs {scalar}",
                    bulk[i]
                );
                assert!((0.0..=1.0).contains(&bulk[i]));
            }
        }
    }

    #[test]
    fn quadrature_agrees_with_the_series_and_takes_over_for_huge_horizons() {
        // Where both are cheap they agree closely.
        for (k, rate, t, a, b) in [
            (0.24, 40.0, 52.0, 0.79, 2.4),
            (3.2, 4.4, 400.0, 0.01, 0.3),
            (12.0, 2.0, 30.0, 1.0, 5.0),
            (1.5, 1e-3, 400.0, 1.7, 3.2),
        ] {
            let series = active_expected_purchases(k, rate, t, a, b);
            let integral = active_expected_purchases_by_quadrature(k, (t / rate).ln(), a, b);
            assert!(
                rel(integral, series) < 1e-11,
                "{k} {rate} {t} {a} {b}: {integral} vs {series}"
            );
        }
        // A horizon holding about 1e9 purchase opportunities: finite, fast, and non-decreasing.
        let small = active_expected_purchases(1000.0, 1e-3, 100.0, 1000.0, 1000.0);
        let large = active_expected_purchases(1000.0, 1e-3, 1000.0, 1000.0, 1000.0);
        assert!(small.is_finite() && large >= small, "{small} {large}");
        // mpmath (closed form at 40 digits): 2.001001001001001 (= E[1/p] = 1999/999 to 16 digits).
        assert!(rel(large, 2.001_001_001_001_001) < 1e-12, "{large}");
    }

    #[test]
    fn a_near_one_is_continuous() {
        let base = BgNbdParams::new(0.5, 3.0, 1.0, 2.0);
        let at_one = conditional_expected_purchases(&base, 3.0, 20.0, 30.0, 52.0);
        for da in [-1e-9, 1e-9, -1e-6, 1e-6] {
            let p = BgNbdParams {
                a: 1.0 + da,
                ..base
            };
            let near = conditional_expected_purchases(&p, 3.0, 20.0, 30.0, 52.0);
            assert!(rel(near, at_one) < 1e-5, "{near} vs {at_one}");
        }
    }

    #[test]
    fn fit_recovers_simulated_parameters_and_ignores_compression() {
        let truth = BgNbdParams::new(0.5, 6.0, 0.8, 2.5);
        let ages: Vec<f64> = (0..20_000)
            .map(|i| 26.0 + 52.0 * ((i * 7919) % 20_000) as f64 / 20_000.0)
            .collect();
        let (x, t_x) = simulate(&truth, &ages, 42);
        let data = RfmColumns::new(&x, &t_x, &ages).compress();
        let res = fit(&BgNbd::new(&data), &FitOptions::default()).unwrap();
        assert!(res.converged, "{}", res.termination);
        let se = res.standard_errors().unwrap();
        for (k, want) in [truth.r, truth.alpha, truth.a, truth.b]
            .into_iter()
            .enumerate()
        {
            assert!(
                (res.params[k] - want).abs() < 4.0 * se[k],
                "param {k}: {} vs {want} (se {})",
                res.params[k],
                se[k]
            );
        }
        // Compressing the compressed rows changes nothing, bit for bit.
        let again = data.columns().compress();
        let res2 = fit(&BgNbd::new(&again), &FitOptions::default()).unwrap();
        assert_eq!(res.params, res2.params);
        assert_eq!(res.log_likelihood, res2.log_likelihood);
    }
}
