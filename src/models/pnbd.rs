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

use super::lifetime::{self, Lifetime};
use super::RfmModel;
use crate::data::Rfm;
use crate::dual::Dual;
use crate::error::Result;
use crate::fit::{
    check_params, fit, fit_with_warm_start, Domain, FitOptions, FitResult, Likelihood, ParamSpec,
};
use crate::parallel::Exec;
use crate::quadrature::integrate;
use crate::special::logistic;

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

/// The series is used where `z` is at most this (its terms shrink at least as fast as `z^k`)...
const SERIES_MAX_Z: f64 = 0.75;
/// ... and where its terms peak early: they grow while `k < z (e - 1) / (1 - z)`, so `z` is
/// also kept below `SERIES_MAX_PEAK / (SERIES_MAX_PEAK + e)`. This bounds the number of terms
/// and keeps the largest term below `e^SERIES_MAX_PEAK` (no overflow for huge `e = r + x`).
const SERIES_MAX_PEAK: f64 = 100.0;
/// Relative size of the neglected tail of the series.
const SERIES_TOLERANCE: f64 = 1e-17;
/// Safety cap on series terms (never reached for `z <= SERIES_MAX_Z`).
const SERIES_MAX_TERMS: usize = 100_000;
/// Relative accuracy of the quadrature stretch.
const QUADRATURE_TOLERANCE: f64 = 1e-13;
const QUADRATURE_MAX_INTERVALS: usize = 300;

/// `ln[(alpha+T)^-(r+x) (beta+T)^-s]` and `ln I` (see the module documentation); `ln I` is
/// `-inf` when `t_x = T`. `series_max_z` chooses where the series takes over from quadrature.
fn ln_terms<const N: usize>(
    [r, alpha, s, beta]: [Dual<N>; 4],
    x: f64,
    t_x: f64,
    age: f64,
    series_max_z: f64,
) -> (Dual<N>, Dual<N>) {
    let rx = r + x;
    let ln_alive = -(rx * (alpha + age).ln()) - s * (beta + age).ln();
    let mut ln_integral = Dual::constant(f64::NEG_INFINITY);
    if !(age > t_x) {
        return (ln_alive, ln_integral);
    }
    // Expand the factor of the smaller rate scale; `e` is its exponent.
    let (big, small, e) = if alpha.v >= beta.v {
        (alpha, beta, s + 1.0)
    } else {
        (beta, alpha, rx)
    };
    let gap = big - small;
    // z(tau) = gap / (big + tau) falls to z_max at tau = gap / z_max - big.
    let z_max = series_max_z.min(SERIES_MAX_PEAK / (SERIES_MAX_PEAK + e.v));
    let series_from = if gap.v == 0.0 {
        t_x
    } else {
        (gap.v / z_max - big.v).max(t_x)
    };
    if series_from > t_x {
        let upto = series_from.min(age);
        let part = ln_integral_by_quadrature([rx, alpha, s, beta], t_x, upto, small.v);
        ln_integral = ln_integral.log_add_exp(part);
    }
    if series_from < age {
        let m = rx + s;
        let part = ln_integral_by_series(big, gap, e, m, series_from, age);
        ln_integral = ln_integral.log_add_exp(part);
    }
    (ln_alive, ln_integral)
}

/// `ln integral_{from}^{to} (big+tau)^-(m+1) (1 - gap/(big+tau))^-e dtau` by the series.
fn ln_integral_by_series<const N: usize>(
    big: Dual<N>,
    gap: Dual<N>,
    e: Dual<N>,
    m: Dual<N>,
    from: f64,
    to: f64,
) -> Dual<N> {
    let base = big + from;
    let z = gap / base;
    // ln rho = ln((big+from) / (big+to)), as ln_1p of the relative gap.
    let ln_rho = -(Dual::constant(to - from) / base).ln_1p();
    let mut sum = Dual::constant(0.0);
    // (e)_k / k! z^k
    let mut coefficient = Dual::constant(1.0);
    for k in 0..SERIES_MAX_TERMS {
        let kf = k as f64;
        let mk = m + kf;
        let term = coefficient * -(mk * ln_rho).exp_m1() / mk;
        sum += term;
        // Later term ratios are at most q = z max(1, (e+k+1)/(k+2)) (the other factors shrink),
        // so once q < 1 the tail is below term q / (1 - q); derivatives carry an extra factor
        // of about k.
        // (At z = 0 the k = 1 term is 0 but its gradient is not, hence k >= 1.)
        let q = z.v * ((e.v + kf + 1.0) / (kf + 2.0)).max(1.0);
        if k >= 1 && q < 1.0 {
            let tail = q / (1.0 - q);
            let value_done = term.v.abs() * tail <= SERIES_TOLERANCE * sum.v.abs();
            let slope_done = term.max_abs_derivative() * tail * (kf + 2.0)
                <= SERIES_TOLERANCE * (sum.max_abs_derivative() + sum.v.abs());
            if value_done && slope_done {
                break;
            }
        }
        coefficient = coefficient * (e + kf) * z / (kf + 1.0);
    }
    -(m * base.ln()) + sum.ln()
}

