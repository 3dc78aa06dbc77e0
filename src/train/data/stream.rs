//! The instance stream, a deterministic function of the seed: datasets mixed by probability
//! (upstream `ChronosDataset.__iter__`), each an endless sequence of instances (GluonTS
//! `Cyclic` → `InstanceSplitter` with `ExpectedNumInstanceSampler` → the non-empty-past filter),
//! then upstream's `PseudoShuffledIterableDataset` buffer.
//!
//! The sequential decisions (mixing draws, the sampler's running mean, shuffle picks) are made in
//! order on one thread; cutting instances (drop mask, windows) is a pure function of the entry
//! occurrence and runs on a rayon pool, so the thread count never changes the stream.

use std::collections::VecDeque;
use std::path::PathBuf;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use super::error::TrainDataError;
use super::instance::{split_instance, DropMask, Instance};
use super::options::{DataOptions, Mode};
use super::rng::{dataset_key, mix_rng, occurrence_rng, shuffle_rng};
use super::sampler::ExpectedNumInstanceSampler;
use super::source::{DatasetStats, Entry, Filter, Reader};
use crate::kernel_synth::SeriesRng;

/// Entries whose instances are cut in one parallel step.
const REFILL_ENTRIES: usize = 64;
/// Passes over a dataset without a single instance before giving up on it.
const MAX_BARREN_PASSES: u64 = 3;

/// Where an instance comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Origin {
    /// Index of the dataset in the paths given.
    pub dataset: usize,
    /// Pass over that dataset (0-based).
    pub pass: u64,
    /// Row of the series in its file (0-based, counting rows the filters dropped).
    pub row: u64,
    /// Split point: the future starts at this index of the series (`forecast_start`).
    pub split: usize,
}

/// What cutting an instance needs.
#[derive(Debug, Clone, Copy)]
struct Cut {
    context_length: usize,
    prediction_length: usize,
    drop_prob: f64,
    skip_constant_past: bool,
    max_scaled_future: Option<f64>,
}

/// One dataset's endless, filtered instance sequence.
struct DatasetStream {
    index: usize,
    path: PathBuf,
    kept: u64,
    filter: Filter,
    impute: bool,
    key: u64,
    sampler: ExpectedNumInstanceSampler,
    /// Started on first use (a dataset of probability 0 is never read).
    reader: Option<Reader>,
    pending: VecDeque<Entry>,
    /// Entries consumed so far, over all passes.
    occurrences: u64,
    /// Entries since the last one that gave an instance.
    barren: u64,
    ready: VecDeque<(Instance, Origin)>,
}

impl DatasetStream {
    fn next(
        &mut self,
        cut: Cut,
        pool: &rayon::ThreadPool,
        stop: &Arc<AtomicBool>,
    ) -> Result<(Instance, Origin), TrainDataError> {
        loop {
            if let Some(item) = self.ready.pop_front() {
                return Ok(item);
            }
            self.refill(cut, pool, stop)?;
        }
    }

    /// Cuts the instances of the next few entries into `ready`.
    fn refill(
        &mut self,
        cut: Cut,
        pool: &rayon::ThreadPool,
        stop: &Arc<AtomicBool>,
    ) -> Result<(), TrainDataError> {
        if self.pending.is_empty() {
            let reader = self.reader.get_or_insert_with(|| {
                Reader::spawn(
                    self.path.clone(),
                    self.filter,
                    self.impute,
                    self.kept,
                    stop.clone(),
                )
            });
            self.pending.extend(reader.next_chunk()?);
        }
        let take = self.pending.len().min(REFILL_ENTRIES);
        let entries: Vec<Entry> = self.pending.drain(..take).collect();
        // Sequential: the sampler's running mean and each occurrence's random stream.
        let mut plans = Vec::new();
        for (e, entry) in entries.iter().enumerate() {
            let mut rng = occurrence_rng(self.key, self.occurrences);
            self.occurrences += 1;
            let drop = draw_drop(&mut rng, cut.drop_prob);
            for split in self.sampler.sample(entry.values.len(), &mut rng) {
                plans.push((e, split, drop));
            }
        }
        // Parallel and pure: the windows.
        let instances: Vec<Option<Instance>> = pool.install(|| {
            plans
                .par_iter()
                .map(|&(e, split, drop)| {
                    split_instance(
                        &entries[e].values,
                        split,
                        cut.context_length,
                        cut.prediction_length,
                        drop,
                    )
                })
                .collect()
        });
        let mut plans = plans.iter().zip(instances).peekable();
        for (e, entry) in entries.iter().enumerate() {
            let mut fertile = false;
            while let Some((&(_, split, _), instance)) = plans.next_if(|((pe, _, _), _)| *pe == e) {
                // The sampler keeps splits within the series, so every cut exists.
                let keep = |i: &Instance| {
                    i.has_observed_past()
                        && (!cut.skip_constant_past || i.has_varying_past())
                        && cut
                            .max_scaled_future
                            .is_none_or(|bound| i.max_scaled_future() <= bound)
                };
                let Some(instance) = instance.filter(keep) else {
                    continue;
                };
                fertile = true;
                let origin = Origin {
                    dataset: self.index,
                    pass: entry.pass,
                    row: entry.row,
                    split,
                };
                self.ready.push_back((instance, origin));
            }
            self.barren = if fertile { 0 } else { self.barren + 1 };
            if self.barren >= MAX_BARREN_PASSES * self.kept {
                return Err(TrainDataError::NoInstances {
                    path: self.path.clone(),
                    passes: MAX_BARREN_PASSES,
                    kept: self.kept,
                });
            }
        }
        Ok(())
    }
}

