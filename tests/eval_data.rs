//! Benchmark configs, dataset files (chronos_datasets layout in Parquet / Arrow IPC file and
//! stream / shard folders, GluonTS-style Arrow), window splitting, and the errors and warnings
//! of the `evaluate` binary on bad input.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;

use arrow::array::{
    Array, ArrayRef, Float32Builder, Float64Builder, ListBuilder, RecordBatch, StringArray,
    StringBuilder, TimestampMillisecondBuilder, TimestampSecondArray,
};
use arrow::datatypes::{DataType, Field, Schema, TimeUnit};
use chrono::{NaiveDate, NaiveDateTime, TimeDelta};
use chronos::eval::{
    evaluate_dataset, locate, read_benchmarks, read_dataset, window_start, windows, Benchmark,
    EvalError, Model, ModelOptions,
};
use chronos::pipeline::Dtype;
use common::root;
use parquet::arrow::ArrowWriter;

fn t0() -> NaiveDateTime {
    NaiveDate::from_ymd_opt(2020, 1, 1)
        .unwrap()
        .and_hms_opt(0, 0, 0)
        .unwrap()
}

/// One item of a chronos_datasets-layout table: id, hourly timestamps from `t0`, and one value
/// list per series column (`None` = null value).
struct Item {
    id: Option<&'static str>,
    len: usize,
    columns: Vec<Vec<Option<f64>>>,
}

/// A batch with `id` (if `with_id`), `timestamp` (list<timestamp[ms]>), a static string column
/// and series columns `names` (list<float32>, the last one list<float64>).
fn batch(items: &[Item], names: &[&str], with_id: bool) -> RecordBatch {
    let mut fields = Vec::new();
    let mut columns: Vec<ArrayRef> = Vec::new();
    if with_id {
        fields.push(Field::new("id", DataType::Utf8, true));
        columns.push(Arc::new(StringArray::from(
            items.iter().map(|i| i.id).collect::<Vec<_>>(),
        )));
    }
    let mut ts = ListBuilder::new(TimestampMillisecondBuilder::new());
    for item in items {
        for k in 0..item.len {
            let t = t0() + TimeDelta::hours(k as i64);
            ts.values().append_value(t.and_utc().timestamp_millis());
        }
        ts.append(true);
    }
    let ts = ts.finish();
    fields.push(Field::new("timestamp", ts.data_type().clone(), true));
    columns.push(Arc::new(ts));
    let mut category = StringBuilder::new();
    for _ in items {
        category.append_value("static");
    }
    fields.push(Field::new("category", DataType::Utf8, true));
    columns.push(Arc::new(category.finish()));
    for (c, name) in names.iter().enumerate() {
        let array: ArrayRef = if c + 1 == names.len() && names.len() > 1 {
            let mut b = ListBuilder::new(Float64Builder::new());
            for item in items {
                b.values().extend(item.columns[c].iter().copied());
                b.append(true);
            }
            Arc::new(b.finish())
        } else {
            let mut b = ListBuilder::new(Float32Builder::new());
            for item in items {
                b.values()
                    .extend(item.columns[c].iter().map(|v| v.map(|v| v as f32)));
                b.append(true);
            }
            Arc::new(b.finish())
        };
        fields.push(Field::new(*name, array.data_type().clone(), true));
        columns.push(array);
    }
    RecordBatch::try_new(Arc::new(Schema::new(fields)), columns).unwrap()
}

fn write_parquet(path: &Path, batch: &RecordBatch) {
    let file = std::fs::File::create(path).unwrap();
    let mut writer = ArrowWriter::try_new(file, batch.schema(), None).unwrap();
    writer.write(batch).unwrap();
    writer.close().unwrap();
}

fn write_ipc(path: &Path, batch: &RecordBatch, stream: bool) {
    let file = std::fs::File::create(path).unwrap();
    if stream {
        let mut w = arrow::ipc::writer::StreamWriter::try_new(file, &batch.schema()).unwrap();
        w.write(batch).unwrap();
        w.finish().unwrap();
    } else {
        let mut w = arrow::ipc::writer::FileWriter::try_new(file, &batch.schema()).unwrap();
        w.write(batch).unwrap();
        w.finish().unwrap();
    }
}

fn ramp(len: usize, scale: f64) -> Vec<Option<f64>> {
    (0..len).map(|k| Some(scale * k as f64)).collect()
}

fn write_config(dir: &Path, entries: &str) -> PathBuf {
    let path = dir.join("config.yaml");
    std::fs::write(&path, entries).unwrap();
    path
}

