//! BG/CNBD-k and MBG/CNBD-k: BG/NBD and MBG/NBD with Erlang-k inter-purchase times, Reutterer,
//! Platzer & Schröder (2021), "Leveraging purchase regularity for predicting customer behavior
//! the easy way", International Journal of Research in Marketing 38(1), 194-215
//! (doi:10.1016/j.ijresmar.2020.09.002); the regularity idea is Platzer & Reutterer (2016),
//! "Ticking Away the Moments", Marketing Science 35(5).
//!
//! While active, a customer's inter-purchase times are Erlang-k with stage rate `lambda`
//! (`k` exponential stages of rate `lambda`, mean `k / lambda`), `lambda ~ Gamma(r, alpha)`;
//! after each repeat purchase (MBG: also right after the first) the customer drops out with
//! probability `p ~ Beta(a, b)`. `k` is a whole number; `k = 1` is BG/NBD (MBG/NBD) exactly.
//! With `f` the dropout coins an active customer has survived (`x`, or `x + 1` for MBG) and
//! `litt` the sum of the logs of the customer's `x` inter-purchase times, the likelihood is
//!
//! ```text
//! ln L = (k-1) litt - x ln((k-1)!)                                  [timing term]
//!      + ln B(a, b+f)/B(a, b) + ln Gamma(r+kx)/Gamma(r) + r ln alpha - (r+kx) ln(alpha+T)
//!      + ln( S1 + S2 ),
//! S1 = [f > 0] a/(b+f-1) ((alpha+T)/(alpha+t_x))^(r+kx)             [dropped after t_x]
//! S2 = sum_{j<k} (r+kx)_j / j! ((T-t_x)/(alpha+T))^j                [alive, j stages done]
//! ```
//!
//! The timing term does not depend on (r, alpha, a, b): a fit for a given `k` needs only
//! (x, t_x, T), and its total over the customers, `(k-1) sum(litt) - ln((k-1)!) sum(x)`, is
//! added to the log-likelihood to compare values of `k` ([`fit_profile`]).
//!
//! Predictions condition on the history exactly. Given it, the customer is dropped out with
//! probability `S1 / (S1 + S2)`, or alive having completed `j` of the `k` stages of the current
//! inter-purchase time with probability `S2_j / (S1 + S2)`; given alive and `j`, `lambda` is
//! `Gamma(r+kx+j, alpha+T)` and `p` is `Beta(a, b+f)`. The stage count `N` in a further span
//! `t` is then negative binomial, the `n`-th future purchase happens when `N` reaches
//! `nk - j`, and it is made if the `n - 1` coins before it came up "stay":
//!
//! ```text
//! E[X(T, T+t) | alive, j] = sum_{n>=1} E[(1-p)^(n-1)] P(N >= nk - j)
//!                         = sum_m P(N = m) C(floor((m + j) / k)),  C(n) = sum_{i=1..n} E[(1-p)^(i-1)]
//! ```
//!
//! summed over `m` from the mode of `N` outwards until the rest is below 1e-17 of the sum (all
//! terms positive). P(alive at T+t) and P(X(T, T+t) = n) are sums of the same kind. (BTYDplus
//! approximates the conditional expectation with the BG/NBD formula at `alpha k` and rescales
//! it to the cohort; the sums here are exact and are checked against mpmath quadrature.)

use super::bgnbd::PARAMS;
use super::RfmModel;
use crate::data::Rfm;
use crate::dual::Dual;
use crate::error::{ClvError, Result};
use crate::fit::{
    check_params, fit, fit_with_warm_start, FitOptions, FitResult, FusedPass, Likelihood, ParamSpec,
};
use crate::parallel::Exec;
use crate::special::{
    ln_gamma, ln_negative_binomial_pmf, log_add_exp, negative_binomial_upper_tail, trigamma,
};
use ndarray::Array2;

/// Largest regularity `k` accepted (the likelihood and the predictions take O(k) work per
/// customer).
pub const MAX_K: u32 = 1000;

/// (M)BG/CNBD-k parameters.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CnbdParams {
    pub r: f64,
    pub alpha: f64,
    pub a: f64,
    pub b: f64,
    /// Erlang shape of the inter-purchase times (stages per purchase).
    pub k: u32,
    /// MBG/CNBD-k: the dropout coin is also tossed right after the first purchase.
    pub modified: bool,
}

/// Check a regularity `k` given as a number.
pub fn check_k(k: f64) -> Result<u32> {
    if !(k.fract() == 0.0 && k >= 1.0 && k <= f64::from(MAX_K)) {
        return Err(ClvError::invalid_parameter(
            "k",
            format!("must be a whole number from 1 to {MAX_K}, got {k}"),
        ));
    }
    Ok(k as u32)
}

impl CnbdParams {
    pub const fn new(r: f64, alpha: f64, a: f64, b: f64, k: u32, modified: bool) -> Self {
        CnbdParams {
            r,
            alpha,
            a,
            b,
            k,
            modified,
        }
    }

    /// From `[r, alpha, a, b, k]`, checking the domains.
    pub fn from_values(values: &[f64], modified: bool) -> Result<Self> {
        if values.len() != 5 {
            return Err(ClvError::invalid_parameter(
                "params",
                format!(
                    "expected 5 values (r, alpha, a, b, k), got {}",
                    values.len()
                ),
            ));
        }
        check_params(&PARAMS, &values[..4])?;
        let k = check_k(values[4])?;
        Ok(CnbdParams::new(
            values[0], values[1], values[2], values[3], k, modified,
        ))
    }

    /// Dropout coins survived by an active customer with `x` repeat purchases.
    #[inline]
    fn flips(&self, x: f64) -> f64 {
        if self.modified {
            x + 1.0
        } else {
            x
        }
    }
}

/// One customer's log-likelihood without the timing term, over dual numbers (`N = 4` for the
/// gradient in (r, alpha, a, b), `N = 0` for the value).
fn row_log_likelihood<const N: usize>(
    p: [Dual<N>; 4],
    k: u32,
    modified: bool,
    x: f64,
    t_x: f64,
    age: f64,
) -> Dual<N> {
    frequency_part(p, k, modified, x) + history_part(p, k, modified, x, t_x, age)
}

/// The terms of the log-likelihood that depend on the history only through `x` (computed once
/// per distinct frequency in a fit): `ln B(a, b+f)/B(a, b) + ln Gamma(r+kx)/Gamma(r) - kx ln
/// alpha`.
fn frequency_part<const N: usize>(p: [Dual<N>; 4], k: u32, modified: bool, x: f64) -> Dual<N> {
    let [r, alpha, a, b] = p;
    let f = if modified { x + 1.0 } else { x };
    let kx = f64::from(k) * x;
    // B(a, b + f) / B(a, b) = Gamma(b + f) Gamma(a + b) / (Gamma(b) Gamma(a + b + f)).
    b.ln_gamma_ratio(f) - (a + b).ln_gamma_ratio(f) + r.ln_gamma_ratio(kx) - alpha.ln() * kx
}

