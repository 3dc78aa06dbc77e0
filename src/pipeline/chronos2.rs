//! Chronos-2 pipeline (upstream `Chronos2Pipeline`): tasks batched whole as upstream's
//! `Chronos2Dataset` (TEST mode), group ids per task (or one group with cross-learning), long
//! horizons unrolled over `unrolled_quantiles` with known covariates slid in, quantile levels
//! interpolated as upstream.

use std::ops::Range;
use std::path::Path;

use tch::nn::VarStore;
use tch::{Device, Kind, Tensor};

use super::quantile::{interpolate_quantiles, level_tensor, prob_mass, weighted_quantile};
use super::{horizon, levels_tensor, Chronos2Task, Dtype, QuantileForecast};
use crate::checkpoint::Checkpoint;
use crate::chronos2::Chronos2Model;
use crate::config::Chronos2Config;
use crate::error::{ChronosError, Result};

/// Upstream's default `unrolled_quantiles`: the paths fed back beyond the model's horizon.
pub const UNROLLED_QUANTILES: [f64; 9] = [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9];

/// Options of [`Chronos2Pipeline::predict`] (upstream `predict`'s keyword arguments).
#[derive(Debug, Clone, PartialEq)]
pub struct Chronos2Options {
    /// Steps to forecast (default: the model's `max_output_patches * output_patch_size`).
    pub prediction_length: Option<i64>,
    /// Rows (targets and covariates) per forward pass; tasks are never split.
    pub batch_size: usize,
    /// Context kept per task (default and maximum: the model's).
    pub context_length: Option<i64>,
    /// All tasks of a batch form one group and attend to each other.
    pub cross_learning: bool,
    /// Refuse horizons beyond the model's instead of unrolling.
    pub limit_prediction_length: bool,
}

impl Default for Chronos2Options {
    fn default() -> Self {
        Chronos2Options {
            prediction_length: None,
            batch_size: 256,
            context_length: None,
            cross_learning: false,
            limit_prediction_length: false,
        }
    }
}

/// Encoder embeddings of one task (upstream `embed`).
#[derive(Debug)]
pub struct Chronos2Embedding {
    /// `(n_targets, patches + 2, d_model)` ([REG] and one future patch last), model dtype, CPU.
    pub embeddings: Tensor,
    /// `(n_targets, 1)` f32, CPU.
    pub loc: Tensor,
    /// `(n_targets, 1)` f32, CPU.
    pub scale: Tensor,
}

/// A batch of whole tasks, as upstream's `Chronos2Dataset._build_batch`.
struct Batch {
    /// `(rows, len)` f32, tasks left-padded with NaN to the longest.
    context: Tensor,
    /// `(rows, horizon)` f32.
    future: Tensor,
    /// `(rows,)` i64: the task's index in the batch.
    group_ids: Tensor,
    /// Rows of each task's targets.
    targets: Vec<Range<i64>>,
}

/// A Chronos-2 model ready to forecast.
#[derive(Debug)]
pub struct Chronos2Pipeline {
    pub model: Chronos2Model,
    device: Device,
    vs: VarStore,
}

impl Chronos2Pipeline {
    /// Builds the model from `checkpoint` and loads its weights at `dtype` on `device`.
    pub fn load(checkpoint: &Checkpoint, dtype: Dtype, device: Device) -> Result<Self> {
        let chronos: Chronos2Config = checkpoint.config.chronos(&checkpoint.config_path)?;
        let t5 = checkpoint.config.t5(&checkpoint.config_path)?;
        Chronos2Model::validate(t5, &chronos).map_err(|message| ChronosError::Config {
            path: checkpoint.config_path.clone(),
            message,
        })?;
        let (model, vs) = checkpoint.load_model(dtype.kind(), device, &[], |root| {
            Chronos2Model::new(root, t5, &chronos)
        })?;
        let mut pipeline = Chronos2Pipeline { model, device, vs };
        pipeline.model.pack_for_inference();
        Ok(pipeline)
    }

