//! Special functions used by the likelihoods and predictions.
//!
//! Written out here (rather than taken from a crate) so that their accuracy on the whole positive
//! axis is known and tested: relative error about 1e-15 away from the zeros of the functions, and
//! absolute error about 1e-15 near them, which is what log-likelihood differences need.

use crate::quadrature::integrate;

/// ln(2 pi) / 2.
pub const HALF_LN_2PI: f64 = 0.918_938_533_204_672_8;

/// Below this argument the Stirling series is not used; arguments are shifted up to it.
const STIRLING_MIN: f64 = 10.0;

/// Natural logarithm of the gamma function for `x > 0`.
///
/// Stirling's series for `x >= 10` (truncation error below 1e-17); smaller arguments are shifted up
/// with `ln Gamma(x) = ln Gamma(x + n) - ln(x (x + 1) ... (x + n - 1))`. Returns NaN for `x <= 0`
/// or NaN, +inf for +inf.
pub fn ln_gamma(x: f64) -> f64 {
    if x.is_nan() || x <= 0.0 {
        return f64::NAN;
    }
    if x.is_infinite() {
        return f64::INFINITY;
    }
    if x >= STIRLING_MIN {
        return stirling_ln_gamma(x);
    }
    let mut product = 1.0;
    let mut z = x;
    while z < STIRLING_MIN {
        product *= z;
        z += 1.0;
    }
    stirling_ln_gamma(z) - product.ln()
}

fn stirling_ln_gamma(x: f64) -> f64 {
    (x - 0.5) * x.ln() - x + HALF_LN_2PI + stirling_series(x)
}

/// The series part of Stirling's formula, `sum B_2k / (2k (2k-1) x^(2k-1))`, for `x >= 10`.
fn stirling_series(x: f64) -> f64 {
    stirling_series_of_inverse(1.0 / x)
}

/// [`stirling_series`] from the argument's reciprocal `inv`.
#[inline(always)]
fn stirling_series_of_inverse(inv: f64) -> f64 {
    let inv2 = inv * inv;
    // Bernoulli-number coefficients B_{2k} / (2k (2k - 1)).
    inv * (1.0 / 12.0
        + inv2
            * (-1.0 / 360.0
                + inv2
                    * (1.0 / 1260.0
                        + inv2
                            * (-1.0 / 1680.0
                                + inv2
                                    * (1.0 / 1188.0
                                        + inv2 * (-691.0 / 360_360.0 + inv2 / 156.0))))))
}

/// `ln Gamma(x)` minus its Stirling approximation `(x - 1/2) ln x - x + ln(2 pi)/2`, for
/// `x > 0` (small and exact for large `x`).
pub fn stirling_error(x: f64) -> f64 {
    if x >= STIRLING_MIN {
        stirling_series(x)
    } else {
        ln_gamma(x) - (x - 0.5) * x.ln() + x - HALF_LN_2PI
    }
}

/// `x ln(x / m) + m - x` for `x, m > 0` (the deviance term of Loader 2000), accurate when `x`
/// is close to `m`, where the two parts nearly cancel.
pub fn binomial_deviance(x: f64, m: f64) -> f64 {
    if (x - m).abs() < 0.1 * (x + m) {
        let v = (x - m) / (x + m);
        let v2 = v * v;
        let mut sum = (x - m) * v;
        let mut term = 2.0 * x * v;
        let mut j = 1.0;
        while j < 1000.0 {
            term *= v2;
            let next = sum + term / (2.0 * j + 1.0);
            if next == sum {
                break;
            }
            sum = next;
            j += 1.0;
        }
        sum
    } else {
        x * (x / m).ln() + m - x
    }
}

/// `ln(u^a w^b / B(a, b))` with `w = 1 - u` given separately, for `a, b > 0`: a beta density
/// kernel, written with Stirling's formula as
/// `-bd0(a, n u) - bd0(b, n w) + ln(a b / n)/2 - ln(2 pi)/2 - e(a) - e(b) + e(n)` (`n = a + b`,
/// `bd0` the [`binomial_deviance`], `e` the [`stirling_error`]), so that nothing cancels when
/// `a` and `b` are huge (a distribution concentrated at `u`).
pub fn ln_beta_kernel(a: f64, b: f64, u: f64, w: f64) -> f64 {
    let n = a + b;
    -binomial_deviance(a, n * u) - binomial_deviance(b, n * w) + 0.5 * (a * b / n).ln()
        - HALF_LN_2PI
        - stirling_error(a)
        - stirling_error(b)
        + stirling_error(n)
}

/// The digamma function psi(x) = d ln Gamma(x) / dx for `x > 0`.
///
/// Asymptotic series for `x >= 10` after the recurrence `psi(x) = psi(x + 1) - 1 / x`.
pub fn digamma(x: f64) -> f64 {
    if x.is_nan() || x <= 0.0 {
        return f64::NAN;
    }
    if x.is_infinite() {
        return f64::INFINITY;
    }
    let mut shift = 0.0;
    let mut z = x;
    while z < STIRLING_MIN {
        shift -= 1.0 / z;
        z += 1.0;
    }
    shift + z.ln() - 0.5 / z - digamma_series(z)
}

