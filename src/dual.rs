//! Forward-mode dual numbers: a value with its gradient with respect to `N` variables.
//!
//! The likelihoods whose closed forms are series or integrals (Pareto/NBD, GGompertz/NBD) are
//! written once over [`Dual`] and give the exact (analytic) gradient along with the value, so
//! the gradient cannot drift from the function it differentiates. `Dual<0>` is a plain value at
//! no extra cost, so predictions share the same code.

use std::ops::{Add, AddAssign, Div, Mul, Neg, Sub};

use crate::special::{digamma, digamma_diff, ln_gamma, ln_gamma_diff};

/// A value `v` and its partial derivatives `d` with respect to `N` variables.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Dual<const N: usize> {
    pub v: f64,
    pub d: [f64; N],
}

impl<const N: usize> Dual<N> {
    /// A quantity that does not depend on the variables.
    #[inline]
    pub fn constant(v: f64) -> Self {
        Dual { v, d: [0.0; N] }
    }

    /// Variable `i` at value `v`.
    #[inline]
    pub fn variable(v: f64, i: usize) -> Self {
        let mut d = [0.0; N];
        d[i] = 1.0;
        Dual { v, d }
    }

    /// Chain rule: `f(self)` given `f = value` and `f' = slope` at `self.v`.
    #[inline]
    fn chain(self, value: f64, slope: f64) -> Self {
        Dual {
            v: value,
            d: self.d.map(|x| x * slope),
        }
    }

    #[inline]
    pub fn ln(self) -> Self {
        self.chain(self.v.ln(), 1.0 / self.v)
    }

    #[inline]
    pub fn exp(self) -> Self {
        let e = self.v.exp();
        self.chain(e, e)
    }

    /// `ln(1 + self)`.
    #[inline]
    pub fn ln_1p(self) -> Self {
        self.chain(self.v.ln_1p(), 1.0 / (1.0 + self.v))
    }

    /// `exp(self) - 1`.
    #[inline]
    pub fn exp_m1(self) -> Self {
        self.chain(self.v.exp_m1(), self.v.exp())
    }

    #[inline]
    pub fn ln_gamma(self) -> Self {
        self.chain(ln_gamma(self.v), digamma(self.v))
    }

    /// `ln Gamma(self + x) - ln Gamma(self)`, without cancellation when `x` is large.
    #[inline]
    pub fn ln_gamma_ratio(self, x: f64) -> Self {
        self.chain(ln_gamma_diff(self.v, x), digamma_diff(self.v, x))
    }

    /// `ln Gamma(self + x) - ln Gamma(self)` for a shift `x >= 0` that is itself a dual number,
    /// without cancellation when `self` is large.
    #[inline]
    pub fn ln_gamma_shift(self, x: Self) -> Self {
        let psi_end = digamma(self.v + x.v);
        let d_self = digamma_diff(self.v, x.v);
        Dual {
            v: ln_gamma_diff(self.v, x.v),
            d: std::array::from_fn(|i| d_self * self.d[i] + psi_end * x.d[i]),
        }
    }

    #[inline]
    pub fn recip(self) -> Self {
        let inv = 1.0 / self.v;
        self.chain(inv, -inv * inv)
    }

    /// `ln(exp(self) + exp(other))` without overflow.
    #[inline]
    pub fn log_add_exp(self, other: Self) -> Self {
        let (hi, lo) = if self.v >= other.v {
            (self, other)
        } else {
            (other, self)
        };
        if lo.v == f64::NEG_INFINITY {
            return hi;
        }
        hi + (lo - hi).exp().ln_1p()
    }

    /// The largest absolute derivative (0 for `N = 0`).
    #[inline]
    pub fn max_abs_derivative(&self) -> f64 {
        self.d.iter().fold(0.0f64, |m, x| m.max(x.abs()))
    }
}

impl<const N: usize> From<f64> for Dual<N> {
    fn from(v: f64) -> Self {
        Dual::constant(v)
    }
}

