//! The causal Chronos variant (GPT-2 backbone) against transformers' `GPT2LMHeadModel` and the
//! reference pipeline, on the outputs `fixtures/generate_gpt2.py` stored: last-value imputation,
//! tokens, position ids, logits, greedy and seeded sampled paths, quantiles, long horizons.

mod common;

use chronos::checkpoint::Checkpoint;
use chronos::gpt2::ChronosGpt2;
use chronos::pipeline::{impute_last_value, Backbone, ChronosPipeline, Dtype, Pipeline};
use chronos::sampling::SamplingConfig;
use common::{assert_close, check_seeded_forecasts, model_dir, root, Expected, SamplingManifest};
use tch::{Device, Kind, Tensor};

const RTOL: f64 = 1e-5;

fn ids(t: &Tensor) -> Vec<i64> {
    Vec::try_from(t.to_kind(Kind::Int64).flatten(0, -1)).unwrap()
}

fn gpt2(p: &ChronosPipeline) -> &ChronosGpt2 {
    match &p.backbone {
        Backbone::Causal(g) => g,
        Backbone::Seq2Seq(_) => panic!("not a causal model"),
    }
}

#[test]
fn causal_gpt2_matches_reference() {
    let fx: Expected<SamplingManifest> = Expected::load("gpt2", "gpt2-rand");
    let checkpoint = Checkpoint::from_dir(&model_dir(&fx.manifest.model_dir)).unwrap();
    let p = ChronosPipeline::load(&checkpoint, Dtype::F32, Device::Cpu).unwrap();
    let mut sampled = 0;
    for case in &fx.manifest.cases {
        let c = &case.name;
        let context = fx.get(&format!("{c}/context"));
        let imputed = impute_last_value(context);
        assert_close(
            &format!("{c}/imputed"),
            &imputed,
            fx.get(&format!("{c}/imputed")),
            0.0,
        );

        let (tokens, scale) = p.tokenizer.context_input_transform(&imputed);
        assert_eq!(
            ids(&tokens.ids),
            ids(fx.get(&format!("{c}/token_ids"))),
            "{c}/token_ids"
        );
        assert_eq!(
            ids(&tokens.mask),
            ids(fx.get(&format!("{c}/attention_mask"))),
            "{c}/mask"
        );
        assert_close(
            &format!("{c}/scale"),
            &scale,
            fx.get(&format!("{c}/scale")),
            0.0,
        );
        assert_eq!(
            ids(&ChronosGpt2::position_ids(&tokens.mask)),
            ids(fx.get(&format!("{c}/position_ids"))),
            "{c}/position_ids"
        );

        // Logits at observed positions (padded positions attend to nothing; their values are
        // an artefact of the attention kernel and never used).
        let logits = tch::no_grad(|| gpt2(&p).forward_t(&tokens.ids, &tokens.mask, false));
        let observed = tokens.mask.unsqueeze(-1);
        let want = fx.get(&format!("{c}/logits"));
        assert_close(
            &format!("{c}/logits"),
            &logits.masked_fill(&observed.logical_not(), 0.0),
            &want.masked_fill(&observed.logical_not(), 0.0),
            RTOL,
        );

        let h = p.prediction_length();
        let greedy = SamplingConfig {
            top_k: 1,
            ..case.sampling()
        };
        let paths = tch::no_grad(|| gpt2(&p).generate(&tokens.ids, &tokens.mask, h, &greedy));
        assert_eq!(
            ids(&paths),
            ids(fx.get(&format!("{c}/greedy/{h}"))),
            "{c}/greedy"
        );

        sampled += check_seeded_forecasts(
            &fx,
            &p,
            case,
            |h| gpt2(&p).generate(&tokens.ids, &tokens.mask, h, &case.sampling()),
            RTOL,
        );
    }
    eprintln!("gpt2-rand: all outputs match; {sampled} seeded sampled tokens, 100% identical");

    // A causal model has no encoder to embed with.
    let err = p.embed(fx.get("basic/context")).unwrap_err();
    assert!(err.to_string().contains("no encoder"), "{err}");
}

#[test]
fn causal_model_loads_through_the_generic_pipeline_and_checks_positions() {
    let dir = root().join("fixtures/gpt2/models/gpt2-rand");
    let pipeline = Pipeline::load(dir.to_str().unwrap(), Dtype::F32, Device::Cpu).unwrap();
    assert!(matches!(
        pipeline,
        Pipeline::Chronos(ChronosPipeline {
            backbone: Backbone::Causal(_),
            ..
        })
    ));

    // context_length + prediction_length beyond n_positions would index past the position
    // embeddings: refused when loading.
    let mut config: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("config.json")).unwrap()).unwrap();
    config["chronos_config"]["context_length"] = 60.into();
    let tmp = tempfile::tempdir().unwrap();
    std::fs::write(tmp.path().join("config.json"), config.to_string()).unwrap();
    std::fs::copy(
        dir.join("model.safetensors"),
        tmp.path().join("model.safetensors"),
    )
    .unwrap();
    let err = Pipeline::load(tmp.path().to_str().unwrap(), Dtype::F32, Device::Cpu).unwrap_err();
    assert!(err.to_string().contains("n_positions"), "{err}");
}

#[test]
fn last_value_imputation_keeps_leading_gaps() {
    let nan = f32::NAN;
    let context = Tensor::from_slice(&[nan, nan, 1.0, nan, nan, 4.0, nan, nan, nan, nan, nan, nan])
        .view([2, 6]);
    let got: Vec<f32> = Vec::try_from(impute_last_value(&context).flatten(0, -1)).unwrap();
    let want = [nan, nan, 1.0, 1.0, 1.0, 4.0, nan, nan, nan, nan, nan, nan];
    for (g, w) in got.iter().zip(want) {
        assert!(g == &w || (g.is_nan() && w.is_nan()), "{got:?}");
    }
}
