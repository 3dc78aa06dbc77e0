//! `train`: trains Chronos-T5, Chronos-GPT2 or Chronos-Bolt from a YAML config (upstream
//! `scripts/training/train.py`'s options), into `output_dir/run-N/`.
//!
//! ```text
//! train --config configs/train/chronos-bolt-tiny.yaml --max-steps 1000
//! train --resume output/run-3          # continue a run from its last checkpoint
//! train --nproc 2 --config c.yaml      # data-parallel on 2 ranks (Gloo on CPU, NCCL on CUDA)
//! torchrun --nproc-per-node=2 --no-python target/release/train --config c.yaml   # ranks by torchrun
//! ```
//!
//! With `--nproc N` (before `--config`) this process is only a launcher: it runs N copies of
//! itself (without `--nproc`) as ranks 0..N with torchrun's environment (`RANK`, `LOCAL_RANK`,
//! `WORLD_SIZE`, `MASTER_ADDR`, `MASTER_PORT`), each on `cuda:LOCAL_RANK` when there are GPUs
//! (or with `--device cuda`), else on the CPU with an even share of the cores (`--threads`),
//! prefixes their output with `[rank r]`, and when one fails stops the others and fails naming
//! it. A process started with that environment (by this launcher or by torchrun) trains as that
//! rank; with `--device cuda` on `cuda:LOCAL_RANK`.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use clap::Parser;

use chronos::distributed::{self, Distributed, LaunchOptions, ProcessGroup, WorldEnv};
use chronos::pipeline::Dtype;
use chronos::runtime::Runtime;
use chronos::train::config::ConfigArgs;
use chronos::train::run::{self, RunOptions};

#[derive(Parser, Debug)]
#[command(
    version,
    allow_negative_numbers = true,
    about = "Train a Chronos model (upstream train.py's config keys)"
)]
struct Args {
    #[command(flatten)]
    runtime: Runtime,
    /// Continue a run from its last complete checkpoint: RUN_DIR, or without it the latest
    /// `run-N` under the config's `output_dir`. The run's own config is used; `--config` and
    /// overrides only locate the run.
    #[arg(long, value_name = "RUN_DIR", num_args = 0..=1)]
    resume: Option<Option<PathBuf>>,
    /// Stop after this many optimisation steps in total (resumable; no final checkpoint).
    #[arg(long, value_parser = chronos::cli::positive::<usize>)]
    stop_after: Option<usize>,
    /// No progress bar.
    #[arg(long)]
    quiet: bool,
    #[command(flatten)]
    distributed: DistArgs,
    #[command(flatten)]
    config: ConfigArgs,
}

/// Data-parallel options.
#[derive(clap::Args, Debug)]
struct DistArgs {
    /// Launch N ranks of this command on this machine (as torchrun --nproc-per-node=N).
    #[arg(long, value_name = "N", value_parser = chronos::cli::positive::<usize>)]
    nproc: Option<usize>,
    /// With --nproc: the address rank 0's TCPStore listens on.
    #[arg(long, default_value = "127.0.0.1")]
    master_addr: String,
    /// With --nproc: its port (default: a free one).
    #[arg(long)]
    master_port: Option<u16>,
    /// Check every K steps that all ranks hold identical parameters (fails otherwise).
    #[arg(long, value_name = "K", value_parser = chronos::cli::positive::<u64>)]
    check_sync: Option<u64>,
    /// Gradient bucket size in MB.
    #[arg(long, default_value_t = 4.0)]
    bucket_mb: f64,
    /// Seconds a rank waits for the others (rendezvous, each collective) before failing.
    #[arg(long, default_value_t = 300, value_parser = chronos::cli::positive::<u64>)]
    dist_timeout: u64,
}

