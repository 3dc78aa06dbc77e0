//! A future table (upstream `future_df`) checked against its past table and aligned with the
//! past table's series: upstream `validate_df`, `normalize_df(order=...)` and `predict_df`'s
//! timestamp check, plus a check of our own that known-future values are present.

use std::collections::{HashMap, HashSet};

use super::frame::{Categorical, Covariate, CovariateValues, Frame};
use super::{future_timestamps, DataError, Freq};

/// The known-future covariates of `future` (its columns besides id and timestamp, in its
/// order), each with `past.n_series() * prediction_length` values, row-major
/// `[series in past order][step]`.
///
/// Errors, in upstream's order, name the future file and the column or series: a target
/// column in the future table, a column the past table lacks, ids that differ from the past
/// ids, a series without exactly `prediction_length` rows, timestamps other than the
/// `prediction_length` steps at `freq` after the series' last past timestamp, and a
/// covariate whose type differs from its past type (pandas would silently treat text against
/// numbers as unseen categories). Missing values of a numeric known-future covariate are an
/// error too, naming series and row: upstream's model would treat such a step as unknown,
/// which is rarely what a forecast with known covariates means. A categorical column may be
/// entirely missing in the future (pandas reads an empty CSV column as float NaN): each value
/// is then the missing category.
pub(super) fn align_future(
    past: &Frame,
    future: &Frame,
    prediction_length: usize,
    freq: &Freq,
) -> Result<Vec<Covariate>, DataError> {
    let path = || future.path.clone();
    if let Some(c) = future
        .covariates
        .iter()
        .find(|c| past.columns.targets.contains(&c.name))
    {
        return Err(DataError::TargetInFuture {
            path: path(),
            column: c.name.clone(),
        });
    }
    if let Some(c) = future
        .covariates
        .iter()
        .find(|c| past.covariate(&c.name).is_none())
    {
        return Err(DataError::UnknownFutureColumn {
            path: path(),
            column: c.name.clone(),
            past: past.path.clone(),
        });
    }

    let past_ids: HashSet<&str> = past.ids.iter().map(String::as_str).collect();
    let future_ids: HashMap<&str, usize> = future
        .ids
        .iter()
        .enumerate()
        .map(|(g, id)| (id.as_str(), g))
        .collect();
    let missing: Vec<String> = past
        .ids
        .iter()
        .filter(|id| !future_ids.contains_key(id.as_str()))
        .cloned()
        .collect();
    let extra: Vec<String> = future
        .ids
        .iter()
        .filter(|id| !past_ids.contains(id.as_str()))
        .cloned()
        .collect();
    if !missing.is_empty() || !extra.is_empty() {
        return Err(DataError::FutureSeriesMismatch {
            path: path(),
            past: past.path.clone(),
            missing,
            extra,
        });
    }

    // Future rows in past series order (upstream normalize_df with `order`).
    let mut rows = Vec::with_capacity(past.n_series() * prediction_length);
    for (id, last) in past.last_timestamps() {
        let g = future_ids[id.as_str()];
        let series_rows = future.rows(g);
        if series_rows.len() != prediction_length {
            return Err(DataError::FutureLength {
                path: path(),
                id,
                found: series_rows.len(),
                expected: prediction_length,
            });
        }
        let expected = future_timestamps(last, freq, prediction_length).ok_or_else(|| {
            DataError::TimestampOverflow {
                id: id.clone(),
                last,
                freq: freq.name(),
            }
        })?;
        for (step, (r, want)) in series_rows.clone().zip(expected).enumerate() {
            if future.timestamps[r] != want {
                return Err(DataError::FutureTimestamp {
                    path: path(),
                    row: future.file_rows[r],
                    id,
                    found: future.timestamps[r],
                    expected: want,
                    step: step + 1,
                    freq: freq.name(),
                });
            }
        }
        rows.extend(series_rows);
    }

    future
        .covariates
        .iter()
        .map(|c| {
            let past_values = &past.covariate(&c.name).expect("checked above").values;
            let values = aligned(past, future, c, past_values, &rows)?;
            Ok(Covariate {
                name: c.name.clone(),
                values,
            })
        })
        .collect()
}

/// Future column `c` at `rows`, in the type of its past column.
fn aligned(
    past: &Frame,
    future: &Frame,
    c: &Covariate,
    past_values: &CovariateValues,
    rows: &[usize],
) -> Result<CovariateValues, DataError> {
    let mismatch = || DataError::CovariateTypeMismatch {
        path: future.path.clone(),
        column: c.name.clone(),
        found: c.values.describe(),
        expected: past_values.describe(),
        past: past.path.clone(),
    };
    match (past_values, &c.values) {
        (CovariateValues::Numeric(_), CovariateValues::Numeric(v)) => {
            let values: Vec<f32> = rows.iter().map(|&r| v[r]).collect();
            if let Some(k) = values.iter().position(|x| x.is_nan()) {
                return Err(DataError::FutureMissingValue {
                    path: future.path.clone(),
                    row: future.file_rows[rows[k]],
                    id: past.ids[k / (rows.len() / past.n_series())].clone(),
                    column: c.name.clone(),
                });
            }
            Ok(CovariateValues::Numeric(values))
        }
        (CovariateValues::Categorical(p), CovariateValues::Categorical(f)) if p.kind == f.kind => {
            Ok(CovariateValues::Categorical(Categorical {
                kind: f.kind,
                categories: f.categories.clone(),
                codes: rows.iter().map(|&r| f.codes[r]).collect(),
            }))
        }
        (CovariateValues::Categorical(p), f) if f.all_missing() => {
            Ok(CovariateValues::Categorical(Categorical {
                kind: p.kind,
                categories: Vec::new(),
                codes: vec![None; rows.len()],
            }))
        }
        _ => Err(mismatch()),
    }
}
