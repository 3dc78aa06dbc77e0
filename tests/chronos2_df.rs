//! Chronos-2's covariate tables: reading and typing the columns as pandas does, the
//! conversion to tasks against upstream's `from_data_frame` (fixtures of
//! `fixtures/generate_chronos2_df.py`), and the errors on bad input.

mod common;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow::array::{ArrayRef, BooleanArray, Date32Array, DictionaryArray, Float64Array, NullArray};
use arrow::array::{RecordBatch, StringArray};
use arrow::datatypes::Int32Type;
use parquet::arrow::ArrowWriter;
use tch::Tensor;

use chronos::data::{
    chronos2_forecast_table, read_frame, write_forecasts, Categorical, CategoryKind,
    Chronos2Inputs, CovariateValues, DataError, ForecastTable, Forecasts, Frame, FrameColumns,
};
use chronos::pipeline::QuantileForecast;
use common::root;

#[derive(serde::Deserialize)]
struct Manifest {
    cases: Vec<Case>,
}

#[derive(serde::Deserialize)]
struct Case {
    name: String,
    input: String,
    future: Option<String>,
    id_column: String,
    timestamp_column: String,
    targets: Vec<String>,
    prediction_length: usize,
    quantile_levels: Vec<f64>,
    ids: Vec<String>,
    tasks: Vec<TaskCounts>,
    /// Expected `predict_df` CSVs and their extra arguments.
    expected: std::collections::BTreeMap<String, Variant>,
}

#[derive(serde::Deserialize)]
struct Variant {
    #[serde(default)]
    cross_learning: bool,
    context_length: Option<i64>,
}

#[derive(serde::Deserialize)]
struct TaskCounts {
    n_targets: usize,
    n_covariates: usize,
    n_future_covariates: usize,
}

fn df_dir() -> PathBuf {
    root().join("fixtures/chronos2/df")
}

fn columns(id: &str, timestamp: &str, targets: &[&str]) -> FrameColumns {
    FrameColumns {
        id: id.into(),
        timestamp: timestamp.into(),
        targets: targets.iter().map(|t| t.to_string()).collect(),
    }
}

/// The case's past and future tables and its tasks.
fn convert(case: &Case) -> (Frame, Chronos2Inputs) {
    let mut cols = FrameColumns {
        id: case.id_column.clone(),
        timestamp: case.timestamp_column.clone(),
        targets: case.targets.clone(),
    };
    let past = read_frame(&df_dir().join(&case.input), &cols).unwrap();
    cols.targets.clear();
    let future = case
        .future
        .as_ref()
        .map(|f| read_frame(&df_dir().join(f), &cols).unwrap());
    let freq = past.freq().unwrap();
    let inputs =
        Chronos2Inputs::new(&past, future.as_ref(), case.prediction_length, &freq).unwrap();
    (past, inputs)
}

/// Bitwise equality of `actual` (row-major) with the f32 tensor `expected`; NaN equals NaN.
fn assert_bitwise(name: &str, actual: &[f32], expected: &Tensor, rows: usize, cols: usize) {
    assert_eq!(expected.size(), [rows as i64, cols as i64], "{name}: shape");
    let expected = Vec::<f32>::try_from(expected.flatten(0, -1)).unwrap();
    assert_eq!(actual.len(), expected.len(), "{name}: length");
    for (i, (a, b)) in actual.iter().zip(&expected).enumerate() {
        let same = a.to_bits() == b.to_bits() || (a.is_nan() && b.is_nan());
        assert!(
            same,
            "{name}: row {} step {}: {a} vs {b}",
            i / cols,
            i % cols
        );
    }
}

