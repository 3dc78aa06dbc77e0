//! Training configuration: the options of upstream `scripts/training/train.py` (its `main(...)`
//! signature, with the same names and defaults, read from the same YAML files), plus
//! `model_family: t5 | bolt`, Chronos-Bolt's keys (`input_patch_size`, `input_patch_stride`,
//! `quantiles`, `use_reg_token`) and `model_config` (the architecture, without network).
//!
//! A config is read with [`TrainConfig::from_yaml`], changed with
//! [`TrainConfig::apply_overrides`] (`--max-steps 1000`, `--max_steps=1000`), and checked with
//! [`TrainConfig::validate`]; [`TrainConfig::load`] does all three. Every value goes through
//! serde, so a YAML file and the command line reject the same things, and every error names the
//! key. [`TrainConfig::config_json`] gives the checkpoint's `config.json`, in the shape the Python
//! package loads.

pub mod architecture;
mod overrides;

use std::fmt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::config::{ChronosBoltConfig, ModelConfig};
use crate::tokenizer::{ChronosConfig, TokenizerKwargs};
use crate::train::step::ScheduleKind;

pub use architecture::{Architecture, ArchitectureSpec, ModelSize};

/// Where a value came from, for error messages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    /// A YAML config file.
    File(PathBuf),
    /// YAML text given directly ([`TrainConfig::from_yaml_str`]).
    Text,
    /// `--key value` arguments.
    CommandLine,
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Origin::File(path) => write!(f, "{}", path.display()),
            Origin::Text => f.write_str("config text"),
            Origin::CommandLine => f.write_str("command line"),
        }
    }
}

/// Errors of the training configuration; each names the file and the key it is about.
#[derive(Debug, thiserror::Error)]
pub enum TrainConfigError {
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// Not YAML, or not a mapping of keys to values.
    #[error("{origin}: not a YAML mapping of training options: {message}")]
    Syntax { origin: Origin, message: String },
    #[error("{origin}: unknown key '{key}'{}", suggestion.as_ref().map(|s| format!(" (did you mean '{s}'?)")).unwrap_or_default())]
    UnknownKey {
        origin: Origin,
        key: String,
        suggestion: Option<String>,
    },
    /// A value that does not deserialise into the key's type (the message says which type).
    #[error("{origin}: key '{key}': {message}")]
    WrongType {
        origin: Origin,
        key: String,
        message: String,
    },
    /// Malformed command line (not `--key value` pairs).
    #[error("command line: {0}")]
    Arguments(String),
    /// A well-typed value that [`TrainConfig::validate`] rejects.
    #[error("key '{key}': {message}")]
    Invalid { key: String, message: String },
}

impl TrainConfigError {
    /// The config key the error is about, if any.
    pub fn key(&self) -> Option<&str> {
        match self {
            TrainConfigError::UnknownKey { key, .. }
            | TrainConfigError::WrongType { key, .. }
            | TrainConfigError::Invalid { key, .. } => Some(key),
            _ => None,
        }
    }

    pub(crate) fn invalid(key: &str, message: impl Into<String>) -> Self {
        TrainConfigError::Invalid {
            key: key.to_string(),
            message: message.into(),
        }
    }
}

type Result<T, E = TrainConfigError> = std::result::Result<T, E>;

fn bad(key: &str, message: impl Into<String>) -> TrainConfigError {
    TrainConfigError::invalid(key, message)
}

/// Which model is trained.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ModelFamily {
    /// Tokenised Chronos (upstream's `train.py`): a T5 encoder-decoder, or GPT-2 with
    /// `model_type: causal`; cross-entropy over `n_tokens` bins.
    T5,
    /// Chronos-Bolt: patched inputs, a T5 encoder-decoder, direct quantile outputs.
    Bolt,
}

/// `model_type` of tokenised Chronos.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ModelType {
    /// Encoder-decoder (T5).
    Seq2seq,
    /// Decoder-only (GPT-2), trained with missing values filled by the last observation.
    Causal,
}

impl ModelType {
    /// The name in `chronos_config.model_type`.
    pub fn as_str(self) -> &'static str {
        match self {
            ModelType::Seq2seq => "seq2seq",
            ModelType::Causal => "causal",
        }
    }
}

