//! KernelSynth: the kernel bank and compositions against scikit-learn (fixtures written by
//! `fixtures/kernel_synth.py`), the per-series random streams, the sampler's statistics, and
//! reproducible parallel generation.

use std::collections::BTreeMap;
use std::path::PathBuf;

use chrono::NaiveDate;
use serde::Deserialize;
use tch::Tensor;

use chronos::data::{read_gluonts, IpcCompression, IpcFormat};
use chronos::kernel_synth::{
    kernel_bank, linspace, sample_mvn, Composition, Kernel, KernelSynth, KernelSynthError, Op,
    SampleMethod, SeriesRng, WriteOptions,
};

fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("fixtures/kernel_synth")
}

#[derive(Deserialize)]
struct Manifest {
    grids: Vec<Grid>,
}

#[derive(Deserialize)]
struct Grid {
    length: usize,
    bank: Vec<BankEntry>,
    compositions: Vec<CompositionEntry>,
}

#[derive(Deserialize)]
struct BankEntry {
    kernel: String,
    params: BTreeMap<String, f64>,
}

#[derive(Deserialize)]
struct CompositionEntry {
    kernels: Vec<usize>,
    ops: Vec<String>,
}

/// scikit-learn's class name and `get_params()` (bounds left out) of a kernel.
fn sklearn_params(k: &Kernel) -> (&'static str, BTreeMap<String, f64>) {
    let p = |items: &[(&str, f64)]| {
        items
            .iter()
            .map(|(name, v)| (name.to_string(), *v))
            .collect()
    };
    match *k {
        Kernel::ExpSineSquared {
            length_scale,
            periodicity,
        } => (
            "ExpSineSquared",
            p(&[("length_scale", length_scale), ("periodicity", periodicity)]),
        ),
        Kernel::DotProduct { sigma_0 } => ("DotProduct", p(&[("sigma_0", sigma_0)])),
        Kernel::Rbf { length_scale } => ("RBF", p(&[("length_scale", length_scale)])),
        Kernel::RationalQuadratic {
            length_scale,
            alpha,
        } => (
            "RationalQuadratic",
            p(&[("alpha", alpha), ("length_scale", length_scale)]),
        ),
        Kernel::White { noise_level } => ("WhiteKernel", p(&[("noise_level", noise_level)])),
        Kernel::Constant { constant_value } => {
            ("ConstantKernel", p(&[("constant_value", constant_value)]))
        }
    }
}

/// `matrix` (row-major `(n, n)`) at the rows and columns `indices`.
fn submatrix(matrix: &[f64], n: usize, indices: &[usize]) -> Vec<f64> {
    indices
        .iter()
        .flat_map(|&i| indices.iter().map(move |&j| matrix[i * n + j]))
        .collect()
}

/// Largest `|a - b| / (1 + |b|)`.
fn worst_error(actual: &[f64], expected: &[f64]) -> f64 {
    assert_eq!(actual.len(), expected.len());
    actual
        .iter()
        .zip(expected)
        .map(|(a, b)| (a - b).abs() / (1.0 + b.abs()))
        .fold(0.0, f64::max)
}

