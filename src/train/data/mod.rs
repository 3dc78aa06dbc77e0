//! The training data pipeline of upstream `scripts/training/train.py`: GluonTS Arrow datasets
//! mixed by probability, filtered, cut into instances by GluonTS' `InstanceSplitter` with an
//! `ExpectedNumInstanceSampler`, pseudo-shuffled and batched for Chronos-T5, the causal variant
//! or Chronos-Bolt.
//!
//! ```text
//! file d ─ filter (length ≥ min_past + H, missing ≤ max_missing_prop) ─ cycle ─┐
//!   preprocess (f32; causal: last-value imputation; else random drops ≤ drop_prob)
//!   ─ sampler (split points, ≈1.37 per series) ─ cut (past C NaN-left-padded, future H)
//!   ─ keep if the past has an observed value ────────────────────────────────────┤
//! mix (dataset d with probability p_d) ─ shuffle buffer ─ batch ─ tokenise ─ channel ─ model
//! ```
//!
//! **Threads.** [`TrainingData::open`] reads every file once (in parallel) to validate it and
//! count the filters' outcomes ([`TrainingData::stats`]). Batches are then made by a background
//! producer thread, `prefetch` batches ahead of [`TrainingData::next_batch`] (a bounded
//! channel), with one reader thread per dataset decoding Arrow record batches ahead of it and a
//! rayon pool of `threads` workers cutting instances. The model never waits unless the
//! producer is slower than a training step ([`TrainingData::waits`] counts the calls that had to
//! wait; the first always does).
//!
//! **Determinism and resuming.** Every random choice comes from counter-based streams keyed by
//! the seed (see `rng`), and every sequential decision is made in stream order, so the batches
//! are a function of the options (less `threads` and `prefetch`) and of the files' contents: the
//! same seed gives the same batches whatever the thread count. A [`DataState`] is therefore
//! just the number of batches delivered (plus a description of the stream to check it against):
//! [`TrainingData::restore`] replays the stream from the start up to that point, cutting the
//! instances but not tokenising them, then goes on bit for bit as the saved run would have. The
//! replay costs about one read of the data consumed so far (seconds to minutes for long runs);
//! the state itself is a few hundred bytes.
//!
//! **Memory.** Files are streamed one Arrow record batch at a time (up to four decoded record
//! batches per dataset in flight, so a file written as one huge batch is held whole). The
//! shuffle buffer holds `shuffle_buffer_length` instances of `C + H` f32 values (upstream's
//! 100 000 × (512 + 64) is 230 MB).
//!
//! **Upstream differences** (random streams aside, which cannot match numpy's; the sampler's
//! geometric skipping and the buffer's swap-remove draw from the same distributions as GluonTS'
//! per-position draws and `list.pop`): datasets with no
//! usable series are an error at open instead of being silently left out of the mix, and a
//! dataset that yields no instance for three passes is an error instead of an endless loop;
//! `min_past` 0 is taken literally; a file whose filtered size changes between passes is an
//! error.

mod batch;
mod error;
mod instance;
mod options;
mod rng;
mod sampler;
mod source;
mod stream;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{sync_channel, Receiver, TryRecvError};
use std::sync::Arc;
use std::thread::JoinHandle;

use rayon::prelude::*;
use serde::{Deserialize, Serialize};

pub use batch::{Batch, BatchBuilder, IGNORE_INDEX};
pub use error::TrainDataError;
pub use instance::{
    gluonts_last_value_imputation, has_enough_observations, split_instance, DropMask, EntryFilter,
    Instance,
};
pub use options::{DataOptions, Mode, Shard, DROP_PROB};
pub use sampler::ExpectedNumInstanceSampler;
pub use source::DatasetStats;
pub use stream::Origin;

use source::{scan, Filter};
use stream::InstanceStream;

/// Version of the [`DataState`] layout.
pub const STATE_FORMAT: u32 = 1;

/// Where the training data stream stands, for `--resume`: restore it into a [`TrainingData`]
/// opened with the same files and options to continue with the next batch.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DataState {
    pub format: u32,
    /// Batches delivered so far (each of `stream.global_batch_size` instances of the stream).
    pub batches: u64,
    pub stream: StreamSpec,
}

/// What defines the stream, compared on restore (everything but thread counts and the rank).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StreamSpec {
    pub seed: u64,
    pub datasets: Vec<DatasetSpec>,
    pub context_length: usize,
    pub prediction_length: usize,
    pub min_past: usize,
    pub max_missing_prop: f64,
    pub shuffle_buffer_length: usize,
    pub global_batch_size: usize,
    pub mode: Mode,
}

/// One dataset as the stream sees it: its file name (the folder may move), normalised
/// probability and row counts.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DatasetSpec {
    pub file_name: String,
    pub probability: f64,
    pub series: u64,
    pub kept: u64,
}

