//! Quantile interpolation and weighted empirical quantiles (upstream `chronos.utils`
//! `interpolate_quantiles` and `weighted_quantile`), op for op so that f32 results agree.

use tch::{Kind, Tensor};

/// Levels as an f32 tensor on `device` (as `torch.tensor(list)`).
pub(crate) fn level_tensor(levels: &[f64], device: tch::Device) -> Tensor {
    let levels: Vec<f32> = levels.iter().map(|&q| q as f32).collect();
    Tensor::from_slice(&levels).to_device(device)
}

/// Values at `query` levels `(queries,)` f32, interpolated linearly between `values`
/// `(..., n)` at `levels` (`(n,)`, or the shape of `values`); below the lowest level the lowest
/// value, above the highest the highest. Returns `(..., queries)` in the dtype of `values`.
pub(crate) fn interpolate_quantiles(query: &Tensor, levels: &Tensor, values: &Tensor) -> Tensor {
    let kind = values.kind();
    let device = values.device();
    let query = query.to_device(device);
    let levels = levels.to_device(device).clamp(0.0, 1.0);
    let shape = values.size();
    let n = *levels.size().last().expect("levels has a last axis");
    let values = values.to_kind(Kind::Float).reshape([-1, n]);
    let batch = values.size()[0];
    let levels = if levels.dim() == 1 {
        levels.expand([batch, n], false)
    } else {
        levels.reshape([-1, n])
    };
    let (sorted_levels, order) = levels.sort(-1, false);
    let sorted_values = values.gather(-1, &order, false);
    let mut level_parts = Vec::with_capacity(3);
    let mut value_parts = Vec::with_capacity(3);
    if levels.min().double_value(&[]) > 0.0 {
        level_parts.push(Tensor::zeros([batch, 1], (Kind::Float, device)));
        value_parts.push(sorted_values.narrow(1, 0, 1));
    }
    level_parts.push(sorted_levels);
    value_parts.push(sorted_values.shallow_clone());
    if levels.max().double_value(&[]) < 1.0 {
        level_parts.push(Tensor::ones([batch, 1], (Kind::Float, device)));
        value_parts.push(sorted_values.narrow(1, n - 1, 1));
    }
    let sorted_levels = Tensor::cat(&level_parts, -1).contiguous();
    let sorted_values = Tensor::cat(&value_parts, -1);
    let queries = query.size()[0];
    let query = query
        .view([1, queries])
        .expand([batch, queries], false)
        .contiguous();
    let last = sorted_levels.size()[1] - 1;
    let upper = query
        .searchsorted(&sorted_levels, false, true, "right", None::<Tensor>)
        .clamp_max(last);
    let lower = &upper - 1;
    let lower_levels = sorted_levels.gather(1, &lower, false);
    let upper_levels = sorted_levels.gather(1, &upper, false);
    let lower_values = sorted_values.gather(1, &lower, false);
    let upper_values = sorted_values.gather(1, &upper, false);
    let weight =
        ((&query - &lower_levels) / (upper_levels - &lower_levels)).nan_to_num(0.0, None, None);
    let interpolated = &lower_values + weight * (upper_values - &lower_values);
    let mut out_shape = shape[..shape.len() - 1].to_vec();
    out_shape.push(queries);
    interpolated.reshape(out_shape.as_slice()).to_kind(kind)
}

/// Normalised probability mass of each level `(n,)` f32 in (0, 1): half the distance between
/// its neighbours, with 0 and 1 at the ends (upstream `_get_prob_mass_per_quantile_level`).
pub(crate) fn prob_mass(levels: &Tensor) -> Tensor {
    let device = levels.device();
    let zero = Tensor::zeros([1], (Kind::Float, device));
    let one = Tensor::ones([1], (Kind::Float, device));
    let bounds = Tensor::cat(&[&zero, levels, &one], 0);
    let n = bounds.size()[0];
    let mass = (bounds.narrow(0, 2, n - 2) - bounds.narrow(0, 0, n - 2)) / 2.0;
    &mass / mass.sum(None::<Kind>)
}

/// Quantiles at `query` levels of the weighted samples `samples` `(..., s)` with `weights`
/// `(s,)` (positive): the empirical CDF of the sorted samples, interpolated. `(..., queries)`.
pub(crate) fn weighted_quantile(query: &Tensor, weights: &Tensor, samples: &Tensor) -> Tensor {
    let kind = samples.kind();
    let device = samples.device();
    let shape = samples.size();
    let s = weights.size()[0];
    let samples = samples.to_kind(Kind::Float).reshape([-1, s]);
    let batch = samples.size()[0];
    let weights = weights.to_device(device);
    let weights = (&weights / weights.sum_dim_intlist(-1, true, None::<Kind>))
        .expand([batch, s], false)
        .contiguous();
    let (sorted, order) = samples.sort(-1, false);
    let cumulative = weights
        .gather(-1, &order, false)
        .cumsum(-1, None::<Kind>)
        .clamp(0.0, 1.0);
    let out = interpolate_quantiles(query, &cumulative, &sorted);
    let mut out_shape = shape[..shape.len() - 1].to_vec();
    out_shape.push(query.size()[0]);
    out.reshape(out_shape.as_slice()).to_kind(kind)
}
