//! Scratch measurement for issue 23 (dual numbers): clvrs dual.rs (verbatim copy) vs num-dual.
#![allow(dead_code)]
#[path = "../../../../src/dual.rs"]
mod dual;
#[path = "../../../../src/fastmath.rs"]
mod fastmath;
#[path = "../../../../src/quadrature.rs"]
mod quadrature;
#[path = "../../../../src/special.rs"]
mod special;

use dual::Dual;
use quadrature::{integrate_from_start, Integrand};
use std::hint::black_box;
use std::ops::{Add, Div, Mul, Neg, Sub};
use std::time::Instant;

/// What the ggnbd row needs of a forward-mode number.
pub trait Ad:
    Copy
    + Add<Output = Self>
    + Sub<Output = Self>
    + Mul<Output = Self>
    + Div<Output = Self>
    + Neg<Output = Self>
    + Add<f64, Output = Self>
    + Sub<f64, Output = Self>
    + Mul<f64, Output = Self>
    + Integrand
{
    fn c(v: f64) -> Self;
    fn var(v: f64, i: usize) -> Self;
    fn v(&self) -> f64;
    fn d(&self, i: usize) -> f64;
    fn ln_(self) -> Self;
    fn exp_(self) -> Self;
    fn ln_1p_(self) -> Self;
    fn exp_m1_(self) -> Self;
    fn recip_(self) -> Self;
    fn ln_gamma_ratio_(self, x: f64) -> Self;
    fn log_add_exp_(self, o: Self) -> Self;
}

impl<const N: usize> Ad for Dual<N> {
    fn c(v: f64) -> Self { Dual::constant(v) }
    fn var(v: f64, i: usize) -> Self { Dual::variable(v, i) }
    fn v(&self) -> f64 { self.v }
    fn d(&self, i: usize) -> f64 { self.d[i] }
    #[inline] fn ln_(self) -> Self { self.ln() }
    #[inline] fn exp_(self) -> Self { self.exp() }
    #[inline] fn ln_1p_(self) -> Self { self.ln_1p() }
    #[inline] fn exp_m1_(self) -> Self { self.exp_m1() }
    #[inline] fn recip_(self) -> Self { self.recip() }
    #[inline] fn ln_gamma_ratio_(self, x: f64) -> Self { self.ln_gamma_ratio(x) }
    #[inline] fn log_add_exp_(self, o: Self) -> Self { self.log_add_exp(o) }
}

#[cfg(feature = "numdual")]
mod nd {
    use super::*;
    use num_dual::{DualNum, DualSVec64, Derivative};
    pub type ND<const N: usize> = DualSVec64<N>;

    impl<const N: usize> Integrand for DualSVec64<N> {
        fn zero() -> Self { DualSVec64::from_re(0.0) }
        fn value(&self) -> f64 { self.re }
    }
    impl<const N: usize> Ad for DualSVec64<N> {
        fn c(v: f64) -> Self { DualSVec64::from_re(v) }
        fn var(v: f64, i: usize) -> Self {
            let mut e = nalgebra::SVector::<f64, N>::zeros();
            e[i] = 1.0;
            DualSVec64::new(v, Derivative::some(e))
        }
        fn v(&self) -> f64 { self.re }
        fn d(&self, i: usize) -> f64 { self.eps.0.map(|e| e[i]).unwrap_or(0.0) }
        #[inline] fn ln_(self) -> Self { DualNum::ln(&self) }
        #[inline] fn exp_(self) -> Self { DualNum::exp(&self) }
        #[inline] fn ln_1p_(self) -> Self { DualNum::ln_1p(&self) }
        #[inline] fn exp_m1_(self) -> Self { DualNum::exp_m1(&self) }
        #[inline] fn recip_(self) -> Self { DualNum::recip(&self) }
        /// Not in num-dual: written with the public constructor (value, eps * slope).
        #[inline] fn ln_gamma_ratio_(self, x: f64) -> Self {
            DualSVec64::new(
                crate::special::ln_gamma_diff(self.re, x),
                self.eps * crate::special::digamma_diff(self.re, x),
            )
        }
        /// Not in num-dual: same algorithm as clvrs.
        #[inline] fn log_add_exp_(self, o: Self) -> Self {
            let (hi, lo) = if self.re >= o.re { (self, o) } else { (o, self) };
            if lo.re == f64::NEG_INFINITY { return hi; }
            hi + DualNum::ln_1p(&DualNum::exp(&(lo - hi)))
        }
    }
}

// ---- ggnbd.rs row, copied with Dual<N> -> generic D ----
fn ln_shifted_exp<D: Ad>(beta: D, b_tau: D) -> D {
    if b_tau.v() > 30.0 { b_tau + ((beta - 1.0) * (-b_tau).exp_()).ln_1p_() } else { (beta + b_tau.exp_m1_()).ln_() }
}
fn ln_1p_exp_scaled<D: Ad>(y: D, z: D) -> D {
    if y.v() > 30.0 { y + ((-y).exp_() - (-z).exp_()).ln_1p_() } else { (y.exp_() * -(-z).exp_m1_()).ln_1p_() }
}
fn ln_shift_over_beta<D: Ad>(beta: D, b_tau: D) -> D {
    if b_tau.v() > 30.0 { ln_1p_exp_scaled(b_tau - beta.ln_(), b_tau) } else { (b_tau.exp_m1_() / beta).ln_1p_() }
}
fn ln_hazard_weight<D: Ad>(beta: D, b_t: D) -> D {
    if b_t.v() > 30.0 { -((beta - 1.0) * (-b_t).exp_()).ln_1p_() } else { b_t - (beta + b_t.exp_m1_()).ln_() }
}
fn hazard_weight<D: Ad>(beta: D, b_t: D) -> D {
    if b_t.v() > 30.0 { ((beta - 1.0) * (-b_t).exp_() + 1.0).recip_() } else { b_t.exp_() / (beta + b_t.exp_m1_()) }
}
fn ln_shift_ratio<D: Ad>(beta: D, b: D, t0: f64, d: f64) -> D {
    let b_d = b * d;
    if b_d.v() > 30.0 {
        ln_1p_exp_scaled(b_d + ln_hazard_weight(beta, b * t0), b_d)
    } else {
        (b_d.exp_m1_() * hazard_weight(beta, b * t0)).ln_1p_()
    }
}

