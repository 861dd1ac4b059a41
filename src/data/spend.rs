//! Spend summaries: each customer's number of repeat transactions and their mean value, the
//! sufficient statistics of the Gamma-Gamma spend model.

use crate::error::{ClvError, Result};

use super::{check_column, check_lengths, check_weights};

/// Borrowed per-customer columns: repeat transactions x, mean transaction value, weights.
#[derive(Debug, Clone, Copy)]
pub struct SpendColumns<'a> {
    pub frequency: &'a [f64],
    pub monetary: &'a [f64],
    pub weights: Option<&'a [f64]>,
}

/// Column names for error messages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpendNames {
    pub frequency: String,
    pub monetary: String,
    pub weights: String,
}

impl Default for SpendNames {
    fn default() -> Self {
        SpendNames {
            frequency: "frequency".into(),
            monetary: "monetary_value".into(),
            weights: "weights".into(),
        }
    }
}

/// Distinct (x, mean value) rows of the customers with x > 0, with weights (counts), in a
/// canonical order; and the weight of the customers left out because x = 0.
#[derive(Debug, Clone, PartialEq)]
pub struct Spend {
    pub frequency: Vec<f64>,
    pub monetary: Vec<f64>,
    pub weights: Vec<f64>,
    /// Total weight of the rows with no repeat transaction (no spend observed).
    pub excluded: f64,
}

impl SpendColumns<'_> {
    /// Check the rules of the spend model: whole x >= 0, and for x > 0 a finite mean value > 0.
    /// The error names the column, the first offending row and the rule.
    pub fn validate(&self, names: &SpendNames) -> Result<()> {
        let n = self.frequency.len();
        if n == 0 {
            return Err(ClvError::invalid_data(
                &names.frequency,
                None,
                None,
                "at least one customer is required (the input is empty)",
            ));
        }
        let mut lengths = vec![(names.monetary.as_str(), self.monetary.len())];
        if let Some(w) = self.weights {
            lengths.push((names.weights.as_str(), w.len()));
        }
        check_lengths(&lengths, n)?;
        check_column(
            &names.frequency,
            self.frequency,
            "must be a whole number of repeat transactions >= 0",
            |x| x.is_finite() && x >= 0.0 && x.fract() == 0.0,
        )?;
        if let Some(row) = (0..n).find(|&i| {
            let m = self.monetary[i];
            self.frequency[i] > 0.0 && !(m.is_finite() && m > 0.0)
        }) {
            return Err(ClvError::invalid_data(
                &names.monetary,
                Some(row),
                Some(self.monetary[row]),
                format!(
                    "must be a finite mean transaction value > 0 where {} > 0",
                    names.frequency
                ),
            ));
        }
        if let Some(w) = self.weights {
            check_weights(&names.weights, w)?;
        }
        Ok(())
    }

    /// Merge identical rows of the customers with repeat transactions (adding weights) into a
    /// canonical order, counting the excluded weight of those without.
    pub fn compress(&self) -> Spend {
        let weight = |i: usize| self.weights.map_or(1.0, |w| w[i]);
        let mut excluded = 0.0;
        let mut rows: Vec<(f64, f64, f64)> = Vec::with_capacity(self.frequency.len());
        for i in 0..self.frequency.len() {
            let w = weight(i);
            if self.frequency[i] == 0.0 {
                excluded += w;
            } else if w > 0.0 {
                rows.push((self.frequency[i], self.monetary[i], w));
            }
        }
        rows.sort_unstable_by(|a, b| a.0.total_cmp(&b.0).then(a.1.total_cmp(&b.1)));
        let mut out = Spend {
            frequency: Vec::new(),
            monetary: Vec::new(),
            weights: Vec::new(),
            excluded,
        };
        for (x, m, w) in rows {
            let n = out.frequency.len();
            if n > 0 && out.frequency[n - 1] == x && out.monetary[n - 1] == m {
                out.weights[n - 1] += w;
            } else {
                out.frequency.push(x);
                out.monetary.push(m);
                out.weights.push(w);
            }
        }
        out
    }
}

impl Spend {
    pub fn len(&self) -> usize {
        self.frequency.len()
    }

    pub fn is_empty(&self) -> bool {
        self.frequency.is_empty()
    }
}