/// `sum B_2k / (2k z^(2k))`, the series part of the asymptotic digamma expansion, for `z >= 10`.
fn digamma_series(z: f64) -> f64 {
    digamma_series_of_inverse(1.0 / z)
}

/// [`digamma_series`] from the argument's reciprocal `inv`.
#[inline(always)]
fn digamma_series_of_inverse(inv: f64) -> f64 {
    let inv2 = inv * inv;
    // B_{2k} / (2k) coefficients.
    inv2 * (1.0 / 12.0
        - inv2
            * (1.0 / 120.0
                - inv2
                    * (1.0 / 252.0
                        - inv2
                            * (1.0 / 240.0
                                - inv2 * (1.0 / 132.0 - inv2 * (691.0 / 32_760.0 - inv2 / 12.0))))))
}

/// The trigamma function psi'(x) for `x > 0` (recurrence up to 10, then the asymptotic series).
pub fn trigamma(x: f64) -> f64 {
    if x.is_nan() || x <= 0.0 {
        return f64::NAN;
    }
    if x.is_infinite() {
        return 0.0;
    }
    let mut shift = 0.0;
    let mut z = x;
    while z < STIRLING_MIN {
        shift += 1.0 / (z * z);
        z += 1.0;
    }
    shift + trigamma_series(z)
}

/// `1/z + 1/(2 z^2) + sum B_2k / z^(2k+1)`, the asymptotic trigamma expansion, for `z >= 10`.
fn trigamma_series(z: f64) -> f64 {
    trigamma_series_of_inverse(1.0 / z)
}

/// [`trigamma_series`] from the argument's reciprocal `inv`.
#[inline(always)]
fn trigamma_series_of_inverse(inv: f64) -> f64 {
    let inv2 = inv * inv;
    inv + 0.5 * inv2
        + inv
            * inv2
            * (1.0 / 6.0
                - inv2
                    * (1.0 / 30.0
                        - inv2
                            * (1.0 / 42.0
                                - inv2
                                    * (1.0 / 30.0
                                        - inv2
                                            * (5.0 / 66.0
                                                - inv2 * (691.0 / 2730.0 - inv2 * 7.0 / 6.0))))))
}

/// `(ln Gamma(x), psi(x), psi'(x))` for `x > 0` (`psi'` only when `SECOND`, else 0), the
/// three by one shared recurrence up to the asymptotic series: the row terms of the BdW
/// likelihood at a customer's own `alpha + beta`. Agrees with [`ln_gamma`], [`digamma`] and
/// [`trigamma`] to about 1e-14 relative to the larger of 1 and the value (`ln Gamma`'s terms
/// cancel, and the crate's own `ln` is within an ulp but not correctly rounded);
/// [`ln_gamma_digamma_trigamma_lanes`] gives the same bits for many arguments at once.
#[inline]
pub fn ln_gamma_digamma_trigamma<const SECOND: bool>(x: f64) -> (f64, f64, f64) {
    if !(x > 0.0 && x.is_finite()) {
        let second = if SECOND { trigamma(x) } else { 0.0 };
        return (ln_gamma(x), digamma(x), second);
    }
    ln_gamma_digamma_trigamma_finite::<SECOND>(x)
}

/// Recurrence steps that take any `x` in `(0, STIRLING_MIN)` to the asymptotic series.
const RECURRENCE_STEPS: usize = STIRLING_MIN as usize;

/// [`ln_gamma_digamma_trigamma`] of a positive finite `x`, branch-free so that a loop over
/// many arguments compiles to SIMD: a fixed number of recurrence steps, those past
/// `STIRLING_MIN` leaving everything as it is, and the crate's own `ln`.
///
/// The recurrence's sums come from the product `P = x (x + 1) ... (x + n - 1)` and its
/// derivatives, `sum 1/(x + j) = P'/P` and `sum 1/(x + j)^2 = (P'/P)^2 - P''/P`, with one
/// division (`1/(P z)`, which also gives the series its `1/z`) instead of one a step. The
/// second loses at most a digit to the subtraction (the sum's terms' share of its square, `n`
/// at most 10).
#[inline(always)]
fn ln_gamma_digamma_trigamma_finite<const SECOND: bool>(x: f64) -> (f64, f64, f64) {
    use crate::fastmath::ln;
    let (mut product, mut first, mut second) = (1.0, 0.0, 0.0);
    let mut z = x;
    for _ in 0..RECURRENCE_STEPS {
        let step = z < STIRLING_MIN;
        if SECOND {
            second = if step {
                second * z + 2.0 * first
            } else {
                second
            };
        }
        first = if step { first * z + product } else { first };
        product = if step { product * z } else { product };
        z = if step { z + 1.0 } else { z };
    }
    let ln_z = ln(z);
    let reciprocal = 1.0 / (product * z);
    let (inv_product, inv) = (z * reciprocal, product * reciprocal);
    let ratio = first * inv_product;
    let ln_gamma =
        (z - 0.5) * ln_z - z + HALF_LN_2PI + stirling_series_of_inverse(inv) - ln(product);
    let psi = ln_z - 0.5 * inv - digamma_series_of_inverse(inv) - ratio;
    let second = if SECOND {
        (ratio * ratio - second * inv_product) + trigamma_series_of_inverse(inv)
    } else {
        0.0
    };
    (ln_gamma, psi, second)
}

