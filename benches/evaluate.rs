//! `cargo bench --bench evaluate`: the seasonal-naive benchmark run over the 11 shared datasets
//! (`fixtures/eval/shared.yaml`), Rust vs upstream's Python evaluator (GluonTS
//! `SeasonalNaivePredictor` + `evaluate_forecasts`, run by `fixtures/eval.py --bench` in the GluonTS
//! venv, which it creates on first use), on the same machine in one run.
//!
//! Prints, as medians over the repeats: the in-process time of each side (reading, splitting,
//! forecasting and scoring all datasets; Rust split into reading and the rest) and the
//! wall time of each whole command (`evaluate` vs `python fixtures/eval.py --bench`, interpreter
//! start, imports and library loading included), their ratios, and the largest relative
//! difference between the two sides' MASE/WQL.
//!
//! Environment: `EVAL_BENCH_DATA` (default `../shared/datasets`), `EVAL_BENCH_REPEATS` (5).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use chronos::eval::{
    evaluate_dataset, locate, read_benchmarks, read_dataset, Benchmark, Model, ModelOptions,
};
use chronos::metrics::Scores;
use chronos::pipeline::Dtype;

fn median(mut xs: Vec<f64>) -> f64 {
    xs.sort_by(f64::total_cmp);
    xs[xs.len() / 2]
}

/// One in-process run: (seconds reading, seconds splitting + forecasting + scoring, scores).
fn rust_run(
    benchmarks: &[Benchmark],
    data: &Path,
    model: &Model,
) -> (f64, f64, HashMap<String, Scores>) {
    let (mut read, mut score) = (0.0, 0.0);
    let mut scores = HashMap::new();
    for b in benchmarks {
        let t = Instant::now();
        let files = locate(data, &b.name).expect("dataset file");
        let dataset = read_dataset(&b.name, &files, b.freq).expect("readable dataset");
        read += t.elapsed().as_secs_f64();
        let t = Instant::now();
        let result = evaluate_dataset(b, &dataset, model, |_, _| {}).expect("evaluation");
        score += t.elapsed().as_secs_f64();
        scores.insert(b.name.clone(), result.scores.expect("scored"));
    }
    (read, score, scores)
}

fn timed(cmd: &mut Command) -> (f64, String) {
    let t = Instant::now();
    let out = cmd.output().expect("run command");
    let secs = t.elapsed().as_secs_f64();
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    (secs, String::from_utf8_lossy(&out.stdout).into_owned())
}

fn main() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let data = std::env::var_os("EVAL_BENCH_DATA")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("../shared/datasets"));
    let repeats: usize = std::env::var("EVAL_BENCH_REPEATS")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(5)
        .max(1);
    let config = root.join("fixtures/eval/shared.yaml");
    let benchmarks = read_benchmarks(&config).expect("config");
    let model = Model::load(
        "seasonal-naive",
        &ModelOptions {
            dtype: Dtype::F32,
            device: tch::Device::Cpu,
            batch_size: 32,
            num_samples: None,
        },
    )
    .expect("seasonal naive");

    // Rust, in process (one warm-up run fills the page cache).
    let (_, _, rust_scores) = rust_run(&benchmarks, &data, &model);
    let runs: Vec<(f64, f64)> = (0..repeats)
        .map(|_| {
            let (r, s, _) = rust_run(&benchmarks, &data, &model);
            (r, s)
        })
        .collect();
    let rust_read = median(runs.iter().map(|r| r.0).collect());
    let rust_score = median(runs.iter().map(|r| r.1).collect());
    let rust_total = median(runs.iter().map(|r| r.0 + r.1).collect());

    // Rust, the whole command.
    let output = std::env::temp_dir().join(format!("eval-bench-{}.csv", std::process::id()));
    let mut rust_cmd = Command::new(env!("CARGO_BIN_EXE_evaluate"));
    rust_cmd
        .arg("--config")
        .arg(&config)
        .arg("--data-dir")
        .arg(&data)
        .args(["--model", "seasonal-naive", "--output"])
        .arg(&output);
    timed(&mut rust_cmd);
    let rust_cmd_secs = median((0..repeats).map(|_| timed(&mut rust_cmd).0).collect());
    let _ = std::fs::remove_file(&output);
    let mut help = Command::new(env!("CARGO_BIN_EXE_evaluate"));
    help.arg("--help");
    let startup = median((0..repeats).map(|_| timed(&mut help).0).collect());

    // Python: the first run creates the GluonTS venv if needed (not timed).
    let script = root.join("fixtures/eval.py");
    let bench_args = |cmd: &mut Command| {
        cmd.arg(&script).arg("--bench").arg(&config).arg(&data);
    };
    let mut first = Command::new("python3");
    bench_args(&mut first);
    timed(&mut first);
    let mut py_cmd = Command::new(root.join("target/gluonts-venv/bin/python"));
    bench_args(&mut py_cmd);
    let py_runs: Vec<(f64, serde_json::Value)> = (0..repeats)
        .map(|_| {
            let (secs, stdout) = timed(&mut py_cmd);
            (
                secs,
                serde_json::from_str(stdout.trim()).expect("JSON line"),
            )
        })
        .collect();
    let py_cmd_secs = median(py_runs.iter().map(|r| r.0).collect());
    let py_inner = median(
        py_runs
            .iter()
            .map(|r| r.1["seconds"].as_f64().expect("seconds"))
            .collect(),
    );

    let mut worst: f64 = 0.0;
    for (name, s) in &rust_scores {
        let py = &py_runs[0].1["results"][name];
        for (ours, key) in [(s.mase, "MASE"), (s.wql, "WQL")] {
            let theirs = py[key].as_f64().expect("metric");
            worst = worst.max((ours - theirs).abs() / theirs.abs());
        }
    }

    println!(
        "seasonal naive over {} datasets ({}), median of {repeats}",
        benchmarks.len(),
        data.display()
    );
    println!(
        "  in process:  Rust {:.3} s (reading {:.3} s, split + forecast + score {:.3} s) \
         vs Python {:.3} s: {:.1}x",
        rust_total,
        rust_read,
        rust_score,
        py_inner,
        py_inner / rust_total
    );
    println!(
        "  whole command: evaluate {:.3} s (of which {:.3} s start-up: `evaluate --help`, \
         loading libtorch) vs python fixtures/eval.py --bench {:.3} s: {:.1}x",
        rust_cmd_secs,
        startup,
        py_cmd_secs,
        py_cmd_secs / rust_cmd_secs
    );
    println!("  max relative difference of MASE/WQL, Rust vs Python GluonTS: {worst:.1e}");
}
