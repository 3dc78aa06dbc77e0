//! The training step's numerics against PyTorch/transformers, on what `fixtures/generate_train.py`
//! stored: the training losses of Chronos-Bolt, Chronos-T5 and the causal GPT-2 and the gradient
//! of every parameter; the parameters after one AdamW step with clipping, on one batch and over
//! two accumulation micro-batches (with the loss scaling of transformers' `Trainer`); libtorch's
//! AdamW against `torch.optim.AdamW`; the learning-rate schedules; and the statistics of the
//! random initialisation against transformers' formulas.
//!
//! Models are loaded with dropout 0 and run with `train = true`, single-threaded as the fixtures
//! were made.

mod common;

use std::collections::{BTreeSet, HashMap};
use std::sync::Mutex;

use chronos::bolt::{self, ChronosBolt};
use chronos::checkpoint::Checkpoint;
use chronos::chronos_t5::{self, ChronosT5};
use chronos::config::{ChronosBoltConfig, ModelConfig};
use chronos::gpt2::{self, ChronosGpt2};
use chronos::init;
use chronos::tokenizer::ChronosConfig;
use chronos::train::adamw::AdamW;
use chronos::train::step::{
    self, LossScaling, Optimizer, Schedule, ScheduleKind, StepConfig, StepStats,
};
use common::{assert_close, model_dir, root, Expected};
use serde::Deserialize;
use tch::nn::{self, OptimizerConfig as _, VarStore};
use tch::{Device, Kind, Tensor};

/// Losses: |a - b| <= RTOL (1 + |b|).
const RTOL: f64 = 1e-5;
/// Gradients: |a - b| <= GRAD_RTOL max |b| per tensor.
const GRAD_RTOL: f64 = 1e-4;
/// Parameters after a step: |a - b| <= WEIGHT_ATOL.
const WEIGHT_ATOL: f64 = 1e-6;

/// Serialises the tests that draw from libtorch's global generator (initialisation, dropout).
static RNG: Mutex<()> = Mutex::new(());

#[derive(Deserialize)]
struct Manifest {
    model_dir: String,
    family: String,
    params: Vec<String>,
    learning_rate: f64,
    max_grad_norm: f64,
    samples: i64,
    micro_batches: Vec<Vec<i64>>,
    loss_scaling: String,
    num_items_in_batch: Option<i64>,
}

type Fixture = Expected<Manifest>;

enum Model {
    Bolt(ChronosBolt),
    T5(ChronosT5),
    Gpt2(ChronosGpt2),
}

/// The fixture's checkpoint in a trainable VarStore, every dropout probability set to `dropout`.
fn load(fx: &Fixture, dropout: f64) -> (Model, VarStore) {
    let checkpoint = Checkpoint::from_dir(&model_dir(&fx.manifest.model_dir)).unwrap();
    let path = checkpoint.config_path.clone();
    let (kind, device) = (Kind::Float, Device::Cpu);
    let (model, mut vs) = match &checkpoint.config {
        ModelConfig::T5(t5) if fx.manifest.family == "bolt" => {
            let chronos: ChronosBoltConfig = checkpoint.config.chronos(&path).unwrap();
            let mut t5 = t5.clone();
            t5.dropout_rate = dropout;
            let (m, vs) = checkpoint
                .load_model(kind, device, &bolt::TIED_ALIASES, |root| {
                    ChronosBolt::new(root, &t5, &chronos)
                })
                .unwrap();
            (Model::Bolt(m), vs)
        }
        ModelConfig::T5(t5) => {
            let chronos: ChronosConfig = checkpoint.config.chronos(&path).unwrap();
            let mut t5 = t5.clone();
            t5.dropout_rate = dropout;
            let (m, vs) = checkpoint
                .load_model(kind, device, &chronos_t5::TIED_ALIASES, |root| {
                    ChronosT5::new(root, &t5, &chronos)
                })
                .unwrap();
            (Model::T5(m), vs)
        }
        ModelConfig::Gpt2(g) => {
            let chronos: ChronosConfig = checkpoint.config.chronos(&path).unwrap();
            let mut g = g.clone();
            (g.attn_pdrop, g.embd_pdrop, g.resid_pdrop) = (dropout, dropout, dropout);
            let (m, vs) = checkpoint
                .load_model(kind, device, &gpt2::TIED_ALIASES, |root| {
                    ChronosGpt2::new(root, &g, &chronos)
                })
                .unwrap();
            (Model::Gpt2(m), vs)
        }
    };
    vs.unfreeze();
    (model, vs)
}

