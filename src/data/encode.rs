//! A covariate table (and its future table) as Chronos-2 tasks: upstream `from_data_frame` →
//! `_build_prepared_inputs`, with its categorical encodings (`_encode_categorical`,
//! `_target_encode`).

use std::collections::HashMap;

use super::frame::{Categorical, CovariateValues, Frame};
use super::future::align_future;
use super::{finite_f32, DataError, ForecastTable, Forecasts, Freq, NonFinite};
use crate::error::Result;
use crate::pipeline::{Chronos2Task, QuantileForecast};

/// Upstream's `_target_encode` smoothing.
const SMOOTH: f64 = 1.0;

/// The tasks of a table, one per series in the table's order, and what the encoding could
/// not map.
#[derive(Debug, Clone, PartialEq)]
pub struct Chronos2Inputs {
    pub tasks: Vec<Chronos2Task>,
    /// Categorical covariates were target-encoded (one target) rather than given ordinal codes.
    pub target_encoded: bool,
    /// Future categories never seen in the past table, per column and series.
    pub unseen: Vec<UnseenCategories>,
    /// Past values taken as missing because they are not finite in `f32`, per column and series.
    pub non_finite: Vec<NonFinite>,
}

/// Future values of a categorical covariate that its past column never has. Target encoding
/// gives them the series' target mean; ordinal encoding leaves them missing (`NaN`), which the
/// model treats as unknown at that step (both as upstream).
#[derive(Debug, Clone, PartialEq)]
pub struct UnseenCategories {
    pub column: String,
    pub id: String,
    /// Distinct values, in order of first appearance.
    pub values: Vec<String>,
    /// Forecast steps holding one of them.
    pub steps: usize,
}

impl Chronos2Inputs {
    /// The tasks of `past` with the known-future covariates of `future` (checked and aligned
    /// as described at [`align_future`]; `freq` gives the expected future timestamps).
    ///
    /// Per task the rows are the targets, then the past-only covariates, then the known-future
    /// ones (each group in `past`'s column order). Numeric covariates are taken as they are.
    /// Categorical ones are encoded as upstream: with one target, each category gets the
    /// smoothed mean of the series' target over its rows, `(item_mean + sum) / (1 + count)`
    /// (finite target values only; missing is a category of its own; a future category the
    /// past lacks gets the item mean); with several targets, the category's index in the past
    /// categories (missing: one past the last; an unseen future category: `NaN`). Sums are in
    /// f64 in row order and cast to f32 at the end, as numpy's `bincount`.
    pub fn new(
        past: &Frame,
        future: Option<&Frame>,
        prediction_length: usize,
        freq: &Freq,
    ) -> Result<Self, DataError> {
        let future_columns = match future {
            Some(f) => align_future(past, f, prediction_length, freq)?,
            None => Vec::new(),
        };
        let known = |name: &str| future_columns.iter().find(|c| c.name == name);
        let n_series = past.n_series();
        let horizon = prediction_length;
        let n_targets = past.targets.len();
        let target_encoded = n_targets == 1;
        // Upstream: target = df[targets].to_numpy(dtype=float32), here with values that do not
        // survive it as missing (`NonFinite`).
        let mut non_finite = Vec::new();
        let targets: Vec<Vec<f32>> = past
            .targets
            .iter()
            .map(|t| finite_column(past, &t.name, &t.values, &mut non_finite))
            .collect();

        let ordered = past
            .covariates
            .iter()
            .filter(|c| known(&c.name).is_none())
            .chain(past.covariates.iter().filter(|c| known(&c.name).is_some()));
        let mut unseen = Vec::new();
        // Per covariate: past values per row, future values per (series, step).
        let mut encoded: Vec<(Vec<f32>, Vec<f32>)> = Vec::new();
        for covariate in ordered {
            let future_values = known(&covariate.name).map(|c| &c.values);
            let pair = match (&covariate.values, future_values) {
                (CovariateValues::Numeric(p), f) => {
                    let f = match f {
                        Some(CovariateValues::Numeric(f)) => f.clone(),
                        _ => vec![f32::NAN; n_series * horizon],
                    };
                    let wide: Vec<f64> = p.iter().map(|&v| f64::from(v)).collect();
                    let p = finite_column(past, &covariate.name, &wide, &mut non_finite);
                    (p, f)
                }
                (CovariateValues::Categorical(p), f) => {
                    let f = match f {
                        Some(CovariateValues::Categorical(f)) => Some(f),
                        _ => None,
                    };
                    let codes = Codes::new(p, f);
                    unseen.extend(codes.unseen(&covariate.name, past, horizon, f));
                    match target_encoded {
                        true => codes.target_encode(past, &targets[0], horizon),
                        false => codes.ordinal(n_series * horizon),
                    }
                }
            };
            encoded.push(pair);
        }

        let n_covariates = encoded.len();
        let n_future_covariates = future_columns.len();
        let rows = n_targets + n_covariates;
        let tasks = (0..n_series)
            .map(|g| {
                let range = past.rows(g);
                let history = range.len();
                let mut context = Vec::with_capacity(rows * history);
                for t in &targets {
                    context.extend_from_slice(&t[range.clone()]);
                }
                let mut future = vec![f32::NAN; n_targets * horizon];
                for (p, f) in &encoded {
                    context.extend_from_slice(&p[range.clone()]);
                    future.extend_from_slice(&f[g * horizon..(g + 1) * horizon]);
                }
                Chronos2Task {
                    context,
                    future,
                    history,
                    horizon,
                    n_targets,
                    n_covariates,
                    n_future_covariates,
                }
            })
            .collect();
        Ok(Self {
            tasks,
            target_encoded,
            unseen,
            non_finite,
        })
    }
}

