//! A small, fast, seedable random number generator and the draws the simulators need.
//!
//! xoshiro256++ (Blackman & Vigna 2018) seeded through SplitMix64: reproducible for a given seed
//! on every platform, with independent streams per customer block via [`Rng::for_stream`].

use crate::special::logistic;

/// xoshiro256++ state.
#[derive(Debug, Clone)]
pub struct Rng {
    s: [u64; 4],
}

fn splitmix(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

impl Rng {
    /// A generator for `seed`.
    pub fn new(seed: u64) -> Self {
        Rng::for_stream(seed, 0)
    }

    /// The generator of stream `stream` under `seed`: streams are independent, so work split
    /// into blocks draws the same numbers whatever thread runs each block.
    pub fn for_stream(seed: u64, stream: u64) -> Self {
        let mut state = seed ^ stream.wrapping_mul(0xd1b5_4a32_d192_ed03);
        let s = [
            splitmix(&mut state),
            splitmix(&mut state),
            splitmix(&mut state),
            splitmix(&mut state),
        ];
        Rng { s }
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        let s = &mut self.s;
        let result = (s[0].wrapping_add(s[3])).rotate_left(23).wrapping_add(s[0]);
        let t = s[1] << 17;
        s[2] ^= s[0];
        s[3] ^= s[1];
        s[1] ^= s[2];
        s[0] ^= s[3];
        s[2] ^= t;
        s[3] = s[3].rotate_left(45);
        result
    }

    /// Uniform on (0, 1) (never exactly 0 or 1).
    pub fn uniform(&mut self) -> f64 {
        ((self.next_u64() >> 11) as f64 + 0.5) / (1u64 << 53) as f64
    }

    /// Standard normal (Box-Muller).
    pub fn normal(&mut self) -> f64 {
        let (u, v) = (self.uniform(), self.uniform());
        (-2.0 * u.ln()).sqrt() * (std::f64::consts::TAU * v).cos()
    }

    /// Exponential with the given rate.
    pub fn exponential(&mut self, rate: f64) -> f64 {
        -self.uniform().ln() / rate
    }

    /// Gamma with `shape > 0` and scale 1 (Marsaglia & Tsang 2000; shape < 1 by boosting).
    pub fn gamma(&mut self, shape: f64) -> f64 {
        if shape < 1.0 {
            let boost = self.uniform().powf(1.0 / shape);
            return self.gamma(shape + 1.0) * boost;
        }
        let d = shape - 1.0 / 3.0;
        let c = 1.0 / (9.0 * d).sqrt();
        loop {
            let z = self.normal();
            let v = (1.0 + c * z).powi(3);
            if v <= 0.0 {
                continue;
            }
            let u = self.uniform();
            if u.ln() < 0.5 * z * z + d - d * v + d * v.ln() {
                return d * v;
            }
        }
    }

    /// A Gamma(`shape`, 1) draw as `(ln G, ln U)` with the draw `exp(ln G + ln U / shape)`
    /// (`ln U = 0` for `shape >= 1`): the same uniforms as [`Rng::gamma`], kept in logs because
    /// the draw itself, `G U^(1/shape)`, underflows to 0 for most `U` once the shape is below
    /// about 1e-3.
    fn gamma_log_parts(&mut self, shape: f64) -> (f64, f64) {
        if shape < 1.0 {
            let ln_u = self.uniform().ln();
            return (self.gamma(shape + 1.0).ln(), ln_u);
        }
        (self.gamma(shape).ln(), 0.0)
    }

    /// Beta(a, b), as `X / (X + Y)` with `X ~ Gamma(a)`, `Y ~ Gamma(b)` formed from their
    /// logarithms: at tiny shapes both gamma draws underflow to 0 and the plain ratio is 0 / 0
    /// (a NaN, so a dropout coin `u < p` never fell: Beta(1e-6, 1e-6), which puts half its mass
    /// near each end, simulated as p = 0).
    pub fn beta(&mut self, a: f64, b: f64) -> f64 {
        let (ln_gx, ln_ux) = self.gamma_log_parts(a);
        let (ln_gy, ln_uy) = self.gamma_log_parts(b);
        // ln_ux / a - ln_uy / b over the smaller shape: each term alone is -inf below shapes of
        // about 1e-306, where their difference still decides the draw.
        let boosts = if a <= b {
            (ln_ux - ln_uy * (a / b)) / a
        } else {
            (ln_ux * (b / a) - ln_uy) / b
        };
        logistic(ln_gx - ln_gy + boosts)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn moments_of_gamma_and_beta_draws() {
        let mut rng = Rng::new(7);
        let n = 200_000;
        for shape in [0.3, 1.0, 4.5] {
            let draws: Vec<f64> = (0..n).map(|_| rng.gamma(shape)).collect();
            let mean = draws.iter().sum::<f64>() / n as f64;
            let var = draws.iter().map(|d| (d - mean).powi(2)).sum::<f64>() / n as f64;
            assert!(
                (mean - shape).abs() < 4.0 * (shape / n as f64).sqrt(),
                "mean {mean} for {shape}"
            );
            assert!((var / shape - 1.0).abs() < 0.05, "var {var} for {shape}");
        }
        let draws: Vec<f64> = (0..n).map(|_| rng.beta(0.8, 2.4)).collect();
        let mean = draws.iter().sum::<f64>() / n as f64;
        assert!((mean - 0.25).abs() < 0.003, "{mean}");
    }

    #[test]
    fn beta_draws_at_tiny_shapes_are_numbers_at_the_ends() {
        // Beta(a, b) with a, b -> 0 puts mass b / (a + b) near 0 and a / (a + b) near 1; the
        // gamma draws underflow there, which made every draw 0 / 0 = NaN.
        let mut rng = Rng::new(11);
        let n = 20_000;
        for (a, b) in [(1e-6, 1e-6), (1e-8, 3e-8), (1e-310, 4e-310), (1e-9, 0.5)] {
            let draws: Vec<f64> = (0..n).map(|_| rng.beta(a, b)).collect();
            assert!(draws.iter().all(|p| (0.0..=1.0).contains(p)), "{a} {b}");
            let near_one = draws.iter().filter(|&&p| p > 0.5).count() as f64 / n as f64;
            let want = a / (a + b);
            let sd = (want * (1.0 - want) / n as f64).sqrt();
            assert!((near_one - want).abs() < 5.0 * sd, "{a} {b}: {near_one}");
        }
    }

    #[test]
    fn streams_are_reproducible_and_distinct() {
        let a: Vec<u64> = (0..4).map(|_| Rng::for_stream(1, 2).next_u64()).collect();
        assert!(a.iter().all(|v| *v == a[0]));
        assert_ne!(
            Rng::for_stream(1, 2).next_u64(),
            Rng::for_stream(1, 3).next_u64()
        );
    }
}
