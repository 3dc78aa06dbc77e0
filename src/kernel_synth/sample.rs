//! Drawing from a zero-mean multivariate normal `N(0, K)` through libtorch's linalg: `L z` with
//! `K + jitter I = L Lᵀ` (Cholesky), or `V sqrt(max(λ, 0)) z` with `K = V diag(λ) Vᵀ` when no
//! jitter makes `K` positive definite.

use tch::{Kind, Tensor};

use super::KernelSynthError;

/// Diagonal jitters tried in turn, relative to the mean of `diag(K)`. Most kernel matrices of the
/// bank are singular in floating point (periodic, `RBF(10)`, `DotProduct(0)`), so the first
/// attempt already adds `1e-10` of the mean variance: noise with a standard deviation of `1e-5`
/// of the series' scale.
pub const JITTERS: [f64; 3] = [1e-10, 1e-8, 1e-6];

/// How a draw was computed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SampleMethod {
    /// Cholesky factor of `K + JITTERS[level] * mean(diag K) * I`.
    Cholesky { level: usize },
    /// Eigendecomposition of `K`, negative eigenvalues clamped to 0.
    Eigh,
}

/// One draw and how it was made.
#[derive(Debug, Clone, PartialEq)]
pub struct Draw {
    pub values: Vec<f64>,
    pub method: SampleMethod,
}

/// Draws `N(0, K)` for the row-major `(n, n)` symmetric `cov` (only its lower triangle is read)
/// from `n` standard normals. `Ok(None)` when `cov` has a non-finite entry or the draw is not
/// finite (the caller draws another kernel, as upstream retries on a linear-algebra error).
/// Single-threaded when libtorch is (the caller's `tch::set_num_threads`).
pub fn sample_mvn(cov: &[f64], normals: &[f64]) -> Result<Option<Draw>, KernelSynthError> {
    let n = normals.len();
    if cov.len() != n * n {
        return Err(KernelSynthError::InvalidInput(format!(
            "covariance has {} entries, expected {n}² for {n} normals",
            cov.len()
        )));
    }
    if n == 0 {
        return Ok(Some(Draw {
            values: Vec::new(),
            method: SampleMethod::Cholesky { level: 0 },
        }));
    }
    if !cov.iter().all(|v| v.is_finite()) {
        return Ok(None);
    }
    let mean_variance = (0..n).map(|i| cov[i * n + i]).sum::<f64>() / n as f64;
    let scale = if mean_variance > 0.0 {
        mean_variance
    } else {
        1.0
    };
    let size = [n as i64, n as i64];
    let z = Tensor::from_slice(normals);
    let k = Tensor::from_slice(cov).view(size);
    let mut diagonal = k.diagonal(0, 0, 1);
    let mut added = 0.0;
    for (level, jitter) in JITTERS.iter().enumerate() {
        diagonal += jitter * scale - added;
        added = jitter * scale;
        let (l, info) = k.f_linalg_cholesky_ex(false, false)?;
        if info.int64_value(&[]) == 0 {
            return finite(l.f_mv(&z)?, SampleMethod::Cholesky { level });
        }
    }
    let (eigenvalues, eigenvectors) = Tensor::from_slice(cov).view(size).f_linalg_eigh("L")?;
    let scaled = eigenvalues.clamp_min(0.0).sqrt() * z;
    finite(eigenvectors.f_mv(&scaled)?, SampleMethod::Eigh)
}

fn finite(values: Tensor, method: SampleMethod) -> Result<Option<Draw>, KernelSynthError> {
    let values = Vec::<f64>::try_from(values.to_kind(Kind::Double))?;
    Ok(values
        .iter()
        .all(|v| v.is_finite())
        .then_some(Draw { values, method }))
}