/// The rest: `-(r+kx) ln(1 + T/alpha) + ln(S1 + S2)` (with the frequency part, `r ln alpha -
/// (r+kx) ln(alpha+T)` without the cancellation of its two terms at huge r).
fn history_part<const N: usize>(
    p: [Dual<N>; 4],
    k: u32,
    modified: bool,
    x: f64,
    t_x: f64,
    age: f64,
) -> Dual<N> {
    let [r, alpha, a, b] = p;
    let f = if modified { x + 1.0 } else { x };
    let rk = r + f64::from(k) * x;
    let mut ln_sum = Dual::<N>::constant(0.0);
    if k > 1 && age > t_x {
        let ln_z = -(alpha + age).ln() + (age - t_x).ln();
        let mut ln_term = Dual::<N>::constant(0.0);
        for j in 1..k {
            ln_term = ln_term + (rk + f64::from(j - 1)).ln() + ln_z - f64::from(j).ln();
            ln_sum = ln_sum.log_add_exp(ln_term);
        }
    }
    if f > 0.0 {
        let ln_dropped =
            a.ln() - (b + (f - 1.0)).ln() + rk * ((alpha + t_x).recip() * (age - t_x)).ln_1p();
        ln_sum = ln_sum.log_add_exp(ln_dropped);
    }
    ln_sum - rk * (alpha.recip() * age).ln_1p()
}

/// One customer's log-likelihood without the timing term `(k-1) litt - x ln((k-1)!)`.
pub fn log_likelihood(p: &CnbdParams, x: f64, t_x: f64, age: f64) -> f64 {
    let c = Dual::<0>::constant;
    row_log_likelihood(
        [c(p.r), c(p.alpha), c(p.a), c(p.b)],
        p.k,
        p.modified,
        x,
        t_x,
        age,
    )
    .v
}

/// The timing term of the log-likelihood summed over customers: `(k-1) sum(w litt) -
/// ln((k-1)!) sum(w x)`.
pub fn timing_term(k: u32, litt_total: f64, repeat_total: f64) -> f64 {
    if k == 1 {
        return 0.0;
    }
    f64::from(k - 1) * litt_total - ln_gamma(f64::from(k)) * repeat_total
}

/// The likelihood for a given `k` over compressed rows (without the timing term), for the
/// fitting engine. The frequency part (log-gamma ratios) is formed once per distinct frequency;
/// the history part runs over the rows of each run of equal frequency four at a time in plain
/// `f64` with the analytic gradient ([`history_lanes`]), so that the loop compiles to SIMD.
pub struct Cnbd<'a> {
    data: &'a Rfm,
    k: u32,
    modified: bool,
    /// Distinct frequencies, ascending.
    distinct_x: Vec<f64>,
    /// Maximal runs of consecutive rows with equal frequency: (first row, index into
    /// `distinct_x`).
    runs: Vec<(usize, usize)>,
}

impl<'a> Cnbd<'a> {
    /// Prepare compressed rows for fitting BG/CNBD-k (MBG/CNBD-k when `modified`).
    pub fn new(data: &'a Rfm, k: u32, modified: bool) -> Self {
        let mut distinct_x: Vec<f64> = data.frequency.clone();
        distinct_x.sort_unstable_by(f64::total_cmp);
        distinct_x.dedup();
        let mut runs = Vec::new();
        for (i, &x) in data.frequency.iter().enumerate() {
            if i == 0 || data.frequency[i - 1] != x {
                runs.push((i, distinct_x.partition_point(|v| *v < x)));
            }
        }
        Cnbd {
            data,
            k,
            modified,
            distinct_x,
            runs,
        }
    }
}

/// Indices of the weighted per-run sums of [`history_quad`]: first order, then (the Hessian
/// pass, `SECOND`) second order.
mod sum {
    /// Sum of weights.
    pub const W: usize = 0;
    /// Sum of the history parts.
    pub const VALUE: usize = 1;
    /// Their derivatives in r and alpha.
    pub const D_R: usize = 2;
    pub const D_ALPHA: usize = 3;
    /// Sum of `s = S1 / (S1 + S2)` (the a and b derivatives are `s / a` and `-s / (b+f-1)`).
    pub const S: usize = 4;
    /// Second derivatives in (r, alpha) of the history parts.
    pub const H_RR: usize = 5;
    pub const H_RA: usize = 6;
    pub const H_AA: usize = 7;
    /// Sums of `q = s (1 - s)`, and of `q` times the differences of the r and alpha
    /// derivatives of `ln S1` and `ln S2` (what couples (r, alpha) with (a, b)).
    pub const Q: usize = 8;
    pub const Q_DR: usize = 9;
    pub const Q_DA: usize = 10;
    pub const ALL: usize = 11;
}

const LANES: usize = 4;

type Lanes = [[f64; LANES]; sum::ALL];

/// Largest stage term kept before the stage sums are rescaled (by [`RESCALE`]).
const BIG: f64 = 1e280;
const RESCALE: f64 = 1e-280;
/// `ln(1e280)`.
const LN_BIG: f64 = 644.724_003_974_440_8;

/// Stage `j` (1..k) of the stage sum `S2 = sum_{j<k} c_j`, `c_j = c_{j-1} coef_j z`: what the
/// run's rows share (they share `rk = r + kx`).
#[derive(Clone, Copy)]
struct Stage {
    /// `(rk + j - 1) / j`.
    coef: f64,
    /// `h_j = sum_{i<j} 1/(rk+i)`: the r-derivative of `ln c_j`.
    h: f64,
    /// `j` (`-j / (alpha+T)` is the alpha-derivative of `ln c_j`).
    j: f64,
    /// `h_j^2 - sum_{i<j} 1/(rk+i)^2`, `h_j j`, `j^2 + j`: the second-order moments.
    hh: f64,
    hj: f64,
    jj: f64,
}

fn stages(rk: f64, k: u32) -> Vec<Stage> {
    let (mut h, mut h2) = (0.0, 0.0);
    (1..k)
        .map(|j| {
            let shape = rk + f64::from(j - 1);
            let j = f64::from(j);
            h += 1.0 / shape;
            h2 += 1.0 / (shape * shape);
            Stage {
                coef: shape / j,
                h,
                j,
                hh: h * h - h2,
                hj: h * j,
                jj: j * j + j,
            }
        })
        .collect()
}

/// The constants of one run's rows: `rk = r + kx`, `ln_odds = ln a - ln(b+f-1)` (when `f > 0`).
struct RunConstants<'s> {
    alpha: f64,
    inv_alpha: f64,
    rk: f64,
    ln_odds: f64,
    dropped: bool,
    stages: &'s [Stage],
}

