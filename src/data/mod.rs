//! Long-format time-series tables, as used by upstream's `predict_df`.
//!
//! A long-format table has one row per observation with an id column, a timestamp column and a
//! numeric target column. [`read_long`] groups rows into [`Series`] (first-appearance order of
//! ids, sorted by timestamp within each id; other columns are ignored), [`common_freq`] infers
//! the shared pandas frequency, [`future_timestamps`] extends each series and
//! [`write_forecasts`] writes the forecast table (`id, timestamp, target_name, predictions,
//! <quantile levels>...`) as CSV or Parquet.
//!
//! For Chronos-2, [`read_frame`] reads a table with one or more targets where every other
//! column is a covariate, typed as pandas types it, and [`Chronos2Inputs`] turns it and an
//! optional table of known-future covariates into the model's tasks (upstream
//! `from_data_frame`).

mod cells;
mod encode;
mod frame;
mod freq;
mod future;
mod gluonts;
mod long;
mod table;

use std::path::{Path, PathBuf};

use arrow::array::{ArrayRef, RecordBatch};
use arrow::error::ArrowError;
use chrono::NaiveDateTime;
use parquet::errors::ParquetError;

pub use encode::{chronos2_forecast_table, Chronos2Inputs, UnseenCategories};
pub use frame::{
    read_frame, Categorical, CategoryKind, Covariate, CovariateValues, Frame, FrameColumns, Target,
};
pub use freq::{future_timestamps, infer_freq, Anchor, Freq, TickUnit};
pub use gluonts::{
    read_gluonts, GluonEntry, GluonReader, GluonWriteOptions, GluonWriter, IpcCompression,
    IpcFormat,
};
pub use long::{common_freq, read_long, write_forecasts, ForecastTable, Forecasts};
pub use table::column_names;

/// Names of the id, timestamp and target columns of a long-format table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Columns {
    pub id: String,
    pub timestamp: String,
    pub target: String,
}

impl Default for Columns {
    /// `item_id`, `timestamp`, `target` (upstream's defaults).
    fn default() -> Self {
        Self {
            id: "item_id".into(),
            timestamp: "timestamp".into(),
            target: "target".into(),
        }
    }
}

/// Values of one series' column that are infinite, or finite in the table but beyond `f32`
/// (e.g. `1e308`): the models compute in `f32` or lower, where upstream would turn them into a
/// NaN forecast; here they become missing values (`NaN`), as a NaN in the table is.
#[derive(Debug, Clone, PartialEq)]
pub struct NonFinite {
    pub id: String,
    pub column: String,
    pub count: usize,
    /// The first such value and its timestamp.
    pub value: f64,
    pub timestamp: NaiveDateTime,
}

impl std::fmt::Display for NonFinite {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let value = match self.value.is_finite() {
            true => format!("{:e}", self.value),
            false => self.value.to_string(),
        };
        write!(
            f,
            "series '{}': column '{}' has {} value(s) that are infinite or beyond float32 (the first, {value}, at {}); they are treated as missing",
            self.id, self.column, self.count, self.timestamp
        )
    }
}

/// `values` as `f32`, with every value that is not finite in `f32` (infinite, or beyond its
/// range) as `NaN`; a `NaN` stays a `NaN`. Returns the values and the first replaced index
/// with the number replaced.
pub fn finite_f32(values: &[f64]) -> (Vec<f32>, Option<(usize, usize)>) {
    let mut first = None;
    let mut count = 0;
    let out = values
        .iter()
        .enumerate()
        .map(|(i, &v)| {
            let x = v as f32;
            if x.is_infinite() {
                first.get_or_insert(i);
                count += 1;
                f32::NAN
            } else {
                x
            }
        })
        .collect();
    (out, first.map(|i| (i, count)))
}

/// One time series: strictly increasing timestamps and their values (`NaN` = missing).
#[derive(Debug, Clone, PartialEq)]
pub struct Series {
    pub id: String,
    pub timestamps: Vec<NaiveDateTime>,
    pub values: Vec<f64>,
}

