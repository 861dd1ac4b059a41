//! BG/NBD with time-varying covariates in the purchase process (the BG/NBD counterpart of
//! [`super::pnbd_dynamic`], on the same [`DynamicRows`]).
//!
//! While alive, customer `i` buys at rate `lambda_i exp(g1 . x(t))`, with `x(t)` a step
//! function of time (the customer's covariate pieces), and after each repeat purchase drops
//! out with probability `p_i`; `lambda ~ Gamma(r, alpha)` and `p ~ Beta(a_i, b_i)` with
//! `a_i = a exp(g2 . z_i)`, `b_i = b exp(g2 . z_i)` as in the time-invariant covariate
//! BG/NBD ([`super::covariates`]). The dropout covariates `z_i` must be constant over each
//! customer's pieces: `p_i` is one draw per customer, so a beta distribution whose parameters
//! change from purchase to purchase does not define a single `p_i` (docs/design.md gives the
//! reasoning and the alternatives).
//!
//! Dropout happens only at purchases, so the model is the BG/NBD run on the customer's
//! operational clock `A(t) = int_0^t exp(g1 . x(u)) du` (piecewise linear): purchases are a
//! Poisson process of rate `lambda` in `A`. With `x` repeat purchases at `t_1..t_x <= T`,
//! integrating `lambda` and `p` out gives
//!
//! ```text
//! L = exp(g1 . sum_j x(t_j)) * L_BG/NBD(r, alpha, a_i, b_i; x, A(t_x), A(T))
//! ```
//!
//! (the first factor is the Jacobian of the clock at the purchase times). So the likelihood,
//! P(alive) and the expected purchases in `(T, T + t]` (the BG/NBD's at horizon
//! `A(T + t) - A(T)`) are the BG/NBD's own formulas, in closed form; the gradient is derived
//! here (module documentation of [`row`]). With constant covariates `A(t) = exp(g1 . x) t`
//! and the model is the time-invariant covariate BG/NBD; with every coefficient at 0 it is the
//! BG/NBD.

use ndarray::ArrayView2;

use super::bgnbd::{self, BgNbdParams};
use super::covariates::{Links, RowMajor};
use super::pnbd_dynamic::DynamicRows;
use super::RfmModel;
use crate::data::{RfmColumns, RfmNames};
use crate::error::{ClvError, Result};
use crate::fit::{fit, Domain, FitOptions, FitResult, Likelihood, ParamSpec};
use crate::parallel::Exec;
use crate::special::{
    digamma_diff, ln_gamma_diff, ln_negative_binomial_pmf, logistic, SERIES_TOLERANCE,
};

/// The shared parameters and the coefficient of each covariate column.
struct Point {
    r: f64,
    alpha: f64,
    a: f64,
    b: f64,
    purchase: Vec<f64>,
    dropout: Vec<f64>,
}

impl Point {
    fn new(params: &[f64], links: &Links) -> Point {
        let coefficients = &params[4..];
        Point {
            r: params[0],
            alpha: params[1],
            a: params[2],
            b: params[3],
            purchase: links.purchase.iter().map(|&c| coefficients[c]).collect(),
            dropout: links.dropout.iter().map(|&c| coefficients[c]).collect(),
        }
    }
}

