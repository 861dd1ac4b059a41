//! GGompertz/NBD: Bemmaor & Glady (2012), "Modeling Purchasing Behavior with Sudden 'Death': A
//! Flexible Customer Lifetime Model", Management Science 58(5), 1012-1021.
//!
//! While active, a customer buys at Poisson rate `lambda ~ Gamma(r, alpha)`; the lifetime has a
//! Gompertz hazard `eta b e^(b tau)` with `eta ~ Gamma(s, beta)`, so that the lifetime survival is
//! the "gamma-Gompertz" `S(tau) = (beta / (beta + e^(b tau) - 1))^s` (Pareto/NBD is the limit
//! `b -> 0` with `beta / b` fixed). For a customer with `x` repeat purchases, the last at `t_x`,
//! observed for `T`:
//!
//! ```text
//! L = Gamma(r+x) alpha^r / Gamma(r)
//!     * [ (alpha+T)^-(r+x) S(T) + integral_{t_x}^{T} (alpha+tau)^-(r+x) f(tau) dtau ],
//! f(tau) = s b e^(b tau) beta^s / (beta + e^(b tau) - 1)^(s+1)
//! ```
//!
//! The integral has no usable closed form: it is computed by adaptive Gauss-Kronrod quadrature
//! over [`Dual`] numbers (value and exact gradient together), relative to the integrand at
//! `t_x`, in log form. Predictions follow [`super::lifetime`] with the posterior lifetime
//! `S(T + u) / S(T)`.

use super::lifetime::{self, Lifetime};
use super::RfmModel;
use crate::data::Rfm;
use crate::dual::Dual;
use crate::error::Result;
use crate::fit::{
    check_params, fit, fit_with_warm_start, Domain, FitOptions, FitResult, Likelihood, ParamSpec,
};
use crate::parallel::Exec;
use crate::quadrature::integrate_from_start;
use crate::special::logistic;

