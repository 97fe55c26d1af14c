//! Error type shared by the whole crate.
//!
//! Every error names what was wrong (the file, field or shape) and what was expected, so a
//! command-line user sees one clear line and a library user can match on the variant.

use std::path::PathBuf;

/// Result alias used across the crate.
pub type Result<T, E = SiameseError> = std::result::Result<T, E>;

/// Everything that can go wrong when building, training, saving or loading a Siamese model.
#[derive(Debug, thiserror::Error)]
pub enum SiameseError {
    /// A tensor or array had the wrong shape.
    #[error("shape mismatch in {what}: expected {expected}, got {got}")]
    Shape {
        /// What was being checked (e.g. `"input a"`).
        what: String,
        /// The expected shape, in words.
        expected: String,
        /// The shape that was found.
        got: String,
    },
    /// A value was outside its allowed range (labels outside [0, 1], NaN in inputs, ...).
    #[error("invalid value in {what}: {message}")]
    InvalidValue {
        /// Which input or field holds the value.
        what: String,
        /// What is wrong with it and what was expected.
        message: String,
    },
    /// A configuration value was invalid.
    #[error("invalid configuration `{field}`: {message}")]
    Config {
        /// The configuration field.
        field: String,
        /// What is wrong with it.
        message: String,
    },
    /// Reading or writing a file failed.
    #[error("{path}: {source}")]
    Io {
        /// The file involved.
        path: PathBuf,
        /// The underlying I/O error.
        #[source]
        source: std::io::Error,
    },
    /// A file existed but its content was not what was expected.
    #[error("{path}: {message}")]
    Format {
        /// The file involved.
        path: PathBuf,
        /// What is wrong with its content.
        message: String,
    },
    /// A dataset had no usable samples or pairs.
    #[error("empty dataset: {0}")]
    Empty(String),
    /// A numeric failure while running the model (e.g. a diverged loss).
    #[error("runtime failure: {0}")]
    Runtime(String),
    /// Something named does not exist (an identity or sample of a gallery).
    #[error("not found: {0}")]
    NotFound(String),
    /// A write that contradicts what is stored (e.g. the same sample enrolled twice).
    #[error("conflict in {what}: {message}")]
    Conflict {
        /// What was written.
        what: String,
        /// What it contradicts.
        message: String,
    },
    /// The embedded storage failed (a database error, a full disk).
    #[error("storage failure in {path}: {message}")]
    Storage {
        /// The database file.
        path: PathBuf,
        /// The storage engine's message.
        message: String,
    },
}

impl SiameseError {
    /// Shorthand for a [`SiameseError::Shape`].
    pub fn shape(
        what: impl Into<String>,
        expected: impl Into<String>,
        got: impl Into<String>,
    ) -> Self {
        Self::Shape {
            what: what.into(),
            expected: expected.into(),
            got: got.into(),
        }
    }

    /// Shorthand for a [`SiameseError::InvalidValue`].
    pub fn invalid(what: impl Into<String>, message: impl Into<String>) -> Self {
        Self::InvalidValue {
            what: what.into(),
            message: message.into(),
        }
    }

    /// Shorthand for a [`SiameseError::Config`].
    pub fn config(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self::Config {
            field: field.into(),
            message: message.into(),
        }
    }

    /// Shorthand for a [`SiameseError::Io`].
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Self::Io {
            path: path.into(),
            source,
        }
    }

    /// Shorthand for a [`SiameseError::Format`].
    pub fn format(path: impl Into<PathBuf>, message: impl Into<String>) -> Self {
        Self::Format {
            path: path.into(),
            message: message.into(),
        }
    }

    /// Whether this error comes from bad user input (exit code 2 on the command line) rather
    /// than from a failure while running (exit code 1).
    pub fn is_input_error(&self) -> bool {
        !matches!(self, Self::Runtime(_) | Self::Storage { .. })
    }
}
