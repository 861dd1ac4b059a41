//! NBD: the negative-binomial model of repeat buying, Ehrenberg (1959), "The Pattern of
//! Consumer Purchases", Journal of the Royal Statistical Society C 8(1), 26-41.
//!
//! Every customer buys at a Poisson rate `lambda ~ Gamma(r, alpha)` for ever (no dropout): the
//! baseline every paper on the dropout models reports. For a customer with `x` repeat purchases
//! observed for `T` since the first purchase, the likelihood of the purchase times is
//!
//! ```text
//! L = Gamma(r+x) alpha^r / (Gamma(r) (alpha+T)^(r+x))
//! ```
//!
//! (the BG/NBD likelihood without dropout; the recency does not enter). It is evaluated as
//! `ln Gamma(r+x) - ln Gamma(r) - x ln(alpha) - (r+x) ln(1 + T/alpha)`, without the cancellation
//! of `r ln(alpha) - (r+x) ln(alpha+T)` at huge `r`. Given the history, `lambda` is
//! `Gamma(r+x, alpha+T)`, so every prediction is a negative-binomial quantity in closed form.

use super::RfmModel;
use crate::data::Rfm;
use crate::dual::Dual;
use crate::error::Result;
use crate::fit::{
    check_params, fit, fit_with_warm_start, Domain, FitOptions, FitResult, Likelihood, ParamSpec,
};
use crate::parallel::Exec;
use crate::special::{ln_gamma_diff, ln_negative_binomial_pmf};

/// Parameter names and domains: r, alpha (the gamma distribution of the purchase rate).
pub static PARAMS: [ParamSpec; 2] = [
    ParamSpec {
        name: "r",
        domain: Domain::Positive,
    },
    ParamSpec {
        name: "alpha",
        domain: Domain::Positive,
    },
];

/// NBD parameters.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct NbdParams {
    pub r: f64,
    pub alpha: f64,
}

impl NbdParams {
    pub const fn new(r: f64, alpha: f64) -> Self {
        NbdParams { r, alpha }
    }

    /// `ln P(N = n)` for the count `N` of purchases in a span `t` of a customer whose rate is
    /// `Gamma(shape, rate)`: negative binomial with success weight `t / (rate + t)`.
    fn ln_count_pmf(shape: f64, rate: f64, n: f64, t: f64) -> f64 {
        let ln_w = (t / (rate + t)).ln();
        let ln_1mw = -(t / rate).ln_1p();
        ln_negative_binomial_pmf(shape, n, ln_w, ln_1mw)
    }
}

/// One customer's log-likelihood over dual numbers (value and gradient in r, alpha).
fn row_log_likelihood(p: [Dual<2>; 2], x: f64, _t_x: f64, age: f64) -> Dual<2> {
    let [r, alpha] = p;
    r.ln_gamma_ratio(x) - alpha.ln() * x - (r + x) * (alpha.recip() * age).ln_1p()
}

/// One customer's log-likelihood.
pub fn log_likelihood(p: &NbdParams, x: f64, age: f64) -> f64 {
    ln_gamma_diff(p.r, x) - x * p.alpha.ln() - (p.r + x) * (age / p.alpha).ln_1p()
}

/// The likelihood over compressed rows, for the fitting engine.
pub struct Nbd<'a> {
    pub data: &'a Rfm,
}

impl Likelihood for Nbd<'_> {
    fn params(&self) -> &[ParamSpec] {
        &PARAMS
    }

    fn starts(&self) -> Vec<Vec<f64>> {
        let (alpha, _) = self.data.start_scales();
        vec![
            vec![1.0, alpha],
            vec![0.3, 0.3 * alpha],
            vec![3.0, 3.0 * alpha],
        ]
    }

    fn total_weight(&self) -> f64 {
        self.data.total_weight()
    }

    fn loglik_and_gradient(&self, params: &[f64], exec: &Exec) -> (f64, Vec<f64>) {
        super::sum_dual_rows::<2>(self.data, params, exec, row_log_likelihood)
    }
}

impl RfmModel for NbdParams {
    const NAME: &'static str = "nbd";

