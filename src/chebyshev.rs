//! Piecewise Chebyshev interpolation of smooth one-dimensional functions, with a built-in
//! accuracy check.
//!
//! Scoring millions of customers with one horizon evaluates the same smooth function of the
//! customer's age many times over (once per distinct purchase count). [`Interpolant::fit`] samples
//! it at Chebyshev points on equal pieces of the range and accepts the result only if it
//! reproduces the function between the nodes to the requested relative accuracy; otherwise the
//! caller evaluates the function directly. Every piece has the same degree, so four rows can be
//! evaluated in lockstep ([`eval_many`]), which hides the latency of Clenshaw's recurrence.

/// Coefficients per piece (degree 15).
pub const TERMS: usize = 16;

/// A piecewise Chebyshev series on `[lo, hi]`, split into equal pieces.
#[derive(Debug, Clone)]
pub struct Interpolant {
    lo: f64,
    hi: f64,
    pieces_per_unit: f64,
    pieces: Vec<[f64; TERMS]>,
}

/// Chebyshev coefficients of `f` on `[lo, hi]` from its values at the `TERMS` Chebyshev points.
fn coefficients(f: &impl Fn(f64) -> f64, lo: f64, hi: f64) -> Option<[f64; TERMS]> {
    let n = TERMS as f64;
    let values: Vec<f64> = (0..TERMS)
        .map(|k| {
            let theta = std::f64::consts::PI * (k as f64 + 0.5) / n;
            f(0.5 * (lo + hi) + 0.5 * (hi - lo) * theta.cos())
        })
        .collect();
    if values.iter().any(|v| !v.is_finite()) {
        return None;
    }
    Some(std::array::from_fn(|j| {
        let sum: f64 = values
            .iter()
            .enumerate()
            .map(|(k, v)| v * (std::f64::consts::PI * j as f64 * (k as f64 + 0.5) / n).cos())
            .sum();
        sum * 2.0 / n * if j == 0 { 0.5 } else { 1.0 }
    }))
}

/// Clenshaw's recurrence for one series at `u` in [-1, 1].
#[inline(always)]
fn clenshaw(c: &[f64; TERMS], u: f64) -> f64 {
    let (mut b1, mut b2) = (0.0, 0.0);
    for &ck in c[1..].iter().rev() {
        let b0 = 2.0 * u * b1 - b2 + ck;
        b2 = b1;
        b1 = b0;
    }
    u * b1 - b2 + c[0]
}

/// `N` independent series at `N` points, interleaved so that the recurrences overlap.
#[inline(always)]
pub fn eval_many<const N: usize>(c: [&[f64; TERMS]; N], u: [f64; N]) -> [f64; N] {
    let (mut b1, mut b2) = ([0.0; N], [0.0; N]);
    for k in (1..TERMS).rev() {
        for l in 0..N {
            let b0 = 2.0 * u[l] * b1[l] - b2[l] + c[l][k];
            b2[l] = b1[l];
            b1[l] = b0;
        }
    }
    std::array::from_fn(|l| u[l] * b1[l] - b2[l] + c[l][0])
}

/// A one-piece series (from [`Interpolant::single_piece`]) at every point of `xs`, written to
/// `out`: the same operations as [`Interpolant::eval`] (so the same bits), with the points in
/// the innermost loop so that the recurrence vectorises.
#[inline(always)]
pub fn eval_at_points(c: &[f64; TERMS], lo: f64, per_unit: f64, xs: &[f64], out: &mut [f64]) {
    const CHUNK: usize = 64;
    let (mut u, mut b1, mut b2) = ([0.0; CHUNK], [0.0; CHUNK], [0.0; CHUNK]);
    for (xs, out) in xs.chunks(CHUNK).zip(out.chunks_mut(CHUNK)) {
        let n = xs.len();
        for (u, &x) in u.iter_mut().zip(xs) {
            // As `locate`: position (x - lo) * per_unit in piece 0, u = 2 position - 1.
            *u = 2.0 * ((x - lo) * per_unit) - 1.0;
        }
        b1[..n].fill(0.0);
        b2[..n].fill(0.0);
        for &ck in c[1..].iter().rev() {
            for j in 0..n {
                let b0 = 2.0 * u[j] * b1[j] - b2[j] + ck;
                b2[j] = b1[j];
                b1[j] = b0;
            }
        }
        for (j, o) in out.iter_mut().enumerate() {
            *o = u[j] * b1[j] - b2[j] + c[0];
        }
    }
}

