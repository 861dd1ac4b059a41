//! The BG/NBD (or MBG/NBD) likelihood over compressed customer rows for the fitting engine
//! ([`BgNbd`]): terms that depend on the frequency only, once per distinct frequency; per-run
//! sums over the rows, 4 at a time so that they compile to SIMD; the analytic gradient and
//! Hessian from those sums.

use super::{log_likelihood, BgNbdParams, PARAMS};
use crate::data::Rfm;
use crate::fit::{FusedPass, Likelihood, ParamSpec};
use crate::parallel::Exec;
use crate::special::{digamma_diff, ln_gamma_diff, trigamma};
use ndarray::Array2;

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
    /// The largest frequency, when the frequencies are whole numbers few enough that the
    /// frequency-only terms come from running sums (see [`BgNbd::x_terms`]).
    rising_sums_up_to: Option<usize>,
    /// The largest age `T` (see [`BgNbd::shares_divisions`]).
    max_age: f64,
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
    /// Prepare compressed rows (from [`RfmColumns::compress`](crate::data::RfmColumns::compress)) for fitting BG/NBD.
    pub fn new(data: &'a Rfm) -> Self {
        Self::with_variant(data, false)
    }

    /// Prepare compressed rows for fitting MBG/NBD.
    pub fn modified(data: &'a Rfm) -> Self {
        Self::with_variant(data, true)
    }

    /// Prepare compressed rows for fitting BG/NBD, or MBG/NBD when `modified`.
    pub fn with_variant(data: &'a Rfm, modified: bool) -> Self {
        // Runs first (one pass), then the distinct frequencies from the runs' values, which are
        // few: sorting a copy of every row's frequency cost more than a likelihood evaluation.
        let starts: Vec<usize> = (0..data.len())
            .filter(|&i| i == 0 || data.frequency[i - 1] != data.frequency[i])
            .collect();
        let mut distinct_x: Vec<f64> = starts.iter().map(|&i| data.frequency[i]).collect();
        distinct_x.sort_unstable_by(f64::total_cmp);
        distinct_x.dedup();
        let runs = starts
            .into_iter()
            .map(|i| {
                let x = data.frequency[i];
                (i, distinct_x.partition_point(|v| *v < x))
            })
            .collect();
        // Running sums over the frequencies cost a step per whole number up to the largest;
        // worth it when that is not many more steps than distinct frequencies.
        let whole = distinct_x.iter().all(|&x| x >= 0.0 && x.fract() == 0.0);
        let rising_sums_up_to = distinct_x
            .last()
            .filter(|&&last| whole && last <= 2.0 * distinct_x.len() as f64 + 32.0)
            .map(|&last| last as usize);
        let max_age = data.age.iter().copied().fold(0.0, f64::max);
        BgNbd {
            data,
            modified,
            distinct_x,
            runs,
            rising_sums_up_to,
            max_age,
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
        let terms = |x: f64, rising: [(f64, f64); 3]| {
            let k = p.flips(x);
            let [(ln_r, psi_r), (ln_b, psi_b), (ln_ab, psi_ab)] = rising;
            XTerms {
                ln_const: ln_r + (ln_b - ln_ab),
                d_r: psi_r,
                d_a: -psi_ab,
                d_b: psi_b - psi_ab,
                ln_odds: if k > 0.0 {
                    ln_a - (b + (k - 1.0)).ln()
                } else {
                    0.0
                },
                inv_bx1: if k > 0.0 { 1.0 / (b + (k - 1.0)) } else { 0.0 },
            }
        };
        if let Some(last) = self.rising_sums_up_to {
            // ln Gamma(z+j) - ln Gamma(z) and psi(z+j) - psi(z) for z = r, b, a+b by running
            // sums over j = 0, 1, ..., read at each distinct frequency (ascending): a
            // logarithm and a division per step instead of the series of `ln_gamma_diff` and
            // `digamma_diff` per frequency, which took a tenth of a NUTS gradient on CDNOW.
            // Accurate in absolute terms to about `last` ulps of the terms.
            let shift = p.flips(0.0);
            let mut out = Vec::with_capacity(self.distinct_x.len());
            let mut next = self.distinct_x.iter().copied().peekable();
            let zs = [r, b, a + b];
            // Every step's logarithm and reciprocal first, in one loop that compiles to SIMD
            // (the same values one at a time would give; a fifth of a pooled model's gradient
            // went to them one by one); the running sums after.
            let steps = last + 1;
            let mut factors = vec![0.0; 6 * steps];
            let (logs, inverses) = factors.split_at_mut(3 * steps);
            rising_factors_dispatch(&zs, logs, inverses);
            let step = |i: usize, j: usize| (logs[i * steps + j], inverses[i * steps + j]);
            let mut sums = [(0.0, 0.0); 3];
            for j in 0..=last {
                let jf = j as f64;
                while let Some(&x) = next.peek() {
                    if x != jf {
                        break;
                    }
                    next.next();
                    // The r terms run to x, the dropout ones to x + shift (MBG/NBD).
                    let rising = [
                        sums[0],
                        rising_at(x + shift, jf, sums[1], step(1, j)),
                        rising_at(x + shift, jf, sums[2], step(2, j)),
                    ];
                    out.push(terms(x, rising));
                }
                for (i, sum) in sums.iter_mut().enumerate() {
                    let (ln, inverse) = step(i, j);
                    sum.0 += ln;
                    sum.1 += inverse;
                }
            }
            return out;
        }
        self.distinct_x
            .iter()
            .map(|&x| {
                let k = p.flips(x);
                terms(
                    x,
                    [
                        (ln_gamma_diff(r, x), digamma_diff(r, x)),
                        (ln_gamma_diff(b, k), digamma_diff(b, k)),
                        (ln_gamma_diff(a + b, k), digamma_diff(a + b, k)),
                    ],
                )
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

/// The rising terms at `k` given those at `j` (`k` is `j` or `j + 1`) and step `j`'s
/// `(ln(z + j), 1 / (z + j))`.
#[inline]
fn rising_at(k: f64, j: f64, at_j: (f64, f64), step: (f64, f64)) -> (f64, f64) {
    if k == j {
        at_j
    } else {
        (at_j.0 + step.0, at_j.1 + step.1)
    }
}

/// `ln(z_i + j)` and `1 / (z_i + j)` for the three `z_i` and `j = 0, 1, ...`, into `logs` and
/// `inverses` (`z_i`'s steps at `i * steps ..`).
#[inline(always)]
fn rising_factors(zs: &[f64; 3], logs: &mut [f64], inverses: &mut [f64]) {
    let steps = logs.len() / 3;
    for (i, &z) in zs.iter().enumerate() {
        let rows = i * steps..(i + 1) * steps;
        for (j, (ln, inverse)) in logs[rows.clone()]
            .iter_mut()
            .zip(&mut inverses[rows])
            .enumerate()
        {
            // (Through i32, whose conversion to float has a SIMD form.)
            let factor = z + f64::from(j as i32);
            *ln = crate::fastmath::ln(factor);
            *inverse = 1.0 / factor;
        }
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512dq,avx512vl")]
fn rising_factors_avx512(zs: &[f64; 3], logs: &mut [f64], inverses: &mut [f64]) {
    rising_factors(zs, logs, inverses);
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
fn rising_factors_avx2(zs: &[f64; 3], logs: &mut [f64], inverses: &mut [f64]) {
    rising_factors(zs, logs, inverses);
}

/// [`rising_factors`] with the widest vectors the processor has (the same bits on every path).
fn rising_factors_dispatch(zs: &[f64; 3], logs: &mut [f64], inverses: &mut [f64]) {
    #[cfg(target_arch = "x86_64")]
    {
        if has_avx512() {
            // SAFETY: the processor supports these instructions (checked just above).
            return unsafe { rising_factors_avx512(zs, logs, inverses) };
        }
        if std::arch::is_x86_feature_detected!("avx2") {
            // SAFETY: the processor supports AVX2 (checked just above).
            return unsafe { rising_factors_avx2(zs, logs, inverses) };
        }
    }
    rising_factors(zs, logs, inverses);
}

/// Whether the processor has the AVX-512 instructions the kernels here are compiled for.
#[cfg(target_arch = "x86_64")]
fn has_avx512() -> bool {
    std::arch::is_x86_feature_detected!("avx512f")
        && std::arch::is_x86_feature_detected!("avx512dq")
        && std::arch::is_x86_feature_detected!("avx512vl")
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

/// Rows a step of the kernel takes: 8 independent lanes, one AVX-512 vector or two AVX2 ones
/// (the same sums in the same order either way).
const LANES: usize = 8;

type Lanes = [[f64; LANES]; sum::ALL];

/// Sums of the gradient pass (the first `FIRST` of [`sum`]).
const FIRST: usize = sum::INV_AT2;

/// The constants of one run of rows with frequency `x`.
#[derive(Clone, Copy)]
struct RunConsts {
    alpha: f64,
    inv_alpha: f64,
    /// r + x
    rx: f64,
    /// As in [`XTerms`].
    ln_odds: f64,
}

/// Reciprocals `(1 / u, 1 / v)`: from one division of the product when `SHARED` (about 1.5
/// ulps each instead of 0.5; the caller makes sure that the product neither overflows nor
/// underflows), else from two.
#[inline(always)]
fn reciprocals<const SHARED: bool>(u: f64, v: f64) -> (f64, f64) {
    if SHARED {
        let q = 1.0 / (u * v);
        (v * q, u * q)
    } else {
        (1.0 / u, 1.0 / v)
    }
}

/// The part of a row's terms before the dropout odds: `ln(1 + T / alpha)`, `1 / (alpha + T)`
/// and, with a dropout coin, `L = ln(1 + (T - t_x) / (alpha + t_x))`, `D = 1 / (alpha + T) -
/// 1 / (alpha + t_x)` and `1 / (alpha + t_x)^2 - 1 / (alpha + T)^2`.
#[derive(Clone, Copy, Default)]
struct Gaps {
    ln1p_age: f64,
    inv_at: f64,
    l: f64,
    d: f64,
    d2: f64,
}

/// [`Gaps`] of one row. Each `ln_1p(y)` is `ln(u) + (y - (u - 1)) / u` with `u = 1 + y`: the
/// correction is below an ulp of `u`, so the reciprocal of `u` need not be exact, and
/// `alpha / (alpha + T)` and `(alpha + t_x) / (alpha + T)` serve. The logarithms take
/// `f / (2 + f)` in pairs from one division ([`crate::fastmath::ln_reduce`]), and
/// `1 / (alpha + T)` shares its division with `1 / (alpha + t_x)` (or with the logarithm, at
/// x = 0) when `SHARED` ([`BgNbd::shares_divisions`]): two divisions with a dropout coin, one
/// without, where the library functions took five and three.
#[inline(always)]
fn gaps<const SHARED: bool, const REPEAT: bool>(age: f64, t_x: f64, c: RunConsts) -> Gaps {
    use crate::fastmath::{ln_finish, ln_reduce};
    let alpha = c.alpha;
    let at = alpha + age;
    let y1 = age * c.inv_alpha;
    let u1 = 1.0 + y1;
    let (k1, f1) = ln_reduce(u1);
    let g1 = 2.0 + f1;
    if REPEAT {
        let atx = alpha + t_x;
        let (inv_at, inv_atx) = reciprocals::<SHARED>(at, atx);
        let y2 = (age - t_x) * inv_atx;
        let u2 = 1.0 + y2;
        let (k2, f2) = ln_reduce(u2);
        // g1 and 2 + f2 lie in [1.7, 2.5]: their product is always safe.
        let (q1, q2) = reciprocals::<true>(g1, 2.0 + f2);
        Gaps {
            ln1p_age: ln_finish(k1, f1, f1 * q1) + (y1 - (u1 - 1.0)) * (alpha * inv_at),
            inv_at,
            l: ln_finish(k2, f2, f2 * q2) + (y2 - (u2 - 1.0)) * (atx * inv_at),
            d: inv_at - inv_atx,
            d2: inv_atx * inv_atx - inv_at * inv_at,
        }
    } else {
        let (inv_at, q1) = reciprocals::<SHARED>(at, g1);
        Gaps {
            ln1p_age: ln_finish(k1, f1, f1 * q1) + (y1 - (u1 - 1.0)) * (alpha * inv_at),
            inv_at,
            ..Gaps::default()
        }
    }
}

/// Add a row's [`Gaps`] terms to lane `lane` (all rows).
#[inline(always)]
fn add_gaps<const SECOND: bool>(lanes: &mut Lanes, lane: usize, wt: f64, g: &Gaps) {
    lanes[sum::W][lane] += wt;
    lanes[sum::LN1P_AGE][lane] += wt * g.ln1p_age;
    lanes[sum::INV_AT][lane] += wt * g.inv_at;
    if SECOND {
        lanes[sum::INV_AT2][lane] += wt * g.inv_at * g.inv_at;
    }
}

/// Add the dropout terms of a row with a coin to lane `lane`, from its `L` and `D`: `ln(1 +
/// e^odds) = max(odds, 0) + ln(1 + e)` and `s = logistic(odds)` from `e = e^-|odds|`, exact in
/// both tails, with `1 / (1 + e)` and the logarithm's `f / (2 + f)` from one division (`1 + e`
/// is reduced for the logarithm directly, [`crate::fastmath::ln_1p_reduce_unit`]).
#[inline(always)]
fn add_dropout<const SECOND: bool>(
    lanes: &mut Lanes,
    lane: usize,
    wt: f64,
    g: &Gaps,
    c: RunConsts,
) {
    use crate::fastmath::{exp, ln_1p_reduce_unit, ln_finish};
    let (l, d) = (g.l, g.d);
    let odds = c.ln_odds + c.rx * l;
    let e = exp(-odds.abs());
    let (k3, f3) = ln_1p_reduce_unit(e);
    // 1 + e in [1, 2] and 2 + f3 in [1.7, 2.5]: safe.
    let (inv_u3, q3) = reciprocals::<true>(1.0 + e, 2.0 + f3);
    let log1p = odds.max(0.0) + ln_finish(k3, f3, f3 * q3);
    let s = if odds >= 0.0 { 1.0 } else { e } * inv_u3;
    let ws = wt * s;
    lanes[sum::LOG1P_ODDS][lane] += wt * log1p;
    lanes[sum::S][lane] += ws;
    lanes[sum::S_L][lane] += ws * l;
    lanes[sum::S_D][lane] += ws * d;
    if SECOND {
        // q = s (1 - s) = e / (1 + e)^2, exact in both tails.
        let wq = wt * e * inv_u3 * inv_u3;
        lanes[sum::S_D2][lane] += ws * g.d2;
        lanes[sum::Q][lane] += wq;
        lanes[sum::Q_L][lane] += wq * l;
        lanes[sum::Q_D][lane] += wq * d;
        lanes[sum::Q_LL][lane] += wq * l * l;
        lanes[sum::Q_LD][lane] += wq * l * d;
        lanes[sum::Q_DD][lane] += wq * d * d;
    }
}

/// Vectors of [`LANES`] rows whose [`Gaps`] are found before their dropout terms: two short
/// loops instead of one long one, so that the processor overlaps more rows' divisions (each
/// with a latency of some 20 cycles) than one long chain per row allowed.
const BLOCK: usize = 8;

/// Sums over rows with frequency `x` (three logarithms, one exponential and four divisions per
/// row with a dropout coin, one logarithm and one division without: see [`gaps`] and
/// [`add_dropout`]), [`LANES`] rows at a time in independent lanes so that the loops compile to
/// SIMD; the lanes are added in a fixed order, so the result depends only on the rows (and is
/// the same with any vector width).
#[inline(always)]
fn run_sums<const SECOND: bool, const SHARED: bool, const REPEAT: bool>(
    age: &[f64],
    t_x: &[f64],
    w: &[f64],
    c: RunConsts,
) -> [f64; sum::ALL] {
    let mut lanes: Lanes = [[0.0; LANES]; sum::ALL];
    let full = age.len() / LANES * LANES;
    add_vectors::<SECOND, SHARED, REPEAT>(&mut lanes, &age[..full], &t_x[..full], &w[..full], c);
    let tail = age.len() - full;
    if tail > 0 {
        // The last rows as one more vector, padded with rows of weight 0 (T = t_x = 0: finite
        // terms, so they add zeros): lane i takes the tail's row i, as it would one by one.
        let (mut a8, mut t8, mut w8) = ([0.0; LANES], [0.0; LANES], [0.0; LANES]);
        a8[..tail].copy_from_slice(&age[full..]);
        t8[..tail].copy_from_slice(&t_x[full..]);
        w8[..tail].copy_from_slice(&w[full..]);
        add_vectors::<SECOND, SHARED, REPEAT>(&mut lanes, &a8, &t8, &w8, c);
    }
    let used = if SECOND { sum::ALL } else { FIRST };
    let mut out = [0.0; sum::ALL];
    for (total, lane_sums) in out.iter_mut().zip(&lanes).take(used) {
        *total = lane_sums.iter().fold(0.0, |acc, v| acc + v);
    }
    out
}

/// Add whole vectors of [`LANES`] rows (the slices' length is a multiple of it) to `lanes`,
/// [`BLOCK`] vectors at a time: their [`Gaps`] first, then their dropout terms.
#[inline(always)]
fn add_vectors<const SECOND: bool, const SHARED: bool, const REPEAT: bool>(
    lanes: &mut Lanes,
    age: &[f64],
    t_x: &[f64],
    w: &[f64],
    c: RunConsts,
) {
    let rows = LANES * BLOCK;
    // L, D and (for the Hessian) the D^2 difference of the block's rows, between the loops.
    let mut l = [[0.0; LANES]; BLOCK];
    let mut d = [[0.0; LANES]; BLOCK];
    let mut d2 = [[0.0; LANES]; BLOCK];
    for ((a_block, t_block), w_block) in age.chunks(rows).zip(t_x.chunks(rows)).zip(w.chunks(rows))
    {
        for ((((a8, t8), w8), l8), (d8, d28)) in a_block
            .chunks_exact(LANES)
            .zip(t_block.chunks_exact(LANES))
            .zip(w_block.chunks_exact(LANES))
            .zip(l.iter_mut())
            .zip(d.iter_mut().zip(d2.iter_mut()))
        {
            for lane in 0..LANES {
                let g = gaps::<SHARED, REPEAT>(a8[lane], t8[lane], c);
                add_gaps::<SECOND>(lanes, lane, w8[lane], &g);
                l8[lane] = g.l;
                d8[lane] = g.d;
                d28[lane] = g.d2;
            }
        }
        if REPEAT {
            for ((w8, l8), (d8, d28)) in w_block
                .chunks_exact(LANES)
                .zip(l.iter())
                .zip(d.iter().zip(d2.iter()))
            {
                for lane in 0..LANES {
                    let g = Gaps {
                        l: l8[lane],
                        d: d8[lane],
                        d2: d28[lane],
                        ..Gaps::default()
                    };
                    add_dropout::<SECOND>(lanes, lane, w8[lane], &g, c);
                }
            }
        }
    }
}

/// [`run_sums`] compiled for one instruction set (`$features`), with the run's variant
/// chosen at run time.
macro_rules! run_sums_for {
    ($name:ident, $($features:literal)?) => {
        $(#[target_feature(enable = $features)])?
        fn $name<const SECOND: bool>(
            age: &[f64],
            t_x: &[f64],
            w: &[f64],
            c: RunConsts,
            shared: bool,
            repeat: bool,
        ) -> [f64; sum::ALL] {
            match (shared, repeat) {
                (true, true) => run_sums::<SECOND, true, true>(age, t_x, w, c),
                (true, false) => run_sums::<SECOND, true, false>(age, t_x, w, c),
                (false, true) => run_sums::<SECOND, false, true>(age, t_x, w, c),
                (false, false) => run_sums::<SECOND, false, false>(age, t_x, w, c),
            }
        }
    };
}

run_sums_for!(run_sums_portable,);
#[cfg(target_arch = "x86_64")]
run_sums_for!(run_sums_avx2, "avx2");
#[cfg(target_arch = "x86_64")]
run_sums_for!(run_sums_avx512, "avx512f,avx512dq,avx512vl");

/// [`run_sums`] with AVX-512 or AVX2 vectors where the processor has them. No fused
/// multiply-add is used, and the lanes are the same 8 whatever the vector width, so the
/// results are the same bits on every path.
fn run_sums_dispatch<const SECOND: bool>(
    age: &[f64],
    t_x: &[f64],
    w: &[f64],
    c: RunConsts,
    shared: bool,
    repeat: bool,
) -> [f64; sum::ALL] {
    #[cfg(target_arch = "x86_64")]
    {
        if has_avx512() {
            // SAFETY: the processor supports these instructions (checked just above).
            return unsafe { run_sums_avx512::<SECOND>(age, t_x, w, c, shared, repeat) };
        }
        if std::arch::is_x86_feature_detected!("avx2") {
            // SAFETY: the processor supports AVX2 (checked just above).
            return unsafe { run_sums_avx2::<SECOND>(age, t_x, w, c, shared, repeat) };
        }
    }
    run_sums_portable::<SECOND>(age, t_x, w, c, shared, repeat)
}

impl BgNbd<'_> {
    /// Whether [`gaps`] may take `1 / (alpha + T)` from one division with another factor:
    /// the products it divides by stay far from overflow and underflow when `alpha` and every
    /// `T` lie within `1e-150 .. 1e150` (always, in practice; outside, each reciprocal takes
    /// its own division).
    fn shares_divisions(&self, alpha: f64) -> bool {
        (1e-150..=1e150).contains(&alpha) && self.max_age <= 1e150
    }

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
        let shared = self.shares_divisions(p.alpha);
        let inv_alpha = 1.0 / p.alpha;
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
                let consts = RunConsts {
                    alpha: p.alpha,
                    inv_alpha,
                    rx: p.r + x,
                    ln_odds: terms[xi].ln_odds,
                };
                let sums = run_sums_dispatch::<SECOND>(
                    &d.age[rows.clone()],
                    &d.recency[rows.clone()],
                    d.weights_of(rows),
                    consts,
                    shared,
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
    /// rows (the second-order sums of [`run_sums`]) and trigamma terms per distinct frequency.
    fn hessian(&self, params: &[f64], exec: &Exec) -> Option<Array2<f64>> {
        self.loglik_gradient_hessian(params, exec)
            .map(|(_, _, hessian)| hessian)
    }

    /// The log-likelihood, gradient and Hessian from one pass: the first-order sums of
    /// [`run_sums`] do not depend on the second-order ones, so the value and gradient have the
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
        let hessian = Array2::from_shape_fn((4, 4), |(i, j)| acc[5 + upper[i][j]]);
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::RfmColumns;
    use crate::fit::{fit, FitOptions};
    use crate::models::bgnbd::simulate;
    use crate::models::testing::{cdnow, rel};
    use crate::random::Rng;

    #[test]
    fn running_sums_give_the_frequency_terms_of_the_series() {
        let data = cdnow();
        for modified in [false, true] {
            let model = BgNbd::with_variant(&data, modified);
            assert!(model.rising_sums_up_to.is_some());
            let series = BgNbd {
                rising_sums_up_to: None,
                ..BgNbd::with_variant(&data, modified)
            };
            // Ordinary values, and huge shapes where the series difference analytically.
            for values in [
                [0.3, 5.0, 0.9, 2.7],
                [4e7, 3.0, 2e6, 5e8],
                [0.01, 1.0, 50.0, 0.02],
            ] {
                let p = model.params_at(&values);
                let (fast, slow) = (model.x_terms(&p), series.x_terms(&p));
                assert_eq!(fast.len(), slow.len());
                for (f, s) in fast.iter().zip(&slow) {
                    for (u, v) in [
                        (f.ln_const, s.ln_const),
                        (f.d_r, s.d_r),
                        (f.d_a, s.d_a),
                        (f.d_b, s.d_b),
                    ] {
                        assert!(
                            (u - v).abs() <= 1e-12 * (1.0 + v.abs()),
                            "{values:?}: {u} {v}"
                        );
                    }
                    assert_eq!(f.ln_odds.to_bits(), s.ln_odds.to_bits());
                    assert_eq!(f.inv_bx1.to_bits(), s.inv_bx1.to_bits());
                }
            }
        }
        // A few large frequencies use the series (frequencies are whole numbers: compression
        // buckets them as such).
        let (x, t_x, age) = (vec![1.0, 500.0], vec![1.0, 3.0], vec![4.0, 5.0]);
        let rows = RfmColumns::new(&x, &t_x, &age).compress();
        assert!(BgNbd::new(&rows).rising_sums_up_to.is_none());
    }

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
                    assert_eq!(hessian[[i, j]], hessian[[j, i]]);
                    let numeric = (g_up[j] - g_down[j]) / (2.0 * h);
                    assert!(rel(hessian[[i, j]], numeric) < 1e-5, "{i} {j}");
                }
            }
        }
    }

    /// The row kernel's sums against the same sums from the standard library's functions,
    /// one row at a time, for rows with and without a dropout coin and both ways of taking
    /// the reciprocals; and the same bits from every instruction-set path.
    #[test]
    fn row_kernel_matches_library_functions_on_every_path() {
        let mut rng = Rng::new(19);
        // 37 rows: four whole vectors and a padded tail; T from 0 to 80, t_x from 0 to T.
        let age: Vec<f64> = (0..37)
            .map(|i| if i == 3 { 0.0 } else { 80.0 * rng.uniform() })
            .collect();
        let t_x: Vec<f64> = age
            .iter()
            .enumerate()
            .map(|(i, &a)| if i % 5 == 0 { a } else { a * rng.uniform() })
            .collect();
        let w: Vec<f64> = (0..37).map(|i| 1.0 + (i % 3) as f64).collect();
        for (alpha, rx, ln_odds) in [(4.4, 2.24, -1.3), (0.05, 30.5, 2.0), (300.0, 0.3, -40.0)] {
            let c = RunConsts {
                alpha,
                inv_alpha: 1.0 / alpha,
                rx,
                ln_odds,
            };
            for repeat in [false, true] {
                let mut want = [0.0; sum::ALL];
                for ((&a, &t), &wt) in age.iter().zip(&t_x).zip(&w) {
                    let inv_at = 1.0 / (alpha + a);
                    want[sum::W] += wt;
                    want[sum::LN1P_AGE] += wt * (a / alpha).ln_1p();
                    want[sum::INV_AT] += wt * inv_at;
                    want[sum::INV_AT2] += wt * inv_at * inv_at;
                    if repeat {
                        let inv_atx = 1.0 / (alpha + t);
                        let l = ((a - t) * inv_atx).ln_1p();
                        let d = inv_at - inv_atx;
                        let odds = ln_odds + rx * l;
                        let s = 1.0 / (1.0 + (-odds).exp());
                        let q = s * (1.0 - s);
                        want[sum::LOG1P_ODDS] += wt * (odds.max(0.0) + (-odds.abs()).exp().ln_1p());
                        want[sum::S] += wt * s;
                        want[sum::S_L] += wt * s * l;
                        want[sum::S_D] += wt * s * d;
                        want[sum::S_D2] += wt * s * (inv_atx * inv_atx - inv_at * inv_at);
                        want[sum::Q] += wt * q;
                        want[sum::Q_L] += wt * q * l;
                        want[sum::Q_D] += wt * q * d;
                        want[sum::Q_LL] += wt * q * l * l;
                        want[sum::Q_LD] += wt * q * l * d;
                        want[sum::Q_DD] += wt * q * d * d;
                    }
                }
                for shared in [false, true] {
                    let got = run_sums_portable::<true>(&age, &t_x, &w, c, shared, repeat);
                    for (j, (&g, &e)) in got.iter().zip(&want).enumerate() {
                        let scale = want.iter().map(|v| v.abs()).fold(1e-300, f64::max);
                        assert!(
                            (g - e).abs() <= 1e-13 * e.abs().max(1e-3 * scale),
                            "sum {j} at {alpha} {rx} {ln_odds} {repeat} {shared}: {g} vs {e}"
                        );
                    }
                    // The gradient pass has the Hessian pass's first-order bits; the vector
                    // paths the portable one's.
                    let first = run_sums_dispatch::<false>(&age, &t_x, &w, c, shared, repeat);
                    assert_eq!(first[..FIRST], got[..FIRST]);
                    let fused = run_sums_dispatch::<true>(&age, &t_x, &w, c, shared, repeat);
                    assert_eq!(fused, got);
                }
            }
        }
    }

    /// A few awkward histories: x = 0, t_x = 0 with x > 0, T = 0, t_x near T, x in the hundreds.
    fn awkward_rows() -> Rfm {
        let x = [0.0, 1.0, 3.0, 7.0, 0.0, 2.0, 40.0, 1.0, 250.0];
        let t_x = [0.0, 5.0, 20.0, 30.5, 0.0, 38.0, 38.9, 0.0, 39.5];
        let age = [10.0, 20.0, 30.0, 38.0, 0.0, 39.0, 39.0, 12.0, 40.0];
        RfmColumns::new(&x, &t_x, &age).compress()
    }

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
                    let scale = numeric.abs().max(hessian[[i, j]].abs()).max(1.0);
                    assert!(
                        (hessian[[i, j]] - numeric).abs() < 1e-5 * scale,
                        "H[{i}][{j}] at {theta:?}: {} vs {numeric}",
                        hessian[[i, j]]
                    );
                }
            }
        }
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
                assert_eq!(cov[[i, j]], cov[[j, i]]);
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
