//! Time-invariant covariates in the GGompertz/NBD ([`crate::models::ggnbd`]), parameterised as
//! CLVTools' `ggomnbd` with static covariates:
//!
//! ```text
//! alpha_i = alpha0 exp(-z_purchase,i . g_purchase)     (purchase rate lambda ~ Gamma(r, alpha_i))
//! beta_i  = beta0  exp(-z_dropout,i  . g_dropout)      (eta ~ Gamma(s, beta_i), hazard eta b e^(b t))
//! ```
//!
//! so a positive purchase coefficient raises the purchase rate and a positive dropout
//! coefficient raises the dropout hazard, as for Pareto/NBD (its limit `b -> 0`); `r`, `b` and
//! `s` are shared.
//!
//! The model has five parameters, so it does not go through the four-parameter
//! [`CovariateModel`](super::CovariateModel) passes: its likelihood has a numerical integral
//! that the base model evaluates over [`Dual`] numbers (value and exact gradient together), and
//! so does this one, per customer at `(r, alpha_i, b, s, beta_i)`, with the gradient in the
//! shared parameters and the coefficients by the chain rule through `ln alpha_i` and
//! `ln beta_i`. Customers with identical covariates share their parameters: where they repeat
//! enough ([`Groups`]) each group goes through the base model's own compressed likelihood pass.
//! The Hessian (for standard errors) is the fitting engine's central difference of that exact
//! gradient, as for the base model.

use super::groups::Groups;
use super::{check_param_count_for, CovariateRows, Links, StaticCovariates};
use crate::data::{Rfm, RfmNames};
use crate::dual::Dual;
use crate::error::{ClvError, Result};
use crate::fit::{fit, Domain, FitOptions, FitResult, Likelihood, ParamSpec};
use crate::models::ggnbd::{row_log_likelihood, GgNbd, PARAMS};
use crate::models::{GgNbdParams, RfmModel};
use crate::parallel::Exec;

/// Indices of the shifted parameters in [`PARAMS`] order (r, alpha, b, s, beta).
const ALPHA: usize = 1;
const BETA: usize = 4;

/// The shared parameters and the coefficient of each covariate column (tied columns repeat
/// theirs) at one point of the parameter space.
struct Point {
    shared: [f64; 5],
    coefficients: [Vec<f64>; 2],
}

impl Point {
    fn new(links: &Links, params: &[f64]) -> Self {
        let gather = |columns: &[usize]| columns.iter().map(|&c| params[5 + c]).collect();
        Point {
            shared: std::array::from_fn(|k| params[k]),
            coefficients: [gather(&links.purchase), gather(&links.dropout)],
        }
    }

    /// `(r, alpha_i, b, s, beta_i)` of a customer with covariate rows `z` (purchase, dropout).
    #[inline]
    fn customer(&self, z: [&[f64]; 2]) -> [f64; 5] {
        let dot = |process: usize| -> f64 {
            z[process]
                .iter()
                .zip(&self.coefficients[process])
                .map(|(v, g)| v * g)
                .sum()
        };
        let mut theta = self.shared;
        theta[ALPHA] *= (-dot(0)).exp();
        theta[BETA] *= (-dot(1)).exp();
        theta
    }
}

/// Column coordinates of the gradient accumulator: the value, the five shared parameters
/// (alpha and beta as logs), then one coordinate per purchase and per dropout column.
fn accumulator_width(links: &Links) -> usize {
    1 + 5 + links.purchase.len() + links.dropout.len()
}

/// Add one customer's (or group's) weighted log-likelihood `ll` and gradient `g` in its own
/// parameters `theta` to `acc` (column coordinates, [`accumulator_width`]).
#[inline]
fn add_gradient(acc: &mut [f64], z: [&[f64]; 2], w: f64, theta: &[f64; 5], ll: f64, g: &[f64; 5]) {
    acc[0] += w * ll;
    // d ll / d ln alpha_i and d ln beta_i; ln alpha_i = ln alpha0 - z . g.
    let g_alpha = w * g[ALPHA] * theta[ALPHA];
    let g_beta = w * g[BETA] * theta[BETA];
    acc[1] += w * g[0];
    acc[2] += g_alpha;
    acc[3] += w * g[2];
    acc[4] += w * g[3];
    acc[5] += g_beta;
    let (purchase, dropout) = acc[6..].split_at_mut(z[0].len());
    for (a, v) in purchase.iter_mut().zip(z[0]) {
        *a -= g_alpha * v;
    }
    for (a, v) in dropout.iter_mut().zip(z[1]) {
        *a -= g_beta * v;
    }
}

