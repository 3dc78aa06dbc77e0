//! `config.json` of a Chronos checkpoint: the Hugging Face backbone config (`T5Config`, or
//! `GPT2Config` for the causal variant, chosen by `model_type`) plus `chronos_config` and
//! `chronos_pipeline_class`, mirrored by serde structs. Unknown HF fields are kept verbatim so a
//! config read and written again is unchanged.

use std::path::Path;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::error::{ChronosError, Result};

/// The T5 architecture part of `config.json` (names as in `transformers.T5Config`).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct T5Config {
    pub d_model: i64,
    pub d_kv: i64,
    pub d_ff: i64,
    pub num_layers: i64,
    /// Defaults to `num_layers`, as in HF.
    #[serde(default)]
    pub num_decoder_layers: Option<i64>,
    pub num_heads: i64,
    #[serde(default = "default_num_buckets")]
    pub relative_attention_num_buckets: i64,
    #[serde(default = "default_max_distance")]
    pub relative_attention_max_distance: i64,
    #[serde(default = "default_dropout")]
    pub dropout_rate: f64,
    #[serde(default = "default_eps")]
    pub layer_norm_epsilon: f64,
    #[serde(default = "default_initializer_factor")]
    pub initializer_factor: f64,
    /// `relu`, `gelu`, `gated-gelu`, `gated-silu`, ... (HF derives the activation and gating from it).
    #[serde(default = "default_ff_proj")]
    pub feed_forward_proj: String,
    pub vocab_size: i64,
    #[serde(default)]
    pub pad_token_id: Option<i64>,
    #[serde(default)]
    pub eos_token_id: Option<i64>,
    #[serde(default)]
    pub decoder_start_token_id: Option<i64>,
    #[serde(default = "default_true")]
    pub tie_word_embeddings: bool,
    #[serde(default)]
    pub architectures: Vec<String>,
    #[serde(default)]
    pub model_type: Option<String>,
    /// Family-specific settings; parsed by [`ChronosBoltConfig`] or [`ChronosConfig`].
    #[serde(default)]
    pub chronos_config: Option<Value>,
    /// `ChronosPipeline` (default, as upstream) or `ChronosBoltPipeline`.
    #[serde(default)]
    pub chronos_pipeline_class: Option<String>,
    /// Any other HF field, kept for writing the config back unchanged.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

fn default_num_buckets() -> i64 {
    32
}
fn default_max_distance() -> i64 {
    128
}
fn default_dropout() -> f64 {
    0.1
}
fn default_eps() -> f64 {
    1e-6
}
fn default_initializer_factor() -> f64 {
    1.0
}
fn default_ff_proj() -> String {
    "relu".to_string()
}
fn default_true() -> bool {
    true
}

/// Activation of the T5 feed-forward blocks and of Bolt's residual blocks (`config.dense_act_fn`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Activation {
    Relu,
    /// Exact (erf) GELU, HF `gelu`.
    Gelu,
    /// Tanh-approximated GELU written out as HF's `gelu_new` (what `gated-gelu` means in T5);
    /// same formula as [`Activation::GeluTanh`], different rounding.
    GeluNew,
    /// `F.gelu(approximate="tanh")`, HF `gelu_pytorch_tanh`.
    GeluTanh,
    Silu,
}

impl Activation {
    fn from_hf(name: &str) -> Option<Self> {
        match name {
            "relu" => Some(Activation::Relu),
            "gelu" => Some(Activation::Gelu),
            "gelu_new" => Some(Activation::GeluNew),
            "gelu_pytorch_tanh" => Some(Activation::GeluTanh),
            "silu" | "swish" => Some(Activation::Silu),
            _ => None,
        }
    }