#[test]
fn bank_and_compositions_match_scikit_learn() {
    let text = std::fs::read_to_string(fixtures().join("kernels.json")).unwrap();
    let manifest: Manifest = serde_json::from_str(&text).unwrap();
    let tensors: BTreeMap<String, Tensor> =
        Tensor::read_safetensors(fixtures().join("kernels.safetensors"))
            .unwrap()
            .into_iter()
            .collect();
    let get = |name: &str| -> Vec<f64> {
        let t = tensors.get(name).unwrap_or_else(|| panic!("no {name}"));
        Vec::<f64>::try_from(t.flatten(0, -1)).unwrap()
    };
    assert_eq!(manifest.grids.len(), 2);
    for grid in &manifest.grids {
        let n = grid.length;
        let prefix = format!("L{n}");
        let indices: Vec<usize> = Vec::<i64>::try_from(&tensors[&format!("{prefix}/indices")])
            .unwrap()
            .into_iter()
            .map(|i| i as usize)
            .collect();
        let x = linspace(n);
        let expected_x = get(&format!("{prefix}/x"));
        for (k, &i) in indices.iter().enumerate() {
            assert_eq!(
                x[i].to_bits(),
                expected_x[k].to_bits(),
                "linspace({n})[{i}]"
            );
        }

        let bank = kernel_bank(n);
        assert_eq!(bank.len(), grid.bank.len(), "bank size");
        let mut worst = 0.0f64;
        for (i, (kernel, entry)) in bank.iter().zip(&grid.bank).enumerate() {
            let (name, params) = sklearn_params(kernel);
            assert_eq!(name, entry.kernel, "L={n} bank[{i}]");
            assert_eq!(params.len(), entry.params.len(), "L={n} bank[{i}] params");
            for (key, value) in &params {
                let expected = entry.params[key];
                assert!(
                    (value - expected).abs() <= 1e-15 * expected.abs(),
                    "L={n} bank[{i}].{key} = {value}, scikit-learn {expected}"
                );
            }
            let single = Composition {
                first: *kernel,
                rest: Vec::new(),
            };
            let actual = submatrix(&single.matrix(&x), n, &indices);
            let err = worst_error(&actual, &get(&format!("{prefix}/bank/{i}")));
            assert!(err <= 1e-12, "L={n} bank[{i}] {kernel}: error {err:.3e}");
            worst = worst.max(err);
        }
        assert_eq!(grid.compositions.len(), 5);
        for (c, entry) in grid.compositions.iter().enumerate() {
            let ops = entry.ops.iter().map(|op| match op.as_str() {
                "+" => Op::Add,
                "*" => Op::Mul,
                other => panic!("unknown op {other}"),
            });
            let composition = Composition {
                first: bank[entry.kernels[0]],
                rest: ops
                    .zip(entry.kernels[1..].iter().map(|&i| bank[i]))
                    .collect(),
            };
            let actual = submatrix(&composition.matrix(&x), n, &indices);
            let err = worst_error(&actual, &get(&format!("{prefix}/composition/{c}")));
            assert!(
                err <= 1e-12,
                "L={n} composition {c} ({composition}): {err:.3e}"
            );
            worst = worst.max(err);
        }
        println!("L={n}: worst |rust - sklearn| / (1 + |sklearn|) = {worst:.2e}");
    }
}

#[test]
fn composition_display_shows_the_left_fold() {
    let c = Composition {
        first: Kernel::Rbf { length_scale: 0.1 },
        rest: vec![
            (Op::Add, Kernel::White { noise_level: 1.0 }),
            (
                Op::Mul,
                Kernel::ExpSineSquared {
                    length_scale: 1.0,
                    periodicity: 0.25,
                },
            ),
        ],
    };
    assert_eq!(c.num_kernels(), 3);
    assert_eq!(
        c.to_string(),
        "(RBF(length_scale=0.1) + WhiteKernel(noise_level=1)) * \
         ExpSineSquared(length_scale=1, periodicity=0.25)"
    );
}

#[test]
fn series_streams_are_reproducible_and_distinct() {
    let draw = |seed, index| {
        let mut rng = SeriesRng::new(seed, index);
        (0..8).map(|_| rng.next_u64()).collect::<Vec<_>>()
    };
    assert_eq!(draw(3, 17), draw(3, 17));
    assert_ne!(draw(3, 17), draw(3, 18));
    assert_ne!(draw(3, 17), draw(4, 17));
    // Index 0 of seed 0 is not a degenerate all-zero state.
    assert!(draw(0, 0).iter().all(|&v| v != 0));
}

