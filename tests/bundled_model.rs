//! The bundled model (`chronos::bundled`, models/chronos-bolt-2m): it loads from the program
//! with no files, equals the checkpoint in the repository, forecasts the bundled example with
//! finite values (also as `predict`'s default, with `--plot`), beats seasonal naive on held-out
//! windows, and reproduces the evaluation committed with its model card.

mod common;

use std::process::Command;

use chronos::bundled;
use chronos::checkpoint::Checkpoint;
use chronos::eval::{
    evaluate_dataset, locate, read_benchmarks, read_dataset, read_results, relative_scores, Model,
    ModelOptions, ResultRow,
};
use chronos::pipeline::{Dtype, Pipeline};
use common::{root, shared};

fn options() -> ModelOptions {
    ModelOptions {
        dtype: Dtype::F32,
        device: tch::Device::Cpu,
        batch_size: 256,
        num_samples: None,
    }
}

#[test]
fn bundled_checkpoint_is_the_one_in_the_repository() {
    let bundled = Checkpoint::open(bundled::NAME).unwrap();
    let on_disk = Checkpoint::from_dir(&root().join(bundled::SOURCE_DIR)).unwrap();
    assert_eq!(
        format!("{:?}", bundled.config),
        format!("{:?}", on_disk.config)
    );
    let (a, b) = (
        bundled.read_tensors().unwrap(),
        on_disk.read_tensors().unwrap(),
    );
    assert_eq!(a.len(), b.len());
    let mut params = 0;
    for (name, (tensor, _)) in &a {
        let (other, _) = &b[name];
        assert!(tensor.equal(other), "{name}");
        params += tensor.numel();
    }
    // The bound: at most 10 MB of weights.
    assert!(params * 4 <= 10_000_000, "{params} parameters");
    assert_eq!(
        Pipeline::load(bundled::NAME, Dtype::F32, tch::Device::Cpu)
            .unwrap()
            .prediction_length(),
        48
    );
}

#[test]
fn predict_defaults_to_the_bundled_model_and_draws_the_forecasts() {
    let dir = tempfile::tempdir().unwrap();
    let (out, png) = (dir.path().join("f.csv"), dir.path().join("f.png"));
    let run = Command::new(env!("CARGO_BIN_EXE_predict"))
        .args(["--input", "fixtures/example/m4_hourly_5.csv"])
        .args(["--output", out.to_str().unwrap()])
        .args(["--quantiles", "0.25,0.5", "--plot", png.to_str().unwrap()])
        .args(["--plot-series", "3"])
        .current_dir(root())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(run.status.success(), "{stderr}");
    assert!(
        stderr.contains("using the bundled model chronos-bolt-2m"),
        "{stderr}"
    );
    let text = std::fs::read_to_string(&out).unwrap();
    let mut lines = text.lines();
    assert_eq!(
        lines.next(),
        Some("item_id,timestamp,target_name,predictions,0.25,0.5")
    );
    let rows: Vec<Vec<f64>> = lines
        .map(|l| l.split(',').skip(3).map(|v| v.parse().unwrap()).collect())
        .collect();
    assert_eq!(rows.len(), 5 * 48);
    assert!(rows.iter().flatten().all(|v| v.is_finite()));
    // Chronos-Bolt's point forecast is its median.
    assert!(
        rows.iter().all(|r| r[0] == r[2]),
        "predictions = 0.5 quantile"
    );
    // A PNG of 1000 x (3 panels of 260) pixels.
    let bytes = std::fs::read(&png).unwrap();
    assert_eq!(&bytes[..8], b"\x89PNG\r\n\x1a\n");
    let be = |i: usize| u32::from_be_bytes(bytes[i..i + 4].try_into().unwrap());
    assert_eq!((be(16), be(20)), (1000, 3 * 260));
}

/// Scores of the bundled model and of seasonal naive on the 11 shared datasets.
fn evaluate_shared() -> (Vec<ResultRow>, Vec<ResultRow>) {
    let benchmarks = read_benchmarks(&root().join("fixtures/eval/shared.yaml")).unwrap();
    let model = Model::load(bundled::NAME, &options()).unwrap();
    let naive = Model::load("seasonal-naive", &options()).unwrap();
    let (mut ours, mut baseline) = (Vec::new(), Vec::new());
    for benchmark in &benchmarks {
        let files = locate(&shared().join("datasets"), &benchmark.name).unwrap();
        let dataset = read_dataset(&benchmark.name, &files, None).unwrap();
        for (model, name, rows) in [
            (&model, bundled::NAME, &mut ours),
            (&naive, "seasonal-naive", &mut baseline),
        ] {
            let scores = evaluate_dataset(benchmark, &dataset, model, |_, _| {})
                .unwrap()
                .scores
                .unwrap();
            rows.push(ResultRow {
                dataset: benchmark.name.clone(),
                model: name.to_string(),
                mase: scores.mase,
                wql: scores.wql,
            });
        }
    }
    (ours, baseline)
}

#[test]
fn bundled_model_beats_seasonal_naive_and_reproduces_its_model_card() {
    let (ours, baseline) = evaluate_shared();
    // Held-out windows (never seen in training) of a shared dataset: the median forecast's MASE
    // and the WQL below seasonal naive's.
    for name in ["monash_covid_deaths", "monash_hospital"] {
        let row = |rows: &[ResultRow]| rows.iter().find(|r| r.dataset == name).unwrap().clone();
        let (m, s) = (row(&ours), row(&baseline));
        assert!(m.mase < s.mase && m.wql < s.wql, "{name}: {m:?} vs {s:?}");
    }
    // The model card's evaluation, recomputed (thread counts move the last digits only).
    let card = root().join(bundled::SOURCE_DIR).join("eval");
    let committed = read_results(&card.join("chronos-bolt-2m.csv")).unwrap();
    assert_eq!(committed.len(), ours.len());
    for row in &ours {
        let c = committed.iter().find(|c| c.dataset == row.dataset).unwrap();
        for (a, b) in [(row.mase, c.mase), (row.wql, c.wql)] {
            assert!(
                (a - b).abs() <= 1e-4 * b.abs(),
                "{}: {a} vs {b}",
                row.dataset
            );
        }
    }
    let scores = relative_scores(&ours, &baseline).unwrap();
    assert_eq!(scores.datasets, 11);
    assert!(scores.mase < 1.0, "aggregate relative MASE {}", scores.mase);
    assert!(scores.wql < 1.0, "aggregate relative WQL {}", scores.wql);
}
