//! Writing safetensors, and converting any supported checkpoint into safetensors.

use std::borrow::Cow;
use std::collections::HashMap;
use std::path::Path;

use bytemuck::Pod;
use ndarray::{ArrayView, Dimension};

use crate::{Checkpoint, DType, Error, Result, StoredElement, StoredTensor};

/// A tensor to write: dtype, shape and row-major little-endian bytes, borrowed where
/// possible.
#[derive(Debug, Clone)]
pub struct TensorBytes<'a> {
    dtype: DType,
    shape: Vec<usize>,
    data: Cow<'a, [u8]>,
}

impl<'a> TensorBytes<'a> {
    /// A tensor from raw row-major bytes.
    ///
    /// # Errors
    /// [`Error::BufferSize`] when `data` is not `product(shape) * dtype.size()` bytes.
    pub fn new(dtype: DType, shape: Vec<usize>, data: impl Into<Cow<'a, [u8]>>) -> Result<Self> {
        let data = data.into();
        let numel: usize = shape.iter().product();
        if numel.checked_mul(dtype.size()) != Some(data.len()) {
            return Err(Error::BufferSize {
                tensor: format!("{dtype} {shape:?}"),
                expected: numel,
                got: data.len() / dtype.size(),
            });
        }
        Ok(TensorBytes { dtype, shape, data })
    }

    /// A tensor from an `ndarray` view: borrowed when it is in standard (row-major) layout,
    /// copied into that layout otherwise.
    pub fn from_array<T: StoredElement + Pod, D: Dimension>(a: ArrayView<'a, T, D>) -> Self {
        let shape = a.shape().to_vec();
        let data: Cow<'a, [u8]> = match a.to_slice() {
            Some(s) => Cow::Borrowed(bytemuck::cast_slice(s)),
            None => {
                Cow::Owned(bytemuck::cast_slice(&a.iter().copied().collect::<Vec<T>>()).to_vec())
            }
        };
        TensorBytes {
            dtype: T::DTYPE,
            shape,
            data,
        }
    }

    /// A tensor from a checkpoint's view: borrowed when contiguous, gathered otherwise.
    pub fn from_view(v: &StoredTensor<'a>) -> Self {
        TensorBytes {
            dtype: v.dtype(),
            shape: v.shape().to_vec(),
            data: v.to_contiguous_bytes(),
        }
    }
}

impl safetensors::View for TensorBytes<'_> {
    fn dtype(&self) -> safetensors::Dtype {
        self.dtype.to_safetensors()
    }
    fn shape(&self) -> &[usize] {
        &self.shape
    }
    fn data(&self) -> Cow<'_, [u8]> {
        Cow::Borrowed(&self.data)
    }
    fn data_len(&self) -> usize {
        self.data.len()
    }
}

/// Writes `tensors` to `path` as safetensors (through the `safetensors` crate, which writes a
/// temporary file and renames it, so readers that mapped an older `path` are unaffected).
///
/// ```
/// use inferkit_weights::{save, Checkpoint, TensorBytes};
/// let dir = tempfile::tempdir()?;
/// let path = dir.path().join("out.safetensors");
/// let w = ndarray::array![[1.0f32, 2.0], [3.0, 4.0]];
/// save(&path, [("w", TensorBytes::from_array(w.view()))], None)?;
/// assert_eq!(Checkpoint::open(&path)?.tensor("w")?.view::<f32>()?, w.into_dyn());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
///
/// # Errors
/// [`Error::Write`] for I/O errors and what the safetensors crate refuses (e.g. duplicate
/// names).
pub fn save<'a, N: AsRef<str>>(
    path: impl AsRef<Path>,
    tensors: impl IntoIterator<Item = (N, TensorBytes<'a>)>,
    metadata: Option<HashMap<String, String>>,
) -> Result<()> {
    let path = path.as_ref();
    let named = tensors.into_iter().map(|(n, t)| (n.as_ref().to_owned(), t));
    safetensors::serialize_to_file(named, metadata, path).map_err(|source| Error::Write {
        path: path.to_path_buf(),
        source,
    })
}

/// [`save`] into memory: the safetensors file's bytes (for [`Checkpoint::from_slice`], or to
/// send).
///
/// ```
/// use inferkit_weights::{to_bytes, Checkpoint, TensorBytes};
/// let w = ndarray::array![[1i8, -2], [3, 4]];
/// let bytes = to_bytes([("w", TensorBytes::from_array(w.view()))], None)?;
/// let ckpt = Checkpoint::from_slice("w.safetensors", &bytes)?;
/// assert_eq!(ckpt.tensor("w")?.view::<i8>()?, w.into_dyn());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
///
/// # Errors
/// [`Error::Write`] (labelled `<memory>`) for what the safetensors crate refuses (e.g.
/// duplicate names).
pub fn to_bytes<'a, N: AsRef<str>>(
    tensors: impl IntoIterator<Item = (N, TensorBytes<'a>)>,
    metadata: Option<HashMap<String, String>>,
) -> Result<Vec<u8>> {
    let named = tensors.into_iter().map(|(n, t)| (n.as_ref().to_owned(), t));
    safetensors::serialize(named, metadata).map_err(|source| Error::Write {
        path: "<memory>".into(),
        source,
    })
}

/// Converts any checkpoint [`Checkpoint::open`] reads into a safetensors file: same names,
/// dtypes, shapes and values, every tensor written contiguous. Returns the number of tensors.
/// Contiguous tensors are written straight from the map; strided ones are gathered.
///
/// # Errors
/// Whatever opening `input` or writing `output` returns.
pub fn convert(input: impl AsRef<Path>, output: impl AsRef<Path>) -> Result<usize> {
    let ckpt = Checkpoint::open(input)?;
    let metadata = (!ckpt.metadata().is_empty()).then(|| ckpt.metadata().clone());
    save(
        output,
        ckpt.tensors()
            .map(|t| (t.name(), TensorBytes::from_view(&t))),
        metadata,
    )?;
    Ok(ckpt.len())
}