/// [`ln_gamma_digamma_trigamma`] of every `x` (each positive and finite) into `ln_gamma`,
/// `psi` and `second`, in the widest SIMD the processor has (AVX-512, AVX2 or the baseline):
/// the same operations in each (no FMA), so the same bits as one at a time.
pub fn ln_gamma_digamma_trigamma_lanes<const SECOND: bool>(
    x: &[f64],
    ln_gamma: &mut [f64],
    psi: &mut [f64],
    second: &mut [f64],
) {
    #[inline(always)]
    fn kernel<const SECOND: bool>(x: &[f64], lg: &mut [f64], psi: &mut [f64], tri: &mut [f64]) {
        let outputs = lg.iter_mut().zip(psi.iter_mut()).zip(tri.iter_mut());
        for (((lg, psi), tri), &x) in outputs.zip(x) {
            (*lg, *psi, *tri) = ln_gamma_digamma_trigamma_finite::<SECOND>(x);
        }
    }
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx512f,avx2")]
    fn avx512<const SECOND: bool>(x: &[f64], lg: &mut [f64], psi: &mut [f64], tri: &mut [f64]) {
        kernel::<SECOND>(x, lg, psi, tri)
    }
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2")]
    fn avx2<const SECOND: bool>(x: &[f64], lg: &mut [f64], psi: &mut [f64], tri: &mut [f64]) {
        kernel::<SECOND>(x, lg, psi, tri)
    }
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx512f") {
        // SAFETY: the processor supports AVX-512F (checked just above), and so AVX2.
        return unsafe { avx512::<SECOND>(x, ln_gamma, psi, second) };
    }
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx2") {
        // SAFETY: the processor supports AVX2 (checked just above).
        return unsafe { avx2::<SECOND>(x, ln_gamma, psi, second) };
    }
    kernel::<SECOND>(x, ln_gamma, psi, second)
}

/// `(ln Gamma(z+k) - ln Gamma(z), psi(z+k) - psi(z), psi'(z+k) - psi'(z))`: the terms of a
/// rising factorial `Gamma(z+k) / Gamma(z)` and its first two log-derivatives.
pub type RisingTerms = (f64, f64, f64);

/// [`RisingTerms`] for `z > 0`, `k >= 0`, the trigamma difference only when `SECOND` (else 0):
/// as a product over the `k` factors `z + j` when `k` is a small whole number (the common case,
/// and much cheaper than the asymptotic series), else from [`ln_gamma_diff`], [`digamma_diff`]
/// and [`trigamma`].
#[inline]
pub fn rising_terms<const SECOND: bool>(z: f64, k: f64) -> RisingTerms {
    const MAX_FACTORS: f64 = 16.0;
    if k <= MAX_FACTORS && k.fract() == 0.0 && z < 1e15 {
        // P = prod (z + j) and its derivative P', so psi(z+k) - psi(z) = sum 1/(z+j) = P'/P
        // (one division instead of k).
        let (mut product, mut derivative, mut second) = (1.0, 0.0, 0.0);
        let mut j = 0.0;
        while j < k {
            let factor = z + j;
            derivative = derivative * factor + product;
            product *= factor;
            if SECOND {
                second -= 1.0 / (factor * factor);
            }
            j += 1.0;
        }
        (crate::fastmath::ln(product), derivative / product, second)
    } else {
        let second = if SECOND {
            trigamma(z + k) - trigamma(z)
        } else {
            0.0
        };
        (ln_gamma_diff(z, k), digamma_diff(z, k), second)
    }
}

/// [`RisingTerms`] of one `z` for every whole `k` below a length, by running sums
/// (`ln Gamma(z+k+1) = ln Gamma(z+k) + ln(z+k)`, and so on): built once, read by many rows that
/// share `z` (customers share the shape `r` of the purchase rate and differ in their frequency).
#[derive(Debug, Clone)]
pub struct RisingTable {
    z: f64,
    terms: Vec<RisingTerms>,
}

impl RisingTable {
    /// The terms of `z` for `k = 0, 1, ..., len - 1`.
    pub fn new(z: f64, len: usize) -> Self {
        let mut terms = Vec::with_capacity(len);
        let (mut ln, mut psi, mut second) = (0.0, 0.0, 0.0);
        for j in 0..len {
            terms.push((ln, psi, second));
            let factor = z + j as f64;
            ln += factor.ln();
            psi += 1.0 / factor;
            second -= 1.0 / (factor * factor);
        }
        RisingTable { z, terms }
    }

    /// The terms at `k`: from the table for a whole `k` below its length, else computed by
    /// [`rising_terms`] (the trigamma difference only when `SECOND`).
    #[inline]
    pub fn get<const SECOND: bool>(&self, k: f64) -> RisingTerms {
        // (A saturating cast: NaN and negative values go to 0 and fail the equality.)
        let i = k as usize;
        if i as f64 == k && i < self.terms.len() {
            self.terms[i]
        } else {
            rising_terms::<SECOND>(self.z, k)
        }
    }
}

