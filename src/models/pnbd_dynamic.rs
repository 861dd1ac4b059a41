//! Pareto/NBD with time-varying covariates (Bachmann, Meierer & Näf 2021, "The Role of
//! Time-Varying Contextual Factors in Latent Attrition Models for Customer Base Analysis",
//! *Marketing Science* 40(4)).
//!
//! Each customer's covariates are a step function of time: a sequence of pieces, each with
//! its purchase covariates `x_k` and dropout covariates `z_k`, starting at `start_k` in the
//! customer's time (0 at the first purchase) and lasting until the next piece starts. While
//! alive, customer `i` buys at rate `lambda_i exp(g1 . x(t))` and drops out at rate
//! `mu_i exp(g2 . z(t))`, with `lambda ~ Gamma(r, alpha)` and `mu ~ Gamma(s, beta)` as in the
//! Pareto/NBD. With the cumulative intensities `A(t) = int_0^t exp(g1 . x)` and
//! `B(t) = int_0^t exp(g2 . z)` (piecewise linear), integrating `lambda` and `mu` out gives,
//! for `x` repeat purchases at times `t_1..t_x <= T`:
//!
//! ```text
//! L = Gamma(r + x) alpha^r beta^s / Gamma(r) exp(g1 . sum_j x(t_j))
//!     [ (alpha + A(T))^-(r+x) (beta + B(T))^-s
//!       + s int_{t_x}^T exp(g2 . z(t)) (alpha + A(t))^-(r+x) (beta + B(t))^-(s+1) dt ]
//! ```
//!
//! With constant covariates this is the time-invariant covariate model of [`super::covariates`]
//! exactly (`alpha_i = alpha exp(-g1 . x)`, `beta_i = beta exp(-g2 . z)`), and with all
//! coefficients at 0 it is the Pareto/NBD. The integral runs piece by piece with 8-point
//! Gauss-Legendre rules on panels as wide as each of the two factors allows: over a panel,
//! `(r + x) ln(alpha + A)` and `(s + 1) ln(beta + B)` each change by at most half of
//! [`MAX_PANEL_LOG_CHANGE`] and the distance to each factor's pole at most doubles, so panels
//! grow geometrically where a factor falls fast and stay few where a factor is nearly flat
//! (large `s` and `beta`): accurate to rounding for any `x`, `r` and `s`. The rest of a piece
//! is skipped once it cannot matter (below `e^-40` of the running sum). The gradient is the integral of the
//! integrand's analytic gradient by the same rule.

use super::covariates::{Links, Process};
use super::pnbd::ParetoNbdParams;
use super::RfmModel;
use crate::data::{RfmColumns, RfmNames};
use crate::error::{ClvError, Result};
use crate::fit::{fit, Domain, FitOptions, FitResult, Likelihood, ParamSpec};
use crate::parallel::Exec;
use crate::special::{digamma, ln_gamma};

/// Largest change of the log-integrand over one quadrature panel.
const MAX_PANEL_LOG_CHANGE: f64 = 1.5;

/// Panels whose bound is below the running sum times `e^-NEGLIGIBLE` are skipped.
const NEGLIGIBLE: f64 = 40.0;

/// Gauss-Legendre 8-point rule on [-1, 1]: positive nodes and their weights.
const GL_NODES: [f64; 4] = [
    0.183_434_642_495_649_8,
    0.525_532_409_916_329,
    0.796_666_477_413_626_7,
    0.960_289_856_497_536_3,
];
const GL_WEIGHTS: [f64; 4] = [
    0.362_683_783_378_362,
    0.313_706_645_877_887_3,
    0.222_381_034_453_374_5,
    0.101_228_536_290_376_3,
];

/// Customers whose covariates change over time.
#[derive(Debug, Clone, Copy)]
pub struct DynamicRows<'a> {
    /// Repeat purchases, time of the last one, and time observed (customer time).
    pub frequency: &'a [f64],
    pub recency: &'a [f64],
    pub age: &'a [f64],
    /// Customer `i`'s pieces are `piece_offsets[i]..piece_offsets[i + 1]` (length `n + 1`).
    pub piece_offsets: &'a [usize],
    /// Start of each piece in its customer's time: 0 for the customer's first piece, then
    /// increasing. A piece lasts until the next starts; a customer's last piece, indefinitely.
    pub piece_starts: &'a [f64],
    /// Purchase covariates of each piece (pieces x purchase columns, row-major).
    pub purchase: &'a [f64],
    /// Dropout covariates of each piece (pieces x dropout columns, row-major).
    pub dropout: &'a [f64],
    /// Customer `i`'s repeat purchases are `purchase_offsets[i]..purchase_offsets[i + 1]` of
    /// `purchase_pieces` (length `n + 1`).
    pub purchase_offsets: &'a [usize],
    /// The piece in effect at each repeat purchase (an index into the pieces).
    pub purchase_pieces: &'a [usize],
}

fn structure(message: String) -> ClvError {
    ClvError::invalid_parameter("dynamic covariates", message)
}

