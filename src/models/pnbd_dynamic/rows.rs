//! Customers whose covariates change over time ([`DynamicRows`], [`OwnedRows`]): each
//! customer's pieces (start and covariates) and the piece in effect at each repeat purchase,
//! their validation, and the warm-start subsample.

use ndarray::{s, Array2, ArrayView2};

use crate::data::{RfmColumns, RfmNames};
use crate::error::{ClvError, Result};
use crate::models::covariates::{self, Links, Process, RowMajor};

/// Customers whose covariates change over time.
#[derive(Debug, Clone, Copy)]
pub struct DynamicRows<'a> {
    /// Repeat purchases, time of the last one, and time observed (customer time).
    pub frequency: &'a [f64],
    pub recency: &'a [f64],
    pub age: &'a [f64],
    /// Customer `i`'s pieces are `piece_offsets[i]..piece_offsets[i + 1]` (length `n + 1`).
    pub piece_offsets: &'a [usize],
    /// Start of each piece in its customer's time: 0 for the customer's first piece, then
    /// increasing. A piece lasts until the next starts; a customer's last piece, indefinitely.
    pub piece_starts: &'a [f64],
    /// Purchase covariates of each piece (`pieces x purchase columns`, standard layout).
    pub purchase: ArrayView2<'a, f64>,
    /// Dropout covariates of each piece (`pieces x dropout columns`, standard layout).
    pub dropout: ArrayView2<'a, f64>,
    /// Customer `i`'s repeat purchases are `purchase_offsets[i]..purchase_offsets[i + 1]` of
    /// `purchase_pieces` (length `n + 1`).
    pub purchase_offsets: &'a [usize],
    /// The piece in effect at each repeat purchase (an index into the pieces).
    pub purchase_pieces: &'a [usize],
}

fn structure(message: String) -> ClvError {
    ClvError::invalid_parameter("dynamic covariates", message)
}

impl DynamicRows<'_> {
    /// Number of customers.
    pub fn len(&self) -> usize {
        self.frequency.len()
    }

    /// Whether there are no customers.
    pub fn is_empty(&self) -> bool {
        self.frequency.is_empty()
    }

    /// The purchase and dropout matrices as [`RowMajor`] slices, for passes over pieces.
    pub(super) fn matrices(&self) -> [RowMajor<'_>; 2] {
        [RowMajor::new(&self.purchase), RowMajor::new(&self.dropout)]
    }

    pub(super) fn pieces(&self, i: usize) -> std::ops::Range<usize> {
        self.piece_offsets[i]..self.piece_offsets[i + 1]
    }

    /// Where piece `k` of customer `i` ends: where the next starts, or never for the last.
    pub(super) fn piece_end(&self, i: usize, k: usize) -> f64 {
        if k + 1 < self.piece_offsets[i + 1] {
            self.piece_starts[k + 1]
        } else {
            f64::INFINITY
        }
    }

    /// Check the summaries (with the RFM rules), the piece structure, and that every
    /// covariate value is finite (naming the column and the piece).
    pub fn validate(&self, links: &Links, names: [&[String]; 2], rfm: &RfmNames) -> Result<()> {
        links.check()?;
        let n = self.len();
        RfmColumns {
            frequency: self.frequency,
            recency: self.recency,
            age: self.age,
            weights: None,
        }
        .validate(rfm)?;
        let pieces = self.piece_starts.len();
        if self.piece_offsets.len() != n + 1 || self.purchase_offsets.len() != n + 1 {
            return Err(structure(format!(
                "{n} customers need {} offsets, got {} piece and {} purchase offsets",
                n + 1,
                self.piece_offsets.len(),
                self.purchase_offsets.len()
            )));
        }
        if self.piece_offsets[0] != 0 || self.piece_offsets[n] != pieces {
            return Err(structure(format!(
                "piece offsets must run from 0 to {pieces}"
            )));
        }
        if self.purchase_offsets[0] != 0 || self.purchase_offsets[n] != self.purchase_pieces.len() {
            return Err(structure(format!(
                "purchase offsets must run from 0 to {}",
                self.purchase_pieces.len()
            )));
        }
        for i in 0..n {
            let range = self.pieces(i);
            if range.is_empty() {
                return Err(structure(format!("customer {i} has no covariate piece")));
            }
            let starts = &self.piece_starts[range.clone()];
            if starts[0] != 0.0
                || starts
                    .windows(2)
                    .any(|w| !(w[1] > w[0] && w[1].is_finite()))
            {
                return Err(structure(format!(
                    "customer {i}: piece starts must begin at 0 and increase"
                )));
            }
            let bought = self.purchase_offsets[i]..self.purchase_offsets[i + 1];
            if bought.len() as f64 != self.frequency[i] {
                return Err(structure(format!(
                    "customer {i}: {} repeat purchases listed for frequency {}",
                    bought.len(),
                    self.frequency[i]
                )));
            }
            if let Some(&k) = self.purchase_pieces[bought]
                .iter()
                .find(|k| !range.contains(k))
            {
                return Err(structure(format!(
                    "customer {i}: a repeat purchase refers to piece {k}, outside its pieces"
                )));
            }
        }
        for (process, values) in [
            (Process::Purchase, self.purchase),
            (Process::Dropout, self.dropout),
        ] {
            let p = links.columns(process).len();
            let column_names = names[process as usize];
            if column_names.len() != p || values.dim() != (pieces, p) {
                return Err(structure(format!(
                    "{pieces} pieces x {p} columns ({} names) need {pieces} x {p} values, got \
                     {} x {}",
                    column_names.len(),
                    values.nrows(),
                    values.ncols()
                )));
            }
            if !values.is_standard_layout() {
                return Err(structure(
                    "covariate matrices must be in standard (row-major) layout".into(),
                ));
            }
            covariates::check_finite(values, column_names)?;
        }
        Ok(())
    }
}

