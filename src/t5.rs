//! T5 blocks shared by every Chronos family (as `transformers.models.t5.modeling_t5`).
//!
//! Variables are created under the HF state-dict paths (`encoder.block.0.layer.0.SelfAttention.q`,
//! `decoder.block.1.layer.2.DenseReluDense.wo`, ...), so checkpoints load by name.

use tch::nn::{self, Init, Module};
use tch::{Kind, Tensor};

use crate::attention::{finfo_min, masked_bias, scaled_dot_product, KeyValueCache, Mask};
use crate::config::{Activation, T5Config};
use crate::dropout::dropout;

/// Bias-free linear layer (`nn.Linear(in, out, bias=False)`), weight `(out, in)`.
fn linear_no_bias(p: nn::Path, in_dim: i64, out_dim: i64) -> nn::Linear {
    nn::linear(
        p,
        in_dim,
        out_dim,
        nn::LinearConfig {
            bias: false,
            ..crate::attention::UNINITIALIZED_LINEAR
        },
    )
}

/// T5's RMS layer norm: no mean subtraction, no bias, variance accumulated in f32.
#[derive(Debug)]
pub struct LayerNorm {
    weight: Tensor,
    eps: f64,
}

impl LayerNorm {
    pub fn new(p: nn::Path, dim: i64, eps: f64) -> Self {
        LayerNorm {
            weight: p.var("weight", &[dim], Init::Const(1.0)),
            eps,
        }
    }

    /// `(..., d_model)` → `(..., d_model)`.
    pub fn forward(&self, xs: &Tensor) -> Tensor {
        let variance = xs
            .to_kind(Kind::Float)
            .square()
            .mean_dim(-1, true, None::<Kind>);
        let normed = xs * (variance + self.eps).rsqrt();
        let normed = match self.weight.kind() {
            k @ (Kind::Half | Kind::BFloat16) => normed.to_kind(k),
            _ => normed,
        };
        &self.weight * normed
    }
}

/// Relative position buckets and their learned per-head bias (`relative_attention_bias`).
#[derive(Debug)]
pub struct RelativeAttentionBias {
    embedding: Tensor,
    bidirectional: bool,
    num_buckets: i64,
    max_distance: i64,
}

impl RelativeAttentionBias {
    fn new(p: nn::Path, cfg: &T5Config, bidirectional: bool) -> Self {
        RelativeAttentionBias {
            embedding: p.var(
                "weight",
                &[cfg.relative_attention_num_buckets, cfg.num_heads],
                Init::Const(0.0),
            ),
            bidirectional,
            num_buckets: cfg.relative_attention_num_buckets,
            max_distance: cfg.relative_attention_max_distance,
        }
    }

    /// HF `_relative_position_bucket`, with the same tensor ops (so the f32 log rounding agrees).
    fn buckets(&self, relative_position: &Tensor) -> Tensor {
        let mut num_buckets = self.num_buckets;
        let (mut buckets, position) = if self.bidirectional {
            num_buckets /= 2;
            (
                relative_position.gt(0).to_kind(Kind::Int64) * num_buckets,
                relative_position.abs(),
            )
        } else {
            (
                relative_position.zeros_like(),
                -relative_position.clamp_max(0),
            )
        };
        let max_exact = num_buckets / 2;
        let is_small = position.lt(max_exact);
        let if_large = (position.to_kind(Kind::Float) / max_exact as f64).log()
            / (self.max_distance as f64 / max_exact as f64).ln()
            * (num_buckets - max_exact) as f64;
        let if_large = (if_large.to_kind(Kind::Int64) + max_exact).clamp_max(num_buckets - 1);
        buckets += position.where_self(&is_small, &if_large);
        buckets
    }

    /// Bias for queries at positions `offset..offset+q_len` over keys `0..k_len`:
    /// `(1, heads, q_len, k_len)`.
    pub fn forward(&self, q_len: i64, k_len: i64, offset: i64) -> Tensor {
        let device = self.embedding.device();
        let context = Tensor::arange(q_len, (Kind::Int64, device)).unsqueeze(1) + offset;
        let memory = Tensor::arange(k_len, (Kind::Int64, device)).unsqueeze(0);
        let buckets = self.buckets(&(memory - context));
        Tensor::embedding(&self.embedding, &buckets, -1, false, false)
            .permute([2, 0, 1])
            .unsqueeze(0)
    }
}