/// Rows `rows` of the fixture tensor `batch/<key>`.
fn batch(fx: &Fixture, key: &str, rows: &[i64]) -> Tensor {
    fx.get(&format!("batch/{key}"))
        .index_select(0, &Tensor::from_slice(rows))
}

/// The model's training loss on rows `rows` of the fixture batch (`num_items`: GPT-2's
/// `num_items_in_batch`).
fn loss(model: &Model, fx: &Fixture, rows: &[i64], num_items: Option<i64>, train: bool) -> Tensor {
    let b = |key: &str| batch(fx, key, rows);
    match model {
        Model::Bolt(m) => m.loss(&b("context"), &b("target"), None, train),
        Model::T5(m) => m.loss(&b("input_ids"), &b("attention_mask"), &b("labels"), train),
        Model::Gpt2(m) => m.loss(
            &b("input_ids"),
            &b("attention_mask"),
            &b("labels"),
            num_items,
            train,
        ),
    }
    .unwrap()
}

fn all_rows(fx: &Fixture) -> Vec<i64> {
    fx.manifest.micro_batches.concat()
}

fn variables(vs: &VarStore) -> HashMap<String, Tensor> {
    vs.variables()
}

/// The variable names must be the reference's (deduplicated) parameter names.
fn check_names(fx: &Fixture, vs: &VarStore) {
    let ours: BTreeSet<String> = vs.variables().into_keys().collect();
    let theirs: BTreeSet<String> = fx.manifest.params.iter().cloned().collect();
    assert_eq!(ours, theirs, "parameter names differ from the reference's");
}

/// |a - b| <= rtol max |b|; returns max |a - b| / max |b|.
fn assert_grad_close(name: &str, actual: &Tensor, expected: &Tensor, rtol: f64) -> f64 {
    assert_eq!(actual.size(), expected.size(), "{name}: shape");
    let a = actual.to_kind(Kind::Double);
    let b = expected.to_kind(Kind::Double);
    let scale = b.abs().max().double_value(&[]).max(f64::MIN_POSITIVE);
    let err = (&a - &b).abs().max().double_value(&[]) / scale;
    assert!(
        err <= rtol,
        "{name}: max |a - b| = {err:.3e} max |b| > {rtol:.0e} max |b|"
    );
    err
}

fn check_loss_and_gradients(model_name: &str) {
    let fx: Fixture = Expected::load("train", model_name);
    let (model, vs) = load(&fx, 0.0);
    check_names(&fx, &vs);
    let rows = all_rows(&fx);
    let value = loss(&model, &fx, &rows, None, true);
    let loss_err = assert_close("loss", &value, fx.get("loss"), RTOL);
    value.backward();
    let mut worst: f64 = 0.0;
    for (name, var) in variables(&vs) {
        let key = format!("grad/{name}");
        worst = worst.max(assert_grad_close(
            &key,
            &var.grad(),
            fx.get(&key),
            GRAD_RTOL,
        ));
    }
    // The checkpoint's own config (dropout 0.1) in eval mode gives the same loss.
    let (eval_model, _vs) = load(&fx, 0.1);
    let eval_value = loss(&eval_model, &fx, &rows, None, false);
    assert_close("loss (train = false)", &eval_value, fx.get("loss"), RTOL);
    eprintln!(
        "{model_name}: loss {:.6} (rel. err {loss_err:.1e}); {} gradients, max |err| / max |g| {worst:.1e}",
        value.double_value(&[]),
        fx.manifest.params.len()
    );
}

#[test]
fn bolt_loss_and_gradients_match_reference() {
    check_loss_and_gradients("bolt-reg");
    // explicit target_mask, full-length target, context shorter than context_length
    let fx: Fixture = Expected::load("train", "bolt-reg");
    let (Model::Bolt(m), _vs) = load(&fx, 0.0) else {
        unreachable!()
    };
    let got = m
        .loss(
            fx.get("masked/context"),
            fx.get("masked/target"),
            Some(fx.get("masked/target_mask")),
            true,
        )
        .unwrap();
    assert_close("masked/loss", &got, fx.get("masked/loss"), RTOL);
}