/// The log-likelihood and its gradient in the natural shared parameters and the coefficients,
/// from the sums of [`add_gradient`].
fn gradient(links: &Links, params: &[f64], acc: &[f64]) -> (f64, Vec<f64>) {
    let mut gradient = vec![0.0; params.len()];
    gradient[..5].copy_from_slice(&acc[1..6]);
    gradient[ALPHA] /= params[ALPHA];
    gradient[BETA] /= params[BETA];
    let columns = links.purchase.iter().chain(&links.dropout);
    for (&c, v) in columns.zip(&acc[6..]) {
        gradient[5 + c] += v;
    }
    (acc[0], gradient)
}

/// One customer's log-likelihood and gradient in its own parameters.
#[inline]
fn row(theta: &[f64; 5], x: f64, t_x: f64, age: f64) -> (f64, [f64; 5]) {
    let p: [Dual<5>; 5] = std::array::from_fn(|k| Dual::variable(theta[k], k));
    let ll = row_log_likelihood(p, x, t_x, age);
    (ll.v, ll.d)
}

fn specs(links: &Links) -> Vec<ParamSpec> {
    let mut specs = PARAMS.to_vec();
    specs.extend(links.names.iter().map(|_| ParamSpec {
        name: "coefficient",
        domain: Domain::Real,
    }));
    specs
}

fn default_starts(links: &Links) -> Vec<Vec<f64>> {
    // Only used without a caller-given start; `fit_with_covariates` always gives one.
    let mut start = vec![1.0, 1.0, 0.1, 1.0, 1.0];
    start.extend(std::iter::repeat_n(0.0, links.len()));
    vec![start]
}

/// The GGompertz/NBD likelihood with covariates, customer by customer.
pub struct GgNbdCovariateLikelihood<'r, 'a> {
    rows: &'r CovariateRows<'a>,
    links: &'r Links,
    specs: Vec<ParamSpec>,
}

impl<'r, 'a> GgNbdCovariateLikelihood<'r, 'a> {
    pub fn new(rows: &'r CovariateRows<'a>, links: &'r Links) -> Self {
        GgNbdCovariateLikelihood {
            rows,
            links,
            specs: specs(links),
        }
    }
}

impl Likelihood for GgNbdCovariateLikelihood<'_, '_> {
    fn params(&self) -> &[ParamSpec] {
        &self.specs
    }

    fn starts(&self) -> Vec<Vec<f64>> {
        default_starts(self.links)
    }

    fn total_weight(&self) -> f64 {
        (0..self.rows.len()).map(|i| self.rows.weight(i)).sum()
    }

    fn loglik_and_gradient(&self, params: &[f64], exec: &Exec) -> (f64, Vec<f64>) {
        let rows = self.rows;
        let point = Point::new(self.links, params);
        let [purchase, dropout] = rows.matrices();
        let acc = exec.chunked_sum(rows.len(), accumulator_width(self.links), |range, acc| {
            for i in range {
                let z = [purchase.row(i), dropout.row(i)];
                let theta = point.customer(z);
                let (ll, g) = row(&theta, rows.frequency[i], rows.recency[i], rows.age[i]);
                add_gradient(acc, z, rows.weight(i), &theta, ll, &g);
            }
        });
        gradient(self.links, params, &acc)
    }

    /// As the base model: b and beta are weakly identified on typical data.
    fn try_all_starts(&self) -> bool {
        true
    }
}

/// The GGompertz/NBD likelihood with covariates over [`Groups`] of customers with identical
/// covariates: per group, the base model's pass over its compressed rows.
pub struct GgNbdGroupedLikelihood<'r> {
    groups: &'r Groups,
    links: &'r Links,
    specs: Vec<ParamSpec>,
}

impl<'r> GgNbdGroupedLikelihood<'r> {
    pub fn new(groups: &'r Groups, links: &'r Links) -> Self {
        GgNbdGroupedLikelihood {
            groups,
            links,
            specs: specs(links),
        }
    }
}

impl Likelihood for GgNbdGroupedLikelihood<'_> {
    fn params(&self) -> &[ParamSpec] {
        &self.specs
    }

    fn starts(&self) -> Vec<Vec<f64>> {
        default_starts(self.links)
    }

    fn total_weight(&self) -> f64 {
        self.groups.data().iter().map(Rfm::total_weight).sum()
    }

    fn loglik_and_gradient(&self, params: &[f64], exec: &Exec) -> (f64, Vec<f64>) {
        let point = Point::new(self.links, params);
        let mut acc = vec![0.0; accumulator_width(self.links)];
        for (g, data) in self.groups.data().iter().enumerate() {
            let z = self.groups.covariates(g);
            let theta = point.customer(z);
            let (ll, grad) = GgNbd::new(data).loglik_and_gradient(&theta, exec);
            let grad: [f64; 5] = std::array::from_fn(|k| grad[k]);
            add_gradient(&mut acc, z, 1.0, &theta, ll, &grad);
        }
        gradient(self.links, params, &acc)
    }

    fn try_all_starts(&self) -> bool {
        true
    }
}

