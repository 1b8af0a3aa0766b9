//! The Open Inference Protocol's inference request: its JSON (and binary tensor data)
//! parsed and checked against a model's descriptor, touching no server state. Kept apart
//! from `app.rs` so the fuzz target `serve_request` (fuzz/) can reach it without the server.

use std::time::Duration;

use inferkit_infer_core::{DType, Element, ModelDescriptor, Tensor, TensorSpec, TensorView};
use ndarray::{ArrayD, IxDyn};
use serde_json::Value;

/// The header of the binary tensor data extension: the JSON part's length in bytes.
pub(crate) const HEADER_LENGTH: &str = "inference-header-content-length";

/// One input of a request as given: a tensor, or the elements of a `BYTES` input (encoded
/// images, UTF-8 texts) that the served model's preprocessing turns into tensors.
#[derive(Debug)]
pub(crate) enum Arg {
    /// Numbers, checked against the model's input of that name.
    Tensor(Tensor),
    /// `BYTES` elements, row-major, of `shape`.
    Bytes {
        /// The request's shape for them.
        shape: Vec<usize>,
        /// The elements.
        items: Vec<Vec<u8>>,
    },
}

/// How a `BYTES` input's JSON strings are read: an encoded image's as base64 (JSON cannot
/// carry raw bytes), a text's as the UTF-8 it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum BytesKind {
    /// Encoded images.
    Image,
    /// Texts.
    Text,
}

/// A request parsed: its inputs not yet checked against the model (a `BYTES` input becomes
/// tensors first).
pub(crate) struct Parsed {
    /// The inputs, in the request's order.
    pub(crate) inputs: Vec<(String, Arg)>,
    /// `parameters.timeout` (µs in the request).
    pub(crate) timeout: Option<Duration>,
    /// `parameters.priority` (0 when absent).
    pub(crate) priority: u64,
    /// Requested outputs (None: all): each its name, whether it goes back as binary data,
    /// and its `parameters.classification` (the top-k as `score:index:label` strings).
    pub(crate) wanted: Option<Vec<Wanted>>,
    /// `parameters.binary_data_output`.
    pub(crate) all_binary: bool,
    /// The request's `id`, echoed.
    pub(crate) id: Option<Value>,
    /// The request's `parameters`.
    pub(crate) params: Option<Value>,
}

/// One requested output.
#[derive(Debug, Clone)]
pub(crate) struct Wanted {
    /// Its name.
    pub(crate) name: String,
    /// Whether it goes back as binary data (HTTP).
    pub(crate) binary: bool,
    /// Triton's classification extension: this many top classes instead of the tensor.
    pub(crate) classification: Option<usize>,
}

