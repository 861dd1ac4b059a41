//! The rows of the BG/NBD family under covariates: which parameters each process shifts, and
//! the per-customer and per-group derivatives, from [`crate::models::bgnbd`]. One
//! implementation serves BG/NBD and MBG/NBD ([`BgFamily`]).

use super::{base_derivatives, CovariateModel, Process};
use crate::data::Rfm;
use crate::models::bgnbd::{self, BgFamily, BgNbd, LaneDerivatives};
use crate::models::RowDerivatives;
use crate::parallel::Exec;
use crate::special::RisingTerms;

impl<M: BgFamily> CovariateModel for M {
    const LINKS: &'static [(usize, Process, f64)] = &[
        (1, Process::Purchase, -1.0),
        (2, Process::Dropout, 1.0),
        (3, Process::Dropout, 1.0),
    ];

    #[inline(always)]
    fn row_derivatives_x4<const SECOND: bool>(
        params: &[[f64; 4]; 4],
        ln_params: &[[f64; 4]; 4],
        shape: &[RisingTerms; 4],
        x: [f64; 4],
        t_x: [f64; 4],
        age: [f64; 4],
    ) -> LaneDerivatives {
        bgnbd::row_derivatives_x4::<SECOND>(M::MODIFIED, params, ln_params, shape, x, t_x, age)
    }

    fn row_derivatives<const SECOND: bool>(
        params: &[f64; 4],
        ln_params: &[f64; 4],
        shape: RisingTerms,
        x: f64,
        t_x: f64,
        age: f64,
    ) -> RowDerivatives {
        let p = M::bg_params(params[0], params[1], params[2], params[3]);
        bgnbd::row_derivatives::<SECOND>(&p, ln_params, shape, x, t_x, age)
    }

    fn group_derivatives<const SECOND: bool>(
        params: &[f64; 4],
        data: &Rfm,
        exec: &Exec,
    ) -> RowDerivatives {
        base_derivatives::<_, SECOND>(&BgNbd::with_variant(data, M::MODIFIED), params, exec)
    }
}
