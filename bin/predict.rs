//! `predict`: forecasts every series of a long-format CSV/Parquet table with a Chronos model and
//! writes the forecasts in long format (as upstream `predict_df`). Chronos-Bolt and Chronos-T5
//! forecast one target column; Chronos-2 forecasts one or more, with every other column of the
//! table as a covariate and the covariates known over the horizon in a `--future` table.

use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use clap::Parser;
use indicatif::{ProgressBar, ProgressStyle};

use chronos::bundled;
use chronos::data::{self, Chronos2Inputs, Columns, ForecastTable, FrameColumns, Freq};
use chronos::pipeline::{left_pad_and_stack, Chronos2Options, Chronos2Pipeline, Pipeline};
use chronos::plot::{plot_forecasts, ForecastPlot, PLOT_LEVELS};
use chronos::runtime::{self, Runtime};
use chronos::sampling::SamplingConfig;

#[derive(Parser, Debug)]
#[command(
    version,
    allow_negative_numbers = true,
    about = "Forecast long-format time series with a Chronos model"
)]
struct Args {
    /// Checkpoint folder (config.json + model.safetensors), hub id (owner/name[@revision]), or
    /// `chronos-bolt-2m`, the small model built into this program (the default; when the hub
    /// is reachable, `amazon/chronos-bolt-small` forecasts better).
    #[arg(long, default_value = bundled::NAME)]
    model: String,
    /// Base model of a LoRA adapter folder given as --model (default: the adapter's
    /// `base_model_name_or_path`).
    #[arg(long)]
    base_model: Option<String>,
    /// Long-format input table (.csv or .parquet): one row per (series, timestamp).
    #[arg(long)]
    input: PathBuf,
    /// Output table (.csv or .parquet).
    #[arg(long)]
    output: PathBuf,
    /// Steps to forecast (default: the model's prediction length).
    #[arg(long, value_parser = chronos::cli::positive::<i64>)]
    prediction_length: Option<i64>,
    /// Quantile levels to output, comma-separated.
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "0.1,0.2,0.3,0.4,0.5,0.6,0.7,0.8,0.9"
    )]
    quantiles: Vec<f64>,
    #[arg(long, default_value = "item_id")]
    id_column: String,
    #[arg(long, default_value = "timestamp")]
    timestamp_column: String,
    /// Target column(s), comma-separated (several: Chronos-2 only, forecast jointly).
    #[arg(long, value_delimiter = ',', default_value = "target")]
    target: Vec<String>,
    /// Chronos-2: table of known-future covariates (.csv or .parquet): id, timestamp and
    /// covariate columns of the input table, exactly `--prediction-length` rows per series at
    /// the steps after the series' last timestamp. The input's other columns are past-only.
    #[arg(long, value_name = "FILE")]
    future: Option<PathBuf>,
    /// Chronos-2: let all series of a batch attend to each other (upstream `cross_learning`).
    #[arg(long)]
    cross_learning: bool,
    /// Chronos-2: context kept per series (default and maximum: the model's).
    #[arg(long, value_parser = chronos::cli::positive::<i64>)]
    context_length: Option<i64>,
    /// Frequency of the timestamps (pandas alias, e.g. h, D, W-SUN, MS); inferred when absent.
    #[arg(long)]
    freq: Option<String>,
    /// Series per forward pass (Chronos-2: rows, i.e. targets and covariates, per forward pass;
    /// a series is never split).
    #[arg(long, default_value_t = 256, value_parser = chronos::cli::positive::<usize>)]
    batch_size: usize,
    #[command(flatten)]
    runtime: Runtime,
    /// Chronos-T5: sample paths per series (default: the checkpoint's).
    #[arg(long, value_parser = chronos::cli::positive::<i64>)]
    num_samples: Option<i64>,
    /// Chronos-T5: sampling temperature (default: the checkpoint's).
    #[arg(long)]
    temperature: Option<f64>,
    /// Chronos-T5: keep the k most likely tokens, 0 = all (default: the checkpoint's).
    #[arg(long, value_parser = chronos::cli::non_negative::<i64>)]
    top_k: Option<i64>,
    /// Chronos-T5: nucleus sampling mass, 1 = all (default: the checkpoint's).
    #[arg(long)]
    top_p: Option<f64>,
    /// Chronos-T5: seed of libtorch's generator, for reproducible sample paths.
    #[arg(long)]
    seed: Option<i64>,
    /// Fail instead of unrolling when the horizon exceeds the model's prediction length.
    #[arg(long)]
    limit_prediction_length: bool,
    /// Also draw the first `--plot-series` forecasts (history, median, 10-90% band) as a PNG.
    #[arg(long, value_name = "PNG")]
    plot: Option<PathBuf>,
    /// Series drawn by `--plot`.
    #[arg(long, default_value_t = 4, value_parser = chronos::cli::positive::<usize>)]
    plot_series: usize,
}

