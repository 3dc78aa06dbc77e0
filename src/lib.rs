//! chronos-rs: Chronos forecasting models (Chronos-Bolt; Chronos-T5 to come) on libtorch.
//!
//! Modules are named after the concepts: [`config`] mirrors `config.json`, [`checkpoint`] reads
//! original Hugging Face checkpoints, [`t5`] holds the T5 blocks shared by the families,
//! [`bolt`] the Chronos-Bolt network, [`pipeline`] the forecasting entry points, and [`data`]
//! long-format tables in and out.

pub mod bolt;
pub mod checkpoint;
pub mod config;
pub mod data;
pub mod error;
pub mod pipeline;
pub mod t5;

pub use error::{ChronosError, Result};
pub use pipeline::{BoltPipeline, Dtype, Pipeline};
