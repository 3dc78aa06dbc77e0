//! Chronos-T5 parity with the Python reference (`chronos-forecasting` + transformers' generate),
//! on the outputs that `fixtures/generate_t5.py` stored: tokenizer, encoder states, decoder
//! logits, greedy and seeded sampled paths, quantiles, long horizons, bf16.

mod common;

use chronos::checkpoint::Checkpoint;
use chronos::chronos_t5::ChronosT5;
use chronos::pipeline::{Backbone, ChronosPipeline, Dtype};
use chronos::sampling::SamplingConfig;
use common::{
    assert_close, assert_ids_equal, check_seeded_forecasts, model_dir, Expected, SamplingManifest,
};
use tch::{Device, Kind, Tensor};

const RTOL: f64 = 1e-5;

/// Sampling draws from libtorch's one global generator: tests that seed it and sample must not
/// interleave (the test harness runs tests on parallel threads).
static GLOBAL_RNG: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn lock_rng() -> std::sync::MutexGuard<'static, ()> {
    GLOBAL_RNG
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

type Fixture = Expected<SamplingManifest>;

fn load(model: &str) -> Fixture {
    Expected::load("t5", model)
}

fn pipeline(fx: &Fixture, dtype: Dtype) -> ChronosPipeline {
    let checkpoint = Checkpoint::from_dir(&model_dir(&fx.manifest.model_dir)).unwrap();
    ChronosPipeline::load(&checkpoint, dtype, Device::Cpu).unwrap()
}

/// The T5 network of a seq2seq pipeline.
fn t5(p: &ChronosPipeline) -> &ChronosT5 {
    match &p.backbone {
        Backbone::Seq2Seq(t5) => t5,
        Backbone::Causal(_) => panic!("not a seq2seq model"),
    }
}

/// Tokens, encoder states, logits, greedy and seeded paths, quantiles.
fn check_f32(model: &str) {
    let _rng = lock_rng();
    let fx = load(model);
    let p = pipeline(&fx, Dtype::F32);
    let mut sampled_tokens = 0;
    for case in &fx.manifest.cases {
        let c = &case.name;
        let context = fx.get(&format!("{c}/context"));

        let (tokens, scale) = p.tokenizer.context_input_transform(context);
        assert_ids_equal(
            &format!("{c}/token_ids"),
            &tokens.ids,
            fx.get(&format!("{c}/token_ids")),
        );
        assert_ids_equal(
            &format!("{c}/attention_mask"),
            &tokens.mask,
            fx.get(&format!("{c}/attention_mask")),
        );
        assert_close(
            &format!("{c}/scale"),
            &scale,
            fx.get(&format!("{c}/scale")),
            0.0,
        );
        let label = p
            .tokenizer
            .label_input_transform(fx.get(&format!("{c}/label")), &scale);
        assert_ids_equal(
            &format!("{c}/label_ids"),
            &label.ids,
            fx.get(&format!("{c}/label_ids")),
        );
        assert_ids_equal(
            &format!("{c}/label_mask"),
            &label.mask,
            fx.get(&format!("{c}/label_mask")),
        );

        let embedded = p.embed(context).unwrap();
        assert_close(
            &format!("{c}/embed"),
            &embedded.embeddings,
            fx.get(&format!("{c}/embed")),
            RTOL,
        );

        // Teacher-forced logits of the first two decoder steps.
        let logits0 = fx.get(&format!("{c}/logits0"));
        let b = logits0.size()[0];
        let first = logits0.argmax(-1, true);
        let decoder_ids = Tensor::cat(
            &[Tensor::zeros([b, 1], (Kind::Int64, Device::Cpu)), first],
            1,
        );
        let logits =
            tch::no_grad(|| t5(&p).forward_t(&tokens.ids, &tokens.mask, &decoder_ids, false));
        assert_close(&format!("{c}/logits0"), &logits.select(1, 0), logits0, RTOL);
        assert_close(
            &format!("{c}/logits1"),
            &logits.select(1, 1),
            fx.get(&format!("{c}/logits1")),
            RTOL,
        );

        // Greedy (top_k = 1): every path is the argmax path.
        let h = case.horizons[0].min(p.prediction_length());
        let greedy = SamplingConfig {
            top_k: 1,
            ..case.sampling()
        };
        let states = tch::no_grad(|| t5(&p).encode(&tokens.ids, &tokens.mask, false));
        let paths = tch::no_grad(|| t5(&p).generate(&states, &tokens.mask, h, &greedy));
        assert_ids_equal(
            &format!("{c}/greedy/{h}"),
            &paths,
            fx.get(&format!("{c}/greedy/{h}")),
        );

        sampled_tokens += check_seeded_forecasts(
            &fx,
            &p,
            case,
            |h| t5(&p).generate(&states, &tokens.mask, h, &case.sampling()),
            RTOL,
        );
    }
    eprintln!("{model}: all outputs match; {sampled_tokens} seeded sampled tokens, 100% identical");
}