#[test]
fn t5_loss_and_gradients_match_reference() {
    check_loss_and_gradients("t5-rand");
}

#[test]
fn gpt2_loss_and_gradients_match_reference() {
    check_loss_and_gradients("gpt2-rand");
}

/// The values of `t` at the flat indices `j * numel / samples`, j < samples (all values when
/// numel <= samples), as the generator stored them.
fn sampled(t: &Tensor, samples: i64) -> Tensor {
    let flat = t.reshape([-1]);
    let n = flat.numel() as i64;
    if n <= samples {
        return flat;
    }
    let idx: Vec<i64> = (0..samples).map(|j| j * n / samples).collect();
    flat.index_select(0, &Tensor::from_slice(&idx))
}

/// One optimisation step from the checkpoint over `micro_batches` (rows of the fixture batch),
/// compared with the reference stored under `prefix`. Returns the largest weight error.
fn check_step(fx: &Fixture, prefix: &str, micro_batches: &[Vec<i64>]) -> f64 {
    let m = &fx.manifest;
    let (model, vs) = load(fx, 0.0);
    let before: HashMap<String, Tensor> = variables(&vs)
        .into_iter()
        .map(|(k, v)| (k, v.detach().copy()))
        .collect();
    let scaling = match m.loss_scaling.as_str() {
        "divide" => LossScaling::DivideByAccumulationSteps,
        "none" => LossScaling::AsIs,
        other => panic!("loss scaling {other}"),
    };
    let schedule = Schedule {
        kind: ScheduleKind::Linear,
        warmup_steps: 0,
        training_steps: 1,
    };
    let mut config = StepConfig::new(
        m.learning_rate,
        schedule,
        micro_batches.len() as i64,
        scaling,
    );
    config.max_grad_norm = m.max_grad_norm;
    let mut opt = Optimizer::new(&vs, config).unwrap();
    // GPT-2 under Trainer: num_items_in_batch = every non-ignored label of the step
    let num_items = (m.family == "gpt2").then(|| {
        micro_batches
            .iter()
            .map(|rows| ChronosGpt2::num_items(&batch(fx, "labels", rows)))
            .sum::<i64>()
    });
    if m.family == "gpt2" {
        // the micro-batches partition the batch
        assert_eq!(num_items, m.num_items_in_batch);
    }
    for rows in micro_batches {
        opt.backward(&loss(&model, fx, rows, num_items, true))
            .unwrap();
    }
    // the accumulated gradients, before clipping
    for (name, var) in variables(&vs) {
        let key = format!("{prefix}/grad/{name}");
        assert_grad_close(
            &key,
            &sampled(&var.grad(), m.samples),
            fx.get(&key),
            GRAD_RTOL,
        );
    }
    let stats: StepStats = opt.step().unwrap();
    assert_eq!(stats.learning_rate, m.learning_rate);
    assert_eq!(opt.step_count(), 1);
    let losses = Tensor::from_slice(&stats.losses);
    assert_close(
        &format!("{prefix}/losses"),
        &losses,
        fx.get(&format!("{prefix}/losses")),
        RTOL,
    );
    assert_close(
        &format!("{prefix}/grad_norm"),
        &Tensor::from(stats.grad_norm),
        fx.get(&format!("{prefix}/grad_norm")),
        RTOL,
    );
    // Exact parameters need exact gradients where a gradient is rounding noise: GPT-2's
    // attention key biases (`c_attn.bias[n_embd..2 n_embd]`) get ~1e-8 (0 in exact arithmetic:
    // softmax ignores a per-query constant), which AdamW turns into updates of ~lr / 10 whose
    // sign is the noise's. They match because our gradients equal PyTorch's bit for bit; a
    // failure confined to them means a change of operation order, not of the formula.
    let mut worst: f64 = 0.0;
    for (name, var) in variables(&vs) {
        assert!(!var.grad().defined(), "{name}: gradient not cleared");
        let key = format!("{prefix}/param/{name}");
        let err = (sampled(&var, m.samples).to_kind(Kind::Double)
            - fx.get(&key).to_kind(Kind::Double))
        .abs()
        .max()
        .double_value(&[]);
        assert!(err <= WEIGHT_ATOL, "{key}: max |a - b| = {err:.3e}");
        worst = worst.max(err);
        // all elements: | |u| - |u_ref| | <= |u - u_ref| <= WEIGHT_ATOL sqrt(n)
        let update = (var.to_kind(Kind::Double) - before[&name].to_kind(Kind::Double))
            .square()
            .sum(Kind::Double)
            .double_value(&[])
            .sqrt();
        let want = fx
            .get(&format!("{prefix}/update_sq/{name}"))
            .double_value(&[])
            .sqrt();
        let bound = WEIGHT_ATOL * (var.numel() as f64).sqrt();
        assert!(
            (update - want).abs() <= bound,
            "{name}: update norm {update:.6e} vs {want:.6e}"
        );
    }
    worst
}