/// Use [`Groups`] when customers average at least this many per distinct covariate vector
/// (as the four-parameter models).
const MIN_CUSTOMERS_PER_GROUP: usize = super::MIN_CUSTOMERS_PER_GROUP;

/// One fit on all of `rows`: by groups when covariate vectors repeat enough, else customer by
/// customer.
fn fit_rows(rows: &CovariateRows<'_>, links: &Links, opts: &FitOptions<'_>) -> Result<FitResult> {
    let groups = Groups::new(rows, rows.len() / MIN_CUSTOMERS_PER_GROUP, &opts.exec);
    match groups {
        Some(groups) => fit(&GgNbdGroupedLikelihood::new(&groups, links), opts),
        None => fit(&GgNbdCovariateLikelihood::new(rows, links), opts),
    }
}

/// Fit the GGompertz/NBD with covariates: the base model first (its estimate, with every
/// coefficient 0, is the start), then on large data a subsample from there, then all rows.
pub fn fit_ggnbd_covariates(
    rows: &CovariateRows<'_>,
    links: &Links,
    names: &RfmNames,
    opts: &FitOptions<'_>,
) -> Result<FitResult> {
    crate::models::check_fittable(&rows.frequency, names)?;
    let start_on = |data: &CovariateRows<'_>, first_start_only: bool| -> Result<Vec<f64>> {
        if let Some(start) = &opts.start {
            return Ok(start.clone());
        }
        let base_opts = FitOptions {
            first_start_only,
            ..opts.clone()
        };
        let base = GgNbdParams::fit(&data.columns().compress_on(&opts.exec), &base_opts)?;
        let mut start = base.params;
        start.extend(std::iter::repeat_n(0.0, links.len()));
        Ok(start)
    };
    let mut result = None;
    if rows.len() > crate::fit::WARM_START_ROWS && !links.is_empty() {
        let sample = rows.subsample(rows.len() / crate::fit::WARM_START_SAMPLE);
        let base_start = match start_on(&sample, true) {
            Err(ClvError::Interrupted) => return Err(ClvError::Interrupted),
            start => start.ok(),
        };
        if let Some(start) = base_start {
            let first = fit_rows(
                &sample,
                links,
                &FitOptions {
                    start: Some(start),
                    first_start_only: true,
                    ..opts.clone()
                },
            )?;
            if first.converged {
                let warm = FitOptions {
                    start: Some(first.params),
                    initial_inverse_hessian: first.inverse_hessian,
                    ..opts.clone()
                };
                result = Some(fit_rows(rows, links, &warm)?).filter(|r| r.converged);
            }
        }
    }
    let mut result = match result {
        Some(r) => r,
        None => {
            let from_base = FitOptions {
                start: Some(start_on(rows, false)?),
                ..opts.clone()
            };
            fit_rows(rows, links, &from_base)?
        }
    };
    result.names.truncate(PARAMS.len());
    result.names.extend(links.names.iter().cloned());
    Ok(result)
}

impl StaticCovariates for GgNbdParams {
    fn fit_covariates(
        rows: &CovariateRows<'_>,
        links: &Links,
        names: &RfmNames,
        opts: &FitOptions<'_>,
    ) -> Result<FitResult> {
        fit_ggnbd_covariates(rows, links, names, opts)
    }

