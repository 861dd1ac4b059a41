//! Pareto/NBD with correlated purchase and dropout rates: the Sarmanov bivariate mixing
//! distribution with gamma margins that CLVTools fits with `pnbd(..., use.cor = TRUE)`.
//!
//! Sarmanov (1966) builds a bivariate density from its margins `g1`, `g2` and bounded
//! "mixing functions" `phi1`, `phi2` with `E phi = 0`:
//! `f(lambda, mu) = g1(lambda) g2(mu) [1 + omega phi1(lambda) phi2(mu)]`. With
//! `phi(x) = e^-x - E e^-x` (Lee 1996, "Properties and applications of the Sarmanov family of
//! bivariate distributions", Communications in Statistics - Theory and Methods 25(6),
//! 1207-1222), used with gamma margins for correlated rates in marketing by Park & Fader
//! (2004, "Modeling Browsing Behavior at Multiple Websites", Marketing Science 23(3), 280-303)
//! and for the Pareto/NBD's purchase and dropout rates by Glady, Lemmens & Croux (2015,
//! "Unveiling the relationship between the transaction timing, spending and dropout behavior
//! of customers", International Journal of Research in Marketing 32(1), 78-93):
//!
//! ```text
//! lambda ~ Gamma(r, alpha), mu ~ Gamma(s, beta) (margins kept exactly),
//! LA = (alpha/(alpha+1))^r = E e^-lambda,   LB = (beta/(beta+1))^s = E e^-mu,
//! f = g1 g2 [1 + omega (e^-lambda - LA)(e^-mu - LB)],
//! corr(lambda, mu) = omega sqrt(r s) LA LB / ((1+alpha)(1+beta)).
//! ```
//!
//! `f` is a density when `1 + omega phi1 phi2 >= 0` everywhere: `omega` between
//! `-1 / max(LA LB, (1-LA)(1-LB))` and `1 / max(LA (1-LB), (1-LA) LB)`. Because
//! `g1(lambda; r, alpha) e^-lambda = LA g1(lambda; r, alpha+1)`, the density is a signed mixture
//! of four independent gamma pairs with weights summing to 1,
//!
//! ```text
//! f = (1 + q) g(alpha, beta) - q g(alpha+1, beta) - q g(alpha, beta+1) + q g(alpha+1, beta+1),
//! q = omega LA LB = rho (1+alpha)(1+beta) / sqrt(r s),
//! ```
//!
//! so everything linear in the mixing distribution is the same combination of independent
//! Pareto/NBD quantities: the likelihood `L = L00 + q (L00 + L11 - L10 - L01)`, where `Lij` is
//! the plain Pareto/NBD likelihood with `alpha + i`, `beta + j`; every prediction given a
//! history (posterior weights `w_k L_k / L`); and a new customer's (prior weights `w_k`).
//!
//! The model is parameterised by the correlation `rho` itself (`Domain::Real`; outside the
//! range above, which depends on the other parameters, the likelihood is not finite and the
//! optimiser backs off), so its standard error comes straight from the covariance. The kernel
//! `e^-lambda` is tied to the time unit: the attainable correlations shrink as `alpha` and
//! `beta` grow (about +-0.07 at CDNOW's weekly estimates), as in CLVTools.

use ndarray::{Array2, ArrayViewMut2};

use crate::data::{Rfm, RfmColumns};
use crate::dual::Dual;
use crate::error::Result;
use crate::fit::{
    check_params, fit, fit_in_stages, Domain, FitOptions, FitResult, FusedPass, Likelihood,
    ParamSpec, Staging,
};
use crate::models::pnbd::{self, ParetoNbdParams};
use crate::models::RfmModel;
use crate::parallel::Exec;
use crate::special::rising_terms;

/// Parameter names and domains: r, alpha, s, beta as in the Pareto/NBD, and the correlation of
/// the purchase and dropout rates.
pub static PARAMS: [ParamSpec; 5] = with_correlation(Domain::Real);

/// The margins' specs (the Pareto/NBD's) and the correlation's, in `domain`.
const fn with_correlation(domain: Domain) -> [ParamSpec; 5] {
    const fn margin(name: &'static str) -> ParamSpec {
        ParamSpec {
            name,
            domain: Domain::Positive,
        }
    }
    [
        margin("r"),
        margin("alpha"),
        margin("s"),
        margin("beta"),
        ParamSpec {
            name: "correlation",
            domain,
        },
    ]
}

/// Correlated Pareto/NBD parameters: the margins and `corr(lambda, mu)`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CorrelatedParetoNbdParams {
    pub base: ParetoNbdParams,
    pub correlation: f64,
}

/// `(E e^-x, 1 - E e^-x)` for `x ~ Gamma(shape, rate)`, the second without cancellation.
fn laplace_at_one(shape: f64, rate: f64) -> (f64, f64) {
    let ln = -shape * (1.0 / rate).ln_1p();
    (ln.exp(), -ln.exp_m1())
}

impl CorrelatedParetoNbdParams {
    pub const fn new(r: f64, alpha: f64, s: f64, beta: f64, correlation: f64) -> Self {
        CorrelatedParetoNbdParams {
            base: ParetoNbdParams::new(r, alpha, s, beta),
            correlation,
        }
    }

    /// `q / rho = (1+alpha)(1+beta) / sqrt(r s)` (see the module documentation).
    fn kappa(&self) -> f64 {
        let p = &self.base;
        (1.0 + p.alpha) * (1.0 + p.beta) / (p.r * p.s).sqrt()
    }

    /// The weight `q = omega LA LB` of the shifted components.
    fn q(&self) -> f64 {
        self.correlation * self.kappa()
    }

    /// The correlations the Sarmanov family reaches with these margins, `(lowest, highest)`.
    pub fn correlation_bounds(&self) -> (f64, f64) {
        let p = &self.base;
        let (la, la_c) = laplace_at_one(p.r, p.alpha);
        let (lb, lb_c) = laplace_at_one(p.s, p.beta);
        // corr = omega LA LB / kappa.
        let scale = la * lb / self.kappa();
        let lowest = -scale / (la * lb).max(la_c * lb_c);
        let highest = scale / (la * lb_c).max(la_c * lb);
        (lowest, highest)
    }