#[test]
fn normals_and_integers_have_the_right_distribution() {
    let n = 200_000;
    let mut rng = SeriesRng::new(11, 0);
    let mut z = vec![0.0; n + 1]; // odd length: the last pair is cut
    rng.fill_standard_normal(&mut z);
    let mean = z.iter().sum::<f64>() / z.len() as f64;
    let var = z.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / z.len() as f64;
    let within_one = z.iter().filter(|v| v.abs() < 1.0).count() as f64 / z.len() as f64;
    let nf = n as f64;
    assert!(mean.abs() < 5.0 / nf.sqrt(), "mean {mean}");
    assert!(
        (var - 1.0).abs() < 5.0 * (2.0 / nf).sqrt(),
        "variance {var}"
    );
    let p = 0.682_689_492;
    assert!(
        (within_one - p).abs() < 5.0 * (p * (1.0 - p) / nf).sqrt(),
        "P(|z| < 1) = {within_one}"
    );

    let mut counts = [0u64; 33];
    for _ in 0..330_000 {
        counts[rng.below(33) as usize] += 1;
    }
    for (i, c) in counts.iter().enumerate() {
        assert!(
            (*c as f64 - 10_000.0).abs() < 500.0,
            "below(33) = {i}: {c} times"
        );
    }
    assert_eq!(rng.below(0), 0);
}

#[test]
fn compositions_are_drawn_as_upstream() {
    let synth = KernelSynth::new(1024, 5, 7).unwrap();
    let bank = synth.bank();
    let draws = 20_000u64;
    let mut sizes = [0u64; 6];
    let (mut muls, mut joins) = (0u64, 0u64);
    let mut picked: Vec<Kernel> = Vec::new();
    for i in 0..draws {
        let c = synth.random_composition(&mut SeriesRng::new(7, i));
        sizes[c.num_kernels()] += 1;
        joins += c.rest.len() as u64;
        muls += c.rest.iter().filter(|(op, _)| *op == Op::Mul).count() as u64;
        picked.push(c.first);
        picked.extend(c.rest.iter().map(|(_, k)| *k));
    }
    assert_eq!(sizes[0], 0);
    for (k, &count) in sizes.iter().enumerate().skip(1) {
        let expected = draws as f64 / 5.0;
        let sd = (expected * 0.8).sqrt();
        assert!(
            (count as f64 - expected).abs() < 5.0 * sd,
            "{k} kernels: {count}"
        );
    }
    let share = muls as f64 / joins as f64;
    assert!(
        (share - 0.5).abs() < 5.0 * (0.25 / joins as f64).sqrt(),
        "share of *: {share}"
    );
    // Uniform over the 33 entries: a kernel listed m times (ExpSineSquared(4/L) thrice) is drawn
    // m times as often.
    let total = picked.len() as f64;
    for kernel in bank {
        let multiplicity = bank.iter().filter(|k| *k == kernel).count() as f64;
        let count = picked.iter().filter(|k| *k == kernel).count() as f64;
        let p = multiplicity / bank.len() as f64;
        let sd = (total * p * (1.0 - p)).sqrt();
        assert!(
            (count - total * p).abs() < 5.0 * sd,
            "{kernel}: {count} of {total}"
        );
    }
}

/// Draws `m` samples of `N(0, cov)` and checks every entry of the sample covariance (the mean is
/// known to be 0) against `expected` within 5 standard errors, `sqrt((K_ij² + K_ii K_jj) / m)`.
/// Returns the methods used and the largest deviation in standard errors.
fn check_sample_covariance(
    cov: &[f64],
    expected: &[f64],
    n: usize,
    m: usize,
    seed: u64,
) -> (Vec<SampleMethod>, f64) {
    let mut sums = vec![0.0; n * n];
    let mut methods = Vec::new();
    let mut z = vec![0.0; n];
    for s in 0..m {
        SeriesRng::new(seed, s as u64).fill_standard_normal(&mut z);
        let draw = sample_mvn(cov, &z).unwrap().expect("finite draw");
        if !methods.contains(&draw.method) {
            methods.push(draw.method);
        }
        for i in 0..n {
            for j in 0..n {
                sums[i * n + j] += draw.values[i] * draw.values[j];
            }
        }
    }
    let mut worst = 0.0f64;
    for i in 0..n {
        for j in 0..n {
            let k = |a: usize, b: usize| expected[a * n + b];
            let se = ((k(i, j).powi(2) + k(i, i) * k(j, j)) / m as f64).sqrt();
            let deviation = (sums[i * n + j] / m as f64 - k(i, j)).abs() / se;
            assert!(
                deviation < 5.0,
                "entry ({i}, {j}): {deviation:.2} standard errors"
            );
            worst = worst.max(deviation);
        }
    }
    (methods, worst)
}

