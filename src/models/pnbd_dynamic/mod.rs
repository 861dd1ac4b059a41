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
//! [`MAX_PANEL_LOG_CHANGE`](likelihood::MAX_PANEL_LOG_CHANGE) and the distance to each factor's pole at most doubles, so panels
//! grow geometrically where a factor falls fast and stay few where a factor is nearly flat
//! (large `s` and `beta`): accurate to rounding for any `x`, `r` and `s`. The rest of a piece
//! is skipped once it cannot matter (below `e^-40` of the running sum). The gradient is the integral of the
//! integrand's analytic gradient by the same rule.
//!
//! Where to look:
//!
//! - this file: the fit ([`fit_dynamic`]);
//! - `rows`: the customers' pieces and purchases ([`DynamicRows`], [`OwnedRows`]) and their
//!   validation;
//! - `likelihood`: one customer's likelihood and gradient by piecewise quadrature, and the
//!   likelihood for the fitting engine ([`DynamicLikelihood`]);
//! - `predict`: per-customer predictions ([`predict`], [`Quantity`]).

mod likelihood;
mod predict;
mod rows;

pub use likelihood::DynamicLikelihood;
pub use predict::{predict, Quantity};
pub use rows::{DynamicRows, OwnedRows};

use super::covariates::Links;
use super::pnbd::ParetoNbdParams;
use super::RfmModel;
use crate::data::{RfmColumns, RfmNames};
use crate::error::{ClvError, Result};
use crate::fit::{fit, FitOptions, FitResult};

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
        start.extend(std::iter::repeat_n(0.0, links.len()));
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::parallel::Exec;
    use crate::random::Rng;
    use ndarray::Array2;
    /// (Shared by the tests of the other files.)
    pub(super) type Owned = OwnedRows;

    pub(super) fn links(p: usize, q: usize) -> Links {
        Links {
            purchase: (0..p).collect(),
            dropout: (p..p + q).collect(),
            names: (0..p + q).map(|c| format!("c{c}")).collect(),
        }
    }

    /// Simulate customers with one purchase and one dropout covariate that change every unit
    /// of time (a promotion flag and a seasonal wave, per customer), from the model itself.
    pub(super) fn simulate(n: usize, truth: &[f64], seed: u64, horizon: f64) -> Owned {
        let mut rng = Rng::new(seed);
        let (r, alpha, s, beta, g1, g2) =
            (truth[0], truth[1], truth[2], truth[3], truth[4], truth[5]);
        let mut o = Owned {
            frequency: vec![],
            recency: vec![],
            age: vec![],
            piece_offsets: vec![0],
            piece_starts: vec![],
            purchase_offsets: vec![0],
            purchase_pieces: vec![],
            ..Owned::default()
        };
        let (mut purchase, mut dropout) = (vec![], vec![]);
        for _ in 0..n {
            let age = (rng.uniform() * horizon).floor() + 5.0;
            let lambda = rng.gamma(r) / alpha;
            let mu = rng.gamma(s) / beta;
            let phase = rng.uniform() * 6.0;
            let first = o.piece_starts.len();
            let pieces = (age + horizon) as usize + 1;
            for k in 0..pieces {
                o.piece_starts.push(k as f64);
                purchase.push(f64::from(u8::from(rng.uniform() < 0.3)));
                dropout.push(((k as f64 + phase) / 3.0).sin());
            }
            // Dropout: the cumulative hazard mu B(t) reaches an exponential draw.
            let mut target = -rng.uniform().ln() / mu;
            let mut death = f64::INFINITY;
            for k in 0..pieces {
                let f = (g2 * dropout[first + k]).exp();
                if target <= f {
                    death = k as f64 + target / f;
                    break;
                }
                target -= f;
            }
            let mut times = vec![];
            for k in 0..(age as usize) {
                let rate = lambda * (g1 * purchase[first + k]).exp();
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
        let pieces = o.piece_starts.len();
        o.purchase = Array2::from_shape_vec((pieces, 1), purchase).unwrap();
        o.dropout = Array2::from_shape_vec((pieces, 1), dropout).unwrap();
        o
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
            let se = cov[[j, j]].sqrt();
            assert!(
                (result.params[j] - truth[j]).abs() < 4.0 * se,
                "parameter {j}: {} (se {se}) vs {}",
                result.params[j],
                truth[j]
            );
        }
    }
}
