//! Reusable decoder state (inferkit patch; see PATCHES.md at the crate root).
//!
//! A [`JpegDecoder`](crate::JpegDecoder) allocates its coefficient, upsampling and
//! component buffers per image. [`DecoderScratch`] carries them from one decoder to the
//! next, so a long-running decoder of same-sized images allocates nothing in steady state.

use alloc::vec;
use alloc::vec::Vec;

use crate::components::Components;

/// Most spare buffers kept; beyond that the smallest are dropped.
const MAX_SPARE: usize = 32;

/// Buffers recovered from a finished decoder, to be handed to the next one.
///
/// ```
/// use zune_jpeg::{DecoderScratch, JpegDecoder};
/// use zune_jpeg::zune_core::bytestream::ZCursor;
/// use zune_jpeg::zune_core::options::DecoderOptions;
///
/// fn decode_all(images: &[&[u8]]) {
///     let mut scratch = DecoderScratch::new();
///     for bytes in images {
///         let mut d = JpegDecoder::new_with_scratch(ZCursor::new(*bytes), DecoderOptions::default(), scratch);
///         let _pixels = d.decode();
///         scratch = d.into_scratch();
///     }
/// }
/// ```
#[derive(Default)]
pub struct DecoderScratch {
    pub(crate) bufs: Vec<Vec<i16>>,
    pub(crate) components: Vec<Components>,
}

impl core::fmt::Debug for DecoderScratch {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("DecoderScratch")
            .field("buffers", &self.bufs.len())
            .field("retained_bytes", &self.retained_bytes())
            .finish()
    }
}

impl DecoderScratch {
    /// An empty scratch (the first decoder that uses it allocates as usual).
    #[must_use]
    pub const fn new() -> Self {
        DecoderScratch {
            bufs: Vec::new(),
            components: Vec::new(),
        }
    }

    /// Heap bytes held by the spare buffers.
    #[must_use]
    pub fn retained_bytes(&self) -> usize {
        self.bufs.iter().map(|b| b.capacity() * 2).sum::<usize>()
            + self.components.capacity() * core::mem::size_of::<Components>()
    }
}

/// A buffer of `len` elements set to `fill`: the smallest spare one that holds `len`
/// without growing, else a fresh allocation (large spares are kept for large requests).
pub(crate) fn take(spare: &mut Vec<Vec<i16>>, len: usize, fill: i16) -> Vec<i16> {
    if len == 0 {
        return Vec::new();
    }
    let mut best: Option<usize> = None;
    for (i, b) in spare.iter().enumerate() {
        if b.capacity() >= len && best.map_or(true, |j| b.capacity() < spare[j].capacity()) {
            best = Some(i);
        }
    }
    match best {
        Some(i) => {
            let mut v = spare.swap_remove(i);
            v.clear();
            v.resize(len, fill);
            v
        }
        None => vec![fill; len],
    }
}

/// Returns a buffer to the spares (empty ones are dropped; beyond `MAX_SPARE`, the smallest).
pub(crate) fn give(spare: &mut Vec<Vec<i16>>, v: Vec<i16>) {
    if v.capacity() == 0 {
        return;
    }
    if spare.len() >= MAX_SPARE {
        let (i, smallest) = spare
            .iter()
            .enumerate()
            .min_by_key(|(_, b)| b.capacity())
            .map(|(i, b)| (i, b.capacity()))
            .unwrap_or((0, 0));
        if smallest >= v.capacity() {
            return;
        }
        spare.swap_remove(i);
    }
    spare.push(v);
}

/// Moves a component's buffers to the spares.
pub(crate) fn harvest(spare: &mut Vec<Vec<i16>>, c: &mut Components) {
    give(spare, core::mem::take(&mut c.raw_coeff));
    give(spare, core::mem::take(&mut c.upsample_dest));
    give(spare, core::mem::take(&mut c.row_up));
    give(spare, core::mem::take(&mut c.row));
    give(spare, core::mem::take(&mut c.first_row_upsample_dest));
}

/// Per-call buffers of a decoding routine, given back to the spares whatever way it exits.
#[derive(Default)]
pub(crate) struct Locals {
    pub(crate) blocks: [Vec<i16>; 4],
    pub(crate) scratch: Vec<i16>,
}

impl Locals {
    pub(crate) fn give_back(self, spare: &mut Vec<Vec<i16>>) {
        for b in self.blocks {
            give(spare, b);
        }
        give(spare, self.scratch);
    }
}
