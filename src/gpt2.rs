//! GPT-2 (HF `GPT2LMHeadModel`), the backbone of the causal Chronos variant, with incremental
//! sampling of forecast paths. Parameter paths mirror the HF state dict (`transformer.h.0.attn.
//! c_attn`, ...); `Conv1D` weights are stored `(in, out)` as in HF.

use tch::nn::{self, Module};
use tch::{Kind, Tensor};

use crate::attention::{scaled_dot_product, KeyValueCache, Mask};
use crate::chronos_t5::IGNORE_INDEX;
use crate::config::{Activation, Gpt2Config};
use crate::dropout::dropout;
use crate::error::{ChronosError, Result};
use crate::sampling::SamplingConfig;
use crate::tokenizer::ChronosConfig;

/// Keys that transformers may write as tied copies of `transformer.wte.weight`.
pub const TIED_ALIASES: [(&str, &str); 1] = [("lm_head.weight", "transformer.wte.weight")];

/// HF's `Conv1D`: `x @ weight + bias` with `weight` `(in, out)`.
#[derive(Debug)]
struct Conv1D {
    weight: Tensor,
    bias: Tensor,
}

impl Conv1D {
    fn new(p: nn::Path, in_dim: i64, out_dim: i64) -> Self {
        Conv1D {
            weight: p.var("weight", &[in_dim, out_dim], nn::Init::Const(0.0)),
            bias: p.var("bias", &[out_dim], nn::Init::Const(0.0)),
        }
    }

    /// `(..., in)` → `(..., out)`, as one `addmm` like HF.
    fn forward(&self, xs: &Tensor) -> Tensor {
        let mut shape = xs.size();
        let in_dim = shape[shape.len() - 1];
        *shape.last_mut().expect("at least one dimension") = self.weight.size()[1];
        self.bias
            .addmm(&xs.reshape([-1, in_dim]), &self.weight)
            .view(shape.as_slice())
    }
}

/// Which keys each query may attend to.
#[derive(Debug)]
enum AttentionMask {
    /// Every key observed: plain causal attention (`is_causal` when several queries).
    Causal(bool),
    /// `(rows, 1, len, keys)` bool: true = attend.
    Explicit(Tensor),
}

/// One GPT-2 block (`transformer.h.{i}`): pre-norm causal self-attention and MLP.
#[derive(Debug)]
struct Block {
    ln_1: nn::LayerNorm,
    c_attn: Conv1D,
    attn_proj: Conv1D,
    ln_2: nn::LayerNorm,
    c_fc: Conv1D,
    mlp_proj: Conv1D,
    n_head: i64,
    act: Activation,
    attn_dropout: f64,
    resid_dropout: f64,
}

impl Block {
    fn new(p: nn::Path, cfg: &Gpt2Config, act: Activation) -> Self {
        let d = cfg.n_embd;
        let ln = nn::LayerNormConfig {
            eps: cfg.layer_norm_epsilon,
            ..Default::default()
        };
        Block {
            ln_1: nn::layer_norm(&p / "ln_1", vec![d], ln),
            c_attn: Conv1D::new(&p / "attn" / "c_attn", d, 3 * d),
            attn_proj: Conv1D::new(&p / "attn" / "c_proj", d, d),
            ln_2: nn::layer_norm(&p / "ln_2", vec![d], ln),
            c_fc: Conv1D::new(&p / "mlp" / "c_fc", d, cfg.n_inner()),
            mlp_proj: Conv1D::new(&p / "mlp" / "c_proj", cfg.n_inner(), d),
            n_head: cfg.n_head,
            act,
            attn_dropout: cfg.attn_pdrop,
            resid_dropout: cfg.resid_pdrop,
        }
    }

