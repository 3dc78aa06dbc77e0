//! Batches as the models take them (upstream `ChronosDataset.to_hf_format` for the tokenised
//! families, raw values for Chronos-Bolt).

use tch::Tensor;

use super::error::TrainDataError;
use super::instance::Instance;
use super::options::Mode;
use crate::tokenizer::{ChronosConfig, MeanScaleUniformBins};

/// Label value the loss ignores (Hugging Face's `-100`).
pub const IGNORE_INDEX: i64 = -100;

/// One batch of `B` instances, on the CPU. `C` = context length, `H` = prediction length,
/// `E` = 1 when the tokenizer uses EOS, else 0.
#[derive(Debug)]
pub enum Batch {
    /// Chronos-T5 and the causal variant.
    ///
    /// * seq2seq: `input_ids` `(B, C + E)` int64 (pad id where the context is missing, then
    ///   EOS), `attention_mask` `(B, C + E)` bool (observed values and EOS), `labels`
    ///   `(B, H + E)` int64 with -100 where the future is missing.
    /// * causal: one sequence `(B, C + H + E)`: observed context tokens, future tokens (and EOS),
    ///   then the left padding moved to the right; `labels` equal `input_ids` with -100 wherever
    ///   `attention_mask` is false, and `input_ids` hold the pad id there.
    Tokens {
        input_ids: Tensor,
        attention_mask: Tensor,
        labels: Tensor,
    },
    /// Chronos-Bolt: `context` `(B, C)` f32 left-padded with NaN (NaN = missing), `target`
    /// `(B, H)` f32 (NaN = missing).
    Values { context: Tensor, target: Tensor },
}

impl Batch {
    /// Rows in the batch.
    pub fn len(&self) -> usize {
        let t = match self {
            Batch::Tokens { input_ids, .. } => input_ids,
            Batch::Values { context, .. } => context,
        };
        t.size().first().map_or(0, |&b| b as usize)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Turns instances into a [`Batch`] for one [`Mode`].
#[derive(Debug)]
pub enum BatchBuilder {
    Seq2Seq(MeanScaleUniformBins),
    Causal(MeanScaleUniformBins, ChronosConfig),
    Bolt,
}

impl BatchBuilder {
    pub fn new(mode: &Mode) -> Result<Self, TrainDataError> {
        if let Some(tok) = mode.tokenizer() {
            tok.validate().map_err(TrainDataError::InvalidOptions)?;
        }
        Ok(match mode {
            Mode::Seq2Seq { tokenizer, .. } => {
                BatchBuilder::Seq2Seq(MeanScaleUniformBins::new(tokenizer))
            }
            Mode::Causal { tokenizer } => {
                BatchBuilder::Causal(MeanScaleUniformBins::new(tokenizer), tokenizer.clone())
            }
            Mode::Bolt { .. } => BatchBuilder::Bolt,
        })
    }

    /// The batch of `instances` (all of one context and prediction length, at least one).
    pub fn build(&self, instances: &[Instance]) -> Result<Batch, TrainDataError> {
        let Some(first) = instances.first() else {
            return Err(TrainDataError::InvalidOptions("an empty batch".into()));
        };
        let (c, h) = (
            first.context_length,
            first.values.len() - first.context_length,
        );
        if let Some(i) = instances
            .iter()
            .position(|x| x.context_length != c || x.values.len() != c + h)
        {
            return Err(TrainDataError::InvalidOptions(format!(
                "instance {i} has other window lengths than instance 0 ({c} + {h})"
            )));
        }
        let b = instances.len() as i64;
        let stack = |part: fn(&Instance) -> &[f32], len: usize| {
            let flat: Vec<f32> = instances.iter().flat_map(|x| part(x).to_vec()).collect();
            Tensor::from_slice(&flat).view([b, len as i64])
        };
        let past = stack(Instance::past, c);
        let future = stack(Instance::future, h);
        Ok(match self {
            BatchBuilder::Bolt => Batch::Values {
                context: past,
                target: future,
            },
            BatchBuilder::Seq2Seq(tok) => {
                let (context, scale) = tok.context_input_transform(&past);
                let label = tok.label_input_transform(&future, &scale);
                Batch::Tokens {
                    input_ids: context.ids,
                    attention_mask: context.mask,
                    labels: label
                        .ids
                        .masked_fill(&label.mask.logical_not(), IGNORE_INDEX),
                }
            }
            BatchBuilder::Causal(tok, config) => {
                let (context, scale) = tok.context_input_transform(&past);
                let label = tok.label_input_transform(&future, &scale);
                causal_layout(instances, &context, &label, config.pad_token_id)?
            }
        })
    }
}

/// Upstream's causal layout: per row `[observed context | future (+EOS) | padding]`, labels a
/// copy of the ids with -100 where the mask is false, ids the pad token there.
fn causal_layout(
    instances: &[Instance],
    context: &crate::tokenizer::Tokens,
    label: &crate::tokenizer::Tokens,
    pad_token_id: i64,
) -> Result<Batch, TrainDataError> {
    let rows = |t: &Tensor| -> Result<(usize, Vec<i64>), TrainDataError> {
        let len = t.size()[1] as usize;
        Ok((
            len,
            Vec::<i64>::try_from(t.to_kind(tch::Kind::Int64).flatten(0, -1))?,
        ))
    };
    let (c, ctx_ids) = rows(&context.ids)?;
    let (_, ctx_mask) = rows(&context.mask)?;
    let (h, lab_ids) = rows(&label.ids)?;
    let (_, lab_mask) = rows(&label.mask)?;
    let len = c + h;
    let mut ids = Vec::with_capacity(instances.len() * len);
    let mut mask = Vec::with_capacity(instances.len() * len);
    for (r, instance) in instances.iter().enumerate() {
        let pad = instance.pad.min(c);
        let (cr, lr) = (r * c, r * h);
        let order = (cr + pad..cr + c)
            .map(|j| (ctx_ids[j], ctx_mask[j]))
            .chain((lr..lr + h).map(|j| (lab_ids[j], lab_mask[j])))
            .chain((cr..cr + pad).map(|j| (ctx_ids[j], ctx_mask[j])));
        for (id, m) in order {
            ids.push(id);
            mask.push(m != 0);
        }
    }
    let shape = [instances.len() as i64, len as i64];
    let masked = |fill: i64| -> Vec<i64> {
        ids.iter()
            .zip(&mask)
            .map(|(&id, &m)| if m { id } else { fill })
            .collect()
    };
    Ok(Batch::Tokens {
        input_ids: Tensor::from_slice(&masked(pad_token_id)).view(shape),
        attention_mask: Tensor::from_slice(&mask).view(shape),
        labels: Tensor::from_slice(&masked(IGNORE_INDEX)).view(shape),
    })
}
