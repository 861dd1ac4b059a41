//! Customer summaries with covariates ([`CovariateRows`]): the summary columns and a
//! covariate matrix per process, their validation, and the warm-start subsample.

use std::borrow::Cow;

use ndarray::{s, ArrayBase, ArrayView2, CowArray, Data, Ix2};

use super::{check_finite, Links, Process};
use crate::data::RfmColumns;
use crate::error::{ClvError, Result};

/// Customer summaries with covariates: the summary columns and, per process, a matrix of
/// covariate values (one row per customer), in standard (row-major) layout so that a
/// customer's row is one slice.
#[derive(Debug, Clone)]
pub struct CovariateRows<'a> {
    pub frequency: Cow<'a, [f64]>,
    pub recency: Cow<'a, [f64]>,
    pub age: Cow<'a, [f64]>,
    pub weights: Option<Cow<'a, [f64]>>,
    /// `len() x links.purchase.len()`, standard layout.
    pub purchase: CowArray<'a, f64, Ix2>,
    /// `len() x links.dropout.len()`, standard layout.
    pub dropout: CowArray<'a, f64, Ix2>,
}

impl<'a> CovariateRows<'a> {
    /// Borrow summary columns and covariate matrices (zero-copy when a matrix is in standard
    /// layout, as numpy's C-contiguous arrays are; copied into it otherwise).
    pub fn new(
        columns: &RfmColumns<'a>,
        purchase: ArrayView2<'a, f64>,
        dropout: ArrayView2<'a, f64>,
    ) -> Self {
        CovariateRows {
            frequency: Cow::Borrowed(columns.frequency),
            recency: Cow::Borrowed(columns.recency),
            age: Cow::Borrowed(columns.age),
            weights: columns.weights.map(Cow::Borrowed),
            purchase: standard_layout(purchase),
            dropout: standard_layout(dropout),
        }
    }

    /// Number of customers.
    pub fn len(&self) -> usize {
        self.frequency.len()
    }

    /// Whether there are no customers.
    pub fn is_empty(&self) -> bool {
        self.frequency.is_empty()
    }

    /// The summary columns.
    pub fn columns(&self) -> RfmColumns<'_> {
        RfmColumns {
            frequency: &self.frequency,
            recency: &self.recency,
            age: &self.age,
            weights: self.weights.as_deref(),
        }
    }

    pub(super) fn weight(&self, i: usize) -> f64 {
        self.weights.as_ref().map_or(1.0, |w| w[i])
    }

    /// Check the matrices' shapes and that every covariate value is finite (naming the
    /// covariate column and the first offending row); `names` name the columns of each process.
    pub fn validate(&self, links: &Links, names: [&[String]; 2]) -> Result<()> {
        links.check()?;
        for (process, values) in [
            (Process::Purchase, &self.purchase),
            (Process::Dropout, &self.dropout),
        ] {
            let p = links.columns(process).len();
            let column_names = names[process as usize];
            if column_names.len() != p {
                return Err(ClvError::invalid_parameter(
                    "covariates",
                    format!("{p} columns but {} names", column_names.len()),
                ));
            }
            if values.dim() != (self.len(), p) {
                return Err(ClvError::invalid_data(
                    "covariates",
                    None,
                    None,
                    format!(
                        "expected {} x {p} covariate values, got {} x {}",
                        self.len(),
                        values.nrows(),
                        values.ncols()
                    ),
                ));
            }
            if process == Process::Dropout && self.dropout_is_purchase() {
                // (The same values, checked above.)
                continue;
            }
            check_finite(values.view(), column_names)?;
        }
        Ok(())
    }

    /// Whether the dropout matrix is the purchase matrix itself (the Python layer passes one
    /// array when both processes take the same columns): each customer's dropout values then
    /// follow from their purchase values.
    pub(super) fn dropout_is_purchase(&self) -> bool {
        self.purchase.as_ptr() == self.dropout.as_ptr() && self.purchase.dim() == self.dropout.dim()
    }

    /// The covariate values that tell customer `i` from the others: the purchase row alone
    /// when `dropout_is_purchase` (the answer of [`Self::dropout_is_purchase`]), else both
    /// rows.
    #[inline]
    pub(super) fn key_values(&self, i: usize, dropout_is_purchase: bool) -> [&[f64]; 2] {
        if dropout_is_purchase {
            [row_slice(&self.purchase, i), &[]]
        } else {
            self.covariates(i)
        }
    }

    /// Row `i` of the purchase and dropout matrices.
    #[inline]
    pub(super) fn covariates(&self, i: usize) -> [&[f64]; 2] {
        [row_slice(&self.purchase, i), row_slice(&self.dropout, i)]
    }

    /// The purchase and dropout matrices as [`RowMajor`] slices, for passes over every row.
    pub(super) fn matrices(&self) -> [RowMajor<'_>; 2] {
        [RowMajor::new(&self.purchase), RowMajor::new(&self.dropout)]
    }

    /// Every `stride`-th row (the warm-start subsample).
    pub(super) fn subsample(&self, stride: usize) -> CovariateRows<'static> {
        let pick = |v: &[f64]| -> Cow<'static, [f64]> {
            Cow::Owned(v.iter().step_by(stride).copied().collect())
        };
        let pick_rows = |m: &CowArray<'_, f64, Ix2>| -> CowArray<'static, f64, Ix2> {
            let rows = m.slice(s![..;stride as isize, ..]);
            CowArray::from(rows.as_standard_layout().into_owned())
        };
        CovariateRows {
            frequency: pick(&self.frequency),
            recency: pick(&self.recency),
            age: pick(&self.age),
            weights: self.weights.as_deref().map(pick),
            purchase: pick_rows(&self.purchase),
            dropout: pick_rows(&self.dropout),
        }
    }
}

