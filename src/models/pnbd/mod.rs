//! Pareto/NBD: Schmittlein, Morrison & Colombo (1987), "Counting Your Customers: Who Are They
//! and What Will They Do Next?", Management Science 33(1), 1-24; likelihood and predictions as
//! derived in Fader & Hardie's notes 009 (likelihood), 015 (DERT), 027/028 (P(X(t) = x)).
//!
//! While active, a customer buys at Poisson rate `lambda ~ Gamma(r, alpha)`; the lifetime is
//! exponential with rate `mu ~ Gamma(s, beta)`, independent of `lambda`. For a customer with `x`
//! repeat purchases, the last at `t_x`, observed for `T`:
//!
//! ```text
//! L = Gamma(r+x) alpha^r beta^s / Gamma(r)
//!     * [ (alpha+T)^-(r+x) (beta+T)^-s  +  s * I ],
//! I = integral_{t_x}^{T} (alpha+tau)^-(r+x) (beta+tau)^-(s+1) dtau
//! ```
//!
//! (alive at T, or gone at some tau in (t_x, T]). The classic closed form writes `I` with
//! Gaussian hypergeometric functions whose argument depends on which of alpha and beta is larger
//! (note 009); the peers evaluate it as a difference of two such terms, which cancels when
//! `t_x` is close to `T` and overflows for large `x`. Here `I` is computed directly, in log form:
//!
//! - expanding the factor of the smaller of alpha, beta around the larger one,
//!   `(small+tau) = (big+tau)(1 - z)` with `z = (big-small)/(big+tau)`, gives a series of
//!   positive terms `sum_k (e)_k/k! z0^k (1 - rho^(m+k)) / (m+k)` times `(big+t0)^-m`, where
//!   `1 - rho^(m+k)` is evaluated with `expm1` (no cancellation when `t_x` is near `T`);
//! - where `z > 0.75` (one rate scale much larger than the other, early in the interval) the
//!   series would converge slowly, so that stretch is integrated by adaptive Gauss-Kronrod
//!   quadrature in `ln(small + tau)` instead.
//!
//! The function is written over [`Dual`] numbers, so the gradient is exact (analytic) and the
//! same code gives plain values for predictions. `alpha = beta` is the series' first term, and
//! `t_x = T` gives `I = 0`.
//!
//! Where to look:
//!
//! - this file: the parameters ([`ParetoNbdParams`]), the simulator and [`RfmModel`];
//! - `integral`: one customer's likelihood over dual numbers (the integral by series or
//!   quadrature), [`log_likelihood`];
//! - `rows`: one customer's log-likelihood with its analytic gradient and Hessian without dual
//!   numbers where the series serves the row ([`row_derivatives`], also for covariates);
//! - `likelihood`: the likelihood over compressed rows for the fitting engine ([`ParetoNbd`]);
//! - `predict`: predictions for one customer ([`probability_alive`],
//!   [`conditional_expected_purchases`], ...);
//! - `bulk`: P(alive) and expected purchases from a series of positive terms, four customers at
//!   a time (SIMD lanes; [`predict_bulk`]), which the one-customer functions also use.

mod bulk;
mod integral;
mod likelihood;
mod predict;
mod rows;

pub use bulk::predict_bulk;
pub use integral::log_likelihood;
pub use likelihood::ParetoNbd;
pub use predict::{
    conditional_expected_purchases, expected_purchases_new_customer, probability_alive,
};
pub use rows::{gamma_terms, row_derivatives, RowPass};

use super::RfmModel;
use crate::data::Rfm;
use crate::dual::Dual;
use crate::error::Result;
use crate::fit::{
    check_params, fit, fit_with_warm_start, Domain, FitOptions, FitResult, ParamSpec,
};
use crate::parallel::Exec;
use predict::survival_integral;

/// Parameter names and domains: r, alpha (purchase rate), s, beta (dropout rate).
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
        name: "s",
        domain: Domain::Positive,
    },
    ParamSpec {
        name: "beta",
        domain: Domain::Positive,
    },
];

/// Pareto/NBD parameters.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ParetoNbdParams {
    pub r: f64,
    pub alpha: f64,
    pub s: f64,
    pub beta: f64,
}

impl ParetoNbdParams {
    pub const fn new(r: f64, alpha: f64, s: f64, beta: f64) -> Self {
        ParetoNbdParams { r, alpha, s, beta }
    }

    fn duals<const N: usize>(&self) -> [Dual<N>; 4] {
        [self.r, self.alpha, self.s, self.beta].map(Dual::constant)
    }
}

/// Draw customer histories from the Pareto/NBD process: for each age `T` in `ages`, the number
/// of repeat purchases `x` and the time of the last one `t_x` (0 when `x = 0`). Customer `i`
/// uses random stream `i` of `seed`, so the draws do not depend on how the work is split.
pub fn simulate(p: &ParetoNbdParams, ages: &[f64], seed: u64) -> (Vec<f64>, Vec<f64>) {
    let mut x = Vec::with_capacity(ages.len());
    let mut t_x = Vec::with_capacity(ages.len());
    for (i, &age) in ages.iter().enumerate() {
        let mut rng = crate::random::Rng::for_stream(seed, i as u64);
        let lambda = rng.gamma(p.r) / p.alpha;
        let mu = rng.gamma(p.s) / p.beta;
        let end = rng.exponential(mu).min(age);
        let (mut count, mut last, mut now) = (0.0, 0.0, 0.0);
        loop {
            now += rng.exponential(lambda);
            if !(now <= end) {
                break;
            }
            count += 1.0;
            last = now;
        }
        x.push(count);
        t_x.push(last);
    }
    (x, t_x)
}