#[test]
fn conversion_equals_upstream_from_data_frame_bitwise() {
    let dir = df_dir();
    let manifest: Manifest =
        serde_json::from_str(&std::fs::read_to_string(dir.join("prepared.json")).unwrap()).unwrap();
    let tensors: HashMap<String, Tensor> =
        Tensor::read_safetensors(dir.join("prepared.safetensors"))
            .unwrap()
            .into_iter()
            .collect();
    assert_eq!(manifest.cases.len(), 3);
    for case in &manifest.cases {
        let (past, inputs) = convert(case);
        assert_eq!(past.ids, case.ids, "{}: series order", case.name);
        assert_eq!(inputs.tasks.len(), case.tasks.len(), "{}", case.name);
        assert_eq!(inputs.target_encoded, case.targets.len() == 1);
        for (i, (task, want)) in inputs.tasks.iter().zip(&case.tasks).enumerate() {
            let name = format!("{}/{i}", case.name);
            assert_eq!(
                (task.n_targets, task.n_covariates, task.n_future_covariates),
                (want.n_targets, want.n_covariates, want.n_future_covariates),
                "{name}: counts"
            );
            let rows = task.n_targets + task.n_covariates;
            assert_eq!(task.horizon, case.prediction_length);
            let context = &tensors[&format!("{name}/context")];
            assert_bitwise(&name, &task.context, context, rows, task.history);
            let future = &tensors[&format!("{name}/future_covariates")];
            assert_bitwise(&name, &task.future, future, rows, task.horizon);
        }
    }
}

#[test]
fn unseen_future_categories_are_reported() {
    let manifest: Manifest =
        serde_json::from_str(&std::fs::read_to_string(df_dir().join("prepared.json")).unwrap())
            .unwrap();
    let unseen = |name: &str| {
        let case = manifest.cases.iter().find(|c| c.name == name).unwrap();
        convert(case)
            .1
            .unseen
            .into_iter()
            .map(|u| (u.column, u.id, u.values, u.steps))
            .collect::<Vec<_>>()
    };
    let s = |v: &str| v.to_string();
    assert_eq!(
        unseen("covariates"),
        [(s("weather"), s("store_a"), vec![s("snow")], 1)]
    );
    assert_eq!(
        unseen("multi"),
        [
            (s("weather"), s("7"), vec![s("hail")], 1),
            (s("weather"), s("3"), vec![s("hail")], 1)
        ]
    );
    assert!(unseen("past_only").is_empty());
}

// ---------------------------------------------------------------- column typing

fn write(dir: &tempfile::TempDir, name: &str, text: &str) -> PathBuf {
    let path = dir.path().join(name);
    std::fs::write(&path, text).unwrap();
    path
}

fn write_parquet(path: &Path, columns: Vec<(&str, ArrayRef)>) {
    let batch = RecordBatch::try_from_iter(columns).unwrap();
    let file = std::fs::File::create(path).unwrap();
    let mut writer = ArrowWriter::try_new(file, batch.schema(), None).unwrap();
    writer.write(&batch).unwrap();
    writer.close().unwrap();
}

fn categorical(frame: &Frame, name: &str) -> Categorical {
    match &frame.covariate(name).unwrap().values {
        CovariateValues::Categorical(c) => c.clone(),
        other => panic!("{name}: expected categorical, got {other:?}"),
    }
}

fn numeric(frame: &Frame, name: &str) -> Vec<f32> {
    match &frame.covariate(name).unwrap().values {
        CovariateValues::Numeric(v) => v.clone(),
        other => panic!("{name}: expected numeric, got {other:?}"),
    }
}

fn strings(items: &[&str]) -> Vec<String> {
    items.iter().map(|s| s.to_string()).collect()
}

