//! Fuzzing of the core's public entry points with arbitrary `f64` input (NaN, infinities,
//! subnormals, huge and tiny values, empty slices): validation either refuses the input with an
//! error or accepts it, and everything downstream of accepted input (compression, every
//! prediction of every model, fits) returns without panicking, out-of-bounds access or a hang.

use std::time::{Duration, Instant};

use clvrs::data::{RfmColumns, RfmNames, SpendColumns, SpendNames};
use clvrs::fit::FitOptions;
use clvrs::models::bdw::{BdwParams, ChurnData};
use clvrs::models::gamma_gamma::GammaGammaParams;
use clvrs::models::{
    BgBbParams, BgNbdParams, GgNbdParams, MbgNbdParams, ParetoNbdParams, RfmModel,
};
use proptest::prelude::*;

/// Any f64, with the awkward ones over-represented.
fn awkward() -> impl Strategy<Value = f64> {
    prop_oneof![
        3 => any::<f64>(),
        2 => prop::sample::select(vec![
            f64::NAN,
            f64::INFINITY,
            f64::NEG_INFINITY,
            0.0,
            -0.0,
            f64::MIN_POSITIVE,
            f64::MIN_POSITIVE / 4.0, // subnormal
            f64::EPSILON,
            1e-300,
            1e300,
            f64::MAX,
            -1.0,
        ]),
        3 => 0.0..50.0f64,
        2 => (0u32..40).prop_map(f64::from),
    ]
}

/// A positive parameter over a wide range (1e-12 .. 1e12), or an awkward value.
fn parameter() -> impl Strategy<Value = f64> {
    prop_oneof![
        4 => (-12.0..12.0f64).prop_map(|e| 10f64.powf(e)),
        1 => awkward(),
    ]
}

/// Budget for any one call: long enough for slow exact paths, short enough to catch hangs
/// (unoptimised test builds run about 20 times slower).
const BUDGET: Duration = Duration::from_secs(if cfg!(debug_assertions) { 60 } else { 5 });

/// Cases per property: `PROPTEST_CASES`, else fewer in unoptimised builds (CI) than with
/// `--release`.
fn cases() -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(if cfg!(debug_assertions) { 60 } else { 400 })
}

fn timed<T>(what: &str, f: impl FnOnce() -> T) -> T {
    let start = Instant::now();
    let out = f();
    let took = start.elapsed();
    assert!(took < BUDGET, "{what} took {took:?}");
    out
}

/// Every prediction of model `M` on rows that passed validation.
fn predict_all<M: RfmModel>(params: &[f64], rows: &RfmColumns<'_>, t: f64, n: u64, rate: f64) {
    let Ok(m) = M::from_slice(params) else {
        return;
    };
    for i in 0..rows.len() {
        let (x, t_x, age) = (rows.frequency[i], rows.recency[i], rows.age[i]);
        let what = format!(
            "{} {params:?} at ({x}, {t_x}, {age}), t {t}, n {n}",
            M::NAME
        );
        timed(&what, || {
            let _ = m.log_likelihood(x, t_x, age);
            let p = m.probability_alive(x, t_x, age);
            assert!(
                p.is_nan() || (-1e-12..=1.0 + 1e-12).contains(&p),
                "{what}: P(alive) {p}"
            );
            let _ = m.conditional_expected_purchases(x, t_x, age, t);
            let _ = m.probability_alive_after(x, t_x, age, t);
            let _ = m.conditional_purchase_count_probability(n, x, t_x, age, t);
            if rate > 0.0 {
                let _ = m.expected_residual_transactions(x, t_x, age, rate);
            }
        });
    }
    timed(
        &format!("{} {params:?} new customer t {t}", M::NAME),
        || {
            let _ = m.expected_purchases_new_customer(t);
            let _ = m.purchase_count_probability(n, t);
        },
    );
}

fn rfm_rows() -> impl Strategy<Value = Vec<(f64, f64, f64)>> {
    prop::collection::vec((awkward(), awkward(), awkward()), 0..6)
}

fn columns(rows: &[(f64, f64, f64)]) -> (Vec<f64>, Vec<f64>, Vec<f64>) {
    (
        rows.iter().map(|r| r.0).collect(),
        rows.iter().map(|r| r.1).collect(),
        rows.iter().map(|r| r.2).collect(),
    )
}

