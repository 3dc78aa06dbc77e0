//! `evaluate`: the Chronos benchmark protocol (upstream `scripts/evaluation/evaluate.py`).
//!
//! `evaluate --config configs/zero-shot.yaml --model <dir|hub-id|seasonal-naive> --output r.csv
//! [--data-dir DIR]` scores a model on every dataset of the config (MASE, WQL) and writes
//! `dataset,model,MASE,WQL`; `evaluate agg --results r.csv --baseline seasonal-naive.csv` prints
//! the geometric-mean relative scores (upstream `agg-relative-score.py`); `evaluate history
//! --config c.yaml --output train.arrow [--data-dir DIR]` writes every series' history before
//! its evaluation window as a GluonTS Arrow file, to train on.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{bail, Context, Result};
use clap::{Parser, Subcommand};
use indicatif::{ProgressBar, ProgressStyle};

use chronos::bundled;
use chronos::data::{GluonWriteOptions, GluonWriter};
use chronos::eval::{
    self, evaluate_dataset, hub, read_benchmarks, read_results, relative_scores, training_history,
    write_results, Benchmark, Model, ModelOptions, ResultRow,
};
use chronos::runtime::Runtime;

#[derive(Parser, Debug)]
#[command(
    version,
    allow_negative_numbers = true,
    about = "Evaluate a Chronos model (or seasonal naive) on the Chronos benchmark: MASE and WQL",
    args_conflicts_with_subcommands = true,
    subcommand_negates_reqs = true
)]
struct Args {
    #[command(subcommand)]
    command: Option<Command>,
    /// Benchmark config (YAML list of name, hf_repo, offset, prediction_length, num_rolls).
    #[arg(long, required = true)]
    config: Option<PathBuf>,
    /// Checkpoint folder, hub id (owner/name[@revision]), `seasonal-naive`, or
    /// `chronos-bolt-2m`, the small model built into this program (the default).
    #[arg(long, default_value = bundled::NAME)]
    model: String,
    /// Results CSV to write (dataset,model,MASE,WQL).
    #[arg(long, required = true)]
    output: Option<PathBuf>,
    /// Folder with the datasets (<name>.parquet, <name>.arrow or <name>/ shards); without it,
    /// each dataset's hf_repo is read through the Hugging Face cache (downloading if needed).
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// Name written in the results' model column (default: --model as given).
    #[arg(long)]
    model_name: Option<String>,
    /// Series per forward pass.
    #[arg(long, default_value_t = 32, value_parser = chronos::cli::positive::<usize>)]
    batch_size: usize,
    #[command(flatten)]
    runtime: Runtime,
    /// Sample paths per series (Chronos-T5 only).
    #[arg(long, value_parser = chronos::cli::positive::<usize>)]
    num_samples: Option<usize>,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Aggregate relative scores: geometric mean over datasets of results / baseline.
    Agg {
        /// Results CSV of the model.
        #[arg(long)]
        results: PathBuf,
        /// Results CSV of the baseline (e.g. seasonal naive).
        #[arg(long)]
        baseline: PathBuf,
        /// Write `metric,value` here instead of standard output.
        #[arg(long)]
        output: Option<PathBuf>,
    },
    /// Write each series' history before its first evaluation window (the part a model may be
    /// trained on) as a GluonTS Arrow file (`start`, `target`, `item_id` = `<dataset>/<id>`).
    History {
        /// Benchmark config (the datasets and their windows).
        #[arg(long)]
        config: PathBuf,
        /// GluonTS Arrow file to write (LZ4-compressed IPC file).
        #[arg(long)]
        output: PathBuf,
        /// Folder with the datasets; without it, through the Hugging Face cache.
        #[arg(long)]
        data_dir: Option<PathBuf>,
    },
}

fn main() -> Result<()> {
    let args = Args::parse();
    match &args.command {
        Some(Command::Agg {
            results,
            baseline,
            output,
        }) => agg(results, baseline, output.as_ref()),
        Some(Command::History {
            config,
            output,
            data_dir,
        }) => history(config, output, data_dir.as_deref()),
        None => evaluate(&args),
    }
}

fn agg(results: &Path, baseline: &Path, output: Option<&PathBuf>) -> Result<()> {
    let scores = relative_scores(&read_results(results)?, &read_results(baseline)?)?;
    if !scores.baseline_only.is_empty() {
        eprintln!(
            "note: {} baseline dataset(s) have no results and are not aggregated: {}",
            scores.baseline_only.len(),
            scores.baseline_only.join(", ")
        );
    }
    eprintln!(
        "relative scores over {} dataset(s) of {}",
        scores.datasets,
        results.display()
    );
    let text = format!("metric,value\nMASE,{}\nWQL,{}\n", scores.mase, scores.wql);
    match output {
        Some(path) => chronos::atomic::write(path, text.as_bytes())
            .with_context(|| format!("writing {}", path.display()))?,
        None => print!("{text}"),
    }
    Ok(())
}

