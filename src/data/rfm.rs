//! Recency/frequency/age summaries: the sufficient statistics of the continuous-time models.

use crate::error::{ClvError, Result};

use super::{check_lengths, check_weights};

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
        self.validate_on(names, &crate::parallel::Exec::Serial)
    }

    /// [`RfmColumns::validate`], scanning the rows in parallel on `exec`.
    pub fn validate_on(&self, names: &RfmNames, exec: &crate::parallel::Exec) -> Result<()> {
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
        // One pass (parallel on `exec`) finds the first row breaking each rule; the rules are
        // then reported in this order.
        const NONE: usize = usize::MAX;
        let first = exec.chunked_reduce(
            n,
            || [NONE; 5],
            |range, first: &mut [usize; 5]| {
                for i in range {
                    let (x, t_x, age) = (self.frequency[i], self.recency[i], self.age[i]);
                    // `as u32` truncates (NaN gives 0), so this is "a whole number in range".
                    let broken = [
                        !(x >= 0.0 && x <= u32::MAX as f64 && f64::from(x as u32) == x),
                        !(t_x.is_finite() && t_x >= 0.0),
                        !(age.is_finite() && age >= 0.0),
                        t_x > age,
                        x == 0.0 && t_x != 0.0,
                    ];
                    for (slot, broken) in first.iter_mut().zip(broken) {
                        if broken && *slot == NONE {
                            *slot = i;
                        }
                    }
                }
            },
            |total, part| {
                for (t, p) in total.iter_mut().zip(part) {
                    *t = (*t).min(p);
                }
            },
        );
        let age_rule = format!(
            "must not exceed {} (the customer's age, {{age}}): the last purchase cannot come after the end of observation",
            names.age
        );
        let checks: [(&str, &[f64], String); 5] = [
            (&names.frequency, self.frequency, "must be a whole number of repeat purchases >= 0 (and below 2^32)".into()),
            (&names.recency, self.recency, "must be a finite number >= 0".into()),
            (&names.age, self.age, "must be a finite number >= 0".into()),
            (&names.recency, self.recency, age_rule),
            (
                &names.recency,
                self.recency,
                format!(
                    "must be 0 when {} is 0 (no repeat purchase, so no time of last repeat purchase)",
                    names.frequency
                ),
            ),
        ];
        for ((column, values, rule), row) in checks.into_iter().zip(first) {
            if row != NONE {
                let rule = rule.replace("{age}", &self.age[row].to_string());
                return Err(ClvError::invalid_data(
                    column,
                    Some(row),
                    Some(values[row]),
                    rule,
                ));
            }
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
    /// Sorts 24-byte (frequency, row, recency, age) records whose order needs no lookups, so
    /// heavily duplicated data (ages in whole days, say) sorts as fast as distinct rows; the
    /// output columns are then written in one sequential pass. Extra memory: 24 bytes per input
    /// row while sorting, plus the compressed rows.
    pub fn compress_on(&self, exec: &crate::parallel::Exec) -> Rfm {
        let n = self.len();
        let weight = |i: u32| self.weights.map_or(1.0, |w| w[i as usize]);
        // +0.0 turns -0.0 into 0.0 so that equal values share one bit pattern; non-negative
        // finite f64 bit patterns sort like the numbers themselves. Frequencies are whole numbers
        // below 2^32 and row indices fit u32 (both checked by `validate`); zero weights are dropped.
        let mut records: Vec<(u32, u32, u64, u64)> = (0..n as u32)
            .filter(|&i| weight(i) != 0.0)
            .map(|i| {
                let r = i as usize;
                (
                    self.frequency[r] as u32,
                    i,
                    (self.recency[r] + 0.0).to_bits(),
                    (self.age[r] + 0.0).to_bits(),
                )
            })
            .collect();
        // Ordered by (frequency, recency, age, row): a total order, so merged weights add up in
        // the same order whatever the thread count.
        exec.sort_unstable_by(&mut records, |a, b| {
            (a.0, a.2, a.3, a.1).cmp(&(b.0, b.2, b.3, b.1))
        });
        let mut out = Rfm {
            // Capacity for every row: the pages beyond the distinct rows are never touched.
            frequency: Vec::with_capacity(records.len()),
            recency: Vec::with_capacity(records.len()),
            age: Vec::with_capacity(records.len()),
            weights: Vec::with_capacity(records.len()),
        };
        let mut last = None;
        for &(x, i, t_x, age) in &records {
            let w = weight(i);
            if last == Some((x, t_x, age)) {
                *out.weights.last_mut().expect("a row was pushed") += w;
            } else {
                out.frequency.push(f64::from(x));
                out.recency.push(f64::from_bits(t_x));
                out.age.push(f64::from_bits(age));
                out.weights.push(w);
                last = Some((x, t_x, age));
            }
        }
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
