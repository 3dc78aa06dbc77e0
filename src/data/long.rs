//! Reading long-format tables into [`Series`], frequency agreement across series, and writing
//! forecast tables, for `.csv` and `.parquet` files.

use std::borrow::Cow;
use std::collections::HashMap;
use std::fs::File;
use std::io::{BufWriter, Seek, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow::array::{
    Array, ArrayRef, AsArray, Float32Array, Int64Array, RecordBatch, StringArray,
    TimestampNanosecondArray,
};
use arrow::compute::cast;
use arrow::csv;
use arrow::datatypes::{DataType, Field, Float64Type, Int32Type, Int64Type, Schema, TimeUnit};
use arrow::error::ArrowError;
use arrow::temporal_conversions::{
    date32_to_datetime, date64_to_datetime, timestamp_ms_to_datetime, timestamp_ns_to_datetime,
    timestamp_s_to_datetime, timestamp_us_to_datetime,
};
use chrono::{NaiveDate, NaiveDateTime, NaiveTime, TimeDelta, Timelike};
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use parquet::arrow::{ArrowWriter, ProjectionMask};
use parquet::basic::Compression;
use parquet::errors::ParquetError;
use parquet::file::properties::WriterProperties;

use super::{future_timestamps, infer_freq, Columns, DataError, Freq, Series};

const BATCH_SIZE: usize = 64 * 1024;

/// Strings pandas' `read_csv` treats as missing by default (besides the empty field).
const NA_TOKENS: [&str; 18] = [
    "#N/A", "#N/A N/A", "#NA", "-1.#IND", "-1.#QNAN", "-NaN", "-nan", "1.#IND", "1.#QNAN", "<NA>",
    "N/A", "NA", "NULL", "NaN", "None", "n/a", "nan", "null",
];

#[derive(Clone, Copy)]
enum FileKind {
    Csv,
    Parquet,
}

impl FileKind {
    fn of(path: &Path) -> Result<Self, DataError> {
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

/// Reads a long-format `.csv` or `.parquet` file (chosen by extension) into one [`Series`] per
/// id, in order of first appearance, each sorted by timestamp (stable).
///
/// * ids: strings or integers (stringified); CSV ids are kept verbatim as text.
/// * timestamps: Arrow timestamps of any unit (a fixed-offset time zone such as `+02:00` is
///   converted to local wall time, any other zone is read as UTC wall time), `Date32`/`Date64`,
///   or text `YYYY-MM-DD`, optionally followed by `T` or a space and `HH:MM[:SS[.fraction]]`
///   and an ignored `Z`/`±HH[:MM]` suffix (`/` is also accepted as date separator).
/// * target: any integer, float, decimal or boolean type; nulls, empty CSV fields and pandas'
///   default NA strings (`NaN`, `NA`, `null`, ...) become `NaN`.
///
/// Errors name the file and, as relevant, the column, the 1-based data row and the series id:
/// missing file or column, unsupported column type, empty id or timestamp, unparseable
/// timestamp or target, duplicate timestamps within a series, empty table.
pub fn read_long(path: &Path, cols: &Columns) -> Result<Vec<Series>, DataError> {
    let kind = FileKind::of(path)?;
    let mut table = LongTable::new(path, cols);
    match kind {
        FileKind::Csv => read_csv(&mut table)?,
        FileKind::Parquet => read_parquet(&mut table)?,
    }
    table.into_series()
}

fn read_csv(table: &mut LongTable) -> Result<(), DataError> {
    let path = table.path;
    let mut file = File::open(path).map_err(|e| io_error(path, e))?;
    let (header, _) = csv::reader::Format::default()
        .with_header(true)
        .infer_schema(&mut file, Some(0))
        .map_err(|e| arrow_error(path, e))?;
    file.rewind().map_err(|e| io_error(path, e))?;
    // Every column is read as text (a leading UTF-8 byte-order mark is dropped from the header)
    // so that values are parsed here, with row-level error messages.
    let names: Vec<String> = header
        .fields()
        .iter()
        .enumerate()
        .map(|(i, f)| match i {
            0 => f.name().trim_start_matches('\u{feff}').to_string(),
            _ => f.name().clone(),
        })
        .collect();
    let projection = table.projection(&names)?;
    let schema = Schema::new(
        names
            .iter()
            .map(|n| Field::new(n, DataType::Utf8, true))
            .collect::<Vec<_>>(),
    );
    let reader = csv::ReaderBuilder::new(Arc::new(schema))
        .with_header(true)
        .with_batch_size(BATCH_SIZE)
        .with_projection(projection)
        .build(file)
        .map_err(|e| arrow_error(path, e))?;
    for batch in reader {
        table.push_batch(&batch.map_err(|e| arrow_error(path, e))?, true)?;
    }
    Ok(())
}

fn read_parquet(table: &mut LongTable) -> Result<(), DataError> {
    let path = table.path;
    let file = File::open(path).map_err(|e| io_error(path, e))?;
    let builder =
        ParquetRecordBatchReaderBuilder::try_new(file).map_err(|e| parquet_error(path, e))?;
    let names: Vec<String> = builder
        .schema()
        .fields()
        .iter()
        .map(|f| f.name().clone())
        .collect();
    let mask = ProjectionMask::roots(builder.parquet_schema(), table.projection(&names)?);
    let reader = builder
        .with_projection(mask)
        .with_batch_size(BATCH_SIZE)
        .build()
        .map_err(|e| parquet_error(path, e))?;
    for batch in reader {
        table.push_batch(&batch.map_err(|e| arrow_error(path, e))?, false)?;
    }
    Ok(())
}

/// Rows accumulated column-wise, with each row's id interned as a group index.
struct LongTable<'a> {
    path: &'a Path,
    cols: &'a Columns,
    index: HashMap<String, usize>,
    ids: Vec<String>,
    group: Vec<usize>,
    timestamps: Vec<NaiveDateTime>,
    values: Vec<f64>,
}

impl<'a> LongTable<'a> {
    fn new(path: &'a Path, cols: &'a Columns) -> Self {
        Self {
            path,
            cols,
            index: HashMap::new(),
            ids: Vec::new(),
            group: Vec::new(),
            timestamps: Vec::new(),
            values: Vec::new(),
        }
    }

    /// Sorted, deduplicated indices of the id, timestamp and target columns in `names`.
    fn projection(&self, names: &[String]) -> Result<Vec<usize>, DataError> {
        let mut indices = Vec::with_capacity(3);
        for (role, column) in self.roles() {
            match names.iter().position(|n| n == column) {
                Some(i) => indices.push(i),
                None => {
                    return Err(DataError::MissingColumn {
                        path: self.path.to_path_buf(),
                        role,
                        column: column.clone(),
                        available: names.to_vec(),
                    })
                }
            }
        }
        indices.sort_unstable();
        indices.dedup();
        Ok(indices)
    }

    fn roles(&self) -> [(&'static str, &'a String); 3] {
        [
            ("id", &self.cols.id),
            ("timestamp", &self.cols.timestamp),
            ("target", &self.cols.target),
        ]
    }

    /// Appends a batch; `text_target` allows a text target column (CSV) to be parsed.
    fn push_batch(&mut self, batch: &RecordBatch, text_target: bool) -> Result<(), DataError> {
        let [id, timestamp, target] = self
            .roles()
            .map(|(role, name)| super::column(self.path, batch, role, name));
        let base = self.group.len();
        self.push_ids(id?, base)?;
        self.push_timestamps(timestamp?, base)?;
        self.push_values(target?, base, text_target)
    }

    fn push_ids(&mut self, col: &ArrayRef, base: usize) -> Result<(), DataError> {
        let supported = match col.data_type() {
            DataType::Dictionary(_, values) => is_text(values) || values.is_integer(),
            dt => is_text(dt) || dt.is_integer(),
        };
        if !supported {
            return Err(self.type_error("id", &self.cols.id, col, "strings or integers"));
        }
        let text = cast(col, &DataType::Utf8).map_err(|e| arrow_error(self.path, e))?;
        let mut last: Option<usize> = None;
        for (i, id) in text.as_string::<i32>().iter().enumerate() {
            let id = id.ok_or_else(|| DataError::MissingId {
                path: self.path.to_path_buf(),
                column: self.cols.id.clone(),
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
        type Cell = Box<dyn Fn(usize) -> Option<Result<NaiveDateTime, String>>>;
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
                            .ok_or_else(|| v.to_string())
                    })
                })
            }
            DataType::Date32 => {
                let days = cast(col, &DataType::Int32).map_err(|e| arrow_error(path, e))?;
                let days = days.as_primitive::<Int32Type>().clone();
                Box::new(move |i| {
                    days.is_valid(i).then(|| {
                        date32_to_datetime(days.value(i)).ok_or_else(|| days.value(i).to_string())
                    })
                })
            }
            DataType::Date64 => {
                let millis = as_int64()?;
                Box::new(move |i| {
                    millis.is_valid(i).then(|| {
                        date64_to_datetime(millis.value(i))
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
                    &self.cols.timestamp,
                    col,
                    "a timestamp, date or text column",
                ))
            }
        };
        self.timestamps.reserve(col.len());
        for i in 0..col.len() {
            let row = base + i;
            match cell(i) {
                Some(Ok(t)) => self.timestamps.push(t),
                None => {
                    return Err(DataError::MissingTimestamp {
                        path: path.to_path_buf(),
                        column: self.cols.timestamp.clone(),
                        row: row + 1,
                        id: self.ids[self.group[row]].clone(),
                    })
                }
                Some(Err(value)) => {
                    return Err(DataError::BadTimestamp {
                        path: path.to_path_buf(),
                        column: self.cols.timestamp.clone(),
                        row: row + 1,
                        id: self.ids[self.group[row]].clone(),
                        value,
                    })
                }
            }
        }
        Ok(())
    }

    fn push_values(
        &mut self,
        col: &ArrayRef,
        base: usize,
        text_target: bool,
    ) -> Result<(), DataError> {
        let dt = col.data_type();
        if text_target && is_text(dt) {
            let text = cast(col, &DataType::Utf8).map_err(|e| arrow_error(self.path, e))?;
            for (i, cell) in text.as_string::<i32>().iter().enumerate() {
                let value = match cell.map(str::trim) {
                    None => f64::NAN,
                    Some(s) if s.is_empty() || NA_TOKENS.contains(&s) => f64::NAN,
                    Some(s) => s.parse().map_err(|_| DataError::NonNumericTarget {
                        path: self.path.to_path_buf(),
                        column: self.cols.target.clone(),
                        row: base + i + 1,
                        id: self.ids[self.group[base + i]].clone(),
                        value: s.to_string(),
                    })?,
                };
                self.values.push(value);
            }
            return Ok(());
        }
        let numeric = dt.is_numeric() || matches!(dt, DataType::Boolean | DataType::Null);
        if !numeric {
            return Err(self.type_error("target", &self.cols.target, col, "a numeric type"));
        }
        let values = cast(col, &DataType::Float64).map_err(|e| arrow_error(self.path, e))?;
        let values = values.as_primitive::<Float64Type>();
        self.values
            .extend(values.iter().map(|v| v.unwrap_or(f64::NAN)));
        Ok(())
    }

    fn type_error(
        &self,
        role: &'static str,
        column: &str,
        col: &ArrayRef,
        expected: &'static str,
    ) -> DataError {
        DataError::ColumnType {
            path: self.path.to_path_buf(),
            role,
            column: column.to_string(),
            found: col.data_type().to_string(),
            expected,
        }
    }

    /// Groups rows by id (first-appearance order) and sorts each group by timestamp (stable).
    fn into_series(self) -> Result<Vec<Series>, DataError> {
        let LongTable {
            path,
            ids,
            group,
            timestamps,
            values,
            ..
        } = self;
        if group.is_empty() {
            return Err(DataError::EmptyTable {
                path: path.to_path_buf(),
            });
        }
        // Counting sort of row indices by group, keeping file order within each group.
        let mut start = vec![0usize; ids.len() + 1];
        for &g in &group {
            start[g + 1] += 1;
        }
        for g in 0..ids.len() {
            start[g + 1] += start[g];
        }
        let mut next = start.clone();
        let mut order = vec![0usize; group.len()];
        for (row, &g) in group.iter().enumerate() {
            order[next[g]] = row;
            next[g] += 1;
        }
        let mut series = Vec::with_capacity(ids.len());
        for (g, id) in ids.into_iter().enumerate() {
            let rows = &mut order[start[g]..start[g + 1]];
            rows.sort_by_key(|&r| timestamps[r]);
            if let Some(pair) = rows
                .windows(2)
                .find(|w| timestamps[w[0]] == timestamps[w[1]])
            {
                return Err(DataError::DuplicateTimestamp {
                    path: path.to_path_buf(),
                    id,
                    timestamp: timestamps[pair[0]],
                });
            }
            series.push(Series {
                id,
                timestamps: rows.iter().map(|&r| timestamps[r]).collect(),
                values: rows.iter().map(|&r| values[r]).collect(),
            });
        }
        Ok(series)
    }
}

/// The frequency shared by all series, as upstream's `infer_freq_from_df`: series with fewer
/// than 3 points are skipped, every other series must have an inferable frequency
/// ([`DataError::IrregularSeries`]) and all must agree ([`DataError::FrequencyMismatch`]); if no
/// series has 3 points the result is [`DataError::NoFrequency`].
pub fn common_freq(series: &[Series]) -> Result<Freq, DataError> {
    let mut found: Option<(Freq, &str)> = None;
    for s in series.iter().filter(|s| s.timestamps.len() >= 3) {
        let freq = infer_freq(&s.timestamps)
            .ok_or_else(|| DataError::IrregularSeries { id: s.id.clone() })?;
        match found {
            None => found = Some((freq, &s.id)),
            Some((first, first_id)) if first != freq => {
                return Err(DataError::FrequencyMismatch {
                    first_id: first_id.to_string(),
                    first_freq: first.name(),
                    other_id: s.id.clone(),
                    other_freq: freq.name(),
                })
            }
            Some(_) => {}
        }
    }
    found.map(|(freq, _)| freq).ok_or(DataError::NoFrequency)
}

/// Forecasts in the layout of upstream's `predict_df` output: for each series (in input order),
/// one row per horizon step with the id, the future timestamp, the target column's name, the
/// point forecast and one value per quantile level.
#[derive(Debug, Clone, PartialEq)]
pub struct ForecastTable {
    target_name: String,
    quantile_levels: Vec<f64>,
    horizon: usize,
    ids: Vec<String>,
    /// Row-major `[series][step]`.
    timestamps: Vec<NaiveDateTime>,
    /// Row-major `[series][step]`.
    predictions: Vec<f32>,
    /// Row-major `[series][step][level]`.
    quantiles: Vec<f32>,
}

impl ForecastTable {
    /// Builds the table for `series` forecast `horizon` steps ahead at frequency `freq` (the
    /// future timestamps are computed with [`future_timestamps`]).
    ///
    /// `predictions` is row-major `[n_series, horizon]` and `quantiles` row-major
    /// `[n_series, horizon, n_levels]` (the layout of upstream's `predict_quantiles` outputs);
    /// quantile columns are named like Python's `str(level)` (`0.1`, `0.05`, `1e-05`).
    pub fn new(
        series: &[Series],
        freq: &Freq,
        horizon: usize,
        target_name: &str,
        predictions: Vec<f32>,
        quantile_levels: &[f64],
        quantiles: Vec<f32>,
    ) -> Result<Self, DataError> {
        let rows = series.len() * horizon;
        let check = |what, expected, found| match expected == found {
            true => Ok(()),
            false => Err(DataError::ShapeMismatch {
                what,
                expected,
                found,
            }),
        };
        check("predictions", rows, predictions.len())?;
        check("quantiles", rows * quantile_levels.len(), quantiles.len())?;
        let mut timestamps = Vec::with_capacity(rows);
        for s in series {
            // Series from `read_long` always have at least one row.
            let Some(&last) = s.timestamps.last() else {
                return Err(DataError::EmptySeries { id: s.id.clone() });
            };
            let future = future_timestamps(last, freq, horizon).ok_or_else(|| {
                DataError::TimestampOverflow {
                    id: s.id.clone(),
                    last,
                    freq: freq.name(),
                }
            })?;
            timestamps.extend(future);
        }
        Ok(Self {
            target_name: target_name.to_string(),
            quantile_levels: quantile_levels.to_vec(),
            horizon,
            ids: series.iter().map(|s| s.id.clone()).collect(),
            timestamps,
            predictions,
            quantiles,
        })
    }

    fn column_names(&self, cols: &Columns) -> Vec<String> {
        let mut names = vec![
            cols.id.clone(),
            cols.timestamp.clone(),
            "target_name".to_string(),
            "predictions".to_string(),
        ];
        names.extend(self.quantile_levels.iter().map(|&q| python_float_repr(q)));
        names
    }

    /// Id of each row.
    fn row_ids(&self) -> impl Iterator<Item = &str> {
        self.ids
            .iter()
            .flat_map(|id| std::iter::repeat_n(id.as_str(), self.horizon))
    }
}

/// Writes `table` to a `.csv` or `.parquet` file (chosen by extension), with columns
/// `<cols.id>, <cols.timestamp>, target_name, predictions, <quantile levels>...`.
///
/// CSV follows pandas' `to_csv`: timestamps as `%Y-%m-%d` when all are midnight, else
/// `%Y-%m-%d %H:%M:%S` plus `.fff`/`.ffffff`/`.fffffffff` when the column needs it; floats as
/// the shortest text that parses back to the same `f32` (`NaN` as an empty field). Parquet:
/// ids and target name as `Utf8`, timestamps as `Timestamp(Nanosecond, None)`, forecasts as
/// `Float32`, Snappy-compressed.
pub fn write_forecasts(
    path: &Path,
    cols: &Columns,
    table: &ForecastTable,
) -> Result<(), DataError> {
    match FileKind::of(path)? {
        FileKind::Csv => write_csv(path, cols, table),
        FileKind::Parquet => write_parquet(path, cols, table),
    }
}

fn write_csv(path: &Path, cols: &Columns, table: &ForecastTable) -> Result<(), DataError> {
    use std::fmt::Write as _;
    let io = |e| io_error(path, e);
    let mut out = BufWriter::new(File::create(path).map_err(io)?);
    let header: Vec<String> = table
        .column_names(cols)
        .iter()
        .map(|n| csv_field(n).into_owned())
        .collect();
    writeln!(out, "{}", header.join(",")).map_err(io)?;
    let style = TimestampStyle::for_all(&table.timestamps);
    let target_name = csv_field(&table.target_name);
    let n_levels = table.quantile_levels.len();
    let mut line = String::new();
    for (row, id) in table.row_ids().enumerate() {
        line.clear();
        line.push_str(&csv_field(id));
        line.push(',');
        style.push(&mut line, table.timestamps[row]);
        line.push(',');
        line.push_str(&target_name);
        let values = std::iter::once(&table.predictions[row])
            .chain(&table.quantiles[row * n_levels..(row + 1) * n_levels]);
        for v in values {
            line.push(',');
            if !v.is_nan() {
                let _ = write!(line, "{v}");
            }
        }
        line.push('\n');
        out.write_all(line.as_bytes()).map_err(io)?;
    }
    out.flush().map_err(io)
}

fn write_parquet(path: &Path, cols: &Columns, table: &ForecastTable) -> Result<(), DataError> {
    let rows = table.timestamps.len();
    let nanos = table
        .row_ids()
        .zip(&table.timestamps)
        .map(|(id, t)| {
            t.and_utc()
                .timestamp_nanos_opt()
                .ok_or_else(|| DataError::TimestampOutOfRange {
                    path: path.to_path_buf(),
                    id: id.to_string(),
                    timestamp: *t,
                })
        })
        .collect::<Result<Vec<i64>, _>>()?;
    let n_levels = table.quantile_levels.len();
    let mut columns: Vec<ArrayRef> = vec![
        Arc::new(StringArray::from(table.row_ids().collect::<Vec<_>>())),
        Arc::new(TimestampNanosecondArray::from(nanos)),
        Arc::new(StringArray::from(vec![table.target_name.as_str(); rows])),
        Arc::new(Float32Array::from(table.predictions.clone())),
    ];
    columns.extend((0..n_levels).map(|q| {
        let values = table.quantiles.iter().skip(q).step_by(n_levels).copied();
        Arc::new(Float32Array::from_iter_values(values)) as ArrayRef
    }));
    let fields: Vec<Field> = table
        .column_names(cols)
        .into_iter()
        .zip(&columns)
        .map(|(name, col)| Field::new(name, col.data_type().clone(), false))
        .collect();
    let schema = Arc::new(Schema::new(fields));
    let batch = RecordBatch::try_new(schema.clone(), columns).map_err(|e| arrow_error(path, e))?;
    let file = File::create(path).map_err(|e| io_error(path, e))?;
    let props = WriterProperties::builder()
        .set_compression(Compression::SNAPPY)
        .build();
    let mut writer =
        ArrowWriter::try_new(file, schema, Some(props)).map_err(|e| parquet_error(path, e))?;
    writer.write(&batch).map_err(|e| parquet_error(path, e))?;
    writer.close().map_err(|e| parquet_error(path, e))?;
    Ok(())
}

/// pandas' text format for a whole datetime column (`DatetimeArray._format_native_types`).
#[derive(Clone, Copy)]
enum TimestampStyle {
    Date,
    Seconds,
    Millis,
    Micros,
    Nanos,
}

impl TimestampStyle {
    fn for_all(timestamps: &[NaiveDateTime]) -> Self {
        let (mut dates_only, mut style) = (true, TimestampStyle::Seconds);
        for t in timestamps {
            dates_only &= t.time() == NaiveTime::MIN;
            let ns = t.nanosecond();
            style = match style {
                _ if ns % 1_000 != 0 => TimestampStyle::Nanos,
                TimestampStyle::Nanos => TimestampStyle::Nanos,
                _ if ns % 1_000_000 != 0 => TimestampStyle::Micros,
                TimestampStyle::Micros => TimestampStyle::Micros,
                _ if ns != 0 => TimestampStyle::Millis,
                s => s,
            };
        }
        if dates_only {
            TimestampStyle::Date
        } else {
            style
        }
    }

    fn push(self, out: &mut String, t: NaiveDateTime) {
        use std::fmt::Write as _;
        let date = t.date();
        let _ = write!(out, "{date}");
        if let TimestampStyle::Date = self {
            return;
        }
        let _ = write!(out, " {:02}:{:02}:{:02}", t.hour(), t.minute(), t.second());
        let ns = t.nanosecond();
        let _ = match self {
            TimestampStyle::Millis => write!(out, ".{:03}", ns / 1_000_000),
            TimestampStyle::Micros => write!(out, ".{:06}", ns / 1_000),
            TimestampStyle::Nanos => write!(out, ".{ns:09}"),
            _ => Ok(()),
        };
    }
}

/// Python's `repr(float)`: shortest round-trip digits, `.0` for integral values, scientific
/// notation with a two-digit exponent below 1e-4 or from 1e16 on.
fn python_float_repr(x: f64) -> String {
    if !x.is_finite() {
        return match x {
            x if x.is_nan() => "nan".into(),
            x if x > 0.0 => "inf".into(),
            _ => "-inf".into(),
        };
    }
    if x != 0.0 && !(1e-4..1e16).contains(&x.abs()) {
        let s = format!("{x:e}");
        let (mantissa, exponent) = s.split_once('e').unwrap_or((&s, "0"));
        let exponent: i32 = exponent.parse().unwrap_or(0);
        let sign = if exponent < 0 { '-' } else { '+' };
        return format!("{mantissa}e{sign}{:02}", exponent.abs());
    }
    let s = x.to_string();
    if s.contains('.') {
        s
    } else {
        s + ".0"
    }
}

/// Quotes a CSV field when needed (Python's `csv.QUOTE_MINIMAL`).
fn csv_field(s: &str) -> Cow<'_, str> {
    if s.contains([',', '"', '\n', '\r']) {
        Cow::Owned(format!("\"{}\"", s.replace('"', "\"\"")))
    } else {
        Cow::Borrowed(s)
    }
}