fn main() -> Result<()> {
    let args = Args::parse();
    if args.batch_size == 0 {
        bail!("--batch-size must be at least 1");
    }
    if args.plot.is_some() && args.plot_series == 0 {
        bail!("--plot-series must be at least 1");
    }
    let mut inputs = vec![("--input", args.input.as_path())];
    inputs.extend(args.future.as_deref().map(|f| ("--future", f)));
    chronos::atomic::check_not_input("--output", &args.output, &inputs)
        .map_err(anyhow::Error::msg)?;
    if let Some(plot) = &args.plot {
        inputs.push(("--output", args.output.as_path()));
        chronos::atomic::check_not_input("--plot", plot, &inputs).map_err(anyhow::Error::msg)?;
    }
    let (dtype, device) = args.runtime.apply()?;
    let pipeline =
        Pipeline::load_with_base(&args.model, args.base_model.as_deref(), dtype, device)?;
    if args.model == bundled::NAME {
        eprintln!(
            "using the bundled model {} (when the hub is reachable, --model {} forecasts better)",
            bundled::NAME,
            bundled::RECOMMENDED_HUB_MODEL
        );
    }
    match &pipeline {
        Pipeline::Chronos2(chronos2) => {
            sampling_overrides(&args, &pipeline)?;
            predict_chronos2(&args, chronos2)
        }
        Pipeline::Bolt(_) | Pipeline::Chronos(_) => predict_one_target(&args, &pipeline),
    }
}

/// Chronos-2 (upstream `predict_df`): the targets of `--target` forecast jointly with the
/// input's other columns as covariates, those of `--future` known over the horizon.
fn predict_chronos2(args: &Args, pipeline: &Chronos2Pipeline) -> Result<()> {
    let columns = FrameColumns {
        id: args.id_column.clone(),
        timestamp: args.timestamp_column.clone(),
        targets: args.target.clone(),
    };
    let past = data::read_frame(&args.input, &columns)?;
    let future = match &args.future {
        Some(path) => {
            let columns = FrameColumns {
                targets: Vec::new(),
                ..columns.clone()
            };
            Some(data::read_frame(path, &columns)?)
        }
        None => None,
    };
    let freq = frequency(args, || past.freq())?;
    let horizon = horizon(args, pipeline.prediction_length())?;
    let levels = computed_levels(args);
    let values = past.n_series() * args.target.len() * (levels.len() + 1);
    runtime::check_fits(
        "--prediction-length",
        horizon,
        (values * BYTES_PER_VALUE) as u64,
    )?;
    let h = horizon as usize;
    let inputs = Chronos2Inputs::new(&past, future.as_ref(), h, &freq).map_err(|e| {
        let hint = matches!(e, data::DataError::FutureLength { .. })
            && args.prediction_length.is_none();
        match hint {
            true => anyhow::Error::new(e).context(format!(
                "the future table sets the horizon: pass --prediction-length (the model's default is {horizon})"
            )),
            false => e.into(),
        }
    })?;
    for report in &inputs.non_finite {
        eprintln!("note: {}: {report}", args.input.display());
    }
    for unseen in &inputs.unseen {
        eprintln!(
            "note: {}: series '{}': covariate '{}' takes values the input never has ({}) at {} step(s); as upstream they are {}",
            future.as_ref().map_or(&args.input, |f| &f.path).display(),
            unseen.id,
            unseen.column,
            unseen.values.join(", "),
            unseen.steps,
            match inputs.target_encoded {
                true => "encoded as the series' target mean",
                false => "left missing (the model treats those steps as unknown)",
            }
        );
    }

    let options = Chronos2Options {
        prediction_length: Some(horizon),
        batch_size: args.batch_size,
        context_length: args.context_length,
        cross_learning: args.cross_learning,
        limit_prediction_length: args.limit_prediction_length,
    };
    let forecasts = pipeline.predict_quantiles(&inputs.tasks, &levels, &options)?;
    let table = data::chronos2_forecast_table(&past, &freq, &forecasts, &args.quantiles)?;
    let output_columns = Columns {
        id: args.id_column.clone(),
        timestamp: args.timestamp_column.clone(),
        target: args.target[0].clone(),
    };
    data::write_forecasts(&args.output, &output_columns, &table)?;
    eprintln!(
        "wrote forecasts of {} series x {} target(s) for {horizon} steps to {}",
        past.n_series(),
        args.target.len(),
        args.output.display()
    );
    if let Some(path) = &args.plot {
        // (horizon, levels) of each plotted series' first target
        let plotted = forecasts
            .iter()
            .take(args.plot_series)
            .map(|f| Vec::<f32>::try_from(f.quantiles.get(0).flatten(0, -1)))
            .collect::<Result<Vec<_>, _>>()?;
        let series: Vec<data::Series> = (0..plotted.len())
            .map(|g| data::Series {
                id: past.ids[g].clone(),
                timestamps: past.timestamps[past.rows(g)].to_vec(),
                values: past.targets[0].values[past.rows(g)].to_vec(),
            })
            .collect();
        plot(path, &series, &plotted, &levels, h)?;
        eprintln!("drew {} forecast(s) in {}", plotted.len(), path.display());
    }
    Ok(())
}

