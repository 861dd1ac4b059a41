//! Time and inverse accuracy of symmetric eigen-decompositions and a Cholesky inverse on
//! matrices A = D Q diag(l) Q^T D (condition `cond` of the core, grading `grade` of D), as
//! Hessians of parameters on different scales are. See docs/design.md.

mod jacobi;
use std::time::Instant;

/// Nanoseconds per call of `f`: the least of 7 batches of `reps` calls (the least is the
/// measure least disturbed by other work on the machine).
fn time_ns(reps: usize, mut f: impl FnMut()) -> f64 {
    (0..7)
        .map(|_| {
            let t = Instant::now();
            for _ in 0..reps {
                f();
            }
            t.elapsed().as_nanos() as f64 / reps as f64
        })
        .fold(f64::INFINITY, f64::min)
}

struct Lcg(u64);
impl Lcg {
    fn next(&mut self) -> f64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        ((self.0 >> 11) as f64) / ((1u64 << 53) as f64) - 0.5
    }
}

/// A = D Q diag(l) Q' D with Q random orthogonal (Gram-Schmidt), l spread over `cond`, D graded.
fn matrix(n: usize, cond: f64, grade: f64, rng: &mut Lcg) -> Vec<Vec<f64>> {
    let mut q: Vec<Vec<f64>> = (0..n)
        .map(|_| (0..n).map(|_| rng.next()).collect())
        .collect();
    for i in 0..n {
        for j in 0..i {
            let d: f64 = (0..n).map(|k| q[i][k] * q[j][k]).sum();
            for k in 0..n {
                q[i][k] -= d * q[j][k];
            }
        }
        let nr: f64 = q[i].iter().map(|x| x * x).sum::<f64>().sqrt();
        for k in 0..n {
            q[i][k] /= nr;
        }
    }
    let l: Vec<f64> = (0..n)
        .map(|i| cond.powf(-(i as f64) / ((n - 1).max(1) as f64)))
        .collect();
    let d: Vec<f64> = (0..n)
        .map(|i| grade.powf(i as f64 / ((n - 1).max(1) as f64)))
        .collect();
    (0..n)
        .map(|i| {
            (0..n)
                .map(|j| d[i] * d[j] * (0..n).map(|m| q[m][i] * l[m] * q[m][j]).sum::<f64>())
                .collect()
        })
        .collect()
}

fn inverse_from(values: &[f64], vecs: &dyn Fn(usize, usize) -> f64, n: usize) -> Vec<Vec<f64>> {
    (0..n)
        .map(|i| {
            (0..n)
                .map(|j| (0..n).map(|m| vecs(i, m) * vecs(j, m) / values[m]).sum())
                .collect()
        })
        .collect()
}

fn inv_err(a: &[Vec<f64>], inv: &[Vec<f64>]) -> f64 {
    let n = a.len();
    let mut e: f64 = 0.0;
    for i in 0..n {
        for j in 0..n {
            let v: f64 =
                (0..n).map(|k| a[i][k] * inv[k][j]).sum::<f64>() - if i == j { 1.0 } else { 0.0 };
            e = e.max(v.abs());
        }
    }
    e
}

fn main() {
    let mut rng = Lcg(42);
    println!(
        "n cond grade | time_ns jacobi nalgebra faer chol | inverse err jacobi nalgebra faer chol"
    );
    for &n in &[3usize, 5, 8, 12, 20, 40] {
        for &(cond, grade) in &[(1e3, 1.0), (1e10, 1.0), (1e3, 1e6), (1e8, 1e8)] {
            let a = matrix(n, cond, grade, &mut rng);
            let reps = (20000 / (n * n)).max(20);
            use std::hint::black_box as bb;
            let na = nalgebra::DMatrix::from_fn(n, n, |i, j| a[i][j]);
            let fa = faer::Mat::<f64>::from_fn(n, n, |i, j| a[i][j]);
            let tj = time_ns(reps, || {
                bb(jacobi::symmetric_eigen(bb(&a)));
            });
            let tn = time_ns(reps, || {
                bb(nalgebra::SymmetricEigen::new(bb(na.clone())));
            });
            let tf = time_ns(reps, || {
                bb(bb(&fa).self_adjoint_eigen(faer::Side::Lower).unwrap());
            });
            let tc = time_ns(reps, || {
                bb(nalgebra::Cholesky::new(bb(na.clone())).map(|c| c.inverse()));
            });
            let jac = jacobi::symmetric_eigen(&a);
            let ne = nalgebra::SymmetricEigen::new(na.clone());
            let fe = fa.self_adjoint_eigen(faer::Side::Lower).unwrap();
            let ci = nalgebra::Cholesky::new(na.clone()).map(|c| c.inverse());
            let ej = inv_err(&a, &inverse_from(&jac.0, &|i, m| jac.1[i][m], n));
            let nv: Vec<f64> = ne.eigenvalues.iter().copied().collect();
            let en = inv_err(&a, &inverse_from(&nv, &|i, m| ne.eigenvectors[(i, m)], n));
            let fv: Vec<f64> = (0..n).map(|i| fe.S()[i]).collect();
            let ef = inv_err(&a, &inverse_from(&fv, &|i, m| fe.U()[(i, m)], n));
            let ec = match ci {
                Some(ci) => inv_err(
                    &a,
                    &(0..n)
                        .map(|i| (0..n).map(|j| ci[(i, j)]).collect())
                        .collect::<Vec<Vec<f64>>>(),
                ),
                None => f64::NAN,
            };
            println!("{n} {cond:.0e} {grade:.0e} | {tj:.0} {tn:.0} {tf:.0} {tc:.0} | {ej:.1e} {en:.1e} {ef:.1e} {ec:.1e}");
        }
    }
}
