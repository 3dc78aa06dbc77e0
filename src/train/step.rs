//! One optimisation step as transformers' `Trainer` takes it (upstream `scripts/training/train.py`
//! trains with `Trainer`): the micro-batch losses of gradient accumulation scaled and
//! backpropagated, gradients clipped by their global norm (`torch.nn.utils.clip_grad_norm_`),
//! decoupled weight decay and an AdamW step (libtorch's `torch::optim::AdamW` update, which
//! matches `torch.optim.AdamW`, with its state held here: [`super::adamw`]) at the learning rate
//! of the schedule (`get_scheduler`'s lambdas), then the gradients cleared.
//!
//! The schedules are pure functions of the step, so resuming needs the step count and the
//! AdamW state ([`Optimizer::state_tensors`]).

use std::str::FromStr;

use tch::nn::VarStore;
use tch::Tensor;

use super::adamw::AdamW;
use crate::error::{ChronosError, Result};

/// `lr_scheduler_type` of transformers' `TrainingArguments` (the ones implemented here).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ScheduleKind {
    /// `get_linear_schedule_with_warmup`: up from 0 over the warmup, then down to 0 at the end.
    Linear,
    /// `get_cosine_schedule_with_warmup` (half a cosine period after the warmup).
    Cosine,
    /// `get_constant_schedule`: 1 throughout (transformers ignores warmup steps here).
    Constant,
    /// `get_constant_schedule_with_warmup`.
    ConstantWithWarmup,
}

impl ScheduleKind {
    /// The `lr_scheduler_type` string.
    pub fn name(self) -> &'static str {
        match self {
            ScheduleKind::Linear => "linear",
            ScheduleKind::Cosine => "cosine",
            ScheduleKind::Constant => "constant",
            ScheduleKind::ConstantWithWarmup => "constant_with_warmup",
        }
    }
}

impl FromStr for ScheduleKind {
    type Err = ChronosError;

    fn from_str(s: &str) -> Result<Self> {
        match s {
            "linear" => Ok(ScheduleKind::Linear),
            "cosine" => Ok(ScheduleKind::Cosine),
            "constant" => Ok(ScheduleKind::Constant),
            "constant_with_warmup" => Ok(ScheduleKind::ConstantWithWarmup),
            other => Err(ChronosError::Unsupported(format!(
                "lr_scheduler_type '{other}' (linear, cosine, constant, constant_with_warmup)"
            ))),
        }
    }
}

/// A learning-rate schedule: the multiplier of the base learning rate at each optimisation step.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Schedule {
    pub kind: ScheduleKind,
    pub warmup_steps: i64,
    pub training_steps: i64,
}

impl Schedule {
    /// The multiplier for optimisation step `step` (0-based: what `LambdaLR` applies to the
    /// `step`-th call of `optimizer.step()`), with the float arithmetic of transformers' lambdas.
    pub fn factor(&self, step: i64) -> f64 {
        let warmup = self.warmup_steps;
        let warming = |step: i64| step as f64 / (warmup.max(1) as f64);
        let decay_steps = (self.training_steps - warmup).max(1) as f64;
        match self.kind {
            ScheduleKind::Constant => 1.0,
            ScheduleKind::ConstantWithWarmup if step < warmup => warming(step),
            ScheduleKind::ConstantWithWarmup => 1.0,
            ScheduleKind::Linear if step < warmup => warming(step),
            ScheduleKind::Linear => ((self.training_steps - step) as f64 / decay_steps).max(0.0),
            ScheduleKind::Cosine if step < warmup => warming(step),
            ScheduleKind::Cosine => {
                // num_cycles 0.5, min_lr_rate 0: `factor * (1 - 0) + 0`, then max(0, .)
                let progress = (step - warmup) as f64 / decay_steps;
                let factor = 0.5 * (1.0 + (std::f64::consts::PI * 0.5 * 2.0 * progress).cos());
                (factor * 1.0 + 0.0).max(0.0)
            }
        }
    }

    /// `base * factor(step)`, as `LambdaLR`.
    pub fn learning_rate(&self, base: f64, step: i64) -> f64 {
        base * self.factor(step)
    }
}

