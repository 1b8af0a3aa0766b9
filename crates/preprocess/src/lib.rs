//! Pooled-buffer preprocessing: images, CSV and Parquet into tensors.
//!
//! This crate is a placeholder in the workspace layout; its buffer pool, decoders and
//! table readers arrive with their own issue. It has no public items yet.
#![forbid(unsafe_code)]
#![deny(missing_docs)]
