//! sBG and BdW with time-varying covariates, per period: proportional hazards on the
//! complementary log-log scale, the standard way covariates enter the discrete Weibull of the
//! BdW (Fader, Hardie, Liu, Davin & Steenburgh 2018; Schweidel, Fader & Bradlow 2008 for
//! time-varying covariates in retention models; docs/design.md says what was checked).
//!
//! A customer with churn propensity `theta ~ Beta(alpha, beta)` survives period `j` with
//! probability `(1 - theta)^(c_j)`, where
//!
//! ```text
//! c_j = (j^c - (j - 1)^c) exp(g . x_j)
//! ```
//!
//! and `x_j` are the customer's covariates in period `j` (`c = 1`: sBG). So, given `theta`,
//! `S(t | theta) = (1 - theta)^C(t)` with the cumulative exposure `C(t) = sum_{j <= t} c_j`,
//! and across customers (the Beta integral `E[(1 - theta)^C] = B(alpha, beta + C) / B(alpha,
//! beta)` holds for any real `C >= 0`)
//!
//! ```text
//! S(t) = B(alpha, beta + C(t)) / B(alpha, beta),   P(churn in t) = S(t - 1) - S(t)
//! ```
//!
//! in closed form. With every coefficient at 0, `C(t) = t^c` and this is the base model
//! exactly. (With covariates that never change, `C(t) = exp(g . x) t^c`: not the static
//! covariate model of [`super::covariates::churn`], which scales `alpha`; docs/design.md says
//! why the two differ.)
//!
//! Covariates come as each customer's pieces ([`ChurnPanel`]): piece `k` starts at
//! `piece_starts[k]` (customer time, 0 at acquisition) and holds until the next starts. Period
//! `j` is the time `(j - 1, j]` and reads the piece in effect at its start `j - 1`; in general
//! `C(t) = int_0^t exp(g . x(u)) d(u^c)`, which for pieces starting at whole periods is the
//! sum above, and is evaluated piece by piece, `exp(g . x_k) ((min(end_k, t))^c - start_k^c)`.
//!
//! The gradient: the log-likelihood is a function of `(alpha, beta, C(t - 1), C(t))` (over
//! [`Dual`] numbers), and `C` is linear in the multipliers, with
//! `dC/dg = sum_k exp(g . x_k) (u1^c - u0^c) x_k` and
//! `dC/dc = sum_k exp(g . x_k) (u1^c ln u1 - u0^c ln u0)` over each piece's span `[u0, u1]`.

use ndarray::ArrayView2;

use super::bdw::{ln_survival_at, Bdw, ChurnData, PARAMS};
use super::covariates::{check_finite, RowMajor};
use crate::dual::Dual;
use crate::error::{ClvError, Result};
use crate::fit::{check_params, fit, Domain, FitOptions, FitResult, Likelihood, ParamSpec};
use crate::parallel::Exec;

/// Customers of a subscription model with covariates that change from period to period.
#[derive(Debug, Clone, Copy)]
pub struct ChurnPanel<'a> {
    /// Periods observed: the period a churned customer left in, or the periods completed by an
    /// active one (whole numbers).
    pub periods: &'a [f64],
    /// 1 for a customer who churned in its last period, 0 for one still active.
    pub churned: &'a [f64],
    /// Customer `i`'s pieces are `piece_offsets[i]..piece_offsets[i + 1]` (length `n + 1`).
    pub piece_offsets: &'a [usize],
    /// Start of each piece in its customer's time: 0 for the first, then increasing.
    pub piece_starts: &'a [f64],
    /// Covariates of each piece (`pieces x columns`, standard layout).
    pub covariates: ArrayView2<'a, f64>,
}

fn structure(message: String) -> ClvError {
    ClvError::invalid_parameter("dynamic covariates", message)
}

