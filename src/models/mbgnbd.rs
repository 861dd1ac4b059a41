//! MBG/NBD: the modified beta-geometric / negative-binomial model of Batislam, Denizel &
//! Filiztekin (2007), "Empirical validation and comparison of models for customer base
//! analysis", International Journal of Research in Marketing 24(3), 201-209.
//!
//! BG/NBD with one more dropout coin, tossed right after the first purchase, so that a customer
//! with no repeat purchases may also be gone. For a customer with `x` repeat purchases, the last
//! at `t_x`, observed for `T`:
//!
//! ```text
//! L = B(a, b+x+1)/B(a, b) * Gamma(r+x) alpha^r / (Gamma(r) (alpha+T)^(r+x))
//!   +   B(a+1, b+x)/B(a, b) * Gamma(r+x) alpha^r / (Gamma(r) (alpha+t_x)^(r+x))
//! ```
//!
//! Every BG/NBD formula depends on the dropout process only through the number of coins an
//! active customer has survived (`x` there, `x + 1` here), so the model is the BG/NBD code with
//! [`BgNbdParams::modified`] set: the same likelihood kernel, analytic gradient and Hessian, and
//! predictions (see [`super::bgnbd`]), through one implementation for the BG/NBD family
//! ([`BgFamily`]).

use super::bgnbd::{BgFamily, BgNbdParams};

/// MBG/NBD parameters r, alpha (purchase rate), a, b (dropout), as BG/NBD parameters with
/// [`BgNbdParams::modified`] set.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MbgNbdParams(pub BgNbdParams);

impl MbgNbdParams {
    pub const fn new(r: f64, alpha: f64, a: f64, b: f64) -> Self {
        let mut p = BgNbdParams::new(r, alpha, a, b);
        p.modified = true;
        MbgNbdParams(p)
    }
}

impl BgFamily for MbgNbdParams {
    const MODEL_NAME: &'static str = "mbgnbd";
    const MODIFIED: bool = true;

    fn bg(&self) -> &BgNbdParams {
        &self.0
    }

    fn from_bg(p: BgNbdParams) -> Self {
        MbgNbdParams(p)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fit::{FitOptions, Likelihood};
    use crate::models::bgnbd::{self, BgNbd};
    use crate::models::testing::{assert_gradient_matches, cdnow, rel};
    use crate::models::RfmModel;
    use crate::parallel::Exec;
    use crate::special::ln_beta;

    const CDNOW_MBG: MbgNbdParams = MbgNbdParams::new(0.525, 6.183, 0.891, 1.614);

    /// The likelihood written out from the paper, term by term.
    fn direct_log_likelihood(p: &BgNbdParams, x: f64, t_x: f64, age: f64) -> f64 {
        use crate::special::ln_gamma;
        let (r, alpha, a, b) = (p.r, p.alpha, p.a, p.b);
        let c = ln_gamma(r + x) - ln_gamma(r) + r * alpha.ln() - ln_beta(a, b);
        let alive = ln_beta(a, b + x + 1.0) - (r + x) * (alpha + age).ln();
        let gone = ln_beta(a + 1.0, b + x) - (r + x) * (alpha + t_x).ln();
        c + (alive.exp() + gone.exp()).ln()
    }

    #[test]
    fn likelihood_matches_the_paper_and_its_gradient_and_hessian() {
        let rows = [
            (0.0, 0.0, 10.0),
            (1.0, 3.0, 20.0),
            (5.0, 30.0, 31.0),
            (12.0, 7.5, 7.5),
        ];
        for &(x, t_x, age) in &rows {
            let direct = direct_log_likelihood(&CDNOW_MBG.0, x, t_x, age);
            let got = CDNOW_MBG.log_likelihood(x, t_x, age);
            assert!(rel(got, direct) < 1e-12, "{got} vs {direct}");
        }
        let data = cdnow();
        let lik = BgNbd::modified(&data);
        let at = [0.4, 5.0, 0.7, 1.9];
        let (_, gradient) = lik.loglik_and_gradient(&at, &Exec::Serial);
        let value = |p: &[f64]| lik.loglik_and_gradient(p, &Exec::Serial).0;
        assert_gradient_matches(value, &gradient, &at, 1e-6);
        let hessian = lik.hessian(&at, &Exec::Serial).unwrap();
        for k in 0..4 {
            let row_value = |p: &[f64]| lik.loglik_and_gradient(p, &Exec::Serial).1[k];
            assert_gradient_matches(row_value, hessian.row(k).as_slice().unwrap(), &at, 1e-5);
        }
    }

    #[test]
    fn reproduces_the_published_cdnow_fit() {
        let data = cdnow();
        let res = MbgNbdParams::fit(&data, &FitOptions::default()).unwrap();
        assert!(res.converged, "{}", res.termination);
        for (got, want) in res.params.iter().zip([0.525, 6.183, 0.891, 1.614]) {
            assert!(rel(*got, want) < 1e-3, "{:?}", res.params);
        }
        assert!(
            (res.log_likelihood + 9582.13).abs() < 0.05,
            "{}",
            res.log_likelihood
        );
    }

    #[test]
    fn predictions_agree_with_their_definitions() {
        let p = CDNOW_MBG;
        // A customer with no repeat purchase may be gone (unlike BG/NBD).
        let alive = p.probability_alive(0.0, 0.0, 30.0);
        let b = p.0.b;
        let a = p.0.a;
        let r = p.0.r;
        let alpha = p.0.alpha;
        let odds = a / b * ((alpha + 30.0) / alpha).powf(r);
        assert!(rel(alive, 1.0 / (1.0 + odds)) < 1e-13);
        // Purchase-count probabilities sum to one and their mean is E[X(t)].
        let t = 40.0;
        let (mut total, mut mean) = (0.0, 0.0);
        for n in 0..2000u64 {
            let q = p.purchase_count_probability(n, t).unwrap();
            total += q;
            mean += n as f64 * q;
        }
        assert!((total - 1.0).abs() < 1e-12, "{total}");
        let expected = p.expected_purchases_new_customer(t);
        assert!(rel(mean, expected) < 1e-10, "{mean} vs {expected}");
        // Simulation agrees with E[X(t)] for new customers.
        let ages = vec![t; 200_000];
        let (x, _) = bgnbd::simulate(&p.0, &ages, 5);
        let simulated = x.iter().sum::<f64>() / x.len() as f64;
        assert!(rel(simulated, expected) < 0.02, "{simulated} vs {expected}");
    }
}
