//! The training loop of `bin/train.rs` (upstream `train.py`'s `Trainer.train()`): builds the
//! model (random initialisation, or a checkpoint to fine-tune), the data pipeline and the
//! optimiser from a [`TrainConfig`], takes `max_steps` optimisation steps, logs metrics and
//! saves checkpoints into `output_dir/run-N/`.
//!
//! Layout of a run directory:
//!
//! * `training_info.json`: `{"training_config": {...}}` (upstream's `save_training_info`), with
//!   the seed actually used;
//! * `metrics.jsonl`: one JSON object every `log_steps` steps, and the same scalars for
//!   TensorBoard in `logs/events.out.tfevents.*` (tags `train/loss`, `train/learning_rate`,
//!   `train/grad_norm`, `train/steps_per_second`; a new file after each resume);
//! * `checkpoint-<step>/` every `save_steps` steps and `checkpoint-final/` at the end, each with
//!   `config.json`, `model.safetensors` (f32, HF key names, tied embeddings stored once as
//!   `shared.weight`), `optimizer.safetensors` (the AdamW moments and step counts,
//!   [`crate::train::adamw`]), `training_info.json` and `trainer_state.json` (step, data
//!   position, the losses since the last metrics line). Each is written into a temporary folder
//!   and renamed, so a checkpoint folder is complete.
//!
//! **Resuming.** tch 0.24 gives no access to libtorch's generator state, so the loop reseeds it
//! before every step from `(seed, step)` (dropout draws depend only on the step). [`resume`]
//! loads the last complete checkpoint's weights, AdamW state and data position and continues:
//! the same final weights as an uninterrupted run on the same device and thread count. A
//! checkpoint without `optimizer.safetensors` (written before the AdamW state was saved) is
//! resumed by replaying the steps up to it instead, checked bit for bit against its weights.
//!
//! **Data parallelism.** With [`RunOptions::distributed`], each process is one rank of a c10d
//! process group ([`crate::distributed`]): the parameters are broadcast from rank 0 after
//! initialisation, each rank takes its shard of every global batch (rows `rank * B ..
//! (rank + 1) * B` of the `world_size * B` instances one process would train on), the gradients
//! are averaged over ranks before every optimizer step (for the causal GPT-2 the token count is
//! summed over ranks and the loss scaled by the world size, as transformers'
//! `average_tokens_across_devices`), the logged losses are averaged over ranks, and rank 0 alone
//! writes the run directory. The ranks share a filesystem (`--resume` reads the checkpoint on
//! every rank). With Bolt's per-batch mean loss, N ranks of batch B train the same model as one
//! process of batch N * B, up to float rounding.
//!
//! Initialisation and dropout draw from libtorch's process-wide generator, so runs in one
//! process take turns ([`train`] and [`resume`] hold a process-wide lock while they run); other
//! code drawing from that generator meanwhile (e.g. Chronos-T5 sampling in another thread)
//! makes a run irreproducible.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::time::Instant;

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use tch::nn::VarStore;
use tch::{Device, Kind, Tensor};

use crate::bolt::{self, ChronosBolt};
use crate::checkpoint::Checkpoint;
use crate::chronos_t5::{self, ChronosT5};
use crate::config::ModelConfig;
use crate::distributed::{DataParallel, DistError, Distributed, ReduceOp};
use crate::error::ChronosError;
use crate::gpt2::{self, ChronosGpt2};
use crate::init::{init_bolt, init_gpt2, init_t5};
use crate::precision;
use crate::train::config::{ModelFamily, ModelType, TrainConfig, TrainConfigError};
use crate::train::data::{
    Batch, DataOptions, DataState, Mode, Shard, TrainDataError, TrainingData, DROP_PROB,
};
use crate::train::step::{LossScaling, Optimizer, Schedule, StepConfig, StepStats};
use crate::train::tensorboard::EventWriter;