/// Parameter names and domains: r, alpha (purchase rate), b (Gompertz scale), s, beta (lifetime
/// heterogeneity).
pub static PARAMS: [ParamSpec; 5] = [
    ParamSpec {
        name: "r",
        domain: Domain::Positive,
    },
    ParamSpec {
        name: "alpha",
        domain: Domain::Positive,
    },
    ParamSpec {
        name: "b",
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

/// GGompertz/NBD parameters.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct GgNbdParams {
    pub r: f64,
    pub alpha: f64,
    pub b: f64,
    pub s: f64,
    pub beta: f64,
}

/// Relative accuracy of the likelihood's quadrature.
const QUADRATURE_TOLERANCE: f64 = 1e-13;
const QUADRATURE_MAX_INTERVALS: usize = 300;

/// `ln(beta + e^(b tau) - 1)` without overflow for large `b tau`.
fn ln_shifted_exp<const N: usize>(beta: Dual<N>, b_tau: Dual<N>) -> Dual<N> {
    if b_tau.v > 30.0 {
        // (beta - 1) e^(-b tau) > -1 because beta > 0.
        b_tau + ((beta - 1.0) * (-b_tau).exp()).ln_1p()
    } else {
        (beta + b_tau.exp_m1()).ln()
    }
}

/// `ln(1 + e^y (1 - e^(-z)))` for `z > 30`, the form the two log-ratios below take once
/// `e^z` is large: their direct forms would overflow `e^z` or its derivative (`tau e^(b tau)`
/// with respect to `b` overflows long before `e^(b tau)` itself for a huge age `tau`, leaving
/// NaN derivatives at an otherwise finite point). For `y > 30`, `e^(-y) - e^(-z)` lies in
/// `(-e^(-z), e^(-30))`, so where it cancels it is negligible next to `y`.
fn ln_1p_exp_scaled<const N: usize>(y: Dual<N>, z: Dual<N>) -> Dual<N> {
    if y.v > 30.0 {
        y + ((-y).exp() - (-z).exp()).ln_1p()
    } else {
        (y.exp() * -(-z).exp_m1()).ln_1p()
    }
}

/// `ln[(beta + e^(b tau) - 1) / beta]` (that is `-ln S(tau) / s`), precise when `e^(b tau)` is
/// small next to beta, where the plain difference of logs would lose it.
fn ln_shift_over_beta<const N: usize>(beta: Dual<N>, b_tau: Dual<N>) -> Dual<N> {
    if b_tau.v > 30.0 {
        // (e^(b tau) - 1) / beta = e^(b tau - ln beta) (1 - e^(-b tau)).
        ln_1p_exp_scaled(b_tau - beta.ln(), b_tau)
    } else {
        (b_tau.exp_m1() / beta).ln_1p()
    }
}

/// `ln[e^(b t) / (beta + e^(b t) - 1)]`, the log of [`hazard_weight`], without the cancellation
/// of `b t` against the log of the denominator when `b t` is large.
fn ln_hazard_weight<const N: usize>(beta: Dual<N>, b_t: Dual<N>) -> Dual<N> {
    if b_t.v > 30.0 {
        -((beta - 1.0) * (-b_t).exp()).ln_1p()
    } else {
        b_t - (beta + b_t.exp_m1()).ln()
    }
}

/// `e^(b t) / (beta + e^(b t) - 1)`, the share of the hazard at `t` (the hazard is
/// `s b` times it): `beta + expm1(b t)` for small `b t`, so that tiny `b` and `beta` (the
/// Pareto/NBD limit) keep their precision, and `1 / (1 + (beta - 1) e^(-b t))` beyond, where
/// `e^(b t)` and its derivative would overflow.
fn hazard_weight<const N: usize>(beta: Dual<N>, b_t: Dual<N>) -> Dual<N> {
    if b_t.v > 30.0 {
        ((beta - 1.0) * (-b_t).exp() + 1.0).recip()
    } else {
        b_t.exp() / (beta + b_t.exp_m1())
    }
}

/// `ln[(beta + e^(b (t0 + d)) - 1) / (beta + e^(b t0) - 1)]` for `d >= 0`, without the
/// cancellation of the two logs: `ln(1 + (e^(b d) - 1) w)` with `w` the [`hazard_weight`] at
/// `t0`.
fn ln_shift_ratio<const N: usize>(beta: Dual<N>, b: Dual<N>, t0: f64, d: f64) -> Dual<N> {
    let b_d = b * d;
    if b_d.v > 30.0 {
        // (e^(b d) - 1) w = e^(b d + ln w) (1 - e^(-b d)).
        ln_1p_exp_scaled(b_d + ln_hazard_weight(beta, b * t0), b_d)
    } else {
        (b_d.exp_m1() * hazard_weight(beta, b * t0)).ln_1p()
    }
}

/// `ln[alpha^r (alpha+T)^-(r+x) S(T)]` and `ln alpha^r integral_{t_x}^T (alpha+tau)^-(r+x) f(tau)
/// dtau` (`-inf` when `t_x = T`), with `alpha^r` folded in as `(1 + T/alpha)^-r` so that
/// nothing large cancels when r is huge.
fn ln_terms<const N: usize>(
    [r, alpha, b, s, beta]: [Dual<N>; 5],
    x: f64,
    t_x: f64,
    age: f64,
) -> (Dual<N>, Dual<N>) {
    let rx = r + x;
    // r ln(alpha) - (r + x) ln(alpha + T) = -r ln(1 + T/alpha) - x ln(alpha + T).
    let ln_alive = -(r * (Dual::constant(age) / alpha).ln_1p())
        - (alpha + age).ln() * x
        - s * ln_shift_over_beta(beta, b * age);
    if !(age > t_x) {
        return (ln_alive, Dual::constant(f64::NEG_INFINITY));
    }
    // ln f(tau) (alpha+tau)^-(r+x) relative to its value at t_x.
    let a0 = alpha + t_x;
    let l0 = ln_shifted_exp(beta, b * t_x);
    let s1 = s + 1.0;
    let integrand = |tau: f64| {
        let d = tau - t_x;
        let rel =
            -(rx * (Dual::constant(d) / a0).ln_1p()) + b * d - s1 * ln_shift_ratio(beta, b, t_x, d);
        rel.exp()
    };
    // The integrand is 1 at t_x and decays at rate (r+x)/(alpha+t_x) + b ((s+1) w - 1), with
    // w = e^(b t_x) / (beta + e^(b t_x) - 1), and the Gompertz hazard changes on the time scale
    // 1/b: panels start at the shorter of the two scales, so that a lifetime density
    // concentrated soon after t_x is not missed on a long (t_x, T).
    let weight = hazard_weight::<0>(beta.v.into(), (b.v * t_x).into()).v;
    let decay = rx.v / a0.v + b.v * ((s.v + 1.0) * weight - 1.0);
    let q = integrate_from_start(
        integrand,
        t_x,
        age,
        1.0 / decay.max(b.v),
        QUADRATURE_TOLERANCE,
        QUADRATURE_MAX_INTERVALS,
    );
    let ln_at_tx =
        -(r * (Dual::constant(t_x) / alpha).ln_1p()) - a0.ln() * x + s.ln() + b.ln() + b * t_x
            - l0
            - s * ln_shift_over_beta(beta, b * t_x);
    (ln_alive, ln_at_tx + q.value.ln())
}

/// `ln L` of a customer without repeat purchases when `L` is near 1, as `ln(1 - I)` with
/// `I = r alpha^r integral_0^T (alpha + tau)^-(r+1) S(tau) dtau` the chance of a first purchase
/// before dropping out and before `T` (`L = 1 - I` by parts). Summing the two branches instead
/// rounds `1 - L` to the quadrature's relative tolerance of the larger branch (9.5e-13 in a
/// log-likelihood of -1.9e-11). `None` when `I >= 1/2`, where the branches are as precise.
fn ln_no_purchase<const N: usize>(
    [r, alpha, b, s, beta]: [Dual<N>; 5],
    age: f64,
) -> Option<Dual<N>> {
    // A cheap bound first, so that a row needs only one of the two forms: S(tau) >= S(T) on
    // [0, T], so I >= S(T) (1 - (1 + T/alpha)^-r), the chance of a first purchase before T
    // without dropout times the survival to T. When that is already 1/2 the branches serve the
    // row and the quadrature below is skipped. (When it is below, the quadrature decides.)
    let no_dropout = -(-r.v * (age / alpha.v).ln_1p()).exp_m1();
    let ln_survival_at_end = -s.v * ln_shift_over_beta::<0>(beta.v.into(), (b.v * age).into()).v;
    if no_dropout * ln_survival_at_end.exp() >= 0.5 {
        return None;
    }
    let integrand = |tau: f64| {
        (-((r + 1.0) * (Dual::constant(tau) / alpha).ln_1p())
            - s * ln_shift_over_beta(beta, b * tau))
        .exp()
    };
    // The integrand decays from 1 at rate (r + 1) / alpha + s b / beta (the hazard at 0), and
    // the Gompertz hazard changes on the time scale 1 / b.
    let decay = (r.v + 1.0) / alpha.v + s.v * b.v / beta.v;
    let q = integrate_from_start(
        integrand,
        0.0,
        age,
        1.0 / decay.max(b.v),
        QUADRATURE_TOLERANCE,
        QUADRATURE_MAX_INTERVALS,
    );
    let first_purchase = r / alpha * q.value;
    (first_purchase.v < 0.5).then(|| (-first_purchase).ln_1p())
}

/// One customer's log-likelihood over dual numbers (also per customer under covariates).
pub(crate) fn row_log_likelihood<const N: usize>(
    p: [Dual<N>; 5],
    x: f64,
    t_x: f64,
    age: f64,
) -> Dual<N> {
    let [r, ..] = p;
    if x == 0.0 {
        if let Some(ln_l) = ln_no_purchase(p, age) {
            return ln_l;
        }
    }
    let (ln_alive, ln_integral) = ln_terms(p, x, t_x, age);
    r.ln_gamma_ratio(x) + ln_alive.log_add_exp(ln_integral)
}

impl GgNbdParams {
    pub const fn new(r: f64, alpha: f64, b: f64, s: f64, beta: f64) -> Self {
        GgNbdParams {
            r,
            alpha,
            b,
            s,
            beta,
        }
    }

    fn duals<const N: usize>(&self) -> [Dual<N>; 5] {
        [self.r, self.alpha, self.b, self.s, self.beta].map(Dual::constant)
    }

    /// The lifetime remaining after `age` given survival to `age`.
    fn remaining_lifetime(&self, age: f64) -> GgLifetime {
        GgLifetime {
            b: self.b,
            s: self.s,
            beta: self.beta,
            age,
        }
    }
}

/// The gamma-Gompertz lifetime remaining after `age`: `S(u) = S(age + u) / S(age)`.
struct GgLifetime {
    b: f64,
    s: f64,
    beta: f64,
    age: f64,
}

impl Lifetime for GgLifetime {
    fn survival(&self, u: f64) -> f64 {
        // ((beta + e^(b age) - 1) / (beta + e^(b (age + u)) - 1))^s, with the ratio's log
        // taken without cancellation (s can be huge).
        let ratio = ln_shift_ratio::<0>(self.beta.into(), self.b.into(), self.age, u).v;
        (-self.s * ratio).exp()
    }

    /// The shorter of `1 / hazard(0)` and `1 / b` (the hazard grows on that scale).
    fn scale(&self) -> f64 {
        (self.survival(0.0) / self.density(0.0)).min(1.0 / self.b)
    }

    fn density(&self, u: f64) -> f64 {
        // Hazard s b e^(b t) / (beta + e^(b t) - 1) at t = age + u.
        let bt = self.b * (self.age + u);
        let hazard = self.s * self.b * hazard_weight::<0>(self.beta.into(), bt.into()).v;
        hazard * self.survival(u)
    }
}

/// Log-likelihood of one customer.
pub fn log_likelihood(p: &GgNbdParams, x: f64, t_x: f64, age: f64) -> f64 {
    row_log_likelihood::<0>(p.duals(), x, t_x, age).v
}

/// P(alive at T): the alive term's share of the likelihood bracket.
pub fn probability_alive(p: &GgNbdParams, x: f64, t_x: f64, age: f64) -> f64 {
    let (ln_alive, ln_integral) = ln_terms::<0>(p.duals(), x, t_x, age);
    if ln_integral.v == f64::NEG_INFINITY {
        return 1.0;
    }
    logistic(ln_alive.v - ln_integral.v)
}

/// The GGompertz/NBD likelihood over compressed customer rows, for the fitting engine.
pub struct GgNbd<'a> {
    data: &'a Rfm,
}

