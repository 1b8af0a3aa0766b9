//! safetensors files, single and sharded.
//!
//! The header is parsed here rather than by `safetensors::SafeTensors::read_metadata` because
//! errors must name the tensor and the byte offset; the rules are the crate's (header at most
//! 100 MB, dtype × shape = byte length, in-bounds, non-overlapping), and a test checks that
//! every file the crate accepts opens here with the same tensors.

use std::collections::HashMap;
use std::path::{Component, Path};

use serde::Deserialize;

use crate::layout::{Entry, Format, Parsed, Source};
use crate::source::Bytes;
use crate::{DType, Error, Result};

/// The safetensors crate's cap on the JSON header.
pub(crate) const MAX_HEADER: u64 = 100_000_000;

#[derive(Deserialize)]
struct RawInfo {
    dtype: String,
    shape: Vec<u64>,
    data_offsets: [u64; 2],
}

fn malformed(path: &Path, offset: u64, what: impl Into<String>) -> Error {
    Error::Malformed {
        path: path.to_path_buf(),
        offset,
        what: what.into(),
    }
}

/// Parses the header of one safetensors file (held in `bytes`) into entries for source
/// `source`, in data-offset order, plus its `__metadata__`.
pub(crate) fn parse_header(
    path: &Path,
    data: &[u8],
    source: usize,
) -> Result<(Vec<Entry>, HashMap<String, String>)> {
    let Some(len_bytes) = data.get(..8) else {
        return Err(malformed(
            path,
            0,
            format!(
                "file of {} bytes is shorter than the 8-byte header length",
                data.len()
            ),
        ));
    };
    let n = u64::from_le_bytes(len_bytes.try_into().expect("8 bytes"));
    if n > MAX_HEADER {
        return Err(malformed(
            path,
            0,
            format!("header length {n} exceeds the {MAX_HEADER}-byte limit"),
        ));
    }
    let header_end = 8 + n as usize;
    let Some(header) = data.get(8..header_end) else {
        return Err(malformed(
            path,
            0,
            format!(
                "header length {n} runs past the end of the {}-byte file",
                data.len()
            ),
        ));
    };
    let text = std::str::from_utf8(header).map_err(|e| {
        malformed(
            path,
            8 + e.valid_up_to() as u64,
            "header is not valid UTF-8",
        )
    })?;
    let map: serde_json::Map<String, serde_json::Value> =
        serde_json::from_str(text).map_err(|e| {
            let at = if e.line() == 1 {
                8 + e.column().saturating_sub(1) as u64
            } else {
                8
            };
            malformed(path, at, format!("header is not a JSON object: {e}"))
        })?;
    let data_len = (data.len() - header_end) as u64;
    let mut metadata = HashMap::new();
    let mut entries = Vec::with_capacity(map.len());
    let mut ranges = Vec::with_capacity(map.len());
    for (name, value) in map {
        if name == "__metadata__" {
            metadata = serde_json::from_value(value).map_err(|e| {
                malformed(
                    path,
                    8,
                    format!("`__metadata__` is not a map of strings: {e}"),
                )
            })?;
            continue;
        }
        let bad = |offset: u64, what: String| Error::BadTensor {
            path: path.to_path_buf(),
            tensor: name.clone(),
            offset,
            what,
        };
        let info: RawInfo = serde_json::from_value(value)
            .map_err(|e| bad(header_end as u64, format!("header entry is malformed: {e}")))?;
        let [start, end] = info.data_offsets;
        let abs = (header_end as u64).saturating_add(start);
        let dtype =
            DType::from_safetensors_name(&info.dtype).ok_or_else(|| Error::UnsupportedDtype {
                path: path.to_path_buf(),
                tensor: name.clone(),
                dtype: info.dtype.clone(),
            })?;
        let shape: Vec<usize> = info
            .shape
            .iter()
            .map(|&d| usize::try_from(d))
            .collect::<Result<_, _>>()
            .map_err(|_| {
                bad(
                    abs,
                    format!("shape {:?} does not fit in memory", info.shape),
                )
            })?;
        let nbytes = shape
            .iter()
            .copied()
            .try_fold(dtype.size(), usize::checked_mul)
            .ok_or_else(|| bad(abs, format!("shape {shape:?} of {dtype} overflows")))?;
        if end < start || end - start != nbytes as u64 {
            return Err(bad(
                abs,
                format!(
                    "data_offsets [{start}, {end}] hold {} bytes but {dtype} {shape:?} needs {nbytes}",
                    end.wrapping_sub(start) as i64
                ),
            ));
        }
        if end > data_len {
            return Err(bad(
                abs,
                format!(
                    "data_offsets [{start}, {end}] run past the end of the data ({data_len} bytes after the header): the file is truncated or the offsets are wrong"
                ),
            ));
        }
        ranges.push((start, end, entries.len()));
        let strides = Entry::contiguous_strides(&shape);
        entries.push(Entry {
            name,
            dtype,
            shape,
            strides,
            source,
            offset: header_end + start as usize,
            span: nbytes,
        });
    }
    // File order, and no two tensors may share bytes.
    ranges.sort_unstable();
    for w in ranges.windows(2) {
        let (a, b) = (&entries[w[0].2], &entries[w[1].2]);
        if w[1].0 < w[0].1 {
            return Err(Error::BadTensor {
                path: path.to_path_buf(),
                tensor: b.name.clone(),
                offset: b.offset as u64,
                what: format!(
                    "data overlaps tensor `{}` (bytes {}..{} of the data)",
                    a.name, w[0].0, w[0].1
                ),
            });
        }
    }
    let mut slots: Vec<Option<Entry>> = entries.into_iter().map(Some).collect();
    let ordered = ranges
        .iter()
        .map(|r| slots[r.2].take().expect("each index once"))
        .collect();
    Ok((ordered, metadata))
}

