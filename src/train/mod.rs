//! Training (issue 6): the data pipeline, the configuration, the optimisation step and the loop
//! (`run`, behind the `train` binary).

pub mod adamw;
pub mod config;
pub mod data;
pub mod run;
pub mod step;
pub mod tensorboard;
