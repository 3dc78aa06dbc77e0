//! The KernelSynth kernel bank with scikit-learn's kernel formulas, random compositions of it
//! (upstream `KERNEL_BANK`, `random_binary_map`), and their covariance matrices over the grid
//! `linspace(0, 1, n)`.

use std::fmt;

use super::rng::SeriesRng;

/// Periods, in time steps, of upstream's 21 `ExpSineSquared` kernels (`periodicity = p / length`),
/// in its order, repeats included (they weight the draw as upstream's list does).
const PERIODS: [f64; 21] = [
    24.0,       // hourly: daily
    48.0,       // half-hourly: daily
    96.0,       // quarter-hourly: daily
    24.0 * 7.0, // hourly: weekly
    48.0 * 7.0, // half-hourly: weekly
    96.0 * 7.0, // quarter-hourly: weekly
    7.0,        // daily: weekly
    14.0,       // half-daily: weekly
    30.0,       // daily: monthly
    60.0,       // half-daily: monthly
    365.0,      // daily: yearly
    730.0,      // half-daily: yearly
    4.0,        // weekly: monthly
    26.0,       // weekly: half-yearly
    52.0,       // weekly: yearly
    4.0,        // monthly: 4 months
    6.0,        // monthly: half-yearly
    12.0,       // monthly: yearly
    4.0,        // quarterly: yearly
    40.0,       // quarterly: 10 years
    10.0,       // yearly: decade
];

/// A covariance function, with scikit-learn's definition; `d = |x - y|`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Kernel {
    /// `exp(-2 sin²(π d / periodicity) / length_scale²)`.
    ExpSineSquared { length_scale: f64, periodicity: f64 },
    /// `sigma_0² + x y`.
    DotProduct { sigma_0: f64 },
    /// `exp(-d² / (2 length_scale²))` (scikit-learn's `RBF`).
    Rbf { length_scale: f64 },
    /// `(1 + d² / (2 alpha length_scale²))^(-alpha)`.
    RationalQuadratic { length_scale: f64, alpha: f64 },
    /// `noise_level` on the diagonal of `k(X, X)`, 0 elsewhere (scikit-learn's `WhiteKernel`).
    White { noise_level: f64 },
    /// `constant_value` everywhere (scikit-learn's `ConstantKernel`).
    Constant { constant_value: f64 },
}

/// Upstream's `KERNEL_BANK` for series of `length` points, in its order: 21 `ExpSineSquared`
/// (`PERIODS / length`, `length_scale` 1), `DotProduct` with `sigma_0` 0, 1, 10, `RBF` with
/// `length_scale` 0.1, 1, 10, `RationalQuadratic` with `alpha` 0.1, 1, 10 (`length_scale` 1),
/// `WhiteKernel` with `noise_level` 0.1, 1, and `ConstantKernel` 1: 33 kernels.
pub fn kernel_bank(length: usize) -> Vec<Kernel> {
    let length = length as f64;
    let periodic = PERIODS.iter().map(|p| Kernel::ExpSineSquared {
        length_scale: 1.0,
        periodicity: p / length,
    });
    let others = [
        Kernel::DotProduct { sigma_0: 0.0 },
        Kernel::DotProduct { sigma_0: 1.0 },
        Kernel::DotProduct { sigma_0: 10.0 },
        Kernel::Rbf { length_scale: 0.1 },
        Kernel::Rbf { length_scale: 1.0 },
        Kernel::Rbf { length_scale: 10.0 },
        Kernel::RationalQuadratic {
            length_scale: 1.0,
            alpha: 0.1,
        },
        Kernel::RationalQuadratic {
            length_scale: 1.0,
            alpha: 1.0,
        },
        Kernel::RationalQuadratic {
            length_scale: 1.0,
            alpha: 10.0,
        },
        Kernel::White { noise_level: 0.1 },
        Kernel::White { noise_level: 1.0 },
        Kernel::Constant {
            constant_value: 1.0,
        },
    ];
    periodic.chain(others).collect()
}

/// numpy's `linspace(0, 1, n)`: `i * (1 / (n - 1))`, the last point exactly 1.
pub fn linspace(n: usize) -> Vec<f64> {
    let step = 1.0 / n.saturating_sub(1).max(1) as f64;
    let mut x: Vec<f64> = (0..n).map(|i| i as f64 * step).collect();
    if n > 1 {
        x[n - 1] = 1.0;
    }
    x
}

impl Kernel {
    /// Precomputes what filling rows over `grid` (`linspace(0, 1, n)`) needs. Stationary kernels
    /// are evaluated once per lag `m`, at distance `grid[m]`, as scikit-learn's formulas.
    fn rows<'g>(&self, grid: &'g [f64]) -> KernelRows<'g> {
        let lags =
            |k: &dyn Fn(f64) -> f64| KernelRows::Toeplitz(grid.iter().map(|&d| k(d)).collect());
        match *self {
            Kernel::ExpSineSquared {
                length_scale,
                periodicity,
            } => lags(&|d| {
                let s = (std::f64::consts::PI * d / periodicity).sin() / length_scale;
                (-2.0 * s * s).exp()
            }),
            Kernel::Rbf { length_scale } => lags(&|d| {
                let r = d / length_scale;
                (-0.5 * r * r).exp()
            }),
            Kernel::RationalQuadratic {
                length_scale,
                alpha,
            } => {
                lags(&|d| (1.0 + d * d / (2.0 * alpha * length_scale * length_scale)).powf(-alpha))
            }
            Kernel::DotProduct { sigma_0 } => KernelRows::Dot {
                grid,
                offset: sigma_0 * sigma_0,
            },
            Kernel::White { noise_level } => KernelRows::Diagonal(noise_level),
            Kernel::Constant { constant_value } => KernelRows::Constant(constant_value),
        }
    }
}