impl DynamicRows<'_> {
    /// Number of customers.
    pub fn len(&self) -> usize {
        self.frequency.len()
    }

    /// Whether there are no customers.
    pub fn is_empty(&self) -> bool {
        self.frequency.is_empty()
    }

    fn pieces(&self, i: usize) -> std::ops::Range<usize> {
        self.piece_offsets[i]..self.piece_offsets[i + 1]
    }

    /// Where piece `k` of customer `i` ends: where the next starts, or never for the last.
    fn piece_end(&self, i: usize, k: usize) -> f64 {
        if k + 1 < self.piece_offsets[i + 1] {
            self.piece_starts[k + 1]
        } else {
            f64::INFINITY
        }
    }

    /// Check the summaries (with the RFM rules), the piece structure, and that every
    /// covariate value is finite (naming the column and the piece).
    pub fn validate(&self, links: &Links, names: [&[String]; 2], rfm: &RfmNames) -> Result<()> {
        links.check()?;
        let n = self.len();
        RfmColumns {
            frequency: self.frequency,
            recency: self.recency,
            age: self.age,
            weights: None,
        }
        .validate(rfm)?;
        let pieces = self.piece_starts.len();
        if self.piece_offsets.len() != n + 1 || self.purchase_offsets.len() != n + 1 {
            return Err(structure(format!(
                "{n} customers need {} offsets, got {} piece and {} purchase offsets",
                n + 1,
                self.piece_offsets.len(),
                self.purchase_offsets.len()
            )));
        }
        if self.piece_offsets[0] != 0 || self.piece_offsets[n] != pieces {
            return Err(structure(format!(
                "piece offsets must run from 0 to {pieces}"
            )));
        }
        if self.purchase_offsets[0] != 0 || self.purchase_offsets[n] != self.purchase_pieces.len() {
            return Err(structure(format!(
                "purchase offsets must run from 0 to {}",
                self.purchase_pieces.len()
            )));
        }
        for i in 0..n {
            let range = self.pieces(i);
            if range.is_empty() {
                return Err(structure(format!("customer {i} has no covariate piece")));
            }
            let starts = &self.piece_starts[range.clone()];
            if starts[0] != 0.0
                || starts
                    .windows(2)
                    .any(|w| !(w[1] > w[0] && w[1].is_finite()))
            {
                return Err(structure(format!(
                    "customer {i}: piece starts must begin at 0 and increase"
                )));
            }
            let bought = self.purchase_offsets[i]..self.purchase_offsets[i + 1];
            if bought.len() as f64 != self.frequency[i] {
                return Err(structure(format!(
                    "customer {i}: {} repeat purchases listed for frequency {}",
                    bought.len(),
                    self.frequency[i]
                )));
            }
            if let Some(&k) = self.purchase_pieces[bought]
                .iter()
                .find(|k| !range.contains(k))
            {
                return Err(structure(format!(
                    "customer {i}: a repeat purchase refers to piece {k}, outside its pieces"
                )));
            }
        }
        for (process, values) in [
            (Process::Purchase, self.purchase),
            (Process::Dropout, self.dropout),
        ] {
            let p = links.columns(process).len();
            let column_names = names[process as usize];
            if column_names.len() != p || values.len() != pieces * p {
                return Err(structure(format!(
                    "{pieces} pieces x {p} columns ({} names) need {} values, got {}",
                    column_names.len(),
                    pieces * p,
                    values.len()
                )));
            }
            super::covariates::check_finite(values, column_names)?;
        }
        Ok(())
    }
}

/// The shared parameters and the coefficient of each covariate column.
struct Point {
    r: f64,
    alpha: f64,
    s: f64,
    beta: f64,
    /// Coefficient of each purchase column, and of each dropout column.
    purchase: Vec<f64>,
    dropout: Vec<f64>,
}

impl Point {
    fn new(params: &[f64], links: &Links) -> Point {
        let coefficients = &params[4..];
        Point {
            r: params[0],
            alpha: params[1],
            s: params[2],
            beta: params[3],
            purchase: links.purchase.iter().map(|&c| coefficients[c]).collect(),
            dropout: links.dropout.iter().map(|&c| coefficients[c]).collect(),
        }
    }

    /// The purchase and dropout rate multipliers `exp(g1 . x_k)`, `exp(g2 . z_k)` of piece `k`.
    #[inline]
    fn multipliers(&self, rows: &DynamicRows<'_>, k: usize) -> (f64, f64) {
        let (p, q) = (self.purchase.len(), self.dropout.len());
        (
            dot(&rows.purchase[k * p..(k + 1) * p], &self.purchase).exp(),
            dot(&rows.dropout[k * q..(k + 1) * q], &self.dropout).exp(),
        )
    }
}

/// One customer's log-likelihood and, when `GRADIENT`, its gradient in (r, alpha, s, beta,
/// purchase columns, dropout columns), plus P(alive at T).
struct Row {
    log_likelihood: f64,
    probability_alive: f64,
    /// Cumulative intensities at T.
    a_t: f64,
    b_t: f64,
}

/// Working buffers of one thread.
struct Scratch {
    /// d A / d g1 and d B / d g2 at the start of the current piece, and at T.
    d_a: Vec<f64>,
    d_b: Vec<f64>,
    d_a_t: Vec<f64>,
    d_b_t: Vec<f64>,
    /// The same at the start of the piece holding t_x.
    d_a_tx: Vec<f64>,
    d_b_tx: Vec<f64>,
    /// Per piece of the customer before T: the purchase and dropout multipliers and A, B at
    /// the piece's start.
    pieces: Vec<[f64; 4]>,
    /// Gradient in (r, alpha, s, beta, purchase columns, dropout columns), relative scale.
    gradient: Vec<f64>,
}

impl Scratch {
    fn new(p: usize, q: usize) -> Scratch {
        Scratch {
            d_a: vec![0.0; p],
            d_b: vec![0.0; q],
            d_a_t: vec![0.0; p],
            d_b_t: vec![0.0; q],
            d_a_tx: vec![0.0; p],
            d_b_tx: vec![0.0; q],
            pieces: Vec::new(),
            gradient: vec![0.0; 4 + p + q],
        }
    }
}