fn check_steps(model_name: &str) {
    let fx: Fixture = Expected::load("train", model_name);
    let single = check_step(&fx, "step", &[all_rows(&fx)]);
    let accumulated = check_step(&fx, "accumulated", &fx.manifest.micro_batches);
    eprintln!(
        "{model_name}: parameters after one step max |err| {single:.1e}, after two accumulated micro-batches {accumulated:.1e}"
    );
}

#[test]
fn bolt_steps_match_reference() {
    check_steps("bolt-reg");
}

#[test]
fn t5_steps_match_reference() {
    check_steps("t5-rand");
}

#[test]
fn gpt2_steps_match_reference() {
    check_steps("gpt2-rand");
}

#[derive(Deserialize)]
struct AdamWManifest {
    learning_rates: Vec<f64>,
    betas: [f64; 2],
    eps: f64,
    weight_decay: f64,
    names: Vec<String>,
}

/// A VarStore with the fixture's initial tensors, and those tensors.
fn adamw_vars(fx: &Expected<AdamWManifest>) -> (VarStore, Vec<Tensor>) {
    let vs = VarStore::new(Device::Cpu);
    let vars = fx
        .manifest
        .names
        .iter()
        .map(|k| {
            let init = fx.get(&format!("init/{k}"));
            let v = vs.root().var(k, &init.size(), nn::Init::Const(0.0));
            tch::no_grad(|| v.shallow_clone().copy_(init));
            v
        })
        .collect();
    (vs, vars)
}

/// A loss whose gradients with respect to `vars` are step `s`'s stored gradients: `sum(v * g)`.
fn grad_loss(fx: &Expected<AdamWManifest>, vars: &[Tensor], s: usize) -> Tensor {
    fx.manifest
        .names
        .iter()
        .zip(vars)
        .map(|(k, v)| (v * fx.get(&format!("grad/{s}/{k}"))).sum(Kind::Float))
        .reduce(|a, b| a + b)
        .unwrap()
}

#[test]
fn adamw_matches_torch_optim_adamw() {
    let fx: Expected<AdamWManifest> = Expected::load("train", "adamw");
    let m = &fx.manifest;
    let (vs, vars) = adamw_vars(&fx);
    let mut opt = nn::AdamW {
        beta1: m.betas[0],
        beta2: m.betas[1],
        wd: m.weight_decay,
        eps: m.eps,
        amsgrad: false,
    }
    .build(&vs, m.learning_rates[0])
    .unwrap();
    let mut worst: f64 = 0.0;
    for (s, &lr) in m.learning_rates.iter().enumerate() {
        opt.zero_grad();
        grad_loss(&fx, &vars, s).backward();
        opt.set_lr(lr);
        opt.step();
        for (k, v) in m.names.iter().zip(&vars) {
            let key = format!("after/{s}/{k}");
            let err = (v - fx.get(&key)).abs().max().double_value(&[]);
            assert!(err <= WEIGHT_ATOL, "{key}: max |a - b| = {err:.3e}");
            worst = worst.max(err);
        }
    }
    eprintln!("libtorch AdamW vs torch.optim.AdamW, 3 steps: max |err| {worst:.1e}");

    // The step helper's decoupled weight decay (+ libtorch's AdamW without decay), first step.
    let (vs, vars) = adamw_vars(&fx);
    let schedule = Schedule {
        kind: ScheduleKind::Constant,
        warmup_steps: 0,
        training_steps: 1,
    };
    let mut config = StepConfig::new(m.learning_rates[0], schedule, 1, LossScaling::AsIs);
    (config.adam_beta1, config.adam_beta2, config.adam_epsilon) = (m.betas[0], m.betas[1], m.eps);
    config.weight_decay = m.weight_decay;
    config.max_grad_norm = 0.0;
    let mut opt = Optimizer::new(&vs, config).unwrap();
    opt.backward(&grad_loss(&fx, &vars, 0)).unwrap();
    opt.step().unwrap();
    for (k, v) in m.names.iter().zip(&vars) {
        let key = format!("after/0/{k}");
        let err = (v - fx.get(&key)).abs().max().double_value(&[]);
        assert!(
            err <= WEIGHT_ATOL,
            "step helper {key}: max |a - b| = {err:.3e}"
        );
    }
}

