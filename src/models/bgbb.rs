//! BG/BB: the beta-geometric / beta-Bernoulli model of Fader, Hardie & Shang (2010),
//! "Customer-Base Analysis in a Discrete-Time Noncontractual Setting", Marketing Science 29(6),
//! 1086-1108.
//!
//! At each of `n` discrete transaction opportunities a customer who is still alive transacts
//! with probability `p ~ Beta(alpha, beta)`, and at the start of each opportunity after the
//! first an alive customer dies with probability `theta ~ Beta(gamma, delta)`. For `x` repeat
//! transactions, the last at opportunity `t_x`, over `n` opportunities (FHS 2010, eq. 5):
//!
//! ```text
//! L = B(alpha+x, beta+n-x)/B(alpha,beta) * B(gamma, delta+n)/B(gamma,delta)
//!   + sum_{i=0}^{n-t_x-1} B(alpha+x, beta+t_x-x+i)/B(alpha,beta)
//!                         * B(gamma+1, delta+t_x+i)/B(gamma,delta)
//! ```
//!
//! The sum's terms fall by the ratio `(beta+t_x-x+i)/(alpha+beta+t_x+i) *
//! (delta+t_x+i)/(gamma+delta+t_x+i+1) < 1`, so it is summed relative to its first term with
//! that recurrence, in log form and over [`Dual`] numbers (exact gradient). Every prediction is
//! written as a finite or geometric-dominated sum of positive terms (the paper's closed forms
//! divide by `gamma - 1` and need hypergeometric functions), so long histories and horizons (n
//! and m in the hundreds) stay exact; `lifetimes` floors its likelihood terms there.

use super::{RfmModel, RowDerivatives};
use crate::data::{Rfm, RfmColumns};
use crate::dual::Dual;
use crate::error::{ClvError, Result};
use crate::fit::{check_params, fit, Domain, FitOptions, FitResult, Likelihood, ParamSpec};
use crate::parallel::Exec;
use crate::special::{ln_gamma_diff, smooth_sum, SMOOTH_SUM_HEAD};

/// Parameter names and domains: alpha, beta (transaction probability), gamma, delta (dropout).
pub static PARAMS: [ParamSpec; 4] = [
    ParamSpec {
        name: "alpha",
        domain: Domain::Positive,
    },
    ParamSpec {
        name: "beta",
        domain: Domain::Positive,
    },
    ParamSpec {
        name: "gamma",
        domain: Domain::Positive,
    },
    ParamSpec {
        name: "delta",
        domain: Domain::Positive,
    },
];

/// BG/BB parameters.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BgBbParams {
    pub alpha: f64,
    pub beta: f64,
    pub gamma: f64,
    pub delta: f64,
}

/// Most opportunities a history or a horizon may span: the likelihood and the predictions visit
/// opportunities one by one.
pub const MAX_OPPORTUNITIES: f64 = 1e7;

/// Relative size of neglected tails of the infinite sums (DERT).
const TAIL_TOLERANCE: f64 = 1e-17;

/// `ln B(a + x, b + y) - ln B(a, b)` over duals, without cancellation for large arguments.
fn ln_beta_ratio<const N: usize>(a: Dual<N>, b: Dual<N>, x: f64, y: f64) -> Dual<N> {
    a.ln_gamma_ratio(x) + b.ln_gamma_ratio(y) - (a + b).ln_gamma_ratio(x + y)
}

