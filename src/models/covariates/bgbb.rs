//! The rows of BG/BB ([`crate::models::bgbb`]) under covariates: the purchase covariates act on
//! `alpha` and the dropout covariates on `gamma`, each through an exponential link,
//!
//! ```text
//! alpha_i = alpha0 exp(z_purchase,i . g_purchase)     (p     ~ Beta(alpha_i, beta))
//! gamma_i = gamma0 exp(z_dropout,i  . g_dropout)      (theta ~ Beta(gamma_i, delta))
//! ```
//!
//! so `exp(z . g)` multiplies the odds `alpha_i / beta` of the customer's mean transaction
//! probability (a positive purchase coefficient: more transactions) and the odds
//! `gamma_i / delta` of their mean dropout probability (a positive dropout coefficient: faster
//! dropout), with `beta` and `delta` shared. (BG/BB's shape terms are not those of a gamma
//! `r`, so a link on parameter 0 is safe here: [`CovariateModel::row_derivatives`] ignores
//! `shape`.)
//!
//! Rows with whole counts over at most
//! [`CLOSED_FORM_MAX_OPPORTUNITIES`](crate::models::bgbb::CLOSED_FORM_MAX_OPPORTUNITIES)
//! opportunities (all of BG/BB's usual data) take their value, gradient and Hessian in closed
//! form ([`whole_row_derivatives`]: sums of `1/(a + k)` and `1/(a + k)^2`, no ln-gamma or
//! digamma). Other rows take BG/BB's own value and gradient over [`Dual`] numbers (exact), and
//! their Hessian (for Newton steps and standard errors) is the central difference of that
//! gradient, as the fitting engine does for the base model.

use super::{CovariateModel, Process};
use crate::data::Rfm;
use crate::dual::Dual;
use crate::models::bgbb::{row_log_likelihood, whole_row_derivatives};
use crate::models::{BgBbParams, RowDerivatives};
use crate::parallel::Exec;
use crate::special::RisingTerms;

/// Relative step of the central differences of a row's gradient.
const HESSIAN_STEP: f64 = 1e-5;

/// Value and gradient of one row in the natural parameters.
fn row_gradient(params: &[f64; 4], x: f64, t_x: f64, n: f64) -> (f64, [f64; 4]) {
    let duals: [Dual<4>; 4] = std::array::from_fn(|k| Dual::variable(params[k], k));
    let ll = row_log_likelihood(duals, x, t_x, n);
    (ll.v, ll.d)
}

impl CovariateModel for BgBbParams {
    const LINKS: &'static [(usize, Process, f64)] =
        &[(0, Process::Purchase, 1.0), (2, Process::Dropout, 1.0)];

    fn row_derivatives<const SECOND: bool>(
        params: &[f64; 4],
        _ln_params: &[f64; 4],
        _shape: RisingTerms,
        x: f64,
        t_x: f64,
        n: f64,
    ) -> RowDerivatives {
        if let Some(row) = whole_row_derivatives::<SECOND>(params, x, t_x, n) {
            return row;
        }
        let (value, gradient) = row_gradient(params, x, t_x, n);
        let mut hessian = [[f64::NAN; 4]; 4];
        if SECOND {
            for k in 0..4 {
                let h = HESSIAN_STEP * params[k];
                let (mut up, mut down) = (*params, *params);
                up[k] += h;
                down[k] -= h;
                let (g_up, g_down) = (
                    row_gradient(&up, x, t_x, n).1,
                    row_gradient(&down, x, t_x, n).1,
                );
                for j in 0..4 {
                    hessian[k][j] = (g_up[j] - g_down[j]) / (2.0 * h);
                }
            }
            for k in 0..4 {
                for j in k + 1..4 {
                    let v = 0.5 * (hessian[k][j] + hessian[j][k]);
                    hessian[k][j] = v;
                    hessian[j][k] = v;
                }
            }
        }
        (value, gradient, hessian)
    }

