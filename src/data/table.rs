//! Reading a long-format `.csv` or `.parquet` table into rows grouped by series: the id and
//! timestamp columns parsed, the other kept columns left as read (one Arrow array per batch) for
//! the caller to type.

use std::collections::HashMap;
use std::fs::File;
use std::io::{Read, Seek};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray, Int64Array, RecordBatch, StringArray};
use arrow::compute::cast;
use arrow::csv;
use arrow::datatypes::{DataType, Field, Float64Type, Int32Type, Int64Type, Schema, TimeUnit};
use arrow::error::ArrowError;
use arrow::temporal_conversions::{
    date32_to_datetime, date64_to_datetime, timestamp_ms_to_datetime, timestamp_ns_to_datetime,
    timestamp_s_to_datetime, timestamp_us_to_datetime,
};
use chrono::{NaiveDateTime, TimeDelta};
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use parquet::arrow::ProjectionMask;
use parquet::errors::ParquetError;

use super::cells::{fixed_offset_seconds, is_missing, offset_text, parse_number, parse_timestamp};
use super::DataError;

const BATCH_SIZE: usize = 64 * 1024;

#[derive(Clone, Copy)]
pub(super) enum FileKind {
    Csv,
    Parquet,
}

impl FileKind {
    pub(super) fn of(path: &Path) -> Result<Self, DataError> {
        let ext = path
            .extension()
            .and_then(|e| e.to_str())
            .map(str::to_ascii_lowercase);
        match ext.as_deref() {
            Some("csv") => Ok(FileKind::Csv),
            Some("parquet") => Ok(FileKind::Parquet),
            _ => Err(DataError::UnsupportedExtension {
                path: path.to_path_buf(),
            }),
        }
    }
}

/// The columns a read keeps: the id and timestamp columns, `required` columns (each with the
/// role named in errors, e.g. "target"), and with `rest` every other column too.
pub(super) struct Selection<'a> {
    pub id: &'a str,
    pub timestamp: &'a str,
    pub required: Vec<(&'static str, &'a str)>,
    pub rest: bool,
}

/// One kept column as read: one array per batch, `Utf8` for every CSV column.
pub(super) struct RawColumn {
    pub name: String,
    pub chunks: Vec<ArrayRef>,
}

/// A table's rows grouped by series (upstream `normalize_df`): ids in order of first
/// appearance, each series' rows sorted by timestamp (stable). Rows are counted over the file's
/// data rows from 0 (errors print them from 1).
pub(super) struct Table<'a> {
    pub path: &'a Path,
    /// Whether the columns are CSV text (parsed here) rather than typed Parquet columns.
    pub text: bool,
    pub ids: Vec<String>,
    /// Series index of each file row.
    pub group: Vec<usize>,
    /// Timestamp of each file row.
    pub timestamps: Vec<NaiveDateTime>,
    /// File rows in grouped order; series `g` has `order[starts[g]..starts[g + 1]]`.
    pub order: Vec<usize>,
    pub starts: Vec<usize>,
    /// The kept columns besides id and timestamp (a required column may also be one of those):
    /// the required ones in their order, or with `rest` all of them in file order.
    pub columns: Vec<RawColumn>,
}

/// The column names of a `.csv` (header; a leading byte-order mark dropped) or `.parquet` file.
pub fn column_names(path: &Path) -> Result<Vec<String>, DataError> {
    let mut file = File::open(path).map_err(|e| io_error(path, e))?;
    match FileKind::of(path)? {
        FileKind::Csv => csv_header(path, &mut file),
        FileKind::Parquet => {
            let builder = ParquetRecordBatchReaderBuilder::try_new(file)
                .map_err(|e| parquet_error(path, e))?;
            Ok(field_names(builder.schema()))
        }
    }
}