    /// Whether the correlation lies in [`Self::correlation_bounds`].
    pub fn is_admissible(&self) -> bool {
        let (lowest, highest) = self.correlation_bounds();
        self.correlation >= lowest && self.correlation <= highest
    }

    /// The four independent Pareto/NBD components with their (signed) prior weights, in the
    /// order (alpha, beta), (alpha+1, beta), (alpha, beta+1), (alpha+1, beta+1).
    pub fn components(&self) -> [(f64, ParetoNbdParams); 4] {
        let p = self.base;
        let q = self.q();
        let shifted = |da: f64, db: f64| ParetoNbdParams::new(p.r, p.alpha + da, p.s, p.beta + db);
        [
            (1.0 + q, p),
            (-q, shifted(1.0, 0.0)),
            (-q, shifted(0.0, 1.0)),
            (q, shifted(1.0, 1.0)),
        ]
    }

    /// A history's posterior weights of the four components (summing to 1) and its
    /// log-likelihood: `w_k L_k / L` with `L = sum w_k L_k`.
    fn posterior(&self, x: f64, t_x: f64, age: f64) -> ([f64; 4], f64) {
        let components = self.components();
        let ln: [f64; 4] = components.map(|(_, p)| pnbd::log_likelihood(&p, x, t_x, age));
        let ratios: [f64; 4] = std::array::from_fn(|k| (ln[k] - ln[0]).exp());
        let q = self.q();
        let bracket = 1.0 + q * (1.0 + ratios[3] - ratios[1] - ratios[2]);
        let weights = std::array::from_fn(|k| components[k].0 * ratios[k] / bracket);
        (weights, ln[0] + bracket.ln())
    }

    /// `sum_k posterior weight_k * quantity(component_k)`.
    fn given_history(
        &self,
        x: f64,
        t_x: f64,
        age: f64,
        quantity: impl Fn(&ParetoNbdParams) -> f64,
    ) -> f64 {
        let (weights, _) = self.posterior(x, t_x, age);
        self.components()
            .iter()
            .zip(weights)
            .map(|((_, p), w)| w * quantity(p))
            .sum()
    }

    /// `sum_k prior weight_k * quantity(component_k)` (a new customer).
    fn prior_mix(&self, quantity: impl Fn(&ParetoNbdParams) -> f64) -> f64 {
        self.components().iter().map(|(w, p)| w * quantity(p)).sum()
    }
}

/// The four components' shifts of (alpha, beta), in the order of
/// [`CorrelatedParetoNbdParams::components`].
const SHIFTS: [(f64, f64); 4] = [(0.0, 0.0), (1.0, 0.0), (0.0, 1.0), (1.0, 1.0)];

/// A row's log-likelihood, gradient and, when `SECOND`, Hessian (upper triangle) in
/// (r, alpha, s, beta, correlation).
pub type CorrelatedRow = (f64, [f64; 5], [[f64; 5]; 5]);

/// `kappa = (1+alpha)(1+beta)/sqrt(r s)` with its gradient and Hessian in (r, alpha, s, beta):
/// `kappa = exp(sum_i phi_i(theta_i))`, so `d_i kappa = kappa phi_i'` and
/// `d_ij kappa = kappa (phi_i' phi_j' + [i = j] phi_i'')`.
fn kappa_derivatives(margins: [f64; 4]) -> (f64, [f64; 4], [[f64; 4]; 4]) {
    let [r, alpha, s, beta] = margins;
    let kappa = (1.0 + alpha) * (1.0 + beta) / (r * s).sqrt();
    let first = [-0.5 / r, 1.0 / (1.0 + alpha), -0.5 / s, 1.0 / (1.0 + beta)];
    let second = [
        0.5 / (r * r),
        -first[1] * first[1],
        0.5 / (s * s),
        -first[3] * first[3],
    ];
    let gradient = first.map(|f| kappa * f);
    let hessian = std::array::from_fn(|i| {
        std::array::from_fn(|j| {
            kappa * (first[i] * first[j] + if i == j { second[i] } else { 0.0 })
        })
    });
    (kappa, gradient, hessian)
}

/// One customer's correlated row from its four plain Pareto/NBD component rows (at
/// [`SHIFTS`]; upper-triangle Hessians when `SECOND`). With `L = L00 B`,
/// `B = 1 + rho kappa c`, `c = 1 + r11 - r10 - r01` (`rij = Lij / L00`), the log-likelihood is
/// `l00 + ln B`, and its derivatives follow from those of `c`:
/// `c_i = sum_k s_k r_k (g_k - g00)_i` and
/// `c_ij = sum_k s_k r_k [(g_k - g00)_i (g_k - g00)_j + (H_k - H00)_ij]` (signs `s_k` of the
/// components in `c`). At correlation 0 the value and the margins' gradient and Hessian are
/// the first component's, to the bit (each correction is `ln(1 + 0)`, `0 / 1` or `0 * finite`).
fn combine<const SECOND: bool>(
    params: &[f64; 5],
    components: [crate::models::RowDerivatives; 4],
) -> CorrelatedRow {
    let [r, alpha, s, beta, rho] = *params;
    let [(l00, g00, h00), (l10, g10, h10), (l01, g01, h01), (l11, g11, h11)] = components;
    let (r10, r01, r11) = ((l10 - l00).exp(), (l01 - l00).exp(), (l11 - l00).exp());
    let c = 1.0 + r11 - r10 - r01;
    let (kappa, d_kappa, dd_kappa) = kappa_derivatives([r, alpha, s, beta]);
    let bracket = 1.0 + rho * kappa * c;
    let value = l00 + bracket.ln();
    let d_c: [f64; 4] = std::array::from_fn(|j| {
        r11 * (g11[j] - g00[j]) - r10 * (g10[j] - g00[j]) - r01 * (g01[j] - g00[j])
    });
    let mut gradient = [0.0; 5];
    for j in 0..4 {
        gradient[j] = g00[j] + rho * (d_kappa[j] * c + kappa * d_c[j]) / bracket;
    }
    gradient[4] = kappa * c / bracket;
    let mut hessian = [[0.0; 5]; 5];
    if SECOND {
        // B's derivatives: B_i = rho (kappa_i c + kappa c_i) for the margins, B_rho = kappa c.
        let d_b: [f64; 5] = std::array::from_fn(|i| {
            if i < 4 {
                rho * (d_kappa[i] * c + kappa * d_c[i])
            } else {
                kappa * c
            }
        });
        let shifted = [
            (r10, &g10, &h10, -1.0),
            (r01, &g01, &h01, -1.0),
            (r11, &g11, &h11, 1.0),
        ];
        for i in 0..4 {
            for j in i..4 {
                let dd_c: f64 = shifted
                    .iter()
                    .map(|&(ratio, g, h, sign)| {
                        sign * ratio * ((g[i] - g00[i]) * (g[j] - g00[j]) + (h[i][j] - h00[i][j]))
                    })
                    .sum();
                let dd_b = rho
                    * (dd_kappa[i][j] * c
                        + d_kappa[i] * d_c[j]
                        + d_kappa[j] * d_c[i]
                        + kappa * dd_c);
                hessian[i][j] = h00[i][j] + dd_b / bracket - d_b[i] * d_b[j] / (bracket * bracket);
            }
            let dd_b = d_kappa[i] * c + kappa * d_c[i];
            hessian[i][4] = dd_b / bracket - d_b[i] * d_b[4] / (bracket * bracket);
        }
        hessian[4][4] = -(d_b[4] / bracket) * (d_b[4] / bracket);
    }
    (value, gradient, hessian)
}

