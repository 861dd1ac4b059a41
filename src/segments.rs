//! Many models at once: one fit per segment (or acquisition cohort) of the customer base.
//!
//! First the pooled data (every segment together) is fitted (on a subsample of a large pool); then segments
//! run in parallel, each fit serially (one level of parallelism at a time), each starting from
//! the pooled estimate and its curvature (Newton steps where the model has a fused
//! value/gradient/Hessian pass, else L-BFGS), which takes a few iterations where a cold start
//! with several starting points takes dozens. A segment whose fit from there does not converge is
//! refitted from the model's own starting points. A segment that is too small or whose fit
//! fails is reported with the reason; the others are unaffected.

use crate::data::{RfmColumns, RfmNames};
use crate::error::{ClvError, Result};
use crate::fit::{FitOptions, FitResult};
use crate::models::RfmModel;
use crate::parallel::Exec;

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
    let segments: Vec<usize> = (0..n_segments).collect();
    let cold = FitOptions {
        exec: Exec::Serial,
        ..opts.clone()
    };
    // The pooled estimate seeds every segment (when it converges). It is only a starting
    // point, so on large data it comes from every k-th row (about WARM_START_SAMPLE rows, all
    // segments mixed) rather than a fit of every row, which would cost as much as all the
    // segment fits together.
    let pooled_opts = FitOptions {
        exec: exec.clone(),
        ..opts.clone()
    };
    let pooled = if columns.len() > crate::fit::WARM_START_ROWS {
        let stride = columns.len() / crate::fit::WARM_START_SAMPLE;
        let pick = |v: &[f64]| v.iter().step_by(stride).copied().collect::<Vec<f64>>();
        let (x, t_x, age) = (
            pick(columns.frequency),
            pick(columns.recency),
            pick(columns.age),
        );
        let w = columns.weights.map(pick);
        let sample = RfmColumns {
            frequency: &x,
            recency: &t_x,
            age: &age,
            weights: w.as_deref(),
        };
        M::fit(
            &sample.compress_on(exec),
            &FitOptions {
                first_start_only: true,
                ..pooled_opts
            },
        )
    } else {
        M::fit(&columns.compress_on(exec), &pooled_opts)
    };
    let warm = match &pooled {
        Ok(p) if p.converged => Some(FitOptions {
            start: Some(p.params.clone()),
            initial_inverse_hessian: p.inverse_hessian.clone(),
            // Close to each segment's optimum, where Newton steps on models with a fused
            // value/gradient/Hessian pass take half the passes of L-BFGS.
            newton: true,
            ..cold.clone()
        }),
        Err(ClvError::Interrupted) => return Err(ClvError::Interrupted),
        _ => None,
    };
    Ok(exec.map(&segments, |&s| {
        let rows = &order[starts[s]..starts[s + 1]];
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
        let data = segment_columns.compress();
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
                Some(Ok(res)) if res.converged => Ok(res),
                _ => M::fit(&data, &cold),
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