/// Upstream `_encode_categorical`'s codes: the past categories are `0..n_real`, missing is
/// `n_real`, an unseen future category `n_real + 1`.
struct Codes {
    n_real: usize,
    past: Vec<usize>,
    /// Per (series, step), when the column is known in the future.
    future: Option<Vec<usize>>,
}

impl Codes {
    fn new(past: &Categorical, future: Option<&Categorical>) -> Self {
        let n_real = past.categories.len();
        let code = |c: Option<u32>| c.map_or(n_real, |c| c as usize);
        let index: HashMap<&str, usize> = past
            .categories
            .iter()
            .enumerate()
            .map(|(i, c)| (c.as_str(), i))
            .collect();
        let future = future.map(|f| {
            // The future column's own categories mapped onto the past's (upstream get_indexer).
            let to_past: Vec<usize> = f
                .categories
                .iter()
                .map(|c| index.get(c.as_str()).copied().unwrap_or(n_real + 1))
                .collect();
            f.codes
                .iter()
                .map(|c| c.map_or(n_real, |c| to_past[c as usize]))
                .collect()
        });
        Self {
            n_real,
            past: past.codes.iter().map(|&c| code(c)).collect(),
            future,
        }
    }

    fn sentinel(&self) -> usize {
        self.n_real + 1
    }

    fn unseen(
        &self,
        column: &str,
        past: &Frame,
        horizon: usize,
        future: Option<&Categorical>,
    ) -> Vec<UnseenCategories> {
        let (Some(codes), Some(f)) = (&self.future, future) else {
            return Vec::new();
        };
        let mut found = Vec::new();
        for (g, id) in past.ids.iter().enumerate() {
            let steps = g * horizon..(g + 1) * horizon;
            let mut values: Vec<String> = Vec::new();
            let mut count = 0;
            for k in steps.filter(|&k| codes[k] == self.sentinel()) {
                count += 1;
                let label = &f.categories[f.codes[k].expect("unseen values are present") as usize];
                if !values.contains(label) {
                    values.push(label.clone());
                }
            }
            if count > 0 {
                found.push(UnseenCategories {
                    column: column.to_string(),
                    id: id.clone(),
                    values,
                    steps: count,
                });
            }
        }
        found
    }

    /// Codes as f32; unseen future categories `NaN`.
    fn ordinal(&self, n_future: usize) -> (Vec<f32>, Vec<f32>) {
        let past = self.past.iter().map(|&c| c as f32).collect();
        let future = match &self.future {
            Some(f) => f
                .iter()
                .map(|&c| match c == self.sentinel() {
                    true => f32::NAN,
                    false => c as f32,
                })
                .collect(),
            None => vec![f32::NAN; n_future],
        };
        (past, future)
    }

