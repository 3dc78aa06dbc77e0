//! The datasets: a first pass that validates each file and counts what the filters keep, then a
//! background reader per dataset that streams the kept entries pass after pass (GluonTS'
//! `Cyclic(Filter(...))`), one Arrow record batch at a time.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender};
use std::sync::Arc;
use std::thread::JoinHandle;

use super::error::TrainDataError;
use super::instance::{gluonts_last_value_imputation, has_enough_observations, EntryFilter};
use crate::data::GluonReader;

/// Record batches each reader decodes ahead of the stream.
const READ_AHEAD: usize = 2;

/// What the filters made of one dataset file.
#[derive(Debug, Clone, PartialEq)]
pub struct DatasetStats {
    pub path: PathBuf,
    /// Normalised mixing probability.
    pub probability: f64,
    /// Rows in the file.
    pub series: u64,
    /// Dropped: fewer than `min_past + prediction_length` values.
    pub too_short: u64,
    /// Dropped: too large a proportion of missing values.
    pub too_many_missing: u64,
    /// Series used for training.
    pub kept: u64,
    /// Values of the kept series.
    pub kept_values: u64,
}

impl fmt::Display for DatasetStats {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} (probability {:.4}): {} of {} series kept ({} values); dropped {} too short, {} \
             with too many missing values",
            self.path.display(),
            self.probability,
            self.kept,
            self.series,
            self.kept_values,
            self.too_short,
            self.too_many_missing
        )
    }
}

/// The entry filter's parameters.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Filter {
    pub min_length: usize,
    pub max_missing_prop: f64,
}

impl Filter {
    fn check(&self, target: &[f64]) -> EntryFilter {
        has_enough_observations(target, self.min_length, self.max_missing_prop)
    }
}

/// Reads `path` once, counting rows and filter outcomes (errors name the file and row).
pub(crate) fn scan(
    path: &Path,
    probability: f64,
    filter: Filter,
) -> Result<DatasetStats, TrainDataError> {
    let mut stats = DatasetStats {
        path: path.to_path_buf(),
        probability,
        series: 0,
        too_short: 0,
        too_many_missing: 0,
        kept: 0,
        kept_values: 0,
    };
    for batch in GluonReader::open(path)? {
        for entry in batch? {
            stats.series += 1;
            match filter.check(&entry.target) {
                EntryFilter::Keep => {
                    stats.kept += 1;
                    stats.kept_values += entry.target.len() as u64;
                }
                EntryFilter::TooShort => stats.too_short += 1,
                EntryFilter::TooManyMissing => stats.too_many_missing += 1,
            }
        }
    }
    if stats.kept == 0 {
        return Err(TrainDataError::NoUsableSeries {
            path: path.to_path_buf(),
            series: stats.series,
            too_short: stats.too_short,
            too_many_missing: stats.too_many_missing,
            min_length: filter.min_length,
            max_missing_prop: filter.max_missing_prop,
        });
    }
    Ok(stats)
}

/// A kept entry, preprocessed (f32, imputed for causal models).
#[derive(Debug)]
pub(crate) struct Entry {
    /// Pass over the file (0-based).
    pub pass: u64,
    /// Row in the file (0-based, counting dropped rows).
    pub row: u64,
    pub values: Vec<f32>,
}

type Chunk = Result<Vec<Entry>, TrainDataError>;

/// Background reader of one dataset: kept entries in file order, cycling without end.
pub(crate) struct Reader {
    rx: Receiver<Chunk>,
    handle: Option<JoinHandle<()>>,
}

impl Reader {
    /// Starts reading `path`, whose passes must each keep `kept` entries.
    pub fn spawn(
        path: PathBuf,
        filter: Filter,
        impute: bool,
        kept: u64,
        stop: Arc<AtomicBool>,
    ) -> Reader {
        let (tx, rx) = sync_channel(READ_AHEAD);
        let handle = std::thread::Builder::new()
            .name("chronos-train-reader".into())
            .spawn(move || {
                if let Err(e) = read_cycles(&path, filter, impute, kept, &stop, &tx) {
                    let _ = tx.send(Err(e));
                }
            })
            .ok();
        Reader { rx, handle }
    }

    /// The next record batch's kept entries (never empty).
    pub fn next_chunk(&mut self) -> Result<Vec<Entry>, TrainDataError> {
        match self.rx.recv() {
            Ok(chunk) => chunk,
            Err(_) => Err(TrainDataError::Stopped(
                "a dataset reader thread ended unexpectedly".into(),
            )),
        }
    }
}

impl Drop for Reader {
    fn drop(&mut self) {
        // A reader blocked on a full channel wakes up with an error once the receiver is gone.
        drop(std::mem::replace(&mut self.rx, sync_channel(0).1));
        if let Some(handle) = self.handle.take() {
            let _ = handle.join();
        }
    }
}

/// Sends the kept entries of `path`, pass after pass, until `stop` is set or the receiver leaves.
fn read_cycles(
    path: &Path,
    filter: Filter,
    impute: bool,
    kept: u64,
    stop: &AtomicBool,
    tx: &SyncSender<Chunk>,
) -> Result<(), TrainDataError> {
    for pass in 0u64.. {
        let mut row = 0u64;
        let mut found = 0u64;
        for batch in GluonReader::open(path)? {
            if stop.load(Ordering::Relaxed) {
                return Ok(());
            }
            let mut entries = Vec::new();
            for entry in batch? {
                if filter.check(&entry.target) == EntryFilter::Keep {
                    let mut values: Vec<f32> = entry.target.iter().map(|&v| v as f32).collect();
                    if impute {
                        gluonts_last_value_imputation(&mut values);
                    }
                    entries.push(Entry { pass, row, values });
                }
                row += 1;
            }
            found += entries.len() as u64;
            if found > kept {
                break;
            }
            if !entries.is_empty() && tx.send(Ok(entries)).is_err() {
                return Ok(());
            }
        }
        if found != kept {
            return Err(TrainDataError::FileChanged {
                path: path.to_path_buf(),
                pass,
                expected: kept,
                found,
            });
        }
    }
    Ok(())
}
