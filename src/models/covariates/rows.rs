//! Customer summaries with covariates ([`CovariateRows`]): the summary columns and a
//! covariate matrix per process, their validation, and the warm-start subsample.

use std::borrow::Cow;

use super::{check_finite, Links, Process};
use crate::data::RfmColumns;
use crate::error::{ClvError, Result};

/// Customer summaries with covariates: the summary columns and, per process, a row-major
/// matrix of covariate values (one row per customer).
#[derive(Debug, Clone)]
pub struct CovariateRows<'a> {
    pub frequency: Cow<'a, [f64]>,
    pub recency: Cow<'a, [f64]>,
    pub age: Cow<'a, [f64]>,
    pub weights: Option<Cow<'a, [f64]>>,
    /// `len() x links.purchase.len()` values, row-major.
    pub purchase: Cow<'a, [f64]>,
    /// `len() x links.dropout.len()` values, row-major.
    pub dropout: Cow<'a, [f64]>,
}

impl<'a> CovariateRows<'a> {
    /// Borrow summary columns and covariate matrices.
    pub fn new(columns: &RfmColumns<'a>, purchase: &'a [f64], dropout: &'a [f64]) -> Self {
        CovariateRows {
            frequency: Cow::Borrowed(columns.frequency),
            recency: Cow::Borrowed(columns.recency),
            age: Cow::Borrowed(columns.age),
            weights: columns.weights.map(Cow::Borrowed),
            purchase: Cow::Borrowed(purchase),
            dropout: Cow::Borrowed(dropout),
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
            if values.len() != self.len() * p {
                return Err(ClvError::invalid_data(
                    "covariates",
                    None,
                    None,
                    format!(
                        "expected {} x {p} covariate values, got {}",
                        self.len(),
                        values.len()
                    ),
                ));
            }
            check_finite(values, column_names)?;
        }
        Ok(())
    }

    /// Row `i` of the purchase and dropout matrices.
    #[inline]
    pub(super) fn covariates(&self, links: &Links, i: usize) -> [&[f64]; 2] {
        let (p, q) = (links.purchase.len(), links.dropout.len());
        [
            &self.purchase[i * p..(i + 1) * p],
            &self.dropout[i * q..(i + 1) * q],
        ]
    }

    /// Every `stride`-th row (the warm-start subsample).
    pub(super) fn subsample(&self, links: &Links, stride: usize) -> CovariateRows<'static> {
        let pick = |v: &[f64]| -> Cow<'static, [f64]> {
            Cow::Owned(v.iter().step_by(stride).copied().collect())
        };
        let pick_rows = |v: &[f64], p: usize| -> Cow<'static, [f64]> {
            if p == 0 {
                return Cow::Owned(Vec::new());
            }
            Cow::Owned(
                v.chunks_exact(p)
                    .step_by(stride)
                    .flatten()
                    .copied()
                    .collect(),
            )
        };
        CovariateRows {
            frequency: pick(&self.frequency),
            recency: pick(&self.recency),
            age: pick(&self.age),
            weights: self.weights.as_deref().map(pick),
            purchase: pick_rows(&self.purchase, links.purchase.len()),
            dropout: pick_rows(&self.dropout, links.dropout.len()),
        }
    }
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
        let rows = CovariateRows::new(&columns, &z, &z);
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
