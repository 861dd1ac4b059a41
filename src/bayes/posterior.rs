//! The log posterior density of a model on the unconstrained scale, with its gradient: the
//! model's own likelihood pass ([`Likelihood::loglik_and_gradient`], over compressed rows on
//! the crate's pool) plus the log prior plus the log-Jacobian of the transforms.

use std::collections::HashMap;

use crate::fit::{Likelihood, ParamSpec};
use crate::parallel::Exec;

use super::prior::PriorTerm;

/// The log posterior of a model in unconstrained coordinates `u` (log for positive
/// parameters, logit for probabilities, identity for coefficients).
pub struct LogPosterior<'a, L: Likelihood> {
    pub(crate) lik: &'a L,
    pub(crate) specs: &'a [ParamSpec],
    pub(crate) priors: &'a [PriorTerm],
    pub(crate) exec: Exec,
}

impl<L: Likelihood> LogPosterior<'_, L> {
    /// The natural parameters at `u`.
    pub fn natural(&self, u: &[f64]) -> Vec<f64> {
        self.specs
            .iter()
            .zip(u)
            .map(|(s, &v)| s.domain.to_natural(v))
            .collect()
    }

    /// `log p(theta(u) | data) + ln |d theta / d u|` (up to the evidence) and its gradient in
    /// `u`, written into `grad`; `None` when it is not finite there (outside a prior's support,
    /// or a transform overflowed).
    pub fn log_density(&self, u: &[f64], grad: &mut [f64]) -> Option<f64> {
        let theta = self.natural(u);
        if theta
            .iter()
            .zip(self.specs)
            .any(|(&t, s)| !s.domain.contains(t))
        {
            return None;
        }
        let mut total = 0.0;
        let mut g_theta = vec![0.0; theta.len()];
        for term in self.priors {
            if !term.add(&theta, &mut total, &mut g_theta) {
                return None;
            }
        }
        let (ll, g_ll) = self.lik.loglik_and_gradient(&theta, &self.exec);
        total += ll;
        for (i, spec) in self.specs.iter().enumerate() {
            let t = theta[i];
            let jacobian = spec.domain.jacobian(t);
            // ln |d theta / d u| is u (log) or ln theta (1 - theta) (logit): its derivative in
            // u is `curvature` (1, 1 - 2 theta, or 0).
            total += spec.domain.log_jacobian(u[i]);
            grad[i] = (g_theta[i] + g_ll[i]) * jacobian + spec.domain.curvature(t);
        }
        (total.is_finite() && grad.iter().all(|g| g.is_finite())).then_some(total)
    }
}

/// Why the log density has no value at a point (the sampler treats it as a divergence).
#[derive(Debug, thiserror::Error)]
#[error("the log posterior is not finite here")]
pub struct NotFinite;

impl nuts_rs::LogpError for NotFinite {
    fn is_recoverable(&self) -> bool {
        true
    }
}

/// [`LogPosterior`] as nuts-rs's density.
pub(crate) struct Density<'p, 'a, L: Likelihood> {
    pub(crate) posterior: &'p LogPosterior<'a, L>,
}

impl<L: Likelihood> nuts_rs::HasDims for Density<'_, '_, L> {
    fn dim_sizes(&self) -> HashMap<String, u64> {
        HashMap::from([(
            "unconstrained_parameter".to_string(),
            self.posterior.specs.len() as u64,
        )])
    }
}

impl<L: Likelihood> nuts_rs::CpuLogpFunc for Density<'_, '_, L> {
    type LogpError = NotFinite;
    type FlowParameters = ();
    // The draws are read from the positions the chain returns; nothing else is stored.
    type ExpandedVector = ();

    fn dim(&self) -> usize {
        self.posterior.specs.len()
    }

    fn logp(&mut self, position: &[f64], gradient: &mut [f64]) -> Result<f64, NotFinite> {
        self.posterior
            .log_density(position, gradient)
            .ok_or(NotFinite)
    }

