//! Prior distributions of the Bayesian fits: a small named set, each with its log-density and
//! its derivative on the natural scale of a parameter.
//!
//! Densities are normalised (so that log posterior values are comparable across priors), except
//! [`Prior::Flat`], which is the improper constant density on the parameter's domain.

use serde::{Deserialize, Serialize};

use crate::error::{ClvError, Result};
use crate::fit::{Domain, ParamSpec};
use crate::special::{ln_beta, ln_gamma};

const LN_2: f64 = std::f64::consts::LN_2;
/// ln(pi) and ln(sqrt(2 pi)), correctly rounded.
const LN_PI: f64 = 1.144_729_885_849_400_2;
const LN_SQRT_2PI: f64 = 0.918_938_533_204_672_8;

/// A prior distribution of one parameter (natural scale).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(tag = "dist", rename_all = "snake_case")]
pub enum Prior {
    /// The constant (improper) density on the parameter's domain.
    Flat,
    /// Gamma with `shape` and `rate` (mean `shape / rate`).
    Gamma { shape: f64, rate: f64 },
    /// |N(0, sigma^2)| on (0, inf).
    HalfNormal { sigma: f64 },
    /// |Cauchy(0, scale)| on (0, inf).
    HalfCauchy { scale: f64 },
    /// |Student-t(nu, 0, sigma)| on (0, inf).
    HalfStudentT { nu: f64, sigma: f64 },
    /// exp(N(mu, sigma^2)) on (0, inf).
    #[serde(rename = "lognormal")]
    LogNormal { mu: f64, sigma: f64 },
    /// Weibull with `shape` k and `scale` lambda: density `k/lambda (x/lambda)^(k-1)
    /// exp(-(x/lambda)^k)` (PyMC's `Weibull(alpha=k, beta=lambda)`).
    Weibull { shape: f64, scale: f64 },
    /// Pareto with tail index `alpha` on `[m, inf)`: density `alpha m^alpha / x^(alpha+1)`.
    Pareto { alpha: f64, m: f64 },
    /// N(mu, sigma^2) (covariate coefficients).
    Normal { mu: f64, sigma: f64 },
    /// Beta(a, b) on (0, 1).
    Beta { a: f64, b: f64 },
    /// Uniform on (lower, upper).
    Uniform { lower: f64, upper: f64 },
}

