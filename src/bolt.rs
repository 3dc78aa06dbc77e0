//! Chronos-Bolt (upstream `ChronosBoltModelForForecasting`): instance-normalised context cut into
//! patches, embedded by a residual block, a T5 encoder (with an optional `[REG]` token), one
//! decoder step, and a residual block that outputs every quantile for the whole horizon.

use tch::nn::{self, Module};
use tch::{Kind, Tensor};

use crate::config::{Activation, ChronosBoltConfig, T5Config};
use crate::dropout::dropout;
use crate::error::{ChronosError, Result};
use crate::t5::Stack;

/// Epsilon that replaces a zero scale (upstream `InstanceNorm(eps=1e-5)`).
const SCALE_EPS: f64 = 1e-5;

/// `hidden_layer` → act → `output_layer`, plus a linear `residual_layer` (upstream `ResidualBlock`).
#[derive(Debug)]
pub struct ResidualBlock {
    hidden_layer: nn::Linear,
    output_layer: nn::Linear,
    residual_layer: nn::Linear,
    act: Activation,
    dropout: f64,
}

impl ResidualBlock {
    pub(crate) fn new(
        p: nn::Path,
        in_dim: i64,
        h_dim: i64,
        out_dim: i64,
        act: Activation,
        dropout: f64,
    ) -> Self {
        let cfg = crate::attention::UNINITIALIZED_LINEAR;
        ResidualBlock {
            hidden_layer: nn::linear(&p / "hidden_layer", in_dim, h_dim, cfg),
            output_layer: nn::linear(&p / "output_layer", h_dim, out_dim, cfg),
            residual_layer: nn::linear(&p / "residual_layer", in_dim, out_dim, cfg),
            act,
            dropout,
        }
    }

    /// `(..., in_dim)` → `(..., out_dim)`.
    pub fn forward_t(&self, xs: &Tensor, train: bool) -> Tensor {
        let hidden = self.act.apply(self.hidden_layer.forward(xs));
        dropout(&self.output_layer.forward(&hidden), self.dropout, train)
            + self.residual_layer.forward(xs)
    }
}

/// Per-series location and scale of the instance normalisation, each `(batch, 1)`, f32.
#[derive(Debug)]
pub struct LocScale {
    pub loc: Tensor,
    pub scale: Tensor,
}

impl LocScale {
    /// NaN-aware mean and standard deviation over the last axis of `xs` `(batch, len)` (f32):
    /// loc 0 and scale 1 for an all-NaN series, scale eps for a constant one.
    pub fn of(xs: &Tensor) -> Self {
        let loc = xs
            .nanmean(-1, true, None::<Kind>)
            .nan_to_num(0.0, None, None);
        let scale = (xs - &loc)
            .square()
            .nanmean(-1, true, None::<Kind>)
            .sqrt()
            .nan_to_num(1.0, None, None);
        let scale = scale.where_scalarother(&scale.ne(0.0), SCALE_EPS);
        LocScale { loc, scale }
    }

    pub fn normalize(&self, xs: &Tensor) -> Tensor {
        (xs - &self.loc) / &self.scale
    }

    /// Back to the data's scale: `xs` `(batch, n)` f32.
    pub fn denormalize(&self, xs: &Tensor) -> Tensor {
        xs * &self.scale + &self.loc
    }

    /// [`LocScale::normalize`], then `arcsinh` when `arcsinh` (Chronos-2's `use_arcsinh`).
    pub fn transform(&self, xs: &Tensor, arcsinh: bool) -> Tensor {
        let normed = self.normalize(xs);
        if arcsinh {
            normed.arcsinh()
        } else {
            normed
        }
    }

    /// The inverse of [`LocScale::transform`]: `sinh` when `arcsinh`, then [`LocScale::denormalize`].
    pub fn inverse(&self, xs: &Tensor, arcsinh: bool) -> Tensor {
        if arcsinh {
            self.denormalize(&xs.sinh())
        } else {
            self.denormalize(xs)
        }
    }
}

/// The quantile (pinball) loss of each element, `2 |(y - q) ((y <= q) - tau)|`, for `target`
/// `(batch, 1, horizon)` f32 and `preds` `(batch, quantiles, horizon)` at the levels `quantiles`
/// (in the predictions' dtype, as upstream's buffer): `(batch, quantiles, horizon)`.
pub(crate) fn pinball(target: &Tensor, preds: &Tensor, quantiles: &[f64]) -> Tensor {
    let levels: Vec<f32> = quantiles.iter().map(|&q| q as f32).collect();
    let levels = Tensor::from_slice(&levels)
        .to_device(preds.device())
        .to_kind(preds.kind())
        .view([1, -1, 1]);
    let below = target.le_tensor(preds).to_kind(Kind::Float);
    ((target - preds) * (below - levels)).abs() * 2.0
}

