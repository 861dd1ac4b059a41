//! Beta-discrete-Weibull (BdW): Fader, Hardie, Liu, Davin & Steenburgh (2018), "How to
//! Project Customer Retention Revisited: The Role of Duration Dependence", Journal of
//! Interactive Marketing 43, 1-16. Contractual (subscription) setting in discrete periods.
//!
//! A customer renews at the end of each period unless they churn; with a churn probability
//! `theta ~ Beta(alpha, beta)` and discrete-Weibull duration dependence `c`, the probability of
//! surviving `t` periods is `(1 - theta)^(t^c)`, so across customers
//!
//! ```text
//! S(t) = B(alpha, beta + t^c) / B(alpha, beta),   P(T = t) = S(t - 1) - S(t)
//! ```
//!
//! `c = 1` is the shifted-beta-geometric model (sBG, see [`super::sbg`]); `c < 1` makes
//! individual churn fall with tenure, `c > 1` rise. Data are churn periods of lost customers and
//! the tenure of those still active, with weights: from a cohort's survivor counts or from
//! per-customer records. `P(T = t)` is computed as `S(t-1) (1 - S(t)/S(t-1))` with `expm1` in
//! log space, over [`Dual`] numbers for the exact gradient.

use crate::dual::Dual;
use crate::error::{ClvError, Result};
use crate::fit::{check_params, Domain, Likelihood, ParamSpec};
use crate::parallel::Exec;
use crate::special::{smooth_sum, SMOOTH_SUM_HEAD};

/// BdW parameter names and domains.
pub static PARAMS: [ParamSpec; 3] = [
    ParamSpec {
        name: "alpha",
        domain: Domain::Positive,
    },
    ParamSpec {
        name: "beta",
        domain: Domain::Positive,
    },
    ParamSpec {
        name: "c",
        domain: Domain::Positive,
    },
];

/// BdW parameters (`c = 1`: sBG).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BdwParams {
    pub alpha: f64,
    pub beta: f64,
    pub c: f64,
}

/// Relative size of neglected tails of the infinite sums (DERL).
const TAIL_TOLERANCE: f64 = 1e-16;
/// Safety cap on the terms of an infinite sum.
const MAX_TERMS: f64 = 1e7;

/// `ln S(t)` over duals (`alpha`, `beta`, `c`).
pub(crate) fn ln_survival<const N: usize>(
    alpha: Dual<N>,
    beta: Dual<N>,
    c: Dual<N>,
    t: f64,
) -> Dual<N> {
    if t <= 0.0 {
        return Dual::constant(0.0);
    }
    ln_survival_at(alpha, beta, (c * t.ln()).exp())
}

/// `ln E[(1 - theta)^tc] = ln B(alpha, beta + tc) - ln B(alpha, beta)` over duals, for any
/// exposure `tc >= 0` (`t^c` here; a sum of covariate-weighted increments of it in
/// [`super::churn_dynamic`]).
pub(crate) fn ln_survival_at<const N: usize>(
    alpha: Dual<N>,
    beta: Dual<N>,
    tc: Dual<N>,
) -> Dual<N> {
    if tc.v.is_infinite() {
        // t^c overflows: S(t) ~ (t^c)^-alpha underflows to 0.
        return Dual::constant(f64::NEG_INFINITY);
    }
    // ln Gamma(beta + z) - ln Gamma(beta) - ln Gamma(alpha + beta + z) + ln Gamma(alpha + beta)
    // with z = t^c, as two ln-gamma differences over the smaller of the shifts z and alpha: the
    // terms are then of the size of that shift times a log, so little cancels even when beta or
    // t^c is huge.
    if tc.v <= alpha.v {
        beta.ln_gamma_shift(tc) - (alpha + beta).ln_gamma_shift(tc)
    } else {
        beta.ln_gamma_shift(alpha) - (beta + tc).ln_gamma_shift(alpha)
    }
}

