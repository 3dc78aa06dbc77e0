//! `cargo bench --bench train`: training speed (optimisation steps per second), Rust vs
//! upstream's HF `Trainer`, in one run on the same machine: chronos-t5-tiny architecture
//! (random init), f32 on the CPU, context 512, prediction 64, one process.
//!
//! Both sides train on the same synthetic series (a GluonTS Arrow file written here into a temp
//! dir): Rust through `chronos::train::run::train` (its own data pipeline, background threads),
//! Python through `fixtures/bench_train.py`, which configures `Trainer` as upstream train.py does
//! and feeds pre-tokenised random windows from a plain `IterableDataset` (cheap data side).
//! Both time `BENCH_TRAIN_STEPS` steps after `BENCH_TRAIN_WARMUP` warm-up steps from per-step
//! timestamps (Rust: `elapsed_s` of `metrics.jsonl` with `log_steps: 1`; Python: a
//! `TrainerCallback`'s `on_step_end`), so setup is excluded.
//!
//! Needs `scripts/setup.sh --reference`. Environment: `BENCH_TRAIN_STEPS` (default 10),
//! `BENCH_TRAIN_WARMUP` (2), `BENCH_TRAIN_BATCH` (per_device_train_batch_size, 8),
//! `BENCH_TRAIN_SERIES` (300), `BENCH_TRAIN_LENGTH` (700), `BENCH_TRAIN_BF16` (1: both sides
//! under bfloat16 autocast, the config's `bf16: true` and `TrainingArguments(bf16=True)`).

mod common;

use chronos::train::config::{Optim, TrainConfig};
use chronos::train::run::{train, RunOptions};
use common::{arg, env_or, peak_rss_mb, python_json, root, rust_steps_per_s, write_series};
use tch::Device;

const CONTEXT: i64 = 512;
const HORIZON: i64 = 64;

fn main() {
    let steps: usize = env_or("BENCH_TRAIN_STEPS", 10);
    let warmup: usize = env_or("BENCH_TRAIN_WARMUP", 2);
    let batch: usize = env_or("BENCH_TRAIN_BATCH", 8);
    let n_series: i64 = env_or("BENCH_TRAIN_SERIES", 300);
    let length: i64 = env_or("BENCH_TRAIN_LENGTH", 700);
    let bf16 = env_or("BENCH_TRAIN_BF16", 0) == 1;
    assert!(length >= CONTEXT + HORIZON, "BENCH_TRAIN_LENGTH < 576");

    // As the `train` binary does.
    chronos::runtime::reuse_freed_memory();
    let tmp = tempfile::tempdir().expect("temp dir");
    let data = tmp.path().join("train-data.arrow");
    write_series(&data, n_series, length);

    let mut cfg = TrainConfig::from_yaml(&root().join("configs/train/chronos-t5-tiny.yaml"))
        .expect("chronos-t5-tiny config");
    cfg.training_data_paths = vec![data.clone()];
    cfg.probability = Some(vec![1.0]);
    cfg.context_length = CONTEXT;
    cfg.prediction_length = HORIZON;
    cfg.per_device_train_batch_size = batch;
    cfg.gradient_accumulation_steps = 1;
    // One past the timed steps, with `stop_after` below: no final checkpoint is written.
    cfg.max_steps = warmup + steps + 1;
    cfg.save_steps = usize::MAX / 2;
    cfg.log_steps = 1;
    cfg.optim = Optim::AdamwTorch;
    cfg.shuffle_buffer_length = 1000;
    cfg.seed = Some(0);
    cfg.output_dir = tmp.path().join("output");
    cfg.bf16 = bf16;
    cfg.validate().expect("valid config");
    let options = RunOptions {
        device: Device::Cpu,
        progress: false,
        stop_after: Some(warmup + steps),
        ..RunOptions::default()
    };
    let summary = train(&cfg, &options).expect("training");
    let rust_rate = rust_steps_per_s(&summary.run_dir.join("metrics.jsonl"), warmup, steps);
    let rust_rss = peak_rss_mb();

    let mut py_args = vec![
        "--data".into(),
        arg(&data),
        "--batch".into(),
        batch.to_string(),
        "--context".into(),
        CONTEXT.to_string(),
        "--horizon".into(),
        HORIZON.to_string(),
        "--steps".into(),
        steps.to_string(),
        "--warmup".into(),
        warmup.to_string(),
    ];
    if bf16 {
        py_args.push("--bf16".into());
    }
    let py = python_json("bench_train.py", &py_args);
    let py_rate = py["steps_per_s"].as_f64().unwrap();
    let py_rss = py["peak_rss_mb"].as_f64().unwrap();

    println!(
        "chronos-t5-tiny (random init), {} CPU, context {CONTEXT}, prediction {HORIZON}, batch {batch}, \
         {steps} steps after {warmup} warm-up, {n_series} series of {length}; threads: rust {}, python {}",
        if bf16 { "bf16 autocast" } else { "f32" },
        tch::get_num_threads(),
        py["threads"]
    );
    println!(
        "{:<20} {:>10} {:>10} {:>10}",
        "", "rust", "python", "speed-up"
    );
    println!(
        "{:<20} {:>10.3} {:>10.3} {:>9.2}x",
        "steps/s",
        rust_rate,
        py_rate,
        rust_rate / py_rate
    );
    println!("{:<20} {:>10.0} {:>10.0}", "peak RSS MB", rust_rss, py_rss);
    println!(
        "loss (ln 4096 = 8.318 at init): rust {:.4} -> {:.4} over {} steps; python mean {:.4} ({} params)",
        summary.first_loss, summary.last_loss, summary.steps, py["train_loss"].as_f64().unwrap_or(f64::NAN), py["n_params"]
    );
}
