//! One file per model: likelihood with analytic gradient, starting points, and predictions.
//!
//! The models of repeat purchasing in continuous time (BG/NBD, MBG/NBD, Pareto/NBD,
//! GGompertz/NBD) share one interface, [`RfmModel`]: they are fitted on the same customer
//! summaries (frequency, recency, age) and answer the same questions, so the bindings and the
//! Python layer handle all of them through it.

pub mod bdw;
pub mod bgbb;
pub mod bgnbd;
pub mod bgnbd_dynamic;
pub mod churn_dynamic;
pub mod cnbd;
pub mod covariates;
pub mod gamma_gamma;
pub mod ggnbd;
pub mod lifetime;
pub mod mbgnbd;
pub mod nbd;
pub mod pnbd;
pub mod pnbd_correlated;
pub mod pnbd_dynamic;
pub mod sbg;
#[cfg(test)]
pub(crate) mod testing;

pub use bgbb::BgBbParams;
pub use bgnbd::{BgNbd, BgNbdParams};
pub use cnbd::{BgCnbdParams, CnbdParams, MbgCnbdParams};
pub use ggnbd::GgNbdParams;
pub use mbgnbd::MbgNbdParams;
pub use nbd::NbdParams;
pub use pnbd::ParetoNbdParams;
pub use pnbd_correlated::CorrelatedParetoNbdParams;

use crate::data::{Rfm, RfmColumns};
use crate::error::Result;
use crate::fit::{FitOptions, FitResult, ParamSpec};
use crate::parallel::Exec;

/// One customer's log-likelihood, its gradient and its Hessian in a model's four parameters.
pub type RowDerivatives = (f64, [f64; 4], [[f64; 4]; 4]);

/// A fitted (or given) model of repeat purchasing on (x, t_x, T) customer summaries: `x` repeat
/// purchases, the last at `t_x`, observed for `T` since the first purchase.
///
/// Predictions a model cannot make return `None`.
pub trait RfmModel: Sized + Sync {
    /// Short name used by the bindings and in messages ("bgnbd", "pnbd", ...).
    const NAME: &'static str;

    /// Longest prediction horizon the model serves (the discrete-time model visits each
    /// opportunity); callers refuse longer ones.
    const MAX_HORIZON: f64 = f64::INFINITY;

    /// Parameter names and domains, in order.
    fn specs() -> &'static [ParamSpec];

    /// From values in the order of [`RfmModel::specs`], checking their domains.
    fn from_slice(values: &[f64]) -> Result<Self>;

    /// Maximum-likelihood fit on compressed rows.
    fn fit(data: &Rfm, opts: &FitOptions<'_>) -> Result<FitResult>;

    /// Rules of this model beyond those of [`RfmColumns::validate`] (e.g. whole opportunities
    /// for the discrete-time model).
    fn validate_more(_columns: &RfmColumns<'_>, _names: &crate::data::RfmNames) -> Result<()> {
        Ok(())
    }

    /// Whether [`RfmModel::validate_more`] has rules of its own (callers skip it otherwise:
    /// with an integer frequency column it would convert every count to float64 for nothing).
    const HAS_MORE_RULES: bool = false;

    /// Whether customers share few distinct histories (whole opportunities), so that bulk
    /// predictions compute each distinct history once per block of rows
    /// ([`fill_memoized`]) instead of once per row.
    const FEW_DISTINCT_HISTORIES: bool = false;

    /// Pairs `(shape, scale)` (indices into [`RfmModel::specs`]) of a gamma mixing
    /// distribution that collapses to a point mass where both run off to infinity (their ratio,
    /// the mean rate, settled): the likelihood there tends to that of the nested model without
    /// that heterogeneity, a plateau rather than a ridge towards a better optimum. Fits that
    /// converge on such a plateau are taken as they are by `fit_segments` (no refit from the
    /// model's own starts). Empty: no such limit is declared.
    fn nested_limits() -> &'static [(usize, usize)] {
        &[]
    }

    /// Log-likelihood of one customer.
    fn log_likelihood(&self, x: f64, t_x: f64, age: f64) -> f64;

    /// P(alive at T) given the history.
    fn probability_alive(&self, x: f64, t_x: f64, age: f64) -> f64;

    /// Expected number of purchases in (T, T + t] given the history.
    fn conditional_expected_purchases(&self, x: f64, t_x: f64, age: f64, t: f64) -> f64;

    /// E[X(t)]: expected purchases of a new customer in (0, t].
    fn expected_purchases_new_customer(&self, t: f64) -> f64;