/// `(batch, len)` → `(batch, patches, size)` with the given stride, left-padding with `pad` to
/// whole patches (upstream `Patch`).
pub(crate) fn patch(xs: &Tensor, size: i64, stride: i64, pad: f64) -> Tensor {
    let (b, len) = xs.size2().expect("patch takes (batch, len)");
    let xs = if len % size != 0 {
        let padding = Tensor::full([b, size - len % size], pad, (xs.kind(), xs.device()));
        Tensor::cat(&[padding, xs.shallow_clone()], -1)
    } else {
        xs.shallow_clone()
    };
    xs.unfold(-1, size, stride)
}

/// What the encoder produces for a batch of contexts.
#[derive(Debug)]
pub struct Encoded {
    /// `(batch, patches [+ 1 for REG], d_model)`, model dtype.
    pub hidden: Tensor,
    /// `(batch, patches [+ 1])`, bool: patches with at least one observed value (and REG).
    pub mask: Tensor,
    pub loc_scale: LocScale,
}

/// The Chronos-Bolt network. Parameter paths mirror the HF state dict.
#[derive(Debug)]
pub struct ChronosBolt {
    pub config: T5Config,
    pub chronos: ChronosBoltConfig,
    shared: Tensor,
    input_patch_embedding: ResidualBlock,
    encoder: Stack,
    decoder: Stack,
    output_patch_embedding: ResidualBlock,
}

/// Keys that older transformers wrote as tied copies of `shared.weight`.
pub const TIED_ALIASES: [(&str, &str); 2] = [
    ("encoder.embed_tokens.weight", "shared.weight"),
    ("decoder.embed_tokens.weight", "shared.weight"),
];

impl ChronosBolt {
    /// Creates the variables (zero-initialised) under `p`, the root of the VarStore.
    pub fn new(p: &nn::Path, config: &T5Config, chronos: &ChronosBoltConfig) -> Self {
        let (act, _) = config
            .feed_forward()
            .expect("feed_forward_proj is validated when the config is read");
        let vocab = if chronos.use_reg_token { 2 } else { 1 };
        let d = config.d_model;
        let horizon_outputs = chronos.quantiles.len() as i64 * chronos.prediction_length;
        ChronosBolt {
            config: config.clone(),
            chronos: chronos.clone(),
            shared: (p / "shared").var("weight", &[vocab, d], nn::Init::Const(0.0)),
            input_patch_embedding: ResidualBlock::new(
                p / "input_patch_embedding",
                2 * chronos.input_patch_size,
                config.d_ff,
                d,
                act,
                config.dropout_rate,
            ),
            encoder: Stack::encoder(p / "encoder", config),
            decoder: Stack::decoder(p / "decoder", config),
            output_patch_embedding: ResidualBlock::new(
                p / "output_patch_embedding",
                d,
                config.d_ff,
                horizon_outputs,
                act,
                config.dropout_rate,
            ),
        }
    }

    /// See [`Stack::pack_for_inference`].
    pub fn pack_for_inference(&mut self) {
        tch::no_grad(|| {
            self.encoder.pack_for_inference();
            self.decoder.pack_for_inference();
        });
    }

    fn kind(&self) -> Kind {
        self.shared.kind()
    }

    /// `(batch, len)` → `(batch, patches, patch_size)`, left-padding with `pad` to whole patches.
    fn patch(&self, xs: &Tensor, pad: f64) -> Tensor {
        patch(
            xs,
            self.chronos.input_patch_size,
            self.chronos.input_patch_stride,
            pad,
        )
    }

    /// Encodes `context` `(batch, len)` f32 on the model's device, NaN = missing; only the last
    /// `context_length` values are used.
    pub fn encode(&self, context: &Tensor, train: bool) -> Encoded {
        let len = context.size()[1];
        let context = context.narrow(
            -1,
            (len - self.chronos.context_length).max(0),
            len.min(self.chronos.context_length),
        );
        let observed = context.isnan().logical_not();
        let loc_scale = LocScale::of(&context);
        let kind = self.kind();
        let normed = loc_scale.normalize(&context).to_kind(kind);
        let observed = observed.to_kind(kind);

        let patched_mask = self.patch(&observed, 0.0);
        let patched = self
            .patch(&normed, f64::NAN)
            .where_scalarother(&patched_mask.gt(0.0), 0.0);
        let mut mask = patched_mask
            .sum_dim_intlist(-1, false, None::<Kind>)
            .gt(0.0);
        let mut embeds = self
            .input_patch_embedding
            .forward_t(&Tensor::cat(&[patched, patched_mask], -1), train);
        if self.chronos.use_reg_token {
            let b = embeds.size()[0];
            let reg = self
                .shared
                .get(1)
                .view([1, 1, -1])
                .expand([b, 1, -1], false);
            embeds = Tensor::cat(&[embeds, reg], 1);
            let reg_mask = Tensor::ones([b, 1], (Kind::Bool, mask.device()));
            mask = Tensor::cat(&[mask, reg_mask], 1);
        }
        let hidden = self.encoder.encode(&embeds, &mask, train);
        Encoded {
            hidden,
            mask,
            loc_scale,
        }
    }

