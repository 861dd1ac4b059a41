//! Per-customer predictions of the time-varying covariate model ([`predict`]): the
//! log-likelihood, P(alive) ahead, expected purchases and DERT, piece by piece after T.

use super::likelihood::{dot, row, DynamicLikelihood, Point, Scratch};
use super::DynamicRows;
use crate::error::{ClvError, Result};
use crate::models::covariates::Links;
use crate::parallel::Exec;

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
        let (e, f) = point.multipliers(rows.matrices(), k);
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
        if let Some(k) = values.rows().into_iter().position(|z| {
            !dot(z.as_slice().expect("standard layout"), coefficients)
                .exp()
                .is_finite()
        }) {
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
    use crate::models::pnbd::ParetoNbdParams;
    use crate::models::pnbd_dynamic::tests::{links, simulate};
    use crate::models::RfmModel;

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
}