/// Bytes a forecast value costs on its way to the output (its tensor, its copies and its CSV
/// text), for [`runtime::check_fits`].
const BYTES_PER_VALUE: usize = 32;

/// The levels computed: the requested ones, then those a plot needs that are missing.
fn computed_levels(args: &Args) -> Vec<f64> {
    let mut levels = args.quantiles.clone();
    if args.plot.is_some() {
        levels.extend(PLOT_LEVELS.iter().filter(|l| !args.quantiles.contains(l)));
    }
    levels
}

/// Chronos-Bolt and Chronos-T5: one target, covariate columns ignored.
fn predict_one_target(args: &Args, pipeline: &Pipeline) -> Result<()> {
    let family = pipeline.family();
    let chronos2_only = [
        ("--future", args.future.is_some()),
        ("--target with several columns", args.target.len() > 1),
        ("--cross-learning", args.cross_learning),
        ("--context-length", args.context_length.is_some()),
    ];
    if let Some((flag, _)) = chronos2_only.iter().find(|(_, set)| *set) {
        bail!(
            "{flag} applies to Chronos-2 models; {} is a {family} model, which forecasts one target without covariates",
            args.model
        );
    }
    let target = &args.target[0];
    let columns = Columns {
        id: args.id_column.clone(),
        timestamp: args.timestamp_column.clone(),
        target: target.clone(),
    };
    let series = data::read_long(&args.input, &columns)?;
    let ignored: Vec<String> = data::column_names(&args.input)?
        .into_iter()
        .filter(|c| ![&columns.id, &columns.timestamp, target].contains(&c))
        .collect();
    if !ignored.is_empty() {
        eprintln!(
            "note: {}: columns {} are ignored ({family} models take no covariates; Chronos-2 models do)",
            args.input.display(),
            ignored.join(", ")
        );
    }
    let freq = frequency(args, || data::common_freq(&series))?;
    let sampling = sampling_overrides(args, pipeline)?;
    if let Some(seed) = args.seed {
        tch::manual_seed(seed);
    }
    let horizon = horizon(args, pipeline.prediction_length())?;
    // Chronos-T5 also holds a batch's sample paths.
    let samples = match (pipeline, &sampling) {
        (Pipeline::Chronos(_), Some(s)) => s.num_samples as usize,
        (Pipeline::Chronos(p), None) => p.default_sampling().num_samples as usize,
        _ => 0,
    };
    let levels = computed_levels(args);
    let values = series.len() * (levels.len() + 1) + args.batch_size.min(series.len()) * samples;
    runtime::check_fits(
        "--prediction-length",
        horizon,
        (values * BYTES_PER_VALUE) as u64,
    )?;
    let progress = ProgressBar::new(series.len() as u64).with_style(
        ProgressStyle::with_template(
            "{bar:40} {pos}/{len} series [{elapsed_precise} < {eta_precise}]",
        )
        .expect("valid template"),
    );
    if series.len() <= args.batch_size {
        progress.set_draw_target(indicatif::ProgressDrawTarget::hidden());
    }
    let h = horizon as usize;
    let mut quantiles = Vec::with_capacity(series.len() * h * args.quantiles.len());
    let mut points = Vec::with_capacity(series.len() * h);
    let mut plotted: Vec<Vec<f32>> = Vec::new(); // (horizon, levels) of the first series
    for batch in series.chunks(args.batch_size) {
        let contexts: Vec<Vec<f32>> = batch
            .iter()
            .map(|s| {
                let (values, report) = s.context(target);
                if let Some(report) = report {
                    progress.suspend(|| eprintln!("note: {}: {report}", args.input.display()));
                }
                values
            })
            .collect();
        let context = left_pad_and_stack(&contexts)?;
        let forecast = pipeline.predict_quantiles(
            &context,
            Some(horizon),
            &levels,
            sampling.as_ref(),
            args.limit_prediction_length,
        )?;
        // (batch, horizon, levels)
        let all = Vec::<f32>::try_from(forecast.quantiles.flatten(0, -1))?;
        for row in all.chunks(levels.len()) {
            quantiles.extend_from_slice(&row[..args.quantiles.len()]);
        }
        if args.plot.is_some() && plotted.len() < args.plot_series {
            let take = (args.plot_series - plotted.len()).min(batch.len());
            plotted.extend(all.chunks(h * levels.len()).take(take).map(<[f32]>::to_vec));
        }
        points.extend(Vec::<f32>::try_from(forecast.mean.flatten(0, -1))?);
        progress.inc(batch.len() as u64);
    }
    progress.finish_and_clear();

    let table = ForecastTable::new(
        &series,
        &freq,
        horizon as usize,
        target,
        points,
        &args.quantiles,
        quantiles,
    )?;
    data::write_forecasts(&args.output, &columns, &table)?;
    eprintln!(
        "wrote {} forecasts of {} steps to {}",
        series.len(),
        horizon,
        args.output.display()
    );
    if let Some(path) = &args.plot {
        plot(path, &series, &plotted, &levels, h)?;
        eprintln!("drew {} forecast(s) in {}", plotted.len(), path.display());
    }
    Ok(())
}

