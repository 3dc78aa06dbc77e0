//! Chronos-2 (upstream `Chronos2Model`): an encoder-only T5-style network over patches of
//! instance-normalised series. Each block attends along time within a series (with RoPE), then
//! across the series of a group at each patch (group attention), then applies the MLP. Known
//! future covariates enter as future patches; the quantile head reads the future patches.
//!
//! Shared with the other families: T5's RMS layer norm, attention projections and MLP
//! ([`crate::t5`]), Bolt's residual block, patching and instance norm ([`crate::bolt`]).

use tch::nn;
use tch::{Kind, Tensor};

use crate::attention::finfo_min;
use crate::bolt::{patch, pinball, LocScale, ResidualBlock};
use crate::config::{Chronos2Config, T5Config};
use crate::dropout::dropout;
use crate::error::{ChronosError, Result};
use crate::t5::{Attention, DenseActDense, LayerNorm};

/// Id of the `[REG]` token in `shared` (upstream `reg_token_id`).
const REG_TOKEN: i64 = 1;

/// Default of [`Chronos2Model::set_chunk_bytes`].
const CHUNK_BYTES: i64 = 8 << 20;

/// Whether every id of `ids` `(batch,)` i64 occurs once.
fn all_distinct(ids: &Tensor) -> bool {
    let mut ids = Vec::<i64>::try_from(ids.to_device(tch::Device::Cpu)).unwrap_or_default();
    ids.sort_unstable();
    !ids.is_empty() && ids.windows(2).all(|w| w[0] != w[1])
}

/// Rotary position embeddings of the time attention (upstream `Chronos2RotaryEmbedding`,
/// non-interleaved halves, frequencies and angles in f32).
#[derive(Debug)]
struct Rope {
    /// `(d_kv / 2,)` f32: `1 / theta^(2i / d_kv)`.
    inv_freq: Tensor,
}

impl Rope {
    fn new(theta: f64, d_kv: i64, device: tch::Device) -> Self {
        let exponents = Tensor::arange_start_step(0, d_kv, 2, (Kind::Int64, device))
            .to_kind(Kind::Float)
            / d_kv;
        // Upstream's `1.0 / (theta ** exponents)`: `pow(Scalar, Tensor)`, then `reciprocal`.
        Rope {
            inv_freq: Tensor::pow_scalar(theta, &exponents).reciprocal(),
        }
    }

    /// `(cos, sin)` for positions `0..len`, each `(1, 1, len, d_kv)` in `kind`.
    fn cos_sin(&self, len: i64, kind: Kind) -> (Tensor, Tensor) {
        let device = self.inv_freq.device();
        let positions = Tensor::arange(len, (Kind::Int64, device))
            .to_kind(Kind::Float)
            .view([1, 1, len]);
        let freqs = self
            .inv_freq
            .view([1, -1, 1])
            .matmul(&positions)
            .transpose(1, 2);
        let angles = Tensor::cat(&[&freqs, &freqs], -1);
        (
            angles.cos().to_kind(kind).unsqueeze(1),
            angles.sin().to_kind(kind).unsqueeze(1),
        )
    }

    /// `xs * cos + rotate_half(xs) * sin` for `xs` `(batch, heads, len, d_kv)`.
    fn apply(xs: &Tensor, cos: &Tensor, sin: &Tensor) -> Tensor {
        let half = xs.size()[3] / 2;
        let rotated = Tensor::cat(&[-xs.narrow(-1, half, half), xs.narrow(-1, 0, half)], -1);
        xs * cos + rotated * sin
    }
}

/// A pre-normed residual attention sublayer (`layer.{0,1}`: `self_attention` + `layer_norm`).
#[derive(Debug)]
struct AttentionLayer {
    attention: Attention,
    norm: LayerNorm,
}

impl AttentionLayer {
    fn new(p: nn::Path, cfg: &T5Config) -> Self {
        AttentionLayer {
            attention: Attention::new(&p / "self_attention", cfg, None),
            norm: LayerNorm::new(&p / "layer_norm", cfg.d_model, cfg.layer_norm_epsilon),
        }
    }

