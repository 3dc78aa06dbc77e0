//! Errors of the training data pipeline; each names the file, option or state field at fault.

use std::path::PathBuf;

use crate::data::DataError;

#[derive(Debug, thiserror::Error)]
pub enum TrainDataError {
    /// Reading a dataset failed (the message names the file, and the row where relevant).
    #[error(transparent)]
    Data(#[from] DataError),

    #[error("training data options: {0}")]
    InvalidOptions(String),

    #[error(
        "{}: no series passes the filters ({series} series: {too_short} shorter than \
         {min_length}, {too_many_missing} with more than {max_missing_prop} missing)",
        path.display()
    )]
    NoUsableSeries {
        path: PathBuf,
        series: u64,
        too_short: u64,
        too_many_missing: u64,
        min_length: usize,
        max_missing_prop: f64,
    },

    #[error(
        "{}: no training instance in {passes} passes over its {kept} series (every sampled \
         window's past is entirely missing)",
        path.display()
    )]
    NoInstances {
        path: PathBuf,
        passes: u64,
        kept: u64,
    },

    #[error(
        "{}: the file changed since it was opened (pass {pass} saw {found} usable series, the \
         first pass {expected})",
        path.display()
    )]
    FileChanged {
        path: PathBuf,
        pass: u64,
        expected: u64,
        found: u64,
    },

    #[error("data state: unsupported format version {found} (expected {expected})")]
    StateVersion { found: u32, expected: u32 },

    #[error(
        "data state was saved for a different data stream: {field} is {saved} in the state but \
         {current} now"
    )]
    StateMismatch {
        field: String,
        saved: String,
        current: String,
    },

    #[error("training data thread pool: {0}")]
    ThreadPool(#[from] rayon::ThreadPoolBuildError),

    #[error("training data: {0}")]
    Torch(#[from] tch::TchError),

    /// The background producer stopped (after an earlier error, or a panic).
    #[error("training data producer stopped: {0}")]
    Stopped(String),
}