impl ChurnPanel<'_> {
    /// Number of customers.
    pub fn len(&self) -> usize {
        self.periods.len()
    }

    /// Whether there are no customers.
    pub fn is_empty(&self) -> bool {
        self.periods.is_empty()
    }

    fn pieces(&self, i: usize) -> std::ops::Range<usize> {
        self.piece_offsets[i]..self.piece_offsets[i + 1]
    }

    fn piece_end(&self, i: usize, k: usize) -> f64 {
        if k + 1 < self.piece_offsets[i + 1] {
            self.piece_starts[k + 1]
        } else {
            f64::INFINITY
        }
    }

    /// Check the records (the rules of the base models' per-customer records), the piece
    /// structure and that every covariate value is finite (naming the column and the piece).
    pub fn validate(&self, column_names: &[String]) -> Result<()> {
        ChurnData::from_customers(self.periods, self.churned, None)?;
        let n = self.len();
        let pieces = self.piece_starts.len();
        if self.piece_offsets.len() != n + 1 {
            return Err(structure(format!(
                "{n} customers need {} piece offsets, got {}",
                n + 1,
                self.piece_offsets.len()
            )));
        }
        if self.piece_offsets[0] != 0
            || self.piece_offsets[n] != pieces
            || self.piece_offsets.windows(2).any(|w| w[1] < w[0])
        {
            return Err(structure(format!(
                "piece offsets must run from 0 to {pieces}"
            )));
        }
        for i in 0..n {
            let range = self.pieces(i);
            if range.is_empty() {
                return Err(structure(format!("customer {i} has no covariate piece")));
            }
            let starts = &self.piece_starts[range];
            if starts[0] != 0.0
                || starts
                    .windows(2)
                    .any(|w| !(w[1] > w[0] && w[1].is_finite()))
            {
                return Err(structure(format!(
                    "customer {i}: piece starts must begin at 0 and increase"
                )));
            }
        }
        let p = column_names.len();
        if self.covariates.dim() != (pieces, p) {
            return Err(structure(format!(
                "{pieces} pieces x {p} columns need {pieces} x {p} values, got {} x {}",
                self.covariates.nrows(),
                self.covariates.ncols()
            )));
        }
        if !self.covariates.is_standard_layout() {
            return Err(structure(
                "covariate matrices must be in standard (row-major) layout".into(),
            ));
        }
        check_finite(self.covariates, column_names)
    }
}

