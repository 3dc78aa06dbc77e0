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
    #[arg(long)]
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
