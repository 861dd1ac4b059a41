//! Adaptive Gauss-Kronrod quadrature (7-point Gauss, 15-point Kronrod) with global error
//! control, for integrands whose values are plain numbers or [`Dual`] numbers (the integral of a
//! dual integrand is the integral with its gradient).
//!
//! The interval with the largest error estimate is bisected until the summed estimates fall
//! below the tolerance. The error estimate of each interval is QUADPACK's (Piessens et al. 1983,
//! routine QK15): the Gauss-Kronrod difference, sharpened by the integrand's variation over the
//! interval, which is conservative for smooth integrands and honest for rough ones.

use std::ops::{Add, Mul, Sub};

use crate::dual::Dual;

/// What an integrand may return: a value that can be added and scaled, with a magnitude for
/// error control (the value itself for a dual number; derivatives follow the same refinement).
pub trait Integrand:
    Copy + Add<Output = Self> + Sub<Output = Self> + Mul<f64, Output = Self>
{
    fn zero() -> Self;
    fn value(&self) -> f64;
}

impl Integrand for f64 {
    fn zero() -> Self {
        0.0
    }
    fn value(&self) -> f64 {
        *self
    }
}

impl<const N: usize> Integrand for Dual<N> {
    fn zero() -> Self {
        Dual::constant(0.0)
    }
    fn value(&self) -> f64 {
        self.v
    }
}

/// Kronrod abscissae on [-1, 1] (positive half, descending; the last is the centre). Odd
/// indices are the 7-point Gauss abscissae.
const XGK: [f64; 8] = [
    0.991_455_371_120_812_6,
    0.949_107_912_342_758_5,
    0.864_864_423_359_769_1,
    0.741_531_185_599_394_4,
    0.586_087_235_467_691_1,
    0.405_845_151_377_397_2,
    0.207_784_955_007_898_5,
    0.0,
];
/// Kronrod weights.
const WGK: [f64; 8] = [
    0.022_935_322_010_529_22,
    0.063_092_092_629_978_55,
    0.104_790_010_322_250_2,
    0.140_653_259_715_525_9,
    0.169_004_726_639_267_9,
    0.190_350_578_064_785_4,
    0.204_432_940_075_298_9,
    0.209_482_141_084_727_8,
];
/// Gauss weights for XGK[1], XGK[3], XGK[5], XGK[7].
const WG: [f64; 4] = [
    0.129_484_966_168_869_7,
    0.279_705_391_489_276_7,
    0.381_830_050_505_118_9,
    0.417_959_183_673_469_4,
];

/// One 15-point rule on [a, b]: the Kronrod estimate and its error estimate.
fn kronrod<V: Integrand>(f: &impl Fn(f64) -> V, a: f64, b: f64) -> (V, f64) {
    let centre = 0.5 * (a + b);
    let half = 0.5 * (b - a);
    let fc = f(centre);
    let mut kronrod = fc * WGK[7];
    let mut gauss = fc * WG[3];
    let mut values = [(0.0, 0.0); 7];
    for j in 0..7 {
        let dx = half * XGK[j];
        let (f1, f2) = (f(centre - dx), f(centre + dx));
        kronrod = kronrod + (f1 + f2) * WGK[j];
        if j % 2 == 1 {
            gauss = gauss + (f1 + f2) * WG[j / 2];
        }
        values[j] = (f1.value(), f2.value());
    }
    // Variation of the integrand about its mean (QUADPACK's `resasc`).
    let mean = 0.5 * kronrod.value();
    let mut variation = WGK[7] * (fc.value() - mean).abs();
    for j in 0..7 {
        variation += WGK[j] * ((values[j].0 - mean).abs() + (values[j].1 - mean).abs());
    }
    variation *= half.abs();
    let mut error = ((kronrod.value() - gauss.value()) * half).abs();
    if variation != 0.0 && error != 0.0 {
        error = variation * (200.0 * error / variation).powf(1.5).min(1.0);
    }
    (kronrod * half, error)
}

/// The result of [`integrate`].
#[derive(Debug, Clone, Copy)]
pub struct Quadrature<V> {
    /// The integral estimate.
    pub value: V,
    /// Estimated absolute error of its value.
    pub error: f64,
    /// Whether the error met the tolerance within the interval budget.
    pub converged: bool,
}

