//! Chronos-2 parity with the Python reference (`chronos-forecasting` 2.3.2), on the outputs that
//! `fixtures/generate_chronos2.py` stored: `predict` (one patch, the model's horizon, unrolled
//! beyond it), `predict_quantiles` at on- and off-grid levels, `embed`, a raw forward pass,
//! batching of whole tasks, cross-learning, covariates, bf16 compute and a merged LoRA adapter.

mod common;

use std::path::PathBuf;

use chronos::checkpoint::Checkpoint;
use chronos::pipeline::{Chronos2Options, Chronos2Pipeline, Chronos2Task, Dtype, Pipeline};
use common::{assert_close, model_dir, shared, Expected};
use serde::Deserialize;
use tch::{Device, Tensor};

/// f32 tolerance: |a - b| <= RTOL * (1 + |b|).
const RTOL: f64 = 1e-5;
/// Horizons beyond the model's, where forecasts are fed back as context: a last-bit difference
/// of one GEMM (libtorch's CPU GEMM does not round the same in every process for strided
/// inputs) grows through the feedback; one value of c2-rand reaches 1.13e-5.
const UNROLLED_RTOL: f64 = 2e-5;
/// bf16 compute against the reference's bf16 compute (8 mantissa bits).
const BF16_RTOL: f64 = 1e-2;

#[derive(Deserialize)]
struct Manifest {
    model_dir: String,
    quantiles: Vec<f64>,
    cases: Vec<Case>,
}

#[derive(Deserialize)]
struct Case {
    name: String,
    horizons: Vec<i64>,
    batch_size: usize,
    cross_learning: bool,
    context_length: Option<i64>,
    levels: Vec<Vec<f64>>,
    embed: bool,
    compact: bool,
    tasks: Vec<TaskCounts>,
}

#[derive(Deserialize)]
struct TaskCounts {
    n_targets: usize,
    n_covariates: usize,
    n_future_covariates: usize,
}

type Fixture = Expected<Manifest>;

/// Worst relative error and how many elements were compared / equal bit for bit.
#[derive(Default)]
struct Tally {
    worst: f64,
    compared: i64,
    identical: i64,
}

impl Tally {
    fn check(&mut self, name: &str, actual: &Tensor, expected: &Tensor, rtol: f64) {
        self.worst = self.worst.max(assert_close(name, actual, expected, rtol));
        self.compared += expected.numel() as i64;
        self.identical += actual
            .eq_tensor(expected)
            .logical_or(&actual.isnan().logical_and(&expected.isnan()))
            .sum(tch::Kind::Int64)
            .int64_value(&[]);
    }

    fn report(&self, model: &str) {
        println!(
            "{model}: {} values, worst |a - b| / (1 + |b|) = {:.3e}, {:.2}% bit-identical",
            self.compared,
            self.worst,
            100.0 * self.identical as f64 / self.compared as f64
        );
    }
}

/// The case's tasks with their future rows cut to `horizon`.
fn tasks(fx: &Fixture, case: &Case, horizon: usize) -> Vec<Chronos2Task> {
    case.tasks
        .iter()
        .enumerate()
        .map(|(i, counts)| {
            let context = fx.get(&format!("{}/task{i}/context", case.name));
            let future = fx
                .get(&format!("{}/task{i}/future", case.name))
                .narrow(1, 0, horizon as i64)
                .contiguous();
            let (rows, history) = context.size2().unwrap();
            let task = Chronos2Task {
                context: Vec::<f32>::try_from(context.flatten(0, -1)).unwrap(),
                future: Vec::<f32>::try_from(future.flatten(0, -1)).unwrap(),
                history: history as usize,
                horizon,
                n_targets: counts.n_targets,
                n_covariates: counts.n_covariates,
                n_future_covariates: counts.n_future_covariates,
            };
            assert_eq!(task.rows(), rows as usize);
            task
        })
        .collect()
}