    /// P(X(t) = n) for a new customer.
    fn purchase_count_probability(&self, n: u64, t: f64) -> Option<f64>;

    /// P(alive at T + t) given the history.
    fn probability_alive_after(&self, _x: f64, _t_x: f64, _age: f64, _t: f64) -> Option<f64> {
        None
    }

    /// P(exactly n purchases in (T, T + t]) given the history.
    fn conditional_purchase_count_probability(
        &self,
        _n: u64,
        _x: f64,
        _t_x: f64,
        _age: f64,
        _t: f64,
    ) -> Option<f64> {
        None
    }

    /// Discounted expected residual transactions with continuous discounting at `rate` per unit
    /// of time: `E[integral over u > T of exp(-rate (u - T)) dX(u) | history]`.
    fn expected_residual_transactions(
        &self,
        _x: f64,
        _t_x: f64,
        _age: f64,
        _rate: f64,
    ) -> Option<f64> {
        None
    }

    /// Draw histories `(x, t_x)` from the model for customers of ages `ages`; customer `i`
    /// uses random stream `i` of `seed` (reproducible for any thread count). `None` when the
    /// model has no simulator.
    fn simulate(&self, _ages: &[f64], _seed: u64) -> Option<(Vec<f64>, Vec<f64>)> {
        None
    }

    /// [`RfmModel::probability_alive`] for every row, in parallel. A row's value depends on
    /// that row alone (callers may run it block by block and get the same values).
    fn probability_alive_bulk(&self, columns: &RfmColumns<'_>, exec: &Exec, out: &mut [f64]) {
        predict_histories::<Self>(exec, columns, out, |x, t_x, age| {
            self.probability_alive(x, t_x, age)
        });
    }

    /// [`RfmModel::conditional_expected_purchases`] for every row and one horizon, in parallel.
    fn conditional_expected_purchases_bulk(
        &self,
        columns: &RfmColumns<'_>,
        t: f64,
        exec: &Exec,
        out: &mut [f64],
    ) {
        predict_histories::<Self>(exec, columns, out, |x, t_x, age| {
            self.conditional_expected_purchases(x, t_x, age, t)
        });
    }

    /// `sum_j w_j E[X(T, T + t_j)]` for every row and the `(w_j, t_j)` in `horizons`, in
    /// parallel: discounted purchase streams (customer value) as weighted sums of expectations.
    fn weighted_expected_purchases_bulk(
        &self,
        columns: &RfmColumns<'_>,
        horizons: &[(f64, f64)],
        exec: &Exec,
        out: &mut [f64],
    ) {
        predict_histories::<Self>(exec, columns, out, |x, t_x, age| {
            horizons
                .iter()
                .map(|&(w, t)| w * self.conditional_expected_purchases(x, t_x, age, t))
                .sum()
        });
    }
}

/// Refuse data that cannot identify a purchase model: when no customer has a repeat purchase
/// the likelihood has no maximum (it grows without bound as the purchase rate goes to 0, and
/// says nothing about dropout), so a fit would return arbitrary boundary values.
pub fn check_fittable(frequency: &[f64], names: &crate::data::RfmNames) -> Result<()> {
    if frequency.iter().all(|&x| x == 0.0) {
        return Err(crate::error::ClvError::invalid_data(
            &names.frequency,
            None,
            None,
            "is 0 for every customer: without repeat purchases the purchase rate and the \
             dropout process cannot be estimated (the likelihood has no maximum); fit on data \
             that includes repeat buyers",
        ));
    }
    Ok(())
}

/// The weighted sum over compressed rows of a per-row log-likelihood written over dual numbers
/// (`row(params, x, t_x, T)`), with its gradient: the likelihood pass of the models whose
/// gradient comes from [`Dual`](crate::dual::Dual) arithmetic.
pub fn sum_dual_rows<const N: usize>(
    data: &Rfm,
    params: &[f64],
    exec: &Exec,
    row: impl Fn([crate::dual::Dual<N>; N], f64, f64, f64) -> crate::dual::Dual<N> + Sync,
) -> (f64, Vec<f64>) {
    let p: [crate::dual::Dual<N>; N] =
        std::array::from_fn(|i| crate::dual::Dual::variable(params[i], i));
    let acc = exec.chunked_sum(data.len(), N + 1, |range, acc| {
        for i in range {
            let ll = row(p, data.frequency[i], data.recency[i], data.age[i]);
            let w = data.weight(i);
            acc[0] += w * ll.v;
            for j in 0..N {
                acc[1 + j] += w * ll.d[j];
            }
        }
    });
    (acc[0], acc[1..].to_vec())
}