pub(crate) fn parse_single(path: &Path, bytes: Bytes) -> Result<Parsed> {
    let (entries, metadata) = parse_header(path, bytes.as_slice(), 0)?;
    Ok(Parsed {
        format: Format::Safetensors,
        sources: vec![Source {
            path: path.to_path_buf(),
            bytes,
        }],
        entries,
        metadata,
    })
}

#[derive(Deserialize)]
struct Index {
    #[serde(default)]
    metadata: HashMap<String, serde_json::Value>,
    /// In file order (serde_json's `preserve_order` keeps it).
    weight_map: serde_json::Map<String, serde_json::Value>,
}

/// A `*.safetensors.index.json`: every shard it names is loaded once (mapped or read, as the
/// caller chose) and must hold the tensors the index assigns to it.
pub(crate) fn parse_sharded(
    path: &Path,
    data: &[u8],
    load: &dyn Fn(&Path) -> Result<Bytes>,
) -> Result<Parsed> {
    if data.len() as u64 > MAX_HEADER {
        return Err(malformed(
            path,
            0,
            format!(
                "index of {} bytes exceeds the {MAX_HEADER}-byte limit",
                data.len()
            ),
        ));
    }
    let index: Index = serde_json::from_slice(data).map_err(|e| {
        malformed(
            path,
            0,
            format!("not a safetensors index (JSON with a `weight_map`): {e}"),
        )
    })?;
    let dir = path.parent().unwrap_or(Path::new(""));
    // Shards in order of first mention; the tensors each must hold.
    let mut shards: Vec<(String, Vec<String>)> = Vec::new();
    for (tensor, shard) in &index.weight_map {
        let shard = shard.as_str().ok_or_else(|| {
            malformed(
                path,
                0,
                format!("weight_map entry for `{tensor}` is not a file name"),
            )
        })?;
        let rel = Path::new(shard);
        if rel.components().any(|c| !matches!(c, Component::Normal(_))) {
            return Err(malformed(
                path,
                0,
                format!(
                    "shard `{shard}` for `{tensor}` is not a plain relative path inside the index's folder"
                ),
            ));
        }
        match shards.iter_mut().find(|(s, _)| s == shard) {
            Some((_, names)) => names.push(tensor.clone()),
            None => shards.push((shard.to_owned(), vec![tensor.clone()])),
        }
    }
    let mut sources = Vec::with_capacity(shards.len());
    let mut entries = Vec::new();
    let mut metadata: HashMap<String, String> = index
        .metadata
        .into_iter()
        .map(|(k, v)| (k, v.as_str().map_or_else(|| v.to_string(), str::to_owned)))
        .collect();
    for (i, (shard, expected)) in shards.iter().enumerate() {
        let shard_path = dir.join(shard);
        let bytes = load(&shard_path)?;
        let (mut shard_entries, shard_meta) = parse_header(&shard_path, bytes.as_slice(), i)?;
        for name in expected {
            if !shard_entries.iter().any(|e| &e.name == name) {
                return Err(Error::TensorNotFound {
                    path: shard_path.clone(),
                    tensor: name.clone(),
                });
            }
        }
        for (k, v) in shard_meta {
            metadata.entry(k).or_insert(v);
        }
        entries.append(&mut shard_entries);
        sources.push(Source {
            path: shard_path,
            bytes,
        });
    }
    Ok(Parsed {
        format: Format::ShardedSafetensors,
        sources,
        entries,
        metadata,
    })
}
