//! Where a checkpoint's bytes live: a read-only memory map, or an owned, 8-byte aligned
//! copy read in chunks.

use std::fs::File;
use std::io::Read;
use std::path::Path;

use memmap2::{Mmap, MmapOptions};

use crate::{Error, Result};

/// How much of a mapped file to bring into memory up front.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum Prefetch {
    /// Nothing: pages are faulted in when a tensor is first read. Opening is O(header).
    #[default]
    None,
    /// `madvise(MADV_WILLNEED)`: ask the kernel to start reading the file in the background.
    WillNeed,
    /// `MAP_POPULATE` (Linux): fault every page in while mapping. Opening then costs a read
    /// of the whole file, and later reads never stall.
    Populate,
}

/// Options for [`Checkpoint::open_with`](crate::Checkpoint::open_with).
#[derive(Debug, Clone, Copy, Default)]
#[non_exhaustive]
pub struct OpenOptions {
    pub(crate) prefetch: Prefetch,
}

impl OpenOptions {
    /// The defaults: map lazily, no prefetch.
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets the prefetch policy.
    #[must_use]
    pub fn with_prefetch(mut self, prefetch: Prefetch) -> Self {
        self.prefetch = prefetch;
        self
    }
}

/// The granule [`Bytes::release`] gives back: 64 KiB, a multiple of the 4, 16 and 64 KiB
/// pages of the platforms memmap2 runs on, so no page size has to be asked for.
pub(crate) const RELEASE_ALIGN: usize = 64 << 10;

/// Size of one `read()` call when a checkpoint is copied into memory.
pub(crate) const READ_CHUNK: usize = 8 << 20;

/// The bytes of one file (or one decompressed zip entry).
#[derive(Debug)]
pub(crate) enum Bytes {
    /// A read-only shared mapping of the whole file.
    Map(Mmap),
    /// An owned copy; `u64` words keep it 8-byte aligned so that views of every dtype work
    /// wherever the file's own layout is aligned.
    Owned { words: Vec<u64>, len: usize },
}

impl Bytes {
    pub(crate) fn as_slice(&self) -> &[u8] {
        match self {
            Bytes::Map(m) => m,
            Bytes::Owned { words, len } => &bytemuck::cast_slice::<u64, u8>(words)[..*len],
        }
    }

    /// Gives the whole [`RELEASE_ALIGN`] blocks inside `offset..offset + len` of a map back
    /// to the kernel (`madvise(MADV_DONTNEED)`): they leave the resident set, and a later
    /// read faults them back in from the file. Returns the bytes given back: 0 for an owned
    /// copy, off Unix, or a range holding no whole block.
    pub(crate) fn release(&self, offset: usize, len: usize) -> std::io::Result<usize> {
        match self {
            #[cfg(unix)]
            Bytes::Map(m) => {
                let start = offset.next_multiple_of(RELEASE_ALIGN);
                let end = (offset + len).min(m.len()) / RELEASE_ALIGN * RELEASE_ALIGN;
                if end <= start {
                    return Ok(0);
                }
                // SAFETY: `m` is a read-only MAP_SHARED mapping of a file (`map` below), and
                // `start..end` lies inside it on page boundaries (RELEASE_ALIGN is a multiple
                // of every page size Linux and macOS use). MADV_DONTNEED on a shared file
                // mapping only drops this process's page-table entries: the next read of
                // those addresses faults the same bytes back in from the page cache or the
                // file, so views borrowed from the map keep reading the file's contents (the
                // zero-fill that makes DONTNEED unsafe applies to private and anonymous
                // mappings, which `Bytes` never holds).
                unsafe {
                    m.unchecked_advise_range(
                        memmap2::UncheckedAdvice::DontNeed,
                        start,
                        end - start,
                    )?;
                }
                Ok(end - start)
            }
            _ => Ok(0),
        }
    }