/// `ln Gamma(z + x) - ln Gamma(z)` for `z > 0`, `x >= 0`, accurate in absolute terms to a few ulps
/// of the result even when `z` is huge (where the difference of two `ln_gamma` values would lose
/// everything to cancellation): Stirling's series is differenced analytically.
pub fn ln_gamma_diff(z: f64, x: f64) -> f64 {
    if x == 0.0 {
        return 0.0;
    }
    if z < STIRLING_MIN {
        return ln_gamma(z + x) - ln_gamma(z);
    }
    let zx = z + x;
    (z - 0.5) * (x / z).ln_1p() + x * zx.ln() - x + stirling_series(zx) - stirling_series(z)
}

/// `psi(z + x) - psi(z)` for `z > 0`, `x >= 0`, without cancellation for huge `z`.
pub fn digamma_diff(z: f64, x: f64) -> f64 {
    if x == 0.0 {
        return 0.0;
    }
    if z < STIRLING_MIN {
        return digamma(z + x) - digamma(z);
    }
    let zx = z + x;
    (x / z).ln_1p() + x / (2.0 * z * zx) - digamma_series(zx) + digamma_series(z)
}

/// ln B(a, b) = ln Gamma(a) + ln Gamma(b) - ln Gamma(a + b).
pub fn ln_beta(a: f64, b: f64) -> f64 {
    ln_gamma(a) + ln_gamma(b) - ln_gamma(a + b)
}

/// ln(1 + e^x) without overflow or loss of precision.
pub fn log1p_exp(x: f64) -> f64 {
    if x > 36.0 {
        x + (-x).exp()
    } else if x < -37.0 {
        x.exp()
    } else {
        x.exp().ln_1p()
    }
}

/// The logistic function 1 / (1 + e^-x), exact in both tails.
pub fn logistic(x: f64) -> f64 {
    if x >= 0.0 {
        1.0 / (1.0 + (-x).exp())
    } else {
        let e = x.exp();
        e / (1.0 + e)
    }
}

/// ln(e^a + e^b).
pub fn log_add_exp(a: f64, b: f64) -> f64 {
    let (hi, lo) = if a >= b { (a, b) } else { (b, a) };
    if lo == f64::NEG_INFINITY {
        return hi;
    }
    hi + log1p_exp(lo - hi)
}

/// Negative-binomial (Poisson-gamma) probabilities: `P(J = j) = Gamma(k + j) / (Gamma(k) j!)
/// (1 - w)^k w^j` for shape `k > 0` and `w` in `[0, 1)`, with `ln_w = ln w` and
/// `ln_1mw = ln(1 - w)` supplied by the caller (who can usually form them without cancellation).
pub fn ln_negative_binomial_pmf(k: f64, j: f64, ln_w: f64, ln_1mw: f64) -> f64 {
    if j == 0.0 {
        return k * ln_1mw;
    }
    ln_gamma_diff(k, j) - ln_gamma(j + 1.0) + k * ln_1mw + j * ln_w
}

/// Relative size below which the remaining terms of a positive series are dropped.
pub const SERIES_TOLERANCE: f64 = 1e-17;

/// Upper tail `P(J >= n)` of the negative binomial distribution above.
///
/// Sums whichever side of `n` is the smaller probability, so the result keeps full relative
/// precision even when it is tiny (no `1 - cdf` cancellation).
pub fn negative_binomial_upper_tail(k: f64, n: u64, w: f64, ln_w: f64, ln_1mw: f64) -> f64 {
    if n == 0 {
        return 1.0;
    }
    if w <= 0.0 {
        return 0.0;
    }
    let mean = k * w / (1.0 - w);
    // The direct sums take about n terms (downwards) or 40 / (1 - w) terms (upwards); past that
    // the continued fraction of the incomplete beta function, P(J >= n) = I_w(n, k), is cheaper.
    if (n as f64).min(mean) > DIRECT_SUM_MAX_TERMS || 40.0 / (1.0 - w) > DIRECT_SUM_MAX_TERMS {
        return regularized_incomplete_beta(n as f64, k, w);
    }
    if (n as f64) <= mean {
        // 1 - P(J <= n - 1); the lower part is at most about one half here.
        1.0 - negative_binomial_sum_down(k, n - 1, w, ln_w, ln_1mw)
    } else {
        negative_binomial_sum_up(k, n, w, ln_w, ln_1mw)
    }
}

/// Terms above which [`negative_binomial_upper_tail`] switches to the incomplete beta function.
const DIRECT_SUM_MAX_TERMS: f64 = 1e5;

/// The regularized incomplete beta function `I_x(a, b)` for `a, b > 0`, `x` in [0, 1], by the
/// continued fraction (modified Lentz), on whichever side of the mean converges quickly
/// (Numerical Recipes, section 6.4); about `sqrt(max(a, b))` iterations.
pub fn regularized_incomplete_beta(a: f64, b: f64, x: f64) -> f64 {
    if x <= 0.0 {
        return 0.0;
    }
    if x >= 1.0 {
        return 1.0;
    }
    // ln B(a, b) through a ln-gamma difference, so that large a or b lose nothing to cancellation.
    let (small, large) = if a < b { (a, b) } else { (b, a) };
    let ln_beta_ab = ln_gamma(small) - ln_gamma_diff(large, small);
    let ln_front = a * x.ln() + b * (-x).ln_1p() - ln_beta_ab;
    if x < (a + 1.0) / (a + b + 2.0) {
        (ln_front.exp() * beta_continued_fraction(a, b, x) / a).min(1.0)
    } else {
        (1.0 - ln_front.exp() * beta_continued_fraction(b, a, 1.0 - x) / b).max(0.0)
    }
}

