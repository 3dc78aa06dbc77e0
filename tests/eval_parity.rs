//! Per-dataset MASE/WQL against upstream's protocol in Python (`fixtures/eval.py`: the chronos
//! pipeline with the tiny random checkpoint `bolt-reg`, GluonTS' split and `evaluate_forecasts`),
//! on shared benchmark datasets: unrolled horizons, contexts longer than the model's and
//! shorter than a season, missing values, and three rolling windows.

mod common;

use chronos::eval::{evaluate_dataset, read_dataset, Benchmark, Model, ModelOptions};
use chronos::pipeline::Dtype;
use common::{root, shared};
use serde::Deserialize;
use tch::Device;

const RTOL: f64 = 1e-5;

#[derive(Deserialize)]
struct Fixture {
    model_dir: String,
    batch_size: usize,
    cases: Vec<Case>,
}

#[derive(Deserialize)]
struct Case {
    dataset: String,
    offset: i64,
    prediction_length: usize,
    num_rolls: usize,
    seasonality: usize,
    windows: usize,
    bolt: Scores,
    seasonal_naive: Scores,
}

#[derive(Deserialize)]
struct Scores {
    #[serde(rename = "MASE")]
    mase: f64,
    #[serde(rename = "WQL")]
    wql: f64,
}

fn rel(a: f64, b: f64) -> f64 {
    (a - b).abs() / b.abs()
}

#[test]
fn bolt_and_seasonal_naive_match_python_gluonts() {
    // The fixture was computed single-threaded (see tests/bolt_parity.rs).
    tch::set_num_threads(1);
    let text = std::fs::read_to_string(root().join("fixtures/eval/bolt-reg.json")).unwrap();
    let fixture: Fixture = serde_json::from_str(&text).unwrap();
    let options = ModelOptions {
        dtype: Dtype::F32,
        device: Device::Cpu,
        batch_size: fixture.batch_size,
        num_samples: None,
    };
    let bolt = Model::load(root().join(&fixture.model_dir).to_str().unwrap(), &options).unwrap();
    let naive = Model::load("seasonal-naive", &options).unwrap();
    assert!(fixture.cases.len() >= 4);
    let mut worst: f64 = 0.0;
    for case in &fixture.cases {
        let benchmark = Benchmark {
            name: case.dataset.clone(),
            hf_repo: "autogluon/chronos_datasets".into(),
            offset: case.offset,
            prediction_length: case.prediction_length,
            num_rolls: case.num_rolls,
            freq: None,
        };
        let file = shared().join(format!("datasets/{}.parquet", case.dataset));
        let dataset = read_dataset(&case.dataset, &[file], None).unwrap();
        for (model, expected, what) in [
            (&bolt, &case.bolt, "bolt-reg"),
            (&naive, &case.seasonal_naive, "seasonal-naive"),
        ] {
            let got = evaluate_dataset(&benchmark, &dataset, model, |_, _| {}).unwrap();
            let tag = format!(
                "{what} on {} (offset {}, H {}, rolls {})",
                case.dataset, case.offset, case.prediction_length, case.num_rolls
            );
            assert_eq!(got.seasonality, case.seasonality, "{tag}");
            assert_eq!(got.windows, case.windows, "{tag}");
            assert_eq!(got.skipped_windows, 0, "{tag}");
            let scores = got.scores.unwrap();
            let (dm, dw) = (
                rel(scores.mase, expected.mase),
                rel(scores.wql, expected.wql),
            );
            assert!(
                dm <= RTOL && dw <= RTOL,
                "{tag}: MASE {} vs {} (rel {dm:.1e}), WQL {} vs {} (rel {dw:.1e})",
                scores.mase,
                expected.mase,
                scores.wql,
                expected.wql
            );
            eprintln!("{tag}: MASE rel {dm:.1e}, WQL rel {dw:.1e}");
            worst = worst.max(dm).max(dw);
        }
    }
    eprintln!("max relative difference {worst:.2e}");
}