    /// Applies the activation, in place where that is autograd-safe (ReLU).
    pub fn apply(self, mut xs: tch::Tensor) -> tch::Tensor {
        match self {
            Activation::Relu => {
                let _ = xs.relu_();
                xs
            }
            Activation::Gelu => xs.gelu("none"),
            Activation::GeluNew => {
                // HF's op order, `0.5 * x` first: autograd sums the three gradients that reach
                // `x` in reverse creation order, so this order gives HF's gradients bit for bit.
                let half = &xs * 0.5;
                let inner = (&xs + xs.pow_tensor_scalar(3.0) * 0.044715)
                    * (2.0 / std::f64::consts::PI).sqrt();
                half * (inner.tanh() + 1.0)
            }
            Activation::GeluTanh => xs.gelu("tanh"),
            Activation::Silu => xs.silu(),
        }
    }
}

impl T5Config {
    pub fn num_decoder_layers(&self) -> i64 {
        self.num_decoder_layers.unwrap_or(self.num_layers)
    }

    /// Whether decoder outputs are scaled by `d_model^-0.5` before a T5 LM head: the
    /// `scale_decoder_outputs` key of transformers 5 configs, else `tie_word_embeddings`
    /// (original T5 scales, T5 v1.1 with an untied head does not).
    pub fn scale_decoder_outputs(&self) -> bool {
        self.extra
            .get("scale_decoder_outputs")
            .and_then(Value::as_bool)
            .unwrap_or(self.tie_word_embeddings)
    }

    /// `(activation, gated)` as HF's `T5Config.__init__` derives them from `feed_forward_proj`.
    pub fn feed_forward(&self) -> std::result::Result<(Activation, bool), String> {
        let proj = self.feed_forward_proj.as_str();
        let parts: Vec<&str> = proj.split('-').collect();
        let (gated, act) = match parts.as_slice() {
            [act] => (false, *act),
            ["gated", act] => (true, *act),
            _ => {
                return Err(format!(
                    "feed_forward_proj '{proj}' is not 'ACT' or 'gated-ACT'"
                ))
            }
        };
        let act = if proj == "gated-gelu" {
            "gelu_new"
        } else {
            act
        };
        let act = Activation::from_hf(act)
            .ok_or_else(|| format!("feed_forward_proj '{proj}': unsupported activation '{act}'"))?;
        Ok((act, gated))
    }

    /// Positive sizes and a supported feed-forward activation.
    pub(crate) fn validate(&self) -> std::result::Result<(), String> {
        for (key, value) in [
            ("d_model", self.d_model),
            ("d_kv", self.d_kv),
            ("d_ff", self.d_ff),
            ("num_layers", self.num_layers),
            ("num_decoder_layers", self.num_decoder_layers()),
            ("num_heads", self.num_heads),
            (
                "relative_attention_num_buckets",
                self.relative_attention_num_buckets,
            ),
            (
                "relative_attention_max_distance",
                self.relative_attention_max_distance,
            ),
            ("vocab_size", self.vocab_size),
        ] {
            if value <= 0 {
                return Err(format!("'{key}' must be positive, got {value}"));
            }
        }
        self.feed_forward()?;
        Ok(())
    }
}

/// The GPT-2 architecture part of `config.json` (names as in `transformers.GPT2Config`), for the
/// causal Chronos variant.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Gpt2Config {
    pub vocab_size: i64,
    pub n_positions: i64,
    pub n_embd: i64,
    pub n_layer: i64,
    pub n_head: i64,
    /// Feed-forward width; `4 * n_embd` when absent, as in HF.
    #[serde(default)]
    pub n_inner: Option<i64>,
    #[serde(default = "default_gpt2_activation")]
    pub activation_function: String,
    #[serde(default = "default_gpt2_eps")]
    pub layer_norm_epsilon: f64,
    #[serde(default = "default_dropout")]
    pub resid_pdrop: f64,
    #[serde(default = "default_dropout")]
    pub embd_pdrop: f64,
    #[serde(default = "default_dropout")]
    pub attn_pdrop: f64,
    #[serde(default = "default_true")]
    pub scale_attn_weights: bool,
    #[serde(default)]
    pub scale_attn_by_inverse_layer_idx: bool,
    #[serde(default = "default_true")]
    pub tie_word_embeddings: bool,
    #[serde(default)]
    pub architectures: Vec<String>,
    #[serde(default)]
    pub chronos_config: Option<Value>,
    #[serde(default)]
    pub chronos_pipeline_class: Option<String>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

