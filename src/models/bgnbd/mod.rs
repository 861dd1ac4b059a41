//! BG/NBD: the beta-geometric / negative-binomial model of Fader, Hardie & Lee (2005),
//! "Counting Your Customers the Easy Way: An Alternative to the Pareto/NBD Model",
//! Marketing Science 24(2), 275-284.
//!
//! While active, a customer buys at Poisson rate `lambda ~ Gamma(r, alpha)`; after each repeat
//! purchase they become inactive with probability `p ~ Beta(a, b)`. For a customer with `x` repeat
//! purchases, the last at `t_x`, observed for time `T` since the first purchase (FHL 2005, eq. 6):
//!
//! ```text
//! L = B(a, b+x)/B(a, b) * Gamma(r+x) alpha^r / (Gamma(r) (alpha+T)^(r+x))
//!   + [x > 0] B(a+1, b+x-1)/B(a, b) * Gamma(r+x) alpha^r / (Gamma(r) (alpha+t_x)^(r+x))
//! ```
//!
//! evaluated in log space as `A1 + A2 + ln(1 + exp(A3 - A2))`.
//!
//! Predictions avoid the Gaussian hypergeometric closed forms (which divide by `a - 1` and have
//! poles when `a + b + x <= 1`): the expected number of purchases of an active customer is written
//! as a negative-binomial mixture of truncated geometric sums, all of whose terms are positive
//! (see [`active_expected_purchases`]).
//!
//! Where to look:
//!
//! - this file: the parameters ([`BgNbdParams`]), one customer's log-likelihood, the simulator,
//!   and the one implementation of [`RfmModel`] for the BG/NBD family ([`BgFamily`]: BG/NBD and
//!   MBG/NBD);
//! - `likelihood`: the likelihood over compressed rows for the fitting engine ([`BgNbd`]):
//!   per-run sums 4 rows at a time, analytic gradient and Hessian;
//! - `rows`: one customer's derivatives, and 4 customers' at once (SIMD), for covariates
//!   ([`row_derivatives`], [`row_derivatives_x4`]);
//! - `predict`: predictions for one customer ([`probability_alive`],
//!   [`conditional_expected_purchases`], ...);
//! - `bulk`: predictions for many customers, vectorised and interpolated
//!   ([`probability_alive_bulk`], [`conditional_expected_purchases_bulk`]).

mod bulk;
mod likelihood;
mod predict;
mod rows;

pub use bulk::{
    conditional_expected_purchases_bulk, probability_alive_bulk, weighted_expected_purchases_bulk,
};
pub use likelihood::BgNbd;
pub use predict::{
    active_expected_purchases, active_expected_purchases_by_quadrature,
    conditional_expected_purchases, expected_purchases_new_customer, probability_alive,
    purchase_count_probability,
};
pub use rows::{row_derivatives, row_derivatives_x4, LaneDerivatives};

use super::RfmModel;
use crate::data::{Rfm, RfmColumns};
use crate::error::Result;
use crate::fit::{
    check_params, fit, fit_with_warm_start, Domain, FitOptions, FitResult, ParamSpec,
};
use crate::parallel::Exec;
use crate::random::Rng;
use crate::special::{ln_gamma_diff, log1p_exp};

/// Parameter names and domains: r, alpha (purchase rate), a, b (dropout).
pub static PARAMS: [ParamSpec; 4] = [
    ParamSpec {
        name: "r",
        domain: Domain::Positive,
    },
    ParamSpec {
        name: "alpha",
        domain: Domain::Positive,
    },
    ParamSpec {
        name: "a",
        domain: Domain::Positive,
    },
    ParamSpec {
        name: "b",
        domain: Domain::Positive,
    },
];

/// BG/NBD parameters.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BgNbdParams {
    pub r: f64,
    pub alpha: f64,
    pub a: f64,
    pub b: f64,
    /// MBG/NBD (Batislam, Denizel & Filiztekin 2007): the dropout coin is also tossed right
    /// after the first purchase, so a customer can be gone before any repeat purchase.
    pub modified: bool,
}

impl BgNbdParams {
    /// From a slice in the order of [`PARAMS`], checking the domains.
    pub fn from_slice(values: &[f64]) -> Result<Self> {
        check_params(&PARAMS, values)?;
        Ok(BgNbdParams::new(values[0], values[1], values[2], values[3]))
    }