/// The expectations are what pandas 3.1 `read_csv` + upstream's typing give for this table.
#[test]
fn csv_covariates_are_typed_as_pandas_types_them() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(
        &dir,
        "t.csv",
        "item_id,timestamp,target,num,nan_word,flag,flag_na,mixed,empty,spaced\n\
         a,2024-01-01,1,1.5,1,tRUE,True,1,,x\n\
         a,2024-01-02,2,NA,NAN,false,,b,,NA \n\
         a,2024-01-03,3, 2 ,2,FALSE,False,True,,y\n",
    );
    let frame = read_frame(&path, &columns("item_id", "timestamp", &["target"])).unwrap();
    let names: Vec<&str> = frame.covariates.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(
        names,
        ["num", "nan_word", "flag", "flag_na", "mixed", "empty", "spaced"]
    );
    let num = numeric(&frame, "num");
    assert_eq!(num[0], 1.5);
    assert!(num[1].is_nan());
    assert_eq!(num[2], 2.0);
    // `NAN` is not one of pandas' NA tokens: the column is text, kept verbatim.
    let nan_word = categorical(&frame, "nan_word");
    assert_eq!(nan_word.kind, CategoryKind::Text);
    assert_eq!(nan_word.categories, strings(&["1", "2", "NAN"]));
    assert_eq!(nan_word.codes, [Some(0), Some(2), Some(1)]);
    // Booleans in any case, with or without missing values, are categorical False < True.
    let flag = categorical(&frame, "flag");
    assert_eq!(flag.kind, CategoryKind::Bool);
    assert_eq!(flag.categories, strings(&["False", "True"]));
    assert_eq!(flag.codes, [Some(1), Some(0), Some(0)]);
    let flag_na = categorical(&frame, "flag_na");
    assert_eq!(flag_na.kind, CategoryKind::Bool);
    assert_eq!(flag_na.codes, [Some(1), None, Some(0)]);
    let mixed = categorical(&frame, "mixed");
    assert_eq!(mixed.kind, CategoryKind::Text);
    assert_eq!(mixed.categories, strings(&["1", "True", "b"]));
    // An all-missing column is numeric NaN, as pandas reads it.
    assert!(numeric(&frame, "empty").iter().all(|v| v.is_nan()));
    // NA tokens match exactly: "NA " is text.
    assert_eq!(
        categorical(&frame, "spaced").categories,
        strings(&["NA ", "x", "y"])
    );
}

#[test]
fn parquet_covariates_are_typed_as_pandas_types_them() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t.parquet");
    let dict: DictionaryArray<Int32Type> = vec![Some("zeta"), None, Some("alpha")]
        .into_iter()
        .collect();
    write_parquet(
        &path,
        vec![
            ("item_id", Arc::new(StringArray::from(vec!["a", "a", "a"]))),
            (
                "timestamp",
                Arc::new(StringArray::from(vec![
                    "2024-01-03",
                    "2024-01-01",
                    "2024-01-02",
                ])),
            ),
            ("target", Arc::new(Float64Array::from(vec![1.0, 2.0, 3.0]))),
            ("dict", Arc::new(dict)),
            (
                "flag",
                Arc::new(BooleanArray::from(vec![Some(true), None, Some(false)])),
            ),
            ("nothing", Arc::new(NullArray::new(3))),
            ("text", Arc::new(StringArray::from(vec!["b", "a", "b"]))),
        ],
    );
    let frame = read_frame(&path, &columns("item_id", "timestamp", &["target"])).unwrap();
    assert_eq!(frame.targets[0].values, [2.0, 3.0, 1.0], "sorted by time");
    // A dictionary keeps its own order (pandas reads it as a categorical).
    let dict = categorical(&frame, "dict");
    assert_eq!(dict.categories, strings(&["zeta", "alpha"]));
    assert_eq!(dict.codes, [None, Some(1), Some(0)]);
    let flag = categorical(&frame, "flag");
    assert_eq!(
        (flag.kind, flag.codes),
        (CategoryKind::Bool, vec![None, Some(0), Some(1)])
    );
    let nothing = categorical(&frame, "nothing");
    assert!(nothing.categories.is_empty() && nothing.codes.iter().all(Option::is_none));
    assert_eq!(
        categorical(&frame, "text").codes,
        [Some(0), Some(1), Some(1)]
    );

    let bad = dir.path().join("date.parquet");
    write_parquet(
        &bad,
        vec![
            ("item_id", Arc::new(StringArray::from(vec!["a"]))),
            ("timestamp", Arc::new(StringArray::from(vec!["2024-01-01"]))),
            ("target", Arc::new(Float64Array::from(vec![1.0]))),
            ("when", Arc::new(Date32Array::from(vec![19000]))),
        ],
    );
    let err = read_frame(&bad, &columns("item_id", "timestamp", &["target"])).unwrap_err();
    assert!(
        matches!(&err, DataError::ColumnType { column, role: "covariate", .. } if column == "when"),
        "{err}"
    );
}

// ---------------------------------------------------------------- errors