/// Parses a request body (`raw`: its JSON, or with the binary extension a JSON header of
/// `json_len` bytes and then the tensors) and checks its tensors' names, datatypes and
/// sizes against `d`, and the input `bytes_input` (when the served model has one) as
/// `BYTES`. The error is the message of a 400 answer.
pub(crate) fn parse(
    d: &ModelDescriptor,
    bytes_input: Option<(&str, BytesKind)>,
    raw: &[u8],
    json_len: Option<usize>,
) -> Result<Parsed, String> {
    let (json, binary) = match json_len {
        None => (raw, &[][..]),
        Some(n) if n <= raw.len() => raw.split_at(n),
        Some(n) => {
            return Err(format!(
                "{HEADER_LENGTH}: {n} is past the body's {} bytes",
                raw.len()
            ));
        }
    };
    let body: RequestJson =
        serde_json::from_slice(json).map_err(|e| format!("malformed JSON: {e}"))?;
    let mut rest = binary;
    let inputs = body
        .inputs
        .as_ref()
        .ok_or("the request has no `inputs` array")?
        .iter()
        .map(|v| parse_input(d, bytes_input, v, &mut rest))
        .collect::<Result<Vec<_>, _>>()?;
    if !rest.is_empty() {
        return Err(format!(
            "{} bytes of binary data follow the header that no input claims",
            rest.len()
        ));
    }
    let timeout = match &body.parameters["timeout"] {
        Value::Null => None,
        t => Some(Duration::from_micros(t.as_u64().ok_or_else(|| {
            format!("parameters.timeout: {t} is not a whole number of µs")
        })?)),
    };
    let priority = match &body.parameters["priority"] {
        Value::Null => 0,
        p => p
            .as_u64()
            .ok_or_else(|| format!("parameters.priority: {p} is not a whole number >= 0"))?,
    };
    let all_binary = body.parameters["binary_data_output"].as_bool() == Some(true);
    let wanted = match body.outputs.as_array() {
        None => None,
        Some(a) => Some(
            a.iter()
                .map(|o| {
                    let name = o["name"]
                        .as_str()
                        .ok_or("a requested output has no `name`")?;
                    let binary = o["parameters"]["binary_data"]
                        .as_bool()
                        .unwrap_or(all_binary);
                    let classification = match &o["parameters"]["classification"] {
                        Value::Null => None,
                        k => Some(k.as_u64().filter(|&k| k > 0).ok_or_else(|| {
                            format!(
                                "output `{name}`: parameters.classification {k} is not a whole number > 0"
                            )
                        })? as usize),
                    };
                    Ok(Wanted {
                        name: name.to_owned(),
                        binary,
                        classification,
                    })
                })
                .collect::<Result<Vec<_>, String>>()?,
        ),
    };
    Ok(Parsed {
        inputs,
        timeout,
        priority,
        wanted,
        all_binary,
        id: body.id,
        params: Some(body.parameters),
    })
}

/// A 400 answer's message.
fn bad(msg: impl Into<String>) -> String {
    msg.into()
}

/// The protocol's name of a datatype.
pub(crate) fn datatype(d: DType) -> &'static str {
    match d {
        DType::Bool => "BOOL",
        DType::U8 => "UINT8",
        DType::I8 => "INT8",
        DType::I16 => "INT16",
        DType::U16 => "UINT16",
        DType::I32 => "INT32",
        DType::U32 => "UINT32",
        DType::I64 => "INT64",
        DType::U64 => "UINT64",
        DType::F16 => "FP16",
        DType::BF16 => "BF16",
        DType::F32 => "FP32",
        DType::F64 => "FP64",
        _ => "BYTES",
    }
}

/// An inference request's JSON. Only `data` is parsed specially (the rest are small): into
/// one flat vector of numbers, never a tree of JSON values (32 bytes and more a number).
#[derive(serde::Deserialize)]
struct RequestJson {
    #[serde(default)]
    id: Option<Value>,
    #[serde(default)]
    inputs: Option<Vec<InputJson>>,
    #[serde(default)]
    outputs: Value,
    #[serde(default)]
    parameters: Value,
}

/// One input of a request.
#[derive(serde::Deserialize)]
struct InputJson {
    #[serde(default)]
    name: Value,
    #[serde(default)]
    shape: Value,
    #[serde(default)]
    datatype: Value,
    #[serde(default)]
    parameters: Value,
    #[serde(default)]
    data: Flat,
}

/// An input's `data`, flattened (nested arrays as the protocol allows, row-major): whole
/// numbers while every value is one, else all as f64.
#[derive(Default)]
struct Flat {
    ints: Vec<i64>,
    floats: Option<Vec<f64>>,
    /// Index of the first value that was not a whole number.
    first_float: Option<usize>,
    /// Index of the first value that was not a number at all.
    not_number: Option<usize>,
    /// The strings (a `BYTES` input's elements).
    strings: Vec<String>,
    /// Index of the first value that was not a string.
    not_string: Option<usize>,
    len: usize,
}

impl Flat {
    fn int(&mut self, v: i64) {
        self.not_string.get_or_insert(self.len);
        match &mut self.floats {
            Some(f) => f.push(v as f64),
            None => self.ints.push(v),
        }
        self.len += 1;
    }

    fn float(&mut self, v: f64) {
        self.not_string.get_or_insert(self.len);
        self.first_float.get_or_insert(self.len);
        let ints = std::mem::take(&mut self.ints);
        self.floats
            .get_or_insert_with(|| ints.into_iter().map(|i| i as f64).collect())
            .push(v);
        self.len += 1;
    }