/// Multi-head attention without score scaling (T5 folds it into the weights).
#[derive(Debug)]
pub struct Attention {
    q: nn::Linear,
    k: nn::Linear,
    v: nn::Linear,
    o: nn::Linear,
    n_heads: i64,
    d_kv: i64,
    dropout: f64,
    /// Present in the first block's self-attention only.
    pub relative_attention_bias: Option<RelativeAttentionBias>,
    /// Inference copies of `[q; k; v]` and `[k; v]` stacked, so a projection is one GEMM.
    packed: Option<(Tensor, Tensor)>,
}

impl Attention {
    pub(crate) fn new(p: nn::Path, cfg: &T5Config, relative_bias: Option<bool>) -> Self {
        let inner = cfg.num_heads * cfg.d_kv;
        Attention {
            q: linear_no_bias(&p / "q", cfg.d_model, inner),
            k: linear_no_bias(&p / "k", cfg.d_model, inner),
            v: linear_no_bias(&p / "v", cfg.d_model, inner),
            o: linear_no_bias(&p / "o", inner, cfg.d_model),
            n_heads: cfg.num_heads,
            d_kv: cfg.d_kv,
            dropout: cfg.dropout_rate,
            relative_attention_bias: relative_bias.map(|bidirectional| {
                RelativeAttentionBias::new(&p / "relative_attention_bias", cfg, bidirectional)
            }),
            packed: None,
        }
    }

    /// Stacks the projection weights for inference (see [`Stack::pack_for_inference`]).
    pub(crate) fn pack(&mut self) {
        let (q, k, v) = (&self.q.ws, &self.k.ws, &self.v.ws);
        self.packed = Some((Tensor::cat(&[q, k, v], 0), Tensor::cat(&[k, v], 0)));
    }

    /// `(batch, len, heads * d_kv)` → `(batch, heads, len, d_kv)`.
    pub(crate) fn split_heads(&self, xs: &Tensor) -> Tensor {
        let (b, l, _) = xs.size3().unwrap();
        xs.view([b, l, self.n_heads, self.d_kv]).transpose(1, 2)
    }

    /// Attention of each position of `xs` `(batch, len, d_model)` over itself alone (one
    /// unmasked key, so weights of exactly 1): its value projected back, `o(v(xs))`.
    pub(crate) fn attend_self_only(&self, xs: &Tensor) -> Tensor {
        self.o.forward(&self.v.forward(xs))
    }

    /// Queries, keys and values of `xs` `(batch, len, d_model)`, each `(batch, heads, len, d_kv)`.
    pub fn query_key_value(&self, xs: &Tensor, train: bool) -> (Tensor, Tensor, Tensor) {
        match (&self.packed, train) {
            (Some((qkv, _)), false) => {
                let parts = xs.linear(qkv, None::<Tensor>).chunk(3, -1);
                (
                    self.split_heads(&parts[0]),
                    self.split_heads(&parts[1]),
                    self.split_heads(&parts[2]),
                )
            }
            _ => {
                // q, k, v in HF's order: autograd sums the gradients reaching `xs` in reverse
                // creation order, so this order gives HF's gradients bit for bit.
                let q = self.query(xs);
                let (k, v) = self.key_value(xs, train);
                (q, k, v)
            }
        }
    }

    /// Queries of `xs` `(batch, len, d_model)`: `(batch, heads, len, d_kv)`.
    pub fn query(&self, xs: &Tensor) -> Tensor {
        self.split_heads(&self.q.forward(xs))
    }

    /// Keys and values of `states` `(batch, len, d_model)`: two `(batch, heads, len, d_kv)`.
    pub fn key_value(&self, states: &Tensor, train: bool) -> (Tensor, Tensor) {
        match (&self.packed, train) {
            (Some((_, kv)), false) => {
                let parts = states.linear(kv, None::<Tensor>).chunk(2, -1);
                (self.split_heads(&parts[0]), self.split_heads(&parts[1]))
            }
            _ => (
                self.split_heads(&self.k.forward(states)),
                self.split_heads(&self.v.forward(states)),
            ),
        }
    }

