//! Pareto/NBD: Schmittlein, Morrison & Colombo (1987), "Counting Your Customers: Who Are They
//! and What Will They Do Next?", Management Science 33(1), 1-24; likelihood and predictions as
//! derived in Fader & Hardie's notes 009 (likelihood), 015 (DERT), 027/028 (P(X(t) = x)).
//!
//! While active, a customer buys at Poisson rate `lambda ~ Gamma(r, alpha)`; the lifetime is
//! exponential with rate `mu ~ Gamma(s, beta)`, independent of `lambda`. For a customer with `x`
//! repeat purchases, the last at `t_x`, observed for `T`:
//!
//! ```text
//! L = Gamma(r+x) alpha^r beta^s / Gamma(r)
//!     * [ (alpha+T)^-(r+x) (beta+T)^-s  +  s * I ],
//! I = integral_{t_x}^{T} (alpha+tau)^-(r+x) (beta+tau)^-(s+1) dtau
//! ```
//!
//! (alive at T, or gone at some tau in (t_x, T]). The classic closed form writes `I` with
//! Gaussian hypergeometric functions whose argument depends on which of alpha and beta is larger
//! (note 009); the peers evaluate it as a difference of two such terms, which cancels when
//! `t_x` is close to `T` and overflows for large `x`. Here `I` is computed directly, in log form:
//!
//! - expanding the factor of the smaller of alpha, beta around the larger one,
//!   `(small+tau) = (big+tau)(1 - z)` with `z = (big-small)/(big+tau)`, gives a series of
//!   positive terms `sum_k (e)_k/k! z0^k (1 - rho^(m+k)) / (m+k)` times `(big+t0)^-m`, where
//!   `1 - rho^(m+k)` is evaluated with `expm1` (no cancellation when `t_x` is near `T`);
//! - where `z > 0.75` (one rate scale much larger than the other, early in the interval) the
//!   series would converge slowly, so that stretch is integrated by adaptive Gauss-Kronrod
//!   quadrature in `ln(small + tau)` instead.
//!
//! The function is written over [`Dual`] numbers, so the gradient is exact (analytic) and the
//! same code gives plain values for predictions. `alpha = beta` is the series' first term, and
//! `t_x = T` gives `I = 0`.

use super::lifetime::{self, Lifetime};
use super::RfmModel;
use crate::data::Rfm;
use crate::dual::Dual;
use crate::error::Result;
use crate::fit::{
    check_params, fit, fit_with_warm_start, Domain, FitOptions, FitResult, FusedPass, Likelihood,
    ParamSpec,
};
use crate::parallel::Exec;
use crate::quadrature::integrate;
use crate::special::{logistic, trigamma, RisingTerms};

/// Parameter names and domains: r, alpha (purchase rate), s, beta (dropout rate).
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
        name: "s",
        domain: Domain::Positive,
    },
    ParamSpec {
        name: "beta",
        domain: Domain::Positive,
    },
];

/// Pareto/NBD parameters.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ParetoNbdParams {
    pub r: f64,
    pub alpha: f64,
    pub s: f64,
    pub beta: f64,
}

impl ParetoNbdParams {
    pub const fn new(r: f64, alpha: f64, s: f64, beta: f64) -> Self {
        ParetoNbdParams { r, alpha, s, beta }
    }

    fn duals<const N: usize>(&self) -> [Dual<N>; 4] {
        [self.r, self.alpha, self.s, self.beta].map(Dual::constant)
    }
}