    /// `xs` `(rows, len, d)`; with `cache`, this chunk's keys and values are appended to the
    /// cached ones.
    fn forward_t(
        &self,
        xs: &Tensor,
        mask: &AttentionMask,
        cache: Option<&mut KeyValueCache>,
        train: bool,
    ) -> Tensor {
        let (rows, len, d) = xs.size3().unwrap();
        let head_dim = d / self.n_head;
        let heads = |t: &Tensor| t.view([rows, len, self.n_head, head_dim]).transpose(1, 2);
        let qkv = self.c_attn.forward(&self.ln_1.forward(xs)).split(d, 2);
        let (q, mut k, mut v) = (heads(&qkv[0]), heads(&qkv[1]), heads(&qkv[2]));
        if let Some(cache) = cache {
            (k, v) = cache.append(&k, &v);
        }
        let mask = match mask {
            AttentionMask::Causal(true) => Mask::Causal,
            AttentionMask::Causal(false) => Mask::None,
            AttentionMask::Explicit(allowed) => Mask::Allowed(allowed),
        };
        let attended = scaled_dot_product(&q, &k, &v, mask, self.attn_dropout, None, train)
            .transpose(1, 2)
            .reshape([rows, len, d]);
        let xs = dropout(
            &self.attn_proj.forward(&attended),
            self.resid_dropout,
            train,
        ) + xs;
        let hidden = self.act.apply(self.c_fc.forward(&self.ln_2.forward(&xs)));
        &xs + dropout(&self.mlp_proj.forward(&hidden), self.resid_dropout, train)
    }
}

/// The causal Chronos network (GPT-2 with an LM head).
#[derive(Debug)]
pub struct ChronosGpt2 {
    pub config: Gpt2Config,
    pub chronos: ChronosConfig,
    wte: Tensor,
    wpe: Tensor,
    blocks: Vec<Block>,
    ln_f: nn::LayerNorm,
    /// `(vocab, d)`; `None` when tied to `wte`.
    lm_head: Option<Tensor>,
    embd_dropout: f64,
}

impl ChronosGpt2 {
    /// Creates the variables (zero-initialised) under `p`, the root of the VarStore.
    pub fn new(p: &nn::Path, config: &Gpt2Config, chronos: &ChronosConfig) -> Self {
        let act = config
            .activation()
            .expect("activation_function is validated when the config is read");
        let t = p / "transformer";
        let d = config.n_embd;
        ChronosGpt2 {
            config: config.clone(),
            chronos: chronos.clone(),
            wte: (&t / "wte").var("weight", &[config.vocab_size, d], nn::Init::Const(0.0)),
            wpe: (&t / "wpe").var("weight", &[config.n_positions, d], nn::Init::Const(0.0)),
            blocks: (0..config.n_layer)
                .map(|i| Block::new(&t / "h" / i, config, act))
                .collect(),
            ln_f: nn::layer_norm(
                &t / "ln_f",
                vec![d],
                nn::LayerNormConfig {
                    eps: config.layer_norm_epsilon,
                    ..Default::default()
                },
            ),
            lm_head: (!config.tie_word_embeddings).then(|| {
                (p / "lm_head").var("weight", &[config.vocab_size, d], nn::Init::Const(0.0))
            }),
            embd_dropout: config.embd_pdrop,
        }
    }

    /// HF's position ids for (left-padded) `mask` `(rows, len)`: the count of observed tokens
    /// before each one, 0 at masked positions.
    pub fn position_ids(mask: &Tensor) -> Tensor {
        let positions = mask.to_kind(Kind::Int64).cumsum(-1, Kind::Int64) - 1;
        positions.masked_fill(&mask.logical_not(), 0)
    }

