//! Posterior predictions of BG/NBD and MBG/NBD for many customers and draws: expected
//! purchases, weighted sums of them (customer value, with Gamma-Gamma spend) and P(alive).
//!
//! The generic streamed path ([`super::predict::posterior_predict`]) calls the models' bulk
//! predictions once per draw and block of customers, so every draw rebuilds the per-frequency
//! interpolants of each block and every customer's columns go through memory once per draw.
//! Here the work is split by what it depends on:
//!
//! - per draw, once for all customers: the constants of the draw and, for every frequency
//!   shared by at least [`MIN_GROUP`] customers, one Chebyshev interpolant of the
//!   active-customer expectation (the hypergeometric part: it depends on (x, T) and the draw
//!   only) in ln(alpha + T) over that frequency's whole range of T (a table of size
//!   frequencies x coefficients per draw, independent of the customers);
//! - per customer and draw: P(alive) (one `ln`, `ln_1p` and `exp`, vectorised), ln(alpha + T),
//!   one short polynomial and the spend (two divisions).
//!
//! Customers run in order of frequency, in blocks of [`super::predict::exact_block`] (a fixed
//! budget of values over the draws), draws inner, so a block's columns stay in cache across the
//! draws and its values give exact credible intervals
//! ([`super::predict::posterior_predict_exact`]). Within a block, each run of one frequency
//! shares the draw's interpolant (one piece: evaluated vectorised over the run) and, without
//! repeat flips, skips P(alive).

use std::ops::Range;

use super::predict::{posterior_predict_exact, PosteriorPrediction, PredictOptions};
use crate::chebyshev::{self, Interpolant, TERMS};
use crate::data::RfmColumns;
use crate::error::Result;
use crate::models::bgnbd::active_expected_purchases;
use crate::models::gamma_gamma::GammaGammaParams;
use crate::models::BgNbdParams;

/// Largest frequency indexed by the per-draw tables (a larger one is left to the generic path).
pub const MAX_FREQUENCY: f64 = 1024.0;

/// Customers sharing a frequency from which that frequency gets an interpolant per draw
/// (building one costs about as much as evaluating this many customers directly).
pub const MIN_GROUP: usize = 16;

/// Relative accuracy demanded of the interpolants at every draw.
///
/// Each draw's value is within this of the exact prediction (relative), so the posterior
/// mean and every order statistic, hence the interval ends, are too. That is far below the
/// Monte-Carlo error of the summaries themselves: the standard error of a posterior mean from
/// 4,000 draws is sd / 63 (at least 1.6e-5 of the mean for a posterior sd of 0.1% of it, and
/// CLV posteriors are wider: 5-20% on CDNOW), and the sampling error of a 5% quantile is larger
/// still. The models' bulk predictions demand 1e-13, where the number is the answer itself;
/// here the looser demand takes one halving of the pieces less (Chebyshev series of degree 15
/// gain about 2^16 per halving), which roughly halves the per-draw builds.
pub const TOLERANCE: f64 = 1e-9;

/// Rows whose interpolants are evaluated in lockstep.
const LOCKSTEP: usize = 8;

/// Gamma-Gamma spend draws (paired with the purchase draws: draw `s` uses spend draw
/// `s mod draws.len()`) and the spend columns of the same customers.
pub struct SpendInput<'a> {
    pub draws: &'a [GammaGammaParams],
    pub frequency: &'a [f64],
    pub monetary: &'a [f64],
}

/// What is predicted.
pub enum Quantity<'a> {
    /// `sum_j w_j E[X(T, T + t_j)]` for the `(w_j, t_j)` given (one pair: expected purchases).
    Weighted(&'a [(f64, f64)]),
    /// P(alive at T).
    ProbabilityAlive,
}

/// One draw's constants and interpolants.
struct DrawTable {
    p: BgNbdParams,
    ln_a: f64,
    /// By frequency: the active-customer expectation's interpolant in ln(alpha + T).
    active: Vec<Option<Interpolant>>,
}