fn dot(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

/// Customer `i`'s pieces.
fn pieces(rows: &DynamicRows<'_>, i: usize) -> std::ops::Range<usize> {
    rows.piece_offsets[i]..rows.piece_offsets[i + 1]
}

/// Where piece `k` of customer `i` ends: where the next starts, or never for the last.
fn piece_end(rows: &DynamicRows<'_>, i: usize, k: usize) -> f64 {
    if k + 1 < rows.piece_offsets[i + 1] {
        rows.piece_starts[k + 1]
    } else {
        f64::INFINITY
    }
}

/// One customer's clock: `A(t_x)`, `A(T)`, the log purchase multipliers summed over the
/// repeat purchases, and (when asked) the derivatives of the three in the purchase
/// coefficients.
struct Clock {
    a_x: f64,
    a_t: f64,
    at_purchases: f64,
    d_a_x: Vec<f64>,
    d_a_t: Vec<f64>,
    d_at_purchases: Vec<f64>,
}

impl Clock {
    fn new(p: usize) -> Clock {
        Clock {
            a_x: 0.0,
            a_t: 0.0,
            at_purchases: 0.0,
            d_a_x: vec![0.0; p],
            d_a_t: vec![0.0; p],
            d_at_purchases: vec![0.0; p],
        }
    }

    fn fill<const GRADIENT: bool>(
        &mut self,
        rows: &DynamicRows<'_>,
        purchase: RowMajor<'_>,
        coefficients: &[f64],
        i: usize,
    ) {
        let (t_x, age) = (rows.recency[i], rows.age[i]);
        self.a_x = 0.0;
        self.a_t = 0.0;
        if GRADIENT {
            self.d_a_x.iter_mut().for_each(|v| *v = 0.0);
            self.d_a_t.iter_mut().for_each(|v| *v = 0.0);
            self.d_at_purchases.iter_mut().for_each(|v| *v = 0.0);
        }
        for k in pieces(rows, i) {
            let start = rows.piece_starts[k];
            if start >= age {
                break;
            }
            let end = piece_end(rows, i, k);
            let row = purchase.row(k);
            let e = dot(row, coefficients).exp();
            let (to_t, to_x) = (end.min(age) - start, (end.min(t_x) - start).max(0.0));
            self.a_t += e * to_t;
            self.a_x += e * to_x;
            if GRADIENT {
                for ((dt, dx), v) in self.d_a_t.iter_mut().zip(&mut self.d_a_x).zip(row) {
                    *dt += e * to_t * v;
                    *dx += e * to_x * v;
                }
            }
        }
        let bought = &rows.purchase_pieces[rows.purchase_offsets[i]..rows.purchase_offsets[i + 1]];
        self.at_purchases = 0.0;
        for &k in bought {
            let row = purchase.row(k);
            self.at_purchases += dot(row, coefficients);
            if GRADIENT {
                for (d, v) in self.d_at_purchases.iter_mut().zip(row) {
                    *d += v;
                }
            }
        }
    }
}

/// Customer `i`'s BG/NBD parameters (`a_i`, `b_i` shifted by its dropout covariates, read
/// from its first piece: they are constant, [`check_static_dropout`]) and the multiplier
/// `exp(g2 . z_i)`.
fn customer_params(
    rows: &DynamicRows<'_>,
    dropout: RowMajor<'_>,
    point: &Point,
    i: usize,
) -> (BgNbdParams, f64) {
    let shift = dot(dropout.row(rows.piece_offsets[i]), &point.dropout).exp();
    (
        BgNbdParams::new(point.r, point.alpha, point.a * shift, point.b * shift),
        shift,
    )
}

/// Customer `i`'s log-likelihood and, when `GRADIENT`, its gradient into `gradient` in
/// (r, alpha, a, b, purchase columns, dropout columns).
///
/// With `w` the posterior probability that the customer dropped out at the last purchase
/// (0 without repeat purchases) and `A_T = A(T)`, `A_x = A(t_x)`, `n = r + x`:
///
/// ```text
/// d/dr      = psi(n) - psi(r) - (1 - w) ln(1 + A_T / alpha) - w ln(1 + A_x / alpha)
/// d/dalpha  = r / alpha - (1 - w) n / (alpha + A_T) - w n / (alpha + A_x)
/// d/dA_T    = -(1 - w) n / (alpha + A_T),   d/dA_x = -w n / (alpha + A_x)
/// d/da_i    = -(psi(a_i + b_i + x) - psi(a_i + b_i)) + w / a_i
/// d/db_i    = psi(b_i + x) - psi(b_i) - (psi(a_i + b_i + x) - psi(a_i + b_i)) - w / (b_i + x - 1)
/// d/dg1_j   = sum over purchases of x_j(t_k) + d/dA_T dA_T/dg1_j + d/dA_x dA_x/dg1_j
/// d/dg2_j   = (a_i d/da_i + b_i d/db_i) z_j
/// ```
///
/// (`a = a_i / exp(g2 . z)` and `b` likewise, so `d/da = d/da_i a_i / a`.)
fn row<const GRADIENT: bool>(
    rows: &DynamicRows<'_>,
    matrices: [RowMajor<'_>; 2],
    point: &Point,
    i: usize,
    clock: &mut Clock,
    gradient: &mut [f64],
) -> (f64, f64) {
    let [purchase, dropout] = matrices;
    clock.fill::<GRADIENT>(rows, purchase, &point.purchase, i);
    let (params, _) = customer_params(rows, dropout, point, i);
    let x = rows.frequency[i];
    let (a_x, a_t) = (clock.a_x.min(clock.a_t), clock.a_t);
    let log_likelihood = bgnbd::log_likelihood(&params, x, a_x, a_t) + clock.at_purchases;
    let alive = bgnbd::probability_alive(&params, x, a_x, a_t);
    if GRADIENT {
        let BgNbdParams { r, alpha, a, b, .. } = params;
        let n = r + x;
        // P(dropped out at the last purchase), from the log odds (exact in both tails).
        let w = if x > 0.0 {
            logistic(a.ln() - (b + x - 1.0).ln() + n * ((a_t - a_x) / (alpha + a_x)).ln_1p())
        } else {
            0.0
        };
        let (to_t, to_x) = (-(1.0 - w) * n / (alpha + a_t), -w * n / (alpha + a_x));
        gradient[0] =
            digamma_diff(r, x) - (1.0 - w) * (a_t / alpha).ln_1p() - w * (a_x / alpha).ln_1p();
        gradient[1] = r / alpha + to_t + to_x;
        let shared = digamma_diff(a + b, x);
        let d_a = -shared + w / a;
        let d_b = digamma_diff(b, x) - shared - if x > 0.0 { w / (b + x - 1.0) } else { 0.0 };
        gradient[2] = d_a * a / point.a;
        gradient[3] = d_b * b / point.b;
        let p = point.purchase.len();
        for j in 0..p {
            gradient[4 + j] =
                clock.d_at_purchases[j] + to_t * clock.d_a_t[j] + to_x * clock.d_a_x[j];
        }
        let z = dropout.row(rows.piece_offsets[i]);
        for (g, v) in gradient[4 + p..].iter_mut().zip(z) {
            *g = (a * d_a + b * d_b) * v;
        }
    }
    (log_likelihood, alive)
}

/// The dropout covariates must not change over a customer's pieces (see the module
/// documentation): the first piece that differs from its customer's first is refused, naming
/// the column and the piece.
pub fn check_static_dropout(rows: &DynamicRows<'_>, names: &[String]) -> Result<()> {
    let dropout = rows.dropout;
    for i in 0..rows.len() {
        let range = pieces(rows, i);
        let first = dropout.row(range.start);
        for k in range.skip(1) {
            if let Some(j) = (0..dropout.ncols()).find(|&j| dropout[[k, j]] != first[j]) {
                return Err(ClvError::invalid_data(
                    names.get(j).cloned().unwrap_or_default(),
                    Some(k),
                    Some(dropout[[k, j]]),
                    "changes over the customer's time; the BG/NBD with time-varying covariates \
                     takes dropout covariates that are constant per customer (use it as a \
                     purchase covariate, or ParetoNBDDynamicModel for time-varying dropout)",
                ));
            }
        }
    }
    Ok(())
}

/// A linear predictor beyond exp's range is refused, naming the customer.
fn check_multipliers(rows: &DynamicRows<'_>, point: &Point) -> Result<()> {
    for (values, coefficients) in [
        (rows.purchase, &point.purchase),
        (rows.dropout, &point.dropout),
    ] {
        if coefficients.is_empty() {
            continue;
        }
        if let Some(k) = values.rows().into_iter().position(|z| {
            let e = dot(z.as_slice().expect("standard layout"), coefficients).exp();
            !(e.is_finite() && e > 0.0)
        }) {
            let customer = rows.piece_offsets.partition_point(|&o| o <= k) - 1;
            return Err(ClvError::invalid_data(
                "covariates",
                Some(customer),
                None,
                "a covariate piece of this customer makes exp(coefficients . covariates) \
                 overflow or underflow: rescale or centre the covariates",
            ));
        }
    }
    Ok(())
}

/// The likelihood for the fitting engine: parameters (r, alpha, a, b, coefficients in the
/// order of [`Links::names`]).
pub struct BgNbdDynamicLikelihood<'r, 'a> {
    rows: &'r DynamicRows<'a>,
    links: &'r Links,
    specs: Vec<ParamSpec>,
}

impl<'r, 'a> BgNbdDynamicLikelihood<'r, 'a> {
    pub fn new(rows: &'r DynamicRows<'a>, links: &'r Links) -> Self {
        let mut specs = BgNbdParams::specs().to_vec();
        specs.extend(links.names.iter().map(|_| ParamSpec {
            name: "coefficient",
            domain: Domain::Real,
        }));
        BgNbdDynamicLikelihood { rows, links, specs }
    }
}

fn matrices<'m>(
    purchase: &'m ArrayView2<'_, f64>,
    dropout: &'m ArrayView2<'_, f64>,
) -> [RowMajor<'m>; 2] {
    [RowMajor::new(purchase), RowMajor::new(dropout)]
}

impl Likelihood for BgNbdDynamicLikelihood<'_, '_> {
    fn params(&self) -> &[ParamSpec] {
        &self.specs
    }

    fn starts(&self) -> Vec<Vec<f64>> {
        // Only used without a caller-given start; `fit_dynamic` always gives one.
        let mut start = vec![1.0; 4];
        start.extend(std::iter::repeat_n(0.0, self.links.len()));
        vec![start]
    }

    fn total_weight(&self) -> f64 {
        self.rows.len() as f64
    }

    fn loglik_and_gradient(&self, params: &[f64], exec: &Exec) -> (f64, Vec<f64>) {
        let point = Point::new(params, self.links);
        let (p, q) = (point.purchase.len(), point.dropout.len());
        let rows = self.rows;
        let matrices = matrices(&rows.purchase, &rows.dropout);
        let width = 1 + 4 + p + q;
        let acc = exec.chunked_sum(rows.len(), width, |range, acc| {
            let mut clock = Clock::new(p);
            let mut gradient = vec![0.0; 4 + p + q];
            for i in range {
                let (value, _) = row::<true>(rows, matrices, &point, i, &mut clock, &mut gradient);
                acc[0] += value;
                for (a, g) in acc[1..].iter_mut().zip(&gradient) {
                    *a += g;
                }
            }
        });
        // Columns to coefficients (tied columns share one).
        let mut gradient = acc[1..5].to_vec();
        gradient.resize(4 + self.links.len(), 0.0);
        for (j, &c) in self.links.purchase.iter().enumerate() {
            gradient[4 + c] += acc[5 + j];
        }
        for (j, &c) in self.links.dropout.iter().enumerate() {
            gradient[4 + c] += acc[5 + p + j];
        }
        (acc[0], gradient)
    }
}

/// Fit the model: the BG/NBD without covariates first (its estimate, with every coefficient
/// at 0, is the start: there the two likelihoods are equal), then the covariate model from
/// there. The caller has validated the rows ([`DynamicRows::validate`] and
/// [`check_static_dropout`]).
pub fn fit_dynamic(
    rows: &DynamicRows<'_>,
    links: &Links,
    names: &RfmNames,
    opts: &FitOptions<'_>,
) -> Result<FitResult> {
    super::check_fittable(rows.frequency, names)?;
    let mut full = opts.clone();
    if opts.start.is_none() {
        let columns = RfmColumns {
            frequency: rows.frequency,
            recency: rows.recency,
            age: rows.age,
            weights: None,
        };
        let base = BgNbdParams::fit(
            &columns.compress_on(&opts.exec),
            &FitOptions {
                first_start_only: true,
                ..opts.clone()
            },
        )?;
        let mut start = base.params;
        start.extend(std::iter::repeat_n(0.0, links.len()));
        full.start = Some(start);
    }
    let mut result = fit(&BgNbdDynamicLikelihood::new(rows, links), &full)?;
    result.names.truncate(4);
    result.names.extend(links.names.iter().cloned());
    Ok(result)
}

/// A per-customer quantity of the fitted model.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Quantity {
    /// Log-likelihood of the history.
    LogLikelihood,
    /// P(alive at T + t): `t` is the horizon (0 for now).
    ProbabilityAlive,
    /// Expected purchases in (T, T + t].
    ExpectedPurchases,
}