impl<const N: usize> Add for Dual<N> {
    type Output = Self;
    #[inline]
    fn add(self, o: Self) -> Self {
        let mut d = self.d;
        for (a, b) in d.iter_mut().zip(o.d) {
            *a += b;
        }
        Dual { v: self.v + o.v, d }
    }
}

impl<const N: usize> AddAssign for Dual<N> {
    #[inline]
    fn add_assign(&mut self, o: Self) {
        *self = *self + o;
    }
}

impl<const N: usize> Sub for Dual<N> {
    type Output = Self;
    #[inline]
    fn sub(self, o: Self) -> Self {
        let mut d = self.d;
        for (a, b) in d.iter_mut().zip(o.d) {
            *a -= b;
        }
        Dual { v: self.v - o.v, d }
    }
}

impl<const N: usize> Mul for Dual<N> {
    type Output = Self;
    #[inline]
    fn mul(self, o: Self) -> Self {
        let mut d = self.d;
        for (a, b) in d.iter_mut().zip(o.d) {
            *a = *a * o.v + self.v * b;
        }
        Dual { v: self.v * o.v, d }
    }
}

impl<const N: usize> Div for Dual<N> {
    type Output = Self;
    #[inline]
    fn div(self, o: Self) -> Self {
        let inv = 1.0 / o.v;
        let q = self.v * inv;
        let mut d = self.d;
        for (a, b) in d.iter_mut().zip(o.d) {
            *a = (*a - q * b) * inv;
        }
        Dual { v: q, d }
    }
}

impl<const N: usize> Neg for Dual<N> {
    type Output = Self;
    #[inline]
    fn neg(self) -> Self {
        Dual {
            v: -self.v,
            d: self.d.map(|x| -x),
        }
    }
}

impl<const N: usize> Add<f64> for Dual<N> {
    type Output = Self;
    #[inline]
    fn add(self, o: f64) -> Self {
        Dual {
            v: self.v + o,
            d: self.d,
        }
    }
}

impl<const N: usize> Sub<f64> for Dual<N> {
    type Output = Self;
    #[inline]
    fn sub(self, o: f64) -> Self {
        Dual {
            v: self.v - o,
            d: self.d,
        }
    }
}

impl<const N: usize> Mul<f64> for Dual<N> {
    type Output = Self;
    #[inline]
    fn mul(self, o: f64) -> Self {
        Dual {
            v: self.v * o,
            d: self.d.map(|x| x * o),
        }
    }
}

impl<const N: usize> Div<f64> for Dual<N> {
    type Output = Self;
    #[inline]
    fn div(self, o: f64) -> Self {
        self * (1.0 / o)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn derivatives_match_finite_differences() {
        // f(a, b) = ln_gamma(a) * exp_m1(b / a) + ln_1p(a b) - log_add_exp(a, -b)
        let f = |a: Dual<2>, b: Dual<2>| {
            a.ln_gamma() * (b / a).exp_m1() + (a * b).ln_1p() - a.log_add_exp(-b) + a.recip()
        };
        let (a0, b0) = (1.7, 0.4);
        let value = f(Dual::variable(a0, 0), Dual::variable(b0, 1));
        let g = |a: f64, b: f64| f(Dual::constant(a), Dual::constant(b)).v;
        let h = 1e-6;
        let da = (g(a0 + h, b0) - g(a0 - h, b0)) / (2.0 * h);
        let db = (g(a0, b0 + h) - g(a0, b0 - h)) / (2.0 * h);
        assert!((value.d[0] - da).abs() < 1e-8, "{} vs {da}", value.d[0]);
        assert!((value.d[1] - db).abs() < 1e-8, "{} vs {db}", value.d[1]);
        assert_eq!(value.v, g(a0, b0));
    }

    #[test]
    fn log_add_exp_survives_infinities_and_huge_gaps() {
        let a = Dual::<1>::variable(-1000.0, 0);
        let b = Dual::<1>::constant(f64::NEG_INFINITY);
        assert_eq!(a.log_add_exp(b), a);
        let c = Dual::<1>::constant(0.0);
        let s = a.log_add_exp(c);
        assert_eq!(s.v, 0.0);
        assert_eq!(s.d[0], 0.0);
    }
}
