//! Pareto/NBD P(alive) and expected purchases several customers at a time (SIMD lanes), from a
//! series of positive terms with no quadrature, no dual numbers and one `expm1` per customer.
//!
//! P(alive) is `A / (A + s I)` with `A = (alpha+T)^-(r+x) (beta+T)^-s` and `I` the integral of
//! the module documentation of [`super`], so it is `1 / (1 + Y)` with `Y = s I / A`. Expanding
//! `I` around the larger rate scale `big` as `integral` does (`z = (big - small)/(big + t_x)`,
//! `rho = (big + t_x)/(big + T)`, `m = r + x + s`) and dividing by `A`:
//!
//! ```text
//! Y = s ((small+T)/(big+T))^f rho^-m S,   S = sum_k (e)_k z^k / k! (1 - rho^(m+k)) / (m+k),
//! (e, f) = (r+x, r+x) when beta > alpha, (s+1, s) otherwise.
//! ```
//!
//! `alpha^r beta^s` cancels in the ratio, so no large logarithms are subtracted (the likelihood
//! needs them; P(alive) does not). `1 - rho^(m+k)` starts from one `expm1` and grows by the
//! positive steps `rho^(m+k) (1 - rho)`, with `1 - rho = (T - t_x)/(big + T)` formed without
//! cancellation, so every term keeps full precision also when `t_x` is close to `T`. The series
//! stops by the rule of `integral` (a rigorous bound on the tail, `1e-17` of the sum).
//!
//! Each lane's arithmetic is the same whatever the other lanes hold (finished lanes add exact
//! zeros while others continue), and no FMA is used, so a row gets the same bits alone
//! ([`probability_alive`](super::probability_alive), `L = 1`) as in a group of four, with or
//! without AVX2 or AVX-512 (eight lanes there), and for any thread count. Rows the series does not serve (`z` beyond
//! [`SERIES_MAX_Z`], or huge `e z`) come back as NaN and take the series-and-quadrature path.

use super::integral::{SERIES_MAX_PEAK, SERIES_MAX_TERMS, SERIES_MAX_Z, SERIES_TOLERANCE};
use super::predict::probability_alive_by_integral;
use super::ParetoNbdParams;
use crate::data::RfmColumns;
use crate::fastmath::{exp, exp_and_expm1, expm1, ln_1p};
use crate::parallel::Exec;

/// Rows evaluated together by the bulk predictions (AVX2 and baseline).
const LANES: usize = 4;
/// Rows evaluated together with AVX-512.
const WIDE_LANES: usize = 8;

