//! Where the time of `fit_segments` goes (a development aid, not a benchmark): reads the
//! columns `x`, `t_x`, `T` and the segment codes from raw little-endian f64/i64 files written
//! by the benchmark's data (see BENCHMARKS.md), fits every segment as `fit_segments` does, and
//! reports the total, each segment's serial fit time and evaluations.
//! Run: cargo run --release --example profile_segments -- DIR pnbd|bgnbd

use std::time::Instant;

use clvrs::data::{RfmColumns, RfmNames};
use clvrs::fit::FitOptions;
use clvrs::models::{BgNbdParams, ParetoNbdParams, RfmModel};
use clvrs::parallel::Exec;
use clvrs::segments::{fit_segments, rows_data, split_rows};

fn read(path: &str) -> Vec<[u8; 8]> {
    std::fs::read(path)
        .unwrap()
        .chunks_exact(8)
        .map(|c| c.try_into().unwrap())
        .collect()
}

/// The benchmark's columns in `dir`: frequency, recency, age, the segment codes and the number
/// of segments.
struct Columns {
    x: Vec<f64>,
    t_x: Vec<f64>,
    age: Vec<f64>,
    codes: Vec<i64>,
    n_segments: usize,
}

impl Columns {
    fn load(dir: &str) -> Self {
        let f = |name: &str| -> Vec<f64> {
            read(&format!("{dir}/{name}.bin"))
                .into_iter()
                .map(f64::from_le_bytes)
                .collect()
        };
        let codes: Vec<i64> = read(&format!("{dir}/code.bin"))
            .into_iter()
            .map(i64::from_le_bytes)
            .collect();
        let n_segments = (*codes.iter().max().unwrap() + 1) as usize;
        Columns {
            x: f("x"),
            t_x: f("t_x"),
            age: f("T"),
            codes,
            n_segments,
        }
    }

    fn rfm(&self) -> RfmColumns<'_> {
        RfmColumns::new(&self.x, &self.t_x, &self.age)
    }
}

