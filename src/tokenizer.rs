//! Chronos-T5's tokenizer (upstream `MeanScaleUniformBins`): each series is divided by the mean
//! absolute value of its observed context, and values are binned into `n_tokens -
//! n_special_tokens - 1` uniform bins between the limits; NaN becomes the pad token.

use serde::{Deserialize, Serialize};
use tch::{Device, Kind, Tensor};

/// `chronos_config` of a Chronos-T5 checkpoint (upstream `ChronosConfig`).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ChronosConfig {
    pub tokenizer_class: String,
    pub tokenizer_kwargs: TokenizerKwargs,
    pub context_length: i64,
    pub prediction_length: i64,
    pub n_tokens: i64,
    pub n_special_tokens: i64,
    pub pad_token_id: i64,
    pub eos_token_id: i64,
    pub use_eos_token: bool,
    /// `seq2seq` (T5) or `causal` (GPT-2).
    pub model_type: String,
    pub num_samples: i64,
    pub temperature: f64,
    pub top_k: i64,
    pub top_p: f64,
}

/// `tokenizer_kwargs` of `MeanScaleUniformBins`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct TokenizerKwargs {
    pub low_limit: f64,
    pub high_limit: f64,
}

impl ChronosConfig {
    pub fn validate(&self) -> Result<(), String> {
        if self.tokenizer_class != "MeanScaleUniformBins" {
            return Err(format!(
                "chronos_config.tokenizer_class '{}' is not supported (only MeanScaleUniformBins)",
                self.tokenizer_class
            ));
        }
        for (key, value) in [
            ("context_length", self.context_length),
            ("prediction_length", self.prediction_length),
            ("num_samples", self.num_samples),
        ] {
            if value <= 0 {
                return Err(format!(
                    "chronos_config.{key} must be positive, got {value}"
                ));
            }
        }
        if self.n_tokens - self.n_special_tokens - 1 < 2 {
            return Err(format!(
                "chronos_config: n_tokens {} leaves fewer than 2 bins after {} special tokens",
                self.n_tokens, self.n_special_tokens
            ));
        }
        for (key, id) in [
            ("pad_token_id", self.pad_token_id),
            ("eos_token_id", self.eos_token_id),
        ] {
            if !(0..self.n_special_tokens).contains(&id) {
                return Err(format!(
                    "chronos_config.{key} {id} must be a special token (< n_special_tokens {})",
                    self.n_special_tokens
                ));
            }
        }
        let kw = &self.tokenizer_kwargs;
        if kw.low_limit.partial_cmp(&kw.high_limit) != Some(std::cmp::Ordering::Less) {
            return Err("chronos_config.tokenizer_kwargs: low_limit must be < high_limit".into());
        }
        if !matches!(self.model_type.as_str(), "seq2seq" | "causal") {
            return Err(format!(
                "chronos_config.model_type '{}' is not seq2seq or causal",
                self.model_type
            ));
        }
        Ok(())
    }
}

/// Token ids of a batch with their attention mask.
#[derive(Debug)]
pub struct Tokens {
    /// `(batch, len)` int64.
    pub ids: Tensor,
    /// `(batch, len)` bool: observed values (and EOS).
    pub mask: Tensor,
}

/// Mean scaling and uniform binning.
#[derive(Debug)]
pub struct MeanScaleUniformBins {
    config: ChronosConfig,
    /// `(n_tokens - n_special_tokens - 1,)` f32: the value each bin stands for.
    pub centers: Tensor,
    /// `(bins + 1,)` f32: midpoints between centers, with ±1e20 at the ends.
    pub boundaries: Tensor,
}

impl MeanScaleUniformBins {
    pub fn new(config: &ChronosConfig) -> Self {
        let bins = config.n_tokens - config.n_special_tokens - 1;
        let kw = &config.tokenizer_kwargs;
        let centers = Tensor::linspace(
            kw.low_limit,
            kw.high_limit,
            bins,
            (Kind::Float, Device::Cpu),
        );
        let mids = (centers.narrow(0, 1, bins - 1) + centers.narrow(0, 0, bins - 1)) / 2.0;
        let boundaries = Tensor::cat(
            &[
                Tensor::from_slice(&[-1e20f32]),
                mids,
                Tensor::from_slice(&[1e20f32]),
            ],
            0,
        );
        MeanScaleUniformBins {
            config: config.clone(),
            centers,
            boundaries,
        }
    }

    /// Token ids of `values` `(batch, len)` at `scale` `(batch,)` (CPU, f32), or at the mean
    /// absolute observed value when `scale` is `None` (1 where that is not positive).
    /// Returns ids, mask and the scale used.
    fn input_transform(&self, values: &Tensor, scale: Option<&Tensor>) -> (Tokens, Tensor) {
        let values = values.to_kind(Kind::Float);
        let mask = values.isnan().logical_not();
        let scale = match scale {
            Some(s) => s.shallow_clone(),
            None => {
                let observed = mask.to_kind(Kind::Float);
                let scale = (values.abs() * &observed).nansum(-1, false, None::<Kind>)
                    / observed.nansum(-1, false, None::<Kind>);
                scale.where_scalarother(&scale.gt(0.0), 1.0)
            }
        };
        let scaled = values / scale.unsqueeze(-1);
        let ids = (scaled.bucketize(&self.boundaries, false, true) + self.config.n_special_tokens)
            .clamp(0, self.config.n_tokens - 1)
            .where_scalarother(&mask, self.config.pad_token_id);
        (Tokens { ids, mask }, scale)
    }

    fn append_eos(&self, tokens: Tokens) -> Tokens {
        let b = tokens.ids.size()[0];
        let eos = Tensor::full([b, 1], self.config.eos_token_id, (Kind::Int64, Device::Cpu));
        let yes = Tensor::ones([b, 1], (Kind::Bool, Device::Cpu));
        Tokens {
            ids: Tensor::cat(&[tokens.ids, eos], 1),
            mask: Tensor::cat(&[tokens.mask, yes], 1),
        }
    }

    /// Tokens of the last `context_length` steps of `context` `(batch, len)` (NaN = missing),
    /// with EOS appended for seq2seq models, and the per-series scale `(batch,)`.
    pub fn context_input_transform(&self, context: &Tensor) -> (Tokens, Tensor) {
        let len = context.size()[1];
        let keep = len.min(self.config.context_length);
        let (tokens, scale) = self.input_transform(&context.narrow(1, len - keep, keep), None);
        if self.config.use_eos_token && self.config.model_type == "seq2seq" {
            (self.append_eos(tokens), scale)
        } else {
            (tokens, scale)
        }
    }

    /// Tokens of a future `label` `(batch, prediction_length)` at the context's `scale`, with
    /// EOS appended when the model uses it (training targets).
    pub fn label_input_transform(&self, label: &Tensor, scale: &Tensor) -> Tokens {
        let (tokens, _) = self.input_transform(label, Some(scale));
        if self.config.use_eos_token {
            self.append_eos(tokens)
        } else {
            tokens
        }
    }

    /// Values of sampled token ids `(batch, samples, len)` at `scale` `(batch,)`.
    pub fn output_transform(&self, samples: &Tensor, scale: &Tensor) -> Tensor {
        let bins = self.centers.size()[0];
        let indices = (samples - self.config.n_special_tokens - 1).clamp(0, bins - 1);
        self.centers
            .index_select(0, &indices.flatten(0, -1))
            .view(indices.size().as_slice())
            * scale.view([-1, 1, 1])
    }
}
