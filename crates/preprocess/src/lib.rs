//! Pooled-buffer preprocessing: encoded images into normalised f32 batches.
//!
//! - [`BufferPool`] lends `Vec`s through an RAII guard and takes them back cleared, capacity
//!   kept, with counters — so steady-state work allocates nothing.
//! - [`Decoder`] turns JPEG (zune-jpeg), PNG, WebP, GIF, BMP and TIFF (the `image` crate)
//!   bytes into RGB8 or grey8 pixels in a pooled buffer, EXIF orientation applied, with a
//!   pixel-count limit checked from the header before any large allocation.
//! - [`Transform`] resizes (Pillow's antialiased convolution with Pillow's coefficients,
//!   AVX2/SSE4.1 where the CPU has them, computing only the cropped region, allocation-free
//!   once warm), centre-crops, scales and normalises straight into the caller's f32 slot,
//!   CHW or HWC.
//! - [`Batch`] does both for many images in parallel (rayon), one `Result` per image.
//!
//! ```
//! use inferkit_preprocess::{Decoder, DecodeOptions, Scratch, Transform};
//!
//! let bytes = std::fs::read(concat!(env!("CARGO_MANIFEST_DIR"), "/../../assets/images/rocket.jpg"))?;
//! let img = Decoder::new(DecodeOptions::default()).decode(&bytes)?;
//! let transform = Transform::imagenet(224); // Resize(256), CenterCrop(224), ImageNet mean/std
//! let mut chw = vec![0f32; 3 * 224 * 224];
//! transform.apply_into(&img, &mut chw, &mut Scratch::new())?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
#![deny(unsafe_code)]
#![deny(missing_docs)]

#[cfg(feature = "images")]
mod batch;
mod error;
#[cfg(feature = "images")]
mod image;
mod pool;
#[cfg(feature = "tables")]
pub mod table;

#[cfg(feature = "images")]
pub use batch::Batch;
pub use error::{Error, Result};
#[cfg(feature = "images")]
pub use image::decode::{DecodeOptions, DecodedImage, Decoder, ImageFormat, ImageInfo};
#[cfg(feature = "images")]
pub use image::transform::{Filter, Layout, Resize, Scratch, Transform};
pub use pool::{BufferPool, PoolStats, Pooled};
