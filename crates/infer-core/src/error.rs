//! The crate's error type.

use crate::DType;

/// What can go wrong preparing or running a model.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// An input does not match the model's descriptor.
    #[error("model `{model}`: input `{input}`: {problem}")]
    Input {
        /// The model's name.
        model: String,
        /// The input's name.
        input: String,
        /// What is wrong with it.
        problem: InputProblem,
    },
    /// The wrong number of inputs.
    #[error("model `{model}`: expected {expected} inputs ({names}), got {got}")]
    InputCount {
        /// The model's name.
        model: String,
        /// Inputs the model takes.
        expected: usize,
        /// Their names, comma-separated.
        names: String,
        /// Inputs given.
        got: usize,
    },
    /// A tensor was asked for as a type it does not hold.
    #[error("tensor holds {actual}, not {requested}")]
    DType {
        /// The type asked for.
        requested: DType,
        /// The type it holds.
        actual: DType,
    },
    /// The device cannot be used: its backend is not compiled in, or not available here.
    #[error("device {device}: {reason}")]
    Device {
        /// The device asked for.
        device: String,
        /// Why not.
        reason: String,
    },
    /// A model's weights could not be read: the checkpoint is missing, unreadable or
    /// malformed (the source names the file and, where it applies, the byte offset and
    /// tensor).
    #[error("model `{model}`: {source}")]
    Weights {
        /// The model's name (or its path, before it has one).
        model: String,
        /// What the weights reader said.
        #[source]
        source: crate::weights::Error,
    },
    /// A backend failed (tract, a native model's loader, a thread pool): the model, what
    /// went wrong, and the underlying error where there is one.
    #[error("model `{model}`: {message}")]
    Backend {
        /// The model's name.
        model: String,
        /// What went wrong (with the underlying error's text and causes, where there is one).
        message: String,
        /// The underlying error (tract's, for the ONNX backend), kept for callers that
        /// inspect it.
        #[source]
        source: Option<Box<dyn std::error::Error + Send + Sync>>,
    },
    /// No model of that name, or none matching the version requirement.
    #[error("no model `{name}` matching {requirement}")]
    NotFound {
        /// The name looked up.
        name: String,
        /// `latest`, `=1.2.3` or a semver requirement.
        requirement: String,
    },
    /// Tensors could not be built or joined: bytes that do not fill the shape or are no
    /// value of the element type, mixed element types, mismatched dimensions.
    #[error("tensor: {0}")]
    Tensor(String),
    /// A router was configured wrongly.
    #[error("router: {0}")]
    Router(String),
    /// Reading a model file failed.
    #[error("reading {path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// The operating system's answer.
        #[source]
        source: std::io::Error,
    },
}

/// How an input differs from its spec.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum InputProblem {
    /// The model has no input of this name.
    #[error("no such input (the model takes {expected})")]
    Unknown {
        /// The model's input names, comma-separated.
        expected: String,
    },
    /// The input was not given.
    #[error("missing")]
    Missing,
    /// Given twice.
    #[error("given more than once")]
    Duplicate,
    /// Wrong element type.
    #[error("dtype {got}, expected {expected}")]
    DType {
        /// What the spec says.
        expected: DType,
        /// What was given.
        got: DType,
    },
    /// Wrong number of dimensions.
    #[error("rank {got} (shape {shape:?}), expected {expected}")]
    Rank {
        /// What the spec says.
        expected: usize,
        /// What was given.
        got: usize,
        /// The given shape.
        shape: Vec<usize>,
    },
    /// A fixed dimension differs.
    #[error("dim {dim} is {got}, expected {expected}")]
    Dim {
        /// Which dimension (0-based).
        dim: usize,
        /// What the spec says.
        expected: usize,
        /// What was given.
        got: usize,
    },
    /// A named dynamic dimension has a different value than in an earlier input.
    #[error("dim {dim} (`{name}`) is {got}, but `{name}` is {first} in input `{first_input}`")]
    Dynamic {
        /// Which dimension (0-based).
        dim: usize,
        /// The dynamic dimension's name.
        name: String,
        /// Its value in this input.
        got: usize,
        /// Its value where it was first seen.
        first: usize,
        /// The input where it was first seen.
        first_input: String,
    },
    /// The backend cannot take this element type.
    #[error("dtype {0} is not supported by this backend")]
    Unsupported(DType),
}

/// `Result` with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