fn beta_continued_fraction(a: f64, b: f64, x: f64) -> f64 {
    const TINY: f64 = 1e-300;
    let (qab, qap, qam) = (a + b, a + 1.0, a - 1.0);
    let mut c = 1.0;
    let mut d = 1.0 - qab * x / qap;
    d = if d.abs() < TINY { TINY } else { d };
    d = 1.0 / d;
    let mut h = d;
    for m in 1..10_000_000u64 {
        let m = m as f64;
        let m2 = 2.0 * m;
        for aa in [
            m * (b - m) * x / ((qam + m2) * (a + m2)),
            -(a + m) * (qab + m) * x / ((a + m2) * (qap + m2)),
        ] {
            d = 1.0 + aa * d;
            d = if d.abs() < TINY { TINY } else { d };
            c = 1.0 + aa / c;
            c = if c.abs() < TINY { TINY } else { c };
            d = 1.0 / d;
            h *= d * c;
        }
        if (d * c - 1.0).abs() < 1e-16 {
            break;
        }
    }
    h
}

/// `P(J <= top)` summed downwards from `top` (used where `top` is at or below the mean).
fn negative_binomial_sum_down(k: f64, top: u64, w: f64, ln_w: f64, ln_1mw: f64) -> f64 {
    let mut j = top as f64;
    let mut p = ln_negative_binomial_pmf(k, j, ln_w, ln_1mw).exp();
    let mut sum = 0.0;
    loop {
        sum += p;
        if j == 0.0 {
            return sum;
        }
        // P(j - 1) / P(j) = j / (w (k + j - 1)); the ratio shrinks as j falls below the mode.
        let ratio = j / (w * (k + j - 1.0));
        p *= ratio;
        j -= 1.0;
        if ratio < 1.0 && p / (1.0 - ratio) <= SERIES_TOLERANCE * sum {
            return sum;
        }
    }
}

/// `P(J >= bottom)` summed upwards from `bottom` (used where `bottom` is above the mean).
fn negative_binomial_sum_up(k: f64, bottom: u64, w: f64, ln_w: f64, ln_1mw: f64) -> f64 {
    let mut j = bottom as f64;
    let mut p = ln_negative_binomial_pmf(k, j, ln_w, ln_1mw).exp();
    let mut sum = 0.0;
    loop {
        sum += p;
        // P(j + 1) / P(j) = w (k + j) / (j + 1): tends to w, from above when k > 1.
        let ratio = w * (k + j) / (j + 1.0);
        let bound = if k >= 1.0 { ratio } else { w };
        p *= ratio;
        j += 1.0;
        if p == 0.0 || (bound < 1.0 && p / (1.0 - bound) <= SERIES_TOLERANCE * sum) {
            return sum;
        }
    }
}

/// Terms [`smooth_sum`] needs summed one by one before its blocks (the Euler-Maclaurin
/// error of a block is below `1e-3 / t^4` relative there, for terms that vary on the scale of
/// `t`).
pub const SMOOTH_SUM_HEAD: f64 = 1000.0;
/// Relative size of the tail [`smooth_sum`] may leave out.
const SMOOTH_SUM_TOLERANCE: f64 = 1e-17;
/// Blocks of [`smooth_sum`] (doubling: past 1e300 from its first term, where it stops).
const SMOOTH_SUM_MAX_BLOCKS: usize = 1100;