    /// Attention of `query` over `key`/`value` (all `(batch, heads, len, d_kv)`) with `mask`
    /// (the position bias, with masked positions at the dtype's minimum or the key mask beside
    /// it), projected back: `(batch, q_len, d_model)`.
    pub fn attend(
        &self,
        query: &Tensor,
        key: &Tensor,
        value: &Tensor,
        mask: Mask,
        train: bool,
    ) -> Tensor {
        let (b, _, q_len, _) = query.size4().unwrap();
        let out = scaled_dot_product(query, key, value, mask, self.dropout, Some(1.0), train);
        self.o.forward(
            &out.transpose(1, 2)
                .reshape([b, q_len, self.n_heads * self.d_kv]),
        )
    }
}

/// The feed-forward sublayer's dense part (`DenseReluDense`): `wi`/`wo`, or gated `wi_0`/`wi_1`/`wo`.
#[derive(Debug)]
pub(crate) struct DenseActDense {
    wi: nn::Linear,
    /// `wi_1` of the gated variant (then `wi` is `wi_0`).
    wi_gate: Option<nn::Linear>,
    wo: nn::Linear,
    act: Activation,
    dropout: f64,
}

impl DenseActDense {
    pub(crate) fn new(p: nn::Path, cfg: &T5Config) -> Self {
        let (act, gated) = cfg
            .feed_forward()
            .expect("feed_forward_proj is validated when the config is read");
        let (wi, wi_gate) = if gated {
            (
                linear_no_bias(&p / "wi_0", cfg.d_model, cfg.d_ff),
                Some(linear_no_bias(&p / "wi_1", cfg.d_model, cfg.d_ff)),
            )
        } else {
            (linear_no_bias(&p / "wi", cfg.d_model, cfg.d_ff), None)
        };
        DenseActDense {
            wi,
            wi_gate,
            wo: linear_no_bias(&p / "wo", cfg.d_ff, cfg.d_model),
            act,
            dropout: cfg.dropout_rate,
        }
    }

    // `a = a * b` rather than `a *= b`: in place, autograd would lose an input of the product.
    #[allow(clippy::assign_op_pattern)]
    pub(crate) fn forward_t(&self, xs: &Tensor, train: bool) -> Tensor {
        let mut hidden = self.act.apply(self.wi.forward(xs));
        if let Some(gate) = &self.wi_gate {
            hidden = hidden * gate.forward(xs);
        }
        self.wo.forward(&dropout(&hidden, self.dropout, train))
    }
}

/// One T5 block: self-attention, cross-attention (decoder only), feed-forward; each pre-normed
/// and residual (`block.{i}.layer.{0,1,2}`).
#[derive(Debug)]
pub struct Block {
    self_attention: Attention,
    self_norm: LayerNorm,
    cross_attention: Option<(Attention, LayerNorm)>,
    dense: DenseActDense,
    dense_norm: LayerNorm,
    dropout: f64,
}

impl Block {
    fn new(p: nn::Path, cfg: &T5Config, is_decoder: bool, first: bool) -> Self {
        let layer = &p / "layer";
        let eps = cfg.layer_norm_epsilon;
        let self_layer = &layer / 0;
        let self_attention = Attention::new(
            &self_layer / "SelfAttention",
            cfg,
            first.then_some(!is_decoder),
        );
        let self_norm = LayerNorm::new(&self_layer / "layer_norm", cfg.d_model, eps);
        let cross_attention = is_decoder.then(|| {
            let cross = &layer / 1;
            (
                Attention::new(&cross / "EncDecAttention", cfg, None),
                LayerNorm::new(&cross / "layer_norm", cfg.d_model, eps),
            )
        });
        let ff = &layer / if is_decoder { 2 } else { 1 };
        Block {
            self_attention,
            self_norm,
            cross_attention,
            dense: DenseActDense::new(&ff / "DenseReluDense", cfg),
            dense_norm: LayerNorm::new(&ff / "layer_norm", cfg.d_model, eps),
            dropout: cfg.dropout_rate,
        }
    }

