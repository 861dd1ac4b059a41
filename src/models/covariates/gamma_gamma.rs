//! Time-invariant covariates in the Gamma-Gamma spend model.
//!
//! The base model ([`crate::models::gamma_gamma`]): a customer's transaction values are
//! `Gamma(p, nu)` (rate `nu`) with `nu ~ Gamma(q, gamma)` across customers. Covariates act on
//! `gamma`, the scale of the heterogeneity distribution, through an exponential link,
//!
//! ```text
//! gamma_i = gamma0 exp(z_i . g)
//! ```
//!
//! the form Fader & Hardie (2007, "Incorporating time-invariant covariates into the Pareto/NBD
//! and BG/NBD models") give the scale parameters of the purchase and dropout heterogeneity
//! (`alpha`, `beta`); no published extension of the Gamma-Gamma model puts covariates
//! elsewhere that we found (CLVTools documents no covariates for its spending model). This
//! choice has a plain reading: multiplying every transaction value of a customer by `c` turns
//! `nu` into `nu / c`, which is `Gamma(q, c gamma)`, so `exp(z_i . g)` is exactly the factor by
//! which the covariates scale a customer's spend (mean spend per transaction
//! `p gamma_i / (q - 1)`); `p` and `q` (the shapes) stay shared.
//!
//! The likelihood is the base model's row by row at each customer's `gamma_i`, with its
//! gradient and Hessian by the chain rule through `v_i = ln gamma_i = ln gamma0 + z_i . g`.
//! With `G = g_i dL/dg_i`, the row's derivatives in `(p, q, v)` are
//!
//! ```text
//! dL/dv     = q - (px + q) g / (g + xm)
//! d2L/dp dv = -x g / (g + xm)       d2L/dq dv = xm / (g + xm)
//! d2L/dv2   = -(px + q) g xm / (g + xm)^2
//! ```
//!
//! and `v` is linear in `(ln gamma0, g)` with the constant derivative `u_i = (1, z_i)`, so a
//! pass sums `u_i` outer products weighted by these.

use ndarray::{Array2, ArrayView2, CowArray, Ix2};

use super::check_finite;
use super::rows::{standard_layout, RowMajor};
use crate::data::{SpendColumns, SpendNames};
use crate::error::{ClvError, Result};
use crate::fit::{fit, Domain, FitOptions, FitResult, FusedPass, Likelihood, ParamSpec};
use crate::models::gamma_gamma::{fit_in_units, FrequencyTerms, GammaGammaParams, Pass, PARAMS};
use crate::parallel::Exec;
use crate::special::{stirling_error, trigamma};

/// The repeat buyers' spend summaries with their covariates (one row per customer, rows of
/// customers without a repeat transaction or with weight 0 left out).
#[derive(Debug, Clone)]
pub struct SpendCovariateRows<'a> {
    pub frequency: Vec<f64>,
    pub monetary: Vec<f64>,
    pub weights: Vec<f64>,
    /// `len() x columns`, standard layout.
    pub covariates: CowArray<'a, f64, Ix2>,
    /// Total weight of the customers left out (no repeat transaction).
    pub excluded: f64,
}

impl<'a> SpendCovariateRows<'a> {
    /// Validate the columns and the covariate matrix (`columns.frequency.len() x names.len()`,
    /// finite values) and keep the repeat buyers' rows.
    pub fn new(
        columns: &SpendColumns<'_>,
        names: &SpendNames,
        covariates: ArrayView2<'a, f64>,
        covariate_names: &[String],
    ) -> Result<Self> {
        columns.validate(names)?;
        let n = columns.frequency.len();
        if covariates.dim() != (n, covariate_names.len()) {
            return Err(ClvError::invalid_data(
                "covariates",
                None,
                None,
                format!(
                    "expected {n} x {} covariate values, got {} x {}",
                    covariate_names.len(),
                    covariates.nrows(),
                    covariates.ncols()
                ),
            ));
        }
        check_finite(covariates, covariate_names)?;
        let weight = |i: usize| columns.weights.map_or(1.0, |w| w[i]);
        let keep: Vec<usize> = (0..n)
            .filter(|&i| columns.frequency[i] > 0.0 && weight(i) > 0.0)
            .collect();
        let excluded = (0..n)
            .filter(|&i| columns.frequency[i] == 0.0)
            .map(weight)
            .sum();
        let matrix = if keep.len() == n {
            standard_layout(covariates)
        } else {
            CowArray::from(
                covariates
                    .select(ndarray::Axis(0), &keep)
                    .as_standard_layout()
                    .into_owned(),
            )
        };
        Ok(SpendCovariateRows {
            frequency: keep.iter().map(|&i| columns.frequency[i]).collect(),
            monetary: keep.iter().map(|&i| columns.monetary[i]).collect(),
            weights: keep.iter().map(|&i| weight(i)).collect(),
            covariates: matrix,
            excluded,
        })
    }

