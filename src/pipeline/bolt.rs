//! Chronos-Bolt pipeline (upstream `ChronosBoltPipeline`).

use tch::nn::VarStore;
use tch::{Device, Kind, Tensor};

use super::{check_context, horizon, levels_tensor, Dtype, Embedding, QuantileForecast};
use crate::bolt::{self, ChronosBolt};
use crate::checkpoint::Checkpoint;
use crate::config::ChronosBoltConfig;
use crate::error::{ChronosError, Result};

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
        let t5 = checkpoint.config.t5(&checkpoint.config_path)?;
        chronos.validate().map_err(|message| ChronosError::Config {
            path: checkpoint.config_path.clone(),
            message,
        })?;
        let (mut model, vs) =
            checkpoint.load_model(dtype.kind(), device, &bolt::TIED_ALIASES, |root| {
                ChronosBolt::new(root, t5, &chronos)
            })?;
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
        check_context(context)?;
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
        let horizon = horizon(prediction_length, model_h, limit_prediction_length)?;
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
        let level_tensor = levels_tensor(levels)?;
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
                augmented
                    .quantile(&level_tensor, -1, false, "linear")
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
                loc: Some(encoded.loc_scale.loc.squeeze_dim(-1).to_device(Device::Cpu)),
                scale: encoded
                    .loc_scale
                    .scale
                    .squeeze_dim(-1)
                    .to_device(Device::Cpu),
            })
        })
    }
}
