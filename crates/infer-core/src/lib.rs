//! The inference contract of inferkit: tensors, model descriptors, the backend → plan →
//! session trait, two ONNX backends (tract, pure Rust: feature `onnx`; onnxruntime through the
//! `ort` crate, loaded at run time: feature `ort`), a versioned registry with atomic hot
//! swap, and a sticky weighted A/B router.
//!
//! ```
//! use inferkit_infer_core::{Backend, Device, Model, ModelSource, Tensor, onnx::OnnxBackend};
//! use ndarray::Array2;
//!
//! let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../tests/fixtures/onnx/dyn_batch.onnx");
//! let plan = OnnxBackend::new().prepare(ModelSource::Path(path.as_ref()), Device::Cpu)?;
//! let model = Model::new(plan, 4);                   // run(&self) from any thread
//! let x = Array2::<f32>::zeros((5, 8));              // batch 5: `batch` is dynamic
//! let out = model.run(&[("x", (&x).into())])?;
//! let y = out[0].view_as::<f32>()?;
//! assert_eq!(y.shape(), &[5, 3]);
//! assert!((y.sum() - 5.0).abs() < 1e-5);             // softmax rows
//! # Ok::<(), inferkit_infer_core::Error>(())
//! ```
//!
//! Threading contract: a [`Plan`] is immutable and `Send + Sync`: prepare once, share it. A
//! [`Session`] belongs to one worker at a time (`run(&mut self)`), owns that worker's
//! scratch and holds its [`DeviceContext`] for its whole life. [`Model`] pools sessions for
//! callers that want `run(&self)` from many threads.
// `deny`, not `forbid`: ndarray's `s!` macro expands to an `allow(unsafe_code)` block.
#![deny(unsafe_code)]
#![deny(missing_docs)]

mod backend;
#[cfg(feature = "cpu")]
pub mod cpu;
mod device;
mod error;
#[cfg(feature = "onnx")]
pub mod onnx;
#[cfg(feature = "onnx")]
mod onnx_gru;
#[cfg(feature = "onnx")]
mod onnx_ops;
#[cfg(feature = "onnx")]
mod onnx_quant;
#[cfg(feature = "onnx")]
mod onnx_resize;
#[cfg(feature = "onnx")]
mod onnx_scatter;
#[cfg(feature = "ort")]
pub mod ort;
mod registry;
mod router;
mod spec;
mod tensor;

pub use backend::{Backend, Model, ModelSource, Plan, Session};
pub use device::{Device, DeviceContext};
pub use error::{Error, InputProblem, Result};
pub use inferkit_weights as weights;
pub use registry::Registry;
pub use router::{Routed, Router, Variant};
pub use spec::{Dim, ModelDescriptor, RuntimeHint, TensorSpec};
pub use tensor::{Element, Tensor, TensorView};
pub use weights::DType;