/// `ln P(T = t)` for `t >= 1`.
pub(crate) fn ln_churn<const N: usize>(
    alpha: Dual<N>,
    beta: Dual<N>,
    c: Dual<N>,
    t: f64,
) -> Dual<N> {
    let before = ln_survival(alpha, beta, c, t - 1.0);
    let now = ln_survival(alpha, beta, c, t);
    before + (-(now - before).exp_m1()).ln()
}

impl BdwParams {
    pub const fn new(alpha: f64, beta: f64, c: f64) -> Self {
        BdwParams { alpha, beta, c }
    }

    pub fn from_slice(values: &[f64]) -> Result<Self> {
        check_params(&PARAMS, values)?;
        Ok(BdwParams::new(values[0], values[1], values[2]))
    }

    fn duals(&self) -> (Dual<0>, Dual<0>, Dual<0>) {
        (
            Dual::constant(self.alpha),
            Dual::constant(self.beta),
            Dual::constant(self.c),
        )
    }

    /// S(t): the share of a cohort still active after `t` periods.
    pub fn survival(&self, t: f64) -> f64 {
        let (a, b, c) = self.duals();
        ln_survival(a, b, c, t).v.exp()
    }

    /// P(T = t): the share of a cohort lost in period `t >= 1`.
    pub fn churn_probability(&self, t: f64) -> f64 {
        let (a, b, c) = self.duals();
        ln_churn(a, b, c, t).v.exp()
    }

    /// Retention rate of period `t >= 1`: `S(t) / S(t - 1)`.
    pub fn retention_rate(&self, t: f64) -> f64 {
        let (a, b, c) = self.duals();
        (ln_survival(a, b, c, t) - ln_survival(a, b, c, t - 1.0))
            .v
            .exp()
    }

    /// P(still active after `k` more periods | active after `tenure` periods).
    pub fn probability_active(&self, tenure: f64, k: f64) -> f64 {
        let (a, b, c) = self.duals();
        (ln_survival(a, b, c, tenure + k) - ln_survival(a, b, c, tenure))
            .v
            .exp()
    }

    /// Expected renewals in the next `k` periods of a customer active after `tenure` periods:
    /// `sum_{j=1}^k S(tenure + j) / S(tenure)`.
    ///
    /// Past [`SMOOTH_SUM_HEAD`] terms the rest is summed at a bounded cost by
    /// [`smooth_sum`] (`k = 10^9` costs as much as a few thousand terms).
    pub fn expected_renewals(&self, tenure: f64, k: f64) -> f64 {
        let mut sum = 0.0;
        let mut j = 1.0;
        while j <= k {
            if j > SMOOTH_SUM_HEAD {
                let (a, b, c) = self.duals();
                let base = ln_survival(a, b, c, tenure).v;
                let ln_term = |t: f64| ln_survival(a, b, c, tenure + t).v - base;
                // Without discount a finite sum always converges.
                return sum + smooth_sum(ln_term, j, k, 0.0).unwrap_or(f64::NAN);
            }
            sum += self.probability_active(tenure, j);
            j += 1.0;
        }
        sum
    }

