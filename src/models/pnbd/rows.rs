//! One customer's Pareto/NBD log-likelihood with its gradient and Hessian in (r, alpha, s, beta)
//! without dual numbers, where the series alone serves the row ([`row_fast`]), else from the
//! dual path of `integral` (exact gradient, Hessian by central differences of it): for the
//! fitting pass and for data whose customers each have their own parameters (covariates).

use super::integral::{
    row_log_likelihood, FAST_SERIES_MAX_Z, HESSIAN_SERIES_TOLERANCE, SERIES_MAX_PEAK,
    SERIES_MAX_TERMS, SERIES_TOLERANCE,
};
use crate::dual::Dual;
use crate::special::{trigamma, RisingTerms};
use std::sync::OnceLock;

/// Per-evaluation constants of [`row_fast`].
pub(super) struct FastParams {
    pub(super) r: f64,
    alpha: f64,
    s: f64,
    beta: f64,
    ln_alpha: f64,
    ln_beta: f64,
    ln_s: f64,
    /// Whether `r ln alpha` or `s ln beta` is so large that [`row_fast`]'s separate terms
    /// would lose the answer to rounding (see [`EXTREME_ANCHOR`]).
    extreme: bool,
    /// The part of the series shared by every row without repeat purchases (`x = t_x = 0`),
    /// computed by the first such row of a pass (None: not shared, every row sums its own).
    shared: Option<OnceLock<Option<SeriesSums>>>,
    /// The series' tolerances for the value and gradient and for the Hessian (relative to
    /// each sum): [`SERIES_TOLERANCE`] and [`HESSIAN_SERIES_TOLERANCE`], or the coarse pass's.
    tolerance: f64,
    hessian_tolerance: f64,
}

/// The series' tolerances of a coarse pass (`Likelihood::loglik_and_gradient_coarse`): a
/// row's value to about [`crate::fit::COARSE_PRECISION`], its Hessian to about 1e-7 (it only
/// shapes Newton's next step); about 40% fewer terms where the series converges slowly.
const COARSE_SERIES_TOLERANCE: f64 = crate::fit::COARSE_PRECISION;
const COARSE_HESSIAN_SERIES_TOLERANCE: f64 = 1e-7;

/// Above this `r |ln alpha| + s |ln beta|` (rounding of about `1e-11` in a row's
/// log-likelihood) rows go to the dual path, whose [`ln_terms`] fold `alpha^r beta^s` in without
/// cancellation. Only parameters far outside the normal region (the gamma-to-Poisson limits a
/// fit on nearly homogeneous data runs towards, or model files) take that branch; the normal
/// region pays one predictable branch per row for it.
const EXTREME_ANCHOR: f64 = 1e5;

impl FastParams {
    /// Constants of a pass over many rows with the same parameters, which share the part of
    /// the series that depends on `(x, t_x)` alone (see [`row_fast`]).
    pub(super) fn new(params: &[f64]) -> Self {
        FastParams {
            shared: Some(OnceLock::new()),
            ..Self::single(params)
        }
    }

    /// [`FastParams::new`] for a coarse pass (shorter series; see
    /// [`COARSE_SERIES_TOLERANCE`]).
    pub(super) fn coarse(params: &[f64]) -> Self {
        FastParams {
            tolerance: COARSE_SERIES_TOLERANCE,
            hessian_tolerance: COARSE_HESSIAN_SERIES_TOLERANCE,
            ..Self::new(params)
        }
    }

    /// Constants for one row (parameters that change from row to row: nothing to share).
    fn single(params: &[f64]) -> Self {
        FastParams {
            shared: None,
            r: params[0],
            alpha: params[1],
            s: params[2],
            beta: params[3],
            ln_alpha: params[1].ln(),
            ln_beta: params[3].ln(),
            ln_s: params[2].ln(),
            extreme: !(params[0] * params[1].ln().abs() + params[2] * params[3].ln().abs()
                <= EXTREME_ANCHOR),
            tolerance: SERIES_TOLERANCE,
            hessian_tolerance: HESSIAN_SERIES_TOLERANCE,
        }
    }
}