/// `optim` (HF `TrainingArguments.optim`): the two spellings of AdamW that Chronos uses; both
/// are the same update (torch's AdamW, `weight_decay` 0, betas 0.9/0.999, eps 1e-8).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Optim {
    AdamwTorchFused,
    AdamwTorch,
}

/// `tokenizer_class`: upstream has one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum TokenizerClass {
    MeanScaleUniformBins,
}

/// Bolt's defaults (those of the published Chronos-Bolt checkpoints).
pub const BOLT_PATCH_SIZE: i64 = 16;
pub const BOLT_QUANTILES: [f64; 9] = [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9];

/// Keys that only tokenised Chronos (`model_family: t5`) uses; a Bolt config must leave them at
/// their defaults.
pub const T5_ONLY_KEYS: [&str; 13] = [
    "model_type",
    "tie_embeddings",
    "tokenizer_class",
    "tokenizer_kwargs",
    "n_tokens",
    "n_special_tokens",
    "pad_token_id",
    "eos_token_id",
    "use_eos_token",
    "num_samples",
    "temperature",
    "top_k",
    "top_p",
];

/// Keys that only Chronos-Bolt uses; a `t5` config must leave them out.
pub const BOLT_ONLY_KEYS: [&str; 6] = [
    "input_patch_size",
    "input_patch_stride",
    "quantiles",
    "use_reg_token",
    "skip_constant_contexts",
    "max_scaled_target",
];

/// A training run's configuration. Field names, types and defaults are those of upstream
/// `train.py`'s `main(...)` (a field's doc says where ours differ in form, never in default).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TrainConfig {
    /// Which model is trained (not upstream's; default `t5`, what upstream trains).
    pub model_family: ModelFamily,

    // ---- Data.
    /// GluonTS-style Arrow files to train on; required (upstream has no default). Relative
    /// paths are relative to the working directory, as upstream.
    pub training_data_paths: Vec<PathBuf>,
    /// Mixing weight of each dataset (normalised); default: uniform.
    pub probability: Option<Vec<f64>>,
    pub context_length: i64,
    pub prediction_length: i64,
    /// Series need `min_past + prediction_length` observations; training windows need
    /// `min_past` of history (upstream reads 0 as `prediction_length` there).
    pub min_past: i64,
    /// Series with a larger fraction of NaN are dropped.
    pub max_missing_prop: f64,
    /// Size of the pseudo-shuffle buffer (1 = no shuffling).
    pub shuffle_buffer_length: usize,
    /// Data-loading workers; each takes a share of the datasets, so at most as many are used as
    /// there are datasets ([`TrainConfig::dataloader_workers`]), as upstream.
    pub dataloader_num_workers: usize,

    // ---- Optimisation.
    pub max_steps: usize,
    /// A checkpoint every `save_steps` optimiser steps.
    pub save_steps: usize,
    /// A log line every `log_steps` optimiser steps.
    pub log_steps: usize,
    pub per_device_train_batch_size: usize,
    pub gradient_accumulation_steps: usize,
    pub learning_rate: f64,
    pub optim: Optim,
    pub lr_scheduler_type: ScheduleKind,
    /// Fraction of `max_steps` spent warming up ([`TrainConfig::warmup_steps`]).
    pub warmup_ratio: f64,
    /// Random seed; none: drawn at random when training starts (upstream: `randint(0, 2**32)`).
    pub seed: Option<u64>,
    /// TF32 matmuls on GPUs that have them (compute capability 8+); ignored elsewhere.
    pub tf32: bool,
    /// Mixed precision (HF `TrainingArguments.bf16`): forward passes and losses under bfloat16
    /// autocast on the run's device (CPU or CUDA); weights, gradients and AdamW stay f32.
    pub bf16: bool,
    /// Upstream's `torch.compile` switch, accepted so upstream configs load; libtorch has no
    /// compiler, so it has no effect.
    pub torch_compile: bool,
    /// Runs go to `output_dir/run-N` (the next free N), as upstream.
    pub output_dir: PathBuf,

    // ---- Model.
    /// The architecture (and, without `random_init`, the weights): a local folder with a
    /// `config.json`, or a hub id; hub ids of the published backbones
    /// (`google/t5-efficient-{tiny,mini,small,base,large}`, `openai-community/gpt2`) resolve to a
    /// built-in table, so no download is needed to train from scratch.
    pub model_id: String,
    /// Architecture instead of `model_id`'s (not upstream's): a size name
    /// (`tiny|mini|small|base|large`), a `config.json`/YAML file or a folder holding a
    /// `config.json`, or an inline mapping of `config.json` fields (HF defaults for the rest).
    /// Only with `random_init: true`.
    pub model_config: Option<ArchitectureSpec>,
    /// `seq2seq` (T5) or `causal` (GPT-2); tokenised Chronos only.
    pub model_type: ModelType,
    /// Random initialisation (T5: `initializer_factor` 0.05) instead of `model_id`'s weights.
    pub random_init: bool,
    /// With `random_init`, whether the output layer shares the input embedding.
    pub tie_embeddings: bool,

    // ---- Tokenised Chronos (`chronos_config`).
    pub tokenizer_class: TokenizerClass,
    /// Upstream also accepts the Python literal `"{'low_limit': -15.0, 'high_limit': 15.0}"`,
    /// which is YAML too.
    pub tokenizer_kwargs: TokenizerKwargs,
    /// Vocabulary size (= the model's `vocab_size`).
    pub n_tokens: i64,
    pub n_special_tokens: i64,
    pub pad_token_id: i64,
    pub eos_token_id: i64,
    pub use_eos_token: bool,
    /// Sampling defaults stored in the checkpoint for forecasting (not used in training).
    pub num_samples: i64,
    pub temperature: f64,
    pub top_k: i64,
    pub top_p: f64,

    // ---- Chronos-Bolt (`chronos_config`); absent = the published models' values.
    /// Default 16.
    pub input_patch_size: Option<i64>,
    /// Default `input_patch_size`.
    pub input_patch_stride: Option<i64>,
    /// Default 0.1, 0.2, ..., 0.9.
    pub quantiles: Option<Vec<f64>>,
    /// Default true.
    pub use_reg_token: Option<bool>,
    /// Leave out training instances whose observed context is constant (not upstream's; default
    /// false): Bolt's instance norm turns a context of zeros followed by a non-zero future into
    /// targets of ~1e5 (see `Instance::has_varying_past`).
    pub skip_constant_contexts: Option<bool>,
    /// Leave out training instances whose target, scaled by Bolt's instance norm of the
    /// context, exceeds this in absolute value (not upstream's; default none). Such rare
    /// instances (a count starting from near zero) otherwise carry most of the loss.
    pub max_scaled_target: Option<f64>,
}