    /// Upstream `_target_encode` per series: `lookup[g, c] = (item_mean[g] + sum[g, c]) /
    /// (1 + count[g, c])` over the rows with a finite target.
    fn target_encode(&self, frame: &Frame, target: &[f32], horizon: usize) -> (Vec<f32>, Vec<f32>) {
        let n_slots = self.n_real + 2;
        let mut past = vec![0.0f32; target.len()];
        let mut future = vec![f32::NAN; frame.n_series() * horizon];
        for g in 0..frame.n_series() {
            let rows = frame.rows(g);
            let (mut item_sum, mut item_count) = (0.0f64, 0.0f64);
            let mut sums = vec![0.0f64; n_slots];
            let mut counts = vec![0.0f64; n_slots];
            for r in rows.clone() {
                let y = target[r];
                let (w, m) = match y.is_finite() {
                    true => (f64::from(y), 1.0),
                    false => (0.0, 0.0),
                };
                item_sum += w;
                item_count += m;
                sums[self.past[r]] += w;
                counts[self.past[r]] += m;
            }
            let item_mean = match item_count > 0.0 {
                true => item_sum / item_count,
                false => 0.0,
            };
            let lookup = |c: usize| ((SMOOTH * item_mean + sums[c]) / (SMOOTH + counts[c])) as f32;
            for r in rows {
                past[r] = lookup(self.past[r]);
            }
            if let Some(codes) = &self.future {
                for k in g * horizon..(g + 1) * horizon {
                    future[k] = lookup(codes[k]);
                }
            }
        }
        (past, future)
    }
}

/// `values` (a column of `past`, in its row order) as `f32` by [`finite_f32`], reporting per
/// series what was replaced.
fn finite_column(
    past: &Frame,
    column: &str,
    values: &[f64],
    reports: &mut Vec<NonFinite>,
) -> Vec<f32> {
    let (out, replaced) = finite_f32(values);
    if replaced.is_some() {
        for g in 0..past.n_series() {
            let mut bad = past
                .rows(g)
                .filter(|&i| out[i].is_nan() && !values[i].is_nan());
            if let Some(first) = bad.next() {
                reports.push(NonFinite {
                    id: past.ids[g].clone(),
                    column: column.to_string(),
                    count: 1 + bad.count(),
                    value: values[first],
                    timestamp: past.timestamps[first],
                });
            }
        }
    }
    out
}

/// The forecast table of `past`'s tasks (upstream `predict_df`'s output): `forecasts` holds one
/// forecast per series, `quantiles` `(n_targets, horizon, levels)` and `mean`
/// `(n_targets, horizon)`, of which the first `quantile_levels.len()` levels are written.
pub fn chronos2_forecast_table(
    past: &Frame,
    freq: &Freq,
    forecasts: &[QuantileForecast],
    quantile_levels: &[f64],
) -> Result<ForecastTable> {
    let shape = |what, expected, found| DataError::ShapeMismatch {
        what,
        expected,
        found,
    };
    if forecasts.len() != past.n_series() {
        return Err(shape("forecasts", past.n_series(), forecasts.len()).into());
    }
    let n_levels = quantile_levels.len();
    let mut quantiles = Vec::new();
    let mut predictions = Vec::new();
    let mut horizon = 0;
    for forecast in forecasts {
        // (n_targets, horizon, levels)
        let (_, steps, levels) = forecast.quantiles.size3()?;
        if (levels as usize) < n_levels {
            return Err(shape("forecast levels", n_levels, levels as usize).into());
        }
        horizon = steps as usize;
        let values = Vec::<f32>::try_from(forecast.quantiles.flatten(0, -1))?;
        for row in values.chunks(levels as usize) {
            quantiles.extend_from_slice(&row[..n_levels]);
        }
        predictions.extend(Vec::<f32>::try_from(forecast.mean.flatten(0, -1))?);
    }
    let forecasts = Forecasts {
        target_names: past.targets.iter().map(|t| t.name.clone()).collect(),
        horizon,
        predictions,
        quantile_levels,
        quantiles,
    };
    Ok(ForecastTable::with_targets(
        past.last_timestamps(),
        freq,
        forecasts,
    )?)
}