/// `ln integral_{from}^{to} (alpha+tau)^-(r+x) (beta+tau)^-(s+1) dtau` by adaptive quadrature
/// in `u = ln(small + tau)`, which spreads out the region where the smaller scale dominates.
fn ln_integral_by_quadrature<const N: usize>(
    [rx, alpha, s, beta]: [Dual<N>; 4],
    from: f64,
    to: f64,
    small: f64,
) -> Dual<N> {
    let (a0, b0) = (alpha + from, beta + from);
    let s1 = s + 1.0;
    // Relative to the integrand at `from` (its maximum), so nothing under- or overflows.
    let integrand = |u: f64| {
        let e = u.exp();
        let d = Dual::constant((e - small - from).max(0.0));
        (-(rx * (d / a0).ln_1p()) - s1 * (d / b0).ln_1p()).exp() * e
    };
    let q = integrate(
        integrand,
        (small + from).ln(),
        (small + to).ln(),
        QUADRATURE_TOLERANCE,
        QUADRATURE_MAX_INTERVALS,
    );
    -(rx * a0.ln()) - s1 * b0.ln() + q.value.ln()
}

/// Log-likelihood of one customer, with its gradient when `N = 4`.
fn row_log_likelihood<const N: usize>(p: [Dual<N>; 4], x: f64, t_x: f64, age: f64) -> Dual<N> {
    let [r, alpha, s, beta] = p;
    let (ln_alive, ln_integral) = ln_terms(p, x, t_x, age, SERIES_MAX_Z);
    r.ln_gamma_ratio(x)
        + r * alpha.ln()
        + s * beta.ln()
        + ln_alive.log_add_exp(s.ln() + ln_integral)
}

/// Log-likelihood of one customer.
pub fn log_likelihood(p: &ParetoNbdParams, x: f64, t_x: f64, age: f64) -> f64 {
    row_log_likelihood::<0>(p.duals(), x, t_x, age).v
}

/// P(alive at T): the alive term's share of the likelihood bracket.
pub fn probability_alive(p: &ParetoNbdParams, x: f64, t_x: f64, age: f64) -> f64 {
    let (ln_alive, ln_integral) = ln_terms::<0>(p.duals(), x, t_x, age, SERIES_MAX_Z);
    if ln_integral.v == f64::NEG_INFINITY {
        return 1.0;
    }
    logistic(ln_alive.v - p.s.ln() - ln_integral.v)
}

/// `integral_0^t (b / (b + u))^s du / b = (1 - (1 + t/b)^(1-s)) / (s - 1)`, continuous through
/// `s = 1` (where it is `ln(1 + t/b)`): `expm1` keeps full precision for `s` within rounding of 1.
fn survival_integral(s: f64, b: f64, t: f64) -> f64 {
    let l = (t / b).ln_1p();
    let eps = s - 1.0;
    if eps == 0.0 {
        l
    } else {
        -(-eps * l).exp_m1() / eps
    }
}

/// Expected purchases in (T, T + t] given the history: P(alive) times `(r+x)/(alpha+T)` times
/// the expected remaining active time in `t`, `(beta+T) (1 - ((beta+T)/(beta+T+t))^(s-1)) /
/// (s-1)` (continuous at `s = 1`).
pub fn conditional_expected_purchases(
    p: &ParetoNbdParams,
    x: f64,
    t_x: f64,
    age: f64,
    t: f64,
) -> f64 {
    if !(t > 0.0) {
        return 0.0;
    }
    let b = p.beta + age;
    probability_alive(p, x, t_x, age) * (p.r + x) / (p.alpha + age)
        * b
        * survival_integral(p.s, b, t)
}

/// E[X(t)] for a new customer, `r beta / (alpha (s-1)) (1 - (beta/(beta+t))^(s-1))`.
pub fn expected_purchases_new_customer(p: &ParetoNbdParams, t: f64) -> f64 {
    if !(t > 0.0) {
        return 0.0;
    }
    p.r / p.alpha * p.beta * survival_integral(p.s, p.beta, t)
}

