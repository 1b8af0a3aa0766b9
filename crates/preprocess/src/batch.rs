//! [`Batch`]: many encoded images decoded and transformed in parallel into one pooled
//! N×C×H×W tensor.

use std::cell::RefCell;

use ndarray::{ArrayView4, ArrayViewMut4};
use rayon::prelude::*;

use crate::pool::{BufferPool, Pooled};
use crate::{Decoder, Error, ImageInfo, Result, Scratch, Transform};

thread_local! {
    static SCRATCH: RefCell<Scratch> = RefCell::new(Scratch::new());
}

/// An N×C×H×W (or N×H×W×C) f32 batch in a pooled buffer, with one `Result` per image: a bad
/// image leaves its slot zeroed and its error in [`results`](Self::results), and does not
/// sink the batch.
///
/// ```
/// use inferkit_preprocess::{Batch, BufferPool, Decoder, DecodeOptions, Transform};
/// let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../../assets/images/");
/// let images = vec![std::fs::read(format!("{dir}chelsea.jpg"))?, b"not an image".to_vec()];
/// let pool = BufferPool::new(2);
/// let batch = Batch::from_encoded(&images, &Decoder::new(DecodeOptions::default()), &Transform::imagenet(224), &pool)?;
/// assert_eq!(batch.view().shape(), &[2, 3, 224, 224]);
/// assert!(batch.results()[0].is_ok() && batch.results()[1].is_err());
/// assert_eq!(batch.ok_count(), 1);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug)]
pub struct Batch {
    data: Pooled<f32>,
    shape: [usize; 4],
    results: Vec<Result<ImageInfo>>,
}

impl Batch {
    /// Decodes and transforms `images` in parallel on the current rayon pool, each into its
    /// slot of one buffer from `pool`.
    ///
    /// # Errors
    /// [`Error::Transform`] when the transform has no fixed output size (set a crop, an exact
    /// resize or a letterbox). Per-image failures are in [`results`](Self::results).
    pub fn from_encoded<B: AsRef<[u8]> + Sync>(
        images: &[B],
        decoder: &Decoder,
        transform: &Transform,
        pool: &BufferPool<f32>,
    ) -> Result<Batch> {
        let per = transform.output_len().ok_or_else(|| {
            Error::Transform(
                "a batch needs a fixed output size: set a crop, an exact resize or a letterbox"
                    .into(),
            )
        })?;
        if per == 0 {
            return Err(Error::Transform("the output has zero size".into()));
        }
        let s = transform.output_shape().expect("fixed output");
        let mut data = pool.get_with_capacity(per * images.len());
        data.resize(per * images.len(), 0.0);
        let results = data
            .par_chunks_mut(per)
            .zip(images.par_iter())
            .map(|(slot, bytes)| {
                let r = decoder.decode(bytes.as_ref()).and_then(|img| {
                    SCRATCH.with(|s| transform.apply_into(&img, slot, &mut s.borrow_mut()))?;
                    Ok(img.info())
                });
                if r.is_err() {
                    slot.fill(0.0);
                }
                r
            })
            .collect();
        Ok(Batch {
            data,
            shape: [images.len(), s[0], s[1], s[2]],
            results,
        })
    }

    /// The batch as an array (`[N, C, H, W]` for CHW transforms).
    pub fn view(&self) -> ArrayView4<'_, f32> {
        ArrayView4::from_shape(self.shape, &self.data).expect("shape matches buffer")
    }

    /// The batch as a mutable array.
    pub fn view_mut(&mut self) -> ArrayViewMut4<'_, f32> {
        ArrayViewMut4::from_shape(self.shape, &mut self.data).expect("shape matches buffer")
    }

    /// The per-image outcomes, in input order: the source image's format and size, or why
    /// it failed.
    pub fn results(&self) -> &[Result<ImageInfo>] {
        &self.results
    }

    /// How many images decoded and transformed.
    pub fn ok_count(&self) -> usize {
        self.results.iter().filter(|r| r.is_ok()).count()
    }

    /// The raw data, row-major.
    pub fn as_slice(&self) -> &[f32] {
        &self.data
    }
}