/// Four rows' history parts `-(rk) ln(1 + T/alpha) + ln(S1 + S2)` and their derivatives
/// (first order in (r, alpha), and with `SECOND` the second order and the sums that couple
/// them with (a, b)), added to `lanes`. `S2 = sum_{j<k} c_j` with `z = (T-t_x)/(alpha+T)` is
/// summed in the linear domain, stage by stage for the four rows at once (so that the loop
/// compiles to SIMD), with its derivative moments beside it; the sums are rescaled by 1e-280
/// whenever a term passes 1e280 (only long histories with large k get there). `S1 = a/(b+f-1)
/// ((alpha+T)/(alpha+t_x))^rk` joins in the log domain: `ln(S1 + S2) = ln S2 + ln(1 + e^d)`,
/// `d = ln S1 - ln S2`, whose weight `s = logistic(d)` mixes the two derivatives.
#[inline(always)]
fn history_quad<const SECOND: bool>(
    lanes: &mut Lanes,
    c: &RunConstants<'_>,
    age: &[f64],
    t_x: &[f64],
    w: &[f64],
) {
    use crate::fastmath::{exp, ln, ln_1p};
    let mut inv_at = [0.0; LANES];
    let mut z = [0.0; LANES];
    for l in 0..LANES {
        inv_at[l] = 1.0 / (c.alpha + age[l]);
        z[l] = (age[l] - t_x[l]) * inv_at[l];
    }
    let mut term = [1.0; LANES];
    let mut s2 = [1.0; LANES];
    let (mut s2_r, mut s2_j) = ([0.0; LANES], [0.0; LANES]);
    let (mut b_rr, mut b_rj, mut b_jj) = ([0.0; LANES], [0.0; LANES], [0.0; LANES]);
    let mut scale = [0.0; LANES];
    for st in c.stages {
        for l in 0..LANES {
            term[l] *= st.coef * z[l];
            s2[l] += term[l];
            s2_r[l] += term[l] * st.h;
            s2_j[l] += term[l] * st.j;
            if SECOND {
                b_rr[l] += term[l] * st.hh;
                b_rj[l] += term[l] * st.hj;
                b_jj[l] += term[l] * st.jj;
            }
            let big = term[l] > BIG;
            let f = if big { RESCALE } else { 1.0 };
            term[l] *= f;
            s2[l] *= f;
            s2_r[l] *= f;
            s2_j[l] *= f;
            if SECOND {
                b_rr[l] *= f;
                b_rj[l] *= f;
                b_jj[l] *= f;
            }
            scale[l] += if big { LN_BIG } else { 0.0 };
        }
    }
    let rk = c.rk;
    for l in 0..LANES {
        let (age, t_x, wt, inv_at) = (age[l], t_x[l], w[l], inv_at[l]);
        let ln1p_age = ln_1p(age * c.inv_alpha);
        let ln_s2 = scale[l] + ln(s2[l]);
        let inv_s2 = 1.0 / s2[l];
        let g2_r = s2_r[l] * inv_s2;
        let g2_alpha = -(s2_j[l] * inv_s2) * inv_at;
        let mut value = ln_s2 - rk * ln1p_age;
        let mut d_r = -ln1p_age;
        // d/d alpha of -rk ln(1 + T/alpha) = rk T / (alpha (alpha + T)).
        let outer_ra = age * c.inv_alpha * inv_at;
        let mut d_alpha = rk * outer_ra;
        // The second derivatives of ln S2 and of the outer term.
        let h2_rr = b_rr[l] * inv_s2 - g2_r * g2_r;
        let h2_ra = -(b_rj[l] * inv_s2) * inv_at - g2_r * g2_alpha;
        let h2_aa = b_jj[l] * inv_s2 * inv_at * inv_at - g2_alpha * g2_alpha;
        let outer_aa = -rk * outer_ra * (c.alpha + c.alpha + age) * c.inv_alpha * inv_at;
        let (mut h_rr, mut h_ra, mut h_aa) = (h2_rr, h2_ra + outer_ra, h2_aa + outer_aa);
        if c.dropped {
            let inv_atx = 1.0 / (c.alpha + t_x);
            let ell = ln_1p((age - t_x) * inv_atx);
            let dd = inv_at - inv_atx;
            let d = c.ln_odds + rk * ell - ln_s2;
            let e = exp(-d.abs());
            let s = if d >= 0.0 { 1.0 } else { e } / (1.0 + e);
            value += d.max(0.0) + ln_1p(e);
            d_r += (1.0 - s) * g2_r + s * ell;
            d_alpha += (1.0 - s) * g2_alpha + s * rk * dd;
            lanes[sum::S][l] += wt * s;
            if SECOND {
                // q = s (1 - s) = e / (1 + e)^2, exact in both tails.
                let q = e / ((1.0 + e) * (1.0 + e));
                let (dr, da) = (ell - g2_r, rk * dd - g2_alpha);
                h_rr = (1.0 - s) * h2_rr + q * dr * dr;
                h_ra = s * dd + (1.0 - s) * h2_ra + q * dr * da + outer_ra;
                h_aa = s * rk * (inv_atx * inv_atx - inv_at * inv_at)
                    + (1.0 - s) * h2_aa
                    + q * da * da
                    + outer_aa;
                lanes[sum::Q][l] += wt * q;
                lanes[sum::Q_DR][l] += wt * q * dr;
                lanes[sum::Q_DA][l] += wt * q * da;
            }
        } else {
            d_r += g2_r;
            d_alpha += g2_alpha;
        }
        lanes[sum::W][l] += wt;
        lanes[sum::VALUE][l] += wt * value;
        lanes[sum::D_R][l] += wt * d_r;
        lanes[sum::D_ALPHA][l] += wt * d_alpha;
        if SECOND {
            lanes[sum::H_RR][l] += wt * h_rr;
            lanes[sum::H_RA][l] += wt * h_ra;
            lanes[sum::H_AA][l] += wt * h_aa;
        }
    }
}