/// The exponential lifetime with a `Gamma(s, b)` rate: `S(u) = (b / (b+u))^s`.
struct ParetoLifetime {
    s: f64,
    b: f64,
}

impl Lifetime for ParetoLifetime {
    fn survival(&self, u: f64) -> f64 {
        (-self.s * (u / self.b).ln_1p()).exp()
    }

    fn density(&self, u: f64) -> f64 {
        self.s / (self.b + u) * self.survival(u)
    }
}

impl ParetoNbdParams {
    /// P(alive at T + t) given the history: P(alive at T) times `((beta+T)/(beta+T+t))^s`.
    pub fn probability_alive_after(&self, x: f64, t_x: f64, age: f64, t: f64) -> f64 {
        let later = ParetoLifetime {
            s: self.s,
            b: self.beta + age,
        };
        probability_alive(self, x, t_x, age) * later.survival(t.max(0.0))
    }

    /// P(X(t) = n) for a new customer (Fader & Hardie note 028, by quadrature).
    pub fn purchase_count_probability(&self, n: u64, t: f64) -> f64 {
        let life = ParetoLifetime {
            s: self.s,
            b: self.beta,
        };
        lifetime::count_probability(self.r, self.alpha, n, t, &life)
    }

    /// P(n purchases in (T, T + t]) given the history.
    pub fn conditional_purchase_count_probability(
        &self,
        n: u64,
        x: f64,
        t_x: f64,
        age: f64,
        t: f64,
    ) -> f64 {
        let alive = probability_alive(self, x, t_x, age);
        let life = ParetoLifetime {
            s: self.s,
            b: self.beta + age,
        };
        let if_alive = lifetime::count_probability(self.r + x, self.alpha + age, n, t, &life);
        let if_gone = if n == 0 { 1.0 - alive } else { 0.0 };
        (alive * if_alive + if_gone).clamp(0.0, 1.0)
    }

    /// DERT (note 015) with continuous discounting at `rate`: P(alive) times `(r+x)/(alpha+T)`
    /// times `integral_0^inf exp(-rate u) ((beta+T)/(beta+T+u))^s du`.
    pub fn expected_residual_transactions(&self, x: f64, t_x: f64, age: f64, rate: f64) -> f64 {
        let b = self.beta + age;
        let life = ParetoLifetime { s: self.s, b };
        probability_alive(self, x, t_x, age)
            * lifetime::discounted_expected_purchases(
                self.r + x,
                self.alpha + age,
                rate,
                b / self.s.max(1e-300),
                &life,
            )
    }
}

/// The Pareto/NBD likelihood over compressed customer rows, for the fitting engine.
pub struct ParetoNbd<'a> {
    data: &'a Rfm,
}

impl<'a> ParetoNbd<'a> {
    pub fn new(data: &'a Rfm) -> Self {
        ParetoNbd { data }
    }
}

impl Likelihood for ParetoNbd<'_> {
    fn params(&self) -> &'static [ParamSpec] {
        &PARAMS
    }

    fn starts(&self) -> Vec<Vec<f64>> {
        // Purchase rate from the repeat buyers' mean rate; dropout scale from the mean age.
        let d = self.data;
        let w = d.total_weight();
        let weighted_mean = |v: &[f64]| (0..d.len()).map(|i| v[i] * d.weight(i)).sum::<f64>() / w;
        let (mean_x, mean_t) = (weighted_mean(&d.frequency), weighted_mean(&d.age));
        let rate = (mean_x / mean_t.max(f64::MIN_POSITIVE)).max(1e-6);
        let alpha = (1.0 / rate).clamp(1e-6, 1e12);
        let beta = mean_t.clamp(1e-6, 1e12);
        vec![
            vec![1.0, alpha, 1.0, beta],
            vec![0.5, 0.5 * alpha, 0.5, 0.5 * beta],
            vec![2.0, 2.0 * alpha, 2.0, 2.0 * beta],
            vec![1.0, alpha, 0.5, 4.0 * beta],
        ]
    }

    fn total_weight(&self) -> f64 {
        self.data.total_weight()
    }

    fn loglik_and_gradient(&self, params: &[f64], exec: &Exec) -> (f64, Vec<f64>) {
        let p: [Dual<4>; 4] = std::array::from_fn(|i| Dual::variable(params[i], i));
        let d = self.data;
        let acc = exec.chunked_sum(d.len(), 5, |range, acc| {
            for i in range {
                let ll = row_log_likelihood(p, d.frequency[i], d.recency[i], d.age[i]);
                let w = d.weight(i);
                acc[0] += w * ll.v;
                for j in 0..4 {
                    acc[1 + j] += w * ll.d[j];
                }
            }
        });
        (acc[0], acc[1..].to_vec())
    }

    /// The surface is flat in beta on typical data (CDNOW), so every start is tried.
    fn try_all_starts(&self) -> bool {
        true
    }
}

