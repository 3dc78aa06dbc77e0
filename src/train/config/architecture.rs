//! The backbone architecture of a training run (`model_config`, else `model_id`), and the
//! checkpoint `config.json` that upstream's `load_model` + `save_pretrained` would write for it.
//!
//! Nothing is downloaded: `model_id` is a local folder with a `config.json`, or one of the
//! published backbones, whose configs are built in ([`builtin_architecture`]; sizes from the
//! published Chronos models, `/work/shared/architectures.md`).

use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::{json, Map, Value};

use super::{ModelFamily, ModelType, TrainConfig, TrainConfigError};
use crate::config::{Gpt2Config, ModelConfig, T5Config};

type Result<T, E = TrainConfigError> = std::result::Result<T, E>;

/// The published Chronos sizes: the T5 shapes of `google/t5-efficient-<size>`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ModelSize {
    Tiny,
    Mini,
    Small,
    Base,
    Large,
}

impl ModelSize {
    pub const ALL: [ModelSize; 5] = [
        ModelSize::Tiny,
        ModelSize::Mini,
        ModelSize::Small,
        ModelSize::Base,
        ModelSize::Large,
    ];

    pub fn name(self) -> &'static str {
        match self {
            ModelSize::Tiny => "tiny",
            ModelSize::Mini => "mini",
            ModelSize::Small => "small",
            ModelSize::Base => "base",
            ModelSize::Large => "large",
        }
    }

    /// `(d_model, d_ff, layers of the encoder and of the decoder, heads)`.
    pub fn dims(self) -> (i64, i64, i64, i64) {
        match self {
            ModelSize::Tiny => (256, 1024, 4, 4),
            ModelSize::Mini => (384, 1536, 4, 8),
            ModelSize::Small => (512, 2048, 6, 8),
            ModelSize::Base => (768, 3072, 12, 12),
            ModelSize::Large => (1024, 4096, 24, 16),
        }
    }

    /// `config.json` of `google/t5-efficient-<size>` (HF `T5Config` fields).
    pub fn t5_efficient_config(self) -> Map<String, Value> {
        let (d_model, d_ff, layers, heads) = self.dims();
        object(json!({
            "architectures": ["T5ForConditionalGeneration"],
            "model_type": "t5",
            "d_model": d_model,
            "d_ff": d_ff,
            "d_kv": 64,
            "num_layers": layers,
            "num_decoder_layers": layers,
            "num_heads": heads,
            "feed_forward_proj": "relu",
            "relative_attention_num_buckets": 32,
            "relative_attention_max_distance": 128,
            "dropout_rate": 0.1,
            "layer_norm_epsilon": 1e-6,
            "initializer_factor": 1.0,
            "is_encoder_decoder": true,
            "n_positions": 512,
            "use_cache": true,
            "vocab_size": 32128,
            "pad_token_id": 0,
            "eos_token_id": 1,
            "decoder_start_token_id": 0,
        }))
    }
}

impl fmt::Display for ModelSize {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for ModelSize {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        ModelSize::ALL
            .into_iter()
            .find(|size| size.name() == s)
            .ok_or_else(|| format!("'{s}' is not a size (tiny, mini, small, base, large)"))
    }
}

/// `config.json` of `openai-community/gpt2` (HF `GPT2Config` fields).
fn gpt2_config() -> Map<String, Value> {
    object(json!({
        "architectures": ["GPT2LMHeadModel"],
        "model_type": "gpt2",
        "activation_function": "gelu_new",
        "attn_pdrop": 0.1,
        "embd_pdrop": 0.1,
        "resid_pdrop": 0.1,
        "bos_token_id": 50256,
        "eos_token_id": 50256,
        "initializer_range": 0.02,
        "layer_norm_epsilon": 1e-5,
        "n_ctx": 1024,
        "n_embd": 768,
        "n_head": 12,
        "n_layer": 12,
        "n_positions": 1024,
        "vocab_size": 50257,
    }))
}

/// Hub ids whose `config.json` is built in: `google/t5-efficient-<size>`,
/// `openai-community/gpt2` (also `gpt2`).
pub fn builtin_architecture(model_id: &str) -> Option<Map<String, Value>> {
    if matches!(model_id, "openai-community/gpt2" | "gpt2") {
        return Some(gpt2_config());
    }
    let size = model_id.strip_prefix("google/t5-efficient-")?;
    size.parse::<ModelSize>()
        .ok()
        .map(ModelSize::t5_efficient_config)
}

