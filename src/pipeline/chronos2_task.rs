//! A Chronos-2 forecasting task (upstream `PreparedInput`): the rows of one item that the model
//! sees together through group attention.

use crate::error::{ChronosError, Result};

/// One task: `n_targets` targets, then `n_covariates - n_future_covariates` past-only
/// covariates, then `n_future_covariates` known-future covariates (upstream's row order).
#[derive(Debug, Clone, PartialEq)]
pub struct Chronos2Task {
    /// `(rows, history)` row-major, f32, NaN = missing; `rows = n_targets + n_covariates`.
    pub context: Vec<f32>,
    /// `(rows, horizon)` row-major: NaN except in the known-future rows (the last
    /// `n_future_covariates`), whose values are known over the horizon.
    pub future: Vec<f32>,
    pub history: usize,
    pub horizon: usize,
    pub n_targets: usize,
    pub n_covariates: usize,
    pub n_future_covariates: usize,
}

impl Chronos2Task {
    /// Targets only (upstream `from_list_of_tensors`): `targets` `(n_targets, history)`, all
    /// rows of equal length; the future rows are NaN.
    pub fn from_targets<S: AsRef<[f32]>>(targets: &[S], horizon: usize) -> Result<Self> {
        let n_targets = targets.len();
        let history = targets.first().map_or(0, |t| t.as_ref().len());
        if let Some(i) = targets.iter().position(|t| t.as_ref().len() != history) {
            return Err(ChronosError::InvalidInput(format!(
                "target row {i} has {} values, row 0 has {history}",
                targets[i].as_ref().len()
            )));
        }
        let task = Chronos2Task {
            context: targets
                .iter()
                .flat_map(|t| t.as_ref().iter().copied())
                .collect(),
            future: vec![f32::NAN; n_targets * horizon],
            history,
            horizon,
            n_targets,
            n_covariates: 0,
            n_future_covariates: 0,
        };
        task.validate()?;
        Ok(task)
    }

    pub fn rows(&self) -> usize {
        self.n_targets + self.n_covariates
    }

    /// Consistent sizes: at least one target and one time step, buffers of the stated shapes.
    pub fn validate(&self) -> Result<()> {
        let bad = |m: String| Err(ChronosError::InvalidInput(m));
        if self.n_targets == 0 {
            return bad("a task needs at least one target row".into());
        }
        if self.history == 0 {
            return bad("a task needs at least one time step of history".into());
        }
        if self.n_future_covariates > self.n_covariates {
            return bad(format!(
                "n_future_covariates {} exceeds n_covariates {}",
                self.n_future_covariates, self.n_covariates
            ));
        }
        if self.context.len() != self.rows() * self.history {
            return bad(format!(
                "context has {} values, expected rows {} x history {}",
                self.context.len(),
                self.rows(),
                self.history
            ));
        }
        if self.future.len() != self.rows() * self.horizon {
            return bad(format!(
                "future has {} values, expected rows {} x horizon {}",
                self.future.len(),
                self.rows(),
                self.horizon
            ));
        }
        Ok(())
    }
}