impl Default for TrainConfig {
    /// Upstream `main(...)`'s defaults (with no training data).
    fn default() -> Self {
        TrainConfig {
            model_family: ModelFamily::T5,
            training_data_paths: Vec::new(),
            probability: None,
            context_length: 512,
            prediction_length: 64,
            min_past: 64,
            max_missing_prop: 0.9,
            shuffle_buffer_length: 100,
            dataloader_num_workers: 1,
            max_steps: 200_000,
            save_steps: 50_000,
            log_steps: 500,
            per_device_train_batch_size: 32,
            gradient_accumulation_steps: 2,
            learning_rate: 1e-3,
            optim: Optim::AdamwTorchFused,
            lr_scheduler_type: ScheduleKind::Linear,
            warmup_ratio: 0.0,
            seed: None,
            tf32: true,
            bf16: false,
            torch_compile: true,
            output_dir: PathBuf::from("./output/"),
            model_id: "google/t5-efficient-tiny".to_string(),
            model_config: None,
            model_type: ModelType::Seq2seq,
            random_init: false,
            tie_embeddings: false,
            tokenizer_class: TokenizerClass::MeanScaleUniformBins,
            tokenizer_kwargs: TokenizerKwargs {
                low_limit: -15.0,
                high_limit: 15.0,
            },
            n_tokens: 4096,
            n_special_tokens: 2,
            pad_token_id: 0,
            eos_token_id: 1,
            use_eos_token: true,
            num_samples: 20,
            temperature: 1.0,
            top_k: 50,
            top_p: 1.0,
            input_patch_size: None,
            input_patch_stride: None,
            quantiles: None,
            use_reg_token: None,
            skip_constant_contexts: None,
            max_scaled_target: None,
        }
    }
}

