//! Chebyshev interpolation of smooth one-dimensional functions, with a built-in accuracy check.
//!
//! Scoring millions of customers with one horizon evaluates the same smooth function of the
//! customer's age many times over (once per distinct purchase count). [`Interpolant::fit`] samples
//! it at Chebyshev points, and accepts the interpolant only if it reproduces the function at the
//! midpoints between the nodes to the requested relative accuracy; otherwise the caller evaluates
//! the function directly.

/// A Chebyshev series on `[lo, hi]`.
#[derive(Debug, Clone)]
pub struct Interpolant {
    lo: f64,
    hi: f64,
    coefficients: Vec<f64>,
}

impl Interpolant {
    /// Interpolate `f` on `[lo, hi]` with degrees 8, 16, 32, 64 in turn, returning the first
    /// whose relative error at the `degree` midpoints between the nodes is at most `tolerance`.
    /// Returns `None` when even degree 64 fails (the caller then evaluates `f` directly).
    pub fn fit(f: impl Fn(f64) -> f64, lo: f64, hi: f64, tolerance: f64) -> Option<Interpolant> {
        if !(lo.is_finite() && hi.is_finite() && hi > lo) {
            return None;
        }
        for degree in [8usize, 16, 32, 64] {
            let n = degree + 1;
            // Chebyshev points of the first kind, mapped to [lo, hi].
            let node = |k: usize| {
                let theta = std::f64::consts::PI * (k as f64 + 0.5) / n as f64;
                0.5 * (lo + hi) + 0.5 * (hi - lo) * theta.cos()
            };
            let values: Vec<f64> = (0..n).map(|k| f(node(k))).collect();
            if values.iter().any(|v| !v.is_finite()) {
                return None;
            }
            let coefficients: Vec<f64> = (0..n)
                .map(|j| {
                    let sum: f64 = (0..n)
                        .map(|k| {
                            values[k]
                                * (std::f64::consts::PI * j as f64 * (k as f64 + 0.5) / n as f64)
                                    .cos()
                        })
                        .sum();
                    sum * 2.0 / n as f64 * if j == 0 { 0.5 } else { 1.0 }
                })
                .collect();
            let candidate = Interpolant {
                lo,
                hi,
                coefficients,
            };
            // Check between the nodes and at both ends.
            let accurate = (0..n - 1)
                .map(|k| 0.5 * (node(k) + node(k + 1)))
                .chain([lo, hi])
                .all(|x| {
                    let exact = f(x);
                    (candidate.eval(x) - exact).abs() <= tolerance * exact.abs()
                });
            if accurate {
                return Some(candidate);
            }
        }
        None
    }

    /// The interpolant at `x` (Clenshaw's recurrence).
    #[inline]
    pub fn eval(&self, x: f64) -> f64 {
        let u = (2.0 * x - self.lo - self.hi) / (self.hi - self.lo);
        let (mut b1, mut b2) = (0.0, 0.0);
        for &c in self.coefficients[1..].iter().rev() {
            let b0 = 2.0 * u * b1 - b2 + c;
            b2 = b1;
            b1 = b0;
        }
        u * b1 - b2 + self.coefficients[0]
    }

    /// Whether `x` lies in the interval the interpolant was built for.
    pub fn covers(&self, x: f64) -> bool {
        x >= self.lo && x <= self.hi
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interpolates_smooth_functions_to_tolerance() {
        let f = |x: f64| (1.0 + x).ln() / (2.0 + x);
        let p = Interpolant::fit(f, 26.0, 78.0, 1e-13).expect("smooth function");
        for i in 0..=1000 {
            let x = 26.0 + 52.0 * i as f64 / 1000.0;
            assert!((p.eval(x) / f(x) - 1.0).abs() < 2e-13, "{x}");
        }
    }

    #[test]
    fn refuses_what_it_cannot_represent() {
        // A pole just outside the interval defeats degree 64 at this tolerance.
        assert!(Interpolant::fit(|x| 1.0 / (x + 1e-9), 0.0, 1.0, 1e-13).is_none());
        assert!(Interpolant::fit(|x| x, 1.0, 1.0, 1e-13).is_none());
    }
}