fn dot(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

/// `u^c` as the base model computes `t^c` (`exp(c ln u)`, so that a single piece with a zero
/// coefficient gives the base model's exposure to the last bit), 0 at 0.
#[inline]
fn power(u: f64, c: f64) -> f64 {
    if u == 0.0 {
        0.0
    } else {
        (c * u.ln()).exp()
    }
}

/// `u^c ln u` (`d u^c / dc`), 0 at 0.
#[inline]
fn power_slope(u: f64, c: f64) -> f64 {
    if u == 0.0 {
        0.0
    } else {
        power(u, c) * u.ln()
    }
}

/// Largest whole period whose powers [`Powers`] tabulates.
const MAX_TABULATED: usize = 1 << 16;

/// `u^c` and `u^c ln u` at a given `c`, tabulated for the whole periods `0..=max` (the piece
/// starts and period ends of whole-period panels: every customer shares them, so a likelihood
/// pass computes each once instead of twice per piece and customer), computed directly
/// elsewhere. The table holds the same values [`power`] and [`power_slope`] give.
struct Powers {
    c: f64,
    values: Vec<f64>,
    slopes: Vec<f64>,
}

impl Powers {
    fn new(c: f64, max: f64) -> Self {
        let n = if max.is_finite() && max >= 0.0 {
            (max as usize).min(MAX_TABULATED) + 1
        } else {
            0
        };
        Powers {
            c,
            values: (0..n).map(|j| power(j as f64, c)).collect(),
            slopes: (0..n).map(|j| power_slope(j as f64, c)).collect(),
        }
    }

    #[inline]
    fn index(&self, u: f64) -> Option<usize> {
        (u.fract() == 0.0 && u >= 0.0 && u < self.values.len() as f64).then_some(u as usize)
    }

    #[inline]
    fn at(&self, u: f64) -> f64 {
        self.index(u)
            .map_or_else(|| power(u, self.c), |j| self.values[j])
    }

    #[inline]
    fn slope(&self, u: f64) -> f64 {
        self.index(u)
            .map_or_else(|| power_slope(u, self.c), |j| self.slopes[j])
    }
}

/// The cumulative exposure `C(t)` of one customer and, when `GRADIENT`, its derivatives in
/// `c` and in the coefficients.
struct Exposure {
    value: f64,
    d_c: f64,
    d_g: Vec<f64>,
}

impl Exposure {
    fn new(p: usize) -> Self {
        Exposure {
            value: 0.0,
            d_c: 0.0,
            d_g: vec![0.0; p],
        }
    }

    fn fill<const GRADIENT: bool>(
        &mut self,
        panel: &ChurnPanel<'_>,
        covariates: RowMajor<'_>,
        coefficients: &[f64],
        powers: &Powers,
        i: usize,
        t: f64,
    ) {
        self.value = 0.0;
        if GRADIENT {
            self.d_c = 0.0;
            self.d_g.iter_mut().for_each(|v| *v = 0.0);
        }
        for k in panel.pieces(i) {
            let from = panel.piece_starts[k];
            if from >= t {
                break;
            }
            let to = panel.piece_end(i, k).min(t);
            let row = covariates.row(k);
            let e = dot(row, coefficients).exp();
            let span = powers.at(to) - powers.at(from);
            self.value += e * span;
            if GRADIENT {
                self.d_c += e * (powers.slope(to) - powers.slope(from));
                for (d, v) in self.d_g.iter_mut().zip(row) {
                    *d += e * span * v;
                }
            }
        }
    }
}

/// `ln S` at exposure `z`, 0 for no exposure (as the base model at `t = 0`).
fn ln_survival_of<const N: usize>(alpha: Dual<N>, beta: Dual<N>, z: Dual<N>) -> Dual<N> {
    if z.v == 0.0 && z.d.iter().all(|d| *d == 0.0) {
        return Dual::constant(0.0);
    }
    ln_survival_at(alpha, beta, z)
}

/// `ln (S(before) - S(now))` from the two exposures, as [`super::bdw`] computes `ln P(T = t)`.
fn ln_churn_of<const N: usize>(
    alpha: Dual<N>,
    beta: Dual<N>,
    before: Dual<N>,
    now: Dual<N>,
) -> Dual<N> {
    let before = ln_survival_of(alpha, beta, before);
    let now = ln_survival_of(alpha, beta, now);
    before + (-(now - before).exp_m1()).ln()
}

/// The model's parameters at a point: `alpha`, `beta`, `c` (1 for sBG) and the coefficients.
struct Point<'p> {
    alpha: f64,
    beta: f64,
    c: f64,
    coefficients: &'p [f64],
}

impl<'p> Point<'p> {
    fn new(params: &'p [f64], free_c: bool) -> Self {
        let k = if free_c { 3 } else { 2 };
        Point {
            alpha: params[0],
            beta: params[1],
            c: if free_c { params[2] } else { 1.0 },
            coefficients: &params[k..],
        }
    }
}

/// Customer `i`'s log-likelihood and, when `GRADIENT`, its gradient in (alpha, beta, [c],
/// coefficients) into `gradient`.
#[allow(clippy::too_many_arguments)]
fn row<const GRADIENT: bool>(
    panel: &ChurnPanel<'_>,
    covariates: RowMajor<'_>,
    point: &Point<'_>,
    powers: &Powers,
    free_c: bool,
    i: usize,
    before: &mut Exposure,
    now: &mut Exposure,
    gradient: &mut [f64],
) -> f64 {
    let t = panel.periods[i];
    let churned = panel.churned[i] == 1.0;
    now.fill::<GRADIENT>(panel, covariates, point.coefficients, powers, i, t);
    // Duals in (alpha, beta, C(t - 1), C(t)).
    let a = Dual::<4>::variable(point.alpha, 0);
    let b = Dual::<4>::variable(point.beta, 1);
    let z_now = Dual::<4>::variable(now.value, 3);
    let ll = if churned {
        before.fill::<GRADIENT>(panel, covariates, point.coefficients, powers, i, t - 1.0);
        ln_churn_of(a, b, Dual::variable(before.value, 2), z_now)
    } else {
        ln_survival_of(a, b, z_now)
    };
    if GRADIENT {
        gradient[0] = ll.d[0];
        gradient[1] = ll.d[1];
        let (to_before, to_now) = (if churned { ll.d[2] } else { 0.0 }, ll.d[3]);
        let k = if free_c { 3 } else { 2 };
        if free_c {
            gradient[2] = to_now * now.d_c + if churned { to_before * before.d_c } else { 0.0 };
        }
        for (j, g) in gradient[k..].iter_mut().enumerate() {
            *g = to_now * now.d_g[j]
                + if churned {
                    to_before * before.d_g[j]
                } else {
                    0.0
                };
        }
    }
    ll.v
}