/// The series is used where `z` is at most this (its terms shrink at least as fast as `z^k`)...
const SERIES_MAX_Z: f64 = 0.75;
/// The dual-free series of [`row_fast`] serves rows up to this `z`: its terms are a few
/// multiplications each (the dual series needs an `exp_m1` per term), so it stays cheaper than
/// quadrature with dual numbers much further out (about 700 terms at `z = 0.95`; all terms are
/// positive, so the sum loses no accuracy).
const FAST_SERIES_MAX_Z: f64 = 0.95;
/// ... and where its terms peak early: they grow while `k < z (e - 1) / (1 - z)`, so `z` is
/// also kept below `SERIES_MAX_PEAK / (SERIES_MAX_PEAK + e)`. This bounds the number of terms
/// and keeps the largest term below `e^SERIES_MAX_PEAK` (no overflow for huge `e = r + x`).
const SERIES_MAX_PEAK: f64 = 100.0;
/// Relative size of the neglected tail of the series.
const SERIES_TOLERANCE: f64 = 1e-17;
/// ... and of its second derivatives' series (the Hessian serves Newton steps and the
/// covariance, which need far fewer digits than the line search's comparisons of values).
const HESSIAN_SERIES_TOLERANCE: f64 = 1e-12;
/// Safety cap on series terms (never reached for `z <= SERIES_MAX_Z`).
const SERIES_MAX_TERMS: usize = 100_000;
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
fn ln_terms<const N: usize>(
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

/// Per-evaluation constants of [`row_fast`].
struct FastParams {
    r: f64,
    alpha: f64,
    s: f64,
    beta: f64,
    ln_alpha: f64,
    ln_beta: f64,
    ln_s: f64,
    /// Whether `r ln alpha` or `s ln beta` is so large that [`row_fast`]'s separate terms
    /// would lose the answer to rounding (see [`EXTREME_ANCHOR`]).
    extreme: bool,
}

/// Above this `r |ln alpha| + s |ln beta|` (rounding of about `1e-11` in a row's
/// log-likelihood) rows go to the dual path, whose [`ln_terms`] fold `alpha^r beta^s` in without
/// cancellation. Only parameters far outside the normal region (the gamma-to-Poisson limits a
/// fit on nearly homogeneous data runs towards, or model files) take that branch; the normal
/// region pays one predictable branch per row for it.
const EXTREME_ANCHOR: f64 = 1e5;

impl FastParams {
    fn new(params: &[f64]) -> Self {
        FastParams {
            r: params[0],
            alpha: params[1],
            s: params[2],
            beta: params[3],
            ln_alpha: params[1].ln(),
            ln_beta: params[3].ln(),
            ln_s: params[2].ln(),
            extreme: !(params[0] * params[1].ln().abs() + params[2] * params[3].ln().abs()
                <= EXTREME_ANCHOR),
        }
    }
}

/// A row's log-likelihood with its gradient and (upper-triangle) Hessian in (r, alpha, s, beta).
type RowDerivatives = (f64, [f64; 4], [[f64; 4]; 4]);

/// Log-likelihood of one customer with its gradient, and its Hessian when `SECOND`, in
/// (r, alpha, s, beta), without dual numbers, for rows whose integral is served by the series
/// alone (None otherwise; the caller then uses [`row_log_likelihood`]). `gamma_terms` is
/// `(ln Gamma(r+x) - ln Gamma(r), psi(r+x) - psi(r), psi'(r+x) - psi'(r))`.
///
/// The series is `S = sum_k W_k F_k` with `W_k = (e)_k z^k / k!` and
/// `F_k = (1 - R_k) / (m+k)`, `R_k = exp((m+k) lambda)`, `lambda = ln rho`. Its partial
/// derivatives in `(m, e, z, lambda)` are sums of the same terms with the closed-form partials of
/// `W` (`W_e = W H1`, `W_ee = W (H1^2 - H2)` with `H1, H2` the sums of `1/(e+j)`, `1/(e+j)^2`
/// over `j < k`; `W_z = k W / z`, `W_zz = k (k-1) W / z^2`, carried without dividing by z) and of
/// `F` (`F_m = -R lambda/n - (1-R)/n^2`, `F_lambda = -R`, ...), accumulated in one pass and
/// mapped to the natural parameters by the chain rule through `z = (big - small)/(big + t_x)` and
/// `lambda = -ln(1 + (T - t_x)/(big + t_x))`. `1 - R_k` is carried as a running sum of positive
/// terms, so it keeps full precision when `t_x` is close to `T`.
#[inline]
fn row_fast<const SECOND: bool>(
    p: &FastParams,
    gamma_terms: (f64, f64, f64),
    x: f64,
    t_x: f64,
    age: f64,
) -> Option<RowDerivatives> {
    if p.extreme {
        return None;
    }
    let (r, alpha, s, beta) = (p.r, p.alpha, p.s, p.beta);
    let rx = r + x;
    let (at, bt) = (alpha + age, beta + age);
    let ln_alive = -rx * at.ln() - s * bt.ln();
    let d_alive = [-at.ln(), -rx / at, -bt.ln(), -s / bt];
    let constant = gamma_terms.0 + r * p.ln_alpha + s * p.ln_beta;
    let d_constant = [gamma_terms.1 + p.ln_alpha, r / alpha, p.ln_beta, s / beta];
    // Second derivatives of the constant and alive terms (upper triangle).
    let mut hessian = [[0.0; 4]; 4];
    if SECOND {
        hessian[0][0] = gamma_terms.2;
        hessian[0][1] = 1.0 / alpha;
        hessian[1][1] = -r / (alpha * alpha);
        hessian[2][3] = 1.0 / beta;
        hessian[3][3] = -s / (beta * beta);
    }
    let mut h_alive = [[0.0; 4]; 4];
    if SECOND {
        h_alive[0][1] = -1.0 / at;
        h_alive[1][1] = rx / (at * at);
        h_alive[2][3] = -1.0 / bt;
        h_alive[3][3] = s / (bt * bt);
    }
    if !(age > t_x) {
        let g = std::array::from_fn(|j| d_constant[j] + d_alive[j]);
        for i in 0..4 {
            for j in i..4 {
                hessian[i][j] += h_alive[i][j];
            }
        }
        return Some((constant + ln_alive, g, hessian));
    }
    let alpha_big = alpha >= beta;
    let (big, small, e) = if alpha_big {
        (alpha, beta, s + 1.0)
    } else {
        (beta, alpha, rx)
    };
    let base = big + t_x;
    let gap = big - small;
    let z = gap / base;
    let z_max = FAST_SERIES_MAX_Z.min(SERIES_MAX_PEAK / (SERIES_MAX_PEAK + e));
    if z > z_max {
        return None;
    }
    let m = rx + s;
    let delta = age - t_x;
    let rel_gap = delta / base;
    let lambda = -rel_gap.ln_1p();
    // rho = base / (big + T) and 1 - rho, exactly, without exp.
    let rho = 1.0 / (1.0 + rel_gap);
    let one_minus_rho = rel_gap * rho;
    // Running quantities at k: W_k, W_{k-1} (e+k-1) = k W_k / z, W_{k-2} (e+k-2)(e+k-1) =
    // k (k-1) W_k / z^2, R_k, 1 - R_k, H1, H2.
    let (mut w, mut wz, mut wzz) = (1.0, 0.0, 0.0);
    let mut big_r = (m * lambda).exp();
    let mut one_minus_r = -(m * lambda).exp_m1();
    let (mut h1, mut h2) = (0.0, 0.0);
    // Sums: S, first partials (m, e, z, lambda), second partials.
    let mut sum = 0.0;
    let mut d1 = [0.0; 4];
    let mut d2 = [[0.0; 4]; 4];
    // The sum and first partials where the first-order rule stops (the second-order sums need
    // more terms): the value and gradient are taken from them, so they have the bits of a
    // `::<false>` call (a fused pass must return exactly a gradient pass's value and gradient).
    let mut first_order: Option<(f64, [f64; 4])> = None;
    let mut k = 0.0f64;
    loop {
        let n = m + k;
        let inv = 1.0 / n;
        let f = one_minus_r * inv;
        let f_m = -big_r * lambda * inv - one_minus_r * inv * inv;
        let f_l = -big_r;
        let c = w * f;
        sum += c;
        d1[0] += w * f_m;
        d1[1] += w * h1 * f;
        d1[2] += wz * f;
        d1[3] += w * f_l;
        if SECOND {
            let f_mm = -big_r * lambda * lambda * inv
                + 2.0 * big_r * lambda * inv * inv
                + 2.0 * one_minus_r * inv * inv * inv;
            let f_ml = -big_r * lambda;
            let f_ll = -n * big_r;
            let w_e = w * h1;
            d2[0][0] += w * f_mm;
            d2[0][1] += w_e * f_m;
            d2[0][2] += wz * f_m;
            d2[0][3] += w * f_ml;
            d2[1][1] += w * (h1 * h1 - h2) * f;
            d2[1][2] += wz * h1 * f;
            d2[1][3] += w_e * f_l;
            d2[2][2] += wzz * f;
            d2[2][3] += wz * f_l;
            d2[3][3] += w * f_ll;
        }
        // Later term ratios are at most q (see ln_integral_by_series); derivative sums carry
        // extra factors of about k (k^2 for the second). The partials in z carry 1/z (1/z^2
        // for the second): their terms at k = 1 (k = 2) do not vanish as z -> 0 while `c`
        // does, so the first-order rule looks from k = 2 on and the second-order from k = 3,
        // and both compare the z terms with their own sums.
        // With q = z M / b (M = max(e + k + 1, b), b = k + 2), the tail bound q / (1 - q) b is
        // z M b / (b - z M): compared without dividing (a division here would stall every
        // term's test).
        let b = k + 2.0;
        let zm = z * (e + k + 1.0).max(b);
        let slack = b - zm;
        if k >= 2.0 && slack > 0.0 {
            let tail = zm * b;
            // The terms of the partials in z carry 1/z (k W / z): they do not shrink with `c`
            // as z -> 0, so they are held to their own sums.
            let done = |tail: f64, tolerance: f64| {
                c * tail <= tolerance * sum * slack
                    && w * big_r * tail <= tolerance * -d1[3] * slack
                    && wz * f * tail <= tolerance * d1[2] * slack
            };
            if first_order.is_none() && done(tail, SERIES_TOLERANCE) {
                if !SECOND {
                    break;
                }
                first_order = Some((sum, d1));
            }
            // Once the value and gradient are done, the second-order sums to their own
            // tolerance.
            let tail_second = tail * b * (1.0 + n * lambda.abs());
            let second_done = || {
                let tolerance = HESSIAN_SERIES_TOLERANCE * slack;
                done(tail_second, HESSIAN_SERIES_TOLERANCE)
                    && wzz * f * tail_second <= tolerance * d2[2][2]
                    && wz * big_r * tail_second <= tolerance * -d2[2][3]
            };
            if SECOND && k >= 3.0 && first_order.is_some() && second_done() {
                break;
            }
        }
        if k >= SERIES_MAX_TERMS as f64 {
            return None;
        }
        // Step to k + 1.
        wzz = wz * (e + k);
        wz = w * (e + k);
        w *= (e + k) * z / (k + 1.0);
        let inv_e = 1.0 / (e + k);
        h1 += inv_e;
        if SECOND {
            h2 += inv_e * inv_e;
        }
        one_minus_r += big_r * one_minus_rho;
        big_r *= rho;
        k += 1.0;
    }
    let (sum, d1) = first_order.unwrap_or((sum, d1));
    // ln S in v = (m, e, z, lambda): gradient g and Hessian.
    let g: [f64; 4] = std::array::from_fn(|i| d1[i] / sum);
    // v as functions of phi = (m, e, big, small).
    let big_t = base + delta; // big + T
    let z_big = (small + t_x) / (base * base);
    let z_small = -1.0 / base;
    let l_big = delta / (base * big_t);
    let ln_base = base.ln();
    let ln_integral = -m * ln_base + sum.ln();
    let phi_grad = [
        -ln_base + g[0],
        g[1],
        -m / base + g[2] * z_big + g[3] * l_big,
        g[2] * z_small,
    ];
    let mut phi_hess = [[0.0; 4]; 4];
    if SECOND {
        let h = |i: usize, j: usize| {
            let (a, b) = if i <= j { (i, j) } else { (j, i) };
            d2[a][b] / sum - g[a] * g[b]
        };
        let z_bb = -2.0 * (small + t_x) / (base * base * base);
        let z_bs = 1.0 / (base * base);
        let l_bb = -1.0 / (base * base) + 1.0 / (big_t * big_t);
        phi_hess[0][0] = h(0, 0);
        phi_hess[0][1] = h(0, 1);
        phi_hess[0][2] = -1.0 / base + h(0, 2) * z_big + h(0, 3) * l_big;
        phi_hess[0][3] = h(0, 2) * z_small;
        phi_hess[1][1] = h(1, 1);
        phi_hess[1][2] = h(1, 2) * z_big + h(1, 3) * l_big;
        phi_hess[1][3] = h(1, 2) * z_small;
        phi_hess[2][2] = m / (base * base)
            + h(2, 2) * z_big * z_big
            + 2.0 * h(2, 3) * z_big * l_big
            + h(3, 3) * l_big * l_big
            + g[2] * z_bb
            + g[3] * l_bb;
        phi_hess[2][3] = h(2, 2) * z_big * z_small + h(2, 3) * z_small * l_big + g[2] * z_bs;
        phi_hess[3][3] = h(2, 2) * z_small * z_small;
    }
    // phi in terms of theta = (r, alpha, s, beta): m = r + s + x; e = s + 1 (alpha >= beta) or
    // r + x; (big, small) = (alpha, beta) or (beta, alpha).
    let (e_of, big_of, small_of) = if alpha_big { (2, 1, 3) } else { (0, 3, 1) };
    // d phi_a / d theta_i (0 or 1).
    let mut jac = [[0.0; 4]; 4];
    jac[0][0] = 1.0;
    jac[0][2] = 1.0;
    jac[1][e_of] = 1.0;
    jac[2][big_of] = 1.0;
    jac[3][small_of] = 1.0;
    let d_integral: [f64; 4] =
        std::array::from_fn(|i| (0..4).map(|a| jac[a][i] * phi_grad[a]).sum());
    let mut h_integral = [[0.0; 4]; 4];
    if SECOND {
        let full = |a: usize, b: usize| {
            if a <= b {
                phi_hess[a][b]
            } else {
                phi_hess[b][a]
            }
        };
        for i in 0..4 {
            for j in i..4 {
                let mut v = 0.0;
                for a in 0..4 {
                    for b in 0..4 {
                        v += jac[a][i] * jac[b][j] * full(a, b);
                    }
                }
                h_integral[i][j] = v;
            }
        }
    }
    // ln L = constant + log_add_exp(ln_alive, ln s + ln I).
    let gone = p.ln_s + ln_integral;
    let (hi, lo) = if ln_alive >= gone {
        (ln_alive, gone)
    } else {
        (gone, ln_alive)
    };
    // Shares of the two branches: 1 / (1 + e) and e / (1 + e) with e = exp(lo - hi).
    let ratio = (lo - hi).exp();
    let bracket = hi + ratio.ln_1p();
    let (w_hi, w_lo) = (1.0 / (1.0 + ratio), ratio / (1.0 + ratio));
    let (w_alive, w_gone) = if ln_alive >= gone {
        (w_hi, w_lo)
    } else {
        (w_lo, w_hi)
    };
    let mut d_gone = d_integral;
    d_gone[2] += 1.0 / s;
    let mut gradient = [0.0; 4];
    for j in 0..4 {
        gradient[j] = d_constant[j] + w_alive * d_alive[j] + w_gone * d_gone[j];
    }
    if SECOND {
        for i in 0..4 {
            for j in i..4 {
                let mut h_gone = h_integral[i][j];
                if i == 2 && j == 2 {
                    h_gone -= 1.0 / (s * s);
                }
                let diff = (d_alive[i] - d_gone[i]) * (d_alive[j] - d_gone[j]);
                hessian[i][j] +=
                    w_alive * h_alive[i][j] + w_gone * h_gone + w_alive * w_gone * diff;
            }
        }
    }
    Some((constant + bracket, gradient, hessian))
}

/// Log-likelihood of one customer, with its gradient when `N = 4`.
fn row_log_likelihood<const N: usize>(p: [Dual<N>; 4], x: f64, t_x: f64, age: f64) -> Dual<N> {
    let [r, _, s, _] = p;
    let (ln_alive, ln_integral) = ln_terms(p, x, t_x, age, SERIES_MAX_Z);
    r.ln_gamma_ratio(x) + ln_alive.log_add_exp(s.ln() + ln_integral)
}

/// Log-likelihood of one customer.
pub fn log_likelihood(p: &ParetoNbdParams, x: f64, t_x: f64, age: f64) -> f64 {
    row_log_likelihood::<0>(p.duals(), x, t_x, age).v
}

/// P(alive at T): the alive term's share of the likelihood bracket.
pub fn probability_alive(p: &ParetoNbdParams, x: f64, t_x: f64, age: f64) -> f64 {
    let (ln_alive, ln_integral) = ln_terms::<0>(p.duals(), x, t_x, age, SERIES_MAX_Z);
    if ln_integral.v == f64::NEG_INFINITY {
        return 1.0;
    }
    logistic(ln_alive.v - p.s.ln() - ln_integral.v)
}

/// `integral_0^t (b / (b + u))^s du / b = (1 - (1 + t/b)^(1-s)) / (s - 1)`, continuous through
/// `s = 1` (where it is `ln(1 + t/b)`): `expm1` keeps full precision for `s` within rounding of 1.
fn survival_integral(s: f64, b: f64, t: f64) -> f64 {
    let l = (t / b).ln_1p();
    let eps = s - 1.0;
    if eps == 0.0 {
        l
    } else {
        -(-eps * l).exp_m1() / eps
    }
}

/// Expected purchases in (T, T + t] given the history: P(alive) times `(r+x)/(alpha+T)` times
/// the expected remaining active time in `t`, `(beta+T) (1 - ((beta+T)/(beta+T+t))^(s-1)) /
/// (s-1)` (continuous at `s = 1`).
pub fn conditional_expected_purchases(
    p: &ParetoNbdParams,
    x: f64,
    t_x: f64,
    age: f64,
    t: f64,
) -> f64 {
    if !(t > 0.0) {
        return 0.0;
    }
    let b = p.beta + age;
    probability_alive(p, x, t_x, age) * (p.r + x) / (p.alpha + age)
        * b
        * survival_integral(p.s, b, t)
}

/// E[X(t)] for a new customer, `r beta / (alpha (s-1)) (1 - (beta/(beta+t))^(s-1))`.
pub fn expected_purchases_new_customer(p: &ParetoNbdParams, t: f64) -> f64 {
    if !(t > 0.0) {
        return 0.0;
    }
    p.r / p.alpha * p.beta * survival_integral(p.s, p.beta, t)
}

/// The exponential lifetime with a `Gamma(s, b)` rate: `S(u) = (b / (b+u))^s`.
struct ParetoLifetime {
    s: f64,
    b: f64,
}

impl Lifetime for ParetoLifetime {
    fn survival(&self, u: f64) -> f64 {
        (-self.s * (u / self.b).ln_1p()).exp()
    }

    fn density(&self, u: f64) -> f64 {
        self.s / (self.b + u) * self.survival(u)
    }
}

impl ParetoNbdParams {
    /// P(alive at T + t) given the history: P(alive at T) times `((beta+T)/(beta+T+t))^s`.
    pub fn probability_alive_after(&self, x: f64, t_x: f64, age: f64, t: f64) -> f64 {
        let later = ParetoLifetime {
            s: self.s,
            b: self.beta + age,
        };
        probability_alive(self, x, t_x, age) * later.survival(t.max(0.0))
    }

    /// P(X(t) = n) for a new customer (Fader & Hardie note 028, by quadrature).
    pub fn purchase_count_probability(&self, n: u64, t: f64) -> f64 {
        let life = ParetoLifetime {
            s: self.s,
            b: self.beta,
        };
        lifetime::count_probability(self.r, self.alpha, n, t, &life)
    }

    /// P(n purchases in (T, T + t]) given the history.
    pub fn conditional_purchase_count_probability(
        &self,
        n: u64,
        x: f64,
        t_x: f64,
        age: f64,
        t: f64,
    ) -> f64 {
        let alive = probability_alive(self, x, t_x, age);
        let life = ParetoLifetime {
            s: self.s,
            b: self.beta + age,
        };
        let if_alive = lifetime::count_probability(self.r + x, self.alpha + age, n, t, &life);
        let if_gone = if n == 0 { 1.0 - alive } else { 0.0 };
        (alive * if_alive + if_gone).clamp(0.0, 1.0)
    }

    /// DERT (note 015) with continuous discounting at `rate`: P(alive) times `(r+x)/(alpha+T)`
    /// times `integral_0^inf exp(-rate u) ((beta+T)/(beta+T+u))^s du`.
    pub fn expected_residual_transactions(&self, x: f64, t_x: f64, age: f64, rate: f64) -> f64 {
        let b = self.beta + age;
        let life = ParetoLifetime { s: self.s, b };
        probability_alive(self, x, t_x, age)
            * lifetime::discounted_expected_purchases(
                self.r + x,
                self.alpha + age,
                rate,
                b / self.s.max(1e-300),
                &life,
            )
    }
}

/// Draw customer histories from the Pareto/NBD process: for each age `T` in `ages`, the number
/// of repeat purchases `x` and the time of the last one `t_x` (0 when `x = 0`). Customer `i`
/// uses random stream `i` of `seed`, so the draws do not depend on how the work is split.
pub fn simulate(p: &ParetoNbdParams, ages: &[f64], seed: u64) -> (Vec<f64>, Vec<f64>) {
    let mut x = Vec::with_capacity(ages.len());
    let mut t_x = Vec::with_capacity(ages.len());
    for (i, &age) in ages.iter().enumerate() {
        let mut rng = crate::random::Rng::for_stream(seed, i as u64);
        let lambda = rng.gamma(p.r) / p.alpha;
        let mu = rng.gamma(p.s) / p.beta;
        let end = rng.exponential(mu).min(age);
        let (mut count, mut last, mut now) = (0.0, 0.0, 0.0);
        loop {
            now += rng.exponential(lambda);
            if !(now <= end) {
                break;
            }
            count += 1.0;
            last = now;
        }
        x.push(count);
        t_x.push(last);
    }
    (x, t_x)
}

/// The Pareto/NBD likelihood over compressed customer rows, for the fitting engine.
pub struct ParetoNbd<'a> {
    data: &'a Rfm,
}