impl RfmModel for ParetoNbdParams {
    const NAME: &'static str = "pnbd";

    fn specs() -> &'static [ParamSpec] {
        &PARAMS
    }

    /// `(r, alpha)` (the purchase rates' gamma collapsing: Poisson purchases at rate
    /// `r / alpha` for everyone) and `(s, beta)` (exponential dropout at rate `s / beta` for
    /// everyone).
    fn nested_limits() -> &'static [(usize, usize)] {
        &[(0, 1), (2, 3)]
    }

    fn from_slice(values: &[f64]) -> Result<Self> {
        check_params(&PARAMS, values)?;
        Ok(ParetoNbdParams::new(
            values[0], values[1], values[2], values[3],
        ))
    }

    fn fit(data: &Rfm, opts: &FitOptions<'_>) -> Result<FitResult> {
        fit_with_warm_start(
            data,
            data.len(),
            Rfm::subsample,
            |d, o| fit(&ParetoNbd::new(d), o),
            opts,
        )
    }

    fn simulate(&self, ages: &[f64], seed: u64) -> Option<(Vec<f64>, Vec<f64>)> {
        Some(simulate(self, ages, seed))
    }

    fn log_likelihood(&self, x: f64, t_x: f64, age: f64) -> f64 {
        log_likelihood(self, x, t_x, age)
    }

    fn probability_alive(&self, x: f64, t_x: f64, age: f64) -> f64 {
        probability_alive(self, x, t_x, age)
    }

    fn conditional_expected_purchases(&self, x: f64, t_x: f64, age: f64, t: f64) -> f64 {
        conditional_expected_purchases(self, x, t_x, age, t)
    }

    fn expected_purchases_new_customer(&self, t: f64) -> f64 {
        expected_purchases_new_customer(self, t)
    }

    fn purchase_count_probability(&self, n: u64, t: f64) -> Option<f64> {
        Some(ParetoNbdParams::purchase_count_probability(self, n, t))
    }

    fn probability_alive_after(&self, x: f64, t_x: f64, age: f64, t: f64) -> Option<f64> {
        Some(ParetoNbdParams::probability_alive_after(
            self, x, t_x, age, t,
        ))
    }

    fn probability_alive_bulk(
        &self,
        columns: &crate::data::RfmColumns<'_>,
        exec: &Exec,
        out: &mut [f64],
    ) {
        predict_bulk(self, columns, None, exec, out);
    }

    fn conditional_expected_purchases_bulk(
        &self,
        columns: &crate::data::RfmColumns<'_>,
        t: f64,
        exec: &Exec,
        out: &mut [f64],
    ) {
        predict_bulk(self, columns, Some(t), exec, out);
    }

    /// P(alive) once per row (four rows at a time), times the weighted closed-form active
    /// expectations.
    fn weighted_expected_purchases_bulk(
        &self,
        columns: &crate::data::RfmColumns<'_>,
        horizons: &[(f64, f64)],
        exec: &Exec,
        out: &mut [f64],
    ) {
        predict_bulk(self, columns, None, exec, out);
        exec.fill_blocks(out, |start, block| {
            for (j, slot) in block.iter_mut().enumerate() {
                let (x, age) = (columns.frequency[start + j], columns.age[start + j]);
                let b = self.beta + age;
                let active: f64 = horizons
                    .iter()
                    .filter(|&&(_, t)| t > 0.0)
                    .map(|&(w, t)| w * b * survival_integral(self.s, b, t))
                    .sum();
                *slot = *slot * (self.r + x) / (self.alpha + age) * active;
            }
        });
    }

    fn conditional_purchase_count_probability(
        &self,
        n: u64,
        x: f64,
        t_x: f64,
        age: f64,
        t: f64,
    ) -> Option<f64> {
        Some(ParetoNbdParams::conditional_purchase_count_probability(
            self, n, x, t_x, age, t,
        ))
    }

    fn expected_residual_transactions(&self, x: f64, t_x: f64, age: f64, rate: f64) -> Option<f64> {
        Some(ParetoNbdParams::expected_residual_transactions(
            self, x, t_x, age, rate,
        ))
    }
}

/// Parameters and histories the tests of the Pareto/NBD files share.
#[cfg(test)]
mod testing {
    use super::ParetoNbdParams;

    /// BTYD's walkthrough estimates on CDNOW.
    pub(super) const BTYD: ParetoNbdParams =
        ParetoNbdParams::new(0.5533971, 10.5801985, 0.6060685, 11.6562471);

    /// Histories covering the awkward cases: x = 0, t_x = T, x in the hundreds, long T.
    pub(super) const ROWS: [(f64, f64, f64); 8] = [
        (0.0, 0.0, 30.0),
        (1.0, 2.0, 39.0),
        (26.0, 30.85714, 31.0),
        (5.0, 20.0, 20.0),
        (300.0, 10.0, 52.0),
        (300.0, 51.0, 52.0),
        (3.0, 1.0, 5000.0),
        (0.0, 0.0, 0.0),
    ];

    pub(super) fn parameter_grid() -> Vec<ParetoNbdParams> {
        vec![
            BTYD,
            ParetoNbdParams::new(0.55, 10.0, 0.6, 10.0),
            ParetoNbdParams::new(0.55, 10.0, 0.6, 0.1),
            ParetoNbdParams::new(0.55, 0.1, 0.6, 10.0),
            ParetoNbdParams::new(20.0, 3.0, 0.05, 1000.0),
            ParetoNbdParams::new(0.05, 1000.0, 20.0, 0.01),
        ]
    }
}