#[derive(Deserialize)]
struct SchedulesManifest {
    base_learning_rate: f64,
    schedules: Vec<ScheduleCase>,
    warmup: Vec<WarmupCase>,
}

#[derive(Deserialize)]
struct ScheduleCase {
    name: String,
    warmup_steps: i64,
    training_steps: i64,
    learning_rates: Vec<f64>,
}

#[derive(Deserialize)]
struct WarmupCase {
    warmup: f64,
    training_steps: i64,
    warmup_steps: i64,
}

#[test]
fn schedules_match_transformers() {
    let path = root().join("fixtures/train/expected/schedules.json");
    let m: SchedulesManifest =
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let mut compared = 0;
    for case in &m.schedules {
        let schedule = Schedule {
            kind: case.name.parse().unwrap(),
            warmup_steps: case.warmup_steps,
            training_steps: case.training_steps,
        };
        assert_eq!(schedule.kind.name(), case.name);
        for (s, &want) in case.learning_rates.iter().enumerate() {
            let got = schedule.learning_rate(m.base_learning_rate, s as i64);
            assert!(
                (got - want).abs() <= 1e-15 * want.abs(),
                "{} (warmup {}, steps {}) at step {s}: {got} != {want}",
                case.name,
                case.warmup_steps,
                case.training_steps
            );
            compared += 1;
        }
    }
    for case in &m.warmup {
        assert_eq!(
            step::warmup_steps(case.warmup, case.training_steps),
            case.warmup_steps,
            "warmup {} of {} steps",
            case.warmup,
            case.training_steps
        );
    }
    assert!("cosine_with_restarts".parse::<ScheduleKind>().is_err());
    eprintln!("{compared} scheduled learning rates equal transformers'");
}

#[derive(Deserialize)]
struct InitModel {
    family: String,
    model_dir: String,
    params: Vec<InitParam>,
}

#[derive(Deserialize)]
struct InitParam {
    name: String,
    numel: i64,
    std: Option<f64>,
    constant: Option<f64>,
}

