//! Recency/frequency/age summaries: the sufficient statistics of the continuous-time models.

use crate::error::{ClvError, Result};

use super::{check_lengths, check_weights};

/// Column names used in error messages (the caller's names, e.g. from a DataFrame).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RfmNames {
    pub frequency: String,
    pub recency: String,
    pub age: String,
    pub weights: String,
}

impl Default for RfmNames {
    fn default() -> Self {
        RfmNames {
            frequency: "frequency".into(),
            recency: "recency".into(),
            age: "T".into(),
            weights: "weights".into(),
        }
    }
}

/// Borrowed per-customer columns: repeat-purchase count x, time of the last repeat purchase
/// t_x, age T (time since the first purchase), and optional row weights.
#[derive(Debug, Clone, Copy)]
pub struct RfmColumns<'a> {
    pub frequency: &'a [f64],
    pub recency: &'a [f64],
    pub age: &'a [f64],
    pub weights: Option<&'a [f64]>,
}

impl<'a> RfmColumns<'a> {
    /// Columns without weights.
    pub fn new(frequency: &'a [f64], recency: &'a [f64], age: &'a [f64]) -> Self {
        RfmColumns {
            frequency,
            recency,
            age,
            weights: None,
        }
    }

    /// Number of rows.
    pub fn len(&self) -> usize {
        self.frequency.len()
    }

    /// True when there are no rows.
    pub fn is_empty(&self) -> bool {
        self.frequency.is_empty()
    }

    /// Check every rule of the continuous-time models; the error names the column, the first
    /// offending row and the rule.
    pub fn validate(&self, names: &RfmNames) -> Result<()> {
        self.validate_on(names, &crate::parallel::Exec::Serial)
    }

    /// [`RfmColumns::validate`], scanning the rows in parallel on `exec`.
    pub fn validate_on(&self, names: &RfmNames, exec: &crate::parallel::Exec) -> Result<()> {
        let x = self.frequency;
        let (recency, age) = (self.recency, self.age);
        validate_rows(
            self.parts(),
            |i| x[i],
            |rows| rows_pass_dispatch(&x[rows.clone()], &recency[rows.clone()], &age[rows]),
            names,
            exec,
        )
    }

    /// Merge identical (x, t_x, T) rows, adding their weights, and sort them into a canonical
    /// order. Fits run on the result, so compressing the input beforehand (with counts as weights)
    /// changes nothing, bit for bit. Rows with weight 0 are dropped.
    pub fn compress(&self) -> Rfm {
        self.compress_on(&crate::parallel::Exec::Serial)
    }

    /// [`RfmColumns::compress`], sorting in parallel on `exec` for large inputs.
    ///
    /// Rows are bucketed by frequency (a whole number, usually small) and each bucket is sorted
    /// by (recency, age[, weight]) as plain 16-byte records (24 with weights), which needs no
    /// lookups, so heavily duplicated data sort as fast as distinct rows. Extra memory: the
    /// records while sorting, plus the compressed rows (without a weight column when every
    /// weight is 1).
    pub fn compress_on(&self, exec: &crate::parallel::Exec) -> Rfm {
        let x = self.frequency;
        compress_rows(self.parts(), |i| x[i], exec)
    }

    fn parts(&self) -> Parts<'a> {
        Parts {
            n: self.frequency.len(),
            recency: self.recency,
            age: self.age,
            weights: self.weights,
        }
    }
}