impl RfmModel for ParetoNbdParams {
    const NAME: &'static str = "pnbd";

    fn specs() -> &'static [ParamSpec] {
        &PARAMS
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::models::testing::{assert_gradient_matches, cdnow, rel};

    /// BTYD's walkthrough estimates on CDNOW.
    const BTYD: ParetoNbdParams =
        ParetoNbdParams::new(0.5533971, 10.5801985, 0.6060685, 11.6562471);

    /// Histories covering the awkward cases: x = 0, t_x = T, x in the hundreds, long T.
    const ROWS: [(f64, f64, f64); 8] = [
        (0.0, 0.0, 30.0),
        (1.0, 2.0, 39.0),
        (26.0, 30.85714, 31.0),
        (5.0, 20.0, 20.0),
        (300.0, 10.0, 52.0),
        (300.0, 51.0, 52.0),
        (3.0, 1.0, 5000.0),
        (0.0, 0.0, 0.0),
    ];

    fn parameter_grid() -> Vec<ParetoNbdParams> {
        vec![
            BTYD,
            ParetoNbdParams::new(0.55, 10.0, 0.6, 10.0),
            ParetoNbdParams::new(0.55, 10.0, 0.6, 0.1),
            ParetoNbdParams::new(0.55, 0.1, 0.6, 10.0),
            ParetoNbdParams::new(20.0, 3.0, 0.05, 1000.0),
            ParetoNbdParams::new(0.05, 1000.0, 20.0, 0.01),
        ]
    }

    #[test]
    fn series_and_quadrature_agree_everywhere() {
        for p in parameter_grid() {
            for &(x, t_x, age) in &ROWS {
                let mixed = ln_terms::<4>(p.duals(), x, t_x, age, SERIES_MAX_Z).1;
                // Quadrature over the whole interval (the series never takes over).
                let quad = ln_terms::<4>(p.duals(), x, t_x, age, 1e-300).1;
                if mixed.v == f64::NEG_INFINITY {
                    assert_eq!(quad.v, f64::NEG_INFINITY);
                    continue;
                }
                assert!(
                    (mixed.v - quad.v).abs() < 1e-11 * mixed.v.abs().max(1.0),
                    "{p:?} {x} {t_x} {age}: {} vs {}",
                    mixed.v,
                    quad.v
                );
                // And the series as far as its terms stay bounded.
                let series = ln_terms::<4>(p.duals(), x, t_x, age, 0.95).1;
                assert!((mixed.v - series.v).abs() < 1e-11 * mixed.v.abs().max(1.0));
            }
        }
    }

    #[test]
    fn gradient_is_exact() {
        let data = cdnow();
        let lik = ParetoNbd::new(&data);
        for at in [
            [0.55, 10.5, 0.6, 11.7],
            [0.55, 10.5, 0.6, 10.5],
            [2.0, 1.0, 0.3, 50.0],
            [0.3, 40.0, 3.0, 0.5],
        ] {
            let (_, gradient) = lik.loglik_and_gradient(&at, &Exec::Serial);
            let value = |p: &[f64]| lik.loglik_and_gradient(p, &Exec::Serial).0;
            // Central differences of a sum of 2,357 rows carry ~1e-6 relative rounding noise.
            assert_gradient_matches(value, &gradient, &at, 1e-5);
        }
        // Rows with the extremes, one at a time.
        for p in parameter_grid() {
            let at = [p.r, p.alpha, p.s, p.beta];
            for &(x, t_x, age) in &ROWS {
                let duals: [Dual<4>; 4] = std::array::from_fn(|i| Dual::variable(at[i], i));
                let ll = row_log_likelihood(duals, x, t_x, age);
                let value = |q: &[f64]| {
                    log_likelihood(&ParetoNbdParams::new(q[0], q[1], q[2], q[3]), x, t_x, age)
                };
                assert_gradient_matches(value, &ll.d, &at, 1e-5);
            }
        }
    }