    /// Loads the base model of a peft LoRA adapter folder and merges the adapter into it
    /// (upstream `from_pretrained` on an adapter: `merge_and_unload`). The base is `base`, else
    /// the adapter's `base_model_name_or_path`.
    pub fn load_adapter(
        adapter: &Path,
        base: Option<&str>,
        dtype: Dtype,
        device: Device,
    ) -> Result<Self> {
        let lora = crate::lora::Adapter::read(adapter)?;
        let base_spec = base.unwrap_or(&lora.base_model);
        let checkpoint = Checkpoint::open(base_spec).map_err(|e| {
            ChronosError::checkpoint(
                adapter,
                format!(
                    "cannot open the base model '{base_spec}'{}: {e}",
                    if base.is_some() {
                        ""
                    } else {
                        " named by adapter_config.json (name another base model to override it)"
                    }
                ),
            )
        })?;
        let mut pipeline = Self::load(&checkpoint, dtype, device)?;
        lora.merge_into(&mut pipeline.vs)?;
        pipeline.model.pack_for_inference(); // again: the packed copies predate the merge
        Ok(pipeline)
    }

    pub fn context_length(&self) -> i64 {
        self.model.chronos.context_length
    }

    /// Steps forecast by one forward pass.
    pub fn prediction_length(&self) -> i64 {
        self.model.chronos.prediction_length()
    }

    /// The quantile levels the model outputs.
    pub fn quantiles(&self) -> &[f64] {
        &self.model.chronos.quantiles
    }

    /// The context kept per task: `requested` (at most the model's, as upstream, which warns
    /// and resets larger values) or the model's.
    fn context_kept(&self, requested: Option<i64>) -> Result<i64> {
        match requested {
            Some(c) if c <= 0 => Err(ChronosError::InvalidInput(format!(
                "context_length must be positive, got {c}"
            ))),
            Some(c) => Ok(c.min(self.context_length())),
            None => Ok(self.context_length()),
        }
    }

    /// Consecutive tasks per batch: tasks are added until their rows reach `batch_size` (the
    /// task that crosses it included), as upstream.
    fn batch_ranges(tasks: &[Chronos2Task], batch_size: usize) -> Vec<Range<usize>> {
        let mut ranges = Vec::new();
        let mut start = 0;
        while start < tasks.len() {
            let (mut end, mut rows) = (start, 0);
            while end < tasks.len() && rows < batch_size {
                rows += tasks[end].rows();
                end += 1;
            }
            ranges.push(start..end);
            start = end;
        }
        ranges
    }

    /// Stacks `tasks` (each task's last `context` steps, left-padded with NaN) with their
    /// future rows (`horizon` long, or none for embeddings).
    fn build_batch(&self, tasks: &[Chronos2Task], context: i64, horizon: usize) -> Batch {
        let keep = |t: &Chronos2Task| t.history.min(context as usize);
        let len = tasks.iter().map(keep).max().unwrap_or(0);
        let rows: usize = tasks.iter().map(Chronos2Task::rows).sum();
        let mut ctx = vec![f32::NAN; rows * len];
        let mut future = Vec::with_capacity(rows * horizon);
        let mut group_ids = Vec::with_capacity(rows);
        let mut targets = Vec::with_capacity(tasks.len());
        let mut row = 0;
        for (g, task) in tasks.iter().enumerate() {
            let k = keep(task);
            for r in 0..task.rows() {
                let src =
                    &task.context[r * task.history + task.history - k..(r + 1) * task.history];
                let dst = (row + r) * len;
                ctx[dst + len - k..dst + len].copy_from_slice(src);
                group_ids.push(g as i64);
            }
            future.extend_from_slice(&task.future[..task.rows() * horizon]);
            targets.push(row as i64..(row + task.n_targets) as i64);
            row += task.rows();
        }
        let device = self.device;
        Batch {
            context: Tensor::from_slice(&ctx)
                .view([rows as i64, len as i64])
                .to_device(device),
            future: Tensor::from_slice(&future)
                .view([rows as i64, horizon as i64])
                .to_device(device),
            group_ids: Tensor::from_slice(&group_ids).to_device(device),
            targets,
        }
    }