/// `TrainingArguments.get_warmup_steps`: `warmup` >= 1 is a number of steps (truncated), below 1
/// a ratio of `training_steps` (rounded up).
pub fn warmup_steps(warmup: f64, training_steps: i64) -> i64 {
    if warmup >= 1.0 {
        warmup as i64
    } else {
        (training_steps as f64 * warmup).ceil() as i64
    }
}

/// How a micro-batch's loss enters the accumulated gradient (`Trainer.training_step`, transformers
/// 5): divided by the accumulation steps unless the model's forward takes `**kwargs` and the
/// batch has labels; such models get `num_items_in_batch` (all non-ignored labels of the step's
/// micro-batches) instead.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LossScaling {
    /// `loss / gradient_accumulation_steps`: Chronos-Bolt (its forward takes no `**kwargs`).
    DivideByAccumulationSteps,
    /// As returned by the model. Chronos-T5 (`T5ForConditionalGeneration` takes `**kwargs` but
    /// ignores `num_items_in_batch`: each micro-batch's mean loss counts in full, so the
    /// accumulated gradient is the sum over micro-batches) and the causal GPT-2 (its loss is
    /// computed with `num_items_in_batch`, see `ChronosGpt2::loss` and
    /// `ChronosGpt2::num_items`).
    AsIs,
}

/// Optimiser settings, named and defaulting as transformers' `TrainingArguments` (the defaults
/// upstream's training script keeps).
#[derive(Debug, Clone, PartialEq)]
pub struct StepConfig {
    pub learning_rate: f64,
    /// 0.9
    pub adam_beta1: f64,
    /// 0.999
    pub adam_beta2: f64,
    /// 1e-8
    pub adam_epsilon: f64,
    /// 0.0; when positive, applied to the parameters [`decays`] selects, as `Trainer`.
    pub weight_decay: f64,
    /// 1.0; 0 (or less) disables clipping.
    pub max_grad_norm: f64,
    pub gradient_accumulation_steps: i64,
    pub schedule: Schedule,
    pub loss_scaling: LossScaling,
}

impl StepConfig {
    /// The given learning rate, schedule, accumulation and loss scaling; transformers' defaults
    /// for the rest.
    pub fn new(
        learning_rate: f64,
        schedule: Schedule,
        gradient_accumulation_steps: i64,
        loss_scaling: LossScaling,
    ) -> Self {
        StepConfig {
            learning_rate,
            adam_beta1: 0.9,
            adam_beta2: 0.999,
            adam_epsilon: 1e-8,
            weight_decay: 0.0,
            max_grad_norm: 1.0,
            gradient_accumulation_steps,
            schedule,
            loss_scaling,
        }
    }

    fn validate(&self) -> Result<()> {
        let bad = |what: String| Err(ChronosError::InvalidInput(what));
        if !self.learning_rate.is_finite() || self.learning_rate < 0.0 {
            return bad(format!(
                "learning_rate must be >= 0, got {}",
                self.learning_rate
            ));
        }
        for (key, beta) in [
            ("adam_beta1", self.adam_beta1),
            ("adam_beta2", self.adam_beta2),
        ] {
            if !(0.0..1.0).contains(&beta) {
                return bad(format!("{key} must be in [0, 1), got {beta}"));
            }
        }
        if self.adam_epsilon.is_nan() || self.adam_epsilon <= 0.0 {
            return bad(format!(
                "adam_epsilon must be > 0, got {}",
                self.adam_epsilon
            ));
        }
        if self.weight_decay.is_nan() || self.weight_decay < 0.0 {
            return bad(format!(
                "weight_decay must be >= 0, got {}",
                self.weight_decay
            ));
        }
        if self.gradient_accumulation_steps < 1 {
            return bad(format!(
                "gradient_accumulation_steps must be >= 1, got {}",
                self.gradient_accumulation_steps
            ));
        }
        let s = &self.schedule;
        if s.training_steps < 1 || s.warmup_steps < 0 {
            return bad(format!(
                "schedule needs training_steps >= 1 and warmup_steps >= 0, got {} and {}",
                s.training_steps, s.warmup_steps
            ));
        }
        Ok(())
    }
}