#[test]
fn initialisation_matches_transformers_formulas() {
    let _rng = RNG.lock().unwrap_or_else(|e| e.into_inner());
    let path = root().join("fixtures/train/expected/init.json");
    let manifest: HashMap<String, InitModel> =
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    for (name, m) in &manifest {
        let config_path = root().join(&m.model_dir).join("config.json");
        let config = ModelConfig::from_file(&config_path).unwrap();
        let vs = VarStore::new(Device::Cpu);
        match (m.family.as_str(), &config) {
            ("bolt", ModelConfig::T5(t5)) => {
                let chronos: ChronosBoltConfig = config.chronos(&config_path).unwrap();
                let _model = ChronosBolt::new(&vs.root(), t5, &chronos);
                init::init_bolt(&vs, t5, &chronos, 7).unwrap();
            }
            ("t5", ModelConfig::T5(t5)) => {
                let chronos: ChronosConfig = config.chronos(&config_path).unwrap();
                let _model = ChronosT5::new(&vs.root(), t5, &chronos);
                init::init_t5(&vs, t5, 7).unwrap();
            }
            ("gpt2", ModelConfig::Gpt2(g)) => {
                let chronos: ChronosConfig = config.chronos(&config_path).unwrap();
                let _model = ChronosGpt2::new(&vs.root(), g, &chronos);
                init::init_gpt2(&vs, g, 7).unwrap();
            }
            (family, _) => panic!("{name}: family {family} does not match its config"),
        }
        let vars = vs.variables();
        let ours: BTreeSet<&String> = vars.keys().collect();
        let theirs: BTreeSet<&String> = m.params.iter().map(|p| &p.name).collect();
        assert_eq!(ours, theirs, "{name}: parameter names");
        let mut worst: f64 = 0.0;
        for p in &m.params {
            let t = vars[&p.name].to_kind(Kind::Double);
            assert_eq!(t.numel() as i64, p.numel, "{name} {}", p.name);
            let n = p.numel as f64;
            match (p.std, p.constant) {
                (Some(sigma), None) => {
                    let std = t.std(true).double_value(&[]);
                    let mean = t.mean(Kind::Double).double_value(&[]);
                    // 6 standard errors of the sample std and mean
                    let z = (std - sigma).abs() / (sigma / (2.0 * n).sqrt());
                    assert!(z <= 6.0, "{name} {}: std {std} vs {sigma}", p.name);
                    assert!(
                        mean.abs() <= 6.0 * sigma / n.sqrt(),
                        "{name} {}: mean {mean} (sigma {sigma})",
                        p.name
                    );
                    worst = worst.max(z);
                }
                (None, Some(value)) => {
                    let want =
                        Tensor::full(vars[&p.name].size(), value, (Kind::Float, Device::Cpu));
                    assert!(
                        vars[&p.name].equal(&want),
                        "{name} {}: not all {value}",
                        p.name
                    );
                }
                _ => panic!("{name} {}: neither std nor constant", p.name),
            }
        }
        // reproducible from the seed
        let first: Vec<(String, Tensor)> = {
            let mut v: Vec<_> = vars.iter().map(|(k, t)| (k.clone(), t.copy())).collect();
            v.sort_by(|a, b| a.0.cmp(&b.0));
            v
        };
        match &config {
            ModelConfig::T5(t5) if m.family == "t5" => init::init_t5(&vs, t5, 7).unwrap(),
            ModelConfig::T5(t5) => {
                init::init_bolt(&vs, t5, &config.chronos(&config_path).unwrap(), 7).unwrap()
            }
            ModelConfig::Gpt2(g) => init::init_gpt2(&vs, g, 7).unwrap(),
        }
        for (k, t) in &first {
            assert!(
                vars[k].equal(t),
                "{name} {k}: not reproducible from the seed"
            );
        }
        eprintln!(
            "{name}: {} parameters, worst std deviation {worst:.1} standard errors",
            m.params.len()
        );
    }
}

#[test]
fn dropout_acts_only_in_training() {
    let _rng = RNG.lock().unwrap_or_else(|e| e.into_inner());
    for model_name in ["bolt-reg", "t5-rand", "gpt2-rand"] {
        let fx: Fixture = Expected::load("train", model_name);
        let (model, vs) = load(&fx, 0.3);
        let rows = all_rows(&fx);
        let eval = loss(&model, &fx, &rows, None, false).double_value(&[]);
        let trained = loss(&model, &fx, &rows, None, true);
        trained.backward();
        let value = trained.double_value(&[]);
        assert!(
            value.is_finite() && (value - eval).abs() > 1e-4,
            "{model_name}: {value} vs {eval}"
        );
        let norm = step::grad_norm(&vs.trainable_variables()).double_value(&[]);
        assert!(
            norm.is_finite() && norm > 0.0,
            "{model_name}: gradient norm {norm}"
        );
    }
}