const PAST: &str = "item_id,timestamp,target,temp,kind\n\
                    a,2024-01-01 00:00:00,1,10,x\n\
                    a,2024-01-01 01:00:00,2,11,y\n\
                    a,2024-01-01 02:00:00,3,12,x\n\
                    b,2024-01-01 00:00:00,4,20,y\n\
                    b,2024-01-01 01:00:00,5,21,y\n\
                    b,2024-01-01 02:00:00,6,22,x\n";

/// The error of converting `PAST` with the future table `future` (horizon 2).
fn future_error(future: &str) -> (DataError, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let past_path = write(&dir, "past.csv", PAST);
    let future_path = write(&dir, "future.csv", future);
    let cols = columns("item_id", "timestamp", &["target"]);
    let past = read_frame(&past_path, &cols).unwrap();
    let result = read_frame(&future_path, &columns("item_id", "timestamp", &[]))
        .and_then(|future| Chronos2Inputs::new(&past, Some(&future), 2, &past.freq().unwrap()));
    (result.unwrap_err(), future_path)
}

fn assert_names(err: &DataError, parts: &[&str]) {
    let text = err.to_string();
    for part in parts {
        assert!(text.contains(part), "'{part}' not in: {text}");
    }
}

#[test]
fn good_future_table_unsorted_rows_are_accepted() {
    let dir = tempfile::tempdir().unwrap();
    let past_path = write(&dir, "past.csv", PAST);
    let future_path = write(
        &dir,
        "future.csv",
        "timestamp,kind,item_id,temp\n\
         2024-01-01 04:00:00,z,b,24\n\
         2024-01-01 03:00:00,x,a,13\n\
         2024-01-01 03:00:00,,b,23\n\
         2024-01-01 04:00:00,y,a,14\n",
    );
    let past = read_frame(&past_path, &columns("item_id", "timestamp", &["target"])).unwrap();
    let future = read_frame(&future_path, &columns("item_id", "timestamp", &[])).unwrap();
    let inputs = Chronos2Inputs::new(&past, Some(&future), 2, &past.freq().unwrap()).unwrap();
    let task = &inputs.tasks[1]; // series b
    assert_eq!((task.n_covariates, task.n_future_covariates), (2, 2));
    // rows: target, temp, kind (both known; past column order)
    assert_eq!(&task.future[2..4], [23.0, 24.0]);
    // kind of b: y, y, x with targets 4, 5, 6; item mean 5: y (5 + 9) / (1 + 2), x (5 + 6) /
    // (1 + 1). Future: the NaN category (5 + 0) / 1, the unseen z the item mean.
    let want = [14.0f64 / 3.0, 14.0 / 3.0, 5.5].map(|v| v as f32);
    assert_eq!(&task.context[6..9], want);
    assert_eq!(&task.future[4..6], [5.0, 5.0]);
    assert_eq!(inputs.unseen.len(), 1);
    assert_eq!(inputs.unseen[0].values, ["z"]);
}

