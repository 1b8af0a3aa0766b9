//! What torch's pickles may name, what their calls mean, and how the unpickled object
//! becomes a list of tensors.

use std::collections::HashMap;
use std::path::Path;
use std::rc::Rc;

use super::machine::Value;
use crate::layout::Entry;
use crate::{DType, Error, Result};

/// The allow-list. Anything a pickle names that is not here is refused before it exists.
#[derive(Debug, Clone)]
pub(crate) enum Global {
    /// `collections.OrderedDict`
    OrderedDict,
    /// `torch._utils._rebuild_tensor` (storage, offset, size, stride)
    RebuildTensor,
    /// `torch._utils._rebuild_tensor_v2` (storage, offset, size, stride, requires_grad, hooks[, metadata])
    RebuildTensorV2,
    /// `torch._utils._rebuild_tensor_v3` (untyped storage, offset, size, stride, requires_grad,
    /// hooks, dtype[, metadata]): what torch writes for dtypes without a typed storage class
    /// (FP8, unsigned 16/32/64-bit).
    RebuildTensorV3,
    /// `torch._utils._rebuild_parameter` / `_rebuild_parameter_with_state` (data, …)
    RebuildParameter,
    /// `torch._tensor._rebuild_from_type_v2` (func, type, args, state)
    RebuildFromTypeV2,
    /// `torch.Tensor`, `torch.nn.parameter.Parameter`: only as the type argument above.
    TensorType,
    /// `torch.FloatStorage` and friends; `None` for storage classes of dtypes we do not read.
    Storage { dtype: Option<DType>, name: Rc<str> },
    /// `torch.float32` and friends: values (the dtype argument of `_rebuild_tensor_v3`).
    DTypeName(DType),
}

fn storage_dtype(name: &str) -> Option<Option<DType>> {
    Some(Some(match name {
        "DoubleStorage" => DType::F64,
        "FloatStorage" => DType::F32,
        "HalfStorage" => DType::F16,
        "BFloat16Storage" => DType::BF16,
        "LongStorage" => DType::I64,
        "IntStorage" => DType::I32,
        "ShortStorage" => DType::I16,
        "CharStorage" => DType::I8,
        "ByteStorage" | "UntypedStorage" => DType::U8,
        "BoolStorage" => DType::Bool,
        "UInt16Storage" => DType::U16,
        "UInt32Storage" => DType::U32,
        "UInt64Storage" => DType::U64,
        "ComplexFloatStorage"
        | "ComplexDoubleStorage"
        | "QInt8Storage"
        | "QUInt8Storage"
        | "QInt32Storage"
        | "QUInt4x2Storage"
        | "QUInt2x4Storage" => return Some(None),
        _ => return None,
    }))
}

fn dtype_name(name: &str) -> Option<DType> {
    Some(match name {
        "float32" | "float" => DType::F32,
        "float64" | "double" => DType::F64,
        "float16" | "half" => DType::F16,
        "bfloat16" => DType::BF16,
        "int64" | "long" => DType::I64,
        "int32" | "int" => DType::I32,
        "int16" | "short" => DType::I16,
        "int8" => DType::I8,
        "uint8" => DType::U8,
        "uint16" => DType::U16,
        "uint32" => DType::U32,
        "uint64" => DType::U64,
        "bool" => DType::Bool,
        "float8_e4m3fn" => DType::F8E4M3,
        "float8_e5m2" => DType::F8E5M2,
        _ => return None,
    })
}

impl Global {
    pub(crate) fn resolve(module: &str, name: &str) -> Option<Global> {
        Some(match (module, name) {
            ("collections", "OrderedDict") => Global::OrderedDict,
            ("torch._utils", "_rebuild_tensor") => Global::RebuildTensor,
            ("torch._utils", "_rebuild_tensor_v2") => Global::RebuildTensorV2,
            ("torch._utils", "_rebuild_tensor_v3") => Global::RebuildTensorV3,
            ("torch._utils", "_rebuild_parameter" | "_rebuild_parameter_with_state") => {
                Global::RebuildParameter
            }
            ("torch._tensor", "_rebuild_from_type_v2") => Global::RebuildFromTypeV2,
            ("torch", "Tensor") | ("torch.nn.parameter", "Parameter") => Global::TensorType,
            ("torch" | "torch.cuda" | "torch.storage", n) if n.ends_with("Storage") => {
                Global::Storage {
                    dtype: storage_dtype(n)?,
                    name: n.into(),
                }
            }
            ("torch", n) => Global::DTypeName(dtype_name(n)?),
            _ => return None,
        })
    }

