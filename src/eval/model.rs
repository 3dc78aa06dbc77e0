//! The forecasters the benchmark runs: a Chronos pipeline (upstream `generate_forecasts`:
//! `predict_quantiles` at the nine WQL levels, scored as a GluonTS `QuantileForecast`) or the
//! built-in `seasonal-naive` baseline.

use tch::{Device, Tensor};

use super::EvalError;
use crate::metrics::{Forecast, QUANTILE_LEVELS};
use crate::pipeline::{left_pad_and_stack, Chronos2Options, Chronos2Task, Dtype, Pipeline};

/// The `--model` value that selects the seasonal-naive baseline.
pub const SEASONAL_NAIVE: &str = "seasonal-naive";

/// How to load and run a Chronos model.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ModelOptions {
    pub dtype: Dtype,
    pub device: Device,
    /// Contexts per forward pass (upstream's `batch_size`; it also sets the padded width of
    /// each batch, as upstream).
    pub batch_size: usize,
    /// Sample paths per series, for sample-based models (Chronos-T5); `None` for the model's
    /// default. Quantile models (Chronos-Bolt) refuse it.
    pub num_samples: Option<usize>,
}

/// A forecaster of benchmark windows.
#[derive(Debug)]
pub enum Model {
    /// Last season repeated (`season` = the dataset's seasonality); the last value when the
    /// context is shorter than a season. Missing values are filled first as GluonTS
    /// `LastValueImputation`. Its forecast is a single sample path, so every quantile is the
    /// point forecast (as GluonTS `SeasonalNaivePredictor`).
    SeasonalNaive,
    /// A Chronos pipeline. Chronos-Bolt forecasts the nine WQL levels (GluonTS
    /// `QuantileForecast`); Chronos-T5 forecasts `num_samples` sample paths, scored as a GluonTS
    /// `SampleForecast` of them, as upstream's evaluation did for the paper's T5 results (the
    /// current upstream script instead wraps T5's nine empirical quantiles in a
    /// `SampleForecast`, whose order statistics are then not the named levels).
    Chronos {
        pipeline: Box<Pipeline>,
        batch_size: usize,
        num_samples: Option<usize>,
    },
}

impl Model {
    /// `seasonal-naive`, or a Chronos checkpoint (local folder or hub id) loaded with `options`.
    pub fn load(spec: &str, options: &ModelOptions) -> Result<Self, EvalError> {
        if options.batch_size == 0 {
            return Err(EvalError::InvalidInput(
                "batch size must be at least 1".into(),
            ));
        }
        if options.num_samples == Some(0) {
            return Err(EvalError::InvalidInput(
                "the number of samples must be at least 1".into(),
            ));
        }
        let pipeline = match spec {
            SEASONAL_NAIVE => None,
            _ => Some(Pipeline::load(spec, options.dtype, options.device)?),
        };
        match (pipeline, options.num_samples) {
            (None, None) => Ok(Model::SeasonalNaive),
            (None, Some(_)) => Err(EvalError::Unsupported(
                "--num-samples does not apply to seasonal-naive".into(),
            )),
            (Some(p @ (Pipeline::Bolt(_) | Pipeline::Chronos2(_))), Some(n)) => {
                Err(EvalError::Unsupported(format!(
                    "--num-samples {n}: '{spec}' is a {} model, which forecasts quantiles \
                     directly; sample counts apply to Chronos-T5 models",
                    p.family()
                )))
            }
            (Some(pipeline), num_samples) => Ok(Model::Chronos {
                pipeline: Box::new(pipeline),
                batch_size: options.batch_size,
                num_samples,
            }),
        }
    }

    /// The horizon the model forecasts in one pass (longer ones are unrolled); `None` for
    /// seasonal naive.
    pub fn prediction_length(&self) -> Option<usize> {
        match self {
            Model::SeasonalNaive => None,
            Model::Chronos { pipeline, .. } => Some(pipeline.prediction_length() as usize),
        }
    }

    /// Contexts per [`Model::forecast`] call that the runner should pass.
    pub fn batch_size(&self) -> usize {
        match self {
            Model::SeasonalNaive => usize::MAX,
            Model::Chronos { batch_size, .. } => *batch_size,
        }
    }

