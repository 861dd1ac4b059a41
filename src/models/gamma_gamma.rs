//! Gamma-Gamma model of spend per transaction: Fader, Hardie & Lee (2005), "RFM and CLV: Using
//! Iso-Value Curves for Customer Base Analysis", Journal of Marketing Research 42(4), 415-430,
//! after Colombo & Jiang (1999).
//!
//! A customer's transaction values are `Gamma(p, nu)` with `nu ~ Gamma(q, gamma)` across
//! customers, independent of the purchase process. The mean `mbar` of `x` transactions is
//! `Gamma(p x, nu x)`, and integrating out `nu` gives the likelihood of `mbar` (its density, the
//! convention of the paper and of `lifetimes`):
//!
//! ```text
//! ln L = ln Gamma(p x + q) - ln Gamma(p x) - ln Gamma(q) + q ln gamma + (p x - 1) ln mbar
//!        + p x ln x - (p x + q) ln(gamma + x mbar)
//! ```
//!
//! The conditional expected spend per transaction is `p (gamma + x mbar) / (p x + q - 1)` and
//! the population mean `p gamma / (q - 1)`; both exist only when the denominator is positive
//! (`q > 1`), which the predictions check instead of returning a negative number.

use ndarray::{array, Array2};

use crate::data::Spend;
use crate::error::{ClvError, Result};
use crate::fit::{
    check_params, fit, Domain, FitOptions, FitResult, FusedPass, Likelihood, ParamSpec,
};
use crate::parallel::Exec;
use crate::special::{
    binomial_deviance, digamma_diff, ln_beta_kernel, stirling_error, trigamma, HALF_LN_2PI,
};

/// Parameter names and domains: p (shape of transaction values), q, gamma (heterogeneity of
/// their scale).
pub static PARAMS: [ParamSpec; 3] = [
    ParamSpec {
        name: "p",
        domain: Domain::Positive,
    },
    ParamSpec {
        name: "q",
        domain: Domain::Positive,
    },
    ParamSpec {
        name: "gamma",
        domain: Domain::Positive,
    },
];

/// Gamma-Gamma parameters.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct GammaGammaParams {
    pub p: f64,
    pub q: f64,
    pub gamma: f64,
}

impl GammaGammaParams {
    pub const fn new(p: f64, q: f64, gamma: f64) -> Self {
        GammaGammaParams { p, q, gamma }
    }

    /// From values in the order of [`PARAMS`], checking their domains.
    pub fn from_slice(values: &[f64]) -> Result<Self> {
        check_params(&PARAMS, values)?;
        Ok(GammaGammaParams::new(values[0], values[1], values[2]))
    }

    /// Log-likelihood of one customer's mean spend `mbar` over `x > 0` transactions.
    pub fn log_likelihood(&self, x: f64, mbar: f64) -> f64 {
        let (p, q, g) = (self.p, self.q, self.gamma);
        row_log_likelihood(p * x, q, g, x * mbar, mbar)
    }

    /// The population mean spend per transaction, `p gamma / (q - 1)`; an error when `q <= 1`
    /// (the mean is infinite).
    pub fn population_mean(&self) -> Result<f64> {
        if !(self.q > 1.0) {
            return Err(undefined_mean(self.q));
        }
        let mean = self.p * self.gamma / (self.q - 1.0);
        if mean.is_finite() {
            return Ok(mean);
        }
        // p gamma alone may overflow where the mean does not.
        Ok(self.p / (self.q - 1.0) * self.gamma)
    }

