//! KernelSynth (the Chronos paper's synthetic training data, upstream `scripts/kernel-synth.py`):
//! each series is one draw from a Gaussian-process prior over `linspace(0, 1, length)` whose
//! kernel is a random composition of 1 to `max_kernels` kernels of a fixed bank.
//!
//! [`KernelSynth::series`] makes series `index` from `(seed, index)` alone ([`SeriesRng`]), so a
//! dataset is the same whatever the thread count; [`KernelSynth::write_dataset`] generates in
//! parallel (rayon workers, libtorch single-threaded in each) and writes a GluonTS Arrow file
//! batch by batch.

mod kernels;
mod rng;
mod sample;

use std::ops::Range;
use std::path::Path;

use chrono::NaiveDateTime;
use rayon::prelude::*;

use crate::data::{
    DataError, GluonEntry, GluonWriteOptions, GluonWriter, IpcCompression, IpcFormat,
};

pub use kernels::{kernel_bank, linspace, Composition, Kernel, Op};
pub use rng::SeriesRng;
pub use sample::{sample_mvn, Draw, SampleMethod, JITTERS};

/// Upstream's series length (`LENGTH`).
pub const DEFAULT_LENGTH: usize = 1024;
/// Longest series accepted: its covariance matrix takes `8 length²` bytes per worker.
pub const MAX_LENGTH: usize = 8192;
/// Most kernels composed per series accepted (upstream uses 5).
pub const MAX_KERNELS: usize = 256;
/// Kernel draws per series before giving up (upstream retries without limit; a non-finite draw
/// is practically impossible with the bank's kernels).
pub const MAX_ATTEMPTS: u32 = 100;