/// Parses `YYYY-MM-DD` (or `YYYY/MM/DD`), optionally followed by `T` or a space and
/// `HH:MM[:SS[.fraction]]` and an ignored `Z` / `±HH[:MM]` suffix. Fractions beyond nanoseconds
/// are truncated.
fn parse_timestamp(s: &str) -> Option<NaiveDateTime> {
    let mut p = Cursor {
        bytes: s.trim().as_bytes(),
        pos: 0,
    };
    let year = p.number(4, 4)?;
    let sep = p.one_of(b"-/")?;
    let month = p.number(1, 2)?;
    p.one_of(&[sep])?;
    let day = p.number(1, 2)?;
    let date = NaiveDate::from_ymd_opt(i32::try_from(year).ok()?, month, day)?;
    if p.at_end() {
        return Some(date.and_time(NaiveTime::MIN));
    }
    p.one_of(b"T ")?;
    let hour = p.number(1, 2)?;
    p.one_of(b":")?;
    let minute = p.number(2, 2)?;
    let (mut second, mut nano) = (0, 0);
    if p.one_of(b":").is_some() {
        second = p.number(2, 2)?;
        if p.one_of(b".,").is_some() {
            nano = p.fraction()?;
        }
    }
    while p.one_of(b" ").is_some() {}
    if p.one_of(b"Z").is_none() && p.one_of(b"+-").is_some() {
        p.number(2, 2)?;
        let colon = p.one_of(b":").is_some();
        if colon || !p.at_end() {
            p.number(2, 2)?;
        }
    }
    if !p.at_end() {
        return None;
    }
    Some(date.and_time(NaiveTime::from_hms_nano_opt(hour, minute, second, nano)?))
}