/// Log-likelihood of one customer with its gradient in (r, alpha, s, beta, correlation), and
/// its Hessian (upper triangle) when `SECOND`; NaN outside the admissible correlations. At
/// correlation 0 the value and the margins' gradient are the plain Pareto/NBD row's, to the bit.
pub fn row_derivatives<const SECOND: bool>(
    params: &[f64; 5],
    x: f64,
    t_x: f64,
    age: f64,
) -> CorrelatedRow {
    let [r, alpha, s, beta, _] = *params;
    let shape = rising_terms::<SECOND>(r, x);
    let components = SHIFTS.map(|(da, db)| {
        pnbd::row_derivatives::<SECOND>(&[r, alpha + da, s, beta + db], shape, x, t_x, age)
    });
    combine::<SECOND>(params, components)
}

/// [`row_derivatives`] without the Hessian.
pub fn row_log_likelihood(params: &[f64; 5], x: f64, t_x: f64, age: f64) -> (f64, [f64; 5]) {
    let (value, gradient, _) = row_derivatives::<false>(params, x, t_x, age);
    (value, gradient)
}

/// The correlated Pareto/NBD likelihood over compressed customer rows, for the fitting engine.
pub struct CorrelatedParetoNbd<'a> {
    data: &'a Rfm,
}

impl<'a> CorrelatedParetoNbd<'a> {
    pub fn new(data: &'a Rfm) -> Self {
        CorrelatedParetoNbd { data }
    }

    /// Weighted sums over the rows: the log-likelihood, the gradient and, when `SECOND`, the
    /// Hessian's upper triangle (in [`UPPER`] order); NaN outside the admissible correlations.
    /// Each component is a pass of the plain model's rows ([`pnbd::RowPass`]: the rows without
    /// repeat purchases share part of their series, the shape's gamma-function terms are
    /// computed once per frequency for all four), so at correlation 0 the sums are the plain
    /// likelihood's to the bit. With `coarse`, the series to the coarse pass's tolerance.
    fn sum_rows<const SECOND: bool>(&self, params: &[f64], coarse: bool, exec: &Exec) -> Vec<f64> {
        let p: [f64; 5] = std::array::from_fn(|i| params[i]);
        let width = if SECOND { 6 + UPPER.len() } else { 6 };
        if !CorrelatedParetoNbdParams::new(p[0], p[1], p[2], p[3], p[4]).is_admissible() {
            return vec![f64::NAN; width];
        }
        let passes =
            SHIFTS.map(|(da, db)| pnbd::RowPass::new([p[0], p[1] + da, p[2], p[3] + db], coarse));
        let d = self.data;
        exec.chunked_sum(d.len(), width, |range, acc| {
            // Rows are sorted by frequency: the gamma-function terms change rarely.
            let mut cached = (f64::NAN, (0.0, 0.0, 0.0));
            for i in range {
                let (x, t_x, age) = (d.frequency[i], d.recency[i], d.age[i]);
                if x != cached.0 {
                    cached = (x, pnbd::gamma_terms::<SECOND>(p[0], x));
                }
                let components = passes
                    .each_ref()
                    .map(|pass| pass.row::<SECOND>(cached.1, x, t_x, age));
                let (value, gradient, hessian) = combine::<SECOND>(&p, components);
                let w = d.weight(i);
                acc[0] += w * value;
                for j in 0..5 {
                    acc[1 + j] += w * gradient[j];
                }
                if SECOND {
                    for (slot, &(a, b)) in acc[6..].iter_mut().zip(&UPPER) {
                        *slot += w * hessian[a][b];
                    }
                }
            }
        })
    }

    /// The fused pass (coarse or exact) as the engine takes it.
    fn fused(&self, params: &[f64], coarse: bool, exec: &Exec) -> FusedPass {
        let acc = self.sum_rows::<true>(params, coarse, exec);
        let mut hessian = Array2::zeros((5, 5));
        for (value, &(a, b)) in acc[6..].iter().zip(&UPPER) {
            hessian[[a, b]] = *value;
            hessian[[b, a]] = *value;
        }
        (acc[0], acc[1..6].to_vec(), hessian)
    }
}

/// The upper triangle of a 5 x 5 Hessian, row by row.
const UPPER: [(usize, usize); 15] = [
    (0, 0),
    (0, 1),
    (0, 2),
    (0, 3),
    (0, 4),
    (1, 1),
    (1, 2),
    (1, 3),
    (1, 4),
    (2, 2),
    (2, 3),
    (2, 4),
    (3, 3),
    (3, 4),
    (4, 4),
];

