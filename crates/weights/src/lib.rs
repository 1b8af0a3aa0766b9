//! Zero-copy model weights.
//!
//! [`Checkpoint::open`] reads safetensors (single files and sharded
//! `*.safetensors.index.json`), PyTorch zip checkpoints (`torch.save` since 1.6) and legacy
//! PyTorch files, telling them apart by their bytes. Files are memory-mapped read-only;
//! opening parses headers only. Each tensor is a [`StoredTensor`] borrowed from the map:
//! [`view`](StoredTensor::view) gives an `ndarray` view without copying when dtype and
//! alignment allow, [`to_f32`](StoredTensor::to_f32) / [`to_f32_into`](StoredTensor::to_f32_into)
//! convert any dtype (F16, BF16, FP8, F64, integers, bool), honouring strides.
//!
//! PyTorch pickles are read by a restricted unpickler: it knows the opcodes torch emits and
//! a fixed allow-list of globals (tensor rebuild functions, storage classes, dtypes,
//! `OrderedDict`). Any other global is an [`Error::ForbiddenGlobal`] naming it — nothing is
//! ever imported or called.
//!
//! ```
//! use inferkit_weights::{Checkpoint, DType, Format};
//!
//! let ckpt = Checkpoint::open(concat!(env!("CARGO_MANIFEST_DIR"), "/../../assets/models/efficientnet-lite0.pth"))?;
//! assert_eq!(ckpt.format(), Format::TorchLegacy);
//! let stem = ckpt.tensor("_conv_stem.weight")?;
//! assert_eq!((stem.dtype(), stem.shape()), (DType::F32, &[32, 3, 3, 3][..]));
//! let w = stem.to_f32(); // owned, row-major; `cow::<f32>()` borrows when aligned
//! assert_eq!(w.len(), 864);
//! # Ok::<(), inferkit_weights::Error>(())
//! ```
//!
//! Writing: [`save`] writes safetensors; [`convert`] turns any supported checkpoint into
//! one.
#![deny(missing_docs)]

#[cfg(target_endian = "big")]
compile_error!(
    "inferkit-weights reads little-endian files by reinterpreting bytes; big-endian hosts are not supported"
);

mod arena;
mod checkpoint;
mod convert;
mod dtype;
mod error;
mod layout;
mod pickle;
mod safetensors;
mod source;
mod write;

pub use arena::F32Weights;
pub use checkpoint::{Checkpoint, StoredTensor};
pub use dtype::{DType, StoredElement};
pub use error::{Error, Result};
pub use layout::Format;
pub use source::{OpenOptions, Prefetch};
pub use write::{TensorBytes, convert, save, to_bytes};
