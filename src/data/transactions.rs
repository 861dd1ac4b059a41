//! Transaction logs to customer summaries: the step that turns (customer, time, amount) rows
//! into the (frequency, recency, T, monetary value) the models are fitted on.
//!
//! Semantics (those of `lifetimes`' `summary_data_from_transaction_data`, which users rely on):
//! timestamps are floored to periods (hours, days, weeks starting on Monday, or calendar
//! months); a customer's transactions in the same period are merged (amounts summed);
//! frequency is the number of distinct periods minus one (or the number of periods with
//! `include_first`), recency the number of periods from the first to the last, T the number from
//! the first to the end of observation, both divided by a multiplier; the monetary value is the
//! mean of the per-period sums excluding the first period (0 when there is none).
//!
//! Customers arrive as dense codes `0..n_customers` (the caller factorises ids), times as
//! counts of a unit (nanoseconds to seconds) since the Unix epoch. Rows are bucketed by customer with a counting sort (two
//! linear passes), then every customer's periods are sorted and merged in parallel.

use crate::error::{ClvError, Result};
use crate::parallel::Exec;

/// Nanoseconds per hour and per day.
const HOUR_NS: i64 = 3_600_000_000_000;
const DAY_NS: i64 = 24 * HOUR_NS;

/// The period length timestamps are floored to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Period {
    Hour,
    Day,
    /// Weeks from Monday to Sunday (pandas' `W`).
    Week,
    /// Calendar months.
    Month,
}

impl Period {
    /// Parse `H`, `D`, `W` or `M` (case-insensitive).
    pub fn parse(code: &str) -> Result<Period> {
        match code.to_ascii_uppercase().as_str() {
            "H" => Ok(Period::Hour),
            "D" => Ok(Period::Day),
            "W" => Ok(Period::Week),
            "M" => Ok(Period::Month),
            _ => Err(ClvError::invalid_parameter(
                "freq",
                format!("must be one of H, D, W, M, got {code:?}"),
            )),
        }
    }

    /// The index of the period holding `ns` (periods since the one holding the epoch; months
    /// since January 1970).
    pub fn index(self, ns: i64) -> i64 {
        match self {
            Period::Hour => ns.div_euclid(HOUR_NS),
            Period::Day => ns.div_euclid(DAY_NS),
            // 1970-01-01 was a Thursday: day 0 is 3 days after a Monday.
            Period::Week => (ns.div_euclid(DAY_NS) + 3).div_euclid(7),
            Period::Month => {
                let (year, month) = civil_from_days(ns.div_euclid(DAY_NS));
                (year - 1970) * 12 + (month - 1)
            }
        }
    }

    /// The index of the period holding `time` counted in units of `unit_ns` nanoseconds: exact
    /// for every `time` (a count of seconds or microseconds reaches years far outside the
    /// 1677-2262 that nanoseconds cover; those go through 128-bit arithmetic, never wrapping).
    #[inline]
    pub fn index_in(self, time: i64, unit_ns: i64) -> i64 {
        match time.checked_mul(unit_ns) {
            Some(ns) => self.index(ns),
            None => self.index_wide(i128::from(time) * i128::from(unit_ns)),
        }
    }

    /// [`Period::index`] of a nanosecond count beyond `i64` (for units up to a second, the
    /// hours and days of any `i64` count still fit `i64`).
    #[cold]
    fn index_wide(self, ns: i128) -> i64 {
        let days = ns.div_euclid(i128::from(DAY_NS)) as i64;
        match self {
            Period::Hour => ns.div_euclid(i128::from(HOUR_NS)) as i64,
            Period::Day => days,
            Period::Week => (days + 3).div_euclid(7),
            Period::Month => {
                let (year, month) = civil_from_days(days);
                (year - 1970) * 12 + (month - 1)
            }
        }
    }
}

/// (year, month) of a day count since 1970-01-01, proleptic Gregorian calendar (H. Hinnant's
/// `civil_from_days`).
fn civil_from_days(days: i64) -> (i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month)
}