    /// Number of repeat buyers' rows.
    pub fn len(&self) -> usize {
        self.frequency.len()
    }

    /// Whether there is no repeat buyer.
    pub fn is_empty(&self) -> bool {
        self.frequency.is_empty()
    }

    /// Number of covariate columns (coefficients).
    pub fn n_covariates(&self) -> usize {
        self.covariates.ncols()
    }

    fn matrix(&self) -> RowMajor<'_> {
        RowMajor::new(&self.covariates)
    }

    /// The same rows with the mean values divided by `unit` (a power of two: exact).
    fn in_units(&self, unit: f64) -> SpendCovariateRows<'_> {
        SpendCovariateRows {
            monetary: self.monetary.iter().map(|m| m / unit).collect(),
            frequency: self.frequency.clone(),
            weights: self.weights.clone(),
            covariates: CowArray::from(self.covariates.view()),
            excluded: self.excluded,
        }
    }
}

/// The parameter of customer `i`'s heterogeneity scale: `gamma0 exp(z . g)`.
#[inline]
pub fn customer_gamma(gamma: f64, z: &[f64], coefficients: &[f64]) -> f64 {
    let dot: f64 = z.iter().zip(coefficients).map(|(v, g)| v * g).sum();
    gamma * dot.exp()
}

/// Each customer's Gamma-Gamma parameters at `params` (`p, q, gamma0, coefficients...`) for
/// covariate rows `covariates` (one row per customer), for predictions. Fails naming the row
/// when a customer's `gamma_i` leaves `(0, inf)`.
pub fn customer_params(
    params: &[f64],
    covariates: ArrayView2<'_, f64>,
    covariate_names: &[String],
) -> Result<Vec<GammaGammaParams>> {
    if params.len() != 3 + covariates.ncols() || covariate_names.len() != covariates.ncols() {
        return Err(ClvError::invalid_parameter(
            "params",
            format!(
                "expected {} values (3 model parameters and {} coefficients), got {}",
                3 + covariates.ncols(),
                covariates.ncols(),
                params.len()
            ),
        ));
    }
    GammaGammaParams::from_slice(&params[..3])?;
    check_finite(covariates, covariate_names)?;
    let matrix = standard_layout(covariates);
    let rows = RowMajor::new(&matrix);
    (0..matrix.nrows())
        .map(|i| {
            let g = customer_gamma(params[2], rows.row(i), &params[3..]);
            if !(g > 0.0 && g.is_finite()) {
                return Err(ClvError::invalid_data(
                    "covariates",
                    Some(i),
                    None,
                    format!("give this customer gamma = {g}, outside (0, inf)"),
                ));
            }
            Ok(GammaGammaParams::new(params[0], params[1], g))
        })
        .collect()
}

/// The Gamma-Gamma likelihood with covariates on `gamma`, customer by customer, for the fitting
/// engine. Parameters: `p, q, gamma0`, then one coefficient per covariate column.
pub struct GammaGammaCovariates<'r, 'a> {
    rows: &'r SpendCovariateRows<'a>,
    specs: Vec<ParamSpec>,
    /// `ln m` of each row (the same in every evaluation).
    ln_monetary: Vec<f64>,
    /// The largest frequency when every frequency is a whole number up to
    /// [`MAX_TABULATED_FREQUENCY`]: each pass then tabulates the terms that depend on the
    /// frequency alone ([`FrequencyTerms`]) instead of computing them per row.
    max_frequency: Option<usize>,
}

/// Largest frequency whose row terms a pass tabulates.
const MAX_TABULATED_FREQUENCY: usize = 4096;

