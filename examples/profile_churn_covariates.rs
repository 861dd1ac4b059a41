//! Where an sBG/BdW fit with continuous covariates spends its time (a development aid, not a
//! benchmark): the fit, one gradient pass and one fused pass of all rows, and the passes the
//! fit of all rows takes from the subsample's optimum with the gradient norm at each.
//! Run: cargo run --release --example profile_churn_covariates -- 1000000

use std::sync::Mutex;
use std::time::Instant;

use clvrs::fit::{fit, FitOptions, FusedPass, Likelihood, ParamSpec, WARM_START_SAMPLE};
use clvrs::models::covariates::churn::{
    customer_alpha, fit_churn_covariates, ChurnCovariateRows, ChurnCovariates,
};
use clvrs::parallel::Exec;
use clvrs::random::Rng;

/// [`ChurnCovariates`] recording each pass: fused or not, and the gradient's infinity norm per
/// customer.
struct Recorded<'r, 'a>(ChurnCovariates<'r, 'a>, f64, Mutex<Vec<(bool, f64, f64)>>);

impl Likelihood for Recorded<'_, '_> {
    fn params(&self) -> &[ParamSpec] {
        self.0.params()
    }
    fn starts(&self) -> Vec<Vec<f64>> {
        self.0.starts()
    }
    fn total_weight(&self) -> f64 {
        self.0.total_weight()
    }
    fn loglik_and_gradient(&self, p: &[f64], exec: &Exec) -> (f64, Vec<f64>) {
        let t = Instant::now();
        let (ll, g) = self.0.loglik_and_gradient(p, exec);
        let norm = g.iter().fold(0.0f64, |a, v| a.max(v.abs())) / self.1;
        self.2
            .lock()
            .unwrap()
            .push((false, norm, t.elapsed().as_secs_f64()));
        (ll, g)
    }
    fn loglik_gradient_hessian(&self, p: &[f64], exec: &Exec) -> Option<FusedPass> {
        let t = Instant::now();
        let out = self.0.loglik_gradient_hessian(p, exec)?;
        let norm = out.1.iter().fold(0.0f64, |a, v| a.max(v.abs())) / self.1;
        self.2
            .lock()
            .unwrap()
            .push((true, norm, t.elapsed().as_secs_f64()));
        Some(out)
    }
}

fn main() {
    let n: usize = std::env::args()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(1_000_000);
    let names: Vec<String> = (0..5).map(|j| format!("z{j}")).collect();
    let truth = [0.3, -0.2, 0.1, 0.2, -0.1];
    for (model, c) in [("sbg", 1.0), ("bdw", 0.7)] {
        let mut rng = Rng::for_stream(1, 7);
        let (mut periods, mut churned, mut z) = (Vec::new(), Vec::new(), Vec::new());
        for _ in 0..n {
            let row: Vec<f64> = (0..5).map(|_| 0.6 * rng.normal()).collect();
            let theta = rng.beta(customer_alpha(1.0, &row, &truth), 3.0);
            let horizon = 4.0 + (rng.uniform() * 9.0).floor();
            let (mut t, mut gone) = (1.0f64, 0.0);
            while t <= horizon {
                let exposure = t.powf(c) - (t - 1.0).powf(c);
                if rng.uniform() > (1.0 - theta).powf(exposure) {
                    gone = 1.0;
                    break;
                }
                t += 1.0;
            }
            periods.push(if gone == 1.0 { t } else { horizon });
            churned.push(gone);
            z.extend(row);
        }
        let matrix = ndarray::ArrayView2::from_shape((n, 5), &z).unwrap();
        let free_c = model == "bdw";
        let exec = Exec::with_jobs(None).unwrap();
        let opts = FitOptions {
            exec: exec.clone(),
            ..FitOptions::default()
        };
        let t = Instant::now();
        let rows = ChurnCovariateRows::new(&periods, &churned, None, matrix, &names).unwrap();
        let t_rows = t.elapsed().as_secs_f64();
        let t = Instant::now();
        let res = fit_churn_covariates(&rows, free_c, &names, &opts).unwrap();
        let t_fit = t.elapsed().as_secs_f64();
        let lik = ChurnCovariates::new(&rows, free_c);
        let t = Instant::now();
        let _ = std::hint::black_box(lik.loglik_and_gradient(&res.params, &exec));
        let t_grad = t.elapsed().as_secs_f64();
        let t = Instant::now();
        let _ = std::hint::black_box(lik.loglik_gradient_hessian(&res.params, &exec));
        let t_fused = t.elapsed().as_secs_f64();
        println!(
            "{model} n={n}: rows {t_rows:.3} s, fit {t_fit:.3} s ({} evaluations, {} iterations); \
             one gradient pass {t_grad:.3} s, one fused pass {t_fused:.3} s",
            res.n_evaluations, res.n_iter
        );
        // The stages by hand: the subsample's fit from the base optimum, then all rows.
        let stride = (n / WARM_START_SAMPLE).max(1);
        let pick = |v: &[f64]| v.iter().step_by(stride).copied().collect::<Vec<f64>>();
        let zs: Vec<f64> = z.chunks(5).step_by(stride).flatten().copied().collect();
        let (ps, cs) = (pick(&periods), pick(&churned));
        let sample_matrix = ndarray::ArrayView2::from_shape((ps.len(), 5), &zs).unwrap();
        let sample =
            ChurnCovariateRows::with_max_vectors(&ps, &cs, None, sample_matrix, &names, 0).unwrap();
        let mut start = res.params[..if free_c { 3 } else { 2 }].to_vec();
        start.extend([0.0; 5]);
        let t = Instant::now();
        let first = fit(
            &ChurnCovariates::new(&sample, free_c),
            &FitOptions {
                start: Some(start),
                newton: true,
                ..opts.clone()
            },
        )
        .unwrap();
        let t_sample = t.elapsed().as_secs_f64();
        let recorded = Recorded(
            ChurnCovariates::new(&rows, free_c),
            n as f64,
            Mutex::new(Vec::new()),
        );
        let t = Instant::now();
        let full = fit(
            &recorded,
            &FitOptions {
                start: Some(first.params.clone()),
                initial_inverse_hessian: first.inverse_hessian.clone(),
                newton: true,
                newton_given_curvature: true,
                ..opts.clone()
            },
        )
        .unwrap();
        let t_full = t.elapsed().as_secs_f64();
        println!(
            "  subsample ({} rows) {t_sample:.3} s, {} evaluations; all rows from there {t_full:.3} s, converged {}",
            sample.len(),
            first.n_evaluations,
            full.converged
        );
        for (fused, norm, secs) in recorded.2.lock().unwrap().iter() {
            println!(
                "    {} pass {secs:.3} s, gradient inf-norm per customer {norm:.2e}",
                if *fused { "fused   " } else { "gradient" }
            );
        }
    }
}