#[test]
fn bad_future_tables_are_errors_naming_the_culprit() {
    let future = |rows: &str| format!("item_id,timestamp,temp\n{rows}");
    let ok_b = "b,2024-01-01 03:00:00,23\nb,2024-01-01 04:00:00,24\n";

    let (err, _) = future_error("item_id,timestamp,target\na,2024-01-01 03:00:00,1\n");
    assert!(matches!(err, DataError::TargetInFuture { .. }), "{err}");
    assert_names(&err, &["future.csv", "'target'"]);

    let (err, _) = future_error("item_id,timestamp,rain\na,2024-01-01 03:00:00,1\n");
    assert!(
        matches!(err, DataError::UnknownFutureColumn { .. }),
        "{err}"
    );
    assert_names(&err, &["future.csv", "'rain'", "past.csv"]);

    let (err, _) = future_error("id,timestamp,temp\na,2024-01-01 03:00:00,1\n");
    assert!(matches!(err, DataError::MissingColumn { .. }), "{err}");
    assert_names(&err, &["future.csv", "'item_id'"]);

    let (err, _) = future_error(&future(
        "a,2024-01-01 03:00:00,13\na,2024-01-01 04:00:00,14\nc,2024-01-01 03:00:00,1\n",
    ));
    assert!(
        matches!(err, DataError::FutureSeriesMismatch { .. }),
        "{err}"
    );
    assert_names(&err, &["future.csv", "missing: ['b']", "past table: ['c']"]);

    let (err, _) = future_error(&future(&format!("a,2024-01-01 03:00:00,13\n{ok_b}")));
    assert!(matches!(err, DataError::FutureLength { .. }), "{err}");
    assert_names(
        &err,
        &["future.csv", "'a'", "1 rows", "prediction_length = 2"],
    );

    let (err, _) = future_error(&future(&format!(
        "a,2024-01-01 03:00:00,13\na,2024-01-01 05:00:00,14\n{ok_b}"
    )));
    assert!(
        matches!(
            err,
            DataError::FutureTimestamp {
                row: 2,
                step: 2,
                ..
            }
        ),
        "{err}"
    );
    assert_names(&err, &["future.csv", "row 2", "'a'", "2024-01-01 04:00:00"]);

    // Upstream's model would mask the step; here it is an error naming series and row.
    let (err, _) = future_error(&future(&format!(
        "{ok_b}a,2024-01-01 03:00:00,13\na,2024-01-01 04:00:00,NaN\n"
    )));
    assert!(
        matches!(&err, DataError::FutureMissingValue { row: 4, id, column, .. } if id == "a" && column == "temp"),
        "{err}"
    );

    let (err, _) = future_error(&format!(
        "item_id,timestamp,temp\n{ok_b}a,2024-01-01 03:00:00,warm\na,2024-01-01 04:00:00,13\n"
    ));
    assert!(
        matches!(err, DataError::CovariateTypeMismatch { .. }),
        "{err}"
    );
    assert_names(
        &err,
        &["future.csv", "'temp'", "text", "numeric", "past.csv"],
    );

    let (err, _) = future_error(
        "item_id,timestamp,kind\na,2024-01-01 03:00:00,1\na,2024-01-01 04:00:00,2\n\
         b,2024-01-01 03:00:00,1\nb,2024-01-01 04:00:00,1\n",
    );
    assert!(
        matches!(err, DataError::CovariateTypeMismatch { .. }),
        "{err}"
    );
    assert_names(&err, &["'kind'", "numeric here but text"]);
}

#[test]
fn bad_past_tables_are_errors_naming_the_culprit() {
    let dir = tempfile::tempdir().unwrap();
    let past = write(&dir, "past.csv", PAST);
    let read = |path: &Path, targets: &[&str]| {
        read_frame(path, &columns("item_id", "timestamp", targets)).unwrap_err()
    };

    let err = read(&past, &["sales"]);
    assert!(
        matches!(err, DataError::MissingColumn { role: "target", .. }),
        "{err}"
    );
    assert_names(&err, &["past.csv", "'sales'"]);

    let err = read(&past, &["kind"]);
    assert!(
        matches!(&err, DataError::NonNumericTarget { row: 1, id, .. } if id == "a"),
        "{err}"
    );
    assert_names(&err, &["past.csv", "'kind'", "'x'"]);

    let err = read(&past, &["target", "target"]);
    assert!(matches!(err, DataError::ConflictingColumns { .. }), "{err}");
    let err = read(&past, &["item_id"]);
    assert!(matches!(err, DataError::ConflictingColumns { .. }), "{err}");

    let twice = write(
        &dir,
        "twice.csv",
        "item_id,timestamp,target,x,x\na,2024-01-01,1,2,3\n",
    );
    let err = read(&twice, &["target"]);
    assert!(matches!(err, DataError::DuplicateColumn { .. }), "{err}");
    assert_names(&err, &["twice.csv", "'x'"]);
}

