//! Forecasting pipelines (upstream `BaseChronosPipeline` and its subclasses): loading a checkpoint
//! into a model of the class its config names, and the `predict` / `predict_quantiles` / `embed`
//! entry points with upstream's semantics.

mod bolt;
mod chronos;
mod chronos2;
mod chronos2_task;
mod quantile;

use tch::{Device, Kind, Tensor};

use crate::checkpoint::Checkpoint;
use crate::error::{ChronosError, Result};
use crate::sampling::SamplingConfig;

pub use bolt::BoltPipeline;
pub use chronos::{impute_last_value, Backbone, ChronosPipeline};
pub use chronos2::{Chronos2Embedding, Chronos2Options, Chronos2Pipeline, UNROLLED_QUANTILES};
pub use chronos2_task::Chronos2Task;

/// Compute dtype of a loaded model (independent of the checkpoint's storage dtype).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dtype {
    F32,
    BF16,
}

impl Dtype {
    pub fn kind(self) -> Kind {
        match self {
            Dtype::F32 => Kind::Float,
            Dtype::BF16 => Kind::BFloat16,
        }
    }
}

impl std::str::FromStr for Dtype {
    type Err = ChronosError;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "f32" | "float32" | "fp32" => Ok(Dtype::F32),
            "bf16" | "bfloat16" => Ok(Dtype::BF16),
            _ => Err(ChronosError::InvalidInput(format!(
                "unknown dtype '{s}' (expected f32 or bf16)"
            ))),
        }
    }
}

/// Parses `cpu`, `cuda` or `cuda:N`; errors when CUDA is asked for but absent.
pub fn parse_device(s: &str) -> Result<Device> {
    let device = match s {
        "cpu" => Device::Cpu,
        "cuda" => Device::Cuda(0),
        _ => match s.strip_prefix("cuda:").map(str::parse::<usize>) {
            Some(Ok(n)) => Device::Cuda(n),
            _ => {
                return Err(ChronosError::InvalidInput(format!(
                    "unknown device '{s}' (expected cpu, cuda or cuda:N)"
                )))
            }
        },
    };
    if let Device::Cuda(n) = device {
        let available = tch::Cuda::device_count() as usize;
        if n >= available {
            return Err(ChronosError::InvalidInput(format!(
                "device '{s}' requested, but {available} CUDA device(s) are available"
            )));
        }
    }
    Ok(device)
}

/// Series of possibly different lengths, left-padded with NaN into `(batch, max_len)` f32
/// (upstream `left_pad_and_stack_1D`). An empty series is an error naming its index.
pub fn left_pad_and_stack<S: AsRef<[f32]>>(series: &[S]) -> Result<Tensor> {
    if series.is_empty() {
        return Err(ChronosError::InvalidInput("no series to forecast".into()));
    }
    if let Some(i) = series.iter().position(|s| s.as_ref().is_empty()) {
        return Err(ChronosError::InvalidInput(format!(
            "series {i} is empty: at least one value (possibly NaN) is needed"
        )));
    }
    let max_len = series.iter().map(|s| s.as_ref().len()).max().unwrap_or(0);
    let mut data = vec![f32::NAN; series.len() * max_len];
    for (row, s) in data.chunks_mut(max_len).zip(series) {
        let s = s.as_ref();
        row[max_len - s.len()..].copy_from_slice(s);
    }
    Ok(Tensor::from_slice(&data).view([series.len() as i64, max_len as i64]))
}

/// Quantile forecasts and their point forecast (upstream `predict_quantiles`).
#[derive(Debug)]
pub struct QuantileForecast {
    /// `(batch, horizon, levels)` f32, CPU.
    pub quantiles: Tensor,
    /// `(batch, horizon)` f32, CPU: the mean of the samples (Chronos-T5), or the median
    /// (Chronos-Bolt, whose mean is its median, as upstream).
    pub mean: Tensor,
}

/// Encoder embeddings (upstream `embed`).
#[derive(Debug)]
pub struct Embedding {
    /// `(batch, patches [+ 1 REG], d_model)` (Bolt) or `(batch, tokens [+ 1 EOS], d_model)`
    /// (T5), model dtype, CPU.
    pub embeddings: Tensor,
    /// `(batch,)` f32, CPU: Bolt's instance-norm location (T5 has none).
    pub loc: Option<Tensor>,
    /// `(batch,)` f32, CPU.
    pub scale: Tensor,
}

/// The requested horizon (default: the model's), checked against the model's.
fn horizon(requested: Option<i64>, model: i64, limit: bool) -> Result<i64> {
    let horizon = requested.unwrap_or(model);
    if horizon <= 0 {
        return Err(ChronosError::InvalidInput(format!(
            "prediction_length must be positive, got {horizon}"
        )));
    }
    if horizon > model && limit {
        return Err(ChronosError::InvalidInput(format!(
            "prediction_length {horizon} exceeds the model's {model}; allow longer horizons by not limiting the prediction length"
        )));
    }
    Ok(horizon)
}

/// Quantile levels as an f32 tensor, each checked to lie in [0, 1].
fn levels_tensor(levels: &[f64]) -> Result<Tensor> {
    if let Some(bad) = levels.iter().find(|q| !(0.0..=1.0).contains(*q)) {
        return Err(ChronosError::InvalidInput(format!(
            "quantile level {bad} is outside [0, 1]"
        )));
    }
    let levels: Vec<f32> = levels.iter().map(|&q| q as f32).collect();
    Ok(Tensor::from_slice(&levels))
}

/// `context` must be `(batch, length)`.
fn check_context(context: &Tensor) -> Result<()> {
    if context.dim() != 2 {
        return Err(ChronosError::InvalidInput(format!(
            "context must be (batch, length), got shape {:?}",
            context.size()
        )));
    }
    Ok(())
}

