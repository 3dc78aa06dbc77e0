//! Reading long-format tables into [`Series`], frequency agreement across series, and writing
//! forecast tables, for `.csv` and `.parquet` files.

use std::borrow::Cow;
use std::io::{BufWriter, Write};
use std::path::Path;
use std::sync::Arc;

use arrow::array::{ArrayRef, Float32Array, RecordBatch, StringArray, TimestampNanosecondArray};
use arrow::datatypes::{Field, Schema};
use chrono::{NaiveDateTime, NaiveTime, Timelike};
use parquet::arrow::ArrowWriter;
use parquet::basic::Compression;
use parquet::file::properties::WriterProperties;

use crate::atomic::AtomicFile;

use super::table::{arrow_error, io_error, parquet_error, read_table, FileKind, Selection};
use super::{future_timestamps, infer_freq, Columns, DataError, Freq, Series};

/// Reads a long-format `.csv` or `.parquet` file (chosen by extension) into one [`Series`] per
/// id, in order of first appearance, each sorted by timestamp (stable).
///
/// * ids: strings or integers (stringified); CSV ids are kept verbatim as text.
/// * timestamps: Arrow timestamps of any unit (a fixed-offset time zone such as `+02:00` is
///   converted to local wall time, any other zone is read as UTC wall time), `Date32`/`Date64`,
///   or text `YYYY-MM-DD`, optionally followed by `T` or a space and `HH:MM[:SS[.fraction]]`
///   and an ignored `Z`/`±HH[:MM]` suffix (`/` is also accepted as date separator).
/// * target: any integer, float, decimal or boolean type; nulls, empty CSV fields and pandas'
///   default NA strings (`NaN`, `NA`, `null`, ...) become `NaN`; other CSV text must be a
///   number as pandas reads one (`inf` allowed, `NAN` is not an NA token and an error).
///
/// Errors name the file and, as relevant, the column, the 1-based data row and the series id:
/// missing file or column, unsupported column type, empty id or timestamp, unparseable
/// timestamp or target, duplicate timestamps within a series, empty table.
pub fn read_long(path: &Path, cols: &Columns) -> Result<Vec<Series>, DataError> {
    let table = read_table(
        path,
        &Selection {
            id: &cols.id,
            timestamp: &cols.timestamp,
            required: vec![("target", &cols.target)],
            rest: false,
        },
    )?;
    let values = table.numeric("target", &table.columns[0])?;
    Ok(table
        .ids
        .iter()
        .enumerate()
        .map(|(g, id)| {
            let rows = table.rows(g);
            Series {
                id: id.clone(),
                timestamps: rows.iter().map(|&r| table.timestamps[r]).collect(),
                values: rows.iter().map(|&r| values[r]).collect(),
            }
        })
        .collect())
}

/// The frequency shared by all series, as upstream's `infer_freq_from_df`: series with fewer
/// than 3 points are skipped, every other series must have an inferable frequency
/// ([`DataError::IrregularSeries`]) and all must agree ([`DataError::FrequencyMismatch`]); if no
/// series has 3 points the result is [`DataError::NoFrequency`].
pub fn common_freq(series: &[Series]) -> Result<Freq, DataError> {
    common_freq_of(
        series
            .iter()
            .map(|s| (s.id.as_str(), s.timestamps.as_slice())),
    )
}

/// [`common_freq`] of series given as `(id, sorted timestamps)`.
pub(super) fn common_freq_of<'s>(
    series: impl Iterator<Item = (&'s str, &'s [NaiveDateTime])>,
) -> Result<Freq, DataError> {
    let mut found: Option<(Freq, &str)> = None;
    for (id, timestamps) in series.filter(|(_, t)| t.len() >= 3) {
        let freq =
            infer_freq(timestamps).ok_or_else(|| DataError::IrregularSeries { id: id.into() })?;
        match found {
            None => found = Some((freq, id)),
            Some((first, first_id)) if first != freq => {
                return Err(DataError::FrequencyMismatch {
                    first_id: first_id.to_string(),
                    first_freq: first.name(),
                    other_id: id.to_string(),
                    other_freq: freq.name(),
                })
            }
            Some(_) => {}
        }
    }
    found.map(|(freq, _)| freq).ok_or(DataError::NoFrequency)
}

/// Forecasts in the layout of upstream's `predict_df` output: for each series (in input order)
/// and each of its target columns (in the order given), one row per horizon step with the id,
/// the future timestamp, the target column's name, the point forecast and one value per
/// quantile level.
#[derive(Debug, Clone, PartialEq)]
pub struct ForecastTable {
    target_names: Vec<String>,
    quantile_levels: Vec<f64>,
    horizon: usize,
    ids: Vec<String>,
    /// Row-major `[series][step]`.
    timestamps: Vec<NaiveDateTime>,
    /// Row-major `[series][target][step]`.
    predictions: Vec<f32>,
    /// Row-major `[series][target][step][level]`.
    quantiles: Vec<f32>,
}

