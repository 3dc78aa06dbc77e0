//! Helpers shared by the benchmarks that compare Rust with the Python reference in one run.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use chrono::NaiveDate;
use chronos::data::{GluonEntry, GluonWriteOptions, GluonWriter};
use tch::{Device, Kind, Tensor};

/// The repository root.
pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Median wall time of `repeats` calls of `f`, after one warm-up call.
pub fn median_seconds(repeats: usize, mut f: impl FnMut()) -> f64 {
    f();
    let mut times: Vec<f64> = (0..repeats.max(1))
        .map(|_| {
            let start = Instant::now();
            f();
            start.elapsed().as_secs_f64()
        })
        .collect();
    times.sort_by(f64::total_cmp);
    times[times.len() / 2]
}

/// `name` from the environment, else `default`.
pub fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// FLOP/s of a large square f32 matmul in libtorch on this machine.
pub fn matmul_rate(repeats: usize) -> f64 {
    let n = 2048;
    let a = Tensor::randn([n, n], (Kind::Float, Device::Cpu));
    let b = Tensor::randn([n, n], (Kind::Float, Device::Cpu));
    let secs = median_seconds(repeats, || {
        let _ = a.matmul(&b);
    });
    2.0 * (n * n * n) as f64 / secs
}

/// Peak resident memory of this process so far, MB.
pub fn peak_rss_mb() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse::<f64>().ok())
        })
        .map_or(f64::NAN, |kb| kb / 1024.0)
}

/// A random-weight checkpoint of a published architecture, generated on first use by the
/// fixture script (`fixtures/<script> --full-size <size>`) into git-ignored `fixtures/full-size/`.
pub fn full_size_checkpoint(script: &str, family: &str, size: &str) -> PathBuf {
    let root = root();
    let dir = root
        .join("fixtures/full-size")
        .join(format!("chronos-{family}-{size}"));
    if !dir.join("model.safetensors").is_file() {
        eprintln!(
            "generating random {family}-{size} checkpoint in {}",
            dir.display()
        );
        let status = Command::new(root.join(".venv/bin/python"))
            .arg(root.join("fixtures").join(script))
            .args(["--full-size", size, "--out"])
            .arg(&dir)
            .status()
            .expect("run the fixture generator (did scripts/setup.sh --reference run?)");
        assert!(status.success(), "checkpoint generation failed");
    }
    dir
}

/// Random walks `(batch, len)` around 100, written as raw little-endian f32 for the Python side.
pub fn random_walks(batch: i64, len: i64) -> (Tensor, PathBuf) {
    let inputs =
        Tensor::randn([batch, len], (Kind::Float, Device::Cpu)).cumsum(1, Kind::Float) + 100.0;
    let file = std::env::temp_dir().join(format!("chronos-bench-{}.f32", std::process::id()));
    let values: Vec<f32> = Vec::try_from(inputs.flatten(0, -1)).unwrap();
    let bytes: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
    std::fs::write(&file, bytes).unwrap();
    (inputs, file)
}

/// Runs `fixtures/<script>` with `args` in the reference venv and parses its JSON stdout.
pub fn python_json(script: &str, args: &[String]) -> serde_json::Value {
    let root = root();
    let out = Command::new(root.join(".venv/bin/python"))
        .arg(root.join("fixtures").join(script))
        .args(args)
        .output()
        .expect("run the Python benchmark (did scripts/setup.sh --reference run?)");
    assert!(
        out.status.success(),
        "python benchmark failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("python JSON")
}

/// Removes a file when dropped.
pub struct TempFile(pub PathBuf);

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// Path of `p` as a `String` argument.
pub fn arg(p: &Path) -> String {
    p.display().to_string()
}

/// What `fixtures/bench_bolt.py` / `bench_t5.py` measure for the Python pipeline.
pub struct PythonForecastTimings {
    /// Seconds per predict of the whole batch.
    pub batch_s: f64,
    /// Seconds per predict of one series.
    pub single_s: f64,
    pub peak_rss_mb: f64,
    pub threads: serde_json::Value,
}

/// Runs a forecasting benchmark script on `model` with the raw f32 `inputs` of shape
/// `(batch, context)`, `horizon` steps, `repeats` timed calls, and any `extra` arguments.
pub fn python_forecast_timings(
    script: &str,
    model: &Path,
    inputs: &Path,
    (batch, context, horizon): (i64, i64, i64),
    repeats: usize,
    extra: &[String],
) -> PythonForecastTimings {
    let mut args = vec![
        "--model".into(),
        arg(model),
        "--inputs".into(),
        arg(inputs),
        "--batch".into(),
        batch.to_string(),
        "--context".into(),
        context.to_string(),
        "--horizon".into(),
        horizon.to_string(),
        "--repeats".into(),
        repeats.to_string(),
    ];
    args.extend_from_slice(extra);
    let py = python_json(script, &args);
    let number = |key: &str| {
        py[key]
            .as_f64()
            .unwrap_or_else(|| panic!("{script}: no number '{key}' in {py}"))
    };
    PythonForecastTimings {
        batch_s: number("batch_s"),
        single_s: number("single_s"),
        peak_rss_mb: number("peak_rss_mb"),
        threads: py["threads"].clone(),
    }
}

/// `n` training series of `len` points (a GluonTS Arrow file): random walks plus a daily-ish
/// seasonality, positive level.
pub fn write_series(path: &std::path::Path, n: i64, len: i64) {
    tch::manual_seed(0);
    let opts = (Kind::Double, Device::Cpu);
    let walks = Tensor::randn([n, len], opts).cumsum(1, Kind::Double);
    let phase = Tensor::rand([n, 1], opts) * std::f64::consts::TAU;
    let t = Tensor::arange(len, opts).unsqueeze(0);
    let season = ((t * (std::f64::consts::TAU / 24.0)) + phase).sin() * 5.0;
    let values = walks + season + 100.0;
    let start = NaiveDate::from_ymd_opt(2020, 1, 1)
        .unwrap()
        .and_hms_opt(0, 0, 0)
        .unwrap();
    let entries: Vec<GluonEntry> = (0..n)
        .map(|i| GluonEntry {
            start,
            target: Vec::<f64>::try_from(values.get(i)).unwrap(),
        })
        .collect();
    let mut writer = GluonWriter::create(path, &GluonWriteOptions::default()).unwrap();
    writer.write(&entries, &[]).unwrap();
    writer.finish().unwrap();
}

/// Steps per second of steps `warmup + 1 ..= warmup + steps` from a run's `metrics.jsonl`
/// (`log_steps: 1`).
pub fn rust_steps_per_s(metrics: &std::path::Path, warmup: usize, steps: usize) -> f64 {
    let text = std::fs::read_to_string(metrics).expect("metrics.jsonl");
    let elapsed: Vec<f64> = text
        .lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            v["elapsed_s"].as_f64().unwrap()
        })
        .collect();
    assert_eq!(elapsed.len(), warmup + steps, "one metrics line per step");
    let before = if warmup == 0 {
        0.0
    } else {
        elapsed[warmup - 1]
    };
    steps as f64 / (elapsed[warmup + steps - 1] - before)
}
