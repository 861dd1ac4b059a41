//! The core's public API from Rust alone (no Python): CDNOW summary -> validate -> compress ->
//! fit -> predictions, as a downstream Rust user would call it.

use clvrs::data::{RfmColumns, RfmNames};
use clvrs::fit::{fit, fit_with_warm_start, FitOptions};
use clvrs::models::bgnbd::{self, BgNbd, BgNbdParams};
use clvrs::parallel::Exec;
use clvrs::ClvError;

fn cdnow() -> (Vec<f64>, Vec<f64>, Vec<f64>) {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/python/clvrs/datasets/data/cdnow_customers_summary.csv"
    );
    let text = std::fs::read_to_string(path).expect("bundled CDNOW summary");
    let (mut x, mut t_x, mut age) = (Vec::new(), Vec::new(), Vec::new());
    for line in text.lines().skip(1) {
        let fields: Vec<f64> = line.split(',').map(|v| v.parse().unwrap()).collect();
        x.push(fields[1]);
        t_x.push(fields[2]);
        age.push(fields[3]);
    }
    (x, t_x, age)
}

#[test]
fn fit_and_score_cdnow_through_the_public_api() {
    let (x, t_x, age) = cdnow();
    let columns = RfmColumns::new(&x, &t_x, &age);
    let exec = Exec::with_jobs(Some(2)).unwrap();
    columns.validate_on(&RfmNames::default(), &exec).unwrap();
    let data = columns.compress_on(&exec);
    assert!(data.len() < x.len(), "CDNOW has repeated histories");
    assert_eq!(data.total_weight(), 2357.0);

    let opts = FitOptions {
        exec: exec.clone(),
        ..FitOptions::default()
    };
    let direct = fit(&BgNbd::new(&data), &opts).unwrap();
    let warm = fit_with_warm_start(
        &data,
        data.len(),
        |d, k| d.subsample(k),
        |d, o| fit(&BgNbd::new(d), o),
        &opts,
    )
    .unwrap();
    // Below the warm-start threshold both paths are the same fit.
    assert_eq!(direct, warm);
    assert!(direct.converged);
    assert!((direct.log_likelihood + 9582.43).abs() < 0.01);
    assert!((direct.aic() - (8.0 - 2.0 * direct.log_likelihood)).abs() < 1e-9);

    let p = BgNbdParams::from_slice(&direct.params).unwrap();
    let mut expected = vec![0.0; x.len()];
    bgnbd::conditional_expected_purchases_bulk(&p, &columns, 52.0, &exec, &mut expected);
    let mut alive = vec![0.0; x.len()];
    bgnbd::probability_alive_bulk(&p, &columns, &exec, &mut alive);
    for i in 0..x.len() {
        let direct_value = bgnbd::conditional_expected_purchases(&p, x[i], t_x[i], age[i], 52.0);
        assert!((expected[i] - direct_value).abs() <= 1e-12 * direct_value.max(1e-300));
        assert!((0.0..=1.0).contains(&alive[i]));
    }
}

#[test]
fn invalid_input_and_parameters_are_typed_errors() {
    let err = RfmColumns::new(&[1.0], &[5.0], &[4.0])
        .validate(&RfmNames::default())
        .unwrap_err();
    match err {
        ClvError::InvalidData(d) => {
            assert_eq!((d.column.as_str(), d.row), ("recency", Some(0)));
        }
        other => panic!("unexpected {other:?}"),
    }
    assert!(matches!(
        BgNbdParams::from_slice(&[0.2, -1.0, 0.8, 2.4]),
        Err(ClvError::InvalidParameter { .. })
    ));
    assert!(Exec::with_jobs(Some(0)).is_err());
}