/// `model_config`: where the architecture comes from when it is not `model_id`'s.
#[derive(Debug, Clone, PartialEq)]
pub enum ArchitectureSpec {
    /// A published size (`tiny`, ...): the T5 of `google/t5-efficient-<size>`.
    Size(ModelSize),
    /// A `config.json` (JSON or YAML) file, or a folder holding one. Relative to the working
    /// directory. (A folder named like a size is written `./tiny`.)
    Path(PathBuf),
    /// `config.json` fields; the others take HF's defaults.
    Inline(Map<String, Value>),
}

impl Serialize for ArchitectureSpec {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            ArchitectureSpec::Size(size) => s.serialize_str(size.name()),
            ArchitectureSpec::Path(path) => s.serialize_str(&path.to_string_lossy()),
            ArchitectureSpec::Inline(map) => map.serialize(s),
        }
    }
}

impl<'de> Deserialize<'de> for ArchitectureSpec {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        match Value::deserialize(d)? {
            Value::String(s) => Ok(match s.parse::<ModelSize>() {
                Ok(size) => ArchitectureSpec::Size(size),
                Err(_) => ArchitectureSpec::Path(PathBuf::from(s)),
            }),
            Value::Object(map) => Ok(ArchitectureSpec::Inline(map)),
            other => Err(serde::de::Error::custom(format!(
                "expected a size name (tiny, mini, small, base, large), a path to a config \
                 file or folder, or a mapping of config.json fields; got {other}"
            ))),
        }
    }
}

/// A backbone `config.json` before the Chronos changes (no `chronos_config`), and what it came
/// from.
#[derive(Debug, Clone, PartialEq)]
pub struct Architecture {
    /// E.g. `size 'tiny'`, `built-in google/t5-efficient-tiny`, a file path.
    pub source: String,
    /// HF config fields; `model_type` is always set (`t5` or `gpt2` when the source has none).
    pub config: Map<String, Value>,
}

/// Keys of a checkpoint's `config.json` that describe that checkpoint, not the architecture.
const CHECKPOINT_KEYS: [&str; 8] = [
    "chronos_config",
    "chronos_pipeline_class",
    "architectures",
    "reg_token_id",
    "torch_dtype",
    "dtype",
    "transformers_version",
    "_name_or_path",
];

/// The config key an architecture error is about.
fn arch_key(cfg: &TrainConfig) -> &'static str {
    if cfg.model_config.is_some() {
        "model_config"
    } else {
        "model_id"
    }
}

pub(super) fn resolve(cfg: &TrainConfig) -> Result<Architecture> {
    let key = arch_key(cfg);
    let (source, mut config) = match &cfg.model_config {
        Some(ArchitectureSpec::Size(size)) => {
            (format!("size '{size}'"), size.t5_efficient_config())
        }
        Some(ArchitectureSpec::Path(path)) => {
            (path.display().to_string(), read_config_file(path, key)?)
        }
        Some(ArchitectureSpec::Inline(map)) => ("inline mapping".to_string(), map.clone()),
        None => {
            let dir = Path::new(&cfg.model_id);
            if dir.is_dir() {
                (dir.display().to_string(), read_config_file(dir, key)?)
            } else if let Some(map) = builtin_architecture(&cfg.model_id) {
                (format!("built-in {}", cfg.model_id), map)
            } else {
                return Err(TrainConfigError::invalid(
                    key,
                    format!(
                        "'{}' is neither a local folder with a config.json nor a built-in \
                         architecture (google/t5-efficient-{{tiny,mini,small,base,large}}, \
                         openai-community/gpt2); architectures are not downloaded, so give a \
                         folder, or set model_config to a size name, a config file or a mapping",
                        cfg.model_id
                    ),
                ));
            }
        }
    };
    for k in CHECKPOINT_KEYS {
        config.remove(k);
    }
    let causal = cfg.model_family == ModelFamily::T5 && cfg.model_type == ModelType::Causal;
    config
        .entry("model_type")
        .or_insert_with(|| Value::from(if causal { "gpt2" } else { "t5" }));
    Ok(Architecture { source, config })
}