/// A row's log-likelihood with its gradient and (upper-triangle) Hessian in (r, alpha, s, beta).
pub(super) type RowDerivatives = (f64, [f64; 4], [[f64; 4]; 4]);

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
///
/// In a pass over many rows ([`FastParams::new`]) the rows without repeat purchases share the
/// part `sum_k W_k / (m+k)` of `S` (`(1/m) 2F1(e, m; m+1; z)`, which depends on the parameters
/// alone there) and each sums only `sum_k W_k R_k / (m+k)`, whose terms shrink by `z rho`
/// instead of `z` (see `docs/design.md`, "Pareto/NBD likelihood rows").
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
    let peak_max_z = SERIES_MAX_PEAK / (SERIES_MAX_PEAK + e);
    if z > SHARED_MAX_Z.min(peak_max_z) {
        return None;
    }
    let m = rx + s;
    let delta = age - t_x;
    let rel_gap = delta / base;
    let lambda = -rel_gap.ln_1p();
    // rho = base / (big + T) and 1 - rho, exactly, without exp.
    let rho = 1.0 / (1.0 + rel_gap);
    // Whether the row takes the shared part of the series (see below), which serves it out to
    // `SHARED_MAX_Z` (its own part's terms shrink by `z rho`); else the whole series, out to
    // `FAST_SERIES_MAX_Z`.
    let shares = p.shared.is_some()
        && x == 0.0
        && t_x == 0.0
        && (m * lambda).exp() <= SPLIT_MAX_DECAY
        && z * rho <= FAST_SERIES_MAX_Z;
    if !shares && z > FAST_SERIES_MAX_Z.min(peak_max_z) {
        return None;
    }
    let series = SeriesArgs {
        m,
        e,
        z,
        lambda,
        rho,
        one_minus_rho: rel_gap * rho,
        tolerance: p.tolerance,
        hessian_tolerance: p.hessian_tolerance,
    };
    let sums = match &p.shared {
        // S = sum_k W_k / (m+k) - sum_k W_k R_k / (m+k): the first sum depends on the
        // parameters and (x, t_x) alone, so the rows without repeat purchases (x = t_x = 0,
        // usually the majority) share it, and each sums only the second, whose terms shrink by
        // z rho = gap / (big + T) instead of z = gap / big: far fewer terms where z is close to
        // 1 (the estimates of small segments, far from the pooled one). Where R_0 = rho^m is
        // close to 1 the difference would cancel; those rows sum S directly.
        Some(shared) if shares => {
            // Always with the second-order sums (the first-order ones are the same bits), and
            // from (m, e, z) alone, which every such row shares: whichever row of whichever
            // thread computes it, it has the same bits.
            let ones = shared.get_or_init(|| {
                SeriesArgs {
                    lambda: 0.0,
                    rho: 1.0,
                    one_minus_rho: 0.0,
                    ..series
                }
                .sums::<true, ONES>()
            });
            match (ones, series.sums::<SECOND, DECAY>()) {
                (Some(ones), Some(decay)) => Some(ones.minus(&decay)),
                _ => None,
            }
        }
        _ => series.sums::<SECOND, WHOLE>(),
    }?;
    let (sum, d1) = sums.first;
    let d2 = sums.second;
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

/// The shared part of the series serves rows without repeat purchases out to this `z` (their
/// own part's terms shrink by `z rho <= FAST_SERIES_MAX_Z`): the shared part is summed once per
/// pass (about 8,000 terms at this `z`), and beyond [`FAST_SERIES_MAX_Z`] those rows would
/// otherwise take the dual path (quadrature and differenced Hessians, about 20 times the
/// cost: a small segment's estimate with `beta` about 40 times `alpha`).
const SHARED_MAX_Z: f64 = 0.995;

/// Above this `R_0 = rho^m`, the difference of the two parts of the series (see [`row_fast`])
/// would lose more than about 3 bits to cancellation, so the row sums the whole series.
const SPLIT_MAX_DECAY: f64 = 0.9;

/// Which terms [`SeriesArgs::sums`] adds: the whole series, `F_k = (1 - R_k) / (m+k)`, or its
/// two parts `1 / (m+k)` and `R_k / (m+k)`.
const WHOLE: u8 = 0;
const ONES: u8 = 1;
const DECAY: u8 = 2;

/// The arguments of the series `S = sum_k W_k F_k` of [`row_fast`].
#[derive(Clone, Copy)]
struct SeriesArgs {
    m: f64,
    e: f64,
    z: f64,
    lambda: f64,
    rho: f64,
    one_minus_rho: f64,
    tolerance: f64,
    hessian_tolerance: f64,
}

