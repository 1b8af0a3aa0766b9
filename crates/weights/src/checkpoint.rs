//! [`Checkpoint`]: one opened weights file, and [`StoredTensor`]: one tensor borrowed from it.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

use bytemuck::Pod;
use half::{bf16, f16};
use ndarray::{ArrayD, ArrayViewD, CowArray, IxDyn, ShapeBuilder};

use crate::convert::{self, Float};
use crate::layout::{Entry, Format, LEGACY_PREFIX, Parsed, Source};
use crate::source::{self, Bytes, OpenOptions};
use crate::{DType, Error, Result, StoredElement};

/// An opened checkpoint: its bytes (mapped or copied), and an index of its tensors in file
/// order.
///
/// Opening parses only headers and pickles — no tensor data is read or copied. Every tensor's
/// extent is checked against the file at open time, so later accessors cannot fail on bad
/// offsets.
///
/// # Memory maps
///
/// [`Checkpoint::open`] maps files read-only. The map is shared with the page cache: if
/// another process truncates the file while it is mapped, reading a tensor raises `SIGBUS`;
/// if it rewrites it in place, views change under you. Replacing the file by rename (what
/// `torch.save`, `safetensors` and [`save`](crate::save) do) is safe: the map keeps the old
/// inode. For files that may be rewritten in place, or that live on network storage, use
/// [`Checkpoint::read`], which copies the file into memory.
///
/// ```
/// use inferkit_weights::{Checkpoint, DType};
/// # let dir = tempfile::tempdir()?;
/// # let path = dir.path().join("m.safetensors");
/// # let w = ndarray::ArrayD::<f32>::ones(ndarray::IxDyn(&[2, 3]));
/// # inferkit_weights::save(&path, [("w", inferkit_weights::TensorBytes::from_array(w.view()))], None)?;
/// let ckpt = Checkpoint::open(&path)?;
/// let w = ckpt.tensor("w")?;
/// assert_eq!((w.dtype(), w.shape()), (DType::F32, &[2, 3][..]));
/// let view = w.view::<f32>()?; // borrowed from the map, no copy
/// assert_eq!(view.sum(), 6.0);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug)]
pub struct Checkpoint {
    path: PathBuf,
    format: Format,
    sources: Vec<Source>,
    entries: Vec<Entry>,
    by_name: HashMap<String, usize>,
    metadata: HashMap<String, String>,
}

impl Checkpoint {
    /// Opens a checkpoint by memory-mapping it read-only, without prefetch. The format is
    /// detected from the bytes. See the type's docs for what mapping implies.
    ///
    /// # Errors
    /// [`Error::Io`] if a file cannot be opened or mapped; [`Error::UnknownFormat`] if the bytes
    /// match no supported format; [`Error::Malformed`], [`Error::BadTensor`],
    /// [`Error::ForbiddenGlobal`] and friends for malformed or hostile content, each naming the
    /// file and the byte offset.
    pub fn open(path: impl AsRef<Path>) -> Result<Self> {
        Self::open_with(path, &OpenOptions::default())
    }

    /// [`Checkpoint::open`] with options (prefetch).
    ///
    /// # Errors
    /// As [`Checkpoint::open`].
    pub fn open_with(path: impl AsRef<Path>, options: &OpenOptions) -> Result<Self> {
        let path = path.as_ref();
        let bytes = source::map(path, options)?;
        Self::from_bytes(path, bytes, &|p| source::map(p, options))
    }

    /// Opens a checkpoint by copying it into memory (in 8 MiB `read()` calls) instead of
    /// mapping it. Use this for files that may be rewritten or truncated while in use, or that
    /// live on network storage, where a map can fault with `SIGBUS`. A file that changes size
    /// or modification time while being read is an error (a rewrite in place within one tick
    /// of the kernel's clock that ends at the same length cannot be seen: replace checkpoints
    /// by renaming a finished file over the old one, and every read gets one whole version).
    ///
    /// # Errors
    /// As [`Checkpoint::open`].
    pub fn read(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        let bytes = source::read(path)?;
        Self::from_bytes(path, bytes, &|p| source::read(p))
    }