    fn customer_models(
        rows: &CovariateRows<'_>,
        links: &Links,
        params: &[f64],
        exec: &Exec,
    ) -> Result<Vec<Self>> {
        check_param_count_for(&PARAMS, links, params)?;
        let point = Point::new(links, params);
        let indices: Vec<usize> = (0..rows.len()).collect();
        let models: Vec<Result<Self>> = exec.map(&indices, |&i| {
            GgNbdParams::from_slice(&point.customer(rows.covariates(i))).map_err(|e| {
                ClvError::invalid_data(
                    "covariates",
                    Some(i),
                    None,
                    format!("give this customer parameters outside their domain ({e})"),
                )
            })
        });
        models.into_iter().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::RfmColumns;
    use crate::models::covariates::rows::matrix;
    use crate::models::covariates::tests::Simulated;
    use crate::models::testing::{cdnow, rel};
    use crate::random::Rng;

    /// `n` customers with a 0/1 flag and a standard normal in the purchase process and the flag
    /// in the dropout process, histories drawn from the GGompertz/NBD at `truth` (r, alpha, b,
    /// s, beta, then the coefficients flag, size, flag_dropout).
    fn simulated(n: usize, truth: &[f64], seed: u64) -> Simulated {
        let links = Links {
            purchase: vec![0, 1],
            dropout: vec![2],
            names: vec!["flag".into(), "size".into(), "flag_dropout".into()],
        };
        let mut rng = Rng::for_stream(seed, u64::MAX);
        let (mut purchase, mut dropout, mut ages) = (Vec::new(), Vec::new(), Vec::new());
        for _ in 0..n {
            let flag = if rng.uniform() < 0.4 { 1.0 } else { 0.0 };
            purchase.extend([flag, rng.normal()]);
            dropout.push(flag);
            ages.push(20.0 + 30.0 * rng.uniform());
        }
        let point = Point::new(&links, truth);
        let (mut x, mut t_x) = (Vec::with_capacity(n), Vec::with_capacity(n));
        for i in 0..n {
            let z = [&purchase[2 * i..2 * i + 2], &dropout[i..i + 1]];
            let p = GgNbdParams::from_slice(&point.customer(z)).unwrap();
            let (xi, ti) = p.simulate(&[ages[i]], seed.wrapping_add(i as u64)).unwrap();
            x.push(xi[0]);
            t_x.push(ti[0]);
        }
        (x, t_x, ages, purchase, dropout, links)
    }

    /// (Recovery and interval coverage are checked from Python, on release builds:
    /// tests/test_ggnbd_covariates.py.)
    const TRUTH: [f64; 8] = [0.8, 4.0, 0.05, 0.8, 2.0, 0.5, -0.3, 0.4];

    #[test]
    fn zero_coefficients_give_the_base_model() {
        let data = cdnow();
        let columns = data.columns();
        let n = data.len();
        let size: Vec<f64> = (0..n).map(|i| (i % 7) as f64 - 3.0).collect();
        let links = Links {
            purchase: vec![0],
            dropout: vec![1],
            names: vec!["size".into(), "size_dropout".into()],
        };
        let rows = CovariateRows::new(&columns, matrix(&size, 1), matrix(&size, 1));
        let lik = GgNbdCovariateLikelihood::new(&rows, &links);
        let base = [0.55, 10.6, 0.05, 0.6, 2.0];
        let mut params = base.to_vec();
        params.extend([0.0, 0.0]);
        let (ll, g) = lik.loglik_and_gradient(&params, &Exec::Serial);
        let (want, want_g) = GgNbd::new(&data).loglik_and_gradient(&base, &Exec::Serial);
        assert!(rel(ll, want) < 1e-12, "{ll} vs {want}");
        for k in 0..5 {
            assert!(
                rel(g[k], want_g[k]) < 1e-9,
                "{k}: {} vs {}",
                g[k],
                want_g[k]
            );
        }
        // Predictions: every customer's model is the base model.
        let models = GgNbdParams::customer_models(&rows, &links, &params, &Exec::Serial).unwrap();
        let m = GgNbdParams::from_slice(&base).unwrap();
        for i in [0, 5, 100, 1000] {
            assert_eq!(models[i], m);
        }
    }

    #[test]
    fn gradients_match_finite_differences_and_groups() {
        let (x, t_x, age, purchase, dropout, links) = simulated(120, &TRUTH, 7);
        let columns = RfmColumns::new(&x, &t_x, &age);
        let rows = CovariateRows::new(&columns, matrix(&purchase, 2), matrix(&dropout, 1));
        let lik = GgNbdCovariateLikelihood::new(&rows, &links);
        let mut point = TRUTH.to_vec();
        point[0] *= 1.1;
        point[6] += 0.05;
        let at = |p: &[f64]| lik.loglik_and_gradient(p, &Exec::Serial);
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
                "component {k}: analytic {} vs numeric {numeric}",
                gradient[k]
            );
        }
        // Groups give the same value and gradient as customer by customer.
        let groups = Groups::new(&rows, rows.len(), &Exec::Serial).unwrap();
        let grouped = GgNbdGroupedLikelihood::new(&groups, &links);
        let (gv, gg) = grouped.loglik_and_gradient(&point, &Exec::Serial);
        let (v, g) = at(&point);
        assert!(rel(gv, v) < 1e-11, "{gv} vs {v}");
        for k in 0..g.len() {
            assert!((gg[k] - g[k]).abs() <= 1e-8 * g[k].abs().max(1.0), "{k}");
        }
    }
}
