//! Times a transaction-log summary on synthetic rows (a development aid, not a benchmark).
//! Run: cargo run --release --example profile_summary -- 10000000 1000000 2

use std::time::Instant;

use clvrs::data::transactions::{
    summarize, Period, SummaryOptions, TransactionColumns, TransactionNames,
};
use clvrs::parallel::Exec;
use clvrs::random::Rng;

fn main() {
    let arg = |i: usize, default: usize| {
        std::env::args()
            .nth(i)
            .and_then(|s| s.parse().ok())
            .unwrap_or(default)
    };
    let (rows, customers, jobs) = (arg(1, 10_000_000), arg(2, 1_000_000), arg(3, 2) as i64);
    let mut rng = Rng::new(1);
    let day = 86_400_000_000_000i64;
    let customer: Vec<i64> = (0..rows)
        .map(|_| (rng.uniform() * customers as f64) as i64)
        .collect();
    // Sorted by time, as logs usually are.
    let time: Vec<i64> = (0..rows)
        .map(|i| (i as i64) * (700 * day / rows as i64))
        .collect();
    let amount: Vec<f64> = (0..rows).map(|_| 10.0 + 50.0 * rng.uniform()).collect();
    let columns = TransactionColumns {
        customer: &customer,
        time_ns: &time,
        amount: Some(&amount),
        customer_offset: 0,
    };
    let names = TransactionNames {
        customer: "id".into(),
        time: "date".into(),
        amount: "amount".into(),
    };
    let opts = SummaryOptions {
        period: Period::Week,
        multiplier: 1.0,
        end_ns: None,
        include_first: false,
        exclude_after_end: false,
        allow_negative: false,
        after_ns: None,
        track: false,
        time_unit_ns: 1,
    };
    let exec = Exec::with_jobs(Some(jobs)).unwrap();
    for _ in 0..3 {
        let t = Instant::now();
        let s = summarize(&columns, customers, &names, &opts, &exec).unwrap();
        println!(
            "{} rows, {} customers: {:.3} s",
            rows,
            s.customer.len(),
            t.elapsed().as_secs_f64()
        );
    }
}
