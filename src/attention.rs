//! Pieces shared by the layers of every backbone: the initial value of loaded linear layers, the
//! attention mask value, scaled dot-product attention and the key/value cache of incremental
//! decoding.

use std::ffi::{c_char, c_void};

use tch::nn::{Init, LinearConfig};
use tch::{Device, Kind, Tensor};

use crate::dropout::dropout;

/// Linear layers whose weights a checkpoint will overwrite: zero-initialised, so that building a
/// model neither spends time on random init nor advances libtorch's global generator (which
/// would change seeded sample paths).
pub const UNINITIALIZED_LINEAR: LinearConfig = LinearConfig {
    ws_init: Init::Const(0.0),
    bs_init: Some(Init::Const(0.0)),
    bias: true,
};

/// Most negative finite value of a float kind: HF's `torch.finfo(dtype).min`, used for masked
/// attention positions (a fully masked row then attends uniformly, as in HF).
pub fn finfo_min(kind: Kind) -> f64 {
    match kind {
        Kind::BFloat16 => -3.3895313892515355e38,
        Kind::Half => -65504.0,
        Kind::Double => f64::MIN,
        _ => f32::MIN as f64,
    }
}

/// The mask of [`scaled_dot_product`].
#[derive(Debug, Clone, Copy)]
pub enum Mask<'a> {
    None,
    /// Added to the scores: `(batch or 1, heads or 1, q_len or 1, k_len)`, masked positions at
    /// [`finfo_min`].
    Bias(&'a Tensor),
    /// A bias as in `Bias`, and `keys` `(batch, k_len)` bool, true where a key may be attended:
    /// the bias where allowed, else [`finfo_min`] (what [`masked_bias`] makes).
    BiasKeys {
        bias: &'a Tensor,
        keys: &'a Tensor,
    },
    /// Booleans, true where a query may attend a key: `(batch or 1, heads or 1, q_len, k_len)`.
    Allowed(&'a Tensor),
    /// Query `i` attends keys `0..=i` (query and key lengths equal).
    Causal,
}

/// `bias` `(1|batch, heads, q_len, k_len)` where `keys` `(batch, k_len)` is true, else
/// [`finfo_min`]: `(batch, heads, q_len, k_len)`.
pub fn masked_bias(bias: &Tensor, keys: &Tensor) -> Tensor {
    bias.where_scalarother(&key_rows(keys), finfo_min(bias.kind()))
}

/// `keys` `(batch, k_len)` as a view broadcastable to the scores: `(batch, 1, 1, k_len)`.
fn key_rows(keys: &Tensor) -> Tensor {
    let (batch, len) = keys.size2().expect("keys is (batch, k_len)");
    keys.view([batch, 1, 1, len])
}

extern "C" {
    #[allow(clippy::too_many_arguments)]
    fn chronos_attention_dropout(
        query: *mut c_void,
        key: *mut c_void,
        value: *mut c_void,
        bias: *mut c_void,
        allowed: *mut c_void,
        causal: i32,
        scale: f64,
        p: f64,
        out: *mut *mut c_void,
    ) -> *mut c_char;
}

/// `softmax(query · keyᵀ · scale + mask) · value`, with dropout of probability `dropout` on the
/// weights: `query` `(batch, heads, q_len, d)`, `key`/`value` `(batch, heads, k_len, d)` →
/// `(batch, heads, q_len, d)`. `scale` defaults to `1 / sqrt(d)`.
///
/// libtorch's fused kernels (`scaled_dot_product_attention`) serve inference and devices other
/// than the CPU. libtorch has no fused CPU kernel with dropout: training with dropout on the CPU
/// goes through the C++ shim's (`csrc/attention.cpp`) for float32, one (batch, head) at a time
/// with the scores in cache (it keeps the weights and the mask for the backward pass), and is
/// written out as transformers' eager attention otherwise (bfloat16 autocast), with [`dropout`]
/// on the weights.
/// Both draw the mask of [`dropout`] over the weights, and neither checks for rows whose keys
/// are all masked, which then attend uniformly as in transformers.
#[allow(clippy::too_many_arguments)]
pub fn scaled_dot_product(
    query: &Tensor,
    key: &Tensor,
    value: &Tensor,
    mask: Mask,
    dropout_p: f64,
    scale: Option<f64>,
    train: bool,
) -> Tensor {
    let dropout_p = if train { dropout_p } else { 0.0 };
    if dropout_p == 0.0 || query.device() != Device::Cpu {
        let masked;
        let (bias, is_causal) = match mask {
            Mask::None => (None, false),
            Mask::Bias(bias) | Mask::Allowed(bias) => (Some(bias), false),
            Mask::BiasKeys { bias, keys } => {
                masked = masked_bias(bias, keys);
                (Some(&masked), false)
            }
            Mask::Causal => (None, true),
        };
        return Tensor::scaled_dot_product_attention(
            query, key, value, bias, dropout_p, is_causal, scale, false,
        );
    }
    let kind = query.kind();
    let d = *query
        .size()
        .last()
        .expect("query is (batch, heads, q_len, d)");
    let scale = scale.unwrap_or(1.0 / (d as f64).sqrt());
    if kind == Kind::Float {
        return fused_dropout(query, key, value, mask, dropout_p, scale);
    }
    let mut scores = query.matmul(&key.transpose(-2, -1));
    if scale != 1.0 {
        scores *= scale;
    }
    scores = match mask {
        Mask::None => scores,
        Mask::Bias(bias) => scores + bias,
        Mask::BiasKeys { bias, keys } => scores + masked_bias(bias, keys),
        Mask::Allowed(allowed) => scores.masked_fill(&allowed.logical_not(), finfo_min(kind)),
        Mask::Causal => {
            let (q_len, k_len) = (query.size()[2], key.size()[2]);
            let allowed = Tensor::ones([q_len, k_len], (Kind::Bool, query.device())).tril(0);
            scores.masked_fill(&allowed.logical_not(), finfo_min(kind))
        }
    };
    let weights = scores.softmax(-1, Kind::Float).to_kind(kind);
    dropout(&weights, dropout_p, true).matmul(value)
}

/// The C++ shim's attention with dropout (float32 CPU tensors).
///
/// # Panics
/// When libtorch fails (out of memory, shapes that do not fit), as tch's own operations do.
fn fused_dropout(
    query: &Tensor,
    key: &Tensor,
    value: &Tensor,
    mask: Mask,
    dropout_p: f64,
    scale: f64,
) -> Tensor {
    let handle = |t: &Tensor| t.as_ptr() as *mut c_void;
    let (mut bias, mut allowed, mut causal) = (std::ptr::null_mut(), std::ptr::null_mut(), 0);
    let keys_4d;
    match mask {
        Mask::None => {}
        Mask::Bias(b) => bias = handle(b),
        Mask::BiasKeys { bias: b, keys } => {
            keys_4d = key_rows(keys);
            (bias, allowed) = (handle(b), handle(&keys_4d));
        }
        Mask::Allowed(a) => allowed = handle(a),
        Mask::Causal => causal = 1,
    }
    let mut out: *mut c_void = std::ptr::null_mut();
    // SAFETY: the handles are live `at::Tensor*` that the shim only reads (or NULL); on success
    // `out` is a new `at::Tensor*` whose ownership passes to the returned `Tensor`.
    unsafe {
        let error = chronos_attention_dropout(
            handle(query),
            handle(key),
            handle(value),
            bias,
            allowed,
            causal,
            scale,
            dropout_p,
            &mut out,
        );
        crate::shim::new_tensor(error, out, "scaled_dot_product")
    }
}

/// Self-attention keys and values of the steps so far, in buffers preallocated for the
/// expected number of steps (grown by doubling if exceeded) so a step copies only its own.
#[derive(Debug)]
pub struct KeyValueCache {
    /// `(rows, heads, capacity, d_kv)` each, the first `len` steps valid.
    buffers: Option<(Tensor, Tensor)>,
    capacity: i64,
    len: i64,
}

impl KeyValueCache {
    pub fn new(capacity: i64) -> Self {
        KeyValueCache {
            buffers: None,
            capacity: capacity.max(1),
            len: 0,
        }
    }

    /// Repeats every cached row `times` times in place (`repeat_interleave`): keys and values
    /// computed once per series, shared by its sample paths from here on.
    pub fn repeat_rows(&mut self, times: i64) {
        if let Some((k, v)) = &self.buffers {
            self.buffers = Some((
                k.repeat_interleave_self_int(times, 0, None),
                v.repeat_interleave_self_int(times, 0, None),
            ));
        }
    }

    /// Appends this step's `key`/`value` `(rows, heads, steps, d_kv)` and returns views of all
    /// steps so far.
    pub fn append(&mut self, key: &Tensor, value: &Tensor) -> (Tensor, Tensor) {
        let steps = key.size()[2];
        let needed = self.len + steps;
        if self.buffers.is_none() || needed > self.capacity {
            while needed > self.capacity {
                self.capacity *= 2;
            }
            let mut shape = key.size();
            shape[2] = self.capacity;
            let options = (key.kind(), key.device());
            let grown = (
                Tensor::zeros(shape.as_slice(), options),
                Tensor::zeros(shape.as_slice(), options),
            );
            if let Some((old_k, old_v)) = &self.buffers {
                grown
                    .0
                    .narrow(2, 0, self.len)
                    .copy_(&old_k.narrow(2, 0, self.len));
                grown
                    .1
                    .narrow(2, 0, self.len)
                    .copy_(&old_v.narrow(2, 0, self.len));
            }
            self.buffers = Some(grown);
        }
        let (k, v) = self.buffers.as_ref().expect("allocated above");
        k.narrow(2, self.len, steps).copy_(key);
        v.narrow(2, self.len, steps).copy_(value);
        self.len = needed;
        (k.narrow(2, 0, needed), v.narrow(2, 0, needed))
    }
}