/// Errors of a training run.
#[derive(Debug, thiserror::Error)]
pub enum TrainRunError {
    #[error(transparent)]
    Config(#[from] TrainConfigError),
    #[error(transparent)]
    Data(#[from] TrainDataError),
    #[error(transparent)]
    Model(#[from] ChronosError),
    #[error(transparent)]
    Distributed(#[from] DistError),
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// A run directory that cannot be resumed (the message says why).
    #[error("{}: cannot resume: {message}", path.display())]
    Resume { path: PathBuf, message: String },
    /// A loss that is not finite.
    #[error("step {step}: the loss is {loss}; stopping")]
    NonFinite { step: usize, loss: f64 },
}

type Result<T, E = TrainRunError> = std::result::Result<T, E>;

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> TrainRunError + '_ {
    move |source| TrainRunError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// How a run executes (not part of the training config).
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// Where the model trains (f32 always).
    pub device: Device,
    /// Show an indicatif progress bar.
    pub progress: bool,
    /// Stop after this many optimisation steps in total (the run stays resumable, no final
    /// checkpoint): to train in several sessions, and to test resumption.
    pub stop_after: Option<usize>,
    /// This process's rank of a data-parallel job (`None`: a single process).
    pub distributed: Option<Distributed>,
}

impl RunOptions {
    /// Whether this process writes the run directory (rank 0, or a single process).
    fn writes(&self) -> bool {
        self.distributed
            .as_ref()
            .is_none_or(|d| d.group.rank() == 0)
    }
}

impl Default for RunOptions {
    fn default() -> Self {
        RunOptions {
            device: Device::Cpu,
            progress: false,
            stop_after: None,
            distributed: None,
        }
    }
}

/// What a run did.
#[derive(Debug, Clone)]
pub struct RunSummary {
    pub run_dir: PathBuf,
    /// Optimisation steps done (in total, replayed ones included).
    pub steps: usize,
    /// Mean micro-batch loss of the first step this session trained (after any replay).
    pub first_loss: f64,
    /// Mean micro-batch loss of the last step.
    pub last_loss: f64,
    /// Steps per second of this session's (non-replayed) steps.
    pub steps_per_second: f64,
    /// `checkpoint-final` when the run reached `max_steps`.
    pub final_checkpoint: Option<PathBuf>,
    /// Mean seconds per step spent averaging gradients over ranks (distributed runs).
    pub allreduce_seconds_per_step: Option<f64>,
}

/// The AdamW state of a checkpoint (see [`crate::train::adamw::AdamW::state_tensors`]).
const OPTIMIZER_FILE: &str = "optimizer.safetensors";

/// `trainer_state.json` of a checkpoint.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TrainerState {
    pub step: usize,
    pub seed: u64,
    pub data: DataState,
    /// Ranks of the data-parallel job that trained it (1 for a single process).
    #[serde(default = "one")]
    pub world_size: usize,
    /// The mean losses of the steps since the last metrics line (the next line averages them).
    #[serde(default)]
    pub loss_window: Vec<f64>,
}

fn one() -> usize {
    1
}

/// Serialises runs within a process: they share libtorch's global generator.
static RUN_LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn run_lock() -> std::sync::MutexGuard<'static, ()> {
    RUN_LOCK
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// The next free `base_dir/run-N` (upstream `get_next_path("run", base_dir, "")`): one above
/// the largest existing `run-<digits>` folder, `run-0` when there is none.
pub fn next_run_dir(base_dir: &Path) -> PathBuf {
    let next = std::fs::read_dir(base_dir)
        .map(|entries| {
            entries
                .filter_map(|e| e.ok())
                .filter(|e| e.path().is_dir())
                .filter_map(|e| run_number(&e.file_name().to_string_lossy()))
                .map(|n| n + 1)
                .max()
                .unwrap_or(0)
        })
        .unwrap_or(0);
    base_dir.join(format!("run-{next}"))
}

fn run_number(name: &str) -> Option<u64> {
    let digits = name.strip_prefix("run-")?;
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

/// The latest `output_dir/run-N` (largest N), for `--resume` without a folder.
pub fn latest_run_dir(base_dir: &Path) -> Option<PathBuf> {
    std::fs::read_dir(base_dir)
        .ok()?
        .filter_map(|e| e.ok())
        .filter(|e| e.path().is_dir())
        .filter_map(|e| run_number(&e.file_name().to_string_lossy()).map(|n| (n, e.path())))
        .max_by_key(|(n, _)| *n)
        .map(|(_, p)| p)
}

enum Model {
    Bolt(ChronosBolt),
    T5(ChronosT5),
    Gpt2(ChronosGpt2),
}

/// The model, its variables, the data and the optimiser of a run.
struct Trainer {
    cfg: TrainConfig,
    seed: u64,
    model: Model,
    vs: VarStore,
    data: TrainingData,
    opt: Optimizer,
    /// The gradient averaging of a distributed run, and how often to check the replicas.
    ddp: Option<(DataParallel, Option<usize>)>,
}

fn unsupported(message: &str) -> TrainRunError {
    TrainRunError::Model(ChronosError::Unsupported(message.to_string()))
}

impl Trainer {
    /// `cfg.seed` must be set (and equal on all ranks).
    fn new(cfg: TrainConfig, device: Device, distributed: Option<&Distributed>) -> Result<Self> {
        let seed = cfg.seed.unwrap_or(0);
        if device.is_cuda() {
            precision::set_tf32(cfg.tf32)?;
        }
        let backbone = cfg.backbone()?;
        let checkpoint = if cfg.random_init {
            None
        } else {
            Some(Checkpoint::open(&cfg.model_id)?)
        };
        let (model, mut vs) = match (cfg.model_family, cfg.model_type, &backbone) {
            (ModelFamily::Bolt, _, ModelConfig::T5(t5)) => {
                let chronos = cfg.bolt_config();
                let build = |root: &tch::nn::Path| ChronosBolt::new(root, t5, &chronos);
                let (m, vs) = match &checkpoint {
                    Some(c) => c.load_model(Kind::Float, device, &bolt::TIED_ALIASES, build)?,
                    None => {
                        let vs = VarStore::new(device);
                        let m = build(&vs.root());
                        init_bolt(&vs, t5, &chronos, seed as i64)?;
                        (m, vs)
                    }
                };
                (Model::Bolt(m), vs)
            }
            (ModelFamily::T5, ModelType::Seq2seq, ModelConfig::T5(t5)) => {
                let chronos = cfg.chronos_config();
                let build = |root: &tch::nn::Path| ChronosT5::new(root, t5, &chronos);
                let (m, vs) = match &checkpoint {
                    Some(c) => {
                        c.load_model(Kind::Float, device, &chronos_t5::TIED_ALIASES, build)?
                    }
                    None => {
                        let vs = VarStore::new(device);
                        let m = build(&vs.root());
                        init_t5(&vs, t5, seed as i64)?;
                        (m, vs)
                    }
                };
                (Model::T5(m), vs)
            }
            (ModelFamily::T5, ModelType::Causal, ModelConfig::Gpt2(g)) => {
                let chronos = cfg.chronos_config();
                let build = |root: &tch::nn::Path| ChronosGpt2::new(root, g, &chronos);
                let (m, vs) = match &checkpoint {
                    Some(c) => c.load_model(Kind::Float, device, &gpt2::TIED_ALIASES, build)?,
                    None => {
                        let vs = VarStore::new(device);
                        let m = build(&vs.root());
                        init_gpt2(&vs, g, seed as i64)?;
                        (m, vs)
                    }
                };
                (Model::Gpt2(m), vs)
            }
            _ => {
                return Err(unsupported(
                    "this combination of model_family, model_type and backbone architecture \
                     (Bolt and seq2seq need a T5 backbone, causal a GPT-2 one)",
                ))
            }
        };
        vs.unfreeze();

        let mode = match (cfg.model_family, cfg.model_type) {
            (ModelFamily::Bolt, _) => Mode::Bolt {
                drop_prob: DROP_PROB,
                skip_constant_past: cfg.skip_constant_contexts.unwrap_or(false),
                max_scaled_future: cfg.max_scaled_target,
            },
            (ModelFamily::T5, ModelType::Seq2seq) => Mode::Seq2Seq {
                tokenizer: cfg.chronos_config(),
                drop_prob: DROP_PROB,
            },
            (ModelFamily::T5, ModelType::Causal) => Mode::Causal {
                tokenizer: cfg.chronos_config(),
            },
        };
        let mut options = DataOptions::new(mode);
        options.context_length = cfg.context_length as usize;
        options.prediction_length = cfg.prediction_length as usize;
        options.min_past = cfg.min_past as usize;
        options.max_missing_prop = cfg.max_missing_prop;
        options.shuffle_buffer_length = cfg.shuffle_buffer_length;
        options.batch_size = cfg.per_device_train_batch_size;
        options.seed = seed;
        options.threads = cfg.dataloader_workers().max(1);
        if let Some(d) = distributed {
            options.shard = Shard {
                rank: d.group.rank(),
                world_size: d.group.world_size(),
            };
        }
        let data = TrainingData::open(
            &cfg.training_data_paths,
            Some(&cfg.probabilities()),
            options,
        )?;

        let scaling = match cfg.model_family {
            ModelFamily::Bolt => LossScaling::DivideByAccumulationSteps,
            ModelFamily::T5 => LossScaling::AsIs,
        };
        let schedule = Schedule {
            kind: cfg.lr_scheduler_type,
            warmup_steps: cfg.warmup_steps(),
            training_steps: cfg.max_steps as i64,
        };
        let step_config = StepConfig::new(
            cfg.learning_rate,
            schedule,
            cfg.gradient_accumulation_steps as i64,
            scaling,
        );
        let opt = Optimizer::new(&vs, step_config)?;
        let ddp = match distributed {
            Some(d) => {
                let params = opt
                    .params()
                    .iter()
                    .map(|(name, t)| (name.clone(), t.shallow_clone()))
                    .collect();
                let ddp = DataParallel::new(d.group.clone(), params, d.bucket_bytes)?;
                ddp.broadcast_parameters()?;
                Some((ddp, d.check_sync_every))
            }
            None => None,
        };
        Ok(Trainer {
            cfg,
            seed,
            model,
            vs,
            data,
            opt,
            ddp,
        })
    }

    fn step_count(&self) -> usize {
        self.opt.step_count() as usize
    }

    /// Continues from checkpoint `dir` (whose trainer state is `state`): its weights, AdamW
    /// state and data position. Errors name the file at fault.
    fn restore(&mut self, dir: &Path, state: &TrainerState) -> Result<()> {
        let resume_err = |path: &Path, message: String| TrainRunError::Resume {
            path: path.to_path_buf(),
            message,
        };
        let weights = dir.join("model.safetensors");
        let saved =
            Tensor::read_safetensors(&weights).map_err(|e| TrainRunError::Model(e.into()))?;
        let mut saved: std::collections::HashMap<String, Tensor> = saved.into_iter().collect();
        tch::no_grad(|| {
            for (name, var) in self.vs.variables() {
                let t = saved
                    .remove(&name)
                    .ok_or_else(|| resume_err(&weights, format!("no tensor '{name}'")))?;
                if t.size() != var.size() {
                    return Err(resume_err(
                        &weights,
                        format!(
                            "'{name}' has shape {:?}, the model {:?}",
                            t.size(),
                            var.size()
                        ),
                    ));
                }
                var.shallow_clone().copy_(&t);
            }
            Ok(())
        })?;
        if let Some(extra) = saved.keys().min() {
            return Err(resume_err(&weights, format!("unexpected tensor '{extra}'")));
        }
        let optimizer = dir.join(OPTIMIZER_FILE);
        let moments =
            Tensor::read_safetensors(&optimizer).map_err(|e| TrainRunError::Model(e.into()))?;
        self.opt
            .restore(state.step as i64, moments, &optimizer.display().to_string())?;
        self.data.restore(&state.data)?;
        Ok(())
    }

    /// One optimisation step (all micro-batches), libtorch's generator seeded from
    /// `(seed, step)` first. In a distributed run the gradients are averaged over ranks before
    /// the optimizer step, and the returned losses are the ranks' means.
    fn step(&mut self) -> Result<StepStats> {
        let step = self.step_count();
        tch::manual_seed(step_seed(self.seed, step));
        let accumulation = self.cfg.gradient_accumulation_steps;
        let device = self.vs.device();
        let mut batches = Vec::with_capacity(accumulation);
        for _ in 0..accumulation {
            batches.push(self.data.next_batch()?);
        }
        // The causal loss is a sum over the step's tokens divided by their number: over all
        // ranks' tokens, times the world size since the gradients are then averaged.
        let (mut num_items, mut loss_factor) = (None, 1.0);
        if let Model::Gpt2(_) = self.model {
            let local: i64 = batches
                .iter()
                .map(|b| match b {
                    Batch::Tokens { labels, .. } => ChronosGpt2::num_items(labels),
                    Batch::Values { .. } => 0,
                })
                .sum();
            num_items = Some(local);
            if let Some((ddp, _)) = &self.ddp {
                let group = ddp.group();
                num_items = Some(group.allreduce_f64(&[local as f64], ReduceOp::Sum)?[0] as i64);
                loss_factor = group.world_size() as f64;
            }
        }
        for batch in &batches {
            let loss = if self.cfg.bf16 {
                precision::autocast(device, Kind::BFloat16, || {
                    micro_batch_loss(&self.model, batch, device, num_items)
                })??
            } else {
                micro_batch_loss(&self.model, batch, device, num_items)?
            };
            let loss = if loss_factor == 1.0 {
                loss
            } else {
                loss * loss_factor
            };
            self.opt.backward(&loss)?;
        }
        if let Some((ddp, _)) = &self.ddp {
            ddp.allreduce_gradients()?;
        }
        let mut stats = self.opt.step()?;
        if let Some((ddp, check_every)) = &self.ddp {
            stats.losses = ddp
                .group()
                .allreduce_f64(&stats.losses, ReduceOp::Average)?;
            if check_every.is_some_and(|k| (step + 1).is_multiple_of(k)) {
                ddp.check_parameters(step + 1)?;
            }
        }
        let loss = mean(&stats.losses);
        if !loss.is_finite() {
            return Err(TrainRunError::NonFinite { step, loss });
        }
        Ok(stats)
    }

    /// Total seconds spent averaging gradients (distributed runs).
    fn allreduce_seconds(&self) -> Option<f64> {
        self.ddp
            .as_ref()
            .map(|(ddp, _)| ddp.allreduce_time().as_secs_f64())
    }

    /// The variables by name, sorted, as f32 CPU tensors (what `model.safetensors` holds).
    fn weights(&self) -> Vec<(String, Tensor)> {
        let mut vars: Vec<(String, Tensor)> = self
            .vs
            .variables()
            .into_iter()
            .map(|(name, t)| {
                let t = t.detach().to_kind(Kind::Float).to(Device::Cpu).contiguous();
                (name, t)
            })
            .collect();
        vars.sort_by(|a, b| a.0.cmp(&b.0));
        vars
    }

    fn trainer_state(&self) -> TrainerState {
        TrainerState {
            step: self.step_count(),
            seed: self.seed,
            data: self.data.state(),
            world_size: self
                .ddp
                .as_ref()
                .map_or(1, |(ddp, _)| ddp.group().world_size()),
            loss_window: Vec::new(),
        }
    }

    /// Writes `run_dir/<name>/` atomically (a temporary folder renamed into place).
    fn save(&self, run_dir: &Path, name: &str, loss_window: &[f64]) -> Result<PathBuf> {
        let target = run_dir.join(name);
        let tmp = run_dir.join(format!(".{name}.tmp"));
        if tmp.exists() {
            std::fs::remove_dir_all(&tmp).map_err(io(&tmp))?;
        }
        std::fs::create_dir_all(&tmp).map_err(io(&tmp))?;
        self.cfg.write_config_json(&tmp)?;
        let weights = tmp.join("model.safetensors");
        Tensor::write_safetensors(&self.weights(), &weights)
            .map_err(|e| TrainRunError::Model(e.into()))?;
        Tensor::write_safetensors(&self.opt.state_tensors(), tmp.join(OPTIMIZER_FILE))
            .map_err(|e| TrainRunError::Model(e.into()))?;
        write_json(&tmp.join("training_info.json"), &training_info(&self.cfg))?;
        write_json(
            &tmp.join("trainer_state.json"),
            &serde_json::to_value(TrainerState {
                loss_window: loss_window.to_vec(),
                ..self.trainer_state()
            })
            .unwrap_or(Value::Null),
        )?;
        if target.exists() {
            std::fs::remove_dir_all(&target).map_err(io(&target))?;
        }
        std::fs::rename(&tmp, &target).map_err(io(&target))?;
        Ok(target)
    }
}

/// The loss of one micro-batch (`num_items`: the causal model's token count of the step).
fn micro_batch_loss(
    model: &Model,
    batch: &Batch,
    device: Device,
    num_items: Option<i64>,
) -> Result<Tensor> {
    let loss = match (model, batch) {
        (Model::Bolt(m), Batch::Values { context, target }) => {
            m.loss(&context.to(device), &target.to(device), None, true)
        }
        (
            Model::T5(m),
            Batch::Tokens {
                input_ids,
                attention_mask,
                labels,
            },
        ) => m.loss(
            &input_ids.to(device),
            &attention_mask.to(device),
            &labels.to(device),
            true,
        ),
        (
            Model::Gpt2(m),
            Batch::Tokens {
                input_ids,
                attention_mask,
                labels,
            },
        ) => m.loss(
            &input_ids.to(device),
            &attention_mask.to(device),
            &labels.to(device),
            num_items,
            true,
        ),
        _ => Err(ChronosError::InvalidInput(
            "the data pipeline produced batches for another model family".into(),
        )),
    };
    Ok(loss?)
}

/// The seed of libtorch's generator for step `step` (dropout).
fn step_seed(seed: u64, step: usize) -> i64 {
    (seed
        .wrapping_mul(0x9E37_79B9_7F4A_7C15)
        .wrapping_add(step as u64)
        & 0x7FFF_FFFF_FFFF_FFFF) as i64
}

fn mean(values: &[f64]) -> f64 {
    values.iter().sum::<f64>() / values.len().max(1) as f64
}

/// `{"training_config": {...}}`, as upstream's `save_training_info`.
pub fn training_info(cfg: &TrainConfig) -> Value {
    json!({ "training_config": serde_json::to_value(cfg).unwrap_or(Value::Null) })
}

fn write_json(path: &Path, value: &Value) -> Result<()> {
    let text = serde_json::to_string_pretty(value).unwrap_or_default() + "\n";
    crate::atomic::write(path, text.as_bytes()).map_err(io(path))
}

/// Starts a run of `cfg` (validated, as [`TrainConfig::load`] gives it) in the next free
/// `output_dir/run-N`. Without a `seed`, one is drawn and recorded in `training_info.json`.
/// Distributed, rank 0 draws the seed and picks the run directory for all.
pub fn train(cfg: &TrainConfig, options: &RunOptions) -> Result<RunSummary> {
    cfg.validate()?;
    let _turn = run_lock();
    let mut cfg = cfg.clone();
    let group = options.distributed.as_ref().map(|d| &*d.group);
    let mut seed = cfg.seed.unwrap_or_else(random_seed);
    if let Some(group) = group {
        seed = group.broadcast_u64(&[seed])?[0];
    }
    cfg.seed = Some(seed);
    let trainer = Trainer::new(cfg.clone(), options.device, options.distributed.as_ref())?;
    let mut run_dir = next_run_dir(&cfg.output_dir);
    if options.writes() {
        std::fs::create_dir_all(&cfg.output_dir).map_err(io(&cfg.output_dir))?;
        std::fs::create_dir(&run_dir).map_err(io(&run_dir))?;
        write_json(&run_dir.join("training_info.json"), &training_info(&cfg))?;
    }
    if let Some(group) = group {
        let name = run_dir.file_name().map(|n| n.to_string_lossy().to_string());
        let number = name.as_deref().and_then(run_number).unwrap_or(0);
        let number = group.broadcast_u64(&[number])?[0];
        run_dir = cfg.output_dir.join(format!("run-{number}"));
    }
    run_loop(trainer, &run_dir, options, 0, Vec::new())
}

/// A seed from the clock and the process id (upstream: `randint(0, 2**32)`).
fn random_seed() -> u64 {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0);
    (nanos ^ (u64::from(std::process::id()) << 32)) % (1 << 32)
}

/// The last complete `checkpoint-<step>` of `run_dir`, with its state.
fn last_checkpoint(run_dir: &Path) -> Result<Option<(PathBuf, TrainerState)>> {
    let entries = std::fs::read_dir(run_dir).map_err(io(run_dir))?;
    let mut best: Option<(usize, PathBuf)> = None;
    for entry in entries.filter_map(|e| e.ok()) {
        let name = entry.file_name().to_string_lossy().to_string();
        let Some(step) = name
            .strip_prefix("checkpoint-")
            .and_then(|s| s.parse::<usize>().ok())
        else {
            continue;
        };
        if entry.path().join("trainer_state.json").is_file()
            && best.as_ref().is_none_or(|(b, _)| step > *b)
        {
            best = Some((step, entry.path()));
        }
    }
    let Some((_, dir)) = best else {
        return Ok(None);
    };
    let path = dir.join("trainer_state.json");
    let text = std::fs::read_to_string(&path).map_err(io(&path))?;
    let state: TrainerState = serde_json::from_str(&text).map_err(|e| TrainRunError::Resume {
        path: path.clone(),
        message: format!("invalid trainer state: {e}"),
    })?;
    Ok(Some((dir, state)))
}

/// Reads the training config of a run (`run_dir/training_info.json`).
pub fn run_config(run_dir: &Path) -> Result<TrainConfig> {
    let path = run_dir.join("training_info.json");
    let text = std::fs::read_to_string(&path).map_err(io(&path))?;
    let bad = |message: String| TrainRunError::Resume {
        path: path.clone(),
        message,
    };
    let value: Value = serde_json::from_str(&text).map_err(|e| bad(format!("not JSON: {e}")))?;
    let cfg: TrainConfig = serde_json::from_value(value["training_config"].clone())
        .map_err(|e| bad(format!("invalid training_config: {e}")))?;
    cfg.validate()?;
    Ok(cfg)
}

/// Continues the run in `run_dir` from its last complete checkpoint (from step 0 when it has
/// none) up to `max_steps` (see the module docs for how the optimiser state is restored).
pub fn resume(run_dir: &Path, options: &RunOptions) -> Result<RunSummary> {
    let cfg = run_config(run_dir)?;
    let _turn = run_lock();
    if run_dir.join("checkpoint-final").is_dir() {
        return Err(TrainRunError::Resume {
            path: run_dir.to_path_buf(),
            message: "the run is complete (checkpoint-final exists)".into(),
        });
    }
    let mut trainer = Trainer::new(cfg, options.device, options.distributed.as_ref())?;
    let mut start = 0;
    let mut window = Vec::new();
    if let Some((dir, state)) = last_checkpoint(run_dir)? {
        let mismatch = |message: String| TrainRunError::Resume {
            path: dir.clone(),
            message,
        };
        let world_size = trainer.trainer_state().world_size;
        if state.world_size != world_size {
            return Err(mismatch(format!(
                "it was trained by {} rank(s), this job has {world_size} (the ranks' data \
                 shards depend on it)",
                state.world_size
            )));
        }
        if state.seed != trainer.seed {
            return Err(mismatch(format!(
                "seed {} differs from training_info.json's {}",
                state.seed, trainer.seed
            )));
        }
        if dir.join(OPTIMIZER_FILE).is_file() {
            trainer.restore(&dir, &state)?;
            if options.writes() {
                truncate_metrics(&run_dir.join("metrics.jsonl"), state.step)?;
            }
            return run_loop(trainer, run_dir, options, state.step, state.loss_window);
        }
        // A checkpoint without the AdamW state (written before it was saved): replay.
        let bar = progress_bar(options.progress, state.step as u64, "replaying");
        while trainer.step_count() < state.step {
            let stats = trainer.step()?;
            // The losses since the last metrics line, for the next one.
            if trainer.step_count().is_multiple_of(trainer.cfg.log_steps) {
                window.clear();
            } else {
                window.push(mean(&stats.losses));
            }
            bar.inc(1);
        }
        bar.finish_and_clear();
        if trainer.data.state() != state.data {
            return Err(mismatch(
                "the replayed data position differs from the checkpoint's".into(),
            ));
        }
        let weights = dir.join("model.safetensors");
        let mut saved =
            Tensor::read_safetensors(&weights).map_err(|e| TrainRunError::Model(e.into()))?;
        saved.sort_by(|a, b| a.0.cmp(&b.0));
        let ours = trainer.weights();
        let same = saved.len() == ours.len()
            && saved
                .iter()
                .zip(&ours)
                .all(|((a, x), (b, y))| a == b && x.size() == y.size() && x.equal(y));
        if !same {
            return Err(mismatch(
                "the replayed weights differ from the checkpoint's (another device, thread \
                 count or build?)"
                    .into(),
            ));
        }
        start = state.step;
    }
    if options.writes() {
        truncate_metrics(&run_dir.join("metrics.jsonl"), start)?;
    }
    run_loop(trainer, run_dir, options, start, window)
}

/// Drops the metric lines of steps after `step` (written before an interruption).
fn truncate_metrics(path: &Path, step: usize) -> Result<()> {
    let Ok(text) = std::fs::read_to_string(path) else {
        return Ok(());
    };
    let kept: String = text
        .lines()
        .filter(|line| {
            serde_json::from_str::<Value>(line)
                .ok()
                .and_then(|v| v["step"].as_u64())
                .is_some_and(|s| s as usize <= step)
        })
        .map(|line| format!("{line}\n"))
        .collect();
    crate::atomic::write(path, kept.as_bytes()).map_err(io(path))
}

fn progress_bar(show: bool, len: u64, message: &str) -> indicatif::ProgressBar {
    if !show {
        return indicatif::ProgressBar::hidden();
    }
    let bar = indicatif::ProgressBar::new(len);
    let style = indicatif::ProgressStyle::with_template(
        "{msg} [{elapsed_precise}] {bar:30} {pos}/{len} (eta {eta})",
    )
    .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar());
    bar.set_style(style);
    bar.set_message(message.to_string());
    bar
}

fn run_loop(
    mut trainer: Trainer,
    run_dir: &Path,
    options: &RunOptions,
    start: usize,
    mut window: Vec<f64>,
) -> Result<RunSummary> {
    let max_steps = trainer.cfg.max_steps;
    let (log_steps, save_steps) = (trainer.cfg.log_steps, trainer.cfg.save_steps);
    let stop = options.stop_after.unwrap_or(max_steps).min(max_steps);
    let writes = options.writes();
    let metrics_path = run_dir.join("metrics.jsonl");
    let logs_dir = run_dir.join("logs");
    let mut metrics = if writes {
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&metrics_path)
            .map_err(io(&metrics_path))?;
        let events = EventWriter::create(&logs_dir).map_err(io(&logs_dir))?;
        Some((file, events))
    } else {
        None
    };
    let bar = progress_bar(options.progress, max_steps as u64, "training");
    bar.set_position(start as u64);
    let began = Instant::now();
    let (mut first_loss, mut last_loss) = (f64::NAN, f64::NAN);
    let mut window_start = Instant::now();
    let allreduce_start = trainer.allreduce_seconds();
    let mut window_allreduce = allreduce_start;
    while trainer.step_count() < stop {
        let stats = trainer.step()?;
        let step = trainer.step_count();
        let loss = mean(&stats.losses);
        if first_loss.is_nan() {
            first_loss = loss;
        }
        last_loss = loss;
        window.push(loss);
        let done = (step - start) as f64;
        let rate = done / began.elapsed().as_secs_f64().max(1e-9);
        bar.set_position(step as u64);
        bar.set_message(format!(
            "loss {loss:.4} lr {:.2e} {rate:.2} steps/s",
            stats.learning_rate
        ));
        if step.is_multiple_of(log_steps) || step == max_steps {
            let window_rate = window.len() as f64 / window_start.elapsed().as_secs_f64().max(1e-9);
            let mut line = json!({
                "step": step,
                "loss": mean(&window),
                "learning_rate": stats.learning_rate,
                "grad_norm": stats.grad_norm,
                "steps_per_second": window_rate,
                "elapsed_s": began.elapsed().as_secs_f64(),
            });
            if let (Some(now), Some(before)) = (trainer.allreduce_seconds(), window_allreduce) {
                line["allreduce_s_per_step"] = json!((now - before) / window.len() as f64);
                window_allreduce = Some(now);
            }
            if let Some((file, events)) = metrics.as_mut() {
                writeln!(file, "{line}").map_err(io(&metrics_path))?;
                file.flush().map_err(io(&metrics_path))?;
                let scalars = [
                    ("train/loss", mean(&window)),
                    ("train/learning_rate", stats.learning_rate),
                    ("train/grad_norm", stats.grad_norm),
                    ("train/steps_per_second", window_rate),
                ];
                events
                    .scalars(step as u64, &scalars)
                    .map_err(io(events.path()))?;
                bar.println(line.to_string());
            }
            window.clear();
            window_start = Instant::now();
        }
        if writes && step.is_multiple_of(save_steps) {
            trainer.save(run_dir, &format!("checkpoint-{step}"), &window)?;
        }
    }
    bar.finish_and_clear();
    let steps = trainer.step_count();
    let final_checkpoint = if steps >= max_steps {
        let dir = run_dir.join("checkpoint-final");
        if writes {
            trainer.save(run_dir, "checkpoint-final", &window)?;
        }
        Some(dir)
    } else {
        None
    };
    if let Some((ddp, _)) = &trainer.ddp {
        // every rank returns once rank 0's last checkpoint is written
        ddp.group().barrier()?;
    }
    let trained = steps.saturating_sub(start);
    Ok(RunSummary {
        run_dir: run_dir.to_path_buf(),
        steps,
        first_loss,
        last_loss,
        steps_per_second: trained as f64 / began.elapsed().as_secs_f64().max(1e-9),
        final_checkpoint,
        allreduce_seconds_per_step: trainer
            .allreduce_seconds()
            .zip(allreduce_start)
            .map(|(end, start)| (end - start) / trained.max(1) as f64),
    })
}