fn run<M: RfmModel>(dir: &str) {
    let loaded = Columns::load(dir);
    let (codes, n_segments) = (&loaded.codes, loaded.n_segments);
    let columns = loaded.rfm();
    let names = RfmNames::default();
    for jobs in [2, 1] {
        let exec = Exec::with_jobs(Some(jobs)).unwrap();
        let t = Instant::now();
        let fits = fit_segments::<M>(
            &columns,
            &names,
            codes,
            n_segments,
            50.0,
            &FitOptions::default(),
            &exec,
        )
        .unwrap();
        let evaluations: u64 = fits
            .iter()
            .map(|s| s.result.as_ref().map_or(0, |r| r.n_evaluations))
            .sum();
        println!(
            "fit_segments, {jobs} thread(s): {:.3} s, {evaluations} evaluations in all",
            t.elapsed().as_secs_f64()
        );
    }
    // Each segment alone from the 1M fit's estimate (about the pooled one), serially.
    let exec = Exec::Serial;
    let t = Instant::now();
    let whole = M::fit(&columns.compress_on(&exec), &FitOptions::default()).unwrap();
    println!(
        "one fit of all rows, 1 thread: {:.3} s, {} evaluations",
        t.elapsed().as_secs_f64(),
        whole.n_evaluations
    );
    let (order, starts) = split_rows(codes, n_segments).unwrap();
    let warm = FitOptions {
        start: Some(whole.params.clone()),
        initial_inverse_hessian: whole.inverse_hessian.clone(),
        newton: true,
        newton_given_curvature: true,
        ..FitOptions::default()
    };
    let (mut gather, mut fitting) = (0.0, Vec::new());
    for s in 0..n_segments {
        let t = Instant::now();
        let data = rows_data(&columns, &order[starts[s]..starts[s + 1]]);
        gather += t.elapsed().as_secs_f64();
        let t = Instant::now();
        let res = M::fit(&data, &warm).unwrap();
        let mut summary = res.params.clone();
        summary.push(res.log_likelihood);
        fitting.push((t.elapsed().as_secs_f64(), s, res.n_evaluations, summary));
    }
    // Each segment's log-likelihood and evaluations, for comparing two builds.
    if let Some(path) = std::env::args().nth(3) {
        let text: String = fitting
            .iter()
            .map(|f| format!("{} {} {:?}\n", f.1, f.2, f.3))
            .collect();
        std::fs::write(path, text).unwrap();
    }
    let total: f64 = fitting.iter().map(|f| f.0).sum();
    println!("serial: gather + compress {gather:.3} s, fits {total:.3} s");
    fitting.sort_by(|a, b| b.0.total_cmp(&a.0));
    for f in &fitting[..8] {
        println!(
            "  slowest: {:.4} s segment {} evaluations {} {:?}",
            f.0, f.1, f.2, f.3
        );
    }
    // The slowest segment again as `fit_segments` fits it when the warm fit is refused: from
    // the model's own starting points.
    let slowest = fitting[0].1;
    let data = rows_data(&columns, &order[starts[slowest]..starts[slowest + 1]]);
    let t = Instant::now();
    let cold = M::fit(&data, &FitOptions::default()).unwrap();
    println!(
        "segment {slowest} from the model's starts: {:.3} s, {} evaluations, {:?}, {}",
        t.elapsed().as_secs_f64(),
        cold.n_evaluations,
        cold.params,
        cold.termination
    );
    let t = Instant::now();
    let first = M::fit(
        &data,
        &FitOptions {
            first_start_only: true,
            ..FitOptions::default()
        },
    )
    .unwrap();
    println!(
        "segment {slowest} from the model's first start only: {:.3} s, {} evaluations, {:?}, \
         log-likelihood {} (all starts: {}), {}",
        t.elapsed().as_secs_f64(),
        first.n_evaluations,
        first.params,
        first.log_likelihood,
        cold.log_likelihood,
        first.termination
    );
    let mut per_eval: Vec<f64> = fitting.iter().map(|f| f.0 / f.2 as f64).collect();
    per_eval.sort_by(f64::total_cmp);
    println!(
        "time per evaluation (ms): median {:.3}, 90% {:.3}, max {:.3}",
        1e3 * per_eval[per_eval.len() / 2],
        1e3 * per_eval[per_eval.len() * 9 / 10],
        1e3 * per_eval[per_eval.len() - 1]
    );
}

/// Time of a gradient pass against a fused (value, gradient, Hessian) pass of the Pareto/NBD
/// rows of the first segments, at the 1M fit's estimate and at each segment's own estimate.
fn pass_costs(dir: &str) {
    use clvrs::fit::Likelihood;
    use clvrs::models::pnbd::ParetoNbd;
    let loaded = Columns::load(dir);
    let columns = loaded.rfm();
    let (order, starts) = split_rows(&loaded.codes, loaded.n_segments).unwrap();
    let exec = Exec::Serial;
    let (mut grad_t, mut fused_t) = (0.0, 0.0);
    for s in 0..200 {
        let data = rows_data(&columns, &order[starts[s]..starts[s + 1]]);
        let fit = ParetoNbdParams::fit(&data, &FitOptions::default()).unwrap();
        let lik = ParetoNbd::new(&data);
        let t = Instant::now();
        for _ in 0..5 {
            std::hint::black_box(lik.loglik_and_gradient(&fit.params, &exec));
        }
        grad_t += t.elapsed().as_secs_f64() / 5.0;
        let t = Instant::now();
        for _ in 0..5 {
            std::hint::black_box(lik.loglik_gradient_hessian(&fit.params, &exec));
        }
        fused_t += t.elapsed().as_secs_f64() / 5.0;
    }
    println!(
        "200 segments at their estimates: gradient pass {:.3} ms, fused pass {:.3} ms (mean)",
        grad_t / 200.0 * 1e3,
        fused_t / 200.0 * 1e3
    );
}

fn main() {
    let dir = std::env::args().nth(1).unwrap_or("/tmp/segments".into());
    match std::env::args().nth(2).as_deref() {
        Some("bgnbd") => run::<BgNbdParams>(&dir),
        Some("passes") => pass_costs(&dir),
        _ => run::<ParetoNbdParams>(&dir),
    }
}