/// `with_quadrature`: the full ggnbd row (integral by clvrs's integrate_from_start over D).
/// Without: the closed-form part plus the integrand at the 15 Kronrod nodes of (t_x, T).
fn row<D: Ad>(p: [D; 5], x: f64, t_x: f64, age: f64, with_quadrature: bool) -> D {
    let [r, alpha, b, s, beta] = p;
    let rx = r + x;
    let ln_alive = -(r * (D::c(age) / alpha).ln_1p_()) - (alpha + age).ln_() * x - s * ln_shift_over_beta(beta, b * age);
    let a0 = alpha + t_x;
    let l0 = ln_shifted_exp(beta, b * t_x);
    let s1 = s + 1.0;
    let integrand = |tau: f64| {
        let d = tau - t_x;
        let rel = -(rx * (D::c(d) / a0).ln_1p_()) + b * d - s1 * ln_shift_ratio(beta, b, t_x, d);
        rel.exp_()
    };
    let integral = if with_quadrature {
        let weight = hazard_weight::<Dual<0>>(Dual::constant(beta.v()), Dual::constant(b.v() * t_x)).v;
        let decay = rx.v() / a0.v() + b.v() * ((s.v() + 1.0) * weight - 1.0);
        integrate_from_start(integrand, t_x, age, 1.0 / decay.max(b.v()), 1e-13, 300).value
    } else {
        let mut acc = D::c(0.0);
        for k in 0..15 {
            acc = acc + integrand(t_x + (age - t_x) * (k as f64 + 0.5) / 15.0) * (1.0 / 15.0);
        }
        acc * (age - t_x)
    };
    let ln_at_tx = -(r * (D::c(t_x) / alpha).ln_1p_()) - a0.ln_() * x + s.ln_() + b.ln_() + b * t_x - l0
        - s * ln_shift_over_beta(beta, b * t_x);
    r.ln_gamma_ratio_(x) + ln_alive.log_add_exp_(ln_at_tx + integral.ln_())
}

/// Customers: a deterministic spread of (x, t_x, T).
fn customers(n: usize) -> Vec<(f64, f64, f64)> {
    (0..n)
        .map(|i| {
            let age = 20.0 + (i % 17) as f64 * 2.0;
            let x = (i % 9) as f64;
            let t_x = if x == 0.0 { 0.0 } else { age * ((i % 13) as f64 + 1.0) / 14.0 };
            (x, t_x, age)
        })
        .collect()
}

const P: [f64; 5] = [0.55, 10.6, 0.02, 0.6, 1.3];

fn params<D: Ad, const N: usize>() -> [D; 5] {
    // First N of the 5 parameters are variables, the rest constants.
    std::array::from_fn(|i| if i < N { D::var(P[i], i) } else { D::c(P[i]) })
}

fn bench<D: Ad, const N: usize>(cust: &[(f64, f64, f64)], quad: bool) -> (f64, D) {
    let p = params::<D, N>();
    let t = Instant::now();
    let mut acc = D::c(0.0);
    for &(x, t_x, age) in cust {
        acc = acc + row(black_box(p), x, t_x, age, quad);
    }
    (t.elapsed().as_nanos() as f64 / cust.len() as f64, black_box(acc))
}

fn stats(v: &mut Vec<f64>) -> (f64, f64) {
    v.sort_by(|a, b| a.total_cmp(b));
    (v[0], v[v.len() / 2])
}

fn main() {
    let quad = std::env::args().nth(1).as_deref() == Some("quad");
    let n = if quad { 4_000 } else { 80_000 };
    let cust = customers(n);
    // 7 interleaved repetitions of each configuration: min and median (2 shared cores).
    let mut t: [Vec<f64>; 4] = Default::default();
    let mut check = (0.0, 0.0, 0.0, 0.0);
    for _ in 0..7 {
        t[0].push(bench::<Dual<4>, 4>(&cust, quad).0);
        let (x, a5) = bench::<Dual<5>, 5>(&cust, quad);
        t[1].push(x);
        check.0 = a5.v;
        check.1 = a5.d[4];
        #[cfg(feature = "numdual")]
        {
            t[2].push(bench::<nd::ND<4>, 4>(&cust, quad).0);
            let (x, b5) = bench::<nd::ND<5>, 5>(&cust, quad);
            t[3].push(x);
            check.2 = b5.v();
            check.3 = b5.d(4);
        }
    }
    let names = ["clvrs Dual<4>", "clvrs Dual<5>", "num-dual DualSVec64<4>", "num-dual DualSVec64<5>"];
    for (k, name) in names.iter().enumerate() {
        if t[k].is_empty() { continue; }
        let (mn, md) = stats(&mut t[k]);
        println!("ROW quad={quad} {name:<24} min {mn:8.1} ns/row  median {md:8.1} ns/row");
    }
    println!("AGREE value {:.15e} vs {:.15e}; d/dbeta {:.15e} vs {:.15e}", check.0, check.2, check.1, check.3);
}