/// Upstream `preprocess_entry`: a drop probability uniform in `[0, drop_prob)` for this
/// occurrence, and the key of its mask.
fn draw_drop(rng: &mut SeriesRng, drop_prob: f64) -> DropMask {
    if drop_prob <= 0.0 {
        return DropMask::NONE;
    }
    DropMask {
        prob: rng.uniform() * drop_prob,
        key: rng.next_u64(),
    }
}

/// The mixed and shuffled instance stream.
pub(crate) struct InstanceStream {
    datasets: Vec<DatasetStream>,
    /// Cumulative mixing probabilities.
    cdf: Vec<f64>,
    /// The last dataset with a positive probability.
    last: usize,
    mix: SeriesRng,
    shuffle: SeriesRng,
    buffer: Vec<(Instance, Origin)>,
    buffer_length: usize,
    cut: Cut,
    pool: rayon::ThreadPool,
    stop: Arc<AtomicBool>,
}

impl InstanceStream {
    pub fn new(
        stats: &[DatasetStats],
        options: &DataOptions,
        stop: Arc<AtomicBool>,
    ) -> Result<Self, TrainDataError> {
        let filter = Filter {
            min_length: options.min_length(),
            max_missing_prop: options.max_missing_prop,
        };
        let impute = matches!(options.mode, Mode::Causal { .. });
        let datasets = stats
            .iter()
            .enumerate()
            .map(|(index, s)| DatasetStream {
                index,
                path: s.path.clone(),
                kept: s.kept,
                filter,
                impute,
                key: dataset_key(options.seed, index),
                sampler: ExpectedNumInstanceSampler::new(
                    options.min_past,
                    options.prediction_length,
                ),
                reader: None,
                pending: VecDeque::new(),
                occurrences: 0,
                barren: 0,
                ready: VecDeque::new(),
            })
            .collect();
        let cdf: Vec<f64> = stats
            .iter()
            .scan(0.0, |acc, s| {
                *acc += s.probability;
                Some(*acc)
            })
            .collect();
        let last = stats.iter().rposition(|s| s.probability > 0.0).unwrap_or(0);
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(options.threads)
            .thread_name(|i| format!("chronos-train-data-{i}"))
            .build()?;
        Ok(InstanceStream {
            datasets,
            cdf,
            last,
            mix: mix_rng(options.seed),
            shuffle: shuffle_rng(options.seed),
            buffer: Vec::new(),
            buffer_length: options.shuffle_buffer_length.max(1),
            cut: Cut {
                context_length: options.context_length,
                prediction_length: options.prediction_length,
                drop_prob: options.mode.drop_prob(),
                skip_constant_past: options.mode.skips_constant_past(),
                max_scaled_future: options.mode.max_scaled_future(),
            },
            pool,
            stop,
        })
    }

    /// The dataset of the next mixing draw.
    fn pick(&mut self) -> usize {
        let u = self.mix.uniform() * self.cdf[self.last];
        // The first dataset whose cumulative probability exceeds u (never one of probability
        // 0); rounding can leave u at the very top, which goes to the last positive one.
        self.cdf.partition_point(|&c| c <= u).min(self.last)
    }

    /// The next instance out of the shuffle buffer: each mixed instance is appended, and once
    /// the buffer holds `shuffle_buffer_length`, one uniformly chosen leaves it.
    pub fn next(&mut self) -> Result<(Instance, Origin), TrainDataError> {
        loop {
            let d = self.pick();
            let item = self.datasets[d].next(self.cut, &self.pool, &self.stop)?;
            self.buffer.push(item);
            if self.buffer.len() >= self.buffer_length {
                let i = self.shuffle.below(self.buffer.len() as u64) as usize;
                return Ok(self.buffer.swap_remove(i));
            }
        }
    }
}
