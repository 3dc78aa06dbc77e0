//! The `predict` binary end to end: long-format CSV in, forecasts out, equal to upstream's
//! `predict_df` (stored by `fixtures/generate.py`), plus its errors on bad input.

mod common;

use std::path::Path;
use std::process::{Command, Output};

use common::root;

fn predict(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_predict"))
        .args(args)
        .output()
        .expect("run predict")
}

/// Header and rows of a simple CSV (no quoted fields).
fn read_csv(path: &Path) -> (Vec<String>, Vec<Vec<String>>) {
    let text = std::fs::read_to_string(path).unwrap();
    let mut lines = text.lines();
    let header = lines.next().unwrap().split(',').map(String::from).collect();
    let rows = lines
        .map(|l| l.split(',').map(String::from).collect())
        .collect();
    (header, rows)
}

fn value(field: &str) -> f64 {
    if field.is_empty() {
        f64::NAN
    } else {
        field.parse().unwrap()
    }
}

/// Runs `predict` on a fixture input and compares with upstream's `predict_df` output.
fn check_against_predict_df(input: &str, expected: &str) {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("forecast.csv");
    let fixtures = root().join("fixtures/bolt");
    let result = predict(&[
        "--model",
        fixtures.join("models/bolt-reg").to_str().unwrap(),
        "--input",
        fixtures.join("df").join(input).to_str().unwrap(),
        "--output",
        out.to_str().unwrap(),
        "--prediction-length",
        "10",
        "--quantiles",
        "0.1,0.5,0.9",
        "--threads",
        "1",
    ]);
    assert!(
        result.status.success(),
        "{}",
        String::from_utf8_lossy(&result.stderr)
    );

    let (header, rows) = read_csv(&out);
    let (want_header, want_rows) = read_csv(&fixtures.join("df").join(expected));
    assert_eq!(header, want_header);
    assert_eq!(rows.len(), want_rows.len());
    for (row, want) in rows.iter().zip(&want_rows) {
        assert_eq!(row[0], want[0], "series order");
        // pandas writes midnight-only columns as dates; the fixture spells out the time.
        let ts = if row[1].len() == 10 {
            format!("{} 00:00:00", row[1])
        } else {
            row[1].clone()
        };
        assert_eq!(ts, want[1], "timestamps of {}", row[0]);
        assert_eq!(row[2], want[2]);
        for (a, b) in row[3..].iter().zip(&want[3..]) {
            let (a, b) = (value(a), value(b));
            assert!(
                (a - b).abs() <= 1e-5 * (1.0 + b.abs()),
                "{}: {a} vs {b}",
                row[0]
            );
        }
    }
}

#[test]
fn hourly_forecast_matches_upstream_predict_df() {
    check_against_predict_df("input.csv", "expected.csv");
}

#[test]
fn daily_forecast_matches_upstream_predict_df() {
    check_against_predict_df("input_daily.csv", "expected_daily.csv");
}

#[test]
fn parquet_output_and_bad_input_errors() {
    let dir = tempfile::tempdir().unwrap();
    let model = root().join("fixtures/bolt/models/bolt-reg");
    let model = model.to_str().unwrap();
    let input = root().join("fixtures/bolt/df/input.csv");
    let input = input.to_str().unwrap();

    let parquet = dir.path().join("out.parquet");
    let ok = predict(&[
        "--model",
        model,
        "--input",
        input,
        "--output",
        parquet.to_str().unwrap(),
    ]);
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    assert!(std::fs::metadata(&parquet).unwrap().len() > 0);

    let out = dir.path().join("out.csv");
    let out = out.to_str().unwrap();
    let missing_column = predict(&[
        "--model", model, "--input", input, "--output", out, "--target", "sales",
    ]);
    assert!(!missing_column.status.success());
    let err = String::from_utf8_lossy(&missing_column.stderr);
    assert!(
        err.contains("'sales'") && err.contains("input.csv"),
        "{err}"
    );

    let irregular = dir.path().join("irregular.csv");
    std::fs::write(
        &irregular,
        "item_id,timestamp,target\nx,2024-01-01 00:00:00,1\nx,2024-01-01 01:00:00,2\nx,2024-01-01 05:00:00,3\n",
    )
    .unwrap();
    let result = predict(&[
        "--model",
        model,
        "--input",
        irregular.to_str().unwrap(),
        "--output",
        out,
    ]);
    assert!(!result.status.success());
    let err = String::from_utf8_lossy(&result.stderr);
    assert!(err.contains("'x'"), "{err}");

    let result = predict(&[
        "--model",
        "/no/such/model",
        "--input",
        input,
        "--output",
        out,
    ]);
    assert!(!result.status.success());
    assert!(String::from_utf8_lossy(&result.stderr).contains("/no/such/model"));

    let result = predict(&[
        "--model",
        model,
        "--input",
        input,
        "--output",
        out,
        "--prediction-length",
        "9",
        "--limit-prediction-length",
    ]);
    assert!(!result.status.success());
    assert!(String::from_utf8_lossy(&result.stderr).contains("exceeds"));
}
