//! One point of the parameter space prepared for a pass over the customers ([`Point`]), and
//! each customer's parameters there: the shared ones shifted by the customer's covariates.

use super::columns::STAGED_GROUPS;
use super::{CovariateModel, Links};

/// The sign with which each process's linear predictor enters the logs of the parameters it
/// shifts (every link of one process has the same sign: checked by a test).
#[inline]
fn process_signs<M: CovariateModel>() -> [f64; 2] {
    let mut signs = [1.0; 2];
    for &(_, process, sign) in M::LINKS {
        signs[process as usize] = sign;
    }
    signs
}

/// One point of the parameter space, prepared for a pass over the customers: the shared
/// parameters with their logs, and the coefficient of each covariate column of each process
/// (tied columns repeat theirs), so that a linear predictor is a plain dot product.
pub(super) struct Point {
    theta: [f64; 4],
    ln_theta: [f64; 4],
    coefficients: [Vec<f64>; 2],
}

impl Point {
    pub(super) fn new(links: &Links, params: &[f64]) -> Self {
        let theta = [params[0], params[1], params[2], params[3]];
        let gather = |columns: &[usize]| columns.iter().map(|&c| params[4 + c]).collect();
        Point {
            theta,
            ln_theta: theta.map(f64::ln),
            coefficients: [gather(&links.purchase), gather(&links.dropout)],
        }
    }

    /// The parameters of a customer with covariate rows `z` (purchase, dropout) and their
    /// logs: each shifted log is the shared one plus `sign z . g` of its process, so the logs
    /// come without a logarithm and one exponential per process serves all its parameters.
    #[inline]
    pub(super) fn customer<M: CovariateModel>(&self, z: [&[f64]; 2]) -> ([f64; 4], [f64; 4]) {
        let signs = process_signs::<M>();
        let shift: [f64; 2] = std::array::from_fn(|process| {
            let dot: f64 = z[process]
                .iter()
                .zip(&self.coefficients[process])
                .map(|(v, g)| v * g)
                .sum();
            signs[process] * dot
        });
        let factor = shift.map(crate::fastmath::exp);
        let (mut theta, mut ln_theta) = (self.theta, self.ln_theta);
        for &(k, process, _) in M::LINKS {
            theta[k] *= factor[process as usize];
            ln_theta[k] += shift[process as usize];
        }
        (theta, ln_theta)
    }

    /// [`Point::customer`] of 4 customers (lanes) at once as structures of arrays
    /// (`[theta, ln_theta]`, each `[parameter][lane]`). Their covariates are group `group` of a
    /// block staged by [`super::columns::Columns::stage_block`] (the purchase columns, then the
    /// dropout columns, each `STAGED_GROUPS` vectors of 4 lanes): each linear predictor is a
    /// sum over those vectors in the order of [`Point::customer`]'s dot product (the same bits),
    /// and the exponentials go over arrays so that they compile to SIMD.
    #[inline(always)]
    pub(super) fn customers_x4<M: CovariateModel>(
        &self,
        staged: &[[f64; 4]],
        group: usize,
    ) -> [[[f64; 4]; 4]; 2] {
        let signs = process_signs::<M>();
        let mut shift = [[0.0; 4]; 2];
        let mut column = 0;
        for (process, lanes) in shift.iter_mut().enumerate() {
            let mut dot = [0.0; 4];
            for g in &self.coefficients[process] {
                let z = &staged[column * STAGED_GROUPS + group];
                for l in 0..4 {
                    dot[l] += z[l] * g;
                }
                column += 1;
            }
            for l in 0..4 {
                lanes[l] = signs[process] * dot[l];
            }
        }
        let mut factor = [[0.0; 4]; 2];
        for (factors, shifts) in factor.iter_mut().zip(&shift) {
            for (f, s) in factors.iter_mut().zip(shifts) {
                *f = crate::fastmath::exp(*s);
            }
        }
        // Structures of arrays: theta[m][l] is parameter m of lane l.
        let mut theta = self.theta.map(|v| [v; 4]);
        let mut ln_theta = self.ln_theta.map(|v| [v; 4]);
        for &(k, process, _) in M::LINKS {
            let process = process as usize;
            for l in 0..4 {
                theta[k][l] *= factor[process][l];
                ln_theta[k][l] += shift[process][l];
            }
        }
        [theta, ln_theta]
    }
}

/// The parameters of customer `i`: the shared ones (`params[..4]`) shifted by the
/// covariates with the coefficients `params[4..]`.
#[cfg(test)]
pub(super) fn customer_params<M: CovariateModel>(
    rows: &super::CovariateRows<'_>,
    links: &Links,
    params: &[f64],
    i: usize,
) -> [f64; 4] {
    Point::new(links, params)
        .customer::<M>(rows.covariates(i))
        .0
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::models::{BgNbdParams, MbgNbdParams, ParetoNbdParams};

    /// What [`Point::customer`] relies on: no link shifts `r` (whose terms a pass tabulates by
    /// frequency) and each process shifts its parameters with one sign.
    fn check_links<M: CovariateModel>() {
        let signs = process_signs::<M>();
        for &(k, process, sign) in M::LINKS {
            assert!(k != 0 && k < 4, "{}: link to parameter {k}", M::NAME);
            assert_eq!(sign, signs[process as usize], "{}", M::NAME);
            assert_eq!(sign.abs(), 1.0);
        }
    }

    #[test]
    fn links_leave_r_alone_with_one_sign_per_process() {
        check_links::<BgNbdParams>();
        check_links::<MbgNbdParams>();
        check_links::<ParetoNbdParams>();
    }
}