    fn string(&mut self, v: &str) {
        self.not_number.get_or_insert(self.len);
        self.strings.push(v.to_owned());
        self.len += 1;
    }

    fn other(&mut self) {
        self.not_number.get_or_insert(self.len);
        self.not_string.get_or_insert(self.len);
        self.len += 1;
    }
}

impl<'de> serde::Deserialize<'de> for Flat {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let mut flat = Flat::default();
        serde::de::DeserializeSeed::deserialize(FlatSeed(&mut flat), d)?;
        Ok(flat)
    }
}

/// Appends one JSON value (a number, or an array of them, nested) to a [`Flat`].
struct FlatSeed<'a>(&'a mut Flat);

impl<'de> serde::de::DeserializeSeed<'de> for FlatSeed<'_> {
    type Value = ();
    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> serde::de::Visitor<'de> for FlatSeed<'_> {
    type Value = ();
    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("numbers or strings, or arrays of them")
    }
    fn visit_i64<E>(self, v: i64) -> Result<(), E> {
        self.0.int(v);
        Ok(())
    }
    fn visit_u64<E>(self, v: u64) -> Result<(), E> {
        match i64::try_from(v) {
            Ok(i) => self.0.int(i),
            Err(_) => self.0.float(v as f64),
        }
        Ok(())
    }
    fn visit_f64<E>(self, v: f64) -> Result<(), E> {
        self.0.float(v);
        Ok(())
    }
    fn visit_bool<E>(self, _: bool) -> Result<(), E> {
        self.0.other();
        Ok(())
    }
    fn visit_str<E>(self, v: &str) -> Result<(), E> {
        self.0.string(v);
        Ok(())
    }
    fn visit_unit<E>(self) -> Result<(), E> {
        self.0.other();
        Ok(())
    }
    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        while seq.next_element_seed(FlatSeed(&mut *self.0))?.is_some() {}
        Ok(())
    }
    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        self.0.other();
        while map
            .next_entry::<serde::de::IgnoredAny, serde::de::IgnoredAny>()?
            .is_some()
        {}
        Ok(())
    }
}