/// `ln L` of one row, with its gradient when `N = 4`.
pub(crate) fn row_log_likelihood<const N: usize>(
    [alpha, beta, gamma, delta]: [Dual<N>; 4],
    x: f64,
    t_x: f64,
    n: f64,
) -> Dual<N> {
    if x == 0.0 && n >= 1.0 {
        // No purchase: L = 1 - C with C = P(a first purchase at some j <= n) =
        // sum_j E[(1 - theta)^j] E[(1 - p)^(j - 1) p]. When C is small (L near 1, e.g. beta
        // huge) ln L is ln(1 - C), exact, where the sum of the branches below would round it
        // away (an error of 1e-14 in a log-likelihood of -1.4e-11).
        let mut term = delta / (gamma + delta) * (alpha / (alpha + beta));
        let mut complement = term;
        let mut j = 1.0;
        // C is at least its first term: when that is already 1/2 the branches below serve the
        // row, and the sum is skipped (only one of the two forms is computed).
        if term.v >= 0.5 {
            j = n;
        }
        while j < n {
            term = term
                * ((delta + j) / (gamma + delta + j) * ((beta + (j - 1.0)) / (alpha + beta + j)));
            complement += term;
            j += 1.0;
        }
        if complement.v < 0.5 {
            return (-complement).ln_1p();
        }
    }
    let purchase = |y: f64| ln_beta_ratio(alpha, beta, x, y);
    // Alive through all n opportunities.
    let alive = purchase(n - x) + ln_beta_ratio(gamma, delta, 0.0, n);
    let gaps = n - t_x;
    if !(gaps >= 1.0) {
        return alive;
    }
    // Died at the start of opportunity t_x + i + 1, i = 0 .. n - t_x - 1: the first term in logs,
    // the others relative to it by the recurrence.
    let first = purchase(t_x - x) + ln_beta_ratio(gamma, delta, 1.0, t_x);
    let mut term = Dual::constant(1.0);
    let mut sum = Dual::constant(1.0);
    let mut i = 0.0;
    while i + 1.0 < gaps {
        let ratio = (beta + (t_x - x + i)) / (alpha + beta + (t_x + i))
            * ((delta + (t_x + i)) / (gamma + delta + (t_x + i + 1.0)));
        term = term * ratio;
        sum += term;
        i += 1.0;
    }
    alive.log_add_exp(first + sum.ln())
}

/// Most opportunities of a row that [`whole_row_derivatives`] takes in closed form: its cost and
/// its rounding (a product of up to `2 n` factors) grow with `n`; longer rows take
/// [`row_log_likelihood`].
pub(crate) const CLOSED_FORM_MAX_OPPORTUNITIES: f64 = 128.0;

/// The arguments `a` of the factors `(a + k)^(+-1)` of a row's terms for whole counts (indices
/// into [`Factors`]): `alpha`, `beta`, `alpha + beta`, `gamma`, `delta`, `gamma + delta`.
const ALPHA: usize = 0;
const BETA: usize = 1;
const ALPHA_BETA: usize = 2;
const GAMMA: usize = 3;
const DELTA: usize = 4;
const GAMMA_DELTA: usize = 5;

/// A product of factors `(a + k)^(+-1)` over the arguments above (`ln_scale` plus the log of
/// `value`), with the first derivatives of its log in each argument (`d1`: the sum of
/// `+-1/(a + k)`) and, when `SECOND`, the second (`d2`: the sum of `-+1/(a + k)^2`; a factor
/// depends on one argument, so there are no cross terms).
#[derive(Debug, Clone, Copy)]
struct Factors<const SECOND: bool> {
    value: f64,
    ln_scale: f64,
    d1: [f64; 6],
    d2: [f64; 6],
}

/// [`Factors::rescale`] moves the value into the log scale below this (so that a long product
/// of small ratios does not underflow).
const RESCALE_BELOW: f64 = 1e-200;

impl<const SECOND: bool> Factors<SECOND> {
    fn one() -> Self {
        Factors {
            value: 1.0,
            ln_scale: 0.0,
            d1: [0.0; 6],
            d2: [0.0; 6],
        }
    }

    /// Multiply by `numerator / denominator`, each `(argument index, a + k)`.
    #[inline(always)]
    fn ratio(&mut self, (top, numerator): (usize, f64), (bottom, denominator): (usize, f64)) {
        let (inv_top, inv_bottom) = (1.0 / numerator, 1.0 / denominator);
        self.value *= numerator * inv_bottom;
        self.d1[top] += inv_top;
        self.d1[bottom] -= inv_bottom;
        if SECOND {
            self.d2[top] -= inv_top * inv_top;
            self.d2[bottom] += inv_bottom * inv_bottom;
        }
    }

    #[inline(always)]
    fn rescale(&mut self) {
        if self.value < RESCALE_BELOW {
            self.ln_scale += self.value.ln();
            self.value = 1.0;
        }
    }

    fn ln(&self) -> f64 {
        self.ln_scale + self.value.ln()
    }

    /// The gradient and (when `SECOND`) Hessian of the log in `(alpha, beta, gamma, delta)`:
    /// `alpha + beta` moves with both purchase parameters, `gamma + delta` with both dropout
    /// ones.
    #[inline(always)]
    fn derivatives(&self) -> ([f64; 4], [[f64; 4]; 4]) {
        let d1 = &self.d1;
        let g = [
            d1[ALPHA] + d1[ALPHA_BETA],
            d1[BETA] + d1[ALPHA_BETA],
            d1[GAMMA] + d1[GAMMA_DELTA],
            d1[DELTA] + d1[GAMMA_DELTA],
        ];
        let mut h = [[0.0; 4]; 4];
        if SECOND {
            let d2 = &self.d2;
            h[0][0] = d2[ALPHA] + d2[ALPHA_BETA];
            h[0][1] = d2[ALPHA_BETA];
            h[1][0] = d2[ALPHA_BETA];
            h[1][1] = d2[BETA] + d2[ALPHA_BETA];
            h[2][2] = d2[GAMMA] + d2[GAMMA_DELTA];
            h[2][3] = d2[GAMMA_DELTA];
            h[3][2] = d2[GAMMA_DELTA];
            h[3][3] = d2[DELTA] + d2[GAMMA_DELTA];
        }
        (g, h)
    }
}