/// Fill `out` with a per-customer function of (x, t_x, T, row) in parallel.
pub fn predict_rows(
    exec: &Exec,
    columns: &RfmColumns<'_>,
    out: &mut [f64],
    f: impl Fn(f64, f64, f64, usize) -> f64 + Sync,
) {
    exec.fill(out, |i| {
        f(columns.frequency[i], columns.recency[i], columns.age[i], i)
    });
}

/// Fill `out` with a per-customer function of the history (x, t_x, T) in parallel: once per
/// distinct history within each block of rows when the model's customers share few histories
/// ([`RfmModel::FEW_DISTINCT_HISTORIES`]), else once per row. The same values either way.
pub fn predict_histories<M: RfmModel>(
    exec: &Exec,
    columns: &RfmColumns<'_>,
    out: &mut [f64],
    f: impl Fn(f64, f64, f64) -> f64 + Sync,
) {
    let history = |i: usize| [columns.frequency[i], columns.recency[i], columns.age[i]];
    if M::FEW_DISTINCT_HISTORIES {
        fill_memoized(exec, out, history, |i| {
            let [x, t_x, age] = history(i);
            f(x, t_x, age)
        });
    } else {
        exec.fill(out, |i| {
            let [x, t_x, age] = history(i);
            f(x, t_x, age)
        });
    }
}

/// Fill `out[i] = f(i)` in parallel like [`Exec::fill`] for an `f` that depends on the row only
/// through `key(i)`, computing `f` once per distinct key within each block of rows (a
/// direct-mapped cache of the last key and value seen in each of 256 slots, keys matched bit
/// for bit): for inputs that take few distinct values, where most rows repeat an earlier one.
/// The values are those of [`Exec::fill`], for any thread count.
pub fn fill_memoized<const K: usize>(
    exec: &Exec,
    out: &mut [f64],
    key: impl Fn(usize) -> [f64; K] + Sync,
    f: impl Fn(usize) -> f64 + Sync,
) {
    fill_memoized_in::<K, 256>(exec, out, key, f)
}

/// [`fill_memoized`] with `SLOTS` cache slots per block (more for a costly `f` whose rows
/// hold more distinct keys than 256 slots keep apart).
pub fn fill_memoized_in<const K: usize, const SLOTS: usize>(
    exec: &Exec,
    out: &mut [f64],
    key: impl Fn(usize) -> [f64; K] + Sync,
    f: impl Fn(usize) -> f64 + Sync,
) {
    exec.fill_blocks(out, |start, block| {
        let mut keys = [[0u64; K]; SLOTS];
        let mut filled = [false; SLOTS];
        let mut values = [0.0; SLOTS];
        for (j, slot) in block.iter_mut().enumerate() {
            let bits = key(start + j).map(f64::to_bits);
            // MurmurHash3's finaliser after each value, so every bit of the keys reaches the
            // slot index.
            let hash = bits.iter().fold(0u64, |h, &b| {
                let mut h = h ^ b;
                h ^= h >> 33;
                h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
                h ^ (h >> 33)
            });
            let at = (hash >> 32) as usize % SLOTS;
            if !(filled[at] && keys[at] == bits) {
                keys[at] = bits;
                values[at] = f(start + j);
                filled[at] = true;
            }
            *slot = values[at];
        }
    });
}

/// Distinct keys from which [`fill_distinct`] shares them among the threads. A key costs about
/// 0.5 us (BG/NBD's series); on CDNOW's 464 distinct keys two threads took 0.41 ms against one
/// thread's 0.31 ms (quiet 2-core machine: waking the pool costs more than half the work), so
/// the pool is woken only for about half a millisecond of work or more.
const DISTINCT_PARALLEL_MIN: usize = 1024;