impl Prior {
    /// The prior's name as users write it.
    pub fn name(&self) -> &'static str {
        match self {
            Prior::Flat => "flat",
            Prior::Gamma { .. } => "gamma",
            Prior::HalfNormal { .. } => "half_normal",
            Prior::HalfCauchy { .. } => "half_cauchy",
            Prior::HalfStudentT { .. } => "half_student_t",
            Prior::LogNormal { .. } => "lognormal",
            Prior::Weibull { .. } => "weibull",
            Prior::Pareto { .. } => "pareto",
            Prior::Normal { .. } => "normal",
            Prior::Beta { .. } => "beta",
            Prior::Uniform { .. } => "uniform",
        }
    }

    /// Check the hyperparameters, and that the prior's support lies inside `domain` and
    /// covers some of it (`what` names the parameter in errors).
    pub fn check(&self, domain: Domain, what: &str) -> Result<()> {
        let bad = |rule: &str| {
            Err(ClvError::invalid_parameter(
                "priors",
                format!("{what}: {} prior {rule}", self.name()),
            ))
        };
        let positive = |v: f64| v.is_finite() && v > 0.0;
        let ok = match *self {
            Prior::Flat => true,
            Prior::Gamma { shape, rate } => positive(shape) && positive(rate),
            Prior::HalfNormal { sigma } => positive(sigma),
            Prior::HalfCauchy { scale } => positive(scale),
            Prior::HalfStudentT { nu, sigma } => positive(nu) && positive(sigma),
            Prior::LogNormal { mu, sigma } => mu.is_finite() && positive(sigma),
            Prior::Weibull { shape, scale } => positive(shape) && positive(scale),
            Prior::Pareto { alpha, m } => positive(alpha) && positive(m),
            Prior::Normal { mu, sigma } => mu.is_finite() && positive(sigma),
            Prior::Beta { a, b } => positive(a) && positive(b),
            Prior::Uniform { lower, upper } => {
                lower.is_finite() && upper.is_finite() && lower < upper
            }
        };
        if !ok {
            return bad("has hyperparameters outside their range (scales, shapes and rates must be finite and > 0; bounds finite with lower < upper)");
        }
        let fits = match (self, domain) {
            (Prior::Flat, _) => true,
            (Prior::Normal { .. }, Domain::Real) => true,
            (Prior::Normal { .. }, _) => false,
            (Prior::Beta { .. }, Domain::UnitInterval) => true,
            (Prior::Beta { .. }, _) => false,
            (Prior::Uniform { lower, upper }, Domain::Positive) => *lower >= 0.0 && upper > lower,
            (Prior::Uniform { lower, upper }, Domain::UnitInterval) => {
                *lower >= 0.0 && *upper <= 1.0
            }
            (Prior::Uniform { .. }, Domain::Real) => false,
            // The positive families.
            (_, Domain::Positive) => true,
            (_, _) => false,
        };
        if !fits {
            let domain = match domain {
                Domain::Positive => "(0, inf)",
                Domain::UnitInterval => "(0, 1)",
                Domain::Real => "the real line",
            };
            return bad(&format!(
                "does not match the parameter's domain {domain} (positive parameters take \
                 gamma, half_normal, half_cauchy, half_student_t, lognormal, weibull, pareto, \
                 uniform or flat; probabilities beta, uniform or flat; coefficients normal or \
                 flat)"
            ));
        }
        Ok(())
    }

    /// The log-density at `x` and its derivative; `None` outside the support.
    pub fn log_density(&self, x: f64) -> Option<(f64, f64)> {
        let out = match *self {
            Prior::Flat => (0.0, 0.0),
            Prior::Gamma { shape, rate } => {
                if !(x > 0.0) {
                    return None;
                }
                (
                    shape * rate.ln() - ln_gamma(shape) + (shape - 1.0) * x.ln() - rate * x,
                    (shape - 1.0) / x - rate,
                )
            }
            Prior::HalfNormal { sigma } => {
                if !(x >= 0.0) {
                    return None;
                }
                let z = x / sigma;
                (LN_2 - LN_SQRT_2PI - sigma.ln() - 0.5 * z * z, -z / sigma)
            }
            Prior::HalfCauchy { scale } => {
                if !(x >= 0.0) {
                    return None;
                }
                let z = x / scale;
                (
                    LN_2 - LN_PI - scale.ln() - z.mul_add(z, 1.0).ln(),
                    -2.0 * x / x.mul_add(x, scale * scale),
                )
            }
            Prior::HalfStudentT { nu, sigma } => {
                if !(x >= 0.0) {
                    return None;
                }
                let z = x / sigma;
                let c = LN_2 + ln_gamma(0.5 * (nu + 1.0))
                    - ln_gamma(0.5 * nu)
                    - 0.5 * (nu.ln() + LN_PI)
                    - sigma.ln();
                (
                    c - 0.5 * (nu + 1.0) * (z * z / nu).ln_1p(),
                    -(nu + 1.0) * x / (nu * sigma * sigma + x * x),
                )
            }
            Prior::LogNormal { mu, sigma } => {
                if !(x > 0.0) {
                    return None;
                }
                let l = x.ln();
                let z = (l - mu) / sigma;
                (
                    -l - sigma.ln() - LN_SQRT_2PI - 0.5 * z * z,
                    -(1.0 + z / sigma) / x,
                )
            }
            Prior::Weibull { shape, scale } => {
                if !(x > 0.0) {
                    return None;
                }
                let z = x / scale;
                let zk = z.powf(shape);
                (
                    shape.ln() - scale.ln() + (shape - 1.0) * z.ln() - zk,
                    ((shape - 1.0) - shape * zk) / x,
                )
            }
            Prior::Pareto { alpha, m } => {
                if !(x >= m) {
                    return None;
                }
                (
                    alpha.ln() + alpha * m.ln() - (alpha + 1.0) * x.ln(),
                    -(alpha + 1.0) / x,
                )
            }
            Prior::Normal { mu, sigma } => {
                let z = (x - mu) / sigma;
                (-sigma.ln() - LN_SQRT_2PI - 0.5 * z * z, -z / sigma)
            }
            Prior::Beta { a, b } => {
                if !(x > 0.0 && x < 1.0) {
                    return None;
                }
                (
                    (a - 1.0) * x.ln() + (b - 1.0) * (-x).ln_1p() - ln_beta(a, b),
                    (a - 1.0) / x - (b - 1.0) / (1.0 - x),
                )
            }
            Prior::Uniform { lower, upper } => {
                if !(x > lower && x < upper) {
                    return None;
                }
                (-(upper - lower).ln(), 0.0)
            }
        };
        Some(out)
    }
}