/// Posterior mean, sd and (with `opts.level`) exact credible intervals of `quantity` times
/// `scale` (one value or one per customer) times, with `spend`, each customer's Gamma-Gamma
/// expected spend. `None` when a frequency exceeds [`MAX_FREQUENCY`] (the caller uses the
/// generic path). The values agree with the models' per-draw bulk predictions to the
/// interpolants' tolerance, and are bit-identical for any thread count.
pub fn bg_posterior_predict(
    draws: &[BgNbdParams],
    columns: &RfmColumns<'_>,
    quantity: &Quantity<'_>,
    scale: Option<&[f64]>,
    spend: Option<&SpendInput<'_>>,
    opts: &PredictOptions<'_>,
) -> Result<Option<PosteriorPrediction>> {
    let n = columns.len();
    let max_x = columns.frequency.iter().fold(0.0f64, |m, &x| m.max(x));
    if !(max_x <= MAX_FREQUENCY) {
        return Ok(None);
    }
    // Count and range of T of each frequency over all customers.
    let mut groups = vec![(0usize, f64::INFINITY, f64::NEG_INFINITY); max_x as usize + 1];
    for (&x, &age) in columns.frequency.iter().zip(columns.age) {
        let g = &mut groups[x as usize];
        *g = (g.0 + 1, g.1.min(age), g.2.max(age));
    }
    let horizons: &[(f64, f64)] = match quantity {
        Quantity::Weighted(h) => h,
        Quantity::ProbabilityAlive => &[],
    };
    let alive_only = matches!(quantity, Quantity::ProbabilityAlive);
    let active_sum = |p: &BgNbdParams, x: f64, rate: f64| -> f64 {
        horizons
            .iter()
            .map(|&(w, t)| w * active_expected_purchases(p.r + x, rate, t, p.a, p.b + p.flips(x)))
            .sum()
    };
    // One draw's interpolants, each fit starting from `first[x]` pieces.
    let build = |p: BgNbdParams, first: &[usize]| -> DrawTable {
        let active = groups
            .iter()
            .enumerate()
            .map(|(x, &(count, lo, hi))| {
                if alive_only || count < MIN_GROUP || !(hi > lo) {
                    return None;
                }
                let ln = crate::fastmath::ln;
                Interpolant::fit_from(
                    |v| active_sum(&p, x as f64, v.exp()),
                    ln(p.alpha + lo),
                    ln(p.alpha + hi),
                    TOLERANCE,
                    first[x],
                )
            })
            .collect();
        DrawTable {
            p,
            ln_a: p.a.ln(),
            active,
        }
    };
    // The first draw's piece counts, found by doubling from one, start every draw's fits
    // (draws differ little, so most fits pass at the first count tried instead of failing
    // at each smaller one first). Fixed by the first draw alone: the same tables for any
    // thread count.
    let pilot = build(draws[0], &vec![1; groups.len()]);
    let first: Vec<usize> = pilot
        .active
        .iter()
        .map(|f| f.as_ref().map_or(1, Interpolant::pieces))
        .collect();
    let indices: Vec<usize> = (0..draws.len()).collect();
    let tables: Vec<DrawTable> = opts.exec.map(&indices, |&s| build(draws[s], &first));
    let n_draws = draws.len();
    // Customers in order of frequency (a stable counting sort): a block then holds long runs
    // of one frequency, which share each draw's interpolant and, without repeat flips, skip
    // P(alive). A customer's values do not depend on its neighbours, so the order changes
    // no result; the summaries are put back in the customers' order at the end.
    let Ok(n_u32) = u32::try_from(n) else {
        return Ok(None);
    };
    let mut starts = vec![0u32; groups.len() + 1];
    for (x, g) in groups.iter().enumerate() {
        starts[x + 1] = starts[x] + g.0 as u32;
    }
    let mut order = vec![0u32; n];
    for (i, &x) in (0..n_u32).zip(columns.frequency) {
        let slot = &mut starts[x as usize];
        order[*slot as usize] = i;
        *slot += 1;
    }
    let fill = |range: Range<usize>, values: &mut [f64]| -> Result<()> {
        let m = range.len();
        let ids = &order[range];
        let gather = |v: &[f64]| -> Vec<f64> { ids.iter().map(|&i| v[i as usize]).collect() };
        let (x, t_x, age) = (
            gather(columns.frequency),
            gather(columns.recency),
            gather(columns.age),
        );
        // The draw-independent factor of each customer.
        let fixed: Vec<f64> = match scale {
            Some(v) if v.len() == 1 => vec![v[0]; m],
            Some(v) => gather(v),
            None => vec![1.0; m],
        };
        let spend_columns = spend.map(|sp| (gather(sp.frequency), gather(sp.monetary)));
        // Runs of one frequency.
        let mut runs = Vec::new();
        let mut a = 0;
        while a < m {
            let b = a + x[a..].iter().take_while(|&&v| v == x[a]).count();
            runs.push(a..b);
            a = b;
        }
        let mut alive = vec![0.0; m];
        let mut ln_rate = vec![0.0; m];
        for (s, table) in tables.iter().enumerate() {
            let out = &mut values[s * m..(s + 1) * m];
            let p = &table.p;
            for run in &runs {
                let frequency = x[run.start];
                let (alive, ln_rate) = (&mut alive[run.clone()], &mut ln_rate[run.clone()]);
                let (x, t_x, age) = (&x[run.clone()], &t_x[run.clone()], &age[run.clone()]);
                let out = &mut out[run.clone()];
                let ln_a = (p.flips(frequency) > 0.0).then_some(table.ln_a);
                alive_block_dispatch(p, ln_a, x, t_x, age, alive, ln_rate);
                if alive_only {
                    out.copy_from_slice(alive);
                    continue;
                }
                let interpolant = table.active[frequency as usize].as_ref();
                let covered = |f: &&Interpolant| ln_rate.iter().all(|&v| f.covers(v));
                if let Some((c, lo, per_unit)) = interpolant
                    .filter(covered)
                    .and_then(Interpolant::single_piece)
                {
                    // One series for the whole run, vectorised over its customers.
                    interpolate_dispatch(c, lo, per_unit, ln_rate, out);
                    for (o, &a) in out.iter_mut().zip(alive.iter()) {
                        *o *= a;
                    }
                    continue;
                }
                let lookup = |j: usize| {
                    interpolant
                        .filter(|f| f.covers(ln_rate[j]))
                        .map(|f| f.locate(ln_rate[j]))
                };
                let direct = |j: usize| active_sum(p, frequency, p.alpha + age[j]);
                let len = out.len();
                let mut j = 0;
                while j + LOCKSTEP <= len {
                    let found: [_; LOCKSTEP] = std::array::from_fn(|l| lookup(j + l));
                    if found.iter().all(Option::is_some) {
                        let found = found.map(|f| f.expect("checked"));
                        let v = chebyshev::eval_many(found.map(|(c, _)| c), found.map(|(_, u)| u));
                        for l in 0..LOCKSTEP {
                            out[j + l] = alive[j + l] * v[l];
                        }
                    } else {
                        for l in 0..LOCKSTEP {
                            out[j + l] = alive[j + l]
                                * match found[l] {
                                    Some((c, u)) => chebyshev::eval_many([c], [u])[0],
                                    None => direct(j + l),
                                };
                        }
                    }
                    j += LOCKSTEP;
                }
                for j in j..len {
                    out[j] = alive[j]
                        * match lookup(j) {
                            Some((c, u)) => chebyshev::eval_many([c], [u])[0],
                            None => direct(j),
                        };
                }
            }
            for (o, f) in out.iter_mut().zip(&fixed) {
                *o *= f;
            }
            if let Some((frequency, monetary)) = &spend_columns {
                let sp = spend.expect("spend columns come from it");
                let g = &sp.draws[s % sp.draws.len()];
                let weight_denominator = g.q - 1.0;
                // A customer without repeat purchases spends the population mean: once per
                // draw (its error only if some customer needs it).
                let population_mean = g.population_mean();
                for ((o, &fx), &mbar) in out.iter_mut().zip(frequency).zip(monetary) {
                    // Gamma-Gamma's conditional expected spend (its own function where it is
                    // undefined, for its errors).
                    let spent = if fx > 0.0 && g.p * fx + weight_denominator > 0.0 {
                        let weight = 1.0 / (1.0 + weight_denominator / (g.p * fx));
                        weight / fx * g.gamma + weight * mbar
                    } else if fx == 0.0 {
                        population_mean.clone()?
                    } else {
                        g.conditional_expected_spend(fx, mbar)?
                    };
                    *o *= spent;
                }
            }
        }
        Ok(())
    };
    let sorted = posterior_predict_exact(n, n_draws, fill, opts)?;
    // Back to the customers' order.
    let unsort = |v: Vec<f64>| -> Vec<f64> {
        let mut back = vec![0.0; n];
        for (&i, value) in order.iter().zip(v) {
            back[i as usize] = value;
        }
        back
    };
    Ok(Some(PosteriorPrediction {
        mean: unsort(sorted.mean),
        sd: unsort(sorted.sd),
        lower: sorted.lower.map(unsort),
        upper: sorted.upper.map(unsort),
    }))
}