/// Whether `Trainer` applies weight decay to the parameter `name` (`get_decay_parameter_names`):
/// not to biases, not to norms (names matching `layernorm`, `rmsnorm`, a `norm` component or a
/// component ending in `_norm`), not inside `nn.LayerNorm` modules (GPT-2's `ln_1`, `ln_2`,
/// `ln_f`).
pub fn decays(name: &str) -> bool {
    let lower = name.to_lowercase();
    if ["bias", "layernorm", "rmsnorm"]
        .iter()
        .any(|p| lower.contains(p))
    {
        return false;
    }
    !lower
        .split('.')
        .any(|c| c == "norm" || c.ends_with("_norm") || matches!(c, "ln_1" | "ln_2" | "ln_f"))
}

/// Gradients of those of `params` that have one.
fn grads_of(params: &[Tensor]) -> Vec<Tensor> {
    params
        .iter()
        .map(Tensor::grad)
        .filter(Tensor::defined)
        .collect()
}

/// The global 2-norm of the gradients of `params`, as `torch.nn.utils.clip_grad_norm_` computes
/// it: the norm of the per-tensor norms, in the gradients' dtype. A 0-dim tensor; 0 when no
/// parameter has a gradient.
pub fn grad_norm(params: &[Tensor]) -> Tensor {
    tch::no_grad(|| {
        let norms: Vec<Tensor> = grads_of(params).iter().map(Tensor::norm).collect();
        if norms.is_empty() {
            return Tensor::from(0.0f32);
        }
        Tensor::stack(&norms, 0).norm()
    })
}

/// `torch.nn.utils.clip_grad_norm_(params, max_norm)`: every gradient multiplied by
/// `min(1, max_norm / (norm + 1e-6))` (computed as torch does, as a tensor in the gradients'
/// dtype), with `norm` the [`grad_norm`]. Returns that norm (before clipping).
pub fn clip_grad_norm(params: &[Tensor], max_norm: f64) -> Tensor {
    let total = grad_norm(params);
    tch::no_grad(|| {
        // `max_norm / (total + 1e-6)` is `Tensor.__rtruediv__`: reciprocal, then multiply
        let coef = ((&total + 1e-6).reciprocal() * max_norm).clamp_max(1.0);
        for mut g in grads_of(params) {
            let _ = g.g_mul_(&coef);
        }
    });
    total
}

/// What one optimisation step did.
#[derive(Debug, Clone, PartialEq)]
pub struct StepStats {
    /// The micro-batch losses as the loss closures returned them (before scaling).
    pub losses: Vec<f64>,
    /// Global gradient norm before clipping.
    pub grad_norm: f64,
    /// The learning rate the step used.
    pub learning_rate: f64,
}

/// AdamW over the trainable variables of a VarStore, stepping as transformers' `Trainer`.
pub struct Optimizer {
    /// Over the trainable variables by name, sorted.
    adamw: AdamW,
    config: StepConfig,
    step: i64,
    losses: Vec<f64>,
}

impl std::fmt::Debug for Optimizer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Optimizer")
            .field("params", &self.adamw.params().len())
            .field("config", &self.config)
            .field("step", &self.step)
            .field("pending_micro_batches", &self.losses.len())
            .finish()
    }
}

impl Optimizer {
    /// AdamW (`config`'s betas and epsilon) over the trainable variables of `vs` (a VarStore
    /// from `Checkpoint::load_model` is frozen: `unfreeze` it first), at step 0, gradients
    /// cleared.
    pub fn new(vs: &VarStore, config: StepConfig) -> Result<Self> {
        config.validate()?;
        let mut params: Vec<(String, Tensor)> = vs
            .variables()
            .into_iter()
            .filter(|(_, t)| t.requires_grad())
            .collect();
        if params.is_empty() {
            return Err(ChronosError::InvalidInput(
                "the VarStore has no trainable variable (unfreeze it)".into(),
            ));
        }
        params.sort_by(|a, b| a.0.cmp(&b.0));
        // Weight decay is applied in `step`, per parameter: AdamW's own would decay all.
        let mut adamw = AdamW::new(
            params,
            config.adam_beta1,
            config.adam_beta2,
            config.adam_epsilon,
        );
        adamw.zero_grad()?;
        Ok(Optimizer {
            adamw,
            config,
            step: 0,
            losses: Vec::new(),
        })
    }