    // `a = a + b` rather than `a += b`: in place, autograd would lose the layer norm's input.
    #[allow(clippy::assign_op_pattern)]
    /// `xs` `(rows, len, d_model)`; `self_mask` the self-attention's position bias `(rows|1,
    /// heads, len, keys)`, masked or with its key mask. With `self_cache`,
    /// this step's keys/values are appended to the cached ones (incremental decoding). `cross`:
    /// encoder keys/values `(batch, heads, src_len, d_kv)` with their bias `(batch, 1, 1,
    /// src_len)`, shared by `rows / batch` consecutive rows (sample paths of one series).
    fn forward_t(
        &self,
        xs: &Tensor,
        self_mask: Mask,
        self_cache: Option<&mut KeyValueCache>,
        cross: Option<(&(Tensor, Tensor), &Tensor)>,
        train: bool,
    ) -> Tensor {
        let (q, mut k, mut v) = self
            .self_attention
            .query_key_value(&self.self_norm.forward(xs), train);
        if let Some(cache) = self_cache {
            (k, v) = cache.append(&k, &v);
        }
        let attended = self.self_attention.attend(&q, &k, &v, self_mask, train);
        let mut xs = xs + dropout(&attended, self.dropout, train);
        if let (Some((attention, norm)), Some(((key, value), bias))) =
            (&self.cross_attention, cross)
        {
            let (rows, len, d) = xs.size3().unwrap();
            let batch = key.size()[0];
            // Rows of one series attend to its encoding together: (batch, rows/batch * len, d).
            let normed = norm.forward(&xs).reshape([batch, rows / batch * len, d]);
            let query = attention.query(&normed);
            let attended = attention.attend(&query, key, value, Mask::Bias(bias), train);
            xs = xs + dropout(&attended.reshape([rows, len, d]), self.dropout, train);
        }
        let ff = self.dense.forward_t(&self.dense_norm.forward(&xs), train);
        xs + dropout(&ff, self.dropout, train)
    }
}

/// Encoder keys and values for every decoder block, computed once per series, and the
/// encoder mask as an additive bias `(batch, 1, 1, src_len)`.
#[derive(Debug)]
pub struct CrossKeyValues {
    key_values: Vec<(Tensor, Tensor)>,
    bias: Tensor,
}

/// State of incremental decoding: the cross-attention keys/values and the self-attention
/// keys/values of the steps so far, per block.
#[derive(Debug)]
pub struct DecoderCache {
    cross: CrossKeyValues,
    self_kv: Vec<KeyValueCache>,
    step: i64,
}

/// A T5 encoder or decoder stack (`encoder.*` / `decoder.*`). Token embeddings live in the
/// model (`shared`), the stack takes embeddings.
#[derive(Debug)]
pub struct Stack {
    blocks: Vec<Block>,
    final_layer_norm: LayerNorm,
    dropout: f64,
}

impl Stack {
    /// Encoder stack with `cfg.num_layers` blocks under `p` (e.g. `vs.root() / "encoder"`).
    pub fn encoder(p: nn::Path, cfg: &T5Config) -> Self {
        Self::new(p, cfg, false, cfg.num_layers)
    }

    /// Decoder stack with `cfg.num_decoder_layers` blocks under `p`.
    pub fn decoder(p: nn::Path, cfg: &T5Config) -> Self {
        Self::new(p, cfg, true, cfg.num_decoder_layers())
    }

    fn new(p: nn::Path, cfg: &T5Config, is_decoder: bool, layers: i64) -> Self {
        let block = &p / "block";
        Stack {
            blocks: (0..layers)
                .map(|i| Block::new(&block / i, cfg, is_decoder, i == 0))
                .collect(),
            final_layer_norm: LayerNorm::new(
                &p / "final_layer_norm",
                cfg.d_model,
                cfg.layer_norm_epsilon,
            ),
            dropout: cfg.dropout_rate,
        }
    }

    /// Stacks each attention's projection weights into one matrix so that every projection is
    /// a single GEMM (f32 weights only: libtorch's bf16/f16 GEMMs round differently with the
    /// wider output, which would move results off the reference's). For inference: the packed
    /// copies do not follow later changes to the variables, and `train = true` forwards ignore
    /// them.
    pub fn pack_for_inference(&mut self) {
        if self.final_layer_norm.weight.kind() != Kind::Float {
            return;
        }
        for block in &mut self.blocks {
            block.self_attention.pack();
            if let Some((attention, _)) = &mut block.cross_attention {
                attention.pack();
            }
        }
    }

    fn position_bias(&self) -> &RelativeAttentionBias {
        self.blocks[0]
            .self_attention
            .relative_attention_bias
            .as_ref()
            .expect("the first block holds the relative attention bias")
    }