/// P(still alive after `ahead` more units of operational time | alive at T): `E[(1 - p)^N]`,
/// `N` the purchases in that time (negative binomial: `lambda ~ Gamma(k, rate)` given the
/// history), `p ~ Beta(a_post, b_post)`: the series `sum_j NB(j; k, w) (b_post)_j /
/// (a_post + b_post)_j` with `w = ahead / (rate + ahead)`, a sum of positive terms summed from
/// the negative binomial's mode both ways (the terms fall away from their peak, which lies at
/// or below that mode) until the rest is below [`SERIES_TOLERANCE`] of the total.
///
/// The terms number about the negative binomial's mode plus a few dozen of its standard
/// deviations; beyond [`MAX_SERIES_TERMS`] the integral over `p` is taken instead
/// ([`survival_by_quadrature`]).
fn survival_ahead(k: f64, rate: f64, ahead: f64, a_post: f64, b_post: f64) -> f64 {
    if !(ahead > 0.0) {
        return 1.0;
    }
    let z = ahead / rate;
    if k * z + 40.0 * k.sqrt() * (1.0 + z) > MAX_SERIES_TERMS {
        return survival_by_quadrature(k, z, a_post, b_post);
    }
    let c = a_post + b_post;
    let ln_w = (ahead / (rate + ahead)).ln();
    let ln_1mw = -(ahead / rate).ln_1p();
    let w = ln_w.exp();
    // The negative binomial's mode: from there the terms only fall going up.
    let start = ((k - 1.0) * ahead / rate).max(0.0).floor();
    let ln_first = ln_negative_binomial_pmf(k, start, ln_w, ln_1mw) + ln_gamma_diff(b_post, start)
        - ln_gamma_diff(c, start);
    // Terms relative to the first.
    let mut sum = 1.0;
    let (mut term, mut j) = (1.0f64, start);
    loop {
        let ratio = (k + j) * (b_post + j) * w / ((j + 1.0) * (c + j));
        term *= ratio;
        j += 1.0;
        sum += term;
        if ratio < 1.0 && term / (1.0 - ratio) < SERIES_TOLERANCE * sum {
            break;
        }
    }
    let (mut term, mut j) = (1.0f64, start);
    while j > 0.0 {
        // t_(j-1) / t_j.
        let ratio = j * (c + j - 1.0) / ((k + j - 1.0) * (b_post + j - 1.0) * w);
        term *= ratio;
        j -= 1.0;
        sum += term;
        if ratio < 1.0 && term * j < SERIES_TOLERANCE * sum {
            break;
        }
    }
    (ln_first + sum.ln()).exp().min(1.0)
}

