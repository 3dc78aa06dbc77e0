//! Original Hugging Face checkpoints: `config.json` + `model.safetensors` (or sharded
//! `model.safetensors.index.json`), from a local folder or a hub id through `hf-hub`.
//!
//! Tensors load by name into a [`tch::nn::VarStore`] whose paths mirror the HF state-dict keys,
//! with no remapping table. Every mismatch is an error naming the tensor and the file.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};

use safetensors::{Dtype, SafeTensors};
use tch::{nn::VarStore, Kind, Tensor};

use crate::bundled;
use crate::config::ModelConfig;
use crate::error::{ChronosError, Result};

const CONFIG: &str = "config.json";
const WEIGHTS: &str = "model.safetensors";
const WEIGHTS_INDEX: &str = "model.safetensors.index.json";

/// A checkpoint's files on local disk, or the bundled model ([`crate::bundled`]).
#[derive(Debug, Clone)]
pub struct Checkpoint {
    /// Where the config came from (a folder, or a hub snapshot folder).
    pub config_path: PathBuf,
    pub config: ModelConfig,
    /// One file, or the shards of a sharded checkpoint (for the bundled model, the name of its
    /// file in the repository, for messages).
    pub weight_files: Vec<PathBuf>,
    /// The bundled model's weights, compiled into the program.
    embedded: Option<&'static [u8]>,
}

impl Checkpoint {
    /// Opens `model`: a local folder if one exists at that path, else the bundled model if
    /// `model` is its name ([`bundled::NAME`]), else a hub id (`owner/name`, optionally
    /// `owner/name@revision`) resolved through the HF cache (`HF_HUB_CACHE`, `HF_HOME`; no
    /// network when `HF_HUB_OFFLINE=1` or when already cached).
    pub fn open(model: &str) -> Result<Self> {
        let dir = Path::new(model);
        if dir.is_dir() {
            return Self::from_dir(dir);
        }
        if model == bundled::NAME {
            return Self::bundled();
        }
        if dir.exists() {
            return Err(ChronosError::checkpoint(
                dir,
                "is a file; expected a checkpoint folder with config.json and model.safetensors",
            ));
        }
        hub::resolve(model)
    }

    /// The bundled model, from the bytes compiled into the program.
    pub fn bundled() -> Result<Self> {
        let dir = Path::new(bundled::SOURCE_DIR);
        let config_path = dir.join(CONFIG);
        Ok(Checkpoint {
            config: ModelConfig::from_json(bundled::CONFIG_JSON, &config_path)?,
            config_path,
            weight_files: vec![dir.join(WEIGHTS)],
            embedded: Some(bundled::WEIGHTS),
        })
    }

    /// Opens a local checkpoint folder.
    pub fn from_dir(dir: &Path) -> Result<Self> {
        let config_path = dir.join(CONFIG);
        if !config_path.is_file() {
            return Err(ChronosError::checkpoint(
                dir,
                "no config.json in this folder",
            ));
        }
        let config = ModelConfig::from_file(&config_path)?;
        let weight_files = if dir.join(WEIGHTS).is_file() {
            vec![dir.join(WEIGHTS)]
        } else if dir.join(WEIGHTS_INDEX).is_file() {
            shards_of_index(&dir.join(WEIGHTS_INDEX))?
                .into_iter()
                .map(|f| dir.join(f))
                .collect()
        } else {
            return Err(ChronosError::checkpoint(
                dir,
                "no model.safetensors or model.safetensors.index.json in this folder",
            ));
        };
        Ok(Checkpoint {
            config_path,
            config,
            weight_files,
            embedded: None,
        })
    }

    /// Reads every tensor of the checkpoint into memory (CPU, the file's dtype), keyed by name.
    pub fn read_tensors(&self) -> Result<HashMap<String, (Tensor, PathBuf)>> {
        let mut tensors = HashMap::new();
        for file in &self.weight_files {
            let bytes = match self.embedded {
                Some(bytes) => std::borrow::Cow::Borrowed(bytes),
                None => std::fs::read(file)
                    .map_err(|e| ChronosError::io(file, e))?
                    .into(),
            };
            let st = SafeTensors::deserialize(&bytes).map_err(|e| {
                ChronosError::checkpoint(file, format!("not a valid safetensors file: {e}"))
            })?;
            for (name, view) in st.tensors() {
                let kind = match view.dtype() {
                    Dtype::F32 => Kind::Float,
                    Dtype::F16 => Kind::Half,
                    Dtype::BF16 => Kind::BFloat16,
                    Dtype::F64 => Kind::Double,
                    other => {
                        return Err(ChronosError::checkpoint(
                            file,
                            format!("tensor '{name}' has unsupported dtype {other:?}"),
                        ))
                    }
                };
                let shape: Vec<i64> = view.shape().iter().map(|&d| d as i64).collect();
                let tensor = Tensor::f_from_data_size(view.data(), &shape, kind)?;
                if tensors
                    .insert(name.clone(), (tensor, file.clone()))
                    .is_some()
                {
                    return Err(ChronosError::checkpoint(
                        file,
                        format!("tensor '{name}' appears in more than one shard"),
                    ));
                }
            }
        }
        Ok(tensors)
    }