    /// Parses a checkpoint already in memory (copied once into an aligned buffer). `label`
    /// names it in errors; a sharded index resolves its shards relative to it and reads them.
    ///
    /// ```
    /// let bytes = std::fs::read(concat!(env!("CARGO_MANIFEST_DIR"), "/../../tests/fixtures/weights/mixed.pt"))?;
    /// let ckpt = inferkit_weights::Checkpoint::from_slice("mixed.pt", &bytes)?;
    /// assert_eq!(ckpt.format(), inferkit_weights::Format::TorchZip);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// # Errors
    /// As [`Checkpoint::open`].
    pub fn from_slice(label: impl AsRef<Path>, bytes: &[u8]) -> Result<Self> {
        Self::from_bytes(label.as_ref(), Bytes::copy_of(bytes), &|p| source::read(p))
    }

    fn from_bytes(
        path: &Path,
        bytes: Bytes,
        load_shard: &dyn Fn(&Path) -> Result<Bytes>,
    ) -> Result<Self> {
        let start = Instant::now();
        let parsed = detect_and_parse(path, bytes, load_shard)?;
        let mut by_name = HashMap::with_capacity(parsed.entries.len());
        for (i, e) in parsed.entries.iter().enumerate() {
            if by_name.insert(e.name.clone(), i).is_some() {
                return Err(Error::DuplicateName {
                    path: path.to_path_buf(),
                    tensor: e.name.clone(),
                });
            }
        }
        tracing::debug!(
            path = %path.display(),
            format = ?parsed.format,
            tensors = parsed.entries.len(),
            micros = start.elapsed().as_micros() as u64,
            "checkpoint opened"
        );
        Ok(Checkpoint {
            path: path.to_path_buf(),
            format: parsed.format,
            sources: parsed.sources,
            entries: parsed.entries,
            by_name,
            metadata: parsed.metadata,
        })
    }

    /// The path it was opened from.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The detected format.
    pub fn format(&self) -> Format {
        self.format
    }

    /// Number of tensors.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether it holds no tensor.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The safetensors `__metadata__` (merged with a sharded index's `metadata`); empty for
    /// PyTorch files.
    pub fn metadata(&self) -> &HashMap<String, String> {
        &self.metadata
    }

    /// Every tensor, in file order.
    pub fn tensors(&self) -> impl ExactSizeIterator<Item = StoredTensor<'_>> + '_ {
        (0..self.entries.len()).map(move |i| self.view_at(i))
    }