    fn specs() -> &'static [ParamSpec] {
        &PARAMS
    }

    fn from_slice(values: &[f64]) -> Result<Self> {
        check_params(&PARAMS, values)?;
        Ok(NbdParams::new(values[0], values[1]))
    }

    fn fit(data: &Rfm, opts: &FitOptions<'_>) -> Result<FitResult> {
        fit_with_warm_start(
            data,
            data.len(),
            Rfm::subsample,
            |d, o| fit(&Nbd { data: d }, o),
            opts,
        )
    }

    fn log_likelihood(&self, x: f64, _t_x: f64, age: f64) -> f64 {
        log_likelihood(self, x, age)
    }

    /// No dropout: every customer is alive.
    fn probability_alive(&self, _x: f64, _t_x: f64, _age: f64) -> f64 {
        1.0
    }

    fn probability_alive_after(&self, _x: f64, _t_x: f64, _age: f64, _t: f64) -> Option<f64> {
        Some(1.0)
    }

    /// `t E[lambda | x, T] = t (r + x) / (alpha + T)`.
    fn conditional_expected_purchases(&self, x: f64, _t_x: f64, age: f64, t: f64) -> f64 {
        t * (self.r + x) / (self.alpha + age)
    }

    fn expected_purchases_new_customer(&self, t: f64) -> f64 {
        t * self.r / self.alpha
    }

    fn purchase_count_probability(&self, n: u64, t: f64) -> Option<f64> {
        if t == 0.0 {
            return Some(if n == 0 { 1.0 } else { 0.0 });
        }
        Some(NbdParams::ln_count_pmf(self.r, self.alpha, n as f64, t).exp())
    }

    fn conditional_purchase_count_probability(
        &self,
        n: u64,
        x: f64,
        _t_x: f64,
        age: f64,
        t: f64,
    ) -> Option<f64> {
        if t == 0.0 {
            return Some(if n == 0 { 1.0 } else { 0.0 });
        }
        Some(NbdParams::ln_count_pmf(self.r + x, self.alpha + age, n as f64, t).exp())
    }

    /// `E[lambda | x, T] / delta`: the discounted stream of a Poisson process that never ends.
    fn expected_residual_transactions(
        &self,
        x: f64,
        _t_x: f64,
        age: f64,
        rate: f64,
    ) -> Option<f64> {
        Some((self.r + x) / ((self.alpha + age) * rate))
    }

    fn simulate(&self, ages: &[f64], seed: u64) -> Option<(Vec<f64>, Vec<f64>)> {
        let mut x = Vec::with_capacity(ages.len());
        let mut t_x = Vec::with_capacity(ages.len());
        for (i, &age) in ages.iter().enumerate() {
            let mut rng = crate::random::Rng::for_stream(seed, i as u64);
            let lambda = rng.gamma(self.r) / self.alpha;
            let (mut count, mut last, mut now) = (0.0, 0.0, 0.0);
            loop {
                now += rng.exponential(lambda);
                if !(now <= age) {
                    break;
                }
                count += 1.0;
                last = now;
            }
            x.push(count);
            t_x.push(last);
        }
        Some((x, t_x))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::RfmColumns;
    use crate::models::testing::{assert_gradient_matches, rel};
    use crate::special::ln_gamma;

    #[test]
    fn likelihood_is_the_formula_and_its_gradient_is_exact() {
        let p = NbdParams::new(0.35, 5.8);
        for &(x, age) in &[(0.0, 10.0), (3.0, 52.0), (40.0, 104.0), (1.0, 0.5)] {
            let direct = ln_gamma(p.r + x) - ln_gamma(p.r) + p.r * p.alpha.ln()
                - (p.r + x) * (p.alpha + age).ln();
            assert!(rel(log_likelihood(&p, x, age), direct) < 1e-13);
        }
        let (x, t_x, age) = (
            vec![0.0, 2.0, 7.0],
            vec![0.0, 1.0, 6.0],
            vec![5.0, 9.0, 30.0],
        );
        let data = RfmColumns::new(&x, &t_x, &age).compress();
        let lik = Nbd { data: &data };
        let at = [0.7, 3.1];
        let (_, g) = lik.loglik_and_gradient(&at, &Exec::Serial);
        assert_gradient_matches(
            |q| lik.loglik_and_gradient(q, &Exec::Serial).0,
            &g,
            &at,
            1e-7,
        );
    }

    #[test]
    fn predictions_are_negative_binomial() {
        let p = NbdParams::new(0.5, 4.0);
        // P(X(t) = n) sums to 1 and its mean is r t / alpha.
        let t = 6.0;
        let (mut total, mut mean) = (0.0, 0.0);
        for n in 0..400 {
            let q = p.purchase_count_probability(n, t).unwrap();
            total += q;
            mean += n as f64 * q;
        }
        assert!((total - 1.0).abs() < 1e-13);
        assert!(rel(mean, p.expected_purchases_new_customer(t)) < 1e-12);
        // Conditional: the same with (r + x, alpha + T).
        let (x, age) = (3.0, 20.0);
        let mut mean = 0.0;
        for n in 0..400 {
            mean += n as f64
                * p.conditional_purchase_count_probability(n, x, 0.0, age, t)
                    .unwrap();
        }
        assert!(rel(mean, p.conditional_expected_purchases(x, 5.0, age, t)) < 1e-12);
    }

    #[test]
    fn simulated_customers_recover_the_parameters() {
        let truth = NbdParams::new(0.8, 4.0);
        let ages: Vec<f64> = (0..40_000).map(|i| 20.0 + (i % 40) as f64).collect();
        let (x, t_x) = truth.simulate(&ages, 7).unwrap();
        let data = RfmColumns::new(&x, &t_x, &ages).compress();
        let res = NbdParams::fit(&data, &FitOptions::default()).unwrap();
        assert!(res.converged, "{}", res.termination);
        let se = res.standard_errors().unwrap();
        for (i, want) in [truth.r, truth.alpha].iter().enumerate() {
            assert!(
                (res.params[i] - want).abs() < 4.0 * se[i],
                "{:?} vs {want} (se {se:?})",
                res.params
            );
        }
    }
}
