//! What the data pipeline makes: lengths, filters, shuffling, batching, the model family.

use serde::{Deserialize, Serialize};

use super::error::TrainDataError;
use crate::tokenizer::ChronosConfig;

/// Upstream `ChronosDataset`'s `drop_prob`: each entry occurrence loses its values with a
/// probability drawn uniformly in `[0, DROP_PROB)`.
pub const DROP_PROB: f64 = 0.2;

/// The model family the batches are for.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum Mode {
    /// Chronos-T5 (`model_type: seq2seq`): token ids of the context (EOS appended when
    /// `use_eos_token`), labels of the future with -100 where it is missing; random
    /// missing values injected with probability up to `drop_prob` (upstream: 0.2).
    Seq2Seq {
        tokenizer: ChronosConfig,
        drop_prob: f64,
    },
    /// The causal GPT-2 variant (`model_type: causal`): series imputed with their last value, no
    /// missing values injected (as upstream, which forces `drop_prob = 0` for causal models),
    /// context and future tokens in one sequence with the padding moved to the right.
    Causal { tokenizer: ChronosConfig },
    /// Chronos-Bolt: raw values (NaN = missing). Upstream publishes no Bolt training script; Bolt
    /// takes missing values natively (NaN mask in the input, NaN targets out of the loss), which
    /// is what upstream's drop injection trains for, so it is kept (`drop_prob` 0.2 by default).
    /// With `skip_constant_past`, instances whose observed past is constant are left out (see
    /// [`super::instance::Instance::has_varying_past`]); with `max_scaled_future`, those whose
    /// future leaves the past's mean by more than that many standard deviations (see
    /// [`super::instance::Instance::max_scaled_future`]).
    Bolt {
        drop_prob: f64,
        #[serde(default)]
        skip_constant_past: bool,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        max_scaled_future: Option<f64>,
    },
}

impl Mode {
    /// The probability bound of the missing-value injection (0 for causal models).
    pub fn drop_prob(&self) -> f64 {
        match self {
            Mode::Seq2Seq { drop_prob, .. } | Mode::Bolt { drop_prob, .. } => *drop_prob,
            Mode::Causal { .. } => 0.0,
        }
    }

    /// Whether instances with a constant observed past are left out (Bolt's option).
    pub fn skips_constant_past(&self) -> bool {
        matches!(
            self,
            Mode::Bolt {
                skip_constant_past: true,
                ..
            }
        )
    }

    /// The bound on Bolt's scaled future, if any.
    pub fn max_scaled_future(&self) -> Option<f64> {
        match self {
            Mode::Bolt {
                max_scaled_future, ..
            } => *max_scaled_future,
            _ => None,
        }
    }

    pub fn tokenizer(&self) -> Option<&ChronosConfig> {
        match self {
            Mode::Seq2Seq { tokenizer, .. } | Mode::Causal { tokenizer } => Some(tokenizer),
            Mode::Bolt { .. } => None,
        }
    }
}

/// This process's share of each global batch under data parallelism: every rank runs the same
/// stream and takes rows `rank * batch_size .. (rank + 1) * batch_size` of each global batch of
/// `world_size * batch_size` instances (what one process would train on with the global batch).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Shard {
    pub rank: usize,
    pub world_size: usize,
}

impl Default for Shard {
    fn default() -> Self {
        Shard {
            rank: 0,
            world_size: 1,
        }
    }
}

/// Options of [`super::TrainingData`]. Everything but `threads` and `prefetch` (and
/// `shard.rank`) defines the stream; those only change how fast it comes.
#[derive(Debug, Clone, PartialEq)]
pub struct DataOptions {
    /// Past window of each instance (`past_length` of the splitter).
    pub context_length: usize,
    pub prediction_length: usize,
    /// Fewest observed-or-missing values before a split point (the sampler's `min_past`).
    /// Taken literally (upstream turns 0 into `prediction_length` via `min_past or ...`).
    pub min_past: usize,
    /// Entries with a larger proportion of NaN are dropped (upstream 0.9; 0.1 for GPT-2).
    pub max_missing_prop: f64,
    /// Instances held by the pseudo-shuffle buffer (upstream's default 100, configs 100 000);
    /// 0 or 1 = no shuffling.
    pub shuffle_buffer_length: usize,
    /// Rows of each batch of this process.
    pub batch_size: usize,
    pub seed: u64,
    pub mode: Mode,
    /// Worker threads that cut instances (rayon; the batches do not depend on it). One keeps
    /// up with any training step (~50 000 instances/s at context 512 with tokenising, on top of
    /// the producer and reader threads); more help replays and very long contexts.
    pub threads: usize,
    /// Batches made ahead of the consumer (bounded channel).
    pub prefetch: usize,
    pub shard: Shard,
}