struct Cursor<'s> {
    bytes: &'s [u8],
    pos: usize,
}

impl Cursor<'_> {
    fn at_end(&self) -> bool {
        self.pos == self.bytes.len()
    }

    fn one_of(&mut self, options: &[u8]) -> Option<u8> {
        let b = *self.bytes.get(self.pos)?;
        options.contains(&b).then(|| {
            self.pos += 1;
            b
        })
    }

    fn digits(&mut self, max: usize) -> &[u8] {
        let rest = &self.bytes[self.pos..];
        let n = rest
            .iter()
            .take(max)
            .take_while(|b| b.is_ascii_digit())
            .count();
        self.pos += n;
        &rest[..n]
    }

    fn number(&mut self, min: usize, max: usize) -> Option<u32> {
        let digits = self.digits(max);
        (digits.len() >= min).then(|| {
            digits
                .iter()
                .fold(0, |acc, d| acc * 10 + u32::from(d - b'0'))
        })
    }

    /// Fractional seconds as nanoseconds (at least one digit; digits past the ninth are dropped).
    fn fraction(&mut self) -> Option<u32> {
        let digits = self.digits(usize::MAX);
        if digits.is_empty() {
            return None;
        }
        let nanos = digits
            .iter()
            .chain(std::iter::repeat(&b'0'))
            .take(9)
            .fold(0, |acc, d| acc * 10 + u32::from(d - b'0'));
        Some(nanos)
    }
}

