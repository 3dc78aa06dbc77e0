//! GluonTS `ExpectedNumInstanceSampler`: split points of a series drawn so that each series
//! yields `num_instances` training instances on average.

use crate::kernel_synth::SeriesRng;

/// Split points `i` with `min_past <= i <= len - min_future`; each is taken with probability
/// `num_instances / mean window` (the mean over all windows seen so far, this one included, as
/// GluonTS keeps a running total), and if fewer than `min_instances` are taken, that many are
/// drawn uniformly instead (upstream training uses `num_instances = 1`, `min_instances = 1`, so a
/// series of average length yields `1 + (1 - 1/w)^w ≈ 1.37` instances on average).
///
/// The Bernoulli draws are made by geometric skipping (one draw per taken point instead of one
/// per position), the same distribution as GluonTS' `random_sample(window) < p`.
#[derive(Debug, Clone, PartialEq)]
pub struct ExpectedNumInstanceSampler {
    pub num_instances: f64,
    pub min_instances: usize,
    pub min_past: usize,
    pub min_future: usize,
    /// Sum of the windows seen.
    pub total_length: u64,
    /// Number of series seen (with a non-empty window).
    pub n: u64,
}

impl ExpectedNumInstanceSampler {
    /// Upstream's training sampler: one instance per series on average, at least one.
    pub fn new(min_past: usize, min_future: usize) -> Self {
        ExpectedNumInstanceSampler {
            num_instances: 1.0,
            min_instances: 1,
            min_past,
            min_future,
            total_length: 0,
            n: 0,
        }
    }

    /// The split points for a series of `len` values, ascending except that the
    /// `min_instances` fallback points come unsorted (as GluonTS' `prefix`).
    pub fn sample(&mut self, len: usize, rng: &mut SeriesRng) -> Vec<usize> {
        let a = self.min_past;
        let Some(window) = (len + 1)
            .checked_sub(self.min_future + a)
            .filter(|&w| w > 0)
        else {
            return Vec::new();
        };
        self.n += 1;
        self.total_length += window as u64;
        let p = self.num_instances / (self.total_length as f64 / self.n as f64);
        let mut points = Vec::new();
        if p >= 1.0 {
            points.extend(a..a + window);
        } else if p > 0.0 {
            let log_q = (-p).ln_1p();
            let mut next = 0usize;
            loop {
                // Failures before the next success: floor(ln U / ln(1 - p)), U in (0, 1].
                let gap = ((1.0 - rng.uniform()).ln() / log_q).floor();
                if gap >= (window - next) as f64 {
                    break;
                }
                next += gap as usize;
                points.push(a + next);
                next += 1;
                if next >= window {
                    break;
                }
            }
        }
        if points.len() < self.min_instances {
            let extra = self.min_instances - points.len();
            let mut prefix: Vec<usize> = (0..extra)
                .map(|_| a + rng.below(window as u64) as usize)
                .collect();
            prefix.extend(points);
            return prefix;
        }
        points
    }
}