    /// Copies the checkpoint's tensors into `vs` by name, converting to each variable's dtype
    /// and device. `aliases` maps file keys that are tied copies of a variable (e.g.
    /// `encoder.embed_tokens.weight` → `shared.weight`); they are accepted and must not
    /// contradict the variable's shape. Any other missing or unexpected tensor is an error.
    pub fn load_into(&self, vs: &mut VarStore, aliases: &[(&str, &str)]) -> Result<()> {
        let tensors = self.read_tensors()?;
        let variables = vs.variables();
        let where_ = self.describe_files();

        let mut missing: Vec<&String> = variables
            .keys()
            .filter(|name| !tensors.contains_key(*name))
            .collect();
        missing.sort();
        if let Some(name) = missing.first() {
            return Err(ChronosError::checkpoint(
                &where_,
                format!(
                    "missing tensor '{name}' (and {} more); the architecture in config.json does not match the weights",
                    missing.len() - 1
                ),
            ));
        }
        let alias_of: HashMap<&str, &str> = aliases.iter().copied().collect();
        let mut unexpected: Vec<&String> = tensors
            .keys()
            .filter(|name| !variables.contains_key(*name))
            .filter(|name| match alias_of.get(name.as_str()) {
                Some(target) => !variables.contains_key(*target),
                None => true,
            })
            .collect();
        unexpected.sort();
        if let Some(name) = unexpected.first() {
            return Err(ChronosError::checkpoint(
                &tensors[*name].1,
                format!(
                    "unexpected tensor '{name}' (and {} more) not used by this architecture",
                    unexpected.len() - 1
                ),
            ));
        }
        for (alias, target) in aliases {
            if let (Some((t, file)), Some(var)) = (tensors.get(*alias), variables.get(*target)) {
                if t.size() != var.size() {
                    return Err(ChronosError::checkpoint(
                        file,
                        format!(
                            "tied tensor '{alias}' has shape {:?}, but '{target}' needs {:?}",
                            t.size(),
                            var.size()
                        ),
                    ));
                }
            }
        }
        tch::no_grad(|| -> Result<()> {
            for (name, var) in variables.iter() {
                let (src, file) = &tensors[name];
                if src.size() != var.size() {
                    return Err(ChronosError::checkpoint(
                        file,
                        format!(
                            "tensor '{name}' has shape {:?}, but the config needs {:?}",
                            src.size(),
                            var.size()
                        ),
                    ));
                }
                let mut var = var.shallow_clone();
                var.f_copy_(&src.f_to_kind(var.kind())?)?;
            }
            Ok(())
        })
    }

    /// Builds a model with `build` (which creates its variables under the given root, at
    /// f32) in a fresh VarStore on `device`, converts the variables to `kind`, freezes them and
    /// loads the checkpoint's tensors into them (see [`Checkpoint::load_into`]). The VarStore
    /// owns the variables the model's tensors refer to: keep it alive with the model.
    pub fn load_model<M>(
        &self,
        kind: tch::Kind,
        device: tch::Device,
        aliases: &[(&str, &str)],
        build: impl FnOnce(&tch::nn::Path) -> M,
    ) -> Result<(M, VarStore)> {
        let mut vs = VarStore::new(device);
        let model = build(&vs.root());
        vs.set_kind(kind);
        vs.freeze();
        self.load_into(&mut vs, aliases)?;
        Ok((model, vs))
    }

    fn describe_files(&self) -> PathBuf {
        match self.weight_files.as_slice() {
            [one] => one.clone(),
            many => many[0]
                .parent()
                .unwrap_or(Path::new("."))
                .join(WEIGHTS_INDEX),
        }
    }
}

