//! Chronos-T5: a T5 encoder-decoder over tokenised series (HF `T5ForConditionalGeneration`),
//! with incremental sampling of forecast paths.
//!
//! Cross-attention keys and values are computed once per series and shared by all of its sample
//! paths (upstream repeats the encoder states for every sample and projects them again).

use tch::nn;
use tch::{Kind, Tensor};

use crate::config::T5Config;
use crate::error::{ChronosError, Result};
use crate::sampling::SamplingConfig;
use crate::t5::Stack;
use crate::tokenizer::ChronosConfig;

/// Keys that transformers writes as tied copies of `shared.weight`.
pub const TIED_ALIASES: [(&str, &str); 3] = [
    ("encoder.embed_tokens.weight", "shared.weight"),
    ("decoder.embed_tokens.weight", "shared.weight"),
    ("lm_head.weight", "shared.weight"),
];

/// Label value that the losses ignore (PyTorch's `ignore_index`, HF's convention).
pub const IGNORE_INDEX: i64 = -100;

/// The Chronos-T5 network. Parameter paths mirror the HF state dict.
#[derive(Debug)]
pub struct ChronosT5 {
    pub config: T5Config,
    pub chronos: ChronosConfig,
    shared: Tensor,
    encoder: Stack,
    decoder: Stack,
    /// `(vocab, d_model)`; `None` when tied to `shared`.
    lm_head: Option<Tensor>,
    /// Multiply decoder outputs by `d_model^-0.5` before the LM head (tied T5).
    scale_outputs: bool,
}

impl ChronosT5 {
    /// Creates the variables (zero-initialised) under `p`, the root of the VarStore.
    pub fn new(p: &nn::Path, config: &T5Config, chronos: &ChronosConfig) -> Self {
        let tied = config.tie_word_embeddings;
        ChronosT5 {
            config: config.clone(),
            chronos: chronos.clone(),
            shared: (p / "shared").var(
                "weight",
                &[config.vocab_size, config.d_model],
                nn::Init::Const(0.0),
            ),
            encoder: Stack::encoder(p / "encoder", config),
            decoder: Stack::decoder(p / "decoder", config),
            lm_head: (!tied).then(|| {
                (p / "lm_head").var(
                    "weight",
                    &[config.vocab_size, config.d_model],
                    nn::Init::Const(0.0),
                )
            }),
            scale_outputs: config.scale_decoder_outputs(),
        }
    }

    /// See [`Stack::pack_for_inference`].
    pub fn pack_for_inference(&mut self) {
        tch::no_grad(|| {
            self.encoder.pack_for_inference();
            self.decoder.pack_for_inference();
        });
    }

    fn embed(&self, ids: &Tensor) -> Tensor {
        Tensor::embedding(&self.shared, ids, -1, false, false)
    }

    /// Encoder states `(batch, len, d_model)` of token `ids` `(batch, len)` with `mask`.
    pub fn encode(&self, ids: &Tensor, mask: &Tensor, train: bool) -> Tensor {
        self.encoder.encode(&self.embed(ids), mask, train)
    }

    /// Vocabulary logits `(rows, len, vocab)` of decoder outputs `(rows, len, d_model)`.
    pub fn logits(&self, hidden: &Tensor) -> Tensor {
        let hidden = if self.scale_outputs {
            hidden * (self.config.d_model as f64).powf(-0.5)
        } else {
            hidden.shallow_clone()
        };
        hidden.linear(
            self.lm_head.as_ref().unwrap_or(&self.shared),
            None::<Tensor>,
        )
    }

    /// Teacher-forced logits `(batch, len, vocab)` for decoder inputs `decoder_ids`
    /// `(batch, len)` (the labels shifted right behind the start token).
    pub fn forward_t(
        &self,
        ids: &Tensor,
        mask: &Tensor,
        decoder_ids: &Tensor,
        train: bool,
    ) -> Tensor {
        let states = self.encode(ids, mask, train);
        let hidden = self
            .decoder
            .decode(&self.embed(decoder_ids), &states, mask, train);
        self.logits(&hidden)
    }