/// A linear predictor beyond exp's range is refused, naming the customer.
fn check_multipliers(panel: &ChurnPanel<'_>, coefficients: &[f64]) -> Result<()> {
    if coefficients.is_empty() {
        return Ok(());
    }
    if let Some(k) = panel.covariates.rows().into_iter().position(|z| {
        let e = dot(z.as_slice().expect("standard layout"), coefficients).exp();
        !(e.is_finite() && e > 0.0)
    }) {
        let customer = panel.piece_offsets.partition_point(|&o| o <= k) - 1;
        return Err(ClvError::invalid_data(
            "covariates",
            Some(customer),
            None,
            "a covariate piece of this customer makes exp(coefficients . covariates) overflow \
             or underflow: rescale or centre the covariates",
        ));
    }
    Ok(())
}

/// The likelihood for the fitting engine: parameters (alpha, beta, [c], one coefficient per
/// covariate column).
pub struct ChurnDynamicLikelihood<'r, 'a> {
    panel: &'r ChurnPanel<'a>,
    free_c: bool,
    specs: Vec<ParamSpec>,
}

impl<'r, 'a> ChurnDynamicLikelihood<'r, 'a> {
    /// `free_c`: BdW (estimate `c`) or sBG (`c = 1`).
    pub fn new(panel: &'r ChurnPanel<'a>, free_c: bool) -> Self {
        let mut specs = PARAMS[..if free_c { 3 } else { 2 }].to_vec();
        specs.extend((0..panel.covariates.ncols()).map(|_| ParamSpec {
            name: "coefficient",
            domain: Domain::Real,
        }));
        ChurnDynamicLikelihood {
            panel,
            free_c,
            specs,
        }
    }
}

impl Likelihood for ChurnDynamicLikelihood<'_, '_> {
    fn params(&self) -> &[ParamSpec] {
        &self.specs
    }

    fn starts(&self) -> Vec<Vec<f64>> {
        // Only used without a caller-given start; `fit_churn_dynamic` always gives one.
        let mut start = vec![1.0; self.specs.len() - self.panel.covariates.ncols()];
        start.extend(std::iter::repeat_n(0.0, self.panel.covariates.ncols()));
        vec![start]
    }

    fn total_weight(&self) -> f64 {
        self.panel.len() as f64
    }

    fn loglik_and_gradient(&self, params: &[f64], exec: &Exec) -> (f64, Vec<f64>) {
        let point = Point::new(params, self.free_c);
        let panel = self.panel;
        let covariates = RowMajor::new(&panel.covariates);
        let (p, k) = (point.coefficients.len(), params.len());
        let longest = panel.periods.iter().fold(0.0f64, |m, &t| m.max(t));
        let powers = Powers::new(point.c, longest);
        let acc = exec.chunked_sum(panel.len(), 1 + k, |range, acc| {
            let (mut before, mut now) = (Exposure::new(p), Exposure::new(p));
            let mut gradient = vec![0.0; k];
            for i in range {
                acc[0] += row::<true>(
                    panel,
                    covariates,
                    &point,
                    &powers,
                    self.free_c,
                    i,
                    &mut before,
                    &mut now,
                    &mut gradient,
                );
                for (a, g) in acc[1..].iter_mut().zip(&gradient) {
                    *a += g;
                }
            }
        });
        (acc[0], acc[1..].to_vec())
    }
}