    #[test]
    fn reproduces_the_published_cdnow_fit() {
        let data = cdnow();
        let res = ParetoNbdParams::fit(&data, &FitOptions::default()).unwrap();
        assert!(res.converged, "{}", res.termination);
        let want = [0.553, 10.578, 0.606, 11.669];
        for (k, (got, want)) in res.params.iter().zip(want).enumerate() {
            let tolerance = if k == 3 { 2e-3 } else { 1e-3 };
            assert!(rel(*got, want) < tolerance, "{:?}", res.params);
        }
        assert!(
            (res.log_likelihood + 9594.98).abs() < 0.01,
            "{}",
            res.log_likelihood
        );
        // CLVTools' standard errors.
        let se = res.standard_errors().unwrap();
        for (got, want) in se.iter().zip([0.0476, 0.843, 0.187, 6.21]) {
            assert!(rel(*got, want) < 0.03, "{se:?}");
        }
    }

    #[test]
    fn published_prediction_figures() {
        assert!((expected_purchases_new_customer(&BTYD, 52.0) - 1.473434).abs() < 1e-6);
        let e = conditional_expected_purchases(&BTYD, 26.0, 30.85714, 31.0, 52.0);
        assert!((e - 25.45647).abs() < 1e-5, "{e}");
        let alive = probability_alive(&BTYD, 26.0, 30.85714, 31.0);
        assert!((alive - 0.997874).abs() < 1e-6, "{alive}");
    }

    #[test]
    fn s_near_one_is_continuous() {
        let at_one = ParetoNbdParams::new(0.5, 10.0, 1.0, 12.0);
        let e1 = conditional_expected_purchases(&at_one, 3.0, 20.0, 30.0, 52.0);
        let n1 = expected_purchases_new_customer(&at_one, 52.0);
        assert!(e1.is_finite() && n1.is_finite());
        for ds in [-1e-9, 1e-9, -1e-12, 1e-12] {
            let p = ParetoNbdParams {
                s: 1.0 + ds,
                ..at_one
            };
            let e = conditional_expected_purchases(&p, 3.0, 20.0, 30.0, 52.0);
            let n = expected_purchases_new_customer(&p, 52.0);
            assert!(rel(e, e1) < 1e-8, "{e} vs {e1}");
            assert!(rel(n, n1) < 1e-8, "{n} vs {n1}");
        }
    }

    #[test]
    fn count_probabilities_are_a_distribution_with_the_right_mean() {
        let t = 39.0;
        let (mut total, mut mean) = (0.0, 0.0);
        for n in 0..400u64 {
            let q = BTYD.purchase_count_probability(n, t);
            total += q;
            mean += n as f64 * q;
        }
        assert!((total - 1.0).abs() < 1e-10, "{total}");
        assert!(rel(mean, expected_purchases_new_customer(&BTYD, t)) < 1e-9);
        for &(x, t_x, age) in &ROWS[..4] {
            let (mut total, mut mean) = (0.0, 0.0);
            for n in 0..600u64 {
                let q = BTYD.conditional_purchase_count_probability(n, x, t_x, age, t);
                total += q;
                mean += n as f64 * q;
            }
            let want = conditional_expected_purchases(&BTYD, x, t_x, age, t);
            assert!((total - 1.0).abs() < 1e-10, "{total}");
            assert!(rel(mean, want) < 1e-9, "{mean} vs {want}");
        }
    }

    #[test]
    fn dert_is_the_discounted_expected_purchase_stream() {
        // DERT = integral exp(-d t) dE(t) = d * integral exp(-d t) E(t) dt (by parts).
        let rate = 0.1;
        for &(x, t_x, age) in &ROWS[..4] {
            let dert = BTYD.expected_residual_transactions(x, t_x, age, rate);
            let by_parts = crate::quadrature::integrate_to_infinity(
                |t| {
                    rate * (-rate * t).exp() * conditional_expected_purchases(&BTYD, x, t_x, age, t)
                },
                0.0,
                1e-12,
                500,
            );
            assert!(rel(dert, by_parts.value) < 1e-9, "{dert} vs {:?}", by_parts);
        }
    }

    #[test]
    fn probabilities_stay_in_range_at_extremes() {
        for p in parameter_grid() {
            for &(x, t_x, age) in &ROWS {
                let alive = probability_alive(&p, x, t_x, age);
                assert!(
                    (0.0..=1.0).contains(&alive),
                    "{p:?} {x} {t_x} {age}: {alive}"
                );
                let ll = log_likelihood(&p, x, t_x, age);
                assert!(ll.is_finite() && ll <= 0.0 || x > 0.0 && ll.is_finite());
                let later = p.probability_alive_after(x, t_x, age, 10.0);
                assert!(later <= alive && later >= 0.0);
            }
        }
    }
}