impl<'a> ParetoNbd<'a> {
    pub fn new(data: &'a Rfm) -> Self {
        ParetoNbd { data }
    }
}

impl ParetoNbd<'_> {
    /// Weighted sums over the rows of [`row`]: the log-likelihood, the gradient and, when
    /// `SECOND`, the Hessian's upper triangle (in [`UPPER`] order).
    fn sum_rows<const SECOND: bool>(&self, params: &[f64], exec: &Exec) -> Vec<f64> {
        let fast = FastParams::new(params);
        let d = self.data;
        let width = if SECOND { 5 + UPPER.len() } else { 5 };
        exec.chunked_sum(d.len(), width, |range, acc| {
            // Rows are sorted by frequency: the gamma-function terms change rarely.
            let mut cached = (f64::NAN, (0.0, 0.0, 0.0));
            for i in range {
                let (x, t_x, age) = (d.frequency[i], d.recency[i], d.age[i]);
                if x != cached.0 {
                    cached = (x, gamma_terms::<SECOND>(fast.r, x));
                }
                let (value, gradient, hessian) =
                    row::<SECOND>(&fast, params, cached.1, x, t_x, age);
                let w = d.weight(i);
                acc[0] += w * value;
                for j in 0..4 {
                    acc[1 + j] += w * gradient[j];
                }
                if SECOND {
                    for (slot, &(a, b)) in acc[5..].iter_mut().zip(&UPPER) {
                        *slot += w * hessian[a][b];
                    }
                }
            }
        })
    }
}

