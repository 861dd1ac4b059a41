//! Branch-free `ln` and `exp` for the hot loops of the likelihoods.
//!
//! `f64::ln` and `f64::exp` call the C library one value at a time. These versions are plain
//! arithmetic and bit manipulation, so a loop over 4 customers at once compiles to SIMD
//! instructions. They follow the FreeBSD/musl algorithms (argument reduction plus a minimax
//! polynomial; the coefficients are fdlibm's), with errors below 1 ulp in the tests against the
//! C library. Used only where a fit evaluates the same expression millions of times; everything
//! else uses the standard library.

// The coefficients are quoted digit for digit as published.
#![allow(clippy::excessive_precision)]

const LN2_HI: f64 = 6.931_471_803_691_238_164_90e-1;
const LN2_LO: f64 = 1.908_214_929_270_587_700_02e-10;
const INV_LN2: f64 = std::f64::consts::LOG2_E;

const LG1: f64 = 6.666_666_666_666_735_130e-1;
const LG2: f64 = 3.999_999_999_940_941_908e-1;
const LG3: f64 = 2.857_142_874_366_239_149e-1;
const LG4: f64 = 2.222_219_843_214_978_396e-1;
const LG5: f64 = 1.818_357_216_161_805_012e-1;
const LG6: f64 = 1.531_383_769_920_937_332e-1;
const LG7: f64 = 1.479_819_860_511_658_591e-1;

const P1: f64 = 1.666_666_666_666_660_190_37e-1;
const P2: f64 = -2.777_777_777_701_559_338_42e-3;
const P3: f64 = 6.613_756_321_437_934_361_17e-5;
const P4: f64 = -1.653_390_220_546_525_153_90e-6;
const P5: f64 = 4.138_136_797_057_238_460_39e-8;

const TWO_52: f64 = 4_503_599_627_370_496.0;
const TWO_52_BITS: u64 = 0x4330_0000_0000_0000;
const ROUND_MAGIC: f64 = 6_755_399_441_055_744.0;
const MANTISSA: u64 = (1u64 << 52) - 1;
const SQRT2_MANTISSA: u64 = 0x6_a09e_667f_3bcd; // mantissa bits of sqrt(2)

/// Natural logarithm of a positive finite `x` (normal or subnormal). Other inputs give
/// unspecified results: callers pass only positive finite values.
#[inline(always)]
pub fn ln(x: f64) -> f64 {
    // Subnormals are scaled into the normal range first (by 2^54).
    let tiny = x < f64::MIN_POSITIVE;
    let x = if tiny {
        x * 18_014_398_509_481_984.0
    } else {
        x
    };
    let (k, f) = ln_reduce(x);
    let k = k - if tiny { 54.0 } else { 0.0 };
    ln_finish(k, f, f / (2.0 + f))
}

/// The argument reduction of [`ln`] for a positive normal `x`: `(k, f)` with
/// `x = 2^k (1 + f)` and `1 + f` in `[sqrt(2)/2, sqrt(2))`, so that
/// `ln x = ln_finish(k, f, f / (2 + f))`. Split from [`ln`] for kernels that take several
/// logarithms and one reciprocal of the product of their `2 + f` (one division instead of
/// several): [`ln_finish`] needs `f / (2 + f)` only to a few ulps (it enters a term of order
/// `f^3`).
#[inline(always)]
pub fn ln_reduce(x: f64) -> (f64, f64) {
    let bits = x.to_bits();
    let mut mantissa = bits & MANTISSA;
    // Normalise the mantissa into [sqrt(2)/2, sqrt(2)).
    let high = mantissa > SQRT2_MANTISSA;
    mantissa |= if high { 1022u64 << 52 } else { 1023u64 << 52 };
    let m = f64::from_bits(mantissa);
    // The biased exponent as a float without an integer-to-float conversion (which has no SIMD
    // form for 64-bit lanes before AVX-512): place it in the mantissa of 2^52 and subtract 2^52.
    let biased = f64::from_bits(TWO_52_BITS | (bits >> 52)) - TWO_52;
    let k = biased - 1023.0 + if high { 1.0 } else { 0.0 };
    (k, m - 1.0)
}

/// The reduction of [`ln_reduce`] for `1 + y` with `y` in `[0, 1]`, straight from `y`:
/// `f = y` (`k = 0`) below `sqrt(2) - 1`, else `f = (y - 1) / 2` (`k = 1`), within 2^-55 of
/// the exact value (no rounding of `1 + y` to undo).
#[inline(always)]
pub fn ln_1p_reduce_unit(y: f64) -> (f64, f64) {
    let high = y > std::f64::consts::SQRT_2 - 1.0;
    (
        if high { 1.0 } else { 0.0 },
        if high { (y - 1.0) * 0.5 } else { y },
    )
}