/// Reads a `config.json`-like mapping (JSON or YAML) from `path`, or `path/config.json`.
fn read_config_file(path: &Path, key: &str) -> Result<Map<String, Value>> {
    let file = if path.is_dir() {
        path.join("config.json")
    } else {
        path.to_path_buf()
    };
    let text = std::fs::read_to_string(&file).map_err(|source| TrainConfigError::Io {
        path: file.clone(),
        source,
    })?;
    match serde_yaml::from_str::<Value>(&text) {
        Ok(Value::Object(map)) => Ok(map),
        Ok(_) => Err(TrainConfigError::invalid(
            key,
            format!("{}: not a mapping of config.json fields", file.display()),
        )),
        Err(e) => Err(TrainConfigError::invalid(
            key,
            format!("{}: {e}", file.display()),
        )),
    }
}

fn object(value: Value) -> Map<String, Value> {
    match value {
        Value::Object(map) => map,
        _ => Map::new(),
    }
}

/// Inserts `defaults` where `map` has no value.
fn fill(map: &mut Map<String, Value>, defaults: Value) {
    for (k, v) in object(defaults) {
        map.entry(k).or_insert(v);
    }
}

/// The checkpoint `config.json` and its typed backbone, checked.
pub(super) fn checked_backbone(cfg: &TrainConfig) -> Result<(Value, ModelConfig)> {
    let arch = resolve(cfg)?;
    let key = arch_key(cfg);
    let source = arch.source.clone();
    let bad = |message: String| TrainConfigError::invalid(key, format!("{source}: {message}"));
    let mut map = arch.config;
    let model_type = map
        .get("model_type")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    let wanted = match (cfg.model_family, cfg.model_type) {
        (ModelFamily::Bolt, _) => "t5",
        (ModelFamily::T5, ModelType::Seq2seq) => "t5",
        (ModelFamily::T5, ModelType::Causal) => "gpt2",
    };
    if model_type != wanted {
        return Err(bad(format!(
            "a {model_type} architecture, but model_family {} with model_type {} needs {wanted}",
            family_name(cfg.model_family),
            cfg.model_type.as_str()
        )));
    }
    let typed = if wanted == "t5" {
        t5_config_json(cfg, &mut map);
        let t5: T5Config = typed(&map, ModelSize::Small.t5_efficient_config()).map_err(bad)?;
        check_t5(&t5).map_err(bad)?;
        ModelConfig::T5(t5)
    } else {
        gpt2_config_json(cfg, &mut map);
        let gpt2: Gpt2Config = typed(&map, gpt2_config()).map_err(bad)?;
        check_gpt2(&gpt2).map_err(bad)?;
        let needed = cfg.context_length + cfg.prediction_length + i64::from(cfg.use_eos_token);
        if needed > gpt2.n_positions {
            return Err(bad(format!(
                "n_positions {} is too small for context_length + prediction_length{} = {needed}",
                gpt2.n_positions,
                if cfg.use_eos_token { " + EOS" } else { "" }
            )));
        }
        ModelConfig::Gpt2(gpt2)
    };
    Ok((Value::Object(map), typed))
}

/// `map` as a `T`. serde_json's errors do not name the field, so on failure the fields are put
/// one by one on `base` (a valid config) to find the first that breaks it.
fn typed<T: DeserializeOwned>(
    map: &Map<String, Value>,
    base: Map<String, Value>,
) -> Result<T, String> {
    let parse = |m: &Map<String, Value>| serde_json::from_value::<T>(Value::Object(m.clone()));
    parse(map).map_err(|e| {
        let mut probe = base;
        for (key, value) in map {
            probe.insert(key.clone(), value.clone());
            if let Err(e) = parse(&probe) {
                return format!("{key}: {e}");
            }
        }
        e.to_string()
    })
}

fn family_name(family: ModelFamily) -> &'static str {
    match family {
        ModelFamily::T5 => "t5",
        ModelFamily::Bolt => "bolt",
    }
}