/// Sums of [`history_quad`] over one run's rows, 4 at a time; the last rows are padded with
/// weight-0 rows (finite values, so they add exact zeros). The lanes are added in a fixed
/// order, so the result depends only on the rows.
#[inline(always)]
fn history_lanes<const SECOND: bool>(
    c: &RunConstants<'_>,
    age: &[f64],
    t_x: &[f64],
    w: &[f64],
) -> [f64; sum::ALL] {
    let mut lanes: Lanes = [[0.0; LANES]; sum::ALL];
    let full = age.len() / LANES * LANES;
    for ((a4, t4), w4) in age[..full]
        .chunks_exact(LANES)
        .zip(t_x[..full].chunks_exact(LANES))
        .zip(w[..full].chunks_exact(LANES))
    {
        history_quad::<SECOND>(&mut lanes, c, a4, t4, w4);
    }
    if full < age.len() {
        let (mut a4, mut t4, mut w4) = ([1.0; LANES], [0.0; LANES], [0.0; LANES]);
        let rest = age.len() - full;
        a4[..rest].copy_from_slice(&age[full..]);
        t4[..rest].copy_from_slice(&t_x[full..]);
        w4[..rest].copy_from_slice(&w[full..]);
        history_quad::<SECOND>(&mut lanes, c, &a4, &t4, &w4);
    }
    lanes.map(|l| l.iter().sum::<f64>())
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
fn history_lanes_avx2<const SECOND: bool>(
    c: &RunConstants<'_>,
    age: &[f64],
    t_x: &[f64],
    w: &[f64],
) -> [f64; sum::ALL] {
    history_lanes::<SECOND>(c, age, t_x, w)
}

/// [`history_lanes`] with 256-bit vectors where the processor has them (no fused multiply-add:
/// the same bits either way).
fn history_lanes_dispatch<const SECOND: bool>(
    c: &RunConstants<'_>,
    age: &[f64],
    t_x: &[f64],
    w: &[f64],
) -> [f64; sum::ALL] {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx2") {
        // SAFETY: the processor supports AVX2 (checked just above).
        return unsafe { history_lanes_avx2::<SECOND>(c, age, t_x, w) };
    }
    history_lanes::<SECOND>(c, age, t_x, w)
}

impl Cnbd<'_> {
    /// One pass over the rows: the log-likelihood and gradient (5 values), and with `SECOND`
    /// the upper triangle of the Hessian after them (10 values: rr, r alpha, ra, rb, alpha
    /// alpha, alpha a, alpha b, aa, ab, bb). The first-order sums do not depend on the
    /// second-order ones, so the value and gradient have the same bits either way.
    fn pass<const SECOND: bool>(&self, params: &[f64], exec: &Exec) -> Vec<f64> {
        let (k, modified) = (self.k, self.modified);
        let d = self.data;
        let p: [Dual<4>; 4] = std::array::from_fn(|i| Dual::variable(params[i], i));
        let (r, alpha, a, b) = (params[0], params[1], params[2], params[3]);
        let parts: Vec<Dual<4>> = self
            .distinct_x
            .iter()
            .map(|&x| frequency_part(p, k, modified, x))
            .collect();
        let (tg_r, tg_ab, tg_b) = if SECOND {
            (trigamma(r), trigamma(a + b), trigamma(b))
        } else {
            (0.0, 0.0, 0.0)
        };
        let width = if SECOND { 15 } else { 5 };
        exec.chunked_sum(d.len(), width, |range, acc| {
            let first = self
                .runs
                .partition_point(|&(start, _)| start <= range.start)
                - 1;
            for (i, &(start, xi)) in self.runs.iter().enumerate().skip(first) {
                if start >= range.end {
                    break;
                }
                let end = self.runs.get(i + 1).map_or(d.len(), |&(s, _)| s);
                let rows = start.max(range.start)..end.min(range.end);
                let x = self.distinct_x[xi];
                let f = if modified { x + 1.0 } else { x };
                let rk = r + f64::from(k) * x;
                let run_stages = stages(rk, k);
                let c = RunConstants {
                    alpha,
                    inv_alpha: 1.0 / alpha,
                    rk,
                    ln_odds: if f > 0.0 {
                        a.ln() - (b + (f - 1.0)).ln()
                    } else {
                        0.0
                    },
                    dropped: f > 0.0,
                    stages: &run_stages,
                };
                let sums = history_lanes_dispatch::<SECOND>(
                    &c,
                    &d.age[rows.clone()],
                    &d.recency[rows.clone()],
                    d.weights_of(rows),
                );
                let (w, part) = (sums[sum::W], parts[xi]);
                let ib = if c.dropped {
                    1.0 / (b + (f - 1.0))
                } else {
                    0.0
                };
                acc[0] += w * part.v + sums[sum::VALUE];
                acc[1] += w * part.d[0] + sums[sum::D_R];
                acc[2] += w * part.d[1] + sums[sum::D_ALPHA];
                acc[3] += w * part.d[2] + sums[sum::S] / a;
                acc[4] += w * part.d[3] - sums[sum::S] * ib;
                if SECOND {
                    let kx = f64::from(k) * x;
                    // The frequency part's second derivatives: trigamma differences, and
                    // kx / alpha^2 from -kx ln alpha.
                    let tg_abf = trigamma(a + b + f);
                    let fp_rr = if kx > 0.0 {
                        trigamma(r + kx) - tg_r
                    } else {
                        0.0
                    };
                    let fp_aa = if f > 0.0 { tg_ab - tg_abf } else { 0.0 };
                    let fp_bb = if f > 0.0 {
                        trigamma(b + f) - tg_b + fp_aa
                    } else {
                        0.0
                    };
                    let (s, q) = (sums[sum::S], sums[sum::Q]);
                    let (q_dr, q_da) = (sums[sum::Q_DR], sums[sum::Q_DA]);
                    let h = &mut acc[5..];
                    h[0] += w * fp_rr + sums[sum::H_RR];
                    h[1] += sums[sum::H_RA];
                    h[2] += q_dr / a;
                    h[3] -= q_dr * ib;
                    h[4] += w * kx / (alpha * alpha) + sums[sum::H_AA];
                    h[5] += q_da / a;
                    h[6] -= q_da * ib;
                    h[7] += w * fp_aa + (q - s) / (a * a);
                    h[8] += w * fp_aa - q * ib / a;
                    h[9] += w * fp_bb + (s + q) * ib * ib;
                }
            }
        })
    }
}

impl Likelihood for Cnbd<'_> {
    fn params(&self) -> &[ParamSpec] {
        &PARAMS
    }

    fn starts(&self) -> Vec<Vec<f64>> {
        // The stage rate is k times the purchase rate: alpha scales with 1 / k.
        let (alpha, _) = self.data.start_scales();
        let alpha = alpha / f64::from(self.k);
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
        let acc = self.pass::<false>(params, exec);
        (acc[0], acc[1..].to_vec())
    }

    /// The analytic Hessian in (r, alpha, a, b) from one pass (the second-order sums of
    /// [`history_quad`], trigamma terms per distinct frequency).
    fn hessian(&self, params: &[f64], exec: &Exec) -> Option<Array2<f64>> {
        self.loglik_gradient_hessian(params, exec)
            .map(|(_, _, hessian)| hessian)
    }

    fn loglik_gradient_hessian(&self, params: &[f64], exec: &Exec) -> Option<FusedPass> {
        let acc = self.pass::<true>(params, exec);
        let upper = [[0, 1, 2, 3], [1, 4, 5, 6], [2, 5, 7, 8], [3, 6, 8, 9]];
        let hessian = Array2::from_shape_fn((4, 4), |(i, j)| acc[5 + upper[i][j]]);
        Some((acc[0], acc[1..5].to_vec(), hessian))
    }
}