/// `ln x` from the reduction `(k, f)` of [`ln_reduce`] and `s = f / (2 + f)`.
#[inline(always)]
pub fn ln_finish(k: f64, f: f64, s: f64) -> f64 {
    let hfsq = 0.5 * f * f;
    let z = s * s;
    let w = z * z;
    let t1 = w * (LG2 + w * (LG4 + w * LG6));
    let t2 = z * (LG1 + w * (LG3 + w * (LG5 + w * LG7)));
    let r = t2 + t1;
    k * LN2_HI - ((hfsq - (s * (hfsq + r) + k * LN2_LO)) - f)
}

/// e^x for any finite or infinite `x` (0 below -745.2, +inf above 709.8).
#[inline(always)]
pub fn exp(x: f64) -> f64 {
    let x = x.clamp(-746.0, 710.0);
    // Round to the nearest integer by adding and subtracting 1.5 * 2^52 (vectorises everywhere,
    // unlike `round`); the integer itself is read from the low bits of the shifted value.
    let shifted = x * INV_LN2 + ROUND_MAGIC;
    let k = shifted - ROUND_MAGIC;
    let hi = x - k * LN2_HI;
    let lo = k * LN2_LO;
    let r = hi - lo;
    let rr = r * r;
    let c = r - rr * (P1 + rr * (P2 + rr * (P3 + rr * (P4 + rr * P5))));
    let y = 1.0 - ((lo - (r * c) / (2.0 - c)) - hi);
    // Scale by 2^k in two steps so that results near the ends of the range (subnormal, or just
    // below overflow) are formed without an intermediate overflow or underflow: y 2^k1 is
    // exact (|k1| <= 538), so only the last product rounds, whatever the split. The halves
    // and the powers are formed in floating point (k1 = k/2 rounded to even, 2^k1 from the
    // mantissa bits of 2^52 + 1023 + k1): an integer shift right of 64-bit lanes has no AVX2
    // form, and it made the compiler take four lanes apart.
    let k1 = (k * 0.5 + ROUND_MAGIC) - ROUND_MAGIC;
    let k2 = k - k1;
    let power = |k: f64| f64::from_bits((k + (TWO_52 + 1023.0)).to_bits() << 52);
    y * power(k1) * power(k2)
}

/// ln(1 + y) for `y > -1` (finite), accurate for tiny `y` too: `ln(u) y / (u - 1)` with
/// `u = 1 + y` cancels the rounding of `u` (Goldberg 1991, theorem 4).
#[inline(always)]
pub fn ln_1p(y: f64) -> f64 {
    let u = 1.0 + y;
    let d = u - 1.0;
    // Both sides are computed (the discarded one is 0 * inf when d = 0), so that a loop over
    // lanes compiles to a select, not a branch.
    let corrected = ln(u) * (y / d);
    if d == 0.0 {
        y
    } else {
        corrected
    }
}

/// e^y - 1 for any `y`, accurate for tiny `y` too (a few ulps everywhere). Where
/// `|y| >= ln 2`, `e^y` is at least 2 or at most 1/2, so `exp(y) - 1` loses at most a bit;
/// below, `e^(y/16) - 1` comes from its Taylor series (the tenth term is below 2e-19 of the
/// first) and is doubled up four times by `e^(2u) - 1 = (e^u - 1)(e^u - 1 + 2)`, which adds
/// no cancellation. Both are computed, so a loop over lanes compiles to a select.
#[inline(always)]
pub fn expm1(y: f64) -> f64 {
    exp_and_expm1(y).1
}