impl Likelihood for CorrelatedParetoNbd<'_> {
    fn params(&self) -> &[ParamSpec] {
        &PARAMS
    }

    /// The plain Pareto/NBD's starting points with no correlation (a fit through
    /// [`RfmModel::fit`] starts from the plain fit's optimum instead).
    fn starts(&self) -> Vec<Vec<f64>> {
        pnbd::ParetoNbd::new(self.data)
            .starts()
            .into_iter()
            .map(|mut start| {
                start.push(0.0);
                start
            })
            .collect()
    }

    fn total_weight(&self) -> f64 {
        self.data.total_weight()
    }

    fn loglik_and_gradient(&self, params: &[f64], exec: &Exec) -> (f64, Vec<f64>) {
        let acc = self.sum_rows::<false>(params, false, exec);
        (acc[0], acc[1..].to_vec())
    }

    fn has_coarse_passes(&self) -> bool {
        true
    }

    fn loglik_and_gradient_coarse(&self, params: &[f64], exec: &Exec) -> (f64, Vec<f64>) {
        let acc = self.sum_rows::<false>(params, true, exec);
        (acc[0], acc[1..].to_vec())
    }

    fn loglik_gradient_hessian_coarse(&self, params: &[f64], exec: &Exec) -> Option<FusedPass> {
        Some(self.fused(params, true, exec))
    }

    /// The analytic Hessian from the fused pass.
    fn hessian(&self, params: &[f64], exec: &Exec) -> Option<Array2<f64>> {
        self.loglik_gradient_hessian(params, exec)
            .map(|(_, _, hessian)| hessian)
    }

    /// The log-likelihood, gradient and Hessian from one pass; the value and gradient have
    /// the bits of [`Likelihood::loglik_and_gradient`]'s (the same rows, chunks and order of
    /// additions).
    fn loglik_gradient_hessian(&self, params: &[f64], exec: &Exec) -> Option<FusedPass> {
        Some(self.fused(params, false, exec))
    }
}

/// Parameters of [`CorrelatedParetoNbdByPosition`], the coordinates of Bayesian fits: the
/// margins, and under the name `correlation` its position `u` in (0, 1) within the admissible
/// range, `correlation = lowest + u (highest - lowest)`. A sampler needs coordinates whose
/// support does not move with the other parameters (the correlation's range does, and the
/// identity coordinate the maximum-likelihood fit uses leaves NUTS trajectories running into
/// the moving edge); a prior on `correlation` is a prior on `u` (default `Beta(1, 1)`: uniform
/// over the range the margins admit). Draws and modes are converted to the correlation itself
/// ([`correlations_from_positions`], [`fit_from_positions`]).
pub static POSITION_PARAMS: [ParamSpec; 5] = with_correlation(Domain::UnitInterval);

/// [`CorrelatedParetoNbdParams::correlation_bounds`] with its gradient in (r, alpha, s, beta).
fn correlation_bounds_dual(margins: [f64; 4]) -> (Dual<4>, Dual<4>) {
    let [r, alpha, s, beta] = std::array::from_fn(|i| Dual::<4>::variable(margins[i], i));
    let laplace = |shape: Dual<4>, rate: Dual<4>| {
        let ln = -(shape * rate.recip().ln_1p());
        (ln.exp(), -ln.exp_m1())
    };
    let (la, la_c) = laplace(r, alpha);
    let (lb, lb_c) = laplace(s, beta);
    let kappa = (alpha + 1.0) * (beta + 1.0) / ((r * s).ln() * 0.5).exp();
    let scale = la * lb / kappa;
    let larger = |a: Dual<4>, b: Dual<4>| if a.v >= b.v { a } else { b };
    let lowest = -(scale / larger(la * lb, la_c * lb_c));
    let highest = scale / larger(la * lb_c, la_c * lb);
    (lowest, highest)
}

/// The correlation at position `params[4]` of its admissible range given the margins
/// `params[..4]`, and its gradient in `(r, alpha, s, beta, position)`. Kept inside the range
/// against rounding.
pub fn correlation_at_position(params: &[f64]) -> (f64, [f64; 5]) {
    let (lowest, highest) = correlation_bounds_dual(std::array::from_fn(|i| params[i]));
    let u = params[4];
    let rho = lowest + (highest - lowest) * u;
    let mut gradient = [0.0; 5];
    gradient[..4].copy_from_slice(&rho.d);
    gradient[4] = highest.v - lowest.v;
    (rho.v.clamp(lowest.v, highest.v), gradient)
}

/// The correlated Pareto/NBD likelihood in the coordinates of [`POSITION_PARAMS`] (the
/// Bayesian fits'): [`CorrelatedParetoNbd`] at [`correlation_at_position`], the gradient by the
/// chain rule.
pub struct CorrelatedParetoNbdByPosition<'a> {
    inner: CorrelatedParetoNbd<'a>,
}

impl<'a> CorrelatedParetoNbdByPosition<'a> {
    pub fn new(data: &'a Rfm) -> Self {
        CorrelatedParetoNbdByPosition {
            inner: CorrelatedParetoNbd::new(data),
        }
    }
}

impl Likelihood for CorrelatedParetoNbdByPosition<'_> {
    fn params(&self) -> &[ParamSpec] {
        &POSITION_PARAMS
    }

    /// The plain Pareto/NBD's starting points at the position of no correlation.
    fn starts(&self) -> Vec<Vec<f64>> {
        self.inner
            .starts()
            .into_iter()
            .map(|mut start| {
                let (lowest, highest) = correlation_bounds_dual(std::array::from_fn(|i| start[i]));
                start[4] = -lowest.v / (highest.v - lowest.v);
                start
            })
            .collect()
    }

    fn total_weight(&self) -> f64 {
        self.inner.total_weight()
    }

    fn loglik_and_gradient(&self, params: &[f64], exec: &Exec) -> (f64, Vec<f64>) {
        let (rho, d_rho) = correlation_at_position(params);
        let natural = [params[0], params[1], params[2], params[3], rho];
        let (value, g) = self.inner.loglik_and_gradient(&natural, exec);
        let gradient = (0..5)
            .map(|j| if j < 4 { g[j] } else { 0.0 } + g[4] * d_rho[j])
            .collect();
        (value, gradient)
    }
}

/// Posterior draws in the coordinates of [`POSITION_PARAMS`] (rows of `(r, alpha, s, beta,
/// position)`) turned into the model's own parameters, in place.
pub fn correlations_from_positions(mut draws: ArrayViewMut2<'_, f64>) {
    for mut row in draws.rows_mut() {
        let values = row.to_vec();
        row[4] = correlation_at_position(&values).0;
    }
}