/// A matrix in standard layout: the view itself when it is (zero-copy), a copy otherwise.
pub fn standard_layout(m: ArrayView2<'_, f64>) -> CowArray<'_, f64, Ix2> {
    if m.is_standard_layout() {
        CowArray::from(m)
    } else {
        CowArray::from(m.as_standard_layout().into_owned())
    }
}

/// Row `i` of a matrix in standard layout, as a slice.
#[inline]
pub fn row_slice<S: Data<Elem = f64>>(m: &ArrayBase<S, Ix2>, i: usize) -> &[f64] {
    m.row(i)
        .to_slice()
        .expect("covariate matrices are kept in standard layout")
}

/// A matrix in standard layout as its one slice of values and its row length.
///
/// Hot loops take rows through this rather than [`row_slice`]: ndarray's `row(i).to_slice()`
/// builds a view and checks its layout on every call, which cost a per-customer covariate
/// fit 15-20% against plain slicing (quiet A/B in BENCHMARKS.md, issue 23).
#[derive(Debug, Clone, Copy)]
pub struct RowMajor<'m> {
    values: &'m [f64],
    columns: usize,
}

impl<'m> RowMajor<'m> {
    /// The values of `m`, which must be in standard layout.
    pub fn new<S: Data<Elem = f64>>(m: &'m ArrayBase<S, Ix2>) -> Self {
        RowMajor {
            values: m
                .as_slice()
                .expect("covariate matrices are kept in standard layout"),
            columns: m.ncols(),
        }
    }

    /// Row `i`.
    #[inline(always)]
    pub fn row(&self, i: usize) -> &'m [f64] {
        &self.values[i * self.columns..(i + 1) * self.columns]
    }

    /// The value in row `i`, column `k` (`k` below the row length).
    #[inline(always)]
    pub fn get(&self, i: usize, k: usize) -> f64 {
        self.values[i * self.columns + k]
    }

    /// Whether `other` is this very matrix (the same values in memory, not a copy).
    pub fn same(&self, other: &RowMajor<'_>) -> bool {
        std::ptr::eq(self.values, other.values) && self.columns == other.columns
    }
}

/// A row-major `values.len() / columns x columns` view of `values` (tests' matrices).
#[cfg(test)]
pub(crate) fn matrix(values: &[f64], columns: usize) -> ArrayView2<'_, f64> {
    ArrayView2::from_shape((values.len() / columns.max(1), columns), values).expect("whole rows")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tied_coefficients_and_bad_values_are_handled() {
        let links = Links {
            purchase: vec![0],
            dropout: vec![0],
            names: vec!["flag".into()],
        };
        let (x, t_x, age) = (vec![1.0, 0.0], vec![2.0, 0.0], vec![5.0, 5.0]);
        let columns = RfmColumns::new(&x, &t_x, &age);
        let z = [1.0, f64::NAN];
        let rows = CovariateRows::new(&columns, matrix(&z, 1), matrix(&z, 1));
        let names = vec!["flag".to_string()];
        let err = rows.validate(&links, [&names, &names]).unwrap_err();
        assert!(err.to_string().contains("flag"), "{err}");
        let unused = Links {
            purchase: vec![0],
            dropout: vec![],
            names: vec!["a".into(), "b".into()],
        };
        assert!(unused.check().is_err());
    }
}
