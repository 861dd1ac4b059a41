//! clvrs: probabilistic customer-lifetime-value models with a parallel core.
//!
//! The core is plain Rust over slices: [`data`] validates and compresses customer summaries,
//! [`models`] holds one file per model (likelihood, gradient, predictions), [`fit`] is the
//! model-independent engine and [`parallel`] runs deterministic chunked loops on the crate's own
//! thread pools. The Python bindings live in `python` behind the `python` feature and are the
//! only code that knows about Python.

// `!(x > 0.0)` is how numerical code says "not positive, or NaN"; index loops read like the
// formulas they implement.
#![allow(clippy::neg_cmp_op_on_partial_ord, clippy::needless_range_loop)]

pub mod bayes;
pub mod chebyshev;
pub mod data;
pub mod dual;
pub mod error;
pub mod fastmath;
pub mod fit;
pub mod hb;
pub mod models;
pub mod parallel;
pub mod quadrature;
pub mod random;
pub mod segments;
pub mod special;

#[cfg(feature = "python")]
mod python;

pub use error::{ClvError, Result};
pub use fit::{fit, FitOptions, FitResult};
