//! Forecast accuracy metrics of the Chronos benchmark, with the semantics of GluonTS
//! (`gluonts.ev`, `gluonts.model.evaluation.evaluate_forecasts`, gluonts 0.16) as upstream's
//! `scripts/evaluation/evaluate.py` uses them:
//!
//! * **MASE** (`MASE()`, reported as `MASE[0.5]`): `|y - median| / seasonal_error`, averaged over
//!   every (window, step) of a dataset whose scaled error is defined;
//! * **WQL** (`MeanWeightedSumQuantileLoss(levels)`): for each level `q`, the quantile loss
//!   `2 |(y - f_q) (1[f_q >= y] - q)|` summed over the dataset and divided by the summed `|y|`;
//!   then the mean over the levels.
//!
//! Missing targets (`NaN`, `±inf`) are masked as GluonTS's `mask_invalid_label` does: masked
//! label steps count in neither sum; masked context values drop the differences they belong to
//! from the seasonal error. A step whose scaled error is undefined (seasonal error 0, e.g. a
//! constant context, or not finite) is left out of MASE, as numpy's masked division does.
//! [`Forecast`] mirrors GluonTS's `QuantileForecast` and `SampleForecast`, including how a sample
//! forecast answers a quantile (the nearest order statistic, no interpolation).

use crate::data::{Freq, TickUnit};

/// The quantile levels of the benchmark's WQL (upstream `QUANTILES`).
pub const QUANTILE_LEVELS: [f64; 9] = [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9];

/// Invalid forecasts or inputs given to the metrics.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum MetricError {
    #[error("forecast has {found} values, expected {expected} ({what})")]
    Shape {
        what: &'static str,
        expected: usize,
        found: usize,
    },
    #[error("the forecast has no quantile level {level} (it has {available:?})")]
    MissingLevel { level: f64, available: Vec<f64> },
    #[error("quantile level {0} is outside [0, 1]")]
    InvalidLevel(f64),
    #[error("the forecast at level {level} contains NaN (GluonTS refuses NaN forecasts)")]
    NanForecast { level: f64 },
    #[error("the label has {label} steps but the forecast {forecast}")]
    HorizonMismatch { label: usize, forecast: usize },
}

/// Seasonality of a frequency for the seasonal error, as GluonTS `get_seasonality` of the
/// pandas period alias upstream derives (`to_period().freqstr`): the base seasonality (`s`
/// 3600, `min` 1440, `h` 24, `B` 5, month 12, quarter 4; everything else 1) divided by the
/// frequency's multiple when it divides it, else 1 (`2h` → 12, `15min` → 96, `5h` → 1).
pub fn seasonality(freq: &Freq) -> usize {
    let (base, n): (i64, i64) = match *freq {
        Freq::Tick { n, unit } => (
            match unit {
                TickUnit::Second => 3600,
                TickUnit::Minute => 1440,
                TickUnit::Hour => 24,
                TickUnit::Day | TickUnit::Milli | TickUnit::Micro | TickUnit::Nano => 1,
            },
            n,
        ),
        Freq::BusinessDay { n } => (5, n),
        Freq::Month { n, .. } => (12, n),
        Freq::Quarter { n, .. } => (4, n),
        Freq::Week { n, .. } | Freq::Year { n, .. } | Freq::WeekOfMonth { n, .. } => (1, n),
    };
    if n > 0 && base % n == 0 {
        (base / n) as usize
    } else {
        1
    }
}

/// Seasonal error of an in-sample `context` (GluonTS `seasonal_error` on the masked context):
/// the mean of `|y[t] - y[t - m]|` over the pairs whose two values are finite, with
/// `m = seasonality`, or 1 when the context is shorter than that (a `seasonality` of 0 counts
/// as 1). It is 0 when no pair is valid (GluonTS's masked mean reads as 0 once stacked), which
/// leaves the window out of MASE.
pub fn seasonal_error(context: &[f64], seasonality: usize) -> f64 {
    let m = if seasonality > context.len() {
        1
    } else {
        seasonality.max(1)
    };
    let (mut sum, mut count) = (0.0, 0usize);
    for (now, before) in context.iter().skip(m).zip(context) {
        if now.is_finite() && before.is_finite() {
            sum += (now - before).abs();
            count += 1;
        }
    }
    if count == 0 {
        0.0
    } else {
        sum / count as f64
    }
}

