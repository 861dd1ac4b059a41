//! Recency/frequency/age summaries: the sufficient statistics of the continuous-time models.

use crate::error::{ClvError, Result};

use super::{check_column, check_lengths, check_weights};

/// Column names used in error messages (the caller's names, e.g. from a DataFrame).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RfmNames {
    pub frequency: String,
    pub recency: String,
    pub age: String,
    pub weights: String,
}

impl Default for RfmNames {
    fn default() -> Self {
        RfmNames {
            frequency: "frequency".into(),
            recency: "recency".into(),
            age: "T".into(),
            weights: "weights".into(),
        }
    }
}

/// Borrowed per-customer columns: repeat-purchase count x, time of the last repeat purchase
/// t_x, age T (time since the first purchase), and optional row weights.
#[derive(Debug, Clone, Copy)]
pub struct RfmColumns<'a> {
    pub frequency: &'a [f64],
    pub recency: &'a [f64],
    pub age: &'a [f64],
    pub weights: Option<&'a [f64]>,
}

impl<'a> RfmColumns<'a> {
    /// Columns without weights.
    pub fn new(frequency: &'a [f64], recency: &'a [f64], age: &'a [f64]) -> Self {
        RfmColumns {
            frequency,
            recency,
            age,
            weights: None,
        }
    }

    /// Number of rows.
    pub fn len(&self) -> usize {
        self.frequency.len()
    }

    /// True when there are no rows.
    pub fn is_empty(&self) -> bool {
        self.frequency.is_empty()
    }

    /// Check every rule of the continuous-time models; the error names the column, the first
    /// offending row and the rule.
    pub fn validate(&self, names: &RfmNames) -> Result<()> {
        let n = self.frequency.len();
        if n == 0 {
            return Err(ClvError::invalid_data(
                &names.frequency,
                None,
                None,
                "at least one customer is required (the input is empty)",
            ));
        }
        if n > u32::MAX as usize {
            return Err(ClvError::invalid_data(
                &names.frequency,
                None,
                None,
                format!("has {n} rows; at most {} are supported in one call: pass identical rows once with counts as weights, or split the data", u32::MAX),
            ));
        }
        let mut lengths = vec![
            (names.recency.as_str(), self.recency.len()),
            (names.age.as_str(), self.age.len()),
        ];
        if let Some(w) = self.weights {
            lengths.push((names.weights.as_str(), w.len()));
        }
        check_lengths(&lengths, n)?;
        check_column(
            &names.frequency,
            self.frequency,
            "must be a whole number of repeat purchases >= 0",
            |x| x.is_finite() && x >= 0.0 && x.fract() == 0.0,
        )?;
        check_column(
            &names.recency,
            self.recency,
            "must be a finite number >= 0",
            |t| t.is_finite() && t >= 0.0,
        )?;
        check_column(&names.age, self.age, "must be a finite number >= 0", |t| {
            t.is_finite() && t >= 0.0
        })?;
        if let Some(row) = (0..n).find(|&i| self.recency[i] > self.age[i]) {
            return Err(ClvError::invalid_data(
                &names.recency,
                Some(row),
                Some(self.recency[row]),
                format!(
                    "must not exceed {} (the customer's age, {}): the last purchase cannot come after the end of observation",
                    names.age, self.age[row]
                ),
            ));
        }
        if let Some(row) = (0..n).find(|&i| self.frequency[i] == 0.0 && self.recency[i] != 0.0) {
            return Err(ClvError::invalid_data(
                &names.recency,
                Some(row),
                Some(self.recency[row]),
                format!(
                    "must be 0 when {} is 0 (no repeat purchase, so no time of last repeat purchase)",
                    names.frequency
                ),
            ));
        }
        if let Some(w) = self.weights {
            check_weights(&names.weights, w)?;
        }
        Ok(())
    }

    /// Merge identical (x, t_x, T) rows, adding their weights, and sort them into a canonical
    /// order. Fits run on the result, so compressing the input beforehand (with counts as weights)
    /// changes nothing, bit for bit. Rows with weight 0 are dropped.
    pub fn compress(&self) -> Rfm {
        self.compress_on(&crate::parallel::Exec::Serial)
    }