/// A frequency column as the caller holds it: float64, or whole numbers read in place (no
/// float64 copy of an integer column). Each value reads as `value as f64`, the conversion numpy's
/// `astype(float64)` makes, so both give the same numbers, bit for bit.
#[derive(Debug, Clone, Copy)]
pub enum Counts<'a> {
    Float(&'a [f64]),
    I64(&'a [i64]),
    I32(&'a [i32]),
    U64(&'a [u64]),
    U32(&'a [u32]),
}

impl Counts<'_> {
    /// Number of values.
    pub fn len(&self) -> usize {
        match self {
            Counts::Float(v) => v.len(),
            Counts::I64(v) => v.len(),
            Counts::I32(v) => v.len(),
            Counts::U64(v) => v.len(),
            Counts::U32(v) => v.len(),
        }
    }

    /// True when there are no values.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Value `i` as a float.
    #[inline]
    pub fn get(&self, i: usize) -> f64 {
        match self {
            Counts::Float(v) => v[i],
            Counts::I64(v) => v[i] as f64,
            Counts::I32(v) => f64::from(v[i]),
            Counts::U64(v) => v[i] as f64,
            Counts::U32(v) => f64::from(v[i]),
        }
    }
}

/// [`RfmColumns`] with a frequency column of any [`Counts`] type: validated and compressed by the
/// same code, with the same errors, as float64 columns.
#[derive(Debug, Clone, Copy)]
pub struct RfmCounts<'a> {
    pub frequency: Counts<'a>,
    pub recency: &'a [f64],
    pub age: &'a [f64],
    pub weights: Option<&'a [f64]>,
}

impl<'a> RfmCounts<'a> {
    fn parts(&self) -> Parts<'a> {
        Parts {
            n: self.frequency.len(),
            recency: self.recency,
            age: self.age,
            weights: self.weights,
        }
    }

    /// See [`RfmColumns::validate_on`].
    pub fn validate_on(&self, names: &RfmNames, exec: &crate::parallel::Exec) -> Result<()> {
        let x = self.frequency;
        let (recency, age) = (self.recency, self.age);
        let quick = |rows: std::ops::Range<usize>| {
            let (t_x, age) = (&recency[rows.clone()], &age[rows.clone()]);
            match x {
                Counts::Float(v) => rows_pass_dispatch(&v[rows], t_x, age),
                Counts::I64(v) => rows_pass_dispatch(&v[rows], t_x, age),
                Counts::I32(v) => rows_pass_dispatch(&v[rows], t_x, age),
                Counts::U64(v) => rows_pass_dispatch(&v[rows], t_x, age),
                Counts::U32(v) => rows_pass_dispatch(&v[rows], t_x, age),
            }
        };
        validate_rows(self.parts(), |i| x.get(i), quick, names, exec)
    }

    /// See [`RfmColumns::compress_on`].
    pub fn compress_on(&self, exec: &crate::parallel::Exec) -> Rfm {
        let x = self.frequency;
        compress_rows(self.parts(), |i| x.get(i), exec)
    }
}

/// The columns other than the frequency, which [`validate_rows`] and [`compress_rows`] read
/// through a function (so that any [`Counts`] type shares their code).
#[derive(Clone, Copy)]
struct Parts<'a> {
    /// Rows (the length of the frequency column).
    n: usize,
    recency: &'a [f64],
    age: &'a [f64],
    weights: Option<&'a [f64]>,
}

/// A rule's column name, the value of row `i` in it, and the rule.
type Check<'c> = (&'c str, &'c dyn Fn(usize) -> f64, String);

/// A frequency value as [`Counts::get`] reads it (`value as f64`).
trait CountValue: Copy {
    fn value(self) -> f64;
}

impl CountValue for f64 {
    #[inline(always)]
    fn value(self) -> f64 {
        self
    }
}

macro_rules! count_value {
    ($($t:ty),+) => {$(
        impl CountValue for $t {
            #[inline(always)]
            fn value(self) -> f64 {
                self as f64
            }
        }
    )+};
}
count_value!(i64, i32, u64, u32);