/// [`DynamicRows`] that own their columns (a subsample, or data built in tests).
#[derive(Debug, Clone, Default)]
pub struct OwnedRows {
    pub frequency: Vec<f64>,
    pub recency: Vec<f64>,
    pub age: Vec<f64>,
    pub piece_offsets: Vec<usize>,
    pub piece_starts: Vec<f64>,
    /// `pieces x purchase columns`.
    pub purchase: Array2<f64>,
    /// `pieces x dropout columns`.
    pub dropout: Array2<f64>,
    pub purchase_offsets: Vec<usize>,
    pub purchase_pieces: Vec<usize>,
}

impl OwnedRows {
    /// Borrow as [`DynamicRows`].
    pub fn rows(&self) -> DynamicRows<'_> {
        DynamicRows {
            frequency: &self.frequency,
            recency: &self.recency,
            age: &self.age,
            piece_offsets: &self.piece_offsets,
            piece_starts: &self.piece_starts,
            purchase: self.purchase.view(),
            dropout: self.dropout.view(),
            purchase_offsets: &self.purchase_offsets,
            purchase_pieces: &self.purchase_pieces,
        }
    }
}

impl DynamicRows<'_> {
    /// Every `stride`-th customer with its pieces and purchases (the warm-start subsample).
    pub(super) fn subsample(&self, p: usize, q: usize, stride: usize) -> OwnedRows {
        let mut o = OwnedRows {
            piece_offsets: vec![0],
            purchase_offsets: vec![0],
            ..OwnedRows::default()
        };
        let (mut purchase, mut dropout) = (Vec::new(), Vec::new());
        for i in (0..self.len()).step_by(stride.max(1)) {
            let range = self.pieces(i);
            let base = o.piece_starts.len();
            o.frequency.push(self.frequency[i]);
            o.recency.push(self.recency[i]);
            o.age.push(self.age[i]);
            o.piece_starts
                .extend_from_slice(&self.piece_starts[range.clone()]);
            purchase.extend(self.purchase.slice(s![range.clone(), ..]).iter());
            dropout.extend(self.dropout.slice(s![range.clone(), ..]).iter());
            o.piece_offsets.push(o.piece_starts.len());
            let bought = self.purchase_offsets[i]..self.purchase_offsets[i + 1];
            o.purchase_pieces.extend(
                self.purchase_pieces[bought]
                    .iter()
                    .map(|k| k - range.start + base),
            );
            o.purchase_offsets.push(o.purchase_pieces.len());
        }
        let pieces = o.piece_starts.len();
        o.purchase = Array2::from_shape_vec((pieces, p), purchase).expect("whole pieces");
        o.dropout = Array2::from_shape_vec((pieces, q), dropout).expect("whole pieces");
        o
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fit::Likelihood;
    use crate::models::pnbd_dynamic::tests::{links, simulate};
    use crate::models::pnbd_dynamic::{predict, DynamicLikelihood, Quantity};
    use crate::parallel::Exec;

    #[test]
    fn subsample_keeps_whole_customers() {
        let o = simulate(40, &[0.6, 8.0, 0.8, 10.0, 0.4, -0.3], 13, 20.0);
        let l = links(1, 1);
        let rows = o.rows();
        let exec = Exec::with_jobs(Some(1)).unwrap();
        let point = [0.7, 6.0, 1.1, 12.0, 0.3, -0.5];
        let mut each = vec![0.0; rows.len()];
        let t = vec![0.0; rows.len()];
        predict(
            &rows,
            &l,
            &point,
            Quantity::LogLikelihood,
            &t,
            &exec,
            &mut each,
        )
        .unwrap();
        let sample = rows.subsample(1, 1, 3);
        let names = [vec!["p".to_string()], vec!["d".to_string()]];
        sample
            .rows()
            .validate(&l, [&names[0], &names[1]], &RfmNames::default())
            .unwrap();
        let (value, _) =
            DynamicLikelihood::new(&sample.rows(), &l).loglik_and_gradient(&point, &exec);
        let expected: f64 = each.iter().step_by(3).sum();
        assert!(
            (value - expected).abs() < 1e-9 * expected.abs(),
            "{value} vs {expected}"
        );
    }

    #[test]
    fn validation_names_the_problem() {
        let mut o = simulate(5, &[0.6, 8.0, 0.8, 10.0, 0.4, -0.3], 7, 20.0);
        let l = links(1, 1);
        let names = RfmNames::default();
        let cols = [vec!["p".to_string()], vec!["d".to_string()]];
        assert!(o.rows().validate(&l, [&cols[0], &cols[1]], &names).is_ok());
        o.dropout[[3, 0]] = f64::NAN;
        let err = o
            .rows()
            .validate(&l, [&cols[0], &cols[1]], &names)
            .unwrap_err();
        assert!(err.to_string().contains("`d`, row 3"), "{err}");
        o.dropout[[3, 0]] = 0.0;
        o.piece_starts[1] = 0.0;
        assert!(o.rows().validate(&l, [&cols[0], &cols[1]], &names).is_err());
    }
}
