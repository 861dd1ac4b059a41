//! Times a Pareto/NBD likelihood pass and fit on synthetic rows (a development aid, not a
//! benchmark). Run: cargo run --release --example profile_pnbd -- 1000000 2

use std::time::Instant;

use clvrs::data::RfmColumns;
use clvrs::fit::{FitOptions, Likelihood};
use clvrs::models::pnbd::{simulate, ParetoNbd, ParetoNbdParams};
use clvrs::models::RfmModel;
use clvrs::parallel::Exec;

fn main() {
    let arg = |i: usize, default: usize| {
        std::env::args()
            .nth(i)
            .and_then(|s| s.parse().ok())
            .unwrap_or(default)
    };
    let (n, jobs) = (arg(1, 1_000_000), arg(2, 2) as i64);
    let truth = ParetoNbdParams::new(0.553, 10.578, 0.606, 11.669);
    let age: Vec<f64> = (0..n)
        .map(|i| 26.0 + 52.0 * ((i * 7919) % n) as f64 / n as f64)
        .collect();
    let (x, t_x) = simulate(&truth, &age, 1);
    let exec = Exec::with_jobs(Some(jobs)).unwrap();
    let data = RfmColumns::new(&x, &t_x, &age).compress_on(&exec);
    let lik = ParetoNbd::new(&data);
    let at = [0.55, 10.6, 0.6, 11.7];
    let t = Instant::now();
    for _ in 0..5 {
        std::hint::black_box(lik.loglik_and_gradient(&at, &exec));
    }
    println!(
        "{} rows: loglik+gradient {:.3} s",
        data.len(),
        t.elapsed().as_secs_f64() / 5.0
    );
    let t = Instant::now();
    let opts = FitOptions {
        exec: exec.clone(),
        ..FitOptions::default()
    };
    let res = ParetoNbdParams::fit(&data, &opts).unwrap();
    println!(
        "fit {:.3} s: {:?} iterations {} evaluations {} {}",
        t.elapsed().as_secs_f64(),
        res.params,
        res.n_iter,
        res.n_evaluations,
        res.termination
    );
    let sample = data.subsample(data.len() / clvrs::fit::WARM_START_SAMPLE);
    let t = Instant::now();
    let first = clvrs::fit::fit(&ParetoNbd::new(&sample), &opts).unwrap();
    println!(
        "subsample of {} rows: {:.3} s, iterations {} evaluations {} {}",
        sample.len(),
        t.elapsed().as_secs_f64(),
        first.n_iter,
        first.n_evaluations,
        first.termination
    );
}