fn dot(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

/// Customer `i`'s likelihood (and gradient into `scratch.gradient`, absolute scale).
fn row<const GRADIENT: bool>(
    rows: &DynamicRows<'_>,
    point: &Point,
    i: usize,
    scratch: &mut Scratch,
) -> Row {
    let (p, q) = (point.purchase.len(), point.dropout.len());
    let (x, t_x, age) = (rows.frequency[i], rows.recency[i], rows.age[i]);
    let (r, alpha, s, beta) = (point.r, point.alpha, point.s, point.beta);
    let rx = r + x;
    let range = rows.pieces(i);
    let purchase_row = |k: usize| &rows.purchase[k * p..(k + 1) * p];
    let dropout_row = |k: usize| &rows.dropout[k * q..(k + 1) * q];
    let end_of = |k: usize| rows.piece_end(i, k);

    // First pass: each piece's multipliers, A and B (and their coefficient derivatives) at
    // the piece starts, at t_x and at T.
    if GRADIENT {
        scratch.d_a.iter_mut().for_each(|v| *v = 0.0);
        scratch.d_b.iter_mut().for_each(|v| *v = 0.0);
    }
    scratch.pieces.clear();
    let (mut a, mut b) = (0.0, 0.0);
    let (mut a_tx, mut b_tx) = (0.0, 0.0);
    // The piece holding t_x (where the integral starts), as an offset into `range`.
    let mut tx_piece = 0;
    for k in range.clone() {
        let start = rows.piece_starts[k];
        if start >= age {
            break;
        }
        let len = end_of(k).min(age) - start;
        let (e, f) = point.multipliers(rows, k);
        scratch.pieces.push([e, f, a, b]);
        if t_x >= start && t_x <= start + len {
            a_tx = a + e * (t_x - start);
            b_tx = b + f * (t_x - start);
            if t_x < start + len || tx_piece == 0 {
                tx_piece = k - range.start;
                if GRADIENT {
                    scratch.d_a_tx.copy_from_slice(&scratch.d_a);
                    scratch.d_b_tx.copy_from_slice(&scratch.d_b);
                }
            }
        }
        a += e * len;
        b += f * len;
        if GRADIENT {
            for (d, v) in scratch.d_a.iter_mut().zip(purchase_row(k)) {
                *d += e * len * v;
            }
            for (d, v) in scratch.d_b.iter_mut().zip(dropout_row(k)) {
                *d += f * len * v;
            }
        }
    }
    if age == 0.0 {
        a_tx = 0.0;
        b_tx = 0.0;
    }
    let (a_t, b_t) = (a, b);
    if GRADIENT {
        scratch.d_a_t.copy_from_slice(&scratch.d_a);
        scratch.d_b_t.copy_from_slice(&scratch.d_b);
    }

    // The two terms, relative to `reference` (the larger of the first term and the
    // integrand's power part at t_x).
    // In `alpha^r beta^s / ((alpha + A)^(r+x) (beta + B)^s)` the factors `alpha^-x` and
    // `(1 + A / alpha)`, `(1 + B / beta)` are kept apart: no cancellation of `r ln(alpha)`
    // against `r ln(alpha + A)` when r or s is large.
    let ln_first = -rx * (a_t / alpha).ln_1p() - s * (b_t / beta).ln_1p();
    let ln_s_over_beta = s.ln() - beta.ln();
    let ln_start = ln_s_over_beta - rx * (a_tx / alpha).ln_1p() - (s + 1.0) * (b_tx / beta).ln_1p();
    let reference = ln_first.max(ln_start);
    let first = (ln_first - reference).exp();
    let mut total = first;
    // Gradient sums (relative scale) over the integral, in (r, alpha, s, beta) and the
    // coefficient columns.
    let g = &mut scratch.gradient;
    if GRADIENT {
        g.iter_mut().for_each(|v| *v = 0.0);
        g[0] = -first * (a_t / alpha).ln_1p();
        g[1] = -first * rx / (alpha + a_t);
        g[2] = -first * (b_t / beta).ln_1p();
        g[3] = -first * s / (beta + b_t);
        for j in 0..p {
            g[4 + j] = -first * rx / (alpha + a_t) * scratch.d_a_t[j];
        }
        for j in 0..q {
            g[4 + p + j] = -first * s / (beta + b_t) * scratch.d_b_t[j];
        }
    }

    // Second pass: the integral over [t_x, T], piece by piece from the piece holding t_x.
    if t_x < age {
        if GRADIENT {
            scratch.d_a.copy_from_slice(&scratch.d_a_tx);
            scratch.d_b.copy_from_slice(&scratch.d_b_tx);
        }
        for offset in tx_piece..scratch.pieces.len() {
            let k = range.start + offset;
            let [e, f, a, b] = scratch.pieces[offset];
            let start = rows.piece_starts[k];
            let end = end_of(k).min(age);
            {
                let from = start.max(t_x);
                // Sums over the piece's nodes: weight, weight / (alpha + A), weight * offset /
                // (alpha + A), and the same for B; weight * ln(alpha + A), ln(beta + B).
                let mut sums = [0.0f64; 7];
                // A and B where the integral enters the piece.
                let (a1, b1) = (a + e * (from - start), b + f * (from - start));
                let (c1, c2) = (alpha + a1, beta + b1);
                let length = end - from;
                // Each factor's log may change by half the panel budget: the widths grow
                // with the factors' scales (geometric panels where a factor falls fast).
                let (scale_a, scale_b) = (c1 / e, c2 / f);
                // (At most doubling the distance to each factor's pole, so the 8-point rule
                // stays exact to rounding however small the exponent.)
                let (grow_a, grow_b) = (
                    (0.5 * MAX_PANEL_LOG_CHANGE / rx).exp_m1().min(1.0),
                    (0.5 * MAX_PANEL_LOG_CHANGE / (s + 1.0)).exp_m1().min(1.0),
                );
                let ln_f = f.ln();
                let mut lo = 0.0;
                while lo < length {
                    let step = ((scale_a + lo) * grow_a).min((scale_b + lo) * grow_b);
                    let hi = if step.is_finite() && step > 0.0 && lo + step < length {
                        lo + step
                    } else {
                        length
                    };
                    let width = hi - lo;
                    // The integrand decreases within the piece: its value at the panel's
                    // start times the rest of the piece bounds everything left of it.
                    let ln_lo = ln_s_over_beta + ln_f
                        - rx * ((a1 + e * lo) / alpha).ln_1p()
                        - (s + 1.0) * ((b1 + f * lo) / beta).ln_1p()
                        - reference;
                    if ln_lo + (length - lo).ln() < total.ln() - NEGLIGIBLE {
                        break;
                    }
                    let (mid, half) = (lo + 0.5 * width, 0.5 * width);
                    for (node, weight) in GL_NODES.iter().zip(GL_WEIGHTS) {
                        for u in [mid - half * node, mid + half * node] {
                            let (big_a, big_b) = (c1 + e * u, c2 + f * u);
                            // ln((alpha + A) / alpha) and ln((beta + B) / beta).
                            let ln_a = ((a1 + e * u) / alpha).ln_1p();
                            let ln_b = ((b1 + f * u) / beta).ln_1p();
                            let term =
                                (ln_s_over_beta + ln_f - rx * ln_a - (s + 1.0) * ln_b - reference)
                                    .exp()
                                    * weight
                                    * half;
                            total += term;
                            if GRADIENT {
                                let offset = from - start + u;
                                sums[0] += term;
                                sums[1] += term / big_a;
                                sums[2] += term * offset / big_a;
                                sums[3] += term / big_b;
                                sums[4] += term * offset / big_b;
                                sums[5] += term * ln_a;
                                sums[6] += term * ln_b;
                            }
                        }
                    }
                    lo = hi;
                }
                if GRADIENT {
                    g[0] -= sums[5];
                    g[1] -= rx * sums[1];
                    g[2] += sums[0] / s - sums[6];
                    g[3] -= (s + 1.0) * sums[3];
                    for j in 0..p {
                        g[4 + j] -=
                            rx * (sums[1] * scratch.d_a[j] + sums[2] * e * purchase_row(k)[j]);
                    }
                    for j in 0..q {
                        g[4 + p + j] += sums[0] * dropout_row(k)[j]
                            - (s + 1.0)
                                * (sums[3] * scratch.d_b[j] + sums[4] * f * dropout_row(k)[j]);
                    }
                }
            }
            let len = end - start;
            if GRADIENT {
                for (d, v) in scratch.d_a.iter_mut().zip(purchase_row(k)) {
                    *d += e * len * v;
                }
                for (d, v) in scratch.d_b.iter_mut().zip(dropout_row(k)) {
                    *d += f * len * v;
                }
            }
        }
    }

    let bought = &rows.purchase_pieces[rows.purchase_offsets[i]..rows.purchase_offsets[i + 1]];
    let at_purchases: f64 = bought
        .iter()
        .map(|&k| dot(purchase_row(k), &point.purchase))
        .sum();
    let log_likelihood =
        ln_gamma(rx) - ln_gamma(r) - x * alpha.ln() + at_purchases + reference + total.ln();
    if GRADIENT {
        g.iter_mut().for_each(|v| *v /= total);
        g[0] += digamma(rx) - digamma(r);
        g[1] += r / alpha;
        g[3] += s / beta;
        for &k in bought {
            for (gj, v) in g[4..4 + p].iter_mut().zip(purchase_row(k)) {
                *gj += v;
            }
        }
    }
    Row {
        log_likelihood,
        probability_alive: first / total,
        a_t,
        b_t,
    }
}

/// The likelihood of the time-varying covariate model, for the fitting engine: parameters
/// (r, alpha, s, beta, coefficients in the order of [`Links::names`]).
pub struct DynamicLikelihood<'r, 'a> {
    rows: &'r DynamicRows<'a>,
    links: &'r Links,
    specs: Vec<ParamSpec>,
}

impl<'r, 'a> DynamicLikelihood<'r, 'a> {
    pub fn new(rows: &'r DynamicRows<'a>, links: &'r Links) -> Self {
        let mut specs = ParetoNbdParams::specs().to_vec();
        specs.extend(links.names.iter().map(|_| ParamSpec {
            name: "coefficient",
            domain: Domain::Real,
        }));
        DynamicLikelihood { rows, links, specs }
    }
}

impl Likelihood for DynamicLikelihood<'_, '_> {
    fn params(&self) -> &[ParamSpec] {
        &self.specs
    }

    fn starts(&self) -> Vec<Vec<f64>> {
        // Only used without a caller-given start; `fit_dynamic` always gives one.
        let mut start = vec![1.0; 4];
        start.extend(std::iter::repeat(0.0).take(self.links.len()));
        vec![start]
    }

    fn total_weight(&self) -> f64 {
        self.rows.len() as f64
    }

    fn loglik_and_gradient(&self, params: &[f64], exec: &Exec) -> (f64, Vec<f64>) {
        let point = Point::new(params, self.links);
        let (p, q) = (point.purchase.len(), point.dropout.len());
        let rows = self.rows;
        let width = 1 + 4 + p + q;
        let acc = exec.chunked_sum(rows.len(), width, |range, acc| {
            let mut scratch = Scratch::new(p, q);
            for i in range {
                let result = row::<true>(rows, &point, i, &mut scratch);
                acc[0] += result.log_likelihood;
                for (a, g) in acc[1..].iter_mut().zip(&scratch.gradient) {
                    *a += g;
                }
            }
        });
        // Columns to coefficients (tied columns share one).
        let mut gradient = acc[1..5].to_vec();
        gradient.resize(4 + self.links.len(), 0.0);
        for (j, &c) in self.links.purchase.iter().enumerate() {
            gradient[4 + c] += acc[5 + j];
        }
        for (j, &c) in self.links.dropout.iter().enumerate() {
            gradient[4 + c] += acc[5 + p + j];
        }
        (acc[0], gradient)
    }
}

/// [`DynamicRows`] that own their columns (a subsample, or data built in tests).
#[derive(Debug, Clone, Default)]
pub struct OwnedRows {
    pub frequency: Vec<f64>,
    pub recency: Vec<f64>,
    pub age: Vec<f64>,
    pub piece_offsets: Vec<usize>,
    pub piece_starts: Vec<f64>,
    pub purchase: Vec<f64>,
    pub dropout: Vec<f64>,
    pub purchase_offsets: Vec<usize>,
    pub purchase_pieces: Vec<usize>,
}

impl OwnedRows {
    /// Borrow as [`DynamicRows`].
    pub fn rows(&self) -> DynamicRows<'_> {
        DynamicRows {
            frequency: &self.frequency,
            recency: &self.recency,
            age: &self.age,
            piece_offsets: &self.piece_offsets,
            piece_starts: &self.piece_starts,
            purchase: &self.purchase,
            dropout: &self.dropout,
            purchase_offsets: &self.purchase_offsets,
            purchase_pieces: &self.purchase_pieces,
        }
    }
}

