//! GluonTS Arrow files: reading what GluonTS and pyarrow wrote (fixtures from
//! `fixtures/kernel_synth.py`), writing and reading back every format and compression, errors on
//! bad files, and the `kernel-synth` binary end to end (its output read back here and, when the
//! reference venv has GluonTS, by GluonTS' `FileDataset`).

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::Arc;

use arrow::array::{
    Array, ArrayRef, AsArray, Float64Array, Int64Array, ListArray, RecordBatch,
    TimestampSecondArray,
};
use arrow::buffer::OffsetBuffer;
use arrow::datatypes::{DataType, Field};
use arrow::ipc::reader::FileReader;
use arrow::ipc::writer::FileWriter;
use chrono::NaiveDateTime;
use serde::Deserialize;

use chronos::data::{
    read_gluonts, DataError, GluonEntry, GluonReader, GluonWriteOptions, GluonWriter,
    IpcCompression, IpcFormat,
};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn ts(s: &str) -> NaiveDateTime {
    NaiveDateTime::parse_from_str(s, "%Y-%m-%d %H:%M:%S%.f")
        .unwrap_or_else(|e| panic!("bad test timestamp {s}: {e}"))
}

#[derive(Deserialize)]
struct ExpectedEntry {
    start: String,
    target: Vec<Option<f64>>,
}

/// Values within `rtol` relative (0: equal), NaN where the other is NaN.
fn assert_values(actual: &[f64], expected: &[f64], rtol: f64, what: &str) {
    assert_eq!(actual.len(), expected.len(), "{what}: length");
    for (i, (a, b)) in actual.iter().zip(expected).enumerate() {
        assert!(
            a == b || (a.is_nan() && b.is_nan()) || (a - b).abs() <= rtol * b.abs(),
            "{what}[{i}]: {a} != {b}"
        );
    }
}

/// Equal values, NaN where the other is NaN.
fn assert_same_values(actual: &[f64], expected: &[f64], what: &str) {
    assert_values(actual, expected, 0.0, what);
}

/// serde_json's default float parsing may be one unit in the last place off.
const JSON_RTOL: f64 = 4.0 * f64::EPSILON;

#[test]
fn reads_files_written_by_gluonts_and_pyarrow() {
    let dir = root().join("fixtures/kernel_synth");
    let text = std::fs::read_to_string(dir.join("arrow_expected.json")).unwrap();
    let expected: std::collections::BTreeMap<String, Vec<ExpectedEntry>> =
        serde_json::from_str(&text).unwrap();
    assert_eq!(expected.len(), 3);
    for (name, entries) in &expected {
        let actual = read_gluonts(&dir.join(name)).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(actual.len(), entries.len(), "{name}");
        for (i, (a, e)) in actual.iter().zip(entries).enumerate() {
            assert_eq!(a.start, ts(&e.start), "{name}[{i}].start");
            let values: Vec<f64> = e.target.iter().map(|v| v.unwrap_or(f64::NAN)).collect();
            assert_values(
                &a.target,
                &values,
                JSON_RTOL,
                &format!("{name}[{i}].target"),
            );
        }
    }
}

fn entries() -> Vec<GluonEntry> {
    vec![
        GluonEntry {
            start: ts("2000-01-01 00:00:00"),
            target: vec![1.0, f64::NAN, -2.5, 1e-300],
        },
        GluonEntry {
            start: ts("1969-07-20 20:17:40"),
            target: Vec::new(),
        },
        GluonEntry {
            start: ts("2262-04-12 00:00:00"),
            target: vec![f64::MAX, f64::MIN_POSITIVE],
        },
    ]
}