    /// `xs + attention(norm(xs))` over the middle axis of `xs` `(rows, len, d_model)`, with the
    /// additive `mask` `(rows|1, 1, len|1, len)` and RoPE when `rope` is given.
    fn forward_t(
        &self,
        xs: &Tensor,
        mask: &Tensor,
        rope: Option<&(Tensor, Tensor)>,
        dropout_p: f64,
        train: bool,
    ) -> Tensor {
        let (mut q, mut k, v) = self
            .attention
            .query_key_value(&self.norm.forward(xs), train);
        if let Some((cos, sin)) = rope {
            q = Rope::apply(&q, cos, sin);
            k = Rope::apply(&k, cos, sin);
        }
        let attended = self
            .attention
            .attend(&q, &k, &v, crate::attention::Mask::Bias(mask), train);
        xs + dropout(&attended, dropout_p, train)
    }

    /// [`AttentionLayer::forward_t`] at inference where every query's only unmasked key is its
    /// own position: `xs + o(v(norm(xs)))`.
    fn forward_self_only(&self, xs: &Tensor) -> Tensor {
        xs + self.attention.attend_self_only(&self.norm.forward(xs))
    }
}

/// One encoder block (`encoder.block.{i}`): time attention, group attention, MLP.
#[derive(Debug)]
struct Block {
    time: AttentionLayer,
    group: AttentionLayer,
    mlp: DenseActDense,
    mlp_norm: LayerNorm,
    dropout: f64,
}

impl Block {
    fn new(p: nn::Path, cfg: &T5Config) -> Self {
        let layer = &p / "layer";
        let ff = &layer / 2;
        Block {
            time: AttentionLayer::new(&layer / 0, cfg),
            group: AttentionLayer::new(&layer / 1, cfg),
            mlp: DenseActDense::new(&ff / "mlp", cfg),
            mlp_norm: LayerNorm::new(&ff / "layer_norm", cfg.d_model, cfg.layer_norm_epsilon),
            dropout: cfg.dropout_rate,
        }
    }

    /// `xs` `(batch, len, d_model)`; `time_mask` `(batch, 1, 1, len)` and `group_mask`
    /// `(len, 1, batch, batch)` additive, or `None` where every series is a group of its own
    /// (inference only; see [`Chronos2Model::encoder`]).
    #[allow(clippy::assign_op_pattern)]
    fn forward_t(
        &self,
        xs: &Tensor,
        time_mask: &Tensor,
        group_mask: Option<&Tensor>,
        rope: &(Tensor, Tensor),
        train: bool,
    ) -> Tensor {
        let xs = self
            .time
            .forward_t(xs, time_mask, Some(rope), self.dropout, train);
        // Group attention runs along the batch axis: (len, batch, d_model) and back.
        let xs = match group_mask {
            Some(mask) => self
                .group
                .forward_t(&xs.transpose(0, 1), mask, None, self.dropout, train)
                .transpose(0, 1),
            None => self.group.forward_self_only(&xs),
        };
        let ff = self.mlp.forward_t(&self.mlp_norm.forward(&xs), train);
        xs + dropout(&ff, self.dropout, train)
    }
}

/// The encoder's output for a batch, and what the head and the loss need from its input.
#[derive(Debug)]
pub struct Encoded {
    /// `(batch, context patches [+ 1 REG] + output patches, d_model)`, model dtype.
    pub hidden: Tensor,
    pub loc_scale: LocScale,
    /// `(batch, output patches, patch)`, model dtype: 1 where a future covariate is known.
    pub future_mask: Tensor,
}

/// The Chronos-2 network. Parameter paths mirror the HF state dict.
#[derive(Debug)]
pub struct Chronos2Model {
    pub config: T5Config,
    pub chronos: Chronos2Config,
    shared: Tensor,
    input_patch_embedding: ResidualBlock,
    blocks: Vec<Block>,
    final_layer_norm: LayerNorm,
    output_patch_embedding: ResidualBlock,
    rope: Rope,
    dropout: f64,
    /// See [`Chronos2Model::set_chunk_bytes`].
    chunk_bytes: i64,
}