impl Series {
    /// The values as a model context ([`finite_f32`]), and what was replaced (`column`: the
    /// target column's name, for the report).
    pub fn context(&self, column: &str) -> (Vec<f32>, Option<NonFinite>) {
        let (values, replaced) = finite_f32(&self.values);
        let report = replaced.map(|(i, count)| NonFinite {
            id: self.id.clone(),
            column: column.to_string(),
            count,
            value: self.values[i],
            timestamp: self.timestamps[i],
        });
        (values, report)
    }
}

/// Errors from reading, validating or writing long-format tables. Rows are counted from 1 over
/// data rows (the CSV header is not counted).
#[derive(Debug, thiserror::Error)]
pub enum DataError {
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{}: unsupported file extension (expected .csv or .parquet)", path.display())]
    UnsupportedExtension { path: PathBuf },
    #[error("{}: {source}", path.display())]
    Arrow {
        path: PathBuf,
        #[source]
        source: ArrowError,
    },
    #[error("{}: {source}", path.display())]
    Parquet {
        path: PathBuf,
        #[source]
        source: ParquetError,
    },
    #[error(
        "{}: missing {role} column '{column}' (available columns: {})",
        path.display(),
        available.join(", ")
    )]
    MissingColumn {
        path: PathBuf,
        role: &'static str,
        column: String,
        available: Vec<String>,
    },
    #[error("{}: {role} column '{column}' has type {found}, expected {expected}", path.display())]
    ColumnType {
        path: PathBuf,
        role: &'static str,
        column: String,
        found: String,
        expected: &'static str,
    },
    #[error("{}: row {row}: id column '{column}' is empty", path.display())]
    MissingId {
        path: PathBuf,
        column: String,
        row: usize,
    },
    #[error("{}: row {row} (series '{id}'): timestamp column '{column}' is empty", path.display())]
    MissingTimestamp {
        path: PathBuf,
        column: String,
        row: usize,
        id: String,
    },
    #[error(
        "{}: row {row} (series '{id}'): cannot parse timestamp '{value}' in column '{column}'",
        path.display()
    )]
    BadTimestamp {
        path: PathBuf,
        column: String,
        row: usize,
        id: String,
        value: String,
    },
    #[error(
        "{}: row {row} (series '{id}'): timestamp column '{column}' mixes UTC offsets: {offsets} (as pandas, one offset per column; convert the column to one offset or to UTC first)",
        path.display()
    )]
    MixedOffsets {
        path: PathBuf,
        column: String,
        row: usize,
        id: String,
        /// `<this row's> here, <the first row's> at row <n>`.
        offsets: String,
    },
    #[error(
        "{}: row {row} (series '{id}'): target column '{column}' holds non-numeric value '{value}'",
        path.display()
    )]
    NonNumericTarget {
        path: PathBuf,
        column: String,
        row: usize,
        id: String,
        value: String,
    },
    #[error("{}: series '{id}' has duplicate timestamp {timestamp}", path.display())]
    DuplicateTimestamp {
        path: PathBuf,
        id: String,
        timestamp: NaiveDateTime,
    },
    #[error("{}: the table has no data rows", path.display())]
    EmptyTable { path: PathBuf },
    #[error(
        "could not infer frequency for series '{id}': timestamps are not regularly spaced \
         (provide an explicit frequency)"
    )]
    IrregularSeries { id: String },
    #[error(
        "all time series must have the same frequency, but series '{first_id}' has \
         '{first_freq}' and series '{other_id}' has '{other_freq}'"
    )]
    FrequencyMismatch {
        first_id: String,
        first_freq: String,
        other_id: String,
        other_freq: String,
    },
    #[error(
        "could not infer frequency: no time series has at least 3 observations \
         (provide an explicit frequency)"
    )]
    NoFrequency,
    #[error("invalid frequency '{freq}' (expected a pandas alias such as h, 15min, D, W-SUN, B, MS, ME, QS-JAN, YE-DEC)")]
    InvalidFrequency { freq: String },
    #[error(
        "series '{id}': timestamps after {last} at frequency '{freq}' leave the supported \
         date range"
    )]
    TimestampOverflow {
        id: String,
        last: NaiveDateTime,
        freq: String,
    },
    #[error("series '{id}' has no observations")]
    EmptySeries { id: String },
    #[error("forecast table: {what} has {found} values, expected {expected}")]
    ShapeMismatch {
        what: &'static str,
        expected: usize,
        found: usize,
    },
    #[error(
        "{}: series '{id}': timestamp {timestamp} cannot be stored as nanoseconds since 1970",
        path.display()
    )]
    TimestampOutOfRange {
        path: PathBuf,
        id: String,
        timestamp: NaiveDateTime,
    },
    #[error("{}: column '{column}' appears more than once in the header", path.display())]
    DuplicateColumn { path: PathBuf, column: String },
    #[error("column '{column}' is named as both the {first} and the {second} column")]
    ConflictingColumns {
        column: String,
        first: &'static str,
        second: &'static str,
    },
    #[error(
        "{}: the future table cannot contain target column '{column}' (it holds known \
         covariates only)",
        path.display()
    )]
    TargetInFuture { path: PathBuf, column: String },
    #[error(
        "{}: column '{column}' of the future table is not a column of {}",
        path.display(),
        past.display()
    )]
    UnknownFutureColumn {
        path: PathBuf,
        column: String,
        past: PathBuf,
    },
    #[error(
        "{}: the future table must hold the same series as {}; missing: [{}], not in the past \
         table: [{}]",
        path.display(),
        past.display(),
        quoted(missing),
        quoted(extra)
    )]
    FutureSeriesMismatch {
        path: PathBuf,
        past: PathBuf,
        missing: Vec<String>,
        extra: Vec<String>,
    },
    #[error(
        "{}: series '{id}' has {found} rows, expected prediction_length = {expected}",
        path.display()
    )]
    FutureLength {
        path: PathBuf,
        id: String,
        found: usize,
        expected: usize,
    },
    #[error(
        "{}: row {row} (series '{id}'): timestamp {found} is not the expected forecast \
         timestamp {expected} (step {step} after the series' last timestamp at frequency \
         '{freq}')",
        path.display()
    )]
    FutureTimestamp {
        path: PathBuf,
        row: usize,
        id: String,
        found: NaiveDateTime,
        expected: NaiveDateTime,
        step: usize,
        freq: String,
    },
    #[error(
        "{}: covariate '{column}' is {found} here but {expected} in {}",
        path.display(),
        past.display()
    )]
    CovariateTypeMismatch {
        path: PathBuf,
        column: String,
        found: &'static str,
        expected: &'static str,
        past: PathBuf,
    },
    #[error(
        "{}: row {row} (series '{id}'): known-future covariate '{column}' is missing; its \
         value is needed at every forecast step (upstream would silently treat the step as \
         unknown)",
        path.display()
    )]
    FutureMissingValue {
        path: PathBuf,
        row: usize,
        id: String,
        column: String,
    },
    #[error("{}: row {row}: column '{column}' {problem}", path.display())]
    BadEntry {
        path: PathBuf,
        row: usize,
        column: String,
        problem: String,
    },
}

/// `'a', 'b'` (the first 5, then `...`).
fn quoted(items: &[String]) -> String {
    let mut shown: Vec<String> = items.iter().take(5).map(|s| format!("'{s}'")).collect();
    if items.len() > 5 {
        shown.push("...".into());
    }
    shown.join(", ")
}

/// Column `name` of `batch` (read from `path`, for the `role` named in errors), or a
/// [`DataError::MissingColumn`] listing the batch's columns.
pub(crate) fn column<'b>(
    path: &Path,
    batch: &'b RecordBatch,
    role: &'static str,
    name: &str,
) -> Result<&'b ArrayRef, DataError> {
    batch
        .column_by_name(name)
        .ok_or_else(|| DataError::MissingColumn {
            path: path.to_path_buf(),
            role,
            column: name.to_string(),
            available: batch
                .schema()
                .fields()
                .iter()
                .map(|f| f.name().clone())
                .collect(),
        })
}