    fn check_tasks(tasks: &[Chronos2Task], horizon: Option<i64>) -> Result<()> {
        if tasks.is_empty() {
            return Err(ChronosError::InvalidInput("no task to forecast".into()));
        }
        for (i, task) in tasks.iter().enumerate() {
            task.validate()
                .map_err(|e| ChronosError::InvalidInput(format!("task {i}: {e}")))?;
            if let Some(h) = horizon.filter(|&h| task.horizon as i64 != h) {
                return Err(ChronosError::InvalidInput(format!(
                    "task {i}: its future covariates cover {} steps, the prediction length is {h}",
                    task.horizon
                )));
            }
        }
        Ok(())
    }

    /// Forecasts of every task: `(n_targets, quantiles, horizon)` f32 on the CPU each, in the
    /// model's quantile levels (upstream `predict`). Tasks' future rows must cover the horizon.
    pub fn predict(
        &self,
        tasks: &[Chronos2Task],
        options: &Chronos2Options,
    ) -> Result<Vec<Tensor>> {
        let h = horizon(
            options.prediction_length,
            self.prediction_length(),
            options.limit_prediction_length,
        )?;
        Self::check_tasks(tasks, Some(h))?;
        if options.batch_size == 0 {
            return Err(ChronosError::InvalidInput(
                "batch_size must be at least 1".into(),
            ));
        }
        let context = self.context_kept(options.context_length)?;
        let mut out = Vec::with_capacity(tasks.len());
        tch::no_grad(|| -> Result<()> {
            for range in Self::batch_ranges(tasks, options.batch_size) {
                let batch = self.build_batch(&tasks[range], context, h as usize);
                let group_ids = if options.cross_learning {
                    batch.group_ids.zeros_like()
                } else {
                    batch.group_ids.shallow_clone()
                };
                let prediction =
                    self.predict_batch(&batch.context, &group_ids, &batch.future, h)?;
                for rows in &batch.targets {
                    out.push(prediction.narrow(0, rows.start, rows.end - rows.start));
                }
            }
            Ok(())
        })?;
        Ok(out)
    }

    /// Upstream `_predict_batch`: `(rows, quantiles, horizon)` f32 on the CPU.
    fn predict_batch(
        &self,
        context: &Tensor,
        group_ids: &Tensor,
        future: &Tensor,
        horizon: i64,
    ) -> Result<Tensor> {
        let patch = self.model.chronos.output_patch_size;
        let max_patches = self.model.chronos.max_output_patches;
        let patches = |remaining: i64| ((remaining + patch - 1) / patch).min(max_patches);
        let mut prediction = self.predict_step(context, group_ids, future, patches(horizon))?;
        let mut remaining = horizon - prediction.size()[2];
        let mut predictions = vec![prediction.shallow_clone()];
        if remaining > 0 {
            let device = self.device;
            let unrolled = level_tensor(&UNROLLED_QUANTILES, device);
            let model_levels = level_tensor(self.quantiles(), device);
            let n = UNROLLED_QUANTILES.len() as i64;
            let (b, t) = context.size2().unwrap();
            // One context per unrolled quantile path: (batch, paths, len); the paths of a task
            // form a group per path.
            let mut context = context.unsqueeze(1).expand([b, n, t], false).contiguous();
            let mut future = future
                .unsqueeze(1)
                .expand([b, n, future.size()[1]], false)
                .contiguous();
            let group_ids = (group_ids.unsqueeze(1) * n
                + Tensor::arange(n, (Kind::Int64, device)).unsqueeze(0))
            .reshape([-1]);
            let weights = prob_mass(&unrolled)
                .outer(&prob_mass(&model_levels))
                .reshape([-1]);
            while remaining > 0 {
                let fed_back =
                    interpolate_quantiles(&unrolled, &model_levels, &prediction.transpose(1, 2))
                        .transpose(1, 2);
                let joined = Tensor::cat(&[&context, &fed_back], -1);
                let len = joined.size()[2];
                let keep = len.min(self.context_length());
                context = joined.narrow(2, len - keep, keep);
                // Known future covariates replace their fed-back values, then slide.
                let slide = prediction.size()[2];
                let known = future.narrow(2, 0, slide);
                let mut tail = context.narrow(2, keep - slide, slide);
                let merged = tail.where_self(&known.isnan(), &known);
                tail.copy_(&merged);
                future = future.narrow(2, slide, future.size()[2] - slide);
                let paths = self.predict_step(
                    &context.reshape([b * n, keep]),
                    &group_ids,
                    &future.reshape([b * n, -1]),
                    patches(remaining),
                )?;
                let q = paths.size()[1];
                let samples = paths.reshape([b, n * q, -1]).transpose(1, 2);
                prediction = weighted_quantile(&model_levels, &weights, &samples).transpose(1, 2);
                remaining -= prediction.size()[2];
                predictions.push(prediction.shallow_clone());
            }
        }
        Ok(Tensor::cat(&predictions, -1)
            .narrow(-1, 0, horizon)
            .to_kind(Kind::Float)
            .to_device(Device::Cpu))
    }