/// Above this many terms [`survival_ahead`] integrates over `p` instead of summing.
const MAX_SERIES_TERMS: f64 = 2e5;

/// `E_p[(1 + p z)^-k]`, `p ~ Beta(a, b)`, by adaptive Gauss-Kronrod quadrature on each half of
/// `(0, 1)`, with `u = p^a` on the lower half and `v = (1 - p)^b` on the upper one (which take
/// the beta density's endpoint singularities out of the integrand).
fn survival_by_quadrature(k: f64, z: f64, a: f64, b: f64) -> f64 {
    use crate::quadrature::integrate;
    const TOLERANCE: f64 = 1e-12;
    const MAX_INTERVALS: usize = 500;
    let ln_beta = crate::special::ln_beta(a, b);
    let factor = |p: f64| -k * (p * z).ln_1p() - ln_beta;
    let lower = integrate(
        |u: f64| {
            let p = u.powf(1.0 / a);
            ((b - 1.0) * (-p).ln_1p() + factor(p)).exp() / a
        },
        0.0,
        0.5f64.powf(a),
        TOLERANCE,
        MAX_INTERVALS,
    );
    let upper = integrate(
        |v: f64| {
            let p = 1.0 - v.powf(1.0 / b);
            ((a - 1.0) * p.ln() + factor(p)).exp() / b
        },
        0.0,
        0.5f64.powf(b),
        TOLERANCE,
        MAX_INTERVALS,
    );
    (lower.value + upper.value).clamp(0.0, 1.0)
}

