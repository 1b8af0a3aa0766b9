//! The crate's error type.

use std::fmt;

/// A boxed error from a stage's closure.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// What can go wrong in a pipeline run.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A stage's closure returned an error for an item.
    #[error("stage `{stage}` failed on item {item}: {source}")]
    Stage {
        /// The stage's name.
        stage: String,
        /// The item's id (its position in the source, from 0, unless the source set ids).
        item: u64,
        /// What the closure returned.
        #[source]
        source: BoxError,
    },
    /// A stage's closure panicked on an item (the panic is caught; the run goes on or stops
    /// by the error policy).
    #[error("stage `{stage}` panicked on item {item}: {message}")]
    Panic {
        /// The stage's name.
        stage: String,
        /// The item's id.
        item: u64,
        /// The panic payload, when it was a string.
        message: String,
    },
    /// A pipeline thread itself panicked (outside any closure): a bug in this crate.
    #[error("a thread of stage `{stage}` panicked: {message}")]
    ThreadPanic {
        /// The stage's name.
        stage: String,
        /// The panic payload, when it was a string.
        message: String,
    },
    /// A thread could not be started.
    #[error("could not start a thread for stage `{stage}`: {source}")]
    Spawn {
        /// The stage's name.
        stage: String,
        /// The operating system's answer.
        #[source]
        source: std::io::Error,
    },
    /// A stage option is out of range.
    #[error("stage `{stage}`: {option} {problem}")]
    Config {
        /// The stage's name.
        stage: String,
        /// The option.
        option: &'static str,
        /// What is wrong with it.
        problem: String,
    },
}

impl Error {
    /// The name of the stage the error happened in.
    pub fn stage(&self) -> &str {
        match self {
            Error::Stage { stage, .. }
            | Error::Panic { stage, .. }
            | Error::ThreadPanic { stage, .. }
            | Error::Spawn { stage, .. }
            | Error::Config { stage, .. } => stage,
        }
    }

    /// The id of the item the error happened on, when there was one.
    pub fn item(&self) -> Option<u64> {
        match self {
            Error::Stage { item, .. } | Error::Panic { item, .. } => Some(*item),
            _ => None,
        }
    }
}

/// `Result` with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// The text of a panic payload.
pub(crate) fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "non-string panic payload".to_string()
    }
}

/// An item that failed under [`ErrorPolicy::Skip`](crate::ErrorPolicy::Skip), handed to the
/// dead-letter callback.
pub struct DeadLetter {
    /// The item's id.
    pub item: u64,
    /// The stage it failed in.
    pub stage: String,
    /// Why ([`Error::Stage`] or [`Error::Panic`]).
    pub error: Error,
}

impl fmt::Debug for DeadLetter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DeadLetter")
            .field("item", &self.item)
            .field("stage", &self.stage)
            .field("error", &self.error.to_string())
            .finish()
    }
}