    /// Discounted expected residual lifetime (Fader & Hardie 2010, eq. 6) of a customer who
    /// has made `tenure` renewals (active after `tenure` periods), in payments:
    /// `sum_{k>=0} (S(tenure + 1 + k) / S(tenure)) / (1 + d)^k` -- the payment just made is
    /// excluded, the next one counts with its renewal probability, undiscounted. Summed until
    /// the remaining terms are below 1e-16 of the total; an error when it diverges (`d = 0`
    /// with a heavy survival tail).
    pub fn discounted_expected_residual_lifetime(&self, tenure: f64, d: f64) -> Result<f64> {
        if !(d >= 0.0) {
            return Err(ClvError::invalid_parameter(
                "discount_rate",
                format!("must be >= 0, got {d}"),
            ));
        }
        let factor = 1.0 / (1.0 + d);
        let (a, b, c) = self.duals();
        let base = ln_survival(a, b, c, tenure).v;
        let mut sum = 0.0;
        let mut weight = 1.0;
        let mut k = 0.0;
        loop {
            let term = (ln_survival(a, b, c, tenure + 1.0 + k).v - base).exp() * weight;
            if !term.is_finite() {
                return Err(ClvError::invalid_parameter(
                    "params",
                    format!(
                        "the survival curve is not computable at these parameters (alpha {}, \
                         beta {}, c {}) and tenure {tenure}",
                        self.alpha, self.beta, self.c
                    ),
                ));
            }
            sum += term;
            // A slow discount (or none): the rest at a bounded cost (see `smooth_sum`).
            if k + 1.0 >= SMOOTH_SUM_HEAD && factor > (-40.0 / SMOOTH_SUM_HEAD).exp() {
                let ln_factor = -d.ln_1p();
                let ln_term =
                    |j: f64| ln_survival(a, b, c, tenure + 1.0 + j).v - base + j * ln_factor;
                return smooth_sum(ln_term, k + 1.0, f64::INFINITY, ln_factor)
                    .map(|rest| sum + rest)
                    .ok_or_else(|| {
                        ClvError::invalid_parameter(
                            "discount_rate",
                            format!(
                                "the expected residual lifetime does not converge (survival \
                                 decays too slowly: about 1/t or slower, without enough \
                                 discounting; discount_rate {d}): use a larger discount rate"
                            ),
                        )
                    });
            }
            // Survival falls with k, so later terms shrink at least by `factor` each.
            let tail = if factor < 1.0 {
                term * factor / (1.0 - factor)
            } else {
                // No discounting: bound the tail by the next retention rate, when below 1.
                let next = self.retention_rate(tenure + 2.0 + k);
                if next < 1.0 {
                    term * next / (1.0 - next)
                } else {
                    f64::INFINITY
                }
            };
            if tail <= TAIL_TOLERANCE * sum || term == 0.0 {
                return Ok(sum);
            }
            k += 1.0;
            if k > MAX_TERMS {
                return Err(ClvError::invalid_parameter(
                    "discount_rate",
                    "the expected residual lifetime does not converge (survival decays too \
                     slowly without discounting): use a positive discount rate",
                ));
            }
            weight *= factor;
        }
    }
}

impl ChurnData {
    /// The same data as distinct (period, churned) rows with summed weights, sorted: every
    /// representation of the same customers (survivor counts, records in any order) sums the
    /// likelihood in the same order, so fits agree to the last bit.
    fn canonical(self) -> Self {
        let mut rows: Vec<(f64, bool, f64)> = (0..self.periods.len())
            .map(|i| (self.periods[i], self.churned[i], self.weights[i]))
            .filter(|r| r.2 != 0.0)
            .collect();
        rows.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
        let mut out = ChurnData::default();
        for (t, gone, w) in rows {
            let n = out.periods.len();
            if n > 0 && out.periods[n - 1] == t && out.churned[n - 1] == gone {
                out.weights[n - 1] += w;
            } else {
                out.periods.push(t);
                out.churned.push(gone);
                out.weights.push(w);
            }
        }
        out
    }
}

/// Rows of churn data: period `t`, whether the customer churned in it (else was still active
/// after it), and a weight.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ChurnData {
    pub periods: Vec<f64>,
    pub churned: Vec<bool>,
    pub weights: Vec<f64>,
}

impl ChurnData {
    /// From a cohort's survivor counts: active customers at the end of periods 0, 1, .., T
    /// (the first is the cohort size). Counts must be finite, non-negative and non-increasing.
    pub fn from_survivors(survivors: &[f64]) -> Result<Self> {
        if survivors.len() < 2 {
            return Err(ClvError::invalid_data(
                "survivors",
                None,
                None,
                "needs the cohort size and at least one later count",
            ));
        }
        let mut data = ChurnData::default();
        for (t, pair) in survivors.windows(2).enumerate() {
            let (before, now) = (pair[0], pair[1]);
            if !(now.is_finite() && now >= 0.0) {
                return Err(ClvError::invalid_data(
                    "survivors",
                    Some(t + 1),
                    Some(now),
                    "must be a finite count >= 0",
                ));
            }
            if now > before {
                return Err(ClvError::invalid_data(
                    "survivors",
                    Some(t + 1),
                    Some(now),
                    format!("must not exceed the previous count ({before}): customers who left do not come back"),
                ));
            }
            if before > now {
                data.periods.push((t + 1) as f64);
                data.churned.push(true);
                data.weights.push(before - now);
            }
        }
        let last = survivors[survivors.len() - 1];
        if last > 0.0 {
            data.periods.push((survivors.len() - 1) as f64);
            data.churned.push(false);
            data.weights.push(last);
        }
        if !(survivors[0] > 0.0 && survivors[0].is_finite()) {
            return Err(ClvError::invalid_data(
                "survivors",
                Some(0),
                Some(survivors[0]),
                "the cohort size must be a finite count > 0",
            ));
        }
        Ok(data.canonical())
    }