/// P(alive at `T`) for `L` rows: `1 / (1 + Y)` (see the module documentation), 1 when
/// `t_x = T` (nothing to integrate), NaN for rows the series does not serve.
///
/// `Y = s e^E S` with `E = -f ln(1 + (big-small)/(small+T)) - m ln rho` is formed in linear
/// space: its relative error is that of `e^E` (`|E|` ulps, as for the log odds), and where it
/// over- or underflows P(alive) is below `1e-300` or rounds to 1 anyway.
#[inline(always)]
pub(super) fn alive_lanes<const L: usize>(
    p: &ParetoNbdParams,
    x: [f64; L],
    t_x: [f64; L],
    age: [f64; L],
) -> [f64; L] {
    let alpha_big = p.alpha >= p.beta;
    let (big, small) = if alpha_big {
        (p.alpha, p.beta)
    } else {
        (p.beta, p.alpha)
    };
    let gap = big - small;
    let mut e = [0.0; L];
    let mut m = [0.0; L];
    let mut z = [0.0; L];
    let mut rho = [0.0; L];
    let mut one_minus_rho = [0.0; L];
    // rho^(m+k) and 1 - rho^(m+k) at the current k.
    let mut power = [0.0; L];
    let mut complement = [0.0; L];
    let mut exponent = [0.0; L];
    let mut served = [false; L];
    let mut certain = [false; L];
    for l in 0..L {
        let rx = p.r + x[l];
        e[l] = if alpha_big { p.s + 1.0 } else { rx };
        let f = if alpha_big { p.s } else { rx };
        m[l] = rx + p.s;
        let base = big + t_x[l];
        z[l] = gap / base;
        let delta = age[l] - t_x[l];
        let rel = delta / base;
        let ln_rho = -ln_1p(rel);
        rho[l] = 1.0 / (1.0 + rel);
        one_minus_rho[l] = rel * rho[l];
        let m_ln_rho = m[l] * ln_rho;
        let (rho_m, rho_m_minus_1) = exp_and_expm1(m_ln_rho);
        power[l] = rho_m;
        complement[l] = -rho_m_minus_1;
        exponent[l] = -f * ln_1p(gap / (small + age[l])) - m_ln_rho;
        let z_max = SERIES_MAX_Z.min(SERIES_MAX_PEAK / (SERIES_MAX_PEAK + e[l]));
        certain[l] = delta == 0.0;
        // (Comparisons with NaN are false: such rows are not served.)
        // (`&`, not `&&`: no branch per lane, so the lanes stay in one SIMD register.)
        served[l] = (delta > 0.0) & (z[l] <= z_max) & (exponent[l].abs() < f64::INFINITY);
    }
    let mut done = served.map(|s| !s);
    let mut w = [1.0; L];
    let mut sum = [0.0; L];
    let mut k = 0.0f64;
    let mut odd = false;
    loop {
        for l in 0..L {
            // One division for both 1/(m+k) and 1/(k+1).
            let n = m[l] + k;
            let inv = 1.0 / (n * (k + 1.0));
            let term = w[l] * complement[l] * ((k + 1.0) * inv);
            let next = sum[l] + term;
            // Later term ratios are at most q = zm / b (see `ln_integral_by_series`), so the
            // tail is below term q / (1 - q) = term zm / slack.
            let b = k + 2.0;
            let zm = z[l] * (e[l] + k + 1.0).max(b);
            let slack = b - zm;
            let stop = (k >= 1.0) & (slack > 0.0) & (term * zm <= SERIES_TOLERANCE * next * slack);
            sum[l] = if done[l] { sum[l] } else { next };
            done[l] |= stop;
            w[l] *= (e[l] + k) * z[l] * (n * inv);
            complement[l] += power[l] * one_minus_rho[l];
            power[l] *= rho[l];
        }
        // The exit test (a reduction over the lanes, and a branch that waits on the term's
        // division) after every second term only: a finished lane's sum stays as it is, so a
        // term more costs time, not bits.
        if odd || k >= SERIES_MAX_TERMS as f64 {
            let mut all_done = true;
            for d in done {
                all_done &= d;
            }
            if all_done || k >= SERIES_MAX_TERMS as f64 {
                break;
            }
        }
        odd = !odd;
        k += 1.0;
    }
    let mut out = [0.0; L];
    for l in 0..L {
        let alive = 1.0 / (1.0 + p.s * exp(exponent[l]) * sum[l]);
        // (Comparisons, not `is_finite`, and selects: the lanes stay in one SIMD register.)
        let good = served[l] & done[l] & (alive >= 0.0);
        let value = if good { alive } else { f64::NAN };
        out[l] = if certain[l] { 1.0 } else { value };
    }
    out
}

/// [`survival_integral`](super::predict::survival_integral) with the crate's vectorisable
/// `ln_1p` and `expm1`.
#[inline(always)]
pub(super) fn survival_integral_lanes(s: f64, b: f64, t: f64) -> f64 {
    let l = ln_1p(t / b);
    let eps = s - 1.0;
    // Both sides, then a select (a branch per lane would keep the lanes out of SIMD).
    let general = -expm1(-eps * l) / eps;
    if eps == 0.0 {
        l
    } else {
        general
    }
}

/// Expected purchases in `t` of an active customer (x, T): `(r+x)/(alpha+T)` times the expected
/// active time, `b` times the survival integral, `b = beta + T`.
#[inline(always)]
pub(super) fn active_expected_purchases(p: &ParetoNbdParams, x: f64, age: f64, t: f64) -> f64 {
    let b = p.beta + age;
    (p.r + x) / (p.alpha + age) * (b * survival_integral_lanes(p.s, b, t))
}

