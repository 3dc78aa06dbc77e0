//! GluonTS datasets in Arrow IPC files (`gluonts.dataset.arrow`): one row per series with a
//! `start` timestamp and a `target` list of values, as GluonTS' `ArrowWriter` writes them and its
//! `FileDataset` reads them (upstream's KernelSynth output and training data).

use std::fs::File;
use std::io::{BufReader, BufWriter, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow::array::timezone::Tz;
use arrow::array::{
    Array, ArrayRef, AsArray, Float64Array, GenericListArray, ListArray, OffsetSizeTrait,
    RecordBatch, StringArray, TimestampSecondArray,
};
use arrow::buffer::OffsetBuffer;
use arrow::compute::cast;
use arrow::datatypes::{DataType, Field, Float64Type, Int64Type, Schema, SchemaRef, TimeUnit};
use arrow::error::ArrowError;
use arrow::ipc::reader::{FileReader, StreamReader};
use arrow::ipc::writer::{FileWriter, IpcWriteOptions, StreamWriter};
use arrow::ipc::CompressionType;
use arrow::temporal_conversions::{
    timestamp_ms_to_datetime, timestamp_ns_to_datetime, timestamp_s_to_datetime,
    timestamp_us_to_datetime,
};
use chrono::{NaiveDateTime, Offset, TimeZone, Timelike};

use super::DataError;
use crate::atomic::AtomicFile;

/// The magic bytes that open an Arrow IPC *file* (the stream format has none).
const FILE_MAGIC: &[u8; 6] = b"ARROW1";

/// One GluonTS series: its first timestamp and its values (`NaN` = missing).
#[derive(Debug, Clone, PartialEq)]
pub struct GluonEntry {
    pub start: NaiveDateTime,
    pub target: Vec<f64>,
}

/// Arrow IPC buffer compression (GluonTS' `ArrowWriter(compression=...)`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IpcCompression {
    None,
    Lz4,
    Zstd,
}

/// Arrow IPC file (random access, GluonTS' default) or stream format (`ArrowWriter(stream=True)`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IpcFormat {
    File,
    Stream,
}

/// How [`GluonWriter`] writes: compression, format, and extra text columns after `start` and
/// `target` (names distinct from those two).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GluonWriteOptions {
    pub compression: IpcCompression,
    pub format: IpcFormat,
    pub text_columns: Vec<String>,
}

impl Default for GluonWriteOptions {
    /// LZ4-compressed IPC file, no extra columns (upstream kernel-synth's output).
    fn default() -> Self {
        Self {
            compression: IpcCompression::Lz4,
            format: IpcFormat::File,
            text_columns: Vec::new(),
        }
    }
}

/// Reads a whole GluonTS Arrow dataset (see [`GluonReader`] for what is accepted).
pub fn read_gluonts(path: &Path) -> Result<Vec<GluonEntry>, DataError> {
    let mut entries = Vec::new();
    for batch in GluonReader::open(path)? {
        entries.extend(batch?);
    }
    Ok(entries)
}

/// Reads a GluonTS Arrow dataset one record batch at a time (so a large dataset need not sit in
/// memory at once): IPC file or stream format (told apart by the file's magic bytes, as GluonTS
/// does), uncompressed or LZ4/zstd-compressed.
///
/// * `start`: a timestamp of any unit (a fixed-offset time zone such as `+02:00` gives local wall
///   time, as GluonTS' `Period`; any other zone is read as UTC wall time).
/// * `target`: a list or large list of floats or integers; null values become `NaN`.
/// * Other columns are ignored.
///
/// Errors name the file and, as relevant, the column and the 1-based row: a missing column, an
/// unsupported type (e.g. a multivariate `list<list<...>>` target), a null `start` or `target`, a
/// `start` outside chrono's range.
pub struct GluonReader {
    path: PathBuf,
    batches: Box<dyn Iterator<Item = Result<RecordBatch, ArrowError>> + Send>,
    rows: usize,
}