    /// Expected spend per transaction of a customer with `x` repeat transactions of mean value
    /// `mbar` (the population mean when `x = 0`): `p (gamma + x mbar) / (p x + q - 1)`, the
    /// posterior mean of `p / nu`. An error when the posterior mean is infinite
    /// (`p x + q <= 1`).
    pub fn conditional_expected_spend(&self, x: f64, mbar: f64) -> Result<f64> {
        let denominator = self.p * x + self.q - 1.0;
        if x == 0.0 {
            return self.population_mean();
        }
        if !(denominator > 0.0) {
            return Err(undefined_mean(self.q));
        }
        // p (gamma + x mbar) / (p x + q - 1) as a weighted mean of the prior mean's numerator and
        // the observed mean, so that nothing overflows before the division (amounts near 1e299
        // with a fitted p near 1e150 would give inf for an answer near 1e299).
        let weight = 1.0 / (1.0 + (self.q - 1.0) / (self.p * x));
        Ok(weight / x * self.gamma + weight * mbar)
    }
}

fn undefined_mean(q: f64) -> ClvError {
    ClvError::invalid_parameter(
        "q",
        format!(
            "is {q}, at most 1: the spend distribution has no finite mean, so expected spend \
             (and value) is undefined; the fit may be dominated by a few very large \
             transactions (check monetary values for outliers, or cap them)"
        ),
    )
}

/// One row's log-likelihood (`xm = x m`):
///
/// ```text
/// ln Gamma(px+q) - ln Gamma(px) - ln Gamma(q) + q ln g + (px-1) ln m + px ln x - (px+q) ln(g+xm)
///   = ln(u^px (1-u)^q / B(px, q)) - ln m,   u = xm / (g + xm)
/// ```
///
/// in the second form ([`ln_beta_kernel`]), which stays exact when p, q and gamma are huge
/// (spend without heterogeneity), where the terms of the first would cancel.
#[inline]
fn row_log_likelihood(px: f64, q: f64, g: f64, xm: f64, m: f64) -> f64 {
    let total = g + xm;
    ln_beta_kernel(px, q, xm / total, g / total) - m.ln()
}

/// The Gamma-Gamma likelihood over compressed spend rows, for the fitting engine.
pub struct GammaGamma<'a> {
    data: &'a Spend,
    /// `ln m` of each row (the same in every evaluation).
    ln_monetary: Vec<f64>,
}

/// The terms of a row that depend on its frequency `x` only (not on its mean value), at given
/// parameters. Compressed rows are sorted by frequency and frequencies are few, so the sums
/// compute these once per run of equal `x` instead of once per row: the special functions are
/// most of a row's cost. Each value is the one the row formula would compute, and the row
/// combines them in the same order, so the sums are bit for bit those of the plain formula.
pub(crate) struct FrequencyTerms {
    pub(crate) x: f64,
    pub(crate) px: f64,
    /// `px + q`, the `n` of [`ln_beta_kernel`].
    pub(crate) n: f64,
    /// `ln(px q / n) / 2`.
    pub(crate) half_ln_abn: f64,
    pub(crate) stirling_px: f64,
    pub(crate) stirling_n: f64,
    pub(crate) digamma_px_q: f64,
    pub(crate) digamma_q_px: f64,
    /// `trigamma(px + q)` and `trigamma(px)` (second-order sums only).
    pub(crate) trigamma_n: f64,
    pub(crate) trigamma_px: f64,
}

impl FrequencyTerms {
    pub(crate) fn new(x: f64, p: f64, q: f64, pass: Pass) -> Self {
        let px = p * x;
        let n = px + q;
        let (digamma_px_q, digamma_q_px) = if pass.first {
            (digamma_diff(px, q), digamma_diff(q, px))
        } else {
            (0.0, 0.0)
        };
        let (trigamma_n, trigamma_px) = if pass.second {
            (trigamma(px + q), trigamma(px))
        } else {
            (0.0, 0.0)
        };
        FrequencyTerms {
            x,
            px,
            n,
            half_ln_abn: 0.5 * (px * q / n).ln(),
            stirling_px: stirling_error(px),
            stirling_n: stirling_error(n),
            digamma_px_q,
            digamma_q_px,
            trigamma_n,
            trigamma_px,
        }
    }