impl<'a> GgNbd<'a> {
    pub fn new(data: &'a Rfm) -> Self {
        GgNbd { data }
    }
}

impl Likelihood for GgNbd<'_> {
    fn params(&self) -> &[ParamSpec] {
        &PARAMS
    }

    fn starts(&self) -> Vec<Vec<f64>> {
        let (alpha, mean_t) = self.data.start_scales();
        // b small against 1 / T is the near-exponential (Pareto/NBD-like) region, with
        // beta / b about the mean age; b near 1 / T lets the hazard grow within the data.
        let t = mean_t;
        vec![
            vec![1.0, alpha, 0.1 / t, 1.0, 0.1],
            vec![0.5, 0.5 * alpha, 1.0 / t, 0.5, 1.0],
            vec![2.0, 2.0 * alpha, 0.01 / t, 2.0, 0.02],
        ]
    }

    fn total_weight(&self) -> f64 {
        self.data.total_weight()
    }

    fn loglik_and_gradient(&self, params: &[f64], exec: &Exec) -> (f64, Vec<f64>) {
        super::sum_dual_rows::<5>(self.data, params, exec, row_log_likelihood)
    }

    /// b and beta are weakly identified on typical data (CDNOW), so every start is tried.
    fn try_all_starts(&self) -> bool {
        true
    }
}