    /// Interprets `REDUCE` of this global on `args`.
    pub(crate) fn call(&self, args: &[Value]) -> std::result::Result<Value, String> {
        match self {
            Global::OrderedDict => match args {
                [] => Ok(Value::new_dict()),
                [pairs] if pairs.items().is_some_and(|p| p.is_empty()) => Ok(Value::new_dict()),
                _ => Err("OrderedDict(...) with items is not supported".into()),
            },
            Global::RebuildTensor | Global::RebuildTensorV2 => rebuild_tensor(args, None).map(|t| Value::Tensor(Rc::new(t))),
            Global::RebuildTensorV3 => match args.get(6) {
                Some(Value::Global(Global::DTypeName(d))) => rebuild_tensor(args, Some(*d)).map(|t| Value::Tensor(Rc::new(t))),
                _ => Err("_rebuild_tensor_v3: seventh argument is not a dtype".into()),
            },
            Global::RebuildParameter => match args.first() {
                Some(t @ Value::Tensor(_)) => Ok(t.clone()),
                _ => Err("_rebuild_parameter: first argument is not a tensor".into()),
            },
            Global::RebuildFromTypeV2 => match args {
                // Not itself: that would let a pickle recurse once per nesting level.
                [Value::Global(func), Value::Global(Global::TensorType), Value::Tuple(inner), _state]
                    if !matches!(func, Global::RebuildFromTypeV2) =>
                {
                    func.call(&inner.0)
                }
                _ => Err("_rebuild_from_type_v2 with arguments other than (rebuild function, Tensor/Parameter, args, state)".into()),
            },
            Global::TensorType | Global::Storage { .. } | Global::DTypeName(_) => {
                Err("calling a tensor type, storage class or dtype is not allowed".into())
            }
        }
    }
}

/// A storage named by a `persistent_id`.
#[derive(Debug)]
pub(crate) struct StorageRef {
    pub(crate) key: String,
    pub(crate) dtype: DType,
    /// Elements in the (root) storage, as the pickle declares.
    pub(crate) numel: u64,
    /// Legacy storage views: (element offset into the root storage, element count).
    pub(crate) view: Option<(u64, u64)>,
}

/// A tensor as the pickle describes it, checked against its storage later.
#[derive(Debug)]
pub(crate) struct TensorRef {
    pub(crate) storage: Rc<StorageRef>,
    /// The storage's dtype, or the one `_rebuild_tensor_v3` names over an untyped storage.
    pub(crate) dtype: DType,
    pub(crate) offset: u64,
    pub(crate) shape: Vec<usize>,
    pub(crate) strides: Vec<usize>,
}

pub(crate) fn as_u64(v: &Value, what: &str) -> std::result::Result<u64, String> {
    match v {
        Value::Int(i) if *i >= 0 => Ok(*i as u64),
        other => Err(format!(
            "{what} is {}, expected a non-negative integer",
            other.describe()
        )),
    }
}

fn dims(v: &Value, what: &str) -> std::result::Result<Vec<usize>, String> {
    let items = v
        .items()
        .ok_or_else(|| format!("{what} is a {}, expected a tuple", v.kind()))?;
    items
        .iter()
        .map(|d| {
            as_u64(d, what)
                .and_then(|x| usize::try_from(x).map_err(|_| format!("{what} {x} too large")))
        })
        .collect()
}

fn rebuild_tensor(args: &[Value], dtype: Option<DType>) -> std::result::Result<TensorRef, String> {
    let [storage, offset, size, stride, ..] = args else {
        return Err(format!("_rebuild_tensor with {} arguments", args.len()));
    };
    let Value::Storage(storage) = storage else {
        return Err(format!(
            "_rebuild_tensor: first argument is a {}, not a storage",
            storage.kind()
        ));
    };
    let shape = dims(size, "size")?;
    let strides = dims(stride, "stride")?;
    if shape.len() != strides.len() {
        return Err(format!(
            "size has {} dims but stride has {}",
            shape.len(),
            strides.len()
        ));
    }
    let dtype = dtype.unwrap_or(storage.dtype);
    Ok(TensorRef {
        storage: storage.clone(),
        dtype,
        offset: as_u64(offset, "storage offset")?,
        shape,
        strides,
    })
}

