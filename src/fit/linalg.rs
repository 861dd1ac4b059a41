//! Small dense linear algebra for the engine (a few to a few dozen parameters): vector helpers,
//! and through `nalgebra` the symmetric eigen-decomposition (condition numbers, weakly
//! identified directions, trust-region steps) and the Cholesky inverse (covariances).
//!
//! Why `nalgebra` and a Cholesky inverse (measured in docs/design.md, `bench/linalg`): the
//! hand-written cyclic Jacobi solver this replaces was as fast at 3 parameters but 2x slower at
//! 5, 8x at 12 and 12-25x at 20 (covariate fits), and inverting through an eigen-decomposition
//! (Jacobi's, nalgebra's or faer's) lost up to 6 more digits than Cholesky on Hessians whose
//! parameters live on very different scales (covariate coefficients next to shape parameters),
//! where Cholesky's accuracy does not depend on the scaling.

use nalgebra::{Cholesky, DMatrix, SymmetricEigen};
use ndarray::{Array2, ArrayView2};

/// Euclidean norm.
pub fn norm(v: &[f64]) -> f64 {
    v.iter().map(|x| x * x).sum::<f64>().sqrt()
}

/// The point `u + step * direction`.
pub fn along(u: &[f64], direction: &[f64], step: f64) -> Vec<f64> {
    u.iter().zip(direction).map(|(x, d)| x + step * d).collect()
}

/// Largest absolute component.
pub fn inf_norm(v: &[f64]) -> f64 {
    v.iter().fold(0.0, |m, x| m.max(x.abs()))
}

/// Inner product.
pub fn dot(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

fn to_matrix(matrix: ArrayView2<'_, f64>) -> DMatrix<f64> {
    DMatrix::from_fn(matrix.nrows(), matrix.ncols(), |i, j| matrix[[i, j]])
}

/// Eigen-decomposition of a small symmetric matrix: (eigenvalues, eigenvectors as columns:
/// `vectors[[row, m]]` for eigenvalue `m`), in no particular order. NaN eigenvalues when the
/// matrix is not finite or the iteration does not settle (callers treat them as "no usable
/// curvature").
pub fn symmetric_eigen(matrix: ArrayView2<'_, f64>) -> (Vec<f64>, Array2<f64>) {
    let n = matrix.nrows();
    let failed = || (vec![f64::NAN; n], Array2::from_elem((n, n), f64::NAN));
    if matrix.iter().any(|v| !v.is_finite()) {
        return failed();
    }
    match SymmetricEigen::try_new(to_matrix(matrix), f64::EPSILON, 10_000) {
        Some(eigen) => (
            eigen.eigenvalues.iter().copied().collect(),
            Array2::from_shape_fn((n, n), |(i, m)| eigen.eigenvectors[(i, m)]),
        ),
        None => failed(),
    }
}

/// The inverse of a symmetric positive definite matrix by Cholesky, exactly symmetric; `None`
/// when the factorisation fails (not positive definite in floating point).
pub fn cholesky_inverse(matrix: ArrayView2<'_, f64>) -> Option<Array2<f64>> {
    let n = matrix.nrows();
    let inverse = Cholesky::new(to_matrix(matrix))?.inverse();
    let out = Array2::from_shape_fn((n, n), |(i, j)| inverse[(i.max(j), i.min(j))]);
    out.iter().all(|v| v.is_finite()).then_some(out)
}

/// The lower Cholesky factor `L` (`L L^T = matrix`) of a symmetric positive definite matrix;
/// `None` when the factorisation fails or is not finite.
pub fn cholesky_factor(matrix: ArrayView2<'_, f64>) -> Option<Array2<f64>> {
    if matrix.iter().any(|v| !v.is_finite()) {
        return None;
    }
    let n = matrix.nrows();
    let factor = Cholesky::new(to_matrix(matrix))?.l();
    let out = Array2::from_shape_fn((n, n), |(i, j)| factor[(i, j)]);
    out.iter().all(|v| v.is_finite()).then_some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn eigen_decomposition_reconstructs_the_matrix() {
        let m = ndarray::arr2(&[[4.0, 1.0, 0.5], [1.0, 3.0, 0.2], [0.5, 0.2, 1.0]]);
        let (vals, vecs) = symmetric_eigen(m.view());
        for i in 0..3 {
            for j in 0..3 {
                let r: f64 = (0..3).map(|k| vecs[[i, k]] * vals[k] * vecs[[j, k]]).sum();
                assert!((r - m[[i, j]]).abs() < 1e-12);
            }
        }
    }

    #[test]
    fn cholesky_inverse_of_a_graded_matrix() {
        // Parameters on scales 1e-4 to 1e4: the inverse keeps its digits (the residual is at
        // rounding level in the scaled sense), and it is exactly symmetric.
        let d = [1e-4, 1.0, 1e4];
        let base = [[4.0, 1.0, 0.5], [1.0, 3.0, 0.2], [0.5, 0.2, 1.0]];
        let m = Array2::from_shape_fn((3, 3), |(i, j)| d[i] * base[i][j] * d[j]);
        let inv = cholesky_inverse(m.view()).unwrap();
        for i in 0..3 {
            for j in 0..3 {
                assert_eq!(inv[[i, j]], inv[[j, i]]);
                let r: f64 = (0..3).map(|k| m[[i, k]] * inv[[k, j]]).sum();
                let want = if i == j { 1.0 } else { 0.0 };
                assert!((r - want).abs() < 1e-13 * d[i] / d[j], "{i} {j}: {r}");
            }
        }
        assert!(cholesky_inverse(ndarray::arr2(&[[1.0, 2.0], [2.0, 1.0]]).view()).is_none());
    }

    #[test]
    fn cholesky_factor_reconstructs_the_matrix() {
        let m = ndarray::arr2(&[[4.0, 1.0, 0.5], [1.0, 3.0, 0.2], [0.5, 0.2, 1.0]]);
        let l = cholesky_factor(m.view()).unwrap();
        for i in 0..3 {
            for j in 0..3 {
                if j > i {
                    assert_eq!(l[[i, j]], 0.0);
                }
                let r: f64 = (0..3).map(|k| l[[i, k]] * l[[j, k]]).sum();
                assert!((r - m[[i, j]]).abs() < 1e-13);
            }
        }
        assert!(cholesky_factor(ndarray::arr2(&[[1.0, 2.0], [2.0, 1.0]]).view()).is_none());
    }

    #[test]
    fn non_finite_matrices_give_nan_eigenvalues() {
        let (values, _) =
            symmetric_eigen(ndarray::arr2(&[[1.0, f64::NAN], [f64::NAN, 1.0]]).view());
        assert!(values.iter().all(|v| v.is_nan()));
    }
}
