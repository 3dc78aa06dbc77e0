//! Pieces shared by the layers of every backbone: the initial value of loaded linear layers, the
//! attention mask value, scaled dot-product attention and the key/value cache of incremental
//! decoding.

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
    /// Added to the scores: `(batch or 1, heads or 1, q_len, k_len)`, masked positions at
    /// [`finfo_min`].
    Bias(&'a Tensor),
    /// Booleans, true where a query may attend a key: `(batch or 1, heads or 1, q_len, k_len)`.
    Allowed(&'a Tensor),
    /// Query `i` attends keys `0..=i` (query and key lengths equal).
    Causal,
}

/// `softmax(query · keyᵀ · scale + mask) · value`, with dropout of probability `dropout` on the
/// weights: `query` `(batch, heads, q_len, d)`, `key`/`value` `(batch, heads, k_len, d)` →
/// `(batch, heads, q_len, d)`. `scale` defaults to `1 / sqrt(d)`.
///
/// libtorch's fused kernels (`scaled_dot_product_attention`) serve inference and devices other
/// than the CPU. Training with dropout on the CPU would fall back to libtorch's unfused path with
/// its serial dropout masks; it is written out here instead, as transformers' eager attention
/// does, with [`dropout`] on the weights (and no check for rows whose keys are all masked, which
/// then attend uniformly as in transformers).
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
        let (bias, is_causal) = match mask {
            Mask::None => (None, false),
            Mask::Bias(bias) | Mask::Allowed(bias) => (Some(bias), false),
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
    let mut scores = query.matmul(&key.transpose(-2, -1));
    let scale = scale.unwrap_or(1.0 / (d as f64).sqrt());
    if scale != 1.0 {
        scores *= scale;
    }
    scores = match mask {
        Mask::None => scores,
        Mask::Bias(bias) => scores + bias,
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
