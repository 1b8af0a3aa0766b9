//! Bounded, backpressured, cancellable stage graphs.
//!
//! This crate is a placeholder in the workspace layout; the builder, stages, batcher and
//! metrics arrive with their own issue. It has no public items yet.
#![forbid(unsafe_code)]
#![deny(missing_docs)]