impl TrainConfig {
    /// Every key a config may set, in the struct's order.
    pub fn keys() -> Vec<String> {
        overrides::default_mapping()
            .keys()
            .filter_map(|k| k.as_str().map(str::to_string))
            .collect()
    }

    /// Reads a YAML config (upstream's format): absent keys keep their defaults. Unknown keys
    /// and wrongly-typed values are errors naming the key. Does not [`validate`](Self::validate).
    pub fn from_yaml(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|source| TrainConfigError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        overrides::from_yaml_text(&text, Origin::File(path.to_path_buf()))
    }

    /// As [`from_yaml`](Self::from_yaml), from YAML text.
    pub fn from_yaml_str(text: &str) -> Result<Self> {
        overrides::from_yaml_text(text, Origin::Text)
    }

    /// Applies `--key value` / `--key=value` arguments (keys in kebab- or snake-case), in order;
    /// `--flag` alone sets a boolean key, `--no-flag` clears it. Values are read as YAML (so
    /// lists are `[a, b]`; `a,b` works too) and typed as in a file. On error `self` is unchanged.
    pub fn apply_overrides(&mut self, args: &[String]) -> Result<()> {
        *self = overrides::apply(self, args)?;
        Ok(())
    }

    /// The config of a run: `config` (or upstream's defaults), then `overrides`, validated.
    pub fn load(config: Option<&Path>, overrides: &[String]) -> Result<Self> {
        let mut cfg = match config {
            Some(path) => Self::from_yaml(path)?,
            None => Self::default(),
        };
        cfg.apply_overrides(overrides)?;
        cfg.validate()?;
        Ok(cfg)
    }

    /// Checks values and their combinations (also resolving the architecture). Errors name
    /// the key.
    pub fn validate(&self) -> Result<()> {
        if self.training_data_paths.is_empty() {
            return Err(bad(
                "training_data_paths",
                "required: at least one training data file",
            ));
        }
        if let Some(p) = &self.probability {
            if p.len() != self.training_data_paths.len() {
                return Err(bad(
                    "probability",
                    format!(
                        "{} weights for {} training_data_paths",
                        p.len(),
                        self.training_data_paths.len()
                    ),
                ));
            }
            if p.iter().any(|w| !(w.is_finite() && *w >= 0.0)) {
                return Err(bad(
                    "probability",
                    format!("weights must be finite and >= 0, got {p:?}"),
                ));
            }
            if p.iter().sum::<f64>() <= 0.0 {
                return Err(bad("probability", "weights sum to 0"));
            }
        }
        for (key, value) in [
            ("context_length", self.context_length),
            ("prediction_length", self.prediction_length),
        ] {
            if value < 1 {
                return Err(bad(key, format!("must be at least 1, got {value}")));
            }
        }
        if self.min_past < 0 {
            return Err(bad(
                "min_past",
                format!("must be >= 0, got {}", self.min_past),
            ));
        }
        for (key, value) in [
            ("shuffle_buffer_length", self.shuffle_buffer_length),
            ("max_steps", self.max_steps),
            ("save_steps", self.save_steps),
            ("log_steps", self.log_steps),
            (
                "per_device_train_batch_size",
                self.per_device_train_batch_size,
            ),
            (
                "gradient_accumulation_steps",
                self.gradient_accumulation_steps,
            ),
        ] {
            if value < 1 {
                return Err(bad(key, format!("must be at least 1, got {value}")));
            }
        }
        for (key, value) in [
            ("max_missing_prop", self.max_missing_prop),
            ("warmup_ratio", self.warmup_ratio),
        ] {
            if !(0.0..=1.0).contains(&value) {
                return Err(bad(key, format!("must be in [0, 1], got {value}")));
            }
        }
        if !(self.learning_rate.is_finite() && self.learning_rate > 0.0) {
            return Err(bad(
                "learning_rate",
                format!("must be positive, got {}", self.learning_rate),
            ));
        }
        if self.model_config.is_some() && !self.random_init {
            return Err(bad(
                "model_config",
                "sets the architecture of a randomly initialised model; with random_init: false \
                 the architecture is that of the pretrained model_id",
            ));
        }
        match self.model_family {
            ModelFamily::T5 => self.validate_t5()?,
            ModelFamily::Bolt => self.validate_bolt()?,
        }
        architecture::checked_backbone(self).map(|_| ())
    }