    /// Tensor names, in file order.
    pub fn names(&self) -> impl ExactSizeIterator<Item = &str> + '_ {
        self.entries.iter().map(|e| e.name.as_str())
    }

    /// The tensor called `name`, if any.
    pub fn get(&self, name: &str) -> Option<StoredTensor<'_>> {
        self.by_name.get(name).map(|&i| self.view_at(i))
    }

    /// The tensor called `name`.
    ///
    /// # Errors
    /// [`Error::TensorNotFound`] naming the file and the name.
    pub fn tensor(&self, name: &str) -> Result<StoredTensor<'_>> {
        self.get(name).ok_or_else(|| Error::TensorNotFound {
            path: self.path.clone(),
            tensor: name.to_owned(),
        })
    }

    /// Lets the kernel drop the named tensors' bytes from this process's resident memory, for
    /// tensors copied (converted, repacked) at load and not read again: their byte ranges,
    /// merged where they touch, give back every whole 64 KiB block inside them
    /// (`madvise(MADV_DONTNEED)`; name tensors that lie side by side together, so that the
    /// blocks across their boundaries go too). Reading them later still works: the pages
    /// come back from the file. Returns the bytes given back — 0 for a checkpoint copied
    /// into memory ([`read`](Self::read), [`from_slice`](Self::from_slice)), off Unix, or
    /// ranges holding no whole block.
    ///
    /// ```
    /// use inferkit_weights::{Checkpoint, TensorBytes};
    /// # let dir = tempfile::tempdir()?;
    /// # let path = dir.path().join("m.safetensors");
    /// let w = ndarray::Array1::<f32>::from_elem(1 << 16, 0.5);
    /// inferkit_weights::save(&path, [("w", TensorBytes::from_array(w.view()))], None)?;
    /// let ckpt = Checkpoint::open(&path)?;
    /// let copy = ckpt.tensor("w")?.to_owned::<f32>()?;
    /// assert!(ckpt.release(["w"])? >= 3 * 65536); // 256 KiB of data: 3 whole blocks at least
    /// assert_eq!(ckpt.tensor("w")?.view::<f32>()?, copy); // read back from the file
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// # Errors
    /// [`Error::TensorNotFound`] (before anything is given back); [`Error::Io`] naming the
    /// file when `madvise` fails.
    pub fn release<'n>(&self, names: impl IntoIterator<Item = &'n str>) -> Result<usize> {
        // (source, start, end) of each tensor, then merged where they touch or overlap
        let mut ranges = Vec::new();
        for name in names {
            let &i = self
                .by_name
                .get(name)
                .ok_or_else(|| Error::TensorNotFound {
                    path: self.path.clone(),
                    tensor: name.to_owned(),
                })?;
            let e = &self.entries[i];
            ranges.push((e.source, e.offset, e.offset + e.span));
        }
        ranges.sort_unstable();
        let mut merged: Vec<(usize, usize, usize)> = Vec::with_capacity(ranges.len());
        for r in ranges {
            match merged.last_mut() {
                Some(last) if last.0 == r.0 && r.1 <= last.2 => last.2 = last.2.max(r.2),
                _ => merged.push(r),
            }
        }
        let mut given = 0;
        for (source, start, end) in merged {
            let src = &self.sources[source];
            given += src
                .bytes
                .release(start, end - start)
                .map_err(|source| Error::Io {
                    path: src.path.clone(),
                    source,
                })?;
        }
        Ok(given)
    }

    /// Total bytes of tensor data (each tensor's elements counted once, shared storage counted
    /// per tensor).
    pub fn nbytes(&self) -> usize {
        self.entries
            .iter()
            .map(|e| e.shape.iter().product::<usize>() * e.dtype.size())
            .sum()
    }

    fn view_at(&self, i: usize) -> StoredTensor<'_> {
        let entry = &self.entries[i];
        let src = &self.sources[entry.source];
        let bytes = if entry.span == 0 {
            &[][..]
        } else {
            // In range: checked by the parser that built the entry.
            &src.bytes.as_slice()[entry.offset..entry.offset + entry.span]
        };
        StoredTensor {
            entry,
            bytes,
            file: &src.path,
        }
    }
}

fn detect_and_parse(
    path: &Path,
    bytes: Bytes,
    load_shard: &dyn Fn(&Path) -> Result<Bytes>,
) -> Result<Parsed> {
    let data = bytes.as_slice();
    if data.starts_with(b"PK\x03\x04") || data.starts_with(b"PK\x05\x06") {
        return crate::pickle::torch_zip::parse(path, bytes);
    }
    if data.starts_with(&LEGACY_PREFIX) {
        return crate::pickle::torch_legacy::parse(path, bytes);
    }
    let first = data.iter().copied().find(|b| !b.is_ascii_whitespace());
    if data.len() >= 9 && data[8] == b'{' && first != Some(b'{') {
        return crate::safetensors::parse_single(path, bytes);
    }
    if first == Some(b'{') {
        return crate::safetensors::parse_sharded(path, data, load_shard);
    }
    let head: String = data.iter().take(16).map(|b| format!("{b:02x}")).collect();
    Err(Error::UnknownFormat {
        path: path.to_path_buf(),
        head: if head.is_empty() {
            "none: the file is empty".into()
        } else {
            head
        },
    })
}

/// One tensor of a [`Checkpoint`], borrowed from it: metadata, and access to its elements
/// without copying where the layout allows.
#[derive(Debug, Clone, Copy)]
pub struct StoredTensor<'a> {
    entry: &'a Entry,
    /// Exactly `entry.span` bytes, starting at element 0.
    bytes: &'a [u8],
    file: &'a Path,
}

