//! Scoring one benchmark dataset with one model (upstream `eval_pipeline_and_save_results`, per
//! dataset): split into windows, forecast them in batches, accumulate MASE and WQL.

use super::config::Benchmark;
use super::dataset::Dataset;
use super::model::Model;
use super::split::windows;
use super::EvalError;
use crate::data::Freq;
use crate::metrics::{self, Evaluator, Scores, QUANTILE_LEVELS};

/// The outcome of one dataset.
#[derive(Debug, Clone, PartialEq)]
pub struct DatasetEvaluation {
    /// `None` when no window fits any series (all too short): the dataset is not scored.
    pub scores: Option<Scores>,
    pub freq: Freq,
    pub seasonality: usize,
    /// Univariate series in the dataset.
    pub series: usize,
    /// Windows forecast and scored.
    pub windows: usize,
    /// Windows that did not fit their series.
    pub skipped_windows: usize,
    /// Id of the first series with a skipped window.
    pub first_skipped: Option<String>,
}

/// Scores `model` on `dataset` cut as `benchmark` says. `progress` is called after each batch
/// with the windows done and the total.
pub fn evaluate_dataset(
    benchmark: &Benchmark,
    dataset: &Dataset,
    model: &Model,
    mut progress: impl FnMut(usize, usize),
) -> Result<DatasetEvaluation, EvalError> {
    let seasonality = metrics::seasonality(&dataset.freq);
    let split = windows(benchmark, dataset.series.iter().map(|s| s.values.len()));
    let h = benchmark.prediction_length;
    let mut evaluator = Evaluator::new(&QUANTILE_LEVELS);
    let mut done = 0;
    for batch in split.windows.chunks(model.batch_size()) {
        let contexts: Vec<&[f64]> = batch
            .iter()
            .map(|w| &dataset.series[w.series].values[..w.start])
            .collect();
        let forecasts = model.forecast(&contexts, h, seasonality)?;
        if forecasts.len() != batch.len() {
            return Err(EvalError::InvalidInput(format!(
                "dataset '{}': the model returned {} forecasts for {} windows",
                dataset.name,
                forecasts.len(),
                batch.len()
            )));
        }
        for (window, forecast) in batch.iter().zip(&forecasts) {
            let series = &dataset.series[window.series];
            let (context, rest) = series.values.split_at(window.start);
            evaluator
                .add(context, &rest[..h], forecast, seasonality)
                .map_err(|source| EvalError::Metric {
                    dataset: dataset.name.clone(),
                    series: series.id.clone(),
                    source,
                })?;
        }
        done += batch.len();
        progress(done, split.windows.len());
    }
    Ok(DatasetEvaluation {
        scores: (!split.windows.is_empty()).then(|| evaluator.scores()),
        freq: dataset.freq,
        seasonality,
        series: dataset.series.len(),
        windows: split.windows.len(),
        skipped_windows: split.skipped.len(),
        first_skipped: split
            .skipped
            .first()
            .map(|(s, _)| dataset.series[*s].id.clone()),
    })
}