    /// Upstream `_predict_step`: future covariates padded with NaN (or cut) to `patches`
    /// output patches, one forward pass: `(rows, quantiles, patches * patch)` f32.
    fn predict_step(
        &self,
        context: &Tensor,
        group_ids: &Tensor,
        future: &Tensor,
        patches: i64,
    ) -> Result<Tensor> {
        let size = patches * self.model.chronos.output_patch_size;
        let (rows, len) = future.size2().unwrap();
        let future = if size > len {
            let pad = Tensor::full([rows, size - len], f64::NAN, (Kind::Float, future.device()));
            Tensor::cat(&[future, &pad], 1)
        } else {
            future.narrow(1, 0, size)
        };
        self.model
            .forward(context, group_ids, Some(&future), patches)
    }

    /// Forecasts at arbitrary quantile `levels` (upstream `predict_quantiles`): the model's own
    /// levels are selected, others interpolated (clamped outside the model's range); the point
    /// forecast is the median.
    pub fn predict_quantiles(
        &self,
        tasks: &[Chronos2Task],
        levels: &[f64],
        options: &Chronos2Options,
    ) -> Result<Vec<QuantileForecast>> {
        let query = levels_tensor(levels)?;
        let trained = self.quantiles();
        let median = trained.iter().position(|&q| q == 0.5).ok_or_else(|| {
            ChronosError::Unsupported(format!(
                "the model's quantiles {trained:?} do not include 0.5, needed for the point forecast"
            ))
        })?;
        let indices: Option<Vec<i64>> = levels
            .iter()
            .map(|q| trained.iter().position(|t| t == q).map(|i| i as i64))
            .collect();
        let trained_levels = level_tensor(trained, Device::Cpu);
        let forecasts = self.predict(tasks, options)?;
        Ok(forecasts
            .into_iter()
            .map(|f| {
                // (n_targets, horizon, trained levels)
                let f = f.transpose(-2, -1);
                let quantiles = match &indices {
                    Some(indices) => f.index_select(-1, &Tensor::from_slice(indices)),
                    None => interpolate_quantiles(&query, &trained_levels, &f),
                };
                QuantileForecast {
                    quantiles,
                    mean: f.select(-1, median as i64),
                }
            })
            .collect())
    }

    /// Encoder embeddings and loc/scale of each task's context (upstream `embed`; future
    /// rows are ignored).
    pub fn embed(
        &self,
        tasks: &[Chronos2Task],
        batch_size: usize,
        context_length: Option<i64>,
    ) -> Result<Vec<Chronos2Embedding>> {
        Self::check_tasks(tasks, None)?;
        if batch_size == 0 {
            return Err(ChronosError::InvalidInput(
                "batch_size must be at least 1".into(),
            ));
        }
        let context = self.context_kept(context_length)?;
        let mut out = Vec::with_capacity(tasks.len());
        tch::no_grad(|| -> Result<()> {
            for range in Self::batch_ranges(tasks, batch_size) {
                let batch = self.build_batch(&tasks[range], context, 0);
                let encoded =
                    self.model
                        .encode(&batch.context, &batch.group_ids, None, 1, false)?;
                for rows in &batch.targets {
                    let take = |t: &Tensor| {
                        t.narrow(0, rows.start, rows.end - rows.start)
                            .to_device(Device::Cpu)
                    };
                    out.push(Chronos2Embedding {
                        embeddings: take(&encoded.hidden),
                        loc: take(&encoded.loc_scale.loc),
                        scale: take(&encoded.loc_scale.scale),
                    });
                }
            }
            Ok(())
        })?;
        Ok(out)
    }
}