/// The regularity data of a fit: the weighted sums of `litt` and of the frequencies, or `None`
/// when the caller has no `litt` (then only `k = 1` can be fitted with a complete
/// log-likelihood).
#[derive(Debug, Clone, Copy)]
pub struct TimingTotals {
    pub litt: f64,
    pub repeats: f64,
}

/// Maximum-likelihood fit for a given `k`; the log-likelihood includes the timing term (which
/// needs `timing` when `k > 1`).
pub fn fit_k(
    data: &Rfm,
    k: u32,
    modified: bool,
    timing: Option<TimingTotals>,
    opts: &FitOptions<'_>,
) -> Result<FitResult> {
    let extra = match (k, timing) {
        (1, _) => 0.0,
        (_, Some(t)) => timing_term(k, t.litt, t.repeats),
        (_, None) => {
            return Err(ClvError::invalid_data(
                "litt",
                None,
                None,
                "is needed for k > 1: the sum of the logs of each customer's inter-purchase \
                 times enters the likelihood (summarize_transactions(..., regularity=True) \
                 adds it)",
            ))
        }
    };
    let mut res = fit_with_warm_start(
        data,
        data.len(),
        Rfm::subsample,
        |d, o| fit(&Cnbd::new(d, k, modified), o),
        opts,
    )?;
    res.log_likelihood += extra;
    Ok(res)
}

/// Fits for `k = 1, 2, ..., max_k`, stopping early once the log-likelihood has fallen twice in
/// a row, or a fit finds no finite optimum (as BTYDplus' grid search does; the profile says
/// where it stopped).
/// Returns `(k, fit)` for every `k` tried; choose the largest log-likelihood.
pub fn fit_profile(
    data: &Rfm,
    modified: bool,
    timing: TimingTotals,
    max_k: u32,
    opts: &FitOptions<'_>,
) -> Result<Vec<(u32, FitResult)>> {
    let max_k = check_k(f64::from(max_k))?;
    let mut out: Vec<(u32, FitResult)> = Vec::new();
    for k in 1..=max_k {
        match fit_k(data, k, modified, Some(timing), opts) {
            Ok(res) => out.push((k, res)),
            // A larger k without a finite optimum ends the search (as in BTYDplus).
            Err(ClvError::Convergence { .. }) if !out.is_empty() => break,
            Err(e) => return Err(e),
        }
        let n = out.len();
        if n >= 3
            && out[n - 1].1.log_likelihood < out[n - 2].1.log_likelihood
            && out[n - 2].1.log_likelihood < out[n - 3].1.log_likelihood
        {
            break;
        }
    }
    Ok(out)
}

/// Relative size below which the rest of a positive series is dropped.
const TAIL: f64 = 1e-17;

/// The history's posterior: `ln P(alive, j stages done | history)` for `j < k` (those that are
/// possible), and P(dropped out).
struct Posterior {
    ln_alive: Vec<f64>,
    dropped: f64,
    /// r + kx: the shape of lambda's posterior given alive with 0 stages done.
    shape: f64,
    /// alpha + T: its rate.
    rate: f64,
    /// Dropout coins survived (the posterior of p is Beta(a, b + f)).
    flips: f64,
}

fn posterior(p: &CnbdParams, x: f64, t_x: f64, age: f64) -> Posterior {
    let shape = p.r + f64::from(p.k) * x;
    let flips = p.flips(x);
    let mut ln_terms = vec![0.0];
    if p.k > 1 && age > t_x {
        let ln_z = (age - t_x).ln() - (p.alpha + age).ln();
        let mut ln_term = 0.0;
        for j in 1..p.k {
            ln_term += (shape + f64::from(j - 1)).ln() + ln_z - f64::from(j).ln();
            ln_terms.push(ln_term);
        }
    }
    let ln_dropped = if flips > 0.0 {
        p.a.ln() - (p.b + flips - 1.0).ln() + shape * ((age - t_x) / (p.alpha + t_x)).ln_1p()
    } else {
        f64::NEG_INFINITY
    };
    let ln_total = ln_terms
        .iter()
        .fold(ln_dropped, |acc, &v| log_add_exp(acc, v));
    Posterior {
        ln_alive: ln_terms.iter().map(|v| v - ln_total).collect(),
        dropped: (ln_dropped - ln_total).exp(),
        shape,
        rate: p.alpha + age,
        flips,
    }
}

/// `sum_m P(N = m) g(m)` for `N ~ NegBin(shape, q)` with `q = t / (rate + t)` and `g >= 0`
/// growing at most linearly, from the mode outwards until the rest is below [`TAIL`] of the sum.
fn negative_binomial_expectation(
    shape: f64,
    rate: f64,
    t: f64,
    mut g: impl FnMut(u64) -> f64,
) -> f64 {
    if t == 0.0 {
        return g(0);
    }
    let odds = t / rate; // q / (1 - q)
    let q = t / (rate + t);
    let ln_q = q.ln();
    let ln_1mq = -odds.ln_1p();
    let mode = ((shape - 1.0) * odds).floor().max(0.0);
    let m0 = mode as u64;
    let at_mode = ln_negative_binomial_pmf(shape, mode, ln_q, ln_1mq).exp();
    let mut sum = at_mode * g(m0);
    // Upwards: P(m + 1) = P(m) (shape + m) / (m + 1) q.
    let (mut m, mut pmf) = (m0, at_mode);
    for _ in 0..50_000_000u64 {
        pmf *= (shape + m as f64) / (m as f64 + 1.0) * q;
        m += 1;
        let gm = g(m);
        sum += pmf * gm;
        let ratio = (shape + m as f64) / (m as f64 + 1.0) * q;
        if ratio < 1.0 {
            let rest = pmf * ratio / (1.0 - ratio) * (gm + 1.0 / (1.0 - ratio));
            if rest <= TAIL * sum || pmf == 0.0 {
                break;
            }
        }
    }
    // Downwards: P(m - 1) = P(m) m / ((shape + m - 1) q).
    let (mut m, mut pmf) = (m0, at_mode);
    while m > 0 {
        pmf *= m as f64 / ((shape + m as f64 - 1.0) * q);
        m -= 1;
        let gm = g(m);
        sum += pmf * gm;
        let ratio = if m == 0 {
            0.0
        } else {
            m as f64 / ((shape + m as f64 - 1.0) * q)
        };
        if ratio < 1.0 && pmf * ratio / (1.0 - ratio) * g(0).max(gm) <= TAIL * sum {
            break;
        }
    }
    sum
}