/// A sum of terms `q_j` given as [`Factors`] (relative to a common first factor, so without a
/// log scale), with `sum q_j grad ln q_j` and, when `SECOND`,
/// `sum q_j (hess ln q_j + grad ln q_j grad ln q_j')`: what the derivatives of `ln sum q_j` need.
struct TermSum<const SECOND: bool> {
    sum: f64,
    g: [f64; 4],
    m: [[f64; 4]; 4],
}

impl<const SECOND: bool> TermSum<SECOND> {
    fn new() -> Self {
        TermSum {
            sum: 0.0,
            g: [0.0; 4],
            m: [[0.0; 4]; 4],
        }
    }

    #[inline(always)]
    fn add(&mut self, term: &Factors<SECOND>) {
        let q = term.value;
        let (g, h) = term.derivatives();
        self.sum += q;
        for a in 0..4 {
            self.g[a] += q * g[a];
            if SECOND {
                for b in 0..4 {
                    self.m[a][b] += q * (h[a][b] + g[a] * g[b]);
                }
            }
        }
    }

    /// The gradient and Hessian of `ln sum q_j`: the terms' weighted mean gradient, and their
    /// weighted mean of `hess + g g'` less the mean gradient's outer product.
    #[inline(always)]
    fn ln_derivatives(&self) -> ([f64; 4], [[f64; 4]; 4]) {
        let g: [f64; 4] = std::array::from_fn(|a| self.g[a] / self.sum);
        let mut h = [[0.0; 4]; 4];
        if SECOND {
            for a in 0..4 {
                for b in 0..4 {
                    h[a][b] = self.m[a][b] / self.sum - g[a] * g[b];
                }
            }
        }
        (g, h)
    }
}