fn check_pipeline(model: &str, pipeline: &Chronos2Pipeline, rtol: f64) {
    let fx: Fixture = Expected::load("chronos2", model);
    assert_eq!(pipeline.quantiles(), fx.manifest.quantiles.as_slice());
    let mut tally = Tally::default();
    for case in &fx.manifest.cases {
        let last = *case.horizons.last().unwrap();
        for &h in &case.horizons {
            let unrolled = h > pipeline.prediction_length();
            let rtol = if unrolled {
                rtol.max(UNROLLED_RTOL)
            } else {
                rtol
            };
            let tasks = tasks(&fx, case, h as usize);
            let options = Chronos2Options {
                prediction_length: Some(h),
                batch_size: case.batch_size,
                context_length: case.context_length,
                cross_learning: case.cross_learning,
                limit_prediction_length: false,
            };
            if !(case.compact && h == last) {
                let got = pipeline.predict(&tasks, &options).unwrap();
                assert_eq!(got.len(), tasks.len());
                for (i, g) in got.iter().enumerate() {
                    let key = format!("{}/predict/{h}/task{i}", case.name);
                    tally.check(&key, g, fx.get(&key), rtol);
                }
            }
            if h != last {
                continue;
            }
            for (k, levels) in case.levels.iter().enumerate() {
                let got = pipeline
                    .predict_quantiles(&tasks, levels, &options)
                    .unwrap();
                for (i, g) in got.iter().enumerate() {
                    let key = format!("{}/quantiles/{h}/{k}/task{i}", case.name);
                    tally.check(&key, &g.quantiles, fx.get(&key), rtol);
                    let key = format!("{}/mean/{h}/{k}/task{i}", case.name);
                    tally.check(&key, &g.mean, fx.get(&key), rtol);
                }
            }
        }
        if case.embed {
            let tasks = tasks(&fx, case, 0);
            let got = pipeline.embed(&tasks, case.batch_size, None).unwrap();
            for (i, g) in got.iter().enumerate() {
                for (part, t) in [
                    ("embed", &g.embeddings),
                    ("embed_loc", &g.loc),
                    ("embed_scale", &g.scale),
                ] {
                    let key = format!("{}/{part}/task{i}", case.name);
                    tally.check(&key, t, fx.get(&key), rtol);
                }
            }
        }
    }
    if fx.tensors.contains_key("forward/context") {
        let got = tch::no_grad(|| {
            pipeline
                .model
                .forward(
                    fx.get("forward/context"),
                    fx.get("forward/group_ids"),
                    Some(fx.get("forward/future")),
                    1,
                )
                .unwrap()
        });
        tally.check(
            "forward/quantile_preds",
            &got,
            fx.get("forward/quantile_preds"),
            rtol,
        );
    }
    tally.report(model);
}

fn load(fx_model: &str, dtype: Dtype) -> Chronos2Pipeline {
    let fx: Fixture = Expected::load("chronos2", fx_model);
    let checkpoint = Checkpoint::from_dir(&model_dir(&fx.manifest.model_dir)).unwrap();
    Chronos2Pipeline::load(&checkpoint, dtype, Device::Cpu).unwrap()
}

#[test]
fn random_model_matches_reference() {
    check_pipeline("c2-rand", &load("c2-rand", Dtype::F32), RTOL);
}

#[test]
fn forecasts_in_chunks_of_one_series_match_reference() {
    let mut pipeline = load("c2-rand", Dtype::F32);
    pipeline.model.set_chunk_bytes(1);
    check_pipeline("c2-rand", &pipeline, RTOL);
}