impl DynamicRows<'_> {
    /// Every `stride`-th customer with its pieces and purchases (the warm-start subsample).
    fn subsample(&self, p: usize, q: usize, stride: usize) -> OwnedRows {
        let mut o = OwnedRows {
            piece_offsets: vec![0],
            purchase_offsets: vec![0],
            ..OwnedRows::default()
        };
        for i in (0..self.len()).step_by(stride.max(1)) {
            let range = self.pieces(i);
            let base = o.piece_starts.len();
            o.frequency.push(self.frequency[i]);
            o.recency.push(self.recency[i]);
            o.age.push(self.age[i]);
            o.piece_starts
                .extend_from_slice(&self.piece_starts[range.clone()]);
            o.purchase
                .extend_from_slice(&self.purchase[range.start * p..range.end * p]);
            o.dropout
                .extend_from_slice(&self.dropout[range.start * q..range.end * q]);
            o.piece_offsets.push(o.piece_starts.len());
            let bought = self.purchase_offsets[i]..self.purchase_offsets[i + 1];
            o.purchase_pieces.extend(
                self.purchase_pieces[bought]
                    .iter()
                    .map(|k| k - range.start + base),
            );
            o.purchase_offsets.push(o.purchase_pieces.len());
        }
        o
    }
}

/// Fits on more than twice this many customers start on every k-th customer (about this many):
/// that fit's optimum and curvature start the fit of all (a few iterations instead of dozens).
const WARM_START_CUSTOMERS: usize = 10_000;