    /// BG/NBD parameters (no dropout at the first purchase).
    pub const fn new(r: f64, alpha: f64, a: f64, b: f64) -> Self {
        BgNbdParams {
            r,
            alpha,
            a,
            b,
            modified: false,
        }
    }

    /// The number of dropout coins an active customer with `x` repeat purchases has survived:
    /// `x` for BG/NBD, `x + 1` for MBG/NBD. Every formula of both models depends on the dropout
    /// process only through it.
    #[inline]
    pub fn flips(&self, x: f64) -> f64 {
        if self.modified {
            x + 1.0
        } else {
            x
        }
    }
}

/// Log-likelihood of one customer.
pub fn log_likelihood(p: &BgNbdParams, x: f64, t_x: f64, age: f64) -> f64 {
    // r ln(alpha) - (r + x) ln(alpha + T), without the cancellation of its two large terms
    // when r is huge (a fit running off to the Poisson limit).
    let a1 = ln_gamma_diff(p.r, x) - x * p.alpha.ln();
    let flips = p.flips(x);
    if flips == 0.0 {
        return a1 + ln_beta_shift(p.a, p.b, flips) - (p.r + x) * (age / p.alpha).ln_1p();
    }
    let odds = dropout_log_odds(p, x, t_x, age);
    if odds > 0.0 {
        // The dropped-out branch dominates: ln of it plus ln(1 + alive / dropped), with the
        // branch formed directly. Its (r + x) terms combine to -(r + x) ln(1 + t_x / alpha), and
        // B(a + 1, b + f - 1) / B(a, b) = a / (a + b) * B(a + 1, b + f - 1) / B(a + 1, b): adding
        // the log odds to the alive branch instead cancels terms of size r ln(1 + T / alpha)
        // (MBG/NBD without purchases at r = 1e12 lost 5 digits, and a b near 0 gave ln L > 0).
        let dropped = a1 - (p.r + x) * (t_x / p.alpha).ln_1p() - (p.b / p.a).ln_1p()
            + ln_beta_shift(p.a + 1.0, p.b, flips - 1.0);
        return dropped + log1p_exp(-odds);
    }
    let a2 = ln_beta_shift(p.a, p.b, flips) - (p.r + x) * (age / p.alpha).ln_1p();
    a1 + a2 + log1p_exp(odds)
}

/// `ln B(a, b + x) - ln B(a, b)`, precise even when a and b are huge.
fn ln_beta_shift(a: f64, b: f64, x: f64) -> f64 {
    ln_gamma_diff(b, x) - ln_gamma_diff(a + b, x)
}

/// `A3 - A2`: the log odds that the customer dropped out right after the last purchase, versus
/// still being active at `T`.
fn dropout_log_odds(p: &BgNbdParams, x: f64, t_x: f64, age: f64) -> f64 {
    p.a.ln() - (p.b + (p.flips(x) - 1.0)).ln() + (p.r + x) * ((age - t_x) / (p.alpha + t_x)).ln_1p()
}

/// Draw customer histories from the BG/NBD (or MBG/NBD) process: for each age `T` in `ages`, the number of
/// repeat purchases `x` and the time of the last one `t_x` (0 when `x = 0`). Customer `i` uses
/// random stream `i` of `seed`, so the draws do not depend on how the work is split.
pub fn simulate(p: &BgNbdParams, ages: &[f64], seed: u64) -> (Vec<f64>, Vec<f64>) {
    let mut x = Vec::with_capacity(ages.len());
    let mut t_x = Vec::with_capacity(ages.len());
    for (i, &age) in ages.iter().enumerate() {
        let mut rng = Rng::for_stream(seed, i as u64);
        let lambda = rng.gamma(p.r) / p.alpha;
        let drop = rng.beta(p.a, p.b);
        let (mut count, mut last, mut now) = (0.0, 0.0, 0.0);
        // MBG/NBD: the first coin is tossed at the first purchase.
        let gone_at_start = p.modified && rng.uniform() < drop;
        if !gone_at_start {
            loop {
                now += rng.exponential(lambda);
                if !(now <= age) {
                    break;
                }
                count += 1.0;
                last = now;
                if rng.uniform() < drop {
                    break;
                }
            }
        }
        x.push(count);
        t_x.push(last);
    }
    (x, t_x)
}