/// Whether every row passes every rule of [`validate_rows`]: one branch-free pass (it compiles
/// to SIMD), so valid input, the usual case, costs about one read of the columns. `2^52` added
/// and taken away rounds a number in `[0, 2^32)` to a whole one, so it is unchanged exactly when
/// it is whole (the same test as `f64::from(x as u32) == x` there, without a conversion that
/// has no SIMD form).
#[inline(always)]
fn rows_pass<T: CountValue>(x: &[T], t_x: &[f64], age: &[f64]) -> bool {
    const TWO_52: f64 = 4_503_599_627_370_496.0;
    let mut bad = false;
    for ((&x, &t_x), &age) in x.iter().zip(t_x).zip(age) {
        let x = x.value();
        let whole = (x >= 0.0) & (x <= u32::MAX as f64) & ((x + TWO_52) - TWO_52 == x);
        // (`abs() < inf` is false for NaN and infinities.)
        let rows_ok = whole
            & (t_x.abs() < f64::INFINITY)
            & (t_x >= 0.0)
            & (age.abs() < f64::INFINITY)
            & (age >= 0.0)
            & (t_x <= age)
            & ((x != 0.0) | (t_x == 0.0));
        bad |= !rows_ok;
    }
    !bad
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
fn rows_pass_avx2<T: CountValue>(x: &[T], t_x: &[f64], age: &[f64]) -> bool {
    rows_pass(x, t_x, age)
}

/// [`rows_pass`] with AVX2 where the processor has it.
fn rows_pass_dispatch<T: CountValue>(x: &[T], t_x: &[f64], age: &[f64]) -> bool {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx2") {
        // SAFETY: the processor supports AVX2 (checked just above).
        return unsafe { rows_pass_avx2(x, t_x, age) };
    }
    rows_pass(x, t_x, age)
}

/// The rules of [`RfmColumns::validate_on`], frequency `x(i)`; `quick(rows)` tells whether all
/// of `rows` pass them ([`rows_pass`]), so only a chunk with a broken row is searched row by row.
fn validate_rows(
    this: Parts<'_>,
    x: impl Fn(usize) -> f64 + Sync,
    quick: impl Fn(std::ops::Range<usize>) -> bool + Sync,
    names: &RfmNames,
    exec: &crate::parallel::Exec,
) -> Result<()> {
    let n = this.n;
    if n == 0 {
        return Err(ClvError::invalid_data(
            &names.frequency,
            None,
            None,
            "at least one customer is required (the input is empty)",
        ));
    }
    if n > u32::MAX as usize {
        return Err(ClvError::invalid_data(
            &names.frequency,
            None,
            None,
            format!("has {n} rows; at most {} are supported in one call: pass identical rows once with counts as weights, or split the data", u32::MAX),
        ));
    }
    let mut lengths = vec![
        (names.recency.as_str(), this.recency.len()),
        (names.age.as_str(), this.age.len()),
    ];
    if let Some(w) = this.weights {
        lengths.push((names.weights.as_str(), w.len()));
    }
    check_lengths(&lengths, n)?;
    // One pass (parallel on `exec`) finds the first row breaking each rule; the rules are
    // then reported in this order.
    const NONE: usize = usize::MAX;
    let first = exec.chunked_reduce(
        n,
        || [NONE; 5],
        |range, first: &mut [usize; 5]| {
            if quick(range.clone()) {
                return;
            }
            for i in range {
                let (x, t_x, age) = (x(i), this.recency[i], this.age[i]);
                // `as u32` truncates (NaN gives 0), so this is "a whole number in range".
                let broken = [
                    !(x >= 0.0 && x <= u32::MAX as f64 && f64::from(x as u32) == x),
                    !(t_x.is_finite() && t_x >= 0.0),
                    !(age.is_finite() && age >= 0.0),
                    t_x > age,
                    x == 0.0 && t_x != 0.0,
                ];
                for (slot, broken) in first.iter_mut().zip(broken) {
                    if broken && *slot == NONE {
                        *slot = i;
                    }
                }
            }
        },
        |total, part| {
            for (t, p) in total.iter_mut().zip(part) {
                *t = (*t).min(p);
            }
        },
    );
    let age_rule = format!(
        "must not exceed {} (the customer's age, {{age}}): the last purchase cannot come after the end of observation",
        names.age
    );
    let frequency = |i: usize| x(i);
    let recency = |i: usize| this.recency[i];
    let age = |i: usize| this.age[i];
    let checks: [Check<'_>; 5] = [
        (
            &names.frequency,
            &frequency,
            "must be a whole number of repeat purchases >= 0 (and below 2^32)".into(),
        ),
        (
            &names.recency,
            &recency,
            "must be a finite number >= 0".into(),
        ),
        (&names.age, &age, "must be a finite number >= 0".into()),
        (&names.recency, &recency, age_rule),
        (
            &names.recency,
            &recency,
            format!(
                "must be 0 when {} is 0 (no repeat purchase, so no time of last repeat purchase)",
                names.frequency
            ),
        ),
    ];
    for ((column, values, rule), row) in checks.into_iter().zip(first) {
        if row != NONE {
            let rule = rule.replace("{age}", &this.age[row].to_string());
            return Err(ClvError::invalid_data(
                column,
                Some(row),
                Some(values(row)),
                rule,
            ));
        }
    }
    if let Some(w) = this.weights {
        check_weights(&names.weights, w)?;
    }
    Ok(())
}

