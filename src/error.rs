//! The crate's error type. Every fallible core function returns `Result<_, ClvError>`.

use std::fmt;

/// What went wrong, with enough context for the caller to fix it.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum ClvError {
    /// Input data broke a rule: names the column, the first offending row and the rule.
    #[error("{0}")]
    InvalidData(InvalidData),
    /// A parameter value or option is outside its domain.
    #[error("invalid parameter `{name}`: {message}")]
    InvalidParameter { name: String, message: String },
    /// The optimiser failed in a way that left no usable estimate.
    #[error("the fit did not converge: {reason}")]
    Convergence { reason: String },
    /// The caller asked to stop (Ctrl-C from Python).
    #[error("interrupted")]
    Interrupted,
    /// A bug: a situation the code believes impossible. Reported rather than panicking.
    #[error("internal error: {0}")]
    Internal(String),
}

/// Details of an input-data violation.
#[derive(Debug, Clone, PartialEq)]
pub struct InvalidData {
    /// The column (as the caller named it) that holds the offending value.
    pub column: String,
    /// The first offending row (0-based position in the input), if one row is to blame.
    pub row: Option<usize>,
    /// The offending value, if one value is to blame.
    pub value: Option<f64>,
    /// The rule that was broken, phrased as the requirement ("must be finite").
    pub rule: String,
}

impl fmt::Display for InvalidData {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "column `{}`", self.column)?;
        if let Some(row) = self.row {
            write!(f, ", row {row}")?;
        }
        if let Some(value) = self.value {
            write!(f, " (value {value})")?;
        }
        write!(f, ": {}", self.rule)
    }
}

impl ClvError {
    /// Shorthand for an [`ClvError::InvalidData`] naming a column, a row and a rule.
    pub fn invalid_data(
        column: impl Into<String>,
        row: Option<usize>,
        value: Option<f64>,
        rule: impl Into<String>,
    ) -> Self {
        ClvError::InvalidData(InvalidData {
            column: column.into(),
            row,
            value,
            rule: rule.into(),
        })
    }

    /// Shorthand for an [`ClvError::InvalidParameter`].
    pub fn invalid_parameter(name: impl Into<String>, message: impl Into<String>) -> Self {
        ClvError::InvalidParameter {
            name: name.into(),
            message: message.into(),
        }
    }
}

/// The crate's result type.
pub type Result<T> = std::result::Result<T, ClvError>;
