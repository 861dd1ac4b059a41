//! Per-customer predictions of a Bayesian fit, streamed over the posterior draws in bounded
//! memory: never a draws x customers array.
//!
//! A prediction is a function of a draw and a customer. The posterior mean of it (the mean
//! over draws of the prediction, not the prediction at the mean draw) and its standard
//! deviation are running sums over the draws, customer by customer. An equal-tailed credible
//! interval needs quantiles over the draws; they come from two passes over the draws:
//!
//! 1. the running sums, and each customer's smallest and largest value `[lo, hi]`;
//! 2. a histogram of each customer's values in [`PredictOptions::bins`] equal bins of `[lo, hi]`.
//!
//! An order statistic is placed inside its bin by linear interpolation between the bin's
//! edges (the values in a bin taken as evenly spread), and a quantile interpolates between
//! order statistics as numpy's default (`linear`) method does. The estimate of each order
//! statistic lies in the same bin as the order statistic, so
//!
//! ```text
//! |estimated quantile - exact quantile| <= (hi - lo) / bins
//! ```
//!
//! for every customer and probability: a bound stated by the customer's own range of values,
//! independent of the number of draws.
//!
//! Customers run in fixed blocks of [`BLOCK`] on the crate's pool, the draws of a block in
//! order, so every result is bit-identical for any thread count (the blocks do not depend on
//! it, and a block's predictions at a draw are those of the models' bulk paths on that block).
//! Blocks are large because the bulk predictions amortise per-call work (BG/NBD builds one
//! interpolant per frequency) over many customers. Memory is the output plus, per block in
//! flight, its prediction buffers and `BLOCK x bins` counts (16-bit when there are fewer than
//! 65,536 draws: 64 MB at the default 512 bins); blocks with intervals run in waves of at most
//! [`HISTOGRAM_BUDGET`] bytes of counts, whatever the thread count. None of it depends on the
//! number of draws.

use std::ops::Range;

use rayon::prelude::*;

use crate::error::{ClvError, Result};
use crate::parallel::Exec;

/// Customers per block (one unit of parallel work; every draw is evaluated on a whole block at
/// once, so per-call set-up in a prediction is shared by this many customers: BG/NBD's customer
/// value costs 2.6 us per customer in blocks under 10,000 customers, 0.12 us in blocks of this
/// size, 0.11 us over a million).
pub const BLOCK: usize = 65_536;

/// Default number of histogram bins per customer for credible intervals.
pub const DEFAULT_BINS: usize = 512;

/// Most bytes of histogram counts held at once (blocks in flight are limited to fit).
pub const HISTOGRAM_BUDGET: usize = 512 << 20;

/// A histogram count: 16 bits when the draws fit, else 32.
pub trait Count: Copy + Default + Send {
    fn increment(&mut self);
    fn get(self) -> usize;
}

impl Count for u16 {
    #[inline]
    fn increment(&mut self) {
        *self += 1;
    }
    #[inline]
    fn get(self) -> usize {
        self as usize
    }
}

impl Count for u32 {
    #[inline]
    fn increment(&mut self) {
        *self += 1;
    }
    #[inline]
    fn get(self) -> usize {
        self as usize
    }
}

/// What to compute besides the posterior mean.
#[derive(Clone)]
pub struct PredictOptions<'a> {
    /// Probability mass of the equal-tailed credible interval (`0 < level < 1`), or `None` for
    /// the mean and standard deviation only (one pass over the draws).
    pub level: Option<f64>,
    /// Histogram bins per customer (the interval error is at most the customer's range of
    /// values over the draws divided by this).
    pub bins: usize,
    /// Customers per block ([`BLOCK`]; results depend on it only through the predictions'
    /// own bulk paths, never on the thread count).
    pub block: usize,
    /// Most bytes of histogram counts in flight ([`HISTOGRAM_BUDGET`]).
    pub histogram_budget: usize,
    /// Where the blocks run.
    pub exec: Exec,
    /// Polled between draws; returning true stops with [`ClvError::Interrupted`].
    pub interrupt: Option<&'a (dyn Fn() -> bool + Sync)>,
}