    /// One forecast of `horizon` steps per context (contexts must not be empty; `NaN` =
    /// missing). `seasonality` is the dataset's (used by seasonal naive).
    pub fn forecast(
        &self,
        contexts: &[&[f64]],
        horizon: usize,
        seasonality: usize,
    ) -> Result<Vec<Forecast>, EvalError> {
        if horizon == 0 {
            return Err(EvalError::InvalidInput(
                "the horizon must be at least 1".into(),
            ));
        }
        let metric = |source| EvalError::InvalidInput(format!("invalid forecast: {source}"));
        let Model::Chronos {
            pipeline,
            num_samples,
            ..
        } = self
        else {
            return contexts
                .iter()
                .map(|c| {
                    Forecast::from_samples(1, horizon, seasonal_naive(c, seasonality, horizon))
                        .map_err(metric)
                })
                .collect();
        };
        let f32_contexts: Vec<Vec<f32>> = contexts
            .iter()
            .map(|c| c.iter().map(|&v| v as f32).collect())
            .collect();
        let context = left_pad_and_stack(&f32_contexts)?;
        let h = Some(horizon as i64);
        // Per series, (rows, horizon) row-major: the levels (Bolt) or the sample paths (T5).
        let (rows, values) = match pipeline.as_ref() {
            Pipeline::Bolt(p) => {
                let out = p.predict_quantiles(&context, h, &QUANTILE_LEVELS, false)?;
                (QUANTILE_LEVELS.len(), out.quantiles.transpose(1, 2))
            }
            Pipeline::Chronos2(p) => {
                // Each series its own task, unpadded, as upstream's list-of-tensors input.
                let tasks = f32_contexts
                    .iter()
                    .map(|c| Chronos2Task::from_targets(&[c], horizon))
                    .collect::<crate::Result<Vec<_>>>()?;
                let options = Chronos2Options {
                    prediction_length: h,
                    ..Chronos2Options::default()
                };
                let out = p.predict_quantiles(&tasks, &QUANTILE_LEVELS, &options)?;
                let quantiles: Vec<Tensor> = out.into_iter().map(|f| f.quantiles).collect();
                (
                    QUANTILE_LEVELS.len(),
                    Tensor::cat(&quantiles, 0).transpose(1, 2),
                )
            }
            Pipeline::Chronos(p) => {
                let mut sampling = p.default_sampling();
                if let Some(n) = num_samples {
                    sampling.num_samples = *n as i64;
                }
                let paths = p.predict(&context, h, &sampling, false)?;
                (paths.size()[1] as usize, paths)
            }
        };
        let values = Vec::<f32>::try_from(values.contiguous().flatten(0, -1))
            .map_err(crate::ChronosError::from)?;
        values
            .chunks(rows * horizon)
            .map(|chunk| {
                let chunk: Vec<f64> = chunk.iter().map(|&v| f64::from(v)).collect();
                match pipeline.as_ref() {
                    Pipeline::Bolt(_) | Pipeline::Chronos2(_) => {
                        Forecast::from_quantiles(&QUANTILE_LEVELS, horizon, chunk)
                    }
                    Pipeline::Chronos(_) => Forecast::from_samples(rows, horizon, chunk),
                }
                .map_err(metric)
            })
            .collect()
    }
}

/// Seasonal-naive forecast of `horizon` steps: `y[n - season + (k mod season)]` for step `k` of a
/// context of `n >= season` values, else the last value repeated. `NaN`s are filled first with
/// the last value before them (leading ones with the first value; an all-`NaN` context with 0),
/// as GluonTS `LastValueImputation`. An empty context gives `NaN`s.
pub fn seasonal_naive(context: &[f64], season: usize, horizon: usize) -> Vec<f64> {
    let filled = fill_missing(context);
    let n = filled.len();
    let season = season.max(1);
    if n == 0 {
        return vec![f64::NAN; horizon];
    }
    if n >= season {
        (0..horizon)
            .map(|k| filled[n - season + k % season])
            .collect()
    } else {
        vec![filled[n - 1]; horizon]
    }
}

/// GluonTS `LastValueImputation`: forward fill, then leading `NaN`s take the first value; all
/// `NaN` (or a single `NaN`) becomes 0 (`DummyValueImputation`).
fn fill_missing(values: &[f64]) -> Vec<f64> {
    let Some(first) = values.iter().copied().find(|v| !v.is_nan()) else {
        return vec![0.0; values.len()];
    };
    let mut last = first;
    values
        .iter()
        .map(|&v| {
            if !v.is_nan() {
                last = v;
            }
            last
        })
        .collect()
}