/// Fill `out[i] = f(i)` for an `f` that depends on the row only through `key(i)`, computing
/// `f` exactly once per distinct key (keys matched bit for bit in an open-addressing table over
/// all rows, which a collision never makes recompute), the distinct keys evaluated in parallel
/// on `exec`. The values are those of [`Exec::fill`], for any thread count.
///
/// For a costly `f` on inputs too small to split into blocks (under a few thousand rows one
/// block holds them all, and [`fill_memoized`] would evaluate every key on one thread):
/// CDNOW's 2,357 customers hold 464 distinct (frequency, age) pairs, each a series of about a
/// hundred terms. The table costs 16 bytes a row.
pub fn fill_distinct<const K: usize>(
    exec: &Exec,
    out: &mut [f64],
    key: impl Fn(usize) -> [f64; K] + Sync,
    f: impl Fn(usize) -> f64 + Sync,
) {
    let n = out.len();
    let slots = (2 * n).next_power_of_two().max(16);
    const EMPTY: usize = usize::MAX;
    let mut table = vec![EMPTY; slots];
    // Each distinct key with the first row that has it, and each row's distinct key.
    let mut distinct: Vec<([u64; K], usize)> = Vec::new();
    let mut which = Vec::with_capacity(n);
    for i in 0..n {
        let bits = key(i).map(f64::to_bits);
        let hash = bits.iter().fold(0u64, |h, &b| {
            let mut h = h ^ b;
            h ^= h >> 33;
            h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
            h ^ (h >> 33)
        });
        let mut at = (hash >> 16) as usize & (slots - 1);
        loop {
            let d = table[at];
            if d == EMPTY {
                table[at] = distinct.len();
                which.push(distinct.len());
                distinct.push((bits, i));
                break;
            }
            if distinct[d].0 == bits {
                which.push(d);
                break;
            }
            at = (at + 1) & (slots - 1);
        }
    }
    // (A handful of keys is not worth waking the pool for.)
    let serial = Exec::Serial;
    let exec = if distinct.len() < DISTINCT_PARALLEL_MIN {
        &serial
    } else {
        exec
    };
    let values = exec.map(&distinct, |&(_, i)| f(i));
    for (slot, &d) in out.iter_mut().zip(&which) {
        *slot = values[d];
    }
}

#[cfg(test)]
mod memo_tests {
    use super::*;

    #[test]
    fn distinct_fill_gives_the_values_of_a_plain_fill() {
        // Repeated keys (-0.0 beside 0.0, which must not share a value), unique keys, and
        // more rows than one block, on both executors.
        let n = crate::parallel::CHUNK_ROWS + 777;
        let x: Vec<f64> = (0..n)
            .map(|i| match i % 5 {
                0 => -0.0,
                1 => 0.0,
                2 => (i % 13) as f64,
                _ => (i as f64).sqrt(),
            })
            .collect();
        let f = |i: usize| {
            if x[i].is_sign_negative() {
                -1.0
            } else {
                x[i].ln_1p() * 3.0
            }
        };
        let mut plain = vec![0.0; n];
        Exec::Serial.fill(&mut plain, f);
        for exec in [Exec::Serial, Exec::with_jobs(Some(2)).unwrap()] {
            let mut distinct = vec![f64::NAN; n];
            fill_distinct(&exec, &mut distinct, |i| [x[i], 2.0], f);
            assert_eq!(
                distinct.iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
                plain.iter().map(|v| v.to_bits()).collect::<Vec<_>>()
            );
        }
        // Fewer distinct keys than DISTINCT_PARALLEL_MIN (evaluated on the calling thread).
        let mut few = vec![f64::NAN; 20];
        fill_distinct(&Exec::with_jobs(Some(2)).unwrap(), &mut few, |i| [x[i]], f);
        assert_eq!(
            few.iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
            plain[..20].iter().map(|v| v.to_bits()).collect::<Vec<_>>()
        );
        let mut empty: [f64; 0] = [];
        fill_distinct(&Exec::Serial, &mut empty, |i| [x[i]], f);
    }

    #[test]
    fn memoized_fill_gives_the_values_of_a_plain_fill() {
        // Few distinct keys (with -0.0 beside 0.0, which must not share a value) mixed with
        // unique ones, over several blocks and both executors.
        let n = 3 * crate::parallel::CHUNK_ROWS + 11;
        let x: Vec<f64> = (0..n)
            .map(|i| match i % 7 {
                0 => -0.0,
                1 | 2 => (i % 5) as f64,
                _ => (i as f64).sqrt(),
            })
            .collect();
        let f = |i: usize| {
            if x[i].is_sign_negative() {
                -1.0
            } else {
                x[i].ln_1p() * 3.0
            }
        };
        let mut plain = vec![0.0; n];
        Exec::Serial.fill(&mut plain, f);
        for exec in [Exec::Serial, Exec::with_jobs(Some(2)).unwrap()] {
            let mut memo = vec![f64::NAN; n];
            fill_memoized(&exec, &mut memo, |i| [x[i], 1.0], f);
            assert_eq!(
                memo.iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
                plain.iter().map(|v| v.to_bits()).collect::<Vec<_>>()
            );
        }
    }
}