/// Fit the model: the base model (sBG or BdW) without covariates first, its estimate with
/// every coefficient at 0 the start (there the two likelihoods are equal), then the covariate
/// model from there, by the engine (standard errors from its differenced analytic gradient,
/// the L2 `coefficient_penalizer` on the coefficients). The caller has validated the panel
/// ([`ChurnPanel::validate`]); the result names the coefficients `names`.
pub fn fit_churn_dynamic(
    panel: &ChurnPanel<'_>,
    free_c: bool,
    names: &[String],
    opts: &FitOptions<'_>,
) -> Result<FitResult> {
    let lik = ChurnDynamicLikelihood::new(panel, free_c);
    if names.len() != panel.covariates.ncols() {
        return Err(ClvError::invalid_parameter(
            "covariates",
            format!(
                "{} columns but {} coefficient names",
                panel.covariates.ncols(),
                names.len()
            ),
        ));
    }
    let mut full = opts.clone();
    if opts.start.is_none() {
        let data = ChurnData::from_customers(panel.periods, panel.churned, None)?;
        let base = if free_c {
            Bdw::new(&data)
        } else {
            Bdw::shifted_beta_geometric(&data)
        };
        let base = fit(
            &base,
            &FitOptions {
                coefficient_penalizer: 0.0,
                ..opts.clone()
            },
        )?;
        let mut start = base.params;
        start.extend(std::iter::repeat_n(0.0, names.len()));
        full.start = Some(start);
    }
    let mut result = fit(&lik, &full)?;
    result.names.truncate(if free_c { 3 } else { 2 });
    result.names.extend(names.iter().cloned());
    Ok(result)
}

/// A per-customer quantity of the fitted model; `t` (whole periods) counts the customer's
/// periods after the last one observed.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Quantity {
    /// Log-likelihood of the record.
    LogLikelihood,
    /// P(still active after `t` more periods | the record): `S(n + t) / S(n)` for an active
    /// customer observed for `n` periods, 0 for a churned one.
    Survival,
    /// P(renewing at the end of future period `t >= 1` | active at its start):
    /// `S(n + t) / S(n + t - 1)`; 0 for a churned customer.
    RetentionRate,
    /// Expected periods survived among the next `t`: `sum_{k=1}^t S(n + k) / S(n)` (the
    /// expected remaining lifetime within `t` periods), 0 for a churned customer.
    ExpectedRenewals,
}