impl Likelihood for ParetoNbd<'_> {
    fn params(&self) -> &[ParamSpec] {
        &PARAMS
    }

    fn starts(&self) -> Vec<Vec<f64>> {
        // Purchase rate from the repeat buyers' mean rate; dropout scale from the mean age.
        let (alpha, mean_t) = self.data.start_scales();
        let beta = mean_t;
        vec![
            vec![1.0, alpha, 1.0, beta],
            vec![0.5, 0.5 * alpha, 0.5, 0.5 * beta],
            vec![2.0, 2.0 * alpha, 2.0, 2.0 * beta],
            vec![1.0, alpha, 0.5, 4.0 * beta],
        ]
    }

    fn total_weight(&self) -> f64 {
        self.data.total_weight()
    }

    fn loglik_and_gradient(&self, params: &[f64], exec: &Exec) -> (f64, Vec<f64>) {
        let acc = self.sum_rows::<false>(params, exec);
        (acc[0], acc[1..].to_vec())
    }

    /// The analytic Hessian from the fused pass.
    fn hessian(&self, params: &[f64], exec: &Exec) -> Option<Vec<Vec<f64>>> {
        self.loglik_gradient_hessian(params, exec)
            .map(|(_, _, hessian)| hessian)
    }

    /// The log-likelihood, gradient and Hessian from one pass, whose value and gradient have
    /// the bits of [`Likelihood::loglik_and_gradient`]'s (the same rows, chunks and order of
    /// additions: [`ParetoNbd::sum_rows`]).
    fn loglik_gradient_hessian(&self, params: &[f64], exec: &Exec) -> Option<FusedPass> {
        let acc = self.sum_rows::<true>(params, exec);
        let mut hessian = vec![vec![0.0; 4]; 4];
        for (value, &(a, b)) in acc[5..].iter().zip(&UPPER) {
            hessian[a][b] = *value;
            hessian[b][a] = *value;
        }
        Some((acc[0], acc[1..5].to_vec(), hessian))
    }

    /// The surface is flat in beta on typical data (CDNOW), so every start is tried.
    fn try_all_starts(&self) -> bool {
        true
    }
}

