//! The native CPU backend (feature `cpu`): kernels on slices and `ndarray` views, and the
//! models built from them — [`EfficientNetLite0`] (from the bundled PyTorch checkpoint, run
//! channels-last) and [`MiniLm`] (all-MiniLM-L6-v2 from its safetensors, weights used in
//! place). EfficientNet's convolutions run on weights packed at load and a GEMM kernel of
//! our own ([`packed`], AVX-512; the `gemm` crate where the CPU lacks it); MiniLM's layers
//! on the `gemm` crate, reading its weights in place (both chosen by `benches/gemm.rs`).
//! The depthwise spans are AVX-512 intrinsics where the CPU has it; the other kernels are
//! plain loops compiled per SIMD level (`multiversion`). MiniLM runs in int8 too, from an
//! int8 checkpoint ([`quant`] describes the format; [`MiniLm::save_int8`] writes one,
//! [`MiniLm::with_int8`] makes one in memory) on the u8×s8 kernels of [`int8`] (AVX-512
//! VNNI, AVX2, portable). EfficientNet-Lite0 runs in int8 from an int8 checkpoint
//! ([`EfficientNetLite0::save_int8`] writes one, its activation ranges calibrated on real
//! photos) on the same GEMM and the depthwise kernel of [`int8_nhwc`]. Each model runs on a
//! thread count of its own: 1 means the caller's thread only.

use std::sync::Arc;

use crate::{Error, Result};

mod backend;
mod efficientnet;
#[cfg(feature = "text")]
mod minilm;

// The kernels: public only for this repository's benches (`benches/gemm.rs`, `benches/int8.rs`) and kernel tests
// (`tests/kernels.rs`), hidden from the docs and outside the semver promise.
#[doc(hidden)]
pub mod epilogue;
#[doc(hidden)]
pub mod int8;
#[doc(hidden)]
pub mod int8_nhwc;
#[doc(hidden)]
pub mod kernels;
#[doc(hidden)]
pub mod math;
#[doc(hidden)]
pub mod nhwc;
#[doc(hidden)]
pub mod packed;
pub mod quant;

pub use backend::{Architecture, CpuBackend};
pub use efficientnet::EfficientNetLite0;
#[cfg(feature = "text")]
pub use minilm::{MiniLm, Tokens};

/// `0..len` cut into the fewest pieces of at most `most`, their lengths differing by at most
/// one: (start, length) of each. The row tiles of the x86 kernels ([`packed`], [`int8`]).
#[cfg_attr(not(target_arch = "x86_64"), allow(dead_code))]
pub(crate) fn even(len: usize, most: usize) -> impl Iterator<Item = (usize, usize)> {
    let pieces = len.div_ceil(most);
    let (base, extra) = (len / pieces.max(1), len % pieces.max(1));
    (0..pieces).map(move |i| (i * base + i.min(extra), base + usize::from(i < extra)))
}

/// A model's weights for changes before it is shared (its `with_threads`, `with_name`): the
/// one owner's, or an error naming `model` and the setter `what` when a clone exists.
pub(crate) fn unshared<'a, T>(net: &'a mut Arc<T>, model: &str, what: &str) -> Result<&'a mut T> {
    Arc::get_mut(net).ok_or_else(|| Error::Backend {
        model: model.into(),
        message: format!(
            "{what} on a model already shared (clone it after configuring, not before)"
        ),
        source: None,
    })
}

/// The pool behind a model's `with_threads(n)`: `None` for 1 (the caller's thread alone),
/// else a rayon pool of exactly `n` threads named `<prefix>-<i>`.
pub(crate) fn thread_pool(
    threads: usize,
    prefix: &'static str,
) -> Result<Option<rayon::ThreadPool>, String> {
    if threads <= 1 {
        return Ok(None);
    }
    rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .thread_name(move |i| format!("{prefix}-{i}"))
        .build()
        .map(Some)
        .map_err(|e| format!("thread pool: {e}"))
}