/// The rows of a transaction log, borrowed.
#[derive(Debug, Clone, Copy)]
pub struct TransactionColumns<'a> {
    /// Customer codes in `0..n_customers`; negative codes are missing ids.
    pub customer: &'a [i64],
    /// Times since the epoch in units of `SummaryOptions::time_unit_ns`; `i64::MIN` is a
    /// missing time.
    pub time_ns: &'a [i64],
    pub amount: Option<&'a [f64]>,
    /// Subtracted from `customer` to give the code (so integer ids in a dense range need no
    /// factorisation: code = id - smallest id).
    pub customer_offset: i64,
}

impl TransactionColumns<'_> {
    /// The customer code of row `i` (negative or out of range for a missing id).
    #[inline]
    fn code(&self, i: usize) -> i64 {
        self.customer[i].wrapping_sub(self.customer_offset)
    }
}

/// Names of the columns, for errors.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TransactionNames {
    pub customer: String,
    pub time: String,
    pub amount: String,
}

/// Options of a summary.
#[derive(Debug, Clone, Copy)]
pub struct SummaryOptions {
    pub period: Period,
    /// recency and T are divided by this.
    pub multiplier: f64,
    /// End of observation, in the units of the times (`time_unit_ns`), floored to its period;
    /// the latest time if None.
    pub end_ns: Option<i64>,
    /// Count the first period in frequency and in the monetary mean.
    pub include_first: bool,
    /// Leave out rows after the end (and count them) instead of failing.
    pub exclude_after_end: bool,
    /// Accept negative amounts (returns); NaN and infinite amounts are always errors.
    pub allow_negative: bool,
    /// Leave out (by design, uncounted) rows in this period or earlier: the holdout of a
    /// calibration/holdout split. In the units of the times, like `end_ns`.
    pub after_ns: Option<i64>,
    /// Also count repeat transactions (distinct periods after each customer's first) per period.
    pub track: bool,
    /// Nanoseconds per unit of the times (1 for nanoseconds, 1_000_000 for milliseconds).
    pub time_unit_ns: i64,
}

/// Per-customer summaries, one row per customer with a transaction up to the end, in code
/// order.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Summary {
    pub customer: Vec<i64>,
    pub frequency: Vec<f64>,
    pub recency: Vec<f64>,
    pub age: Vec<f64>,
    pub monetary: Option<Vec<f64>>,
    /// Index of each customer's first period (see [`Period::index`]).
    pub first_period: Vec<i64>,
    /// Rows left out because they fall after the end of observation.
    pub excluded_after_end: usize,
    /// Index of the end period.
    pub end_period: i64,
    /// With `track`: (period index, repeat transactions in it), ascending.
    pub repeat_counts: Vec<(i64, f64)>,
}

fn bad(column: &str, row: usize, value: Option<f64>, rule: &str) -> ClvError {
    ClvError::invalid_data(column, Some(row), value, rule)
}