/// Upstream `load_model` (random init; vocabulary and special tokens) and `ChronosConfig` /
/// `ChronosBoltModelForForecasting` on a T5 config, with HF's defaults and derived fields
/// written out.
fn t5_config_json(cfg: &TrainConfig, map: &mut Map<String, Value>) {
    fill(
        map,
        json!({
            "vocab_size": 32128,
            "d_model": 512,
            "d_kv": 64,
            "d_ff": 2048,
            "num_layers": 6,
            "num_heads": 8,
            "relative_attention_num_buckets": 32,
            "relative_attention_max_distance": 128,
            "dropout_rate": 0.1,
            "layer_norm_epsilon": 1e-6,
            "initializer_factor": 1.0,
            "feed_forward_proj": "relu",
            "is_encoder_decoder": true,
            "use_cache": true,
            "pad_token_id": 0,
            "eos_token_id": 1,
            "decoder_start_token_id": 0,
        }),
    );
    if let Some(layers) = map.get("num_layers").cloned() {
        map.entry("num_decoder_layers").or_insert(layers);
    }
    // HF's T5Config derives these from feed_forward_proj and saves them.
    if let Some(proj) = map.get("feed_forward_proj").and_then(Value::as_str) {
        let gated = proj.starts_with("gated-");
        let act = if proj == "gated-gelu" {
            "gelu_new"
        } else {
            proj.rsplit('-').next().unwrap_or(proj)
        };
        let act = Value::from(act);
        map.insert("dense_act_fn".into(), act);
        map.insert("is_gated_act".into(), Value::from(gated));
    }
    if cfg.random_init {
        map.insert("initializer_factor".into(), json!(0.05));
    }
    match cfg.model_family {
        ModelFamily::T5 => {
            if cfg.random_init {
                map.insert("tie_word_embeddings".into(), json!(cfg.tie_embeddings));
            }
            map.insert("vocab_size".into(), json!(cfg.n_tokens));
            map.insert("pad_token_id".into(), json!(cfg.pad_token_id));
            map.insert("eos_token_id".into(), json!(cfg.eos_token_id));
            map.insert(
                "architectures".into(),
                json!(["T5ForConditionalGeneration"]),
            );
            map.insert(
                "chronos_config".into(),
                serde_json::to_value(cfg.chronos_config()).unwrap_or_default(),
            );
        }
        ModelFamily::Bolt => {
            let bolt = cfg.bolt_config();
            // Only the decoder start token (0) and, optionally, [REG] (1).
            map.insert(
                "vocab_size".into(),
                json!(1 + i64::from(bolt.use_reg_token)),
            );
            if bolt.use_reg_token {
                map.insert("reg_token_id".into(), json!(1));
            }
            map.insert("decoder_start_token_id".into(), json!(0));
            map.insert(
                "architectures".into(),
                json!(["ChronosBoltModelForForecasting"]),
            );
            map.insert(
                "chronos_pipeline_class".into(),
                json!("ChronosBoltPipeline"),
            );
            map.insert(
                "chronos_config".into(),
                serde_json::to_value(bolt).unwrap_or_default(),
            );
        }
    }
}

/// Upstream `load_model` and `ChronosConfig` on a GPT-2 config.
fn gpt2_config_json(cfg: &TrainConfig, map: &mut Map<String, Value>) {
    for (k, v) in gpt2_config() {
        if k != "architectures" {
            map.entry(k).or_insert(v);
        }
    }
    if cfg.random_init {
        map.insert("tie_word_embeddings".into(), json!(cfg.tie_embeddings));
    }
    map.insert("vocab_size".into(), json!(cfg.n_tokens));
    map.insert("pad_token_id".into(), json!(cfg.pad_token_id));
    map.insert("eos_token_id".into(), json!(cfg.eos_token_id));
    map.insert("architectures".into(), json!(["GPT2LMHeadModel"]));
    map.insert(
        "chronos_config".into(),
        serde_json::to_value(cfg.chronos_config()).unwrap_or_default(),
    );
}

/// What training needs beyond what loading checks: dropout probabilities in `[0, 1)`.
fn check_dropout(fields: &[(&str, f64)]) -> Result<(), String> {
    match fields.iter().find(|(_, p)| !(0.0..1.0).contains(p)) {
        Some((k, p)) => Err(format!("{k} must be in [0, 1), got {p}")),
        None => Ok(()),
    }
}

fn check_t5(t5: &T5Config) -> Result<(), String> {
    t5.validate()?;
    check_dropout(&[("dropout_rate", t5.dropout_rate)])
}

fn check_gpt2(g: &Gpt2Config) -> Result<(), String> {
    g.validate()?;
    check_dropout(&[
        ("resid_pdrop", g.resid_pdrop),
        ("embd_pdrop", g.embd_pdrop),
        ("attn_pdrop", g.attn_pdrop),
    ])
}
