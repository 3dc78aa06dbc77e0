//! Forecasting pipelines (upstream `BaseChronosPipeline` and its subclasses): loading a checkpoint
//! into a model of the class its config names, and the `predict` / `predict_quantiles` / `embed`
//! entry points with upstream's semantics.

use tch::nn::VarStore;
use tch::{Device, Kind, Tensor};

use crate::bolt::{self, ChronosBolt};
use crate::checkpoint::Checkpoint;
use crate::config::ChronosBoltConfig;
use crate::error::{ChronosError, Result};

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
    /// `(batch, horizon)` f32, CPU: the median (Bolt's mean is its median, as upstream).
    pub mean: Tensor,
}

/// Encoder embeddings (upstream `embed`).
#[derive(Debug)]
pub struct Embedding {
    /// `(batch, patches [+ 1], d_model)`, model dtype, CPU.
    pub embeddings: Tensor,
    /// `(batch,)` f32, CPU.
    pub loc: Tensor,
    /// `(batch,)` f32, CPU.
    pub scale: Tensor,
}

/// A Chronos-Bolt model ready to forecast (upstream `ChronosBoltPipeline`).
#[derive(Debug)]
pub struct BoltPipeline {
    pub model: ChronosBolt,
    device: Device,
    _vs: VarStore,
}

impl BoltPipeline {
    /// Builds the model from `checkpoint` and loads its weights at `dtype` on `device`.
    pub fn load(checkpoint: &Checkpoint, dtype: Dtype, device: Device) -> Result<Self> {
        let chronos: ChronosBoltConfig = checkpoint.config.chronos(&checkpoint.config_path)?;
        chronos.validate().map_err(|message| ChronosError::Config {
            path: checkpoint.config_path.clone(),
            message,
        })?;
        let mut vs = VarStore::new(device);
        let mut model = ChronosBolt::new(&vs.root(), &checkpoint.config, &chronos);
        vs.set_kind(dtype.kind());
        vs.freeze();
        checkpoint.load_into(&mut vs, &bolt::TIED_ALIASES)?;
        model.pack_for_inference();
        Ok(BoltPipeline {
            model,
            device,
            _vs: vs,
        })
    }

    pub fn context_length(&self) -> i64 {
        self.model.chronos.context_length
    }

    pub fn prediction_length(&self) -> i64 {
        self.model.chronos.prediction_length
    }

    /// The quantile levels the model outputs.
    pub fn quantiles(&self) -> &[f64] {
        &self.model.chronos.quantiles
    }

    /// Keeps the last `context_length` steps of `context` `(batch, len)` and moves it to the
    /// model's device as f32.
    fn prepare(&self, context: &Tensor) -> Result<Tensor> {
        if context.dim() != 2 {
            return Err(ChronosError::InvalidInput(format!(
                "context must be (batch, length), got shape {:?}",
                context.size()
            )));
        }
        let len = context.size()[1];
        let keep = len.min(self.context_length());
        Ok(context
            .narrow(1, len - keep, keep)
            .to_device(self.device)
            .to_kind(Kind::Float))
    }

    /// Quantile forecasts `(batch, quantiles, prediction_length)` f32 on CPU for `context`
    /// `(batch, len)` (NaN = missing, left-padded). Horizons beyond the model's are unrolled as
    /// upstream: every quantile path is fed back as context and the `Q * Q` forecasts are
    /// reduced to `Q` empirical quantiles. With `limit_prediction_length`, such horizons are an
    /// error instead.
    pub fn predict(
        &self,
        context: &Tensor,
        prediction_length: Option<i64>,
        limit_prediction_length: bool,
    ) -> Result<Tensor> {
        let model_h = self.prediction_length();
        let horizon = prediction_length.unwrap_or(model_h);
        if horizon <= 0 {
            return Err(ChronosError::InvalidInput(format!(
                "prediction_length must be positive, got {horizon}"
            )));
        }
        if horizon > model_h && limit_prediction_length {
            return Err(ChronosError::InvalidInput(format!(
                "prediction_length {horizon} exceeds the model's {model_h}; allow longer horizons by not limiting the prediction length"
            )));
        }
        let mut context = self.prepare(context)?;
        tch::no_grad(|| {
            let mut prediction = self.model.forward(&context);
            let mut predictions = vec![prediction.shallow_clone()];
            let mut remaining = horizon - model_h;
            if remaining > 0 {
                let q = self.quantiles().len() as i64;
                let levels = Tensor::from_slice(&self.quantiles_f32()).to_device(self.device);
                // (batch, Q, len): one context per quantile path.
                context = context.unsqueeze(1).repeat([1, q, 1]);
                while remaining > 0 {
                    let joined = Tensor::cat(&[&context, &prediction], -1);
                    let len = joined.size()[2];
                    let keep = len.min(self.context_length());
                    context = joined.narrow(2, len - keep, keep);
                    let (b, q, l) = context.size3().unwrap();
                    let paths = self.model.forward(&context.reshape([b * q, l]));
                    prediction = paths
                        .reshape([b, q * q, -1])
                        .quantile(&levels, 1, false, "linear")
                        .transpose(0, 1);
                    predictions.push(prediction.shallow_clone());
                    remaining -= model_h;
                }
            }
            Ok(Tensor::cat(&predictions, -1)
                .narrow(-1, 0, horizon)
                .to_device(Device::Cpu))
        })
    }