impl<'r, 'a> GammaGammaCovariates<'r, 'a> {
    pub fn new(rows: &'r SpendCovariateRows<'a>) -> Self {
        let mut specs = PARAMS.to_vec();
        specs.extend((0..rows.n_covariates()).map(|_| ParamSpec {
            name: "coefficient",
            domain: Domain::Real,
        }));
        let whole = |x: f64| x.fract() == 0.0 && x >= 0.0 && x <= MAX_TABULATED_FREQUENCY as f64;
        let max_frequency = rows
            .frequency
            .iter()
            .all(|&x| whole(x))
            .then(|| rows.frequency.iter().fold(0.0f64, |a, &x| a.max(x)) as usize);
        GammaGammaCovariates {
            rows,
            specs,
            ln_monetary: rows.monetary.iter().map(|m| m.ln()).collect(),
            max_frequency,
        }
    }

    /// Sums over the rows. Layout with `k = 1 + covariates` (the derivative `u = (1, z)` of
    /// `v = ln gamma_i` in `(ln gamma0, coefficients)`): `[value, d/dp, d/dq, G u (k)]`, then
    /// with `second`, `[pp, pq, qq, Hpv u (k), Hqv u (k), Hvv u u' (k x k)]`. The first-order
    /// sums are the same expressions in the same order with or without `second`, so a fused
    /// pass gives exactly the gradient pass's value and gradient.
    fn sums(&self, params: &[f64], exec: &Exec, second: bool) -> Vec<f64> {
        let rows = self.rows;
        let (p, q, gamma0) = (params[0], params[1], params[2]);
        let coefficients = &params[3..];
        let k = 1 + coefficients.len();
        let first_width = 3 + k;
        let width = if second {
            first_width + 3 + 2 * k + k * k
        } else {
            first_width
        };
        let tg_q = if second { trigamma(q) } else { 0.0 };
        let stirling_q = stirling_error(q);
        let pass = Pass {
            first: true,
            second,
        };
        // The terms of each whole frequency, once per pass (the special functions are most of
        // a row's cost, and they depend on the frequency alone).
        let table: Vec<FrequencyTerms> = self.max_frequency.map_or_else(Vec::new, |max| {
            (0..=max)
                // (Rows with frequency 0 are left out of the rows; slot 0 is never read.)
                .map(|x| FrequencyTerms::new(x.max(1) as f64, p, q, pass))
                .collect()
        });
        let matrix = rows.matrix();
        exec.chunked_sum(rows.len(), width, |range, acc| {
            let mut u = vec![0.0; k];
            u[0] = 1.0;
            let mut own: FrequencyTerms;
            for i in range {
                let (x, m, w) = (rows.frequency[i], rows.monetary[i], rows.weights[i]);
                let t = if table.is_empty() {
                    own = FrequencyTerms::new(x, p, q, pass);
                    &own
                } else {
                    &table[x as usize]
                };
                let z = matrix.row(i);
                u[1..].copy_from_slice(z);
                let g = customer_gamma(gamma0, z, coefficients);
                let row = t.row_first(q, g, m, stirling_q);
                let (xm, gxm) = (row.xm, row.gxm);
                let gv = q - (t.px + q) * (g / gxm);
                acc[0] += w * (row.kernel - self.ln_monetary[i]);
                acc[1] += w * row.d_p;
                acc[2] += w * row.d_q;
                for (a, uj) in acc[3..first_width].iter_mut().zip(&u) {
                    *a += w * gv * uj;
                }
                if second {
                    let s = &mut acc[first_width..];
                    let [pp, pq, qq] = t.row_second_pq(tg_q);
                    s[0] += w * pp;
                    s[1] += w * pq;
                    s[2] += w * qq;
                    let share = g / gxm;
                    let h_pv = -x * share;
                    let h_qv = xm / gxm;
                    let h_vv = -(t.px + q) * share * (xm / gxm);
                    let (hp, rest) = s[3..].split_at_mut(k);
                    let (hq, hvv) = rest.split_at_mut(k);
                    for j in 0..k {
                        hp[j] += w * h_pv * u[j];
                        hq[j] += w * h_qv * u[j];
                        let wu = w * h_vv * u[j];
                        // Upper triangle only (mirrored when the Hessian is assembled).
                        for l in j..k {
                            hvv[j * k + l] += wu * u[l];
                        }
                    }
                }
            }
        })
    }