fn main() -> Result<()> {
    let args = Args::parse();
    chronos::runtime::reuse_freed_memory();
    if let Some(nproc) = args.distributed.nproc {
        return launch(&args, nproc);
    }
    let world = WorldEnv::from_env()?;
    let (dtype, mut device) = args.runtime.apply()?;
    if let (Some(world), tch::Device::Cuda(_)) = (&world, device) {
        let gpus = tch::Cuda::device_count() as usize;
        if world.local_rank >= gpus {
            bail!(
                "LOCAL_RANK {} needs cuda:{0}, but {gpus} CUDA device(s) are available",
                world.local_rank
            );
        }
        device = tch::Device::Cuda(world.local_rank);
    }
    if dtype != Dtype::F32 {
        bail!(
            "training keeps f32 weights (--dtype f32); got --dtype {} (for bfloat16 mixed \
             precision, set the config key bf16: true or pass --bf16 true)",
            args.runtime.dtype
        );
    }
    let distributed = match &world {
        Some(world) => Some(join(world, device, &args.distributed)?),
        None => None,
    };
    let options = RunOptions {
        device,
        progress: !args.quiet,
        stop_after: args.stop_after,
        distributed,
    };
    let summary = match &args.resume {
        Some(dir) => {
            let dir = match dir {
                Some(dir) => dir.clone(),
                None => {
                    let cfg = args.config.load().context("reading the training config")?;
                    run::latest_run_dir(&cfg.output_dir).with_context(|| {
                        format!("--resume: no run-N folder in {}", cfg.output_dir.display())
                    })?
                }
            };
            eprintln!("resuming {}", dir.display());
            run::resume(&dir, &options).with_context(|| format!("resuming {}", dir.display()))?
        }
        None => {
            let cfg = args.config.load().context("reading the training config")?;
            run::train(&cfg, &options).context("training")?
        }
    };
    if let Some(d) = &options.distributed {
        d.group.shutdown()?;
    }
    eprintln!(
        "{} steps in {} (loss {:.4} -> {:.4}, {:.2} steps/s){}",
        summary.steps,
        summary.run_dir.display(),
        summary.first_loss,
        summary.last_loss,
        summary.steps_per_second,
        summary
            .final_checkpoint
            .map(|p| format!("; final checkpoint {}", p.display()))
            .unwrap_or_default()
    );
    Ok(())
}

/// Joins the process group of this rank.
fn join(world: &WorldEnv, device: tch::Device, args: &DistArgs) -> Result<Distributed> {
    if !(args.bucket_mb > 0.0 && args.bucket_mb.is_finite()) {
        bail!("--bucket-mb must be positive, got {}", args.bucket_mb);
    }
    let timeout = Duration::from_secs(args.dist_timeout);
    let group = ProcessGroup::new(world, device, timeout)
        .with_context(|| format!("joining the job as rank {}", world.rank))?;
    Ok(Distributed {
        group: Arc::new(group),
        bucket_bytes: (args.bucket_mb * (1 << 20) as f64) as usize,
        check_sync_every: args.check_sync.map(|k| k as usize),
    })
}

/// `--nproc N`: runs this command without `--nproc` as N ranks, on the GPUs when there are
/// some and `--device` is not given (rank r on cuda:r), else on the CPU with `--threads` (unless
/// given) an even share of the cores.
fn launch(args: &Args, nproc: usize) -> Result<()> {
    if WorldEnv::from_env()?.is_some() {
        bail!("--nproc inside a distributed job (RANK/WORLD_SIZE are set): launch with one or the other");
    }
    let program = std::env::current_exe().context("locating this program")?;
    let given: Vec<std::ffi::OsString> = std::env::args_os().skip(1).collect();
    let mut child_args = distributed::strip_option(&given, "--nproc");
    for option in ["--master-addr", "--master-port"] {
        child_args = distributed::strip_option(&child_args, option);
    }
    let device_given = given.iter().any(|a| {
        let a = a.to_string_lossy();
        a == "--device" || a.starts_with("--device=")
    });
    let gpus = tch::Cuda::device_count() as usize;
    let on_cuda = match device_given {
        true => args.runtime.device.starts_with("cuda"),
        false => gpus > 0,
    };
    if on_cuda && nproc > gpus {
        bail!("--nproc {nproc} on CUDA needs {nproc} GPUs, {gpus} available");
    }
    if on_cuda && !device_given {
        child_args.splice(0..0, ["--device".into(), "cuda".into()]);
    }
    if !on_cuda && args.runtime.threads.is_none() {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        // before `--config`: what follows it are config overrides
        let share = (cores / nproc.max(1)).max(1).to_string();
        child_args.splice(0..0, ["--threads".into(), share.into()]);
    }
    let options = LaunchOptions {
        master_addr: args.distributed.master_addr.clone(),
        master_port: args.distributed.master_port,
        ..LaunchOptions::new(nproc)
    };
    distributed::launch(&program, &child_args, &options)?;
    Ok(())
}