/// `(e^y, e^y - 1)`: [`exp`] and [`expm1`] of the same argument, sharing the exponential.
#[inline(always)]
pub fn exp_and_expm1(y: f64) -> (f64, f64) {
    let e = exp(y);
    let far = e - 1.0;
    let h = y * 0.0625;
    let mut u = 1.0 + h * (1.0 / 9.0);
    u = 1.0 + h * (1.0 / 8.0) * u;
    u = 1.0 + h * (1.0 / 7.0) * u;
    u = 1.0 + h * (1.0 / 6.0) * u;
    u = 1.0 + h * (1.0 / 5.0) * u;
    u = 1.0 + h * 0.25 * u;
    u = 1.0 + h * (1.0 / 3.0) * u;
    u = 1.0 + h * 0.5 * u;
    u *= h;
    for _ in 0..4 {
        u *= u + 2.0;
    }
    // (Below 2^-1000, y / 16 would lose bits to subnormal rounding; e^y - 1 is y there.)
    let near = if y.abs() < 1e-300 { y } else { u };
    (
        e,
        if y.abs() < std::f64::consts::LN_2 {
            near
        } else {
            far
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ulps(a: f64, b: f64) -> f64 {
        if a == b {
            return 0.0;
        }
        let spacing = f64::EPSILON * b.abs().max(f64::MIN_POSITIVE);
        (a - b).abs() / spacing
    }

    fn sweep() -> Vec<f64> {
        let mut values = vec![f64::MIN_POSITIVE, 5e-324, 1e-310, 0.5, 1.0, 2.0, f64::MAX];
        let mut state = 0x9e37_79b9_7f4a_7c15u64;
        for _ in 0..200_000 {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            let u = (state >> 11) as f64 / (1u64 << 53) as f64;
            values.push((u * 1400.0 - 700.0).exp());
            values.push(1.0 + (u - 0.5) * 1e-3);
        }
        values
    }

    #[test]
    fn ln_is_within_one_ulp_of_the_c_library() {
        let worst = sweep()
            .into_iter()
            .map(|x| ulps(ln(x), x.ln()))
            .fold(0.0, f64::max);
        assert!(worst <= 1.0, "worst error {worst} ulp");
        assert_eq!(ln(1.0), 0.0);
    }

    #[test]
    fn exp_is_within_one_ulp_of_the_c_library() {
        let mut worst: f64 = 0.0;
        for x in sweep() {
            let x = x.ln().clamp(-700.0, 700.0) + (x.fract() - 0.5);
            worst = worst.max(ulps(exp(x), x.exp()));
        }
        assert!(worst <= 1.0, "worst error {worst} ulp");
        assert_eq!(exp(0.0), 1.0);
        assert_eq!(exp(f64::NEG_INFINITY), 0.0);
        assert_eq!(exp(-800.0), 0.0);
        assert_eq!(exp(800.0), f64::INFINITY);
        assert!(ulps(exp(-740.0), (-740.0f64).exp()) < 1e9); // subnormal: absolute accuracy
        assert!((exp(709.7) / 709.7f64.exp() - 1.0).abs() < 1e-15);
    }

    #[test]
    fn ln_1p_is_accurate_for_tiny_and_large_arguments() {
        for y in [
            0.0, 1e-300, 1e-20, 1e-10, 1e-3, 0.5, 1.0, -0.5, -1e-12, 3.7, 1e6, 1e300,
        ] {
            let want = f64::ln_1p(y);
            assert!(ulps(ln_1p(y), want) <= 2.0, "{y}");
        }
    }

    #[test]
    fn expm1_is_within_a_few_ulps_of_the_c_library() {
        let mut worst: f64 = 0.0;
        let mut state = 0x2545_f491_4f6c_dd1du64;
        let ln2 = std::f64::consts::LN_2;
        let mut check = |y: f64| {
            let e = ulps(expm1(y), y.exp_m1());
            assert!(e <= 4.0, "{y}: {} vs {} ({e} ulp)", expm1(y), y.exp_m1());
            worst = worst.max(e);
        };
        for y in [
            0.0,
            -0.0,
            1e-320,
            -1e-310,
            1e-300,
            1e-20,
            -1e-20,
            1e-9,
            0.01,
            -0.01,
            0.5,
            -0.5,
            ln2 * 0.9999,
            -ln2 * 0.9999,
            ln2 * 1.0001,
            -ln2 * 1.0001,
            1.0,
            -1.0,
            30.0,
            -30.0,
            700.0,
            -700.0,
            -800.0,
        ] {
            check(y);
        }
        for _ in 0..200_000 {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            let u = (state >> 11) as f64 / (1u64 << 53) as f64;
            // Magnitudes from 1e-300 to 700, both signs, dense around ln 2.
            let magnitude = (u * 696.0 - 690.0).exp();
            let sign = if state & 1 == 0 { 1.0 } else { -1.0 };
            check(sign * magnitude);
            check(sign * (std::f64::consts::LN_2 + (u - 0.5) * 0.1));
        }
        assert_eq!(expm1(f64::NEG_INFINITY), -1.0);
        assert_eq!(expm1(f64::INFINITY), f64::INFINITY);
        assert!(expm1(f64::NAN).is_nan());
    }
}
