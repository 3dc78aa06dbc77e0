//! `chronos::dropout`: the CPU masks of the C++ shim. Statistics of the mask, scaling, the
//! backward pass, reproducibility under `manual_seed` for any thread count, and the dtypes; and
//! the fused CPU attention with dropout that draws the same masks.

use std::sync::Mutex;

use chronos::attention::{scaled_dot_product, Mask};
use chronos::dropout::dropout;
use tch::{Device, Kind, Tensor};

/// Serialises the tests that seed libtorch's global generator or change its thread count.
static RNG: Mutex<()> = Mutex::new(());

fn lock() -> std::sync::MutexGuard<'static, ()> {
    RNG.lock().unwrap_or_else(|e| e.into_inner())
}

fn ones(shape: &[i64], kind: Kind) -> Tensor {
    Tensor::ones(shape, (kind, Device::Cpu))
}

#[test]
fn drops_a_fraction_p_and_scales_the_rest() {
    let _rng = lock();
    tch::manual_seed(3);
    let n = 1_000_003; // odd: the last element has half a draw
    for p in [0.1, 0.5, 0.9] {
        let out = dropout(&ones(&[n], Kind::Float), p, true);
        let kept = out.ne(0.0);
        let kept_fraction = kept
            .to_kind(Kind::Double)
            .mean(Kind::Double)
            .double_value(&[]);
        // Binomial standard error sqrt(p (1 - p) / n) <= 5e-4: 6 of them.
        assert!(
            (kept_fraction - (1.0 - p)).abs() < 3e-3,
            "p = {p}: kept {kept_fraction}"
        );
        let values = out.masked_select(&kept);
        let scale = 1.0 / (1.0 - p);
        let (lo, hi) = (
            values.min().double_value(&[]),
            values.max().double_value(&[]),
        );
        assert!(
            (lo - scale).abs() < 1e-6 && (hi - scale).abs() < 1e-6,
            "p = {p}: {lo}..{hi}"
        );
        // The last element is drawn too.
        let tail = out.narrow(0, n - 100_000, 100_000).ne(0.0);
        let tail_kept = tail
            .to_kind(Kind::Double)
            .mean(Kind::Double)
            .double_value(&[]);
        assert!(
            (tail_kept - (1.0 - p)).abs() < 1e-2,
            "p = {p}: tail {tail_kept}"
        );
    }
}

#[test]
fn neighbouring_elements_are_independent() {
    let _rng = lock();
    tch::manual_seed(4);
    let n = 1_000_000;
    let kept = dropout(&ones(&[n], Kind::Float), 0.5, true)
        .ne(0.0)
        .to_kind(Kind::Double);
    // Both halves of one draw (elements 2i, 2i+1) and consecutive draws (2i+1, 2i+2): about a
    // quarter of the pairs both kept when independent (standard error 6e-4).
    for offset in [0, 1] {
        let a = kept.narrow(0, offset, n - 2).slice(0, 0, None, 2);
        let b = kept.narrow(0, offset + 1, n - 2).slice(0, 0, None, 2);
        let both = (a * b).mean(Kind::Double).double_value(&[]);
        assert!((both - 0.25).abs() < 4e-3, "offset {offset}: {both}");
    }
}

#[test]
fn gradient_applies_the_same_mask_and_scale() {
    let _rng = lock();
    tch::manual_seed(5);
    let x = Tensor::randn([64, 33], (Kind::Float, Device::Cpu)).set_requires_grad(true);
    let out = dropout(&x, 0.25, true);
    let upstream = Tensor::randn([64, 33], (Kind::Float, Device::Cpu));
    (&out * &upstream).sum(Kind::Float).backward();
    let factor = out.detach() / x.detach(); // 0 or 1 / 0.75 (x is never 0 here)
    let expected = &upstream * &factor;
    assert!(x.grad().allclose(&expected, 1e-6, 1e-7, false));
    assert!(factor.ne(0.0).any().int64_value(&[]) == 1);
    assert!(factor.eq(0.0).any().int64_value(&[]) == 1);
}