pub use super::predict_rows;

/// The BG/NBD family: BG/NBD ([`BgNbdParams`]) and MBG/NBD
/// ([`MbgNbdParams`](super::MbgNbdParams)) differ only in [`BgNbdParams::modified`], which every
/// formula reads through [`BgNbdParams::flips`], so one implementation of [`RfmModel`] (and of
/// the covariate rows) serves both; a member says which it is and wraps its parameters.
pub trait BgFamily: Copy + Send + Sync {
    /// The member's [`RfmModel::NAME`].
    const MODEL_NAME: &'static str;

    /// [`BgNbdParams::modified`] of the member: whether the dropout coin is also tossed at the
    /// first purchase.
    const MODIFIED: bool;

    /// The member's parameters, with [`BgNbdParams::modified`] set to [`BgFamily::MODIFIED`].
    fn bg(&self) -> &BgNbdParams;

    /// The member with parameters `p` (whose `modified` is [`BgFamily::MODIFIED`]).
    fn from_bg(p: BgNbdParams) -> Self;

    /// Parameters (r, alpha, a, b) of the member, as [`BgNbdParams`].
    fn bg_params(r: f64, alpha: f64, a: f64, b: f64) -> BgNbdParams {
        BgNbdParams {
            modified: Self::MODIFIED,
            ..BgNbdParams::new(r, alpha, a, b)
        }
    }
}

impl BgFamily for BgNbdParams {
    const MODEL_NAME: &'static str = "bgnbd";
    const MODIFIED: bool = false;

    fn bg(&self) -> &BgNbdParams {
        self
    }

    fn from_bg(p: BgNbdParams) -> Self {
        p
    }
}

impl<M: BgFamily> RfmModel for M {
    const NAME: &'static str = M::MODEL_NAME;

    fn specs() -> &'static [ParamSpec] {
        &PARAMS
    }

    fn from_slice(values: &[f64]) -> Result<Self> {
        let p = BgNbdParams::from_slice(values)?;
        Ok(M::from_bg(M::bg_params(p.r, p.alpha, p.a, p.b)))
    }

    fn fit(data: &Rfm, opts: &FitOptions<'_>) -> Result<FitResult> {
        fit_with_warm_start(
            data,
            data.len(),
            Rfm::subsample,
            |d, o| fit(&BgNbd::with_variant(d, M::MODIFIED), o),
            opts,
        )
    }

    fn simulate(&self, ages: &[f64], seed: u64) -> Option<(Vec<f64>, Vec<f64>)> {
        Some(simulate(self.bg(), ages, seed))
    }

    fn log_likelihood(&self, x: f64, t_x: f64, age: f64) -> f64 {
        log_likelihood(self.bg(), x, t_x, age)
    }

    fn probability_alive(&self, x: f64, t_x: f64, age: f64) -> f64 {
        probability_alive(self.bg(), x, t_x, age)
    }

    fn conditional_expected_purchases(&self, x: f64, t_x: f64, age: f64, t: f64) -> f64 {
        conditional_expected_purchases(self.bg(), x, t_x, age, t)
    }

    fn expected_purchases_new_customer(&self, t: f64) -> f64 {
        expected_purchases_new_customer(self.bg(), t)
    }

    fn purchase_count_probability(&self, n: u64, t: f64) -> Option<f64> {
        Some(purchase_count_probability(self.bg(), n, t))
    }

    fn probability_alive_bulk(&self, columns: &RfmColumns<'_>, exec: &Exec, out: &mut [f64]) {
        probability_alive_bulk(self.bg(), columns, exec, out);
    }

    fn conditional_expected_purchases_bulk(
        &self,
        columns: &RfmColumns<'_>,
        t: f64,
        exec: &Exec,
        out: &mut [f64],
    ) {
        conditional_expected_purchases_bulk(self.bg(), columns, t, exec, out);
    }

    fn weighted_expected_purchases_bulk(
        &self,
        columns: &RfmColumns<'_>,
        horizons: &[(f64, f64)],
        exec: &Exec,
        out: &mut [f64],
    ) {
        weighted_expected_purchases_bulk(self.bg(), columns, horizons, exec, out);
    }
}
