//! The seasonal-naive baseline over the 11 shared benchmark datasets reproduces upstream's
//! results (`scripts/evaluation/results/seasonal-naive-*.csv`, copied to fixtures/eval/), through
//! the library and through the `evaluate` binary (including `evaluate agg`).

mod common;

use std::process::Command;

use chronos::eval::{
    evaluate_dataset, locate, read_benchmarks, read_dataset, read_results, Model, ModelOptions,
    ResultRow,
};
use chronos::pipeline::Dtype;
use common::{root, shared};

const RTOL: f64 = 1e-5;

fn reference() -> Vec<ResultRow> {
    let dir = root().join("fixtures/eval");
    let mut rows = read_results(&dir.join("seasonal-naive-in-domain.csv")).unwrap();
    rows.extend(read_results(&dir.join("seasonal-naive-zero-shot.csv")).unwrap());
    assert_eq!(rows.len(), 15 + 27);
    rows
}

fn rel(a: f64, b: f64) -> f64 {
    (a - b).abs() / b.abs()
}

/// Frequency and seasonality per dataset, as the shared datasets' README states them.
const FREQS: [(&str, &str, usize); 11] = [
    ("m4_hourly", "h", 24),
    ("m4_weekly", "W-SUN", 1),
    ("monash_m3_yearly", "YS-JAN", 1),
    ("monash_tourism_monthly", "MS", 12),
    ("monash_tourism_yearly", "YS-JAN", 1),
    ("exchange_rate", "B", 5),
    ("monash_car_parts", "MS", 12),
    ("monash_hospital", "MS", 12),
    ("monash_cif_2016", "MS", 12),
    ("monash_covid_deaths", "D", 1),
    ("ETTh", "h", 24),
];

#[test]
fn library_reproduces_upstream_seasonal_naive_on_the_shared_datasets() {
    let reference = reference();
    let benchmarks = read_benchmarks(&root().join("fixtures/eval/shared.yaml")).unwrap();
    assert_eq!(benchmarks.len(), 11);
    let options = ModelOptions {
        dtype: Dtype::F32,
        device: tch::Device::Cpu,
        batch_size: 32,
        num_samples: None,
    };
    let model = Model::load("seasonal-naive", &options).unwrap();
    for benchmark in &benchmarks {
        let files = locate(&shared().join("datasets"), &benchmark.name).unwrap();
        let dataset = read_dataset(&benchmark.name, &files, None).unwrap();
        let result = evaluate_dataset(benchmark, &dataset, &model, |_, _| {}).unwrap();
        let (_, freq, season) = FREQS.iter().find(|(n, _, _)| *n == benchmark.name).unwrap();
        assert_eq!(result.freq.name(), *freq, "{}", benchmark.name);
        assert_eq!(result.seasonality, *season, "{}", benchmark.name);
        assert_eq!(result.skipped_windows, 0);
        assert_eq!(result.windows, result.series);
        let scores = result.scores.unwrap();
        let expected = reference
            .iter()
            .find(|r| r.dataset == benchmark.name)
            .unwrap();
        let (dm, dw) = (
            rel(scores.mase, expected.mase),
            rel(scores.wql, expected.wql),
        );
        eprintln!(
            "{:24} MASE {:.10} (rel {dm:.1e})  WQL {:.10} (rel {dw:.1e})",
            benchmark.name, scores.mase, scores.wql
        );
        assert!(dm <= RTOL && dw <= RTOL, "{}: {scores:?}", benchmark.name);
    }
    // ETTh: 2 rows x 7 variables.
    let etth = read_dataset("ETTh", &[shared().join("datasets/ETTh.parquet")], None).unwrap();
    assert_eq!(etth.series.len(), 14);
    assert_eq!(etth.series[0].id, "ETTh1/HUFL");
    assert_eq!(etth.series[13].id, "ETTh2/OT");
}

#[test]
fn cli_writes_sorted_results_and_aggregates_relative_scores() {
    let out = tempfile::tempdir().unwrap();
    let results = out.path().join("results.csv");
    let run = Command::new(env!("CARGO_BIN_EXE_evaluate"))
        .args(["--config", "fixtures/eval/shared.yaml", "--data-dir"])
        .arg(shared().join("datasets"))
        .args(["--model", "seasonal-naive", "--output"])
        .arg(&results)
        .current_dir(root())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(run.status.success(), "{stderr}");
    // Progress: one line per dataset.
    assert!(
        stderr.contains("[11/11] monash_m3_yearly: 645 series"),
        "{stderr}"
    );
    let text = std::fs::read_to_string(&results).unwrap();
    assert!(text.starts_with("dataset,model,MASE,WQL\n"), "{text}");
    let rows = read_results(&results).unwrap();
    let names: Vec<&str> = rows.iter().map(|r| r.dataset.as_str()).collect();
    let mut sorted = names.clone();
    sorted.sort();
    assert_eq!(names, sorted);
    assert_eq!(names.len(), 11);
    assert_eq!(names[0], "ETTh");
    let reference = reference();
    for row in &rows {
        assert_eq!(row.model, "seasonal-naive");
        let expected = reference.iter().find(|r| r.dataset == row.dataset).unwrap();
        assert!(rel(row.mase, expected.mase) <= RTOL, "{row:?}");
        assert!(rel(row.wql, expected.wql) <= RTOL, "{row:?}");
    }

    // Relative to itself every score is 1; to upstream's zero-shot baseline, the two M4
    // (in-domain) datasets are missing from it: an error naming them.
    let agg = |baseline: &str| {
        Command::new(env!("CARGO_BIN_EXE_evaluate"))
            .args(["agg", "--results"])
            .arg(&results)
            .args(["--baseline", baseline])
            .current_dir(root())
            .output()
            .unwrap()
    };
    let own = agg(results.to_str().unwrap());
    assert!(own.status.success());
    let stdout = String::from_utf8(own.stdout).unwrap();
    assert_eq!(stdout, "metric,value\nMASE,1\nWQL,1\n");
    let zero_shot = agg("fixtures/eval/seasonal-naive-zero-shot.csv");
    assert!(!zero_shot.status.success());
    let stderr = String::from_utf8(zero_shot.stderr).unwrap();
    assert!(
        stderr.contains("m4_hourly") && stderr.contains("m4_weekly"),
        "{stderr}"
    );
}