/// `forward`'s inference path (group attention of one-series groups as each position's own
/// value, series in chunks) against the full encoder that `encode` runs, bit for bit.
#[test]
fn forecast_shortcuts_equal_the_full_encoder_bit_for_bit() {
    let mut pipeline = load("c2-rand", Dtype::F32);
    let model = &pipeline.model;
    tch::manual_seed(3);
    let (batch, len, patches) = (9, 96, 3);
    let context =
        Tensor::randn([batch, len], (tch::Kind::Float, Device::Cpu)).cumsum(1, tch::Kind::Float);
    for row in 0..batch {
        // left padding of 0..=40 steps (whole patches unobserved too) and a gap
        let _ = context.get(row).narrow(0, 0, row * 5).fill_(f64::NAN);
        let _ = context.get(row).narrow(0, 60, 3).fill_(f64::NAN);
    }
    let groups = Tensor::arange(batch, (tch::Kind::Int64, Device::Cpu));
    let full = {
        let encoded = model
            .encode(&context, &groups, None, patches, false)
            .unwrap();
        let preds = model.quantiles_normalized(&encoded, patches, false);
        let size = preds.size();
        encoded
            .loc_scale
            .inverse(&preds.reshape([size[0], -1]), model.chronos.use_arcsinh)
            .view(size.as_slice())
    };
    let fast = model.forward(&context, &groups, None, patches).unwrap();
    assert!(fast.equal(&full), "one-series groups");
    // Chunks of 1 to 9 series: (6 context patches + [REG] + 3 future) x d_ff f32 each.
    let per_series = 10 * pipeline.model.config.d_ff * 4;
    for series in 1..=batch {
        pipeline.model.set_chunk_bytes(series * per_series);
        let chunked = pipeline
            .model
            .forward(&context, &groups, None, patches)
            .unwrap();
        assert!(chunked.equal(&full), "chunks of {series} series");
    }
    // With a shared group the full attention runs (and differs).
    let shared_group = groups.zeros_like();
    let cross = pipeline
        .model
        .forward(&context, &shared_group, None, patches)
        .unwrap();
    assert!(!cross.equal(&full));
}

#[test]
fn model_without_arcsinh_matches_reference() {
    check_pipeline("c2-plain", &load("c2-plain", Dtype::F32), RTOL);
}

#[test]
fn dummy_checkpoint_matches_reference_beyond_1024_steps() {
    check_pipeline("dummy", &load("dummy", Dtype::F32), RTOL);
}

#[test]
fn bf16_matches_reference_bf16() {
    check_pipeline(
        "c2-rand-bf16",
        &load("c2-rand-bf16", Dtype::BF16),
        BF16_RTOL,
    );
}

fn lora_dir() -> PathBuf {
    shared().join("checkpoints/dummy-chronos2-lora")
}

#[test]
fn lora_adapter_merged_matches_reference() {
    tch::set_num_threads(1);
    let base = shared().join("checkpoints/dummy-chronos2-model");
    let pipeline = Pipeline::load_with_base(
        lora_dir().to_str().unwrap(),
        Some(base.to_str().unwrap()),
        Dtype::F32,
        Device::Cpu,
    )
    .unwrap();
    let Pipeline::Chronos2(pipeline) = pipeline else {
        panic!("a LoRA adapter of a Chronos-2 model loads as Chronos-2")
    };
    check_pipeline("dummy-lora", &pipeline, RTOL);
}

#[test]
fn lora_adapter_errors_name_the_base_model() {
    // The adapter's base_model_name_or_path is relative to upstream's repository.
    let err = Pipeline::load(lora_dir().to_str().unwrap(), Dtype::F32, Device::Cpu).unwrap_err();
    let message = err.to_string();
    assert!(message.contains("test/dummy-chronos2-model"), "{message}");
    assert!(message.contains("adapter_config.json"), "{message}");
    // A base model of another shape is refused, naming the module.
    let other = common::root().join("fixtures/chronos2/models/c2-rand");
    let err = Pipeline::load_with_base(
        lora_dir().to_str().unwrap(),
        Some(other.to_str().unwrap()),
        Dtype::F32,
        Device::Cpu,
    )
    .unwrap_err();
    assert!(err.to_string().contains("does not match"), "{err}");
}