#[test]
fn sample_covariance_matches_the_kernel_matrix() {
    let n = 16;
    let x = linspace(n);
    // Positive definite: sampled by Cholesky with the smallest jitter.
    let smooth = Composition {
        first: Kernel::Rbf { length_scale: 0.1 },
        rest: vec![(Op::Add, Kernel::White { noise_level: 0.1 })],
    };
    let k = smooth.matrix(&x);
    let (methods, worst) = check_sample_covariance(&k, &k, n, 20_000, 1);
    assert_eq!(methods, vec![SampleMethod::Cholesky { level: 0 }]);
    println!("RBF + White: worst deviation {worst:.2} standard errors");

    // Singular (a periodic kernel of period 4 steps has rank 3 here): still sampled by Cholesky
    // thanks to the jitter, with the kernel's covariance.
    let periodic = Composition {
        first: Kernel::DotProduct { sigma_0: 1.0 },
        rest: vec![(
            Op::Mul,
            Kernel::ExpSineSquared {
                length_scale: 1.0,
                periodicity: 4.0 / (n - 1) as f64,
            },
        )],
    };
    let k = periodic.matrix(&x);
    let (methods, worst) = check_sample_covariance(&k, &k, n, 20_000, 2);
    assert!(
        methods
            .iter()
            .all(|m| matches!(m, SampleMethod::Cholesky { .. })),
        "{methods:?}"
    );
    println!("DotProduct * ExpSineSquared: worst deviation {worst:.2} standard errors");
}

#[test]
fn jitter_grows_until_the_cholesky_factorisation_succeeds() {
    // Eigenvalues 2 + d and -d: needs a jitter above d = 5e-9 (mean variance 1), so 1e-8.
    let d = 5e-9;
    let cov = [1.0, 1.0 + d, 1.0 + d, 1.0];
    let draw = sample_mvn(&cov, &[0.3, -0.7]).unwrap().unwrap();
    assert_eq!(draw.method, SampleMethod::Cholesky { level: 1 });
    // L = [[a, 0], [b, c]]: the first value is a z0 with a = sqrt(1 + 1e-8).
    assert!((draw.values[0] - 0.3 * (1.0 + 1e-8f64).sqrt()).abs() < 1e-15);
    assert!((draw.values[1] - 0.3).abs() < 1e-3);
}

#[test]
fn indefinite_matrices_fall_back_to_the_eigendecomposition() {
    // Eigenvalues 3 and -1 (eigenvectors (1, 1) and (1, -1)): no jitter helps; the draw has the
    // covariance of the clamped decomposition, 1.5 everywhere.
    let cov = [1.0, 2.0, 2.0, 1.0];
    let (methods, worst) = check_sample_covariance(&cov, &[1.5; 4], 2, 20_000, 3);
    assert_eq!(methods, vec![SampleMethod::Eigh]);
    println!("indefinite: worst deviation {worst:.2} standard errors");
}

#[test]
fn composite_draws_have_the_expected_variance() {
    let n = 64;
    let synth = KernelSynth::new(n, 5, 0).unwrap();
    // Var x_i = (1 + x_i²) * 1 + 1.
    let composition = Composition {
        first: Kernel::DotProduct { sigma_0: 1.0 },
        rest: vec![
            (Op::Mul, Kernel::Rbf { length_scale: 0.1 }),
            (Op::Add, Kernel::White { noise_level: 1.0 }),
        ],
    };
    let m = 5_000;
    let mut sum_sq = vec![0.0; n];
    for s in 0..m {
        let draw = synth
            .sample(&composition, &mut SeriesRng::new(9, s))
            .unwrap()
            .unwrap();
        for (acc, v) in sum_sq.iter_mut().zip(&draw.values) {
            *acc += v * v;
        }
    }
    for (i, (acc, x)) in sum_sq.iter().zip(synth.grid()).enumerate() {
        let expected = 2.0 + x * x;
        let variance = acc / m as f64;
        let se = expected * (2.0 / m as f64).sqrt();
        assert!(
            (variance - expected).abs() < 5.0 * se,
            "point {i}: variance {variance}, expected {expected}"
        );
    }
}

