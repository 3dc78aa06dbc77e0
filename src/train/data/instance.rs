//! One training instance from one series, as upstream's `ChronosDataset` makes it: the entry
//! filter (`has_enough_observations`), last-value imputation for causal models (GluonTS
//! `LastValueImputation`), missing-value injection and the GluonTS `InstanceSplitter` cut
//! (past window left-padded with NaN, future window).

use super::rng::unit_at;

/// Why an entry is kept or dropped by [`has_enough_observations`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EntryFilter {
    Keep,
    /// Fewer than `min_past + prediction_length` values.
    TooShort,
    /// A larger proportion of NaN than `max_missing_prop`.
    TooManyMissing,
}

/// Upstream `has_enough_observations`: at least `min_length` values and a proportion of NaN at
/// most `max_missing_prop` (an empty series is too short whenever `min_length > 0`, and is
/// otherwise dropped as upstream's `nan <= p` is false).
pub fn has_enough_observations(
    target: &[f64],
    min_length: usize,
    max_missing_prop: f64,
) -> EntryFilter {
    if target.len() < min_length {
        return EntryFilter::TooShort;
    }
    let missing = target.iter().filter(|v| v.is_nan()).count();
    // For an empty target numpy's mean is NaN and the comparison is false.
    let keep = !target.is_empty() && missing as f64 / target.len() as f64 <= max_missing_prop;
    match keep {
        true => EntryFilter::Keep,
        false => EntryFilter::TooManyMissing,
    }
}

/// GluonTS `LastValueImputation`, in place: each NaN becomes the last observed value before it;
/// NaN before the first observation become the first observed value; a series of one value or
/// with no observation at all gets 0 for its NaN (GluonTS' `DummyValueImputation`).
pub fn gluonts_last_value_imputation(values: &mut [f32]) {
    let first = values.iter().copied().find(|v| !v.is_nan());
    let Some(first) = first.filter(|_| values.len() > 1) else {
        values
            .iter_mut()
            .filter(|v| v.is_nan())
            .for_each(|v| *v = 0.0);
        return;
    };
    let mut last = first;
    for v in values.iter_mut() {
        if v.is_nan() {
            *v = last;
        } else {
            last = *v;
        }
    }
}

/// Random missing values of one entry occurrence (upstream `preprocess_entry` in training mode):
/// each value is dropped independently with probability `prob`, decided by a counter-based hash
/// of `(key, position)` so any window of the entry can be cut without drawing for the rest.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DropMask {
    pub key: u64,
    pub prob: f64,
}

impl DropMask {
    /// No value dropped.
    pub const NONE: DropMask = DropMask { key: 0, prob: 0.0 };

    /// Whether the value at `position` of the entry is dropped.
    pub fn drops(&self, position: usize) -> bool {
        self.prob > 0.0 && unit_at(self.key, position as u64) < self.prob
    }
}

/// A training instance: `past` `(context_length,)` and `future` `(prediction_length,)` stored
/// back to back in `values` (NaN = missing or padding), with the number of padded steps at the
/// start of `past` (GluonTS' `past_is_pad`).
#[derive(Debug, Clone, PartialEq)]
pub struct Instance {
    pub values: Vec<f32>,
    pub context_length: usize,
    pub pad: usize,
}

impl Instance {
    /// `(context_length,)`: NaN-padded on the left.
    pub fn past(&self) -> &[f32] {
        &self.values[..self.context_length]
    }

    /// `(prediction_length,)`.
    pub fn future(&self) -> &[f32] {
        &self.values[self.context_length..]
    }

    /// Upstream's instance filter: the past window holds at least one observed value.
    pub fn has_observed_past(&self) -> bool {
        self.past().iter().any(|v| !v.is_nan())
    }

    /// Whether the observed values of the past window are not all equal. Chronos-Bolt scales
    /// by the past's standard deviation, `|mean| + 1e-5` when it is 0: a past of zeros followed
    /// by a non-zero future (the first weeks of `monash_covid_deaths`) gives scaled targets of
    /// ~1e5 and a loss that swamps the batch, which `skip_constant_contexts` avoids.
    pub fn has_varying_past(&self) -> bool {
        let mut observed = self.past().iter().filter(|v| !v.is_nan());
        match observed.next() {
            Some(first) => observed.any(|v| v != first),
            None => false,
        }
    }

    /// The largest `|future - loc| / scale` over the observed future, with Bolt's instance
    /// norm of the past: `loc` its mean, `scale` its (population) standard deviation, or
    /// `|loc| + 1e-5` when that is 0 (upstream `InstanceNorm`, eps 1e-5). 0 for an unobserved
    /// future; `loc` 0 and `scale` 1 for an unobserved past, as upstream's `nan_to_num`.
    pub fn max_scaled_future(&self) -> f64 {
        let observed = || {
            self.past()
                .iter()
                .filter(|v| !v.is_nan())
                .map(|&v| f64::from(v))
        };
        let (n, sum) = observed().fold((0usize, 0.0), |(n, s), v| (n + 1, s + v));
        let (loc, scale) = match n {
            0 => (0.0, 1.0),
            n => {
                let loc = sum / n as f64;
                let var = observed().map(|v| (v - loc).powi(2)).sum::<f64>() / n as f64;
                let std = var.sqrt();
                (loc, if std == 0.0 { loc.abs() + 1e-5 } else { std })
            }
        };
        self.future()
            .iter()
            .filter(|v| !v.is_nan())
            .map(|&v| ((f64::from(v) - loc) / scale).abs())
            .fold(0.0, f64::max)
    }
}

/// The GluonTS `InstanceSplitter` cut of `target` at `split` (`dummy_value = NaN`, no lead time):
/// `past = target[split - context_length .. split]`, left-padded with NaN where `split <
/// context_length`; `future = target[split .. split + prediction_length]`, NaN beyond the end;
/// values that `drop` removes become NaN. Returns `None` if `split > target.len()`.
pub fn split_instance(
    target: &[f32],
    split: usize,
    context_length: usize,
    prediction_length: usize,
    drop: DropMask,
) -> Option<Instance> {
    if split > target.len() {
        return None;
    }
    let start = split.saturating_sub(context_length);
    let pad = context_length - (split - start);
    let end = (split + prediction_length).min(target.len());
    let mut values = Vec::with_capacity(context_length + prediction_length);
    values.resize(pad, f32::NAN);
    values.extend((start..end).map(|t| match drop.drops(t) {
        true => f32::NAN,
        false => target[t],
    }));
    values.resize(context_length + prediction_length, f32::NAN);
    Some(Instance {
        values,
        context_length,
        pad,
    })
}