fn bench(name: &str, offset: i64, h: usize, rolls: usize) -> Benchmark {
    Benchmark {
        name: name.into(),
        hf_repo: "autogluon/chronos_datasets".into(),
        offset,
        prediction_length: h,
        num_rolls: rolls,
        freq: None,
    }
}

fn options() -> ModelOptions {
    ModelOptions {
        dtype: Dtype::F32,
        device: tch::Device::Cpu,
        batch_size: 32,
        num_samples: None,
    }
}

#[test]
fn shipped_configs_list_upstreams_42_benchmarks() {
    let reference = |file: &str| -> Vec<String> {
        chronos::eval::read_results(&root().join("fixtures/eval").join(file))
            .unwrap()
            .into_iter()
            .map(|r| r.dataset)
            .collect()
    };
    for (config, results, count) in [
        ("configs/in-domain.yaml", "seasonal-naive-in-domain.csv", 15),
        ("configs/zero-shot.yaml", "seasonal-naive-zero-shot.csv", 27),
    ] {
        let benchmarks = read_benchmarks(&root().join(config)).unwrap();
        assert_eq!(benchmarks.len(), count, "{config}");
        let mut names: Vec<String> = benchmarks.iter().map(|b| b.name.clone()).collect();
        names.sort();
        assert_eq!(names, reference(results), "{config}");
        assert!(benchmarks
            .iter()
            .all(|b| b.num_rolls == 1 && b.offset < 0 && b.freq.is_none()));
    }
    let ettm = read_benchmarks(&root().join("configs/zero-shot.yaml"))
        .unwrap()
        .into_iter()
        .find(|b| b.name == "ETTm")
        .unwrap();
    assert_eq!(
        (ettm.offset, ettm.prediction_length, ettm.hf_repo.as_str()),
        (-96, 24, "autogluon/chronos_datasets_extra")
    );
}

#[test]
fn invalid_configs_are_errors_naming_the_entry() {
    let dir = tempfile::tempdir().unwrap();
    let entry = |name: &str, offset: i64, h: usize, rolls: usize| {
        format!(
            "- name: {name}\n  hf_repo: r/x\n  offset: {offset}\n  prediction_length: {h}\n  \
             num_rolls: {rolls}\n"
        )
    };
    let cases = [
        (entry("a", -5, 6, 1), "offset -5"),
        (entry("a", -12, 6, 3), "3 rolls of 6 need 18"),
        (entry("a", -6, 0, 1), "prediction_length must be at least 1"),
        (entry("a", -6, 6, 0), "num_rolls must be at least 1"),
        (entry("a", -6, 6, 1) + &entry("a", -4, 4, 1), "listed twice"),
        (
            entry("a", -6, 6, 1) + "  freq: fortnightly\n",
            "fortnightly",
        ),
        (entry("a", -6, 6, 1) + "  colour: red\n", "colour"),
        ("[]".to_string(), "no dataset"),
    ];
    for (text, expected) in cases {
        let path = write_config(dir.path(), &text);
        let err = read_benchmarks(&path).unwrap_err().to_string();
        assert!(err.contains(expected), "{text}: {err}");
        assert!(err.contains("config.yaml"), "{err}");
    }
    let path = write_config(dir.path(), &(entry("a", 10, 6, 2) + "  freq: 2h\n"));
    let ok = read_benchmarks(&path).unwrap();
    assert_eq!(ok[0].freq.unwrap().name(), "2h");
}

#[test]
fn windows_follow_gluonts_offset_splitter() {
    // Negative offset: window r starts at len + offset + r * h.
    assert_eq!(window_start(20, -6, 0, 3), Some(14));
    assert_eq!(window_start(20, -6, 1, 3), Some(17));
    // Positive offset: from the start.
    assert_eq!(window_start(20, 5, 2, 4), Some(13));
    assert_eq!(window_start(20, 5, 3, 4), None); // 17 + 4 > 20
                                                 // No context left (start 0) or before the start: skipped.
    assert_eq!(window_start(6, -6, 0, 3), None);
    assert_eq!(window_start(7, -6, 0, 3), Some(1));
    assert_eq!(window_start(20, 0, 0, 3), None);
    let split = windows(&bench("x", -6, 3, 2), [20, 3, 7]);
    let starts: Vec<(usize, usize)> = split.windows.iter().map(|w| (w.series, w.start)).collect();
    assert_eq!(starts, vec![(0, 14), (0, 17), (2, 1), (2, 4)]);
    assert_eq!(split.skipped, vec![(1, 0), (1, 1)]);
}