    fn group_derivatives<const SECOND: bool>(
        params: &[f64; 4],
        data: &Rfm,
        exec: &Exec,
    ) -> RowDerivatives {
        let shape = (0.0, 0.0, 0.0);
        let acc = exec.chunked_sum(data.len(), 1 + 4 + 16, |range, acc| {
            for i in range {
                let w = data.weight(i);
                let (v, g, h) = Self::row_derivatives::<SECOND>(
                    params,
                    params,
                    shape,
                    data.frequency[i],
                    data.recency[i],
                    data.age[i],
                );
                acc[0] += w * v;
                for k in 0..4 {
                    acc[1 + k] += w * g[k];
                    for j in 0..4 {
                        acc[5 + 4 * k + j] += w * h[k][j];
                    }
                }
            }
        });
        (
            acc[0],
            std::array::from_fn(|k| acc[1 + k]),
            std::array::from_fn(|k| std::array::from_fn(|j| acc[5 + 4 * k + j])),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::{RfmColumns, RfmNames};
    use crate::fit::{FitOptions, Likelihood};
    use crate::models::bgbb::BgBb;
    use crate::models::covariates::rows::matrix;
    use crate::models::covariates::{
        fit_with_covariates, CovariateLikelihood, CovariateRows, Links,
    };
    use crate::models::testing::rel;
    use crate::random::Rng;

    /// Summaries, purchase covariates (a 0/1 flag, a standard normal) and the dropout covariate
    /// (the flag) of `n` customers drawn from BG/BB at `truth` (`alpha0, beta, gamma0, delta`,
    /// the purchase coefficients, the dropout coefficient) over 4-8 opportunities: before each
    /// opportunity an alive customer dies with probability `theta`, else transacts with
    /// probability `p`.
    fn simulated(n: usize, truth: &[f64], seed: u64) -> [Vec<f64>; 5] {
        let mut rng = Rng::for_stream(seed, u64::MAX);
        let [mut x, mut t_x, mut periods, mut purchase, mut dropout] = [(); 5].map(|_| Vec::new());
        for _ in 0..n {
            let flag = if rng.uniform() < 0.4 { 1.0 } else { 0.0 };
            let size = rng.normal();
            let alpha = truth[0] * (truth[4] * flag + truth[5] * size).exp();
            let gamma = truth[2] * (truth[6] * flag).exp();
            let p = rng.beta(alpha, truth[1]);
            let theta = rng.beta(gamma, truth[3]);
            let opportunities = 4.0 + (rng.uniform() * 5.0).floor();
            let (mut xi, mut last) = (0.0, 0.0);
            let mut j = 1.0;
            while j <= opportunities {
                if rng.uniform() < theta {
                    break;
                }
                if rng.uniform() < p {
                    xi += 1.0;
                    last = j;
                }
                j += 1.0;
            }
            x.push(xi);
            t_x.push(last);
            periods.push(opportunities);
            purchase.extend([flag, size]);
            dropout.push(flag);
        }
        [x, t_x, periods, purchase, dropout]
    }

    fn links() -> Links {
        Links {
            purchase: vec![0, 1],
            dropout: vec![2],
            names: vec!["flag".into(), "size".into(), "flag_dropout".into()],
        }
    }

    #[test]
    fn zero_coefficients_give_the_base_likelihood() {
        let [x, t_x, n, purchase, dropout] =
            simulated(500, &[1.2, 0.8, 0.6, 2.5, 0.0, 0.0, 0.0], 3);
        let columns = RfmColumns::new(&x, &t_x, &n);
        let rows = CovariateRows::new(&columns, matrix(&purchase, 2), matrix(&dropout, 1));
        let links = links();
        let lik = CovariateLikelihood::<BgBbParams>::new(&rows, &links);
        let at = [1.1, 0.9, 0.7, 2.2];
        let mut with = at.to_vec();
        with.extend([0.0; 3]);
        let exec = Exec::Serial;
        let (ll, g) = lik.loglik_and_gradient(&with, &exec);
        let data = columns.compress();
        let (ll_base, g_base) = BgBb::new(&data).loglik_and_gradient(&at, &exec);
        assert!(rel(ll, ll_base) < 1e-12, "{ll} vs {ll_base}");
        for k in 0..4 {
            assert!(rel(g[k], g_base[k]) < 1e-10, "{k}: {g:?} vs {g_base:?}");
        }
    }

    #[test]
    fn gradient_and_hessian_match_finite_differences() {
        let truth = [1.2, 0.8, 0.6, 2.5, 0.4, -0.3, 0.5];
        let [x, t_x, n, purchase, dropout] = simulated(300, &truth, 5);
        let columns = RfmColumns::new(&x, &t_x, &n);
        let rows = CovariateRows::new(&columns, matrix(&purchase, 2), matrix(&dropout, 1));
        let links = links();
        let lik = CovariateLikelihood::<BgBbParams>::new(&rows, &links);
        let exec = Exec::Serial;
        let point = vec![1.1, 0.9, 0.7, 2.2, 0.3, -0.2, 0.4];
        let at = |p: &[f64]| lik.loglik_and_gradient(p, &exec);
        let (_, gradient) = at(&point);
        for k in 0..point.len() {
            let h = 1e-5 * point[k].abs().max(0.1);
            let (mut up, mut down) = (point.clone(), point.clone());
            up[k] += h;
            down[k] -= h;
            let numeric = (at(&up).0 - at(&down).0) / (2.0 * h);
            let scale = numeric.abs().max(gradient[k].abs()).max(1.0);
            assert!(
                (gradient[k] - numeric).abs() <= 1e-6 * scale,
                "{k}: {} vs {numeric}",
                gradient[k]
            );
        }
        let hessian = lik.hessian(&point, &exec).unwrap();
        for j in 0..point.len() {
            let h = 1e-4 * point[j].abs().max(1e-2);
            let (mut up, mut down) = (point.clone(), point.clone());
            up[j] += h;
            down[j] -= h;
            let (g_up, g_down) = (at(&up).1, at(&down).1);
            for i in 0..point.len() {
                let numeric = (g_up[i] - g_down[i]) / (2.0 * h);
                let scale = numeric.abs().max(hessian[[i, j]].abs()).max(1.0);
                assert!(
                    (hessian[[i, j]] - numeric).abs() <= 1e-5 * scale,
                    "H[{i}][{j}] {} vs {numeric}",
                    hessian[[i, j]]
                );
            }
        }
    }

    #[test]
    fn fit_recovers_simulated_coefficients() {
        let truth = [1.2, 0.8, 0.6, 2.5, 0.4, -0.3, 0.5];
        let [x, t_x, n, purchase, dropout] = simulated(2_000, &truth, 9);
        let columns = RfmColumns::new(&x, &t_x, &n);
        let rows = CovariateRows::new(&columns, matrix(&purchase, 2), matrix(&dropout, 1));
        let links = links();
        let res = fit_with_covariates::<BgBbParams>(
            &rows,
            &links,
            &RfmNames::default(),
            &FitOptions::default(),
        )
        .unwrap();
        assert!(res.converged, "{}", res.termination);
        let se = res.standard_errors().unwrap();
        for k in 0..truth.len() {
            let z = (res.params[k] - truth[k]) / se[k];
            assert!(
                z.abs() < 4.5,
                "{}: {} (se {}) vs {}",
                res.names[k],
                res.params[k],
                se[k],
                truth[k]
            );
        }
    }
}
