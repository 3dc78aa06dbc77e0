//! Forecast windows as GluonTS `split(dataset, offset)` followed by
//! `generate_instances(prediction_length, windows = num_rolls)` (`OffsetSplitter`, windows
//! `prediction_length` apart): window `r` of a series of length `n` starts at
//! `offset + r * prediction_length`, plus `n` when the offset is negative; its context is
//! everything before that, its label the `prediction_length` steps from there.
//!
//! GluonTS stops with an assertion when a window does not fit a series; here such windows (no
//! context left, or running past the end) are returned as skipped, for the caller to report.

use super::config::Benchmark;

/// A window of series `series`: context `values[..start]`, label
/// `values[start..start + prediction_length]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    pub series: usize,
    pub start: usize,
}

/// The windows of a dataset, in GluonTS's order (series, then roll), and those that did not fit.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Windows {
    pub windows: Vec<Window>,
    /// `(series, roll)` of each window that does not fit its series.
    pub skipped: Vec<(usize, usize)>,
}

/// Start of window `roll` in a series of `len` steps, or `None` when the window leaves no
/// context (start < 1) or runs past the end.
pub fn window_start(
    len: usize,
    offset: i64,
    roll: usize,
    prediction_length: usize,
) -> Option<usize> {
    let len = len as i128;
    let h = prediction_length as i128;
    let mut start = i128::from(offset) + roll as i128 * h;
    if offset < 0 {
        start += len;
    }
    (start >= 1 && start + h <= len).then_some(start as usize)
}

/// The windows of `benchmark` over series of the given `lengths`.
pub fn windows(benchmark: &Benchmark, lengths: impl IntoIterator<Item = usize>) -> Windows {
    let mut out = Windows::default();
    for (series, len) in lengths.into_iter().enumerate() {
        for roll in 0..benchmark.num_rolls {
            match window_start(len, benchmark.offset, roll, benchmark.prediction_length) {
                Some(start) => out.windows.push(Window { series, start }),
                None => out.skipped.push((series, roll)),
            }
        }
    }
    out
}

/// Length of the history before the first window of a series of `len` steps: `values[..end]`
/// is what a model may train on without seeing any evaluation window (for a negative offset,
/// `len + offset`; else `offset`, at most `len`).
pub fn history_end(len: usize, offset: i64) -> usize {
    let cut = offset.unsigned_abs().min(len as u64) as usize;
    if offset < 0 {
        len - cut
    } else {
        cut
    }
}
