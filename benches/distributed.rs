//! `cargo bench --bench distributed`: data-parallel training on the CPU (Gloo), the `train`
//! binary with the chronos-bolt-tiny architecture (random init, f32), context 512, horizon 64:
//!
//! * one rank: one process, 1 thread, batch B;
//! * two ranks: `--nproc 2`, 1 thread each, batch B each (global batch 2B);
//! * for reference, one process with 2 threads and batch 2B (the same work, no all-reduce).
//!
//! Scaling efficiency = samples/s of two ranks / (2 x samples/s of one rank); the all-reduce
//! time per step is rank 0's time in the gradient all-reduce (`allreduce_s_per_step` of
//! `metrics.jsonl`; it includes waiting for the slower rank). Throughputs are timed from
//! per-step timestamps after warm-up steps, so start-up is excluded. The machine needs two
//! free cores for the numbers to mean anything; each configuration runs `BENCH_DIST_ROUNDS`
//! times, interleaved, and its fastest round counts (another process on the machine only ever
//! slows a round down).
//!
//! Environment: `BENCH_DIST_STEPS` (default 20), `BENCH_DIST_WARMUP` (3), `BENCH_DIST_BATCH`
//! (per rank, 8), `BENCH_DIST_ROUNDS` (3).

mod common;

use std::path::Path;
use std::process::Command;

use chronos::train::config::TrainConfig;
use common::{env_or, root, rust_steps_per_s, write_series};

/// Trains `config` with `options` (before `--config`) into `out`; returns the run directory.
fn train(config: &Path, out: &Path, options: &[&str]) -> std::path::PathBuf {
    let status = Command::new(env!("CARGO_BIN_EXE_train"))
        .args(options)
        .args(["--quiet", "--config"])
        .arg(config)
        .arg("--output-dir")
        .arg(out)
        .status()
        .expect("running train");
    assert!(status.success(), "train {options:?} failed");
    out.join("run-0")
}

/// The mean of `key` over the metric lines after `warmup`.
fn mean_after(run_dir: &Path, key: &str, warmup: usize) -> f64 {
    let text = std::fs::read_to_string(run_dir.join("metrics.jsonl")).expect("metrics.jsonl");
    let values: Vec<f64> = text
        .lines()
        .skip(warmup)
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            v[key].as_f64().unwrap()
        })
        .collect();
    values.iter().sum::<f64>() / values.len().max(1) as f64
}

fn main() {
    let steps: usize = env_or("BENCH_DIST_STEPS", 20);
    let warmup: usize = env_or("BENCH_DIST_WARMUP", 3);
    let batch: usize = env_or("BENCH_DIST_BATCH", 8);
    let rounds: usize = env_or("BENCH_DIST_ROUNDS", 3);
    let tmp = tempfile::tempdir().expect("temp dir");
    let data = tmp.path().join("train-data.arrow");
    write_series(&data, 300, 700);

    let mut cfg = TrainConfig::from_yaml(&root().join("configs/train/chronos-bolt-tiny.yaml"))
        .expect("chronos-bolt-tiny config");
    cfg.training_data_paths = vec![data];
    cfg.probability = Some(vec![1.0]);
    cfg.context_length = 512;
    cfg.max_steps = warmup + steps + 1;
    cfg.save_steps = usize::MAX / 2;
    cfg.log_steps = 1;
    cfg.shuffle_buffer_length = 1000;
    cfg.seed = Some(0);
    let write = |name: &str, batch: usize| {
        let mut cfg = cfg.clone();
        cfg.per_device_train_batch_size = batch;
        let path = tmp.path().join(name);
        let yaml = serde_yaml::to_string(&cfg).expect("config as YAML");
        std::fs::write(&path, yaml).expect("writing the config");
        path
    };
    let (per_rank, doubled) = (write("b.yaml", batch), write("2b.yaml", 2 * batch));
    let stop = (warmup + steps).to_string();
    let rate = |run: &Path| rust_steps_per_s(&run.join("metrics.jsonl"), warmup, steps);
    // steps/s of the fastest round of each configuration, and the all-reduce ms/step of the
    // fastest two-rank round
    let (mut one_rate, mut two_rate, mut both_rate) = (0.0f64, 0.0f64, 0.0f64);
    let mut allreduce_ms = 0.0;
    for round in 0..rounds.max(1) {
        let out = |name: &str| tmp.path().join(format!("{name}-{round}"));
        let one = train(
            &per_rank,
            &out("one"),
            &["--threads", "1", "--stop-after", &stop],
        );
        one_rate = one_rate.max(rate(&one));
        let two_options = ["--threads", "1", "--stop-after", &stop, "--nproc", "2"];
        let two = train(&per_rank, &out("two"), &two_options);
        if rate(&two) > two_rate {
            two_rate = rate(&two);
            allreduce_ms = 1e3 * mean_after(&two, "allreduce_s_per_step", warmup);
        }
        let both = train(
            &doubled,
            &out("both"),
            &["--threads", "2", "--stop-after", &stop],
        );
        both_rate = both_rate.max(rate(&both));
    }
    let samples = |steps_per_s: f64, rows: usize| steps_per_s * rows as f64;
    let (one_s, two_s, both_s) = (
        samples(one_rate, batch),
        samples(two_rate, 2 * batch),
        samples(both_rate, 2 * batch),
    );

    println!(
        "chronos-bolt-tiny (random init), f32 CPU, context 512, prediction 64, {steps} steps \
         after {warmup} warm-up, best of {rounds} rounds, {} cores",
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    println!("{:<40} {:>10} {:>10}", "", "steps/s", "samples/s");
    for (name, steps_per_s, samples_per_s) in [
        (format!("1 rank, 1 thread, batch {batch}"), one_rate, one_s),
        (
            format!("2 ranks (Gloo), 1 thread each, {batch} each"),
            two_rate,
            two_s,
        ),
        (
            format!("1 process, 2 threads, batch {}", 2 * batch),
            both_rate,
            both_s,
        ),
    ] {
        println!("{name:<40} {steps_per_s:>10.2} {samples_per_s:>10.1}");
    }
    println!(
        "scaling efficiency, 2 ranks vs 2 x 1 rank: {:.0}%",
        100.0 * two_s / (2.0 * one_s)
    );
    println!(
        "2 ranks vs 1 process with 2 threads: {:.2}x the samples/s",
        two_s / both_s
    );
    println!(
        "all-reduce of the gradients: {allreduce_ms:.1} ms/step ({:.0}% of a 2-rank step)",
        100.0 * allreduce_ms / (1e3 / two_rate)
    );
}
