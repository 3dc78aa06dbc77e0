//! The training part of a benchmark dataset: each series' history before its first evaluation
//! window ([`history_end`]), as GluonTS entries for `train` (`evaluate history`). A model trained
//! on it has seen the datasets but none of their evaluation windows.

use super::config::Benchmark;
use super::dataset::Dataset;
use super::split::history_end;
use super::EvalError;
use crate::data::GluonEntry;

/// The histories of one dataset, and the series left without one.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct History {
    /// `<dataset>/<series id>` of each entry.
    pub ids: Vec<String>,
    pub entries: Vec<GluonEntry>,
    /// Ids of the series whose first window starts at their first step (no history).
    pub empty: Vec<String>,
}

/// The history of every series of `dataset` before the first window of `benchmark`.
/// A series with a history but no start timestamp is an error naming it.
pub fn training_history(benchmark: &Benchmark, dataset: &Dataset) -> Result<History, EvalError> {
    let mut out = History::default();
    for series in &dataset.series {
        let id = format!("{}/{}", dataset.name, series.id);
        let end = history_end(series.values.len(), benchmark.offset);
        if end == 0 {
            out.empty.push(id);
            continue;
        }
        let start = series.start.ok_or_else(|| {
            EvalError::InvalidInput(format!(
                "dataset '{}', series '{}': no start timestamp",
                dataset.name, series.id
            ))
        })?;
        out.entries.push(GluonEntry {
            start,
            target: series.values[..end].to_vec(),
        });
        out.ids.push(id);
    }
    Ok(out)
}
