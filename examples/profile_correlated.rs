//! Times the phases of a correlated Pareto/NBD fit on simulated customers against the plain
//! Pareto/NBD's (a development aid, not a benchmark).
//! Run: cargo run --release --example profile_correlated -- 1000000 2

use std::time::Instant;

use clvrs::data::RfmColumns;
use clvrs::fit::{fit, FitOptions, Likelihood, WARM_START_SAMPLE};
use clvrs::models::pnbd::ParetoNbd;
use clvrs::models::pnbd_correlated::{simulate, CorrelatedParetoNbd};
use clvrs::models::{CorrelatedParetoNbdParams, ParetoNbdParams, RfmModel};
use clvrs::parallel::Exec;

/// Median wall seconds of `repeats` calls, and the last result.
fn timed<R>(repeats: usize, mut f: impl FnMut() -> R) -> (f64, R) {
    let mut times = Vec::new();
    let mut last = None;
    for _ in 0..repeats {
        let t = Instant::now();
        last = Some(std::hint::black_box(f()));
        times.push(t.elapsed().as_secs_f64());
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
    let (n, jobs, repeats) = (arg(1, 1_000_000), arg(2, 2) as i64, arg(3, 3));
    // The bench's customers: CDNOW-like margins, a correlation near the top of its range.
    let margins = CorrelatedParetoNbdParams::new(0.55, 10.6, 0.61, 11.7, 0.0);
    let rho = 0.8 * margins.correlation_bounds().1;
    let truth = CorrelatedParetoNbdParams::new(0.55, 10.6, 0.61, 11.7, rho);
    let age: Vec<f64> = (0..n)
        .map(|i| 26.0 + 52.0 * ((i * 7919) % n) as f64 / n as f64)
        .collect();
    let (x, t_x) = simulate(&truth, &age, 1);
    let exec = Exec::with_jobs(Some(jobs)).unwrap();
    let data = RfmColumns::new(&x, &t_x, &age).compress_on(&exec);
    println!("{n} customers, {} rows", data.len());
    let ms = |s: f64| s * 1e3;
    let plain = ParetoNbd::new(&data);
    let correlated = CorrelatedParetoNbd::new(&data);
    let at = [0.55, 10.6, 0.61, 11.7];
    let at5 = [0.55, 10.6, 0.61, 11.7, rho];
    let (t, _) = timed(repeats, || plain.loglik_and_gradient(&at, &exec));
    println!("plain value + gradient: {:.1} ms", ms(t));
    let (t, _) = timed(repeats, || plain.loglik_gradient_hessian(&at, &exec));
    println!("plain fused: {:.1} ms", ms(t));
    let (t, _) = timed(repeats, || correlated.loglik_and_gradient(&at5, &exec));
    println!("correlated value + gradient: {:.1} ms", ms(t));
    let (t, _) = timed(repeats, || correlated.loglik_gradient_hessian(&at5, &exec));
    println!("correlated fused: {:.1} ms", ms(t));
    let opts = FitOptions {
        exec: exec.clone(),
        ..FitOptions::default()
    };
    let (t, res) = timed(repeats, || ParetoNbdParams::fit(&data, &opts).unwrap());
    println!(
        "plain fit: {:.1} ms, {} iterations, {} evaluations",
        ms(t),
        res.n_iter,
        res.n_evaluations
    );
    let mut start = res.params.clone();
    start.push(0.0);
    let sample = data.subsample(data.len() / WARM_START_SAMPLE);
    let sample_opts = FitOptions {
        first_start_only: true,
        start: Some(start),
        ..opts.clone()
    };
    let mut first = None;
    for newton in [false, true] {
        let opts = FitOptions {
            newton,
            ..sample_opts.clone()
        };
        let (t, res) = timed(repeats, || {
            fit(&CorrelatedParetoNbd::new(&sample), &opts).unwrap()
        });
        println!(
            "correlated subsample fit ({} rows, newton {newton}): {:.1} ms, {} iterations, {} \
             evaluations",
            sample.len(),
            ms(t),
            res.n_iter,
            res.n_evaluations
        );
        first = Some(res);
    }
    let first = first.unwrap();
    for (newton, given) in [(false, false), (true, false), (true, true)] {
        let full_opts = FitOptions {
            start: Some(first.params.clone()),
            initial_inverse_hessian: first.inverse_hessian.clone(),
            newton,
            newton_given_curvature: given,
            ..opts.clone()
        };
        let (t, res) = timed(repeats, || {
            fit(&CorrelatedParetoNbd::new(&data), &full_opts).unwrap()
        });
        println!(
            "correlated full fit from the subsample's (newton {newton}, given curvature \
             {given}): {:.1} ms, {} iterations, {} evaluations, correlation {:.5}",
            ms(t),
            res.n_iter,
            res.n_evaluations,
            res.params[4]
        );
    }
    let (t, res) = timed(repeats, || {
        CorrelatedParetoNbdParams::fit(&data, &opts).unwrap()
    });
    println!(
        "correlated fit (all stages, the plain fit included): {:.1} ms, {} iterations, {} evaluations",
        ms(t),
        res.n_iter,
        res.n_evaluations
    );
}