/// The compression of [`RfmColumns::compress_on`], frequency `x(i)`.
fn compress_rows(this: Parts<'_>, x: impl Fn(usize) -> f64, exec: &crate::parallel::Exec) -> Rfm {
    let n = this.n;
    let weight = |i: usize| this.weights.map_or(1.0, |w| w[i]);
    // Rows kept (zero weights are dropped) counted per frequency bucket. Frequencies are
    // whole numbers below 2^32 (checked by `validate`); a bucket per value up to the largest
    // when that is not much more than the number of rows, else per distinct value.
    let max_x = (0..n).fold(0.0f64, |m, i| m.max(x(i))) as usize;
    let distinct_x: Option<Vec<u32>> = (max_x > n.max(1 << 16)).then(|| {
        let mut xs: Vec<u32> = (0..n).map(|i| x(i) as u32).collect();
        exec.sort_unstable_by(&mut xs, |a, b| a.cmp(b));
        xs.dedup();
        xs
    });
    let bucket_of = |i: usize| match &distinct_x {
        None => x(i) as usize,
        Some(xs) => xs.partition_point(|&v| (v as f64) < x(i)),
    };
    let buckets = distinct_x.as_ref().map_or(max_x + 1, Vec::len);
    let bucket_value = |k: usize| distinct_x.as_ref().map_or(k as f64, |xs| f64::from(xs[k]));
    let mut starts = vec![0usize; buckets + 1];
    for i in 0..n {
        if weight(i) != 0.0 {
            starts[bucket_of(i) + 1] += 1;
        }
    }
    for k in 1..starts.len() {
        starts[k] += starts[k - 1];
    }
    let kept = starts[buckets];
    // +0.0 turns -0.0 into 0.0 so that equal values share one bit pattern; non-negative
    // finite f64 bit patterns sort like the numbers themselves.
    let bits = |v: f64| (v + 0.0).to_bits();
    let mut next = starts.clone();
    let out = match this.weights {
        None => {
            let mut records = vec![(0u64, 0u64); kept];
            for i in 0..n {
                let slot = &mut next[bucket_of(i)];
                records[*slot] = (bits(this.recency[i]), bits(this.age[i]));
                *slot += 1;
            }
            exec.for_each_range(&mut records, &starts, |bucket| sort_bucket(bucket, exec));
            Rfm::from_sorted(
                &starts,
                bucket_value,
                records.iter().map(|&(t, age)| (t, age, 1.0)),
            )
        }
        Some(w) => {
            // The weight is part of the sort key, so tied rows add up in one order.
            let mut records = vec![(0u64, 0u64, 0u64); kept];
            for i in (0..n).filter(|&i| w[i] != 0.0) {
                let slot = &mut next[bucket_of(i)];
                records[*slot] = (bits(this.recency[i]), bits(this.age[i]), w[i].to_bits());
                *slot += 1;
            }
            exec.for_each_range(&mut records, &starts, |bucket| {
                exec.sort_unstable_by(bucket, |a, b| a.cmp(b))
            });
            Rfm::from_sorted(
                &starts,
                bucket_value,
                records
                    .iter()
                    .map(|&(t, age, w)| (t, age, f64::from_bits(w))),
            )
        }
    };
    out
}

/// Buckets of at least this many records whose recencies are all equal are sorted by
/// [`radix_sort`] of their ages.
const RADIX_SORT_RECORDS: usize = 4096;

