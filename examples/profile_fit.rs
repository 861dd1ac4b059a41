//! Times the phases of a BG/NBD fit on synthetic rows (a development aid, not a benchmark).
//! Run: cargo run --release --example profile_fit -- 1000000 2

use std::time::Instant;

use clvrs::data::{RfmColumns, RfmNames};
use clvrs::fit::{fit, FitOptions, Likelihood, WARM_START_SAMPLE};
use clvrs::models::bgnbd::{simulate, BgNbdParams};
use clvrs::models::{BgNbd, RfmModel};
use clvrs::parallel::Exec;

/// Seconds this thread has run on a processor (Linux), which a busy machine inflates less than
/// wall time (single-threaded runs only).
fn thread_cpu() -> f64 {
    std::fs::read_to_string("/proc/thread-self/schedstat")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse::<f64>().ok())
        .map_or(f64::NAN, |ns| ns * 1e-9)
}

/// Median seconds of `repeats` calls (wall time; processor time of this thread when
/// `CPU_TIME` is set).
fn timed<R>(repeats: usize, mut f: impl FnMut() -> R) -> (f64, R) {
    let cpu = std::env::var("CPU_TIME").is_ok();
    let mut times = Vec::new();
    let mut last = None;
    for _ in 0..repeats {
        let (t, c) = (Instant::now(), thread_cpu());
        last = Some(std::hint::black_box(f()));
        times.push(if cpu {
            thread_cpu() - c
        } else {
            t.elapsed().as_secs_f64()
        });
    }
    times.sort_by(f64::total_cmp);
    (times[repeats / 2], last.unwrap())
}

fn main() {
    let arg = |i: usize, default: usize| {
        std::env::args()
            .nth(i)
            .and_then(|s| s.parse().ok())
            .unwrap_or(default)
    };
    let (n, jobs, repeats) = (arg(1, 1_000_000), arg(2, 2) as i64, arg(3, 7));
    // Customers drawn from BG/NBD at the CDNOW estimates, ages uniform on 26..78 weeks.
    let truth = BgNbdParams::new(0.243, 4.414, 0.793, 2.426);
    let age: Vec<f64> = (0..n)
        .map(|i| 26.0 + 52.0 * ((i * 7919) % n) as f64 / n as f64)
        .collect();
    let (x, t_x) = simulate(&truth, &age, 1);
    let cols = RfmColumns::new(&x, &t_x, &age);
    let exec = Exec::with_jobs(Some(jobs)).unwrap();
    let ms = |s: f64| s * 1e3;
    let (t, _) = timed(repeats, || cols.validate_on(&RfmNames::default(), &exec));
    println!("validate: {:.2} ms", ms(t));
    let (t, data) = timed(repeats, || cols.compress_on(&exec));
    println!("compress: {:.2} ms ({} rows)", ms(t), data.len());
    // Integer weeks: many identical rows.
    let (xw, tw, agew): (Vec<f64>, Vec<f64>, Vec<f64>) = (
        x.clone(),
        t_x.iter().map(|v| v.floor()).collect(),
        age.iter().map(|v| v.floor()).collect(),
    );
    let weeks = RfmColumns::new(&xw, &tw, &agew);
    let (t, after) = timed(repeats, || weeks.compress_on(&exec));
    println!(
        "whole weeks, compress: {:.2} ms ({} rows)",
        ms(t),
        after.len()
    );
    let (t, _) = timed(repeats, || BgNbd::new(&data).total_weight());
    println!("prepare likelihood: {:.2} ms", ms(t));
    let model = BgNbd::new(&data);
    let at = [0.24, 4.4, 0.79, 2.4];
    let (t, _) = timed(repeats, || model.loglik_and_gradient(&at, &exec));
    println!("value + gradient: {:.2} ms", ms(t));
    let (t, _) = timed(repeats, || model.loglik_gradient_hessian(&at, &exec));
    println!("value + gradient + Hessian: {:.2} ms", ms(t));
    let opts = FitOptions {
        exec: exec.clone(),
        ..FitOptions::default()
    };
    let (t, sample) = timed(repeats, || data.subsample(data.len() / WARM_START_SAMPLE));
    println!("subsample: {:.2} ms ({} rows)", ms(t), sample.len());
    let sample_opts = FitOptions {
        first_start_only: true,
        ..opts.clone()
    };
    let (t, first) = timed(repeats, || fit(&BgNbd::new(&sample), &sample_opts).unwrap());
    println!(
        "subsample fit: {:.2} ms, {} iterations, {} evaluations",
        ms(t),
        first.n_iter,
        first.n_evaluations
    );
    let full_opts = FitOptions {
        start: Some(first.params.clone()),
        initial_inverse_hessian: first.inverse_hessian.clone(),
        ..opts.clone()
    };
    let (t, res) = timed(repeats, || fit(&BgNbd::new(&data), &full_opts).unwrap());
    println!(
        "full fit from the subsample's: {:.2} ms, {} iterations, {} evaluations",
        ms(t),
        res.n_iter,
        res.n_evaluations
    );
    let newton_opts = FitOptions {
        newton: true,
        ..full_opts.clone()
    };
    let (t, res) = timed(repeats, || fit(&BgNbd::new(&data), &newton_opts).unwrap());
    println!(
        "full fit from the subsample's by Newton steps: {:.2} ms, {} iterations, {} evaluations, {}",
        ms(t),
        res.n_iter,
        res.n_evaluations,
        res.termination
    );
    let (t, res) = timed(repeats, || {
        let data = cols.compress_on(&exec);
        BgNbdParams::fit(&data, &opts).unwrap()
    });
    println!(
        "compress + fit: {:.2} ms, {} iterations, {} evaluations, {:?}",
        ms(t),
        res.n_iter,
        res.n_evaluations,
        res.params
    );
}
