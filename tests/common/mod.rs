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