#[test]
fn masks_follow_the_seed_for_any_thread_count() {
    let _rng = lock();
    let threads = tch::get_num_threads();
    let x = ones(&[3, 70_001], Kind::Float);
    let draw = |seed: i64, threads: i32| {
        tch::set_num_threads(threads);
        tch::manual_seed(seed);
        (dropout(&x, 0.1, true), dropout(&x, 0.1, true))
    };
    let (a1, a2) = draw(7, 1);
    let (b1, b2) = draw(7, 2.max(threads));
    tch::set_num_threads(threads);
    assert!(
        a1.equal(&b1) && a2.equal(&b2),
        "same seed, other thread count"
    );
    assert!(!a1.equal(&a2), "two calls draw different masks");
    let (c1, _) = draw(8, threads);
    assert!(!a1.equal(&c1), "another seed draws another mask");
}

#[test]
fn inference_and_p_zero_return_the_input_and_other_dtypes_work() {
    let _rng = lock();
    let x = Tensor::randn([5, 7], (Kind::Float, Device::Cpu));
    assert!(dropout(&x, 0.3, false).equal(&x));
    assert!(dropout(&x, 0.0, true).equal(&x));
    for kind in [Kind::BFloat16, Kind::Half, Kind::Double] {
        let out = dropout(&ones(&[10_000], kind), 0.2, true);
        assert_eq!(out.kind(), kind);
        let kept = out
            .ne(0.0)
            .to_kind(Kind::Double)
            .mean(Kind::Double)
            .double_value(&[]);
        assert!((kept - 0.8).abs() < 0.03, "{kind:?}: kept {kept}");
        let value = out.max().to_kind(Kind::Double).double_value(&[]);
        assert!((value - 1.25).abs() < 1e-2, "{kind:?}: {value}");
    }
    // Non-contiguous input.
    let t = Tensor::randn([40, 30], (Kind::Float, Device::Cpu)).transpose(0, 1);
    let out = dropout(&t, 0.5, true);
    let kept = out.ne(0.0);
    assert!(out
        .masked_select(&kept)
        .allclose(&(t.masked_select(&kept) * 2.0), 1e-6, 1e-7, false));
}

#[test]
fn attention_with_dropout_equals_libtorch_when_nothing_is_dropped() {
    // The CPU training path with dropout (the fused kernel for float32) is libtorch's SDPA when
    // no element is dropped: p so small that no draw falls under it.
    let _rng = lock();
    tch::manual_seed(9);
    let o = (Kind::Float, Device::Cpu);
    let (q, k, v) = (
        Tensor::randn([2, 3, 5, 8], o),
        Tensor::randn([2, 3, 7, 8], o),
        Tensor::randn([2, 3, 7, 8], o),
    );
    let bias = Tensor::randn([1, 3, 5, 7], o);
    let allowed = Tensor::rand([2, 1, 5, 7], o).gt(0.3);
    let tiny = 1e-12;
    for (mask, scale) in [
        (Mask::Bias(&bias), Some(1.0)),
        (Mask::Allowed(&allowed), None),
        (Mask::None, Some(0.5)),
    ] {
        let explicit = scaled_dot_product(&q, &k, &v, mask, tiny, scale, true);
        let fused = scaled_dot_product(&q, &k, &v, mask, 0.0, scale, true);
        assert!(
            explicit.allclose(&fused, 1e-5, 1e-6, false),
            "{mask:?}: {}",
            (&explicit - &fused).abs().max().double_value(&[])
        );
    }
    let (qs, ks, vs) = (
        Tensor::randn([2, 3, 6, 8], o),
        Tensor::randn([2, 3, 6, 8], o),
        Tensor::randn([2, 3, 6, 8], o),
    );
    let explicit = scaled_dot_product(&qs, &ks, &vs, Mask::Causal, tiny, None, true);
    let fused = scaled_dot_product(&qs, &ks, &vs, Mask::Causal, 0.0, None, true);
    assert!(explicit.allclose(&fused, 1e-5, 1e-6, false));
    // With dropout, the weights of a row no longer sum to one.
    let dropped = scaled_dot_product(&q, &k, &v, Mask::None, 0.5, None, true);
    let reference = scaled_dot_product(&q, &k, &v, Mask::None, 0.0, None, true);
    assert!(!dropped.allclose(&reference, 1e-3, 1e-3, false));
}

