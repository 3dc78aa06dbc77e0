//! Where and how a model runs: compute dtype, device and CPU threads, shared by the binaries'
//! command lines (`#[command(flatten)]`).

use tch::Device;

use crate::error::{ChronosError, Result};
use crate::pipeline::{parse_device, Dtype};

/// `--dtype`, `--device`, `--threads`.
#[derive(Debug, Clone, clap::Args)]
pub struct Runtime {
    /// Compute dtype: f32 or bf16 (independent of the checkpoint's storage dtype).
    #[arg(long, default_value = "f32")]
    pub dtype: String,
    /// cpu, cuda or cuda:N.
    #[arg(long, default_value = "cpu")]
    pub device: String,
    /// CPU threads for libtorch (default: libtorch's choice, one per core).
    #[arg(long, value_parser = crate::cli::positive::<i32>)]
    pub threads: Option<i32>,
}

impl Runtime {
    /// Validates the options, applies the thread count, and returns the dtype and device.
    pub fn apply(&self) -> Result<(Dtype, Device)> {
        if let Some(threads) = self.threads {
            if threads < 1 {
                return Err(ChronosError::InvalidInput(format!(
                    "--threads must be at least 1, got {threads}"
                )));
            }
            tch::set_num_threads(threads);
        }
        Ok((self.dtype.parse()?, parse_device(&self.device)?))
    }
}

/// Memory the system can give this process now (Linux `MemAvailable`), in bytes.
pub fn available_memory() -> Option<u64> {
    let info = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = info.lines().find(|l| l.starts_with("MemAvailable:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

/// Refuses `value` units of `flag` when they would need more memory than is available, at
/// `per_unit` bytes each (an estimate): the error names the flag, the value, the estimate and
/// the largest value that fits. Passes when the available memory is unknown.
pub fn check_fits(flag: &str, value: i64, per_unit: u64) -> Result<()> {
    let Some(available) = available_memory() else {
        return Ok(());
    };
    let need = (value.max(0) as u128) * u128::from(per_unit.max(1));
    if need <= u128::from(available) {
        return Ok(());
    }
    let gb = |b: u128| b as f64 / 1e9;
    Err(ChronosError::InvalidInput(format!(
        "{flag} {value} needs about {:.1} GB for its forecasts, more than the {:.1} GB of memory available; at most {} fits",
        gb(need),
        gb(u128::from(available)),
        available / per_unit.max(1)
    )))
}

/// Makes glibc's malloc keep freed memory for reuse instead of handing it back to the system.
///
/// libtorch's CPU allocator is plain `malloc`, and a training step frees and allocates again the
/// same large activations every step (T5-tiny at batch 8 and context 512: 32 MiB of attention
/// weights per layer, several times over). By default glibc serves each such block with a fresh
/// `mmap` and unmaps it when freed, so every step pays page faults and zeroing for all of them;
/// measured on 2 cores, a T5-tiny step went from 1.36 s to 1.13 s without that. Here blocks come
/// from the heap and freed memory stays mapped (up to 2 GiB at the top of the heap): peak memory
/// is unchanged, but memory is not returned between steps. No effect outside glibc.
pub fn reuse_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only changes allocator parameters; any value is accepted or refused.
    unsafe {
        libc::mallopt(libc::M_MMAP_MAX, 0);
        libc::mallopt(libc::M_TRIM_THRESHOLD, i32::MAX);
        libc::mallopt(libc::M_TOP_PAD, 64 << 20);
    }
}

extern "C" {
    fn chronos_threads_serial_ops();
}

/// Makes the libtorch CPU ops that the calling thread runs stay on that thread: for helper
/// threads (the training data pipeline) that use tensors beside a model running on libtorch's
/// thread pool. Other threads keep their thread count.
///
/// Without it, the first parallel op on such a thread starts a second OpenMP team of a core's
/// worth of threads. libgomp then counts more threads than cores and lets every waiting worker
/// spin only briefly before it sleeps, so each of the model's ops pays for waking its workers:
/// T5-tiny training (batch 8, context 512, 2 cores) ran 6-9% slower that way.
pub fn serial_tensor_ops() {
    // SAFETY: no arguments; it changes only the calling thread's OpenMP thread count.
    unsafe { chronos_threads_serial_ops() }
}
