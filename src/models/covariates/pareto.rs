//! The rows of the Pareto/NBD under covariates: which parameters each process shifts, and
//! the per-customer and per-group derivatives, from [`crate::models::pnbd`].

use super::{base_derivatives, CovariateModel, Process};
use crate::data::Rfm;
use crate::models::pnbd::{self, ParetoNbd};
use crate::models::{ParetoNbdParams, RowDerivatives};
use crate::parallel::Exec;
use crate::special::RisingTerms;

impl CovariateModel for ParetoNbdParams {
    const LINKS: &'static [(usize, Process, f64)] =
        &[(1, Process::Purchase, -1.0), (3, Process::Dropout, -1.0)];

    fn row_derivatives<const SECOND: bool>(
        params: &[f64; 4],
        _ln_params: &[f64; 4],
        shape: RisingTerms,
        x: f64,
        t_x: f64,
        age: f64,
    ) -> RowDerivatives {
        pnbd::row_derivatives::<SECOND>(params, shape, x, t_x, age)
    }

    fn group_derivatives<const SECOND: bool>(
        params: &[f64; 4],
        data: &Rfm,
        exec: &Exec,
    ) -> RowDerivatives {
        base_derivatives::<_, SECOND>(&ParetoNbd::new(data), params, exec)
    }
}
