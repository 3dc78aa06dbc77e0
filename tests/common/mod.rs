//! Helpers shared by the integration tests: fixture paths and the element-wise tolerance check.

#![allow(dead_code)]

use std::path::PathBuf;

use tch::Tensor;

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
