//! Input validation and compression of sufficient statistics.

pub mod regularity;
mod rfm;
mod spend;
pub mod text;
pub mod transactions;

pub use rfm::{Counts, Rfm, RfmColumns, RfmCounts, RfmNames};
pub use spend::{Spend, SpendColumns, SpendNames};

use crate::error::{ClvError, Result};

/// Check that every column has `expected` rows; names the first column that does not.
pub fn check_lengths(columns: &[(&str, usize)], expected: usize) -> Result<()> {
    for &(name, len) in columns {
        if len != expected {
            return Err(ClvError::invalid_data(
                name,
                None,
                None,
                format!("has {len} rows but the other columns have {expected}; all columns must have the same length"),
            ));
        }
    }
    Ok(())
}

/// The first row (and its value) where `values` breaks `ok`, as an error naming `column`.
pub(crate) fn check_column(
    column: &str,
    values: &[f64],
    rule: &str,
    ok: impl Fn(f64) -> bool,
) -> Result<()> {
    match values.iter().position(|&v| !ok(v)) {
        Some(row) => Err(ClvError::invalid_data(
            column,
            Some(row),
            Some(values[row]),
            rule,
        )),
        None => Ok(()),
    }
}

/// Row weights: finite and non-negative, with a positive total.
pub(crate) fn check_weights(column: &str, weights: &[f64]) -> Result<()> {
    check_column(column, weights, "must be a finite number >= 0", |w| {
        w.is_finite() && w >= 0.0
    })?;
    if weights.iter().sum::<f64>() <= 0.0 {
        return Err(ClvError::invalid_data(
            column,
            None,
            None,
            "must have a positive total (every weight is 0)",
        ));
    }
    Ok(())
}

/// Horizons and counts: finite and `>= 0`, and whole numbers when `whole` is set.
pub fn check_non_negative(column: &str, values: &[f64], whole: bool) -> Result<()> {
    if whole {
        check_column(column, values, "must be a whole number >= 0", |v| {
            v.is_finite() && v >= 0.0 && v.fract() == 0.0
        })
    } else {
        check_column(column, values, "must be a finite number >= 0", |v| {
            v.is_finite() && v >= 0.0
        })
    }
}
