//! Tokenised Chronos pipeline (upstream `ChronosPipeline`): tokenise, sample paths with the T5
//! (seq2seq) or GPT-2 (causal) backbone, map tokens back to values; longer horizons append the
//! sample median to the context and sample again.

use tch::{Device, Kind, Tensor};

use super::{check_context, horizon, levels_tensor, Dtype, Embedding, QuantileForecast};
use crate::checkpoint::Checkpoint;
use crate::chronos_t5::{self, ChronosT5};
use crate::config::ModelConfig;
use crate::error::{ChronosError, Result};
use crate::gpt2::{self, ChronosGpt2};
use crate::sampling::SamplingConfig;
use crate::tokenizer::{ChronosConfig, MeanScaleUniformBins};

/// The network behind a tokenised Chronos model.
#[derive(Debug)]
pub enum Backbone {
    /// Chronos-T5 (`model_type: seq2seq`).
    Seq2Seq(ChronosT5),
    /// The causal variant (`model_type: causal`, GPT-2).
    Causal(ChronosGpt2),
}

/// A tokenised Chronos model (Chronos-T5 or the causal GPT-2 variant) ready to forecast.
#[derive(Debug)]
pub struct ChronosPipeline {
    pub backbone: Backbone,
    pub tokenizer: MeanScaleUniformBins,
    pub config: ChronosConfig,
    device: Device,
    _vs: tch::nn::VarStore,
}

impl ChronosPipeline {
    /// Builds the model from `checkpoint` and loads its weights at `dtype` on `device`.
    pub fn load(checkpoint: &Checkpoint, dtype: Dtype, device: Device) -> Result<Self> {
        let path = &checkpoint.config_path;
        let chronos: ChronosConfig = checkpoint.config.chronos(path)?;
        let config_err = |message: String| ChronosError::Config {
            path: path.clone(),
            message,
        };
        chronos.validate().map_err(config_err)?;
        let kind = dtype.kind();
        let (backbone, vocab, vs) = match (&checkpoint.config, chronos.model_type.as_str()) {
            (ModelConfig::T5(t5), "seq2seq") => {
                let (mut model, vs) =
                    checkpoint.load_model(kind, device, &chronos_t5::TIED_ALIASES, |root| {
                        ChronosT5::new(root, t5, &chronos)
                    })?;
                model.pack_for_inference();
                (Backbone::Seq2Seq(model), t5.vocab_size, vs)
            }
            (ModelConfig::Gpt2(g), "causal") => {
                if chronos.context_length + chronos.prediction_length > g.n_positions {
                    return Err(config_err(format!(
                        "context_length {} + prediction_length {} exceed n_positions {}",
                        chronos.context_length, chronos.prediction_length, g.n_positions
                    )));
                }
                let (model, vs) = checkpoint.load_model(kind, device, &gpt2::TIED_ALIASES, |root| {
                    ChronosGpt2::new(root, g, &chronos)
                })?;
                (Backbone::Causal(model), g.vocab_size, vs)
            }
            (_, model_type) => {
                return Err(config_err(format!(
                    "chronos_config.model_type '{model_type}' does not match the backbone (seq2seq needs t5, causal needs gpt2)"
                )))
            }
        };
        if chronos.n_tokens != vocab {
            return Err(config_err(format!(
                "chronos_config.n_tokens {} != vocab_size {vocab}",
                chronos.n_tokens
            )));
        }
        Ok(ChronosPipeline {
            tokenizer: MeanScaleUniformBins::new(&chronos),
            backbone,
            config: chronos,
            device,
            _vs: vs,
        })
    }

    pub fn context_length(&self) -> i64 {
        self.config.context_length
    }

    pub fn prediction_length(&self) -> i64 {
        self.config.prediction_length
    }

    /// The checkpoint's sampling settings.
    pub fn default_sampling(&self) -> SamplingConfig {
        let c = &self.config;
        SamplingConfig {
            num_samples: c.num_samples,
            temperature: c.temperature,
            top_k: c.top_k,
            top_p: c.top_p,
        }
    }

    /// Sampled tokens `(batch, num_samples, horizon)` for the last `context_length` steps of
    /// `context` `(batch, len)` (CPU, f32), and the tokenizer's scale `(batch,)`.
    fn sample_tokens(
        &self,
        context: &Tensor,
        horizon: i64,
        sampling: &SamplingConfig,
    ) -> (Tensor, Tensor) {
        let (tokens, scale) = match &self.backbone {
            Backbone::Seq2Seq(_) => self.tokenizer.context_input_transform(context),
            Backbone::Causal(_) => self
                .tokenizer
                .context_input_transform(&impute_last_value(context)),
        };
        let ids = tokens.ids.to_device(self.device);
        let mask = tokens.mask.to_device(self.device);
        let samples = match &self.backbone {
            Backbone::Seq2Seq(t5) => {
                let states = t5.encode(&ids, &mask, false);
                t5.generate(&states, &mask, horizon, sampling)
            }
            Backbone::Causal(gpt2) => gpt2.generate(&ids, &mask, horizon, sampling),
        };
        (samples.to_device(Device::Cpu), scale)
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
                let (samples, scale) =
                    self.sample_tokens(&context, remaining.min(model_h), sampling);
                let prediction = self.tokenizer.output_transform(&samples, &scale);
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

    /// Encoder states of the tokenised context (incl. EOS) and the scale (upstream `embed`);
    /// only seq2seq models have an encoder.
    pub fn embed(&self, context: &Tensor) -> Result<Embedding> {
        check_context(context)?;
        let Backbone::Seq2Seq(t5) = &self.backbone else {
            return Err(ChronosError::Unsupported(
                "encoder embeddings of a causal (GPT-2) Chronos model: it has no encoder".into(),
            ));
        };
        let (tokens, scale) = self
            .tokenizer
            .context_input_transform(&context.to_device(Device::Cpu));
        let embeddings = tch::no_grad(|| {
            t5.encode(
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

/// Missing values of `context` `(batch, len)` replaced by the last observed value of their series
/// (causal models, which upstream trains on imputed series); NaN before a series' first
/// observation stays NaN, i.e. padding (unlike training's GluonTS imputation,
/// `train::data::gluonts_last_value_imputation`, which fills it with the first value).
pub fn impute_last_value(context: &Tensor) -> Tensor {
    let (batch, len) = context.size2().unwrap();
    let observed = context.isnan().logical_not();
    // Index of the last observed step at or before each step (-1 before the first).
    let steps = Tensor::arange(len, (Kind::Int64, context.device())).expand([batch, len], false);
    let last = steps.masked_fill(&observed.logical_not(), -1).cummax(-1).0;
    let filled = context.gather(-1, &last.clamp_min(0), false);
    filled.where_self(&last.ge(0), context)
}