/// Integrate `f` over `[a, b]` to relative accuracy `tolerance` (absolute when the integral is
/// 0), bisecting at most `max_intervals - 1` times.
pub fn integrate<V: Integrand>(
    f: impl Fn(f64) -> V,
    a: f64,
    b: f64,
    tolerance: f64,
    max_intervals: usize,
) -> Quadrature<V> {
    if a == b {
        return Quadrature {
            value: V::zero(),
            error: 0.0,
            converged: true,
        };
    }
    let (first, error) = kronrod(&f, a, b);
    let mut intervals = vec![(a, b, first, error)];
    let (mut total, mut total_error) = (first, error);
    loop {
        if total_error <= tolerance * total.value().abs() || total_error == 0.0 {
            return Quadrature {
                value: total,
                error: total_error,
                converged: true,
            };
        }
        if intervals.len() >= max_intervals.max(1) {
            return Quadrature {
                value: total,
                error: total_error,
                converged: false,
            };
        }
        // Bisect the interval with the largest error.
        let worst = (0..intervals.len())
            .max_by(|&i, &j| intervals[i].3.total_cmp(&intervals[j].3))
            .expect("at least one interval");
        let (lo, hi, value, err) = intervals[worst];
        let mid = 0.5 * (lo + hi);
        if !(mid > lo.min(hi) && mid < lo.max(hi)) {
            // The interval cannot be split further in floating point.
            return Quadrature {
                value: total,
                error: total_error,
                converged: false,
            };
        }
        let (left, left_err) = kronrod(&f, lo, mid);
        let (right, right_err) = kronrod(&f, mid, hi);
        total = total - value + left + right;
        total_error += left_err + right_err - err;
        // Re-add the error estimates from scratch now and then: cancellation in the running sum.
        intervals[worst] = (lo, mid, left, left_err);
        intervals.push((mid, hi, right, right_err));
        if intervals.len() % 32 == 0 {
            total_error = intervals.iter().map(|i| i.3).sum();
        }
    }
}

/// [`integrate`] over `[a, b]` for integrands whose mass may sit within `scale` of `a` (a
/// density decaying from the start of the interval at rate `1 / scale`): panels of widths
/// `scale, 2 scale, 4 scale, ...` from `a`, each integrated adaptively, so that a narrow peak
/// at `a` is never missed on a long interval (a single adaptive pass could sample past it).
pub fn integrate_from_start<V: Integrand>(
    f: impl Fn(f64) -> V,
    a: f64,
    b: f64,
    scale: f64,
    tolerance: f64,
    max_intervals: usize,
) -> Quadrature<V> {
    if !(scale > 0.0) || !(scale < b - a) {
        return integrate(f, a, b, tolerance, max_intervals);
    }
    let mut total = Quadrature {
        value: V::zero(),
        error: 0.0,
        converged: true,
    };
    let (mut start, mut width) = (a, scale);
    while start < b {
        let end = if start + width >= b || b - (start + width) < width {
            b
        } else {
            start + width
        };
        let panel = integrate(&f, start, end, tolerance, max_intervals);
        total.value = total.value + panel.value;
        total.error += panel.error;
        total.converged &= panel.converged;
        start = end;
        width *= 2.0;
    }
    total
}

/// Integrate `f` over `[a, inf)` by mapping `u = a + v / (1 - v)`, `v` in `[0, 1)`.
pub fn integrate_to_infinity<V: Integrand>(
    f: impl Fn(f64) -> V,
    a: f64,
    tolerance: f64,
    max_intervals: usize,
) -> Quadrature<V> {
    let mapped = |v: f64| {
        let one_minus = 1.0 - v;
        if one_minus <= 0.0 {
            return V::zero();
        }
        let u = a + v / one_minus;
        let value = f(u);
        if value.value() == 0.0 {
            return V::zero();
        }
        value * (1.0 / (one_minus * one_minus))
    };
    integrate(mapped, 0.0, 1.0, tolerance, max_intervals)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exact_for_polynomials_up_to_degree_22() {
        let q = integrate(|x: f64| x.powi(22) + 3.0 * x.powi(5), 0.0, 1.0, 1e-15, 1);
        assert!((q.value - (1.0 / 23.0 + 0.5)).abs() < 1e-15, "{}", q.value);
    }

    #[test]
    fn adapts_to_endpoint_singularities_and_peaks() {
        // int_0^1 x^-0.5 = 2
        let q = integrate(|x: f64| x.powf(-0.5), 0.0, 1.0, 1e-12, 200);
        assert!(q.converged);
        assert!((q.value - 2.0).abs() < 1e-10, "{}", q.value);
        // A narrow peak: int 1/(1e-6 + (x - 0.3)^2) over [0, 1].
        let e = 1e-6f64;
        let exact = ((0.7 / e.sqrt()).atan() + (0.3 / e.sqrt()).atan()) / e.sqrt();
        let q = integrate(|x: f64| 1.0 / (e + (x - 0.3).powi(2)), 0.0, 1.0, 1e-12, 500);
        assert!(q.converged);
        assert!(((q.value - exact) / exact).abs() < 1e-11);
    }

    #[test]
    fn infinite_range_and_dual_integrands() {
        // int_0^inf exp(-c x) dx = 1/c, with its derivative -1/c^2.
        let c = Dual::<1>::variable(2.5, 0);
        let q = integrate_to_infinity(|x: f64| (c * -x).exp(), 0.0, 1e-13, 200);
        assert!((q.value.v - 0.4).abs() < 1e-13, "{:?}", q.value);
        assert!((q.value.d[0] + 0.16).abs() < 1e-12, "{:?}", q.value);
    }
}
