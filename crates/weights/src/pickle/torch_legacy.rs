//! Legacy PyTorch checkpoints (before 1.6, or `_use_new_zipfile_serialization=False`):
//! five pickles back to back — magic number, protocol version, system info, the object, the
//! list of storage keys — then each storage's bytes in that order, each behind an 8-byte
//! little-endian element count. Where storages land depends on the pickles' length, so
//! their alignment is chance: [`StoredTensor::cow`](crate::StoredTensor::cow) copies the
//! misaligned ones.

use std::collections::HashMap;
use std::path::Path;

use super::machine::{self, Value};
use super::torch::{self, Placed, StorageRef};
use crate::layout::{Format, LEGACY_PREFIX, Parsed, Source};
use crate::source::Bytes;
use crate::{Error, Result};

const PROTOCOL_VERSION: i64 = 1001;

pub(crate) fn parse(path: &Path, bytes: Bytes) -> Result<Parsed> {
    let data = bytes.as_slice();
    let malformed = |offset: usize, what: String| Error::Malformed {
        path: path.to_path_buf(),
        offset: offset as u64,
        what,
    };
    let mut pos = 0usize;
    let mut no_persistent =
        |_: Value| Err::<Value, String>("unexpected persistent id in a header pickle".into());
    let next = |pos: &mut usize, persistent: &mut machine::PersistentLoad<'_>| -> Result<Value> {
        let (v, used) = machine::load(path, &data[*pos..], *pos as u64, persistent)?;
        *pos += used;
        Ok(v)
    };

    let magic = next(&mut pos, &mut no_persistent)?;
    if !matches!(&magic, Value::BigInt(b) if **b == LEGACY_PREFIX[4..]) {
        return Err(malformed(0, "legacy magic number does not match".into()));
    }
    let at = pos;
    match next(&mut pos, &mut no_persistent)? {
        Value::Int(PROTOCOL_VERSION) => {}
        other => {
            return Err(malformed(
                at,
                format!("legacy protocol version is {other:?}, expected {PROTOCOL_VERSION}"),
            ));
        }
    }
    let at = pos;
    let sys_info = next(&mut pos, &mut no_persistent)?;
    if let Value::Dict(d) = &sys_info {
        let little = d.borrow().0.iter().find_map(|(k, v)| match (k, v) {
            (Value::Str(k), Value::Bool(b)) if &**k == "little_endian" => Some(*b),
            _ => None,
        });
        if little == Some(false) {
            return Err(malformed(
                at,
                "checkpoint was written big-endian; only little-endian is supported".into(),
            ));
        }
    }
    drop(sys_info);

    let torch::Loaded {
        tensors,
        storages,
        used,
    } = torch::load_object(path, &data[pos..], pos as u64)?;
    pos += used;

    let at = pos;
    let keys = next(&mut pos, &mut no_persistent)?;
    let key_list: Vec<String> = keys
        .items()
        .ok_or_else(|| malformed(at, format!("storage key list is a {}", keys.kind())))?
        .iter()
        .map(|k| match k {
            Value::Str(s) => Ok(s.to_string()),
            Value::Int(i) => Ok(i.to_string()),
            other => Err(malformed(at, format!("storage key is a {}", other.kind()))),
        })
        .collect::<Result<_>>()?;
    drop(keys);

    let declared: HashMap<&str, &StorageRef> =
        storages.iter().map(|s| (s.key.as_str(), &**s)).collect();
    let mut placed = HashMap::with_capacity(key_list.len());
    for key in key_list {
        let s = declared.get(key.as_str()).ok_or_else(|| {
            malformed(
                pos,
                format!("storage key `{key}` is listed but no tensor uses it"),
            )
        })?;
        let header = data
            .get(pos..pos + 8)
            .ok_or_else(|| malformed(pos, format!("file ends before storage `{key}`")))?;
        let numel = u64::from_le_bytes(header.try_into().expect("8 bytes"));
        if numel != s.numel {
            return Err(malformed(
                pos,
                format!(
                    "storage `{key}` holds {numel} elements but the pickle declares {}",
                    s.numel
                ),
            ));
        }
        let len = numel
            .checked_mul(s.dtype.size() as u64)
            .and_then(|l| usize::try_from(l).ok())
            .ok_or_else(|| malformed(pos, format!("storage `{key}` size {numel} overflows")))?;
        let start = pos + 8;
        if start.checked_add(len).is_none_or(|e| e > data.len()) {
            return Err(malformed(
                start,
                format!(
                    "storage `{key}` ({len} bytes) runs past the end of the {}-byte file: truncated",
                    data.len()
                ),
            ));
        }
        placed.insert(
            key,
            Placed {
                source: 0,
                offset: start,
                len,
            },
        );
        pos = start + len;
    }
    let entries = torch::entries(path, tensors, &placed)?;
    Ok(Parsed {
        format: Format::TorchLegacy,
        sources: vec![Source {
            path: path.to_path_buf(),
            bytes,
        }],
        entries,
        metadata: HashMap::new(),
    })
}