/// A row's log-likelihood with its gradient and, when `SECOND`, its Hessian in
/// `(alpha, beta, gamma, delta)`, in closed form for whole counts `0 <= x <= t_x <= n` with `n`
/// at most [`CLOSED_FORM_MAX_OPPORTUNITIES`]; `None` for other rows (or parameters so extreme
/// that a term leaves the floating-point range), which take [`row_log_likelihood`].
///
/// With whole counts every beta function ratio of eq. 5 is a ratio of rising factorials,
/// `B(a + x, b + y) / B(a, b) = (a)_x (b)_y / (a + b)_(x+y)`, so `L` is a sum of products of
/// factors `(a + k)^(+-1)` whose logs have the derivatives `+-1/(a + k)` and `-+1/(a + k)^2`:
/// no ln-gamma or digamma. `L` is the first death term
/// `(alpha)_x (beta)_(t_x-x) / (alpha+beta)_(t_x) * gamma (delta)_(t_x) / (gamma+delta)_(t_x+1)`
/// times the sum of the terms relative to it (the same recurrence as [`row_log_likelihood`],
/// then the alive term, `(gamma + delta + n) / gamma` times the death term at `n`). As there, a
/// row without purchases whose likelihood is near 1 is `ln(1 - C)` with `C` the probability of
/// a first purchase, a sum of the same kind.
pub(crate) fn whole_row_derivatives<const SECOND: bool>(
    params: &[f64; 4],
    x: f64,
    t_x: f64,
    n: f64,
) -> Option<RowDerivatives> {
    let whole = |v: f64| v.fract() == 0.0;
    if !(0.0 <= x
        && x <= t_x
        && t_x <= n
        && n <= CLOSED_FORM_MAX_OPPORTUNITIES
        && whole(x)
        && whole(t_x)
        && whole(n))
    {
        return None;
    }
    let [alpha, beta, gamma, delta] = *params;
    let (ab, gd) = (alpha + beta, gamma + delta);
    let plus = |a: &[f64; 4], b: &[f64; 4]| -> [f64; 4] { std::array::from_fn(|k| a[k] + b[k]) };
    let plus_h = |a: &[[f64; 4]; 4], b: &[[f64; 4]; 4]| -> [[f64; 4]; 4] {
        std::array::from_fn(|k| plus(&a[k], &b[k]))
    };
    let finite = |(v, g, h): RowDerivatives| -> Option<RowDerivatives> {
        let ok = v.is_finite() && g.iter().chain(h.iter().flatten()).all(|d| d.is_finite());
        ok.then_some((v, g, h))
    };
    if x == 0.0 && n >= 1.0 {
        // C = sum_j E[(1 - theta)^j] E[(1 - p)^(j - 1) p], j = 1..n, as in row_log_likelihood.
        let mut first = Factors::<SECOND>::one();
        first.ratio((DELTA, delta), (GAMMA_DELTA, gd));
        first.ratio((ALPHA, alpha), (ALPHA_BETA, ab));
        if first.value < 0.5 {
            let mut term = Factors::<SECOND>::one();
            let mut sum = TermSum::<SECOND>::new();
            sum.add(&term);
            let mut j = 1.0;
            while j < n {
                term.ratio((DELTA, delta + j), (GAMMA_DELTA, gd + j));
                term.ratio((BETA, beta + (j - 1.0)), (ALPHA_BETA, ab + j));
                sum.add(&term);
                j += 1.0;
            }
            let complement = first.value * sum.sum;
            if complement < 0.5 {
                // ln(1 - C): gradient -r grad ln C, Hessian -r hess ln C - r/(1 - C) g g',
                // r = C / (1 - C).
                let (g_first, h_first) = first.derivatives();
                let (g_sum, h_sum) = sum.ln_derivatives();
                let g_c = plus(&g_first, &g_sum);
                let h_c = plus_h(&h_first, &h_sum);
                let r = complement / (1.0 - complement);
                let outer = r / (1.0 - complement);
                let gradient = g_c.map(|v| -r * v);
                let mut hessian = [[0.0; 4]; 4];
                if SECOND {
                    for a in 0..4 {
                        for b in 0..4 {
                            hessian[a][b] = -r * h_c[a][b] - outer * g_c[a] * g_c[b];
                        }
                    }
                }
                return finite(((-complement).ln_1p(), gradient, hessian));
            }
        }
    }
    // The first death term (at t_x), its factor for opportunity k a purchase ratio (a purchase
    // at k < x, else none) and a survival ratio.
    let mut first = Factors::<SECOND>::one();
    let mut k = 0.0;
    while k < t_x {
        let top = if k < x {
            (ALPHA, alpha + k)
        } else {
            (BETA, beta + (k - x))
        };
        first.ratio(top, (ALPHA_BETA, ab + k));
        first.rescale();
        first.ratio((DELTA, delta + k), (GAMMA_DELTA, gd + k));
        first.rescale();
        k += 1.0;
    }
    first.ratio((GAMMA, gamma), (GAMMA_DELTA, gd + t_x));
    // The death terms at m = t_x .. n - 1 relative to it, then the alive term.
    let mut term = Factors::<SECOND>::one();
    let mut sum = TermSum::<SECOND>::new();
    let mut m = t_x;
    while m < n {
        sum.add(&term);
        term.ratio((BETA, beta + (m - x)), (ALPHA_BETA, ab + m));
        term.ratio((DELTA, delta + m), (GAMMA_DELTA, gd + (m + 1.0)));
        m += 1.0;
    }
    term.ratio((GAMMA_DELTA, gd + n), (GAMMA, gamma));
    sum.add(&term);
    let (g_first, h_first) = first.derivatives();
    let (g_sum, h_sum) = sum.ln_derivatives();
    finite((
        first.ln() + sum.sum.ln(),
        plus(&g_first, &g_sum),
        plus_h(&h_first, &h_sum),
    ))
}

impl BgBbParams {
    pub const fn new(alpha: f64, beta: f64, gamma: f64, delta: f64) -> Self {
        BgBbParams {
            alpha,
            beta,
            gamma,
            delta,
        }
    }

    fn duals<const N: usize>(&self) -> [Dual<N>; 4] {
        [self.alpha, self.beta, self.gamma, self.delta].map(Dual::constant)
    }

    /// P(alive at the end of the n observed opportunities): the first term's share of `L`.
    pub fn probability_alive(&self, x: f64, t_x: f64, n: f64) -> f64 {
        let p = self.duals::<0>();
        let alive = ln_beta_ratio(p[0], p[1], x, n - x).v + ln_beta_ratio(p[2], p[3], 0.0, n).v;
        let total = row_log_likelihood(p, x, t_x, n).v;
        (alive - total).exp().min(1.0)
    }