type Produced = Result<(Batch, Vec<Origin>), TrainDataError>;

/// The background producer: its channel, thread and stop flag.
struct Producer {
    rx: Receiver<Produced>,
    handle: Option<JoinHandle<()>>,
    stop: Arc<AtomicBool>,
}

impl Producer {
    /// Starts making batches after skipping the first `skip` batches of the stream.
    fn spawn(stats: Vec<DatasetStats>, options: DataOptions, skip: u64) -> Producer {
        let stop = Arc::new(AtomicBool::new(false));
        let (tx, rx) = sync_channel(options.prefetch);
        let flag = stop.clone();
        let handle = std::thread::Builder::new()
            .name("chronos-train-data".into())
            .spawn(move || {
                crate::runtime::serial_tensor_ops();
                if let Err(e) = produce(&stats, &options, skip, &flag, &tx) {
                    let _ = tx.send(Err(e));
                }
            })
            .ok();
        Producer { rx, handle, stop }
    }
}

impl Drop for Producer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        drop(std::mem::replace(&mut self.rx, sync_channel(0).1));
        if let Some(handle) = self.handle.take() {
            let _ = handle.join();
        }
    }
}

/// The producer thread's loop: replay `skip` batches, then send batches until the receiver
/// leaves or `stop` is set.
fn produce(
    stats: &[DatasetStats],
    options: &DataOptions,
    skip: u64,
    stop: &Arc<AtomicBool>,
    tx: &std::sync::mpsc::SyncSender<Produced>,
) -> Result<(), TrainDataError> {
    let mut stream = InstanceStream::new(stats, options, stop.clone())?;
    let builder = BatchBuilder::new(&options.mode)?;
    let global = options.global_batch_size() as u64;
    for _ in 0..skip.saturating_mul(global) {
        if stop.load(Ordering::Relaxed) {
            return Ok(());
        }
        stream.next()?;
    }
    let mine =
        options.shard.rank * options.batch_size..(options.shard.rank + 1) * options.batch_size;
    loop {
        let mut instances = Vec::with_capacity(options.batch_size);
        let mut origins = Vec::with_capacity(options.batch_size);
        for i in 0..options.global_batch_size() {
            if stop.load(Ordering::Relaxed) {
                return Ok(());
            }
            let (instance, origin) = stream.next()?;
            if mine.contains(&i) {
                instances.push(instance);
                origins.push(origin);
            }
        }
        let batch = builder.build(&instances)?;
        if tx.send(Ok((batch, origins))).is_err() {
            return Ok(());
        }
    }
}

/// The training data stream: open, then call [`TrainingData::next_batch`] once per step.
pub struct TrainingData {
    options: DataOptions,
    stats: Vec<DatasetStats>,
    spec: StreamSpec,
    batches: u64,
    waits: u64,
    producer: Option<Producer>,
    failed: Option<String>,
}

impl TrainingData {
    /// Checks the options, then reads each of `paths` (GluonTS Arrow files) once to validate it
    /// and count what the filters keep. `probabilities` (one per path, any positive scale) mix
    /// the datasets; `None` mixes them uniformly. Errors name the option or the file (and row)
    /// at fault, including a file none of whose series pass the filters.
    pub fn open(
        paths: &[PathBuf],
        probabilities: Option<&[f64]>,
        options: DataOptions,
    ) -> Result<Self, TrainDataError> {
        options.validate()?;
        let probabilities = options::normalise_probabilities(paths.len(), probabilities)?;
        let filter = Filter {
            min_length: options.min_length(),
            max_missing_prop: options.max_missing_prop,
        };
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(options.threads)
            .build()?;
        let scanned: Vec<_> = pool.install(|| {
            paths
                .par_iter()
                .zip(&probabilities)
                .map(|(path, &p)| scan(path, p, filter))
                .collect()
        });
        let stats = scanned.into_iter().collect::<Result<Vec<_>, _>>()?;
        let spec = StreamSpec {
            seed: options.seed,
            datasets: stats
                .iter()
                .map(|s| DatasetSpec {
                    file_name: file_name(&s.path),
                    probability: s.probability,
                    series: s.series,
                    kept: s.kept,
                })
                .collect(),
            context_length: options.context_length,
            prediction_length: options.prediction_length,
            min_past: options.min_past,
            max_missing_prop: options.max_missing_prop,
            shuffle_buffer_length: options.shuffle_buffer_length,
            global_batch_size: options.global_batch_size(),
            mode: options.mode.clone(),
        };
        Ok(TrainingData {
            options,
            stats,
            spec,
            batches: 0,
            waits: 0,
            producer: None,
            failed: None,
        })
    }