/// One request input as a tensor, checked against the model's input of that name, or the
/// elements of the served model's `BYTES` input.
fn parse_input(
    d: &ModelDescriptor,
    bytes_input: Option<(&str, BytesKind)>,
    v: &InputJson,
    binary: &mut &[u8],
) -> Result<(String, Arg), String> {
    let name = v
        .name
        .as_str()
        .ok_or_else(|| bad("an input has no `name`"))?;
    let dt = v.datatype.as_str().unwrap_or("");
    let shape: Vec<usize> = v
        .shape
        .as_array()
        .ok_or_else(|| bad(format!("input `{name}`: no `shape`")))?
        .iter()
        .map(|x| x.as_u64().map(|n| n as usize))
        .collect::<Option<_>>()
        .ok_or_else(|| {
            bad(format!(
                "input `{name}`: shape must be non-negative integers"
            ))
        })?;
    let n = shape
        .iter()
        .try_fold(1usize, |a, &d| a.checked_mul(d))
        .ok_or_else(|| bad(format!("input `{name}`: shape {shape:?} is too large")))?;
    // the binary tensor data extension: the values follow the JSON header, little-endian
    let raw = match v.parameters["binary_data_size"].as_u64() {
        None => None,
        Some(size) => {
            let size = size as usize;
            if size > binary.len() {
                return Err(bad(format!(
                    "input `{name}`: binary_data_size {size}, but only {} bytes follow the header",
                    binary.len()
                )));
            }
            let (bytes, rest) = binary.split_at(size);
            *binary = rest;
            Some(bytes)
        }
    };
    if let Some((_, kind)) = bytes_input.filter(|(b, _)| *b == name) {
        return bytes_arg(name, dt, shape, || match raw {
            Some(bytes) => bytes_elements(name, bytes),
            None => json_elements(name, kind, &v.data),
        });
    }
    let spec = input_spec(d, name, dt)?;
    if let Some(bytes) = raw {
        let t = tensor_from_le(name, spec.dtype, &shape, bytes)?;
        return Ok((name.to_owned(), Arg::Tensor(t)));
    }
    let flat = &v.data;
    if flat.len != n {
        return Err(bad(format!(
            "input `{name}`: {} values for shape {shape:?} ({n})",
            flat.len
        )));
    }
    let err = |i: usize| bad(format!("input `{name}`: value {i} is not a {dt}"));
    if let Some(i) = flat.not_number {
        return Err(err(i));
    }
    let shaped = |e: ndarray::ShapeError| bad(format!("input `{name}`: {e}"));
    let whole = |i: usize, _: i64| err(i);
    let floats: Option<Vec<f64>> = match &flat.floats {
        Some(f) => Some(f.clone()),
        None if matches!(spec.dtype, DType::F32 | DType::F64) => {
            Some(flat.ints.iter().map(|&x| x as f64).collect())
        }
        None => None,
    };
    let t: Tensor = match (spec.dtype, floats) {
        (DType::F32, Some(f)) => {
            ArrayD::from_shape_vec(IxDyn(&shape), f.iter().map(|&x| x as f32).collect())
                .map_err(shaped)?
                .into()
        }
        (DType::F64, Some(f)) => ArrayD::from_shape_vec(IxDyn(&shape), f)
            .map_err(shaped)?
            .into(),
        (_, Some(_)) => return Err(err(flat.first_float.unwrap_or(0))),
        (DType::I64, None) => narrowed::<i64, _>(&shape, &flat.ints, whole, shaped)?,
        (DType::I32, None) => narrowed::<i32, _>(&shape, &flat.ints, whole, shaped)?,
        (DType::I16, None) => narrowed::<i16, _>(&shape, &flat.ints, whole, shaped)?,
        (DType::I8, None) => narrowed::<i8, _>(&shape, &flat.ints, whole, shaped)?,
        (DType::U64, None) => narrowed::<u64, _>(&shape, &flat.ints, whole, shaped)?,
        (DType::U32, None) => narrowed::<u32, _>(&shape, &flat.ints, whole, shaped)?,
        (DType::U16, None) => narrowed::<u16, _>(&shape, &flat.ints, whole, shaped)?,
        (DType::U8, None) => narrowed::<u8, _>(&shape, &flat.ints, whole, shaped)?,
        (other, None) => {
            return Err(bad(format!(
                "input `{name}`: datatype {other:?} is not served as JSON data"
            )));
        }
    };
    Ok((name.to_owned(), Arg::Tensor(t)))
}

/// `values` into a tensor of `T` and `shape` (both protocols' typed data), each value checked
/// to fit `T`: `unfit(i, v)` names the first that does not, `shaped` a count that does not
/// fill the shape.
pub(crate) fn narrowed<T: Element + TryFrom<W>, W: Copy>(
    shape: &[usize],
    values: &[W],
    unfit: impl Fn(usize, W) -> String,
    shaped: impl Fn(ndarray::ShapeError) -> String,
) -> Result<Tensor, String> {
    let v = values
        .iter()
        .enumerate()
        .map(|(i, &x)| T::try_from(x).map_err(|_| unfit(i, x)))
        .collect::<Result<Vec<T>, _>>()?;
    ArrayD::from_shape_vec(IxDyn(shape), v)
        .map(Tensor::from)
        .map_err(shaped)
}

/// The served `BYTES` input `name`, sent as datatype `dt` with `shape`: its elements, read
/// by `elements` once the datatype is right, one per value of the shape (both protocols).
pub(crate) fn bytes_arg(
    name: &str,
    dt: &str,
    shape: Vec<usize>,
    elements: impl FnOnce() -> Result<Vec<Vec<u8>>, String>,
) -> Result<(String, Arg), String> {
    if dt != "BYTES" {
        return Err(bad(format!(
            "input `{name}`: datatype {dt:?}, the model takes BYTES"
        )));
    }
    let n = shape
        .iter()
        .try_fold(1usize, |a, &d| a.checked_mul(d))
        .ok_or_else(|| bad(format!("input `{name}`: shape {shape:?} is too large")))?;
    let items = elements()?;
    if items.len() != n {
        return Err(bad(format!(
            "input `{name}`: {} elements for shape {shape:?} ({n})",
            items.len()
        )));
    }
    Ok((name.to_owned(), Arg::Bytes { shape, items }))
}

