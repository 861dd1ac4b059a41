//! Test support shared by the model files: the bundled CDNOW data and numerical checks.

use crate::data::{Rfm, RfmColumns};

/// The bundled CDNOW summary (2,357 customers, weeks), compressed.
pub fn cdnow() -> Rfm {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/python/clvrs/datasets/data/cdnow_customers_summary.csv"
    );
    let text = std::fs::read_to_string(path).expect("bundled CDNOW summary");
    let (mut x, mut t_x, mut age) = (Vec::new(), Vec::new(), Vec::new());
    for line in text.lines().skip(1) {
        let f: Vec<f64> = line.split(',').map(|v| v.parse().unwrap()).collect();
        x.push(f[1]);
        t_x.push(f[2]);
        age.push(f[3]);
    }
    assert_eq!(x.len(), 2357);
    RfmColumns::new(&x, &t_x, &age).compress()
}

/// Relative difference of `a` from `b`.
pub fn rel(a: f64, b: f64) -> f64 {
    ((a - b) / b).abs()
}

/// Assert that `gradient(params)` matches central differences of `value` in every coordinate,
/// to `tolerance` relative (absolute for components near 0).
pub fn assert_gradient_matches(
    value: impl Fn(&[f64]) -> f64,
    gradient: &[f64],
    params: &[f64],
    tolerance: f64,
) {
    for k in 0..params.len() {
        let h = 1e-6 * params[k].abs().max(1e-3);
        let mut up = params.to_vec();
        let mut down = params.to_vec();
        up[k] += h;
        down[k] -= h;
        let numeric = (value(&up) - value(&down)) / (2.0 * h);
        let scale = numeric.abs().max(gradient[k].abs()).max(1.0);
        assert!(
            (gradient[k] - numeric).abs() <= tolerance * scale,
            "component {k} at {params:?}: analytic {} vs numeric {numeric}",
            gradient[k]
        );
    }
}