/// Sort one frequency bucket of (recency, age) bit patterns. The customers without repeat
/// purchases (recency 0: often half of them or more) differ only in age: their bucket is sorted
/// by a radix sort of the ages, which on a million distinct ages takes about a third of the
/// processor time of a comparison sort of the pairs (and a fraction where ages are whole days or
/// weeks, whose low bytes are all equal). The result is the same either way (a sort of
/// distinct-or-identical integer keys).
fn sort_bucket(records: &mut [(u64, u64)], exec: &crate::parallel::Exec) {
    let Some(&(recency, _)) = records.first() else {
        return;
    };
    if records.len() >= RADIX_SORT_RECORDS && records.iter().all(|r| r.0 == recency) {
        let mut ages: Vec<u64> = records.iter().map(|r| r.1).collect();
        radix_sort(&mut ages);
        for (record, age) in records.iter_mut().zip(ages) {
            *record = (recency, age);
        }
    } else {
        exec.sort_unstable_by(records, |a, b| a.cmp(b));
    }
}

/// Sort `keys` ascending: least significant byte first, one counting pass for all eight
/// bytes, and no pass for a byte that every key shares.
fn radix_sort(keys: &mut [u64]) {
    let n = keys.len();
    let mut counts = vec![[0usize; 256]; 8];
    for &key in keys.iter() {
        for (byte, count) in counts.iter_mut().enumerate() {
            count[((key >> (8 * byte)) & 0xff) as usize] += 1;
        }
    }
    let mut buffer = vec![0u64; n];
    let mut in_keys = true;
    for (byte, count) in counts.iter().enumerate() {
        if count.contains(&n) {
            continue;
        }
        let mut next = [0usize; 256];
        for d in 1..256 {
            next[d] = next[d - 1] + count[d - 1];
        }
        let (from, to): (&[u64], &mut [u64]) = if in_keys {
            (keys, &mut buffer)
        } else {
            (&buffer, keys)
        };
        for &key in from {
            let d = ((key >> (8 * byte)) & 0xff) as usize;
            to[next[d]] = key;
            next[d] += 1;
        }
        in_keys = !in_keys;
    }
    if !in_keys {
        keys.copy_from_slice(&buffer);
    }
}

/// Rows of weight 1: the weights of rows that carry none (see [`Rfm::weights_of`]).
static ONES: [f64; crate::parallel::CHUNK_ROWS] = [1.0; crate::parallel::CHUNK_ROWS];

/// Owned, compressed (x, t_x, T, weight) rows in canonical order: by frequency, then recency,
/// then age.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Rfm {
    pub frequency: Vec<f64>,
    pub recency: Vec<f64>,
    pub age: Vec<f64>,
    /// Row weights (customers per row); `None` when every weight is 1, which saves a column
    /// when nothing compresses.
    pub weights: Option<Vec<f64>>,
}

impl Rfm {
    /// Distinct rows from records sorted within frequency buckets (`starts` as in
    /// [`RfmColumns::compress_on`]), merging runs of identical rows. The weight column is
    /// materialised only once a weight other than 1 appears.
    fn from_sorted(
        starts: &[usize],
        bucket_value: impl Fn(usize) -> f64,
        records: impl Iterator<Item = (u64, u64, f64)>,
    ) -> Rfm {
        let total = starts[starts.len() - 1];
        // Capacity for every row: the pages beyond the distinct rows are never touched.
        let mut out = Rfm {
            frequency: Vec::with_capacity(total),
            recency: Vec::with_capacity(total),
            age: Vec::with_capacity(total),
            weights: None,
        };
        let mut bucket = 0;
        let mut last = None;
        for (position, (t_x, age, w)) in records.enumerate() {
            while position >= starts[bucket + 1] {
                bucket += 1;
            }
            let key = (bucket, t_x, age);
            let merge = last == Some(key);
            if (merge || w != 1.0) && out.weights.is_none() {
                let mut weights = Vec::with_capacity(total);
                weights.resize(out.len(), 1.0);
                out.weights = Some(weights);
            }
            if merge {
                let weights = out.weights.as_mut().expect("materialised above");
                *weights.last_mut().expect("a row was pushed") += w;
            } else {
                out.frequency.push(bucket_value(bucket));
                out.recency.push(f64::from_bits(t_x));
                out.age.push(f64::from_bits(age));
                if let Some(weights) = out.weights.as_mut() {
                    weights.push(w);
                }
                last = Some(key);
            }
        }
        out
    }