    /// `E[(1 - theta)^j]` under `theta ~ Beta(gamma, delta + n)` for `j = 1 ..`, by the
    /// recurrence `(delta + n + j - 1) / (gamma + delta + n + j - 1)`, summed with the weights
    /// `w(j)` until the terms (times the geometric tail bound `1/(1-q)` when `w` shrinks by `q`)
    /// are negligible, or `m` terms when `m` is finite.
    ///
    /// Past a head of terms (longer for a faster discount, so that the head ends it whenever
    /// the discount is not slow) the rest is summed at a bounded cost by
    /// [`crate::special::smooth_sum`]: `m = 10^9` or a discount rate of 1e-10 cost as much as
    /// a few thousand terms. NaN when the sum does not converge in double precision (a
    /// discount rate near 1e-300 with `gamma <= 1`).
    fn survival_sum(&self, n: f64, m: f64, ln_ratio: f64) -> f64 {
        let (g, d) = (self.gamma, self.delta + n);
        // (The discount is carried as its log, `-ln_1p(rate)`: `1 / (1 + rate)` would round a
        // rate of 1e-10 to six digits.)
        let discount = ln_ratio.exp();
        let head = if ln_ratio < 0.0 {
            (40.0 / -ln_ratio).clamp(SMOOTH_SUM_HEAD, 1e5)
        } else {
            SMOOTH_SUM_HEAD
        };
        let mut survival = 1.0;
        let mut weight = 1.0;
        let mut sum = 0.0;
        let mut j = 1.0;
        loop {
            if j > m {
                break;
            }
            if j > head {
                // ln E[(1-theta)^t] as shifts by gamma (each shift by t would be about t ln t,
                // and their difference lost to rounding).
                let at_zero = ln_gamma_diff(d, g);
                let ln_term = |t: f64| at_zero - ln_gamma_diff(d + t, g) + t * ln_ratio;
                return match smooth_sum(ln_term, j, m, ln_ratio) {
                    Some(rest) => sum + rest,
                    None => f64::NAN,
                };
            }
            survival *= (d + (j - 1.0)) / (g + d + (j - 1.0));
            weight *= discount;
            let term = survival * weight;
            sum += term;
            // Later terms shrink by at most `discount` each (survival is decreasing).
            if discount < 1.0 && term <= TAIL_TOLERANCE * sum * (1.0 - discount) {
                break;
            }
            if term == 0.0 {
                break;
            }
            j += 1.0;
        }
        sum
    }

    /// Expected transactions in the next `m` opportunities (FHS 2010, eq. 13, as a finite sum):
    /// P(alive) times `E[p]` under the posterior `Beta(alpha + x, beta + n - x)` times the
    /// expected number of the `m` opportunities survived, `sum_j E[(1 - theta)^j]`.
    pub fn conditional_expected_purchases(&self, x: f64, t_x: f64, n: f64, m: f64) -> f64 {
        let m = m.floor();
        if !(m >= 1.0) {
            return 0.0;
        }
        let p_mean = (self.alpha + x) / (self.alpha + self.beta + n);
        self.probability_alive(x, t_x, n) * p_mean * self.survival_sum(n, m, 0.0)
    }

    /// E[X(n)] for a new customer: `alpha/(alpha+beta) * sum_{t=1}^n E[(1-theta)^t]`.
    pub fn expected_purchases_new_customer(&self, n: f64) -> f64 {
        let n = n.floor();
        if !(n >= 1.0) {
            return 0.0;
        }
        self.alpha / (self.alpha + self.beta) * self.survival_sum(0.0, n, 0.0)
    }

    /// P(X(n) = x) for a new customer (FHS 2010, eq. 7), in log space term by term.
    pub fn purchase_count_probability(&self, x: u64, n: f64) -> f64 {
        let n = n.floor();
        let xf = x as f64;
        if xf > n {
            return 0.0;
        }
        let p = self.duals::<0>();
        let ln_choose = |a: f64, b: f64| {
            crate::special::ln_gamma(a + 1.0)
                - crate::special::ln_gamma(b + 1.0)
                - crate::special::ln_gamma(a - b + 1.0)
        };
        let mut total = (ln_choose(n, xf)
            + ln_beta_ratio(p[0], p[1], xf, n - xf).v
            + ln_beta_ratio(p[2], p[3], 0.0, n).v)
            .exp();
        let mut i = xf;
        while i < n {
            total += (ln_choose(i, xf)
                + ln_beta_ratio(p[0], p[1], xf, i - xf).v
                + ln_beta_ratio(p[2], p[3], 1.0, i).v)
                .exp();
            i += 1.0;
        }
        total.min(1.0)
    }