/// The files of every benchmark: from `data_dir` (all checked before any work), else the hub.
fn dataset_files(benchmarks: &[Benchmark], data_dir: Option<&Path>) -> Result<Vec<Vec<PathBuf>>> {
    Ok(match data_dir {
        Some(dir) => benchmarks
            .iter()
            .map(|b| eval::locate(dir, &b.name))
            .collect::<Result<Vec<_>, _>>()?,
        None => benchmarks
            .iter()
            .map(|b| hub::dataset_files(&b.hf_repo, &b.name))
            .collect::<Result<Vec<_>, _>>()?,
    })
}

fn history(config: &Path, output: &Path, data_dir: Option<&Path>) -> Result<()> {
    let benchmarks = read_benchmarks(config)?;
    let files = dataset_files(&benchmarks, data_dir)?;
    let options = GluonWriteOptions {
        text_columns: vec!["item_id".to_string()],
        ..GluonWriteOptions::default()
    };
    let mut writer = GluonWriter::create(output, &options)?;
    for (benchmark, files) in benchmarks.iter().zip(&files) {
        let dataset = eval::read_dataset(&benchmark.name, files, benchmark.freq)?;
        let history = training_history(benchmark, &dataset)?;
        let values: usize = history.entries.iter().map(|e| e.target.len()).sum();
        eprintln!(
            "{}: {} series, {values} values before the evaluation windows{}",
            benchmark.name,
            history.entries.len(),
            match history.empty.first() {
                Some(first) => format!(
                    "; {} series have no history and are left out (first: '{first}')",
                    history.empty.len()
                ),
                None => String::new(),
            }
        );
        writer.write(&history.entries, &[history.ids])?;
    }
    let rows = writer.finish()?;
    eprintln!("wrote {rows} series to {}", output.display());
    Ok(())
}

fn evaluate(args: &Args) -> Result<()> {
    let (Some(config), Some(output)) = (&args.config, &args.output) else {
        bail!("--config and --output are required");
    };
    let model_spec = &args.model;
    let benchmarks = read_benchmarks(config)?;
    // With a data folder, every dataset must be there before any work starts.
    let local_files = match &args.data_dir {
        Some(dir) => Some(dataset_files(&benchmarks, Some(dir))?),
        None => None,
    };
    let (dtype, device) = args.runtime.apply()?;
    let options = ModelOptions {
        dtype,
        device,
        batch_size: args.batch_size,
        num_samples: args.num_samples,
    };
    let model = Model::load(model_spec, &options)?;
    let model_name = args
        .model_name
        .clone()
        .unwrap_or_else(|| model_spec.clone());

    let total = benchmarks.len();
    let started = Instant::now();
    let mut rows = Vec::new();
    let mut skipped = Vec::new();
    for (i, benchmark) in benchmarks.iter().enumerate() {
        let name = &benchmark.name;
        let tag = format!("[{}/{total}] {name}", i + 1);
        let t0 = Instant::now();
        let files = match &local_files {
            Some(files) => files[i].clone(),
            None => hub::dataset_files(&benchmark.hf_repo, name)?,
        };
        let dataset = eval::read_dataset(name, &files, benchmark.freq)?;
        if let Some(model_h) = model.prediction_length() {
            if benchmark.prediction_length > model_h {
                eprintln!(
                    "{tag}: warning: prediction length {} exceeds the model's {model_h}; \
                     forecasts are unrolled",
                    benchmark.prediction_length
                );
            }
        }
        let progress = ProgressBar::new(0).with_style(
            ProgressStyle::with_template("{prefix} {bar:30} {pos}/{len} windows [{elapsed}]")
                .expect("valid template"),
        );
        progress.set_prefix(tag.clone());
        let result = evaluate_dataset(benchmark, &dataset, &model, |done, total| {
            progress.set_length(total as u64);
            progress.set_position(done as u64);
        })
        .with_context(|| format!("evaluating dataset '{name}'"))?;
        progress.finish_and_clear();
        if result.skipped_windows > 0 {
            eprintln!(
                "{tag}: warning: {} window(s) do not fit their series and are skipped \
                 (too short for offset {} and {} roll(s) of {}; first: '{}')",
                result.skipped_windows,
                benchmark.offset,
                benchmark.num_rolls,
                benchmark.prediction_length,
                result.first_skipped.as_deref().unwrap_or("?")
            );
        }
        let Some(scores) = result.scores else {
            eprintln!("{tag}: warning: all series are too short; dataset skipped");
            skipped.push(name.clone());
            continue;
        };
        eprintln!(
            "{tag}: {} series, {} windows, freq {} (seasonality {}), H {}: MASE {:.4} WQL {:.4} \
             ({:.2} s)",
            result.series,
            result.windows,
            result.freq,
            result.seasonality,
            benchmark.prediction_length,
            scores.mase,
            scores.wql,
            t0.elapsed().as_secs_f64()
        );
        rows.push(ResultRow {
            dataset: name.clone(),
            model: model_name.clone(),
            mase: scores.mase,
            wql: scores.wql,
        });
    }
    write_results(output, &rows)?;
    eprintln!(
        "wrote {} result(s) to {} in {:.2} s{}",
        rows.len(),
        output.display(),
        started.elapsed().as_secs_f64(),
        if skipped.is_empty() {
            String::new()
        } else {
            format!("; skipped (all series too short): {}", skipped.join(", "))
        }
    );
    Ok(())
}