/// Reads `path` (`.csv` or `.parquet`, by extension), keeping the columns of `sel`, and groups
/// its rows by series. Errors name the file and, as relevant, the column, the 1-based data row
/// and the series: missing file or column, duplicate column names (with `sel.rest`), an id or
/// timestamp column of an unsupported type, empty ids or timestamps, unparseable timestamps,
/// duplicate timestamps within a series, no data rows.
pub(super) fn read_table<'a>(path: &'a Path, sel: &Selection<'a>) -> Result<Table<'a>, DataError> {
    let mut reader = Reader {
        path,
        id_column: sel.id,
        timestamp_column: sel.timestamp,
        index: HashMap::new(),
        ids: Vec::new(),
        group: Vec::new(),
        timestamps: Vec::new(),
        offset: None,
        columns: Vec::new(),
    };
    let text = match FileKind::of(path)? {
        FileKind::Csv => {
            read_csv(&mut reader, sel)?;
            true
        }
        FileKind::Parquet => {
            read_parquet(&mut reader, sel)?;
            false
        }
    };
    reader.into_table(text)
}

fn csv_header(path: &Path, file: &mut File) -> Result<Vec<String>, DataError> {
    let (header, _) = csv::reader::Format::default()
        .with_header(true)
        .infer_schema(file.by_ref(), Some(0))
        .map_err(|e| arrow_error(path, e))?;
    Ok(header
        .fields()
        .iter()
        .enumerate()
        .map(|(i, f)| match i {
            0 => f.name().trim_start_matches('\u{feff}').to_string(),
            _ => f.name().clone(),
        })
        .collect())
}

fn field_names(schema: &Schema) -> Vec<String> {
    schema.fields().iter().map(|f| f.name().clone()).collect()
}

fn read_csv(reader: &mut Reader, sel: &Selection) -> Result<(), DataError> {
    let path = reader.path;
    let mut file = File::open(path).map_err(|e| io_error(path, e))?;
    let names = csv_header(path, &mut file)?;
    file.rewind().map_err(|e| io_error(path, e))?;
    let projection = reader.projection(&names, sel)?;
    // Every column is read as text so that values are parsed here, with row-level errors.
    let schema = Schema::new(
        names
            .iter()
            .map(|n| Field::new(n, DataType::Utf8, true))
            .collect::<Vec<_>>(),
    );
    let batches = csv::ReaderBuilder::new(Arc::new(schema))
        .with_header(true)
        .with_batch_size(BATCH_SIZE)
        .with_projection(projection)
        .build(file)
        .map_err(|e| arrow_error(path, e))?;
    for batch in batches {
        reader.push_batch(&batch.map_err(|e| arrow_error(path, e))?)?;
    }
    Ok(())
}

fn read_parquet(reader: &mut Reader, sel: &Selection) -> Result<(), DataError> {
    let path = reader.path;
    let file = File::open(path).map_err(|e| io_error(path, e))?;
    let builder =
        ParquetRecordBatchReaderBuilder::try_new(file).map_err(|e| parquet_error(path, e))?;
    let names = field_names(builder.schema());
    let mask = ProjectionMask::roots(builder.parquet_schema(), reader.projection(&names, sel)?);
    let batches = builder
        .with_projection(mask)
        .with_batch_size(BATCH_SIZE)
        .build()
        .map_err(|e| parquet_error(path, e))?;
    for batch in batches {
        reader.push_batch(&batch.map_err(|e| arrow_error(path, e))?)?;
    }
    Ok(())
}

/// Rows accumulated column-wise, with each row's id interned as a group index.
struct Reader<'a> {
    path: &'a Path,
    id_column: &'a str,
    timestamp_column: &'a str,
    index: HashMap<String, usize>,
    ids: Vec<String>,
    group: Vec<usize>,
    timestamps: Vec<NaiveDateTime>,
    /// The UTC offset of the first timestamp and its row: every other must have the same.
    offset: Option<(Option<i32>, usize)>,
    columns: Vec<RawColumn>,
}