    /// From per-customer records: periods observed (churn period for churned customers,
    /// completed periods for active ones) and whether they churned (the rules of
    /// [`check_customers`]).
    pub fn from_customers(
        periods: &[f64],
        churned: &[f64],
        weights: Option<&[f64]>,
    ) -> Result<Self> {
        check_customers(periods, churned, weights)?;
        let data = ChurnData {
            periods: periods.to_vec(),
            churned: churned.iter().map(|&gone| gone == 1.0).collect(),
            weights: weights.map_or_else(|| vec![1.0; periods.len()], <[f64]>::to_vec),
        };
        Ok(data.canonical())
    }

    /// Records already checked (by [`check_customers`]), merged into the canonical rows.
    pub fn from_checked_records(periods: Vec<f64>, churned: Vec<bool>, weights: Vec<f64>) -> Self {
        ChurnData {
            periods,
            churned,
            weights,
        }
        .canonical()
    }
}

/// Check per-customer records in one pass, without building anything: each period a whole
/// number >= 0 (>= 1 for a churned customer), each `churned` 0/1, each weight finite and >= 0,
/// and some customer with weight > 0 observed for at least one period when any has weight.
pub fn check_customers(periods: &[f64], churned: &[f64], weights: Option<&[f64]>) -> Result<()> {
    crate::data::check_lengths(&[("churned", churned.len())], periods.len())?;
    if let Some(w) = weights {
        crate::data::check_lengths(&[("weights", w.len())], periods.len())?;
    }
    if periods.is_empty() {
        return Err(ClvError::invalid_data(
            "periods",
            None,
            None,
            "at least one customer is required (the input is empty)",
        ));
    }
    let (mut counted, mut observed) = (false, false);
    for i in 0..periods.len() {
        let (t, gone) = (periods[i], churned[i]);
        if !(t.is_finite() && t >= 0.0 && t.fract() == 0.0) {
            return Err(ClvError::invalid_data(
                "periods",
                Some(i),
                Some(t),
                "must be a whole number of periods >= 0",
            ));
        }
        if !(gone == 0.0 || gone == 1.0) {
            return Err(ClvError::invalid_data(
                "churned",
                Some(i),
                Some(gone),
                "must be 0/1 (False/True)",
            ));
        }
        if gone == 1.0 && t < 1.0 {
            return Err(ClvError::invalid_data(
                "periods",
                Some(i),
                Some(t),
                "must be >= 1 for a churned customer (the period they left in)",
            ));
        }
        let w = weights.map_or(1.0, |w| w[i]);
        if !(w.is_finite() && w >= 0.0) {
            return Err(ClvError::invalid_data(
                "weights",
                Some(i),
                Some(w),
                "must be a finite number >= 0",
            ));
        }
        if w > 0.0 {
            counted = true;
            observed |= t > 0.0;
        }
    }
    if counted && !observed {
        return Err(ClvError::invalid_data(
            "periods",
            None,
            None,
            "is 0 for every customer: no renewal or churn has been observed yet, so the \
             data say nothing about churn (fit on customers observed for at least one \
             period)",
        ));
    }
    Ok(())
}