/// `sum_{j = first}^{last} exp(ln_f(j))` over integers `j` (`last` may be infinite), for a
/// positive, decreasing term that varies smoothly on the scale of `j` (a survival curve times
/// a discount `exp(j ln_ratio)`, `ln_ratio <= 0`), at a cost independent of `last`: blocks
/// `[a, 2a]` each by Gauss-Kronrod quadrature of the term over `[a - 1/2, 2a + 1/2]`, with the
/// Euler-Maclaurin (midpoint) correction `(f'(first - 1/2) - f'(last + 1/2)) / 24`, the
/// derivatives by finite differences of `ln_f`. Call it from `first >= `[`SMOOTH_SUM_HEAD`]
/// and with a slow discount (`-ln_ratio` below about `40 / first`: faster ones end the plain
/// sum first), so the next correction, about `1e-3 (1/first^4 + ln_ratio^4)` of the sum, is
/// below rounding.
///
/// Without discount (`ln_ratio = 0`) the tail beyond `t` is taken as `t f(t) / (p - 1)` with
/// `p = -t (ln f)'(t)`, the local power of a decay like `t^-p`. None when the sum does not
/// converge to double precision within [`SMOOTH_SUM_MAX_BLOCKS`] blocks (a tail decaying no
/// faster than `1/j`).
pub fn smooth_sum(ln_f: impl Fn(f64) -> f64, first: f64, last: f64, ln_ratio: f64) -> Option<f64> {
    if !(first <= last) {
        return Some(0.0);
    }
    let f = |t: f64| ln_f(t).exp();
    // d ln f / dt, by the fourth-order central difference.
    let slope = |t: f64| {
        let h = 0.01 * t;
        (8.0 * (ln_f(t + h) - ln_f(t - h)) - (ln_f(t + 2.0 * h) - ln_f(t - 2.0 * h))) / (12.0 * h)
    };
    let start = first - 0.5;
    let mut sum = f(start) * slope(start) / 24.0;
    let mut a = first;
    for _ in 0..SMOOTH_SUM_MAX_BLOCKS {
        if !(a <= 1e300 && sum.is_finite()) {
            return None;
        }
        let b = (2.0 * a).min(last);
        let end = b + 0.5;
        sum += integrate(f, a - 0.5, end, 1e-14, 200).value;
        if b >= last {
            return Some(sum - f(end) * slope(end) / 24.0);
        }
        let at_end = f(end);
        if at_end == 0.0 {
            return Some(sum);
        }
        // The terms fall at least by the discount: the tail is below f(end) / -ln_ratio.
        if ln_ratio < 0.0 && at_end <= SMOOTH_SUM_TOLERANCE * sum * -ln_ratio {
            return Some(sum);
        }
        // The survival part's own decay, like t^-p (the discount only shrinks the tail further).
        let power = -end * (slope(end) - ln_ratio);
        if power > 1.0 {
            let tail = at_end * end / (power - 1.0);
            if tail <= SMOOTH_SUM_TOLERANCE * sum {
                return Some(sum + if ln_ratio < 0.0 { 0.0 } else { tail });
            }
        }
        a = b + 1.0;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shared_recurrence_gives_the_three_functions() {
        for &x in &[1e-100, 1e-6, 0.3, 1.0, 2.5, 3.999, 9.99, 10.0, 17.3, 1e8] {
            let (lg, psi, tri) = ln_gamma_digamma_trigamma::<true>(x);
            let (lg1, psi1, tri1) = ln_gamma_digamma_trigamma::<false>(x);
            assert_eq!(
                (lg.to_bits(), psi.to_bits(), tri1),
                (lg1.to_bits(), psi1.to_bits(), 0.0)
            );
            // psi to rounding; ln Gamma within its terms' cancellation (the crate's `ln` is
            // within an ulp, not correctly rounded: 3.999 is 8 ulps off here, where
            // `(z - 1/2) ln z` is 25 and the value 1.8); psi' within the digit its subtraction
            // may lose.
            for (got, want, ulps) in [
                (lg, ln_gamma(x), 32.0),
                (psi, digamma(x), 4.0),
                (tri, trigamma(x), 32.0),
            ] {
                assert!(
                    (got - want).abs() <= ulps * f64::EPSILON * want.abs().max(1.0),
                    "{x}: {got} vs {want}"
                );
            }
        }
        assert!(ln_gamma_digamma_trigamma::<true>(0.0).0.is_nan());
        assert_eq!(ln_gamma_digamma_trigamma::<true>(f64::INFINITY).2, 0.0);
    }

    #[test]
    fn lanes_give_the_same_bits_as_one_at_a_time() {
        let x: Vec<f64> = (0..37).map(|j| 1e-3 + 0.37 * j as f64).collect();
        let n = x.len();
        let (mut lg, mut psi, mut tri) = (vec![0.0; n], vec![0.0; n], vec![0.0; n]);
        ln_gamma_digamma_trigamma_lanes::<true>(&x, &mut lg, &mut psi, &mut tri);
        for (j, &x) in x.iter().enumerate() {
            let one = ln_gamma_digamma_trigamma::<true>(x);
            assert_eq!(
                (lg[j].to_bits(), psi[j].to_bits(), tri[j].to_bits()),
                (one.0.to_bits(), one.1.to_bits(), one.2.to_bits()),
                "{x}"
            );
        }
    }

    /// mpmath (40 digits): `(z, k, ln Gamma(z+k) - ln Gamma(z), psi(z+k) - psi(z),
    /// psi'(z+k) - psi'(z))`.
    const RISING: [(f64, f64, f64, f64, f64); 4] = [
        (
            0.243,
            37.0,
            95.27661248673526,
            7.955072454848674,
            -18.114565398238224,
        ),
        (
            3.7,
            5.0,
            8.539689358463255,
            0.9375986854217203,
            -0.18823699973141148,
        ),
        (
            1e-6,
            12.0,
            3.6868003077861777,
            1000003.0198757868,
            -1000000000001.5581,
        ),
        (
            2e7,
            150.0,
            2521.6869834763475,
            7.499972062639221e-06,
            -3.7499720627088315e-13,
        ),
    ];

    #[test]
    fn rising_terms_and_table_match_high_precision_values() {
        let close = |got: RisingTerms, want: (f64, f64, f64), tol: f64| {
            for (g, w) in [(got.0, want.0), (got.1, want.1), (got.2, want.2)] {
                assert!((g - w).abs() <= tol * w.abs(), "{got:?} vs {want:?}");
            }
        };
        for (z, k, ln, psi, second) in RISING {
            let table = RisingTable::new(z, 200);
            close(table.get::<true>(k), (ln, psi, second), 1e-12);
            close(rising_terms::<true>(z, k), (ln, psi, second), 1e-9);
            // Beyond the table, and without the trigamma difference.
            let short = RisingTable::new(z, 2);
            close(short.get::<true>(k), (ln, psi, second), 1e-9);
            let (l, p, s) = short.get::<false>(k);
            assert_eq!(s, 0.0);
            close((l, p, second), (ln, psi, second), 1e-9);
        }
    }

    #[test]
    fn rising_table_agrees_with_the_gamma_functions_everywhere_it_is_read() {
        for z in [1e-8, 0.05, 0.7, 1.0, 13.5, 1e6, 1e16] {
            let table = RisingTable::new(z, 300);
            for k in [
                0.0,
                1.0,
                2.0,
                7.0,
                16.0,
                17.0,
                120.0,
                299.0,
                300.0,
                2.5,
                f64::NAN,
            ] {
                let (ln, psi, second) = table.get::<true>(k);
                if k.is_nan() {
                    assert!(ln.is_nan() || psi.is_nan());
                    continue;
                }
                let want = (
                    ln_gamma_diff(z, k),
                    digamma_diff(z, k),
                    trigamma(z + k) - trigamma(z),
                );
                assert!(
                    (ln - want.0).abs() <= 1e-11 * want.0.abs().max(1.0),
                    "{z} {k}"
                );
                assert!(
                    (psi - want.1).abs() <= 1e-11 * want.1.abs().max(1e-300),
                    "{z} {k}"
                );
                // The trigamma difference of two close large values cancels; the sum does not.
                assert!(
                    (second - want.2).abs() <= 1e-6 * want.2.abs() + 1e-15,
                    "{z} {k}"
                );
                let small = rising_terms::<true>(z, k);
                assert!(
                    (small.0 - want.0).abs() <= 1e-11 * want.0.abs().max(1.0),
                    "{z} {k}"
                );
                assert!((small.1 - want.1).abs() <= 1e-11 * want.1.abs().max(1e-300));
            }
        }
    }

    #[test]
    fn beta_kernel_matches_high_precision_values() {
        // ln(u^a (1-u)^b / B(a, b)), from mpmath at 60 digits.
        for (a, b, u, want) in [
            (2.5, 3.7, 0.3, -0.910_085_712_689_162_8),
            (1e15, 4e15, 0.2, 16.238_877_888_593_565),
            (0.01, 0.02, 0.5, -5.031_107_766_114_785),
            (1e6, 3.0, 0.999, -980.470_211_927_150_4),
            (4e15, 6.5e16, 0.0588, -430_305_175_709.775_2),
        ] {
            let got = ln_beta_kernel(a, b, u, 1.0 - u);
            assert!(
                (got - want).abs() <= 1e-12 * want.abs().max(1.0),
                "({a}, {b}, {u}): {got} vs {want}"
            );
        }
    }

    fn close(a: f64, b: f64, tol: f64) -> bool {
        (a - b).abs() <= tol * b.abs().max(1.0)
    }

    #[test]
    fn ln_gamma_matches_known_values() {
        // Reference values from mpmath at 30 digits.
        let cases = [
            (1e-10, 23.025850929882735),
            (0.5, 0.5723649429247001),
            (1.0, 0.0),
            (2.0, 0.0),
            (3.5, 1.2009736023470743),
            (9.99, 12.779315214350193),
            (10.0, 12.801827480081469),
            (100.5, 361.435_540_467_777_6),
            (1e6, 12815504.569147612),
        ];
        for (x, want) in cases {
            assert!(
                close(ln_gamma(x), want, 2e-15),
                "ln_gamma({x}) = {}",
                ln_gamma(x)
            );
        }
        assert!(ln_gamma(0.0).is_nan());
        assert!(ln_gamma(-1.0).is_nan());
    }

    #[test]
    fn digamma_matches_known_values() {
        let cases = [
            (1e-8, -100000000.57721566),
            (0.25, -4.2274535333762654),
            (1.0, -0.5772156649015329),
            (1.4616321449683622, 0.0),
            (7.3, 1.9178203356379861),
            (1000.0, 6.907255195648812),
        ];
        for (x, want) in cases {
            assert!(
                close(digamma(x), want, 2e-15),
                "digamma({x}) = {}",
                digamma(x)
            );
        }
    }

    #[test]
    fn digamma_is_the_derivative_of_ln_gamma() {
        for &x in &[0.01, 0.3, 1.7, 5.0, 9.999, 10.001, 42.0, 3000.0] {
            let h = 1e-5 * x;
            let numeric = (ln_gamma(x + h) - ln_gamma(x - h)) / (2.0 * h);
            assert!(close(digamma(x), numeric, 1e-7), "x = {x}");
        }
    }

    #[test]
    fn trigamma_matches_known_values() {
        // mpmath psi(1, x).
        for (x, want) in [
            (1e-4, 100_000_001.644_693_69),
            (0.5, 4.934_802_200_544_679),
            (1.0, 1.644_934_066_848_226_4),
            (9.99, 0.105_276_950_148_241_79),
            (10.0, 0.105_166_335_681_685_75),
            (250.0, 0.004_008_010_666_632_534),
        ] {
            assert!(
                close(trigamma(x), want, 1e-14),
                "trigamma({x}) = {}",
                trigamma(x)
            );
        }
    }

    #[test]
    fn differences_keep_precision_for_huge_arguments() {
        // mpmath: loggamma(1e6 + 3) - loggamma(1e6), digamma(1e6 + 3) - digamma(1e6).
        assert!(close(ln_gamma_diff(1e6, 3.0), 41.446_534_673_890_32, 1e-15));
        assert!((digamma_diff(1e6, 3.0) / 2.999_997_000_005e-6 - 1.0).abs() < 1e-12);
        for &(z, x) in &[
            (0.3, 2.0),
            (9.99, 5.0),
            (10.0, 1.0),
            (12.5, 40.0),
            (300.0, 7.0),
        ] {
            assert!(close(
                ln_gamma_diff(z, x),
                ln_gamma(z + x) - ln_gamma(z),
                1e-13
            ));
            assert!(close(
                digamma_diff(z, x),
                digamma(z + x) - digamma(z),
                1e-12
            ));
        }
    }

    #[test]
    fn log_helpers_are_stable_in_the_tails() {
        assert_eq!(log1p_exp(1000.0), 1000.0);
        assert!(close(log1p_exp(-1000.0), 0.0, 0.0));
        assert!(close(log1p_exp(0.0), std::f64::consts::LN_2, 1e-16));
        assert_eq!(logistic(-1000.0), 0.0);
        assert_eq!(logistic(1000.0), 1.0);
        assert!(close(log_add_exp(-1e300, 0.0), 0.0, 0.0));
        assert_eq!(log_add_exp(f64::NEG_INFINITY, 2.0), 2.0);
    }

    #[test]
    fn incomplete_beta_matches_the_direct_tail_sums() {
        // mpmath betainc(n, k, 0, w, regularized=True) at 30 digits.
        for &(k, w, n, want) in &[
            (2.3, 0.4, 3u64, 0.219_473_794_373_566),
            (0.24, 0.9, 10, 0.063_364_929_579_366_05),
            (50.0, 0.7, 120, 0.424_443_294_836_366_8),
            (0.5, 0.999, 700, 0.236_690_028_753_165_5),
        ] {
            let cf = regularized_incomplete_beta(n as f64, k, w);
            assert!(
                (cf / want - 1.0).abs() <= 1e-13,
                "k={k} w={w} n={n}: {cf} vs {want}"
            );
            let tail = negative_binomial_upper_tail(k, n, w, w.ln(), (-w).ln_1p());
            assert!(
                (tail / want - 1.0).abs() <= 1e-12,
                "k={k} w={w} n={n}: {tail} vs {want}"
            );
        }
        // A tail with about 1e8 expected opportunities is immediate.
        let w = 4.4e8 / (4.414 + 4.4e8);
        let tail = negative_binomial_upper_tail(0.243, 100_000_000, w, w.ln(), (-w).ln_1p());
        assert!(tail.is_finite() && (0.0..=1.0).contains(&tail));
    }

    #[test]
    fn negative_binomial_tail_sums_to_one_and_is_precise() {
        let k: f64 = 2.3;
        let w: f64 = 0.4;
        let (ln_w, ln_1mw) = (w.ln(), (-w).ln_1p());
        let mut total = 0.0;
        for j in 0..200 {
            total += ln_negative_binomial_pmf(k, j as f64, ln_w, ln_1mw).exp();
        }
        assert!(close(total, 1.0, 1e-14));
        // P(J >= n) against direct summation of the pmf.
        for n in [0u64, 1, 2, 5, 20, 60] {
            let direct: f64 = (n..400)
                .map(|j| ln_negative_binomial_pmf(k, j as f64, ln_w, ln_1mw).exp())
                .sum();
            let tail = negative_binomial_upper_tail(k, n, w, ln_w, ln_1mw);
            assert!(
                (tail - direct).abs() <= 1e-14 * direct.max(1e-300) + 1e-16,
                "n={n}"
            );
        }
    }

    #[test]
    fn smooth_sum_matches_closed_forms_at_bounded_cost() {
        // sum_{j >= 1000} j^-2 = trigamma(1000) (the tail taken from the local power).
        let got = smooth_sum(|t| -2.0 * t.ln(), 1000.0, f64::INFINITY, 0.0).unwrap();
        let want = trigamma(1000.0);
        assert!((got / want - 1.0).abs() < 1e-13, "{got} vs {want}");
        // A geometric sum with a slow discount: sum_{j >= 1000} e^{-d j}.
        let d = 1e-9;
        let got = smooth_sum(|t| -d * t, 1000.0, f64::INFINITY, -d).unwrap();
        let want = (-1000.0 * d).exp() / -(-d).exp_m1();
        assert!((got / want - 1.0).abs() < 1e-12, "{got} vs {want}");
        // A finite range of a billion terms: sum_{j=1000}^{1e9} j^-2.
        let got = smooth_sum(|t| -2.0 * t.ln(), 1000.0, 1e9, 0.0).unwrap();
        let want = trigamma(1000.0) - trigamma(1e9 + 1.0);
        assert!((got / want - 1.0).abs() < 1e-13, "{got} vs {want}");
        // 1/j diverges: None, after a bounded number of blocks.
        assert!(smooth_sum(|t| -t.ln(), 1000.0, f64::INFINITY, 0.0).is_none());
    }
}
