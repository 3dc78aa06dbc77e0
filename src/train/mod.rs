//! Training (issue 6): the data pipeline, the configuration and the optimisation step.

pub mod config;
pub mod data;
pub mod step;