#[test]
fn reads_the_chronos_datasets_layout_in_every_container() {
    let dir = tempfile::tempdir().unwrap();
    let items = [
        Item {
            id: Some("A"),
            len: 30,
            columns: vec![ramp(30, 1.0), ramp(30, 10.0)],
        },
        Item {
            id: Some("B"),
            len: 5,
            columns: vec![
                vec![Some(1.0), None, Some(f64::NAN), Some(4.0), Some(5.0)],
                ramp(5, 2.0),
            ],
        },
    ];
    let b = batch(&items, &["x", "y"], true);
    write_parquet(&dir.path().join("multi.parquet"), &b);
    write_ipc(&dir.path().join("file.arrow"), &b, false);
    write_ipc(&dir.path().join("stream.arrow"), &b, true);
    // A shard folder as the HF repos lay it out: rows split over two files.
    let shards = dir.path().join("sharded");
    std::fs::create_dir(&shards).unwrap();
    write_parquet(&shards.join("train-00000-of-00002.parquet"), &b.slice(0, 1));
    write_ipc(
        &shards.join("train-00001-of-00002.arrow"),
        &b.slice(1, 1),
        true,
    );
    std::fs::write(shards.join("README.md"), "not a shard").unwrap();

    for name in ["multi", "file", "stream", "sharded"] {
        let files = locate(dir.path(), name).unwrap();
        let ds = read_dataset(name, &files, None).unwrap();
        assert_eq!(ds.freq.name(), "h", "{name}");
        let ids: Vec<&str> = ds.series.iter().map(|s| s.id.as_str()).collect();
        assert_eq!(ids, ["A/x", "A/y", "B/x", "B/y"], "{name}");
        assert_eq!(ds.series[1].values[29], 290.0, "{name}");
        let b_x = &ds.series[2].values;
        assert_eq!(b_x.len(), 5);
        assert!(
            b_x[1].is_nan() && b_x[2].is_nan() && b_x[3] == 4.0,
            "{name}: {b_x:?}"
        );
    }
    assert_eq!(locate(dir.path(), "sharded").unwrap().len(), 2);

    // A single series column keeps the bare id; no id column names rows by number.
    let single = batch(&items, &["target"], false);
    write_parquet(&dir.path().join("single.parquet"), &single);
    let ds = read_dataset("single", &locate(dir.path(), "single").unwrap(), None).unwrap();
    let ids: Vec<&str> = ds.series.iter().map(|s| s.id.as_str()).collect();
    assert_eq!(ids, ["row0", "row1"]);
}

#[test]
fn gluonts_style_arrow_needs_a_configured_frequency() {
    let dir = tempfile::tempdir().unwrap();
    let mut target = ListBuilder::new(Float64Builder::new());
    for len in [10, 12] {
        target.values().extend((0..len).map(|k| Some(k as f64)));
        target.append(true);
    }
    let target = target.finish();
    let start = TimestampSecondArray::from(vec![t0().and_utc().timestamp(); 2]);
    let schema = Schema::new(vec![
        Field::new("start", DataType::Timestamp(TimeUnit::Second, None), true),
        Field::new("target", target.data_type().clone(), true),
    ]);
    let b =
        RecordBatch::try_new(Arc::new(schema), vec![Arc::new(start), Arc::new(target)]).unwrap();
    let path = dir.path().join("synth.arrow");
    write_ipc(&path, &b, false);

    let err = read_dataset("synth", std::slice::from_ref(&path), None).unwrap_err();
    assert!(err.to_string().contains("set `freq`"), "{err}");
    let ds = read_dataset("synth", &[path], Some("D".parse().unwrap())).unwrap();
    assert_eq!(ds.series.len(), 2);
    assert_eq!(ds.series[1].id, "row1");
    assert_eq!(ds.series[1].values.len(), 12);
    assert_eq!(ds.freq.name(), "D");
}