impl GluonReader {
    pub fn open(path: &Path) -> Result<Self, DataError> {
        let mut file = File::open(path).map_err(|e| io_error(path, e))?;
        let mut magic = [0u8; 6];
        let is_file_format = file.read_exact(&mut magic).is_ok() && &magic == FILE_MAGIC;
        file.seek(SeekFrom::Start(0))
            .map_err(|e| io_error(path, e))?;
        let reader = BufReader::new(file);
        let batches: Box<dyn Iterator<Item = Result<RecordBatch, ArrowError>> + Send> =
            if is_file_format {
                Box::new(FileReader::try_new(reader, None).map_err(|e| arrow_error(path, e))?)
            } else {
                Box::new(StreamReader::try_new(reader, None).map_err(|e| arrow_error(path, e))?)
            };
        Ok(GluonReader {
            path: path.to_path_buf(),
            batches,
            rows: 0,
        })
    }
}

impl Iterator for GluonReader {
    /// The entries of the next record batch.
    type Item = Result<Vec<GluonEntry>, DataError>;

    fn next(&mut self) -> Option<Self::Item> {
        let path = self.path.as_path();
        let batch = match self.batches.next()? {
            Ok(batch) => batch,
            Err(e) => return Some(Err(arrow_error(path, e))),
        };
        let entries = batch_entries(path, &batch, self.rows);
        if let Ok(entries) = &entries {
            self.rows += entries.len();
        }
        Some(entries)
    }
}

/// The entries of `batch`, whose first row is row `base + 1` of the file.
fn batch_entries(
    path: &Path,
    batch: &RecordBatch,
    base: usize,
) -> Result<Vec<GluonEntry>, DataError> {
    let column = |role: &'static str| super::column(path, batch, role, role);
    let starts = read_starts(path, column("start")?, base)?;
    let targets = read_targets(path, column("target")?)?;
    starts
        .into_iter()
        .zip(targets)
        .enumerate()
        .map(|(i, (start, target))| {
            let null = |column: &str| bad_entry(path, base + i + 1, column, "is null");
            Ok(GluonEntry {
                start: start.ok_or_else(|| null("start"))?,
                target: target.ok_or_else(|| null("target"))?,
            })
        })
        .collect()
}

/// The `start` column as wall times (`None` for nulls); rows are numbered from `base + 1`.
fn read_starts(
    path: &Path,
    col: &ArrayRef,
    base: usize,
) -> Result<Vec<Option<NaiveDateTime>>, DataError> {
    let DataType::Timestamp(unit, tz) = col.data_type() else {
        return Err(column_type(path, "start", col, "a timestamp"));
    };
    let convert = match unit {
        TimeUnit::Second => timestamp_s_to_datetime,
        TimeUnit::Millisecond => timestamp_ms_to_datetime,
        TimeUnit::Microsecond => timestamp_us_to_datetime,
        TimeUnit::Nanosecond => timestamp_ns_to_datetime,
    };
    // Named zones would need a time-zone database: read as UTC.
    let zone = tz.as_deref().and_then(|tz| tz.parse::<Tz>().ok());
    let raw = cast(col, &DataType::Int64).map_err(|e| arrow_error(path, e))?;
    raw.as_primitive::<Int64Type>()
        .iter()
        .enumerate()
        .map(|(i, v)| {
            let Some(v) = v else { return Ok(None) };
            let utc = convert(v);
            let local = match (utc, zone) {
                (Some(t), Some(zone)) => {
                    let offset = zone.offset_from_utc_datetime(&t).fix();
                    t.checked_add_signed(chrono::TimeDelta::seconds(i64::from(
                        offset.local_minus_utc(),
                    )))
                }
                (t, None) => t,
                (None, _) => None,
            };
            local.map(Some).ok_or_else(|| {
                let problem = format!("holds {v} ({unit:?}), outside the supported dates");
                bad_entry(path, base + i + 1, "start", &problem)
            })
        })
        .collect()
}