/// One customer's log-likelihood with its gradient and, when `SECOND`, its (full) Hessian in
/// (r, alpha, s, beta): the dual-free series where it serves the row, else the exact dual
/// gradient and central differences of it. For data whose customers each have their own
/// parameters (covariates); `shape` holds the terms of `r` at `x`.
pub fn row_derivatives<const SECOND: bool>(
    params: &[f64; 4],
    shape: RisingTerms,
    x: f64,
    t_x: f64,
    age: f64,
) -> super::RowDerivatives {
    let fast = FastParams::new(params);
    let (value, gradient, mut hessian) = row::<SECOND>(&fast, params, shape, x, t_x, age);
    // Both sources fill the upper triangle.
    for i in 0..4 {
        for j in 0..i {
            hessian[i][j] = hessian[j][i];
        }
    }
    (value, gradient, hessian)
}

/// The upper triangle of a 4 x 4 Hessian, row by row.
const UPPER: [(usize, usize); 10] = [
    (0, 0),
    (0, 1),
    (0, 2),
    (0, 3),
    (1, 1),
    (1, 2),
    (1, 3),
    (2, 2),
    (2, 3),
    (3, 3),
];

/// One customer's log-likelihood and gradient: the dual-free series where it serves the row,
/// else the exact dual gradient. `gamma_terms` as in [`row_fast`].
#[inline]
fn row_first_order(
    fast: &FastParams,
    params: &[f64],
    gamma_terms: (f64, f64, f64),
    x: f64,
    t_x: f64,
    age: f64,
) -> (f64, [f64; 4]) {
    match row_fast::<false>(fast, gamma_terms, x, t_x, age) {
        Some((value, gradient, _)) => (value, gradient),
        None => {
            let duals: [Dual<4>; 4] = std::array::from_fn(|i| Dual::variable(params[i], i));
            let ll = row_log_likelihood(duals, x, t_x, age);
            (ll.v, ll.d)
        }
    }
}

/// One customer's log-likelihood, gradient and Hessian (upper triangle): the series where it
/// serves the row, else central differences of the exact dual gradient for the Hessian. The
/// value and gradient are always [`row_first_order`]'s, to the bit.
#[inline]
fn row_second_order(
    fast: &FastParams,
    params: &[f64],
    gamma_terms: (f64, f64, f64),
    x: f64,
    t_x: f64,
    age: f64,
) -> RowDerivatives {
    match row_fast::<true>(fast, gamma_terms, x, t_x, age) {
        Some(row) => row,
        // The series may serve the first order and not the second (its cap on terms).
        None => {
            let (value, gradient) = row_first_order(fast, params, gamma_terms, x, t_x, age);
            (
                value,
                gradient,
                differenced_row_hessian(params, x, t_x, age),
            )
        }
    }
}