impl Chronos2Model {
    /// Creates the variables (zero-initialised) under `p`, the root of the VarStore.
    pub fn new(p: &nn::Path, config: &T5Config, chronos: &Chronos2Config) -> Self {
        let (act, _) = config
            .feed_forward()
            .expect("feed_forward_proj is validated when the config is read");
        let d = config.d_model;
        let vocab = if chronos.use_reg_token { 2 } else { 1 };
        let patch = chronos.input_patch_size;
        let encoder = p / "encoder";
        let block = &encoder / "block";
        let theta = config
            .extra
            .get("rope_theta")
            .and_then(serde_json::Value::as_f64)
            .unwrap_or(10000.0);
        Chronos2Model {
            config: config.clone(),
            chronos: chronos.clone(),
            shared: (p / "shared").var("weight", &[vocab, d], nn::Init::Const(0.0)),
            input_patch_embedding: ResidualBlock::new(
                p / "input_patch_embedding",
                3 * patch,
                config.d_ff,
                d,
                act,
                config.dropout_rate,
            ),
            blocks: (0..config.num_layers)
                .map(|i| Block::new(&block / i, config))
                .collect(),
            final_layer_norm: LayerNorm::new(
                &encoder / "final_layer_norm",
                d,
                config.layer_norm_epsilon,
            ),
            output_patch_embedding: ResidualBlock::new(
                p / "output_patch_embedding",
                d,
                config.d_ff,
                chronos.quantiles.len() as i64 * chronos.output_patch_size,
                act,
                config.dropout_rate,
            ),
            rope: Rope::new(theta, config.d_kv, p.device()),
            dropout: config.dropout_rate,
            chunk_bytes: CHUNK_BYTES,
        }
    }

    /// Stacks each attention's q, k and v weights into one matrix (f32 only), as
    /// [`crate::t5::Stack::pack_for_inference`]: for inference after the weights are final
    /// (LoRA merged); `train = true` forwards ignore the packed copies.
    pub fn pack_for_inference(&mut self) {
        if self.kind() != Kind::Float {
            return;
        }
        for block in &mut self.blocks {
            block.time.attention.pack();
            block.group.attention.pack();
        }
    }

    /// The budget of the largest activation (the MLP's hidden layer, `(series, len, d_ff)`) per
    /// chunk of independent series in a forecast (default 8 MiB: cache-sized, which is about
    /// 1.5x faster than whole batches on a 2-core machine). Outputs do not depend on it.
    pub fn set_chunk_bytes(&mut self, bytes: i64) {
        self.chunk_bytes = bytes.max(1);
    }

    /// Checks that a `config.json` describes a network this module builds.
    pub fn validate(
        config: &T5Config,
        chronos: &Chronos2Config,
    ) -> std::result::Result<(), String> {
        config.validate()?;
        chronos.validate()?;
        if config.feed_forward()?.1 {
            return Err("gated feed-forward activations are not supported by Chronos-2".into());
        }
        if config.d_kv % 2 != 0 {
            return Err(format!("d_kv must be even for RoPE, got {}", config.d_kv));
        }
        Ok(())
    }

    fn kind(&self) -> Kind {
        self.shared.kind()
    }

    /// Time encodings `(batch, patches, patch)` in the model dtype: `(start..start + patches *
    /// patch) / time_encoding_scale`.
    fn time_encoding(&self, batch: i64, patches: i64, start: i64) -> Tensor {
        let p = self.chronos.input_patch_size;
        let device = self.shared.device();
        (Tensor::arange_start(start, start + patches * p, (Kind::Float, device))
            .view([1, patches, p])
            .expand([batch, patches, p], false)
            / self.chronos.time_encoding_scale())
        .to_kind(self.kind())
    }