    /// P(alive at the end of opportunity n + m): P(alive at n) times `E[(1 - theta)^m]`.
    pub fn probability_alive_after(&self, x: f64, t_x: f64, n: f64, m: f64) -> f64 {
        let m = m.floor().max(0.0);
        let later = (ln_gamma_diff(self.delta + n, m)
            - ln_gamma_diff(self.gamma + self.delta + n, m))
        .exp();
        self.probability_alive(x, t_x, n) * later
    }

    /// Discounted expected residual transactions with discount rate `d` per opportunity (FHS
    /// 2010, eq. 14, as a sum): P(alive) times `E[p]` times `sum_j E[(1-theta)^j] / (1+d)^j`.
    pub fn expected_residual_transactions(&self, x: f64, t_x: f64, n: f64, d: f64) -> f64 {
        let p_mean = (self.alpha + x) / (self.alpha + self.beta + n);
        self.probability_alive(x, t_x, n) * p_mean * self.survival_sum(n, f64::INFINITY, -d.ln_1p())
    }
}

/// The BG/BB likelihood over compressed rows (x, t_x, n, weight), for the fitting engine.
pub struct BgBb<'a> {
    data: &'a Rfm,
}

impl<'a> BgBb<'a> {
    pub fn new(data: &'a Rfm) -> Self {
        BgBb { data }
    }
}

impl Likelihood for BgBb<'_> {
    fn params(&self) -> &[ParamSpec] {
        &PARAMS
    }

    fn starts(&self) -> Vec<Vec<f64>> {
        vec![
            vec![1.0, 1.0, 1.0, 1.0],
            vec![0.5, 0.5, 0.5, 2.0],
            vec![2.0, 1.0, 1.0, 5.0],
        ]
    }

    fn total_weight(&self) -> f64 {
        self.data.total_weight()
    }

    fn loglik_and_gradient(&self, params: &[f64], exec: &Exec) -> (f64, Vec<f64>) {
        super::sum_dual_rows::<4>(self.data, params, exec, row_log_likelihood)
    }
}

/// The discrete-time rules beyond the continuous ones: whole opportunities, and no more
/// transactions than the opportunity of the last one.
pub fn validate_discrete(columns: &RfmColumns<'_>, names: &crate::data::RfmNames) -> Result<()> {
    let whole = |v: f64| v.fract() == 0.0;
    for i in 0..columns.len() {
        let (x, t_x, n) = (columns.frequency[i], columns.recency[i], columns.age[i]);
        if !whole(t_x) {
            return Err(ClvError::invalid_data(
                &names.recency,
                Some(i),
                Some(t_x),
                "must be a whole number (the opportunity of the last transaction)",
            ));
        }
        if !whole(n) {
            return Err(ClvError::invalid_data(
                &names.age,
                Some(i),
                Some(n),
                "must be a whole number of transaction opportunities",
            ));
        }
        if n > MAX_OPPORTUNITIES {
            return Err(ClvError::invalid_data(
                &names.age,
                Some(i),
                Some(n),
                "must be at most 10,000,000 opportunities (the discrete-time model visits each \
                 one): use coarser opportunities, e.g. weeks instead of hours",
            ));
        }
        if x > t_x {
            return Err(ClvError::invalid_data(
                &names.frequency,
                Some(i),
                Some(x),
                format!(
                    "must not exceed {} ({t_x}): each transaction takes one opportunity",
                    names.recency
                ),
            ));
        }
    }
    Ok(())
}

impl RfmModel for BgBbParams {
    const NAME: &'static str = "bgbb";
    const MAX_HORIZON: f64 = MAX_OPPORTUNITIES;

    /// Histories are counts of whole opportunities: a million customers over 6 opportunities
    /// have at most 28 distinct ones.
    const FEW_DISTINCT_HISTORIES: bool = true;

