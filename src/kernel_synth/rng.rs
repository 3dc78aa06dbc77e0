//! Per-series random numbers: xoshiro256++ seeded from `(seed, series index)` through SplitMix64,
//! so every series is reproducible on its own, whatever thread generates it and in which order.

/// SplitMix64's increment (the golden ratio in 64-bit fixed point).
const GAMMA: u64 = 0x9E37_79B9_7F4A_7C15;

/// SplitMix64's output function, a bijection of `u64`.
fn mix64(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// The random stream of one series: xoshiro256++ (period 2^256 - 1) whose state is four
/// SplitMix64 outputs from the key `mix64(mix64(seed) ^ index)` (distinct for distinct indices
/// under one seed).
#[derive(Debug, Clone)]
pub struct SeriesRng {
    s: [u64; 4],
}

impl SeriesRng {
    pub fn new(seed: u64, index: u64) -> Self {
        let key = mix64(mix64(seed) ^ index);
        let mut s = [0u64; 4];
        for (k, word) in (1u64..).zip(s.iter_mut()) {
            *word = mix64(key.wrapping_add(k.wrapping_mul(GAMMA)));
        }
        SeriesRng { s }
    }

    pub fn next_u64(&mut self) -> u64 {
        let s = &mut self.s;
        let result = s[0].wrapping_add(s[3]).rotate_left(23).wrapping_add(s[0]);
        let t = s[1] << 17;
        s[2] ^= s[0];
        s[3] ^= s[1];
        s[1] ^= s[2];
        s[0] ^= s[3];
        s[2] ^= t;
        s[3] = s[3].rotate_left(45);
        result
    }

    /// Uniform integer in `0..n` by Lemire's multiply-shift (bias below `n / 2^64`); 0 for `n == 0`.
    pub fn below(&mut self, n: u64) -> u64 {
        ((u128::from(self.next_u64()) * u128::from(n)) >> 64) as u64
    }

    /// A fair coin.
    pub fn coin(&mut self) -> bool {
        self.next_u64() >> 63 == 1
    }

    /// Uniform in `[0, 1)` with 53 random bits.
    pub fn uniform(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }

    /// Fills `out` with independent standard normals (Box–Muller, two per pair of uniforms; for an
    /// odd length the last pair's second value is dropped).
    pub fn fill_standard_normal(&mut self, out: &mut [f64]) {
        for pair in out.chunks_mut(2) {
            // 1 - u is in (0, 1], so the logarithm is finite.
            let r = (-2.0 * (1.0 - self.uniform()).ln()).sqrt();
            let (sin, cos) = (std::f64::consts::TAU * self.uniform()).sin_cos();
            pair[0] = r * cos;
            if let Some(second) = pair.get_mut(1) {
                *second = r * sin;
            }
        }
    }
}