    fn quantiles_f32(&self) -> Vec<f32> {
        self.quantiles().iter().map(|&q| q as f32).collect()
    }

    /// Forecasts at arbitrary quantile `levels` (upstream `predict_quantiles`): the model's own
    /// levels are selected; other levels are interpolated linearly between them, clamped to
    /// the lowest/highest model level outside their range.
    pub fn predict_quantiles(
        &self,
        context: &Tensor,
        prediction_length: Option<i64>,
        levels: &[f64],
        limit_prediction_length: bool,
    ) -> Result<QuantileForecast> {
        if let Some(bad) = levels.iter().find(|q| !(0.0..=1.0).contains(*q)) {
            return Err(ChronosError::InvalidInput(format!(
                "quantile level {bad} is outside [0, 1]"
            )));
        }
        let trained = self.quantiles();
        let median = trained.iter().position(|&q| q == 0.5).ok_or_else(|| {
            ChronosError::Unsupported(format!(
                "the model's quantiles {trained:?} do not include 0.5, needed for the point forecast"
            ))
        })?;
        // (batch, horizon, trained levels)
        let predictions = self
            .predict(context, prediction_length, limit_prediction_length)?
            .transpose(1, 2);
        let indices: Option<Vec<i64>> = levels
            .iter()
            .map(|q| trained.iter().position(|t| t == q).map(|i| i as i64))
            .collect();
        let quantiles = match indices {
            Some(indices) => predictions.index_select(-1, &Tensor::from_slice(&indices)),
            None => {
                let augmented = Tensor::cat(
                    &[
                        predictions.narrow(-1, 0, 1),
                        predictions.shallow_clone(),
                        predictions.narrow(-1, -1, 1),
                    ],
                    -1,
                );
                let q: Vec<f32> = levels.iter().map(|&q| q as f32).collect();
                augmented
                    .quantile(&Tensor::from_slice(&q), -1, false, "linear")
                    .permute([1, 2, 0])
            }
        };
        let mean = predictions.select(-1, median as i64);
        Ok(QuantileForecast { quantiles, mean })
    }

    /// Encoder embeddings and loc/scale of `context` `(batch, len)` (upstream `embed`).
    pub fn embed(&self, context: &Tensor) -> Result<Embedding> {
        let context = self.prepare(context)?;
        tch::no_grad(|| {
            let encoded = self.model.encode(&context, false);
            Ok(Embedding {
                embeddings: encoded.hidden.to_device(Device::Cpu),
                loc: encoded.loc_scale.loc.squeeze_dim(-1).to_device(Device::Cpu),
                scale: encoded
                    .loc_scale
                    .scale
                    .squeeze_dim(-1)
                    .to_device(Device::Cpu),
            })
        })
    }
}

/// A loaded Chronos model of whichever family its config names.
#[derive(Debug)]
pub enum Pipeline {
    Bolt(BoltPipeline),
}

impl Pipeline {
    /// Opens `model` (a local folder or a hub id) and loads the pipeline class its config
    /// names (`chronos_pipeline_class`, default `ChronosPipeline`, as upstream).
    pub fn load(model: &str, dtype: Dtype, device: Device) -> Result<Self> {
        let checkpoint = Checkpoint::open(model)?;
        match checkpoint.config.pipeline_class() {
            "ChronosBoltPipeline" => Ok(Pipeline::Bolt(BoltPipeline::load(
                &checkpoint,
                dtype,
                device,
            )?)),
            "ChronosPipeline" => Err(ChronosError::Unsupported(format!(
                "{}: Chronos-T5 (ChronosPipeline) models are not implemented yet",
                checkpoint.config_path.display()
            ))),
            other => Err(ChronosError::Config {
                path: checkpoint.config_path.clone(),
                message: format!("unknown chronos_pipeline_class '{other}'"),
            }),
        }
    }
}
