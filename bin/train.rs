//! `train`: trains Chronos-T5, Chronos-GPT2 or Chronos-Bolt from a YAML config (upstream
//! `scripts/training/train.py`'s options), into `output_dir/run-N/`.
//!
//! ```text
//! train --config configs/train/chronos-bolt-tiny.yaml --max-steps 1000
//! train --resume output/run-3          # continue a run from its last checkpoint
//! ```

use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use clap::Parser;

use chronos::pipeline::Dtype;
use chronos::runtime::Runtime;
use chronos::train::config::ConfigArgs;
use chronos::train::run::{self, RunOptions};

#[derive(Parser, Debug)]
#[command(
    version,
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
    #[arg(long)]
    stop_after: Option<usize>,
    /// No progress bar.
    #[arg(long)]
    quiet: bool,
    #[command(flatten)]
    config: ConfigArgs,
}

fn main() -> Result<()> {
    let args = Args::parse();
    let (dtype, device) = args.runtime.apply()?;
    if dtype != Dtype::F32 {
        bail!(
            "training runs in f32 (--dtype f32); got --dtype {}",
            args.runtime.dtype
        );
    }
    let options = RunOptions {
        device,
        progress: !args.quiet,
        stop_after: args.stop_after,
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