    /// Patched context `(batch, patches, 3 * patch)` (time encoding, values, mask), its patch
    /// mask `(batch, patches)` bool and loc/scale, for `context` `(batch, len)` f32 (NaN =
    /// missing; only the last `context_length` values are used).
    fn patched_context(&self, context: &Tensor) -> (Tensor, Tensor, LocScale) {
        let len = context.size()[1];
        let keep = len.min(self.chronos.context_length);
        let context = context.narrow(-1, len - keep, keep);
        let observed = context.isnan().logical_not().to_kind(Kind::Float);
        let loc_scale = LocScale::of(&context);
        let kind = self.kind();
        let normed = loc_scale
            .transform(&context, self.chronos.use_arcsinh)
            .to_kind(kind);
        let observed = observed.to_kind(kind);
        let (size, stride) = (
            self.chronos.input_patch_size,
            self.chronos.input_patch_stride,
        );
        let patched_mask = patch(&observed, size, stride, f64::NAN).nan_to_num(0.0, None, None);
        let patched =
            patch(&normed, size, stride, f64::NAN).where_scalarother(&patched_mask.gt(0.0), 0.0);
        let mask = patched_mask
            .sum_dim_intlist(-1, false, None::<Kind>)
            .gt(0.0);
        let (b, n, _) = patched.size3().unwrap();
        let time = self.time_encoding(b, n, -n * size);
        (
            Tensor::cat(&[time, patched, patched_mask], -1),
            mask,
            loc_scale,
        )
    }

    /// Patched future `(batch, patches, 3 * patch)` and its known-value mask `(batch, patches,
    /// patch)` for `future` `(batch, <= patches * patch)` f32 (NaN = unknown) normalised with the
    /// context's `loc_scale`, or none known.
    fn patched_future(
        &self,
        future: Option<&Tensor>,
        loc_scale: &LocScale,
        batch: i64,
        patches: i64,
    ) -> Result<(Tensor, Tensor)> {
        let p = self.chronos.output_patch_size;
        if let Some(len) = future.map(|f| f.size()[1]).filter(|&len| len > patches * p) {
            return Err(ChronosError::InvalidInput(format!(
                "future covariates of length {len} exceed {patches} output patches of {p}"
            )));
        }
        let kind = self.kind();
        let device = self.shared.device();
        let (values, mask) = match future {
            Some(future) => {
                let normed = loc_scale
                    .transform(future, self.chronos.use_arcsinh)
                    .to_kind(kind);
                let mask = normed.isnan().logical_not().to_kind(kind);
                let values = normed.where_scalarother(&mask.gt(0.0), 0.0);
                let short = patches * p - values.size()[1];
                let (values, mask) = if short > 0 {
                    let zeros = Tensor::zeros([batch, short], (kind, device));
                    (
                        Tensor::cat(&[&values, &zeros], -1),
                        Tensor::cat(&[&mask, &zeros], -1),
                    )
                } else {
                    (values, mask)
                };
                (
                    values.view([batch, patches, p]),
                    mask.view([batch, patches, p]),
                )
            }
            None => (
                Tensor::zeros([batch, patches, p], (kind, device)),
                Tensor::zeros([batch, patches, p], (kind, device)),
            ),
        };
        let time = self.time_encoding(batch, patches, 0);
        Ok((Tensor::cat(&[&time, &values, &mask], -1), mask))
    }

    /// Encodes `context` `(batch, len)` f32 with `group_ids` `(batch,)` i64 (series of a group
    /// attend to each other) and `future` `(batch, <= output_patches * patch)` f32 (NaN =
    /// unknown, the known-future covariates elsewhere), over `output_patches` future patches.
    pub fn encode(
        &self,
        context: &Tensor,
        group_ids: &Tensor,
        future: Option<&Tensor>,
        output_patches: i64,
        train: bool,
    ) -> Result<Encoded> {
        self.encode_inner(context, group_ids, future, output_patches, false, train)
    }

