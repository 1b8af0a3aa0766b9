//! inferkit: the engineering side of AI, in Rust.
//!
//! The root crate re-exports the four workspace crates under short names:
//!
//! | module | crate | what it does |
//! |---|---|---|
//! | [`weights`] | `inferkit-weights` | zero-copy safetensors and PyTorch checkpoints |
//! | [`preprocess`] | `inferkit-preprocess` | pooled-buffer image and table preprocessing |
//! | [`pipeline`] | `inferkit-pipeline` | bounded, backpressured stage graphs |
//! | [`infer_core`] | `inferkit-infer-core` | the inference trait and backends |
//!
//! and [`ndarray`], whose arrays the crates take and give.
//!
//! # Features
//!
//! The defaults (`images`, `cpu`) are what it takes to classify a photo with the bundled
//! EfficientNet-Lite0 (the README's library example):
//!
//! - `images`: image decoding and ImageNet transforms into f32 batches;
//! - `cpu`: the native CPU backend, its kernels and EfficientNet-Lite0;
//! - `text`: MiniLM sentence embeddings with its tokenizer (adds `tokenizers`);
//! - `onnx`: the ONNX backend (tract, pure Rust; a large dependency);
//! - `tables`: CSV and Parquet readers, feature matrices, typed rows, the Parquet writer;
//! - `metrics`: the pipeline's counters also through the `metrics` facade;
//! - `full`: all of the above.
//!
//! ```no_run
//! use inferkit::weights::Checkpoint;
//!
//! let ckpt = Checkpoint::open("assets/models/efficientnet-lite0.pth")?;
//! for t in ckpt.tensors() {
//!     println!("{} {:?} {:?}", t.name(), t.dtype(), t.shape());
//! }
//! # Ok::<(), inferkit::weights::Error>(())
//! ```
#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub use inferkit_infer_core as infer_core;
pub use inferkit_pipeline as pipeline;
pub use inferkit_preprocess as preprocess;
pub use inferkit_weights as weights;
pub use ndarray;

/// The traits and entry points an application starts from: `use inferkit::prelude::*;`.
pub mod prelude {
    #[cfg(feature = "cpu")]
    pub use crate::infer_core::cpu::CpuBackend;
    #[cfg(feature = "onnx")]
    pub use crate::infer_core::onnx::OnnxBackend;
    pub use crate::infer_core::{
        Backend, Device, Model, ModelDescriptor, ModelSource, Plan, Registry, Router, Session,
        Tensor, TensorView,
    };
    pub use crate::pipeline::{BatchOptions, Pipeline, StageOptions};
    #[cfg(feature = "images")]
    pub use crate::preprocess::{BufferPool, DecodeOptions, Decoder, Transform};
    pub use crate::weights::{Checkpoint, DType, StoredTensor};
}
