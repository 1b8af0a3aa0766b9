//! The one error type of this crate.

use std::path::PathBuf;

use crate::DType;

/// A `Result` whose error is this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong while opening, reading, converting or writing weights.
///
/// Every variant that comes from a file names the file; those that come from a place in it
/// name the byte offset, and those that concern one tensor name the tensor.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The file could not be opened, mapped or read.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// What the operating system said.
        #[source]
        source: std::io::Error,
    },

    /// The bytes match none of the supported formats.
    #[error(
        "{path}: unknown checkpoint format (first bytes {head}); expected safetensors, a *.safetensors.index.json, a PyTorch zip or a legacy PyTorch file"
    )]
    UnknownFormat {
        /// The file.
        path: PathBuf,
        /// The first bytes of the file, in hex.
        head: String,
    },

    /// The file is a known format but a part of it is malformed or hostile.
    #[error("{path}: {what} at byte {offset}")]
    Malformed {
        /// The file.
        path: PathBuf,
        /// Where in the file (or in the zip entry / pickle named in `what`) the problem is.
        offset: u64,
        /// What is wrong.
        what: String,
    },

    /// One tensor's description is inconsistent (dtype, shape, strides or extent).
    #[error("{path}: tensor `{tensor}` (data at byte {offset}): {what}")]
    BadTensor {
        /// The file.
        path: PathBuf,
        /// The tensor.
        tensor: String,
        /// Where the tensor's data starts (or would start) in the file.
        offset: u64,
        /// What is wrong.
        what: String,
    },

    /// A pickle names a global outside the allow-list; it is never imported or called.
    #[error(
        "{path}: pickle at byte {offset} names forbidden global `{module}.{name}` (only tensor rebuild functions, storages, dtypes and OrderedDict are allowed)"
    )]
    ForbiddenGlobal {
        /// The file.
        path: PathBuf,
        /// Byte offset of the opcode in the pickle stream.
        offset: u64,
        /// The module named.
        module: String,
        /// The attribute named.
        name: String,
    },

    /// The file uses a dtype this crate does not handle.
    #[error("{path}: tensor `{tensor}`: unsupported dtype {dtype}")]
    UnsupportedDtype {
        /// The file.
        path: PathBuf,
        /// The tensor.
        tensor: String,
        /// The dtype as the file spells it.
        dtype: String,
    },

    /// No tensor of that name.
    #[error("{path}: no tensor named `{tensor}`")]
    TensorNotFound {
        /// The file.
        path: PathBuf,
        /// The name asked for.
        tensor: String,
    },

    /// Two tensors carry the same name.
    #[error("{path}: tensor name `{tensor}` appears twice")]
    DuplicateName {
        /// The file.
        path: PathBuf,
        /// The repeated name.
        tensor: String,
    },

    /// A zero-copy view was asked for but cannot be given; the message says what to call.
    #[error("tensor `{tensor}`: cannot view as {requested}: {reason}")]
    NotViewable {
        /// The tensor.
        tensor: String,
        /// The element type asked for.
        requested: &'static str,
        /// Why, and what to call instead.
        reason: String,
    },

    /// A dtype conversion was asked for that does not exist.
    #[error("tensor `{tensor}`: cannot convert {from:?} to {to}")]
    Conversion {
        /// The tensor.
        tensor: String,
        /// Its dtype.
        from: DType,
        /// The target.
        to: &'static str,
    },

    /// A caller's output buffer has the wrong length.
    #[error("tensor `{tensor}`: output buffer holds {got} elements, tensor has {expected}")]
    BufferSize {
        /// The tensor.
        tensor: String,
        /// Elements in the tensor.
        expected: usize,
        /// Elements in the buffer.
        got: usize,
    },

    /// Writing a safetensors file failed.
    #[error("{path}: writing safetensors: {source}")]
    Write {
        /// The output file.
        path: PathBuf,
        /// What the safetensors crate said.
        #[source]
        source: safetensors::SafeTensorError,
    },
}