proptest! {
    #![proptest_config(ProptestConfig { cases: cases(), failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn purchase_models_never_panic(
        rows in rfm_rows(),
        params in prop::collection::vec(parameter(), 0..6),
        t in awkward(),
        n in 0u64..50,
        rate in awkward(),
    ) {
        let (x, t_x, age) = columns(&rows);
        let input = RfmColumns::new(&x, &t_x, &age);
        let names = RfmNames::default();
        if input.validate(&names).is_err() {
            return Ok(());
        }
        let compressed = input.compress();
        prop_assert!(compressed.total_weight() == rows.len() as f64);
        // Predictions need finite horizons >= 0 (the bindings check them).
        if !(t.is_finite() && t >= 0.0) {
            return Ok(());
        }
        predict_all::<BgNbdParams>(&params, &input, t, n, rate);
        predict_all::<MbgNbdParams>(&params, &input, t, n, rate);
        predict_all::<ParetoNbdParams>(&params, &input, t, n, rate);
        predict_all::<GgNbdParams>(&params, &input, t, n, rate);
        // The discrete-time model visits each opportunity; the bindings refuse horizons
        // beyond its limit.
        if BgBbParams::validate_more(&input, &names).is_ok() && t <= BgBbParams::MAX_HORIZON {
            predict_all::<BgBbParams>(&params, &input, t.floor(), n, rate);
        }
    }

    #[test]
    fn fits_on_arbitrary_valid_data_return(rows in prop::collection::vec((0u32..30, 0.0..60.0f64, 0.0..60.0f64), 1..12)) {
        // Histories that pass validation: recency <= T, recency 0 for frequency 0.
        let rows: Vec<(f64, f64, f64)> = rows
            .into_iter()
            .map(|(x, a, b)| {
                let (t_x, age) = if a <= b { (a, b) } else { (b, a) };
                (f64::from(x), if x == 0 { 0.0 } else { t_x }, age)
            })
            .collect();
        let (x, t_x, age) = columns(&rows);
        let input = RfmColumns::new(&x, &t_x, &age);
        prop_assume!(input.validate(&RfmNames::default()).is_ok());
        let data = input.compress();
        let opts = FitOptions { max_iter: 200, ..FitOptions::default() };
        let _ = timed("BG/NBD fit", || BgNbdParams::fit(&data, &opts));
        let _ = timed("MBG/NBD fit", || MbgNbdParams::fit(&data, &opts));
        let _ = timed("Pareto/NBD fit", || ParetoNbdParams::fit(&data, &opts));
    }

    #[test]
    fn spend_and_churn_inputs_never_panic(
        freq in prop::collection::vec(awkward(), 0..6),
        money in prop::collection::vec(awkward(), 0..6),
        params in prop::collection::vec(parameter(), 0..4),
        survivors in prop::collection::vec(awkward(), 0..8),
        t in awkward(),
    ) {
        let spend = SpendColumns { frequency: &freq, monetary: &money, weights: None };
        if spend.validate(&SpendNames::default()).is_ok() {
            let compressed = spend.compress();
            if let Ok(g) = GammaGammaParams::from_slice(&params) {
                for i in 0..compressed.len() {
                    let _ = g.log_likelihood(compressed.frequency[i], compressed.monetary[i]);
                    let _ = g.conditional_expected_spend(compressed.frequency[i], compressed.monetary[i]);
                }
            }
        }
        if let Ok(data) = ChurnData::from_survivors(&survivors) {
            let _ = data;
        }
        let churned: Vec<f64> = freq.iter().map(|v| if *v > 1.0 { 1.0 } else { 0.0 }).collect();
        let _ = ChurnData::from_customers(&freq, &churned, None);
        if let Ok(m) = BdwParams::from_slice(&params) {
            if (0.0..1e9).contains(&t) {
                timed(&format!("BdW {params:?} t {t}"), || {
                    let _ = m.survival(t);
                    let _ = m.churn_probability(t.max(1.0));
                    let _ = m.retention_rate(t.max(1.0));
                    let _ = m.discounted_expected_residual_lifetime(t.floor(), 0.1);
                });
            }
        }
    }
}