/// A loaded Chronos model of whichever family its config names.
// One per program: the size difference between the variants does not matter.
#[allow(clippy::large_enum_variant)]
#[derive(Debug)]
pub enum Pipeline {
    Bolt(BoltPipeline),
    Chronos(ChronosPipeline),
    Chronos2(Chronos2Pipeline),
}

impl Pipeline {
    /// Opens `model` (a local folder or a hub id) and loads the pipeline class its config
    /// names (`chronos_pipeline_class`, default `ChronosPipeline`, as upstream).
    pub fn load(model: &str, dtype: Dtype, device: Device) -> Result<Self> {
        Self::load_with_base(model, None, dtype, device)
    }

    /// [`Pipeline::load`], where `model` may also be a peft LoRA adapter folder of a Chronos-2
    /// model, merged into `base` (default: the adapter's `base_model_name_or_path`).
    pub fn load_with_base(
        model: &str,
        base: Option<&str>,
        dtype: Dtype,
        device: Device,
    ) -> Result<Self> {
        let dir = std::path::Path::new(model);
        if dir.is_dir() && crate::lora::is_adapter(dir) && !dir.join("config.json").is_file() {
            return Ok(Pipeline::Chronos2(Chronos2Pipeline::load_adapter(
                dir, base, dtype, device,
            )?));
        }
        if base.is_some() {
            return Err(ChronosError::InvalidInput(format!(
                "a base model applies to LoRA adapter folders; {model} is not one (no {})",
                crate::lora::ADAPTER_CONFIG
            )));
        }
        let checkpoint = Checkpoint::open(model)?;
        match checkpoint.config.pipeline_class() {
            "ChronosBoltPipeline" => Ok(Pipeline::Bolt(BoltPipeline::load(
                &checkpoint,
                dtype,
                device,
            )?)),
            "ChronosPipeline" => Ok(Pipeline::Chronos(ChronosPipeline::load(
                &checkpoint,
                dtype,
                device,
            )?)),
            "Chronos2Pipeline" => Ok(Pipeline::Chronos2(Chronos2Pipeline::load(
                &checkpoint,
                dtype,
                device,
            )?)),
            other => Err(ChronosError::Config {
                path: checkpoint.config_path.clone(),
                message: format!("unknown chronos_pipeline_class '{other}'"),
            }),
        }
    }

    /// The model's built-in horizon.
    /// The family's name in messages: `Chronos-Bolt`, `Chronos-T5` (the tokenised family, GPT-2
    /// backbones included) or `Chronos-2`.
    pub fn family(&self) -> &'static str {
        match self {
            Pipeline::Bolt(_) => "Chronos-Bolt",
            Pipeline::Chronos(_) => "Chronos-T5",
            Pipeline::Chronos2(_) => "Chronos-2",
        }
    }

    pub fn prediction_length(&self) -> i64 {
        match self {
            Pipeline::Bolt(p) => p.prediction_length(),
            Pipeline::Chronos(p) => p.prediction_length(),
            Pipeline::Chronos2(p) => p.prediction_length(),
        }
    }

    /// Quantile and point forecasts of any family for `context` `(batch, len)` (NaN = missing,
    /// left-padded). `sampling` overrides the sample-path settings of Chronos-T5 (default: the
    /// checkpoint's); the other families, which do not sample, reject it. Chronos-2 forecasts
    /// each row as a univariate task, 256 rows per forward pass.
    pub fn predict_quantiles(
        &self,
        context: &Tensor,
        prediction_length: Option<i64>,
        levels: &[f64],
        sampling: Option<&SamplingConfig>,
        limit_prediction_length: bool,
    ) -> Result<QuantileForecast> {
        match self {
            Pipeline::Bolt(p) => {
                if sampling.is_some() {
                    return Err(ChronosError::InvalidInput(
                        "sampling settings (num_samples, temperature, top_k, top_p) apply to Chronos-T5 models; Chronos-Bolt predicts quantiles directly".into(),
                    ));
                }
                p.predict_quantiles(context, prediction_length, levels, limit_prediction_length)
            }
            Pipeline::Chronos2(p) => {
                if sampling.is_some() {
                    return Err(ChronosError::InvalidInput(
                        "sampling settings (num_samples, temperature, top_k, top_p) apply to Chronos-T5 models; Chronos-2 predicts quantiles directly".into(),
                    ));
                }
                check_context(context)?;
                let h = horizon(
                    prediction_length,
                    p.prediction_length(),
                    limit_prediction_length,
                )?;
                let rows = Vec::<Vec<f32>>::try_from(context.to_kind(Kind::Float))?;
                let tasks = rows
                    .iter()
                    .map(|row| Chronos2Task::from_targets(&[row], h as usize))
                    .collect::<Result<Vec<_>>>()?;
                let options = Chronos2Options {
                    prediction_length: Some(h),
                    limit_prediction_length,
                    ..Chronos2Options::default()
                };
                let forecasts = p.predict_quantiles(&tasks, levels, &options)?;
                let (quantiles, mean): (Vec<Tensor>, Vec<Tensor>) =
                    forecasts.into_iter().map(|f| (f.quantiles, f.mean)).unzip();
                Ok(QuantileForecast {
                    quantiles: Tensor::cat(&quantiles, 0),
                    mean: Tensor::cat(&mean, 0),
                })
            }
            Pipeline::Chronos(p) => {
                let sampling = sampling.copied().unwrap_or_else(|| p.default_sampling());
                p.predict_quantiles(
                    context,
                    prediction_length,
                    levels,
                    &sampling,
                    limit_prediction_length,
                )
            }
        }
    }
}
