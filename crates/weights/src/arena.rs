//! [`F32Weights`]: every tensor of a checkpoint converted to `f32` in one allocation.

use std::collections::HashMap;

use memmap2::MmapMut;
use ndarray::{ArrayViewD, IxDyn};

use crate::{Checkpoint, Error, Result};

/// Tensors start on 64-byte boundaries inside the arena.
const ALIGN_ELEMS: usize = 16;

/// Every tensor of a [`Checkpoint`] converted to `f32`, row-major, in one anonymous memory
/// map that asks the kernel for transparent huge pages (`MADV_HUGEPAGE`).
///
/// Converting a large checkpoint into fresh memory is dominated by page faults (one per
/// 4 KiB page, several µs each on a VM), not by the conversion: one huge-page-backed arena
/// takes one fault per 2 MiB instead. Use it to load a BF16/F16 checkpoint as f32 weights
/// for CPU inference; to convert again and again, reuse buffers with
/// [`StoredTensor::to_f32_into`](crate::StoredTensor::to_f32_into) instead.
///
/// ```
/// let ckpt = inferkit_weights::Checkpoint::open(concat!(env!("CARGO_MANIFEST_DIR"), "/../../tests/fixtures/weights/mixed.pt"))?;
/// let weights = ckpt.to_f32_all()?;
/// let t = weights.get("dtypes.bf16").unwrap();
/// assert_eq!(t[[1]], -3.140625);
/// # Ok::<(), inferkit_weights::Error>(())
/// ```
#[derive(Debug)]
pub struct F32Weights {
    arena: Option<MmapMut>,
    index: HashMap<String, usize>,
    tensors: Vec<(String, Vec<usize>, usize)>,
}

impl Checkpoint {
    /// Converts every tensor to `f32` into one huge-page-backed arena. See [`F32Weights`].
    ///
    /// # Errors
    /// [`Error::Io`] when the arena cannot be mapped (out of memory).
    pub fn to_f32_all(&self) -> Result<F32Weights> {
        let mut tensors = Vec::with_capacity(self.len());
        let mut total = 0usize;
        for t in self.tensors() {
            tensors.push((t.name().to_owned(), t.shape().to_vec(), total));
            total += t.numel().next_multiple_of(ALIGN_ELEMS);
        }
        let arena = if total == 0 {
            None
        } else {
            let io = |source| Error::Io {
                path: self.path().to_path_buf(),
                source,
            };
            let map = MmapMut::map_anon(total * 4).map_err(io)?;
            // Best effort: kernels without THP just keep 4 KiB pages.
            #[cfg(target_os = "linux")]
            let _ = map.advise(memmap2::Advice::HugePage);
            Some(map)
        };
        let mut out = F32Weights {
            arena,
            index: HashMap::with_capacity(tensors.len()),
            tensors,
        };
        if let Some(arena) = out.arena.as_mut() {
            let all: &mut [f32] = bytemuck::cast_slice_mut(&mut arena[..]);
            for (t, (_, _, offset)) in self.tensors().zip(&out.tensors) {
                t.to_f32_into(&mut all[*offset..*offset + t.numel()])?;
            }
        }
        for (i, (name, _, _)) in out.tensors.iter().enumerate() {
            out.index.insert(name.clone(), i);
        }
        Ok(out)
    }
}

impl F32Weights {
    /// The tensor called `name`, as an `f32` view.
    pub fn get(&self, name: &str) -> Option<ArrayViewD<'_, f32>> {
        self.index.get(name).map(|&i| self.view(i))
    }

    /// Number of tensors.
    pub fn len(&self) -> usize {
        self.tensors.len()
    }

    /// Whether there is no tensor.
    pub fn is_empty(&self) -> bool {
        self.tensors.is_empty()
    }

    /// `(name, view)` for every tensor, in the checkpoint's file order.
    pub fn iter(&self) -> impl ExactSizeIterator<Item = (&str, ArrayViewD<'_, f32>)> + '_ {
        (0..self.tensors.len()).map(move |i| (self.tensors[i].0.as_str(), self.view(i)))
    }

    fn view(&self, i: usize) -> ArrayViewD<'_, f32> {
        let (_, shape, offset) = &self.tensors[i];
        let numel: usize = shape.iter().product();
        let data: &[f32] = match &self.arena {
            Some(a) => &bytemuck::cast_slice(&a[..])[*offset..*offset + numel],
            None => &[],
        };
        ArrayViewD::from_shape(IxDyn(shape), data).expect("numel elements, row-major")
    }
}
