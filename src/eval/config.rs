//! Benchmark configs: upstream's `scripts/evaluation/configs/*.yaml`, a list of
//! `{name, hf_repo, offset, prediction_length, num_rolls}`, plus an optional `freq`.

use std::path::Path;

use serde::{Deserialize, Deserializer};

use super::EvalError;
use crate::data::Freq;

/// One benchmark task: dataset `name` (of the HF dataset repo `hf_repo`), cut as GluonTS
/// `split(offset)` + `generate_instances(prediction_length, windows = num_rolls)`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Benchmark {
    pub name: String,
    pub hf_repo: String,
    /// Where the first forecast window starts: from the end of each series when negative, from
    /// its start otherwise.
    pub offset: i64,
    pub prediction_length: usize,
    /// Consecutive windows of `prediction_length` steps from `offset` on.
    pub num_rolls: usize,
    /// Frequency (pandas alias) instead of the one inferred from the timestamps; needed for
    /// GluonTS-style files, which have a start but no timestamps. Not in upstream's configs.
    #[serde(default, deserialize_with = "pandas_freq")]
    pub freq: Option<Freq>,
}

fn pandas_freq<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Freq>, D::Error> {
    Option::<String>::deserialize(d)?
        .map(|s| s.parse().map_err(serde::de::Error::custom))
        .transpose()
}

impl Benchmark {
    /// Rejects what GluonTS would reject for every series: no window, an empty horizon, or
    /// (negative offsets) windows that run past the end of the series.
    pub fn validate(&self) -> Result<(), String> {
        if self.name.is_empty() {
            return Err("empty dataset name".into());
        }
        if self.prediction_length == 0 {
            return Err("prediction_length must be at least 1".into());
        }
        if self.num_rolls == 0 {
            return Err("num_rolls must be at least 1".into());
        }
        let span = (self.prediction_length as i128) * (self.num_rolls as i128);
        if self.offset < 0 && i128::from(self.offset) + span > 0 {
            return Err(format!(
                "offset {} leaves {} steps after the split, but {} rolls of {} need {span}",
                self.offset, -self.offset, self.num_rolls, self.prediction_length
            ));
        }
        Ok(())
    }
}

/// Reads and validates a benchmark config (YAML list). Names must be unique: they key the
/// results.
pub fn read_benchmarks(path: &Path) -> Result<Vec<Benchmark>, EvalError> {
    let text = std::fs::read_to_string(path).map_err(|e| EvalError::io(path, e))?;
    let config_err = |message: String| EvalError::Config {
        path: path.to_path_buf(),
        message,
    };
    let benchmarks: Vec<Benchmark> =
        serde_yaml::from_str(&text).map_err(|e| config_err(e.to_string()))?;
    if benchmarks.is_empty() {
        return Err(config_err("the config lists no dataset".into()));
    }
    for (i, b) in benchmarks.iter().enumerate() {
        b.validate()
            .map_err(|m| config_err(format!("entry {} ('{}'): {m}", i + 1, b.name)))?;
        if benchmarks[..i].iter().any(|other| other.name == b.name) {
            return Err(config_err(format!("dataset '{}' is listed twice", b.name)));
        }
    }
    Ok(benchmarks)
}
