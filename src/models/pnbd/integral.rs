//! One customer's Pareto/NBD likelihood over [`Dual`] numbers (exact gradient, or plain values
//! for predictions): the integral `I` of the module documentation of [`super`] by a series of
//! positive terms, with adaptive quadrature where the series would converge slowly.

use super::ParetoNbdParams;
use crate::dual::Dual;
use crate::quadrature::integrate;

/// The series is used where `z` is at most this (its terms shrink at least as fast as `z^k`)...
pub(super) const SERIES_MAX_Z: f64 = 0.75;
/// The dual-free series of [`row_fast`] serves rows up to this `z`: its terms are a few
/// multiplications each (the dual series needs an `exp_m1` per term), so it stays cheaper than
/// quadrature with dual numbers much further out (about 700 terms at `z = 0.95`; all terms are
/// positive, so the sum loses no accuracy).
pub(super) const FAST_SERIES_MAX_Z: f64 = 0.95;
/// ... and where its terms peak early: they grow while `k < z (e - 1) / (1 - z)`, so `z` is
/// also kept below `SERIES_MAX_PEAK / (SERIES_MAX_PEAK + e)`. This bounds the number of terms
/// and keeps the largest term below `e^SERIES_MAX_PEAK` (no overflow for huge `e = r + x`).
pub(super) const SERIES_MAX_PEAK: f64 = 100.0;
/// Relative size of the neglected tail of the series.
pub(super) const SERIES_TOLERANCE: f64 = 1e-17;
/// ... and of its second derivatives' series (the Hessian serves Newton steps and the
/// covariance, which need far fewer digits than the line search's comparisons of values).
pub(super) const HESSIAN_SERIES_TOLERANCE: f64 = 1e-12;
/// Safety cap on series terms (never reached for `z <= SERIES_MAX_Z`).
pub(super) const SERIES_MAX_TERMS: usize = 100_000;
/// Relative accuracy of the quadrature stretch.
const QUADRATURE_TOLERANCE: f64 = 1e-13;
const QUADRATURE_MAX_INTERVALS: usize = 300;

/// `ln[alpha^r beta^s (alpha+T)^-(r+x) (beta+T)^-s]` and `ln(alpha^r beta^s I)` (see the module
/// documentation); the second is `-inf` when `t_x = T`. `series_max_z` chooses where the series
/// takes over from quadrature.
///
/// `alpha^r beta^s` is folded into each term as `(1 + tau/alpha)^-r (1 + tau/beta)^-s` (with
/// `ln_1p`), so nothing large cancels when `r ln alpha` or `s ln beta` is huge: at `r = alpha =
/// 1e15` (the gamma-to-Poisson limit a fit on homogeneous data runs to) the separate terms are
/// about `3e16` and their difference, the answer, would be lost to rounding.
pub(super) fn ln_terms<const N: usize>(
    [r, alpha, s, beta]: [Dual<N>; 4],
    x: f64,
    t_x: f64,
    age: f64,
    series_max_z: f64,
) -> (Dual<N>, Dual<N>) {
    let rx = r + x;
    let ln_alive = -(r * (Dual::constant(age) / alpha).ln_1p())
        - (alpha + age).ln() * x
        - s * (Dual::constant(age) / beta).ln_1p();
    let mut ln_integral = Dual::constant(f64::NEG_INFINITY);
    if !(age > t_x) {
        return (ln_alive, ln_integral);
    }
    // Expand the factor of the smaller rate scale; `e` is its exponent.
    let (big, small, e) = if alpha.v >= beta.v {
        (alpha, beta, s + 1.0)
    } else {
        (beta, alpha, rx)
    };
    let gap = big - small;
    // z(tau) = gap / (big + tau) falls to z_max at tau = gap / z_max - big.
    let z_max = series_max_z.min(SERIES_MAX_PEAK / (SERIES_MAX_PEAK + e.v));
    let series_from = if gap.v == 0.0 {
        t_x
    } else {
        (gap.v / z_max - big.v).max(t_x)
    };
    if series_from > t_x {
        let upto = series_from.min(age);
        let part =
            ln_integral_by_quadrature([r, Dual::constant(x), alpha, s, beta], t_x, upto, small.v);
        ln_integral = ln_integral.log_add_exp(part);
    }
    if series_from < age {
        let m = rx + s;
        // -m ln(big + from) + r ln alpha + s ln beta, with `(small + gap + from) / small` for
        // the smaller scale's ratio.
        let base = big + series_from;
        let to_small = ((gap + series_from) / small).ln_1p();
        let to_big = (Dual::constant(series_from) / big).ln_1p();
        let (to_alpha, to_beta) = if alpha.v >= beta.v {
            (to_big, to_small)
        } else {
            (to_small, to_big)
        };
        let anchor = -(r * to_alpha) - base.ln() * x - s * to_beta;
        let part = anchor + ln_integral_by_series(big, gap, e, m, series_from, age);
        ln_integral = ln_integral.log_add_exp(part);
    }
    (ln_alive, ln_integral)
}

