//! peft LoRA adapters (`adapter_config.json` + `adapter_model.safetensors`), merged into the
//! base model's weights at load time as peft's `merge_and_unload`: `W += (B A) * scaling` with
//! `scaling = lora_alpha / r` (`/ sqrt(r)` with rsLoRA), the product in f32.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use serde_json::Value;
use tch::nn::VarStore;
use tch::{Kind, Tensor};

use crate::error::{ChronosError, Result};

pub const ADAPTER_CONFIG: &str = "adapter_config.json";
pub const ADAPTER_WEIGHTS: &str = "adapter_model.safetensors";
/// peft's prefix of the wrapped model's keys.
const KEY_PREFIX: &str = "base_model.model.";

/// Whether `dir` is a peft adapter folder.
pub fn is_adapter(dir: &Path) -> bool {
    dir.join(ADAPTER_CONFIG).is_file()
}

/// The fields of `adapter_config.json` that decide the merge (peft's names).
#[derive(Debug, Deserialize)]
struct AdapterConfig {
    #[serde(default)]
    peft_type: Option<String>,
    #[serde(default)]
    base_model_name_or_path: Option<String>,
    r: i64,
    lora_alpha: f64,
    #[serde(default)]
    use_rslora: bool,
    #[serde(default)]
    use_dora: bool,
    #[serde(default)]
    fan_in_fan_out: bool,
    #[serde(default)]
    bias: Option<String>,
    #[serde(default)]
    rank_pattern: BTreeMap<String, Value>,
    #[serde(default)]
    alpha_pattern: BTreeMap<String, Value>,
    #[serde(default)]
    modules_to_save: Option<Value>,
}

/// A LoRA adapter read from disk: `(A, B)` per adapted module, keyed by the module's path in
/// the base model (e.g. `encoder.block.0.layer.0.self_attention.q`).
#[derive(Debug)]
pub struct Adapter {
    pub dir: PathBuf,
    /// `base_model_name_or_path` (empty when absent).
    pub base_model: String,
    scaling: f64,
    fan_in_fan_out: bool,
    /// `(lora_A (r, in), lora_B (out, r))` f32.
    modules: BTreeMap<String, (Tensor, Tensor)>,
}