#[test]
fn invalid_inputs_are_errors() {
    let fx: Fixture = Expected::load("train", "bolt-reg");
    let (Model::Bolt(m), vs) = load(&fx, 0.0) else {
        unreachable!()
    };
    let context = batch(&fx, "context", &[0, 1]);
    let long = Tensor::zeros([2, 9], (Kind::Float, Device::Cpu));
    let err = m.loss(&context, &long, None, false).unwrap_err();
    assert!(err.to_string().contains("prediction_length"), "{err}");
    let short_batch = Tensor::zeros([1, 4], (Kind::Float, Device::Cpu));
    assert!(m.loss(&context, &short_batch, None, false).is_err());

    let schedule = Schedule {
        kind: ScheduleKind::Cosine,
        warmup_steps: 0,
        training_steps: 10,
    };
    let config = StepConfig::new(1e-3, schedule, 2, LossScaling::DivideByAccumulationSteps);
    let mut frozen = VarStore::new(Device::Cpu);
    let _ = frozen.root().var("w", &[2], nn::Init::Const(1.0));
    frozen.freeze();
    let err = Optimizer::new(&frozen, config.clone()).unwrap_err();
    assert!(err.to_string().contains("unfreeze"), "{err}");
    let mut bad = config.clone();
    bad.gradient_accumulation_steps = 0;
    assert!(Optimizer::new(&vs, bad).is_err());

    let mut opt = Optimizer::new(&vs, config).unwrap();
    let l = m
        .loss(&context, &batch(&fx, "target", &[0, 1]), None, true)
        .unwrap();
    opt.backward(&l).unwrap();
    let err = opt.step().unwrap_err();
    assert!(err.to_string().contains("1 of 2"), "{err}");
    assert!(opt
        .backward(&Tensor::zeros([2], (Kind::Float, Device::Cpu)))
        .is_err());
    // a loss without a graph: backward fails, and the micro-batch is not counted
    assert!(opt.backward(&Tensor::from(0.0f32)).is_err());
    let err = opt.step().unwrap_err();
    assert!(err.to_string().contains("1 of 2"), "{err}");
}

#[test]
fn weight_decay_spares_biases_and_norms() {
    for (name, decays) in [
        ("encoder.block.0.layer.0.SelfAttention.q.weight", true),
        ("encoder.block.0.layer.0.layer_norm.weight", false),
        ("decoder.final_layer_norm.weight", false),
        ("input_patch_embedding.hidden_layer.bias", false),
        ("transformer.h.0.ln_1.weight", false),
        ("transformer.ln_f.bias", false),
        ("transformer.h.0.mlp.c_fc.weight", true),
        ("shared.weight", true),
        ("model.norm.weight", false),
        ("model.LayerNorm.weight", false),
        ("normalizer.weight", true),
    ] {
        assert_eq!(step::decays(name), decays, "{name}");
    }
}

#[test]
fn own_adamw_equals_libtorch_adamw_bit_for_bit_and_round_trips_its_state() {
    let fx: Expected<AdamWManifest> = Expected::load("train", "adamw");
    let m = &fx.manifest;
    let (b1, b2, eps) = (m.betas[0], m.betas[1], m.eps);
    // libtorch's AdamW (no weight decay) and ours, from the same weights and gradients.
    let (vs_ref, vars_ref) = adamw_vars(&fx);
    let mut reference = nn::AdamW {
        beta1: b1,
        beta2: b2,
        wd: 0.0,
        eps,
        amsgrad: false,
    }
    .build(&vs_ref, m.learning_rates[0])
    .unwrap();
    let (_vs, vars) = adamw_vars(&fx);
    let named = |vars: &[Tensor]| -> Vec<(String, Tensor)> {
        m.names
            .iter()
            .cloned()
            .zip(vars.iter().map(Tensor::shallow_clone))
            .collect()
    };
    let mut ours = AdamW::new(named(&vars), b1, b2, eps);
    let steps = m.learning_rates.len();
    let mut saved = None;
    for (s, &lr) in m.learning_rates.iter().enumerate() {
        reference.zero_grad();
        grad_loss(&fx, &vars_ref, s).backward();
        reference.set_lr(lr);
        reference.step();
        ours.zero_grad().unwrap();
        grad_loss(&fx, &vars, s).backward();
        ours.step(lr).unwrap();
        for ((k, a), b) in m.names.iter().zip(&vars).zip(&vars_ref) {
            assert!(a.equal(b), "step {s}, {k}: differs from libtorch's AdamW");
        }
        if s + 2 == steps {
            saved = Some((
                ours.state_tensors(),
                vars.iter().map(Tensor::copy).collect::<Vec<_>>(),
            ));
        }
    }
    // A fresh optimiser given the state after the second-to-last step takes the same last step.
    let (state, weights) = saved.unwrap();
    assert_eq!(state.len(), 3 * m.names.len());
    let (_vs2, resumed_vars) = adamw_vars(&fx);
    tch::no_grad(|| {
        for (v, w) in resumed_vars.iter().zip(&weights) {
            v.shallow_clone().copy_(w);
        }
    });
    let mut resumed = AdamW::new(named(&resumed_vars), b1, b2, eps);
    resumed.load_state(state, "saved state").unwrap();
    grad_loss(&fx, &resumed_vars, steps - 1).backward();
    resumed.step(m.learning_rates[steps - 1]).unwrap();
    for ((k, a), b) in m.names.iter().zip(&resumed_vars).zip(&vars) {
        assert!(a.equal(b), "{k}: the resumed step differs");
    }
    // A state of other parameters is refused, naming the entry.
    let mut other = AdamW::new(named(&resumed_vars), b1, b2, eps);
    let mut bad = ours.state_tensors();
    bad.push((
        "exp_avg.nope".into(),
        Tensor::zeros([1], (Kind::Float, Device::Cpu)),
    ));
    let err = other.load_state(bad, "optimizer.safetensors").unwrap_err();
    assert!(
        err.to_string().contains("unexpected entry 'exp_avg.nope'"),
        "{err}"
    );
}