fn default_gpt2_activation() -> String {
    "gelu_new".to_string()
}
fn default_gpt2_eps() -> f64 {
    1e-5
}

impl Gpt2Config {
    pub fn n_inner(&self) -> i64 {
        self.n_inner.unwrap_or(4 * self.n_embd)
    }

    pub fn activation(&self) -> std::result::Result<Activation, String> {
        Activation::from_hf(&self.activation_function).ok_or_else(|| {
            format!(
                "activation_function '{}' is not supported",
                self.activation_function
            )
        })
    }

    /// Positive sizes, heads dividing the width, supported options and activation.
    pub(crate) fn validate(&self) -> std::result::Result<(), String> {
        for (key, value) in [
            ("vocab_size", self.vocab_size),
            ("n_positions", self.n_positions),
            ("n_embd", self.n_embd),
            ("n_layer", self.n_layer),
            ("n_head", self.n_head),
            ("n_inner", self.n_inner()),
        ] {
            if value <= 0 {
                return Err(format!("'{key}' must be positive, got {value}"));
            }
        }
        if self.n_embd % self.n_head != 0 {
            return Err(format!(
                "n_embd {} is not a multiple of n_head {}",
                self.n_embd, self.n_head
            ));
        }
        if self.scale_attn_by_inverse_layer_idx {
            return Err("scale_attn_by_inverse_layer_idx is not supported".into());
        }
        self.activation()?;
        Ok(())
    }
}

/// A checkpoint's `config.json`: its backbone, by `model_type` (`t5` when absent).
#[derive(Debug, Clone)]
pub enum ModelConfig {
    T5(T5Config),
    Gpt2(Gpt2Config),
}

impl ModelConfig {
    /// Reads and validates `config.json`.
    pub fn from_file(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|e| ChronosError::io(path, e))?;
        Self::from_json(&text, path)
    }

    /// Parses and validates the text of a `config.json`; `path` names it in errors.
    pub fn from_json(text: &str, path: &Path) -> Result<Self> {
        let err = |message: String| ChronosError::Config {
            path: path.into(),
            message,
        };
        let value: Value = serde_json::from_str(text).map_err(|e| err(e.to_string()))?;
        let model_type = value
            .get("model_type")
            .and_then(Value::as_str)
            .unwrap_or("t5")
            .to_string();
        let config = match model_type.as_str() {
            "t5" => {
                let cfg: T5Config =
                    serde_json::from_value(value).map_err(|e| err(e.to_string()))?;
                cfg.validate().map_err(err)?;
                ModelConfig::T5(cfg)
            }
            "gpt2" => {
                let cfg: Gpt2Config =
                    serde_json::from_value(value).map_err(|e| err(e.to_string()))?;
                cfg.validate().map_err(err)?;
                ModelConfig::Gpt2(cfg)
            }
            other => {
                return Err(err(format!(
                    "model_type '{other}' is not supported (t5 or gpt2)"
                )))
            }
        };
        Ok(config)
    }

    /// `(chronos_config, chronos_pipeline_class)`.
    fn chronos_fields(&self) -> (&Option<Value>, &Option<String>) {
        match self {
            ModelConfig::T5(c) => (&c.chronos_config, &c.chronos_pipeline_class),
            ModelConfig::Gpt2(c) => (&c.chronos_config, &c.chronos_pipeline_class),
        }
    }

    /// The pipeline class named by the config (`ChronosPipeline` when absent, as upstream).
    pub fn pipeline_class(&self) -> &str {
        self.chronos_fields()
            .1
            .as_deref()
            .unwrap_or("ChronosPipeline")
    }

    /// Parses `chronos_config` into a family's settings struct.
    pub fn chronos<C: serde::de::DeserializeOwned>(&self, path: &Path) -> Result<C> {
        let value = self
            .chronos_fields()
            .0
            .clone()
            .ok_or_else(|| ChronosError::Config {
                path: path.into(),
                message: "no 'chronos_config': not a Chronos config file".into(),
            })?;
        serde_json::from_value(value).map_err(|e| ChronosError::Config {
            path: path.into(),
            message: format!("chronos_config: {e}"),
        })
    }

    /// The T5 backbone config; an error naming `path` for another backbone.
    pub fn t5(&self, path: &Path) -> Result<&T5Config> {
        match self {
            ModelConfig::T5(c) => Ok(c),
            ModelConfig::Gpt2(_) => Err(ChronosError::Config {
                path: path.into(),
                message: "this model needs a T5 backbone (model_type t5), not gpt2".into(),
            }),
        }
    }
}