impl Adapter {
    /// Reads and checks an adapter folder; unsupported peft options are errors naming them.
    pub fn read(dir: &Path) -> Result<Self> {
        let config_path = dir.join(ADAPTER_CONFIG);
        let err = |message: String| ChronosError::Config {
            path: config_path.clone(),
            message,
        };
        let text =
            std::fs::read_to_string(&config_path).map_err(|e| ChronosError::io(&config_path, e))?;
        let cfg: AdapterConfig = serde_json::from_str(&text).map_err(|e| err(e.to_string()))?;
        if let Some(kind) = cfg.peft_type.as_deref().filter(|k| *k != "LORA") {
            return Err(err(format!(
                "peft_type '{kind}' is not supported (LORA only)"
            )));
        }
        if cfg.r <= 0 {
            return Err(err(format!("'r' must be positive, got {}", cfg.r)));
        }
        let unsupported = [
            ("use_dora", cfg.use_dora),
            ("bias", cfg.bias.as_deref().is_some_and(|b| b != "none")),
            ("rank_pattern", !cfg.rank_pattern.is_empty()),
            ("alpha_pattern", !cfg.alpha_pattern.is_empty()),
            (
                "modules_to_save",
                cfg.modules_to_save.as_ref().is_some_and(|m| !m.is_null()),
            ),
        ];
        if let Some((key, _)) = unsupported.iter().find(|(_, set)| *set) {
            return Err(err(format!(
                "'{key}' is not supported when merging LoRA adapters"
            )));
        }
        let weights = dir.join(ADAPTER_WEIGHTS);
        let tensors = Tensor::read_safetensors(&weights)
            .map_err(|e| ChronosError::checkpoint(&weights, format!("cannot read: {e}")))?;
        let mut parts: BTreeMap<String, (Option<Tensor>, Option<Tensor>)> = BTreeMap::new();
        for (name, tensor) in tensors {
            let module_key = name
                .strip_prefix(KEY_PREFIX)
                .and_then(|k| k.strip_suffix(".weight"))
                .and_then(|k| {
                    k.strip_suffix(".lora_A")
                        .map(|m| (m, true))
                        .or_else(|| k.strip_suffix(".lora_B").map(|m| (m, false)))
                });
            let Some((module, is_a)) = module_key else {
                return Err(ChronosError::checkpoint(
                    &weights,
                    format!("tensor '{name}' is not a LoRA weight ({KEY_PREFIX}<module>.lora_A/lora_B.weight)"),
                ));
            };
            let entry = parts.entry(module.to_string()).or_default();
            let tensor = tensor.to_kind(Kind::Float);
            if is_a {
                entry.0 = Some(tensor);
            } else {
                entry.1 = Some(tensor);
            }
        }
        let mut modules = BTreeMap::new();
        for (module, pair) in parts {
            match pair {
                (Some(a), Some(b)) => {
                    let (ra, _) = a
                        .size2()
                        .map_err(|_| bad_shape(&weights, &module, "lora_A"))?;
                    let (_, rb) = b
                        .size2()
                        .map_err(|_| bad_shape(&weights, &module, "lora_B"))?;
                    if ra != cfg.r || rb != cfg.r {
                        return Err(ChronosError::checkpoint(
                            &weights,
                            format!(
                                "'{module}': lora_A {:?} and lora_B {:?} do not have rank r = {}",
                                a.size(),
                                b.size(),
                                cfg.r
                            ),
                        ));
                    }
                    modules.insert(module, (a, b));
                }
                _ => {
                    return Err(ChronosError::checkpoint(
                        &weights,
                        format!("'{module}' has only one of lora_A and lora_B"),
                    ))
                }
            }
        }
        if modules.is_empty() {
            return Err(ChronosError::checkpoint(&weights, "holds no LoRA weights"));
        }
        let r = cfg.r as f64;
        Ok(Adapter {
            dir: dir.to_path_buf(),
            base_model: cfg.base_model_name_or_path.unwrap_or_default(),
            scaling: if cfg.use_rslora {
                cfg.lora_alpha / r.sqrt()
            } else {
                cfg.lora_alpha / r
            },
            fan_in_fan_out: cfg.fan_in_fan_out,
            modules,
        })
    }

    /// Adds every module's `(B A) * scaling` to its `<module>.weight` in `vs`, in the variable's
    /// dtype (the product in f32, as peft on the CPU). A module the base model lacks, or of
    /// another shape, is an error: the adapter was made for another base model.
    pub fn merge_into(&self, vs: &mut VarStore) -> Result<()> {
        let variables = vs.variables();
        let weights = self.dir.join(ADAPTER_WEIGHTS);
        tch::no_grad(|| -> Result<()> {
            for (module, (a, b)) in &self.modules {
                let name = format!("{module}.weight");
                let var = variables.get(&name).ok_or_else(|| {
                    ChronosError::checkpoint(
                        &weights,
                        format!("adapts '{module}', which the base model does not have: the adapter does not match this base model"),
                    )
                })?;
                let device = var.device();
                let mut delta = b.to_device(device).matmul(&a.to_device(device));
                if self.fan_in_fan_out {
                    delta = delta.transpose(0, 1);
                }
                let delta = delta * self.scaling;
                if delta.size() != var.size() {
                    return Err(ChronosError::checkpoint(
                        &weights,
                        format!(
                            "'{module}': the update has shape {:?}, the base weight {:?}: the adapter does not match this base model",
                            delta.size(),
                            var.size()
                        ),
                    ));
                }
                let mut var = var.shallow_clone();
                let _ = var.f_add_(&delta.to_kind(var.kind()))?;
            }
            Ok(())
        })
    }
}

fn bad_shape(file: &Path, module: &str, part: &str) -> ChronosError {
    ChronosError::checkpoint(file, format!("'{module}': {part} is not a matrix"))
}
