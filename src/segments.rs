//! Many models at once: one fit per segment (or acquisition cohort) of the customer base.
//!
//! First the pooled data (every segment together) is fitted (on a subsample of a large pool); then segments
//! run in parallel, each fit serially (one level of parallelism at a time), each starting from
//! the pooled estimate and its curvature (Newton steps where the model has a fused
//! value/gradient/Hessian pass, else L-BFGS), which takes a few iterations where a cold start
//! with several starting points takes dozens. A segment whose fit from there does not converge is
//! refitted from the model's own starting points (one whose fit converged where parameters run
//! off, from those starts until one converges; unless it is the plateau of a nested model, see
//! [`RfmModel::nested_limits`], which is kept as it is). A segment that is too small or whose
//! fit fails is reported with the reason; the others are unaffected.

use crate::data::{RfmColumns, RfmNames};
use crate::error::{ClvError, Result};
use crate::fit::{any_runs_away, FitOptions, FitResult};
use crate::models::RfmModel;
use crate::parallel::Exec;

/// Rows (about) of the subsample whose fit seeds the segments when the pool is larger than
/// [`crate::fit::WARM_START_ROWS`]: its standard errors are a fraction of any fittable
/// segment's, and Newton steps from there converge in a few passes.
const POOLED_SAMPLE: usize = 20_000;

/// The outcome of one segment's fit.
#[derive(Debug, Clone)]
pub struct SegmentFit {
    /// The segment's code.
    pub segment: usize,
    /// Customers (sum of weights) in the segment.
    pub customers: f64,
    /// Distinct rows after compression.
    pub rows: usize,
    pub result: Result<FitResult>,
}

