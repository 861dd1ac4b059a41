//! Shifted-beta-geometric (sBG): Fader & Hardie (2007), "How to Project Customer Retention",
//! Journal of Interactive Marketing 21(1), 76-90; value in Fader & Hardie (2010), "Customer-Base
//! Valuation in a Contractual Setting: The Perils of Ignoring Heterogeneity", Marketing Science
//! 29(1), 85-93.
//!
//! Each customer churns at the end of each period with a constant probability
//! `theta ~ Beta(alpha, beta)`:
//!
//! ```text
//! S(t) = B(alpha, beta + t) / B(alpha, beta),
//! P(T = t) = B(alpha + 1, beta + t - 1) / B(alpha, beta),
//! r(t) = (beta + t - 1) / (alpha + beta + t - 1)
//! ```
//!
//! It is the beta-discrete-Weibull model with `c = 1` and shares its code ([`super::bdw`]):
//! the likelihood over churn data (cohort counts or per-customer records), survival, retention,
//! renewals and DERL.

pub use super::bdw::{Bdw, BdwParams, ChurnData};

/// sBG parameters `alpha`, `beta` as BdW parameters with `c = 1`.
pub fn params(alpha: f64, beta: f64) -> BdwParams {
    BdwParams::new(alpha, beta, 1.0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fit::{fit, FitOptions};
    use crate::models::testing::rel;

    #[test]
    fn reproduces_the_published_cohorts() {
        let cohorts = [
            (
                [1000.0, 631.0, 468.0, 382.0, 326.0, 289.0, 262.0, 241.0],
                [0.704, 1.182],
                -1680.27,
            ),
            (
                [1000.0, 869.0, 743.0, 653.0, 593.0, 551.0, 517.0, 491.0],
                [0.668, 3.806],
                -1611.16,
            ),
        ];
        for (survivors, want, ll) in cohorts {
            let data = ChurnData::from_survivors(&survivors).unwrap();
            let res = fit(&Bdw::shifted_beta_geometric(&data), &FitOptions::default()).unwrap();
            assert!(res.converged, "{}", res.termination);
            for (got, want) in res.params.iter().zip(want) {
                assert!(rel(*got, want) < 1e-3, "{:?}", res.params);
            }
            assert!(
                (res.log_likelihood - ll).abs() < 0.01,
                "{}",
                res.log_likelihood
            );
            // The closed forms.
            let p = params(res.params[0], res.params[1]);
            let (a, b) = (res.params[0], res.params[1]);
            for t in 1..10 {
                let t = t as f64;
                let r = (b + t - 1.0) / (a + b + t - 1.0);
                assert!(rel(p.retention_rate(t), r) < 1e-12);
            }
        }
    }
}
