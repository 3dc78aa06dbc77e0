//! `kernel-synth`: KernelSynth synthetic training data (upstream `scripts/kernel-synth.py`) as a
//! GluonTS Arrow file: each series one draw from a Gaussian-process prior whose kernel is a random
//! composition of 1..=J kernels from a fixed bank.

use std::path::PathBuf;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use anyhow::{bail, Context, Result};
use chrono::{NaiveDate, NaiveDateTime};
use clap::{Parser, ValueEnum};
use indicatif::{ProgressBar, ProgressState, ProgressStyle};

use chronos::data::{IpcCompression, IpcFormat};
use chronos::kernel_synth::{KernelSynth, WriteOptions, DEFAULT_LENGTH, JITTERS};

#[derive(Clone, Copy, Debug, ValueEnum)]
enum Compression {
    Lz4,
    Zstd,
    None,
}

#[derive(Parser, Debug)]
#[command(
    version,
    allow_negative_numbers = true,
    about = "Generate KernelSynth synthetic time series (Gaussian-process prior draws) as a GluonTS Arrow file"
)]
struct Args {
    /// Number of series.
    #[arg(short = 'N', long, default_value_t = 1_000_000, value_parser = chronos::cli::positive::<u64>)]
    num_series: u64,
    /// Largest number of bank kernels composed per series (J).
    #[arg(short = 'J', long, default_value_t = 5, value_parser = chronos::cli::positive::<usize>)]
    max_kernels: usize,
    /// Output file (GluonTS Arrow: `start` timestamp[s], `target` list<double>).
    #[arg(long)]
    output: PathBuf,
    /// Points per series (the bank's periods are in steps of this length).
    #[arg(long, default_value_t = DEFAULT_LENGTH, value_parser = chronos::cli::positive::<usize>)]
    length: usize,
    /// `start` of every series: YYYY-MM-DD, optionally with [T| ]HH:MM[:SS].
    #[arg(long, default_value = "2000-01-01 00:00:00", value_parser = parse_start)]
    start: NaiveDateTime,
    /// Random seed; the same seed gives the same file whatever the thread count (default: drawn
    /// from the clock and printed).
    #[arg(long, value_parser = chronos::cli::non_negative::<u64>)]
    seed: Option<u64>,
    /// Worker threads (default: one per core).
    #[arg(long, value_parser = chronos::cli::positive::<usize>)]
    threads: Option<usize>,
    /// Series per Arrow record batch (and per parallel chunk in memory).
    #[arg(long, default_value_t = 1024, value_parser = chronos::cli::positive::<usize>)]
    batch_size: usize,
    /// IPC buffer compression.
    #[arg(long, value_enum, default_value_t = Compression::Lz4)]
    compression: Compression,
    /// Write the Arrow IPC stream format instead of the file format.
    #[arg(long)]
    stream: bool,
    /// Add a `kernel` column with each series' kernel composition.
    #[arg(long)]
    kernel_column: bool,
}

fn parse_start(s: &str) -> Result<NaiveDateTime, String> {
    let s = s.trim();
    [
        "%Y-%m-%d %H:%M:%S",
        "%Y-%m-%dT%H:%M:%S",
        "%Y-%m-%d %H:%M",
        "%Y-%m-%dT%H:%M",
    ]
    .iter()
    .find_map(|f| NaiveDateTime::parse_from_str(s, f).ok())
    .or_else(|| {
        NaiveDate::parse_from_str(s, "%Y-%m-%d")
            .ok()
            .and_then(|d| d.and_hms_opt(0, 0, 0))
    })
    .ok_or_else(|| format!("'{s}' is not YYYY-MM-DD[ HH:MM[:SS]]"))
}

fn main() -> Result<()> {
    let args = Args::parse();
    if args.num_series == 0 {
        bail!("--num-series must be at least 1");
    }
    let seed = match args.seed {
        Some(seed) => seed,
        None => {
            let now = SystemTime::now().duration_since(UNIX_EPOCH)?;
            let seed = now.as_secs() ^ u64::from(now.subsec_nanos()) << 32;
            eprintln!("seed: {seed}");
            seed
        }
    };
    let threads = match args.threads {
        Some(t) => t,
        None => std::thread::available_parallelism().map_or(1, usize::from),
    };
    let synth = KernelSynth::new(args.length, args.max_kernels, seed)?;
    let options = WriteOptions {
        start: args.start,
        batch_size: args.batch_size,
        threads,
        kernel_column: args.kernel_column,
        compression: match args.compression {
            Compression::Lz4 => IpcCompression::Lz4,
            Compression::Zstd => IpcCompression::Zstd,
            Compression::None => IpcCompression::None,
        },
        format: match args.stream {
            true => IpcFormat::Stream,
            false => IpcFormat::File,
        },
    };
    let bar = ProgressBar::new(args.num_series);
    bar.set_style(
        ProgressStyle::with_template(
            "{bar:40} {pos}/{len} series [{elapsed_precise} < {eta_precise}, {rate} series/s]",
        )
        .context("progress bar template")?
        .with_key(
            "rate",
            |state: &ProgressState, w: &mut dyn std::fmt::Write| {
                let _ = write!(w, "{:.1}", state.per_sec());
            },
        ),
    );
    let began = Instant::now();
    let summary = synth
        .write_dataset(&args.output, args.num_series, &options, &|k| bar.inc(k))
        .with_context(|| format!("generating {}", args.output.display()))?;
    bar.finish_and_clear();
    let secs = began.elapsed().as_secs_f64();
    let levels: Vec<String> = JITTERS
        .iter()
        .zip(summary.cholesky)
        .map(|(j, n)| format!("{n} at jitter {j:e}"))
        .collect();
    eprintln!(
        "wrote {} series of length {} to {} in {secs:.1} s ({:.1} series/s, {threads} threads)",
        summary.series,
        args.length,
        args.output.display(),
        summary.series as f64 / secs,
    );
    eprintln!(
        "sampling: Cholesky {}; eigendecomposition {}; kernel redraws {}",
        levels.join(", "),
        summary.eigh,
        summary.redraws
    );
    Ok(())
}