/// A series' sum with its partials in `(m, e, z, lambda)`: the sum and first partials where
/// the first-order rule stopped, and the second partials (upper triangle; zeros unless they
/// were asked for).
#[derive(Clone, Copy, Debug)]
pub(super) struct SeriesSums {
    first: (f64, [f64; 4]),
    second: [[f64; 4]; 4],
}

impl SeriesSums {
    fn minus(&self, other: &SeriesSums) -> SeriesSums {
        SeriesSums {
            first: (
                self.first.0 - other.first.0,
                std::array::from_fn(|i| self.first.1[i] - other.first.1[i]),
            ),
            second: std::array::from_fn(|i| {
                std::array::from_fn(|j| self.second[i][j] - other.second[i][j])
            }),
        }
    }
}

impl SeriesArgs {
    /// The `PART` of the series with its partials (None when it would need more than
    /// [`SERIES_MAX_TERMS`] terms).
    #[inline]
    fn sums<const SECOND: bool, const PART: u8>(&self) -> Option<SeriesSums> {
        let SeriesArgs {
            m,
            e,
            z,
            lambda,
            rho,
            one_minus_rho,
            tolerance,
            hessian_tolerance,
        } = *self;
        // Terms shrink by z, those of the decaying part by z rho.
        let z_ratio = if PART == DECAY { z * rho } else { z };
        // Running quantities at k: W_k, W_{k-1} (e+k-1) = k W_k / z, W_{k-2} (e+k-2)(e+k-1) =
        // k (k-1) W_k / z^2, R_k, 1 - R_k, H1, H2.
        let (mut w, mut wz, mut wzz) = (1.0, 0.0, 0.0);
        let mut big_r = (m * lambda).exp();
        let mut one_minus_r = if PART == WHOLE {
            -(m * lambda).exp_m1()
        } else {
            0.0
        };
        let (mut h1, mut h2) = (0.0, 0.0);
        // Sums: S, first partials (m, e, z, lambda), second partials.
        let mut sum = 0.0;
        let mut d1 = [0.0; 4];
        let mut d2 = [[0.0; 4]; 4];
        // The sum and first partials where the first-order rule stops (the second-order sums
        // need more terms): the value and gradient are taken from them, so they have the bits
        // of a `::<false>` call (a fused pass must return exactly a gradient pass's value and
        // gradient).
        let mut first_order: Option<(f64, [f64; 4])> = None;
        let mut k = 0.0f64;
        loop {
            let n = m + k;
            let inv = 1.0 / n;
            // F and its partials in m and lambda.
            let (f, f_m, f_l) = match PART {
                WHOLE => (
                    one_minus_r * inv,
                    -big_r * lambda * inv - one_minus_r * inv * inv,
                    -big_r,
                ),
                ONES => (inv, -inv * inv, 0.0),
                _ => (big_r * inv, big_r * lambda * inv - big_r * inv * inv, big_r),
            };
            let c = w * f;
            sum += c;
            d1[0] += w * f_m;
            d1[1] += w * h1 * f;
            d1[2] += wz * f;
            d1[3] += w * f_l;
            if SECOND {
                // The second partials of F through the first ones, which the term has already:
                // F_mm = (+-R lambda^2 - 2 F_m) / n, F_m,lambda = lambda F_lambda (so its sum is
                // lambda times F_lambda's, taken once after the loop) and F_lambda,lambda =
                // n F_lambda. Fewer operations a term than the expanded forms, the same terms to
                // rounding; the value and gradient sums are untouched (their bits stay).
                let f_mm = match PART {
                    WHOLE => -inv * (big_r * lambda * lambda + 2.0 * f_m),
                    ONES => -2.0 * inv * f_m,
                    _ => inv * (big_r * lambda * lambda - 2.0 * f_m),
                };
                let w_e = w * h1;
                let w_l = w * f_l;
                d2[0][0] += w * f_mm;
                d2[0][1] += w_e * f_m;
                d2[0][2] += wz * f_m;
                d2[1][1] += (h1 * h1 - h2) * c;
                d2[1][2] += wz * f * h1;
                d2[1][3] += w_e * f_l;
                d2[2][2] += wzz * f;
                d2[2][3] += wz * f_l;
                d2[3][3] += n * w_l;
            }
            // Later term ratios are at most q (see ln_integral_by_series, with z rho for the
            // decaying part); derivative sums carry extra factors of about k (k^2 for the
            // second). The partials in z carry 1/z (1/z^2 for the second): their terms at k = 1
            // (k = 2) do not vanish as z -> 0 while `c` does, so the first-order rule looks
            // from k = 2 on and the second-order from k = 3, and both compare the z terms with
            // their own sums.
            // With q = z M / b (M = max(e + k + 1, b), b = k + 2), the tail bound q / (1 - q) b
            // is z M b / (b - z M): compared without dividing (a division here would stall
            // every term's test).
            let b = k + 2.0;
            let zm = z_ratio * (e + k + 1.0).max(b);
            let slack = b - zm;
            if k >= 2.0 && slack > 0.0 {
                let tail = zm * b;
                // The terms of the partials in z carry 1/z (k W / z): they do not shrink with
                // `c` as z -> 0, so they are held to their own sums (as are those in lambda,
                // which the part of the ones lacks).
                let done = |tail: f64, tolerance: f64| {
                    c * tail <= tolerance * sum * slack
                        && w * f_l.abs() * tail <= tolerance * d1[3].abs() * slack
                        && wz * f * tail <= tolerance * d1[2] * slack
                };
                if first_order.is_none() && done(tail, tolerance) {
                    if !SECOND {
                        break;
                    }
                    first_order = Some((sum, d1));
                }
                // Once the value and gradient are done, the second-order sums to their own
                // tolerance.
                let tail_second = tail * b * (1.0 + n * lambda.abs());
                let second_done = || {
                    let scaled = hessian_tolerance * slack;
                    done(tail_second, hessian_tolerance)
                        && wzz * f * tail_second <= scaled * d2[2][2]
                        && wz * f_l.abs() * tail_second <= scaled * d2[2][3].abs()
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
            if PART == WHOLE {
                one_minus_r += big_r * one_minus_rho;
            }
            big_r *= rho;
            k += 1.0;
        }
        // sum_k W_k F_m,lambda = lambda sum_k W_k F_lambda (F_m,lambda = lambda F_lambda for
        // every part), over the same terms as the other second-order sums.
        if SECOND {
            d2[0][3] = lambda * d1[3];
        }
        Some(SeriesSums {
            first: first_order.unwrap_or((sum, d1)),
            second: d2,
        })
    }
}

/// The rows of one pass over many customers at fixed parameters: [`FastParams::new`] (or
/// [`FastParams::coarse`]) with the parameters, for the likelihoods outside this module that
/// sum Pareto/NBD rows (the correlated model's four components, each at its own parameters).
pub struct RowPass {
    fast: FastParams,
    params: [f64; 4],
}

impl RowPass {
    /// A pass at `params` (r, alpha, s, beta); `coarse`: the series to the coarse pass's
    /// tolerance.
    pub fn new(params: [f64; 4], coarse: bool) -> Self {
        let fast = if coarse {
            FastParams::coarse(&params)
        } else {
            FastParams::new(&params)
        };
        RowPass { fast, params }
    }

    /// The shape `r` of the purchase rate, whose [`gamma_terms`] at the row's frequency
    /// [`RowPass::row`] takes.
    pub fn r(&self) -> f64 {
        self.params[0]
    }

    /// One row's log-likelihood, gradient and, when `SECOND`, Hessian (upper triangle; zeros
    /// otherwise); `gamma_terms` is [`gamma_terms`] at `(r, x)`.
    #[inline]
    pub fn row<const SECOND: bool>(
        &self,
        gamma_terms: (f64, f64, f64),
        x: f64,
        t_x: f64,
        age: f64,
    ) -> RowDerivatives {
        row::<SECOND>(&self.fast, &self.params, gamma_terms, x, t_x, age)
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
) -> crate::models::RowDerivatives {
    let fast = FastParams::single(params);
    let (value, gradient, mut hessian) = row::<SECOND>(&fast, params, shape, x, t_x, age);
    // Both sources fill the upper triangle.
    for i in 0..4 {
        for j in 0..i {
            hessian[i][j] = hessian[j][i];
        }
    }
    (value, gradient, hessian)
}

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
pub(super) fn row<const SECOND: bool>(
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
pub fn gamma_terms<const SECOND: bool>(r: f64, x: f64) -> (f64, f64, f64) {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::models::pnbd::integral::SERIES_MAX_Z;
    use crate::models::pnbd::{log_likelihood, ParetoNbdParams};

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

    /// The coarse pass's rows (shorter series) against the dual-number path (its own series or
    /// quadrature, to rounding): the value within about [`crate::fit::COARSE_PRECISION`], the
    /// gradient to 1e-8 and the Hessian to 1e-5 of the curvature's scale, over rows and
    /// parameters like small segments' estimates (scales far apart: long series), on both
    /// routes (rows without repeat purchases share a part of the series).
    #[test]
    fn coarse_rows_are_within_the_coarse_precision() {
        let mut rng = crate::random::Rng::new(5);
        let mut checked = 0;
        for _ in 0..1500 {
            let u = |rng: &mut crate::random::Rng, lo: f64, hi: f64| {
                (lo.ln() + (hi.ln() - lo.ln()) * rng.uniform()).exp()
            };
            let at = [
                u(&mut rng, 0.05, 20.0),
                u(&mut rng, 0.5, 200.0),
                u(&mut rng, 0.05, 20.0),
                u(&mut rng, 0.5, 200.0),
            ];
            let x = (u(&mut rng, 1.0, 100.0) - 1.0).floor() * (rng.uniform() < 0.6) as u8 as f64;
            let age = u(&mut rng, 1.0, 200.0);
            let t_x = if x == 0.0 { 0.0 } else { age * rng.uniform() };
            let gamma = gamma_terms::<true>(at[0], x);
            let Some((value, gradient, hessian)) =
                row_fast::<true>(&FastParams::coarse(&at), gamma, x, t_x, age)
            else {
                continue;
            };
            checked += 1;
            let duals: [Dual<4>; 4] = std::array::from_fn(|i| Dual::variable(at[i], i));
            let reference = row_log_likelihood(duals, x, t_x, age);
            let precision = 10.0 * crate::fit::COARSE_PRECISION;
            assert!(
                (value - reference.v).abs() <= precision * reference.v.abs().max(1.0),
                "{at:?} {x} {t_x} {age}: {value} vs {reference:?}"
            );
            for j in 0..4 {
                assert!(
                    (gradient[j] - reference.d[j]).abs() <= 1e-8 * reference.d[j].abs().max(1.0),
                    "{at:?} {x} {t_x} {age} component {j}: {gradient:?} vs {reference:?}"
                );
            }
            let exact = row_fast::<true>(&FastParams::new(&at), gamma, x, t_x, age).unwrap();
            for i in 0..4 {
                for j in i..4 {
                    let scale = (exact.2[i][i] * exact.2[j][j]).abs().sqrt().max(1e-6);
                    assert!(
                        (hessian[i][j] - exact.2[i][j]).abs() <= 1e-5 * scale,
                        "{at:?} {x} {t_x} {age} ({i},{j}): {} vs {}",
                        hessian[i][j],
                        exact.2[i][j]
                    );
                }
            }
        }
        assert!(checked > 800, "{checked}");
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

    /// Rows without repeat purchases at parameters like small segments' estimates (scales up to
    /// 1,000 apart, where `z` is close to 1, and shapes at and near integers): the shared part
    /// minus each row's decaying part is the whole series to rounding, value, gradient and
    /// Hessian; and the shared part has the same bits whichever row computes it first (so a
    /// pass has the same bits for any thread count).
    #[test]
    fn shared_part_route_is_the_whole_series() {
        let (mut split, mut whole_only) = (0, 0);
        for r in [0.05, 0.55, 1.0, 2.0, 7.3] {
            for s in [0.05, 0.606, 1.0, 1.0 + 1e-9, 2.0, 5.5] {
                for (alpha, beta) in [
                    (10.578, 11.669),
                    (10.0, 62.8),
                    (14.9, 3.2),
                    (1.0, 19.0),
                    (19.0, 1.0),
                    (0.05, 50.0),
                    (1000.0, 1.0),
                    (1.0, 1000.0),
                ] {
                    let at = [r, alpha, s, beta];
                    let gamma = gamma_terms::<true>(r, 0.0);
                    let ages = [0.5, 26.0, 39.7, 52.0, 78.0, 400.0];
                    let shared = FastParams::new(&at);
                    // Rows in two orders over one shared part, against each row alone.
                    let mut first = Vec::new();
                    for &age in ages.iter().rev() {
                        first.push(row_fast::<true>(&shared, gamma, 0.0, 0.0, age));
                    }
                    first.reverse();
                    let other = FastParams::new(&at);
                    for (i, &age) in ages.iter().enumerate() {
                        let again = row_fast::<true>(&other, gamma, 0.0, 0.0, age);
                        assert_eq!(format!("{again:?}"), format!("{:?}", first[i]), "{at:?}");
                        let alone =
                            row_fast::<true>(&FastParams::single(&at), gamma, 0.0, 0.0, age);
                        let (Some(got), Some(want)) = (first[i], alone) else {
                            assert_eq!(first[i].is_some(), alone.is_some(), "{at:?} {age}");
                            continue;
                        };
                        if got == want {
                            whole_only += 1;
                        } else {
                            split += 1;
                        }
                        let close = |a: f64, b: f64, tol: f64| {
                            (a - b).abs() <= tol * a.abs().max(b.abs()).max(1.0)
                        };
                        assert!(
                            close(got.0, want.0, 1e-14),
                            "{at:?} {age}: {got:?} {want:?}"
                        );
                        for j in 0..4 {
                            assert!(close(got.1[j], want.1[j], 1e-12), "{at:?} {age} {j}");
                            for k in j..4 {
                                let scale = (want.2[j][j] * want.2[k][k]).abs().sqrt();
                                assert!(
                                    (got.2[j][k] - want.2[j][k]).abs() <= 1e-9 * scale.max(1e-6),
                                    "{at:?} {age} ({j},{k}): {got:?} {want:?}"
                                );
                            }
                        }
                        // The gradient pass's value and gradient are the fused pass's bits.
                        let first_order =
                            row_fast::<false>(&FastParams::new(&at), gamma, 0.0, 0.0, age).unwrap();
                        assert_eq!(first_order.0.to_bits(), got.0.to_bits());
                        assert_eq!(first_order.1, got.1);
                    }
                }
            }
        }
        assert!(split > 200 && whole_only > 20, "{split} {whole_only}");
    }

    /// Rows without repeat purchases beyond `FAST_SERIES_MAX_Z`, where only the shared route
    /// serves them (a small segment's estimate with beta about 40 times alpha, and beyond):
    /// against the dual path (quadrature there) to 1e-11, the Hessian against central
    /// differences of that path's gradient; and a row alone still goes to the dual path.
    #[test]
    fn shared_route_serves_rows_without_repeat_purchases_beyond_the_whole_series() {
        let mut served = 0;
        for (r, s) in [(0.44, 7.42), (0.05, 0.606), (1.0, 1.0), (2.0, 0.3)] {
            for (alpha, beta) in [(8.98, 369.9), (1.0, 60.0), (0.5, 150.0), (60.0, 1.0)] {
                let at = [r, alpha, s, beta];
                let gamma = gamma_terms::<true>(r, 0.0);
                let shared = FastParams::new(&at);
                for age in [26.0, 52.0, 78.0, 400.0] {
                    let z = (alpha - beta).abs() / alpha.max(beta);
                    assert!(z > FAST_SERIES_MAX_Z, "{at:?}");
                    assert!(
                        row_fast::<true>(&FastParams::single(&at), gamma, 0.0, 0.0, age).is_none()
                    );
                    let Some((value, gradient, hessian)) =
                        row_fast::<true>(&shared, gamma, 0.0, 0.0, age)
                    else {
                        continue;
                    };
                    served += 1;
                    let duals: [Dual<4>; 4] = std::array::from_fn(|i| Dual::variable(at[i], i));
                    let reference = row_log_likelihood(duals, 0.0, 0.0, age);
                    let close =
                        |a: f64, b: f64| (a - b).abs() <= 1e-11 * a.abs().max(b.abs()).max(1.0);
                    assert!(
                        close(value, reference.v),
                        "{at:?} {age}: {value} vs {reference:?}"
                    );
                    for j in 0..4 {
                        assert!(
                            close(gradient[j], reference.d[j]),
                            "{at:?} {age} {j}: {gradient:?} vs {reference:?}"
                        );
                    }
                    let numeric = differenced_row_hessian(&at, 0.0, 0.0, age);
                    for i in 0..4 {
                        for j in i..4 {
                            let scale = (hessian[i][i] * hessian[j][j]).abs().sqrt().max(1e-6);
                            assert!(
                                (hessian[i][j] - numeric[i][j]).abs() <= 2e-5 * scale + 1e-9,
                                "{at:?} {age} ({i},{j}): {} vs {}",
                                hessian[i][j],
                                numeric[i][j]
                            );
                        }
                    }
                }
            }
        }
        assert!(served >= 30, "{served}");
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
