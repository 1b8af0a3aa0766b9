//! What a checkpoint is made of, as its format parsers (`safetensors`, `pickle`) hand it to
//! [`Checkpoint`](crate::Checkpoint): the format, the sources (files), and each tensor's
//! place in them. Both sides depend on this module, not on each other.

use std::collections::HashMap;
use std::path::PathBuf;

use crate::source::Bytes;
use crate::{DType, Result};

/// The on-disk format a checkpoint was recognised as (from its bytes, never its name).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Format {
    /// A single `.safetensors` file.
    Safetensors,
    /// A `*.safetensors.index.json` and the shards it names.
    ShardedSafetensors,
    /// A PyTorch zip checkpoint (`torch.save` since 1.6).
    TorchZip,
    /// A legacy PyTorch checkpoint (magic number `0x1950a86a20f9469cfc6c`, before 1.6 or
    /// `_use_new_zipfile_serialization=False`).
    TorchLegacy,
}

/// One tensor's place in a checkpoint. Validated when the checkpoint is opened: every element
/// reachable through `shape`/`strides` lies inside `span` bytes from `offset` in its source.
#[derive(Debug, Clone)]
pub(crate) struct Entry {
    pub(crate) name: String,
    pub(crate) dtype: DType,
    pub(crate) shape: Vec<usize>,
    /// In elements.
    pub(crate) strides: Vec<usize>,
    /// Index into `Checkpoint::sources`.
    pub(crate) source: usize,
    /// Byte offset of element 0 in the source.
    pub(crate) offset: usize,
    /// Bytes from `offset` up to the end of the last reachable element (0 when empty).
    pub(crate) span: usize,
}

impl Entry {
    /// Computes the span of a tensor with the given layout, or says why it is absurd.
    pub(crate) fn span_of(
        dtype: DType,
        shape: &[usize],
        strides: &[usize],
    ) -> Result<usize, String> {
        if shape.len() != strides.len() {
            return Err(format!(
                "shape has {} dims but strides has {}",
                shape.len(),
                strides.len()
            ));
        }
        if shape.contains(&0) {
            return Ok(0);
        }
        let mut last = 0usize;
        for (&n, &s) in shape.iter().zip(strides) {
            last = (n - 1)
                .checked_mul(s)
                .and_then(|x| x.checked_add(last))
                .ok_or_else(|| format!("shape {shape:?} with strides {strides:?} overflows"))?;
        }
        last.checked_add(1)
            .and_then(|n| n.checked_mul(dtype.size()))
            .ok_or_else(|| format!("shape {shape:?} with strides {strides:?} overflows"))
    }

    /// Row-major strides for `shape`.
    pub(crate) fn contiguous_strides(shape: &[usize]) -> Vec<usize> {
        let mut strides = vec![0; shape.len()];
        let mut acc = 1usize;
        for (s, &n) in strides.iter_mut().zip(shape).rev() {
            *s = acc;
            acc = acc.saturating_mul(n);
        }
        strides
    }
}

#[derive(Debug)]
pub(crate) struct Source {
    pub(crate) path: PathBuf,
    pub(crate) bytes: Bytes,
}

/// What a format parser hands back.
pub(crate) struct Parsed {
    pub(crate) format: Format,
    pub(crate) sources: Vec<Source>,
    pub(crate) entries: Vec<Entry>,
    pub(crate) metadata: HashMap<String, String>,
}

/// `0x1950a86a20f9469cfc6c` as pickle protocol 2 writes it at the start of a legacy file:
/// PROTO 2, LONG1 of 10 bytes, little-endian.
pub(crate) const LEGACY_PREFIX: [u8; 14] = [
    0x80, 0x02, 0x8a, 0x0a, 0x6c, 0xfc, 0x9c, 0x46, 0xf9, 0x20, 0x6a, 0xa8, 0x50, 0x19,
];