/// Seconds east of UTC for a fixed-offset Arrow time zone (`+02:00`, `-0530`, `+01`); 0 for UTC
/// and for named zones (which would need a time-zone database).
fn fixed_offset_seconds(tz: &str) -> i64 {
    let b = tz.as_bytes();
    let sign = match b.first() {
        Some(b'+') => 1,
        Some(b'-') => -1,
        _ => return 0,
    };
    let digits: Vec<i64> = b[1..]
        .iter()
        .filter(|c| **c != b':')
        .map(|c| i64::from(c.wrapping_sub(b'0')))
        .collect();
    match digits[..] {
        [h1, h2] if h1 < 10 && h2 < 10 => sign * (h1 * 10 + h2) * 3600,
        [h1, h2, m1, m2] if [h1, h2, m1, m2].iter().all(|d| *d < 10) => {
            sign * ((h1 * 10 + h2) * 3600 + (m1 * 10 + m2) * 60)
        }
        _ => 0,
    }
}

fn is_text(dt: &DataType) -> bool {
    matches!(
        dt,
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View
    )
}

fn io_error(path: &Path, source: std::io::Error) -> DataError {
    DataError::Io {
        path: PathBuf::from(path),
        source,
    }
}

fn arrow_error(path: &Path, source: ArrowError) -> DataError {
    DataError::Arrow {
        path: PathBuf::from(path),
        source,
    }
}

fn parquet_error(path: &Path, source: ParquetError) -> DataError {
    DataError::Parquet {
        path: PathBuf::from(path),
        source,
    }
}