#[test]
fn forecasts_of_several_targets_are_ordered_series_target_step() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("f.csv");
    let t = |s: &str| chrono::NaiveDateTime::parse_from_str(s, "%Y-%m-%d %H:%M").unwrap();
    let last = vec![
        ("b".to_string(), t("2024-01-01 05:00")),
        ("a".to_string(), t("2024-01-02 00:00")),
    ];
    let forecasts = Forecasts {
        target_names: strings(&["sales", "returns"]),
        horizon: 2,
        // [series][target][step]
        predictions: (0..8).map(|v| v as f32).collect(),
        quantile_levels: &[0.5],
        quantiles: (0..8).map(|v| v as f32 + 0.5).collect(),
    };
    let freq: chronos::data::Freq = "h".parse().unwrap();
    let table = ForecastTable::with_targets(last, &freq, forecasts).unwrap();
    let cols = chronos::data::Columns {
        id: "series".into(),
        timestamp: "day".into(),
        target: "sales".into(),
    };
    write_forecasts(&path, &cols, &table).unwrap();
    assert_eq!(
        std::fs::read_to_string(&path).unwrap(),
        "series,day,target_name,predictions,0.5\n\
         b,2024-01-01 06:00:00,sales,0,0.5\n\
         b,2024-01-01 07:00:00,sales,1,1.5\n\
         b,2024-01-01 06:00:00,returns,2,2.5\n\
         b,2024-01-01 07:00:00,returns,3,3.5\n\
         a,2024-01-02 01:00:00,sales,4,4.5\n\
         a,2024-01-02 02:00:00,sales,5,5.5\n\
         a,2024-01-02 01:00:00,returns,6,6.5\n\
         a,2024-01-02 02:00:00,returns,7,7.5\n"
    );
}

// ---------------------------------------------------------------- the predict binary

fn predict(args: &[&str]) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_predict"))
        .args(args)
        .args(["--threads", "1"])
        .output()
        .expect("run predict")
}

fn path_str(p: &Path) -> &str {
    p.to_str().unwrap()
}

#[test]
fn bolt_ignores_covariates_and_rejects_chronos2_flags() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out.csv");
    let model = root().join("fixtures/bolt/models/bolt-reg");
    let input = df_dir().join("input_covariates.csv");
    let future = df_dir().join("future_covariates.csv");
    let base = [
        "--model",
        path_str(&model),
        "--input",
        path_str(&input),
        "--output",
        path_str(&out),
        "--prediction-length",
        "6",
    ];
    let ok = predict(&base);
    let stderr = String::from_utf8_lossy(&ok.stderr);
    assert!(ok.status.success(), "{stderr}");
    assert_eq!(
        stderr.matches("ignored").count(),
        1,
        "one note on the covariates: {stderr}"
    );
    assert!(stderr.contains("promo, price, weather, open"), "{stderr}");
    let rows = std::fs::read_to_string(&out).unwrap().lines().count();
    assert_eq!(rows, 1 + 3 * 6);

    for (extra, flag) in [
        (vec!["--future", path_str(&future)], "--future"),
        (vec!["--target", "target,price"], "--target"),
        (vec!["--cross-learning"], "--cross-learning"),
        (vec!["--context-length", "16"], "--context-length"),
    ] {
        let args: Vec<&str> = base.iter().copied().chain(extra).collect();
        let result = predict(&args);
        let stderr = String::from_utf8_lossy(&result.stderr);
        assert!(!result.status.success(), "{flag}: {stderr}");
        assert!(
            stderr.contains(flag) && stderr.contains("Chronos-2"),
            "{flag}: {stderr}"
        );
    }
}

