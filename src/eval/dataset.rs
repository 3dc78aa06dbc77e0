//! Benchmark datasets in the layout of the HF datasets `autogluon/chronos_datasets(_extra)`:
//! one row per item with a `timestamp` list column and one or more numeric list columns, each of
//! which is a separate univariate series (upstream `to_gluonts_univariate`; ETTh's two rows of
//! seven variables are 14 series). Other columns (`id`, static features) are not series; `id`
//! names them. Files are Parquet or Arrow IPC (file or stream format, as `datasets` caches them),
//! possibly in several shards. GluonTS-style Arrow files (`start`, `target`) are accepted too.

use std::fs::File;
use std::io::{BufReader, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use arrow::array::{Array, ArrayRef, AsArray, RecordBatch};
use arrow::buffer::NullBuffer;
use arrow::compute::cast;
use arrow::datatypes::{DataType, Float64Type, Int32Type, Int64Type, SchemaRef, TimeUnit};
use arrow::error::ArrowError;
use arrow::ipc::reader::{FileReader, StreamReader};
use arrow::temporal_conversions::{
    date32_to_datetime, date64_to_datetime, timestamp_ms_to_datetime, timestamp_ns_to_datetime,
    timestamp_s_to_datetime, timestamp_us_to_datetime,
};
use chrono::NaiveDateTime;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;

use super::EvalError;
use crate::data::DataError;
use crate::data::{infer_freq, read_gluonts, Freq};

/// Name of the timestamp list column.
pub const TIMESTAMP_COLUMN: &str = "timestamp";
/// Name of the item id column (optional; row numbers name the items without it).
pub const ID_COLUMN: &str = "id";
const EXTENSIONS: [&str; 2] = ["parquet", "arrow"];

/// One univariate series: `id` is the item id, followed by `/column` when the dataset has
/// several series columns (ETTh: `ETTh1/HUFL`).
#[derive(Debug, Clone, PartialEq)]
pub struct DatasetSeries {
    pub id: String,
    /// Timestamp of the first value (`None` for a series with no values).
    pub start: Option<NaiveDateTime>,
    /// The whole history (`NaN` = missing).
    pub values: Vec<f64>,
}

/// A benchmark dataset: all its univariate series, in upstream's order (rows, then series
/// columns in schema order), and the frequency of its first row's timestamps.
#[derive(Debug, Clone, PartialEq)]
pub struct Dataset {
    pub name: String,
    pub freq: Freq,
    pub series: Vec<DatasetSeries>,
}

/// The files of dataset `name` in `dir`: `<name>.parquet`, `<name>.arrow`, or the shards
/// (`*.parquet`, `*.arrow`, sorted by name) of a folder `<name>/` as the HF repos lay them out.
/// None of them is an error naming what was looked for.
pub fn locate(dir: &Path, name: &str) -> Result<Vec<PathBuf>, EvalError> {
    let mut tried = Vec::new();
    for ext in EXTENSIONS {
        let file = dir.join(format!("{name}.{ext}"));
        if file.is_file() {
            return Ok(vec![file]);
        }
        tried.push(file);
    }
    let folder = dir.join(name);
    if folder.is_dir() {
        let shards = shards_in(&folder)?;
        if !shards.is_empty() {
            return Ok(shards);
        }
    }
    tried.push(folder.join("*.parquet|*.arrow"));
    Err(EvalError::DatasetNotFound {
        name: name.to_string(),
        dir: dir.to_path_buf(),
        tried,
    })
}

/// The `*.parquet` and `*.arrow` files directly in `folder`, sorted by name.
pub(crate) fn shards_in(folder: &Path) -> Result<Vec<PathBuf>, EvalError> {
    let entries = std::fs::read_dir(folder).map_err(|e| EvalError::io(folder, e))?;
    let mut shards = Vec::new();
    for entry in entries {
        let path = entry.map_err(|e| EvalError::io(folder, e))?.path();
        let known = path
            .extension()
            .and_then(|e| e.to_str())
            .is_some_and(|e| EXTENSIONS.contains(&e));
        if known && path.is_file() {
            shards.push(path);
        }
    }
    shards.sort();
    Ok(shards)
}

/// Reads dataset `name` from its `files` (shards, in order; all in the same layout). The
/// frequency is `freq` when given, else inferred from the first row's timestamps (upstream:
/// `pd.DatetimeIndex(row0.timestamp).to_period()`).
///
/// GluonTS-style Arrow files (`start`, `target`; see [`crate::data::read_gluonts`]) are read
/// too, one series per row named `row<N>`; having no timestamps, they need `freq`.
pub fn read_dataset(
    name: &str,
    files: &[PathBuf],
    freq: Option<Freq>,
) -> Result<Dataset, EvalError> {
    let first = files
        .first()
        .ok_or_else(|| EvalError::InvalidInput(format!("dataset '{name}': no files to read")))?;
    let mut reader = DatasetReader::default();
    let mut gluonts_files = Vec::new();
    for file in files {
        let (schema, batches) = open_batches(file)?;
        if schema.index_of(TIMESTAMP_COLUMN).is_err() && is_gluonts(file, &schema) {
            for entry in read_gluonts(file)? {
                let id = format!("row{}", reader.series.len());
                reader.series.push(DatasetSeries {
                    id,
                    start: Some(entry.start),
                    values: entry.target,
                });
            }
            gluonts_files.push(file);
            continue;
        }
        for batch in batches {
            let batch = batch.map_err(|source| DataError::Arrow {
                path: file.clone(),
                source,
            })?;
            reader.push(file, &batch)?;
        }
    }
    if let (Some(gluonts), Some(_)) = (gluonts_files.first(), &reader.columns) {
        return Err(EvalError::layout(
            gluonts,
            "GluonTS-style (start, target) shard among shards in the chronos_datasets layout",
        ));
    }
    let freq = match (freq, reader.first_timestamps) {
        (Some(freq), _) => freq,
        (None, Some((row0_id, row0))) => infer_freq(&row0).ok_or_else(|| {
            EvalError::layout(
                first,
                format!(
                    "cannot infer a frequency from the {} timestamps of the first row \
                     ('{row0_id}'): at least 3 regularly spaced timestamps are needed (or set \
                     `freq` in the benchmark config)",
                    row0.len()
                ),
            )
        })?,
        (None, None) if !gluonts_files.is_empty() => {
            return Err(EvalError::layout(
                first,
                "a GluonTS-style (start, target) dataset has no timestamps to infer the \
                 frequency from: set `freq` in the benchmark config",
            ))
        }
        (None, None) => return Err(EvalError::layout(first, "the dataset has no rows")),
    };
    if reader.series.is_empty() {
        return Err(EvalError::layout(first, "the dataset has no series"));
    }
    Ok(Dataset {
        name: name.to_string(),
        freq,
        series: reader.series,
    })
}

type Batches = Box<dyn Iterator<Item = Result<RecordBatch, ArrowError>>>;

/// The schema and record batches of a Parquet file or an Arrow IPC file or stream.
fn open_batches(path: &Path) -> Result<(SchemaRef, Batches), EvalError> {
    let arrow_err = |source| DataError::Arrow {
        path: path.to_path_buf(),
        source,
    };
    let file = File::open(path).map_err(|e| EvalError::io(path, e))?;
    if path.extension().and_then(|e| e.to_str()) == Some("parquet") {
        let parquet_err = |source| DataError::Parquet {
            path: path.to_path_buf(),
            source,
        };
        let builder = ParquetRecordBatchReaderBuilder::try_new(file).map_err(parquet_err)?;
        let schema = builder.schema().clone();
        let reader = builder.build().map_err(parquet_err)?;
        return Ok((schema, Box::new(reader)));
    }
    // Arrow IPC: the file format starts with the magic "ARROW1"; the stream format does not.
    let mut file = BufReader::new(file);
    let mut magic = [0u8; 6];
    let is_file_format = file.read_exact(&mut magic).is_ok() && &magic == b"ARROW1";
    file.seek(SeekFrom::Start(0))
        .map_err(|e| EvalError::io(path, e))?;
    if is_file_format {
        let reader = FileReader::try_new(file, None).map_err(arrow_err)?;
        Ok((reader.schema(), Box::new(reader)))
    } else {
        let reader = StreamReader::try_new(file, None).map_err(arrow_err)?;
        Ok((reader.schema(), Box::new(reader)))
    }
}

/// An Arrow file with `start` and `target` columns (GluonTS' Arrow datasets are not Parquet).
fn is_gluonts(path: &Path, schema: &SchemaRef) -> bool {
    path.extension().and_then(|e| e.to_str()) == Some("arrow")
        && schema.index_of("start").is_ok()
        && schema.index_of("target").is_ok()
}

/// Rows of list columns: `offsets[i]..offsets[i + 1]` of `values` is row `i`.
struct Lists {
    offsets: Vec<usize>,
    values: ArrayRef,
    nulls: Option<NullBuffer>,
}

impl Lists {
    fn of(col: &ArrayRef) -> Option<Self> {
        let (offsets, values): (Vec<usize>, ArrayRef) = if let Some(l) = col.as_list_opt::<i32>() {
            let offsets = l.value_offsets().iter().map(|&o| o as usize).collect();
            (offsets, l.values().clone())
        } else if let Some(l) = col.as_list_opt::<i64>() {
            let offsets = l.value_offsets().iter().map(|&o| o as usize).collect();
            (offsets, l.values().clone())
        } else if let Some(l) = col.as_fixed_size_list_opt() {
            let size = l.value_length() as usize;
            (
                (0..=l.len()).map(|i| i * size).collect(),
                l.values().clone(),
            )
        } else {
            return None;
        };
        Some(Lists {
            offsets,
            values,
            nulls: col.logical_nulls(),
        })
    }

    fn rows(&self) -> usize {
        self.offsets.len() - 1
    }

    fn range(&self, row: usize) -> std::ops::Range<usize> {
        self.offsets[row]..self.offsets[row + 1]
    }

    fn is_null(&self, row: usize) -> bool {
        self.nulls.as_ref().is_some_and(|n| n.is_null(row))
    }
}

fn is_numeric(dt: &DataType) -> bool {
    dt.is_integer() || dt.is_floating() || matches!(dt, DataType::Decimal128(..))
}

#[derive(Default)]
struct DatasetReader {
    /// Series column names of the first batch; later batches and shards must match.
    columns: Option<Vec<String>>,
    rows: usize,
    first_timestamps: Option<(String, Vec<NaiveDateTime>)>,
    series: Vec<DatasetSeries>,
}

impl DatasetReader {
    fn push(&mut self, path: &Path, batch: &RecordBatch) -> Result<(), EvalError> {
        let schema = batch.schema();
        let Ok(ts_index) = schema.index_of(TIMESTAMP_COLUMN) else {
            return Err(missing_timestamp(path, &schema));
        };
        let timestamps = Lists::of(batch.column(ts_index)).ok_or_else(|| {
            EvalError::layout(
                path,
                format!(
                    "column '{TIMESTAMP_COLUMN}' has type {}, expected a list of timestamps",
                    batch.column(ts_index).data_type()
                ),
            )
        })?;
        let mut columns = Vec::new();
        for (i, field) in schema.fields().iter().enumerate() {
            if i == ts_index {
                continue;
            }
            let Some(lists) = Lists::of(batch.column(i)) else {
                continue;
            };
            if !is_numeric(lists.values.data_type()) {
                return Err(EvalError::layout(
                    path,
                    format!(
                        "list column '{}' has elements of type {}; every list column but \
                         '{TIMESTAMP_COLUMN}' must be a numeric series",
                        field.name(),
                        lists.values.data_type()
                    ),
                ));
            }
            let values =
                cast(&lists.values, &DataType::Float64).map_err(|source| DataError::Arrow {
                    path: path.to_path_buf(),
                    source,
                })?;
            columns.push((field.name().clone(), Lists { values, ..lists }));
        }
        let names: Vec<String> = columns.iter().map(|(n, _)| n.clone()).collect();
        match &self.columns {
            None if names.is_empty() => {
                return Err(EvalError::layout(
                    path,
                    "no series column: expected list<float> columns besides 'timestamp'",
                ))
            }
            None => self.columns = Some(names),
            Some(expected) if *expected != names => {
                return Err(EvalError::layout(
                    path,
                    format!(
                    "series columns {names:?} differ from those of the first shard, {expected:?}"
                ),
                ))
            }
            Some(_) => {}
        }
        let ids = item_ids(path, batch, self.rows)?;
        let several = columns.len() > 1;
        for (row, id) in ids.iter().enumerate() {
            if timestamps.is_null(row) {
                return Err(EvalError::layout(
                    path,
                    format!("item '{id}': '{TIMESTAMP_COLUMN}' is null"),
                ));
            }
            let span = timestamps.range(row);
            let start = if self.first_timestamps.is_none() {
                let converted = convert_timestamps(path, &timestamps.values, span.clone(), id)?;
                let start = converted.first().copied();
                self.first_timestamps = Some((id.clone(), converted));
                start
            } else {
                let first = span.start..(span.start + 1).min(span.end);
                convert_timestamps(path, &timestamps.values, first, id)?
                    .first()
                    .copied()
            };
            for (name, lists) in &columns {
                if lists.is_null(row) {
                    return Err(EvalError::layout(
                        path,
                        format!("item '{id}': series column '{name}' is null"),
                    ));
                }
                let range = lists.range(row);
                if range.len() != span.len() {
                    return Err(EvalError::layout(
                        path,
                        format!(
                            "item '{id}': column '{name}' has {} values but '{TIMESTAMP_COLUMN}' \
                             has {} timestamps",
                            range.len(),
                            span.len()
                        ),
                    ));
                }
                let floats = lists.values.as_primitive::<Float64Type>();
                let values = range
                    .map(|i| {
                        if floats.is_valid(i) {
                            floats.value(i)
                        } else {
                            f64::NAN
                        }
                    })
                    .collect();
                self.series.push(DatasetSeries {
                    id: if several {
                        format!("{id}/{name}")
                    } else {
                        id.clone()
                    },
                    start,
                    values,
                });
            }
        }
        self.rows += timestamps.rows();
        Ok(())
    }
}

fn missing_timestamp(path: &Path, schema: &SchemaRef) -> EvalError {
    let names: Vec<&str> = schema.fields().iter().map(|f| f.name().as_str()).collect();
    EvalError::layout(
        path,
        format!(
            "no '{TIMESTAMP_COLUMN}' list column (columns: {}); GluonTS-style (start, target) \
             datasets must be Arrow files",
            names.join(", ")
        ),
    )
}

/// Item ids of a batch: the `id` column as text, or `row<N>` (counted over the whole dataset
/// from 0) when there is none.
fn item_ids(path: &Path, batch: &RecordBatch, base: usize) -> Result<Vec<String>, EvalError> {
    let Some(col) = batch.column_by_name(ID_COLUMN) else {
        return Ok((0..batch.num_rows())
            .map(|i| format!("row{}", base + i))
            .collect());
    };
    let text = cast(col, &DataType::Utf8).map_err(|source| DataError::Arrow {
        path: path.to_path_buf(),
        source,
    })?;
    let text = text.as_string::<i32>();
    Ok((0..text.len())
        .map(|i| match text.is_valid(i) {
            true => text.value(i).to_string(),
            false => format!("row{}", base + i),
        })
        .collect())
}

fn convert_timestamps(
    path: &Path,
    values: &ArrayRef,
    range: std::ops::Range<usize>,
    id: &str,
) -> Result<Vec<NaiveDateTime>, EvalError> {
    let bad = |what: String| EvalError::layout(path, format!("item '{id}': {what}"));
    let convert: fn(i64) -> Option<NaiveDateTime> = match values.data_type() {
        DataType::Timestamp(TimeUnit::Second, _) => timestamp_s_to_datetime,
        DataType::Timestamp(TimeUnit::Millisecond, _) => timestamp_ms_to_datetime,
        DataType::Timestamp(TimeUnit::Microsecond, _) => timestamp_us_to_datetime,
        DataType::Timestamp(TimeUnit::Nanosecond, _) => timestamp_ns_to_datetime,
        DataType::Date64 => date64_to_datetime,
        DataType::Date32 => |d| i32::try_from(d).ok().and_then(date32_to_datetime),
        other => {
            return Err(bad(format!(
                "'{TIMESTAMP_COLUMN}' holds {other}, expected timestamps or dates"
            )))
        }
    };
    let raw = match values.data_type() {
        DataType::Date32 => {
            let days = values.as_primitive::<Int32Type>();
            range
                .map(|i| days.is_valid(i).then(|| i64::from(days.value(i))))
                .collect::<Vec<_>>()
        }
        _ => {
            let ints = cast(values, &DataType::Int64).map_err(|source| DataError::Arrow {
                path: path.to_path_buf(),
                source,
            })?;
            let ints = ints.as_primitive::<Int64Type>();
            range
                .map(|i| ints.is_valid(i).then(|| ints.value(i)))
                .collect()
        }
    };
    raw.into_iter()
        .enumerate()
        .map(|(k, v)| {
            v.and_then(convert)
                .ok_or_else(|| bad(format!("timestamp {k} is missing or out of range")))
        })
        .collect()
}