    /// Number of distinct rows.
    pub fn len(&self) -> usize {
        self.frequency.len()
    }

    /// True when there are no rows.
    pub fn is_empty(&self) -> bool {
        self.frequency.is_empty()
    }

    /// Sum of the weights (the number of customers when weights are counts).
    pub fn total_weight(&self) -> f64 {
        match &self.weights {
            Some(w) => w.iter().sum(),
            None => self.len() as f64,
        }
    }

    /// The weights of the rows in `range`, which must hold at most
    /// [`CHUNK_ROWS`](crate::parallel::CHUNK_ROWS) rows when the rows carry no weight column.
    pub fn weights_of(&self, range: std::ops::Range<usize>) -> &[f64] {
        match &self.weights {
            Some(w) => &w[range],
            None => &ONES[..range.len()],
        }
    }

    /// The weight of row `i`.
    pub fn weight(&self, i: usize) -> f64 {
        self.weights.as_ref().map_or(1.0, |w| w[i])
    }

    /// Every `stride`-th row (weights kept): a stratified subsample of the canonical order.
    pub fn subsample(&self, stride: usize) -> Rfm {
        let stride = stride.max(1);
        let pick = |v: &Vec<f64>| v.iter().step_by(stride).copied().collect();
        Rfm {
            frequency: pick(&self.frequency),
            recency: pick(&self.recency),
            age: pick(&self.age),
            weights: self.weights.as_ref().map(pick),
        }
    }

    /// Borrow as columns.
    /// Scales for starting points: `(1 / rate, mean age)`, the inverse of the customers'
    /// mean purchase rate (mean frequency over mean age) and their mean age, both clamped to
    /// `[1e-6, 1e12]`.
    pub fn start_scales(&self) -> (f64, f64) {
        let w = self.total_weight();
        let weighted_mean =
            |v: &[f64]| (0..self.len()).map(|i| v[i] * self.weight(i)).sum::<f64>() / w;
        let (mean_x, mean_t) = (weighted_mean(&self.frequency), weighted_mean(&self.age));
        let rate = (mean_x / mean_t.max(f64::MIN_POSITIVE)).max(1e-6);
        ((1.0 / rate).clamp(1e-6, 1e12), mean_t.clamp(1e-6, 1e12))
    }

