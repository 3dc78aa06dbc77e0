//! Chronos-2's training numerics against the pinned reference, on what
//! `fixtures/generate_chronos2_train.py` stored for the shared dummy checkpoint and the tiny
//! random `c2-rand`: the loss of `Chronos2Model.forward(..., future_target=...)` on a batch of
//! mixed tasks (univariate, two joint targets, past-only and known-future covariates), the
//! gradient of every parameter, and every parameter after one step of `fit`'s Trainer (clipping
//! to 1, AdamW at 1e-3). Single-threaded, dropout off, as the fixtures were made.

mod common;

use chronos::checkpoint::Checkpoint;
use chronos::chronos2::Chronos2Model;
use chronos::config::Chronos2Config;
use chronos::train::step::{LossScaling, Optimizer, Schedule, ScheduleKind, StepConfig};
use common::{assert_close, model_dir, Expected};
use serde::Deserialize;
use tch::nn::VarStore;
use tch::{Device, Kind, Tensor};

/// Losses: |a - b| <= RTOL (1 + |b|).
const RTOL: f64 = 1e-6;
/// Gradients: |a - b| <= GRAD_RTOL max |b| per tensor.
const GRAD_RTOL: f64 = 1e-5;
/// Parameters after a step: |a - b| <= WEIGHT_ATOL.
const WEIGHT_ATOL: f64 = 1e-6;

#[derive(Deserialize)]
struct Manifest {
    model: String,
    params: Vec<String>,
    learning_rate: f64,
    max_grad_norm: f64,
}

type Fixture = Expected<Manifest>;

fn fixture(name: &str) -> Fixture {
    Expected::load("chronos2", &format!("../train/{name}"))
}

fn load(fx: &Fixture) -> (Chronos2Model, VarStore) {
    let checkpoint = Checkpoint::from_dir(&model_dir(&fx.manifest.model)).unwrap();
    let path = checkpoint.config_path.clone();
    let t5 = checkpoint.config.t5(&path).unwrap().clone();
    let chronos: Chronos2Config = checkpoint.config.chronos(&path).unwrap();
    let (model, mut vs) = checkpoint
        .load_model(Kind::Float, Device::Cpu, &[], |root| {
            Chronos2Model::new(root, &t5, &chronos)
        })
        .unwrap();
    vs.unfreeze();
    (model, vs)
}

fn loss(model: &Chronos2Model, fx: &Fixture) -> Tensor {
    let b = |key: &str| fx.get(&format!("batch/{key}"));
    let patches = b("num_output_patches").int64_value(&[]);
    model
        .loss(
            b("context"),
            b("group_ids"),
            Some(b("future_covariates")),
            b("future_target"),
            patches,
            false,
        )
        .unwrap()
}

fn max_abs(t: &Tensor) -> f64 {
    t.abs().max().double_value(&[])
}

fn check_gradients(name: &str) {
    let fx = fixture(name);
    let (model, vs) = load(&fx);
    let loss = loss(&model, &fx);
    assert_close(&format!("{name} loss"), &loss, fx.get("loss"), RTOL);
    loss.backward();
    let vars = vs.variables();
    let mut names: Vec<&String> = vars.keys().collect();
    names.sort();
    let mut expected = fx.manifest.params.clone();
    expected.sort();
    assert_eq!(
        names,
        expected.iter().collect::<Vec<_>>(),
        "{name}: parameters"
    );
    for (key, var) in &vars {
        let want = fx.get(&format!("grad/{key}"));
        let got = var.grad();
        assert!(got.defined(), "{name}: no gradient for {key}");
        let diff = max_abs(&(&got - want));
        let tol = GRAD_RTOL * max_abs(want).max(1e-12);
        assert!(
            diff <= tol,
            "{name} grad {key}: max |diff| {diff:.3e} > {tol:.3e}"
        );
    }
}

#[test]
fn dummy_loss_and_gradients_match_the_reference() {
    check_gradients("dummy");
}

#[test]
fn random_model_loss_and_gradients_match_the_reference() {
    check_gradients("c2-rand");
}

#[test]
fn one_adamw_step_matches_fits_trainer() {
    for name in ["dummy", "c2-rand"] {
        let fx = fixture(name);
        let (model, vs) = load(&fx);
        let schedule = Schedule {
            kind: ScheduleKind::Linear,
            warmup_steps: 0,
            training_steps: 1000,
        };
        let mut config = StepConfig::new(
            fx.manifest.learning_rate,
            schedule,
            1,
            LossScaling::DivideByAccumulationSteps,
        );
        config.max_grad_norm = fx.manifest.max_grad_norm;
        let mut opt = Optimizer::new(&vs, config).unwrap();
        let stats = opt.train_step(|_| Ok(loss(&model, &fx))).unwrap();
        let norm = fx.get("step/grad_norm").double_value(&[]);
        assert!(
            (stats.grad_norm - norm).abs() <= 1e-5 * norm,
            "{name}: grad norm {} vs {norm}",
            stats.grad_norm
        );
        for (key, var) in vs.variables() {
            let want = fx.get(&format!("step/param/{key}"));
            let diff = max_abs(&(&var - want));
            assert!(
                diff <= WEIGHT_ATOL,
                "{name} {key}: after the step max |diff| {diff:.3e}"
            );
        }
    }
}