    fn validate_t5(&self) -> Result<()> {
        let map = serde_json::to_value(self).unwrap_or(Value::Null);
        for key in BOLT_ONLY_KEYS {
            if !map[key].is_null() {
                return Err(bad(
                    key,
                    "is a Chronos-Bolt key; set model_family: bolt or remove it",
                ));
            }
        }
        if self.num_samples < 1 {
            return Err(bad(
                "num_samples",
                format!("must be at least 1, got {}", self.num_samples),
            ));
        }
        if !(self.temperature.is_finite() && self.temperature > 0.0) {
            return Err(bad(
                "temperature",
                format!("must be positive, got {}", self.temperature),
            ));
        }
        if self.top_k < 0 {
            return Err(bad(
                "top_k",
                format!("must be >= 0 (0 = all), got {}", self.top_k),
            ));
        }
        if !(0.0..=1.0).contains(&self.top_p) {
            return Err(bad(
                "top_p",
                format!("must be in [0, 1], got {}", self.top_p),
            ));
        }
        if self.n_tokens - self.n_special_tokens - 1 < 2 {
            return Err(bad(
                "n_tokens",
                format!(
                    "{} leaves fewer than 2 bins after {} special tokens",
                    self.n_tokens, self.n_special_tokens
                ),
            ));
        }
        if self.n_special_tokens < 0 {
            return Err(bad(
                "n_special_tokens",
                format!("must be >= 0, got {}", self.n_special_tokens),
            ));
        }
        for (key, id) in [
            ("pad_token_id", self.pad_token_id),
            ("eos_token_id", self.eos_token_id),
        ] {
            if !(0..self.n_special_tokens).contains(&id) {
                return Err(bad(
                    key,
                    format!(
                        "{id} is not a special token id (0..{})",
                        self.n_special_tokens
                    ),
                ));
            }
        }
        let kw = &self.tokenizer_kwargs;
        if !(kw.low_limit.is_finite() && kw.high_limit.is_finite() && kw.low_limit < kw.high_limit)
        {
            return Err(bad(
                "tokenizer_kwargs",
                format!(
                    "low_limit {} must be below high_limit {}",
                    kw.low_limit, kw.high_limit
                ),
            ));
        }
        // What the forecasting side checks when it loads the checkpoint.
        self.chronos_config()
            .validate()
            .map_err(|message| bad("chronos_config", message))
    }

    fn validate_bolt(&self) -> Result<()> {
        let this = serde_json::to_value(self).unwrap_or(Value::Null);
        let default = serde_json::to_value(TrainConfig::default()).unwrap_or(Value::Null);
        for key in T5_ONLY_KEYS {
            if this[key] != default[key] {
                return Err(bad(
                    key,
                    format!(
                        "applies to tokenised Chronos (model_family: t5) only; Chronos-Bolt \
                         ignores it, so remove it (got {})",
                        this[key]
                    ),
                ));
            }
        }
        if let Some(bound) = self.max_scaled_target {
            if bound.is_nan() || bound <= 0.0 {
                return Err(bad(
                    "max_scaled_target",
                    format!("must be positive, got {bound}"),
                ));
            }
        }
        let bolt = self.bolt_config();
        for (key, value) in [
            ("input_patch_size", bolt.input_patch_size),
            ("input_patch_stride", bolt.input_patch_stride),
        ] {
            if value < 1 {
                return Err(bad(key, format!("must be at least 1, got {value}")));
            }
        }
        bolt.validate().map_err(|message| bad("quantiles", message))
    }

    /// The mixing probabilities of the datasets, normalised (uniform when not given).
    pub fn probabilities(&self) -> Vec<f64> {
        let n = self.training_data_paths.len();
        match &self.probability {
            Some(p) => {
                let total: f64 = p.iter().sum();
                p.iter().map(|w| w / total).collect()
            }
            None => vec![1.0 / n.max(1) as f64; n],
        }
    }

    /// Warm-up steps of `warmup_ratio` (see [`crate::train::step::warmup_steps`]).
    pub fn warmup_steps(&self) -> i64 {
        crate::train::step::warmup_steps(self.warmup_ratio, self.max_steps as i64)
    }