    /// One row's log-likelihood (less `ln m`) and its derivatives in `p` and `q`, at the row's
    /// scale `g`, amount `m`; `stirling_q` is `stirling_error(q)`. The base model's pass and the
    /// covariate model's (with a customer's own `g`) both read a row through this, so the two
    /// stay the same operations in the same order.
    #[inline(always)]
    pub(crate) fn row_first(&self, q: f64, g: f64, m: f64, stirling_q: f64) -> RowFirst {
        let x = self.x;
        let xm = x * m;
        let gxm = g + xm;
        // GammaGammaParams::log_likelihood(x, m) with `ln_beta_kernel` written out over the
        // cached terms (the same operations in the same order).
        let (share_xm, share_g) = (xm / gxm, g / gxm);
        let kernel = -binomial_deviance(self.px, self.n * share_xm)
            - binomial_deviance(q, self.n * share_g)
            + self.half_ln_abn
            - HALF_LN_2PI
            - self.stirling_px
            - stirling_q
            + self.stirling_n;
        RowFirst {
            kernel,
            // ln(x m) - ln(g + x m) and ln g - ln(g + x m), without cancellation.
            d_p: x * (self.digamma_px_q - (g / xm).ln_1p()),
            d_q: self.digamma_q_px - (xm / g).ln_1p(),
            xm,
            gxm,
        }
    }

    /// One row's second derivatives in `(p, p)`, `(p, q)` and `(q, q)`; `trigamma_q` is
    /// `trigamma(q)` (the scale's own derivatives depend on how a model parameterises it).
    #[inline(always)]
    pub(crate) fn row_second_pq(&self, trigamma_q: f64) -> [f64; 3] {
        let x = self.x;
        [
            x * x * (self.trigamma_n - self.trigamma_px),
            x * self.trigamma_n,
            self.trigamma_n - trigamma_q,
        ]
    }
}

/// What [`FrequencyTerms::row_first`] gives for one row.
pub(crate) struct RowFirst {
    /// The log-likelihood less `ln m`.
    pub(crate) kernel: f64,
    pub(crate) d_p: f64,
    pub(crate) d_q: f64,
    /// `x m` and `g + x m`, for the derivatives in the scale.
    pub(crate) xm: f64,
    pub(crate) gxm: f64,
}

/// Which sums a pass over the rows forms.
#[derive(Clone, Copy)]
pub(crate) struct Pass {
    pub(crate) first: bool,
    pub(crate) second: bool,
}

const FIRST: Pass = Pass {
    first: true,
    second: false,
};
const SECOND: Pass = Pass {
    first: false,
    second: true,
};
const FUSED: Pass = Pass {
    first: true,
    second: true,
};

impl<'a> GammaGamma<'a> {
    pub fn new(data: &'a Spend) -> Self {
        GammaGamma {
            data,
            ln_monetary: data.monetary.iter().map(|m| m.ln()).collect(),
        }
    }

    /// Per-row sums of the value and gradient (3) in slots 0..4 (`pass.first`) and of the
    /// Hessian's upper triangle (6) in slots 4..10 (`pass.second`).
    fn sums(&self, params: &[f64], exec: &Exec, pass: Pass) -> Vec<f64> {
        let (p, q, g) = (params[0], params[1], params[2]);
        let d = self.data;
        let tg_q = trigamma(q);
        let stirling_q = stirling_error(q);
        let width = if pass.second { 10 } else { 4 };
        exec.chunked_sum(d.len(), width, |range, acc| {
            let mut terms: Option<FrequencyTerms> = None;
            for i in range {
                let (x, m, w) = (d.frequency[i], d.monetary[i], d.weights[i]);
                let t = match &terms {
                    Some(t) if t.x.to_bits() == x.to_bits() => t,
                    _ => terms.insert(FrequencyTerms::new(x, p, q, pass)),
                };
                if pass.first {
                    let row = t.row_first(q, g, m, stirling_q);
                    acc[0] += w * (row.kernel - self.ln_monetary[i]);
                    acc[1] += w * row.d_p;
                    acc[2] += w * row.d_q;
                    acc[3] += w * (q / g - (t.px + q) / row.gxm);
                }
                if pass.second {
                    let gxm = g + x * m;
                    let [pp, pq, qq] = t.row_second_pq(tg_q);
                    // Upper triangle: pp, pq, pg, qq, qg, gg (after the 4 first-order slots).
                    acc[4] += w * pp;
                    acc[5] += w * pq;
                    acc[6] += w * -x / gxm;
                    acc[7] += w * qq;
                    acc[8] += w * (1.0 / g - 1.0 / gxm);
                    acc[9] += w * (-q / (g * g) + (t.px + q) / (gxm * gxm));
                }
            }
        })
    }
}