/// A per-customer quantity at `params` (alpha, beta, [c], coefficients); `t` one horizon per
/// customer; `covered` the last period of each customer (customer time) that its covariates
/// describe: a horizon past it is refused (`InvalidDataError` on `t`, naming the customer).
#[allow(clippy::too_many_arguments)]
pub fn predict(
    panel: &ChurnPanel<'_>,
    free_c: bool,
    params: &[f64],
    quantity: Quantity,
    t: &[f64],
    covered: &[f64],
    exec: &Exec,
    out: &mut [f64],
) -> Result<()> {
    let lik = ChurnDynamicLikelihood::new(panel, free_c);
    if params.len() != lik.specs.len() {
        return Err(ClvError::invalid_parameter(
            "params",
            format!("expected {} values, got {}", lik.specs.len(), params.len()),
        ));
    }
    check_params(&lik.specs, params)?;
    let n = panel.len();
    if out.len() != n {
        return Err(ClvError::invalid_parameter(
            "out",
            format!("expected {n} slots, got {}", out.len()),
        ));
    }
    if quantity != Quantity::LogLikelihood {
        if t.len() != n || covered.len() != n {
            return Err(ClvError::invalid_parameter(
                "t",
                format!(
                    "expected {n} horizons and {n} coverage ends, got {} and {}",
                    t.len(),
                    covered.len()
                ),
            ));
        }
        let least = if quantity == Quantity::RetentionRate {
            1.0
        } else {
            0.0
        };
        if let Some(at) = t
            .iter()
            .position(|v| !(v.is_finite() && *v >= least && v.fract() == 0.0))
        {
            return Err(ClvError::invalid_data(
                "t",
                Some(at),
                Some(t[at]),
                format!("must be a whole number of periods >= {least}"),
            ));
        }
        if let Some(at) =
            (0..n).find(|&i| panel.churned[i] == 0.0 && panel.periods[i] + t[i] > covered[i])
        {
            return Err(ClvError::invalid_data(
                "t",
                Some(at),
                Some(t[at]),
                format!(
                    "reaches this customer's period {} but the covariate panel describes its \
                     periods only up to {} (the panel's last date): add panel rows for the \
                     later periods, or ask for a shorter horizon",
                    panel.periods[at] + t[at],
                    covered[at]
                ),
            ));
        }
    }
    let point = Point::new(params, free_c);
    check_multipliers(panel, point.coefficients)?;
    let covariates = RowMajor::new(&panel.covariates);
    let longest = (0..n).fold(0.0f64, |m, i| {
        let ahead = if quantity == Quantity::LogLikelihood {
            0.0
        } else {
            t[i]
        };
        m.max(panel.periods[i] + ahead)
    });
    let powers = Powers::new(point.c, longest);
    let (a, b) = (Dual::<0>::constant(point.alpha), Dual::constant(point.beta));
    let ln_s = |exposure: f64| ln_survival_of(a, b, Dual::constant(exposure)).v;
    exec.fill_blocks(out, |first, block| {
        let p = point.coefficients.len();
        let (mut before, mut now) = (Exposure::new(p), Exposure::new(p));
        for (i, slot) in (first..).zip(block.iter_mut()) {
            if quantity == Quantity::LogLikelihood {
                *slot = row::<false>(
                    panel,
                    covariates,
                    &point,
                    &powers,
                    free_c,
                    i,
                    &mut before,
                    &mut now,
                    &mut [],
                );
                continue;
            }
            if panel.churned[i] == 1.0 {
                *slot = 0.0;
                continue;
            }
            let (periods, ahead) = (panel.periods[i], t[i]);
            let at = |exposure: &mut Exposure, when: f64| {
                exposure.fill::<false>(panel, covariates, point.coefficients, &powers, i, when);
                ln_s(exposure.value)
            };
            *slot = match quantity {
                Quantity::Survival => {
                    (at(&mut now, periods + ahead) - at(&mut before, periods)).exp()
                }
                Quantity::RetentionRate => {
                    (at(&mut now, periods + ahead) - at(&mut before, periods + ahead - 1.0)).exp()
                }
                Quantity::ExpectedRenewals => {
                    // Period by period along the pieces: C(n + k) for k = 1..t in one pass.
                    let base = at(&mut before, periods);
                    let mut sum = 0.0;
                    let pieces = panel.pieces(i);
                    let mut k = pieces.start;
                    let mut start_exposure = 0.0;
                    for step in 1..=(ahead as u64) {
                        let when = periods + step as f64;
                        while k + 1 < pieces.end && panel.piece_starts[k + 1] < when {
                            let e = dot(covariates.row(k), point.coefficients).exp();
                            start_exposure += e
                                * (powers.at(panel.piece_starts[k + 1])
                                    - powers.at(panel.piece_starts[k]));
                            k += 1;
                        }
                        let e = dot(covariates.row(k), point.coefficients).exp();
                        let exposure = start_exposure
                            + e * (powers.at(when) - powers.at(panel.piece_starts[k]));
                        let term = (ln_s(exposure) - base).exp();
                        sum += term;
                        if term == 0.0 {
                            break;
                        }
                    }
                    sum
                }
                Quantity::LogLikelihood => unreachable!(),
            };
        }
    });
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::models::bdw::BdwParams;
    use crate::random::Rng;
    use ndarray::Array2;

    /// Panel data owned by a test.
    #[derive(Debug, Clone, Default)]
    pub(crate) struct Owned {
        pub periods: Vec<f64>,
        pub churned: Vec<f64>,
        pub piece_offsets: Vec<usize>,
        pub piece_starts: Vec<f64>,
        pub covariates: Array2<f64>,
    }

    impl Owned {
        pub fn panel(&self) -> ChurnPanel<'_> {
            ChurnPanel {
                periods: &self.periods,
                churned: &self.churned,
                piece_offsets: &self.piece_offsets,
                piece_starts: &self.piece_starts,
                covariates: self.covariates.view(),
            }
        }
    }

    /// Simulate customers from the model: a promotion flag per period (30% of periods) and a
    /// standard normal customer trait, observed for up to `horizon` periods, with covariate
    /// pieces for `ahead` more. `truth` is (alpha, beta, c, g_promo, g_trait).
    pub(crate) fn simulate(n: usize, truth: &[f64], seed: u64, horizon: usize) -> Owned {
        let mut rng = Rng::new(seed);
        let (alpha, beta, c, g1, g2) = (truth[0], truth[1], truth[2], truth[3], truth[4]);
        let mut o = Owned {
            piece_offsets: vec![0],
            ..Owned::default()
        };
        let mut values = vec![];
        let ahead = 5;
        for _ in 0..n {
            let observed = 1 + (rng.uniform() * horizon as f64) as usize;
            let theta = rng.beta(alpha, beta);
            let z = rng.normal();
            let mut periods = observed;
            let mut churned = 0.0;
            for j in 1..=observed + ahead {
                let promo = f64::from(u8::from(rng.uniform() < 0.3));
                o.piece_starts.push((j - 1) as f64);
                values.push(promo);
                values.push(z);
                if churned == 0.0 && j <= observed {
                    let exposure = ((j as f64).powf(c) - ((j - 1) as f64).powf(c))
                        * (g1 * promo + g2 * z).exp();
                    if rng.uniform() >= (1.0 - theta).powf(exposure) {
                        churned = 1.0;
                        periods = j;
                    }
                }
            }
            o.periods.push(periods as f64);
            o.churned.push(churned);
            o.piece_offsets.push(o.piece_starts.len());
        }
        o.covariates = Array2::from_shape_vec((o.piece_starts.len(), 2), values).unwrap();
        o
    }

    fn names(p: usize) -> Vec<String> {
        (0..p).map(|j| format!("c{j}")).collect()
    }

    #[test]
    fn zero_coefficients_give_the_base_models() {
        let o = simulate(300, &[0.8, 2.5, 0.7, 0.5, -0.4], 3, 12);
        let panel = o.panel();
        panel.validate(&names(2)).unwrap();
        let exec = Exec::Serial;
        let n = panel.len();
        let covered: Vec<f64> = (0..n).map(|i| panel.periods[i] + 5.0).collect();
        for (free_c, base) in [(false, [0.8, 2.5, 1.0]), (true, [0.8, 2.5, 0.7])] {
            let mut point = base[..if free_c { 3 } else { 2 }].to_vec();
            point.extend([0.0, 0.0]);
            let data = ChurnData::from_customers(&o.periods, &o.churned, None).unwrap();
            let plain = if free_c {
                Bdw::new(&data)
            } else {
                Bdw::shifted_beta_geometric(&data)
            };
            let (v0, g0) = plain.loglik_and_gradient(&point[..point.len() - 2], &exec);
            let (v1, g1) =
                ChurnDynamicLikelihood::new(&panel, free_c).loglik_and_gradient(&point, &exec);
            assert!((v0 - v1).abs() < 1e-12 * v0.abs(), "{v0} vs {v1}");
            for (a, b) in g0.iter().zip(&g1) {
                assert!((a - b).abs() < 1e-12 * (1.0 + a.abs()), "{g0:?} vs {g1:?}");
            }
            let params = BdwParams::new(base[0], base[1], base[2]);
            let mut out = vec![0.0; n];
            for (quantity, ahead) in [
                (Quantity::LogLikelihood, 0.0),
                (Quantity::Survival, 4.0),
                (Quantity::RetentionRate, 3.0),
                (Quantity::ExpectedRenewals, 5.0),
            ] {
                predict(
                    &panel,
                    free_c,
                    &point,
                    quantity,
                    &vec![ahead; n],
                    &covered,
                    &exec,
                    &mut out,
                )
                .unwrap();
                for i in 0..n {
                    let (t, gone) = (o.periods[i], o.churned[i] == 1.0);
                    let want = match quantity {
                        Quantity::LogLikelihood if gone => params.churn_probability(t).ln(),
                        Quantity::LogLikelihood => params.survival(t).ln(),
                        _ if gone => 0.0,
                        Quantity::Survival => params.probability_active(t, ahead),
                        Quantity::RetentionRate => params.retention_rate(t + ahead),
                        Quantity::ExpectedRenewals => params.expected_renewals(t, ahead),
                    };
                    assert!(
                        (out[i] - want).abs() < 1e-12 * (1.0 + want.abs()),
                        "{quantity:?} {i}: {} vs {want}",
                        out[i]
                    );
                }
            }
        }
    }

    #[test]
    fn tabulated_powers_are_the_direct_ones() {
        for c in [0.3, 1.0, 1.7] {
            let powers = Powers::new(c, 40.0);
            for u in [0.0, 1.0, 2.0, 17.0, 40.0, 41.0, 2.5, 1e6] {
                assert_eq!(powers.at(u).to_bits(), power(u, c).to_bits(), "{c} {u}");
                assert_eq!(powers.slope(u).to_bits(), power_slope(u, c).to_bits());
            }
        }
        assert!(Powers::new(1.0, f64::INFINITY).values.is_empty());
        assert_eq!(Powers::new(1.0, 1e12).values.len(), MAX_TABULATED + 1);
    }

    #[test]
    fn gradient_matches_finite_differences() {
        let o = simulate(200, &[0.8, 2.5, 0.7, 0.5, -0.4], 5, 12);
        let panel = o.panel();
        let exec = Exec::Serial;
        for (free_c, point) in [
            (true, vec![0.9, 2.0, 0.8, 0.4, -0.3]),
            (false, vec![0.6, 3.0, -0.7, 0.2]),
        ] {
            let lik = ChurnDynamicLikelihood::new(&panel, free_c);
            let (_, gradient) = lik.loglik_and_gradient(&point, &exec);
            for j in 0..point.len() {
                let h = 1e-6 * point[j].abs().max(1.0);
                let (mut up, mut down) = (point.clone(), point.clone());
                up[j] += h;
                down[j] -= h;
                let fd = (lik.loglik_and_gradient(&up, &exec).0
                    - lik.loglik_and_gradient(&down, &exec).0)
                    / (2.0 * h);
                assert!(
                    (fd - gradient[j]).abs() < 1e-6 * (1.0 + fd.abs()),
                    "{free_c} parameter {j}: {fd} vs {}",
                    gradient[j]
                );
            }
        }
    }

    #[test]
    fn horizons_past_the_panel_are_refused() {
        let o = simulate(20, &[0.8, 2.5, 1.0, 0.5, -0.4], 7, 6);
        let panel = o.panel();
        let n = panel.len();
        let active = (0..n).find(|&i| o.churned[i] == 0.0).unwrap();
        let covered: Vec<f64> = (0..n).map(|i| panel.periods[i] + 2.0).collect();
        let mut out = vec![0.0; n];
        let point = [0.8, 2.5, 0.5, -0.4];
        let ok = predict(
            &panel,
            false,
            &point,
            Quantity::Survival,
            &vec![2.0; n],
            &covered,
            &Exec::Serial,
            &mut out,
        );
        assert!(ok.is_ok());
        let err = predict(
            &panel,
            false,
            &point,
            Quantity::Survival,
            &vec![3.0; n],
            &covered,
            &Exec::Serial,
            &mut out,
        )
        .unwrap_err();
        assert!(
            err.to_string().contains(&format!("`t`, row {active}")),
            "{err}"
        );
        // Expected renewals period by period equal the sum of survivals.
        let mut renewals = vec![0.0; n];
        predict(
            &panel,
            false,
            &point,
            Quantity::ExpectedRenewals,
            &vec![2.0; n],
            &covered,
            &Exec::Serial,
            &mut renewals,
        )
        .unwrap();
        let mut sum = vec![0.0; n];
        for k in 1..=2 {
            predict(
                &panel,
                false,
                &point,
                Quantity::Survival,
                &vec![k as f64; n],
                &covered,
                &Exec::Serial,
                &mut out,
            )
            .unwrap();
            sum.iter_mut().zip(&out).for_each(|(s, v)| *s += v);
        }
        for i in 0..n {
            assert!((renewals[i] - sum[i]).abs() < 1e-13, "{i}");
        }
    }

    #[test]
    fn fits_recover_simulated_coefficients() {
        let truth = [0.8, 2.5, 0.7, 0.5, -0.4];
        let o = simulate(3000, &truth, 11, 12);
        let panel = o.panel();
        let result = fit_churn_dynamic(&panel, true, &names(2), &FitOptions::default()).unwrap();
        assert!(result.converged, "{}", result.termination);
        let cov = result.covariance.as_ref().unwrap();
        for j in 0..truth.len() {
            let se = cov[[j, j]].sqrt();
            assert!(
                (result.params[j] - truth[j]).abs() < 4.0 * se,
                "parameter {j}: {} (se {se}) vs {}",
                result.params[j],
                truth[j]
            );
        }
    }
}