/// Quantile loss of one step (GluonTS `quantile_loss`): `2 |(y - f) (1[f >= y] - q)|`.
pub fn quantile_loss(label: f64, forecast: f64, q: f64) -> f64 {
    let indicator = if forecast >= label { 1.0 } else { 0.0 };
    2.0 * ((label - forecast) * (indicator - q)).abs()
}

/// A probabilistic forecast of one window of `horizon` steps.
#[derive(Debug, Clone, PartialEq)]
pub struct Forecast {
    horizon: usize,
    kind: ForecastKind,
}

#[derive(Debug, Clone, PartialEq)]
enum ForecastKind {
    /// `values`: `(levels, horizon)` row-major.
    Quantiles { levels: Vec<f64>, values: Vec<f64> },
    /// `sorted`: `(samples, horizon)` row-major, each step's column sorted ascending.
    Samples { count: usize, sorted: Vec<f64> },
}

impl Forecast {
    /// Quantile forecast (GluonTS `QuantileForecast`): `values` is `(levels.len(), horizon)`
    /// row-major, row `k` the forecast at `levels[k]`.
    pub fn from_quantiles(
        levels: &[f64],
        horizon: usize,
        values: Vec<f64>,
    ) -> Result<Self, MetricError> {
        if let Some(bad) = levels.iter().find(|q| !(0.0..=1.0).contains(*q)) {
            return Err(MetricError::InvalidLevel(*bad));
        }
        check_len("levels x horizon", levels.len() * horizon, values.len())?;
        Ok(Forecast {
            horizon,
            kind: ForecastKind::Quantiles {
                levels: levels.to_vec(),
                values,
            },
        })
    }

    /// Sample forecast (GluonTS `SampleForecast`): `samples` is `(count, horizon)` row-major,
    /// one sample path per row; `count >= 1`.
    pub fn from_samples(
        count: usize,
        horizon: usize,
        mut samples: Vec<f64>,
    ) -> Result<Self, MetricError> {
        if count == 0 {
            return Err(MetricError::Shape {
                what: "sample paths",
                expected: 1,
                found: 0,
            });
        }
        check_len("samples x horizon", count * horizon, samples.len())?;
        if count > 1 {
            let mut column = vec![0.0; count];
            for t in 0..horizon {
                for (s, v) in column.iter_mut().enumerate() {
                    *v = samples[s * horizon + t];
                }
                column.sort_by(f64::total_cmp);
                for (s, v) in column.iter().enumerate() {
                    samples[s * horizon + t] = *v;
                }
            }
        }
        Ok(Forecast {
            horizon,
            kind: ForecastKind::Samples {
                count,
                sorted: samples,
            },
        })
    }

    /// Steps forecast.
    pub fn horizon(&self) -> usize {
        self.horizon
    }

    /// The forecast at quantile level `q` (`horizon` values), as GluonTS `Forecast.quantile`:
    /// a quantile forecast returns its row for exactly that level (other levels are an error);
    /// a sample forecast returns, per step, the sorted sample at index
    /// `round_half_even((count - 1) q)`.
    pub fn quantile(&self, q: f64) -> Result<&[f64], MetricError> {
        if !(0.0..=1.0).contains(&q) {
            return Err(MetricError::InvalidLevel(q));
        }
        let row = match &self.kind {
            ForecastKind::Quantiles { levels, values } => {
                let k = levels.iter().position(|l| *l == q).ok_or_else(|| {
                    MetricError::MissingLevel {
                        level: q,
                        available: levels.clone(),
                    }
                })?;
                &values[k * self.horizon..(k + 1) * self.horizon]
            }
            ForecastKind::Samples { count, sorted } => {
                let k = (((count - 1) as f64) * q).round_ties_even() as usize;
                &sorted[k * self.horizon..(k + 1) * self.horizon]
            }
        };
        Ok(row)
    }
}

