//! Predictions shared by the models in which an active customer buys at a Poisson rate
//! `lambda ~ Gamma(r, alpha)` and the lifetime is independent of that rate (Pareto/NBD,
//! GGompertz/NBD). Given a lifetime distribution (survival `S`, density `f`), the purchase
//! count in `(0, t]` is negative binomial up to the end of the lifetime:
//!
//! ```text
//! P(N = n)  = NB(n; r, alpha, t) S(t) + integral_0^t f(u) NB(n; r, alpha, u) du
//! E[N]      = r/alpha * integral_0^t S(u) du
//! DE        = r/alpha * integral_0^inf exp(-delta u) S(u) du     (continuous discounting)
//! ```
//!
//! For a customer with a history, the same formulas apply to the posterior: `lambda ~
//! Gamma(r + x, alpha + T)` and the lifetime remaining after `T` given survival to `T`, times
//! P(alive). The integrals use adaptive Gauss-Kronrod quadrature to [`TOLERANCE`].

use crate::quadrature::{integrate_from_start, integrate_to_infinity};
use crate::special::ln_negative_binomial_pmf;

/// Relative accuracy asked of the quadratures.
pub const TOLERANCE: f64 = 1e-12;
/// Interval budget of the quadratures.
const MAX_INTERVALS: usize = 500;

/// A lifetime distribution, measured from now.
pub trait Lifetime {
    /// `P(lifetime > u)` for `u >= 0`.
    fn survival(&self, u: f64) -> f64;
    /// `-dS/du`.
    fn density(&self, u: f64) -> f64;

    /// The time scale of the lifetime's start, `1 / hazard(0)`: where a quickly ending
    /// lifetime puts its mass (quadratures start with panels of this width).
    fn scale(&self) -> f64 {
        self.survival(0.0) / self.density(0.0)
    }
}

/// P(N(u) = n) for a Poisson count with a `Gamma(r, alpha)` rate over `u`.
fn negative_binomial(r: f64, alpha: f64, n: f64, u: f64) -> f64 {
    if !(u > 0.0) {
        return if n == 0.0 { 1.0 } else { 0.0 };
    }
    let ln_w = (u / (alpha + u)).ln();
    let ln_1mw = -(u / alpha).ln_1p();
    ln_negative_binomial_pmf(r, n, ln_w, ln_1mw).exp()
}

/// P(n purchases in (0, t]).
pub fn count_probability(r: f64, alpha: f64, n: u64, t: f64, lifetime: &impl Lifetime) -> f64 {
    let nf = n as f64;
    if !(t > 0.0) {
        return if n == 0 { 1.0 } else { 0.0 };
    }
    let alive_throughout = negative_binomial(r, alpha, nf, t) * lifetime.survival(t);
    let ended = integrate_from_start(
        |u| lifetime.density(u) * negative_binomial(r, alpha, nf, u),
        0.0,
        t,
        lifetime.scale(),
        TOLERANCE,
        MAX_INTERVALS,
    );
    (alive_throughout + ended.value).clamp(0.0, 1.0)
}

/// Expected purchases in (0, t].
pub fn expected_purchases(r: f64, alpha: f64, t: f64, lifetime: &impl Lifetime) -> f64 {
    if !(t > 0.0) {
        return 0.0;
    }
    let q = integrate_from_start(
        |u| lifetime.survival(u),
        0.0,
        t,
        lifetime.scale(),
        TOLERANCE,
        MAX_INTERVALS,
    );
    r / alpha * q.value
}

/// Expected purchases from now on, discounted continuously at `delta` per unit of time; `scale`
/// is the lifetime's natural time scale (the quadrature's change of variable is scaled by the
/// shorter of it and `1 / delta`).
pub fn discounted_expected_purchases(
    r: f64,
    alpha: f64,
    delta: f64,
    scale: f64,
    lifetime: &impl Lifetime,
) -> f64 {
    let length = (1.0 / delta).min(scale).max(f64::MIN_POSITIVE);
    let q = integrate_to_infinity(
        |w| {
            let u = length * w;
            (-delta * u).exp() * lifetime.survival(u)
        },
        0.0,
        TOLERANCE,
        MAX_INTERVALS,
    );
    r / alpha * length * q.value
}