/// P(alive) (`horizon` None) or the conditional expected purchases in the horizon for `L`
/// rows; NaN where the series does not serve the row.
#[inline(always)]
pub(super) fn predict_lanes<const L: usize>(
    p: &ParetoNbdParams,
    horizon: Option<f64>,
    x: [f64; L],
    t_x: [f64; L],
    age: [f64; L],
) -> [f64; L] {
    let mut out = alive_lanes::<L>(p, x, t_x, age);
    if let Some(t) = horizon {
        for l in 0..L {
            out[l] *= active_expected_purchases(p, x[l], age[l], t);
        }
    }
    out
}

/// One block of rows, `L` at a time (the last group padded with copies of its last row).
#[inline(always)]
fn predict_block<const L: usize>(
    p: &ParetoNbdParams,
    horizon: Option<f64>,
    x: &[f64],
    t_x: &[f64],
    age: &[f64],
    out: &mut [f64],
) {
    let n = out.len();
    let mut i = 0;
    while i < n {
        let take = (n - i).min(L);
        let lane = |c: &[f64]| -> [f64; L] { std::array::from_fn(|l| c[i + l.min(take - 1)]) };
        let v = predict_lanes::<L>(p, horizon, lane(x), lane(t_x), lane(age));
        out[i..i + take].copy_from_slice(&v[..take]);
        i += take;
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
fn predict_block_avx2<const L: usize>(
    p: &ParetoNbdParams,
    horizon: Option<f64>,
    x: &[f64],
    t_x: &[f64],
    age: &[f64],
    out: &mut [f64],
) {
    predict_block::<L>(p, horizon, x, t_x, age, out)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx2")]
fn predict_block_avx512<const L: usize>(
    p: &ParetoNbdParams,
    horizon: Option<f64>,
    x: &[f64],
    t_x: &[f64],
    age: &[f64],
    out: &mut [f64],
) {
    predict_block::<L>(p, horizon, x, t_x, age, out)
}

/// The block kernel in the widest SIMD the processor has: eight rows in AVX-512 registers
/// (1.6x the four AVX2 rows on the 2-core Xeon of BENCHMARKS.md; four or sixteen AVX-512
/// rows were slower), four in AVX2, or four in the baseline instructions. A row's bits do
/// not depend on which (see the module documentation).
fn predict_block_dispatch(
    p: &ParetoNbdParams,
    horizon: Option<f64>,
    x: &[f64],
    t_x: &[f64],
    age: &[f64],
    out: &mut [f64],
) {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx512f") {
        // SAFETY: the processor supports AVX-512F (checked just above), and so AVX2.
        return unsafe { predict_block_avx512::<WIDE_LANES>(p, horizon, x, t_x, age, out) };
    }
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx2") {
        // SAFETY: the processor supports AVX2 (checked just above).
        return unsafe { predict_block_avx2::<LANES>(p, horizon, x, t_x, age, out) };
    }
    predict_block::<LANES>(p, horizon, x, t_x, age, out)
}

/// P(alive) (`horizon` None) or the conditional expected purchases in `horizon` for every row,
/// in parallel: the same values, bit for bit, as [`super::probability_alive`] and
/// [`super::conditional_expected_purchases`] row by row.
pub fn predict_bulk(
    p: &ParetoNbdParams,
    columns: &RfmColumns<'_>,
    horizon: Option<f64>,
    exec: &Exec,
    out: &mut [f64],
) {
    if let Some(t) = horizon {
        if !(t > 0.0) {
            out.fill(0.0);
            return;
        }
    }
    exec.fill_blocks(out, |start, block| {
        let rows = start..start + block.len();
        let (x, t_x, age) = (
            &columns.frequency[rows.clone()],
            &columns.recency[rows.clone()],
            &columns.age[rows],
        );
        predict_block_dispatch(p, horizon, x, t_x, age, block);
        for (j, slot) in block.iter_mut().enumerate() {
            if slot.is_nan() {
                let alive = probability_alive_by_integral(p, x[j], t_x[j], age[j]);
                *slot = match horizon {
                    None => alive,
                    Some(t) => alive * active_expected_purchases(p, x[j], age[j], t),
                };
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::models::pnbd::testing::{parameter_grid, BTYD, ROWS};
    use crate::models::pnbd::{conditional_expected_purchases, probability_alive, simulate};
    use crate::models::testing::rel;

    /// Histories of the shared grid, and more tails: x = 0 and huge, t_x at and near T, huge T.
    fn rows() -> Vec<(f64, f64, f64)> {
        let mut rows = ROWS.to_vec();
        rows.extend([
            (0.0, 0.0, 1e-9),
            (0.0, 0.0, 1e6),
            (2.0, 39.0 - 1e-12, 39.0),
            (2.0, 39.0 - 1e-6, 39.0),
            (1000.0, 50.0, 52.0),
            (1.0, 1e5, 1e7),
            (40.0, 3.0, 400.0),
        ]);
        rows
    }

    fn parameters() -> Vec<ParetoNbdParams> {
        let mut grid = parameter_grid();
        grid.extend([
            ParetoNbdParams::new(0.55, 10.0, 1.0, 12.0),
            ParetoNbdParams::new(1e-3, 1e-3, 1e-3, 1e-3),
            ParetoNbdParams::new(1e3, 1e3, 1e3, 1.1e3),
            ParetoNbdParams::new(0.5, 11.0, 0.6, 10.0),
            ParetoNbdParams::new(1e12, 1e12, 0.5, 1e12),
        ]);
        grid
    }

    #[test]
    fn the_lane_series_agrees_with_the_likelihood_terms() {
        let mut served = 0;
        for p in parameters() {
            for (x, t_x, age) in rows() {
                let lanes = predict_lanes::<1>(&p, None, [x], [t_x], [age])[0];
                if lanes.is_nan() {
                    continue;
                }
                served += 1;
                let old = probability_alive_by_integral(&p, x, t_x, age);
                // (Relative errors in P are absolute errors in ln P: both paths carry a few
                // ulps of its size.)
                assert!(
                    rel(lanes, old) < 1e-13 * (1.0 + old.ln().abs())
                        || (lanes - old).abs() < 1e-300,
                    "{p:?} {x} {t_x} {age}: {lanes} vs {old}"
                );
                // 1 - P too, where it is not rounded away. (The likelihood terms subtract
                // logarithms of size x ln T: at x = 300 they round 1 - P by 1.1e-13 relative,
                // where the lanes agree with mpmath to 1e-16.)
                if old < 0.5 {
                    continue;
                }
                let (gone, gone_old) = (1.0 - lanes, 1.0 - old);
                assert!(
                    (gone - gone_old).abs() <= 5e-13 * gone_old.max(1e-3),
                    "{p:?} {x} {t_x} {age}: {gone} vs {gone_old}"
                );
            }
        }
        assert!(served > 40, "{served}");
    }

    #[test]
    fn bulk_gives_the_bits_of_one_row_at_a_time_for_any_thread_count() {
        let n = 3 * crate::parallel::CHUNK_ROWS + 7;
        let ages: Vec<f64> = (0..n)
            .map(|i| 26.0 + 52.0 * ((i * 7919) % n) as f64 / n as f64)
            .collect();
        for p in [
            BTYD,
            ParetoNbdParams::new(0.55, 10.0, 0.6, 0.1),
            ParetoNbdParams::new(2.0, 30.0, 1.0, 5.0),
        ] {
            let (mut x, mut t_x) = simulate(&p, &ages, 5);
            // A row at t_x = T and one the series does not serve.
            x[3] = 4.0;
            t_x[3] = ages[3];
            let columns = RfmColumns::new(&x, &t_x, &ages);
            for horizon in [None, Some(52.0)] {
                let mut serial = vec![0.0; n];
                predict_bulk(&p, &columns, horizon, &Exec::Serial, &mut serial);
                let mut parallel = vec![0.0; n];
                predict_bulk(
                    &p,
                    &columns,
                    horizon,
                    &Exec::with_jobs(Some(2)).unwrap(),
                    &mut parallel,
                );
                assert_eq!(serial, parallel);
                for i in 0..n {
                    let one = match horizon {
                        None => probability_alive(&p, x[i], t_x[i], ages[i]),
                        Some(t) => conditional_expected_purchases(&p, x[i], t_x[i], ages[i], t),
                    };
                    assert_eq!(serial[i].to_bits(), one.to_bits(), "row {i}");
                }
            }
        }
    }
}