#[test]
fn round_trips_every_format_and_compression() {
    let dir = tempfile::tempdir().unwrap();
    let written = entries();
    for format in [IpcFormat::File, IpcFormat::Stream] {
        for compression in [
            IpcCompression::None,
            IpcCompression::Lz4,
            IpcCompression::Zstd,
        ] {
            let path = dir.path().join(format!("{format:?}-{compression:?}.arrow"));
            let options = GluonWriteOptions {
                compression,
                format,
                text_columns: vec!["item_id".into()],
            };
            let mut writer = GluonWriter::create(&path, &options).unwrap();
            writer.write(&written[..1], &[vec!["a".into()]]).unwrap();
            writer.write(&[], &[Vec::new()]).unwrap();
            writer
                .write(&written[1..], &[vec!["b".into(), "c".into()]])
                .unwrap();
            assert_eq!(writer.finish().unwrap(), 3);

            let magic = std::fs::read(&path).unwrap()[..6].to_vec();
            assert_eq!(magic == b"ARROW1", format == IpcFormat::File, "{path:?}");
            let batches: Vec<usize> = GluonReader::open(&path)
                .unwrap()
                .map(|b| b.unwrap().len())
                .collect();
            assert_eq!(batches, [1, 0, 2], "{path:?}");
            let read = read_gluonts(&path).unwrap();
            assert_eq!(read.len(), 3, "{path:?}");
            for (i, (a, b)) in read.iter().zip(&written).enumerate() {
                assert_eq!(a.start, b.start, "{path:?}[{i}]");
                assert_same_values(&a.target, &b.target, &format!("{path:?}[{i}]"));
            }
        }
    }
}

#[test]
fn writer_refuses_what_the_file_cannot_hold() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("x.arrow");
    let options = GluonWriteOptions {
        text_columns: vec!["kernel".into()],
        ..GluonWriteOptions::default()
    };
    let mut writer = GluonWriter::create(&path, &options).unwrap();
    let entry = |start: NaiveDateTime| GluonEntry {
        start,
        target: vec![1.0],
    };
    let subsecond = entry(ts("2000-01-01 00:00:00.25"));
    let err = writer.write(&[subsecond], &[vec!["k".into()]]).unwrap_err();
    assert!(
        matches!(&err, DataError::BadEntry { column, row: 1, .. } if column == "start"),
        "{err}"
    );
    let whole = entry(ts("2000-01-01 00:00:00"));
    let err = writer.write(std::slice::from_ref(&whole), &[]).unwrap_err();
    assert!(matches!(err, DataError::BadEntry { .. }), "{err}");
    let err = writer
        .write(
            std::slice::from_ref(&whole),
            &[vec!["k".into(), "l".into()]],
        )
        .unwrap_err();
    assert!(
        matches!(&err, DataError::BadEntry { column, .. } if column == "kernel"),
        "{err}"
    );
    // Nothing was written by the failed calls.
    writer.write(&[whole], &[vec!["k".into()]]).unwrap();
    assert_eq!(writer.finish().unwrap(), 1);
    assert_eq!(read_gluonts(&path).unwrap().len(), 1);

    let missing_dir = dir.path().join("no/such/dir/x.arrow");
    let err = GluonWriter::create(&missing_dir, &GluonWriteOptions::default()).err();
    assert!(matches!(err, Some(DataError::Io { .. })), "{err:?}");
}

/// Writes one record batch with the given columns as an uncompressed IPC file.
fn write_batch(path: &Path, columns: Vec<(&str, ArrayRef)>) {
    let batch = RecordBatch::try_from_iter(columns).unwrap();
    let mut writer = FileWriter::try_new(File::create(path).unwrap(), &batch.schema()).unwrap();
    writer.write(&batch).unwrap();
    writer.finish().unwrap();
}

fn target_list(values: Vec<f64>, lengths: Vec<usize>) -> ArrayRef {
    let item = Arc::new(Field::new("item", DataType::Float64, true));
    Arc::new(
        ListArray::try_new(
            item,
            OffsetBuffer::from_lengths(lengths),
            Arc::new(Float64Array::from(values)),
            None,
        )
        .unwrap(),
    )
}

