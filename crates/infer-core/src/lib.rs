//! The inference trait, model descriptors, registry and backends.
//!
//! This crate is a placeholder in the workspace layout; it will load weights through
//! [`inferkit_weights`], which it re-exports as [`weights`] so that model code has one path
//! to the checkpoint types.
#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub use inferkit_weights as weights;