/// The `target` column as `f64` vectors (`None` for null lists).
fn read_targets(path: &Path, col: &ArrayRef) -> Result<Vec<Option<Vec<f64>>>, DataError> {
    match col.data_type() {
        DataType::List(item) if is_number(item.data_type()) => {
            list_values(path, col.as_list::<i32>())
        }
        DataType::LargeList(item) if is_number(item.data_type()) => {
            list_values(path, col.as_list::<i64>())
        }
        _ => Err(column_type(path, "target", col, "a list of numbers")),
    }
}

fn is_number(dt: &DataType) -> bool {
    dt.is_integer() || dt.is_floating()
}

fn list_values<O: OffsetSizeTrait>(
    path: &Path,
    list: &GenericListArray<O>,
) -> Result<Vec<Option<Vec<f64>>>, DataError> {
    let values = cast(list.values(), &DataType::Float64).map_err(|e| arrow_error(path, e))?;
    let values = values.as_primitive::<Float64Type>();
    let offsets = list.value_offsets();
    Ok((0..list.len())
        .map(|i| {
            list.is_valid(i).then(|| {
                (offsets[i].as_usize()..offsets[i + 1].as_usize())
                    .map(|j| match values.is_valid(j) {
                        true => values.value(j),
                        false => f64::NAN,
                    })
                    .collect()
            })
        })
        .collect())
}

enum IpcWriter {
    File(FileWriter<BufWriter<File>>),
    Stream(StreamWriter<BufWriter<File>>),
}

/// Writes a GluonTS Arrow dataset batch by batch (`start` as `timestamp[s]`, `target` as
/// `list<double>`, then the text columns), so a large dataset never sits in memory at once.
/// Call [`GluonWriter::finish`] at the end: an unfinished IPC file has no footer.
pub struct GluonWriter {
    /// The file being written; [`GluonWriter::finish`] renames it into place.
    atomic: AtomicFile,
    path: PathBuf,
    schema: SchemaRef,
    text_columns: Vec<String>,
    writer: IpcWriter,
    rows: usize,
}

impl GluonWriter {
    /// Starts writing `path` (which appears, or replaces an existing file, only when
    /// [`GluonWriter::finish`] succeeds) and writes the schema.
    pub fn create(path: &Path, options: &GluonWriteOptions) -> Result<Self, DataError> {
        let mut fields = vec![
            Field::new("start", DataType::Timestamp(TimeUnit::Second, None), true),
            Field::new(
                "target",
                DataType::List(Arc::new(Field::new("item", DataType::Float64, true))),
                true,
            ),
        ];
        fields.extend(
            options
                .text_columns
                .iter()
                .map(|name| Field::new(name, DataType::Utf8, true)),
        );
        let schema = Arc::new(Schema::new(fields));
        let compression = match options.compression {
            IpcCompression::None => None,
            IpcCompression::Lz4 => Some(CompressionType::LZ4_FRAME),
            IpcCompression::Zstd => Some(CompressionType::ZSTD),
        };
        let ipc_options = IpcWriteOptions::default()
            .try_with_compression(compression)
            .map_err(|e| arrow_error(path, e))?;
        let atomic = AtomicFile::create(path).map_err(|e| io_error(path, e))?;
        let handle = atomic.file().try_clone().map_err(|e| io_error(path, e))?;
        let file = BufWriter::new(handle);
        let writer = match options.format {
            IpcFormat::File => {
                FileWriter::try_new_with_options(file, &schema, ipc_options).map(IpcWriter::File)
            }
            IpcFormat::Stream => StreamWriter::try_new_with_options(file, &schema, ipc_options)
                .map(IpcWriter::Stream),
        }
        .map_err(|e| arrow_error(path, e))?;
        Ok(GluonWriter {
            atomic,
            path: path.to_path_buf(),
            schema,
            text_columns: options.text_columns.clone(),
            writer,
            rows: 0,
        })
    }