impl Default for PredictOptions<'_> {
    fn default() -> Self {
        PredictOptions {
            level: None,
            bins: DEFAULT_BINS,
            block: BLOCK,
            histogram_budget: HISTOGRAM_BUDGET,
            exec: Exec::Serial,
            interrupt: None,
        }
    }
}

/// A posterior prediction per customer.
#[derive(Debug, Clone, PartialEq)]
pub struct PosteriorPrediction {
    /// Posterior mean of the prediction.
    pub mean: Vec<f64>,
    /// Posterior standard deviation (over draws, divisor `draws - 1`; 0 for one draw).
    pub sd: Vec<f64>,
    /// Lower and upper ends of the equal-tailed credible interval, when asked for.
    pub lower: Option<Vec<f64>>,
    pub upper: Option<Vec<f64>>,
}

/// One block's share of the results (`lower` and `upper` empty without intervals).
struct BlockOut<'a> {
    mean: &'a mut [f64],
    sd: &'a mut [f64],
    lower: &'a mut [f64],
    upper: &'a mut [f64],
}

/// Stream `predict` over `n_draws` draws for `n_customers` customers.
///
/// `predict(draw, customers, out)` writes the prediction of draw `draw` for the customers of
/// the range `customers` into `out` (`out.len() == customers.len()`); it is called with the same
/// arguments once per pass, and must give the same values each time. A non-finite prediction is
/// an error (predictions of this crate are finite for every valid parameter value).
pub fn posterior_predict<F>(
    n_customers: usize,
    n_draws: usize,
    predict: F,
    opts: &PredictOptions<'_>,
) -> Result<PosteriorPrediction>
where
    F: Fn(usize, Range<usize>, &mut [f64]) -> Result<()> + Sync,
{
    if n_draws == 0 {
        return Err(ClvError::invalid_parameter(
            "draws",
            "a posterior prediction needs at least one draw".to_string(),
        ));
    }
    if let Some(level) = opts.level {
        if !(level > 0.0 && level < 1.0) {
            return Err(ClvError::invalid_parameter(
                "level",
                format!("must lie strictly between 0 and 1, got {level}"),
            ));
        }
    }
    if opts.block == 0 {
        return Err(ClvError::invalid_parameter(
            "block",
            "must be a whole number >= 1".to_string(),
        ));
    }
    if opts.bins == 0 || opts.bins > 1 << 20 {
        return Err(ClvError::invalid_parameter(
            "bins",
            format!(
                "must be a whole number from 1 to {}, got {}",
                1 << 20,
                opts.bins
            ),
        ));
    }
    // The results are written in place, block by block (no second copy of the output).
    let mut mean = vec![0.0; n_customers];
    let mut sd = vec![0.0; n_customers];
    let width = if opts.level.is_some() { n_customers } else { 0 };
    let mut lower = vec![0.0; width];
    let mut upper = vec![0.0; width];
    let small_counts = n_draws <= u16::MAX as usize;
    let body = |(b, block): (usize, BlockOut<'_>)| -> Result<()> {
        let start = b * opts.block;
        let range = start..start + block.mean.len();
        if small_counts {
            block_predict::<u16, F>(range, n_draws, &predict, opts, block)
        } else {
            block_predict::<u32, F>(range, n_draws, &predict, opts, block)
        }
    };
    // Blocks in flight at once: all of them for the mean alone; with intervals, as many as
    // their counts fit in the budget.
    let count_bytes = if small_counts { 2 } else { 4 };
    let per_wave = match opts.level {
        None => usize::MAX,
        Some(_) => (opts.histogram_budget / (opts.block * opts.bins * count_bytes)).max(1),
    };
    let n_blocks = n_customers.div_ceil(opts.block);
    // Each block's share of a column; empty slices for a column not computed.
    fn split(v: &mut [f64], block: usize, n_blocks: usize) -> Vec<&mut [f64]> {
        if v.is_empty() {
            (0..n_blocks).map(|_| <&mut [f64]>::default()).collect()
        } else {
            v.chunks_mut(block).collect()
        }
    }
    let (lower_parts, upper_parts) = (
        split(&mut lower, opts.block, n_blocks),
        split(&mut upper, opts.block, n_blocks),
    );
    let mut blocks: Vec<(usize, BlockOut<'_>)> = mean
        .chunks_mut(opts.block)
        .zip(sd.chunks_mut(opts.block))
        .zip(lower_parts.into_iter().zip(upper_parts))
        .map(|((mean, sd), (lower, upper))| BlockOut {
            mean,
            sd,
            lower,
            upper,
        })
        .enumerate()
        .collect();
    while !blocks.is_empty() {
        let rest = blocks.split_off(per_wave.min(blocks.len()));
        let wave = std::mem::replace(&mut blocks, rest);
        let outcomes: Vec<Result<()>> = match &opts.exec {
            Exec::Pool(pool) if wave.len() > 1 => {
                pool.install(|| wave.into_par_iter().map(body).collect())
            }
            _ => wave.into_iter().map(body).collect(),
        };
        // The first block's error, whichever thread met it first.
        outcomes.into_iter().collect::<Result<Vec<()>>>()?;
    }
    Ok(PosteriorPrediction {
        mean,
        sd,
        lower: opts.level.map(|_| lower),
        upper: opts.level.map(|_| upper),
    })
}

fn not_finite(value: f64) -> ClvError {
    ClvError::invalid_parameter(
        "posterior",
        format!(
            "a prediction at one of the posterior draws is {value}, not a finite number: the \
             posterior reaches parameter values where this prediction is undefined"
        ),
    )
}

/// Both passes over one block of customers.
fn block_predict<C: Count, F>(
    customers: Range<usize>,
    n_draws: usize,
    predict: &F,
    opts: &PredictOptions<'_>,
    out: BlockOut<'_>,
) -> Result<()>
where
    F: Fn(usize, Range<usize>, &mut [f64]) -> Result<()> + Sync,
{
    let m = customers.len();
    let mut values = vec![0.0; m];
    // Sums of deviations from the first draw's value (a shift that keeps the variance exact
    // when the spread is small against the mean).
    let mut shift = vec![0.0; m];
    let mut sum = vec![0.0; m];
    let mut sum_sq = vec![0.0; m];
    let mut lo = vec![f64::INFINITY; m];
    let mut hi = vec![f64::NEG_INFINITY; m];
    let poll = |s: usize| -> Result<()> {
        match opts.interrupt {
            Some(check) if s % 64 == 63 && check() => Err(ClvError::Interrupted),
            _ => Ok(()),
        }
    };
    for s in 0..n_draws {
        predict(s, customers.clone(), &mut values)?;
        for (i, &v) in values.iter().enumerate() {
            if !v.is_finite() {
                return Err(not_finite(v));
            }
            if s == 0 {
                shift[i] = v;
            }
            let d = v - shift[i];
            sum[i] += d;
            sum_sq[i] += d * d;
            lo[i] = lo[i].min(v);
            hi[i] = hi[i].max(v);
        }
        poll(s)?;
    }
    let n = n_draws as f64;
    for (i, (mean, sd)) in out.mean.iter_mut().zip(out.sd.iter_mut()).enumerate() {
        let mean_dev = sum[i] / n;
        // The mean lies in [lo, hi]; rounding must not put it outside.
        *mean = (shift[i] + mean_dev).clamp(lo[i], hi[i]);
        *sd = if n_draws > 1 {
            ((sum_sq[i] - n * mean_dev * mean_dev).max(0.0) / (n - 1.0)).sqrt()
        } else {
            0.0
        };
    }
    let Some(level) = opts.level else {
        return Ok(());
    };
    let bins = opts.bins;
    let mut counts = vec![C::default(); m * bins];
    for s in 0..n_draws {
        predict(s, customers.clone(), &mut values)?;
        for (i, &v) in values.iter().enumerate() {
            counts[i * bins + bin_of(v, lo[i], hi[i], bins)].increment();
        }
        poll(s)?;
    }
    let tail = (1.0 - level) / 2.0;
    for (i, hist) in counts.chunks_exact(bins).enumerate() {
        out.lower[i] = histogram_quantile(hist, lo[i], hi[i], n_draws, tail);
        out.upper[i] = histogram_quantile(hist, lo[i], hi[i], n_draws, 1.0 - tail);
    }
    Ok(())
}

/// The bin of `v` among `bins` equal bins of `[lo, hi]` (the last bin closed).
#[inline]
fn bin_of(v: f64, lo: f64, hi: f64, bins: usize) -> usize {
    if !(hi > lo) {
        return 0;
    }
    let at = ((v - lo) / (hi - lo) * bins as f64) as usize;
    at.min(bins - 1)
}

/// The `prob` quantile (numpy's `linear` method: position `(n - 1) prob` among the sorted
/// values) of `n` values whose histogram over equal bins of `[lo, hi]` is `counts`.
pub fn histogram_quantile<C: Count>(counts: &[C], lo: f64, hi: f64, n: usize, prob: f64) -> f64 {
    if !(hi > lo) {
        return lo;
    }
    let width = (hi - lo) / counts.len() as f64;
    // The sorted value of rank r (0-based), placed evenly within its bin: within the bin's
    // edges, so within one bin width of the true value. The extremes are known exactly.
    let order_statistic = |r: usize| -> f64 {
        if r == 0 {
            return lo;
        }
        if r + 1 >= n {
            return hi;
        }
        let mut before = 0usize;
        for (j, &c) in counts.iter().enumerate() {
            let c = c.get();
            if r < before + c {
                let inside = (r - before) as f64 + 0.5;
                return (lo + width * (j as f64 + inside / c as f64)).clamp(lo, hi);
            }
            before += c;
        }
        hi
    };
    let h = (n - 1) as f64 * prob;
    let below = h.floor();
    let frac = h - below;
    let r = below as usize;
    let a = order_statistic(r);
    if frac == 0.0 || r + 1 >= n {
        return a;
    }
    a + frac * (order_statistic(r + 1) - a)
}

/// Bytes of prediction values a block of [`posterior_predict_exact`] holds: all draws of its
/// customers, so the block has `VALUE_BUDGET / (8 x draws)` customers (at least one) and memory
/// stays at this per thread whatever the number of draws.
pub const VALUE_BUDGET: usize = 16 << 20;

/// Customers per block of [`posterior_predict_exact`] for `n_draws` draws and a value budget.
pub fn exact_block(n_draws: usize, value_budget: usize) -> usize {
    (value_budget / (8 * n_draws.max(1))).max(1)
}

/// Customers summarised together by [`posterior_predict_exact`] (one cache line of values).
const TILE: usize = 8;

/// Posterior predictions from a block evaluator: `fill(customers, values)` writes every draw's
/// prediction for the customers of the range, draw by draw (`values[s * m + j]` is customer
/// `customers.start + j` at draw `s`, `m = customers.len()`).
///
/// Unlike [`posterior_predict`] each block holds all its customers' values, so the mean, the
/// standard deviation and the credible interval come from one pass, and the interval is
/// exact: numpy's default (`linear`) quantile of the draws, from selecting the order statistics
/// it interpolates. Blocks have [`exact_block`] customers (for a value budget of the smaller of
/// [`VALUE_BUDGET`] and `opts.histogram_budget`): fixed by the number of draws alone, so the results are bit-identical for any
/// thread count, and memory is one block's values per thread, independent of the draws.
pub fn posterior_predict_exact<F>(
    n_customers: usize,
    n_draws: usize,
    fill: F,
    opts: &PredictOptions<'_>,
) -> Result<PosteriorPrediction>
where
    F: Fn(Range<usize>, &mut [f64]) -> Result<()> + Sync,
{
    if n_draws == 0 {
        return Err(ClvError::invalid_parameter(
            "draws",
            "a posterior prediction needs at least one draw".to_string(),
        ));
    }
    if let Some(level) = opts.level {
        if !(level > 0.0 && level < 1.0) {
            return Err(ClvError::invalid_parameter(
                "level",
                format!("must lie strictly between 0 and 1, got {level}"),
            ));
        }
    }
    let block = exact_block(n_draws, opts.histogram_budget.min(VALUE_BUDGET));
    let mut mean = vec![0.0; n_customers];
    let mut sd = vec![0.0; n_customers];
    let width = if opts.level.is_some() { n_customers } else { 0 };
    let mut lower = vec![0.0; width];
    let mut upper = vec![0.0; width];
    let n_blocks = n_customers.div_ceil(block);
    fn split(v: &mut [f64], block: usize, n_blocks: usize) -> Vec<&mut [f64]> {
        if v.is_empty() {
            (0..n_blocks).map(|_| <&mut [f64]>::default()).collect()
        } else {
            v.chunks_mut(block).collect()
        }
    }
    let (lower_parts, upper_parts) = (
        split(&mut lower, block, n_blocks),
        split(&mut upper, block, n_blocks),
    );
    let blocks: Vec<(usize, BlockOut<'_>)> = mean
        .chunks_mut(block)
        .zip(sd.chunks_mut(block))
        .zip(lower_parts.into_iter().zip(upper_parts))
        .map(|((mean, sd), (lower, upper))| BlockOut {
            mean,
            sd,
            lower,
            upper,
        })
        .enumerate()
        .collect();
    let tail = opts.level.map(|level| (1.0 - level) / 2.0);
    // One value buffer per worker, reused by its blocks (zeroed for each: a fresh allocation
    // of this size is mapped and faulted in page by page every time).
    let body = |values: &mut Vec<f64>, (b, out): (usize, BlockOut<'_>)| -> Result<()> {
        if let Some(check) = opts.interrupt {
            if check() {
                return Err(ClvError::Interrupted);
            }
        }
        let start = b * block;
        let m = out.mean.len();
        values.clear();
        values.resize(m * n_draws, 0.0);
        fill(start..start + m, values)?;
        // Customers' values gathered TILE at a time into rows (each cache line of the block
        // read once), then summarised row by row.
        let mut rows = vec![0.0; TILE * n_draws];
        let mut scratch = Vec::new();
        for j0 in (0..m).step_by(TILE) {
            let width = TILE.min(m - j0);
            for (s, draw) in values.chunks_exact(m).enumerate() {
                for (l, &v) in draw[j0..j0 + width].iter().enumerate() {
                    rows[l * n_draws + s] = v;
                }
            }
            for (l, row) in rows.chunks_exact_mut(n_draws).take(width).enumerate() {
                let j = j0 + l;
                let (mu, s) = mean_sd(row)?;
                out.mean[j] = mu;
                out.sd[j] = s;
                if let Some(tail) = tail {
                    let (lo, hi) = two_quantiles_with(row, tail, 1.0 - tail, &mut scratch);
                    out.lower[j] = lo;
                    out.upper[j] = hi;
                }
            }
        }
        Ok(())
    };
    let outcomes: Vec<Result<()>> = match &opts.exec {
        Exec::Pool(pool) if blocks.len() > 1 => {
            pool.install(|| blocks.into_par_iter().map_init(Vec::new, body).collect())
        }
        _ => {
            let mut values = Vec::new();
            blocks
                .into_iter()
                .map(|item| body(&mut values, item))
                .collect()
        }
    };
    outcomes.into_iter().collect::<Result<Vec<()>>>()?;
    Ok(PosteriorPrediction {
        mean,
        sd,
        lower: opts.level.map(|_| lower),
        upper: opts.level.map(|_| upper),
    })
}

/// Mean and standard deviation (divisor n - 1) of one customer's values over the draws, as
/// [`posterior_predict`] computes them (sums of deviations from the first value).
fn mean_sd(values: &[f64]) -> Result<(f64, f64)> {
    let shift = values[0];
    let (mut sum, mut sum_sq) = (0.0, 0.0);
    let (mut lo, mut hi) = (f64::INFINITY, f64::NEG_INFINITY);
    for &v in values {
        let d = v - shift;
        sum += d;
        sum_sq += d * d;
        lo = lo.min(v);
        hi = hi.max(v);
    }
    if !(sum.is_finite() && sum_sq.is_finite()) {
        let bad = values.iter().find(|v| !v.is_finite()).copied();
        return Err(not_finite(bad.unwrap_or(f64::INFINITY)));
    }
    let n = values.len() as f64;
    let mean_dev = sum / n;
    let mean = (shift + mean_dev).clamp(lo, hi);
    let sd = if values.len() > 1 {
        ((sum_sq - n * mean_dev * mean_dev).max(0.0) / (n - 1.0)).sqrt()
    } else {
        0.0
    };
    Ok((mean, sd))
}

/// Values from which [`two_quantiles_with`] first brackets the order statistics it needs.
const SAMPLE: usize = 128;

/// numpy's default (`linear`) quantiles `low <= high` of `values`, exactly (the values are
/// reordered).
pub fn two_quantiles(values: &mut [f64], low: f64, high: f64) -> (f64, f64) {
    two_quantiles_with(values, low, high, &mut Vec::new())
}

/// [`two_quantiles`] with a scratch buffer. From 1,024 values on, the two order statistics
/// each quantile interpolates are first bracketed by values of an evenly spaced sample of
/// [`SAMPLE`] values (a few sample standard errors of the rank either side); one branch-free
/// pass counts the values below each bracket and copies those inside, and the order
/// statistics are selected among the copies: about a tenth of the values. When a bracket
/// misses its ranks (rare: the sample is not random for ordered inputs) the whole row is
/// selected instead. The same answer either way.
pub fn two_quantiles_with(
    values: &mut [f64],
    low: f64,
    high: f64,
    scratch: &mut Vec<f64>,
) -> (f64, f64) {
    let n = values.len();
    if n < 1024 || values.iter().any(|v| v.is_nan()) {
        return select_quantiles(values, low, high);
    }
    let rank = |p: f64| {
        let h = (n - 1) as f64 * p;
        (h.floor() as usize, h - h.floor())
    };
    let (r_lo, f_lo) = rank(low);
    let (r_hi, f_hi) = rank(high);
    let mut sample: [f64; SAMPLE] = std::array::from_fn(|k| values[k * n / SAMPLE]);
    sample.sort_unstable_by(f64::total_cmp);
    // Sample bounds around rank r (and r + 1): the sample index of r, plus or minus three
    // binomial standard deviations and two.
    let bounds = |r: usize| {
        let q = r as f64 / n as f64;
        let centre = q * SAMPLE as f64;
        let margin = 3.0 * (SAMPLE as f64 * q * (1.0 - q)).sqrt() + 2.0;
        let below = centre - margin;
        let above = centre + 1.0 + margin;
        (
            if below < 0.0 {
                f64::NEG_INFINITY
            } else {
                sample[below as usize]
            },
            if above >= (SAMPLE - 1) as f64 {
                f64::INFINITY
            } else {
                sample[above.ceil() as usize]
            },
        )
    };
    let (lo_a, lo_b) = bounds(r_lo);
    let (hi_a, hi_b) = bounds(r_hi);
    scratch.clear();
    scratch.resize(2 * n, 0.0);
    let (in_lo, in_hi) = scratch.split_at_mut(n);
    let (mut below_lo, mut below_hi, mut len_lo, mut len_hi) = (0usize, 0usize, 0usize, 0usize);
    for &v in values.iter() {
        below_lo += (v < lo_a) as usize;
        below_hi += (v < hi_a) as usize;
        in_lo[len_lo] = v;
        len_lo += (v >= lo_a && v <= lo_b) as usize;
        in_hi[len_hi] = v;
        len_hi += (v >= hi_a && v <= hi_b) as usize;
    }
    // The bracket holds ranks r and r + 1 (or r is the last).
    let holds = |below: usize, len: usize, r: usize| below <= r && (r + 1).min(n - 1) < below + len;
    if !(holds(below_lo, len_lo, r_lo) && holds(below_hi, len_hi, r_hi)) {
        return select_quantiles(values, low, high);
    }
    let pick = |part: &mut [f64], k: usize, f: f64| -> f64 {
        let (_, &mut a, above) = part.select_nth_unstable_by(k, f64::total_cmp);
        if f > 0.0 {
            let b = above.iter().copied().fold(f64::INFINITY, f64::min);
            a + f * (b - a)
        } else {
            a
        }
    };
    (
        pick(&mut in_lo[..len_lo], r_lo - below_lo, f_lo),
        pick(&mut in_hi[..len_hi], r_hi - below_hi, f_hi),
    )
}

/// [`two_quantiles`] by selecting in the whole row.
fn select_quantiles(values: &mut [f64], low: f64, high: f64) -> (f64, f64) {
    let n = values.len();
    let rank = |p: f64| {
        let h = (n - 1) as f64 * p;
        (h.floor() as usize, h - h.floor())
    };
    let (r_lo, f_lo) = rank(low);
    let (r_hi, f_hi) = rank(high);
    // The r-th smallest, then the smallest of what lies above it (the (r + 1)-th).
    let (_, &mut a_lo, above) = values.select_nth_unstable_by(r_lo, f64::total_cmp);
    let next = |part: &[f64]| part.iter().copied().fold(f64::INFINITY, f64::min);
    let b_lo = if f_lo > 0.0 { next(above) } else { a_lo };
    let (a_hi, b_hi) = if r_hi == r_lo {
        (a_lo, if f_hi > 0.0 { next(above) } else { a_lo })
    } else {
        let (_, &mut a, rest) = above.select_nth_unstable_by(r_hi - r_lo - 1, f64::total_cmp);
        (a, if f_hi > 0.0 { next(rest) } else { a })
    };
    let lerp = |a: f64, b: f64, f: f64| if f > 0.0 { a + f * (b - a) } else { a };
    (lerp(a_lo, b_lo, f_lo), lerp(a_hi, b_hi, f_hi))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// numpy's default quantile of `values`.
    fn exact_quantile(values: &[f64], prob: f64) -> f64 {
        let mut sorted = values.to_vec();
        sorted.sort_by(f64::total_cmp);
        let h = (sorted.len() - 1) as f64 * prob;
        let r = h.floor() as usize;
        if r + 1 >= sorted.len() {
            return sorted[r];
        }
        sorted[r] + (h - h.floor()) * (sorted[r + 1] - sorted[r])
    }

    /// A skewed prediction of customer i at draw s: a lognormal-ish function of a hash.
    fn value(s: usize, i: usize) -> f64 {
        let mut h = (s as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ (i as u64) << 20;
        h ^= h >> 31;
        h = h.wrapping_mul(0xbf58_476d_1ce4_e5b9);
        h ^= h >> 29;
        let u = (h >> 11) as f64 / (1u64 << 53) as f64;
        (1.0 + i as f64 * 0.01) * (3.0 * (u - 0.5)).exp()
    }

    fn run(
        n: usize,
        draws: usize,
        level: Option<f64>,
        bins: usize,
        exec: Exec,
    ) -> PosteriorPrediction {
        posterior_predict(
            n,
            draws,
            |s, range, out| {
                for (o, i) in out.iter_mut().zip(range) {
                    *o = value(s, i);
                }
                Ok(())
            },
            &PredictOptions {
                level,
                bins,
                block: 1000,
                // Small enough that blocks run in waves of two.
                histogram_budget: 2 * 1000 * bins * 2,
                exec,
                interrupt: None,
            },
        )
        .unwrap()
    }

    #[test]
    fn mean_sd_and_intervals_match_exact_values_within_the_stated_bound() {
        let (n, draws) = (2500, 777);
        for bins in [1, 7, 64, 1024] {
            let got = run(n, draws, Some(0.9), bins, Exec::Serial);
            let (lower, upper) = (got.lower.unwrap(), got.upper.unwrap());
            for i in (0..n).step_by(37) {
                let v: Vec<f64> = (0..draws).map(|s| value(s, i)).collect();
                let mean = v.iter().sum::<f64>() / draws as f64;
                let sd =
                    (v.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (draws - 1) as f64).sqrt();
                assert!((got.mean[i] - mean).abs() <= 1e-12 * mean, "{i}");
                assert!((got.sd[i] - sd).abs() <= 1e-9 * sd, "{i}");
                let range = v.iter().cloned().fold(f64::NEG_INFINITY, f64::max)
                    - v.iter().cloned().fold(f64::INFINITY, f64::min);
                let bound = range / bins as f64;
                for (q, p) in [(lower[i], 0.05), (upper[i], 0.95)] {
                    let exact = exact_quantile(&v, p);
                    assert!(
                        (q - exact).abs() <= bound * (1.0 + 1e-9),
                        "bins {bins} customer {i} p {p}: {q} vs {exact} (bound {bound})"
                    );
                }
            }
            if bins == 1024 {
                // The bound is reached far from exhausted at this resolution: a few parts in
                // ten thousand of the range.
                let i = 5;
                let v: Vec<f64> = (0..draws).map(|s| value(s, i)).collect();
                assert!((lower[i] - exact_quantile(&v, 0.05)).abs() < 2e-3);
            }
        }
    }

    #[test]
    fn bracketed_quantiles_equal_selection_in_the_whole_row() {
        for (i, n) in [(3usize, 1024usize), (5, 4000), (11, 1500)] {
            let skewed: Vec<f64> = (0..n).map(|s| value(s, i)).collect();
            let mut sorted = skewed.clone();
            sorted.sort_by(f64::total_cmp);
            let mut reversed = sorted.clone();
            reversed.reverse();
            let ties: Vec<f64> = (0..n).map(|s| (s % 7) as f64).collect();
            for row in [skewed, sorted, reversed, ties, vec![2.5; n]] {
                for (low, high) in [(0.05, 0.95), (0.0, 1.0), (0.25, 0.25), (0.001, 0.999)] {
                    let want = select_quantiles(&mut row.clone(), low, high);
                    let got = two_quantiles_with(&mut row.clone(), low, high, &mut Vec::new());
                    assert_eq!(got, want, "n {n} p {low} {high}");
                    let exact = (exact_quantile(&row, low), exact_quantile(&row, high));
                    assert!((got.0 - exact.0).abs() <= 1e-12 * exact.0.abs());
                    assert!((got.1 - exact.1).abs() <= 1e-12 * exact.1.abs());
                }
            }
        }
    }

    #[test]
    fn extreme_probabilities_and_constant_predictions_are_exact() {
        let counts = [3u32, 0, 2];
        assert_eq!(histogram_quantile(&counts, 1.0, 4.0, 5, 0.0), 1.0);
        assert_eq!(histogram_quantile(&counts, 1.0, 4.0, 5, 1.0), 4.0);
        assert_eq!(histogram_quantile(&[5u16], 2.0, 2.0, 5, 0.3), 2.0);
        let got = posterior_predict(
            3,
            10,
            |_, _, out| {
                out.fill(0.25);
                Ok(())
            },
            &PredictOptions {
                level: Some(0.5),
                ..PredictOptions::default()
            },
        )
        .unwrap();
        assert_eq!(got.mean, vec![0.25; 3]);
        assert_eq!(got.sd, vec![0.0; 3]);
        assert_eq!(got.lower.unwrap(), vec![0.25; 3]);
        assert_eq!(got.upper.unwrap(), vec![0.25; 3]);
    }

    #[test]
    fn results_are_bit_identical_for_any_thread_count() {
        let one = run(5000, 50, Some(0.8), 128, Exec::Serial);
        for jobs in [2, 3] {
            let many = run(
                5000,
                50,
                Some(0.8),
                128,
                Exec::with_jobs(Some(jobs)).unwrap(),
            );
            assert_eq!(one, many);
        }
    }

    #[test]
    fn errors_are_reported() {
        let bad = posterior_predict(
            10,
            3,
            |s, _, out| {
                out.fill(if s == 2 { f64::NAN } else { 1.0 });
                Ok(())
            },
            &PredictOptions::default(),
        );
        assert!(matches!(bad, Err(ClvError::InvalidParameter { .. })));
        let opts = PredictOptions {
            level: Some(1.0),
            ..PredictOptions::default()
        };
        assert!(matches!(
            posterior_predict(1, 1, |_, _, _| Ok(()), &opts),
            Err(ClvError::InvalidParameter { .. })
        ));
        assert!(matches!(
            posterior_predict(1, 0, |_, _, _| Ok(()), &PredictOptions::default()),
            Err(ClvError::InvalidParameter { .. })
        ));
        let stop = || true;
        let opts = PredictOptions {
            interrupt: Some(&stop),
            ..PredictOptions::default()
        };
        assert_eq!(
            posterior_predict(
                1,
                100,
                |_, _, out| {
                    out.fill(1.0);
                    Ok(())
                },
                &opts
            )
            .unwrap_err(),
            ClvError::Interrupted
        );
    }
}