    /// Data-loading workers actually used: `dataloader_num_workers`, at most one per dataset.
    pub fn dataloader_workers(&self) -> usize {
        self.dataloader_num_workers
            .min(self.training_data_paths.len())
    }

    /// `chronos_config` of a tokenised Chronos checkpoint (upstream `ChronosConfig`).
    pub fn chronos_config(&self) -> ChronosConfig {
        ChronosConfig {
            tokenizer_class: "MeanScaleUniformBins".to_string(),
            tokenizer_kwargs: self.tokenizer_kwargs.clone(),
            context_length: self.context_length,
            prediction_length: self.prediction_length,
            n_tokens: self.n_tokens,
            n_special_tokens: self.n_special_tokens,
            pad_token_id: self.pad_token_id,
            eos_token_id: self.eos_token_id,
            use_eos_token: self.use_eos_token,
            model_type: self.model_type.as_str().to_string(),
            num_samples: self.num_samples,
            temperature: self.temperature,
            top_k: self.top_k,
            top_p: self.top_p,
        }
    }

    /// `chronos_config` of a Chronos-Bolt checkpoint, absent keys at the published models'
    /// values.
    pub fn bolt_config(&self) -> ChronosBoltConfig {
        let patch = self.input_patch_size.unwrap_or(BOLT_PATCH_SIZE);
        ChronosBoltConfig {
            context_length: self.context_length,
            prediction_length: self.prediction_length,
            input_patch_size: patch,
            input_patch_stride: self.input_patch_stride.unwrap_or(patch),
            quantiles: self
                .quantiles
                .clone()
                .unwrap_or_else(|| BOLT_QUANTILES.to_vec()),
            use_reg_token: self.use_reg_token.unwrap_or(true),
        }
    }

    /// The backbone architecture before the Chronos adjustments: `model_config`, else
    /// `model_id`'s `config.json` (a local folder, or the built-in table).
    pub fn architecture(&self) -> Result<Architecture> {
        architecture::resolve(self)
    }

    /// The checkpoint's `config.json`: the architecture with upstream `load_model`'s changes
    /// (random init: `initializer_factor` 0.05 and `tie_word_embeddings`; vocabulary and special
    /// tokens) and `chronos_config`; for Bolt also `architectures`, `chronos_pipeline_class:
    /// ChronosBoltPipeline` and the [REG] token. Validated as a model config.
    pub fn config_json(&self) -> Result<Value> {
        architecture::checked_backbone(self).map(|(json, _)| json)
    }

    /// The backbone config of [`config_json`](Self::config_json), typed, to build the model.
    pub fn backbone(&self) -> Result<ModelConfig> {
        architecture::checked_backbone(self).map(|(_, typed)| typed)
    }

    /// Writes [`config_json`](Self::config_json) as `dir/config.json` (pretty-printed);
    /// returns its path.
    pub fn write_config_json(&self, dir: &Path) -> Result<PathBuf> {
        let json = self.config_json()?;
        let path = dir.join("config.json");
        let text = serde_json::to_string_pretty(&json).unwrap_or_default() + "\n";
        crate::atomic::write(&path, text.as_bytes()).map_err(|source| TrainConfigError::Io {
            path: path.clone(),
            source,
        })?;
        Ok(path)
    }
}

/// `--config` and the overrides after it, for a binary's command line
/// (`#[command(flatten)]`): `train --config c.yaml --max-steps 1000 --learning-rate 1e-4`.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct ConfigArgs {
    /// Training config (YAML, upstream's keys); without it, upstream's defaults.
    #[arg(long, value_name = "YAML")]
    pub config: Option<PathBuf>,
    /// Any config key as `--key value` or `--key=value` (e.g. `--max-steps 1000`), after
    /// `--config`.
    #[arg(
        value_name = "--KEY VALUE",
        trailing_var_arg = true,
        allow_hyphen_values = true
    )]
    pub overrides: Vec<String>,
}

impl ConfigArgs {
    /// [`TrainConfig::load`] of these arguments.
    pub fn load(&self) -> Result<TrainConfig> {
        TrainConfig::load(self.config.as_deref(), &self.overrides)
    }
}