/// The symmetric Hessian from the upper triangle in slots 4..10 of a pass's sums.
fn hessian_of(acc: &[f64]) -> Array2<f64> {
    let h = |k: usize| acc[4 + k];
    array![[h(0), h(1), h(2)], [h(1), h(3), h(4)], [h(2), h(4), h(5)],]
}

impl Likelihood for GammaGamma<'_> {
    fn params(&self) -> &[ParamSpec] {
        &PARAMS
    }

    fn starts(&self) -> Vec<Vec<f64>> {
        // Moment-style start: mean spend m, p = 1, q = 2, gamma = m (population mean p g/(q-1)).
        let d = self.data;
        let total: f64 = d.weights.iter().sum();
        let mean = (0..d.len())
            .map(|i| d.monetary[i] * d.weights[i])
            .sum::<f64>()
            / total;
        let m = mean.clamp(1e-9, 1e15);
        vec![
            vec![1.0, 2.0, m],
            vec![5.0, 3.0, 0.5 * m],
            vec![0.5, 1.5, 2.0 * m],
        ]
    }

    fn total_weight(&self) -> f64 {
        self.data.weights.iter().sum()
    }

    fn loglik_and_gradient(&self, params: &[f64], exec: &Exec) -> (f64, Vec<f64>) {
        let acc = self.sums(params, exec, FIRST);
        (acc[0], acc[1..4].to_vec())
    }

    fn hessian(&self, params: &[f64], exec: &Exec) -> Option<Array2<f64>> {
        Some(hessian_of(&self.sums(params, exec, SECOND)))
    }

    fn loglik_gradient_hessian(&self, params: &[f64], exec: &Exec) -> Option<FusedPass> {
        let acc = self.sums(params, exec, FUSED);
        Some((acc[0], acc[1..4].to_vec(), hessian_of(&acc)))
    }
}