impl ForecastTable {
    /// Builds the table for `series` (one target named `target_name`) forecast `horizon` steps
    /// ahead at frequency `freq` (the future timestamps are computed with
    /// [`future_timestamps`]).
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
        let mut last = Vec::with_capacity(series.len());
        for s in series {
            // Series from `read_long` always have at least one row.
            let Some(&t) = s.timestamps.last() else {
                return Err(DataError::EmptySeries { id: s.id.clone() });
            };
            last.push((s.id.clone(), t));
        }
        let forecasts = Forecasts {
            target_names: vec![target_name.to_string()],
            horizon,
            predictions,
            quantile_levels,
            quantiles,
        };
        Self::with_targets(last, freq, forecasts)
    }

    /// Builds the table for series given by `(id, last timestamp)`, each forecast for every
    /// target of `forecasts` (upstream's row order: series, target, step).
    pub fn with_targets(
        last: Vec<(String, NaiveDateTime)>,
        freq: &Freq,
        forecasts: Forecasts<'_>,
    ) -> Result<Self, DataError> {
        let Forecasts {
            target_names,
            horizon,
            predictions,
            quantile_levels,
            quantiles,
        } = forecasts;
        let rows = last.len() * target_names.len() * horizon;
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
        let mut timestamps = Vec::with_capacity(last.len() * horizon);
        for (id, last) in &last {
            let future = future_timestamps(*last, freq, horizon).ok_or_else(|| {
                DataError::TimestampOverflow {
                    id: id.clone(),
                    last: *last,
                    freq: freq.name(),
                }
            })?;
            timestamps.extend(future);
        }
        Ok(Self {
            target_names,
            quantile_levels: quantile_levels.to_vec(),
            horizon,
            ids: last.into_iter().map(|(id, _)| id).collect(),
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

    /// Id, timestamp and target name of each row.
    fn rows(&self) -> impl Iterator<Item = (&str, NaiveDateTime, &str)> {
        let h = self.horizon;
        self.ids.iter().enumerate().flat_map(move |(i, id)| {
            self.target_names.iter().flat_map(move |target| {
                (0..h).map(move |t| (id.as_str(), self.timestamps[i * h + t], target.as_str()))
            })
        })
    }
}

/// The forecasts of every series for several targets, in upstream's layout.
#[derive(Debug, Clone)]
pub struct Forecasts<'a> {
    pub target_names: Vec<String>,
    pub horizon: usize,
    /// Row-major `[n_series, n_targets, horizon]`.
    pub predictions: Vec<f32>,
    pub quantile_levels: &'a [f64],
    /// Row-major `[n_series, n_targets, horizon, n_levels]`.
    pub quantiles: Vec<f32>,
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
    let file = AtomicFile::create(path).map_err(io)?;
    let mut out = BufWriter::new(file.file());
    let header: Vec<String> = table
        .column_names(cols)
        .iter()
        .map(|n| csv_field(n).into_owned())
        .collect();
    writeln!(out, "{}", header.join(",")).map_err(io)?;
    let style = TimestampStyle::for_all(&table.timestamps);
    let n_levels = table.quantile_levels.len();
    let mut line = String::new();
    for (row, (id, timestamp, target)) in table.rows().enumerate() {
        line.clear();
        line.push_str(&csv_field(id));
        line.push(',');
        style.push(&mut line, timestamp);
        line.push(',');
        line.push_str(&csv_field(target));
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
    out.flush().map_err(io)?;
    drop(out);
    file.commit().map_err(io)
}

fn write_parquet(path: &Path, cols: &Columns, table: &ForecastTable) -> Result<(), DataError> {
    let nanos = table
        .rows()
        .map(|(id, t, _)| {
            t.and_utc()
                .timestamp_nanos_opt()
                .ok_or_else(|| DataError::TimestampOutOfRange {
                    path: path.to_path_buf(),
                    id: id.to_string(),
                    timestamp: t,
                })
        })
        .collect::<Result<Vec<i64>, _>>()?;
    let n_levels = table.quantile_levels.len();
    let mut columns: Vec<ArrayRef> = vec![
        Arc::new(StringArray::from(
            table.rows().map(|r| r.0).collect::<Vec<_>>(),
        )),
        Arc::new(TimestampNanosecondArray::from(nanos)),
        Arc::new(StringArray::from(
            table.rows().map(|r| r.2).collect::<Vec<_>>(),
        )),
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
    let file = AtomicFile::create(path).map_err(|e| io_error(path, e))?;
    let props = WriterProperties::builder()
        .set_compression(Compression::SNAPPY)
        .build();
    let mut writer = ArrowWriter::try_new(file.file(), schema, Some(props))
        .map_err(|e| parquet_error(path, e))?;
    writer.write(&batch).map_err(|e| parquet_error(path, e))?;
    writer.close().map_err(|e| parquet_error(path, e))?;
    file.commit().map_err(|e| io_error(path, e))
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