/// Moments of the posterior dropout probability `p ~ Beta(a, b + f)`, grown on demand:
/// `E[(1-p)^n]` (`survive`) and `sum_{i=1..n} E[(1-p)^(i-1)]` (`cumulative`).
struct Coins {
    a: f64,
    bf: f64,
    survive: Vec<f64>,
    cumulative: Vec<f64>,
}

impl Coins {
    fn new(a: f64, bf: f64) -> Self {
        Coins {
            a,
            bf,
            survive: vec![1.0],
            cumulative: vec![0.0],
        }
    }

    fn grow(&mut self, n: usize) {
        while self.survive.len() <= n {
            let i = self.survive.len() - 1;
            let last = self.survive[i];
            let c = self.cumulative[i];
            self.cumulative.push(c + last);
            self.survive
                .push(last * (self.bf + i as f64) / (self.a + self.bf + i as f64));
        }
    }

    fn survive(&mut self, n: usize) -> f64 {
        self.grow(n);
        self.survive[n]
    }

    fn cumulative(&mut self, n: usize) -> f64 {
        self.grow(n);
        self.cumulative[n]
    }
}

impl CnbdParams {
    /// P(alive at T).
    pub fn probability_alive(&self, x: f64, t_x: f64, age: f64) -> f64 {
        // The alive weights summed, not 1 - P(dropped): that loses the digits of a small
        // P(alive).
        let alive: f64 = posterior(self, x, t_x, age)
            .ln_alive
            .iter()
            .map(|v| v.exp())
            .sum();
        alive.min(1.0)
    }

    /// E[X(T, T + t) | history].
    pub fn conditional_expected_purchases(&self, x: f64, t_x: f64, age: f64, t: f64) -> f64 {
        self.alive_expectation(x, t_x, age, t, Coins::cumulative)
    }

    /// P(alive at T + t | history).
    pub fn probability_alive_after(&self, x: f64, t_x: f64, age: f64, t: f64) -> f64 {
        self.alive_expectation(x, t_x, age, t, Coins::survive)
            .min(1.0)
    }

    /// The expectation over the posterior of a customer alive at T (weighted by the stages `j`
    /// of the current gap already done) of `of(coins, n)`, with `n` the purchases completed in
    /// (T, T + t]: `Coins::cumulative` gives the expected purchases before dropout,
    /// `Coins::survive` the chance of surviving them.
    fn alive_expectation(
        &self,
        x: f64,
        t_x: f64,
        age: f64,
        t: f64,
        of: fn(&mut Coins, usize) -> f64,
    ) -> f64 {
        let post = posterior(self, x, t_x, age);
        let k = u64::from(self.k);
        let mut coins = Coins::new(self.a, self.b + post.flips);
        let mut total = 0.0;
        for (j, ln_w) in post.ln_alive.iter().enumerate() {
            let w = ln_w.exp();
            if w == 0.0 {
                continue;
            }
            let j = j as u64;
            total += w * negative_binomial_expectation(post.shape + j as f64, post.rate, t, |m| {
                of(&mut coins, ((m + j) / k) as usize)
            });
        }
        total
    }

    /// P(X(T, T + t) = n | history).
    pub fn conditional_purchase_count_probability(
        &self,
        n: u64,
        x: f64,
        t_x: f64,
        age: f64,
        t: f64,
    ) -> f64 {
        let post = posterior(self, x, t_x, age);
        let k = u64::from(self.k);
        let mut coins = Coins::new(self.a, self.b + post.flips);
        let bf = self.b + post.flips;
        let mut total = if n == 0 { post.dropped } else { 0.0 };
        let q = t / (post.rate + t);
        let (ln_q, ln_1mq) = (q.ln(), -(t / post.rate).ln_1p());
        for (j, ln_w) in post.ln_alive.iter().enumerate() {
            let w = ln_w.exp();
            if w == 0.0 {
                continue;
            }
            let j = j as u64;
            let shape = post.shape + j as f64;
            let pmf = |m: u64| -> f64 {
                if t == 0.0 {
                    return if m == 0 { 1.0 } else { 0.0 };
                }
                ln_negative_binomial_pmf(shape, m as f64, ln_q, ln_1mq).exp()
            };
            let tail = |m: u64| -> f64 {
                if m == 0 {
                    1.0
                } else if t == 0.0 {
                    0.0
                } else {
                    negative_binomial_upper_tail(shape, m, q, ln_q, ln_1mq)
                }
            };
            // The n-th future purchase is at stage count nk - j, the (n+1)-th at (n+1)k - j.
            let lo = (n * k).saturating_sub(j);
            let hi = (n + 1) * k - j; // exclusive
            let stays: f64 = (lo..hi).map(pmf).sum();
            let mut p_n = coins.survive(n as usize) * stays;
            if n >= 1 {
                // E[p (1-p)^(n-1)] = E[(1-p)^(n-1)] a / (a + b + f + n - 1).
                let drop = coins.survive(n as usize - 1) * self.a / (self.a + bf + (n - 1) as f64);
                p_n += drop * tail(lo);
            }
            total += w * p_n;
        }
        total.clamp(0.0, 1.0)
    }
}

/// Draw histories `(x, t_x, litt)` from the (M)BG/CNBD-k process for customers of ages `ages`;
/// customer `i` uses random stream `i` of `seed`.
pub fn simulate(p: &CnbdParams, ages: &[f64], seed: u64) -> (Vec<f64>, Vec<f64>, Vec<f64>) {
    let n = ages.len();
    let (mut xs, mut last_times, mut litts) = (
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
    );
    let k = f64::from(p.k);
    for (i, &age) in ages.iter().enumerate() {
        let mut rng = crate::random::Rng::for_stream(seed, i as u64);
        let lambda = rng.gamma(p.r) / p.alpha;
        let drop = rng.beta(p.a, p.b);
        let (mut count, mut last, mut litt) = (0.0, 0.0, 0.0);
        let gone_at_start = p.modified && rng.uniform() < drop;
        if !gone_at_start {
            loop {
                let gap = rng.gamma(k) / lambda;
                let now = last + gap;
                if !(now <= age) {
                    break;
                }
                count += 1.0;
                litt += gap.ln();
                last = now;
                if rng.uniform() < drop {
                    break;
                }
            }
        }
        xs.push(count);
        last_times.push(last);
        litts.push(litt);
    }
    (xs, last_times, litts)
}

/// BG/CNBD-k parameters (no dropout at the first purchase).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BgCnbdParams(pub CnbdParams);

/// MBG/CNBD-k parameters (a dropout coin right after the first purchase too).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MbgCnbdParams(pub CnbdParams);