/// Fit model `M` to every segment: row `i` belongs to segment `codes[i]` in
/// `0..n_segments`. Segments with fewer than `min_customers` customers are not fitted (their
/// result is an error saying so). `opts.exec` is ignored: segments run on `exec`, each serially.
pub fn fit_segments<M: RfmModel>(
    columns: &RfmColumns<'_>,
    names: &RfmNames,
    codes: &[i64],
    n_segments: usize,
    min_customers: f64,
    opts: &FitOptions<'_>,
    exec: &Exec,
) -> Result<Vec<SegmentFit>> {
    columns.validate_on(names, exec)?;
    M::validate_more(columns, names)?;
    crate::data::check_lengths(&[("segment", codes.len())], columns.len())?;
    let (order, starts) = split_rows(codes, n_segments)?;
    let segments: Vec<usize> = (0..n_segments).collect();
    let cold = FitOptions {
        exec: Exec::Serial,
        ..opts.clone()
    };
    // The pooled estimate seeds every segment (when it converges). It is only a starting
    // point, so on large data it comes from every k-th row (about POOLED_SAMPLE rows, all
    // segments mixed) rather than a fit of every row, which would cost as much as all the
    // segment fits together.
    let pooled_opts = FitOptions {
        exec: exec.clone(),
        ..opts.clone()
    };
    let pooled = if columns.len() > crate::fit::WARM_START_ROWS {
        let every = |stride: usize| {
            let pick = |v: &[f64]| v.iter().step_by(stride).copied().collect::<Vec<f64>>();
            let (x, t_x, age) = (
                pick(columns.frequency),
                pick(columns.recency),
                pick(columns.age),
            );
            let w = columns.weights.map(pick);
            RfmColumns {
                frequency: &x,
                recency: &t_x,
                age: &age,
                weights: w.as_deref(),
            }
            .compress_on(exec)
        };
        let first_start = FitOptions {
            first_start_only: true,
            ..pooled_opts
        };
        // The sample's fit starts from a fit of a tenth of it (every k-th row again, cold),
        // whose estimate and curvature take it there in a few Newton steps: a cold start on
        // the whole sample took about 25 passes over its rows.
        let seed = M::fit(&every(columns.len() / (POOLED_SAMPLE / 10)), &first_start);
        let sample = every(columns.len() / POOLED_SAMPLE);
        match seed {
            Ok(s) if s.converged && !any_runs_away(M::specs(), &s.params) => {
                let seeded = FitOptions {
                    start: Some(s.params),
                    initial_inverse_hessian: s.inverse_hessian,
                    newton: true,
                    newton_given_curvature: true,
                    ..first_start.clone()
                };
                match M::fit(&sample, &seeded) {
                    Ok(p) if p.converged => Ok(p),
                    Err(ClvError::Interrupted) => Err(ClvError::Interrupted),
                    _ => M::fit(&sample, &first_start),
                }
            }
            Err(ClvError::Interrupted) => Err(ClvError::Interrupted),
            _ => M::fit(&sample, &first_start),
        }
    } else {
        M::fit(&columns.compress_on(exec), &pooled_opts)
    };
    // A pooled estimate on a plateau (parameters running off) would hold segments there too.
    let warm = match &pooled {
        Ok(p) if p.converged && !any_runs_away(M::specs(), &p.params) => Some(FitOptions {
            start: Some(p.params.clone()),
            initial_inverse_hessian: p.inverse_hessian.clone(),
            // Close to each segment's optimum, where Newton steps on models with a fused
            // value/gradient/Hessian pass take half the passes of L-BFGS.
            newton: true,
            // The first step on the pooled curvature: a gradient pass at the pooled estimate
            // instead of a fused one (the segments are parts of the pool).
            newton_given_curvature: true,
            ..cold.clone()
        }),
        Err(ClvError::Interrupted) => return Err(ClvError::Interrupted),
        _ => None,
    };
    Ok(exec.map_each(&segments, |&s| {
        let data = rows_data(columns, &order[starts[s]..starts[s + 1]]);
        let customers = data.total_weight();
        let result = if customers < min_customers {
            Err(ClvError::invalid_data(
                "segment",
                None,
                None,
                format!(
                    "has {customers} customers, fewer than the {min_customers} required to fit \
                     (min_customers)"
                ),
            ))
        } else if let Err(e) = crate::models::check_fittable(&data.frequency, names) {
            Err(e)
        } else {
            match warm.as_ref().map(|w| M::fit(&data, w)) {
                Some(Ok(res)) if res.converged && !any_runs_away(M::specs(), &res.params) => {
                    Ok(res)
                }
                // Converged where a mixing distribution collapses (the nested model's plateau,
                // which every start reaches too): a refit would only run off along it again
                // (segment 315 of the benchmark: 77 evaluations for the same log-likelihood to
                // 1.4e-11, flagged the same way).
                Some(Ok(res)) if res.converged && on_nested_plateau::<M>(&res.params) => Ok(res),
                Some(Err(ClvError::Interrupted)) => Err(ClvError::Interrupted),
                // Not converged, failed, or converged where other parameters run off (which
                // the model's own starts may improve on): refitted from those starts, and the
                // better of the two kept. After a warm fit that converged (where parameters
                // run off) the refit stops at the first start that converges: the warm fit is
                // already one answer, the refit a second opinion, and on a plateau every
                // further start runs off along it too (segment 315 of the benchmark: 0.21 s
                // for one start against 0.62 s for four, log-likelihoods equal to 2e-10, both
                // flagged).
                warm_fit => {
                    let refit = match &warm_fit {
                        Some(Ok(w)) if w.converged => FitOptions {
                            first_start_only: true,
                            ..cold.clone()
                        },
                        _ => cold.clone(),
                    };
                    match (warm_fit, M::fit(&data, &refit)) {
                        (Some(Ok(w)), Ok(c))
                            if w.converged
                                && !(c.converged && c.log_likelihood > w.log_likelihood) =>
                        {
                            Ok(w)
                        }
                        (Some(Ok(w)), Err(_)) if w.converged => Ok(w),
                        (_, cold_fit) => cold_fit,
                    }
                }
            }
        };
        SegmentFit {
            segment: s,
            customers,
            rows: data.len(),
            result,
        }
    }))
}

/// Shape above which a gamma mixing distribution counts as collapsed to a point mass (its
/// coefficient of variation `1 / sqrt(shape)` is below 1%).
const COLLAPSED_SHAPE: f64 = 1e4;

/// Whether every parameter of a fit that runs off belongs to a pair of
/// [`RfmModel::nested_limits`] whose shape has collapsed ([`COLLAPSED_SHAPE`]): the fit is on
/// the plateau of the nested model without that heterogeneity, not stopped on a ridge.
fn on_nested_plateau<M: RfmModel>(params: &[f64]) -> bool {
    let specs = M::specs();
    any_runs_away(specs, params)
        && (0..params.len()).all(|i| {
            !any_runs_away(&specs[i..=i], &params[i..=i])
                || M::nested_limits().iter().any(|&(shape, scale)| {
                    (i == shape || i == scale) && params[shape] > COLLAPSED_SHAPE
                })
        })
}

