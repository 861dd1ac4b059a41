//! Times the phases of a BG/NBD fit on synthetic rows (a development aid, not a benchmark).
//! Run: cargo run --release --example profile_fit -- 1000000

use std::time::Instant;

use clvrs::data::RfmColumns;
use clvrs::fit::{fit, FitOptions, Likelihood};
use clvrs::models::BgNbd;
use clvrs::parallel::Exec;

fn main() {
    let n: usize = std::env::args().nth(1).and_then(|s| s.parse().ok()).unwrap_or(1_000_000);
    let jobs: i64 = std::env::args().nth(2).and_then(|s| s.parse().ok()).unwrap_or(1);
    // Deterministic pseudo-random rows with a CDNOW-like shape.
    let mut state = 0x2545_f491_4f6c_dd1du64;
    let mut uniform = || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        (state >> 11) as f64 / (1u64 << 53) as f64
    };
    let (mut x, mut t_x, mut age) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..n {
        let t = 26.0 + 52.0 * uniform();
        let u = uniform();
        let xi = if u < 0.55 { 0.0 } else { (1.0 / (1.0 - u)).floor().min(60.0) };
        x.push(xi);
        t_x.push(if xi > 0.0 { t * uniform() } else { 0.0 });
        age.push(t);
    }
    let exec = Exec::with_jobs(Some(jobs)).unwrap();
    let cols = RfmColumns::new(&x, &t_x, &age);
    let t0 = Instant::now();
    let data = cols.compress();
    println!("compress: {:.3}s ({} rows)", t0.elapsed().as_secs_f64(), data.len());
    let model = BgNbd::new(&data);
    println!("prepare: {:.3}s", t0.elapsed().as_secs_f64());
    let t1 = Instant::now();
    for _ in 0..10 {
        std::hint::black_box(model.loglik_and_gradient(&[0.24, 4.4, 0.79, 2.4], &exec));
    }
    println!("one evaluation: {:.4}s", t1.elapsed().as_secs_f64() / 10.0);
    let t2 = Instant::now();
    let opts = FitOptions { exec: exec.clone(), ..FitOptions::default() };
    let res = fit(&model, &opts).unwrap();
    println!(
        "fit: {:.3}s, {} iterations, {} evaluations, {:?}",
        t2.elapsed().as_secs_f64(),
        res.n_iter,
        res.n_evaluations,
        res.params
    );
}