/// One term of the log prior: a prior of one parameter, or a joint prior of two.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum PriorTerm {
    /// `prior` on parameter `index`.
    Single { index: usize, prior: Prior },
    /// The two shapes `(first, second) = (phi kappa, (1 - phi) kappa)` of a beta mixing
    /// distribution, with `phi = first / (first + second)` (its mean) ~ `mean` and
    /// `kappa = first + second` (its precision) ~ `precision`, as PyMC-Marketing
    /// parameterises the BG/NBD dropout and the BG/BB shapes. The density of the pair is
    /// `p(phi) p(kappa) / kappa` (the Jacobian of `(phi, kappa) -> (a, b)` is `kappa`).
    MeanPrecision {
        first: usize,
        second: usize,
        mean: Prior,
        precision: Prior,
    },
}

impl PriorTerm {
    /// Check the term against the model's parameters.
    pub fn check(&self, specs: &[ParamSpec]) -> Result<()> {
        let spec = |i: usize| {
            specs.get(i).ok_or_else(|| {
                ClvError::invalid_parameter(
                    "priors",
                    format!(
                        "parameter index {i} is out of range ({} parameters)",
                        specs.len()
                    ),
                )
            })
        };
        match self {
            PriorTerm::Single { index, prior } => {
                let s = spec(*index)?;
                prior.check(s.domain, s.name)
            }
            PriorTerm::MeanPrecision {
                first,
                second,
                mean,
                precision,
            } => {
                let (a, b) = (spec(*first)?, spec(*second)?);
                let what = format!("({}, {})", a.name, b.name);
                if first == second || a.domain != Domain::Positive || b.domain != Domain::Positive {
                    return Err(ClvError::invalid_parameter(
                        "priors",
                        format!("{what}: a mean/precision prior needs two positive parameters"),
                    ));
                }
                mean.check(Domain::UnitInterval, &format!("{what} mean"))?;
                precision.check(Domain::Positive, &format!("{what} precision"))
            }
        }
    }

    /// Add the term's log-density at `theta` to `total` and its gradient to `grad` (natural
    /// scale); false outside the support.
    pub fn add(&self, theta: &[f64], total: &mut f64, grad: &mut [f64]) -> bool {
        match *self {
            PriorTerm::Single { index, prior } => match prior.log_density(theta[index]) {
                Some((v, d)) => {
                    *total += v;
                    grad[index] += d;
                    true
                }
                None => false,
            },
            PriorTerm::MeanPrecision {
                first,
                second,
                mean,
                precision,
            } => {
                let (a, b) = (theta[first], theta[second]);
                let kappa = a + b;
                let phi = a / kappa;
                let (Some((lp, dp)), Some((lk, dk))) =
                    (mean.log_density(phi), precision.log_density(kappa))
                else {
                    return false;
                };
                *total += lp + lk - kappa.ln();
                // d phi / d a = b / kappa^2, d phi / d b = -a / kappa^2; d kappa = 1 for both.
                let k2 = kappa * kappa;
                grad[first] += dp * b / k2 + dk - 1.0 / kappa;
                grad[second] += -dp * a / k2 + dk - 1.0 / kappa;
                true
            }
        }
    }

    /// The parameters the term covers.
    pub fn indices(&self) -> Vec<usize> {
        match *self {
            PriorTerm::Single { index, .. } => vec![index],
            PriorTerm::MeanPrecision { first, second, .. } => vec![first, second],
        }
    }
}