#[test]
fn reader_errors_name_the_problem() {
    let dir = tempfile::tempdir().unwrap();
    let start: ArrayRef = Arc::new(TimestampSecondArray::from(vec![0, 60]));

    let path = dir.path().join("no-target.arrow");
    write_batch(&path, vec![("start", start.clone())]);
    let err = read_gluonts(&path).unwrap_err();
    assert!(
        matches!(&err, DataError::MissingColumn { column, .. } if column == "target"),
        "{err}"
    );

    let path = dir.path().join("int-start.arrow");
    let ints: ArrayRef = Arc::new(Int64Array::from(vec![0, 60]));
    write_batch(
        &path,
        vec![
            ("start", ints),
            ("target", target_list(vec![1.0], vec![1, 0])),
        ],
    );
    let err = read_gluonts(&path).unwrap_err();
    assert!(
        matches!(&err, DataError::ColumnType { role: "start", .. }),
        "{err}"
    );

    let path = dir.path().join("multivariate.arrow");
    let inner = target_list(vec![1.0, 2.0], vec![1, 1]);
    let nested: ArrayRef = Arc::new(
        ListArray::try_new(
            Arc::new(Field::new("item", inner.data_type().clone(), true)),
            OffsetBuffer::from_lengths([1, 1]),
            inner,
            None,
        )
        .unwrap(),
    );
    write_batch(&path, vec![("start", start.clone()), ("target", nested)]);
    let err = read_gluonts(&path).unwrap_err();
    assert!(
        matches!(&err, DataError::ColumnType { role: "target", .. }),
        "{err}"
    );

    let path = dir.path().join("null-start.arrow");
    let with_null: ArrayRef = Arc::new(TimestampSecondArray::from(vec![Some(0), None]));
    write_batch(
        &path,
        vec![
            ("start", with_null),
            ("target", target_list(vec![1.0], vec![1, 0])),
        ],
    );
    let err = read_gluonts(&path).unwrap_err();
    assert!(
        matches!(&err, DataError::BadEntry { row: 2, column, .. } if column == "start"),
        "{err}"
    );

    let path = dir.path().join("garbage.arrow");
    std::fs::write(&path, b"not an arrow file at all").unwrap();
    let err = read_gluonts(&path).unwrap_err();
    assert!(matches!(err, DataError::Arrow { .. }), "{err}");

    let err = read_gluonts(&dir.path().join("absent.arrow")).unwrap_err();
    assert!(matches!(err, DataError::Io { .. }), "{err}");
}

fn kernel_synth(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_kernel-synth"))
        .args(args)
        .output()
        .expect("run kernel-synth")
}

/// The GluonTS venv's Python (`scripts/setup.sh --reference` makes it) when GluonTS imports there.
fn python_with_gluonts() -> Option<PathBuf> {
    let python = root().join(".venv-gluonts/bin/python");
    let ok = Command::new(&python)
        .args(["-c", "import gluonts"])
        .output()
        .is_ok_and(|o| o.status.success());
    ok.then_some(python)
}

#[derive(Deserialize)]
struct GluonRead {
    start: String,
    target: Vec<Option<f64>>,
    target_dtype: String,
    fields: Vec<String>,
}

