//! chronos-rs: Chronos forecasting models (Chronos-T5, Chronos-Bolt and Chronos-2) on libtorch.
//!
//! Modules are named after the concepts: [`config`] mirrors `config.json`, [`checkpoint`] reads
//! original Hugging Face checkpoints, [`t5`] holds the T5 blocks shared by the families,
//! [`bolt`] the Chronos-Bolt network, [`chronos2`] the Chronos-2 network and [`lora`] its
//! adapters, [`tokenizer`], [`chronos_t5`] and [`sampling`] the
//! tokenised Chronos-T5, [`pipeline`] the forecasting entry points, [`bundled`] the small model
//! compiled into the library, [`plot`] forecast pictures, [`data`] long-format tables in and
//! out, [`train`] training and [`distributed`] its data parallelism over libtorch's c10d.

pub mod atomic;
pub mod attention;
pub mod bolt;
pub mod bundled;
pub mod checkpoint;
pub mod chronos2;
pub mod chronos_t5;
pub mod cli;
pub mod config;
pub mod data;
pub mod distributed;
pub mod dropout;
pub mod error;
pub mod eval;
pub mod gpt2;
pub mod init;
pub mod kernel_synth;
pub mod lora;
pub mod metrics;
pub mod pipeline;
pub mod plot;
pub mod precision;
pub mod runtime;
pub mod sampling;
mod shim;
pub mod t5;
pub mod tokenizer;
pub mod train;

pub use error::{ChronosError, Result};
pub use pipeline::{BoltPipeline, Dtype, Pipeline};