/// `ln integral_{from}^{to} (big+tau)^-(m+1) (1 - gap/(big+tau))^-e dtau` by the series, less
/// `-m ln(big + from)` (the caller adds it, anchored: see [`ln_terms`]).
fn ln_integral_by_series<const N: usize>(
    big: Dual<N>,
    gap: Dual<N>,
    e: Dual<N>,
    m: Dual<N>,
    from: f64,
    to: f64,
) -> Dual<N> {
    let base = big + from;
    let z = gap / base;
    // ln rho = ln((big+from) / (big+to)), as ln_1p of the relative gap.
    let ln_rho = -(Dual::constant(to - from) / base).ln_1p();
    let mut sum = Dual::constant(0.0);
    // (e)_k / k! z^k
    let mut coefficient = Dual::constant(1.0);
    for k in 0..SERIES_MAX_TERMS {
        let kf = k as f64;
        let mk = m + kf;
        let term = coefficient * -(mk * ln_rho).exp_m1() / mk;
        sum += term;
        // Later term ratios are at most q = z max(1, (e+k+1)/(k+2)) (the other factors shrink),
        // so once q < 1 the tail is below term q / (1 - q); derivatives carry an extra factor
        // of about k.
        // (At z = 0 the k = 1 term is 0 but its gradient is not, hence k >= 1.)
        let q = z.v * ((e.v + kf + 1.0) / (kf + 2.0)).max(1.0);
        if k >= 1 && q < 1.0 {
            let tail = q / (1.0 - q);
            let value_done = term.v.abs() * tail <= SERIES_TOLERANCE * sum.v.abs();
            let slope_done = term.max_abs_derivative() * tail * (kf + 2.0)
                <= SERIES_TOLERANCE * (sum.max_abs_derivative() + sum.v.abs());
            if value_done && slope_done {
                break;
            }
        }
        coefficient = coefficient * (e + kf) * z / (kf + 1.0);
    }
    sum.ln()
}

/// `ln alpha^r beta^s integral_{from}^{to} (alpha+tau)^-(r+x) (beta+tau)^-(s+1) dtau` by
/// adaptive quadrature in `u = ln(small + tau)`, which spreads out the region where the smaller
/// scale dominates (`alpha^r beta^s` folded in as in [`ln_terms`]).
fn ln_integral_by_quadrature<const N: usize>(
    [r, x, alpha, s, beta]: [Dual<N>; 5],
    from: f64,
    to: f64,
    small: f64,
) -> Dual<N> {
    let (a0, b0) = (alpha + from, beta + from);
    let rx = r + x;
    let s1 = s + 1.0;
    // Relative to the integrand at `from` (its maximum), so nothing under- or overflows. The
    // variable is `u = ln((small + tau) / c)`, `c = small + from`, so `tau - from = c expm1(u)`
    // keeps full precision also when `small + from` is large next to `to - from` (huge scales,
    // where `ln(small + tau)` barely moves and the difference of exponentials would cancel).
    let c = small + from;
    let integrand = |u: f64| {
        let d = Dual::constant(c * u.exp_m1());
        (-(rx * (d / a0).ln_1p()) - s1 * (d / b0).ln_1p()).exp() * u.exp()
    };
    // The exponent phi(u) (the integrand is exp(u - phi(u))) is convex in u with slope
    // E = c (rx/a0 + s1/b0) at 0, so the integrand is below exp(-(E-1) u) and the integral
    // beyond u0 below exp(-(E-1) u0) / (E-1). For huge exponents (extreme parameters only: E
    // is about 1 to 100 in the normal region) the integrand falls within a vanishing stretch:
    // past `E = e^40` the integral is 1/E to below rounding (Laplace: the next term is at most
    // 1/E relative), and otherwise the range stops where the tail is below e^-100 of it.
    // (When the range is shorter than e^4/E, it is integrated as it is.)
    let ln_slope = (rx.ln() - a0.ln()).log_add_exp(s1.ln() - b0.ln()) + c.ln();
    let mut upper = ((to - from) / c).ln_1p();
    let ln_q = if ln_slope.v > 40.0 && ln_slope.v + upper.ln() > 4.0 {
        -ln_slope
    } else {
        let slope = ln_slope.v.exp();
        if slope > 2.0 {
            upper = upper.min(100.0 / (slope - 1.0));
        }
        integrate(
            integrand,
            0.0,
            upper,
            QUADRATURE_TOLERANCE,
            QUADRATURE_MAX_INTERVALS,
        )
        .value
        .ln()
    };
    let from = Dual::constant(from);
    -(r * (from / alpha).ln_1p()) - x * a0.ln() - s * (from / beta).ln_1p() - b0.ln()
        + c.ln()
        + ln_q
}

