//! One file per model: likelihood with analytic gradient, starting points, and predictions.

pub mod bgnbd;

pub use bgnbd::BgNbd;