impl<'a> StoredTensor<'a> {
    /// The tensor's name (nested PyTorch dicts are flattened with dots).
    pub fn name(&self) -> &'a str {
        &self.entry.name
    }

    /// Element type.
    pub fn dtype(&self) -> DType {
        self.entry.dtype
    }

    /// Dimensions.
    pub fn shape(&self) -> &'a [usize] {
        &self.entry.shape
    }

    /// Strides, in elements (PyTorch files keep theirs; safetensors are row-major).
    pub fn strides(&self) -> &'a [usize] {
        &self.entry.strides
    }

    /// Number of elements.
    pub fn numel(&self) -> usize {
        self.entry.shape.iter().product()
    }

    /// Bytes of element data (`numel * dtype.size()`).
    pub fn nbytes(&self) -> usize {
        self.numel() * self.entry.dtype.size()
    }

    /// The file the data lives in (a shard, for sharded checkpoints).
    pub fn file(&self) -> &'a Path {
        self.file
    }

    /// Byte offset of element 0 in [`file`](Self::file) (or in the decompressed zip entry,
    /// for the rare compressed PyTorch zip).
    pub fn file_offset(&self) -> usize {
        self.entry.offset
    }

    /// Whether the elements are stored row-major without gaps.
    pub fn is_contiguous(&self) -> bool {
        if self.entry.shape.contains(&0) {
            return true;
        }
        let mut expected = 1usize;
        for (&n, &s) in self.entry.shape.iter().zip(&self.entry.strides).rev() {
            if n != 1 && s != expected {
                return false;
            }
            expected *= n;
        }
        true
    }

    /// The raw little-endian bytes when the tensor is contiguous, else `None`
    /// (use [`to_contiguous_bytes`](Self::to_contiguous_bytes)).
    pub fn data(&self) -> Option<&'a [u8]> {
        self.is_contiguous().then_some(self.bytes)
    }

    /// The raw bytes in logical (row-major) order: borrowed when contiguous, gathered
    /// otherwise.
    pub fn to_contiguous_bytes(&self) -> std::borrow::Cow<'a, [u8]> {
        if let Some(d) = self.data() {
            return d.into();
        }
        let mut out = Vec::with_capacity(self.nbytes());
        convert::gather_bytes(
            self.bytes,
            self.entry.dtype.size(),
            &self.entry.shape,
            &self.entry.strides,
            &mut out,
        );
        out.into()
    }

    /// A zero-copy `ndarray` view of the elements, with the tensor's own strides.
    ///
    /// # Errors
    /// [`Error::NotViewable`] when `T` is not the tensor's dtype (use [`to_f32`](Self::to_f32)),
    /// when the bytes are not aligned for `T` in the file (use [`cow`](Self::cow) or
    /// [`to_owned`](Self::to_owned)), or when the strides overlap in a way `ndarray` refuses.
    pub fn view<T: StoredElement + Pod>(&self) -> Result<ArrayViewD<'a, T>> {
        let not = |reason: String| Error::NotViewable {
            tensor: self.entry.name.clone(),
            requested: std::any::type_name::<T>(),
            reason,
        };
        if T::DTYPE != self.entry.dtype {
            return Err(not(format!(
                "the tensor is {}; call to_f32()/to_f64() to convert",
                self.entry.dtype
            )));
        }
        let elems: &'a [T] = if self.bytes.is_empty() {
            &[]
        } else {
            bytemuck::try_cast_slice(self.bytes).map_err(|_| {
                not(format!(
                    "its data at byte {} of {} is not {}-byte aligned; call cow() or to_owned() to copy",
                    self.entry.offset,
                    self.file.display(),
                    std::mem::align_of::<T>()
                ))
            })?
        };
        ArrayViewD::from_shape(
            IxDyn(&self.entry.shape).strides(IxDyn(&self.entry.strides)),
            elems,
        )
        .map_err(|e| {
            not(format!(
                "ndarray refuses the layout ({e}); call to_owned() to copy"
            ))
        })
    }

    /// A view when [`view`](Self::view) can give one, else an owned row-major copy.
    ///
    /// # Errors
    /// [`Error::Conversion`] when `T` is not the tensor's dtype.
    pub fn cow<T: StoredElement + Pod>(&self) -> Result<CowArray<'a, T, IxDyn>> {
        match self.view::<T>() {
            Ok(v) => Ok(v.into()),
            Err(_) => self.to_owned::<T>().map(CowArray::from),
        }
    }

    /// An owned, row-major copy in the tensor's own element type.
    ///
    /// # Errors
    /// [`Error::Conversion`] when `T` is not the tensor's dtype.
    pub fn to_owned<T: StoredElement>(&self) -> Result<ArrayD<T>> {
        if T::DTYPE != self.entry.dtype {
            return Err(Error::Conversion {
                tensor: self.entry.name.clone(),
                from: self.entry.dtype,
                to: std::any::type_name::<T>(),
            });
        }
        let elem = self.entry.dtype.size();
        let mut out = Vec::with_capacity(self.numel());
        convert::for_each_run(
            &self.entry.shape,
            &self.entry.strides,
            |start, len, stride| {
                for i in 0..len {
                    let o = (start + i * stride) * elem;
                    out.push(T::read_le(&self.bytes[o..o + elem]));
                }
            },
        );
        Ok(ArrayD::from_shape_vec(IxDyn(&self.entry.shape), out).expect("numel elements gathered"))
    }

    /// Every element converted to `f32`, row-major, in a new array. Works for every dtype
    /// (integers and bool convert by value; `f64` rounds).
    pub fn to_f32(&self) -> ArrayD<f32> {
        let mut out = vec![0f32; self.numel()];
        self.to_f32_into(&mut out)
            .expect("buffer of numel elements");
        ArrayD::from_shape_vec(IxDyn(&self.entry.shape), out).expect("numel elements")
    }

    /// Converts into a caller's buffer of exactly [`numel`](Self::numel) elements, row-major.
    /// Reusing one buffer across tensors avoids the page faults of fresh allocations, which
    /// cost more than the conversion itself on large checkpoints.
    ///
    /// # Errors
    /// [`Error::BufferSize`] when `out.len() != numel()`.
    pub fn to_f32_into(&self, out: &mut [f32]) -> Result<()> {
        self.check_len(out.len())?;
        if self.is_contiguous() {
            match self.entry.dtype {
                DType::F16 => {
                    if let Ok(src) = bytemuck::try_cast_slice::<u8, f16>(self.bytes) {
                        convert::f16_slice_to_f32(src, out);
                        return Ok(());
                    }
                }
                DType::BF16 => {
                    if let Ok(src) = bytemuck::try_cast_slice::<u8, bf16>(self.bytes) {
                        convert::bf16_slice_to_f32(src, out);
                        return Ok(());
                    }
                }
                DType::F32 => {
                    if let Ok(src) = bytemuck::try_cast_slice::<u8, f32>(self.bytes) {
                        out.copy_from_slice(src);
                        return Ok(());
                    }
                }
                _ => {}
            }
        }
        self.fill(out);
        Ok(())
    }

    /// Every element converted to `f64`, row-major (exact for every dtype but 64-bit
    /// integers beyond 2^53).
    pub fn to_f64(&self) -> ArrayD<f64> {
        let mut out = vec![0f64; self.numel()];
        self.fill(&mut out);
        ArrayD::from_shape_vec(IxDyn(&self.entry.shape), out).expect("numel elements")
    }

    /// [`to_f64`](Self::to_f64) into a caller's buffer.
    ///
    /// # Errors
    /// [`Error::BufferSize`] when `out.len() != numel()`.
    pub fn to_f64_into(&self, out: &mut [f64]) -> Result<()> {
        self.check_len(out.len())?;
        self.fill(out);
        Ok(())
    }

    /// The sum of all elements as `f64`, in logical order (what `t.double().sum()` gives in
    /// PyTorch, up to summation order; bool counts `true`).
    pub fn sum_f64(&self) -> f64 {
        self.to_f64().iter().sum()
    }

    fn check_len(&self, got: usize) -> Result<()> {
        if got != self.numel() {
            return Err(Error::BufferSize {
                tensor: self.entry.name.clone(),
                expected: self.numel(),
                got,
            });
        }
        Ok(())
    }

    fn fill<O: Float>(&self, out: &mut [O]) {
        convert::to_float(
            self.entry.dtype,
            self.bytes,
            &self.entry.shape,
            &self.entry.strides,
            out,
        );
    }
}