impl DataOptions {
    /// Upstream `train.py`'s defaults for the rest: context 512, horizon 64, `min_past` 64,
    /// `max_missing_prop` 0.9, shuffle buffer 100, batch 32, seed 0; 1 cutting thread, 4 batches ahead.
    pub fn new(mode: Mode) -> Self {
        DataOptions {
            context_length: 512,
            prediction_length: 64,
            min_past: 64,
            max_missing_prop: 0.9,
            shuffle_buffer_length: 100,
            batch_size: 32,
            seed: 0,
            mode,
            threads: 1,
            prefetch: 4,
            shard: Shard::default(),
        }
    }

    /// Shortest series kept: `min_past + prediction_length`.
    pub fn min_length(&self) -> usize {
        self.min_past + self.prediction_length
    }

    /// Instances per global batch: `batch_size * world_size`.
    pub fn global_batch_size(&self) -> usize {
        self.batch_size * self.shard.world_size
    }

    pub(crate) fn validate(&self) -> Result<(), TrainDataError> {
        let err = |m: String| Err(TrainDataError::InvalidOptions(m));
        for (name, value) in [
            ("context_length", self.context_length),
            ("prediction_length", self.prediction_length),
            ("batch_size", self.batch_size),
            ("threads", self.threads),
            ("prefetch", self.prefetch),
            ("shard.world_size", self.shard.world_size),
        ] {
            if value == 0 {
                return err(format!("{name} must be at least 1"));
            }
        }
        if self.shard.rank >= self.shard.world_size {
            return err(format!(
                "shard.rank {} must be below shard.world_size {}",
                self.shard.rank, self.shard.world_size
            ));
        }
        if !(0.0..=1.0).contains(&self.max_missing_prop) {
            return err(format!(
                "max_missing_prop must be in [0, 1], got {}",
                self.max_missing_prop
            ));
        }
        let drop_prob = self.mode.drop_prob();
        if !(0.0..=1.0).contains(&drop_prob) {
            return err(format!("drop_prob must be in [0, 1], got {drop_prob}"));
        }
        if let Some(tok) = self.mode.tokenizer() {
            tok.validate().map_err(TrainDataError::InvalidOptions)?;
            let want = match self.mode {
                Mode::Seq2Seq { .. } => "seq2seq",
                _ => "causal",
            };
            if tok.model_type != want {
                return err(format!(
                    "tokenizer model_type '{}' does not match the {want} mode",
                    tok.model_type
                ));
            }
            for (name, tok_value, value) in [
                ("context_length", tok.context_length, self.context_length),
                (
                    "prediction_length",
                    tok.prediction_length,
                    self.prediction_length,
                ),
            ] {
                if usize::try_from(tok_value).ok() != Some(value) {
                    return err(format!(
                        "tokenizer {name} {tok_value} differs from the data's {name} {value}"
                    ));
                }
            }
        }
        Ok(())
    }
}

/// Normalised mixing probabilities (uniform when `None`), checked against the paths.
pub(crate) fn normalise_probabilities(
    count: usize,
    probabilities: Option<&[f64]>,
) -> Result<Vec<f64>, TrainDataError> {
    let err = |m: String| Err(TrainDataError::InvalidOptions(m));
    if count == 0 {
        return err("no training data paths".into());
    }
    let Some(p) = probabilities else {
        return Ok(vec![1.0 / count as f64; count]);
    };
    if p.len() != count {
        return err(format!(
            "{} probabilities for {count} training data paths",
            p.len()
        ));
    }
    if let Some((i, v)) = p
        .iter()
        .enumerate()
        .find(|(_, v)| !v.is_finite() || **v < 0.0)
    {
        return err(format!(
            "probability {i} is {v} (must be finite and non-negative)"
        ));
    }
    let total: f64 = p.iter().sum();
    if total <= 0.0 {
        return err("the probabilities sum to 0".into());
    }
    Ok(p.iter().map(|v| v / total).collect())
}
