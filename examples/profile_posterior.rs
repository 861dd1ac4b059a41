//! Times the parts of a BG/NBD posterior sample: one log-likelihood gradient over many rows,
//! and short NUTS runs (1M customers; 100 segments x 1,000 customers with partial pooling),
//! with the number of gradients each took (a development aid, not a benchmark).
//! Run: cargo run --release --example profile_posterior -- [rows] [jobs] [tune] [draws] [what]
//! (`what`: `grad`, `flat`, `pooled` or `all`).

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use clvrs::bayes::hierarchical::sample_pooled;
use clvrs::bayes::{sample, SampleOptions};
use clvrs::data::{Rfm, RfmColumns};
use clvrs::fit::{FusedPass, Likelihood, ParamSpec};
use clvrs::models::bgnbd::{simulate, BgNbdParams};
use clvrs::models::BgNbd;
use clvrs::parallel::Exec;

/// A likelihood that counts its gradient passes.
struct Counted<L> {
    inner: L,
    passes: AtomicU64,
}

impl<L: Likelihood> Likelihood for Counted<L> {
    fn params(&self) -> &[ParamSpec] {
        self.inner.params()
    }
    fn starts(&self) -> Vec<Vec<f64>> {
        self.inner.starts()
    }
    fn total_weight(&self) -> f64 {
        self.inner.total_weight()
    }
    fn loglik_and_gradient(&self, p: &[f64], exec: &Exec) -> (f64, Vec<f64>) {
        self.passes.fetch_add(1, Ordering::Relaxed);
        self.inner.loglik_and_gradient(p, exec)
    }
    fn loglik_gradient_hessian(&self, p: &[f64], exec: &Exec) -> Option<FusedPass> {
        self.passes.fetch_add(1, Ordering::Relaxed);
        self.inner.loglik_gradient_hessian(p, exec)
    }
}

/// Customers drawn from BG/NBD with continuous ages (26..78 weeks) and recencies: nothing
/// compresses, as in `gen_synth.py summary`.
fn customers(truth: &BgNbdParams, n: usize, seed: u64, round: bool) -> Rfm {
    let age: Vec<f64> = (0..n)
        .map(|i| {
            let a = 26.0 + 52.0 * ((i as u64 * 7919 + seed * 104_729) % n as u64) as f64 / n as f64;
            if round {
                (a * 7.0).round() / 7.0
            } else {
                a
            }
        })
        .collect();
    let (x, mut t_x) = simulate(truth, &age, seed);
    if round {
        for t in &mut t_x {
            *t = (*t * 7.0).round() / 7.0;
        }
    }
    RfmColumns::new(&x, &t_x, &age).compress()
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() {
    let arg = |i: usize, default: usize| {
        std::env::args()
            .nth(i)
            .and_then(|s| s.parse().ok())
            .unwrap_or(default)
    };
    let (n, jobs, tune, draws) = (arg(1, 1_000_000), arg(2, 2) as i64, arg(3, 50), arg(4, 50));
    let what = std::env::args().nth(5).unwrap_or_else(|| "all".into());
    let exec = Exec::with_jobs(Some(jobs)).unwrap();
    let truth = BgNbdParams::new(0.243, 4.414, 0.793, 2.426);
    let at = [0.25, 4.5, 0.8, 2.4];

    if what == "grad" || what == "flat" || what == "all" {
        let data = customers(&truth, n, 1, false);
        let model = BgNbd::new(&data);
        println!("{} rows", data.len());
        for (name, e) in [("1 thread", Exec::Serial), ("pool", exec.clone())] {
            let times: Vec<f64> = (0..15)
                .map(|_| {
                    let t = Instant::now();
                    std::hint::black_box(model.loglik_and_gradient(&at, &e));
                    t.elapsed().as_secs_f64()
                })
                .collect();
            println!("gradient, {name}: {:.3} ms", median(times) * 1e3);
        }
        if what != "grad" {
            let counted = Counted {
                inner: BgNbd::new(&data),
                passes: AtomicU64::new(0),
            };
            let opts = SampleOptions {
                tune: tune as u64,
                draws: draws as u64,
                seed: 1,
                exec: exec.clone(),
                ..SampleOptions::default()
            };
            let t = Instant::now();
            let out = sample(&counted, &[], &opts).unwrap();
            let wall = t.elapsed().as_secs_f64();
            let passes = counted.passes.load(Ordering::Relaxed);
            let steps: u64 = out.n_steps.iter().sum();
            println!(
                "flat 4 x ({tune} + {draws}): {wall:.2} s, {passes} passes, {:.3} ms wall per \
                 pass, {:.2} steps per kept draw",
                wall / passes as f64 * 1e3,
                steps as f64 / out.n_steps.len() as f64
            );
        }
    }
    if what == "pooled" || what == "all" {
        let segments: Vec<Rfm> = (0..100)
            .map(|s| {
                let scale = |c: f64, j: u64| c * (0.3 * ((s * 4 + j) as f64 * 1.7).sin()).exp();
                let p =
                    BgNbdParams::new(scale(0.5, 0), scale(5.0, 1), scale(0.8, 2), scale(2.5, 3));
                customers(&p, 1000, 1000 + s, true)
            })
            .collect();
        let rows: usize = segments.iter().map(|s| s.len()).sum();
        let models: Vec<Counted<BgNbd>> = segments
            .iter()
            .map(|d| Counted {
                inner: BgNbd::new(d),
                passes: AtomicU64::new(0),
            })
            .collect();
        let times: Vec<f64> = (0..15)
            .map(|_| {
                let t = Instant::now();
                for m in &models {
                    std::hint::black_box(m.inner.loglik_and_gradient(&at, &Exec::Serial));
                }
                t.elapsed().as_secs_f64()
            })
            .collect();
        println!(
            "pooled data: {rows} rows in 100 segments; one pass over all, 1 thread: {:.3} ms",
            median(times) * 1e3
        );
        let opts = SampleOptions {
            tune: tune as u64,
            draws: draws as u64,
            seed: 1,
            exec: exec.clone(),
            ..SampleOptions::default()
        };
        let t = Instant::now();
        let out = sample_pooled(&models, &[], &opts).unwrap();
        let wall = t.elapsed().as_secs_f64();
        let passes = models[0].passes.load(Ordering::Relaxed);
        let steps: u64 = out.draws.n_steps.iter().sum();
        println!(
            "pooled 4 x ({tune} + {draws}): {wall:.2} s, {passes} passes, {:.3} ms wall per pass, \
             {:.2} steps per kept draw",
            wall / passes as f64 * 1e3,
            steps as f64 / out.draws.n_steps.len() as f64
        );
    }
}
