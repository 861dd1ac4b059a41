//! Times the parts of a BG/NBD posterior sample: one log-likelihood gradient over many rows,
//! and short NUTS runs (1M customers; 100 segments x 1,000 customers with partial pooling),
//! with the number of gradients each took (a development aid, not a benchmark).
//! Run: cargo run --release --example profile_posterior -- [rows] [jobs] [tune] [draws] [what]
//! (`what`: `grad`, `flat`, `pooled` or `all`).

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use clvrs::bayes::hierarchical::sample_pooled;
use clvrs::bayes::{posterior_mode, sample, SampleOptions};
use clvrs::data::{Rfm, RfmColumns};
use clvrs::fit::{FitOptions, FusedPass, Likelihood, ParamSpec};
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

/// Seconds this thread has run on a processor (Linux): a loaded machine inflates it less than
/// wall time.
fn thread_cpu() -> f64 {
    std::fs::read_to_string("/proc/thread-self/schedstat")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse::<f64>().ok())
        .map_or(f64::NAN, |ns| ns * 1e-9)
}

/// Seconds the whole process has run on processors (all threads; Linux, in ticks).
fn process_cpu() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // Fields 14 and 15 (user and system ticks), counted after the command name's ')'.
    let after = stat.rsplit(')').next().unwrap_or("");
    let fields: Vec<&str> = after.split_whitespace().collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(f64::NAN)
    };
    (ticks(11) + ticks(12)) / 100.0
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
        println!(
            "{} rows, {} with x > 0",
            data.len(),
            data.frequency.iter().filter(|&&x| x > 0.0).count()
        );
        // (The thread's processor time advances in scheduler ticks: a mean over many calls.)
        let calls = 40;
        let t = thread_cpu();
        for _ in 0..calls {
            std::hint::black_box(model.loglik_and_gradient(&at, &Exec::Serial));
        }
        let cpu = (thread_cpu() - t) / calls as f64;
        println!("gradient, 1 thread: {:.3} ms CPU", cpu * 1e3);
        let times: Vec<f64> = (0..15)
            .map(|_| {
                let t = Instant::now();
                std::hint::black_box(model.loglik_and_gradient(&at, &exec));
                t.elapsed().as_secs_f64()
            })
            .collect();
        println!("gradient, pool: {:.3} ms wall", median(times) * 1e3);
        if what != "grad" {
            let counted = Counted {
                inner: BgNbd::new(&data),
                passes: AtomicU64::new(0),
            };
            let t = Instant::now();
            let fit_opts = FitOptions {
                exec: exec.clone(),
                ..FitOptions::default()
            };
            let (mode, _, _) = posterior_mode(&counted, &[], &fit_opts).unwrap();
            println!(
                "posterior mode: {:.3} s, {} passes, {} iterations",
                t.elapsed().as_secs_f64(),
                counted.passes.load(Ordering::Relaxed),
                mode.n_iter
            );
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
            let (t, c) = (Instant::now(), process_cpu());
            let out = sample(&counted, &[], &opts).unwrap();
            let wall = t.elapsed().as_secs_f64();
            let cpu = process_cpu() - c;
            let passes = counted.passes.load(Ordering::Relaxed);
            let steps: u64 = out.n_steps.iter().sum();
            println!(
                "flat 4 x ({tune} + {draws}): {wall:.2} s ({cpu:.2} s CPU), {passes} passes, \
                 {:.3} ms wall and {:.3} ms CPU per pass, {:.2} steps per kept draw",
                wall / passes as f64 * 1e3,
                cpu / passes as f64 * 1e3,
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
        let repeat: usize = segments
            .iter()
            .map(|s| s.frequency.iter().filter(|&&x| x > 0.0).count())
            .sum();
        let runs: usize = segments
            .iter()
            .map(|s| s.frequency.windows(2).filter(|w| w[0] != w[1]).count() + 1)
            .sum();
        println!("pooled data: {repeat} rows with x > 0, {runs} runs of equal frequency");
        let models: Vec<Counted<BgNbd>> = segments
            .iter()
            .map(|d| Counted {
                inner: BgNbd::new(d),
                passes: AtomicU64::new(0),
            })
            .collect();
        let calls = 100;
        let t = thread_cpu();
        for _ in 0..calls {
            for m in &models {
                std::hint::black_box(m.inner.loglik_and_gradient(&at, &Exec::Serial));
            }
        }
        let cpu = (thread_cpu() - t) / calls as f64;
        println!(
            "pooled data: {rows} rows in 100 segments; one pass over all, 1 thread: {:.3} ms CPU",
            cpu * 1e3
        );
        let opts = SampleOptions {
            tune: tune as u64,
            draws: draws as u64,
            seed: 1,
            exec: exec.clone(),
            ..SampleOptions::default()
        };
        let (t, c) = (Instant::now(), process_cpu());
        let out = sample_pooled(&models, &[], &opts).unwrap();
        let wall = t.elapsed().as_secs_f64();
        let cpu = process_cpu() - c;
        let passes = models[0].passes.load(Ordering::Relaxed);
        let steps: u64 = out.draws.n_steps.iter().sum();
        println!(
            "pooled 4 x ({tune} + {draws}): {wall:.2} s ({cpu:.2} s CPU), {passes} passes, {:.3} \
             ms wall and {:.3} ms CPU per pass, {:.2} steps per kept draw",
            wall / passes as f64 * 1e3,
            cpu / passes as f64 * 1e3,
            steps as f64 / out.draws.n_steps.len() as f64
        );
    }
}