/// `chronos_config` of a Chronos-Bolt checkpoint (upstream `ChronosBoltConfig`).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ChronosBoltConfig {
    pub context_length: i64,
    pub prediction_length: i64,
    pub input_patch_size: i64,
    pub input_patch_stride: i64,
    pub quantiles: Vec<f64>,
    #[serde(default)]
    pub use_reg_token: bool,
}

/// `chronos_config.quantiles`: non-empty, each level `in_range` (named `range`), increasing.
fn check_quantiles(
    quantiles: &[f64],
    range: &str,
    in_range: impl Fn(f64) -> bool,
) -> std::result::Result<(), String> {
    if quantiles.is_empty() || quantiles.iter().any(|&q| !in_range(q)) {
        return Err(format!(
            "chronos_config.quantiles must be non-empty levels in {range}, got {quantiles:?}"
        ));
    }
    if quantiles.windows(2).any(|w| w[0] >= w[1]) {
        return Err(format!(
            "chronos_config.quantiles must be increasing, got {quantiles:?}"
        ));
    }
    Ok(())
}

impl ChronosBoltConfig {
    pub fn validate(&self) -> std::result::Result<(), String> {
        for (key, value) in [
            ("context_length", self.context_length),
            ("prediction_length", self.prediction_length),
            ("input_patch_size", self.input_patch_size),
            ("input_patch_stride", self.input_patch_stride),
        ] {
            if value <= 0 {
                return Err(format!(
                    "chronos_config.{key} must be positive, got {value}"
                ));
            }
        }
        check_quantiles(&self.quantiles, "[0, 1]", |q| (0.0..=1.0).contains(&q))
    }
}

/// `chronos_config` of a Chronos-2 checkpoint (upstream `Chronos2ForecastingConfig`).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Chronos2Config {
    pub context_length: i64,
    pub output_patch_size: i64,
    pub input_patch_size: i64,
    pub input_patch_stride: i64,
    pub quantiles: Vec<f64>,
    #[serde(default)]
    pub use_reg_token: bool,
    #[serde(default)]
    pub use_arcsinh: bool,
    #[serde(default = "default_max_output_patches")]
    pub max_output_patches: i64,
    /// Divisor of the time encodings; `context_length` when absent, as upstream.
    #[serde(default)]
    pub time_encoding_scale: Option<i64>,
}

fn default_max_output_patches() -> i64 {
    1
}

impl Chronos2Config {
    /// The divisor of the time encodings.
    pub fn time_encoding_scale(&self) -> i64 {
        self.time_encoding_scale.unwrap_or(self.context_length)
    }

    /// Steps forecast by one forward pass (`max_output_patches * output_patch_size`).
    pub fn prediction_length(&self) -> i64 {
        self.max_output_patches * self.output_patch_size
    }

    pub fn validate(&self) -> std::result::Result<(), String> {
        for (key, value) in [
            ("context_length", self.context_length),
            ("output_patch_size", self.output_patch_size),
            ("input_patch_size", self.input_patch_size),
            ("input_patch_stride", self.input_patch_stride),
            ("max_output_patches", self.max_output_patches),
            ("time_encoding_scale", self.time_encoding_scale()),
        ] {
            if value <= 0 {
                return Err(format!(
                    "chronos_config.{key} must be positive, got {value}"
                ));
            }
        }
        if self.input_patch_size != self.output_patch_size {
            return Err(format!(
                "chronos_config.input_patch_size ({}) and output_patch_size ({}) must be equal",
                self.input_patch_size, self.output_patch_size
            ));
        }
        check_quantiles(&self.quantiles, "(0, 1)", |q| q > 0.0 && q < 1.0)
    }
}