/// Row indices grouped by segment (a counting sort: stable within a segment), and where each
/// segment's rows start: segment `s` is `order[starts[s]..starts[s + 1]]`. A code outside
/// `0..n_segments` (a missing segment) is refused.
pub fn split_rows(codes: &[i64], n_segments: usize) -> Result<(Vec<usize>, Vec<usize>)> {
    if let Some(i) = codes
        .iter()
        .position(|&c| c < 0 || c as usize >= n_segments)
    {
        return Err(ClvError::invalid_data(
            "segment",
            Some(i),
            None,
            "must not be missing (null)",
        ));
    }
    // Rows of each segment, by a counting sort.
    let mut starts = vec![0usize; n_segments + 1];
    for &c in codes {
        starts[c as usize + 1] += 1;
    }
    for s in 0..n_segments {
        starts[s + 1] += starts[s];
    }
    let mut order = vec![0usize; codes.len()];
    let mut fill = starts.clone();
    for (i, &c) in codes.iter().enumerate() {
        order[fill[c as usize]] = i;
        fill[c as usize] += 1;
    }
    Ok((order, starts))
}

/// The compressed data of the given rows.
pub fn rows_data(columns: &RfmColumns<'_>, rows: &[usize]) -> crate::data::Rfm {
    let take = |v: &[f64]| rows.iter().map(|&i| v[i]).collect::<Vec<f64>>();
    let (x, t_x, age) = (
        take(columns.frequency),
        take(columns.recency),
        take(columns.age),
    );
    let w = columns.weights.map(take);
    let segment_columns = RfmColumns {
        frequency: &x,
        recency: &t_x,
        age: &age,
        weights: w.as_deref(),
    };
    segment_columns.compress()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::models::testing::rel;
    use crate::models::{BgNbdParams, ParetoNbdParams};

    /// Customers of `n_segments` segments with different parameters, interleaved row by row.
    fn segmented<M: RfmModel>(
        params: &[M],
        per_segment: usize,
        simulate: impl Fn(&M, &[f64], u64) -> (Vec<f64>, Vec<f64>),
    ) -> (Vec<f64>, Vec<f64>, Vec<f64>, Vec<i64>) {
        let n = params.len() * per_segment;
        let (mut x, mut t_x, mut age, mut codes) =
            (vec![0.0; n], vec![0.0; n], vec![0.0; n], vec![0; n]);
        for (s, p) in params.iter().enumerate() {
            let ages: Vec<f64> = (0..per_segment)
                .map(|i| 26.0 + 52.0 * ((i * 7919) % per_segment) as f64 / per_segment as f64)
                .collect();
            let (xs, ts) = simulate(p, &ages, 11 + s as u64);
            for i in 0..per_segment {
                let row = i * params.len() + s;
                (x[row], t_x[row], age[row], codes[row]) = (xs[i], ts[i], ages[i], s as i64);
            }
        }
        (x, t_x, age, codes)
    }

    /// Each segment's fit (from the pooled estimate: by Newton steps alone when `newton`)
    /// reaches the optimum of a fit of that segment alone (the model's own starts, L-BFGS),
    /// and its covariance.
    fn check_equals_separate_fits<M: RfmModel>(
        params: &[M],
        per_segment: usize,
        newton: bool,
        simulate: impl Fn(&M, &[f64], u64) -> (Vec<f64>, Vec<f64>),
    ) {
        let (x, t_x, age, mut codes) = segmented(params, per_segment, simulate);
        // One more segment, too small to fit.
        let small = params.len();
        codes[..5].fill(small as i64);
        let columns = RfmColumns::new(&x, &t_x, &age);
        let exec = Exec::with_jobs(Some(2)).unwrap();
        let fits = fit_segments::<M>(
            &columns,
            &RfmNames::default(),
            &codes,
            small + 1,
            50.0,
            &FitOptions::default(),
            &exec,
        )
        .unwrap();
        assert_eq!(fits.len(), small + 1);
        for fit in &fits[..small] {
            let res = fit.result.as_ref().unwrap();
            assert!(res.converged, "{}: {}", M::NAME, res.termination);
            // Newton steps from the pooled estimate when that is close to the segment's
            // optimum; otherwise L-BFGS goes on from where they stop.
            if newton {
                assert!(res.termination.contains("Newton"), "{}", res.termination);
            }
            assert_eq!(res.n_starts, 1);
            let rows: Vec<usize> = (0..codes.len())
                .filter(|&i| codes[i] == fit.segment as i64)
                .collect();
            let take = |v: &[f64]| rows.iter().map(|&i| v[i]).collect::<Vec<f64>>();
            let (xs, ts, ages) = (take(&x), take(&t_x), take(&age));
            let alone = M::fit(
                &RfmColumns::new(&xs, &ts, &ages).compress(),
                &FitOptions::default(),
            )
            .unwrap();
            assert_eq!(fit.customers, rows.len() as f64);
            assert!(
                rel(res.log_likelihood, alone.log_likelihood) < 1e-12,
                "{}",
                M::NAME
            );
            for (a, b) in res.params.iter().zip(&alone.params) {
                assert!(
                    rel(*a, *b) < 1e-5,
                    "{}: {:?} vs {:?}",
                    M::NAME,
                    res.params,
                    alone.params
                );
            }
            let (cov, cov_alone) = (
                res.covariance.as_ref().unwrap(),
                alone.covariance.as_ref().unwrap(),
            );
            for (a, b) in cov.iter().zip(cov_alone.iter()) {
                assert!(
                    (a - b).abs() < 1e-3 * b.abs().max(1e-12) + 1e-9,
                    "{}: {cov:?} vs {cov_alone:?}",
                    M::NAME
                );
            }
        }
        let too_small = fits[small].result.as_ref().unwrap_err().to_string();
        assert!(
            too_small.contains("has 5 customers, fewer than the 50"),
            "{too_small}"
        );
    }

    #[test]
    fn bgnbd_segments_equal_separate_fits_from_a_subsampled_pool() {
        // More rows than WARM_START_ROWS: the pooled estimate comes from a subsample. Segments
        // alike (as random splits are), then very different (the pooled start is far from
        // theirs).
        let alike = [
            BgNbdParams::new(0.24, 4.4, 0.79, 2.4),
            BgNbdParams::new(0.28, 4.0, 0.7, 2.6),
            BgNbdParams::new(0.22, 5.0, 0.9, 2.2),
        ];
        let per_segment = crate::fit::WARM_START_ROWS / alike.len() + 1000;
        let simulate =
            |p: &BgNbdParams, ages: &[f64], seed| crate::models::bgnbd::simulate(p, ages, seed);
        check_equals_separate_fits(&alike, per_segment, true, simulate);
        let different = [
            BgNbdParams::new(0.24, 4.4, 0.79, 2.4),
            BgNbdParams::new(0.5, 8.0, 0.4, 3.0),
            BgNbdParams::new(1.2, 3.0, 1.5, 6.0),
        ];
        check_equals_separate_fits(&different, 3000, false, simulate);
    }

    #[test]
    fn nested_plateau_is_a_collapsed_mixing_distribution() {
        let pnbd = |p: [f64; 4]| on_nested_plateau::<ParetoNbdParams>(&p);
        // Segment 315 of the benchmark: s and beta run off together (exponential dropout at
        // rate s / beta = 0.019 for everyone).
        assert!(pnbd([0.425, 8.79, 3.9e6, 2.06e8]));
        // The purchase rates' gamma collapsing (Poisson purchases), or both.
        assert!(pnbd([2e8, 4e8, 0.6, 11.7]));
        assert!(pnbd([2e8, 4e8, 3.9e6, 2.06e8]));
        // Nothing runs off; a scale running off with its shape still small (a ridge, not the
        // nested model); a shape running off to 0.
        assert!(!pnbd([0.55, 10.6, 0.61, 11.7]));
        assert!(!pnbd([0.55, 10.6, 0.61, 2e8]));
        assert!(!pnbd([0.55, 10.6, 1e-9, 11.7]));
        // A collapsed pair does not excuse another parameter running off.
        assert!(!pnbd([1e-9, 10.6, 3.9e6, 2.06e8]));
        // Models that declare no such limit.
        assert!(!on_nested_plateau::<BgNbdParams>(&[0.24, 4.4, 2e8, 4e8]));
    }

    #[test]
    fn pareto_segments_equal_separate_fits() {
        let params = [
            ParetoNbdParams::new(0.55, 10.6, 0.61, 11.7),
            ParetoNbdParams::new(0.6, 9.0, 0.5, 14.0),
        ];
        check_equals_separate_fits(&params, 3000, true, |p, ages, seed| {
            crate::models::pnbd::simulate(p, ages, seed)
        });
    }
}