/// BG/CNBD-k and MBG/CNBD-k as [`RfmModel`]s for predictions: their parameters are
/// `[r, alpha, a, b, k]`; fitting goes through [`fit_k`] and [`fit_profile`], which take `k`.
macro_rules! cnbd_member {
    ($T:ident, $name:literal, $modified:literal) => {
        impl $T {
            pub const fn new(r: f64, alpha: f64, a: f64, b: f64, k: u32) -> Self {
                $T(CnbdParams::new(r, alpha, a, b, k, $modified))
            }
        }

        impl RfmModel for $T {
            const NAME: &'static str = $name;

            fn specs() -> &'static [ParamSpec] {
                &PARAMS
            }

            fn from_slice(values: &[f64]) -> Result<Self> {
                Ok($T(CnbdParams::from_values(values, $modified)?))
            }

            fn fit(_data: &Rfm, _opts: &FitOptions<'_>) -> Result<FitResult> {
                Err(ClvError::invalid_parameter(
                    "k",
                    concat!($name, " is fitted for a given k (cnbd::fit_k) or over k = 1..K (cnbd::fit_profile)"),
                ))
            }

            fn log_likelihood(&self, x: f64, t_x: f64, age: f64) -> f64 {
                log_likelihood(&self.0, x, t_x, age)
            }

            fn probability_alive(&self, x: f64, t_x: f64, age: f64) -> f64 {
                self.0.probability_alive(x, t_x, age)
            }

            fn conditional_expected_purchases(&self, x: f64, t_x: f64, age: f64, t: f64) -> f64 {
                self.0.conditional_expected_purchases(x, t_x, age, t)
            }

            fn expected_purchases_new_customer(&self, t: f64) -> f64 {
                self.0.conditional_expected_purchases(0.0, 0.0, 0.0, t)
            }

            fn purchase_count_probability(&self, n: u64, t: f64) -> Option<f64> {
                Some(self.0.conditional_purchase_count_probability(n, 0.0, 0.0, 0.0, t))
            }

            fn probability_alive_after(&self, x: f64, t_x: f64, age: f64, t: f64) -> Option<f64> {
                Some(self.0.probability_alive_after(x, t_x, age, t))
            }

            fn conditional_purchase_count_probability(
                &self,
                n: u64,
                x: f64,
                t_x: f64,
                age: f64,
                t: f64,
            ) -> Option<f64> {
                Some(self.0.conditional_purchase_count_probability(n, x, t_x, age, t))
            }

            fn simulate(&self, ages: &[f64], seed: u64) -> Option<(Vec<f64>, Vec<f64>)> {
                let (x, t_x, _) = simulate(&self.0, ages, seed);
                Some((x, t_x))
            }
        }
    };
}

