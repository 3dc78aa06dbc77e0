//! The Chronos benchmark protocol (upstream `scripts/evaluation/evaluate.py` and
//! `agg-relative-score.py`): [`config`] reads the benchmark lists, [`dataset`] the datasets in
//! the layout of the HF datasets `autogluon/chronos_datasets(_extra)` (from a local folder or,
//! through [`hub`], the HF cache), [`split`] cuts forecast windows as GluonTS `split` +
//! `generate_instances` ([`history`] keeps what lies before them, for training), [`model`]
//! forecasts them (a Chronos pipeline or the seasonal-naive baseline), [`run`] scores a dataset
//! with [`crate::metrics`], and [`results`] writes the results CSV and aggregates relative
//! scores against a baseline.

pub mod config;
pub mod dataset;
pub mod history;
pub mod hub;
pub mod model;
pub mod results;
pub mod run;
pub mod split;

use std::path::{Path, PathBuf};

use crate::data::DataError;
use crate::error::ChronosError;
use crate::metrics::MetricError;

pub use config::{read_benchmarks, Benchmark};
pub use dataset::{locate, read_dataset, Dataset, DatasetSeries};
pub use history::{training_history, History};
pub use model::{Model, ModelOptions};
pub use results::{read_results, relative_scores, write_results, RelativeScores, ResultRow};
pub use run::{evaluate_dataset, DatasetEvaluation};
pub use split::{history_end, window_start, windows, Window, Windows};

/// Errors of the evaluation: each names the file, the dataset or the series it is about.
#[derive(Debug, thiserror::Error)]
pub enum EvalError {
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{}: invalid benchmark config: {message}", path.display())]
    Config { path: PathBuf, message: String },
    #[error(
        "dataset '{name}' not found in {}: looked for {}",
        dir.display(),
        tried.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(", ")
    )]
    DatasetNotFound {
        name: String,
        dir: PathBuf,
        tried: Vec<PathBuf>,
    },
    #[error("dataset '{name}' of {repo}: {message}")]
    Hub {
        repo: String,
        name: String,
        message: String,
    },
    #[error("{}: {message}", path.display())]
    Layout { path: PathBuf, message: String },
    #[error("dataset '{dataset}', series '{series}': {source}")]
    Metric {
        dataset: String,
        series: String,
        #[source]
        source: MetricError,
    },
    #[error("{}: {message}", path.display())]
    Results { path: PathBuf, message: String },
    #[error("{0}")]
    InvalidInput(String),
    #[error("not supported: {0}")]
    Unsupported(String),
    #[error(transparent)]
    Data(#[from] DataError),
    #[error(transparent)]
    Model(#[from] ChronosError),
}

impl EvalError {
    pub(crate) fn io(path: &Path, source: std::io::Error) -> Self {
        EvalError::Io {
            path: path.to_path_buf(),
            source,
        }
    }

    pub(crate) fn layout(path: &Path, message: impl Into<String>) -> Self {
        EvalError::Layout {
            path: path.to_path_buf(),
            message: message.into(),
        }
    }
}
