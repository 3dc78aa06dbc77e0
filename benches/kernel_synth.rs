//! `cargo bench --bench kernel_synth`: KernelSynth series per second, Rust vs the Python reference,
//! in one run on the same machine with the same N and J (series of length 1024, LZ4 GluonTS Arrow
//! output, all cores on both sides).
//!
//! Rust: `KernelSynth::write_dataset` in this process (median of 3 runs, 2 before and 1 after the
//! Python one). Python: `fixtures/kernel_synth_reference.py`, a re-statement of upstream's
//! `scripts/kernel-synth.py` loop (scikit-learn `GaussianProcessRegressor.sample_y`, joblib
//! `Parallel(n_jobs=-1)`). Both time generation plus writing, without process start-up and
//! imports.
//!
//! Needs `scripts/setup.sh --reference` (scikit-learn). Environment: `KERNEL_SYNTH_BENCH_N`
//! (default 64: about a minute of Python on 2 cores), `KERNEL_SYNTH_BENCH_J` (default 5).

use std::path::PathBuf;
use std::process::Command;
use std::time::Instant;

use chrono::NaiveDate;

use chronos::data::{IpcCompression, IpcFormat};
use chronos::kernel_synth::{KernelSynth, WriteOptions, DEFAULT_LENGTH};

fn env_or(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn main() {
    let n = env_or("KERNEL_SYNTH_BENCH_N", 64);
    let j = env_or("KERNEL_SYNTH_BENCH_J", 5) as usize;
    let threads = std::thread::available_parallelism().map_or(1, usize::from);
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let dir = tempfile::tempdir().expect("temp dir");

    let synth = KernelSynth::new(DEFAULT_LENGTH, j, 0).expect("settings");
    let options = WriteOptions {
        start: NaiveDate::from_ymd_opt(2000, 1, 1)
            .and_then(|d| d.and_hms_opt(0, 0, 0))
            .expect("date"),
        batch_size: 1024,
        threads,
        kernel_column: false,
        compression: IpcCompression::Lz4,
        format: IpcFormat::File,
    };
    let rust_path = dir.path().join("rust.arrow");
    let rust_run = || {
        let began = Instant::now();
        let summary = synth
            .write_dataset(&rust_path, n, &options, &|_| {})
            .expect("rust kernel-synth");
        (began.elapsed().as_secs_f64(), summary)
    };
    // Rust runs before and after the Python one, so that load drifting during the run (a shared
    // machine) weighs on both sides alike; the median is reported.
    let mut runs = vec![rust_run(), rust_run()];

    let python = Command::new(root.join(".venv/bin/python"))
        .arg(root.join("fixtures/kernel_synth_reference.py"))
        .args(["-N", &n.to_string(), "-J", &j.to_string(), "--output"])
        .arg(dir.path().join("python.arrow"))
        .output()
        .expect("run .venv/bin/python (scripts/setup.sh --reference)");
    assert!(
        python.status.success(),
        "python reference failed (scripts/setup.sh --reference installs scikit-learn):\n{}",
        String::from_utf8_lossy(&python.stderr)
    );
    let py: serde_json::Value = serde_json::from_slice(&python.stdout).expect("python JSON");
    let py_secs = py["seconds"].as_f64().expect("seconds");

    runs.push(rust_run());
    runs.sort_by(|a, b| a.0.total_cmp(&b.0));
    let (rust_secs, summary) = runs[1].clone();

    let rust_rate = n as f64 / rust_secs;
    let py_rate = n as f64 / py_secs;
    println!(
        "KernelSynth, N = {n}, J = {j}, length {DEFAULT_LENGTH}, {threads} cores \
         (rust: {threads} threads; python: joblib n_jobs=-1)"
    );
    println!("{:<24} {:>12} {:>12} {:>10}", "", "rust", "python", "ratio");
    println!(
        "{:<24} {:>12.2} {:>12.2} {:>9.1}x",
        "series/s",
        rust_rate,
        py_rate,
        rust_rate / py_rate
    );
    println!("{:<24} {:>12.3} {:>12.3}", "seconds", rust_secs, py_secs);
    println!(
        "rust sampling: Cholesky by jitter level {:?}, eigendecomposition {}, redraws {}",
        summary.cholesky, summary.eigh, summary.redraws
    );
}