fn check_len(what: &'static str, expected: usize, found: usize) -> Result<(), MetricError> {
    if expected == found {
        Ok(())
    } else {
        Err(MetricError::Shape {
            what,
            expected,
            found,
        })
    }
}

/// MASE and WQL of a dataset.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Scores {
    /// GluonTS `MASE[0.5]`; NaN when no step has a defined scaled error.
    pub mase: f64,
    /// GluonTS `mean_weighted_sum_quantile_loss`.
    pub wql: f64,
}

/// Accumulates MASE and WQL over the windows of a dataset (GluonTS `evaluate_forecasts` with
/// `MASE()` and `MeanWeightedSumQuantileLoss(levels)`, aggregated over everything).
#[derive(Debug, Clone)]
pub struct Evaluator {
    levels: Vec<f64>,
    scaled_error_sum: f64,
    scaled_error_count: usize,
    quantile_loss_sums: Vec<f64>,
    abs_label_sum: f64,
}

impl Evaluator {
    /// An empty evaluator for WQL at `levels` (the benchmark uses [`QUANTILE_LEVELS`]).
    pub fn new(levels: &[f64]) -> Self {
        Evaluator {
            levels: levels.to_vec(),
            scaled_error_sum: 0.0,
            scaled_error_count: 0,
            quantile_loss_sums: vec![0.0; levels.len()],
            abs_label_sum: 0.0,
        }
    }

    /// Adds one window: its in-sample `context` (for the seasonal error, at `seasonality`), its
    /// `label` (the true future values) and the `forecast` of it. Nothing is added when the
    /// forecast is invalid (NaN, wrong horizon, missing level).
    pub fn add(
        &mut self,
        context: &[f64],
        label: &[f64],
        forecast: &Forecast,
        seasonality: usize,
    ) -> Result<(), MetricError> {
        if label.len() != forecast.horizon() {
            return Err(MetricError::HorizonMismatch {
                label: label.len(),
                forecast: forecast.horizon(),
            });
        }
        let checked = |q: f64| -> Result<&[f64], MetricError> {
            let row = forecast.quantile(q)?;
            match row.iter().any(|v| v.is_nan()) {
                true => Err(MetricError::NanForecast { level: q }),
                false => Ok(row),
            }
        };
        let median = checked(0.5)?;
        let rows = self
            .levels
            .iter()
            .map(|&q| checked(q))
            .collect::<Result<Vec<_>, _>>()?;

        let scale = seasonal_error(context, seasonality);
        for (y, f) in label.iter().zip(median) {
            if !y.is_finite() {
                continue;
            }
            let error = (y - f).abs();
            // numpy's masked division: masked where |a| * tiny >= |b| or the result is not finite.
            if error * f64::MIN_POSITIVE >= scale.abs() {
                continue;
            }
            let scaled = error / scale;
            if scaled.is_finite() {
                self.scaled_error_sum += scaled;
                self.scaled_error_count += 1;
            }
        }
        for ((sum, row), &q) in self
            .quantile_loss_sums
            .iter_mut()
            .zip(&rows)
            .zip(&self.levels)
        {
            for (y, f) in label.iter().zip(*row) {
                let loss = quantile_loss(*y, *f, q);
                if y.is_finite() && !loss.is_nan() {
                    *sum += loss;
                }
            }
        }
        self.abs_label_sum += label
            .iter()
            .filter(|y| y.is_finite())
            .map(|y| y.abs())
            .sum::<f64>();
        Ok(())
    }

    /// MASE and WQL of everything added so far.
    pub fn scores(&self) -> Scores {
        let mase = match self.scaled_error_count {
            0 => f64::NAN,
            n => self.scaled_error_sum / n as f64,
        };
        let wql = self
            .quantile_loss_sums
            .iter()
            .map(|s| s / self.abs_label_sum)
            .sum::<f64>()
            / self.levels.len() as f64;
        Scores { mase, wql }
    }
}