/// Interprets a storage `persistent_id` tuple. Zip files write
/// `('storage', cls, key, location, numel)`; legacy files add a sixth item, the view metadata
/// `(view_key, offset, size)` or `None`.
pub(crate) fn storage_pid(pid: Value) -> std::result::Result<Value, String> {
    let items = pid
        .items()
        .ok_or_else(|| format!("persistent id is a {}, not a tuple", pid.kind()))?;
    let (tag, cls, key, numel, view) = match items.as_slice() {
        [tag, cls, key, _loc, numel] => (tag, cls, key, numel, None),
        [tag, cls, key, _loc, numel, view] => (tag, cls, key, numel, Some(view)),
        _ => {
            return Err(format!(
                "persistent id has {} items; expected a storage tuple",
                items.len()
            ));
        }
    };
    match tag {
        Value::Str(s) if &**s == "storage" => {}
        Value::Str(s) if &**s == "module" => return Err("persistent id of a whole pickled nn.Module (torch.save(model)); save model.state_dict() instead".into()),
        other => return Err(format!("persistent id tag is {}, not `storage`", other.describe())),
    }
    let dtype = match cls {
        Value::Global(Global::Storage { dtype: Some(d), .. }) => *d,
        Value::Global(Global::Storage { dtype: None, name }) => {
            return Err(format!(
                "storage class {name} holds a dtype this crate does not read"
            ));
        }
        other => return Err(format!("storage class is a {}", other.kind())),
    };
    let key = match key {
        Value::Str(s) => s.to_string(),
        Value::Int(i) => i.to_string(),
        other => return Err(format!("storage key is a {}", other.kind())),
    };
    let view = match view {
        None | Some(Value::None) => None,
        Some(v) => match v.items().as_deref() {
            Some([_view_key, off, size]) => {
                Some((as_u64(off, "view offset")?, as_u64(size, "view size")?))
            }
            _ => return Err("storage view metadata is not (key, offset, size)".into()),
        },
    };
    Ok(Value::Storage(Rc::new(StorageRef {
        key,
        dtype,
        numel: as_u64(numel, "storage size")?,
        view,
    })))
}

/// What [`load_object`] finds in an object pickle.
pub(crate) struct Loaded {
    /// Named tensors, in the object's order.
    pub(crate) tensors: Vec<(String, Rc<TensorRef>)>,
    /// Every storage a persistent id named (repeats included).
    pub(crate) storages: Vec<Rc<StorageRef>>,
    /// Bytes of `data` the pickle used.
    pub(crate) used: usize,
}

/// Runs the object pickle at the start of `data` (at `base` in the file), collecting the
/// storages its persistent ids name, and flattens the object into named tensors.
pub(crate) fn load_object(path: &Path, data: &[u8], base: u64) -> Result<Loaded> {
    let mut storages = Vec::new();
    let mut persistent = |pid: Value| {
        let v = storage_pid(pid)?;
        if let Value::Storage(s) = &v {
            storages.push(s.clone());
        }
        Ok(v)
    };
    let (root, used) = super::machine::load(path, data, base, &mut persistent)?;
    let tensors = flatten(&root, path)?;
    Ok(Loaded {
        tensors,
        storages,
        used,
    })
}

/// How deep nested dicts may go, and how many values flattening may visit (a pickle can
/// reference one dict from many places; this keeps that from exploding).
const MAX_DEPTH: usize = 64;
const MAX_VISITS: usize = 10_000_000;

/// Flattens the unpickled object into `(name, tensor)` pairs: dict keys and list indices are
/// joined with dots (`{"state_dict": {"w": t}}` → `state_dict.w`); non-tensor leaves
/// (epochs, hyper-parameters) are skipped.
fn flatten(root: &Value, path: &Path) -> Result<Vec<(String, Rc<TensorRef>)>> {
    let mut out = Vec::new();
    let mut visits = 0usize;
    walk(root, String::new(), 0, &mut visits, &mut out).map_err(|what| Error::Malformed {
        path: path.to_path_buf(),
        offset: 0,
        what,
    })?;
    Ok(out)
}