    fn expand_vector<R>(
        &mut self,
        _rng: &mut R,
        _array: &[f64],
    ) -> Result<(), nuts_rs::CpuMathError>
    where
        R: nuts_rs::rand::Rng + ?Sized,
    {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bayes::prior::Prior;
    use crate::fit::Domain;

    /// `x ~ Gamma(k, rate theta)` observed: a likelihood in one positive parameter with a
    /// probability and a coefficient riding along (flat in the likelihood).
    struct Toy;

    static TOY: [ParamSpec; 3] = [
        ParamSpec {
            name: "theta",
            domain: Domain::Positive,
        },
        ParamSpec {
            name: "p",
            domain: Domain::UnitInterval,
        },
        ParamSpec {
            name: "beta",
            domain: Domain::Real,
        },
    ];

    impl Likelihood for Toy {
        fn params(&self) -> &[ParamSpec] {
            &TOY
        }
        fn starts(&self) -> Vec<Vec<f64>> {
            vec![vec![1.0, 0.5, 0.0]]
        }
        fn total_weight(&self) -> f64 {
            1.0
        }
        fn loglik_and_gradient(&self, p: &[f64], _exec: &Exec) -> (f64, Vec<f64>) {
            // ln L = 3 ln theta - 2 theta + 4 ln p + ln(1 - p) - beta^2 / 2.
            let (t, q, b) = (p[0], p[1], p[2]);
            (
                3.0 * t.ln() - 2.0 * t + 4.0 * q.ln() + (-q).ln_1p() - 0.5 * b * b,
                vec![3.0 / t - 2.0, 4.0 / q - 1.0 / (1.0 - q), -b],
            )
        }
    }

    #[test]
    fn gradient_matches_finite_differences_and_jacobians_are_included() {
        let priors = [
            PriorTerm::Single {
                index: 0,
                prior: Prior::Gamma {
                    shape: 2.0,
                    rate: 1.0,
                },
            },
            PriorTerm::Single {
                index: 1,
                prior: Prior::Beta { a: 2.0, b: 2.0 },
            },
            PriorTerm::Single {
                index: 2,
                prior: Prior::Normal {
                    mu: 0.0,
                    sigma: 1.0,
                },
            },
        ];
        let post = LogPosterior {
            lik: &Toy,
            specs: &TOY,
            priors: &priors,
            exec: Exec::Serial,
        };
        let u = [0.3, -0.4, 0.7];
        let mut g = [0.0; 3];
        let v = post.log_density(&u, &mut g).unwrap();
        // By hand: theta = e^u0 has posterior Gamma(3 + 2, 2 + 1) in theta, so in u0 the
        // density is theta^5 e^(-3 theta) (one more power from the Jacobian) up to constants.
        let t = 0.3f64.exp();
        let q = 1.0 / (1.0 + 0.4f64.exp());
        let want_u0 = 5.0 - 3.0 * t;
        assert!((g[0] - want_u0).abs() < 1e-12, "{} vs {want_u0}", g[0]);
        // p: likelihood p^4 (1 - p), prior p (1 - p) (times 6), Jacobian p (1 - p):
        // p^6 (1 - p)^3, whose u-derivative is 6 (1 - p) - 3 p.
        assert!((g[1] - (6.0 * (1.0 - q) - 3.0 * q)).abs() < 1e-12);
        assert!((g[2] - (-2.0 * 0.7)).abs() < 1e-12);
        for j in 0..3 {
            let (mut up, mut down) = (u, u);
            up[j] += 1e-6;
            down[j] -= 1e-6;
            let mut scratch = [0.0; 3];
            let fd = (post.log_density(&up, &mut scratch).unwrap()
                - post.log_density(&down, &mut scratch).unwrap())
                / 2e-6;
            assert!((fd - g[j]).abs() < 1e-6, "{j}: {fd} vs {}", g[j]);
        }
        assert!(v.is_finite());
        // Outside a prior's support there is no value.
        let bounded = [PriorTerm::Single {
            index: 0,
            prior: Prior::Pareto { alpha: 1.0, m: 2.0 },
        }];
        let post = LogPosterior {
            lik: &Toy,
            specs: &TOY,
            priors: &bounded,
            exec: Exec::Serial,
        };
        assert!(post.log_density(&[0.0, 0.0, 0.0], &mut g).is_none());
    }
}