#[test]
fn bf16_autocast_runs_the_forward_pass_in_bfloat16() {
    let _rng = RNG.lock().unwrap_or_else(|e| e.into_inner());
    let gpt2_items = |fx: &Fixture, rows: &[i64]| {
        (fx.manifest.family == "gpt2").then(|| ChronosGpt2::num_items(&batch(fx, "labels", rows)))
    };
    for model_name in ["bolt-reg", "t5-rand", "gpt2-rand"] {
        let fx: Fixture = Expected::load("train", model_name);
        let (model, vs) = load(&fx, 0.0);
        let rows = all_rows(&fx);
        let num_items = gpt2_items(&fx, &rows);
        let gradients = |loss: Tensor| -> (f64, Tensor) {
            for (_, mut v) in vs.variables() {
                v.zero_grad();
            }
            loss.backward();
            let mut names: Vec<_> = vs.variables().into_iter().collect();
            names.sort_by(|a, b| a.0.cmp(&b.0));
            let flat: Vec<Tensor> = names.iter().map(|(_, v)| v.grad().flatten(0, -1)).collect();
            (loss.double_value(&[]), Tensor::cat(&flat, 0))
        };
        let (full, full_grad) = gradients(loss(&model, &fx, &rows, num_items, true));
        let mixed_loss = chronos::precision::autocast(Device::Cpu, Kind::BFloat16, || {
            loss(&model, &fx, &rows, num_items, true)
        })
        .unwrap();
        let (mixed, mixed_grad) = gradients(mixed_loss);
        // bfloat16 keeps 8 bits of mantissa: close, but not the f32 value.
        let relative = (mixed - full).abs() / full.abs();
        assert!(
            relative > 0.0 && relative < 2e-2,
            "{model_name}: loss {mixed} under autocast vs {full}"
        );
        assert_eq!(
            mixed_grad.kind(),
            Kind::Float,
            "{model_name}: gradients stay f32"
        );
        let cosine = (&mixed_grad * &full_grad)
            .sum(Kind::Double)
            .double_value(&[])
            / (mixed_grad.norm().double_value(&[]) * full_grad.norm().double_value(&[]));
        assert!(cosine > 0.99, "{model_name}: gradient cosine {cosine}");
        eprintln!("{model_name}: bf16 autocast loss {mixed} vs {full}, gradient cosine {cosine}");
    }
    // The state is restored: f32 matmuls are f32 again, and float16 is refused on the CPU path.
    let a = Tensor::ones([2, 2], (Kind::Float, Device::Cpu));
    assert_eq!(a.matmul(&a).kind(), Kind::Float);
    let inside = chronos::precision::autocast(Device::Cpu, Kind::BFloat16, || a.matmul(&a).kind());
    assert_eq!(inside.unwrap(), Kind::BFloat16);
    assert!(chronos::precision::autocast(Device::Cpu, Kind::Float, || ()).is_err());
}
