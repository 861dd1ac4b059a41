//! Times the phases of a BG/NBD fit on synthetic rows (a development aid, not a benchmark).
//! Run: cargo run --release --example profile_fit -- 1000000

use std::time::Instant;

use clvrs::data::Rfm;
use clvrs::data::RfmColumns;
use clvrs::fit::{fit, fit_with_warm_start, FitOptions, Likelihood};
use clvrs::models::bgnbd::{simulate, BgNbdParams};
use clvrs::models::BgNbd;
use clvrs::parallel::Exec;

fn main() {
    let n: usize = std::env::args()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(1_000_000);
    let jobs: i64 = std::env::args()
        .nth(2)
        .and_then(|s| s.parse().ok())
        .unwrap_or(1);
    // Customers drawn from BG/NBD at the CDNOW estimates, ages uniform on 26..78 weeks.
    let truth = BgNbdParams::new(0.243, 4.414, 0.793, 2.426);
    let age: Vec<f64> = (0..n)
        .map(|i| 26.0 + 52.0 * ((i * 7919) % n) as f64 / n as f64)
        .collect();
    let t_sim = Instant::now();
    let (x, t_x) = simulate(&truth, &age, 1);
    println!("simulate: {:.3}s", t_sim.elapsed().as_secs_f64());
    let cols = RfmColumns::new(&x, &t_x, &age);
    let exec = Exec::with_jobs(Some(jobs)).unwrap();
    let t0 = Instant::now();
    let data = cols.compress_on(&exec);
    println!(
        "compress: {:.3}s ({} rows)",
        t0.elapsed().as_secs_f64(),
        data.len()
    );
    let model = BgNbd::new(&data);
    println!("prepare: {:.3}s", t0.elapsed().as_secs_f64());
    let t1 = Instant::now();
    for _ in 0..10 {
        std::hint::black_box(model.loglik_and_gradient(&[0.24, 4.4, 0.79, 2.4], &exec));
    }
    println!("one evaluation: {:.4}s", t1.elapsed().as_secs_f64() / 10.0);
    let t2 = Instant::now();
    let opts = FitOptions {
        exec: exec.clone(),
        ..FitOptions::default()
    };
    let res = fit_with_warm_start(
        &data,
        data.len(),
        Rfm::subsample,
        |d, o| fit(&BgNbd::new(d), o),
        &opts,
    )
    .unwrap();
    println!(
        "fit: {:.3}s, {} iterations, {} evaluations, {:?}",
        t2.elapsed().as_secs_f64(),
        res.n_iter,
        res.n_evaluations,
        res.params
    );
    let t3 = Instant::now();
    let p = BgNbdParams::from_slice(&res.params).unwrap();
    let mut out = vec![0.0; n];
    let served = clvrs::models::bgnbd::conditional_expected_purchases_bulk(
        &p,
        &RfmColumns::new(&x, &t_x, &age),
        52.0,
        &exec,
        &mut out,
    );
    println!(
        "expected purchases (t = 52): {:.3}s, sum {}, {served} rows interpolated",
        t3.elapsed().as_secs_f64(),
        out.iter().sum::<f64>()
    );
    let t4 = Instant::now();
    clvrs::models::bgnbd::probability_alive_bulk(
        &p,
        &RfmColumns::new(&x, &t_x, &age),
        &exec,
        &mut out,
    );
    println!("probability alive: {:.3}s", t4.elapsed().as_secs_f64());
}