/// A fit in the coordinates of [`POSITION_PARAMS`] (a posterior mode) turned into the model's
/// own parameters: the correlation, and the covariance by the delta method (the map's Jacobian
/// `J`, `J C J'`). The inverse Hessian of the optimiser's coordinates does not carry over and is
/// dropped. A mode at an end of the range (the position's logit running off, which the
/// optimiser reports as converged on a flat gradient) keeps no covariance: the Laplace
/// approximation does not hold there, as for the maximum-likelihood fit's boundary optimum.
pub fn fit_from_positions(res: &mut FitResult) {
    let (rho, d_rho) = correlation_at_position(&res.params);
    res.params[4] = rho;
    if note_boundary(res) {
        res.covariance = None;
        res.covariance_note = Some(
            "the correlation is at an end of the range the margins admit: no standard errors"
                .into(),
        );
    } else if let Some(c) = &res.covariance {
        let mut jacobian = Array2::<f64>::eye(5);
        for j in 0..5 {
            jacobian[[4, j]] = d_rho[j];
        }
        res.covariance = Some(jacobian.dot(c).dot(&jacobian.t()));
    }
    res.inverse_hessian = None;
}

/// Draw customer histories: `(lambda, mu)` from the Sarmanov density by rejection from the
/// independent gamma pair (acceptance `(1 + omega phi1 phi2) / bound`), then the Pareto/NBD
/// process. Customer `i` uses random stream `i` of `seed`.
pub fn simulate(p: &CorrelatedParetoNbdParams, ages: &[f64], seed: u64) -> (Vec<f64>, Vec<f64>) {
    let b = &p.base;
    let (la, la_c) = laplace_at_one(b.r, b.alpha);
    let (lb, lb_c) = laplace_at_one(b.s, b.beta);
    let omega = p.q() / (la * lb);
    let bound = 1.0 + omega.abs() * (la * lb).max(la_c * lb_c).max(la * lb_c).max(la_c * lb);
    let mut x = Vec::with_capacity(ages.len());
    let mut t_x = Vec::with_capacity(ages.len());
    for (i, &age) in ages.iter().enumerate() {
        let mut rng = crate::random::Rng::for_stream(seed, i as u64);
        let (lambda, mu) = loop {
            let lambda = rng.gamma(b.r) / b.alpha;
            let mu = rng.gamma(b.s) / b.beta;
            let density = 1.0 + omega * ((-lambda).exp() - la) * ((-mu).exp() - lb);
            if rng.uniform() * bound <= density {
                break (lambda, mu);
            }
        };
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

/// Where the likelihood still rises at the edge of the admissible correlations, the optimiser
/// stops on the edge (the likelihood is not finite beyond it, so there is no Hessian either):
/// say so in the termination, in words a user can act on. Returns whether it is on an edge.
fn note_boundary(res: &mut FitResult) -> bool {
    let p = &res.params;
    if p.len() != 5 {
        return false;
    }
    let model = CorrelatedParetoNbdParams::new(p[0], p[1], p[2], p[3], p[4]);
    let (lowest, highest) = model.correlation_bounds();
    let near = 1e-6 * (highest - lowest);
    let edge = if highest - p[4] <= near {
        Some(("highest", highest))
    } else if p[4] - lowest <= near {
        Some(("lowest", lowest))
    } else {
        None
    };
    if let Some((which, bound)) = edge {
        res.termination = format!(
            "the correlation is at the {which} value the Sarmanov family reaches with these gamma \
             margins ({bound:.6}) and the likelihood (or posterior) still rises towards it: a boundary optimum, \
             without standard errors (the range narrows as alpha and beta grow; a longer time \
             unit widens it); {}",
            res.termination
        );
    }
    edge.is_some()
}

impl RfmModel for CorrelatedParetoNbdParams {
    const NAME: &'static str = "pnbdcor";

    fn specs() -> &'static [ParamSpec] {
        &PARAMS
    }

    fn from_slice(values: &[f64]) -> Result<Self> {
        check_params(&PARAMS, values)?;
        let p =
            CorrelatedParetoNbdParams::new(values[0], values[1], values[2], values[3], values[4]);
        if !p.is_admissible() {
            let (lowest, highest) = p.correlation_bounds();
            return Err(crate::error::ClvError::invalid_parameter(
                "correlation",
                format!(
                    "must lie in [{lowest:.6}, {highest:.6}], the correlations the Sarmanov \
                     family reaches with these gamma margins, got {}",
                    p.correlation
                ),
            ));
        }
        Ok(p)
    }

    /// From `opts.start` when given, else from the plain Pareto/NBD fit's optimum with no
    /// correlation.
    fn fit(data: &Rfm, opts: &FitOptions<'_>) -> Result<FitResult> {
        let start = match &opts.start {
            Some(start) => start.clone(),
            None => {
                let mut start = ParetoNbdParams::fit(data, opts)?.params;
                start.push(0.0);
                start
            }
        };
        // Large data: the correlated fit to a subsample first (from the same start), whose
        // optimum and curvature start the full fit (a few full passes instead of about 20).
        // The start is the model's (the plain optimum), not a caller's: it keeps the stages.
        // The subsample's fit takes Newton steps (3 iterations instead of about 22 for L-BFGS,
        // which must learn the correlation's curvature from the plain optimum); the full fit
        // from there L-BFGS (4 gradient passes, cheaper than 3 fused ones).
        let staging = Staging {
            start: Some(start),
            newton_on_sample: true,
            ..Staging::default()
        };
        let direct = FitOptions {
            start: None,
            ..opts.clone()
        };
        let fit_on = |d: &Rfm, o: &FitOptions<'_>| fit(&CorrelatedParetoNbd::new(d), o);
        let mut res = fit_in_stages(
            data,
            data.len(),
            |d, stride| d.subsample(stride),
            fit_on,
            &direct,
            &staging,
        )?
        .result;
        if note_boundary(&mut res) {
            // On the edge of the family the identity coordinate crawls along a wall that moves
            // with the margins (each step that raises the margins' likelihood moves the edge),
            // and stops short of the highest likelihood on it. In the position coordinate the
            // edge is fixed (u = 1), so a fit there from this estimate follows the edge (CDNOW:
            // log-likelihood -9591.66 against -9591.97 on the crawl). The better one is kept.
            let (lowest, highest) = CorrelatedParetoNbdParams::new(
                res.params[0],
                res.params[1],
                res.params[2],
                res.params[3],
                0.0,
            )
            .correlation_bounds();
            let mut start = res.params.clone();
            start[4] = ((res.params[4] - lowest) / (highest - lowest)).clamp(1e-3, 0.999);
            let by_position = fit(
                &CorrelatedParetoNbdByPosition::new(data),
                &FitOptions {
                    start: Some(start),
                    ..direct.clone()
                },
            );
            if let Ok(mut along) = by_position {
                fit_from_positions(&mut along);
                if along.log_likelihood > res.log_likelihood {
                    res = along;
                }
            }
        }
        Ok(res)
    }

    fn simulate(&self, ages: &[f64], seed: u64) -> Option<(Vec<f64>, Vec<f64>)> {
        Some(simulate(self, ages, seed))
    }

    fn log_likelihood(&self, x: f64, t_x: f64, age: f64) -> f64 {
        self.posterior(x, t_x, age).1
    }

    fn probability_alive(&self, x: f64, t_x: f64, age: f64) -> f64 {
        self.given_history(x, t_x, age, |p| pnbd::probability_alive(p, x, t_x, age))
    }

    fn conditional_expected_purchases(&self, x: f64, t_x: f64, age: f64, t: f64) -> f64 {
        self.given_history(x, t_x, age, |p| {
            pnbd::conditional_expected_purchases(p, x, t_x, age, t)
        })
    }

    fn expected_purchases_new_customer(&self, t: f64) -> f64 {
        self.prior_mix(|p| pnbd::expected_purchases_new_customer(p, t))
    }

    fn purchase_count_probability(&self, n: u64, t: f64) -> Option<f64> {
        Some(self.prior_mix(|p| p.purchase_count_probability(n, t)))
    }

    fn probability_alive_after(&self, x: f64, t_x: f64, age: f64, t: f64) -> Option<f64> {
        Some(self.given_history(x, t_x, age, |p| p.probability_alive_after(x, t_x, age, t)))
    }

    fn conditional_purchase_count_probability(
        &self,
        n: u64,
        x: f64,
        t_x: f64,
        age: f64,
        t: f64,
    ) -> Option<f64> {
        Some(self.given_history(x, t_x, age, |p| {
            p.conditional_purchase_count_probability(n, x, t_x, age, t)
        }))
    }

    fn expected_residual_transactions(&self, x: f64, t_x: f64, age: f64, rate: f64) -> Option<f64> {
        Some(self.given_history(x, t_x, age, |p| {
            p.expected_residual_transactions(x, t_x, age, rate)
        }))
    }

    /// Rows the plain Pareto/NBD refuses are refused here too.
    const HAS_MORE_RULES: bool = true;

    fn validate_more(columns: &RfmColumns<'_>, names: &crate::data::RfmNames) -> Result<()> {
        ParetoNbdParams::validate_more(columns, names)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::models::testing::{assert_gradient_matches, rel};

    const ROWS: [(f64, f64, f64); 6] = [
        (0.0, 0.0, 30.0),
        (1.0, 2.0, 39.0),
        (26.0, 30.85714, 31.0),
        (5.0, 20.0, 20.0),
        (300.0, 10.0, 52.0),
        (0.0, 0.0, 0.0),
    ];

    fn grid() -> Vec<[f64; 4]> {
        vec![
            [0.55, 10.5, 0.6, 11.7],
            [2.0, 1.0, 0.3, 5.0],
            [0.3, 4.0, 3.0, 0.5],
        ]
    }

    fn bounds(p: &[f64; 4]) -> (f64, f64) {
        CorrelatedParetoNbdParams::new(p[0], p[1], p[2], p[3], 0.0).correlation_bounds()
    }

    fn highest(p: &[f64; 4]) -> f64 {
        bounds(p).1
    }

    #[test]
    fn zero_correlation_is_the_plain_model_to_the_bit() {
        for p in grid() {
            let plain = ParetoNbdParams::new(p[0], p[1], p[2], p[3]);
            let cor = CorrelatedParetoNbdParams::new(p[0], p[1], p[2], p[3], 0.0);
            for &(x, t_x, age) in &ROWS {
                let (value, gradient) =
                    row_log_likelihood(&[p[0], p[1], p[2], p[3], 0.0], x, t_x, age);
                let (want, want_gradient, _) =
                    pnbd::row_derivatives::<false>(&p, rising_terms::<false>(p[0], x), x, t_x, age);
                assert_eq!(value.to_bits(), want.to_bits());
                assert_eq!(&gradient[..4], &want_gradient[..]);
                assert_eq!(
                    cor.probability_alive(x, t_x, age),
                    pnbd::probability_alive(&plain, x, t_x, age)
                );
                assert_eq!(
                    cor.conditional_expected_purchases(x, t_x, age, 10.0),
                    pnbd::conditional_expected_purchases(&plain, x, t_x, age, 10.0)
                );
            }
            assert_eq!(
                cor.expected_purchases_new_customer(20.0),
                pnbd::expected_purchases_new_customer(&plain, 20.0)
            );
        }
    }

    #[test]
    fn gradient_is_exact() {
        for p in grid() {
            for fraction in [-0.5, 0.7] {
                let (lowest, highest) = bounds(&p);
                let rho = if fraction > 0.0 {
                    fraction * highest
                } else {
                    -fraction * lowest
                };
                let at = [p[0], p[1], p[2], p[3], rho];
                for &(x, t_x, age) in &ROWS {
                    let (_, gradient) = row_log_likelihood(&at, x, t_x, age);
                    let value = |q: &[f64]| {
                        row_log_likelihood(&[q[0], q[1], q[2], q[3], q[4]], x, t_x, age).0
                    };
                    // Central differences carry ~1e-6 relative noise (as for the plain rows).
                    assert_gradient_matches(value, &gradient, &at, 1e-5);
                }
            }
        }
    }

    #[test]
    fn row_hessian_matches_differences_of_the_gradient() {
        for p in grid() {
            for fraction in [-0.5, 0.0, 0.7] {
                let (lowest, highest) = bounds(&p);
                let rho = if fraction > 0.0 {
                    fraction * highest
                } else {
                    -fraction * lowest
                };
                let at = [p[0], p[1], p[2], p[3], rho];
                for &(x, t_x, age) in &ROWS {
                    let (value, gradient, hessian) = row_derivatives::<true>(&at, x, t_x, age);
                    let (first_value, first_gradient) = row_log_likelihood(&at, x, t_x, age);
                    assert_eq!(value.to_bits(), first_value.to_bits());
                    assert_eq!(gradient, first_gradient);
                    for i in 0..5 {
                        let h = 1e-6 * at[i].abs().max(1e-3);
                        let (mut up, mut down) = (at, at);
                        up[i] += h;
                        down[i] -= h;
                        let g_up = row_log_likelihood(&up, x, t_x, age).1;
                        let g_down = row_log_likelihood(&down, x, t_x, age).1;
                        for j in i..5 {
                            let numeric = (g_up[j] - g_down[j]) / (2.0 * h);
                            let scale = (g_up[j].abs() + g_down[j].abs()).max(1.0);
                            assert!(
                                (hessian[i][j] - numeric).abs() <= 1e-5 * scale,
                                "{at:?} ({x}, {t_x}, {age}) ({i},{j}): {} vs {numeric}",
                                hessian[i][j]
                            );
                        }
                    }
                }
            }
        }
    }

    /// CDNOW's rows with the awkward ones added.
    fn rows_with_awkward_ones() -> Rfm {
        let cdnow = crate::models::testing::cdnow();
        let (mut x, mut t_x, mut age) = (
            cdnow.frequency.clone(),
            cdnow.recency.clone(),
            cdnow.age.clone(),
        );
        for &(xi, ti, ai) in &ROWS {
            x.push(xi);
            t_x.push(ti);
            age.push(ai);
        }
        RfmColumns::new(&x, &t_x, &age).compress()
    }

    #[test]
    fn pass_at_zero_correlation_is_the_plain_pass_to_the_bit() {
        let data = rows_with_awkward_ones();
        let plain = pnbd::ParetoNbd::new(&data);
        let correlated = CorrelatedParetoNbd::new(&data);
        for exec in [Exec::Serial, Exec::with_jobs(Some(2)).unwrap()] {
            for p in grid() {
                let at = [p[0], p[1], p[2], p[3], 0.0];
                let (value, gradient) = correlated.loglik_and_gradient(&at, &exec);
                let (want, want_gradient) = plain.loglik_and_gradient(&p, &exec);
                assert_eq!(value.to_bits(), want.to_bits(), "{p:?}");
                assert_eq!(&gradient[..4], &want_gradient[..], "{p:?}");
                let (_, _, hessian) = correlated.loglik_gradient_hessian(&at, &exec).unwrap();
                let (_, _, want_hessian) = plain.loglik_gradient_hessian(&p, &exec).unwrap();
                for i in 0..4 {
                    for j in 0..4 {
                        assert_eq!(hessian[[i, j]], want_hessian[[i, j]], "{p:?} ({i},{j})");
                    }
                }
            }
        }
    }

    #[test]
    fn pass_sums_the_rows_and_its_hessian_is_the_gradients_derivative() {
        let data = rows_with_awkward_ones();
        let lik = CorrelatedParetoNbd::new(&data);
        let exec = Exec::with_jobs(Some(2)).unwrap();
        for p in grid() {
            let at = [p[0], p[1], p[2], p[3], 0.6 * highest(&p)];
            let (value, gradient) = lik.loglik_and_gradient(&at, &exec);
            let (fused_value, fused_gradient, hessian) =
                lik.loglik_gradient_hessian(&at, &exec).unwrap();
            assert_eq!(fused_value.to_bits(), value.to_bits());
            assert_eq!(fused_gradient, gradient);
            // The pass's rows (shared series for rows without repeat purchases) against each
            // row on its own.
            let mut want = [0.0; 6];
            for i in 0..data.len() {
                let (v, g) =
                    row_log_likelihood(&at, data.frequency[i], data.recency[i], data.age[i]);
                want[0] += data.weight(i) * v;
                for j in 0..5 {
                    want[1 + j] += data.weight(i) * g[j];
                }
            }
            assert!(rel(value, want[0]) < 1e-12, "{value} vs {}", want[0]);
            for j in 0..5 {
                assert!(
                    (gradient[j] - want[1 + j]).abs() < 1e-9 * want[1 + j].abs().max(1.0),
                    "{j}: {} vs {}",
                    gradient[j],
                    want[1 + j]
                );
            }
            for i in 0..5 {
                let h = 1e-6 * at[i].abs();
                let (mut up, mut down) = (at, at);
                up[i] += h;
                down[i] -= h;
                let g_up = lik.loglik_and_gradient(&up, &exec).1;
                let g_down = lik.loglik_and_gradient(&down, &exec).1;
                for j in 0..5 {
                    assert_eq!(hessian[[i, j]], hessian[[j, i]]);
                    let numeric = (g_up[j] - g_down[j]) / (2.0 * h);
                    let scale = (hessian[[i, i]] * hessian[[j, j]]).abs().sqrt();
                    assert!(
                        (hessian[[i, j]] - numeric).abs() <= 1e-4 * scale,
                        "{at:?} ({i},{j}): {} vs {numeric}",
                        hessian[[i, j]]
                    );
                }
            }
        }
    }

    #[test]
    fn predictions_are_linear_mixtures() {
        // P(alive) and the likelihood agree with the posterior weights: the alive part of the
        // likelihood over the whole.
        let p = grid()[1];
        let rho = 0.6 * highest(&p);
        let cor = CorrelatedParetoNbdParams::new(p[0], p[1], p[2], p[3], rho);
        let prior: f64 = cor.components().iter().map(|c| c.0).sum();
        assert!((prior - 1.0).abs() < 1e-15);
        for &(x, t_x, age) in &ROWS {
            let (weights, ll) = cor.posterior(x, t_x, age);
            assert!((weights.iter().sum::<f64>() - 1.0).abs() < 1e-12);
            let (direct, _) = row_log_likelihood(&[p[0], p[1], p[2], p[3], rho], x, t_x, age);
            assert!((ll - direct).abs() < 1e-12 * direct.abs().max(1.0));
            let alive = cor.probability_alive(x, t_x, age);
            assert!((0.0..=1.0).contains(&alive), "{alive}");
        }
        // Beyond the admissible range, refused.
        assert!(CorrelatedParetoNbdParams::from_slice(&[
            p[0],
            p[1],
            p[2],
            p[3],
            1.01 * highest(&p)
        ])
        .is_err());
    }

    #[test]
    fn recovers_a_known_correlation() {
        // 4,000 customers at a correlation near the top of its range (small: debug build in CI;
        // the Python tests fit a larger sample).
        let p = [1.0, 2.0, 0.8, 3.0];
        let rho = 0.8 * highest(&p);
        let truth = CorrelatedParetoNbdParams::new(p[0], p[1], p[2], p[3], rho);
        let ages: Vec<f64> = (0..4_000).map(|i| 20.0 + (i % 20) as f64).collect();
        let (x, t_x) = simulate(&truth, &ages, 7);
        let data = RfmColumns::new(&x, &t_x, &ages).compress();
        let res = CorrelatedParetoNbdParams::fit(&data, &FitOptions::default()).unwrap();
        assert!(res.converged, "{}", res.termination);
        let se = res.standard_errors().unwrap();
        assert!(
            (res.params[4] - rho).abs() < 3.0 * se[4],
            "{:?} vs {rho}, se {se:?}",
            res.params
        );
        for k in 0..4 {
            assert!(rel(res.params[k], p[k]) < 0.15, "{:?}", res.params);
        }
    }

    #[test]
    fn positions_span_the_admissible_range_with_exact_gradients() {
        for p in grid() {
            let (lowest, highest) = bounds(&p);
            for u in [1e-9, 0.2, 0.5, 0.93, 1.0 - 1e-9] {
                let at = [p[0], p[1], p[2], p[3], u];
                let (rho, gradient) = correlation_at_position(&at);
                let want = lowest + u * (highest - lowest);
                assert!(
                    (rho - want).abs() <= 1e-15 * (highest - lowest),
                    "{rho} vs {want}"
                );
                assert!(CorrelatedParetoNbdParams::new(p[0], p[1], p[2], p[3], rho).is_admissible());
                // Finite differences of the bounds themselves (computed without dual numbers).
                let value = |q: &[f64]| {
                    let (lo, hi) = bounds(&[q[0], q[1], q[2], q[3]]);
                    lo + q[4] * (hi - lo)
                };
                assert_gradient_matches(value, &gradient, &at, 1e-6);
            }
        }
    }

    #[test]
    fn position_likelihood_is_the_correlated_likelihood_with_its_chain_rule() {
        let ages: Vec<f64> = (0..300).map(|i| 20.0 + (i % 20) as f64).collect();
        let truth = CorrelatedParetoNbdParams::new(0.8, 3.0, 0.7, 4.0, 0.0);
        let (x, t_x) = simulate(&truth, &ages, 3);
        let data = RfmColumns::new(&x, &t_x, &ages).compress();
        let by_position = CorrelatedParetoNbdByPosition::new(&data);
        let natural = CorrelatedParetoNbd::new(&data);
        for p in grid() {
            for u in [0.1, 0.6] {
                let at = [p[0], p[1], p[2], p[3], u];
                let (value, gradient) = by_position.loglik_and_gradient(&at, &Exec::Serial);
                let rho = correlation_at_position(&at).0;
                let want = natural
                    .loglik_and_gradient(&[p[0], p[1], p[2], p[3], rho], &Exec::Serial)
                    .0;
                assert_eq!(value.to_bits(), want.to_bits());
                let f = |q: &[f64]| by_position.loglik_and_gradient(q, &Exec::Serial).0;
                assert_gradient_matches(f, &gradient, &at, 1e-5);
            }
        }
        // The starting points sit at no correlation.
        for start in by_position.starts() {
            assert!(correlation_at_position(&start).0.abs() < 1e-15, "{start:?}");
        }
    }

    #[test]
    fn draws_and_modes_convert_to_the_correlation() {
        let p = [0.55, 10.5, 0.6, 11.7];
        let (lowest, highest) = bounds(&p);
        let mut draws = ndarray::array![
            [p[0], p[1], p[2], p[3], 0.25],
            [p[0], p[1], p[2], p[3], 1.0]
        ];
        correlations_from_positions(draws.view_mut());
        assert!((draws[[0, 4]] - (lowest + 0.25 * (highest - lowest))).abs() < 1e-16);
        assert_eq!(draws[[1, 4]], highest);
        assert_eq!(draws[[0, 1]], p[1]);
    }

    #[test]
    fn flat_prior_mode_by_position_is_the_maximum_likelihood_fit() {
        // A reparameterisation moves neither the optimum nor, by the delta method, the
        // covariance: the mode with flat priors (no Jacobian in a mode) is the MLE.
        let p = [1.0, 2.0, 0.8, 3.0];
        let rho = 0.5 * highest(&p);
        let truth = CorrelatedParetoNbdParams::new(p[0], p[1], p[2], p[3], rho);
        let ages: Vec<f64> = (0..3_000).map(|i| 20.0 + (i % 20) as f64).collect();
        let (x, t_x) = simulate(&truth, &ages, 11);
        let data = RfmColumns::new(&x, &t_x, &ages).compress();
        let tight = FitOptions {
            gradient_tolerance: 1e-11,
            ..FitOptions::default()
        };
        let mle = CorrelatedParetoNbdParams::fit(&data, &tight).unwrap();
        assert!(mle.converged, "{}", mle.termination);
        let flat: Vec<crate::bayes::PriorTerm> = (0..5)
            .map(|index| crate::bayes::PriorTerm::Single {
                index,
                prior: crate::bayes::Prior::Flat,
            })
            .collect();
        let (mut mode, _, _) =
            crate::bayes::posterior_mode(&CorrelatedParetoNbdByPosition::new(&data), &flat, &tight)
                .unwrap();
        assert!(mode.converged, "{}", mode.termination);
        fit_from_positions(&mut mode);
        let (want, got) = (mle.covariance.unwrap(), mode.covariance.unwrap());
        for j in 0..5 {
            let se = want[[j, j]].sqrt();
            assert!(
                (mode.params[j] - mle.params[j]).abs() < 1e-4 * se,
                "{j}: {:?} vs {:?}",
                mode.params,
                mle.params
            );
            for k in 0..5 {
                assert!(
                    (got[[j, k]] - want[[j, k]]).abs() < 1e-4 * se * want[[k, k]].sqrt(),
                    "{j},{k}: {got:?} vs {want:?}"
                );
            }
        }
        assert!(mode.inverse_hessian.is_none());
    }
}