/// Runs `predict` with the dummy Chronos-2 model on a fixture case and compares its output with
/// upstream's `predict_df` (`expected`); returns the worst `|a - b| / (1 + |b|)`.
fn check_predict_df(case: &Case, expected: &str, extra: &[&str]) -> f64 {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("forecast.csv");
    let model = common::shared().join("checkpoints/dummy-chronos2-model");
    let input = df_dir().join(&case.input);
    let future = case.future.as_ref().map(|f| df_dir().join(f));
    let targets = case.targets.join(",");
    let horizon = case.prediction_length.to_string();
    let levels: Vec<String> = case.quantile_levels.iter().map(f64::to_string).collect();
    let levels = levels.join(",");
    let mut args = vec![
        "--model",
        path_str(&model),
        "--input",
        path_str(&input),
        "--output",
        path_str(&out),
        "--id-column",
        &case.id_column,
        "--timestamp-column",
        &case.timestamp_column,
        "--target",
        &targets,
        "--prediction-length",
        &horizon,
        "--quantiles",
        &levels,
    ];
    if let Some(future) = &future {
        args.extend(["--future", path_str(future)]);
    }
    args.extend(extra);
    let result = predict(&args);
    let stderr = String::from_utf8_lossy(&result.stderr);
    assert!(result.status.success(), "{}: {stderr}", case.name);

    let read = |p: &Path| -> Vec<Vec<String>> {
        std::fs::read_to_string(p)
            .unwrap()
            .lines()
            .map(|l| l.split(',').map(String::from).collect())
            .collect()
    };
    let (rows, want) = (read(&out), read(&df_dir().join(expected)));
    assert_eq!(rows[0], want[0], "{expected}: header");
    assert_eq!(rows.len(), want.len(), "{expected}: rows");
    let value = |s: &str| {
        if s.is_empty() {
            f64::NAN
        } else {
            s.parse::<f64>().unwrap()
        }
    };
    let mut worst = 0.0f64;
    for (row, want) in rows.iter().zip(&want).skip(1) {
        assert_eq!(row[0], want[0], "{expected}: series order");
        // pandas writes midnight-only columns as dates; the fixture spells out the time.
        let ts = match row[1].len() {
            10 => format!("{} 00:00:00", row[1]),
            _ => row[1].clone(),
        };
        assert_eq!(ts, want[1], "{expected}: timestamps of {}", row[0]);
        assert_eq!(row[2], want[2], "{expected}: target order");
        for (a, b) in row[3..].iter().zip(&want[3..]) {
            let (a, b) = (value(a), value(b));
            let err = (a - b).abs() / (1.0 + b.abs());
            assert!(err <= 1e-5, "{expected}: {}: {a} vs {b}", row[0]);
            worst = worst.max(err);
        }
    }
    worst
}

#[test]
fn predict_matches_upstream_predict_df_with_covariates() {
    let manifest: Manifest =
        serde_json::from_str(&std::fs::read_to_string(df_dir().join("prepared.json")).unwrap())
            .unwrap();
    for case in &manifest.cases {
        for (expected, kwargs) in &case.expected {
            let mut extra = Vec::new();
            if kwargs.cross_learning {
                extra.push("--cross-learning".to_string());
            }
            if let Some(n) = kwargs.context_length {
                extra.extend(["--context-length".to_string(), n.to_string()]);
            }
            let extra: Vec<&str> = extra.iter().map(String::as_str).collect();
            let worst = check_predict_df(case, expected, &extra);
            eprintln!("{expected}: worst |a - b| / (1 + |b|) = {worst:.2e}");
        }
    }
}

#[test]
fn predict_with_chronos2_plots_and_reports_bad_future_tables() {
    let dir = tempfile::tempdir().unwrap();
    let model = common::shared().join("checkpoints/dummy-chronos2-model");
    let input = df_dir().join("input_covariates.csv");
    let out = dir.path().join("out.parquet");
    let png = dir.path().join("plot.png");
    let future = df_dir().join("future_covariates.csv");
    let base = [
        "--model",
        path_str(&model),
        "--input",
        path_str(&input),
        "--output",
        path_str(&out),
        "--prediction-length",
        "6",
    ];
    let args: Vec<&str> = base
        .iter()
        .copied()
        .chain(["--future", path_str(&future), "--plot", path_str(&png)])
        .collect();
    let ok = predict(&args);
    let stderr = String::from_utf8_lossy(&ok.stderr);
    assert!(ok.status.success(), "{stderr}");
    assert!(
        stderr.contains("'snow'") || stderr.contains("snow"),
        "{stderr}"
    );
    assert!(std::fs::metadata(&png).unwrap().len() > 0);
    assert!(std::fs::metadata(&out).unwrap().len() > 0);

    // A known-future value missing: an error naming file, row, series and column.
    let text = std::fs::read_to_string(&future).unwrap();
    let mut lines: Vec<String> = text.lines().map(String::from).collect();
    let fields: Vec<&str> = lines[1].split(',').collect();
    let (id, promo_missing) = (
        fields[0].to_string(),
        format!("{},{},{},", fields[0], fields[1], fields[2]),
    );
    lines[1] = promo_missing;
    let bad = dir.path().join("future_nan.csv");
    std::fs::write(&bad, lines.join("\n") + "\n").unwrap();
    let args: Vec<&str> = base
        .iter()
        .copied()
        .chain(["--future", path_str(&bad)])
        .collect();
    let result = predict(&args);
    let stderr = String::from_utf8_lossy(&result.stderr);
    assert!(!result.status.success());
    for part in ["future_nan.csv", "row 1", &format!("'{id}'"), "'promo'"] {
        assert!(stderr.contains(part), "'{part}' not in: {stderr}");
    }

    // Without the future table the horizon must still match: a wrong one is named.
    let args: Vec<&str> = [
        "--model",
        path_str(&model),
        "--input",
        path_str(&input),
        "--output",
        path_str(&out),
        "--future",
        path_str(&future),
        "--prediction-length",
        "5",
    ]
    .to_vec();
    let result = predict(&args);
    let stderr = String::from_utf8_lossy(&result.stderr);
    assert!(!result.status.success());
    assert!(stderr.contains("prediction_length = 5"), "{stderr}");
}