#[derive(Debug, thiserror::Error)]
pub enum KernelSynthError {
    #[error("{0}")]
    InvalidInput(String),
    #[error("series {index}: no finite sample after {attempts} kernel draws")]
    NoFiniteSample { index: u64, attempts: u32 },
    #[error("thread pool: {0}")]
    ThreadPool(#[from] rayon::ThreadPoolBuildError),
    #[error(transparent)]
    Torch(#[from] tch::TchError),
    #[error(transparent)]
    Data(#[from] DataError),
}

/// One generated series.
#[derive(Debug, Clone, PartialEq)]
pub struct SynthSeries {
    pub target: Vec<f64>,
    pub composition: Composition,
    pub method: SampleMethod,
    /// Kernel compositions drawn and discarded before this one (non-finite draws).
    pub redraws: u32,
}

/// Generator settings: series length, the largest number of composed kernels, the seed.
#[derive(Debug, Clone)]
pub struct KernelSynth {
    max_kernels: usize,
    seed: u64,
    grid: Vec<f64>,
    bank: Vec<Kernel>,
}

/// How [`KernelSynth::write_dataset`] writes.
#[derive(Debug, Clone)]
pub struct WriteOptions {
    /// The `start` of every series (upstream: 2000-01-01 00:00:00).
    pub start: NaiveDateTime,
    /// Series per Arrow record batch (and per parallel chunk); GluonTS writes 1024.
    pub batch_size: usize,
    /// Worker threads (each runs libtorch single-threaded).
    pub threads: usize,
    /// Also write a `kernel` text column with each series' [`Composition`].
    pub kernel_column: bool,
    pub compression: IpcCompression,
    pub format: IpcFormat,
}

/// What [`KernelSynth::write_dataset`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Summary {
    pub series: u64,
    /// Series sampled by Cholesky at each jitter level of [`JITTERS`].
    pub cholesky: [u64; JITTERS.len()],
    /// Series sampled by eigendecomposition.
    pub eigh: u64,
    /// Kernel compositions discarded for a non-finite draw, over all series.
    pub redraws: u64,
}

impl Summary {
    fn add(&mut self, s: &SynthSeries) {
        self.series += 1;
        match s.method {
            SampleMethod::Cholesky { level } => self.cholesky[level] += 1,
            SampleMethod::Eigh => self.eigh += 1,
        }
        self.redraws += u64::from(s.redraws);
    }
}

impl KernelSynth {
    /// Series of `length` points (2..=[`MAX_LENGTH`]; the bank's periodicities are in steps of
    /// this length, as upstream's `p / LENGTH`) from 1..=`max_kernels` kernels
    /// (`max_kernels` in 1..=[`MAX_KERNELS`]).
    pub fn new(length: usize, max_kernels: usize, seed: u64) -> Result<Self, KernelSynthError> {
        if !(2..=MAX_LENGTH).contains(&length) {
            return Err(KernelSynthError::InvalidInput(format!(
                "series length {length} is outside 2..={MAX_LENGTH}"
            )));
        }
        if !(1..=MAX_KERNELS).contains(&max_kernels) {
            return Err(KernelSynthError::InvalidInput(format!(
                "the maximum number of kernels {max_kernels} is outside 1..={MAX_KERNELS}"
            )));
        }
        Ok(KernelSynth {
            max_kernels,
            seed,
            grid: linspace(length),
            bank: kernel_bank(length),
        })
    }

    pub fn length(&self) -> usize {
        self.grid.len()
    }

    /// The inputs `linspace(0, 1, length)`.
    pub fn grid(&self) -> &[f64] {
        &self.grid
    }

    pub fn bank(&self) -> &[Kernel] {
        &self.bank
    }

    /// Upstream's draw of a composition: 1..=`max_kernels` kernels of the bank, joined by `+`/`*`.
    pub fn random_composition(&self, rng: &mut SeriesRng) -> Composition {
        Composition::random(&self.bank, self.max_kernels, rng)
    }

    /// One draw from the GP prior with `composition`'s kernel, from `length` normals of `rng`.
    pub fn sample(
        &self,
        composition: &Composition,
        rng: &mut SeriesRng,
    ) -> Result<Option<Draw>, KernelSynthError> {
        let mut normals = vec![0.0; self.length()];
        rng.fill_standard_normal(&mut normals);
        sample_mvn(&composition.matrix(&self.grid), &normals)
    }

    /// Series `index`: compositions are drawn from `SeriesRng::new(seed, index)` until a draw is
    /// finite.
    pub fn series(&self, index: u64) -> Result<SynthSeries, KernelSynthError> {
        let mut rng = SeriesRng::new(self.seed, index);
        for redraws in 0..MAX_ATTEMPTS {
            let composition = self.random_composition(&mut rng);
            if let Some(draw) = self.sample(&composition, &mut rng)? {
                return Ok(SynthSeries {
                    target: draw.values,
                    composition,
                    method: draw.method,
                    redraws,
                });
            }
        }
        Err(KernelSynthError::NoFiniteSample {
            index,
            attempts: MAX_ATTEMPTS,
        })
    }

    /// Series `indices`, in order, generated in parallel on the current rayon pool;
    /// `progress(1)` after each.
    pub fn series_range(
        &self,
        indices: Range<u64>,
        progress: &(dyn Fn(u64) + Sync),
    ) -> Result<Vec<SynthSeries>, KernelSynthError> {
        indices
            .into_par_iter()
            .map(|i| {
                let s = self.series(i);
                progress(1);
                s
            })
            .collect()
    }

    /// Generates series `0..num_series` on `options.threads` workers and writes them to `path`
    /// as a GluonTS Arrow file (`start`, `target`, optionally `kernel`), one record batch per
    /// `batch_size` series, so only one batch is in memory at a time. `progress(k)` reports `k`
    /// more series done. libtorch's thread count, which the workers set to 1, is restored.
    pub fn write_dataset(
        &self,
        path: &Path,
        num_series: u64,
        options: &WriteOptions,
        progress: &(dyn Fn(u64) + Sync),
    ) -> Result<Summary, KernelSynthError> {
        if options.batch_size == 0 || options.threads == 0 {
            return Err(KernelSynthError::InvalidInput(
                "batch size and thread count must be at least 1".into(),
            ));
        }
        let torch_threads = tch::get_num_threads();
        let result = self.write_batches(path, num_series, options, progress);
        tch::set_num_threads(torch_threads);
        result
    }

    fn write_batches(
        &self,
        path: &Path,
        num_series: u64,
        options: &WriteOptions,
        progress: &(dyn Fn(u64) + Sync),
    ) -> Result<Summary, KernelSynthError> {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(options.threads)
            .start_handler(|_| tch::set_num_threads(1))
            .build()?;
        let gluonts = GluonWriteOptions {
            compression: options.compression,
            format: options.format,
            text_columns: match options.kernel_column {
                true => vec!["kernel".into()],
                false => Vec::new(),
            },
        };
        let mut writer = GluonWriter::create(path, &gluonts)?;
        let mut summary = Summary::default();
        let batch = options.batch_size as u64;
        for first in (0..num_series).step_by(options.batch_size) {
            let range = first..num_series.min(first.saturating_add(batch));
            let series = pool.install(|| self.series_range(range, progress))?;
            let mut kernels = Vec::new();
            let mut entries = Vec::with_capacity(series.len());
            for s in series {
                summary.add(&s);
                if options.kernel_column {
                    kernels.push(s.composition.to_string());
                }
                entries.push(GluonEntry {
                    start: options.start,
                    target: s.target,
                });
            }
            let text = match options.kernel_column {
                true => vec![kernels],
                false => Vec::new(),
            };
            writer.write(&entries, &text)?;
        }
        writer.finish()?;
        Ok(summary)
    }
}