    /// An owned, aligned copy of `data`.
    pub(crate) fn copy_of(data: &[u8]) -> Self {
        let mut words = vec![0u64; data.len().div_ceil(8)];
        bytemuck::cast_slice_mut::<u64, u8>(&mut words)[..data.len()].copy_from_slice(data);
        Bytes::Owned {
            words,
            len: data.len(),
        }
    }
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> Error + '_ {
    move |source| Error::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Maps `path` read-only.
pub(crate) fn map(path: &Path, opts: &OpenOptions) -> Result<Bytes> {
    let file = File::open(path).map_err(io(path))?;
    let len = file.metadata().map_err(io(path))?.len();
    if len == 0 {
        // mmap(2) refuses a zero-length mapping; an empty file is no checkpoint anyway.
        return Ok(Bytes::Owned {
            words: Vec::new(),
            len: 0,
        });
    }
    let mut options = MmapOptions::new();
    if opts.prefetch == Prefetch::Populate {
        options.populate();
    }
    // SAFETY: the mapping is read-only (PROT_READ, MAP_SHARED), so this process never writes
    // through it. What memmap2 cannot rule out is another process truncating or rewriting the
    // file while it is mapped: reads of truncated pages raise SIGBUS and rewritten pages change
    // under the borrowed views. `Checkpoint::open` documents this contract (the same one every
    // mmap-based loader — safetensors, candle, numpy.memmap — has) and `Checkpoint::read` is the
    // copy-based alternative for files that may change.
    let map = unsafe { options.map(&file) }.map_err(io(path))?;
    if opts.prefetch == Prefetch::WillNeed {
        #[cfg(unix)]
        map.advise(memmap2::Advice::WillNeed).map_err(io(path))?;
    }
    Ok(Bytes::Map(map))
}

/// Copies `path` into an owned, aligned buffer, `READ_CHUNK` bytes per `read()`.
///
/// The length is taken from the open file's metadata; if the file ends early or turns out
/// longer, or its modification time moved (it changed while being read), that is an error
/// rather than a silent truncation or a torn copy. A rewrite within one tick of the kernel's
/// clock that ends at the same length cannot be told apart: writers should replace files by
/// renaming a finished one over them (what `tests/faults.rs` exercises).
pub(crate) fn read(path: &Path) -> Result<Bytes> {
    let mut file = File::open(path).map_err(io(path))?;
    let before = file.metadata().map_err(io(path))?;
    let expected = before.len();
    let len = usize::try_from(expected).map_err(|_| Error::Malformed {
        path: path.to_path_buf(),
        offset: 0,
        what: format!("file of {expected} bytes does not fit in memory"),
    })?;
    let mut words = vec![0u64; len.div_ceil(8)];
    let buf = &mut bytemuck::cast_slice_mut::<u64, u8>(&mut words)[..len];
    let mut pos = 0;
    while pos < len {
        let end = (pos + READ_CHUNK).min(len);
        match file.read(&mut buf[pos..end]) {
            Ok(0) => {
                return Err(Error::Malformed {
                    path: path.to_path_buf(),
                    offset: pos as u64,
                    what: format!(
                        "file ended early while reading (expected {len} bytes): it changed while being read"
                    ),
                });
            }
            Ok(n) => pos += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(io(path)(e)),
        }
    }
    let mut probe = [0u8; 1];
    if file.read(&mut probe).map_err(io(path))? != 0 {
        return Err(Error::Malformed {
            path: path.to_path_buf(),
            offset: len as u64,
            what: format!("file grew past its {len} bytes while being read"),
        });
    }
    // A rewrite in place that ends at the same length is caught by the modification time
    // (which the kernel updates on every write, at its clock tick's resolution).
    let after = file.metadata().map_err(io(path))?;
    if after.len() != before.len() || after.modified().ok() != before.modified().ok() {
        return Err(Error::Malformed {
            path: path.to_path_buf(),
            offset: 0,
            what: "file was modified while being read".into(),
        });
    }
    Ok(Bytes::Owned { words, len })
}