    pub fn config(&self) -> &StepConfig {
        &self.config
    }

    /// The trainable variables, by name, sorted.
    pub fn params(&self) -> &[(String, Tensor)] {
        self.adamw.params()
    }

    /// The AdamW state as named CPU tensors (see [`AdamW::state_tensors`]), for checkpoints.
    pub fn state_tensors(&self) -> Vec<(String, Tensor)> {
        self.adamw.state_tensors()
    }

    /// Continues after `step` optimisation steps with a saved AdamW state (`what` names its
    /// source in errors).
    pub fn restore(&mut self, step: i64, state: Vec<(String, Tensor)>, what: &str) -> Result<()> {
        self.adamw.load_state(state, what)?;
        self.step = step;
        Ok(())
    }

    /// Optimisation steps taken so far.
    pub fn step_count(&self) -> i64 {
        self.step
    }

    /// The learning rate of the next step.
    pub fn learning_rate(&self) -> f64 {
        self.config
            .schedule
            .learning_rate(self.config.learning_rate, self.step)
    }

    /// Backpropagates one micro-batch's scalar `loss`, scaled per [`StepConfig::loss_scaling`];
    /// gradients add up until [`Optimizer::step`]. At most `gradient_accumulation_steps` per step.
    pub fn backward(&mut self, loss: &Tensor) -> Result<()> {
        if loss.numel() != 1 {
            return Err(ChronosError::InvalidInput(format!(
                "the loss must be a scalar, got shape {:?}",
                loss.size()
            )));
        }
        let accumulation = self.config.gradient_accumulation_steps;
        if self.losses.len() as i64 >= accumulation {
            return Err(ChronosError::InvalidInput(format!(
                "{accumulation} micro-batches already accumulated: call step() first"
            )));
        }
        let value = loss.f_double_value(&[])?;
        match self.config.loss_scaling {
            LossScaling::DivideByAccumulationSteps => (loss / accumulation as f64).f_backward()?,
            LossScaling::AsIs => loss.f_backward()?,
        }
        self.losses.push(value);
        Ok(())
    }

    /// After `gradient_accumulation_steps` calls of [`Optimizer::backward`]: clips the
    /// gradients, applies weight decay (`p *= 1 - lr * weight_decay`, AdamW's decoupled decay,
    /// to the parameters [`decays`] selects), takes the AdamW step at the schedule's learning
    /// rate and clears the gradients.
    pub fn step(&mut self) -> Result<StepStats> {
        let accumulation = self.config.gradient_accumulation_steps;
        if self.losses.len() as i64 != accumulation {
            return Err(ChronosError::InvalidInput(format!(
                "{} of {accumulation} micro-batches accumulated",
                self.losses.len()
            )));
        }
        let lr = self.learning_rate();
        let tensors: Vec<Tensor> = self
            .params()
            .iter()
            .map(|(_, t)| t.shallow_clone())
            .collect();
        let grad_norm = if self.config.max_grad_norm > 0.0 {
            clip_grad_norm(&tensors, self.config.max_grad_norm)
        } else {
            grad_norm(&tensors)
        };
        let grad_norm = grad_norm.f_double_value(&[])?;
        if self.config.weight_decay > 0.0 {
            let keep = 1.0 - lr * self.config.weight_decay;
            tch::no_grad(|| {
                for (name, p) in self.adamw.params() {
                    if decays(name) && p.grad().defined() {
                        let _ = p.shallow_clone().g_mul_scalar_(keep);
                    }
                }
            });
        }
        self.adamw.step(lr)?;
        self.adamw.zero_grad()?;
        self.step += 1;
        Ok(StepStats {
            losses: std::mem::take(&mut self.losses),
            grad_norm,
            learning_rate: lr,
        })
    }

    /// One whole step: `micro_loss(i)` for each micro-batch `i` in
    /// `0..gradient_accumulation_steps`, each backpropagated, then [`Optimizer::step`].
    pub fn train_step(
        &mut self,
        mut micro_loss: impl FnMut(i64) -> Result<Tensor>,
    ) -> Result<StepStats> {
        for i in 0..self.config.gradient_accumulation_steps {
            let loss = micro_loss(i)?;
            self.backward(&loss)?;
        }
        self.step()
    }
}