/// Log-likelihood of one customer, with its gradient when `N = 4`.
pub(super) fn row_log_likelihood<const N: usize>(
    p: [Dual<N>; 4],
    x: f64,
    t_x: f64,
    age: f64,
) -> Dual<N> {
    let [r, _, s, _] = p;
    let (ln_alive, ln_integral) = ln_terms(p, x, t_x, age, SERIES_MAX_Z);
    r.ln_gamma_ratio(x) + ln_alive.log_add_exp(s.ln() + ln_integral)
}

/// Log-likelihood of one customer.
pub fn log_likelihood(p: &ParetoNbdParams, x: f64, t_x: f64, age: f64) -> f64 {
    row_log_likelihood::<0>(p.duals(), x, t_x, age).v
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fit::Likelihood;
    use crate::models::pnbd::testing::{parameter_grid, ROWS};
    use crate::models::pnbd::ParetoNbd;
    use crate::models::testing::{assert_gradient_matches, cdnow};
    use crate::parallel::Exec;

    #[test]
    fn series_and_quadrature_agree_everywhere() {
        for p in parameter_grid() {
            for &(x, t_x, age) in &ROWS {
                let mixed = ln_terms::<4>(p.duals(), x, t_x, age, SERIES_MAX_Z).1;
                // Quadrature over the whole interval (the series never takes over).
                let quad = ln_terms::<4>(p.duals(), x, t_x, age, 1e-300).1;
                if mixed.v == f64::NEG_INFINITY {
                    assert_eq!(quad.v, f64::NEG_INFINITY);
                    continue;
                }
                assert!(
                    (mixed.v - quad.v).abs() < 1e-11 * mixed.v.abs().max(1.0),
                    "{p:?} {x} {t_x} {age}: {} vs {}",
                    mixed.v,
                    quad.v
                );
                // And the series as far as its terms stay bounded.
                let series = ln_terms::<4>(p.duals(), x, t_x, age, 0.95).1;
                assert!((mixed.v - series.v).abs() < 1e-11 * mixed.v.abs().max(1.0));
            }
        }
    }

    #[test]
    fn gradient_is_exact() {
        let data = cdnow();
        let lik = ParetoNbd::new(&data);
        for at in [
            [0.55, 10.5, 0.6, 11.7],
            [0.55, 10.5, 0.6, 10.5],
            [2.0, 1.0, 0.3, 50.0],
            [0.3, 40.0, 3.0, 0.5],
        ] {
            let (_, gradient) = lik.loglik_and_gradient(&at, &Exec::Serial);
            let value = |p: &[f64]| lik.loglik_and_gradient(p, &Exec::Serial).0;
            // Central differences of a sum of 2,357 rows carry ~1e-6 relative rounding noise.
            assert_gradient_matches(value, &gradient, &at, 1e-5);
        }
        // Rows with the extremes, one at a time.
        for p in parameter_grid() {
            let at = [p.r, p.alpha, p.s, p.beta];
            for &(x, t_x, age) in &ROWS {
                let duals: [Dual<4>; 4] = std::array::from_fn(|i| Dual::variable(at[i], i));
                let ll = row_log_likelihood(duals, x, t_x, age);
                let value = |q: &[f64]| {
                    log_likelihood(&ParetoNbdParams::new(q[0], q[1], q[2], q[3]), x, t_x, age)
                };
                assert_gradient_matches(value, &ll.d, &at, 1e-5);
            }
        }
    }
}