    /// Hidden states `(rows, len, d)` of `ids` at `positions` (both `(rows, len)`), attending
    /// causally to the cached tokens and themselves where `key_mask` `(rows, cached + len)` is
    /// true.
    fn forward_cached(
        &self,
        ids: &Tensor,
        positions: &Tensor,
        key_mask: &Tensor,
        caches: Option<&mut [KeyValueCache]>,
        train: bool,
    ) -> Tensor {
        let (rows, len) = ids.size2().unwrap();
        let keys = key_mask.size()[1];
        // As HF: no mask when every key is observed (causal by construction for one query, by
        // `is_causal` for several), else a boolean mask, under which SDPA gives a query that
        // sees no observed key (left padding) a zero output.
        let mask = if key_mask.all().int64_value(&[]) != 0 {
            AttentionMask::Causal(len > 1)
        } else {
            let past = keys - len;
            let device = ids.device();
            // Query i (at absolute step past + i) sees the observed keys 0..=past + i.
            let query = Tensor::arange(len, (Kind::Int64, device)).unsqueeze(1) + past;
            let key = Tensor::arange(keys, (Kind::Int64, device)).unsqueeze(0);
            let allowed = key
                .le_tensor(&query)
                .unsqueeze(0)
                .logical_and(&key_mask.view([rows, 1, keys]));
            AttentionMask::Explicit(allowed.unsqueeze(1))
        };
        let embeds = Tensor::embedding(&self.wte, ids, -1, false, false)
            + Tensor::embedding(&self.wpe, positions, -1, false, false);
        let mut xs = dropout(&embeds, self.embd_dropout, train);
        match caches {
            Some(caches) => {
                for (block, cache) in self.blocks.iter().zip(caches.iter_mut()) {
                    xs = block.forward_t(&xs, &mask, Some(cache), train);
                }
            }
            None => {
                for block in &self.blocks {
                    xs = block.forward_t(&xs, &mask, None, train);
                }
            }
        }
        self.ln_f.forward(&xs)
    }

    /// Vocabulary logits `(..., vocab)` of hidden states `(..., d)`.
    pub fn logits(&self, hidden: &Tensor) -> Tensor {
        hidden.linear(self.lm_head.as_ref().unwrap_or(&self.wte), None::<Tensor>)
    }

    /// Teacher-forced logits `(batch, len, vocab)` of `ids` with `mask` (both `(batch, len)`),
    /// position ids counted over the observed tokens (as HF's `generate` derives them for
    /// left-padded inputs; see [`ChronosGpt2::loss`] for HF's plain forward).
    pub fn forward_t(&self, ids: &Tensor, mask: &Tensor, train: bool) -> Tensor {
        let hidden = self.forward_cached(ids, &Self::position_ids(mask), mask, None, train);
        self.logits(&hidden)
    }

    /// Samples `sampling.num_samples` continuations of `horizon` tokens for each series of
    /// `ids`/`mask` `(batch, len)`: `(batch, num_samples, horizon)` int64. The context is run
    /// once per series; its keys/values are then shared by the series' sample paths.
    pub fn generate(
        &self,
        ids: &Tensor,
        mask: &Tensor,
        horizon: i64,
        sampling: &SamplingConfig,
    ) -> Tensor {
        let (batch, len) = ids.size2().unwrap();
        let samples = sampling.num_samples;
        let rows = batch * samples;
        let eos = self.chronos.eos_token_id;
        let mut caches: Vec<KeyValueCache> = (0..self.blocks.len())
            .map(|_| KeyValueCache::new(len + horizon))
            .collect();
        let hidden = self.forward_cached(
            ids,
            &Self::position_ids(mask),
            mask,
            Some(&mut caches),
            false,
        );
        let logits = self
            .logits(&hidden.select(1, len - 1))
            .to_kind(Kind::Float)
            .repeat_interleave_self_int(samples, 0, None);
        for cache in &mut caches {
            cache.repeat_rows(samples);
        }
        let mut key_mask = mask.repeat_interleave_self_int(samples, 0, None);
        // Generated tokens continue from the context's last position id (as HF's generate).
        let first_position = Self::position_ids(mask)
            .narrow(1, len - 1, 1)
            .repeat_interleave_self_int(samples, 0, None)
            + 1;
        let mut token = sampling.sample(&logits, eos).unsqueeze(1);
        let mut tokens = vec![token.shallow_clone()];
        let ones = Tensor::ones([rows, 1], (Kind::Bool, ids.device()));
        for step in 1..horizon {
            key_mask = Tensor::cat(&[&key_mask, &ones], 1);
            let position = &first_position + (step - 1);
            let hidden =
                self.forward_cached(&token, &position, &key_mask, Some(&mut caches), false);
            let logits = self.logits(&hidden.squeeze_dim(1)).to_kind(Kind::Float);
            token = sampling.sample(&logits, eos).unsqueeze(1);
            tokens.push(token.shallow_clone());
        }
        Tensor::cat(&tokens, 1).view([batch, samples, horizon])
    }