    /// Bidirectional encoder over `embeds` `(batch, len, d_model)` with `mask` `(batch, len)`
    /// (bool, true = attend). Returns `(batch, len, d_model)`.
    pub fn encode(&self, embeds: &Tensor, mask: &Tensor, train: bool) -> Tensor {
        let len = embeds.size()[1];
        let bias = self.position_bias().forward(len, len, 0);
        let mut xs = dropout(embeds, self.dropout, train);
        // Inference masks the position bias once for all blocks. Training passes the bias and
        // the key mask to every block, which masks the bias itself, as HF's SDPA path does per
        // layer (the bias's gradient is then reduced over the batch per block before the
        // blocks' contributions add up, HF's summation order), or, with dropout on the CPU,
        // hands both to the fused kernel.
        let shared = (!train).then(|| masked_bias(&bias, mask));
        let self_mask = match &shared {
            Some(shared) => Mask::Bias(shared),
            None => Mask::BiasKeys {
                bias: &bias,
                keys: mask,
            },
        };
        for block in &self.blocks {
            xs = block.forward_t(&xs, self_mask, None, None, train);
        }
        dropout(&self.final_layer_norm.forward(&xs), self.dropout, train)
    }

    /// Keys and values of `encoder_states` `(batch, src_len, d_model)` for each decoder block,
    /// with `encoder_mask` `(batch, src_len)` (true = attend) as a bias.
    pub fn cross_key_values(
        &self,
        encoder_states: &Tensor,
        encoder_mask: &Tensor,
        train: bool,
    ) -> CrossKeyValues {
        let src_len = encoder_states.size()[1];
        let zeros = Tensor::zeros(
            [1, 1, 1, src_len],
            (encoder_states.kind(), encoder_states.device()),
        );
        CrossKeyValues {
            key_values: self
                .blocks
                .iter()
                .map(|block| {
                    let (attention, _) = block
                        .cross_attention
                        .as_ref()
                        .expect("cross_key_values is for decoder stacks");
                    attention.key_value(encoder_states, train)
                })
                .collect(),
            bias: masked_bias(&zeros, encoder_mask),
        }
    }

    /// Causal decoder over `embeds` `(batch, len, d_model)` attending to `encoder_states`
    /// `(batch, src_len, d_model)` where `encoder_mask` `(batch, src_len)` is true.
    /// Returns `(batch, len, d_model)`.
    pub fn decode(
        &self,
        embeds: &Tensor,
        encoder_states: &Tensor,
        encoder_mask: &Tensor,
        train: bool,
    ) -> Tensor {
        let len = embeds.size()[1];
        let bias = self.position_bias().forward(len, len, 0);
        let causal = Tensor::ones([len, len], (Kind::Bool, bias.device())).tril(0);
        let self_bias = bias.where_scalarother(&causal, finfo_min(bias.kind()));
        let cross = self.cross_key_values(encoder_states, encoder_mask, train);
        let mut xs = dropout(embeds, self.dropout, train);
        for (block, kv) in self.blocks.iter().zip(&cross.key_values) {
            xs = block.forward_t(
                &xs,
                Mask::Bias(&self_bias),
                None,
                Some((kv, &cross.bias)),
                train,
            );
        }
        dropout(&self.final_layer_norm.forward(&xs), self.dropout, train)
    }

    /// Starts incremental decoding (inference) of about `steps` steps over `encoder_states`
    /// `(batch, src_len, d_model)`; each series will be decoded as a group of consecutive rows
    /// (sample paths).
    pub fn start_decoding(
        &self,
        encoder_states: &Tensor,
        encoder_mask: &Tensor,
        steps: i64,
    ) -> DecoderCache {
        DecoderCache {
            cross: self.cross_key_values(encoder_states, encoder_mask, false),
            self_kv: (0..self.blocks.len())
                .map(|_| KeyValueCache::new(steps))
                .collect(),
            step: 0,
        }
    }

    /// One decoding step (inference): `embeds` `(rows, 1, d_model)` of the newest token of each
    /// row, rows grouped by series (`rows` a multiple of the encoder batch). Returns
    /// `(rows, 1, d_model)`.
    pub fn decode_step(&self, embeds: &Tensor, cache: &mut DecoderCache) -> Tensor {
        let step = cache.step;
        let self_bias = self.position_bias().forward(1, step + 1, step);
        let mut xs = embeds.shallow_clone();
        for ((block, kv), self_kv) in self
            .blocks
            .iter()
            .zip(&cache.cross.key_values)
            .zip(cache.self_kv.iter_mut())
        {
            xs = block.forward_t(
                &xs,
                Mask::Bias(&self_bias),
                Some(self_kv),
                Some((kv, &cache.cross.bias)),
                false,
            );
        }
        cache.step += 1;
        self.final_layer_norm.forward(&xs)
    }
}
