//! Properties of the MeanScaleUniformBins tokenizer (as upstream's test suite states them).

use chronos::tokenizer::{ChronosConfig, MeanScaleUniformBins, TokenizerKwargs};
use tch::Tensor;

fn config(n_tokens: i64, use_eos_token: bool) -> ChronosConfig {
    ChronosConfig {
        tokenizer_class: "MeanScaleUniformBins".into(),
        tokenizer_kwargs: TokenizerKwargs {
            low_limit: -1.0,
            high_limit: 1.0,
        },
        context_length: 16,
        prediction_length: 3,
        n_tokens,
        n_special_tokens: 2,
        pad_token_id: 0,
        eos_token_id: 1,
        use_eos_token,
        model_type: "seq2seq".into(),
        num_samples: 5,
        temperature: 1.0,
        top_k: 50,
        top_p: 1.0,
    }
}

fn ids(t: &Tensor) -> Vec<i64> {
    Vec::try_from(t.flatten(0, -1)).unwrap()
}

#[test]
fn number_of_buckets_and_boundaries() {
    for n_tokens in [10, 1000, 4096] {
        let tok = MeanScaleUniformBins::new(&config(n_tokens, true));
        let bins = n_tokens - 2 - 1;
        assert_eq!(tok.centers.size(), [bins]);
        assert_eq!(tok.boundaries.size(), [bins + 1]);
        let b: Vec<f32> = Vec::try_from(&tok.boundaries).unwrap();
        assert!(b.windows(2).all(|w| w[0] < w[1]), "boundaries increase");
        assert_eq!((b[0], b[b.len() - 1]), (-1e20, 1e20));
    }
}

#[test]
fn centers_round_trip_to_their_own_tokens() {
    let tok = MeanScaleUniformBins::new(&config(1000, true));
    let centers = tok.centers.unsqueeze(0);
    let one = Tensor::from_slice(&[1.0f32]);
    let tokens = tok.label_input_transform(&centers, &one);
    let n = centers.size()[1];
    assert_eq!(tokens.ids.size(), [1, n + 1], "EOS appended to labels");
    let ids_only = tokens.ids.narrow(1, 0, n);
    assert_eq!(
        ids(&ids_only),
        (3..3 + n).collect::<Vec<_>>(),
        "bin i is token i + 3"
    );
    let values = tok
        .output_transform(&ids_only.unsqueeze(1), &one)
        .squeeze_dim(1);
    assert_eq!(
        Vec::<f32>::try_from(values.flatten(0, -1)).unwrap(),
        Vec::<f32>::try_from(centers.flatten(0, -1)).unwrap()
    );
    // At another scale, values scale with it and tokenise back to the same ids.
    let scale = Tensor::from_slice(&[3.5f32]);
    let scaled = tok
        .output_transform(&ids_only.unsqueeze(1), &scale)
        .squeeze_dim(1);
    assert_eq!(
        ids(&tok.label_input_transform(&scaled, &scale).ids),
        ids(&tokens.ids)
    );
}

#[test]
fn tokens_are_clipped_at_both_ends_and_nan_is_pad() {
    let cfg = config(10, true);
    let tok = MeanScaleUniformBins::new(&cfg);
    // scale = mean |x| = (1000 + 1000 + 1 + 0) / 4 ≈ 500.25, so ±1000 are far beyond ±1.
    let context = Tensor::from_slice(&[-1000.0f32, 1000.0, 1.0, f32::NAN, 0.0]).unsqueeze(0);
    let (tokens, scale) = tok.context_input_transform(&context);
    assert!((scale.double_value(&[0]) - 2001.0 / 4.0).abs() < 1e-3);
    let got = ids(&tokens.ids);
    assert_eq!(got.len(), 6, "EOS appended");
    assert_eq!(got[0], 3, "lowest bin: n_special_tokens + 1");
    assert_eq!(got[1], 9, "highest bin: n_tokens - 1");
    assert_eq!(got[3], 0, "NaN → pad");
    assert_eq!(got[5], 1, "EOS");
    let mask: Vec<bool> = Vec::try_from(tokens.mask.flatten(0, -1)).unwrap();
    assert_eq!(mask, [true, true, true, false, true, true]);
    // Sample ids outside the bins map to the extreme centers, special tokens to the lowest.
    let samples = Tensor::from_slice(&[0i64, 1, 2, 3, 9, 50]).view([1, 1, 6]);
    let values: Vec<f32> = Vec::try_from(
        tok.output_transform(&samples, &Tensor::from_slice(&[1.0f32]))
            .flatten(0, -1),
    )
    .unwrap();
    assert_eq!(values[0], -1.0);
    assert_eq!(values[3], -1.0);
    assert_eq!(values[5], 1.0);
}

#[test]
fn zero_and_all_nan_series_get_scale_one() {
    let tok = MeanScaleUniformBins::new(&config(10, false));
    let context =
        Tensor::from_slice(&[0.0f32, 0.0, 0.0, f32::NAN, f32::NAN, f32::NAN]).view([2, 3]);
    let (tokens, scale) = tok.context_input_transform(&context);
    assert_eq!(Vec::<f32>::try_from(&scale).unwrap(), [1.0, 1.0]);
    assert_eq!(ids(&tokens.ids)[3..], [0, 0, 0]);
}