/// Shard file names listed by a `model.safetensors.index.json` (`weight_map` values), in order.
fn shards_of_index(index: &Path) -> Result<Vec<String>> {
    #[derive(serde::Deserialize)]
    struct Index {
        weight_map: BTreeMap<String, String>,
    }
    let text = std::fs::read_to_string(index).map_err(|e| ChronosError::io(index, e))?;
    let parsed: Index = serde_json::from_str(&text)
        .map_err(|e| ChronosError::checkpoint(index, format!("invalid index: {e}")))?;
    let mut seen = HashSet::new();
    let mut shards: Vec<String> = parsed
        .weight_map
        .into_values()
        .filter(|f| seen.insert(f.clone()))
        .collect();
    shards.sort();
    if shards.is_empty() {
        return Err(ChronosError::checkpoint(index, "weight_map lists no shard"));
    }
    Ok(shards)
}

/// Hub ids through `hf-hub`, with the Python `huggingface_hub` cache layout and variables.
mod hub {
    use super::*;
    use hf_hub::{Cache, Repo, RepoType};

    /// `HF_HUB_CACHE`, else `HF_HOME/hub`, else `~/.cache/huggingface/hub` (as huggingface_hub).
    fn cache_dir() -> PathBuf {
        if let Some(dir) = std::env::var_os("HF_HUB_CACHE") {
            return dir.into();
        }
        Cache::from_env().path().clone()
    }

    fn offline() -> bool {
        std::env::var("HF_HUB_OFFLINE")
            .map(|v| matches!(v.to_ascii_lowercase().as_str(), "1" | "true" | "yes" | "on"))
            .unwrap_or(false)
    }

    fn looks_like_hub_id(id: &str) -> bool {
        let parts: Vec<&str> = id.split('/').collect();
        parts.len() == 2
            && parts.iter().all(|p| {
                !p.is_empty()
                    && p.chars()
                        .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
            })
    }

    pub(super) fn resolve(model: &str) -> Result<Checkpoint> {
        let (id, revision) = match model.split_once('@') {
            Some((id, rev)) => (id, rev.to_string()),
            None => (model, "main".to_string()),
        };
        let hub_err = |message: String| ChronosError::Hub {
            model: model.to_string(),
            message,
        };
        if !looks_like_hub_id(id) {
            return Err(hub_err(
                "no such local folder, and not a hub id of the form owner/name[@revision]".into(),
            ));
        }
        let repo = Repo::with_revision(id.to_string(), RepoType::Model, revision.clone());
        let cache = Cache::new(cache_dir());
        let get = |file: &str| -> std::result::Result<PathBuf, String> {
            if let Some(path) = cached(&cache, id, &revision, file) {
                return Ok(path);
            }
            if offline() {
                return Err(format!(
                    "{file} is not in the HF cache {} and HF_HUB_OFFLINE is set",
                    cache.path().display()
                ));
            }
            let api = hf_hub::api::sync::ApiBuilder::from_cache(Cache::new(cache_dir()))
                .with_progress(true)
                .build()
                .map_err(|e| e.to_string())?;
            api.repo(repo.clone())
                .get(file)
                .map_err(|e| format!("cannot fetch {file}: {e}"))
        };
        let config_path = get(CONFIG).map_err(hub_err)?;
        let config = ModelConfig::from_file(&config_path)?;
        let weight_files = match get(WEIGHTS) {
            Ok(path) => vec![path],
            Err(single_err) => {
                let index =
                    get(WEIGHTS_INDEX).map_err(|e| hub_err(format!("{single_err}; and {e}")))?;
                shards_of_index(&index)?
                    .iter()
                    .map(|f| get(f).map_err(hub_err))
                    .collect::<Result<Vec<_>>>()?
            }
        };
        Ok(Checkpoint {
            config_path,
            config,
            weight_files,
            embedded: None,
        })
    }

    /// A file of the cache's snapshot for `revision` (a branch or tag through `refs/`, or a
    /// commit hash directly).
    fn cached(cache: &Cache, id: &str, revision: &str, file: &str) -> Option<PathBuf> {
        let repo = Repo::with_revision(id.to_string(), RepoType::Model, revision.to_string());
        if let Some(path) = cache.repo(repo.clone()).get(file) {
            return Some(path);
        }
        let snapshot = cache
            .path()
            .join(repo.folder_name())
            .join("snapshots")
            .join(revision)
            .join(file);
        snapshot.is_file().then_some(snapshot)
    }
}