/// P(alive) and ln(alpha + T) of a block of customers at one draw, branch-free so that it
/// vectorises (the formula of the models' bulk P(alive), with the crate's `ln` and `exp`).
/// `ln_a` is the draw's ln a, or `None` when no customer of the block has a repeat flip
/// (P(alive) is then 1 and only ln(alpha + T) is computed).
#[inline(always)]
fn alive_block(
    p: &BgNbdParams,
    ln_a: Option<f64>,
    x: &[f64],
    t_x: &[f64],
    age: &[f64],
    alive: &mut [f64],
    ln_rate: &mut [f64],
) {
    use crate::fastmath::{exp, ln, ln_1p};
    let Some(ln_a) = ln_a else {
        // No repeat flips (a BG/NBD customer without repeat purchases): alive for sure.
        for ((slot, rate), &age) in alive.iter_mut().zip(ln_rate.iter_mut()).zip(age) {
            *rate = ln(p.alpha + age);
            *slot = 1.0;
        }
        return;
    };
    for ((((slot, rate), &x), &t_x), &age) in alive
        .iter_mut()
        .zip(ln_rate.iter_mut())
        .zip(x)
        .zip(t_x)
        .zip(age)
    {
        *rate = ln(p.alpha + age);
        let k = p.flips(x);
        let repeat = k > 0.0;
        let bx1 = if repeat { p.b + (k - 1.0) } else { 1.0 };
        let odds = ln_a - ln(bx1) + (p.r + x) * ln_1p((age - t_x) / (p.alpha + t_x));
        let e = exp(-odds.abs());
        let a = if odds > 0.0 { e } else { 1.0 } / (1.0 + e);
        *slot = if repeat { a } else { 1.0 };
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
fn alive_block_avx2(
    p: &BgNbdParams,
    ln_a: Option<f64>,
    x: &[f64],
    t_x: &[f64],
    age: &[f64],
    alive: &mut [f64],
    ln_rate: &mut [f64],
) {
    alive_block(p, ln_a, x, t_x, age, alive, ln_rate)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx2")]
fn alive_block_avx512(
    p: &BgNbdParams,
    ln_a: Option<f64>,
    x: &[f64],
    t_x: &[f64],
    age: &[f64],
    alive: &mut [f64],
    ln_rate: &mut [f64],
) {
    alive_block(p, ln_a, x, t_x, age, alive, ln_rate)
}

/// [`alive_block`] in the widest SIMD the processor has (the same operations, without FMA,
/// in each: the same bits).
fn alive_block_dispatch(
    p: &BgNbdParams,
    ln_a: Option<f64>,
    x: &[f64],
    t_x: &[f64],
    age: &[f64],
    alive: &mut [f64],
    ln_rate: &mut [f64],
) {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx512f") {
        // SAFETY: the processor supports AVX-512F (checked just above), and so AVX2.
        return unsafe { alive_block_avx512(p, ln_a, x, t_x, age, alive, ln_rate) };
    }
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx2") {
        // SAFETY: the processor supports AVX2 (checked just above).
        return unsafe { alive_block_avx2(p, ln_a, x, t_x, age, alive, ln_rate) };
    }
    alive_block(p, ln_a, x, t_x, age, alive, ln_rate)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
fn interpolate_avx2(c: &[f64; TERMS], lo: f64, per_unit: f64, xs: &[f64], out: &mut [f64]) {
    chebyshev::eval_at_points(c, lo, per_unit, xs, out)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx2")]
fn interpolate_avx512(c: &[f64; TERMS], lo: f64, per_unit: f64, xs: &[f64], out: &mut [f64]) {
    chebyshev::eval_at_points(c, lo, per_unit, xs, out)
}

/// [`chebyshev::eval_at_points`] in the widest SIMD the processor has (no FMA: the same bits
/// in each, and those of the interpolant's scalar evaluation).
fn interpolate_dispatch(c: &[f64; TERMS], lo: f64, per_unit: f64, xs: &[f64], out: &mut [f64]) {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx512f") {
        // SAFETY: the processor supports AVX-512F (checked just above), and so AVX2.
        return unsafe { interpolate_avx512(c, lo, per_unit, xs, out) };
    }
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx2") {
        // SAFETY: the processor supports AVX2 (checked just above).
        return unsafe { interpolate_avx2(c, lo, per_unit, xs, out) };
    }
    chebyshev::eval_at_points(c, lo, per_unit, xs, out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bayes::predict::posterior_predict;
    use crate::models::bgnbd::probability_alive;
    use crate::models::RfmModel;
    use crate::parallel::Exec;

    fn customers(n: usize) -> (Vec<f64>, Vec<f64>, Vec<f64>) {
        let p = BgNbdParams::new(0.5, 4.0, 0.8, 2.4);
        let ages: Vec<f64> = (0..n).map(|i| 20.0 + (i % 97) as f64 * 0.61).collect();
        let (x, t_x) = p.simulate(&ages, 3).expect("simulator");
        (x, t_x, ages)
    }

    fn posterior(k: usize, modified: bool) -> Vec<BgNbdParams> {
        (0..k)
            .map(|s| {
                let u = s as f64 / k as f64;
                let mut p = BgNbdParams::new(0.4 + 0.2 * u, 3.5 + u, 0.7 + 0.2 * u, 2.0 + u);
                p.modified = modified;
                p
            })
            .collect()
    }

    /// The prediction of every draw by the model's own scalar functions.
    fn per_draw(
        draws: &[BgNbdParams],
        cols: &RfmColumns<'_>,
        horizons: Option<&[(f64, f64)]>,
    ) -> Vec<Vec<f64>> {
        (0..cols.len())
            .map(|i| {
                let (x, t_x, age) = (cols.frequency[i], cols.recency[i], cols.age[i]);
                draws
                    .iter()
                    .map(|p| match horizons {
                        Some(h) => h
                            .iter()
                            .map(|&(w, t)| w * p.conditional_expected_purchases(x, t_x, age, t))
                            .sum(),
                        None => probability_alive(p, x, t_x, age),
                    })
                    .collect()
            })
            .collect()
    }

    #[test]
    fn matches_per_draw_predictions_with_exact_intervals() {
        let (x, t_x, age) = customers(700);
        let cols = RfmColumns::new(&x, &t_x, &age);
        let horizons = [(1.0, 4.0), (0.9, 8.0), (0.8, 12.0)];
        for modified in [false, true] {
            let draws = posterior(37, modified);
            for (quantity, h) in [
                (Quantity::Weighted(&horizons), Some(&horizons[..])),
                (Quantity::ProbabilityAlive, None),
            ] {
                let opts = PredictOptions {
                    level: Some(0.9),
                    // Blocks of 100 customers.
                    histogram_budget: 8 * 37 * 100,
                    ..PredictOptions::default()
                };
                let got = bg_posterior_predict(&draws, &cols, &quantity, None, None, &opts)
                    .unwrap()
                    .unwrap();
                let want = per_draw(&draws, &cols, h);
                for (i, v) in want.iter().enumerate() {
                    let mean = v.iter().sum::<f64>() / v.len() as f64;
                    assert!((got.mean[i] - mean).abs() <= 10.0 * TOLERANCE * mean, "{i}");
                    let mut sorted = v.clone();
                    let (lo, hi) = crate::bayes::predict::two_quantiles(&mut sorted, 0.05, 0.95);
                    let (l, u) = (
                        got.lower.as_ref().unwrap()[i],
                        got.upper.as_ref().unwrap()[i],
                    );
                    assert!(
                        (l - lo).abs() <= 10.0 * TOLERANCE * lo
                            && (u - hi).abs() <= 10.0 * TOLERANCE * hi
                    );
                }
                let many = bg_posterior_predict(
                    &draws,
                    &cols,
                    &quantity,
                    None,
                    None,
                    &PredictOptions {
                        exec: Exec::with_jobs(Some(3)).unwrap(),
                        ..opts.clone()
                    },
                )
                .unwrap()
                .unwrap();
                assert_eq!(got, many);
            }
        }
    }

    #[test]
    fn spend_and_scale_multiply_each_draw() {
        let (x, t_x, age) = customers(300);
        let cols = RfmColumns::new(&x, &t_x, &age);
        let draws = posterior(9, false);
        let spend_draws: Vec<GammaGammaParams> = (0..4)
            .map(|s| GammaGammaParams {
                p: 6.0 + s as f64,
                q: 4.0,
                gamma: 15.0,
            })
            .collect();
        let monetary: Vec<f64> = (0..300).map(|i| 10.0 + (i % 13) as f64).collect();
        let spend = SpendInput {
            draws: &spend_draws,
            frequency: &x,
            monetary: &monetary,
        };
        let scale = [2.0];
        let horizons = [(1.0, 10.0)];
        let got = bg_posterior_predict(
            &draws,
            &cols,
            &Quantity::Weighted(&horizons),
            Some(&scale),
            Some(&spend),
            &PredictOptions::default(),
        )
        .unwrap()
        .unwrap();
        // The generic streamed path with the models' bulk predictions.
        let want = posterior_predict(
            300,
            9,
            |s, range, out| {
                let p = draws[s];
                for (o, i) in out.iter_mut().zip(range) {
                    let g = spend_draws[s % 4];
                    *o = 2.0
                        * p.conditional_expected_purchases(x[i], t_x[i], age[i], 10.0)
                        * g.conditional_expected_spend(x[i], monetary[i]).unwrap();
                }
                Ok(())
            },
            &PredictOptions::default(),
        )
        .unwrap();
        for i in 0..300 {
            assert!((got.mean[i] - want.mean[i]).abs() <= 10.0 * TOLERANCE * want.mean[i]);
        }
    }

    #[test]
    fn quantiles_are_numpys_linear_ones() {
        let mut v: Vec<f64> = (0..11).map(|i| ((i * 7) % 11) as f64).collect();
        // Sorted 0..=10: the 5% point is at position 0.5, the 95% point at 9.5.
        assert_eq!(
            crate::bayes::predict::two_quantiles(&mut v, 0.05, 0.95),
            (0.5, 9.5)
        );
        let mut one = vec![3.0];
        assert_eq!(
            crate::bayes::predict::two_quantiles(&mut one, 0.05, 0.95),
            (3.0, 3.0)
        );
        let mut two = vec![2.0, 1.0];
        assert_eq!(
            crate::bayes::predict::two_quantiles(&mut two, 0.5, 0.5),
            (1.5, 1.5)
        );
    }
}