/// Summarise a transaction log (see the module documentation).
pub fn summarize(
    columns: &TransactionColumns<'_>,
    n_customers: usize,
    names: &TransactionNames,
    opts: &SummaryOptions,
    exec: &Exec,
) -> Result<Summary> {
    let n = columns.customer.len();
    let mut lengths = vec![(names.time.as_str(), columns.time_ns.len())];
    if let Some(a) = columns.amount {
        lengths.push((names.amount.as_str(), a.len()));
    }
    crate::data::check_lengths(&lengths, n)?;
    if n == 0 {
        return Err(ClvError::invalid_data(
            &names.customer,
            None,
            None,
            "at least one transaction is required (the input is empty)",
        ));
    }
    if !(opts.multiplier.is_finite() && opts.multiplier > 0.0) {
        return Err(ClvError::invalid_parameter(
            "freq_multiplier",
            format!("must be a finite number > 0, got {}", opts.multiplier),
        ));
    }
    if opts.time_unit_ns < 1 {
        return Err(ClvError::invalid_parameter(
            "time_unit_ns",
            format!("must be >= 1, got {}", opts.time_unit_ns),
        ));
    }
    let period = opts.period;
    let unit = opts.time_unit_ns;
    // One parallel pass: each row's period, the latest period, and the first row breaking each
    // rule (missing id, missing time, bad amount, negative amount).
    let mut periods = vec![0i64; n];
    exec.fill(&mut periods, |i| {
        let t = columns.time_ns[i];
        if t == i64::MIN {
            i64::MIN
        } else {
            period.index_in(t, unit)
        }
    });
    const NONE: usize = usize::MAX;
    let (first_bad, latest) = exec.chunked_reduce(
        n,
        || ([NONE; 4], i64::MIN),
        |range, (bad, latest): &mut ([usize; 4], i64)| {
            for i in range {
                let c = columns.code(i);
                let broken = [
                    c < 0 || c as usize >= n_customers,
                    columns.time_ns[i] == i64::MIN,
                    columns.amount.is_some_and(|a| !a[i].is_finite()),
                    columns.amount.is_some_and(|a| a[i] < 0.0) && !opts.allow_negative,
                ];
                for (slot, broken) in bad.iter_mut().zip(broken) {
                    if broken && *slot == NONE {
                        *slot = i;
                    }
                }
                *latest = (*latest).max(periods[i]);
            }
        },
        |(bad, latest), (part, part_latest)| {
            for (b, p) in bad.iter_mut().zip(part) {
                *b = (*b).min(p);
            }
            *latest = (*latest).max(part_latest);
        },
    );
    let amount_at = |i: usize| columns.amount.map_or(f64::NAN, |a| a[i]);
    let checks: [(&str, Option<f64>, &str); 4] = [
        (&names.customer, None, "must not be missing (null)"),
        (
            &names.time,
            None,
            "must not be missing (null or unparsable)",
        ),
        (&names.amount, Some(0.0), "must be a finite number (no NaN)"),
        (
            &names.amount,
            Some(0.0),
            "must be >= 0 (pass allow_negative=True to accept returns)",
        ),
    ];
    for ((column, value, rule), row) in checks.into_iter().zip(first_bad) {
        if row != NONE {
            return Err(bad(column, row, value.map(|_| amount_at(row)), rule));
        }
    }
    let end_period = opts.end_ns.map_or(latest, |t| period.index_in(t, unit));
    let after = opts.after_ns.map(|t| period.index_in(t, unit));
    if !opts.exclude_after_end {
        if let Some(i) = (0..n).find(|&i| periods[i] > end_period) {
            return Err(bad(
                &names.time,
                i,
                None,
                "falls after observation_period_end (pass the rows up to the end, or \
                 after_end=\"exclude\" to leave later rows out and count them)",
            ));
        }
    }
    if !opts.track {
        if let Some(out) = summarize_in_order(
            columns,
            &periods,
            n_customers,
            end_period,
            after,
            opts,
            exec,
        ) {
            return Ok(out);
        }
    }
    // Counting sort of the kept rows' (period, amount) by customer.
    let mut starts = vec![0usize; n_customers + 1];
    let mut excluded = 0usize;
    let kept = |p: i64| p <= end_period && after.is_none_or(|a| p > a);
    for i in 0..n {
        let p = periods[i];
        if p > end_period {
            excluded += 1;
        } else if kept(p) {
            starts[columns.code(i) as usize + 1] += 1;
        }
    }
    for c in 0..n_customers {
        starts[c + 1] += starts[c];
    }
    let total = starts[n_customers];
    let mut bucket: Vec<(i64, f64)> = vec![(0, 0.0); total];
    {
        let mut fill = starts.clone();
        for i in 0..n {
            let p = periods[i];
            if kept(p) {
                let c = columns.code(i) as usize;
                bucket[fill[c]] = (p, columns.amount.map_or(0.0, |a| a[i]));
                fill[c] += 1;
            }
        }
    }
    drop(periods);
    // Each customer's rows are usually in time order already; sort those that are not.
    {
        let mut rest: &mut [(i64, f64)] = &mut bucket;
        let mut pieces = Vec::with_capacity(n_customers);
        for c in 0..n_customers {
            let (head, tail) = rest.split_at_mut(starts[c + 1] - starts[c]);
            pieces.push(head);
            rest = tail;
        }
        exec.install(|| {
            use rayon::prelude::*;
            pieces.par_iter_mut().for_each(|rows| {
                if !rows.windows(2).all(|w| w[0].0 <= w[1].0) {
                    rows.sort_unstable_by(|a, b| a.0.cmp(&b.0).then(a.1.total_cmp(&b.1)));
                }
            });
        });
    }
    // Per customer: distinct periods, first and last, per-period sums.
    struct Row {
        frequency: f64,
        recency: f64,
        age: f64,
        monetary: f64,
        first: i64,
    }
    let summarize_one = |c: usize, track: Option<&mut Vec<i64>>| -> Option<Row> {
        let rows = &bucket[starts[c]..starts[c + 1]];
        let (first, last) = (rows.first()?.0, rows.last()?.0);
        let (mut distinct, mut repeat_sum, mut first_sum) = (0usize, 0.0, 0.0);
        let mut current = i64::MIN;
        let mut track = track;
        for &(p, a) in rows {
            if p != current {
                distinct += 1;
                current = p;
                if p != first {
                    if let Some(t) = track.as_deref_mut() {
                        t.push(p);
                    }
                }
            }
            if p == first {
                first_sum += a;
            } else {
                repeat_sum += a;
            }
        }
        let repeats = distinct - 1;
        let (frequency, monetary) = if opts.include_first {
            (distinct as f64, (first_sum + repeat_sum) / distinct as f64)
        } else if repeats > 0 {
            (repeats as f64, repeat_sum / repeats as f64)
        } else {
            (0.0, 0.0)
        };
        let scale = |periods: i64| periods as f64 / opts.multiplier;
        Some(Row {
            frequency,
            recency: scale(last - first),
            age: scale(end_period - first),
            monetary,
            first,
        })
    };
    let customers: Vec<usize> = (0..n_customers).collect();
    let rows: Vec<Option<Row>> = exec.map(&customers, |&c| summarize_one(c, None));
    let mut out = Summary {
        excluded_after_end: excluded,
        end_period,
        monetary: columns.amount.map(|_| Vec::with_capacity(n_customers)),
        ..Summary::default()
    };
    for (c, row) in rows.into_iter().enumerate() {
        if let Some(row) = row {
            out.customer.push(c as i64);
            out.frequency.push(row.frequency);
            out.recency.push(row.recency);
            out.age.push(row.age);
            out.first_period.push(row.first);
            if let Some(m) = out.monetary.as_mut() {
                m.push(row.monetary);
            }
        }
    }
    if opts.track {
        let mut repeat_periods = Vec::new();
        for c in 0..n_customers {
            summarize_one(c, Some(&mut repeat_periods));
        }
        let mut counts = std::collections::BTreeMap::new();
        for p in repeat_periods {
            *counts.entry(p).or_insert(0.0) += 1.0;
        }
        out.repeat_counts = counts.into_iter().collect();
    }
    Ok(out)
}