cnbd_member!(BgCnbdParams, "bgcnbd", false);
cnbd_member!(MbgCnbdParams, "mbgcnbd", true);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::RfmColumns;
    use crate::models::bgnbd::{self, BgNbdParams};
    use crate::models::testing::{assert_gradient_matches, cdnow, rel};
    use crate::models::MbgNbdParams;

    const ROWS: [(f64, f64, f64); 6] = [
        (0.0, 0.0, 30.0),
        (1.0, 3.0, 20.0),
        (5.0, 30.0, 31.0),
        (12.0, 7.5, 7.5),
        (2.0, 10.0, 52.0),
        (150.0, 100.0, 104.0),
    ];

    #[test]
    fn k_one_is_bgnbd_and_mbgnbd() {
        for modified in [false, true] {
            let mut bg = BgNbdParams::new(0.243, 4.414, 0.793, 2.426);
            bg.modified = modified;
            let c = CnbdParams::new(0.243, 4.414, 0.793, 2.426, 1, modified);
            for &(x, t_x, age) in &ROWS {
                let want = bgnbd::log_likelihood(&bg, x, t_x, age);
                assert!(
                    (log_likelihood(&c, x, t_x, age) - want).abs() < 1e-11 * want.abs().max(1.0),
                    "{modified} {x} {t_x} {age}"
                );
                let pa = bgnbd::probability_alive(&bg, x, t_x, age);
                assert!((c.probability_alive(x, t_x, age) - pa).abs() < 1e-13);
                for t in [1.0, 10.0, 52.0] {
                    let e = bgnbd::conditional_expected_purchases(&bg, x, t_x, age, t);
                    assert!(rel(c.conditional_expected_purchases(x, t_x, age, t), e) < 1e-11);
                }
            }
            for t in [1.0, 39.0] {
                for n in 0..5 {
                    let want = bgnbd::purchase_count_probability(&bg, n, t);
                    let got = c.conditional_purchase_count_probability(n, 0.0, 0.0, 0.0, t);
                    assert!(rel(got, want) < 1e-11, "{n} {t}: {got} vs {want}");
                }
            }
        }
        // Fitted on CDNOW: the same optimum and log-likelihood as BG/NBD and MBG/NBD (the
        // published -9582.43 and about -9582.13; the bundled summary's recency is rounded to
        // 2 decimals of a week, which moves the third decimal).
        let data = cdnow();
        for (modified, want) in [(false, -9582.43), (true, -9582.13)] {
            let res = fit_k(&data, 1, modified, None, &FitOptions::default()).unwrap();
            let plain = if modified {
                MbgNbdParams::fit(&data, &FitOptions::default()).unwrap()
            } else {
                BgNbdParams::fit(&data, &FitOptions::default()).unwrap()
            };
            assert!((res.log_likelihood - plain.log_likelihood).abs() < 1e-6);
            assert!(
                (res.log_likelihood - want).abs() < 1e-2,
                "{}",
                res.log_likelihood
            );
            for (a, b) in res.params.iter().zip(&plain.params) {
                assert!(rel(*a, *b) < 1e-5, "{:?} vs {:?}", res.params, plain.params);
            }
        }
    }

    #[test]
    fn gradient_is_exact() {
        let (x, t_x, age): (Vec<f64>, Vec<f64>, Vec<f64>) = (
            ROWS.iter().map(|r| r.0).collect(),
            ROWS.iter().map(|r| r.1).collect(),
            ROWS.iter().map(|r| r.2).collect(),
        );
        let data = RfmColumns::new(&x, &t_x, &age).compress();
        for k in [1, 2, 3, 7] {
            for modified in [false, true] {
                let lik = Cnbd::new(&data, k, modified);
                let at = [0.8, 2.3, 0.6, 1.7];
                let (v, g) = lik.loglik_and_gradient(&at, &Exec::Serial);
                let p = CnbdParams::new(at[0], at[1], at[2], at[3], k, modified);
                let rows: f64 = ROWS
                    .iter()
                    .map(|&(x, t_x, age)| log_likelihood(&p, x, t_x, age))
                    .sum();
                assert!((v - rows).abs() < 1e-10 * rows.abs(), "{v} vs {rows}");
                assert_gradient_matches(
                    |q| lik.loglik_and_gradient(q, &Exec::Serial).0,
                    &g,
                    &at,
                    1e-6,
                );
            }
        }
    }

    /// The fused pass: the value and gradient of the gradient pass bit for bit, and a
    /// symmetric Hessian equal to the central differences of the analytic gradient; on rows
    /// whose stage terms pass 1e280 (k = 200, 300 purchases) as well, where the value is the
    /// log-domain row function's.
    #[test]
    fn hessian_is_exact_and_the_fused_pass_has_the_gradient_bits() {
        let long: [(f64, f64, f64); 3] =
            [(300.0, 10.0, 1000.0), (0.0, 0.0, 900.0), (2.0, 5.0, 7.0)];
        type Row = (f64, f64, f64);
        let cases: [(&[Row], &[u32]); 2] = [(&ROWS, &[1, 2, 3, 7]), (&long, &[200])];
        for (rows, ks) in cases {
            let (x, t_x, age): (Vec<f64>, Vec<f64>, Vec<f64>) = (
                rows.iter().map(|r| r.0).collect(),
                rows.iter().map(|r| r.1).collect(),
                rows.iter().map(|r| r.2).collect(),
            );
            let data = RfmColumns::new(&x, &t_x, &age).compress();
            for &k in ks {
                for modified in [false, true] {
                    let lik = Cnbd::new(&data, k, modified);
                    let at = [0.8, 2.3, 0.6, 1.7];
                    let exec = Exec::Serial;
                    let (v, g) = lik.loglik_and_gradient(&at, &exec);
                    let (fv, fg, h) = lik.loglik_gradient_hessian(&at, &exec).unwrap();
                    assert_eq!(fv.to_bits(), v.to_bits());
                    assert_eq!(fg, g);
                    let p = CnbdParams::new(at[0], at[1], at[2], at[3], k, modified);
                    let want: f64 = rows
                        .iter()
                        .map(|&(x, t_x, age)| log_likelihood(&p, x, t_x, age))
                        .sum();
                    assert!((v - want).abs() < 1e-11 * want.abs(), "{k}: {v} vs {want}");
                    for i in 0..4 {
                        let step = 1e-5 * at[i];
                        let (mut up, mut down) = (at, at);
                        up[i] += step;
                        down[i] -= step;
                        let g_up = lik.loglik_and_gradient(&up, &exec).1;
                        let g_down = lik.loglik_and_gradient(&down, &exec).1;
                        for j in 0..4 {
                            assert_eq!(h[[i, j]].to_bits(), h[[j, i]].to_bits());
                            let numeric = (g_up[j] - g_down[j]) / (2.0 * step);
                            let scale = h[[i, i]].abs().max(h[[j, j]].abs()).sqrt()
                                * numeric.abs().max(1.0).sqrt();
                            assert!(
                                (h[[i, j]] - numeric).abs() < 1e-5 * scale.max(1.0),
                                "k {k} {modified} [{i},{j}]: {} vs {numeric}",
                                h[[i, j]]
                            );
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn count_probabilities_sum_to_one_and_match_the_expectation() {
        for modified in [false, true] {
            for k in [1, 2, 5] {
                let p = CnbdParams::new(0.9, 1.3, 0.7, 2.1, k, modified);
                for &(x, t_x, age) in &ROWS[..5] {
                    let t = 20.0;
                    let (mut total, mut mean) = (0.0, 0.0);
                    for n in 0..400 {
                        let q = p.conditional_purchase_count_probability(n, x, t_x, age, t);
                        total += q;
                        mean += n as f64 * q;
                    }
                    assert!((total - 1.0).abs() < 1e-12, "{k} {x}: {total}");
                    let e = p.conditional_expected_purchases(x, t_x, age, t);
                    assert!(rel(mean, e) < 1e-11, "{k} {x}: {mean} vs {e}");
                }
            }
        }
    }

    /// Customers simulated to `T + t`: the conditional predictions at `T`, summed over the
    /// cohort, match what happened after `T` (alive at `T`, purchases in `(T, T + t]`, alive
    /// at `T + t`), within sampling error: a check of the posterior over the dropout state and
    /// the stages done that is independent of the formulas.
    #[test]
    fn conditional_predictions_match_simulated_futures() {
        let t = 26.0;
        for (k, modified) in [(2, false), (3, true), (6, true)] {
            let p = CnbdParams::new(1.1, 1.4 * f64::from(k) / 2.0, 0.7, 2.2, k, modified);
            let n = 120_000;
            let (mut predicted, mut actual) = ([0.0; 3], [0.0; 3]);
            let mut squares = [0.0; 3];
            for i in 0..n {
                let age = 20.0 + (i % 30) as f64;
                let mut rng = crate::random::Rng::for_stream(99, i as u64);
                let lambda = rng.gamma(p.r) / p.alpha;
                let drop = rng.beta(p.a, p.b);
                let (mut x, mut t_x, mut future) = (0.0, 0.0, 0.0);
                let mut alive = !(modified && rng.uniform() < drop);
                let (mut alive_at_age, mut now) = (alive, 0.0);
                while alive {
                    now += rng.gamma(f64::from(k)) / lambda;
                    if now > age + t {
                        break;
                    }
                    if now <= age {
                        x += 1.0;
                        t_x = now;
                    } else {
                        future += 1.0;
                    }
                    if rng.uniform() < drop {
                        alive = false;
                        if now <= age {
                            alive_at_age = false;
                        }
                    }
                }
                let outcome = [
                    f64::from(u8::from(alive_at_age)),
                    future,
                    f64::from(u8::from(alive)),
                ];
                let prediction = [
                    p.probability_alive(x, t_x, age),
                    p.conditional_expected_purchases(x, t_x, age, t),
                    p.probability_alive_after(x, t_x, age, t),
                ];
                for j in 0..3 {
                    predicted[j] += prediction[j];
                    actual[j] += outcome[j];
                    squares[j] += (outcome[j] - prediction[j]).powi(2);
                }
            }
            for j in 0..3 {
                let sd = squares[j].sqrt();
                assert!(
                    (predicted[j] - actual[j]).abs() < 4.0 * sd,
                    "k {k} quantity {j}: predicted {} vs {} (sd {sd})",
                    predicted[j],
                    actual[j]
                );
            }
        }
    }

    #[test]
    fn simulated_histories_follow_the_predictions() {
        // The mean of simulated purchase counts in (0, t] is E[X(t)] (new customers).
        let p = CnbdParams::new(1.2, 2.0, 0.8, 2.5, 3, true);
        let t = 30.0;
        let ages = vec![t; 200_000];
        let (x, _, _) = simulate(&p, &ages, 11);
        let mean = x.iter().sum::<f64>() / x.len() as f64;
        let var = x.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / x.len() as f64;
        let want = p.conditional_expected_purchases(0.0, 0.0, 0.0, t);
        assert!(
            (mean - want).abs() < 4.0 * (var / x.len() as f64).sqrt(),
            "{mean} vs {want}"
        );
    }
}