#[test]
fn malformed_datasets_are_errors_naming_file_item_and_column() {
    let dir = tempfile::tempdir().unwrap();
    let err_of = |name: &str, b: &RecordBatch| {
        let path = dir.path().join(format!("{name}.parquet"));
        write_parquet(&path, b);
        read_dataset(name, &[path], None).unwrap_err().to_string()
    };
    // A series column shorter than the timestamps.
    let short = Item {
        id: Some("S1"),
        len: 6,
        columns: vec![ramp(5, 1.0)],
    };
    let err = err_of("lengths", &batch(&[short], &["target"], true));
    assert!(
        err.contains("lengths.parquet") && err.contains("'S1'") && err.contains("'target'"),
        "{err}"
    );
    // Too few timestamps in the first row to infer a frequency.
    let tiny = Item {
        id: Some("T"),
        len: 2,
        columns: vec![ramp(2, 1.0)],
    };
    let err = err_of("tiny", &batch(&[tiny], &["target"], true));
    assert!(err.contains("first row ('T')"), "{err}");
    // No timestamp column.
    let values = StringArray::from(vec!["a"]);
    let schema = Schema::new(vec![Field::new("id", DataType::Utf8, true)]);
    let b = RecordBatch::try_new(Arc::new(schema), vec![Arc::new(values)]).unwrap();
    let err = err_of("no_timestamp", &b);
    assert!(err.contains("no 'timestamp' list column"), "{err}");
    // A list column of text is not a series.
    let mut ts = ListBuilder::new(TimestampMillisecondBuilder::new());
    ts.values().append_value(0);
    ts.append(true);
    let mut words = ListBuilder::new(StringBuilder::new());
    words.values().append_value("w");
    words.append(true);
    let (ts, words) = (ts.finish(), words.finish());
    let schema = Schema::new(vec![
        Field::new("timestamp", ts.data_type().clone(), true),
        Field::new("tags", words.data_type().clone(), true),
    ]);
    let b = RecordBatch::try_new(Arc::new(schema), vec![Arc::new(ts), Arc::new(words)]).unwrap();
    let err = err_of("text_list", &b);
    assert!(err.contains("'tags'"), "{err}");

    // A missing dataset names itself and what was looked for.
    match locate(dir.path(), "absent") {
        Err(EvalError::DatasetNotFound { name, tried, .. }) => {
            assert_eq!(name, "absent");
            assert!(tried.iter().any(|p| p.ends_with("absent.parquet")));
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn too_short_series_are_skipped_and_reported() {
    let items = [
        Item {
            id: Some("long"),
            len: 40,
            columns: vec![ramp(40, 1.0)],
        },
        Item {
            id: Some("short"),
            len: 3,
            columns: vec![ramp(3, 1.0)],
        },
    ];
    let dir = tempfile::tempdir().unwrap();
    write_parquet(
        &dir.path().join("mixed.parquet"),
        &batch(&items, &["target"], true),
    );
    let ds = read_dataset("mixed", &locate(dir.path(), "mixed").unwrap(), None).unwrap();
    let model = Model::load("seasonal-naive", &options()).unwrap();
    let mut calls = Vec::new();
    let result = evaluate_dataset(&bench("mixed", -6, 3, 2), &ds, &model, |done, total| {
        calls.push((done, total))
    })
    .unwrap();
    assert_eq!((result.windows, result.skipped_windows), (2, 2));
    assert_eq!(result.first_skipped.as_deref(), Some("short"));
    assert_eq!(calls, vec![(2, 2)]);
    // A ramp with its last season (24 hours) repeated: every error is 24, as is the seasonal
    // error.
    let scores = result.scores.unwrap();
    assert!((scores.mase - 1.0).abs() < 1e-12, "{scores:?}");
    // Nothing fits when every series is too short.
    let none = evaluate_dataset(&bench("mixed", -40, 3, 1), &ds, &model, |_, _| {}).unwrap();
    assert_eq!(none.scores, None);
    assert_eq!((none.windows, none.skipped_windows), (0, 2));
}

#[test]
fn seasonal_naive_repeats_the_last_season_after_filling_gaps() {
    use chronos::eval::model::seasonal_naive;
    let nan = f64::NAN;
    assert_eq!(
        seasonal_naive(&[1.0, 2.0, 3.0, 4.0, 5.0], 2, 5),
        [4.0, 5.0, 4.0, 5.0, 4.0]
    );
    // Shorter than a season: the last value.
    assert_eq!(seasonal_naive(&[1.0, 2.0, 3.0], 12, 2), [3.0, 3.0]);
    // Gaps take the last value before them, leading ones the first value.
    assert_eq!(seasonal_naive(&[nan, 7.0, 8.0, nan], 2, 2), [8.0, 8.0]);
    assert_eq!(
        seasonal_naive(&[nan, nan, 7.0, 9.0], 4, 4),
        [7.0, 7.0, 7.0, 9.0]
    );
    assert_eq!(seasonal_naive(&[nan, nan], 1, 2), [0.0, 0.0]);
}

#[test]
fn cli_reports_missing_datasets_short_datasets_and_bad_options() {
    let dir = tempfile::tempdir().unwrap();
    let items = [Item {
        id: Some("only"),
        len: 10,
        columns: vec![ramp(10, 1.0)],
    }];
    write_parquet(
        &dir.path().join("small.parquet"),
        &batch(&items, &["target"], true),
    );
    let run = |config: &Path, extra: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_evaluate"))
            .arg("--config")
            .arg(config)
            .arg("--data-dir")
            .arg(dir.path())
            .args(["--output"])
            .arg(dir.path().join("out.csv"))
            .args(extra)
            .output()
            .unwrap()
    };
    let entry = |name: &str, offset: i64| {
        format!(
            "- name: {name}\n  hf_repo: r/x\n  offset: {offset}\n  prediction_length: 2\n  \
             num_rolls: 1\n"
        )
    };
    // A missing dataset is an error naming it.
    let config = write_config(dir.path(), &(entry("small", -2) + &entry("nowhere", -2)));
    let out = run(&config, &["--model", "seasonal-naive"]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("dataset 'nowhere' not found"), "{stderr}");
    // ... found before any dataset is evaluated.
    assert!(!stderr.contains("[1/2]"), "{stderr}");

    // A dataset whose series are all too short is skipped with a warning.
    let config = write_config(dir.path(), &(entry("small", -2) + "- name: small2\n  hf_repo: r/x\n  offset: -10\n  prediction_length: 2\n  num_rolls: 1\n"));
    std::fs::copy(
        dir.path().join("small.parquet"),
        dir.path().join("small2.parquet"),
    )
    .unwrap();
    let out = run(
        &config,
        &["--model", "seasonal-naive", "--model-name", "sn"],
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stderr.contains("small2: warning: all series are too short; dataset skipped"),
        "{stderr}"
    );
    let csv = std::fs::read_to_string(dir.path().join("out.csv")).unwrap();
    assert_eq!(csv.lines().count(), 2, "{csv}");
    assert!(
        csv.lines().nth(1).unwrap().starts_with("small,sn,"),
        "{csv}"
    );

    // --num-samples is for Chronos-T5; Chronos-Bolt and seasonal naive refuse it.
    let model = root().join("fixtures/bolt/models/bolt-reg");
    let out = run(
        &config,
        &["--model", model.to_str().unwrap(), "--num-samples", "20"],
    );
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("Chronos-Bolt"), "{stderr}");
    let out = run(
        &config,
        &["--model", "seasonal-naive", "--num-samples", "20"],
    );
    assert!(!out.status.success());
}

#[test]
fn history_cli_writes_each_series_up_to_its_first_window() {
    let dir = tempfile::tempdir().unwrap();
    // All items start at t0 (hourly); B is shorter than the window and has no history.
    let items = [
        Item {
            id: Some("A"),
            len: 30,
            columns: vec![ramp(30, 1.0), ramp(30, 10.0)],
        },
        Item {
            id: Some("B"),
            len: 4,
            columns: vec![ramp(4, 1.0), ramp(4, 2.0)],
        },
    ];
    write_parquet(
        &dir.path().join("two.parquet"),
        &batch(&items, &["x", "y"], true),
    );
    let config = write_config(
        dir.path(),
        "- name: two\n  hf_repo: r\n  offset: -6\n  prediction_length: 3\n  num_rolls: 2\n",
    );
    let out = dir.path().join("history.arrow");
    let run = Command::new(env!("CARGO_BIN_EXE_evaluate"))
        .arg("history")
        .args(["--config", config.to_str().unwrap()])
        .args(["--data-dir", dir.path().to_str().unwrap()])
        .args(["--output", out.to_str().unwrap()])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(run.status.success(), "{stderr}");
    assert!(
        stderr.contains("2 series have no history and are left out (first: 'two/B/x')"),
        "{stderr}"
    );
    let entries = chronos::data::read_gluonts(&out).unwrap();
    assert_eq!(entries.len(), 2);
    // The first window of a 30-step series starts at 30 - 6 = 24: only values before it.
    assert_eq!(
        entries[0].target,
        (0..24).map(f64::from).collect::<Vec<_>>()
    );
    assert_eq!(
        entries[1].target,
        (0..24).map(|k| 10.0 * f64::from(k)).collect::<Vec<_>>()
    );
    assert!(entries.iter().all(|e| e.start == t0()));
    assert_eq!(chronos::eval::history_end(30, -6), 24);
    assert_eq!(chronos::eval::history_end(4, -6), 0);
    assert_eq!(chronos::eval::history_end(30, 5), 5);
}