    /// [`Chronos2Model::encode`]; `forecast_only` as at [`Chronos2Model::encoder`].
    fn encode_inner(
        &self,
        context: &Tensor,
        group_ids: &Tensor,
        future: Option<&Tensor>,
        output_patches: i64,
        forecast_only: bool,
        train: bool,
    ) -> Result<Encoded> {
        let (batch, _) = context.size2().map_err(|_| {
            ChronosError::InvalidInput(format!(
                "context must be (batch, length), got {:?}",
                context.size()
            ))
        })?;
        if group_ids.size() != [batch] {
            return Err(ChronosError::InvalidInput(format!(
                "group_ids must be ({batch},), got {:?}",
                group_ids.size()
            )));
        }
        if let Some(f) = future {
            if f.dim() != 2 || f.size()[0] != batch {
                return Err(ChronosError::InvalidInput(format!(
                    "future covariates must be ({batch}, length), got {:?}",
                    f.size()
                )));
            }
        }
        let kind = self.kind();
        let (patched, context_mask, loc_scale) = self.patched_context(context);
        let mut embeds = self.input_patch_embedding.forward_t(&patched, train);
        let mut mask = context_mask.to_kind(kind);
        if self.chronos.use_reg_token {
            let reg = self
                .shared
                .get(REG_TOKEN)
                .view([1, 1, -1])
                .expand([batch, 1, -1], false);
            embeds = Tensor::cat(&[embeds, reg], 1);
            let reg_mask = Tensor::ones([batch, 1], (kind, mask.device()));
            mask = Tensor::cat(&[mask, reg_mask], 1);
        }
        let (future_patched, future_mask) =
            self.patched_future(future, &loc_scale, batch, output_patches)?;
        let future_embeds = self.input_patch_embedding.forward_t(&future_patched, train);
        let embeds = Tensor::cat(&[embeds, future_embeds], 1);
        let mask = Tensor::cat(
            &[
                mask,
                Tensor::ones([batch, output_patches], (kind, embeds.device())),
            ],
            1,
        );
        let hidden = self.encoder(&embeds, &mask, group_ids, forecast_only, train);
        Ok(Encoded {
            hidden,
            loc_scale,
            future_mask,
        })
    }

    /// The encoder stack over `embeds` `(batch, len, d_model)` with `mask` `(batch, len)` (model
    /// dtype, 1 = attend) and `group_ids` `(batch,)`.
    ///
    /// With `forecast_only` (inference whose caller reads only observed and future positions)
    /// and every series a group of its own, group attention is each position's own value
    /// projected back: its one unmasked key gets a weight of exactly 1 and every masked key 0,
    /// so observed positions come out as through the full attention, bit for bit, without the
    /// `(batch, batch)` scores per position and head. Only unobserved context patches differ
    /// (upstream's fully masked rows attend uniformly across the batch), and no observed
    /// position or forecast reads them: they are masked as keys in both attentions.
    fn encoder(
        &self,
        embeds: &Tensor,
        mask: &Tensor,
        group_ids: &Tensor,
        forecast_only: bool,
        train: bool,
    ) -> Tensor {
        let (batch, len, _) = embeds.size3().unwrap();
        let min = finfo_min(mask.kind());
        // (batch, 1, 1, len): upstream's `(1 - mask) * finfo.min`.
        let time_mask = (-mask.view([batch, 1, 1, len]) + 1.0) * min;
        let group_mask = match forecast_only && !train && all_distinct(group_ids) {
            true => None,
            false => {
                // (len, 1, batch, batch): a key series attends where it is in the query's
                // group and observed at that patch.
                let same_group = group_ids
                    .unsqueeze(1)
                    .eq_tensor(&group_ids.unsqueeze(0))
                    .to_kind(mask.kind());
                let group_time = same_group.unsqueeze(-1) * mask.unsqueeze(0);
                Some((-group_time.permute([2, 0, 1]).unsqueeze(1) + 1.0) * min)
            }
        };
        let rope = self.rope.cos_sin(len, embeds.kind());
        let stack = |xs: &Tensor, time_mask: &Tensor| {
            let mut xs = dropout(xs, self.dropout, train);
            for block in &self.blocks {
                xs = block.forward_t(&xs, time_mask, group_mask.as_ref(), &rope, train);
            }
            dropout(&self.final_layer_norm.forward(&xs), self.dropout, train)
        };
        if group_mask.is_some() {
            return stack(embeds, &time_mask);
        }
        // Series are independent here: run them in chunks whose activations stay in cache.
        let per_series = len * self.config.d_ff * embeds.kind().elt_size_in_bytes() as i64;
        let chunk = (self.chunk_bytes / per_series).clamp(1, batch);
        let parts: Vec<Tensor> = (0..batch)
            .step_by(chunk as usize)
            .map(|start| {
                let n = chunk.min(batch - start);
                stack(&embeds.narrow(0, start, n), &time_mask.narrow(0, start, n))
            })
            .collect();
        Tensor::cat(&parts, 0)
    }