#[test]
fn lora_adapter_forecasts_with_a_named_base_model() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out.csv");
    let adapter = common::shared().join("checkpoints/dummy-chronos2-lora");
    let base_model = common::shared().join("checkpoints/dummy-chronos2-model");
    let input = df_dir().join("input_past_only.csv");
    let args = [
        "--model",
        path_str(&adapter),
        "--input",
        path_str(&input),
        "--output",
        path_str(&out),
        "--prediction-length",
        "5",
    ];
    // The adapter names its base relative to upstream's repository: an error that says so.
    let missing = predict(&args);
    let stderr = String::from_utf8_lossy(&missing.stderr);
    assert!(!missing.status.success());
    assert!(stderr.contains("test/dummy-chronos2-model"), "{stderr}");
    assert!(!out.exists());
    let with_base: Vec<&str> = args
        .iter()
        .copied()
        .chain(["--base-model", path_str(&base_model)])
        .collect();
    let merged = predict(&with_base);
    assert!(
        merged.status.success(),
        "{}",
        String::from_utf8_lossy(&merged.stderr)
    );
    let text = std::fs::read_to_string(&out).unwrap();
    assert!(text.lines().count() > 1 && !text.contains("NaN"), "{text}");
    // The merged adapter changes the forecast of the base model.
    let base_out = dir.path().join("base.csv");
    let plain = predict(&[
        "--model",
        path_str(&base_model),
        "--input",
        path_str(&input),
        "--output",
        path_str(&base_out),
        "--prediction-length",
        "5",
    ]);
    assert!(plain.status.success());
    assert_ne!(std::fs::read_to_string(&base_out).unwrap(), text);
}

#[test]
fn forecast_table_rejects_forecasts_that_do_not_fit_the_table() {
    let past = read_frame(
        &df_dir().join("input_past_only.csv"),
        &columns("item_id", "timestamp", &["target"]),
    )
    .unwrap();
    let freq = past.freq().unwrap();
    let levels = [0.1, 0.5, 0.9];
    let forecast = |levels: i64| QuantileForecast {
        quantiles: Tensor::zeros([1, 3, levels], (tch::Kind::Float, tch::Device::Cpu)),
        mean: Tensor::zeros([1, 3], (tch::Kind::Float, tch::Device::Cpu)),
    };
    let n = past.n_series();
    let too_few = (1..n).map(|_| forecast(3)).collect::<Vec<_>>();
    let err = chronos2_forecast_table(&past, &freq, &too_few, &levels).unwrap_err();
    assert!(err.to_string().contains("forecasts"), "{err}");
    let narrow = (0..n).map(|_| forecast(2)).collect::<Vec<_>>();
    let err = chronos2_forecast_table(&past, &freq, &narrow, &levels).unwrap_err();
    assert!(err.to_string().contains("levels"), "{err}");
    let fitting = (0..n).map(|_| forecast(4)).collect::<Vec<_>>();
    assert!(chronos2_forecast_table(&past, &freq, &fitting, &levels).is_ok());
}