impl Interpolant {
    /// Interpolate `f` on `[lo, hi]` with 1, 2, 4, ..., 64 equal pieces in turn, returning the
    /// first whose relative error at the midpoints between the nodes of every piece, and at the
    /// ends, is at most `tolerance`; `None` when 64 pieces do not suffice or `f` is not finite.
    pub fn fit(f: impl Fn(f64) -> f64, lo: f64, hi: f64, tolerance: f64) -> Option<Interpolant> {
        Self::fit_with(f, lo, hi, tolerance, 1, false)
    }

    /// [`Interpolant::fit`] for the many members of a family of similar functions, at about
    /// half the evaluations of `f`:
    ///
    /// - it starts at `first` pieces (rounded up to a power of two, at most 64) instead of one:
    ///   the count a pilot member needed skips the smaller counts that would fail (each costs
    ///   as many evaluations as the one that succeeds);
    /// - a piece whose last three coefficients sum (in magnitude) to at most `tolerance / 100`
    ///   of a lower bound of `|f|` on the piece (`|c_0|` less the other coefficients'
    ///   magnitudes) is accepted after checking only its two ends: the coefficients of a
    ///   smooth function fall geometrically, so the series' error, about the size of the
    ///   first coefficients left out, is then a hundred times inside the tolerance. Other
    ///   pieces get `fit`'s full check between the nodes.
    pub fn fit_from(
        f: impl Fn(f64) -> f64,
        lo: f64,
        hi: f64,
        tolerance: f64,
        first: usize,
    ) -> Option<Interpolant> {
        Self::fit_with(f, lo, hi, tolerance, first, true)
    }

    fn fit_with(
        f: impl Fn(f64) -> f64,
        lo: f64,
        hi: f64,
        tolerance: f64,
        first: usize,
        by_coefficients: bool,
    ) -> Option<Interpolant> {
        if !(lo.is_finite() && hi.is_finite() && hi > lo) {
            return None;
        }
        let mut count = first.clamp(1, 64).next_power_of_two();
        while count <= 64 {
            let width = (hi - lo) / count as f64;
            let bounds = |p: usize| {
                (
                    lo + width * p as f64,
                    if p + 1 == count {
                        hi
                    } else {
                        lo + width * (p + 1) as f64
                    },
                )
            };
            let pieces: Option<Vec<[f64; TERMS]>> = (0..count)
                .map(|p| {
                    let (a, b) = bounds(p);
                    coefficients(&f, a, b)
                })
                .collect();
            let candidate = Interpolant {
                lo,
                hi,
                pieces_per_unit: count as f64 / (hi - lo),
                pieces: pieces?,
            };
            let settled = |c: &[f64; TERMS]| {
                let tail: f64 = c[TERMS - 3..].iter().map(|v| v.abs()).sum();
                let least = c[0].abs() - c[1..].iter().map(|v| v.abs()).sum::<f64>();
                by_coefficients && tail <= 0.01 * tolerance * least
            };
            let accurate = (0..count).all(|p| {
                let (a, b) = bounds(p);
                let close = |x: f64| {
                    let exact = f(x);
                    (candidate.eval(x) - exact).abs() <= tolerance * exact.abs()
                };
                if settled(&candidate.pieces[p]) {
                    return close(a) && close(b);
                }
                let node = |k: usize| {
                    let theta = std::f64::consts::PI * (k as f64 + 0.5) / TERMS as f64;
                    0.5 * (a + b) + 0.5 * (b - a) * theta.cos()
                };
                (0..TERMS - 1)
                    .map(|k| 0.5 * (node(k) + node(k + 1)))
                    .chain([a, b])
                    .all(close)
            });
            if accurate {
                return Some(candidate);
            }
            count *= 2;
        }
        None
    }

    /// The piece's coefficients and the position `u` in [-1, 1] of `x` within it.
    #[inline(always)]
    pub fn locate(&self, x: f64) -> (&[f64; TERMS], f64) {
        let position = (x - self.lo) * self.pieces_per_unit;
        let p = (position as usize).min(self.pieces.len() - 1);
        (&self.pieces[p], 2.0 * (position - p as f64) - 1.0)
    }

    /// The interpolant at `x`.
    pub fn eval(&self, x: f64) -> f64 {
        let (c, u) = self.locate(x);
        clenshaw(c, u)
    }

    /// The coefficients, left end and scale of a one-piece interpolant (`None` with more
    /// pieces): its value at `x` is [`eval_at_points`] of them, vectorised over many points.
    pub fn single_piece(&self) -> Option<(&[f64; TERMS], f64, f64)> {
        match self.pieces.as_slice() {
            [c] => Some((c, self.lo, self.pieces_per_unit)),
            _ => None,
        }
    }

    /// Number of pieces.
    pub fn pieces(&self) -> usize {
        self.pieces.len()
    }