/// The default prior of a parameter: for a positive parameter, `LogNormal(ln s, 2)` with `s`
/// the model's own data-derived starting value (1 for the dimensionless shapes; a data scale
/// for parameters with units such as `alpha`, so that the prior says the same in any time or
/// currency unit): 95% of its mass within a factor of 50 either side of `s`. `Beta(1, 1)` for
/// a probability, `Normal(0, 2.5)` for a covariate coefficient.
pub fn default_prior(domain: Domain, start: f64) -> Prior {
    match domain {
        Domain::Positive => Prior::LogNormal {
            mu: if start.is_finite() && start > 0.0 {
                start.ln()
            } else {
                0.0
            },
            sigma: 2.0,
        },
        Domain::UnitInterval => Prior::Beta { a: 1.0, b: 1.0 },
        Domain::Real => Prior::Normal {
            mu: 0.0,
            sigma: 2.5,
        },
    }
}

/// The full set of prior terms: the given ones, and [`default_prior`] for every parameter no
/// given term covers. A parameter covered twice is refused.
pub fn complete_priors(
    specs: &[ParamSpec],
    given: &[PriorTerm],
    start: &[f64],
) -> Result<Vec<PriorTerm>> {
    let mut covered = vec![false; specs.len()];
    for term in given {
        term.check(specs)?;
        for i in term.indices() {
            if covered[i] {
                return Err(ClvError::invalid_parameter(
                    "priors",
                    format!("{} has more than one prior", specs[i].name),
                ));
            }
            covered[i] = true;
        }
    }
    let mut all = given.to_vec();
    for (i, spec) in specs.iter().enumerate() {
        if !covered[i] {
            all.push(PriorTerm::Single {
                index: i,
                prior: default_prior(spec.domain, start.get(i).copied().unwrap_or(1.0)),
            });
        }
    }
    all.sort_by_key(|t| t.indices()[0]);
    Ok(all)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Integral of exp(log density) over (lo, hi) by the composite Simpson rule on a log grid
    /// (the densities here are smooth and integrable there).
    fn mass(prior: &Prior, lo: f64, hi: f64) -> f64 {
        let n = 200_000;
        let (a, b) = (lo.ln(), hi.ln());
        let h = (b - a) / n as f64;
        let f = |u: f64| {
            let x = u.exp();
            prior.log_density(x).map_or(0.0, |(v, _)| v.exp() * x)
        };
        let mut s = f(a) + f(b);
        for i in 1..n {
            s += f(a + i as f64 * h) * if i % 2 == 1 { 4.0 } else { 2.0 };
        }
        s * h / 3.0
    }

    const POSITIVE: [Prior; 8] = [
        Prior::Gamma {
            shape: 2.5,
            rate: 0.7,
        },
        Prior::HalfNormal { sigma: 3.0 },
        Prior::HalfCauchy { scale: 2.0 },
        Prior::HalfStudentT {
            nu: 4.0,
            sigma: 10.0,
        },
        Prior::LogNormal {
            mu: 0.3,
            sigma: 1.2,
        },
        Prior::Weibull {
            shape: 2.0,
            scale: 10.0,
        },
        Prior::Pareto { alpha: 3.0, m: 1.0 },
        Prior::Uniform {
            lower: 0.5,
            upper: 4.0,
        },
    ];

    #[test]
    fn densities_integrate_to_one() {
        for prior in POSITIVE {
            // Heavy tails (Cauchy: mass 2/pi * atan(1e-12) beyond 1e12 * scale) are cut far out;
            // bounded supports are integrated over their own interval (Simpson needs smoothness).
            let (lo, hi) = match prior {
                Prior::Pareto { m, .. } => (m, 1e12),
                Prior::Uniform { lower, upper } => (lower * (1.0 + 1e-15), upper * (1.0 - 1e-15)),
                _ => (1e-12, 1e12),
            };
            let total = mass(&prior, lo, hi);
            let tol = if matches!(prior, Prior::HalfCauchy { .. }) {
                1e-6
            } else {
                1e-7
            };
            assert!((total - 1.0).abs() < tol, "{prior:?}: {total}");
        }
        let beta = Prior::Beta { a: 2.0, b: 3.5 };
        let total = mass(&beta, 1e-12, 1.0 - 1e-16);
        assert!((total - 1.0).abs() < 1e-7, "{total}");
    }

    #[test]
    fn derivatives_match_finite_differences() {
        let mut all = POSITIVE.to_vec();
        all.push(Prior::Normal {
            mu: -1.0,
            sigma: 0.5,
        });
        all.push(Prior::Beta { a: 2.0, b: 3.5 });
        for prior in all {
            for x in [0.13, 0.77, 1.9, 3.3] {
                let Some((_, d)) = prior.log_density(x) else {
                    continue;
                };
                let h = 1e-6 * x;
                let (up, _) = prior.log_density(x + h).unwrap();
                let (down, _) = prior.log_density(x - h).unwrap();
                let fd = (up - down) / (2.0 * h);
                assert!((fd - d).abs() < 1e-6 * (1.0 + d.abs()), "{prior:?} at {x}");
            }
        }
    }

    #[test]
    fn known_values() {
        // Exponential(2) = Gamma(1, 2) at 0.5: ln(2 e^-1).
        let (v, _) = Prior::Gamma {
            shape: 1.0,
            rate: 2.0,
        }
        .log_density(0.5)
        .unwrap();
        assert!((v - (2f64.ln() - 1.0)).abs() < 1e-14);
        // Half-Student-t with nu = 1 is the half-Cauchy.
        let t = Prior::HalfStudentT {
            nu: 1.0,
            sigma: 2.0,
        }
        .log_density(1.3)
        .unwrap();
        let c = Prior::HalfCauchy { scale: 2.0 }.log_density(1.3).unwrap();
        assert!((t.0 - c.0).abs() < 1e-13 && (t.1 - c.1).abs() < 1e-13);
        assert!(Prior::Pareto { alpha: 1.0, m: 1.0 }
            .log_density(0.99)
            .is_none());
    }

    #[test]
    fn mean_precision_gradient_and_density() {
        let term = PriorTerm::MeanPrecision {
            first: 0,
            second: 1,
            mean: Prior::Uniform {
                lower: 0.0,
                upper: 1.0,
            },
            precision: Prior::Pareto { alpha: 1.0, m: 1.0 },
        };
        // Uniform mean, Pareto(1, 1) precision: p(a, b) = 1 / (a + b)^3 on a + b >= 1.
        let theta = [0.8, 2.4];
        let (mut v, mut g) = (0.0, [0.0; 2]);
        assert!(term.add(&theta, &mut v, &mut g));
        assert!((v + 3.0 * 3.2f64.ln()).abs() < 1e-14);
        assert!((g[0] + 3.0 / 3.2).abs() < 1e-14 && (g[1] + 3.0 / 3.2).abs() < 1e-14);
        let term = PriorTerm::MeanPrecision {
            first: 0,
            second: 1,
            mean: Prior::Beta { a: 2.0, b: 5.0 },
            precision: Prior::Gamma {
                shape: 3.0,
                rate: 0.5,
            },
        };
        let (mut v, mut g) = (0.0, [0.0; 2]);
        term.add(&theta, &mut v, &mut g);
        for j in 0..2 {
            let mut up = theta;
            let mut down = theta;
            up[j] += 1e-6;
            down[j] -= 1e-6;
            let (mut vu, mut vd, mut scratch) = (0.0, 0.0, [0.0; 2]);
            term.add(&up, &mut vu, &mut scratch);
            term.add(&down, &mut vd, &mut scratch);
            assert!(((vu - vd) / 2e-6 - g[j]).abs() < 1e-6, "{j}");
        }
    }

    #[test]
    fn mismatched_domains_are_refused() {
        let spec = [ParamSpec {
            name: "r",
            domain: Domain::Positive,
        }];
        let normal = PriorTerm::Single {
            index: 0,
            prior: Prior::Normal {
                mu: 0.0,
                sigma: 1.0,
            },
        };
        assert!(normal.check(&spec).is_err());
        let twice = [
            PriorTerm::Single {
                index: 0,
                prior: Prior::Flat,
            },
            PriorTerm::Single {
                index: 0,
                prior: Prior::Flat,
            },
        ];
        assert!(complete_priors(&spec, &twice, &[1.0]).is_err());
        let defaults = complete_priors(&spec, &[], &[4.0]).unwrap();
        assert_eq!(
            defaults,
            vec![PriorTerm::Single {
                index: 0,
                prior: Prior::LogNormal {
                    mu: 4f64.ln(),
                    sigma: 2.0
                }
            }]
        );
    }
}