/// Fit the model: the Pareto/NBD without covariates first (its estimate, with every
/// coefficient at 0, is the start: there the two likelihoods are equal), then the covariate
/// model from there. The result names the coefficients after [`Links::names`].
pub fn fit_dynamic(
    rows: &DynamicRows<'_>,
    links: &Links,
    names: &RfmNames,
    opts: &FitOptions<'_>,
) -> Result<FitResult> {
    super::check_fittable(rows.frequency, names)?;
    // The Pareto/NBD fitted to some customers' summaries, with every coefficient at 0 (one
    // start: it only seeds the fits that follow).
    let base_start = |rows: &DynamicRows<'_>| -> Result<Vec<f64>> {
        let columns = RfmColumns {
            frequency: rows.frequency,
            recency: rows.recency,
            age: rows.age,
            weights: None,
        };
        let base = ParetoNbdParams::fit(
            &columns.compress_on(&opts.exec),
            &FitOptions {
                first_start_only: true,
                ..opts.clone()
            },
        )?;
        let mut start = base.params;
        start.extend(std::iter::repeat(0.0).take(links.len()));
        Ok(start)
    };
    let mut full = opts.clone();
    if let Some(start) = &opts.start {
        full.start = Some(start.clone());
    } else if rows.len() > 2 * WARM_START_CUSTOMERS {
        // Every k-th customer first, from the base model fitted to them; that optimum and its
        // curvature start the fit of all (the base model is never fitted to all).
        let sample = rows.subsample(
            links.purchase.len(),
            links.dropout.len(),
            rows.len() / WARM_START_CUSTOMERS,
        );
        let sample_rows = sample.rows();
        let first = base_start(&sample_rows).and_then(|start| {
            fit(
                &DynamicLikelihood::new(&sample_rows, links),
                &FitOptions {
                    start: Some(start),
                    first_start_only: true,
                    ..opts.clone()
                },
            )
        });
        match first {
            Ok(first) if first.converged => {
                full.start = Some(first.params);
                full.initial_inverse_hessian = first.inverse_hessian;
            }
            Err(ClvError::Interrupted) => return Err(ClvError::Interrupted),
            // Otherwise all customers from the base model fitted to all.
            _ => full.start = Some(base_start(rows)?),
        }
    } else {
        full.start = Some(base_start(rows)?);
    }
    let mut result = fit(&DynamicLikelihood::new(rows, links), &full)?;
    result.names.truncate(4);
    result.names.extend(links.names.iter().cloned());
    Ok(result)
}

/// A per-customer quantity of the fitted model.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Quantity {
    /// Log-likelihood of the history.
    LogLikelihood,
    /// P(alive at T + t): `t` is the horizon (0 for now).
    ProbabilityAlive,
    /// Expected purchases in (T, T + t].
    ExpectedPurchases,
    /// Discounted expected residual transactions (DERT): expected purchases from T on,
    /// discounted continuously at rate `t` per unit of time.
    ResidualTransactions,
}

/// `(1 - exp(-a y)) / a`, continuous through `a = 0` (where it is `y`).
fn power_integral(a: f64, y: f64) -> f64 {
    let ay = a * y;
    if ay.abs() < 1e-10 {
        y * (1.0 - 0.5 * ay)
    } else {
        -(-ay).exp_m1() / a
    }
}

/// A stretch of a customer's time after T within one covariate piece.
struct Ahead {
    /// Time from T to the stretch's start.
    offset: f64,
    /// Its length (infinite for the customer's last piece when `until` is infinite).
    length: f64,
    /// The piece's rate multipliers.
    e: f64,
    f: f64,
    /// `beta + B` at the stretch's start.
    c: f64,
}

/// Visit the stretches of customer `i`'s pieces between T and `T + until`, in order.
fn walk_ahead(
    rows: &DynamicRows<'_>,
    point: &Point,
    i: usize,
    b_t: f64,
    until: f64,
    mut visit: impl FnMut(&Ahead),
) {
    let age = rows.age[i];
    let horizon = age + until;
    let mut c = point.beta + b_t;
    for k in rows.pieces(i) {
        let (from, to) = (
            rows.piece_starts[k].max(age),
            rows.piece_end(i, k).min(horizon),
        );
        if to <= from {
            continue;
        }
        let (e, f) = point.multipliers(rows, k);
        let length = to - from;
        visit(&Ahead {
            offset: from - age,
            length,
            e,
            f,
            c,
        });
        c += f * length;
    }
}

/// From T to T + t: the integral of `exp(g1 . x(u)) ((beta + B(T)) / (beta + B(u)))^s`
/// (expected purchases per unit purchase rate of a customer alive at T) and
/// `((beta + B(T)) / (beta + B(T + t)))^s` (staying alive), piece by piece in closed form.
fn ahead(rows: &DynamicRows<'_>, point: &Point, i: usize, b_t: f64, t: f64) -> (f64, f64) {
    let s = point.s;
    let mut ln_survival = 0.0f64; // s ln((beta + B(T)) / (beta + B(u))) at the stretch's start
    let mut purchases = 0.0;
    walk_ahead(rows, point, i, b_t, t, |piece| {
        let y = (piece.f * piece.length / piece.c).ln_1p();
        // int_0^len e (scale / (c + f u))^s du
        //   = e (scale / c)^s (c / f) (1 - (1 + f len / c)^(1 - s)) / (s - 1)
        purchases += piece.e * ln_survival.exp() * (piece.c / piece.f) * power_integral(s - 1.0, y);
        ln_survival -= s * y;
    });
    (purchases, ln_survival.exp())
}

/// From T on: the integral of `exp(-delta (u - T)) exp(g1 . x(u)) ((beta + B(T)) /
/// (beta + B(u)))^s` (discounted purchases per unit purchase rate of a customer alive at T),
/// piece by piece by adaptive Gauss-Kronrod quadrature (the customer's last piece to infinity).
fn discounted(rows: &DynamicRows<'_>, point: &Point, i: usize, b_t: f64, delta: f64) -> f64 {
    use crate::quadrature::{integrate, integrate_to_infinity};
    const TOLERANCE: f64 = 1e-12;
    const MAX_INTERVALS: usize = 500;
    let s = point.s;
    let mut ln_survival = 0.0f64; // as in `ahead`
    let mut total = 0.0;
    walk_ahead(rows, point, i, b_t, f64::INFINITY, |piece| {
        let Ahead {
            offset,
            length,
            e,
            f,
            c,
        } = *piece;
        let ln_weight = ln_survival - delta * offset;
        let integrand = |u: f64| e * (ln_weight - delta * u - s * (f * u / c).ln_1p()).exp();
        if length.is_finite() {
            total += integrate(integrand, 0.0, length, TOLERANCE, MAX_INTERVALS).value;
            ln_survival -= s * (f * length / c).ln_1p();
        } else {
            // On the scale where the integrand falls (discounting or dropout, the faster).
            let scale = (1.0 / delta).min(c / f);
            total += scale
                * integrate_to_infinity(|w| integrand(w * scale), 0.0, TOLERANCE, MAX_INTERVALS)
                    .value;
        }
    });
    total
}

