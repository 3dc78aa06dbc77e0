//! Typed errors of the library. Every message names what it is about: the file, the tensor, the
//! config key or the series.

use std::path::PathBuf;

/// Result type of the library.
pub type Result<T, E = ChronosError> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum ChronosError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    #[error("{path}: invalid config: {message}")]
    Config { path: PathBuf, message: String },

    #[error("model '{model}': {message}")]
    Hub { model: String, message: String },

    #[error("{path}: {message}")]
    Checkpoint { path: PathBuf, message: String },

    #[error("{0}")]
    InvalidInput(String),

    #[error("not supported: {0}")]
    Unsupported(String),

    #[error(transparent)]
    Torch(#[from] tch::TchError),

    #[error(transparent)]
    Data(#[from] crate::data::DataError),
}

impl ChronosError {
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        ChronosError::Io {
            path: path.into(),
            source,
        }
    }

    pub(crate) fn checkpoint(path: impl Into<PathBuf>, message: impl Into<String>) -> Self {
        ChronosError::Checkpoint {
            path: path.into(),
            message: message.into(),
        }
    }
}