/// The fused CPU attention with dropout (`csrc/attention.cpp`) against the same computation
/// written with libtorch's ops and [`dropout`] on the weights: same seed, same mask, so outputs
/// and gradients agree to float rounding.
#[test]
fn fused_attention_with_dropout_equals_the_unfused_computation() {
    let _rng = lock();
    let o = (Kind::Float, Device::Cpu);
    let (b, h, lq, lk, d) = (3, 2, 7, 9, 5); // lq * lk odd: pairs of draws straddle heads
    tch::manual_seed(11);
    let leaf = |shape: &[i64]| Tensor::randn(shape, o).set_requires_grad(true);
    let (q, k, v) = (
        leaf(&[b, h, lq, d]),
        leaf(&[b, h, lk, d]),
        leaf(&[b, h, lk, d]),
    );
    let position = leaf(&[1, h, lq, lk]);
    let cross = Tensor::randn([b, 1, 1, lk], o);
    let keys = Tensor::rand([b, lk], o).gt(0.3);
    let _ = keys.narrow(0, 0, 1).fill_(0); // a series with every key masked
    let allowed = Tensor::rand([b, 1, lq, lk], o).gt(0.2);
    let (qs, ks, vs) = (
        leaf(&[b, h, lq, d]),
        leaf(&[b, h, lq, d]),
        leaf(&[b, h, lq, d]),
    );
    let upstream = Tensor::randn([b, h, lq, d], o);
    let p = 0.3;

    let gradients = |out: &Tensor, inputs: &[&Tensor]| -> Vec<Tensor> {
        for t in inputs {
            let mut g = t.grad();
            if g.defined() {
                let _ = g.zero_();
            }
        }
        (out * &upstream).sum(Kind::Float).backward();
        inputs.iter().map(|t| t.grad().copy()).collect()
    };
    let reference = |q: &Tensor, k: &Tensor, v: &Tensor, bias: Option<Tensor>, scale: f64| {
        let mut scores = q.matmul(&k.transpose(-2, -1)) * scale;
        if let Some(bias) = bias {
            scores += bias;
        }
        dropout(&scores.softmax(-1, Kind::Float), p, true).matmul(v)
    };
    let min = f32::MIN as f64;
    let causal_bias = Tensor::ones([lq, lq], (Kind::Bool, Device::Cpu))
        .tril(0)
        .logical_not()
        .to_kind(Kind::Float)
        * min;
    let allowed_bias = allowed.logical_not().to_kind(Kind::Float) * min;
    let cases: Vec<(&str, Mask, Option<Tensor>, f64, bool)> = vec![
        (
            "position bias and key mask",
            Mask::BiasKeys {
                bias: &position,
                keys: &keys,
            },
            Some(chronos::attention::masked_bias(&position, &keys)),
            1.0,
            false,
        ),
        (
            "cross bias",
            Mask::Bias(&cross),
            Some(cross.shallow_clone()),
            1.0,
            false,
        ),
        (
            "allowed",
            Mask::Allowed(&allowed),
            Some(allowed_bias),
            0.5,
            false,
        ),
        ("none", Mask::None, None, 0.25, false),
        ("causal", Mask::Causal, Some(causal_bias), 0.5, true),
    ];
    for (name, mask, bias, scale, self_attention) in cases {
        let (q, k, v) = if self_attention {
            (&qs, &ks, &vs)
        } else {
            (&q, &k, &v)
        };
        let inputs = [q, k, v, &position];
        tch::manual_seed(21);
        let fused = scaled_dot_product(q, k, v, mask, p, Some(scale), true);
        let fused_grads = gradients(&fused, &inputs);
        tch::manual_seed(21);
        let expected = reference(q, k, v, bias, scale);
        let expected_grads = gradients(&expected, &inputs);
        let err = (&fused - &expected).abs().max().double_value(&[]);
        assert!(err < 1e-5, "{name}: output differs by {err}");
        assert!(fused.isfinite().all().int64_value(&[]) == 1, "{name}");
        for (i, (a, e)) in fused_grads.iter().zip(&expected_grads).enumerate() {
            assert_eq!(a.defined(), e.defined(), "{name}: gradient {i}");
            if a.defined() {
                let err = (a - e).abs().max().double_value(&[]);
                assert!(err < 1e-5, "{name}: gradient {i} differs by {err}");
            }
        }
    }
    // Another seed draws another mask.
    tch::manual_seed(22);
    let other = scaled_dot_product(&q, &k, &v, Mask::None, p, None, true);
    tch::manual_seed(21);
    let same = scaled_dot_product(&q, &k, &v, Mask::None, p, None, true);
    assert!(!other.allclose(&same, 1e-3, 1e-3, false));
}