    pub fn columns(&self) -> RfmColumns<'_> {
        RfmColumns {
            frequency: &self.frequency,
            recency: &self.recency,
            age: &self.age,
            weights: self.weights.as_deref(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The one-pass test agrees with the rules row by row on every awkward value.
    #[test]
    fn the_quick_pass_agrees_with_the_rules() {
        let values = [
            0.0,
            -0.0,
            1.0,
            2.5,
            -1.0,
            1e-310,
            4294967295.0,
            4294967296.0,
            4294967295.5,
            1e300,
            f64::NAN,
            f64::INFINITY,
            f64::NEG_INFINITY,
            3.0,
        ];
        let rules = |x: f64, t_x: f64, age: f64| {
            (x >= 0.0 && x <= u32::MAX as f64 && f64::from(x as u32) == x)
                && (t_x.is_finite() && t_x >= 0.0)
                && (age.is_finite() && age >= 0.0)
                && t_x <= age
                && !(x == 0.0 && t_x != 0.0)
        };
        for &x in &values {
            for &t_x in &values {
                for &age in &values {
                    let quick = rows_pass(&[x], &[t_x], &[age]);
                    assert_eq!(quick, rules(x, t_x, age), "{x} {t_x} {age}");
                    // The same row among valid ones, at every position of a SIMD group.
                    for at in 0..9 {
                        let mut xs = vec![1.0; 9];
                        let mut ts = vec![0.5; 9];
                        let mut ages = vec![2.0; 9];
                        (xs[at], ts[at], ages[at]) = (x, t_x, age);
                        assert_eq!(rows_pass(&xs, &ts, &ages), quick);
                    }
                }
            }
        }
        let ints: [i64; 5] = [0, 3, -1, 1 << 32, (1 << 32) - 1];
        for &x in &ints {
            for t_x in [0.0, 1.0] {
                let quick = rows_pass(&[x], &[t_x], &[2.0]);
                assert_eq!(quick, rules(x as f64, t_x, 2.0), "{x} {t_x}");
            }
        }
    }

    #[test]
    fn validation_names_column_row_and_rule() {
        let x = [0.0, 1.0, 2.5];
        let t = [0.0, 1.0, 2.0];
        let age = [3.0, 3.0, 3.0];
        let err = RfmColumns::new(&x, &t, &age)
            .validate(&RfmNames::default())
            .unwrap_err();
        let text = err.to_string();
        assert!(
            text.contains("frequency") && text.contains("row 2") && text.contains("whole"),
            "{text}"
        );

        let x = [0.0, 1.0];
        let t = [0.0, 4.0];
        let age = [3.0, 3.0];
        let text = RfmColumns::new(&x, &t, &age)
            .validate(&RfmNames::default())
            .unwrap_err()
            .to_string();
        assert!(
            text.contains("recency") && text.contains("row 1") && text.contains("exceed"),
            "{text}"
        );

        let err = RfmColumns::new(&[], &[], &[])
            .validate(&RfmNames::default())
            .unwrap_err();
        assert!(err.to_string().contains("empty"));
    }

    /// The canonical compression written plainly: sort every kept row by (frequency, recency
    /// bits, age bits, weight bits), then merge runs of equal (frequency, recency, age).
    fn reference(x: &[f64], t: &[f64], age: &[f64], w: Option<&[f64]>) -> Rfm {
        let bits = |v: f64| (v + 0.0).to_bits();
        let mut rows: Vec<(u64, u64, u64, u64)> = (0..x.len())
            .filter(|&i| w.is_none_or(|w| w[i] != 0.0))
            .map(|i| {
                let wi = w.map_or(1.0, |w| w[i]);
                (x[i] as u64, bits(t[i]), bits(age[i]), wi.to_bits())
            })
            .collect();
        rows.sort();
        let mut out = Rfm::default();
        let mut weights = Vec::new();
        let mut weighted = false;
        for (j, r) in rows.iter().enumerate() {
            let wi = f64::from_bits(r.3);
            weighted |= wi != 1.0;
            if j > 0 && r.0 == rows[j - 1].0 && r.1 == rows[j - 1].1 && r.2 == rows[j - 1].2 {
                weighted = true;
                *weights.last_mut().unwrap() += wi;
            } else {
                out.frequency.push(r.0 as f64);
                out.recency.push(f64::from_bits(r.1));
                out.age.push(f64::from_bits(r.2));
                weights.push(wi);
            }
        }
        out.weights = weighted.then_some(weights);
        out
    }

    #[test]
    fn radix_sort_sorts() {
        use crate::random::Rng;
        let mut rng = Rng::new(5);
        // Distinct ages' bit patterns, whole numbers (low bytes all equal, those passes
        // skipped), duplicates, extremes, and the empty and one-key cases.
        let cases: Vec<Vec<u64>> = vec![
            (0..5000)
                .map(|_| (26.0 + 52.0 * rng.uniform()).to_bits())
                .collect(),
            (0..5000)
                .map(|_| (26.0 + 52.0 * rng.uniform()).floor().to_bits())
                .collect(),
            (0..5000)
                .map(|i| [0, 1, u64::MAX, 1 << 63, 7][i % 5])
                .collect(),
            vec![],
            vec![42],
        ];
        for keys in cases {
            let mut want = keys.clone();
            want.sort_unstable();
            let mut got = keys;
            radix_sort(&mut got);
            assert_eq!(got, want);
        }
    }

    #[test]
    fn compression_is_canonical_for_any_thread_count_and_input_order() {
        use crate::parallel::Exec;
        use crate::random::Rng;
        let execs = [
            Exec::Serial,
            Exec::with_jobs(Some(2)).unwrap(),
            Exec::with_jobs(Some(3)).unwrap(),
        ];
        // Continuous values (nearly all rows distinct), values on a coarse grid (many
        // duplicates, ties in recency), skewed values and huge sparse frequencies.
        for (case, n) in [(0, 70_000), (1, 70_000), (2, 50_000), (3, 40_000), (0, 37)] {
            let mut rng = Rng::for_stream(7, case as u64 * 1000 + n as u64);
            let (mut x, mut t, mut age, mut w) = (vec![], vec![], vec![], vec![]);
            for _ in 0..n {
                let a = match case {
                    1 => (26.0 + 52.0 * rng.uniform()).floor(),
                    2 => 1e-3 + 100.0 * rng.uniform().powi(8),
                    _ => 26.0 + 52.0 * rng.uniform(),
                };
                let k = (rng.uniform() * 6.0).floor();
                let xi = match case {
                    3 => [0.0, 3.0, 4e9, 7e8][k as usize % 4],
                    _ => (k * k).floor(),
                };
                let ti = if xi == 0.0 {
                    0.0
                } else if case == 1 {
                    (a * rng.uniform()).floor()
                } else {
                    a * rng.uniform().powi(3)
                };
                x.push(xi);
                t.push(ti);
                age.push(a);
                w.push([0.0, 1.0, 1.0, 2.5][(rng.uniform() * 4.0) as usize % 4]);
            }
            if n > 1000 {
                // An exact duplicate block, with -0.0 for 0.0.
                for i in 0..500 {
                    x.push(x[i]);
                    t.push(if t[i] == 0.0 { -0.0 } else { t[i] });
                    age.push(age[i]);
                    w.push(w[i]);
                }
            }
            let reversed = |v: &Vec<f64>| v.iter().rev().copied().collect::<Vec<f64>>();
            let (xr, tr, ager, wr) = (reversed(&x), reversed(&t), reversed(&age), reversed(&w));
            for weights in [None, Some(&w[..])] {
                let want = reference(&x, &t, &age, weights);
                for exec in &execs {
                    let cols = RfmColumns {
                        weights,
                        ..RfmColumns::new(&x, &t, &age)
                    };
                    let got = cols.compress_on(exec);
                    assert_eq!(got, want, "case {case}, {exec:?}");
                    let rev = RfmColumns {
                        weights: weights.map(|_| &wr[..]),
                        ..RfmColumns::new(&xr, &tr, &ager)
                    };
                    assert_eq!(
                        rev.compress_on(exec),
                        want,
                        "case {case} reversed, {exec:?}"
                    );
                }
            }
        }
    }

    #[test]
    fn compression_merges_identical_rows_in_canonical_order() {
        let x = [1.0, 0.0, 1.0, 1.0];
        let t = [2.0, 0.0, 2.0, 1.0];
        let age = [5.0, 5.0, 5.0, 5.0];
        let rfm = RfmColumns::new(&x, &t, &age).compress();
        assert_eq!(rfm.frequency, vec![0.0, 1.0, 1.0]);
        assert_eq!(rfm.recency, vec![0.0, 1.0, 2.0]);
        assert_eq!(rfm.weights, Some(vec![1.0, 1.0, 2.0]));
        // Compressing compressed data changes nothing.
        assert_eq!(rfm.columns().compress(), rfm);
        // Without duplicates there is no weight column.
        let distinct =
            RfmColumns::new(&[0.0, 2.0, 1.0], &[0.0, 1.0, 1.0], &[3.0, 3.0, 3.0]).compress();
        assert_eq!(distinct.weights, None);
        assert_eq!(distinct.frequency, vec![0.0, 1.0, 2.0]);
        assert_eq!(distinct.total_weight(), 3.0);
        // Huge, sparse frequencies are bucketed by distinct value.
        let x = [4e9, 0.0, 7.0, 4e9];
        let t = [1.0, 0.0, 2.0, 1.0];
        let sparse = RfmColumns::new(&x, &t, &[3.0; 4]).compress();
        assert_eq!(sparse.frequency, vec![0.0, 7.0, 4e9]);
        assert_eq!(sparse.weights, Some(vec![1.0, 1.0, 2.0]));
    }
}