    /// [`RfmColumns::compress`], sorting in parallel on `exec` for large inputs.
    ///
    /// Memory: (64-bit sort prefix, 32-bit row index) pairs are sorted and the rows are gathered
    /// in that order, so the extra memory is 16 bytes per input row (freed before returning) plus
    /// 32 bytes per input row for the gathered columns, trimmed to the distinct rows.
    pub fn compress_on(&self, exec: &crate::parallel::Exec) -> Rfm {
        let n = self.len();
        // +0.0 turns -0.0 into 0.0 so that equal values share one bit pattern; non-negative
        // finite f64 bit patterns sort like the numbers themselves.
        let key = |i: u32| {
            let i = i as usize;
            (
                (self.frequency[i] + 0.0).to_bits(),
                (self.recency[i] + 0.0).to_bits(),
                (self.age[i] + 0.0).to_bits(),
            )
        };
        // A 64-bit prefix of the key that decides almost every comparison without reading the
        // columns again: the frequency (saturated at 2^20 - 1) in the top 20 bits, then the top
        // 44 bits of the recency, or of the age when the frequency is 0 (the recency is then 0 by
        // validation). Ties in the prefix fall back to the full key.
        let prefix = |i: u32| {
            let i = i as usize;
            let (x, t_x, age) = (self.frequency[i], self.recency[i], self.age[i]);
            let second = if x == 0.0 { age } else { t_x };
            ((x.min(1_048_575.0) as u64) << 44) | ((second + 0.0).to_bits() >> 20)
        };
        let weight = |i: u32| self.weights.map_or(1.0, |w| w[i as usize]);
        // Row indices are u32 (`validate` refuses more rows than that); zero weights are dropped.
        let mut order: Vec<(u64, u32)> = (0..n as u32)
            .filter(|&i| weight(i) != 0.0)
            .map(|i| (prefix(i), i))
            .collect();
        // Ties broken by the full key, then the row index: a total order, so merged weights add
        // up in the same order whatever the thread count.
        exec.sort_unstable_by(&mut order, |&(pa, a), &(pb, b)| {
            pa.cmp(&pb).then_with(|| (key(a), a).cmp(&(key(b), b)))
        });
        // Gather the rows in sorted order (random reads, in parallel), then merge runs of
        // identical rows in place with one sequential pass.
        let gather = |column: &[f64]| {
            let mut sorted = vec![0.0; order.len()];
            exec.fill_blocks(&mut sorted, |start, block| {
                for (slot, &(_, i)) in block.iter_mut().zip(&order[start..]) {
                    *slot = column[i as usize] + 0.0;
                }
            });
            sorted
        };
        let mut out = Rfm {
            frequency: gather(self.frequency),
            recency: gather(self.recency),
            age: gather(self.age),
            weights: match self.weights {
                Some(w) => gather(w),
                None => vec![1.0; order.len()],
            },
        };
        drop(order);
        out.merge_sorted_duplicates();
        out
    }
}

/// Owned, compressed (x, t_x, T, weight) rows in canonical order.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Rfm {
    pub frequency: Vec<f64>,
    pub recency: Vec<f64>,
    pub age: Vec<f64>,
    pub weights: Vec<f64>,
}

impl Rfm {
    /// Merge adjacent identical rows of sorted data in place, adding their weights in order.
    fn merge_sorted_duplicates(&mut self) {
        let mut kept = 0;
        for i in 0..self.len() {
            let same = kept > 0
                && self.frequency[i] == self.frequency[kept - 1]
                && self.recency[i] == self.recency[kept - 1]
                && self.age[i] == self.age[kept - 1];
            if same {
                self.weights[kept - 1] += self.weights[i];
            } else {
                self.frequency[kept] = self.frequency[i];
                self.recency[kept] = self.recency[i];
                self.age[kept] = self.age[i];
                self.weights[kept] = self.weights[i];
                kept += 1;
            }
        }
        for column in [
            &mut self.frequency,
            &mut self.recency,
            &mut self.age,
            &mut self.weights,
        ] {
            column.truncate(kept);
            column.shrink_to_fit();
        }
    }

    /// Number of distinct rows.
    pub fn len(&self) -> usize {
        self.frequency.len()
    }

    /// True when there are no rows.
    pub fn is_empty(&self) -> bool {
        self.frequency.is_empty()
    }

    /// Sum of the weights (the number of customers when weights are counts).
    pub fn total_weight(&self) -> f64 {
        self.weights.iter().sum()
    }

    /// Every `stride`-th row (weights kept): a stratified subsample of the canonical order,
    /// which is sorted by frequency, then recency, then age.
    pub fn subsample(&self, stride: usize) -> Rfm {
        let stride = stride.max(1);
        let pick = |v: &Vec<f64>| v.iter().step_by(stride).copied().collect();
        Rfm {
            frequency: pick(&self.frequency),
            recency: pick(&self.recency),
            age: pick(&self.age),
            weights: pick(&self.weights),
        }
    }

    /// Borrow as columns.
    pub fn columns(&self) -> RfmColumns<'_> {
        RfmColumns {
            frequency: &self.frequency,
            recency: &self.recency,
            age: &self.age,
            weights: Some(&self.weights),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validation_names_column_row_and_rule() {
        let x = [0.0, 1.0, 2.5];
        let t = [0.0, 1.0, 2.0];
        let age = [3.0, 3.0, 3.0];
        let err = RfmColumns::new(&x, &t, &age)
            .validate(&RfmNames::default())
            .unwrap_err();
        let text = err.to_string();
        assert!(
            text.contains("frequency") && text.contains("row 2") && text.contains("whole"),
            "{text}"
        );

        let x = [0.0, 1.0];
        let t = [0.0, 4.0];
        let age = [3.0, 3.0];
        let text = RfmColumns::new(&x, &t, &age)
            .validate(&RfmNames::default())
            .unwrap_err()
            .to_string();
        assert!(
            text.contains("recency") && text.contains("row 1") && text.contains("exceed"),
            "{text}"
        );

        let err = RfmColumns::new(&[], &[], &[])
            .validate(&RfmNames::default())
            .unwrap_err();
        assert!(err.to_string().contains("empty"));
    }

    #[test]
    fn compression_merges_identical_rows_in_canonical_order() {
        let x = [1.0, 0.0, 1.0, 1.0];
        let t = [2.0, 0.0, 2.0, 1.0];
        let age = [5.0, 5.0, 5.0, 5.0];
        let rfm = RfmColumns::new(&x, &t, &age).compress();
        assert_eq!(rfm.frequency, vec![0.0, 1.0, 1.0]);
        assert_eq!(rfm.recency, vec![0.0, 1.0, 2.0]);
        assert_eq!(rfm.weights, vec![1.0, 1.0, 2.0]);
        // Compressing compressed data changes nothing.
        assert_eq!(rfm.columns().compress(), rfm);
    }
}
