//! Helpers shared by the integration tests: fixture paths and the element-wise tolerance check.

#![allow(dead_code)]

use std::path::PathBuf;

use tch::Tensor;

/// The CPU kernels the fixtures were computed on (`PINNED_CPU_KERNELS` of `fixtures/common.py`):
/// ATen's, MKL's and oneDNN's AVX2 paths whatever the machine has beyond them, since kernels of
/// other vector widths round differently (the reference itself moves by up to 1.5e-5 in f32 and
/// 1.3e-1 in bf16 between AVX-512 and AVX2 machines).
pub const PINNED_CPU_KERNELS: [(&str, &str); 3] = [
    ("ATEN_CPU_CAPABILITY", "avx2"),
    ("MKL_CBWR", "AVX2"),
    ("ONEDNN_MAX_CPU_ISA", "AVX2"),
];

/// Sets [`PINNED_CPU_KERNELS`] before `main`, so before libtorch picks its kernels (at its first
/// operation) and for every binary a test runs.
#[ctor::ctor(unsafe)]
fn pin_cpu_kernels() {
    for (name, value) in PINNED_CPU_KERNELS {
        std::env::set_var(name, value);
    }
}

/// The repository root.
pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// `../shared` beside the checkout (read-only material present in CI too).
pub fn shared() -> PathBuf {
    root().join("../shared")
}

/// Resolves a fixture manifest's `model_dir`: relative to the repo, or `shared:<path>`.
pub fn model_dir(spec: &str) -> PathBuf {
    match spec.strip_prefix("shared:") {
        Some(rest) => shared().join(rest),
        None => root().join(spec),
    }
}

/// Asserts `|a - b| <= rtol * (1 + |b|)` element-wise, NaN only where the other is NaN.
/// Returns the largest `|a - b| / (1 + |b|)` seen.
pub fn assert_close(name: &str, actual: &Tensor, expected: &Tensor, rtol: f64) -> f64 {
    assert_eq!(
        actual.size(),
        expected.size(),
        "{name}: shape {:?} != expected {:?}",
        actual.size(),
        expected.size()
    );
    let a = actual.to_kind(tch::Kind::Double);
    let b = expected.to_kind(tch::Kind::Double);
    let nan_mismatch = a
        .isnan()
        .logical_xor(&b.isnan())
        .sum(tch::Kind::Int64)
        .int64_value(&[]);
    assert_eq!(nan_mismatch, 0, "{name}: NaN positions differ");
    let err = ((&a - &b).abs() / (b.abs() + 1.0)).nan_to_num(0.0, None, None);
    let worst = err.max().double_value(&[]);
    assert!(
        worst <= rtol,
        "{name}: max |a - b| / (1 + |b|) = {worst:.3e} > {rtol:.1e} (at flat index {})",
        err.flatten(0, -1).argmax(0, false).int64_value(&[])
    );
    worst
}

/// Reference outputs of one model: the manifest `<dir>/<model>.json` and the tensors of
/// `<dir>/<model>.safetensors`, as the fixture generators write them.
pub struct Expected<M> {
    pub manifest: M,
    pub tensors: std::collections::HashMap<String, Tensor>,
}

impl<M: serde::de::DeserializeOwned> Expected<M> {
    /// Loads `fixtures/<family>/expected/<model>.*` and sets libtorch to one thread: the
    /// fixtures were computed single-threaded, and threaded reductions and matmul blocking
    /// change f32 rounding (the reference itself moves by up to ~8e-6 between 1 and 2 threads
    /// on fed-back horizons), so the comparison runs in the same arithmetic order.
    pub fn load(family: &str, model: &str) -> Self {
        tch::set_num_threads(1);
        let dir = root().join("fixtures").join(family).join("expected");
        let text = std::fs::read_to_string(dir.join(format!("{model}.json"))).unwrap();
        Expected {
            manifest: serde_json::from_str(&text).unwrap(),
            tensors: Tensor::read_safetensors(dir.join(format!("{model}.safetensors")))
                .unwrap()
                .into_iter()
                .collect(),
        }
    }

    pub fn get(&self, key: &str) -> &Tensor {
        self.tensors
            .get(key)
            .unwrap_or_else(|| panic!("fixture tensor '{key}' missing"))
    }
}

/// Manifest of the tokenised-Chronos fixtures (Chronos-T5, causal GPT-2).
#[derive(serde::Deserialize)]
pub struct SamplingManifest {
    pub model_dir: String,
    pub seed: i64,
    pub cases: Vec<SamplingCase>,
}

/// One case: its horizons, quantile levels and sampling settings.
#[derive(serde::Deserialize)]
pub struct SamplingCase {
    pub name: String,
    pub horizons: Vec<i64>,
    pub levels: Vec<f64>,
    pub num_samples: i64,
    pub temperature: f64,
    pub top_k: i64,
    pub top_p: f64,
}

impl SamplingCase {
    pub fn sampling(&self) -> chronos::sampling::SamplingConfig {
        chronos::sampling::SamplingConfig {
            num_samples: self.num_samples,
            temperature: self.temperature,
            top_k: self.top_k,
            top_p: self.top_p,
        }
    }
}

/// Asserts two integer tensors are equal, reporting how many elements agree.
pub fn assert_ids_equal(name: &str, actual: &Tensor, expected: &Tensor) {
    assert_eq!(actual.size(), expected.size(), "{name}: shape");
    let a: Vec<i64> = Vec::try_from(actual.to_kind(tch::Kind::Int64).flatten(0, -1)).unwrap();
    let b: Vec<i64> = Vec::try_from(expected.to_kind(tch::Kind::Int64).flatten(0, -1)).unwrap();
    let same = a.iter().zip(&b).filter(|(x, y)| x == y).count();
    assert_eq!(same, a.len(), "{name}: {same}/{} tokens identical", a.len());
}

/// For every horizon of `case`, seeded as the fixture was: the first chunk's sampled tokens
/// (`draw(chunk_len)`), `predict` and `predict_quantiles` against the reference, `rtol` for
/// values. Returns the number of sampled tokens compared (all identical).
pub fn check_seeded_forecasts(
    fx: &Expected<SamplingManifest>,
    p: &chronos::pipeline::ChronosPipeline,
    case: &SamplingCase,
    draw: impl Fn(i64) -> Tensor,
    rtol: f64,
) -> i64 {
    let c = &case.name;
    let context = fx.get(&format!("{c}/context"));
    let mut compared = 0;
    for &h in &case.horizons {
        tch::manual_seed(fx.manifest.seed);
        let drawn = tch::no_grad(|| draw(h.min(p.prediction_length())));
        let key = format!("{c}/sample_tokens/{h}");
        assert_ids_equal(&key, &drawn, fx.get(&key));
        compared += drawn.numel() as i64;

        tch::manual_seed(fx.manifest.seed);
        let samples = p
            .predict(context, Some(h), &case.sampling(), false)
            .unwrap();
        let key = format!("{c}/samples/{h}");
        assert_close(&key, &samples, fx.get(&key), rtol);

        tch::manual_seed(fx.manifest.seed);
        let q = p
            .predict_quantiles(context, Some(h), &case.levels, &case.sampling(), false)
            .unwrap();
        let key = format!("{c}/quantiles/{h}");
        assert_close(&key, &q.quantiles, fx.get(&key), rtol);
        let key = format!("{c}/mean/{h}");
        assert_close(&key, &q.mean, fx.get(&key), rtol);
    }
    compared
}