impl fmt::Display for Kernel {
    /// scikit-learn's class and parameter names, values at full precision.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Kernel::ExpSineSquared {
                length_scale,
                periodicity,
            } => write!(
                f,
                "ExpSineSquared(length_scale={length_scale}, periodicity={periodicity})"
            ),
            Kernel::DotProduct { sigma_0 } => write!(f, "DotProduct(sigma_0={sigma_0})"),
            Kernel::Rbf { length_scale } => write!(f, "RBF(length_scale={length_scale})"),
            Kernel::RationalQuadratic {
                length_scale,
                alpha,
            } => write!(
                f,
                "RationalQuadratic(alpha={alpha}, length_scale={length_scale})"
            ),
            Kernel::White { noise_level } => write!(f, "WhiteKernel(noise_level={noise_level})"),
            Kernel::Constant { constant_value } => {
                write!(f, "ConstantKernel(constant_value={constant_value})")
            }
        }
    }
}

/// Row-by-row evaluation of one kernel over the grid.
enum KernelRows<'g> {
    /// Stationary: entry `(i, j)` is `lags[|i - j|]`.
    Toeplitz(Vec<f64>),
    Dot {
        grid: &'g [f64],
        offset: f64,
    },
    Diagonal(f64),
    Constant(f64),
}

impl KernelRows<'_> {
    /// Writes row `i` into `row` (length n).
    fn fill(&self, i: usize, row: &mut [f64]) {
        match self {
            KernelRows::Toeplitz(lags) => {
                let (before, after) = row.split_at_mut(i);
                for (r, v) in before.iter_mut().zip(lags[1..=i].iter().rev()) {
                    *r = *v;
                }
                after.copy_from_slice(&lags[..after.len()]);
            }
            KernelRows::Dot { grid, offset } => {
                let xi = grid[i];
                for (r, xj) in row.iter_mut().zip(grid.iter()) {
                    *r = xi * xj + offset;
                }
            }
            KernelRows::Diagonal(noise) => {
                row.fill(0.0);
                row[i] = *noise;
            }
            KernelRows::Constant(c) => row.fill(*c),
        }
    }
}

/// How two kernels combine: `a + b` or `a * b` (upstream picks either with probability 1/2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Add,
    Mul,
}

impl Op {
    /// `acc[j] = acc[j] op row[j]`.
    fn combine(self, acc: &mut [f64], row: &[f64]) {
        match self {
            Op::Add => acc.iter_mut().zip(row).for_each(|(a, r)| *a += r),
            Op::Mul => acc.iter_mut().zip(row).for_each(|(a, r)| *a *= r),
        }
    }
}

/// A kernel composition folded from the left, as upstream's `functools.reduce`:
/// `((first op₁ k₁) op₂ k₂) ...`.
#[derive(Debug, Clone, PartialEq)]
pub struct Composition {
    pub first: Kernel,
    pub rest: Vec<(Op, Kernel)>,
}

impl Composition {
    /// Upstream's draw: `1..=max_kernels` kernels (uniform count), each uniformly from `bank`
    /// (not empty) with replacement, then one fair `+`/`*` per join.
    pub(super) fn random(bank: &[Kernel], max_kernels: usize, rng: &mut SeriesRng) -> Self {
        let count = 1 + rng.below(max_kernels as u64) as usize;
        let mut pick = || bank[rng.below(bank.len() as u64) as usize];
        let kernels: Vec<Kernel> = (0..count).map(|_| pick()).collect();
        let rest = kernels[1..]
            .iter()
            .map(|k| (if rng.coin() { Op::Mul } else { Op::Add }, *k))
            .collect();
        Composition {
            first: kernels[0],
            rest,
        }
    }

    /// Number of kernels.
    pub fn num_kernels(&self) -> usize {
        1 + self.rest.len()
    }

    /// The covariance matrix `k(X, X)` over `grid` (which must be `linspace(0, 1, n)`: stationary
    /// kernels are evaluated once per lag), row-major `(n, n)`, symmetric.
    pub fn matrix(&self, grid: &[f64]) -> Vec<f64> {
        let n = grid.len();
        let first = self.first.rows(grid);
        let rest: Vec<(Op, KernelRows)> = self
            .rest
            .iter()
            .map(|(op, k)| (*op, k.rows(grid)))
            .collect();
        let mut out = vec![0.0; n * n];
        let mut scratch = vec![0.0; n];
        for (i, acc) in out.chunks_exact_mut(n.max(1)).enumerate() {
            first.fill(i, acc);
            for (op, rows) in &rest {
                rows.fill(i, &mut scratch);
                op.combine(acc, &scratch);
            }
        }
        out
    }
}

impl fmt::Display for Composition {
    /// Left fold with explicit parentheses: `(A + B) * C`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut text = self.first.to_string();
        for (i, (op, k)) in self.rest.iter().enumerate() {
            let sym = match op {
                Op::Add => '+',
                Op::Mul => '*',
            };
            text = match i {
                0 => format!("{text} {sym} {k}"),
                _ => format!("({text}) {sym} {k}"),
            };
        }
        f.write_str(&text)
    }
}