impl RfmModel for GgNbdParams {
    const NAME: &'static str = "ggnbd";

    fn specs() -> &'static [ParamSpec] {
        &PARAMS
    }

    fn from_slice(values: &[f64]) -> Result<Self> {
        check_params(&PARAMS, values)?;
        Ok(GgNbdParams::new(
            values[0], values[1], values[2], values[3], values[4],
        ))
    }

    fn fit(data: &Rfm, opts: &FitOptions<'_>) -> Result<FitResult> {
        fit_with_warm_start(
            data,
            data.len(),
            Rfm::subsample,
            |d, o| fit(&GgNbd::new(d), o),
            opts,
        )
    }

    /// Lifetime by inversion: `S(tau | eta) = exp(-eta (e^(b tau) - 1))`, so
    /// `tau = ln(1 + E / eta) / b` with `E ~ Exp(1)`.
    fn simulate(&self, ages: &[f64], seed: u64) -> Option<(Vec<f64>, Vec<f64>)> {
        let mut x = Vec::with_capacity(ages.len());
        let mut t_x = Vec::with_capacity(ages.len());
        for (i, &age) in ages.iter().enumerate() {
            let mut rng = crate::random::Rng::for_stream(seed, i as u64);
            let lambda = rng.gamma(self.r) / self.alpha;
            let eta = rng.gamma(self.s) / self.beta;
            let life = (rng.exponential(1.0) / eta).ln_1p() / self.b;
            let end = life.min(age);
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
        Some((x, t_x))
    }

    fn log_likelihood(&self, x: f64, t_x: f64, age: f64) -> f64 {
        log_likelihood(self, x, t_x, age)
    }

    fn probability_alive(&self, x: f64, t_x: f64, age: f64) -> f64 {
        probability_alive(self, x, t_x, age)
    }

    fn conditional_expected_purchases(&self, x: f64, t_x: f64, age: f64, t: f64) -> f64 {
        probability_alive(self, x, t_x, age)
            * lifetime::expected_purchases(
                self.r + x,
                self.alpha + age,
                t,
                &self.remaining_lifetime(age),
            )
    }

    fn expected_purchases_new_customer(&self, t: f64) -> f64 {
        lifetime::expected_purchases(self.r, self.alpha, t, &self.remaining_lifetime(0.0))
    }

    fn purchase_count_probability(&self, n: u64, t: f64) -> Option<f64> {
        Some(lifetime::count_probability(
            self.r,
            self.alpha,
            n,
            t,
            &self.remaining_lifetime(0.0),
        ))
    }

    fn probability_alive_after(&self, x: f64, t_x: f64, age: f64, t: f64) -> Option<f64> {
        Some(
            probability_alive(self, x, t_x, age)
                * self.remaining_lifetime(age).survival(t.max(0.0)),
        )
    }

    fn conditional_purchase_count_probability(
        &self,
        n: u64,
        x: f64,
        t_x: f64,
        age: f64,
        t: f64,
    ) -> Option<f64> {
        let alive = probability_alive(self, x, t_x, age);
        let life = self.remaining_lifetime(age);
        let if_alive = lifetime::count_probability(self.r + x, self.alpha + age, n, t, &life);
        let if_gone = if n == 0 { 1.0 - alive } else { 0.0 };
        Some((alive * if_alive + if_gone).clamp(0.0, 1.0))
    }

    fn expected_residual_transactions(&self, x: f64, t_x: f64, age: f64, rate: f64) -> Option<f64> {
        let life = self.remaining_lifetime(age);
        // Time scale of the lifetime: the smaller of 1 / (hazard now) and 1 / b.
        let hazard = life.density(0.0).max(1e-300);
        let scale = (1.0 / hazard).min(1.0 / self.b);
        Some(
            probability_alive(self, x, t_x, age)
                * lifetime::discounted_expected_purchases(
                    self.r + x,
                    self.alpha + age,
                    rate,
                    scale,
                    &life,
                ),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::models::pnbd::ParetoNbdParams;
    use crate::models::testing::{assert_gradient_matches, cdnow, rel};

    const ROWS: [(f64, f64, f64); 6] = [
        (0.0, 0.0, 30.0),
        (1.0, 2.0, 39.0),
        (26.0, 30.85714, 31.0),
        (5.0, 20.0, 20.0),
        (300.0, 10.0, 52.0),
        (3.0, 1.0, 5000.0),
    ];

    #[test]
    fn tends_to_pareto_nbd_as_b_vanishes() {
        // b -> 0 with beta / b fixed: mu = eta b ~ Gamma(s, beta / b).
        let pareto = ParetoNbdParams::new(0.55, 10.6, 0.6, 11.7);
        let b = 1e-9;
        let gg = GgNbdParams::new(0.55, 10.6, b, 0.6, 11.7 * b);
        for &(x, t_x, age) in &ROWS[..5] {
            let want = crate::models::pnbd::log_likelihood(&pareto, x, t_x, age);
            let got = log_likelihood(&gg, x, t_x, age);
            assert!(rel(got, want) < 1e-6, "{x} {t_x} {age}: {got} vs {want}");
            let want = pareto.conditional_expected_purchases(x, t_x, age, 52.0);
            let got = gg.conditional_expected_purchases(x, t_x, age, 52.0);
            assert!(rel(got, want) < 1e-6, "{got} vs {want}");
        }
    }

    #[test]
    fn gradient_is_exact() {
        let data = cdnow();
        let lik = GgNbd::new(&data);
        for at in [[0.55, 10.5, 0.01, 0.6, 0.1], [1.5, 3.0, 0.2, 2.0, 5.0]] {
            let (_, gradient) = lik.loglik_and_gradient(&at, &Exec::Serial);
            let value = |p: &[f64]| lik.loglik_and_gradient(p, &Exec::Serial).0;
            assert_gradient_matches(value, &gradient, &at, 1e-5);
        }
    }

    #[test]
    fn huge_ages_keep_exact_gradients() {
        // A customer of age 1e20 with a repeat purchase: the integral runs over b d far past
        // the overflow of e^(b d), where the derivatives must stay those of the value.
        for at in [[1.0, 1e6, 1e-13, 1.0, 0.1], [0.55, 10.5, 0.01, 0.6, 0.1]] {
            for &(x, t_x, age) in &[(2.0, 30.43, 1e20), (0.0, 0.0, 1e20), (2.0, 30.43, 1e5)] {
                let value = |p: &[f64]| {
                    let p: [Dual<0>; 5] = [p[0], p[1], p[2], p[3], p[4]].map(Dual::constant);
                    row_log_likelihood(p, x, t_x, age).v
                };
                let duals: [Dual<5>; 5] = std::array::from_fn(|i| Dual::variable(at[i], i));
                let row = row_log_likelihood(duals, x, t_x, age);
                assert!(row.v.is_finite(), "{at:?} {x} {t_x} {age}");
                // Steps relative to each parameter (b = 1e-13 is below the shared helper's
                // absolute floor).
                for k in 0..5 {
                    let h = 1e-6 * at[k];
                    let (mut up, mut down) = (at, at);
                    up[k] += h;
                    down[k] -= h;
                    let numeric = (value(&up) - value(&down)) / (2.0 * h);
                    let scale = numeric.abs().max(row.d[k].abs()).max(1.0 / at[k]);
                    assert!(
                        (row.d[k] - numeric).abs() <= 1e-5 * scale,
                        "d/dp{k} at {at:?}, row ({x}, {t_x}, {age}): {} vs {numeric}",
                        row.d[k]
                    );
                }
            }
        }
    }

    #[test]
    fn reproduces_the_published_cdnow_log_likelihood() {
        let data = cdnow();
        let res = GgNbdParams::fit(&data, &FitOptions::default()).unwrap();
        assert!(
            (res.log_likelihood + 9594.98).abs() < 0.01,
            "{} at {:?}",
            res.log_likelihood,
            res.params
        );
        // r and alpha are well identified and agree with Pareto/NBD.
        assert!(rel(res.params[0], 0.553) < 0.01, "{:?}", res.params);
        assert!(rel(res.params[1], 10.578) < 0.01, "{:?}", res.params);
    }

    #[test]
    fn predictions_are_consistent() {
        let p = GgNbdParams::new(0.55, 10.6, 0.05, 0.6, 2.0);
        let t = 39.0;
        let (mut total, mut mean) = (0.0, 0.0);
        for n in 0..400u64 {
            let q = p.purchase_count_probability(n, t).unwrap();
            total += q;
            mean += n as f64 * q;
        }
        assert!((total - 1.0).abs() < 1e-9, "{total}");
        assert!(rel(mean, p.expected_purchases_new_customer(t)) < 1e-8);
        for &(x, t_x, age) in &ROWS {
            let alive = p.probability_alive(x, t_x, age);
            assert!((0.0..=1.0).contains(&alive));
            let e1 = p.conditional_expected_purchases(x, t_x, age, 10.0);
            let e2 = p.conditional_expected_purchases(x, t_x, age, 20.0);
            assert!(e2 >= e1 && e1 >= 0.0, "{e1} {e2}");
        }
    }
}