#[test]
fn sampler_rejects_bad_input() {
    assert!(matches!(
        sample_mvn(&[1.0, 0.0, 0.0], &[0.5, 0.5]),
        Err(KernelSynthError::InvalidInput(_))
    ));
    assert_eq!(
        sample_mvn(&[1.0, f64::NAN, f64::NAN, 1.0], &[0.5, 0.5]).unwrap(),
        None
    );
    let empty = sample_mvn(&[], &[]).unwrap().unwrap();
    assert!(empty.values.is_empty());
}

#[test]
fn settings_are_validated() {
    for (length, max_kernels) in [(1, 5), (0, 5), (100_000, 5), (1024, 0), (1024, usize::MAX)] {
        let result = KernelSynth::new(length, max_kernels, 0);
        assert!(
            matches!(result, Err(KernelSynthError::InvalidInput(_))),
            "length {length}, max_kernels {max_kernels}"
        );
    }
}

#[test]
fn full_length_series_are_finite() {
    let synth = KernelSynth::new(1024, 5, 2024).unwrap();
    for i in 0..48 {
        let s = synth.series(i).unwrap();
        assert_eq!(s.target.len(), 1024);
        assert!(s.target.iter().all(|v| v.is_finite()), "series {i}");
        let mean = s.target.iter().sum::<f64>() / 1024.0;
        let spread = s
            .target
            .iter()
            .map(|v| (v - mean).abs())
            .fold(0.0, f64::max);
        assert!(spread > 0.0, "series {i} ({}) is constant", s.composition);
        assert!((1..=5).contains(&s.composition.num_kernels()));
    }
}

#[test]
fn datasets_are_reproducible_whatever_the_thread_count() {
    let synth = KernelSynth::new(64, 5, 42).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let start = NaiveDate::from_ymd_opt(2001, 2, 3)
        .unwrap()
        .and_hms_opt(4, 5, 6)
        .unwrap();
    let write = |threads: usize| {
        let path = dir.path().join(format!("synth-{threads}.arrow"));
        let options = WriteOptions {
            start,
            batch_size: 7,
            threads,
            kernel_column: true,
            compression: IpcCompression::Lz4,
            format: IpcFormat::File,
        };
        let done = std::sync::atomic::AtomicU64::new(0);
        let summary = synth
            .write_dataset(&path, 30, &options, &|k| {
                done.fetch_add(k, std::sync::atomic::Ordering::Relaxed);
            })
            .unwrap();
        assert_eq!(done.into_inner(), 30);
        assert_eq!(summary.series, 30);
        assert_eq!(summary.cholesky.iter().sum::<u64>() + summary.eigh, 30);
        (path, summary)
    };
    let (one, summary_one) = write(1);
    let (two, summary_two) = write(2);
    assert_eq!(summary_one, summary_two);
    assert_eq!(std::fs::read(&one).unwrap(), std::fs::read(&two).unwrap());

    let entries = read_gluonts(&one).unwrap();
    assert_eq!(entries.len(), 30);
    for (i, e) in entries.iter().enumerate() {
        assert_eq!(e.start, start);
        assert_eq!(e.target.len(), 64);
        assert!(e.target.iter().all(|v| v.is_finite()));
        if i % 10 == 3 {
            assert_eq!(
                e.target,
                synth.series(i as u64).unwrap().target,
                "series {i}"
            );
        }
    }
    assert_ne!(entries[0].target, entries[1].target);
}

#[test]
fn write_options_are_validated() {
    let synth = KernelSynth::new(16, 2, 0).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let options = WriteOptions {
        start: NaiveDate::from_ymd_opt(2000, 1, 1)
            .unwrap()
            .and_hms_opt(0, 0, 0)
            .unwrap(),
        batch_size: 0,
        threads: 1,
        kernel_column: false,
        compression: IpcCompression::None,
        format: IpcFormat::File,
    };
    let result = synth.write_dataset(&dir.path().join("x.arrow"), 3, &options, &|_| {});
    assert!(matches!(result, Err(KernelSynthError::InvalidInput(_))));
}