/// One customer's log-likelihood, gradient and, when `SECOND`, Hessian (upper triangle; zeros
/// otherwise): [`row_second_order`] or [`row_first_order`].
#[inline]
fn row<const SECOND: bool>(
    fast: &FastParams,
    params: &[f64],
    gamma_terms: (f64, f64, f64),
    x: f64,
    t_x: f64,
    age: f64,
) -> RowDerivatives {
    if SECOND {
        row_second_order(fast, params, gamma_terms, x, t_x, age)
    } else {
        let (value, gradient) = row_first_order(fast, params, gamma_terms, x, t_x, age);
        (value, gradient, [[0.0; 4]; 4])
    }
}

/// `(ln Gamma(r+x) - ln Gamma(r), psi(r+x) - psi(r), psi'(r+x) - psi'(r))`, the last only when
/// `SECOND` (0 otherwise).
fn gamma_terms<const SECOND: bool>(r: f64, x: f64) -> (f64, f64, f64) {
    let g = Dual::<1>::variable(r, 0).ln_gamma_ratio(x);
    let trigamma_difference = if SECOND {
        trigamma(r + x) - trigamma(r)
    } else {
        0.0
    };
    (g.v, g.d[0], trigamma_difference)
}

/// A row's Hessian by central differences of its exact (dual) gradient, upper triangle.
fn differenced_row_hessian(params: &[f64], x: f64, t_x: f64, age: f64) -> [[f64; 4]; 4] {
    let gradient = |p: &[f64]| {
        let duals: [Dual<4>; 4] = std::array::from_fn(|i| Dual::variable(p[i], i));
        row_log_likelihood(duals, x, t_x, age).d
    };
    let mut hessian = [[0.0; 4]; 4];
    for j in 0..4 {
        let h = 1e-5 * params[j];
        let mut up = params.to_vec();
        let mut down = params.to_vec();
        up[j] += h;
        down[j] -= h;
        let (g_up, g_down) = (gradient(&up), gradient(&down));
        for i in 0..=j {
            hessian[i][j] += 0.5 * (g_up[i] - g_down[i]) / (2.0 * h);
        }
        for i in j..4 {
            hessian[j][i] += 0.5 * (g_up[i] - g_down[i]) / (2.0 * h);
        }
    }
    hessian
}

impl RfmModel for ParetoNbdParams {
    const NAME: &'static str = "pnbd";

