//! The random streams of the data pipeline, all derived from the seed so the stream is a
//! function of `(seed, position)` alone, whatever the thread count:
//!
//! * mixing (which dataset the next instance comes from): one [`SeriesRng`], key `MIX`;
//! * the shuffle buffer's picks: one [`SeriesRng`], key `SHUFFLE`;
//! * entry occurrence `o` (the `o`-th entry read from dataset `d`, counting every pass):
//!   `SeriesRng::new(dataset_key(seed, d), o)` draws its drop probability, the drop mask's key and
//!   its split points;
//! * the drop mask: [`unit_at`]`(key, position)`, a counter-based SplitMix64 value per position.

use crate::kernel_synth::SeriesRng;

/// Stream index of the mixing draws (dataset indices are small, so no collision).
const MIX: u64 = u64::MAX;
/// Stream index of the shuffle buffer's draws.
const SHUFFLE: u64 = u64::MAX - 1;

/// SplitMix64's increment.
const GAMMA: u64 = 0x9E37_79B9_7F4A_7C15;

/// SplitMix64's output function.
fn mix64(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Uniform in `[0, 1)` (53 bits) for `position` of the stream `key`: SplitMix64's output at
/// state `key + (position + 1) * GAMMA`.
pub fn unit_at(key: u64, position: u64) -> f64 {
    let z = mix64(key.wrapping_add(position.wrapping_add(1).wrapping_mul(GAMMA)));
    (z >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
}

pub(crate) fn mix_rng(seed: u64) -> SeriesRng {
    SeriesRng::new(seed, MIX)
}

pub(crate) fn shuffle_rng(seed: u64) -> SeriesRng {
    SeriesRng::new(seed, SHUFFLE)
}

/// Key of dataset `d`'s entry occurrences.
pub(crate) fn dataset_key(seed: u64, dataset: usize) -> u64 {
    SeriesRng::new(seed, dataset as u64).next_u64()
}

/// The random stream of entry occurrence `occurrence` of a dataset.
pub(crate) fn occurrence_rng(dataset_key: u64, occurrence: u64) -> SeriesRng {
    SeriesRng::new(dataset_key, occurrence)
}