    /// Quantile forecasts in the normalised space `(batch, quantiles, output_patches * patch)`,
    /// model dtype.
    pub fn quantiles_normalized(
        &self,
        encoded: &Encoded,
        output_patches: i64,
        train: bool,
    ) -> Tensor {
        let (b, len, _) = encoded.hidden.size3().unwrap();
        let q = self.chronos.quantiles.len() as i64;
        let p = self.chronos.output_patch_size;
        let forecast = encoded
            .hidden
            .narrow(1, len - output_patches, output_patches);
        self.output_patch_embedding
            .forward_t(&forecast, train)
            .view([b, output_patches, q, p])
            .permute([0, 2, 1, 3])
            .reshape([b, q, output_patches * p])
    }

    /// Forecast `(batch, quantiles, output_patches * patch)` f32 (upstream `forward(...)
    /// .quantile_preds`); arguments as [`Chronos2Model::encode`].
    pub fn forward(
        &self,
        context: &Tensor,
        group_ids: &Tensor,
        future: Option<&Tensor>,
        output_patches: i64,
    ) -> Result<Tensor> {
        let encoded = self.encode_inner(context, group_ids, future, output_patches, true, false)?;
        let preds = self.quantiles_normalized(&encoded, output_patches, false);
        let size = preds.size();
        Ok(encoded
            .loc_scale
            .inverse(
                &preds.to_kind(Kind::Float).reshape([size[0], -1]),
                self.chronos.use_arcsinh,
            )
            .view(size.as_slice()))
    }

    /// The training loss of upstream `Chronos2Model.forward(..., future_target=...)`:
    /// `future_target` `(batch, horizon)` f32 (NaN = unobserved, and NaN on the rows of
    /// covariates), normalised with the context's loc/scale (and `arcsinh`), padded to
    /// `output_patches` whole patches; the [`pinball`] loss of each quantile, masked where the
    /// target is unobserved or padded and where a covariate is known in `future`, averaged over
    /// the horizon, summed over the quantiles and averaged over the batch. A scalar (f32 for an
    /// f32 model). Other arguments as [`Chronos2Model::encode`]; `train` enables dropout.
    pub fn loss(
        &self,
        context: &Tensor,
        group_ids: &Tensor,
        future: Option<&Tensor>,
        future_target: &Tensor,
        output_patches: i64,
        train: bool,
    ) -> Result<Tensor> {
        let batch = context.size().first().copied().unwrap_or(0);
        let horizon = output_patches * self.chronos.output_patch_size;
        let len = match future_target.size2() {
            Ok((b, len)) if b == batch && len <= horizon => len,
            _ => {
                return Err(ChronosError::InvalidInput(format!(
                    "future_target must be ({batch}, <= {horizon}), got {:?}",
                    future_target.size()
                )))
            }
        };
        if let Some(f) = future.filter(|f| f.size() != future_target.size()) {
            return Err(ChronosError::InvalidInput(format!(
                "future covariates {:?} and future_target {:?} must have the same shape",
                f.size(),
                future_target.size()
            )));
        }
        let encoded = self.encode(context, group_ids, future, output_patches, train)?;
        let preds = self.quantiles_normalized(&encoded, output_patches, train);
        let device = preds.device();
        let target = encoded
            .loc_scale
            .transform(
                &future_target.to_device(device).to_kind(Kind::Float),
                self.chronos.use_arcsinh,
            )
            .unsqueeze(1);
        let observed = target.isnan().logical_not();
        let mut target = target.masked_fill(&observed.logical_not(), 0.0);
        let mut observed = observed.to_kind(Kind::Float);
        if len < horizon {
            let pad = Tensor::zeros([batch, 1, horizon - len], (Kind::Float, device));
            target = Tensor::cat(&[&target, &pad], -1);
            observed = Tensor::cat(&[&observed, &pad], -1);
        }
        let unknown = -encoded
            .future_mask
            .reshape([batch, 1, horizon])
            .to_kind(Kind::Float)
            + 1.0;
        let loss = pinball(&target, &preds, &self.chronos.quantiles) * (observed * unknown);
        Ok(loss
            .mean_dim(-1, false, None::<Kind>)
            .sum_dim_intlist(-1, false, None::<Kind>)
            .mean(None::<Kind>))
    }
}
