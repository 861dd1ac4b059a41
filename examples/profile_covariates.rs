//! Times the parts of a BG/NBD or MBG/NBD fit with continuous covariates (a development aid,
//! not a benchmark), on customers dumped as raw little-endian f64 files `PREFIX_frequency.bin`,
//! `PREFIX_recency.bin`, `PREFIX_T.bin` and `PREFIX_Z.bin` (n x 5, row-major; the same 5 columns
//! act on both processes, as in `bench/bench_covariates.py`).
//! Run: cargo run --release --example profile_covariates -- PREFIX [bgnbd|mbgnbd] [jobs] [repeats]
//! (`CPU_TIME=1` reports this thread's processor time; meaningful with jobs = 1.)

use std::time::Instant;

use clvrs::data::{RfmColumns, RfmNames};
use clvrs::fit::{FitOptions, Likelihood};
use clvrs::models::covariates::{
    CovariateLikelihood, CovariateModel, CovariateRows, Links, StaticCovariates,
};
use clvrs::models::{BgNbdParams, MbgNbdParams};
use clvrs::parallel::Exec;
use ndarray::ArrayView2;

fn thread_cpu() -> f64 {
    std::fs::read_to_string("/proc/thread-self/schedstat")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse::<f64>().ok())
        .map_or(f64::NAN, |ns| ns * 1e-9)
}

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

fn read(path: &str) -> Vec<f64> {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{path}: {e}"));
    bytes
        .chunks_exact(8)
        .map(|b| f64::from_le_bytes(b.try_into().unwrap()))
        .collect()
}

fn run<M: CovariateModel + StaticCovariates>(prefix: &str, jobs: i64, repeats: usize) {
    let x = read(&format!("{prefix}_frequency.bin"));
    let t_x = read(&format!("{prefix}_recency.bin"));
    let age = read(&format!("{prefix}_T.bin"));
    let z = read(&format!("{prefix}_Z.bin"));
    let n = x.len();
    let p = z.len() / n;
    let cols = RfmColumns::new(&x, &t_x, &age);
    let zm = ArrayView2::from_shape((n, p), &z).unwrap();
    let rows = CovariateRows::new(&cols, zm, zm);
    let links = Links {
        purchase: (0..p).collect(),
        dropout: (p..2 * p).collect(),
        names: (0..2 * p).map(|i| format!("c{i}")).collect(),
    };
    let exec = Exec::with_jobs(Some(jobs)).unwrap();
    let ms = |s: f64| s * 1e3;
    let names: Vec<String> = (0..p).map(|i| format!("c{i}")).collect();
    let (t, _) = timed(repeats, || rows.validate(&links, [&names, &names]).unwrap());
    println!("validate: {:.2} ms", ms(t));
    let opts = FitOptions {
        exec: exec.clone(),
        ..FitOptions::default()
    };
    if let Ok(mode) = std::env::var("ONLY") {
        // Repeated passes of one kind at the base model's start, for `perf record`.
        let lik = CovariateLikelihood::<M>::new(&rows, &links);
        let mut at = vec![0.25, 4.4, 0.78, 2.4];
        at.extend(std::iter::repeat_n(0.05, 2 * p));
        for _ in 0..repeats {
            if mode == "fused" {
                std::hint::black_box(lik.loglik_gradient_hessian(&at, &exec));
            } else {
                std::hint::black_box(lik.loglik_and_gradient(&at, &exec));
            }
        }
        return;
    }
    let (t, res) = timed(repeats, || {
        M::fit_covariates(&rows, &links, &RfmNames::default(), &opts).unwrap()
    });
    println!(
        "fit_covariates: {:.1} ms; {} evaluations, {} iterations; {}",
        ms(t),
        res.n_evaluations,
        res.n_iter,
        res.termination
    );
    println!("  params {:?}", &res.params);
    println!("  se {:?}", res.standard_errors().unwrap());
    let lik = CovariateLikelihood::<M>::new(&rows, &links);
    let at = res.params.clone();
    let (t, _) = timed(repeats, || lik.loglik_and_gradient(&at, &exec));
    println!("gradient pass (all rows): {:.2} ms", ms(t));
    let (t, _) = timed(repeats, || lik.loglik_gradient_hessian(&at, &exec));
    println!("fused pass (all rows): {:.2} ms", ms(t));
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let prefix = args.get(1).cloned().unwrap_or("/tmp/bgcov/bgnbd".into());
    let model = args.get(2).cloned().unwrap_or("bgnbd".into());
    let jobs: i64 = args.get(3).and_then(|s| s.parse().ok()).unwrap_or(1);
    let repeats: usize = args.get(4).and_then(|s| s.parse().ok()).unwrap_or(5);
    match model.as_str() {
        "mbgnbd" => run::<MbgNbdParams>(&prefix, jobs, repeats),
        _ => run::<BgNbdParams>(&prefix, jobs, repeats),
    }
}
