//! Chronos-Bolt parity with the Python reference (`chronos-forecasting`), on the outputs that
//! `fixtures/generate.py` stored: predict at several horizons (incl. beyond the model's),
//! predict_quantiles at off-grid levels, embed, and bf16 compute.

mod common;

use chronos::checkpoint::Checkpoint;
use chronos::pipeline::{BoltPipeline, Dtype};
use common::{assert_close, model_dir, Expected};
use serde::Deserialize;
use tch::Device;

/// f32 tolerance: |a - b| <= RTOL * (1 + |b|).
const RTOL: f64 = 1e-5;
/// bf16 compute vs the reference's bf16 compute: bf16 keeps 8 mantissa bits, so any change of
/// op order moves results by ~1e-3 per op; single-threaded they agree exactly, the bound
/// leaves room for a differently blocked kernel.
const BF16_RTOL: f64 = 1e-2;

#[derive(Deserialize)]
struct Manifest {
    model_dir: String,
    cases: Vec<Case>,
}

#[derive(Deserialize)]
struct Case {
    name: String,
    horizons: Vec<i64>,
    levels: Vec<f64>,
}

type Fixture = Expected<Manifest>;

fn load(model: &str) -> Fixture {
    Expected::load("bolt", model)
}

fn pipeline(fx: &Fixture, dtype: Dtype) -> BoltPipeline {
    let checkpoint = Checkpoint::from_dir(&model_dir(&fx.manifest.model_dir)).unwrap();
    BoltPipeline::load(&checkpoint, dtype, Device::Cpu).unwrap()
}

fn check_f32(model: &str) {
    let fx = load(model);
    let pipeline = pipeline(&fx, Dtype::F32);
    let mut worst: f64 = 0.0;
    let mut checked = 0;
    for case in &fx.manifest.cases {
        let context = fx.get(&format!("{}/context", case.name));
        for &h in &case.horizons {
            let key = format!("{}/predict/{h}", case.name);
            let got = pipeline.predict(context, Some(h), false).unwrap();
            worst = worst.max(assert_close(&key, &got, fx.get(&key), RTOL));

            let forecast = pipeline
                .predict_quantiles(context, Some(h), &case.levels, false)
                .unwrap();
            let key = format!("{}/quantiles/{h}", case.name);
            worst = worst.max(assert_close(&key, &forecast.quantiles, fx.get(&key), RTOL));
            let key = format!("{}/mean/{h}", case.name);
            worst = worst.max(assert_close(&key, &forecast.mean, fx.get(&key), RTOL));
            checked += 3;
        }
        let embedded = pipeline.embed(context).unwrap();
        for (what, got) in [
            ("embed", &embedded.embeddings),
            ("loc", embedded.loc.as_ref().expect("Bolt has a loc")),
            ("scale", &embedded.scale),
        ] {
            let key = format!("{}/{what}", case.name);
            worst = worst.max(assert_close(&key, got, fx.get(&key), RTOL));
            checked += 1;
        }
    }
    assert!(checked >= 12, "{model}: only {checked} comparisons");
    eprintln!("{model}: {checked} outputs match the reference, max rel. error {worst:.2e}");
}

#[test]
fn bolt_with_reg_token_matches_reference() {
    check_f32("bolt-reg");
}

#[test]
fn bolt_gated_without_reg_token_matches_reference() {
    check_f32("bolt-noreg");
}

#[test]
fn upstream_dummy_checkpoint_matches_reference() {
    check_f32("dummy");
}

#[test]
fn bf16_compute_is_close_to_reference_bf16() {
    for model in ["bolt-reg", "bolt-noreg"] {
        let fx = load(model);
        let pipeline = pipeline(&fx, Dtype::BF16);
        for case in &fx.manifest.cases {
            let h = case.horizons[0];
            let key = format!("{}/predict_bf16/{h}", case.name);
            let got = pipeline
                .predict(fx.get(&format!("{}/context", case.name)), Some(h), false)
                .unwrap();
            let worst = assert_close(&key, &got, fx.get(&key), BF16_RTOL);
            eprintln!("{model} {key}: max rel. deviation {worst:.2e}");
        }
    }
}

#[test]
fn limit_prediction_length_rejects_long_horizons() {
    let fx = load("bolt-reg");
    let pipeline = pipeline(&fx, Dtype::F32);
    let context = fx.get("basic/context");
    let h = pipeline.prediction_length();
    assert!(pipeline.predict(context, Some(h), true).is_ok());
    let err = pipeline.predict(context, Some(h + 1), true).unwrap_err();
    assert!(err.to_string().contains("exceeds"), "{err}");
    assert!(pipeline.predict(context, Some(0), false).is_err());
}

#[test]
fn quantile_levels_outside_unit_interval_are_rejected() {
    let fx = load("bolt-reg");
    let pipeline = pipeline(&fx, Dtype::F32);
    let err = pipeline
        .predict_quantiles(fx.get("basic/context"), None, &[0.5, 1.5], false)
        .unwrap_err();
    assert!(err.to_string().contains("1.5"), "{err}");
}
