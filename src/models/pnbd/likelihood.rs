//! The Pareto/NBD likelihood over compressed customer rows for the fitting engine
//! ([`ParetoNbd`]): weighted sums of each row's log-likelihood, gradient and Hessian.

use super::rows::{gamma_terms, RowPass};
use super::PARAMS;
use crate::data::Rfm;
use crate::fit::{FusedPass, Likelihood, ParamSpec};
use crate::parallel::Exec;
use ndarray::Array2;

/// The Pareto/NBD likelihood over compressed customer rows, for the fitting engine.
pub struct ParetoNbd<'a> {
    data: &'a Rfm,
}

impl<'a> ParetoNbd<'a> {
    pub fn new(data: &'a Rfm) -> Self {
        ParetoNbd { data }
    }
}

impl ParetoNbd<'_> {
    /// Weighted sums over the rows of [`RowPass::row`]: the log-likelihood, the gradient and, when
    /// `SECOND`, the Hessian's upper triangle (in [`UPPER`] order).
    /// With `coarse`, the series to the coarse pass's tolerance ([`RowPass::new`]).
    fn sum_rows<const SECOND: bool>(&self, params: &[f64], coarse: bool, exec: &Exec) -> Vec<f64> {
        let pass = RowPass::new(std::array::from_fn(|i| params[i]), coarse);
        let d = self.data;
        let width = if SECOND { 5 + UPPER.len() } else { 5 };
        exec.chunked_sum(d.len(), width, |range, acc| {
            // Rows are sorted by frequency: the gamma-function terms change rarely.
            let mut cached = (f64::NAN, (0.0, 0.0, 0.0));
            for i in range {
                let (x, t_x, age) = (d.frequency[i], d.recency[i], d.age[i]);
                if x != cached.0 {
                    cached = (x, gamma_terms::<SECOND>(pass.r(), x));
                }
                let (value, gradient, hessian) = pass.row::<SECOND>(cached.1, x, t_x, age);
                let w = d.weight(i);
                acc[0] += w * value;
                for j in 0..4 {
                    acc[1 + j] += w * gradient[j];
                }
                if SECOND {
                    for (slot, &(a, b)) in acc[5..].iter_mut().zip(&UPPER) {
                        *slot += w * hessian[a][b];
                    }
                }
            }
        })
    }
}

impl ParetoNbd<'_> {
    /// The fused pass (coarse or exact) as the engine takes it.
    fn fused(&self, params: &[f64], coarse: bool, exec: &Exec) -> FusedPass {
        let acc = self.sum_rows::<true>(params, coarse, exec);
        let mut hessian = Array2::zeros((4, 4));
        for (value, &(a, b)) in acc[5..].iter().zip(&UPPER) {
            hessian[[a, b]] = *value;
            hessian[[b, a]] = *value;
        }
        (acc[0], acc[1..5].to_vec(), hessian)
    }
}

impl Likelihood for ParetoNbd<'_> {
    fn params(&self) -> &[ParamSpec] {
        &PARAMS
    }

    fn starts(&self) -> Vec<Vec<f64>> {
        // Purchase rate from the repeat buyers' mean rate; dropout scale from the mean age.
        let (alpha, mean_t) = self.data.start_scales();
        let beta = mean_t;
        vec![
            vec![1.0, alpha, 1.0, beta],
            vec![0.5, 0.5 * alpha, 0.5, 0.5 * beta],
            vec![2.0, 2.0 * alpha, 2.0, 2.0 * beta],
            vec![1.0, alpha, 0.5, 4.0 * beta],
        ]
    }

    fn total_weight(&self) -> f64 {
        self.data.total_weight()
    }

    fn loglik_and_gradient(&self, params: &[f64], exec: &Exec) -> (f64, Vec<f64>) {
        let acc = self.sum_rows::<false>(params, false, exec);
        (acc[0], acc[1..].to_vec())
    }

    fn has_coarse_passes(&self) -> bool {
        true
    }

    /// The series summed to [`crate::fit::COARSE_PRECISION`] (rows on the dual path are
    /// exact).
    fn loglik_and_gradient_coarse(&self, params: &[f64], exec: &Exec) -> (f64, Vec<f64>) {
        let acc = self.sum_rows::<false>(params, true, exec);
        (acc[0], acc[1..].to_vec())
    }

    fn loglik_gradient_hessian_coarse(&self, params: &[f64], exec: &Exec) -> Option<FusedPass> {
        Some(self.fused(params, true, exec))
    }

    /// The analytic Hessian from the fused pass.
    fn hessian(&self, params: &[f64], exec: &Exec) -> Option<Array2<f64>> {
        self.loglik_gradient_hessian(params, exec)
            .map(|(_, _, hessian)| hessian)
    }

    /// The log-likelihood, gradient and Hessian from one pass, whose value and gradient have
    /// the bits of [`Likelihood::loglik_and_gradient`]'s (the same rows, chunks and order of
    /// additions: [`ParetoNbd::sum_rows`]).
    fn loglik_gradient_hessian(&self, params: &[f64], exec: &Exec) -> Option<FusedPass> {
        Some(self.fused(params, false, exec))
    }

    /// The surface is flat in beta on typical data (CDNOW), so every start is tried.
    fn try_all_starts(&self) -> bool {
        true
    }
}