/// `A(T + t) - A(T)` of customer `i`: the operational time ahead, from its pieces after T
/// (its last piece holding indefinitely).
fn clock_ahead(
    rows: &DynamicRows<'_>,
    purchase: RowMajor<'_>,
    coefficients: &[f64],
    i: usize,
    t: f64,
) -> f64 {
    let age = rows.age[i];
    let horizon = age + t;
    let mut ahead = 0.0;
    for k in pieces(rows, i) {
        let (from, to) = (
            rows.piece_starts[k].max(age),
            piece_end(rows, i, k).min(horizon),
        );
        if to > from {
            ahead += dot(purchase.row(k), coefficients).exp() * (to - from);
        }
    }
    ahead
}

/// A per-customer quantity at fitted (or given) parameters; `t` is the horizon of the
/// expected purchases and P(alive) (one value per customer; ignored by the log-likelihood).
pub fn predict(
    rows: &DynamicRows<'_>,
    links: &Links,
    params: &[f64],
    quantity: Quantity,
    t: &[f64],
    exec: &Exec,
    out: &mut [f64],
) -> Result<()> {
    if params.len() != 4 + links.len() {
        return Err(ClvError::invalid_parameter(
            "params",
            format!("expected {} values, got {}", 4 + links.len(), params.len()),
        ));
    }
    crate::fit::check_params(&BgNbdDynamicLikelihood::new(rows, links).specs, params)?;
    if quantity != Quantity::LogLikelihood {
        if t.len() != rows.len() {
            return Err(ClvError::invalid_parameter(
                "t",
                format!("expected {} horizons, got {}", rows.len(), t.len()),
            ));
        }
        if let Some(at) = t.iter().position(|v| !(v.is_finite() && *v >= 0.0)) {
            return Err(ClvError::invalid_data(
                "t",
                Some(at),
                Some(t[at]),
                "must be finite and >= 0",
            ));
        }
    }
    let point = Point::new(params, links);
    check_multipliers(rows, &point)?;
    let matrices = matrices(&rows.purchase, &rows.dropout);
    exec.fill_blocks(out, |first, block| {
        let mut clock = Clock::new(point.purchase.len());
        for (i, slot) in (first..).zip(block.iter_mut()) {
            let (value, alive) = row::<false>(rows, matrices, &point, i, &mut clock, &mut []);
            *slot = match quantity {
                Quantity::LogLikelihood => value,
                Quantity::ProbabilityAlive | Quantity::ExpectedPurchases => {
                    let (params, _) = customer_params(rows, matrices[1], &point, i);
                    let ahead = clock_ahead(rows, matrices[0], &point.purchase, i, t[i]);
                    let x = rows.frequency[i];
                    let (k, rate) = (point.r + x, point.alpha + clock.a_t);
                    alive
                        * if quantity == Quantity::ProbabilityAlive {
                            survival_ahead(k, rate, ahead, params.a, params.b + x)
                        } else {
                            bgnbd::active_expected_purchases(k, rate, ahead, params.a, params.b + x)
                        }
                }
            };
        }
    });
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::models::covariates::{CovariateLikelihood, CovariateRows};
    use crate::models::pnbd_dynamic::OwnedRows;
    use crate::random::Rng;
    use ndarray::Array2;

    fn links(p: usize, q: usize) -> Links {
        Links {
            purchase: (0..p).collect(),
            dropout: (p..p + q).collect(),
            names: (0..p + q).map(|c| format!("c{c}")).collect(),
        }
    }

    /// Simulate customers from the model: one purchase covariate that changes every unit of
    /// time (a promotion flag, on 30% of the units) and one dropout covariate fixed per
    /// customer (a standard normal draw). `truth` is (r, alpha, a, b, g1, g2).
    fn simulate(n: usize, truth: &[f64], seed: u64, horizon: f64) -> OwnedRows {
        let mut rng = Rng::new(seed);
        let (r, alpha, a, b, g1, g2) = (truth[0], truth[1], truth[2], truth[3], truth[4], truth[5]);
        let mut o = OwnedRows {
            piece_offsets: vec![0],
            purchase_offsets: vec![0],
            ..OwnedRows::default()
        };
        let (mut purchase, mut dropout) = (vec![], vec![]);
        for _ in 0..n {
            let age = (rng.uniform() * horizon).floor() + 5.0;
            let z = rng.normal();
            let shift = (g2 * z).exp();
            let lambda = rng.gamma(r) / alpha;
            let p = rng.beta(a * shift, b * shift);
            let first = o.piece_starts.len();
            let count = (age + horizon) as usize + 1;
            for k in 0..count {
                o.piece_starts.push(k as f64);
                purchase.push(f64::from(u8::from(rng.uniform() < 0.3)));
                dropout.push(z);
            }
            let mut times = vec![];
            'alive: for k in 0..(age as usize) {
                let rate = lambda * (g1 * purchase[first + k]).exp();
                let mut t = k as f64;
                loop {
                    t += -rng.uniform().ln() / rate;
                    if t >= k as f64 + 1.0 {
                        break;
                    }
                    times.push((t, first + k));
                    if rng.uniform() < p {
                        break 'alive;
                    }
                }
            }
            o.frequency.push(times.len() as f64);
            o.recency.push(times.last().map_or(0.0, |t| t.0));
            o.age.push(age);
            o.piece_offsets.push(o.piece_starts.len());
            o.purchase_pieces.extend(times.iter().map(|t| t.1));
            o.purchase_offsets.push(o.purchase_pieces.len());
        }
        let count = o.piece_starts.len();
        o.purchase = Array2::from_shape_vec((count, 1), purchase).unwrap();
        o.dropout = Array2::from_shape_vec((count, 1), dropout).unwrap();
        o
    }

    const TRUTH: [f64; 6] = [0.8, 4.0, 0.9, 3.0, 0.6, 0.5];

    #[test]
    fn constant_covariates_give_the_time_invariant_model() {
        // Each customer's purchase covariate is constant but split into pieces: likelihood,
        // gradient and predictions equal the time-invariant covariate BG/NBD's.
        let mut o = simulate(300, &TRUTH, 3, 30.0);
        for i in 0..o.frequency.len() {
            let range = o.piece_offsets[i]..o.piece_offsets[i + 1];
            let first = range.start;
            for k in range {
                o.purchase[[k, 0]] = o.purchase[[first, 0]];
            }
        }
        let l = links(1, 1);
        let rows = o.rows();
        let columns = RfmColumns {
            frequency: &o.frequency,
            recency: &o.recency,
            age: &o.age,
            weights: None,
        };
        let firsts: Vec<usize> = o.piece_offsets[..o.frequency.len()].to_vec();
        let z1: Vec<f64> = firsts.iter().map(|&k| o.purchase[[k, 0]]).collect();
        let z2: Vec<f64> = firsts.iter().map(|&k| o.dropout[[k, 0]]).collect();
        let static_rows = CovariateRows::new(
            &columns,
            ArrayView2::from_shape((z1.len(), 1), &z1).unwrap(),
            ArrayView2::from_shape((z2.len(), 1), &z2).unwrap(),
        );
        let exec = Exec::with_jobs(Some(1)).unwrap();
        for point in [
            [0.8, 4.0, 0.9, 3.0, 0.6, 0.5],
            [2.0, 9.0, 0.3, 8.0, -1.0, 1.5],
        ] {
            let (v1, g1) =
                BgNbdDynamicLikelihood::new(&rows, &l).loglik_and_gradient(&point, &exec);
            let (v2, g2) = CovariateLikelihood::<BgNbdParams>::new(&static_rows, &l)
                .loglik_and_gradient(&point, &exec);
            assert!((v1 - v2).abs() < 1e-10 * v2.abs(), "{v1} vs {v2}");
            for (a, b) in g1.iter().zip(&g2) {
                assert!((a - b).abs() < 1e-8 * (1.0 + b.abs()), "{g1:?} vs {g2:?}");
            }
            let n = rows.len();
            let (mut alive, mut expected) = (vec![0.0; n], vec![0.0; n]);
            let t = vec![6.5; n];
            predict(
                &rows,
                &l,
                &point,
                Quantity::ProbabilityAlive,
                &vec![0.0; n],
                &exec,
                &mut alive,
            )
            .unwrap();
            predict(
                &rows,
                &l,
                &point,
                Quantity::ExpectedPurchases,
                &t,
                &exec,
                &mut expected,
            )
            .unwrap();
            for i in 0..n {
                let shift = (point[5] * z2[i]).exp();
                let customer = BgNbdParams::new(
                    point[0],
                    point[1] * (-point[4] * z1[i]).exp(),
                    point[2] * shift,
                    point[3] * shift,
                );
                let (x, t_x, age) = (o.frequency[i], o.recency[i], o.age[i]);
                let want = customer.probability_alive(x, t_x, age);
                assert!(
                    (alive[i] - want).abs() < 1e-10,
                    "{i}: {} vs {want}",
                    alive[i]
                );
                let want = customer.conditional_expected_purchases(x, t_x, age, 6.5);
                assert!(
                    (expected[i] - want).abs() < 1e-10 * (1.0 + want),
                    "{i}: {} vs {want}",
                    expected[i]
                );
            }
        }
    }

    #[test]
    fn zero_coefficients_give_the_bg_nbd() {
        let o = simulate(200, &TRUTH, 5, 30.0);
        let l = links(1, 1);
        let rows = o.rows();
        let exec = Exec::with_jobs(Some(1)).unwrap();
        let point = [0.8, 4.0, 0.9, 3.0, 0.0, 0.0];
        let base = BgNbdParams::new(0.8, 4.0, 0.9, 3.0);
        let n = rows.len();
        let mut out = vec![0.0; n];
        let t = vec![10.0; n];
        for quantity in [
            Quantity::LogLikelihood,
            Quantity::ProbabilityAlive,
            Quantity::ExpectedPurchases,
        ] {
            // P(alive) now (the BG/NBD has it at T only); expected purchases 10 ahead.
            let t = if quantity == Quantity::ProbabilityAlive {
                vec![0.0; n]
            } else {
                t.clone()
            };
            predict(&rows, &l, &point, quantity, &t, &exec, &mut out).unwrap();
            for i in 0..n {
                let (x, t_x, age) = (o.frequency[i], o.recency[i], o.age[i]);
                let want = match quantity {
                    Quantity::LogLikelihood => base.log_likelihood(x, t_x, age),
                    Quantity::ProbabilityAlive => base.probability_alive(x, t_x, age),
                    Quantity::ExpectedPurchases => {
                        base.conditional_expected_purchases(x, t_x, age, 10.0)
                    }
                };
                assert!(
                    (out[i] - want).abs() < 1e-12 * (1.0 + want.abs()),
                    "{quantity:?} {i}: {} vs {want}",
                    out[i]
                );
            }
        }
    }

    #[test]
    fn gradient_matches_finite_differences() {
        let o = simulate(200, &TRUTH, 7, 30.0);
        let l = links(1, 1);
        let rows = o.rows();
        let lik = BgNbdDynamicLikelihood::new(&rows, &l);
        let exec = Exec::with_jobs(Some(1)).unwrap();
        let point = [0.7, 5.0, 1.1, 2.5, 0.3, -0.4];
        let (_, gradient) = lik.loglik_and_gradient(&point, &exec);
        for j in 0..point.len() {
            let h = 1e-6 * point[j].abs().max(1.0);
            let (mut up, mut down) = (point, point);
            up[j] += h;
            down[j] -= h;
            let fd = (lik.loglik_and_gradient(&up, &exec).0
                - lik.loglik_and_gradient(&down, &exec).0)
                / (2.0 * h);
            assert!(
                (fd - gradient[j]).abs() < 1e-5 * (1.0 + fd.abs()),
                "parameter {j}: {fd} vs {}",
                gradient[j]
            );
        }
    }

    #[test]
    fn survival_series_matches_the_integral_over_p() {
        // E_p[(rate / (rate + p ahead))^k] by brute-force midpoint sums in p (a, b > 1: a
        // smooth integrand), against the series; and 1 for no time ahead.
        for (k, rate, ahead, a, b) in [
            (3.0, 5.0, 2.0, 1.5, 4.0),
            (0.7, 8.0, 300.0, 2.0, 1.2),
            (60.0, 40.0, 7.0, 3.0, 30.0),
        ] {
            let steps = 200_000;
            let ln_beta = crate::special::ln_beta(a, b);
            let mut want = 0.0;
            for m in 0..steps {
                let p = (m as f64 + 0.5) / steps as f64;
                let density = ((a - 1.0) * p.ln() + (b - 1.0) * (-p).ln_1p() - ln_beta).exp();
                want += density * (rate / (rate + p * ahead)).powf(k) / steps as f64;
            }
            let got = survival_ahead(k, rate, ahead, a, b);
            assert!((got - want).abs() < 1e-8, "{k} {ahead}: {got} vs {want}");
        }
        assert_eq!(survival_ahead(2.0, 3.0, 0.0, 1.0, 1.0), 1.0);
        // The quadrature that takes over for long horizons agrees with the series where both
        // run (beta's endpoint singularities included), and long horizons end.
        for (k, z, a, b) in [
            (3.0, 0.4, 1.5, 4.0),
            (0.7, 300.0, 0.4, 0.6),
            (20.0, 50.0, 2.0, 0.8),
        ] {
            let series = survival_ahead(k, 1.0, z, a, b);
            let quadrature = survival_by_quadrature(k, z, a, b);
            assert!(
                (series - quadrature).abs() < 1e-10,
                "{k} {z}: {series} vs {quadrature}"
            );
        }
        for ahead in [1e7, 1e300, f64::MAX] {
            let value = survival_ahead(5.0, 2.0, ahead, 0.8, 3.0);
            assert!((0.0..1e-5).contains(&value), "{ahead}: {value}");
        }
    }

    #[test]
    fn changing_dropout_covariates_are_refused() {
        let mut o = simulate(5, &TRUTH, 9, 10.0);
        let names = ["z".to_string()];
        assert!(check_static_dropout(&o.rows(), &names).is_ok());
        let k = o.piece_offsets[2] + 1;
        o.dropout[[k, 0]] += 1.0;
        let err = check_static_dropout(&o.rows(), &names).unwrap_err();
        assert!(err.to_string().contains(&format!("`z`, row {k}")), "{err}");
    }

    #[test]
    fn fits_recover_simulated_coefficients() {
        let o = simulate(4000, &TRUTH, 11, 40.0);
        let l = links(1, 1);
        let rows = o.rows();
        let exec = Exec::with_jobs(Some(2)).unwrap();
        let result = fit_dynamic(
            &rows,
            &l,
            &RfmNames::default(),
            &FitOptions {
                exec,
                ..FitOptions::default()
            },
        )
        .unwrap();
        assert!(result.converged, "{}", result.termination);
        let cov = result.covariance.as_ref().unwrap();
        for j in 0..TRUTH.len() {
            let se = cov[[j, j]].sqrt();
            assert!(
                (result.params[j] - TRUTH[j]).abs() < 4.0 * se,
                "parameter {j}: {} (se {se}) vs {}",
                result.params[j],
                TRUTH[j]
            );
        }
    }
}
