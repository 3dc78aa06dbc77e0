//! The model bundled with chronos-rs, `chronos-bolt-2m`: a 2.1 M-parameter Chronos-Bolt trained
//! with this crate's `train` on KernelSynth series and the histories of the 11 shared benchmark
//! datasets (model card: `models/chronos-bolt-2m/README.md`). Its files are compiled into the
//! library, so `predict` and `evaluate` forecast without a model folder or network; they use it
//! when no `--model` is given. Online, [`RECOMMENDED_HUB_MODEL`] forecasts better.

/// The name that selects the bundled model wherever a model is named (`--model chronos-bolt-2m`),
/// unless a folder of that name exists.
pub const NAME: &str = "chronos-bolt-2m";

/// The published model to use when the hub is reachable.
pub const RECOMMENDED_HUB_MODEL: &str = "amazon/chronos-bolt-small";

/// Where the bundled files are in the repository (named in messages).
pub const SOURCE_DIR: &str = "models/chronos-bolt-2m";

/// Its `config.json`.
pub(crate) const CONFIG_JSON: &str = include_str!("../models/chronos-bolt-2m/config.json");

/// Its `model.safetensors` (f32).
pub(crate) const WEIGHTS: &[u8] = include_bytes!("../models/chronos-bolt-2m/model.safetensors");
