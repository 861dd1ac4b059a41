//! Predictions of the BG/NBD family for many customers at once, in parallel: P(alive)
//! vectorised (SIMD), and expected purchases through one Chebyshev interpolant per
//! well-populated frequency.

use super::predict::{active_expected_purchases, ActiveSeriesTable};
use super::BgNbdParams;
use crate::chebyshev::{self, Interpolant};
use crate::data::RfmColumns;
use crate::parallel::Exec;

/// [`probability_alive`] for many customers, in parallel and vectorised (branch-free, with the
/// crate's SIMD-friendly `ln` and `exp`; agrees with the scalar function to about 1e-14).
pub fn probability_alive_bulk(
    p: &BgNbdParams,
    columns: &RfmColumns<'_>,
    exec: &Exec,
    out: &mut [f64],
) {
    exec.fill_blocks(out, |start, block| {
        let rows = start..start + block.len();
        probability_alive_block_dispatch(
            p,
            &columns.frequency[rows.clone()],
            &columns.recency[rows.clone()],
            &columns.age[rows],
            block,
        );
    });
}

#[inline(always)]
fn probability_alive_block(p: &BgNbdParams, x: &[f64], t_x: &[f64], age: &[f64], out: &mut [f64]) {
    use crate::fastmath::{exp, ln_finish, ln_reduce};
    /// 2^54, which scales a subnormal into the normal range (as `fastmath::ln` does).
    const SCALE: f64 = 18_014_398_509_481_984.0;
    let ln_a = p.a.ln();
    for (((slot, &x), &t_x), &age) in out.iter_mut().zip(x).zip(t_x).zip(age) {
        // For x = 0 the odds are -inf (P = 1); computed on a harmless stand-in to stay branch-free.
        let k = p.flips(x);
        let repeat = k > 0.0;
        let bx1 = if repeat { p.b + (k - 1.0) } else { 1.0 };
        // ln((alpha + T) / (alpha + t_x)) as ln(1 + g) of the relative gap g: no cancellation
        // when t_x is close to T and r + x is large. ln(1 + g) = ln(u) g / (u - 1) with
        // u = 1 + g rounded (Goldberg 1991, theorem 4; as `fastmath::ln_1p`); the correction
        // g / (u - 1) is needed only below g = 1 (above, u holds 1 + g to half an ulp of a
        // logarithm of at least ln 2), and u - 1 = 0 leaves ln(1 + g) = g.
        let g = (age - t_x) / (p.alpha + t_x);
        let u = 1.0 + g;
        let d = u - 1.0;
        let corrects = d > 0.0 && d < 1.0;
        let correction_denominator = if corrects { d } else { 1.0 };
        // The two logarithms (ln(b + x - 1) and ln u) and the correction share one division:
        // this loop was bound by its divisions (six a row, four now; `ln_finish` needs each
        // f / (2 + f) only to a few ulps).
        let tiny = bx1 < f64::MIN_POSITIVE;
        let (kb, fb) = ln_reduce(if tiny { bx1 * SCALE } else { bx1 });
        let kb = kb - if tiny { 54.0 } else { 0.0 };
        let (ku, fu) = ln_reduce(u);
        let (db, du) = (2.0 + fb, 2.0 + fu);
        let q = 1.0 / (db * du * correction_denominator);
        let ln_bx1 = ln_finish(kb, fb, fb * (du * correction_denominator) * q);
        let ln_u = ln_finish(ku, fu, fu * (db * correction_denominator) * q);
        let ln_gap = if corrects {
            ln_u * (g * (db * du) * q)
        } else if d == 0.0 {
            g
        } else {
            ln_u
        };
        let odds = ln_a - ln_bx1 + (p.r + x) * ln_gap;
        // logistic(-odds), exact in both tails.
        let e = exp(-odds.abs());
        let alive = if odds > 0.0 { e } else { 1.0 } / (1.0 + e);
        *slot = if repeat { alive } else { 1.0 };
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
fn probability_alive_block_avx2(
    p: &BgNbdParams,
    x: &[f64],
    t_x: &[f64],
    age: &[f64],
    out: &mut [f64],
) {
    probability_alive_block(p, x, t_x, age, out)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx2")]
fn probability_alive_block_avx512(
    p: &BgNbdParams,
    x: &[f64],
    t_x: &[f64],
    age: &[f64],
    out: &mut [f64],
) {
    probability_alive_block(p, x, t_x, age, out)
}

/// The block kernel in the widest SIMD the processor has: AVX-512 (8 rows an instruction; a
/// third faster than AVX2 on the 2-core Xeon of BENCHMARKS.md), AVX2, or the baseline. The
/// same operations in each, without FMA, so the same bits.
fn probability_alive_block_dispatch(
    p: &BgNbdParams,
    x: &[f64],
    t_x: &[f64],
    age: &[f64],
    out: &mut [f64],
) {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx512f") {
        // SAFETY: the processor supports AVX-512F (checked just above), and so AVX2.
        return unsafe { probability_alive_block_avx512(p, x, t_x, age, out) };
    }
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx2") {
        // SAFETY: the processor supports AVX2 (checked just above).
        return unsafe { probability_alive_block_avx2(p, x, t_x, age, out) };
    }
    probability_alive_block(p, x, t_x, age, out)
}

/// `out[j] = ln(alpha + age[j])` (the crate's `ln`: the same bits in SIMD as one at a time).
#[inline(always)]
fn ln_rate_block(alpha: f64, age: &[f64], out: &mut [f64]) {
    for (slot, &age) in out.iter_mut().zip(age) {
        *slot = crate::fastmath::ln(alpha + age);
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
fn ln_rate_block_avx2(alpha: f64, age: &[f64], out: &mut [f64]) {
    ln_rate_block(alpha, age, out)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx2")]
fn ln_rate_block_avx512(alpha: f64, age: &[f64], out: &mut [f64]) {
    ln_rate_block(alpha, age, out)
}

/// [`ln_rate_block`] in the widest SIMD the processor has.
fn ln_rate_block_dispatch(alpha: f64, age: &[f64], out: &mut [f64]) {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx512f") {
        // SAFETY: the processor supports AVX-512F (checked just above), and so AVX2.
        return unsafe { ln_rate_block_avx512(alpha, age, out) };
    }
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx2") {
        // SAFETY: the processor supports AVX2 (checked just above).
        return unsafe { ln_rate_block_avx2(alpha, age, out) };
    }
    ln_rate_block(alpha, age, out)
}

/// Rows whose interpolants are evaluated in lockstep by [`conditional_expected_purchases_bulk`].
const LOCKSTEP: usize = 8;

/// Rows below which [`conditional_expected_purchases_bulk`] evaluates every row directly.
const BULK_MIN_ROWS: usize = 10_000;
/// Customers sharing a frequency below which that frequency is evaluated directly.
const BULK_MIN_GROUP: usize = 64;
/// Relative accuracy demanded of the interpolants in [`conditional_expected_purchases_bulk`].
const BULK_TOLERANCE: f64 = 1e-13;

/// Longest table built (2 MB); rows that need more terms are evaluated directly.
const TABLE_MAX_TERMS: f64 = 65_536.0;

/// One [`ActiveSeriesTable`] per frequency, long enough for each of its rows and horizons
/// whose [`ActiveSeriesTable::terms_cap`] is at most [`TABLE_MAX_TERMS`] (the others are
/// evaluated directly, as the table itself decides per row); keyed by the frequency's bits.
/// One hash lookup per row, whatever the number of horizons.
fn active_series_tables(
    p: &BgNbdParams,
    x: &[f64],
    age: &[f64],
    horizons: &[(f64, f64)],
) -> std::collections::HashMap<u64, ActiveSeriesTable> {
    use std::collections::HashMap;
    // A row's series is longest at the smallest age of its frequency (the horizon's share
    // t / (alpha + T) is largest there), so one pass finds each frequency's youngest row and
    // the table's length follows from it, capped: every (row, horizon) pair whose own cap is
    // within TABLE_MAX_TERMS fits.
    let mut youngest: HashMap<u64, f64> = HashMap::new();
    for (&x, &age) in x.iter().zip(age) {
        let min = youngest.entry(x.to_bits()).or_insert(age);
        *min = min.min(age);
    }
    youngest
        .into_iter()
        .filter_map(|(bits, age)| {
            let x = f64::from_bits(bits);
            let cap = horizons
                .iter()
                .map(|&(_, t)| ActiveSeriesTable::terms_cap(p.r + x, p.alpha + age, t))
                .fold(0.0f64, f64::max)
                .min(TABLE_MAX_TERMS);
            // (No pair fits a table shorter than the margin of `terms_cap`; NaN: none.)
            (cap >= 64.0).then(|| {
                (
                    bits,
                    ActiveSeriesTable::new(p.r + x, p.a, p.b + p.flips(x), cap.ceil() as usize),
                )
            })
        })
        .collect()
}

/// [`conditional_expected_purchases`](super::conditional_expected_purchases) for many customers and one horizon `t`, in parallel.
///
/// The active-customer part depends only on (x, T), and for a fixed x it is a smooth function of
/// T. For every frequency shared by enough customers it is replaced by a piecewise Chebyshev
/// interpolant in ln(alpha + T) over that frequency's range, accepted only if it reproduces the series to
/// [`BULK_TOLERANCE`] relative at the points between its nodes (otherwise those rows are
/// evaluated directly). Each row then costs one P(alive) and one short polynomial. Returns the
/// number of rows served by an interpolant.
pub fn conditional_expected_purchases_bulk(
    p: &BgNbdParams,
    columns: &RfmColumns<'_>,
    t: f64,
    exec: &Exec,
    out: &mut [f64],
) -> usize {
    weighted_expected_purchases_bulk(p, columns, &[(1.0, t)], exec, out)
}

/// `sum_j w_j E[X(T, T + t_j)]` for every row and the `(w_j, t_j)` in `horizons`, in parallel
/// (discounted sums over several horizons, e.g. customer value, cost one interpolant per
/// frequency like a single horizon: the weighted sum of the active-customer expectations is
/// itself smooth in T). Returns the number of rows served by an interpolant.
pub fn weighted_expected_purchases_bulk(
    p: &BgNbdParams,
    columns: &RfmColumns<'_>,
    horizons: &[(f64, f64)],
    exec: &Exec,
    out: &mut [f64],
) -> usize {
    // The active-customer part for frequency x at rate alpha + T = rate.
    let active_sum = |x: f64, rate: f64| -> f64 {
        horizons
            .iter()
            .map(|&(w, t)| w * active_expected_purchases(p.r + x, rate, t, p.a, p.b + p.flips(x)))
            .sum()
    };
    let n = columns.len();
    if n < BULK_MIN_ROWS {
        // Too few rows for interpolants to pay: the active-customer part (a Gaussian
        // hypergeometric function per horizon) once per distinct (x, T), since it depends on
        // nothing else (CDNOW's 2,357 customers have 464), the distinct pairs shared among the
        // threads; then times each row's P(alive) from the vectorised kernel, the values
        // `probability_alive_bulk` returns (the scalar function's libm calls cost a quarter of
        // CDNOW's expected purchases). The bits of every row evaluated directly that way.
        let (x, age) = (columns.frequency, columns.age);
        let tables = active_series_tables(p, x, age, horizons);
        crate::models::fill_distinct(
            exec,
            out,
            |i| [x[i], age[i]],
            |i| match tables.get(&x[i].to_bits()) {
                Some(table) => horizons
                    .iter()
                    .map(|&(w, t)| w * table.evaluate(p.alpha + age[i], t))
                    .sum(),
                None => active_sum(x[i], p.alpha + age[i]),
            },
        );
        exec.fill_blocks(out, |start, block| {
            let rows = start..start + block.len();
            let mut alive = [0.0; crate::parallel::CHUNK_ROWS];
            let alive = &mut alive[..block.len()];
            probability_alive_block_dispatch(
                p,
                &x[rows.clone()],
                &columns.recency[rows.clone()],
                &age[rows],
                alive,
            );
            for (slot, alive) in block.iter_mut().zip(alive.iter()) {
                *slot *= alive;
            }
        });
        return 0;
    }
    // Range of T and count for each frequency (frequencies are whole numbers: see validation).
    let max_x = columns.frequency.iter().fold(0.0f64, |m, &x| m.max(x));
    // Count and range of T for each frequency: dense per-chunk tables when the frequencies are
    // small (the usual case), else sparse maps, so one customer with a huge frequency cannot
    // make every chunk allocate a table that large.
    type Group = (usize, f64, f64);
    let merge = |g: &mut Group, q: Group| *g = (g.0 + q.0, g.1.min(q.1), g.2.max(q.2));
    let groups: std::collections::BTreeMap<u64, Group> = if max_x <= 1024.0 {
        let slots = max_x as usize + 1;
        let dense = exec.chunked_reduce(
            n,
            || vec![(0usize, f64::INFINITY, f64::NEG_INFINITY); slots],
            |range, acc: &mut Vec<Group>| {
                for i in range {
                    let age = columns.age[i];
                    merge(&mut acc[columns.frequency[i] as usize], (1, age, age));
                }
            },
            |total, part| total.iter_mut().zip(part).for_each(|(g, q)| merge(g, q)),
        );
        (0u64..).zip(dense).filter(|(_, g)| g.0 > 0).collect()
    } else {
        exec.chunked_reduce(
            n,
            std::collections::BTreeMap::new,
            |range, acc: &mut std::collections::BTreeMap<u64, Group>| {
                for i in range {
                    let age = columns.age[i];
                    let g = acc
                        .entry(columns.frequency[i] as u64)
                        .or_insert((0, age, age));
                    merge(g, (1, age, age));
                }
            },
            |total, part| {
                for (x, q) in part {
                    merge(total.entry(x).or_insert((0, q.1, q.2)), q);
                }
            },
        )
    };
    // One interpolant per well-populated frequency, built in parallel, in the variable
    // v = ln(alpha + T): the function's singularities (alpha + T = 0 and alpha + T = -t) lie at
    // v = -inf and at imaginary distance pi from the real axis, so pieces of a fixed width in v
    // converge geometrically whatever the scale of T.
    let populated: Vec<(u64, Group)> = groups
        .into_iter()
        .filter(|(_, g)| g.0 >= BULK_MIN_GROUP)
        .collect();
    let built: Vec<Option<Interpolant>> = exec.map(&populated, |&(x, (_, lo, hi))| {
        let x = x as f64;
        let active = |v: f64| active_sum(x, v.exp());
        let ln = crate::fastmath::ln;
        Interpolant::fit(active, ln(p.alpha + lo), ln(p.alpha + hi), BULK_TOLERANCE)
    });
    let interpolants: std::collections::HashMap<u64, Interpolant> = populated
        .iter()
        .zip(built)
        .filter_map(|(&(x, _), f)| f.map(|f| (x, f)))
        .collect();
    // Rows find their interpolant through a table indexed by frequency when frequencies are
    // small, else through the map.
    let table: Option<Vec<Option<&Interpolant>>> =
        (max_x <= 1024.0).then(|| (0..=max_x as u64).map(|x| interpolants.get(&x)).collect());
    // P(alive) with the vectorised kernel, then times the active-customer expectation: eight
    // rows at a time through their interpolants, the rest (and rows without one) directly; one
    // pass, block by block (the block's P(alive) is still in cache when it is multiplied).
    let active = |x: f64, age: f64| active_sum(x, p.alpha + age);
    // (`v = ln(alpha + T)` of the row, computed for the whole block beforehand in SIMD.)
    let lookup = |i: usize, v: f64| {
        let x = columns.frequency[i];
        let found = match &table {
            Some(table) => table[x as usize],
            None => interpolants.get(&(x as u64)),
        };
        found.filter(|f| f.covers(v)).map(|f| f.locate(v))
    };
    let interpolated = std::sync::atomic::AtomicUsize::new(0);
    exec.fill_blocks(out, |start, block| {
        let rows = start..start + block.len();
        probability_alive_block_dispatch(
            p,
            &columns.frequency[rows.clone()],
            &columns.recency[rows.clone()],
            &columns.age[rows.clone()],
            block,
        );
        let mut ln_rate = [0.0; crate::parallel::CHUNK_ROWS];
        let ln_rate = &mut ln_rate[..block.len()];
        ln_rate_block_dispatch(p.alpha, &columns.age[rows], ln_rate);
        let mut quads = block.chunks_exact_mut(LOCKSTEP);
        let mut row = start;
        let mut direct = 0;
        for quad in &mut quads {
            let found: [_; LOCKSTEP] =
                std::array::from_fn(|l| lookup(row + l, ln_rate[row + l - start]));
            if found.iter().all(Option::is_some) {
                let found = found.map(|f| f.expect("checked"));
                let values = chebyshev::eval_many(found.map(|(c, _)| c), found.map(|(_, u)| u));
                for (slot, v) in quad.iter_mut().zip(values) {
                    *slot *= v;
                }
            } else {
                for (l, slot) in quad.iter_mut().enumerate() {
                    let i = row + l;
                    *slot *= match found[l] {
                        Some((c, u)) => chebyshev::eval_many([c], [u])[0],
                        None => {
                            direct += 1;
                            active(columns.frequency[i], columns.age[i])
                        }
                    };
                }
            }
            row += LOCKSTEP;
        }
        for (l, slot) in quads.into_remainder().iter_mut().enumerate() {
            let i = row + l;
            *slot *= match lookup(i, ln_rate[i - start]) {
                Some((c, u)) => chebyshev::eval_many([c], [u])[0],
                None => {
                    direct += 1;
                    active(columns.frequency[i], columns.age[i])
                }
            };
        }
        interpolated.fetch_add(block.len() - direct, std::sync::atomic::Ordering::Relaxed);
    });
    interpolated.into_inner()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::models::bgnbd::predict::probability_alive;
    use crate::models::bgnbd::{conditional_expected_purchases, simulate};

    /// `n` customers drawn at the CDNOW estimates with ages spread over 26 .. 78 weeks.
    fn simulated(n: usize, seed: u64) -> (Vec<f64>, Vec<f64>, Vec<f64>) {
        let ages: Vec<f64> = (0..n)
            .map(|i| 26.0 + 52.0 * ((i * 7919) % n) as f64 / n as f64)
            .collect();
        let (x, t_x) = simulate(&CDNOW_ROUNDED, &ages, seed);
        (x, t_x, ages)
    }

    const CDNOW_ROUNDED: BgNbdParams = BgNbdParams::new(0.243, 4.414, 0.793, 2.426);

    #[test]
    fn bulk_expected_purchases_match_direct_evaluation() {
        let truth = CDNOW_ROUNDED;
        let n = 40_000;
        let (x, t_x, ages) = simulated(n, 9);
        let columns = RfmColumns::new(&x, &t_x, &ages);
        for (p, t) in [
            (truth, 52.0),
            (BgNbdParams::new(2.0, 0.01, 0.3, 0.4), 400.0),
        ] {
            let mut bulk = vec![0.0; n];
            conditional_expected_purchases_bulk(
                &p,
                &columns,
                t,
                &Exec::with_jobs(Some(2)).unwrap(),
                &mut bulk,
            );
            let mut serial = vec![0.0; n];
            conditional_expected_purchases_bulk(&p, &columns, t, &Exec::Serial, &mut serial);
            assert_eq!(bulk, serial);
            for i in 0..n {
                let direct = conditional_expected_purchases(&p, x[i], t_x[i], ages[i], t);
                assert!(
                    (bulk[i] - direct).abs() <= 1e-13 * direct,
                    "row {i}: {} vs {direct}",
                    bulk[i]
                );
            }
        }
    }

    #[test]
    fn few_rows_give_direct_evaluation_for_any_thread_count() {
        // Below BULK_MIN_ROWS the active part is computed once per distinct (x, T) from the
        // frequency's tables: the values of every row evaluated directly (to rounding), and
        // the same bits for any thread count.
        let (x, t_x, mut ages) = simulated(3_000, 4);
        for age in &mut ages {
            *age = (*age).ceil().max(1.0); // few distinct ages, as in CDNOW
        }
        let t_x: Vec<f64> = t_x.iter().zip(&ages).map(|(&t, &a)| t.min(a)).collect();
        let columns = RfmColumns::new(&x, &t_x, &ages);
        let horizons = [(0.9, 4.0), (0.8, 8.0), (0.7, 12.0)];
        let mut serial = vec![0.0; x.len()];
        weighted_expected_purchases_bulk(
            &CDNOW_ROUNDED,
            &columns,
            &horizons,
            &Exec::Serial,
            &mut serial,
        );
        let mut parallel = vec![0.0; x.len()];
        weighted_expected_purchases_bulk(
            &CDNOW_ROUNDED,
            &columns,
            &horizons,
            &Exec::with_jobs(Some(2)).unwrap(),
            &mut parallel,
        );
        assert_eq!(serial, parallel);
        // A customer's value does not depend on which customers share the call (a Dask
        // partition, a subset): every fifth row alone, and the first 40 rows alone.
        for picked in [
            (0..x.len()).step_by(5).collect::<Vec<_>>(),
            (0..40).collect(),
        ] {
            let pick = |v: &[f64]| picked.iter().map(|&i| v[i]).collect::<Vec<f64>>();
            let (sx, st, sa) = (pick(&x), pick(&t_x), pick(&ages));
            let mut part = vec![0.0; picked.len()];
            weighted_expected_purchases_bulk(
                &CDNOW_ROUNDED,
                &RfmColumns::new(&sx, &st, &sa),
                &horizons,
                &Exec::Serial,
                &mut part,
            );
            for (j, &i) in picked.iter().enumerate() {
                assert_eq!(part[j].to_bits(), serial[i].to_bits(), "row {i}");
            }
        }
        let p = &CDNOW_ROUNDED;
        let mut alive = vec![0.0; x.len()];
        probability_alive_bulk(p, &columns, &Exec::Serial, &mut alive);
        for i in 0..x.len() {
            let active: f64 = horizons
                .iter()
                .map(|&(w, t)| {
                    w * active_expected_purchases(
                        p.r + x[i],
                        p.alpha + ages[i],
                        t,
                        p.a,
                        p.b + p.flips(x[i]),
                    )
                })
                .sum();
            // (The series of a shared frequency comes from its tables: a few ulps apart.)
            let direct = alive[i] * active;
            assert!(
                (serial[i] - direct).abs() <= 1e-13 * direct.abs(),
                "row {i}"
            );
            let scalar = probability_alive(p, x[i], t_x[i], ages[i]) * active;
            assert!(
                (serial[i] - scalar).abs() <= 1e-13 * scalar.abs(),
                "row {i}"
            );
        }
    }

    #[test]
    fn bulk_probability_alive_matches_the_scalar_formula() {
        let truth = CDNOW_ROUNDED;
        let (mut x, mut t_x, mut ages) = simulated(20_003, 3);
        x.push(400.0);
        t_x.push(10.0);
        ages.push(78.0);
        // Relative gaps g = (T - t_x) / (alpha + t_x) where the kernel's ln(1 + g) changes
        // route: u - 1 = 0, tiny, just below and above 1, huge; and a large r + x beside them.
        for (xi, ti, age) in [
            (3.0, 50.0, 50.0 + 1e-15),
            (3.0, 50.0, 50.0 + 1e-9),
            (2000.0, 50.0, 50.0 + 1e-6),
            (5.0, 10.0, 10.0 + 0.999 * (4.4 + 10.0)),
            (5.0, 10.0, 10.0 + 1.001 * (4.4 + 10.0)),
            (1.0, 1e-3, 1e7),
        ] {
            x.push(xi);
            t_x.push(ti);
            ages.push(age);
        }
        let columns = RfmColumns::new(&x, &t_x, &ages);
        // (The last: b subnormal, so ln(b + x - 1) at x = 1 takes the kernel's scaled route.)
        for p in [
            truth,
            BgNbdParams::new(5.0, 1e-3, 50.0, 0.01),
            BgNbdParams::new(0.3, 4.0, 0.8, 1e-310),
        ] {
            let mut bulk = vec![0.0; x.len()];
            probability_alive_bulk(&p, &columns, &Exec::with_jobs(Some(2)).unwrap(), &mut bulk);
            for i in 0..x.len() {
                let scalar = probability_alive(&p, x[i], t_x[i], ages[i]);
                assert!(
                    (bulk[i] - scalar).abs() <= 1e-13 * scalar + 1e-300,
                    "row {i}: {} vs {scalar}",
                    bulk[i]
                );
                assert!((0.0..=1.0).contains(&bulk[i]));
            }
        }
    }
}