fn join(prefix: &str, key: &str) -> String {
    if prefix.is_empty() {
        key.to_owned()
    } else {
        format!("{prefix}.{key}")
    }
}

fn walk(
    v: &Value,
    name: String,
    depth: usize,
    visits: &mut usize,
    out: &mut Vec<(String, Rc<TensorRef>)>,
) -> std::result::Result<(), String> {
    *visits += 1;
    if *visits > MAX_VISITS {
        return Err(format!(
            "the pickled object has more than {MAX_VISITS} values (shared containers repeated?)"
        ));
    }
    if depth > MAX_DEPTH {
        return Err(format!(
            "the pickled object nests deeper than {MAX_DEPTH} levels at `{name}`"
        ));
    }
    match v {
        Value::Tensor(t) => out.push((name, t.clone())),
        Value::Dict(d) => {
            for (k, child) in d.borrow().0.iter() {
                let key = match k {
                    Value::Str(s) => s.to_string(),
                    Value::Int(i) => i.to_string(),
                    _ => continue,
                };
                walk(child, join(&name, &key), depth + 1, visits, out)?;
            }
        }
        Value::List(_) | Value::Tuple(_) => {
            for (i, child) in v.items().unwrap_or_default().iter().enumerate() {
                walk(child, join(&name, &i.to_string()), depth + 1, visits, out)?;
            }
        }
        _ => {}
    }
    Ok(())
}

/// Where a storage's bytes are: source index, byte offset, byte length.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Placed {
    pub(crate) source: usize,
    pub(crate) offset: usize,
    pub(crate) len: usize,
}

/// Turns flattened tensors into checked entries, given where each storage key's bytes are.
pub(crate) fn entries(
    path: &Path,
    tensors: Vec<(String, Rc<TensorRef>)>,
    storages: &HashMap<String, Placed>,
) -> Result<Vec<Entry>> {
    let mut out = Vec::with_capacity(tensors.len());
    for (name, t) in tensors {
        let s = &t.storage;
        let placed = storages.get(&s.key).ok_or_else(|| Error::Malformed {
            path: path.to_path_buf(),
            offset: 0,
            what: format!(
                "tensor `{name}` refers to storage `{}`, which the file does not contain",
                s.key
            ),
        })?;
        let bad = |what: String| Error::BadTensor {
            path: path.to_path_buf(),
            tensor: name.clone(),
            offset: placed.offset as u64,
            what,
        };
        // In bytes from the storage's start: the usable window (a legacy storage view starts
        // `view.0` storage elements in), then the tensor's first byte and extent within it.
        let selem = s.dtype.size() as u64;
        let (win_start, win_len) = match s.view {
            None => (0u64, placed.len as u64),
            Some((off, size)) => {
                let (a, n) = (off.checked_mul(selem), size.checked_mul(selem));
                match (a, n) {
                    (Some(a), Some(n))
                        if a.checked_add(n).is_some_and(|e| e <= placed.len as u64) =>
                    {
                        (a, n)
                    }
                    _ => {
                        return Err(bad(format!(
                            "storage view [{off}, +{size}) lies outside its {}-byte storage",
                            placed.len
                        )));
                    }
                }
            }
        };
        let span = Entry::span_of(t.dtype, &t.shape, &t.strides).map_err(bad)? as u64;
        let first = t
            .offset
            .checked_mul(t.dtype.size() as u64)
            .ok_or_else(|| bad("storage offset overflows".into()))?;
        if span > 0 && first.checked_add(span).is_none_or(|e| e > win_len) {
            return Err(bad(format!(
                "{} {:?} (strides {:?}) at storage offset {} needs {} bytes but its storage has {win_len}",
                t.dtype,
                t.shape,
                t.strides,
                t.offset,
                first.saturating_add(span)
            )));
        }
        // Empty tensors may carry any offset; they read no byte.
        let offset = if span == 0 {
            placed.offset
        } else {
            placed.offset + (win_start + first) as usize
        };
        out.push(Entry {
            name,
            dtype: t.dtype,
            shape: t.shape.clone(),
            strides: t.strides.clone(),
            source: placed.source,
            offset,
            span: span as usize,
        });
    }
    Ok(out)
}