    /// Whether `x` lies in the interval the interpolant was built for.
    pub fn covers(&self, x: f64) -> bool {
        x >= self.lo && x <= self.hi
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interpolates_smooth_functions_to_tolerance() {
        // The last case is a function of T = e^v with singularities at T = 0 and T = -52, over
        // T in [1e-3, 5e3]: smooth on a log scale, as the scoring code uses it.
        let g = |x: f64| (2.0 + x).ln() / (3.0 + x);
        let h = |v: f64| 1.0 / (52.0 + v.exp()) + v.exp().sqrt();
        for (f, lo, hi) in [
            (&g as &dyn Fn(f64) -> f64, 26.0, 78.0),
            (&g, 0.0, 78.0),
            (&h, 1e-3f64.ln(), 5e3f64.ln()),
        ] {
            let p = Interpolant::fit(f, lo, hi, 1e-13).expect("smooth function");
            for i in 0..=2000 {
                let x = lo + (hi - lo) * i as f64 / 2000.0;
                assert!(
                    (p.eval(x) / f(x) - 1.0).abs() < 2e-13,
                    "{x} on [{lo}, {hi}]"
                );
            }
            let xs = [lo, hi, 0.5 * (lo + hi), lo + 0.1 * (hi - lo)];
            let located = xs.map(|x| p.locate(x));
            let four = eval_many(located.map(|(c, _)| c), located.map(|(_, u)| u));
            for (x, v) in xs.iter().zip(four) {
                assert_eq!(v, p.eval(*x));
            }
        }
    }

    #[test]
    fn refuses_what_it_cannot_represent() {
        // A pole just outside the interval defeats 64 pieces at this tolerance.
        assert!(Interpolant::fit(|x| 1.0 / (x + 1e-12), 0.0, 1.0, 1e-13).is_none());
        assert!(Interpolant::fit(|x| x, 1.0, 1.0, 1e-13).is_none());
    }

    #[test]
    fn a_pilot_count_skips_the_smaller_ones_and_keeps_the_check() {
        let g = |x: f64| (2.0 + x).ln() / (3.0 + x);
        let minimal = Interpolant::fit(g, 0.0, 78.0, 1e-13).expect("smooth function");
        assert!(minimal.pieces() > 1);
        // From the count the plain fit ends with: the same interpolant.
        let same = Interpolant::fit_from(g, 0.0, 78.0, 1e-13, minimal.pieces()).unwrap();
        assert_eq!(same.pieces(), minimal.pieces());
        // From fewer (rounded up to a power of two): the check still decides.
        let from_one = Interpolant::fit_from(g, 0.0, 78.0, 1e-13, 1).unwrap();
        assert_eq!(from_one.pieces(), minimal.pieces());
        // From more: at least that many, as accurate.
        let more = Interpolant::fit_from(g, 0.0, 78.0, 1e-13, 3 * minimal.pieces()).unwrap();
        assert_eq!(
            more.pieces(),
            (3 * minimal.pieces()).min(64).next_power_of_two()
        );
        for i in 0..=500 {
            let x = 78.0 * i as f64 / 500.0;
            assert_eq!(same.eval(x), minimal.eval(x));
            assert!((more.eval(x) / g(x) - 1.0).abs() < 2e-13);
        }
        // Accepted by its coefficients or by the full check: within the tolerance everywhere.
        let h = |v: f64| 1.0 / (52.0 + v.exp()) + v.exp().sqrt();
        for (f, lo, hi) in [
            (&g as &dyn Fn(f64) -> f64, 0.0, 78.0),
            (&g, 26.0, 30.0),
            (&h, 1e-3f64.ln(), 5e3f64.ln()),
        ] {
            for tolerance in [1e-9, 1e-13] {
                let p = Interpolant::fit_from(f, lo, hi, tolerance, 1).unwrap();
                for i in 0..=3000 {
                    let x = lo + (hi - lo) * i as f64 / 3000.0;
                    assert!(
                        (p.eval(x) / f(x) - 1.0).abs() <= tolerance,
                        "{x} {tolerance}"
                    );
                }
            }
        }
        // A one-piece interpolant at many points: the bits of `eval`.
        let one = Interpolant::fit(g, 26.0, 30.0, 1e-13).unwrap();
        let (c, lo, per_unit) = one.single_piece().expect("one piece");
        let xs: Vec<f64> = (0..=150).map(|i| 26.0 + 4.0 * i as f64 / 150.0).collect();
        let mut out = vec![0.0; xs.len()];
        eval_at_points(c, lo, per_unit, &xs, &mut out);
        for (x, v) in xs.iter().zip(&out) {
            assert_eq!(*v, one.eval(*x));
        }
        assert!(minimal.single_piece().is_none());
        // Past 64 pieces there is nothing left to try.
        assert!(Interpolant::fit_from(|x| 1.0 / (x + 1e-12), 0.0, 1.0, 1e-13, 64).is_none());
    }
}