/// Running summary of one customer's rows.
#[derive(Clone, Copy)]
struct Running {
    first: i64,
    last: i64,
    distinct: u32,
    first_sum: f64,
    repeat_sum: f64,
}

const EMPTY: Running = Running {
    first: i64::MIN,
    last: i64::MIN,
    distinct: 0,
    first_sum: 0.0,
    repeat_sum: 0.0,
};

/// The summary in one streaming pass, valid when every customer's rows come in time order (as
/// logs usually do): no bucketing of rows. Each thread owns the customers `c % threads == k`
/// and scans all rows for theirs. `None` as soon as a customer's rows go back in time.
fn summarize_in_order(
    columns: &TransactionColumns<'_>,
    periods: &[i64],
    n_customers: usize,
    end_period: i64,
    after: Option<i64>,
    opts: &SummaryOptions,
    exec: &Exec,
) -> Option<Summary> {
    let threads = exec.threads().max(1);
    let n = periods.len();
    let lanes: Vec<usize> = (0..threads).collect();
    let states: Vec<Option<(Vec<Running>, usize)>> = exec.map(&lanes, |&k| {
        let mut state = vec![EMPTY; n_customers.div_ceil(threads)];
        let mut excluded = 0usize;
        for i in 0..n {
            let c = columns.code(i) as usize;
            if c % threads != k {
                continue;
            }
            let p = periods[i];
            if p > end_period {
                excluded += 1;
                continue;
            }
            if after.is_some_and(|a| p <= a) {
                continue;
            }
            let a = columns.amount.map_or(0.0, |a| a[i]);
            let s = &mut state[c / threads];
            if s.distinct == 0 {
                *s = Running {
                    first: p,
                    last: p,
                    distinct: 1,
                    first_sum: a,
                    repeat_sum: 0.0,
                };
            } else if p == s.last {
                if p == s.first {
                    s.first_sum += a;
                } else {
                    s.repeat_sum += a;
                }
            } else if p > s.last {
                s.last = p;
                s.distinct += 1;
                s.repeat_sum += a;
            } else {
                return None;
            }
        }
        Some((state, excluded))
    });
    let states: Vec<(Vec<Running>, usize)> = states.into_iter().collect::<Option<_>>()?;
    let mut out = Summary {
        excluded_after_end: states.iter().map(|s| s.1).sum(),
        end_period,
        monetary: columns.amount.map(|_| Vec::with_capacity(n_customers)),
        ..Summary::default()
    };
    let scale = |periods: i64| periods as f64 / opts.multiplier;
    for c in 0..n_customers {
        let s = states[c % threads].0[c / threads];
        if s.distinct == 0 {
            continue;
        }
        let distinct = f64::from(s.distinct);
        let (frequency, monetary) = if opts.include_first {
            (distinct, (s.first_sum + s.repeat_sum) / distinct)
        } else if s.distinct > 1 {
            (distinct - 1.0, s.repeat_sum / (distinct - 1.0))
        } else {
            (0.0, 0.0)
        };
        out.customer.push(c as i64);
        out.frequency.push(frequency);
        out.recency.push(scale(s.last - s.first));
        out.age.push(scale(end_period - s.first));
        out.first_period.push(s.first);
        if let Some(m) = out.monetary.as_mut() {
            m.push(monetary);
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const NAMES: fn() -> TransactionNames = || TransactionNames {
        customer: "id".into(),
        time: "date".into(),
        amount: "amount".into(),
    };

    fn day(y: i64, m: i64, d: i64) -> i64 {
        days(y, m, d) * DAY_NS
    }

    fn days(y: i64, m: i64, d: i64) -> i64 {
        // days_from_civil
        let y = if m <= 2 { y - 1 } else { y };
        let era = y.div_euclid(400);
        let yoe = y - era * 400;
        let mp = (m + 9) % 12;
        let doy = (153 * mp + 2) / 5 + d - 1;
        let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
        era * 146_097 + doe - 719_468
    }

    #[test]
    fn periods_follow_the_calendar() {
        // 1997-01-01 was a Wednesday; its week starts on Monday 1996-12-30.
        assert_eq!(
            Period::Week.index(day(1997, 1, 1)),
            Period::Week.index(day(1996, 12, 30))
        );
        assert_ne!(
            Period::Week.index(day(1996, 12, 30)),
            Period::Week.index(day(1996, 12, 29))
        );
        assert_eq!(
            Period::Month.index(day(1997, 9, 30)) - Period::Month.index(day(1997, 1, 1)),
            8
        );
        assert_eq!(Period::Month.index(day(1969, 12, 31)), -1);
        assert_eq!(Period::Day.index(-1), -1);
        assert_eq!(Period::Hour.index(day(1970, 1, 2) + 5 * HOUR_NS + 1), 29);
    }

    #[test]
    fn periods_of_coarse_units_are_exact_beyond_the_nanosecond_range() {
        const SEC: i64 = 1_000_000_000;
        for period in [Period::Hour, Period::Day, Period::Week, Period::Month] {
            // Within the nanosecond range the unit does not matter.
            let t = day(1997, 3, 5) + 7 * HOUR_NS;
            assert_eq!(period.index_in(t / SEC, SEC), period.index(t));
            assert_eq!(period.index_in(t / 1_000, 1_000), period.index(t));
        }
        // 1500-01-01 and 3000-01-01 in seconds: 547,864 days apart (proleptic Gregorian).
        let (a, b) = (days(1500, 1, 1) * 86_400, days(3000, 1, 1) * 86_400);
        assert!(a.checked_mul(SEC).is_none() && b.checked_mul(SEC).is_none());
        assert_eq!(
            Period::Day.index_in(b, SEC) - Period::Day.index_in(a, SEC),
            547_864
        );
        assert_eq!(
            Period::Month.index_in(b, SEC) - Period::Month.index_in(a, SEC),
            1500 * 12
        );
        assert_eq!(
            Period::Hour.index_in(b, SEC) - Period::Hour.index_in(a, SEC),
            547_864 * 24
        );
        // 1500-01-01 was a Monday (proleptic Gregorian): it starts its week.
        assert_eq!(
            Period::Week.index_in(a + 86_399, SEC),
            Period::Week.index_in(a, SEC)
        );
        assert_eq!(
            Period::Week.index_in(a, SEC),
            Period::Week.index_in(a - 1, SEC) + 1
        );
    }

    #[test]
    fn summarises_like_the_definition() {
        // Customer 0: days 0, 0 (same day, merged), 3, 10; customer 1: day 5 only.
        let customer = [0, 0, 1, 0, 0];
        let time = [0, 3 * HOUR_NS, 5 * DAY_NS, 3 * DAY_NS, 10 * DAY_NS];
        let amount = [10.0, 5.0, 7.0, 20.0, 30.0];
        let cols = TransactionColumns {
            customer: &customer,
            time_ns: &time,
            amount: Some(&amount),
            customer_offset: 0,
        };
        let opts = SummaryOptions {
            period: Period::Day,
            multiplier: 1.0,
            end_ns: Some(12 * DAY_NS),
            include_first: false,
            exclude_after_end: false,
            allow_negative: false,
            after_ns: None,
            track: true,
            time_unit_ns: 1,
        };
        let s = summarize(&cols, 2, &NAMES(), &opts, &Exec::Serial).unwrap();
        assert_eq!(s.frequency, vec![2.0, 0.0]);
        assert_eq!(s.recency, vec![10.0, 0.0]);
        assert_eq!(s.age, vec![12.0, 7.0]);
        assert_eq!(s.monetary, Some(vec![25.0, 0.0]));
        assert_eq!(s.repeat_counts, vec![(3, 1.0), (10, 1.0)]);
        let with_first = SummaryOptions {
            include_first: true,
            ..opts
        };
        let s = summarize(&cols, 2, &NAMES(), &with_first, &Exec::Serial).unwrap();
        assert_eq!(s.frequency, vec![3.0, 1.0]);
        assert_eq!(s.monetary, Some(vec![65.0 / 3.0, 7.0]));
        // A row after the end is an error naming the row, or excluded and counted.
        let early = SummaryOptions {
            end_ns: Some(4 * DAY_NS),
            ..opts
        };
        let err = summarize(&cols, 2, &NAMES(), &early, &Exec::Serial).unwrap_err();
        assert!(
            matches!(err, ClvError::InvalidData(ref d) if d.row == Some(2) && d.column == "date")
        );
        let s = summarize(
            &cols,
            2,
            &NAMES(),
            &SummaryOptions {
                exclude_after_end: true,
                ..early
            },
            &Exec::Serial,
        )
        .unwrap();
        assert_eq!(s.excluded_after_end, 2);
        assert_eq!(s.customer, vec![0]);
        assert_eq!(s.frequency, vec![1.0]);
        // The streaming path (no tracking) agrees with the bucketing one, sorted or not.
        let plain = SummaryOptions {
            track: false,
            ..opts
        };
        let streamed = summarize(&cols, 2, &NAMES(), &plain, &Exec::Serial).unwrap();
        let bucketed = summarize(&cols, 2, &NAMES(), &opts, &Exec::Serial).unwrap();
        assert_eq!(streamed.frequency, bucketed.frequency);
        assert_eq!(streamed.monetary, bucketed.monetary);
        assert_eq!(streamed.age, bucketed.age);
        let reversed_time: Vec<i64> = time.iter().rev().copied().collect();
        let reversed_customer: Vec<i64> = customer.iter().rev().copied().collect();
        let reversed_amount: Vec<f64> = amount.iter().rev().copied().collect();
        let reversed = TransactionColumns {
            customer: &reversed_customer,
            time_ns: &reversed_time,
            amount: Some(&reversed_amount),
            customer_offset: 0,
        };
        let r = summarize(&reversed, 2, &NAMES(), &plain, &Exec::Serial).unwrap();
        assert_eq!(r.frequency, bucketed.frequency);
        assert_eq!(r.recency, bucketed.recency);
        assert_eq!(r.monetary, bucketed.monetary);
        // Bad values name their row.
        let nan = [10.0, f64::NAN, 7.0, 20.0, 30.0];
        let cols = TransactionColumns {
            amount: Some(&nan),
            ..cols
        };
        let err = summarize(&cols, 2, &NAMES(), &opts, &Exec::Serial).unwrap_err();
        assert!(
            matches!(err, ClvError::InvalidData(ref d) if d.row == Some(1) && d.column == "amount")
        );
    }
}
