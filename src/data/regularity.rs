//! Inter-purchase times from a transaction log: what the regularity models and estimators need
//! beyond (frequency, recency, T).
//!
//! A customer's purchases are the distinct periods of the summary (same-period purchases merged,
//! as in [`super::transactions::summarize`]); the inter-purchase times are the gaps between
//! consecutive ones, in the summary's unit (periods divided by the multiplier). Per customer this
//! gives `litt`, the sum of their logs (BTYDplus' `elog2cbs` field of that name, which the
//! (M)BG/CNBD-k likelihood needs), and the last two gaps (the Wheat & Morrison regularity
//! estimator). A separate pass from the summary so that summaries without it cost nothing more.

use super::transactions::{Period, TransactionColumns};
use crate::parallel::Exec;

/// Per customer code (`0..n_customers`): statistics of the inter-purchase times.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Gaps {
    /// Number of inter-purchase times (distinct periods minus one; 0 without purchases).
    pub count: Vec<f64>,
    /// Sum of the logs of the inter-purchase times (0 when there is none).
    pub litt: Vec<f64>,
    /// The last inter-purchase time (NaN when there is none).
    pub last: Vec<f64>,
    /// The one before it (NaN when there are fewer than two).
    pub previous: Vec<f64>,
}

/// The inter-purchase statistics of every customer code, over the rows in periods
/// `(after, end_period]` (as the summary keeps them). Rows with a missing customer or time
/// (which the summary refuses) are skipped.
#[allow(clippy::too_many_arguments)]
pub fn inter_purchase_gaps(
    columns: &TransactionColumns<'_>,
    n_customers: usize,
    period: Period,
    time_unit_ns: i64,
    multiplier: f64,
    end_period: i64,
    after: Option<i64>,
    exec: &Exec,
) -> Gaps {
    let n = columns.customer.len();
    let code = |i: usize| -> Option<usize> {
        let c = columns.customer[i].wrapping_sub(columns.customer_offset);
        (c >= 0 && (c as usize) < n_customers && columns.time_ns[i] != i64::MIN)
            .then_some(c as usize)
    };
    let mut periods = vec![i64::MIN; n];
    exec.fill(&mut periods, |i| {
        let t = columns.time_ns[i];
        if t == i64::MIN {
            i64::MIN
        } else {
            period.index_in(t, time_unit_ns)
        }
    });
    let kept = |p: i64| p != i64::MIN && p <= end_period && after.is_none_or(|a| p > a);
    // Counting sort of the kept periods by customer.
    let mut starts = vec![0usize; n_customers + 1];
    for i in 0..n {
        if let Some(c) = code(i) {
            if kept(periods[i]) {
                starts[c + 1] += 1;
            }
        }
    }
    for c in 0..n_customers {
        starts[c + 1] += starts[c];
    }
    let mut bucket = vec![0i64; starts[n_customers]];
    let mut fill = starts.clone();
    for i in 0..n {
        if let Some(c) = code(i) {
            if kept(periods[i]) {
                bucket[fill[c]] = periods[i];
                fill[c] += 1;
            }
        }
    }
    drop(periods);
    let customers: Vec<usize> = (0..n_customers).collect();
    let rows: Vec<[f64; 4]> = exec.map(&customers, |&c| {
        let mut own = bucket[starts[c]..starts[c + 1]].to_vec();
        own.sort_unstable();
        own.dedup();
        let (mut count, mut litt, mut last, mut previous) = (0.0, 0.0, f64::NAN, f64::NAN);
        for w in own.windows(2) {
            let gap = (w[1] - w[0]) as f64 / multiplier;
            count += 1.0;
            litt += gap.ln();
            previous = last;
            last = gap;
        }
        [count, litt, last, previous]
    });
    let mut out = Gaps::default();
    for [count, litt, last, previous] in rows {
        out.count.push(count);
        out.litt.push(litt);
        out.last.push(last);
        out.previous.push(previous);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gaps_are_between_distinct_periods_in_the_summary_unit() {
        const DAY: i64 = 86_400;
        // Customer 0: days 0, 0, 3, 10, 24 (the same day twice); customer 1: day 5 only;
        // customer 2: days 1 and 40, the second after the end.
        let customer = [0, 0, 1, 0, 0, 2, 2, 0];
        let time = [0, 100, 5 * DAY, 10 * DAY, 3 * DAY, DAY, 40 * DAY, 24 * DAY];
        let cols = TransactionColumns {
            customer: &customer,
            time_ns: &time,
            amount: None,
            customer_offset: 0,
        };
        let g = inter_purchase_gaps(
            &cols,
            3,
            Period::Day,
            1_000_000_000,
            7.0,
            30,
            None,
            &Exec::Serial,
        );
        assert_eq!(g.count, vec![3.0, 0.0, 0.0]);
        let want = (3.0f64 / 7.0).ln() + 1.0f64.ln() + 2.0f64.ln();
        assert!((g.litt[0] - want).abs() < 1e-15);
        assert_eq!((g.last[0], g.previous[0]), (2.0, 1.0));
        assert_eq!(g.litt[1], 0.0);
        assert!(g.last[2].is_nan());
        // Rows up to `after` are left out (the holdout of a split).
        let later = inter_purchase_gaps(
            &cols,
            3,
            Period::Day,
            1_000_000_000,
            1.0,
            30,
            Some(2),
            &Exec::Serial,
        );
        assert_eq!(later.count, vec![2.0, 0.0, 0.0]);
        assert!((later.litt[0] - (7.0f64.ln() + 14.0f64.ln())).abs() < 1e-14);
    }
}
