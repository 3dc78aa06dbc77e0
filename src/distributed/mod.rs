//! Multi-process data-parallel training on libtorch's c10d (issue 7), with torch's distributed
//! semantics: a TCPStore rendezvous (rank 0 hosts it at `MASTER_ADDR:MASTER_PORT`), a process
//! group (`ProcessGroupGloo` for CPU tensors, `ProcessGroupNCCL` for CUDA ones) reached through
//! a small C++ shim (`csrc/`, compiled by `build.rs`), DDP-style gradient averaging over flat
//! buckets ([`DataParallel`]), and a torchrun-like launcher ([`launch`]).
//!
//! * [`WorldEnv`]: `RANK`, `LOCAL_RANK`, `WORLD_SIZE`, `MASTER_ADDR`, `MASTER_PORT`, as torchrun
//!   sets them (and [`launch`] does).
//! * [`ProcessGroup`]: allreduce (sum, mean), broadcast and barrier on tch tensors; C++
//!   exceptions come back as [`DistError::Collective`] naming the rank and the operation.
//! * [`DataParallel`]: parameters broadcast from rank 0, gradients averaged bucket by bucket,
//!   parameters checked identical across ranks on demand.
//! * [`launch`]: spawns N ranks of a program, prefixes their output, and when one fails stops
//!   the others and names it.

mod ddp;
mod env;
mod ffi;
mod group;
mod launch;

pub use ddp::{buckets, DataParallel, Distributed, DEFAULT_BUCKET_BYTES};
pub use env::WorldEnv;
pub use group::{ProcessGroup, ReduceOp};
pub use launch::{free_port, launch, strip_option, LaunchOptions};

/// Errors of distributed training.
#[derive(Debug, thiserror::Error)]
pub enum DistError {
    /// The torchrun environment variables are missing or malformed.
    #[error("distributed environment: {0}")]
    Env(String),
    #[error("{0}")]
    InvalidInput(String),
    #[error("not supported: {0}")]
    Unsupported(String),
    /// A c10d call failed (the C++ exception's message): a peer died, a timeout, a bad tensor.
    #[error("rank {rank} of {world_size}: {op} failed: {message}")]
    Collective {
        rank: usize,
        world_size: usize,
        op: &'static str,
        message: String,
    },
    /// Parameters that differ from rank 0's (`--check-sync`).
    #[error("parameters out of sync after step {step}: rank(s) {ranks:?} differ from rank 0{}",
        first.as_ref().map(|(name, diff)| format!(" (here: '{name}', max |diff| {diff:e})")).unwrap_or_default())]
    OutOfSync {
        step: usize,
        ranks: Vec<usize>,
        /// This rank's first differing parameter and its largest absolute difference.
        first: Option<(String, f64)>,
    },
    /// A rank of a launched job that failed (the first to).
    #[error("rank {rank} (pid {pid}) {status}")]
    RankFailed {
        rank: usize,
        pid: u32,
        status: String,
    },
    #[error("launcher: {0}")]
    Io(#[from] std::io::Error),
    #[error(transparent)]
    Torch(#[from] tch::TchError),
}

pub type Result<T, E = DistError> = std::result::Result<T, E>;