/// The upper triangle of a 4 x 4 Hessian, row by row.
const UPPER: [(usize, usize); 10] = [
    (0, 0),
    (0, 1),
    (0, 2),
    (0, 3),
    (1, 1),
    (1, 2),
    (1, 3),
    (2, 2),
    (2, 3),
    (3, 3),
];

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fit::FitOptions;
    use crate::models::pnbd::testing::{parameter_grid, ROWS};
    use crate::models::pnbd::ParetoNbdParams;
    use crate::models::testing::{cdnow, rel};
    use crate::models::RfmModel;

    #[test]
    fn fused_pass_has_the_bits_of_the_gradient_pass() {
        // CDNOW with the awkward rows, whose series or quadrature stretches differ by point
        // (the grid includes points where rows fall back to quadrature).
        let cdnow = cdnow();
        let (mut x, mut t_x, mut age) = (
            cdnow.frequency.clone(),
            cdnow.recency.clone(),
            cdnow.age.clone(),
        );
        for &(xi, ti, ai) in &ROWS {
            x.push(xi);
            t_x.push(ti);
            age.push(ai);
        }
        let data = crate::data::RfmColumns::new(&x, &t_x, &age).compress();
        let lik = ParetoNbd::new(&data);
        for exec in [Exec::Serial, Exec::with_jobs(Some(2)).unwrap()] {
            for p in parameter_grid() {
                let at = [p.r, p.alpha, p.s, p.beta];
                let (value, gradient) = lik.loglik_and_gradient(&at, &exec);
                let (fused_value, fused_gradient, hessian) =
                    lik.loglik_gradient_hessian(&at, &exec).unwrap();
                assert_eq!(fused_value.to_bits(), value.to_bits(), "{at:?}");
                assert_eq!(fused_gradient, gradient, "{at:?}");
                // The Hessian pass is the fused pass's Hessian; symmetric, and central
                // differences of the gradient (to 1e-4: rows the series does not serve have
                // differenced Hessians themselves, at the grid's extremes).
                assert_eq!(lik.hessian(&at, &exec).unwrap(), hessian);
                for i in 0..4 {
                    let h = 1e-6 * at[i];
                    let (mut up, mut down) = (at, at);
                    up[i] += h;
                    down[i] -= h;
                    let g_up = lik.loglik_and_gradient(&up, &exec).1;
                    let g_down = lik.loglik_and_gradient(&down, &exec).1;
                    for j in 0..4 {
                        assert_eq!(hessian[[i, j]], hessian[[j, i]]);
                        let numeric = (g_up[j] - g_down[j]) / (2.0 * h);
                        let scale = (hessian[[i, i]] * hessian[[j, j]]).abs().sqrt();
                        assert!(
                            (hessian[[i, j]] - numeric).abs() <= 1e-4 * scale,
                            "{at:?} ({i},{j}): {} vs {numeric}",
                            hessian[[i, j]]
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn reproduces_the_published_cdnow_fit() {
        let data = cdnow();
        let res = ParetoNbdParams::fit(&data, &FitOptions::default()).unwrap();
        assert!(res.converged, "{}", res.termination);
        let want = [0.553, 10.578, 0.606, 11.669];
        for (k, (got, want)) in res.params.iter().zip(want).enumerate() {
            let tolerance = if k == 3 { 2e-3 } else { 1e-3 };
            assert!(rel(*got, want) < tolerance, "{:?}", res.params);
        }
        assert!(
            (res.log_likelihood + 9594.98).abs() < 0.01,
            "{}",
            res.log_likelihood
        );
        // CLVTools' standard errors.
        let se = res.standard_errors().unwrap();
        for (got, want) in se.iter().zip([0.0476, 0.843, 0.187, 6.21]) {
            assert!(rel(*got, want) < 0.03, "{se:?}");
        }
    }
}