    fn specs() -> &'static [ParamSpec] {
        &PARAMS
    }

    fn from_slice(values: &[f64]) -> Result<Self> {
        check_params(&PARAMS, values)?;
        Ok(ParetoNbdParams::new(
            values[0], values[1], values[2], values[3],
        ))
    }

    fn fit(data: &Rfm, opts: &FitOptions<'_>) -> Result<FitResult> {
        fit_with_warm_start(
            data,
            data.len(),
            Rfm::subsample,
            |d, o| fit(&ParetoNbd::new(d), o),
            opts,
        )
    }

    fn simulate(&self, ages: &[f64], seed: u64) -> Option<(Vec<f64>, Vec<f64>)> {
        Some(simulate(self, ages, seed))
    }

    fn log_likelihood(&self, x: f64, t_x: f64, age: f64) -> f64 {
        log_likelihood(self, x, t_x, age)
    }

    fn probability_alive(&self, x: f64, t_x: f64, age: f64) -> f64 {
        probability_alive(self, x, t_x, age)
    }

    fn conditional_expected_purchases(&self, x: f64, t_x: f64, age: f64, t: f64) -> f64 {
        conditional_expected_purchases(self, x, t_x, age, t)
    }

    fn expected_purchases_new_customer(&self, t: f64) -> f64 {
        expected_purchases_new_customer(self, t)
    }

    fn purchase_count_probability(&self, n: u64, t: f64) -> Option<f64> {
        Some(ParetoNbdParams::purchase_count_probability(self, n, t))
    }

    fn probability_alive_after(&self, x: f64, t_x: f64, age: f64, t: f64) -> Option<f64> {
        Some(ParetoNbdParams::probability_alive_after(
            self, x, t_x, age, t,
        ))
    }

    /// P(alive) once per row, times the weighted closed-form active expectations.
    fn weighted_expected_purchases_bulk(
        &self,
        columns: &crate::data::RfmColumns<'_>,
        horizons: &[(f64, f64)],
        exec: &Exec,
        out: &mut [f64],
    ) {
        super::predict_rows(exec, columns, out, |x, t_x, age, _| {
            let b = self.beta + age;
            let active: f64 = horizons
                .iter()
                .filter(|&&(_, t)| t > 0.0)
                .map(|&(w, t)| w * b * survival_integral(self.s, b, t))
                .sum();
            probability_alive(self, x, t_x, age) * (self.r + x) / (self.alpha + age) * active
        });
    }

    fn conditional_purchase_count_probability(
        &self,
        n: u64,
        x: f64,
        t_x: f64,
        age: f64,
        t: f64,
    ) -> Option<f64> {
        Some(ParetoNbdParams::conditional_purchase_count_probability(
            self, n, x, t_x, age, t,
        ))
    }

    fn expected_residual_transactions(&self, x: f64, t_x: f64, age: f64, rate: f64) -> Option<f64> {
        Some(ParetoNbdParams::expected_residual_transactions(
            self, x, t_x, age, rate,
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::models::testing::{assert_gradient_matches, cdnow, rel};

    /// BTYD's walkthrough estimates on CDNOW.
    const BTYD: ParetoNbdParams =
        ParetoNbdParams::new(0.5533971, 10.5801985, 0.6060685, 11.6562471);

    /// Histories covering the awkward cases: x = 0, t_x = T, x in the hundreds, long T.
    const ROWS: [(f64, f64, f64); 8] = [
        (0.0, 0.0, 30.0),
        (1.0, 2.0, 39.0),
        (26.0, 30.85714, 31.0),
        (5.0, 20.0, 20.0),
        (300.0, 10.0, 52.0),
        (300.0, 51.0, 52.0),
        (3.0, 1.0, 5000.0),
        (0.0, 0.0, 0.0),
    ];

    fn parameter_grid() -> Vec<ParetoNbdParams> {
        vec![
            BTYD,
            ParetoNbdParams::new(0.55, 10.0, 0.6, 10.0),
            ParetoNbdParams::new(0.55, 10.0, 0.6, 0.1),
            ParetoNbdParams::new(0.55, 0.1, 0.6, 10.0),
            ParetoNbdParams::new(20.0, 3.0, 0.05, 1000.0),
            ParetoNbdParams::new(0.05, 1000.0, 20.0, 0.01),
        ]
    }

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

    #[test]
    fn fast_path_equals_the_dual_path() {
        let mut rng = crate::random::Rng::new(3);
        let (mut checked, mut beyond_dual_series) = (0, 0);
        for _ in 0..3000 {
            let u = |rng: &mut crate::random::Rng, lo: f64, hi: f64| {
                (lo.ln() + (hi.ln() - lo.ln()) * rng.uniform()).exp()
            };
            let at = [
                u(&mut rng, 0.05, 20.0),
                u(&mut rng, 0.1, 100.0),
                u(&mut rng, 0.05, 20.0),
                u(&mut rng, 0.1, 100.0),
            ];
            let x = (u(&mut rng, 1.0, 400.0) - 1.0).floor();
            let age = u(&mut rng, 0.1, 500.0);
            let t_x = if x == 0.0 {
                0.0
            } else {
                age * [0.0, 0.3, 0.999999, 1.0][(rng.uniform() * 4.0) as usize]
            };
            let fast = FastParams::new(&at);
            let g = Dual::<1>::variable(at[0], 0).ln_gamma_ratio(x);
            let duals: [Dual<4>; 4] = std::array::from_fn(|i| Dual::variable(at[i], i));
            let reference = row_log_likelihood(duals, x, t_x, age);
            let gamma = (g.v, g.d[0], 0.0);
            if let Some((value, gradient, _)) = row_fast::<false>(&fast, gamma, x, t_x, age) {
                checked += 1;
                // Rows beyond the dual series' reach (it hands them to quadrature there).
                let (big, small) = (at[1].max(at[3]), at[1].min(at[3]));
                if t_x < age && (big - small) / (big + t_x) > SERIES_MAX_Z {
                    beyond_dual_series += 1;
                }
                let close = |a: f64, b: f64| (a - b).abs() <= 1e-11 * a.abs().max(b.abs()).max(1.0);
                assert!(
                    close(value, reference.v),
                    "{at:?} {x} {t_x} {age}: {value} vs {reference:?}"
                );
                for j in 0..4 {
                    assert!(
                        close(gradient[j], reference.d[j]),
                        "{at:?} {x} {t_x} {age} component {j}: {gradient:?} vs {reference:?}"
                    );
                }
            }
        }
        assert!(checked > 1000, "{checked}");
        assert!(beyond_dual_series > 100, "{beyond_dual_series}");
    }

    #[test]
    fn analytic_hessian_matches_differences_of_the_gradient() {
        let mut rng = crate::random::Rng::new(4);
        for _ in 0..400 {
            let u = |rng: &mut crate::random::Rng, lo: f64, hi: f64| {
                (lo.ln() + (hi.ln() - lo.ln()) * rng.uniform()).exp()
            };
            let at = [
                u(&mut rng, 0.05, 20.0),
                u(&mut rng, 0.1, 100.0),
                u(&mut rng, 0.05, 20.0),
                u(&mut rng, 0.1, 100.0),
            ];
            let x = (u(&mut rng, 1.0, 300.0) - 1.0).floor();
            let age = u(&mut rng, 0.1, 500.0);
            let t_x = if x == 0.0 {
                0.0
            } else {
                age * [0.0, 0.3, 0.99, 1.0][(rng.uniform() * 4.0) as usize]
            };
            let gamma = gamma_terms::<true>(at[0], x);
            let Some((_, _, hessian)) = row_fast::<true>(&FastParams::new(&at), gamma, x, t_x, age)
            else {
                continue;
            };
            let numeric = differenced_row_hessian(&at, x, t_x, age);
            for i in 0..4 {
                for j in i..4 {
                    // Relative to the curvature of the two coordinates involved.
                    let diagonal = (hessian[i][i] * hessian[j][j]).abs().sqrt();
                    let scale = hessian[i][j].abs().max(diagonal).max(1e-6);
                    assert!(
                        (hessian[i][j] - numeric[i][j]).abs() <= 2e-5 * scale + 1e-9,
                        "{at:?} {x} {t_x} {age} ({i},{j}): {} vs {}",
                        hessian[i][j],
                        numeric[i][j]
                    );
                }
            }
        }
    }

    #[test]
    fn fused_pass_has_the_bits_of_the_gradient_pass() {
        // CDNOW with the awkward rows, whose series or quadrature stretches differ by point
        // (the grid includes points where rows fall back to quadrature).
        let cdnow = cdnow();
        let (mut x, mut t_x, mut age) = (
            cdnow.frequency.clone(),
            cdnow.recency.clone(),
            cdnow.age.clone(),
        );
        for &(xi, ti, ai) in &ROWS {
            x.push(xi);
            t_x.push(ti);
            age.push(ai);
        }
        let data = crate::data::RfmColumns::new(&x, &t_x, &age).compress();
        let lik = ParetoNbd::new(&data);
        for exec in [Exec::Serial, Exec::with_jobs(Some(2)).unwrap()] {
            for p in parameter_grid() {
                let at = [p.r, p.alpha, p.s, p.beta];
                let (value, gradient) = lik.loglik_and_gradient(&at, &exec);
                let (fused_value, fused_gradient, hessian) =
                    lik.loglik_gradient_hessian(&at, &exec).unwrap();
                assert_eq!(fused_value.to_bits(), value.to_bits(), "{at:?}");
                assert_eq!(fused_gradient, gradient, "{at:?}");
                // The Hessian pass is the fused pass's Hessian; symmetric, and central
                // differences of the gradient (to 1e-4: rows the series does not serve have
                // differenced Hessians themselves, at the grid's extremes).
                assert_eq!(lik.hessian(&at, &exec).unwrap(), hessian);
                for i in 0..4 {
                    let h = 1e-6 * at[i];
                    let (mut up, mut down) = (at, at);
                    up[i] += h;
                    down[i] -= h;
                    let g_up = lik.loglik_and_gradient(&up, &exec).1;
                    let g_down = lik.loglik_and_gradient(&down, &exec).1;
                    for j in 0..4 {
                        assert_eq!(hessian[i][j], hessian[j][i]);
                        let numeric = (g_up[j] - g_down[j]) / (2.0 * h);
                        let scale = (hessian[i][i] * hessian[j][j]).abs().sqrt();
                        assert!(
                            (hessian[i][j] - numeric).abs() <= 1e-4 * scale,
                            "{at:?} ({i},{j}): {} vs {numeric}",
                            hessian[i][j]
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn reproduces_the_published_cdnow_fit() {
        let data = cdnow();
        let res = ParetoNbdParams::fit(&data, &FitOptions::default()).unwrap();
        assert!(res.converged, "{}", res.termination);
        let want = [0.553, 10.578, 0.606, 11.669];
        for (k, (got, want)) in res.params.iter().zip(want).enumerate() {
            let tolerance = if k == 3 { 2e-3 } else { 1e-3 };
            assert!(rel(*got, want) < tolerance, "{:?}", res.params);
        }
        assert!(
            (res.log_likelihood + 9594.98).abs() < 0.01,
            "{}",
            res.log_likelihood
        );
        // CLVTools' standard errors.
        let se = res.standard_errors().unwrap();
        for (got, want) in se.iter().zip([0.0476, 0.843, 0.187, 6.21]) {
            assert!(rel(*got, want) < 0.03, "{se:?}");
        }
    }

    #[test]
    fn published_prediction_figures() {
        // BTYD's walkthrough prints E[X(52)] = 1.473434, and for x = 26, t_x = 30.85714, T = 31
        // E[X(31, 83)] = 25.45647 and P(alive) = 0.997874, computed after re-running its
        // optimiser from its printed estimate (BTYD above, where the model gives 1.473105,
        // 25.45412, 0.997873) at parameters it does not print in full. The likelihood is flat
        // along a ridge there; this point on it (CDNOW log-likelihood within 4e-6 of the
        // maximum) reproduces all three printed figures (mpmath, test_continuous_reference.py).
        let figures = ParetoNbdParams::new(0.553364, 10.579474, 0.6059148, 11.658633);
        let e = expected_purchases_new_customer(&figures, 52.0);
        assert!((e - 1.473434).abs() < 1e-6, "{e}");
        let e = conditional_expected_purchases(&figures, 26.0, 30.85714, 31.0, 52.0);
        assert!((e - 25.45647).abs() < 1e-5, "{e}");
        let alive = probability_alive(&figures, 26.0, 30.85714, 31.0);
        assert!((alive - 0.997874).abs() < 1e-6, "{alive}");
        // At the printed estimate E[X(52)] still rounds to the quoted 1.473.
        assert!((expected_purchases_new_customer(&BTYD, 52.0) - 1.473).abs() < 5e-4);
    }

    #[test]
    fn s_near_one_is_continuous() {
        let at_one = ParetoNbdParams::new(0.5, 10.0, 1.0, 12.0);
        let e1 = conditional_expected_purchases(&at_one, 3.0, 20.0, 30.0, 52.0);
        let n1 = expected_purchases_new_customer(&at_one, 52.0);
        assert!(e1.is_finite() && n1.is_finite());
        for ds in [-1e-9, 1e-9, -1e-12, 1e-12] {
            let p = ParetoNbdParams {
                s: 1.0 + ds,
                ..at_one
            };
            let e = conditional_expected_purchases(&p, 3.0, 20.0, 30.0, 52.0);
            let n = expected_purchases_new_customer(&p, 52.0);
            assert!(rel(e, e1) < 1e-8, "{e} vs {e1}");
            assert!(rel(n, n1) < 1e-8, "{n} vs {n1}");
        }
    }

    #[test]
    fn count_probabilities_are_a_distribution_with_the_right_mean() {
        let t = 39.0;
        let (mut total, mut mean) = (0.0, 0.0);
        for n in 0..400u64 {
            let q = BTYD.purchase_count_probability(n, t);
            total += q;
            mean += n as f64 * q;
        }
        assert!((total - 1.0).abs() < 1e-10, "{total}");
        assert!(rel(mean, expected_purchases_new_customer(&BTYD, t)) < 1e-9);
        for &(x, t_x, age) in &ROWS[..4] {
            let (mut total, mut mean) = (0.0, 0.0);
            for n in 0..600u64 {
                let q = BTYD.conditional_purchase_count_probability(n, x, t_x, age, t);
                total += q;
                mean += n as f64 * q;
            }
            let want = conditional_expected_purchases(&BTYD, x, t_x, age, t);
            assert!((total - 1.0).abs() < 1e-10, "{total}");
            assert!(rel(mean, want) < 1e-9, "{mean} vs {want}");
        }
    }

    #[test]
    fn dert_is_the_discounted_expected_purchase_stream() {
        // DERT = integral exp(-d t) dE(t) = d * integral exp(-d t) E(t) dt (by parts).
        let rate = 0.1;
        for &(x, t_x, age) in &ROWS[..4] {
            let dert = BTYD.expected_residual_transactions(x, t_x, age, rate);
            let by_parts = crate::quadrature::integrate_to_infinity(
                |t| {
                    rate * (-rate * t).exp() * conditional_expected_purchases(&BTYD, x, t_x, age, t)
                },
                0.0,
                1e-12,
                500,
            );
            assert!(rel(dert, by_parts.value) < 1e-9, "{dert} vs {:?}", by_parts);
        }
    }

    #[test]
    fn probabilities_stay_in_range_at_extremes() {
        for p in parameter_grid() {
            for &(x, t_x, age) in &ROWS {
                let alive = probability_alive(&p, x, t_x, age);
                assert!(
                    (0.0..=1.0).contains(&alive),
                    "{p:?} {x} {t_x} {age}: {alive}"
                );
                let ll = log_likelihood(&p, x, t_x, age);
                assert!(ll.is_finite() && ll <= 0.0 || x > 0.0 && ll.is_finite());
                let later = p.probability_alive_after(x, t_x, age, 10.0);
                assert!(later <= alive && later >= 0.0);
            }
        }
    }

    #[test]
    fn huge_rate_shapes_reach_the_poisson_limit() {
        // r = alpha -> inf with r / alpha = 1: the purchase rate is 1 for everyone. With
        // t_x = T the likelihood is Gamma(r+x)/Gamma(r) alpha^r (alpha+T)^-(r+x) S(T), whose
        // limit is x ln(1) - T - s ln(1 + T/beta) (corrections of order x^2 / r). Computed as
        // separate terms of about 3e16, the old code lost all of it.
        let (s, beta, x, age): (f64, f64, f64, f64) = (0.606, 11.669, 2.0, 30.0);
        let want = -age - s * (age / beta).ln_1p();
        for scale in [1e15, 1e20, 1e100, 1e308] {
            let p = ParetoNbdParams::new(scale, scale, s, beta);
            let got = log_likelihood(&p, x, age, age);
            assert!((got - want).abs() < 1e-12, "{scale}: {got} vs {want}");
            // The fit's path (dual-free rows are skipped for such parameters) agrees.
            let params = [scale, scale, s, beta];
            let (value, gradient) = row_first_order(
                &FastParams::new(&params),
                &params,
                gamma_terms::<false>(scale, x),
                x,
                age,
                age,
            );
            assert!((value - want).abs() < 1e-12, "{scale}: {value}");
            assert!(gradient.iter().all(|g| g.is_finite()), "{gradient:?}");
        }
    }
}