    /// Quantile forecasts in the normalised space: `(batch, quantiles, prediction_length)`,
    /// model dtype.
    pub fn quantiles_normalized(&self, encoded: &Encoded, train: bool) -> Tensor {
        let b = encoded.hidden.size()[0];
        let start = self
            .shared
            .get(self.config.decoder_start_token_id.unwrap_or(0))
            .view([1, 1, -1])
            .expand([b, 1, -1], false);
        let out = self
            .decoder
            .decode(&start, &encoded.hidden, &encoded.mask, train);
        self.output_patch_embedding.forward_t(&out, train).view([
            b,
            self.chronos.quantiles.len() as i64,
            self.chronos.prediction_length,
        ])
    }

    /// Forecast `(batch, quantiles, prediction_length)` f32 for `context` `(batch, len)` f32.
    pub fn forward(&self, context: &Tensor) -> Tensor {
        let encoded = self.encode(context, false);
        let preds = self.quantiles_normalized(&encoded, false);
        let size = preds.size();
        encoded
            .loc_scale
            .denormalize(&preds.to_kind(Kind::Float).view([size[0], -1]))
            .view(size.as_slice())
    }

    /// Upstream's training loss (`ChronosBoltModelForForecasting.forward(context, target=...,
    /// target_mask=...)`): the quantile (pinball) loss of the normalised forecast against `target`
    /// `(batch, h)` f32, h <= prediction_length, normalised with the context's loc/scale. Missing
    /// values (NaN; or, when `target_mask` `(batch, h)` is given, false there and only there: a
    /// NaN it marks observed makes the loss NaN, as upstream) and the padding up to
    /// prediction_length do not count. Per element
    /// `2 |(y - q) ((y <= q) - tau)|`, averaged over the **quantile** axis and summed over the
    /// horizon (upstream's `mean(dim=-2)` / `sum(dim=-1)` on `(batch, quantiles, horizon)`; its
    /// comments say the reverse), then averaged over the batch. Returns a scalar (f32 for an f32
    /// or bf16 model). `context` as in [`ChronosBolt::encode`]; `train` enables dropout.
    pub fn loss(
        &self,
        context: &Tensor,
        target: &Tensor,
        target_mask: Option<&Tensor>,
        train: bool,
    ) -> Result<Tensor> {
        let horizon = self.chronos.prediction_length;
        let (batch, len) = target.size2().map_err(|_| {
            ChronosError::InvalidInput(format!(
                "target must be (batch, horizon), got shape {:?}",
                target.size()
            ))
        })?;
        if context.dim() != 2 || context.size()[0] != batch {
            return Err(ChronosError::InvalidInput(format!(
                "context {:?} and target {:?} must be (batch, len) with the same batch",
                context.size(),
                target.size()
            )));
        }
        if len > horizon {
            return Err(ChronosError::InvalidInput(format!(
                "target length {len} exceeds the model's prediction_length {horizon}"
            )));
        }
        if let Some(mask) = target_mask {
            if mask.size() != target.size() {
                return Err(ChronosError::InvalidInput(format!(
                    "target_mask {:?} must have the target's shape {:?}",
                    mask.size(),
                    target.size()
                )));
            }
        }
        let encoded = self.encode(context, train);
        let preds = self.quantiles_normalized(&encoded, train);
        let device = preds.device();
        let target = encoded
            .loc_scale
            .normalize(&target.to_device(device).to_kind(Kind::Float))
            .unsqueeze(1);
        let mask = match target_mask {
            Some(mask) => mask.to_device(device).ne(0).unsqueeze(1),
            None => target.isnan().logical_not(),
        };
        let mut target = target.masked_fill(&mask.logical_not(), 0.0);
        let mut mask = mask;
        if len < horizon {
            target = Tensor::cat(
                &[
                    target,
                    Tensor::zeros([batch, 1, horizon - len], (Kind::Float, device)),
                ],
                -1,
            );
            mask = Tensor::cat(
                &[
                    mask,
                    Tensor::zeros([batch, 1, horizon - len], (Kind::Bool, device)),
                ],
                -1,
            );
        }
        let loss = pinball(&target, &preds, &self.chronos.quantiles) * mask.to_kind(Kind::Float);
        Ok(loss
            .mean_dim(-2, false, None::<Kind>)
            .sum_dim_intlist(-1, false, None::<Kind>)
            .mean(None::<Kind>))
    }
}