/// Fit Gamma-Gamma in the data's own units: the model is scale-equivariant (amounts times `c`
/// give the same `p` and `q`, `gamma` times `c`, and each row's log-likelihood minus `ln c`), so
/// the optimiser works on amounts divided by a power of two `c` near their geometric mean, and
/// the answer is mapped back exactly (division by a power of two rounds nothing). Amounts near
/// 1e299 or 1e-300 otherwise start and stop the search where the likelihood's terms lose their
/// digits (the old fit reported p = 3.6e167 "converged" on such data). With an L2 penalty on
/// the natural parameters the units matter, so penalised fits are left in the data's units.
///
/// The search takes Newton steps on the fused value/gradient/Hessian pass (three parameters,
/// and the pass costs little more than a gradient's): from the moment start it converges in
/// a few passes where L-BFGS took about 20, lands on the optimum to rounding rather than at
/// the gradient tolerance, and its last Hessian gives the covariance.
pub fn fit_in_units(data: &Spend, opts: &FitOptions<'_>) -> Result<FitResult> {
    let opts = &FitOptions {
        newton: true,
        ..opts.clone()
    };
    let total: f64 = data.weights.iter().sum();
    let mean_log2 = (0..data.len())
        .map(|i| data.weights[i] * data.monetary[i].log2())
        .sum::<f64>()
        / total;
    // Powers of two from 2^-1000 to 2^1000 are normal numbers.
    let k = mean_log2.round().clamp(-1000.0, 1000.0) as i32;
    if opts.penalizer != 0.0 || k == 0 || !mean_log2.is_finite() {
        return fit(&GammaGamma::new(data), opts);
    }
    let unit = 2f64.powi(k);
    let scaled = Spend {
        monetary: data.monetary.iter().map(|m| m / unit).collect(),
        ..data.clone()
    };
    let start = opts.start.as_ref().map(|s| vec![s[0], s[1], s[2] / unit]);
    let mut res = fit(
        &GammaGamma::new(&scaled),
        &FitOptions {
            start,
            ..opts.clone()
        },
    )?;
    res.params[2] *= unit;
    res.log_likelihood -= total * unit.ln();
    // Covariances scale with the units of the parameters involved (gamma is index 2). In
    // units near 1e300 (or 1e-300) gamma's variance overflows (or underflows): no standard
    // errors then, rather than infinite or zero ones.
    let units = [1.0, 1.0, unit];
    if let Some(cov) = res.covariance.take() {
        let mapped =
            Array2::from_shape_fn(cov.raw_dim(), |(i, j)| cov[[i, j]] * units[i] * units[j]);
        if mapped.diag().iter().all(|v| v.is_normal()) && mapped.iter().all(|v| v.is_finite()) {
            res.covariance = Some(mapped);
        } else {
            res.covariance_note = Some(
                "the variance of gamma is beyond double precision in the amounts' units, so \
                 there are no standard errors (amounts in other units, e.g. thousands, have \
                 them)"
                    .into(),
            );
        }
    }
    Ok(res)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::SpendColumns;
    use crate::fit::{fit, FitOptions};
    use crate::models::testing::{assert_gradient_matches, rel};

    /// Repeat buyers of the bundled CDNOW summary: (frequency, monetary_value).
    fn cdnow_spend() -> (Vec<f64>, Vec<f64>) {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/python/clvrs/datasets/data/cdnow_customers_summary_with_transactions.csv"
        );
        let text = std::fs::read_to_string(path).expect("bundled CDNOW summary with spend");
        let header: Vec<&str> = text.lines().next().unwrap().split(',').collect();
        let col = |name: &str| header.iter().position(|h| *h == name).unwrap();
        let (fx, fm) = (col("x"), col("zbar"));
        let (mut x, mut m) = (Vec::new(), Vec::new());
        for line in text.lines().skip(1) {
            let f: Vec<f64> = line.split(',').map(|v| v.parse().unwrap()).collect();
            x.push(f[fx]);
            m.push(f[fm]);
        }
        (x, m)
    }

    #[test]
    fn reproduces_the_published_cdnow_fit() {
        let (x, m) = cdnow_spend();
        let data = SpendColumns {
            frequency: &x,
            monetary: &m,
            weights: None,
        }
        .compress();
        assert_eq!(data.excluded, 1411.0);
        assert_eq!(data.weights.iter().sum::<f64>(), 946.0);
        let res = fit(&GammaGamma::new(&data), &FitOptions::default()).unwrap();
        assert!(res.converged, "{}", res.termination);
        // Published (6.25, 3.74, 15.44) from the unrounded spends; the shipped mean spends are
        // rounded to cents, which moves the third digit (see the Python tests for the figures).
        for (got, want) in res.params.iter().zip([6.25, 3.74, 15.44]) {
            assert!(rel(*got, want) < 0.01, "{:?}", res.params);
        }
        // The first ten customers' expected spends at the estimates, as published (to 0.01).
        let p = GammaGammaParams::from_slice(&res.params).unwrap();
        let want = [
            24.65, 18.91, 35.17, 35.17, 35.17, 71.46, 18.91, 35.17, 27.28, 35.17,
        ];
        for i in 0..10 {
            let got = p.conditional_expected_spend(x[i], m[i]).unwrap();
            assert!((got - want[i]).abs() < 0.01, "customer {i}: {got}");
        }
    }

    #[test]
    fn gradient_and_hessian_are_exact() {
        let (x, m) = cdnow_spend();
        let data = SpendColumns {
            frequency: &x,
            monetary: &m,
            weights: None,
        }
        .compress();
        let lik = GammaGamma::new(&data);
        let at = [5.0, 3.0, 14.0];
        let (_, g) = lik.loglik_and_gradient(&at, &Exec::Serial);
        assert_gradient_matches(
            |q| lik.loglik_and_gradient(q, &Exec::Serial).0,
            &g,
            &at,
            1e-6,
        );
        let h = lik.hessian(&at, &Exec::Serial).unwrap();
        for k in 0..3 {
            assert_gradient_matches(
                |q| lik.loglik_and_gradient(q, &Exec::Serial).1[k],
                h.row(k).as_slice().unwrap(),
                &at,
                1e-6,
            );
        }
        // The fused pass (Newton steps) gives the separate passes' numbers, bit for bit.
        let (fv, fg, fh) = lik.loglik_gradient_hessian(&at, &Exec::Serial).unwrap();
        assert_eq!((fv, fg), lik.loglik_and_gradient(&at, &Exec::Serial));
        assert_eq!(fh, h);
        let direct = (0..data.len())
            .map(|i| {
                data.weights[i]
                    * GammaGammaParams::new(5.0, 3.0, 14.0)
                        .log_likelihood(data.frequency[i], data.monetary[i])
            })
            .sum::<f64>();
        assert!(rel(lik.loglik_and_gradient(&at, &Exec::Serial).0, direct) < 1e-12);
    }

    #[test]
    fn fits_in_any_units() {
        // Amounts times 2^k for k far from 0, and times a non-power of ten: the same p and q,
        // gamma and the standard errors scaled, each row's log-likelihood less ln c.
        let (x, m) = cdnow_spend();
        let fit_scaled = |c: f64| {
            let m: Vec<f64> = m.iter().map(|v| v * c).collect();
            let data = SpendColumns {
                frequency: &x,
                monetary: &m,
                weights: None,
            }
            .compress();
            fit_in_units(&data, &FitOptions::default()).unwrap()
        };
        let plain = fit_scaled(1.0);
        let plain_cov = plain.covariance.clone().unwrap();
        for c in [1e299, 1e-300, 1e-5, 3e7] {
            let res = fit_scaled(c);
            assert!(res.converged, "{c}: {}", res.termination);
            assert!(
                rel(res.params[0], plain.params[0]) < 1e-6,
                "{c}: {:?}",
                res.params
            );
            assert!(
                rel(res.params[1], plain.params[1]) < 1e-6,
                "{c}: {:?}",
                res.params
            );
            assert!(
                rel(res.params[2] / c, plain.params[2]) < 1e-6,
                "{c}: {:?}",
                res.params
            );
            let shift = 946.0 * c.ln();
            assert!(
                (res.log_likelihood + shift - plain.log_likelihood).abs()
                    < 1e-6 * shift.abs().max(1.0)
            );
            match res.covariance {
                Some(cov) => {
                    assert!(rel(cov[[2, 2]] / c / c, plain_cov[[2, 2]]) < 1e-4, "{c}");
                    assert!(rel(cov[[0, 2]] / c, plain_cov[[0, 2]]) < 1e-4, "{c}");
                    assert!(rel(cov[[0, 1]], plain_cov[[0, 1]]) < 1e-4, "{c}");
                }
                // gamma's variance is beyond double precision in these units.
                None => assert!(c.abs().log10().abs() > 150.0 && res.covariance_note.is_some()),
            }
        }
    }

    #[test]
    fn undefined_means_are_refused() {
        let p = GammaGammaParams::new(2.0, 0.9, 10.0);
        assert!(p.population_mean().is_err());
        assert!(p.conditional_expected_spend(0.0, 0.0).is_err());
        // With enough transactions the posterior mean exists again (p x + q > 1).
        assert!(p.conditional_expected_spend(3.0, 20.0).unwrap() > 0.0);
        let tiny = GammaGammaParams::new(0.01, 0.5, 10.0);
        assert!(tiny.conditional_expected_spend(2.0, 20.0).is_err());
    }
}