/// A per-customer quantity at fitted (or given) parameters; `t` is the horizon of the
/// predictions that take one (one value per customer).
pub fn predict(
    rows: &DynamicRows<'_>,
    links: &Links,
    params: &[f64],
    quantity: Quantity,
    t: &[f64],
    exec: &Exec,
    out: &mut [f64],
) -> Result<()> {
    if params.len() != 4 + links.len() {
        return Err(ClvError::invalid_parameter(
            "params",
            format!("expected {} values, got {}", 4 + links.len(), params.len()),
        ));
    }
    crate::fit::check_params(&DynamicLikelihood::new(rows, links).specs, params)?;
    if t.len() != rows.len() && quantity != Quantity::LogLikelihood {
        return Err(ClvError::invalid_parameter(
            "t",
            format!("expected {} horizons, got {}", rows.len(), t.len()),
        ));
    }
    if quantity == Quantity::ResidualTransactions {
        if let Some(at) = t.iter().position(|v| !(v.is_finite() && *v > 0.0)) {
            return Err(ClvError::invalid_data(
                "discount_rate",
                Some(at),
                Some(t[at]),
                "must be a finite number > 0",
            ));
        }
    } else if let Some(at) = t.iter().position(|v| !(v.is_finite() && *v >= 0.0)) {
        return Err(ClvError::invalid_data(
            "t",
            Some(at),
            Some(t[at]),
            "must be finite and >= 0",
        ));
    }
    let point = Point::new(params, links);
    let (p, q) = (point.purchase.len(), point.dropout.len());
    let (purchase, dropout) = (&point.purchase, &point.dropout);
    for (values, coefficients, width) in [(rows.purchase, purchase, p), (rows.dropout, dropout, q)]
    {
        if width == 0 {
            continue;
        }
        if let Some(k) = values
            .chunks_exact(width)
            .position(|z| !dot(z, coefficients).exp().is_finite())
        {
            let customer = rows.piece_offsets.partition_point(|&o| o <= k) - 1;
            return Err(ClvError::invalid_data(
                "covariates",
                Some(customer),
                None,
                "a covariate piece of this customer makes exp(coefficients . covariates) \
                 overflow: rescale or centre the covariates",
            ));
        }
    }
    exec.fill_blocks(out, |first, block| {
        let mut scratch = Scratch::new(p, q);
        for (i, slot) in (first..).zip(block.iter_mut()) {
            let result = row::<false>(rows, &point, i, &mut scratch);
            *slot = match quantity {
                Quantity::LogLikelihood => result.log_likelihood,
                Quantity::ProbabilityAlive => {
                    let (_, survival) = ahead(rows, &point, i, result.b_t, t[i]);
                    result.probability_alive * survival
                }
                Quantity::ExpectedPurchases => {
                    let (purchases, _) = ahead(rows, &point, i, result.b_t, t[i]);
                    let rate = (point.r + rows.frequency[i]) / (point.alpha + result.a_t);
                    result.probability_alive * rate * purchases
                }
                Quantity::ResidualTransactions => {
                    let rate = (point.r + rows.frequency[i]) / (point.alpha + result.a_t);
                    result.probability_alive * rate * discounted(rows, &point, i, result.b_t, t[i])
                }
            };
        }
    });
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::models::covariates::{CovariateLikelihood, CovariateRows};
    type Owned = OwnedRows;
    use crate::random::Rng;

    fn links(p: usize, q: usize) -> Links {
        Links {
            purchase: (0..p).collect(),
            dropout: (p..p + q).collect(),
            names: (0..p + q).map(|c| format!("c{c}")).collect(),
        }
    }

    /// Simulate customers with one purchase and one dropout covariate that change every unit
    /// of time (a promotion flag and a seasonal wave, per customer), from the model itself.
    fn simulate(n: usize, truth: &[f64], seed: u64, horizon: f64) -> Owned {
        let mut rng = Rng::new(seed);
        let (r, alpha, s, beta, g1, g2) =
            (truth[0], truth[1], truth[2], truth[3], truth[4], truth[5]);
        let mut o = Owned {
            frequency: vec![],
            recency: vec![],
            age: vec![],
            piece_offsets: vec![0],
            piece_starts: vec![],
            purchase: vec![],
            dropout: vec![],
            purchase_offsets: vec![0],
            purchase_pieces: vec![],
        };
        for _ in 0..n {
            let age = (rng.uniform() * horizon).floor() + 5.0;
            let lambda = rng.gamma(r) / alpha;
            let mu = rng.gamma(s) / beta;
            let phase = rng.uniform() * 6.0;
            let first = o.piece_starts.len();
            let pieces = (age + horizon) as usize + 1;
            for k in 0..pieces {
                o.piece_starts.push(k as f64);
                o.purchase.push(f64::from(u8::from(rng.uniform() < 0.3)));
                o.dropout.push(((k as f64 + phase) / 3.0).sin());
            }
            // Dropout: the cumulative hazard mu B(t) reaches an exponential draw.
            let mut target = -rng.uniform().ln() / mu;
            let mut death = f64::INFINITY;
            for k in 0..pieces {
                let f = (g2 * o.dropout[first + k]).exp();
                if target <= f {
                    death = k as f64 + target / f;
                    break;
                }
                target -= f;
            }
            let mut times = vec![];
            for k in 0..(age as usize) {
                let rate = lambda * (g1 * o.purchase[first + k]).exp();
                let end = (k as f64 + 1.0).min(death);
                let mut t = k as f64;
                loop {
                    t += -rng.uniform().ln() / rate;
                    if t >= end {
                        break;
                    }
                    times.push((t, first + k));
                }
                if death <= k as f64 + 1.0 {
                    break;
                }
            }
            o.frequency.push(times.len() as f64);
            o.recency.push(times.last().map_or(0.0, |t| t.0));
            o.age.push(age);
            o.piece_offsets.push(o.piece_starts.len());
            o.purchase_pieces.extend(times.iter().map(|t| t.1));
            o.purchase_offsets.push(o.purchase_pieces.len());
        }
        o
    }

    #[test]
    fn constant_covariates_give_the_time_invariant_model() {
        // Each customer's covariates are constant but split into pieces: the likelihood and
        // its gradient equal the time-invariant covariate model's.
        let mut o = simulate(300, &[0.6, 8.0, 0.8, 10.0, 0.4, -0.3], 3, 30.0);
        for i in 0..o.frequency.len() {
            let range = o.piece_offsets[i]..o.piece_offsets[i + 1];
            let first = range.start;
            for k in range {
                o.purchase[k] = o.purchase[first];
                o.dropout[k] = o.dropout[first];
            }
        }
        let l = links(1, 1);
        let rows = o.rows();
        let columns = RfmColumns {
            frequency: &o.frequency,
            recency: &o.recency,
            age: &o.age,
            weights: None,
        };
        let firsts: Vec<usize> = o.piece_offsets[..o.frequency.len()].to_vec();
        let z1: Vec<f64> = firsts.iter().map(|&k| o.purchase[k]).collect();
        let z2: Vec<f64> = firsts.iter().map(|&k| o.dropout[k]).collect();
        let static_rows = CovariateRows::new(&columns, &z1, &z2);
        let exec = Exec::with_jobs(Some(1)).unwrap();
        for point in [
            [0.6, 8.0, 0.8, 10.0, 0.4, -0.3],
            [2.0, 3.0, 0.3, 40.0, -1.0, 1.5],
        ] {
            let (v1, g1) = DynamicLikelihood::new(&rows, &l).loglik_and_gradient(&point, &exec);
            let (v2, g2) = CovariateLikelihood::<ParetoNbdParams>::new(&static_rows, &l)
                .loglik_and_gradient(&point, &exec);
            assert!((v1 - v2).abs() < 1e-9 * v2.abs(), "{v1} vs {v2}");
            for (a, b) in g1.iter().zip(&g2) {
                assert!((a - b).abs() < 1e-7 * (1.0 + b.abs()), "{g1:?} vs {g2:?}");
            }
        }
    }

    #[test]
    fn gradient_matches_finite_differences() {
        let o = simulate(200, &[0.6, 8.0, 0.8, 10.0, 0.4, -0.3], 5, 30.0);
        let l = links(1, 1);
        let rows = o.rows();
        let lik = DynamicLikelihood::new(&rows, &l);
        let exec = Exec::with_jobs(Some(1)).unwrap();
        let point = [0.7, 6.0, 1.1, 12.0, 0.3, -0.5];
        let (_, gradient) = lik.loglik_and_gradient(&point, &exec);
        for j in 0..point.len() {
            let h = 1e-6 * point[j].abs().max(1.0);
            let mut up = point;
            let mut down = point;
            up[j] += h;
            down[j] -= h;
            let fd = (lik.loglik_and_gradient(&up, &exec).0
                - lik.loglik_and_gradient(&down, &exec).0)
                / (2.0 * h);
            assert!(
                (fd - gradient[j]).abs() < 1e-5 * (1.0 + fd.abs()),
                "parameter {j}: {fd} vs {}",
                gradient[j]
            );
        }
    }

    #[test]
    fn large_histories_keep_the_integral_accurate() {
        // One customer with 400 purchases early and a long silence: the integrand falls by
        // hundreds of orders of magnitude across the first piece; compare against a brute
        // force midpoint sum on a fine grid (in logs).
        let o = Owned {
            frequency: vec![400.0],
            recency: vec![2.5],
            age: vec![40.0],
            piece_offsets: vec![0, 3],
            piece_starts: vec![0.0, 10.0, 20.0],
            purchase: vec![0.0, 1.0, 0.5],
            dropout: vec![1.0, -1.0, 0.0],
            purchase_offsets: vec![0, 400],
            purchase_pieces: vec![0; 400],
        };
        let l = links(1, 1);
        let rows = o.rows();
        let point = [0.6, 8.0, 0.8, 10.0, 0.4, -0.3];
        let exec = Exec::with_jobs(Some(1)).unwrap();
        let (value, _) = DynamicLikelihood::new(&rows, &l).loglik_and_gradient(&point, &exec);
        // Brute force: A, B piecewise linear; integrand summed on 2M midpoints.
        let (r, alpha, s, beta): (f64, f64, f64, f64) = (0.6, 8.0, 0.8, 10.0);
        let e = |t: f64| f64::exp(0.4 * [0.0, 1.0, 0.5][((t / 10.0) as usize).min(2)]);
        let f = |t: f64| f64::exp(-0.3 * [1.0, -1.0, 0.0][((t / 10.0) as usize).min(2)]);
        let steps = 2_000_000;
        let dt: f64 = 40.0 / steps as f64;
        let (mut a, mut b) = (0.0, 0.0);
        let mut terms = vec![];
        for m in 0..steps {
            let t = (m as f64 + 0.5) * dt;
            let (am, bm) = (a + e(t) * 0.5 * dt, b + f(t) * 0.5 * dt);
            if t > 2.5 {
                terms.push(
                    s.ln() + f(t).ln()
                        - (r + 400.0) * (alpha + am).ln()
                        - (s + 1.0) * (beta + bm).ln()
                        + dt.ln(),
                );
            }
            a += e(t) * dt;
            b += f(t) * dt;
        }
        terms.push(-(r + 400.0) * (alpha + a).ln() - s * (beta + b).ln());
        let max = terms.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
        let ln_sum = max + terms.iter().map(|v| (v - max).exp()).sum::<f64>().ln();
        let expected = ln_gamma(r + 400.0) - ln_gamma(r)
            + r * alpha.ln()
            + s * beta.ln()
            + 400.0 * 0.0
            + ln_sum;
        assert!((value - expected).abs() < 1e-7, "{value} vs {expected}");
    }

    #[test]
    fn fits_recover_simulated_coefficients() {
        let truth = [0.8, 6.0, 0.9, 12.0, 0.5, 0.6];
        let o = simulate(6000, &truth, 11, 40.0);
        let l = links(1, 1);
        let rows = o.rows();
        let names = RfmNames::default();
        let exec = Exec::with_jobs(Some(2)).unwrap();
        let result = fit_dynamic(
            &rows,
            &l,
            &names,
            &FitOptions {
                exec,
                ..FitOptions::default()
            },
        )
        .unwrap();
        assert!(result.converged, "{}", result.termination);
        let cov = result.covariance.as_ref().unwrap();
        for j in 0..truth.len() {
            let se = cov[j][j].sqrt();
            assert!(
                (result.params[j] - truth[j]).abs() < 4.0 * se,
                "parameter {j}: {} (se {se}) vs {}",
                result.params[j],
                truth[j]
            );
        }
    }

    #[test]
    fn predictions_reduce_to_the_pareto_nbd() {
        // All coefficients 0: the Pareto/NBD's own predictions.
        let o = simulate(50, &[0.6, 8.0, 0.8, 10.0, 0.4, -0.3], 7, 20.0);
        let l = links(1, 1);
        let rows = o.rows();
        let exec = Exec::with_jobs(Some(1)).unwrap();
        let params = [0.6, 8.0, 0.8, 10.0, 0.0, 0.0];
        let base = ParetoNbdParams::new(0.6, 8.0, 0.8, 10.0);
        let t = vec![7.5; rows.len()];
        let mut out = vec![0.0; rows.len()];
        for quantity in [
            Quantity::ExpectedPurchases,
            Quantity::ProbabilityAlive,
            Quantity::LogLikelihood,
            Quantity::ResidualTransactions,
        ] {
            // DERT at a discount rate of 2% per unit of time; the rest with horizon 7.5.
            let t = if quantity == Quantity::ResidualTransactions {
                vec![0.02; rows.len()]
            } else {
                t.clone()
            };
            predict(&rows, &l, &params, quantity, &t, &exec, &mut out).unwrap();
            for i in 0..rows.len() {
                let (x, t_x, age) = (o.frequency[i], o.recency[i], o.age[i]);
                let want = match quantity {
                    Quantity::ExpectedPurchases => {
                        base.conditional_expected_purchases(x, t_x, age, 7.5)
                    }
                    Quantity::ProbabilityAlive => base.probability_alive_after(x, t_x, age, 7.5),
                    Quantity::LogLikelihood => base.log_likelihood(x, t_x, age),
                    Quantity::ResidualTransactions => {
                        base.expected_residual_transactions(x, t_x, age, 0.02)
                    }
                };
                assert!(
                    (out[i] - want).abs() < 1e-9 * (1.0 + want.abs()),
                    "{quantity:?} customer {i}: {} vs {want}",
                    out[i]
                );
            }
        }
    }

    #[test]
    fn steep_purchase_multipliers_keep_the_whole_integral() {
        // exp(g1 x) = e^40 makes (alpha + A)^-r fall over 1e-17 of a unit of time; the rest of
        // the piece still carries half the likelihood (mpmath, 40 digits: -0.83195227017864,
        // P(alive) 0.49299974990031).
        let o = OwnedRows {
            frequency: vec![0.0],
            recency: vec![0.0],
            age: vec![10.0],
            piece_offsets: vec![0, 1],
            piece_starts: vec![0.0],
            purchase: vec![40.0],
            dropout: vec![],
            purchase_offsets: vec![0, 0],
            purchase_pieces: vec![],
        };
        let l = Links {
            purchase: vec![0],
            dropout: vec![],
            names: vec!["x".into()],
        };
        let exec = Exec::with_jobs(Some(1)).unwrap();
        let params = [0.02, 1.0, 1.0, 10.0, 1.0];
        let mut out = [0.0];
        for (quantity, expected) in [
            (Quantity::LogLikelihood, -0.831_952_270_178_642_2),
            (Quantity::ProbabilityAlive, 0.492_999_749_900_307),
        ] {
            predict(&o.rows(), &l, &params, quantity, &[0.0], &exec, &mut out).unwrap();
            assert!(
                (out[0] - expected).abs() < 1e-10,
                "{quantity:?}: {}",
                out[0]
            );
        }
        // A linear predictor beyond exp's range is refused, naming the customer.
        let err = predict(
            &o.rows(),
            &l,
            &[0.02, 1.0, 1.0, 10.0, 20.0],
            Quantity::LogLikelihood,
            &[0.0],
            &exec,
            &mut out,
        )
        .unwrap_err();
        assert!(err.to_string().contains("overflow"), "{err}");
    }

    #[test]
    fn subsample_keeps_whole_customers() {
        let o = simulate(40, &[0.6, 8.0, 0.8, 10.0, 0.4, -0.3], 13, 20.0);
        let l = links(1, 1);
        let rows = o.rows();
        let exec = Exec::with_jobs(Some(1)).unwrap();
        let point = [0.7, 6.0, 1.1, 12.0, 0.3, -0.5];
        let mut each = vec![0.0; rows.len()];
        let t = vec![0.0; rows.len()];
        predict(
            &rows,
            &l,
            &point,
            Quantity::LogLikelihood,
            &t,
            &exec,
            &mut each,
        )
        .unwrap();
        let sample = rows.subsample(1, 1, 3);
        let names = [vec!["p".to_string()], vec!["d".to_string()]];
        sample
            .rows()
            .validate(&l, [&names[0], &names[1]], &RfmNames::default())
            .unwrap();
        let (value, _) =
            DynamicLikelihood::new(&sample.rows(), &l).loglik_and_gradient(&point, &exec);
        let expected: f64 = each.iter().step_by(3).sum();
        assert!(
            (value - expected).abs() < 1e-9 * expected.abs(),
            "{value} vs {expected}"
        );
    }

    #[test]
    fn validation_names_the_problem() {
        let mut o = simulate(5, &[0.6, 8.0, 0.8, 10.0, 0.4, -0.3], 7, 20.0);
        let l = links(1, 1);
        let names = RfmNames::default();
        let cols = [vec!["p".to_string()], vec!["d".to_string()]];
        assert!(o.rows().validate(&l, [&cols[0], &cols[1]], &names).is_ok());
        o.dropout[3] = f64::NAN;
        let err = o
            .rows()
            .validate(&l, [&cols[0], &cols[1]], &names)
            .unwrap_err();
        assert!(err.to_string().contains("`d`, row 3"), "{err}");
        o.dropout[3] = 0.0;
        o.piece_starts[1] = 0.0;
        assert!(o.rows().validate(&l, [&cols[0], &cols[1]], &names).is_err());
    }
}