    /// The next batch (this process's rows of it). The stream never ends: datasets cycle.
    pub fn next_batch(&mut self) -> Result<Batch, TrainDataError> {
        self.next_batch_with_origins().map(|(batch, _)| batch)
    }

    /// The next batch and where each of its rows comes from.
    pub fn next_batch_with_origins(&mut self) -> Result<(Batch, Vec<Origin>), TrainDataError> {
        if let Some(reason) = &self.failed {
            return Err(TrainDataError::Stopped(reason.clone()));
        }
        let (stats, options, skip) = (&self.stats, &self.options, self.batches);
        let producer = self
            .producer
            .get_or_insert_with(|| Producer::spawn(stats.clone(), options.clone(), skip));
        let produced = match producer.rx.try_recv() {
            Ok(produced) => Some(produced),
            Err(TryRecvError::Empty) => {
                self.waits += 1;
                producer.rx.recv().ok()
            }
            Err(TryRecvError::Disconnected) => None,
        };
        let produced = produced.unwrap_or_else(|| {
            Err(TrainDataError::Stopped(
                "the producer thread ended unexpectedly".into(),
            ))
        });
        match produced {
            Ok(item) => {
                self.batches += 1;
                Ok(item)
            }
            Err(e) => {
                self.failed = Some(e.to_string());
                self.producer = None;
                Err(e)
            }
        }
    }

    /// The position of the stream: restoring it continues after the last batch delivered.
    pub fn state(&self) -> DataState {
        DataState {
            format: STATE_FORMAT,
            batches: self.batches,
            stream: self.spec.clone(),
        }
    }

    /// Continues the stream from `state` (saved by a run with the same files and options, any
    /// thread counts): the next batch is the one that run would have delivered next. The
    /// producer replays the stream up to there in the background.
    pub fn restore(&mut self, state: &DataState) -> Result<(), TrainDataError> {
        if state.format != STATE_FORMAT {
            return Err(TrainDataError::StateVersion {
                found: state.format,
                expected: STATE_FORMAT,
            });
        }
        let saved = serde_json::to_value(&state.stream).unwrap_or_default();
        let current = serde_json::to_value(&self.spec).unwrap_or_default();
        if let Some((field, saved, current)) = first_difference(&saved, &current, "") {
            return Err(TrainDataError::StateMismatch {
                field,
                saved,
                current,
            });
        }
        self.producer = None;
        self.failed = None;
        self.batches = state.batches;
        Ok(())
    }

    /// What the filters made of each dataset, in the order of the paths.
    pub fn stats(&self) -> &[DatasetStats] {
        &self.stats
    }

    pub fn options(&self) -> &DataOptions {
        &self.options
    }

    /// Batches delivered so far (restored ones included).
    pub fn batches(&self) -> u64 {
        self.batches
    }

    /// Calls of `next_batch` that found no batch ready and waited for the producer.
    pub fn waits(&self) -> u64 {
        self.waits
    }
}

fn file_name(path: &Path) -> String {
    path.file_name().map_or_else(
        || path.display().to_string(),
        |n| n.to_string_lossy().into_owned(),
    )
}

/// The first leaf where `a` and `b` differ, as (dotted path, `a`, `b`); numbers equal to a
/// relative 1e-12 (JSON round trips may move the last bit).
fn first_difference(
    a: &serde_json::Value,
    b: &serde_json::Value,
    at: &str,
) -> Option<(String, String, String)> {
    use serde_json::Value;
    let here = |a: &Value, b: &Value| {
        let name = if at.is_empty() { "stream" } else { at };
        Some((name.to_string(), a.to_string(), b.to_string()))
    };
    let join = |key: &str| match at {
        "" => key.to_string(),
        _ => format!("{at}.{key}"),
    };
    match (a, b) {
        (Value::Object(x), Value::Object(y)) => {
            let mut keys: Vec<&String> = x.keys().chain(y.keys()).collect();
            keys.sort();
            keys.dedup();
            keys.into_iter().find_map(|k| {
                let (u, v) = (
                    x.get(k).unwrap_or(&Value::Null),
                    y.get(k).unwrap_or(&Value::Null),
                );
                first_difference(u, v, &join(k))
            })
        }
        (Value::Array(x), Value::Array(y)) if x.len() == y.len() => x
            .iter()
            .zip(y)
            .enumerate()
            .find_map(|(i, (u, v))| first_difference(u, v, &format!("{at}[{i}]"))),
        (Value::Number(x), Value::Number(y)) => match (x.as_f64(), y.as_f64()) {
            (Some(u), Some(v)) if x.is_f64() || y.is_f64() => {
                ((u - v).abs() > 1e-12 * u.abs().max(v.abs())).then(|| here(a, b))?
            }
            _ => (x != y).then(|| here(a, b))?,
        },
        _ => (a != b).then(|| here(a, b))?,
    }
}