/// `--freq`, or the frequency `infer` finds in the input.
fn frequency(args: &Args, infer: impl FnOnce() -> Result<Freq, data::DataError>) -> Result<Freq> {
    Ok(match &args.freq {
        Some(f) => f.parse()?,
        None => infer().with_context(|| {
            format!(
                "{}: cannot infer the frequency (pass --freq)",
                args.input.display()
            )
        })?,
    })
}

/// `--prediction-length` (default: the model's), warning when it exceeds the model's.
fn horizon(args: &Args, model: i64) -> Result<i64> {
    let horizon = args.prediction_length.unwrap_or(model);
    if horizon <= 0 {
        bail!("--prediction-length must be positive, got {horizon}");
    }
    if horizon > model && !args.limit_prediction_length {
        eprintln!(
            "warning: prediction length {horizon} exceeds the model's {model}; quality may degrade"
        );
    }
    Ok(horizon)
}

/// Draws `forecasts[i]` (`(horizon, levels)` row-major) of `series[i]`.
fn plot(
    path: &std::path::Path,
    series: &[data::Series],
    forecasts: &[Vec<f32>],
    levels: &[f64],
    horizon: usize,
) -> Result<()> {
    let level = |q: f64| {
        levels
            .iter()
            .position(|&l| l == q)
            .expect("plot levels computed")
    };
    let columns: Vec<Vec<Vec<f64>>> = forecasts
        .iter()
        .map(|f| {
            PLOT_LEVELS
                .iter()
                .map(|&q| {
                    let k = level(q);
                    (0..horizon)
                        .map(|t| f64::from(f[t * levels.len() + k]))
                        .collect()
                })
                .collect()
        })
        .collect();
    let plots: Vec<ForecastPlot<'_>> = series
        .iter()
        .zip(&columns)
        .map(|(s, q)| ForecastPlot {
            id: &s.id,
            history: &s.values,
            low: &q[0],
            median: &q[1],
            high: &q[2],
        })
        .collect();
    Ok(plot_forecasts(path, &plots)?)
}

/// The sampling settings for a Chronos-T5 model (checkpoint defaults with the flags applied);
/// `None` for Chronos-Bolt, where any sampling flag is an error.
fn sampling_overrides(args: &Args, pipeline: &Pipeline) -> Result<Option<SamplingConfig>> {
    let given = [
        ("--num-samples", args.num_samples.is_some()),
        ("--temperature", args.temperature.is_some()),
        ("--top-k", args.top_k.is_some()),
        ("--top-p", args.top_p.is_some()),
        ("--seed", args.seed.is_some()),
    ];
    match pipeline {
        Pipeline::Bolt(_) | Pipeline::Chronos2(_) => {
            if let Some((flag, _)) = given.iter().find(|(_, set)| *set) {
                bail!("{flag} applies to Chronos-T5 models; {} predicts quantiles directly without sampling", args.model);
            }
            Ok(None)
        }
        Pipeline::Chronos(t5) => {
            let defaults = t5.default_sampling();
            let sampling = SamplingConfig {
                num_samples: args.num_samples.unwrap_or(defaults.num_samples),
                temperature: args.temperature.unwrap_or(defaults.temperature),
                top_k: args.top_k.unwrap_or(defaults.top_k),
                top_p: args.top_p.unwrap_or(defaults.top_p),
            };
            sampling.validate()?;
            Ok(Some(sampling))
        }
    }
}