    /// The Hessian in the natural parameters from the sums of a second-order pass (`acc`) and
    /// the gradient sums (`first`).
    fn hessian_from(&self, params: &[f64], first: &[f64], acc: &[f64]) -> Array2<f64> {
        let n = params.len();
        let k = n - 2;
        let gamma0 = params[2];
        let g_v = &first[3..3 + k];
        let s = acc;
        let (hp, rest) = s[3..].split_at(k);
        let (hq, hvv) = rest.split_at(k);
        // Scale of the coordinate `v`-index j: d/dgamma0 = d/d(ln gamma0) / gamma0.
        let scale = |j: usize| if j == 0 { gamma0 } else { 1.0 };
        let mut h = Array2::zeros((n, n));
        h[[0, 0]] = s[0];
        h[[0, 1]] = s[1];
        h[[1, 0]] = s[1];
        h[[1, 1]] = s[2];
        for j in 0..k {
            let a = 2 + j;
            h[[0, a]] = hp[j] / scale(j);
            h[[a, 0]] = h[[0, a]];
            h[[1, a]] = hq[j] / scale(j);
            h[[a, 1]] = h[[1, a]];
            for l in j..k {
                let mut v = hvv[j * k + l];
                if j == 0 && l == 0 {
                    // d2/dgamma0^2 = (d2/dv2 - d/dv) / gamma0^2 for v = ln gamma0.
                    v -= g_v[0];
                }
                v /= scale(j) * scale(l);
                h[[a, 2 + l]] = v;
                h[[2 + l, a]] = v;
            }
        }
        h
    }
}

impl Likelihood for GammaGammaCovariates<'_, '_> {
    fn params(&self) -> &[ParamSpec] {
        &self.specs
    }

    fn starts(&self) -> Vec<Vec<f64>> {
        // The base model's moment-style starts with every coefficient 0 (the posterior mode
        // starts here; `fit_spend_covariates` gives the base estimate instead).
        let rows = self.rows;
        let total: f64 = rows.weights.iter().sum();
        let mean = (0..rows.len())
            .map(|i| rows.monetary[i] * rows.weights[i])
            .sum::<f64>()
            / total;
        let m = mean.clamp(1e-9, 1e15);
        [[1.0, 2.0, m], [5.0, 3.0, 0.5 * m], [0.5, 1.5, 2.0 * m]]
            .iter()
            .map(|base| {
                let mut start = base.to_vec();
                start.extend(std::iter::repeat_n(0.0, rows.n_covariates()));
                start
            })
            .collect()
    }

    fn total_weight(&self) -> f64 {
        self.rows.weights.iter().sum()
    }

    fn loglik_and_gradient(&self, params: &[f64], exec: &Exec) -> (f64, Vec<f64>) {
        let acc = self.sums(params, exec, false);
        let mut gradient = acc[1..].to_vec();
        gradient[2] /= params[2];
        (acc[0], gradient)
    }

    fn hessian(&self, params: &[f64], exec: &Exec) -> Option<Array2<f64>> {
        self.loglik_gradient_hessian(params, exec)
            .map(|(_, _, h)| h)
    }

    fn loglik_gradient_hessian(&self, params: &[f64], exec: &Exec) -> Option<FusedPass> {
        // One pass; its first-order sums are the bits of `loglik_and_gradient`'s.
        let acc = self.sums(params, exec, true);
        let width = 3 + (params.len() - 2);
        let (first, second) = acc.split_at(width);
        let value = first[0];
        let mut gradient = first[1..].to_vec();
        gradient[2] /= params[2];
        Some((value, gradient, self.hessian_from(params, first, second)))
    }
}