impl<'a> Reader<'a> {
    /// Sorted, deduplicated indices in `names` of the columns `sel` keeps; sets up `columns`.
    fn projection(&mut self, names: &[String], sel: &Selection) -> Result<Vec<usize>, DataError> {
        let find = |role: &'static str, column: &str| {
            names
                .iter()
                .position(|n| n == column)
                .ok_or_else(|| DataError::MissingColumn {
                    path: self.path.to_path_buf(),
                    role,
                    column: column.to_string(),
                    available: names.to_vec(),
                })
        };
        let mut indices = vec![find("id", sel.id)?, find("timestamp", sel.timestamp)?];
        let mut kept = Vec::new();
        for &(role, column) in &sel.required {
            kept.push(find(role, column)?);
        }
        if sel.rest {
            let duplicate = (0..names.len()).find(|&i| names[..i].contains(&names[i]));
            if let Some(i) = duplicate {
                return Err(DataError::DuplicateColumn {
                    path: self.path.to_path_buf(),
                    column: names[i].clone(),
                });
            }
            // Every column but id and timestamp (a required one may also be either), in file order.
            kept.extend((0..names.len()).filter(|i| !indices.contains(i)));
            kept.sort_unstable();
            kept.dedup();
        }
        self.columns = kept
            .iter()
            .map(|&i| RawColumn {
                name: names[i].clone(),
                chunks: Vec::new(),
            })
            .collect();
        indices.extend(kept);
        indices.sort_unstable();
        indices.dedup();
        Ok(indices)
    }

    fn push_batch(&mut self, batch: &RecordBatch) -> Result<(), DataError> {
        let base = self.group.len();
        let id = super::column(self.path, batch, "id", self.id_column)?;
        self.push_ids(id, base)?;
        let timestamp = super::column(self.path, batch, "timestamp", self.timestamp_column)?;
        self.push_timestamps(timestamp, base)?;
        for column in &mut self.columns {
            let chunk = super::column(self.path, batch, "value", &column.name)?;
            column.chunks.push(chunk.clone());
        }
        Ok(())
    }

    fn push_ids(&mut self, col: &ArrayRef, base: usize) -> Result<(), DataError> {
        let supported = match col.data_type() {
            DataType::Dictionary(_, values) => is_text(values) || values.is_integer(),
            dt => is_text(dt) || dt.is_integer(),
        };
        if !supported {
            return Err(self.type_error("id", self.id_column, col, "strings or integers"));
        }
        let text = cast(col, &DataType::Utf8).map_err(|e| arrow_error(self.path, e))?;
        let mut last: Option<usize> = None;
        for (i, id) in text.as_string::<i32>().iter().enumerate() {
            let id = id.ok_or_else(|| DataError::MissingId {
                path: self.path.to_path_buf(),
                column: self.id_column.to_string(),
                row: base + i + 1,
            })?;
            let g = match last {
                Some(g) if self.ids[g] == id => g,
                _ => match self.index.get(id) {
                    Some(&g) => g,
                    None => {
                        self.index.insert(id.to_string(), self.ids.len());
                        self.ids.push(id.to_string());
                        self.ids.len() - 1
                    }
                },
            };
            last = Some(g);
            self.group.push(g);
        }
        Ok(())
    }

    fn push_timestamps(&mut self, col: &ArrayRef, base: usize) -> Result<(), DataError> {
        // Per row: `None` for null, `Some(Err(raw))` for a value that is not a valid timestamp.
        // Text cells also give their UTC offset (`None` without one).
        type Cell = Box<dyn Fn(usize) -> Option<Result<(NaiveDateTime, Option<i32>), String>>>;
        let path = self.path;
        let as_int64 = || -> Result<Int64Array, DataError> {
            let raw = cast(col, &DataType::Int64).map_err(|e| arrow_error(path, e))?;
            Ok(raw.as_primitive::<Int64Type>().clone())
        };
        let cell: Cell = match col.data_type() {
            DataType::Timestamp(unit, tz) => {
                let raw = as_int64()?;
                let offset = TimeDelta::seconds(tz.as_deref().map_or(0, fixed_offset_seconds));
                let convert = match unit {
                    TimeUnit::Second => timestamp_s_to_datetime,
                    TimeUnit::Millisecond => timestamp_ms_to_datetime,
                    TimeUnit::Microsecond => timestamp_us_to_datetime,
                    TimeUnit::Nanosecond => timestamp_ns_to_datetime,
                };
                Box::new(move |i| {
                    raw.is_valid(i).then(|| {
                        let v = raw.value(i);
                        convert(v)
                            .and_then(|t| t.checked_add_signed(offset))
                            .map(|t| (t, None))
                            .ok_or_else(|| v.to_string())
                    })
                })
            }
            DataType::Date32 => {
                let days = cast(col, &DataType::Int32).map_err(|e| arrow_error(path, e))?;
                let days = days.as_primitive::<Int32Type>().clone();
                Box::new(move |i| {
                    days.is_valid(i).then(|| {
                        date32_to_datetime(days.value(i))
                            .map(|t| (t, None))
                            .ok_or_else(|| days.value(i).to_string())
                    })
                })
            }
            DataType::Date64 => {
                let millis = as_int64()?;
                Box::new(move |i| {
                    millis.is_valid(i).then(|| {
                        date64_to_datetime(millis.value(i))
                            .map(|t| (t, None))
                            .ok_or_else(|| millis.value(i).to_string())
                    })
                })
            }
            dt if is_text(dt) || matches!(dt, DataType::Dictionary(_, v) if is_text(v)) => {
                let text = cast(col, &DataType::Utf8).map_err(|e| arrow_error(path, e))?;
                let text: StringArray = text.as_string::<i32>().clone();
                Box::new(move |i| {
                    text.is_valid(i).then(|| {
                        let s = text.value(i);
                        parse_timestamp(s).ok_or_else(|| s.to_string())
                    })
                })
            }
            _ => {
                return Err(self.type_error(
                    "timestamp",
                    self.timestamp_column,
                    col,
                    "a timestamp, date or text column",
                ))
            }
        };
        self.timestamps.reserve(col.len());
        for i in 0..col.len() {
            let row = base + i;
            match cell(i) {
                Some(Ok((t, offset))) => {
                    match self.offset {
                        None => self.offset = Some((offset, row)),
                        Some((first, first_row)) if first != offset => {
                            return Err(DataError::MixedOffsets {
                                path: path.to_path_buf(),
                                column: self.timestamp_column.to_string(),
                                row: row + 1,
                                id: self.ids[self.group[row]].clone(),
                                offsets: format!(
                                    "{} here, {} at row {}",
                                    offset_text(offset),
                                    offset_text(first),
                                    first_row + 1
                                ),
                            });
                        }
                        Some(_) => {}
                    }
                    self.timestamps.push(t)
                }
                None => {
                    return Err(DataError::MissingTimestamp {
                        path: path.to_path_buf(),
                        column: self.timestamp_column.to_string(),
                        row: row + 1,
                        id: self.ids[self.group[row]].clone(),
                    })
                }
                Some(Err(value)) => {
                    return Err(DataError::BadTimestamp {
                        path: path.to_path_buf(),
                        column: self.timestamp_column.to_string(),
                        row: row + 1,
                        id: self.ids[self.group[row]].clone(),
                        value,
                    })
                }
            }
        }
        Ok(())
    }

    fn type_error(
        &self,
        role: &'static str,
        column: &str,
        col: &ArrayRef,
        expected: &'static str,
    ) -> DataError {
        type_error(self.path, role, column, col.data_type(), expected)
    }

    /// Groups rows by id (first-appearance order) and sorts each group by timestamp (stable).
    fn into_table(self, text: bool) -> Result<Table<'a>, DataError> {
        let Reader {
            path,
            ids,
            group,
            timestamps,
            columns,
            ..
        } = self;
        if group.is_empty() {
            return Err(DataError::EmptyTable {
                path: path.to_path_buf(),
            });
        }
        // Counting sort of row indices by group, keeping file order within each group.
        let mut starts = vec![0usize; ids.len() + 1];
        for &g in &group {
            starts[g + 1] += 1;
        }
        for g in 0..ids.len() {
            starts[g + 1] += starts[g];
        }
        let mut next = starts.clone();
        let mut order = vec![0usize; group.len()];
        for (row, &g) in group.iter().enumerate() {
            order[next[g]] = row;
            next[g] += 1;
        }
        for (g, id) in ids.iter().enumerate() {
            let rows = &mut order[starts[g]..starts[g + 1]];
            rows.sort_by_key(|&r| timestamps[r]);
            if let Some(pair) = rows
                .windows(2)
                .find(|w| timestamps[w[0]] == timestamps[w[1]])
            {
                return Err(DataError::DuplicateTimestamp {
                    path: path.to_path_buf(),
                    id: id.clone(),
                    timestamp: timestamps[pair[0]],
                });
            }
        }
        Ok(Table {
            path,
            text,
            ids,
            group,
            timestamps,
            order,
            starts,
            columns,
        })
    }
}