    /// The `num_items_in_batch` transformers 5.24's `Trainer` counts for `labels` `(batch, len)`:
    /// every label that is not [`IGNORE_INDEX`], each row's first one included although the
    /// shifted loss never uses it (its causal-LM rule, `labels[..., 1:]`, keys on
    /// `model.loss_type`, which is None for `GPT2LMHeadModel`).
    pub fn num_items(labels: &Tensor) -> i64 {
        labels.ne(IGNORE_INDEX).sum(Kind::Int64).int64_value(&[])
    }

    /// HF `GPT2LMHeadModel(input_ids, attention_mask, labels).loss` (upstream train.py's causal
    /// path): cross-entropy of the logits at each position against the next position's label,
    /// over `labels` `(batch, len)` int64 ([`IGNORE_INDEX`] = ignored; upstream: the input ids
    /// with -100 wherever the mask is 0). Positions are `0..len` whatever the mask, as in HF's
    /// forward without `position_ids` (upstream moves the padding to the right, so the observed
    /// tokens come first); `mask` (nonzero = observed) hides keys. Reduction as HF's
    /// `ForCausalLMLoss`: the mean over the non-ignored shifted labels, or with
    /// `num_items_in_batch` their sum divided by it (transformers' `Trainer` always passes it for
    /// this model, [`ChronosGpt2::num_items`] summed over the step's micro-batches, and then does
    /// not divide by the accumulation steps). Scalar f32; `train` enables dropout.
    pub fn loss(
        &self,
        ids: &Tensor,
        mask: &Tensor,
        labels: &Tensor,
        num_items_in_batch: Option<i64>,
        train: bool,
    ) -> Result<Tensor> {
        if ids.dim() != 2 || mask.size() != ids.size() || labels.size() != ids.size() {
            return Err(ChronosError::InvalidInput(format!(
                "input ids {:?}, attention mask {:?} and labels {:?} must all be (batch, len)",
                ids.size(),
                mask.size(),
                labels.size()
            )));
        }
        let (batch, len) = ids.size2()?;
        if len == 0 || len > self.config.n_positions {
            return Err(ChronosError::InvalidInput(format!(
                "sequence length {len} is not in 1..={} (the model's n_positions)",
                self.config.n_positions
            )));
        }
        let positions = Tensor::arange(len, (Kind::Int64, ids.device())).unsqueeze(0);
        let hidden = self.forward_cached(ids, &positions, &mask.ne(0), None, train);
        let logits = self.logits(&hidden).to_kind(Kind::Float);
        let vocab = logits.size()[2];
        // F.pad(labels, (0, 1), value=-100)[..., 1:]
        let ignored = Tensor::full([batch, 1], IGNORE_INDEX, (Kind::Int64, labels.device()));
        let shifted = Tensor::cat(
            &[labels.to_kind(Kind::Int64).narrow(1, 1, len - 1), ignored],
            1,
        );
        let reduction = match num_items_in_batch {
            Some(_) => tch::Reduction::Sum,
            None => tch::Reduction::Mean,
        };
        let loss = logits.view([-1, vocab]).cross_entropy_loss::<Tensor>(
            &shifted.view([-1]),
            None,
            reduction,
            IGNORE_INDEX,
            0.0,
        );
        Ok(match num_items_in_batch {
            Some(n) => loss / n as f64,
            None => loss,
        })
    }
}