/// The BdW (or sBG, with `c` fixed at 1) likelihood of churn data.
pub struct Bdw<'a> {
    data: &'a ChurnData,
    /// Estimate `c` (BdW) or hold it at 1 (sBG).
    free_c: bool,
}

impl<'a> Bdw<'a> {
    pub fn new(data: &'a ChurnData) -> Self {
        Bdw { data, free_c: true }
    }

    /// sBG: `c` held at 1.
    pub fn shifted_beta_geometric(data: &'a ChurnData) -> Self {
        Bdw {
            data,
            free_c: false,
        }
    }
}

impl Likelihood for Bdw<'_> {
    fn params(&self) -> &[ParamSpec] {
        if self.free_c {
            &PARAMS
        } else {
            &PARAMS[..2]
        }
    }

    fn starts(&self) -> Vec<Vec<f64>> {
        let base = vec![vec![1.0, 1.0], vec![0.5, 2.0], vec![2.0, 5.0]];
        if self.free_c {
            base.into_iter()
                .map(|mut v| {
                    v.push(1.0);
                    v
                })
                .collect()
        } else {
            base
        }
    }

    fn total_weight(&self) -> f64 {
        self.data.weights.iter().sum()
    }

    fn loglik_and_gradient(&self, params: &[f64], _exec: &Exec) -> (f64, Vec<f64>) {
        let a = Dual::<3>::variable(params[0], 0);
        let b = Dual::<3>::variable(params[1], 1);
        let c = if self.free_c {
            Dual::<3>::variable(params[2], 2)
        } else {
            Dual::constant(1.0)
        };
        let d = self.data;
        let mut total = Dual::<3>::constant(0.0);
        for i in 0..d.periods.len() {
            let t = d.periods[i];
            let ll = if d.churned[i] {
                ln_churn(a, b, c, t)
            } else {
                ln_survival(a, b, c, t)
            };
            total += ll * d.weights[i];
        }
        let k = self.params().len();
        (total.v, total.d[..k].to_vec())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fit::{fit, FitOptions};
    use crate::models::testing::{assert_gradient_matches, rel};

    pub const REGULAR: [f64; 8] = [1000.0, 631.0, 468.0, 382.0, 326.0, 289.0, 262.0, 241.0];

    #[test]
    fn gradient_is_exact_and_survival_consistent() {
        let data = ChurnData::from_survivors(&REGULAR).unwrap();
        let lik = Bdw::new(&data);
        let at = [0.8, 1.5, 0.9];
        let (_, g) = lik.loglik_and_gradient(&at, &Exec::Serial);
        assert_gradient_matches(
            |q| lik.loglik_and_gradient(q, &Exec::Serial).0,
            &g,
            &at,
            1e-6,
        );
        let p = BdwParams::new(0.8, 1.5, 0.7);
        let mut left = 1.0;
        for t in 1..50 {
            let t = t as f64;
            left -= p.churn_probability(t);
            assert!(rel(left, p.survival(t)) < 1e-10);
            assert!(rel(p.retention_rate(t), p.survival(t) / p.survival(t - 1.0)) < 1e-12);
        }
    }

    #[test]
    fn fits_and_predicts_the_regular_cohort() {
        let data = ChurnData::from_survivors(&REGULAR).unwrap();
        let res = fit(&Bdw::new(&data), &FitOptions::default()).unwrap();
        assert!(res.converged, "{}", res.termination);
        let p = BdwParams::from_slice(&res.params).unwrap();
        // DERL by its definition at d = 10%.
        let derl = p.discounted_expected_residual_lifetime(3.0, 0.1).unwrap();
        let direct: f64 = (0..2000)
            .map(|k| p.probability_active(3.0, 1.0 + k as f64) / 1.1f64.powi(k))
            .sum();
        assert!(rel(derl, direct) < 1e-10, "{derl} vs {direct}");
        assert!(
            rel(
                p.expected_renewals(3.0, 4.0),
                (1..=4).map(|j| p.probability_active(3.0, j as f64)).sum()
            ) < 1e-14
        );
        assert!(ChurnData::from_survivors(&[10.0, 12.0]).is_err());
    }
}
