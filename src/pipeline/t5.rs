//! Chronos-T5 pipeline (upstream `ChronosPipeline`): tokenise, sample paths, map tokens back to
//! values; longer horizons append the sample median to the context and sample again.

use tch::nn::VarStore;
use tch::{Device, Kind, Tensor};

use super::{check_context, horizon, levels_tensor, Dtype, Embedding, QuantileForecast};
use crate::checkpoint::Checkpoint;
use crate::chronos_t5::{self, ChronosT5};
use crate::error::{ChronosError, Result};
use crate::sampling::SamplingConfig;
use crate::tokenizer::{ChronosT5Config, MeanScaleUniformBins};

/// A Chronos-T5 model ready to forecast.
#[derive(Debug)]
pub struct T5Pipeline {
    pub model: ChronosT5,
    pub tokenizer: MeanScaleUniformBins,
    device: Device,
    _vs: VarStore,
}

impl T5Pipeline {
    /// Builds the model from `checkpoint` and loads its weights at `dtype` on `device`.
    pub fn load(checkpoint: &Checkpoint, dtype: Dtype, device: Device) -> Result<Self> {
        let path = &checkpoint.config_path;
        let chronos: ChronosT5Config = checkpoint.config.chronos(path)?;
        let config_err = |message: String| ChronosError::Config {
            path: path.clone(),
            message,
        };
        chronos.validate().map_err(config_err)?;
        if chronos.model_type != "seq2seq" {
            return Err(ChronosError::Unsupported(format!(
                "{}: model_type '{}' (only seq2seq Chronos-T5 models are implemented)",
                path.display(),
                chronos.model_type
            )));
        }
        if chronos.n_tokens != checkpoint.config.vocab_size {
            return Err(config_err(format!(
                "chronos_config.n_tokens {} != vocab_size {}",
                chronos.n_tokens, checkpoint.config.vocab_size
            )));
        }
        let (mut model, vs) =
            checkpoint.load_model(dtype.kind(), device, &chronos_t5::TIED_ALIASES, |root| {
                ChronosT5::new(root, &checkpoint.config, &chronos)
            })?;
        model.pack_for_inference();
        Ok(T5Pipeline {
            tokenizer: MeanScaleUniformBins::new(&chronos),
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

    /// The checkpoint's sampling settings.
    pub fn default_sampling(&self) -> SamplingConfig {
        let c = &self.model.chronos;
        SamplingConfig {
            num_samples: c.num_samples,
            temperature: c.temperature,
            top_k: c.top_k,
            top_p: c.top_p,
        }
    }

    /// Sample paths `(batch, num_samples, horizon)` f32 on CPU for `context` `(batch, len)`
    /// (NaN = missing, left-padded). Draws from libtorch's global generator (seed it with
    /// `tch::manual_seed` for reproducible paths).
    pub fn predict(
        &self,
        context: &Tensor,
        prediction_length: Option<i64>,
        sampling: &SamplingConfig,
        limit_prediction_length: bool,
    ) -> Result<Tensor> {
        check_context(context)?;
        sampling.validate()?;
        let model_h = self.prediction_length();
        let mut remaining = horizon(prediction_length, model_h, limit_prediction_length)?;
        let mut context = context.to_device(Device::Cpu).to_kind(Kind::Float);
        let mut predictions = Vec::new();
        tch::no_grad(|| {
            loop {
                let (tokens, scale) = self.tokenizer.context_input_transform(&context);
                let mask = tokens.mask.to_device(self.device);
                let states = self
                    .model
                    .encode(&tokens.ids.to_device(self.device), &mask, false);
                let samples = self
                    .model
                    .generate(&states, &mask, remaining.min(model_h), sampling);
                let prediction = self
                    .tokenizer
                    .output_transform(&samples.to_device(Device::Cpu), &scale);
                remaining -= prediction.size()[2];
                if remaining <= 0 {
                    predictions.push(prediction);
                    break;
                }
                let (median, _) = prediction.median_dim(1, false);
                context = Tensor::cat(&[context, median], -1);
                predictions.push(prediction);
            }
            Ok(Tensor::cat(&predictions, -1))
        })
    }

    /// Empirical quantiles `(batch, horizon, levels)` and mean `(batch, horizon)` of the
    /// sample paths (upstream `predict_quantiles`).
    pub fn predict_quantiles(
        &self,
        context: &Tensor,
        prediction_length: Option<i64>,
        levels: &[f64],
        sampling: &SamplingConfig,
        limit_prediction_length: bool,
    ) -> Result<QuantileForecast> {
        let levels = levels_tensor(levels)?;
        // (batch, horizon, samples)
        let samples = self
            .predict(
                context,
                prediction_length,
                sampling,
                limit_prediction_length,
            )?
            .transpose(1, 2);
        Ok(QuantileForecast {
            quantiles: samples
                .quantile(&levels, -1, false, "linear")
                .permute([1, 2, 0]),
            mean: samples.mean_dim(-1, false, None::<Kind>),
        })
    }

    /// Encoder states of the tokenised context (incl. EOS) and the scale (upstream `embed`).
    pub fn embed(&self, context: &Tensor) -> Result<Embedding> {
        check_context(context)?;
        let (tokens, scale) = self
            .tokenizer
            .context_input_transform(&context.to_device(Device::Cpu));
        let embeddings = tch::no_grad(|| {
            self.model.encode(
                &tokens.ids.to_device(self.device),
                &tokens.mask.to_device(self.device),
                false,
            )
        });
        Ok(Embedding {
            embeddings: embeddings.to_device(Device::Cpu),
            loc: None,
            scale,
        })
    }
}
