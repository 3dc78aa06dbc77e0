//! Token sampling with the semantics of HF `generate(do_sample=True)` as Chronos calls it:
//! EOS suppressed (`min_new_tokens` = `max_new_tokens`), then temperature, top-k and top-p
//! warpers in that order, then one `torch.multinomial` draw per row from libtorch's global
//! generator, so a seeded run draws the same tokens as Python wherever the logits agree.

use tch::{Kind, Tensor};

use crate::error::{ChronosError, Result};

/// Sampling settings (upstream `ChronosConfig` defaults, overridable per call).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SamplingConfig {
    /// Sample paths per series.
    pub num_samples: i64,
    /// Logits are divided by it (1 = unchanged); must be positive.
    pub temperature: f64,
    /// Keep the `top_k` most likely tokens (0 = all).
    pub top_k: i64,
    /// Keep the smallest set of tokens with probability mass above `top_p` (1 = all).
    pub top_p: f64,
}

impl SamplingConfig {
    pub fn validate(&self) -> Result<()> {
        let bad = |what: String| Err(ChronosError::InvalidInput(what));
        if self.num_samples < 1 {
            return bad(format!(
                "num_samples must be at least 1, got {}",
                self.num_samples
            ));
        }
        if !(self.temperature > 0.0 && self.temperature.is_finite()) {
            return bad(format!(
                "temperature must be positive, got {}",
                self.temperature
            ));
        }
        if self.top_k < 0 {
            return bad(format!("top_k must be >= 0, got {}", self.top_k));
        }
        if !(0.0..=1.0).contains(&self.top_p) {
            return bad(format!("top_p must be in [0, 1], got {}", self.top_p));
        }
        Ok(())
    }

    /// HF's logits processing: `logits` `(rows, vocab)` f32 with `eos` forbidden, then the
    /// warpers. Returns the processed scores (filtered entries at -inf).
    pub fn process(&self, logits: &Tensor, eos: i64) -> Tensor {
        let vocab = logits.size()[1];
        let is_eos = Tensor::arange(vocab, (Kind::Int64, logits.device())).eq(eos);
        let mut scores = logits.masked_fill(&is_eos, f64::NEG_INFINITY);
        if self.temperature != 1.0 {
            scores /= self.temperature;
        }
        if self.top_k != 0 {
            let k = self.top_k.min(vocab);
            let (top, _) = scores.topk(k, -1, true, true);
            let threshold = top.narrow(-1, k - 1, 1);
            scores = scores.masked_fill(&scores.lt_tensor(&threshold), f64::NEG_INFINITY);
        }
        if self.top_p < 1.0 {
            let (sorted, indices) = scores.sort(-1, false);
            let cumulative = sorted.softmax(-1, None::<Kind>).cumsum(-1, None::<Kind>);
            let remove = cumulative.le(1.0 - self.top_p);
            // Always keep the most likely token.
            let _ = remove.narrow(-1, vocab - 1, 1).fill_(0);
            let remove = remove.scatter(1, &indices, &remove);
            scores = scores.masked_fill(&remove, f64::NEG_INFINITY);
        }
        scores
    }

    /// One token per row of `logits` `(rows, vocab)` f32: `(rows,)` int64.
    pub fn sample(&self, logits: &Tensor, eos: i64) -> Tensor {
        self.process(logits, eos)
            .softmax(-1, None::<Kind>)
            .multinomial(1, false)
            .squeeze_dim(1)
    }
}
