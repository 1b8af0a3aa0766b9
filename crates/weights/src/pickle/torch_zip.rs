//! PyTorch zip checkpoints (`torch.save` since 1.6): `<archive>/data.pkl` plus one entry per
//! storage under `<archive>/data/<key>`. torch stores entries uncompressed and 64-byte
//! aligned, so each storage is viewed in place in the map; a compressed entry (re-zipped by
//! another tool) is inflated into memory instead.

use std::collections::HashMap;
use std::io::{Cursor, Read};
use std::path::Path;

use zip::{CompressionMethod, ZipArchive};

use super::torch::{self, Placed};
use crate::layout::{Format, Parsed, Source};
use crate::source::Bytes;
use crate::{Error, Result};

/// Largest data.pkl accepted (a pickle of a million tensors is about 200 MB).
const MAX_PICKLE: u64 = 1 << 30;

pub(crate) fn parse(path: &Path, bytes: Bytes) -> Result<Parsed> {
    let data = bytes.as_slice();
    let malformed = |offset: u64, what: String| Error::Malformed {
        path: path.to_path_buf(),
        offset,
        what,
    };
    let mut zip =
        ZipArchive::new(Cursor::new(data)).map_err(|e| malformed(0, format!("zip: {e}")))?;
    let pkl_name = zip
        .file_names()
        .filter_map(|n| n.ok())
        .find(|n| n == "data.pkl" || n.ends_with("/data.pkl"))
        .map(|n| n.into_owned())
        .ok_or_else(|| {
            malformed(
                0,
                "zip archive has no data.pkl: not a PyTorch checkpoint".into(),
            )
        })?;
    let prefix = &pkl_name[..pkl_name.len() - "data.pkl".len()];

    if let Some(i) = zip.index_for_name(&format!("{prefix}byteorder")) {
        let mut order = String::new();
        let f = zip
            .by_index(i)
            .map_err(|e| malformed(0, format!("zip entry {prefix}byteorder: {e}")))?;
        f.take(16)
            .read_to_string(&mut order)
            .map_err(|e| malformed(0, format!("zip entry {prefix}byteorder: {e}")))?;
        if order.trim() != "little" {
            return Err(malformed(
                0,
                format!(
                    "checkpoint byte order is `{}`; only little-endian is supported",
                    order.trim()
                ),
            ));
        }
    }

    // The pickle: in place when stored, inflated otherwise.
    let (pkl, pkl_base): (std::borrow::Cow<'_, [u8]>, u64) = {
        let i = zip.index_for_name(&pkl_name).expect("found above");
        entry_bytes(&mut zip, i, data, MAX_PICKLE)
            .map_err(|e| malformed(0, format!("zip entry {pkl_name}: {e}")))?
    };
    let torch::Loaded {
        tensors, storages, ..
    } = torch::load_object(path, &pkl, pkl_base)?;

    let mut sources = Vec::new();
    let mut placed: HashMap<String, Placed> = HashMap::new();
    for s in &storages {
        if placed.contains_key(&s.key) {
            continue;
        }
        let name = format!("{prefix}data/{}", s.key);
        let i = zip
            .index_for_name(&name)
            .ok_or_else(|| malformed(0, format!("storage `{}` has no zip entry {name}", s.key)))?;
        let want = s.numel.checked_mul(s.dtype.size() as u64);
        let (data_start, size) = {
            let f = zip
                .by_index_raw(i)
                .map_err(|e| malformed(0, format!("zip entry {name}: {e}")))?;
            (f.data_start().unwrap_or(0), f.size())
        };
        if want != Some(size) {
            return Err(malformed(
                data_start,
                format!(
                    "zip entry {name} holds {size} bytes but storage `{}` declares {} {} elements",
                    s.key, s.numel, s.dtype
                ),
            ));
        }
        // In place when stored (the usual case: zero copy), inflated into memory otherwise.
        let (entry, start) = entry_bytes(&mut zip, i, data, size)
            .map_err(|e| malformed(data_start, format!("zip entry {name}: {e}")))?;
        let p = match entry {
            std::borrow::Cow::Borrowed(_) => Placed {
                source: 0,
                offset: start as usize,
                len: size as usize,
            },
            std::borrow::Cow::Owned(inflated) => {
                sources.push(Source {
                    path: path.to_path_buf(),
                    bytes: Bytes::copy_of(&inflated),
                });
                Placed {
                    source: sources.len(),
                    offset: 0,
                    len: size as usize,
                }
            }
        };
        placed.insert(s.key.clone(), p);
    }
    drop(zip);
    let entries = torch::entries(path, tensors, &placed)?;
    let mut all = vec![Source {
        path: path.to_path_buf(),
        bytes,
    }];
    all.append(&mut sources);
    Ok(Parsed {
        format: Format::TorchZip,
        sources: all,
        entries,
        metadata: HashMap::new(),
    })
}

/// The bytes of entry `i`: borrowed from `data` when stored, inflated (at most `limit`
/// bytes) when compressed. Also returns the entry's offset in the file (0 when inflated).
fn entry_bytes<'a>(
    zip: &mut ZipArchive<Cursor<&'a [u8]>>,
    i: usize,
    data: &'a [u8],
    limit: u64,
) -> std::result::Result<(std::borrow::Cow<'a, [u8]>, u64), String> {
    let (start, size, stored) = {
        let f = zip.by_index_raw(i).map_err(|e| e.to_string())?;
        (
            f.data_start().unwrap_or(0),
            f.size(),
            f.compression() == CompressionMethod::Stored,
        )
    };
    if size > limit {
        return Err(format!(
            "entry of {size} bytes exceeds the {limit}-byte limit"
        ));
    }
    if stored {
        let end = start
            .checked_add(size)
            .filter(|&e| e <= data.len() as u64)
            .ok_or("entry runs past the end of the file")?;
        return Ok((
            std::borrow::Cow::Borrowed(&data[start as usize..end as usize]),
            start,
        ));
    }
    let f = zip.by_index(i).map_err(|e| e.to_string())?;
    let mut out = Vec::with_capacity(size as usize);
    f.take(size)
        .read_to_end(&mut out)
        .map_err(|e| e.to_string())?;
    if out.len() as u64 != size {
        return Err(format!(
            "entry inflates to {} bytes, not the declared {size}",
            out.len()
        ));
    }
    Ok((std::borrow::Cow::Owned(out), 0))
}
