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

/// The affine coordinates the chains move in: `u = centre + L z`, with `centre` the posterior
/// mode in unconstrained coordinates and `L` a lower-triangular factor of the Laplace
/// covariance there (rows shrunk to at most unit length), so that the sampler sees a nearly
/// standard normal posterior from its first draw: its adaptation, which starts from a unit
/// mass matrix and has no way to be given another, then converges within a few draws, and the
/// correlations a diagonal mass matrix cannot undo (BG/NBD's `a` and `b`) are gone. The
/// density in `z` is the density in `u` times `det L`, a constant: the posterior is the same,
/// and draws are mapped back to `u` before they are stored.
#[derive(Debug, Clone, PartialEq)]
pub struct Whitening {
    /// The centre, in unconstrained coordinates.
    pub(crate) centre: Vec<f64>,
    /// `L`, row-major `k x k`, zero above the diagonal.
    pub(crate) factor: Vec<f64>,
}

impl Whitening {
    /// Unit scale around `centre` (the coordinates the sampler used before).
    pub fn unit(centre: Vec<f64>) -> Self {
        let k = centre.len();
        let mut factor = vec![0.0; k * k];
        for i in 0..k {
            factor[i * k + i] = 1.0;
        }
        Whitening { centre, factor }
    }

    /// Around `centre` with the unconstrained covariance `cov` (`k x k`): its Cholesky factor,
    /// each row scaled down to at most unit length (a standard deviation above 1 in log or
    /// logit coordinates says the Laplace approximation is poor there; the sampler then
    /// starts from the unit scale it always had). `None` when `cov` is not positive definite.
    pub fn laplace(centre: Vec<f64>, cov: ndarray::ArrayView2<'_, f64>) -> Option<Self> {
        let k = centre.len();
        let l = crate::fit::linalg::cholesky_factor(cov)?;
        let mut factor = vec![0.0; k * k];
        for i in 0..k {
            let length = (0..=i).map(|j| l[[i, j]] * l[[i, j]]).sum::<f64>().sqrt();
            let shrink = if length > 1.0 { 1.0 / length } else { 1.0 };
            for j in 0..=i {
                factor[i * k + j] = l[[i, j]] * shrink;
            }
            if !(factor[i * k + i] > 0.0) {
                return None;
            }
        }
        Some(Whitening { centre, factor })
    }

    /// `u = centre + L z`, into `u`.
    pub fn to_unconstrained(&self, z: &[f64], u: &mut [f64]) {
        let k = self.centre.len();
        for (i, out) in u.iter_mut().enumerate() {
            let row = &self.factor[i * k..i * k + i + 1];
            *out = self.centre[i] + row.iter().zip(z).map(|(l, z)| l * z).sum::<f64>();
        }
    }

    /// The gradient in `z` from the gradient in `u`: `L^T g_u`, into `g_z`.
    fn gradient_to_whitened(&self, g_u: &[f64], g_z: &mut [f64]) {
        let k = self.centre.len();
        for (j, out) in g_z.iter_mut().enumerate() {
            *out = (j..k).map(|i| self.factor[i * k + j] * g_u[i]).sum();
        }
    }
}

/// [`LogPosterior`] in the whitened coordinates `z` of a [`Whitening`], as nuts-rs's density.
pub(crate) struct Density<'p, 'a, L: Likelihood> {
    pub(crate) posterior: &'p LogPosterior<'a, L>,
    pub(crate) whitening: &'p Whitening,
    /// Scratch: the point and gradient in unconstrained coordinates.
    pub(crate) u: Vec<f64>,
    pub(crate) g_u: Vec<f64>,
}

impl<'p, 'a, L: Likelihood> Density<'p, 'a, L> {
    pub(crate) fn new(posterior: &'p LogPosterior<'a, L>, whitening: &'p Whitening) -> Self {
        let k = posterior.specs.len();
        Density {
            posterior,
            whitening,
            u: vec![0.0; k],
            g_u: vec![0.0; k],
        }
    }
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
        self.whitening.to_unconstrained(position, &mut self.u);
        let value = self
            .posterior
            .log_density(&self.u, &mut self.g_u)
            .ok_or(NotFinite)?;
        self.whitening.gradient_to_whitened(&self.g_u, gradient);
        // The density in `z` is this one times the constant `det L`, left out so that the
        // stored log density is the one in `u`, as before.
        gradient
            .iter()
            .all(|g| g.is_finite())
            .then_some(value)
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

    #[test]
    fn whitened_density_has_the_gradient_of_the_same_posterior() {
        let priors = [PriorTerm::Single {
            index: 0,
            prior: Prior::Gamma {
                shape: 2.0,
                rate: 1.0,
            },
        }];
        let post = LogPosterior {
            lik: &Toy,
            specs: &TOY,
            priors: &priors,
            exec: Exec::Serial,
        };
        // A correlated covariance, one of whose standard deviations (sqrt 4) is shrunk to 1.
        let cov = ndarray::arr2(&[[0.09, 0.02, 0.01], [0.02, 0.04, -0.05], [0.01, -0.05, 4.0]]);
        let centre = vec![0.2, -0.1, 0.3];
        let w = Whitening::laplace(centre.clone(), cov.view()).unwrap();
        let row_length = |i: usize| (0..3).map(|j| w.factor[i * 3 + j].powi(2)).sum::<f64>();
        assert!((row_length(0) - 0.09).abs() < 1e-15);
        assert!((row_length(1) - 0.04).abs() < 1e-15);
        assert!((row_length(2) - 1.0).abs() < 1e-12);
        let mut density = Density::new(&post, &w);
        use nuts_rs::CpuLogpFunc;
        let z = [0.5, -0.7, 0.4];
        let mut g = [0.0; 3];
        let v = density.logp(&z, &mut g).unwrap();
        // The value is the density in u at u = centre + L z.
        let mut u = [0.0; 3];
        w.to_unconstrained(&z, &mut u);
        let mut g_u = [0.0; 3];
        assert_eq!(v, post.log_density(&u, &mut g_u).unwrap());
        for j in 0..3 {
            let (mut up, mut down) = (z, z);
            up[j] += 1e-6;
            down[j] -= 1e-6;
            let mut scratch = [0.0; 3];
            let fd = (density.logp(&up, &mut scratch).unwrap()
                - density.logp(&down, &mut scratch).unwrap())
                / 2e-6;
            assert!((fd - g[j]).abs() < 1e-6, "{j}: {fd} vs {}", g[j]);
        }
        // The unit map is the identity around its centre.
        let unit = Whitening::unit(centre.clone());
        unit.to_unconstrained(&z, &mut u);
        for j in 0..3 {
            assert_eq!(u[j], centre[j] + z[j]);
        }
        // Not positive definite: no whitening.
        let bad = ndarray::arr2(&[[1.0, 2.0, 0.0], [2.0, 1.0, 0.0], [0.0, 0.0, 1.0]]);
        assert!(Whitening::laplace(centre, bad.view()).is_none());
    }
}