#[test]
fn binary_writes_a_dataset_that_gluonts_reads() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("synth.arrow");
    let out = kernel_synth(&[
        "-N",
        "12",
        "-J",
        "3",
        "--length",
        "48",
        "--seed",
        "5",
        "--batch-size",
        "5",
        "--threads",
        "2",
        "--kernel-column",
        "--output",
        path.to_str().unwrap(),
    ]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.contains("wrote 12 series of length 48"), "{stderr}");

    let entries = read_gluonts(&path).unwrap();
    assert_eq!(entries.len(), 12);
    for e in &entries {
        assert_eq!(e.start, ts("2000-01-01 00:00:00"));
        assert_eq!(e.target.len(), 48);
        assert!(e.target.iter().all(|v| v.is_finite()));
    }
    let reader = FileReader::try_new(File::open(&path).unwrap(), None).unwrap();
    let schema = reader.schema();
    let names: Vec<&str> = schema.fields().iter().map(|f| f.name().as_str()).collect();
    assert_eq!(names, ["start", "target", "kernel"]);
    let mut kernels = Vec::new();
    for batch in reader {
        let batch = batch.unwrap();
        let column = batch.column_by_name("kernel").unwrap().as_string::<i32>();
        kernels.extend((0..column.len()).map(|i| column.value(i).to_string()));
    }
    assert_eq!(kernels.len(), 12);
    let classes = [
        "ExpSineSquared(",
        "DotProduct(",
        "RBF(",
        "RationalQuadratic(",
        "WhiteKernel(",
        "ConstantKernel(",
    ];
    for k in &kernels {
        let count: usize = classes.iter().map(|c| k.matches(c).count()).sum();
        assert!((1..=3).contains(&count), "{k}");
    }

    // The same seed gives the same file; another start is honoured.
    let again = dir.path().join("again.arrow");
    let out = kernel_synth(&[
        "-N",
        "12",
        "-J",
        "3",
        "--length",
        "48",
        "--seed",
        "5",
        "--batch-size",
        "12",
        "--threads",
        "1",
        "--start",
        "2021-06-01T12:30",
        "--output",
        again.to_str().unwrap(),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let again = read_gluonts(&again).unwrap();
    assert_eq!(again[0].start, ts("2021-06-01 12:30:00"));
    for (a, b) in again.iter().zip(&entries) {
        assert_eq!(a.target, b.target);
    }

    let Some(python) = python_with_gluonts() else {
        println!(
            "skipped the GluonTS FileDataset check: no GluonTS venv \
             (scripts/setup.sh --reference makes .venv-gluonts)"
        );
        return;
    };
    let out = Command::new(python)
        .arg(root().join("fixtures/kernel_synth.py"))
        .arg("--read")
        .arg(&path)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let read: Vec<GluonRead> = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(read.len(), 12);
    for (g, e) in read.iter().zip(&entries) {
        assert_eq!(g.start, "2000-01-01 00:00:00");
        assert_eq!(g.fields, ["kernel", "start", "target"]);
        // FileDataset converts the target to float32.
        assert_eq!(g.target_dtype, "float32");
        let as_f32: Vec<f64> = e.target.iter().map(|v| f64::from(*v as f32)).collect();
        let values: Vec<f64> = g.target.iter().map(|v| v.unwrap_or(f64::NAN)).collect();
        assert_values(&values, &as_f32, JSON_RTOL, "FileDataset target");
    }
    println!("GluonTS FileDataset read the 12 series");
}

#[test]
fn binary_rejects_bad_input_without_panicking() {
    let dir = tempfile::tempdir().unwrap();
    let output = dir.path().join("x.arrow");
    let output = output.to_str().unwrap();
    let cases: [(&[&str], &str); 5] = [
        (&["-N", "2", "--length", "1"], "length"),
        (&["-N", "2", "-J", "0"], "kernels"),
        (&["-N", "2", "--start", "yesterday"], "YYYY-MM-DD"),
        (&["-N", "2", "--batch-size", "0"], "--batch-size"),
        (&["-N", "0"], "num-series"),
    ];
    for (args, message) in cases {
        let mut all = vec!["--output", output];
        all.extend_from_slice(args);
        let out = kernel_synth(&all);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{args:?} succeeded");
        assert!(stderr.contains(message), "{args:?}: {stderr}");
        assert!(!stderr.contains("panicked"), "{args:?}: {stderr}");
    }
    let out = kernel_synth(&["-N", "2", "--output", "/no/such/dir/x.arrow"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(stderr.contains("/no/such/dir/x.arrow"), "{stderr}");
}