    fn specs() -> &'static [ParamSpec] {
        &PARAMS
    }

    fn from_slice(values: &[f64]) -> Result<Self> {
        check_params(&PARAMS, values)?;
        Ok(BgBbParams::new(values[0], values[1], values[2], values[3]))
    }

    fn fit(data: &Rfm, opts: &FitOptions<'_>) -> Result<FitResult> {
        fit(&BgBb::new(data), opts)
    }

    const HAS_MORE_RULES: bool = true;

    fn validate_more(columns: &RfmColumns<'_>, names: &crate::data::RfmNames) -> Result<()> {
        validate_discrete(columns, names)
    }

    fn log_likelihood(&self, x: f64, t_x: f64, n: f64) -> f64 {
        row_log_likelihood(self.duals::<0>(), x, t_x, n).v
    }

    fn probability_alive(&self, x: f64, t_x: f64, n: f64) -> f64 {
        BgBbParams::probability_alive(self, x, t_x, n)
    }

    fn conditional_expected_purchases(&self, x: f64, t_x: f64, n: f64, m: f64) -> f64 {
        BgBbParams::conditional_expected_purchases(self, x, t_x, n, m)
    }

    fn expected_purchases_new_customer(&self, n: f64) -> f64 {
        BgBbParams::expected_purchases_new_customer(self, n)
    }

    fn purchase_count_probability(&self, x: u64, n: f64) -> Option<f64> {
        Some(BgBbParams::purchase_count_probability(self, x, n))
    }

    fn probability_alive_after(&self, x: f64, t_x: f64, n: f64, m: f64) -> Option<f64> {
        Some(BgBbParams::probability_alive_after(self, x, t_x, n, m))
    }

    fn expected_residual_transactions(&self, x: f64, t_x: f64, n: f64, d: f64) -> Option<f64> {
        Some(BgBbParams::expected_residual_transactions(
            self, x, t_x, n, d,
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::models::testing::{assert_gradient_matches, rel};

    fn donations() -> Rfm {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/python/clvrs/datasets/data/donations.csv"
        );
        let text = std::fs::read_to_string(path).expect("bundled donations data");
        let (mut x, mut t_x, mut n, mut w) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
        for line in text.lines().skip(1) {
            let f: Vec<f64> = line.split(',').map(|v| v.parse().unwrap()).collect();
            x.push(f[0]);
            t_x.push(f[1]);
            n.push(f[2]);
            w.push(f[3]);
        }
        let columns = RfmColumns {
            frequency: &x,
            recency: &t_x,
            age: &n,
            weights: Some(&w),
        };
        columns.compress()
    }

    /// The likelihood term by term from eq. 5, in plain floating point.
    fn direct(p: &BgBbParams, x: f64, t_x: f64, n: f64) -> f64 {
        use crate::special::ln_beta;
        let (a, b, g, d) = (p.alpha, p.beta, p.gamma, p.delta);
        let mut l =
            (ln_beta(a + x, b + n - x) - ln_beta(a, b) + ln_beta(g, d + n) - ln_beta(g, d)).exp();
        for i in 0..(n - t_x) as usize {
            let i = i as f64;
            l += (ln_beta(a + x, b + t_x - x + i) - ln_beta(a, b) + ln_beta(g + 1.0, d + t_x + i)
                - ln_beta(g, d))
            .exp();
        }
        l.ln()
    }

    #[test]
    fn reproduces_the_donations_fit_and_figures() {
        let data = donations();
        assert_eq!(data.total_weight(), 11104.0);
        let res = fit(&BgBb::new(&data), &FitOptions::default()).unwrap();
        assert!(res.converged, "{}", res.termination);
        for (got, want) in res.params.iter().zip([1.204, 0.750, 0.657, 2.783]) {
            assert!(rel(*got, want) < 1e-3, "{:?}", res.params);
        }
        assert!(
            (res.log_likelihood + 33225.58).abs() < 0.01,
            "{}",
            res.log_likelihood
        );
        let p = BgBbParams::from_slice(&res.params).unwrap();
        for (n, want) in [
            (1.0, 0.4985),
            (2.0, 0.9233),
            (3.0, 1.2969),
            (4.0, 1.6323),
            (5.0, 1.9381),
        ] {
            let got = p.expected_purchases_new_customer(n);
            assert!((got - want).abs() < 1e-4, "E[X({n})] = {got}");
        }
    }

    /// The closed-form rows against the dual numbers (value and gradient) and against central
    /// differences of their own gradient (Hessian), over both branches of a row without
    /// purchases, rows alive to the end, long rows and lopsided parameters.
    #[test]
    fn closed_form_rows_match_the_dual_numbers() {
        let points = [
            [1.2, 0.75, 0.66, 2.8],
            [0.02, 30.0, 5.0, 0.1],
            [40.0, 0.05, 0.01, 50.0],
            [1e-3, 1e-3, 1e3, 1e3],
            [0.3, 1e4, 0.5, 1e5],
        ];
        let rows = [
            (0.0, 0.0, 0.0),
            (0.0, 0.0, 1.0),
            (0.0, 0.0, 6.0),
            (0.0, 0.0, 40.0),
            (1.0, 1.0, 1.0),
            (3.0, 5.0, 6.0),
            (6.0, 6.0, 6.0),
            (2.0, 3.0, 40.0),
            (1.0, 5.0, 128.0),
            (60.0, 128.0, 128.0),
            (10.0, 90.0, 128.0),
        ];
        for p in &points {
            for &(x, t_x, n) in &rows {
                let (v, g, h) = whole_row_derivatives::<true>(p, x, t_x, n).unwrap();
                let duals: [Dual<4>; 4] = std::array::from_fn(|k| Dual::variable(p[k], k));
                let want = row_log_likelihood(duals, x, t_x, n);
                let at = format!("{p:?} ({x}, {t_x}, {n})");
                assert!(
                    (v - want.v).abs() <= 1e-12 * want.v.abs().max(1e-3),
                    "{at}: {v} vs {}",
                    want.v
                );
                for k in 0..4 {
                    let scale = want.d[k].abs().max(1.0 / p[k]);
                    assert!(
                        (g[k] - want.d[k]).abs() <= 1e-10 * scale,
                        "{at}: {g:?} vs {:?}",
                        want.d
                    );
                }
                // The gradient pass gives the same value and gradient.
                let (v1, g1, _) = whole_row_derivatives::<false>(p, x, t_x, n).unwrap();
                assert_eq!((v1, g1), (v, g), "{at}");
                for j in 0..4 {
                    let step = 1e-6 * p[j];
                    let (mut up, mut down) = (*p, *p);
                    up[j] += step;
                    down[j] -= step;
                    let g_up = whole_row_derivatives::<false>(&up, x, t_x, n).unwrap().1;
                    let g_down = whole_row_derivatives::<false>(&down, x, t_x, n).unwrap().1;
                    for i in 0..4 {
                        let numeric = (g_up[i] - g_down[i]) / (2.0 * step);
                        let scale = (h[i][i].abs() * h[j][j].abs())
                            .sqrt()
                            .max(1.0 / (p[i] * p[j]));
                        assert!(
                            (h[i][j] - numeric).abs() <= 1e-6 * scale,
                            "{at}: H[{i}][{j}] {} vs {numeric}",
                            h[i][j]
                        );
                    }
                }
            }
        }
        // Rows outside the closed form take the dual numbers.
        let p = points[0];
        for (x, t_x, n) in [
            (0.5, 1.0, 2.0),
            (1.0, 2.5, 3.0),
            (2.0, 1.0, 3.0),
            (1.0, 2.0, 129.0),
        ] {
            assert!(whole_row_derivatives::<true>(&p, x, t_x, n).is_none());
        }
    }

    #[test]
    fn likelihood_gradient_and_predictions_are_consistent() {
        let p = BgBbParams::new(1.2, 0.75, 0.66, 2.8);
        for &(x, t_x, n) in &[
            (0.0, 0.0, 6.0),
            (3.0, 5.0, 6.0),
            (6.0, 6.0, 6.0),
            (2.0, 3.0, 40.0),
        ] {
            let got = p.log_likelihood(x, t_x, n);
            assert!(rel(got, direct(&p, x, t_x, n)) < 1e-12);
        }
        let data = donations();
        let lik = BgBb::new(&data);
        let at = [1.1, 0.8, 0.7, 2.5];
        let (_, g) = lik.loglik_and_gradient(&at, &Exec::Serial);
        assert_gradient_matches(
            |q| lik.loglik_and_gradient(q, &Exec::Serial).0,
            &g,
            &at,
            1e-6,
        );
        // Count probabilities sum to one with mean E[X(n)].
        let n = 25.0;
        let (mut total, mut mean) = (0.0, 0.0);
        for x in 0..=25u64 {
            let q = p.purchase_count_probability(x, n);
            total += q;
            mean += x as f64 * q;
        }
        assert!((total - 1.0).abs() < 1e-12, "{total}");
        assert!(rel(mean, p.expected_purchases_new_customer(n)) < 1e-12);
        // Long histories stay finite and in range (n, m in the hundreds).
        let alive = p.probability_alive(150.0, 290.0, 300.0);
        assert!(alive > 0.0 && alive <= 1.0, "{alive}");
        let e = p.conditional_expected_purchases(150.0, 290.0, 300.0, 200.0);
        assert!(e.is_finite() && e > 0.0 && e < 200.0, "{e}");
        let dert = p.expected_residual_transactions(150.0, 290.0, 300.0, 0.1);
        assert!(dert.is_finite() && dert > 0.0);
    }
}