#[test]
fn t5_tied_relu_matches_reference() {
    check_f32("t5-rand");
}

#[test]
fn t5_gated_untied_matches_reference() {
    check_f32("t5-gated-untied");
}

#[test]
fn upstream_dummy_t5_checkpoint_matches_reference() {
    check_f32("dummy");
}

#[test]
fn tokenizer_grid_matches_reference() {
    let fx = load("t5-rand");
    let p = pipeline(&fx, Dtype::F32);
    assert_close(
        "centers",
        &p.tokenizer.centers,
        fx.get("tokenizer/centers"),
        0.0,
    );
    assert_close(
        "boundaries",
        &p.tokenizer.boundaries,
        fx.get("tokenizer/boundaries"),
        0.0,
    );
    let values = fx.get("tokenizer/values").unsqueeze(0);
    let one = Tensor::from_slice(&[1.0f32]);
    let ids = p.tokenizer.label_input_transform(&values, &one).ids;
    let n = values.size()[1];
    assert_ids_equal(
        "tokenizer/ids",
        &ids.narrow(1, 0, n).squeeze_dim(0),
        fx.get("tokenizer/ids"),
    );
    let all = Tensor::arange(p.config.n_tokens, (Kind::Int64, Device::Cpu)).view([1, 1, -1]);
    let out = p
        .tokenizer
        .output_transform(&all, &Tensor::from_slice(&[2.5f32]));
    assert_close(
        "tokenizer/output_values",
        &out.flatten(0, -1),
        &fx.get("tokenizer/output_values").flatten(0, -1),
        0.0,
    );
}

#[test]
fn bf16_sampled_paths_are_close_to_reference_bf16() {
    let _rng = lock_rng();
    let fx = load("t5-rand");
    let p = pipeline(&fx, Dtype::BF16);
    let mut same = 0;
    let mut total = 0;
    for case in &fx.manifest.cases {
        let h = p.prediction_length();
        let key = format!("{}/samples_bf16/{h}", case.name);
        tch::manual_seed(fx.manifest.seed);
        let got = p
            .predict(
                fx.get(&format!("{}/context", case.name)),
                Some(h),
                &case.sampling(),
                false,
            )
            .unwrap();
        let want = fx.get(&key);
        assert_eq!(got.size(), want.size(), "{key}");
        same += got.eq_tensor(want).sum(Kind::Int64).int64_value(&[]);
        total += got.numel() as i64;
    }
    // bf16 logits round differently at every op; a sampled token may change where two
    // probabilities are close, after which the path diverges. Require most values to agree.
    let fraction = same as f64 / total as f64;
    eprintln!(
        "bf16: {same}/{total} sampled values identical ({:.1}%)",
        100.0 * fraction
    );
    assert!(fraction >= 0.9, "only {:.1}% identical", 100.0 * fraction);
}

#[test]
fn sampling_settings_are_validated() {
    let fx = load("t5-rand");
    let p = pipeline(&fx, Dtype::F32);
    let context = fx.get("basic/context");
    for bad in [
        SamplingConfig {
            num_samples: 0,
            ..p.default_sampling()
        },
        SamplingConfig {
            temperature: 0.0,
            ..p.default_sampling()
        },
        SamplingConfig {
            top_k: -1,
            ..p.default_sampling()
        },
        SamplingConfig {
            top_p: 1.5,
            ..p.default_sampling()
        },
    ] {
        assert!(p.predict(context, None, &bad, false).is_err(), "{bad:?}");
    }
    let err = p
        .predict(
            context,
            Some(p.prediction_length() + 1),
            &p.default_sampling(),
            true,
        )
        .unwrap_err();
    assert!(err.to_string().contains("exceeds"), "{err}");
}