    /// Samples `sampling.num_samples` paths of `horizon` tokens for each series:
    /// `(batch, num_samples, horizon)` int64, from encoder states `(batch, len, d_model)`.
    /// Rows are series-major (`series * num_samples + sample`), as HF's expanded batch.
    pub fn generate(
        &self,
        states: &Tensor,
        mask: &Tensor,
        horizon: i64,
        sampling: &SamplingConfig,
    ) -> Tensor {
        let batch = states.size()[0];
        let rows = batch * sampling.num_samples;
        let start = self.config.decoder_start_token_id.unwrap_or(0);
        let mut cache = self.decoder.start_decoding(states, mask, horizon);
        let mut token = Tensor::full([rows, 1], start, (Kind::Int64, states.device()));
        let mut tokens = Vec::with_capacity(horizon as usize);
        for _ in 0..horizon {
            let hidden = self.decoder.decode_step(&self.embed(&token), &mut cache);
            let logits = self.logits(&hidden).squeeze_dim(1).to_kind(Kind::Float);
            token = sampling
                .sample(&logits, self.chronos.eos_token_id)
                .unsqueeze(1);
            tokens.push(token.shallow_clone());
        }
        Tensor::cat(&tokens, 1).view([batch, sampling.num_samples, horizon])
    }

    /// HF `_shift_right`: decoder inputs `(batch, len)` for `labels` `(batch, len)` int64, the
    /// labels shifted one step right behind `decoder_start_token_id`, ignored labels
    /// ([`IGNORE_INDEX`]) replaced by `pad_token_id`.
    pub fn shift_right(&self, labels: &Tensor) -> Result<Tensor> {
        let missing = |key: &str| {
            ChronosError::InvalidInput(format!(
                "the T5 config has no {key}, needed to build decoder inputs from labels"
            ))
        };
        let start = self
            .config
            .decoder_start_token_id
            .ok_or_else(|| missing("decoder_start_token_id"))?;
        let pad = self
            .config
            .pad_token_id
            .ok_or_else(|| missing("pad_token_id"))?;
        let (batch, len) = labels.size2()?;
        let starts = Tensor::full([batch, 1], start, (Kind::Int64, labels.device()));
        let shifted = Tensor::cat(&[starts, labels.narrow(1, 0, len - 1)], 1);
        Ok(shifted.masked_fill(&shifted.eq(IGNORE_INDEX), pad))
    }

    /// HF `T5ForConditionalGeneration(input_ids, attention_mask, labels).loss`: token-level
    /// cross-entropy of the teacher-forced logits against `labels` `(batch, label_len)` int64
    /// (upstream train.py: the tokenizer's `label_input_transform`, missing values set to
    /// [`IGNORE_INDEX`]), averaged over the labels that are not ignored. `ids`/`mask` `(batch,
    /// len)` are the encoder inputs (mask: nonzero = observed). Scalar in the model dtype; `train`
    /// enables dropout. All labels ignored gives NaN, as in PyTorch.
    pub fn loss(
        &self,
        ids: &Tensor,
        mask: &Tensor,
        labels: &Tensor,
        train: bool,
    ) -> Result<Tensor> {
        if ids.dim() != 2 || mask.size() != ids.size() || labels.dim() != 2 {
            return Err(ChronosError::InvalidInput(format!(
                "input ids {:?}, attention mask {:?} and labels {:?} must be (batch, len) alike",
                ids.size(),
                mask.size(),
                labels.size()
            )));
        }
        if labels.size()[0] != ids.size()[0] || labels.size()[1] == 0 {
            return Err(ChronosError::InvalidInput(format!(
                "labels {:?} must be (batch, len >= 1) with the inputs' batch {}",
                labels.size(),
                ids.size()[0]
            )));
        }
        let labels = labels.to_kind(Kind::Int64);
        let decoder_ids = self.shift_right(&labels)?;
        let logits = self.forward_t(ids, &mask.ne(0), &decoder_ids, train);
        let vocab = logits.size()[2];
        Ok(logits.view([-1, vocab]).cross_entropy_loss::<Tensor>(
            &labels.view([-1]),
            None,
            tch::Reduction::Mean,
            IGNORE_INDEX,
            0.0,
        ))
    }
}