/// A `BYTES` input's elements in the protocol's binary form (the binary data extension,
/// gRPC's `raw_input_contents`): each a 4-byte little-endian length, then its bytes.
pub(crate) fn bytes_elements(name: &str, mut raw: &[u8]) -> Result<Vec<Vec<u8>>, String> {
    let mut items = Vec::new();
    let total = raw.len();
    while !raw.is_empty() {
        let at = total - raw.len();
        let Some((len, rest)) = raw.split_first_chunk::<4>() else {
            return Err(bad(format!(
                "input `{name}`: element {} at byte {at}: {} bytes left, a length takes 4",
                items.len(),
                raw.len()
            )));
        };
        let len = u32::from_le_bytes(*len) as usize;
        if len > rest.len() {
            return Err(bad(format!(
                "input `{name}`: element {} at byte {at} claims {len} bytes, {} follow",
                items.len(),
                rest.len()
            )));
        }
        let (item, rest) = rest.split_at(len);
        items.push(item.to_vec());
        raw = rest;
    }
    Ok(items)
}

/// A `BYTES` input's elements from JSON strings: base64 for images, UTF-8 text as is.
fn json_elements(name: &str, kind: BytesKind, flat: &Flat) -> Result<Vec<Vec<u8>>, String> {
    use base64::Engine as _;
    if let Some(i) = flat.not_string {
        return Err(bad(format!("input `{name}`: element {i} is not a string")));
    }
    flat.strings
        .iter()
        .enumerate()
        .map(|(i, s)| match kind {
            BytesKind::Text => Ok(s.as_bytes().to_vec()),
            BytesKind::Image => base64::engine::general_purpose::STANDARD
                .decode(s)
                .map_err(|e| bad(format!("input `{name}`: element {i} is not base64: {e}"))),
        })
        .collect()
}

/// The model's input `name`, checked to take datatype `dt` (the protocol's name).
pub(crate) fn input_spec<'a>(
    d: &'a ModelDescriptor,
    name: &str,
    dt: &str,
) -> Result<&'a TensorSpec, String> {
    let spec = d.inputs.iter().find(|s| s.name == name).ok_or_else(|| {
        bad(format!(
            "unknown input `{name}` (model inputs: {})",
            d.inputs
                .iter()
                .map(|s| s.name.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        ))
    })?;
    if dt != datatype(spec.dtype) {
        return Err(bad(format!(
            "input `{name}`: datatype {dt:?}, the model takes {}",
            datatype(spec.dtype)
        )));
    }
    Ok(spec)
}

/// Checks inputs against the model (before queueing, so one bad request cannot fail a
/// batch): their common first (batch) dimension.
pub(crate) fn check_inputs(
    d: &ModelDescriptor,
    inputs: &[(String, Tensor)],
) -> Result<usize, String> {
    let views: Vec<(&str, TensorView<'_>)> =
        inputs.iter().map(|(n, t)| (n.as_str(), t.view())).collect();
    d.validate(&views).map_err(|e| e.to_string())?;
    let rows = inputs
        .first()
        .map_or(0, |(_, t)| t.shape().first().copied().unwrap_or(0));
    if inputs.iter().any(|(_, t)| t.shape().first() != Some(&rows)) {
        return Err("inputs differ in their first (batch) dimension".into());
    }
    Ok(rows)
}

/// Input `name`'s values as little-endian bytes (the binary data extension, gRPC's
/// `raw_input_contents`) into a tensor of `shape`, the byte count checked.
pub(crate) fn tensor_from_le(
    name: &str,
    dtype: DType,
    shape: &[usize],
    bytes: &[u8],
) -> Result<Tensor, String> {
    Tensor::from_le_bytes(dtype, shape, bytes).map_err(|e| bad(format!("input `{name}`: {e}")))
}