/// Fit the Gamma-Gamma model with covariates on `gamma`: the base model first (its estimate,
/// with every coefficient 0, is the start; the caller's `opts.start` wins; above
/// [`crate::fit::WARM_START_ROWS`] rows the base model is fitted to a systematic subsample of
/// about [`crate::fit::WARM_START_SAMPLE`] of them), then all rows by Newton steps from
/// there. Mean values are fitted in a power-of-two unit near their typical size (exact), as the
/// base fit is, and mapped back. The result names the coefficients
/// `coefficient_names`.
pub fn fit_spend_covariates(
    rows: &SpendCovariateRows<'_>,
    coefficient_names: &[String],
    names: &SpendNames,
    opts: &FitOptions<'_>,
) -> Result<FitResult> {
    if rows.is_empty() {
        return Err(ClvError::invalid_data(
            &names.frequency,
            None,
            None,
            "no customer has a repeat transaction (frequency > 0): spend cannot be modelled",
        ));
    }
    let total: f64 = rows.weights.iter().sum();
    let mean_log2 = (0..rows.len())
        .map(|i| rows.weights[i] * rows.monetary[i].log2())
        .sum::<f64>()
        / total;
    let k = if opts.penalizer != 0.0 || !mean_log2.is_finite() {
        0
    } else {
        mean_log2.round().clamp(-1000.0, 1000.0) as i32
    };
    let unit = 2f64.powi(k);
    let start = match &opts.start {
        Some(start) => start.clone(),
        None => {
            // The base model fitted to every `stride`-th customer when there are many: only a
            // start for Newton steps on all rows (a fit of the base model to a million rows of
            // continuous mean spend, which do not compress, cost as much as the Newton steps).
            let stride = if rows.len() > crate::fit::WARM_START_ROWS {
                rows.len() / crate::fit::WARM_START_SAMPLE
            } else {
                1
            };
            let every = |v: &[f64]| -> Vec<f64> { v.iter().step_by(stride).copied().collect() };
            let (frequency, monetary, weights) = (
                every(&rows.frequency),
                every(&rows.monetary),
                every(&rows.weights),
            );
            let on = |frequency: &[f64], monetary: &[f64], weights: &[f64]| {
                let columns = SpendColumns {
                    frequency,
                    monetary,
                    weights: Some(weights),
                };
                fit_in_units(&columns.compress(), opts)
            };
            let base = match on(&frequency, &monetary, &weights) {
                Err(ClvError::Interrupted) => return Err(ClvError::Interrupted),
                Ok(base) if base.converged || stride == 1 => base,
                // A subsample that does not settle leaves the start to all rows.
                _ => on(&rows.frequency, &rows.monetary, &rows.weights)?,
            };
            let mut start = base.params;
            start.extend(std::iter::repeat_n(0.0, rows.n_covariates()));
            start
        }
    };
    let mut scaled_start = start;
    scaled_start[2] /= unit;
    let scaled = rows.in_units(unit);
    let mut res = fit(
        &GammaGammaCovariates::new(&scaled),
        &FitOptions {
            start: Some(scaled_start),
            newton: true,
            curvature_at_start: true,
            ..opts.clone()
        },
    )?;
    res.params[2] *= unit;
    res.log_likelihood -= total * unit.ln();
    if let Some(cov) = res.covariance.take() {
        let mapped = Array2::from_shape_fn(cov.raw_dim(), |(i, j)| {
            let f = |a: usize| if a == 2 { unit } else { 1.0 };
            cov[[i, j]] * f(i) * f(j)
        });
        if mapped.diag().iter().all(|v| v.is_normal()) && mapped.iter().all(|v| v.is_finite()) {
            res.covariance = Some(mapped);
        } else {
            res.covariance_note = Some(
                "the variance of gamma is beyond double precision in the amounts' units, so \
                 there are no standard errors (amounts in other units, e.g. thousands, have \
                 them)"
                    .into(),
            );
        }
    }
    res.names.truncate(3);
    res.names.extend(coefficient_names.iter().cloned());
    Ok(res)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::models::covariates::rows::matrix;
    use crate::models::gamma_gamma::GammaGamma;
    use crate::models::testing::rel;
    use crate::random::Rng;

    /// `n` customers with a 0/1 flag and a standard normal covariate, spend drawn from the
    /// model at `truth` (`p, q, gamma0, g_flag, g_size`): `x` repeat transactions (1..=8),
    /// `nu ~ Gamma(q, gamma_i)`, the mean of `x` values `Gamma(p, nu)`.
    fn simulated(n: usize, truth: &[f64], seed: u64) -> (Vec<f64>, Vec<f64>, Vec<f64>) {
        let mut rng = Rng::for_stream(seed, u64::MAX);
        let (mut x, mut m, mut z) = (Vec::new(), Vec::new(), Vec::new());
        for _ in 0..n {
            let flag = if rng.uniform() < 0.4 { 1.0 } else { 0.0 };
            let size = rng.normal();
            let g = customer_gamma(truth[2], &[flag, size], &truth[3..]);
            let xi = 1.0 + (rng.uniform() * 8.0).floor();
            // nu ~ Gamma(q, rate g); the mean of xi values ~ Gamma(p xi, rate nu xi).
            let nu = rng.gamma(truth[1]) / g;
            let mean = rng.gamma(truth[0] * xi) / (nu * xi);
            x.push(xi);
            m.push(mean);
            z.extend([flag, size]);
        }
        (x, m, z)
    }

    fn rows<'a>(x: &'a [f64], m: &'a [f64], z: &'a [f64]) -> SpendCovariateRows<'a> {
        let columns = SpendColumns {
            frequency: x,
            monetary: m,
            weights: None,
        };
        let names = ["flag".to_string(), "size".to_string()];
        SpendCovariateRows::new(&columns, &SpendNames::default(), matrix(z, 2), &names).unwrap()
    }

    #[test]
    fn tabulated_frequency_terms_give_the_bits_of_rows() {
        let (x, m, z) = simulated(300, &[6.0, 4.0, 15.0, 0.4, -0.3], 8);
        let rows = rows(&x, &m, &z);
        let tabulated = GammaGammaCovariates::new(&rows);
        assert!(tabulated.max_frequency.is_some());
        let per_row = GammaGammaCovariates {
            max_frequency: None,
            ..GammaGammaCovariates::new(&rows)
        };
        let point = [5.0, 3.5, 14.0, 0.3, -0.2];
        let (a, b) = (
            tabulated
                .loglik_gradient_hessian(&point, &Exec::Serial)
                .unwrap(),
            per_row
                .loglik_gradient_hessian(&point, &Exec::Serial)
                .unwrap(),
        );
        assert_eq!((a.0.to_bits(), &a.1, &a.2), (b.0.to_bits(), &b.1, &b.2));
    }

    #[test]
    fn zero_coefficients_give_the_base_model() {
        let (x, m, z) = simulated(500, &[6.0, 4.0, 15.0, 0.0, 0.0], 3);
        let rows = rows(&x, &m, &z);
        let lik = GammaGammaCovariates::new(&rows);
        let columns = SpendColumns {
            frequency: &x,
            monetary: &m,
            weights: None,
        };
        let data = columns.compress();
        let base = GammaGamma::new(&data);
        let at = [5.0, 3.0, 14.0];
        let (ll_base, g_base) = base.loglik_and_gradient(&at, &Exec::Serial);
        let (ll, g) = lik.loglik_and_gradient(&[5.0, 3.0, 14.0, 0.0, 0.0], &Exec::Serial);
        assert!(rel(ll, ll_base) < 1e-13, "{ll} vs {ll_base}");
        for j in 0..3 {
            assert!(rel(g[j], g_base[j]) < 1e-11, "{j}: {g:?} vs {g_base:?}");
        }
        let h_base = base.hessian(&at, &Exec::Serial).unwrap();
        let h = lik
            .hessian(&[5.0, 3.0, 14.0, 0.0, 0.0], &Exec::Serial)
            .unwrap();
        for a in 0..3 {
            for b in 0..3 {
                assert!(
                    (h[[a, b]] - h_base[[a, b]]).abs() <= 1e-10 * h_base[[a, b]].abs().max(1.0),
                    "{a}{b}: {} vs {}",
                    h[[a, b]],
                    h_base[[a, b]]
                );
            }
        }
    }

    #[test]
    fn gradient_and_hessian_match_finite_differences() {
        let (x, m, z) = simulated(400, &[6.0, 4.0, 15.0, 0.4, -0.3], 5);
        let rows = rows(&x, &m, &z);
        let lik = GammaGammaCovariates::new(&rows);
        let point = vec![5.0, 3.5, 14.0, 0.3, -0.2];
        let at = |q: &[f64]| lik.loglik_and_gradient(q, &Exec::Serial);
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
        let (_, fused_gradient, hessian) =
            lik.loglik_gradient_hessian(&point, &Exec::Serial).unwrap();
        assert_eq!(fused_gradient, gradient);
        for j in 0..point.len() {
            let h = 1e-5 * point[j].abs().max(1e-2);
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
        let truth = [6.0, 4.0, 15.0, 0.5, -0.3];
        let (x, mut m, z) = simulated(2_000, &truth, 9);
        // Amounts in a large unit: the fit works in a power-of-two unit and maps back.
        for v in m.iter_mut() {
            *v *= 1000.0;
        }
        let rows = rows(&x, &m, &z);
        let names = ["flag".to_string(), "size".to_string()];
        let res = fit_spend_covariates(
            &rows,
            &names,
            &SpendNames::default(),
            &FitOptions::default(),
        )
        .unwrap();
        assert!(res.converged, "{}", res.termination);
        assert_eq!(res.names, ["p", "q", "gamma", "flag", "size"]);
        let se = res.standard_errors().unwrap();
        let want = [6.0, 4.0, 15_000.0, 0.5, -0.3];
        for k in 0..5 {
            let z = (res.params[k] - want[k]) / se[k];
            assert!(
                z.abs() < 4.5,
                "{k}: {} (se {}) vs {}",
                res.params[k],
                se[k],
                want[k]
            );
        }
    }
}