    /// Writes `entries` as one record batch, with `text[c][i]` the value of text column `c` for
    /// entry `i`. Errors (nothing written) for a `start` with a fraction of a second, text
    /// columns of the wrong count or length, or more than `i32::MAX` values in the batch.
    pub fn write(&mut self, entries: &[GluonEntry], text: &[Vec<String>]) -> Result<(), DataError> {
        let path = self.path.as_path();
        let row = |i: usize| self.rows + i + 1;
        if text.len() != self.text_columns.len() {
            let problem = format!(
                "got {} text columns for the file's {} ({})",
                text.len(),
                self.text_columns.len(),
                self.text_columns.join(", ")
            );
            return Err(bad_entry(path, row(0), "<text columns>", &problem));
        }
        for (name, values) in self.text_columns.iter().zip(text) {
            if values.len() != entries.len() {
                let problem = format!("has {} values for {} entries", values.len(), entries.len());
                return Err(bad_entry(path, row(0), name, &problem));
            }
        }
        let mut starts = Vec::with_capacity(entries.len());
        let mut lengths = Vec::with_capacity(entries.len());
        let mut total = 0usize;
        for (i, e) in entries.iter().enumerate() {
            if e.start.nanosecond() != 0 {
                let problem = format!("{} has a fraction of a second (timestamp[s])", e.start);
                return Err(bad_entry(path, row(i), "start", &problem));
            }
            total += e.target.len();
            if total > i32::MAX as usize {
                let problem = "overflows the batch's 2^31 - 1 values: write fewer per batch";
                return Err(bad_entry(path, row(i), "target", problem));
            }
            starts.push(e.start.and_utc().timestamp());
            lengths.push(e.target.len());
        }
        let values =
            Float64Array::from_iter_values(entries.iter().flat_map(|e| e.target.iter().copied()));
        let item = Arc::new(Field::new("item", DataType::Float64, true));
        let target = ListArray::try_new(
            item,
            OffsetBuffer::from_lengths(lengths),
            Arc::new(values),
            None,
        )
        .map_err(|e| arrow_error(path, e))?;
        let mut columns: Vec<ArrayRef> = vec![
            Arc::new(TimestampSecondArray::from(starts)),
            Arc::new(target),
        ];
        columns.extend(
            text.iter()
                .map(|values| Arc::new(StringArray::from_iter_values(values)) as ArrayRef),
        );
        let batch =
            RecordBatch::try_new(self.schema.clone(), columns).map_err(|e| arrow_error(path, e))?;
        match &mut self.writer {
            IpcWriter::File(w) => w.write(&batch),
            IpcWriter::Stream(w) => w.write(&batch),
        }
        .map_err(|e| arrow_error(path, e))?;
        self.rows += entries.len();
        Ok(())
    }

    /// Writes the IPC footer (file) or end-of-stream marker and flushes; returns the number of
    /// entries written.
    pub fn finish(self) -> Result<usize, DataError> {
        let path = self.path.as_path();
        let buffered = match self.writer {
            IpcWriter::File(w) => w.into_inner(),
            IpcWriter::Stream(w) => w.into_inner(),
        }
        .map_err(|e| arrow_error(path, e))?;
        buffered
            .into_inner()
            .map_err(|e| io_error(path, e.into_error()))?;
        self.atomic.commit().map_err(|e| io_error(path, e))?;
        Ok(self.rows)
    }
}

fn column_type(
    path: &Path,
    role: &'static str,
    col: &ArrayRef,
    expected: &'static str,
) -> DataError {
    DataError::ColumnType {
        path: path.to_path_buf(),
        role,
        column: role.to_string(),
        found: col.data_type().to_string(),
        expected,
    }
}

fn bad_entry(path: &Path, row: usize, column: &str, problem: &str) -> DataError {
    DataError::BadEntry {
        path: path.to_path_buf(),
        row,
        column: column.to_string(),
        problem: problem.to_string(),
    }
}

fn io_error(path: &Path, source: std::io::Error) -> DataError {
    DataError::Io {
        path: path.to_path_buf(),
        source,
    }
}

fn arrow_error(path: &Path, source: ArrowError) -> DataError {
    DataError::Arrow {
        path: path.to_path_buf(),
        source,
    }
}