impl Table<'_> {
    /// The file rows of series `g`, sorted by timestamp.
    pub fn rows(&self, g: usize) -> &[usize] {
        &self.order[self.starts[g]..self.starts[g + 1]]
    }

    /// The kept column `name`.
    pub fn column(&self, name: &str) -> Option<&RawColumn> {
        self.columns.iter().find(|c| c.name == name)
    }

    /// `values` (one per file row) in grouped order.
    pub fn grouped<T: Copy>(&self, values: &[T]) -> Vec<T> {
        self.order.iter().map(|&r| values[r]).collect()
    }

    /// A numeric column (a target) per file row: CSV text parsed as pandas does (empty fields
    /// and NA tokens are `NaN`), or a Parquet integer, float, decimal, boolean or null column
    /// (nulls are `NaN`). Errors name the `role`, the column and, for text, the row and series.
    pub fn numeric(&self, role: &'static str, column: &RawColumn) -> Result<Vec<f64>, DataError> {
        let mut values = Vec::with_capacity(self.group.len());
        for chunk in &column.chunks {
            let dt = chunk.data_type();
            if self.text && is_text(dt) {
                let text = cast(chunk, &DataType::Utf8).map_err(|e| arrow_error(self.path, e))?;
                for cell in text.as_string::<i32>().iter() {
                    let row = values.len();
                    let value = match cell.map(str::trim) {
                        None => f64::NAN,
                        Some(s) if is_missing(s) => f64::NAN,
                        Some(s) => parse_number(s).ok_or_else(|| DataError::NonNumericTarget {
                            path: self.path.to_path_buf(),
                            column: column.name.clone(),
                            row: row + 1,
                            id: self.ids[self.group[row]].clone(),
                            value: s.to_string(),
                        })?,
                    };
                    values.push(value);
                }
                continue;
            }
            if !(dt.is_numeric() || matches!(dt, DataType::Boolean | DataType::Null)) {
                return Err(type_error(
                    self.path,
                    role,
                    &column.name,
                    dt,
                    "a numeric type",
                ));
            }
            let cast = cast(chunk, &DataType::Float64).map_err(|e| arrow_error(self.path, e))?;
            let cast = cast.as_primitive::<Float64Type>();
            values.extend(cast.iter().map(|v| v.unwrap_or(f64::NAN)));
        }
        Ok(values)
    }
}

pub(super) fn type_error(
    path: &Path,
    role: &'static str,
    column: &str,
    found: &DataType,
    expected: &'static str,
) -> DataError {
    DataError::ColumnType {
        path: path.to_path_buf(),
        role,
        column: column.to_string(),
        found: found.to_string(),
        expected,
    }
}

pub(super) fn is_text(dt: &DataType) -> bool {
    matches!(
        dt,
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View
    )
}

pub(super) fn io_error(path: &Path, source: std::io::Error) -> DataError {
    DataError::Io {
        path: PathBuf::from(path),
        source,
    }
}

pub(super) fn arrow_error(path: &Path, source: ArrowError) -> DataError {
    DataError::Arrow {
        path: PathBuf::from(path),
        source,
    }
}

pub(super) fn parquet_error(path: &Path, source: ParquetError) -> DataError {
    DataError::Parquet {
        path: PathBuf::from(path),
        source,
    }
}
