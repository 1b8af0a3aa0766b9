//! A gRPC `ModelInferRequest` read and checked against the model: its inputs (typed
//! contents or `raw_input_contents`; the served `BYTES` input's elements), Triton's
//! `timeout` and `priority` parameters and the requested outputs (with `classification`).
//! Apart from the service, so the fuzz target `serve_grpc_request` runs it on any message
//! prost decodes from arbitrary bytes.

use std::collections::HashMap;
use std::time::Duration;

use inferkit_infer_core::{DType, ModelDescriptor, Tensor};

use crate::grpc::proto::infer_parameter::ParameterChoice;
use crate::grpc::proto::{InferParameter, InferTensorContents, ModelInferRequest};
use crate::request::{
    Arg, Wanted, bytes_arg, bytes_elements, input_spec, narrowed, tensor_from_le,
};

/// What a request asks for.
#[derive(Debug)]
pub(crate) struct Parsed {
    /// Its inputs: tensors, or the elements of the served `BYTES` input.
    pub(crate) inputs: Vec<(String, Arg)>,
    /// Triton's `timeout` parameter (µs).
    pub(crate) timeout: Option<Duration>,
    /// Triton's `priority` parameter (0: the default level).
    pub(crate) priority: u64,
    /// The requested outputs (None: all), each with its `classification` (top k).
    pub(crate) wanted: Option<Vec<Wanted>>,
}

/// Reads `r` for the model `d` whose `BYTES` input (if any) is `bytes_input`; an error
/// names what is wrong (the 400 / INVALID_ARGUMENT message).
pub(crate) fn parse(
    d: &ModelDescriptor,
    bytes_input: Option<&str>,
    r: &ModelInferRequest,
) -> Result<Parsed, String> {
    let inputs = inputs(d, bytes_input, r)?;
    let timeout = int_param(&r.parameters, "timeout")?.map(Duration::from_micros);
    let priority = int_param(&r.parameters, "priority")?.unwrap_or(0);
    let wanted = if r.outputs.is_empty() {
        None
    } else {
        Some(
            r.outputs
                .iter()
                .map(|o| {
                    let k = int_param(&o.parameters, "classification")?;
                    Ok(Wanted {
                        name: o.name.clone(),
                        binary: true,
                        classification: k.and_then(|k| usize::try_from(k).ok()).filter(|&k| k > 0),
                    })
                })
                .collect::<Result<Vec<_>, String>>()?,
        )
    };
    Ok(Parsed {
        inputs,
        timeout,
        priority,
        wanted,
    })
}

fn int_param(params: &HashMap<String, InferParameter>, key: &str) -> Result<Option<u64>, String> {
    match params.get(key).and_then(|p| p.parameter_choice.as_ref()) {
        None => Ok(None),
        Some(ParameterChoice::Int64Param(v)) if *v >= 0 => Ok(Some(*v as u64)),
        Some(other) => Err(format!(
            "parameters.{key}: {other:?} is not a whole number >= 0"
        )),
    }
}

/// A request's inputs (typed contents or `raw_input_contents`): tensors, or the elements of
/// the served `BYTES` input `bytes_input`.
fn inputs(
    d: &ModelDescriptor,
    bytes_input: Option<&str>,
    r: &ModelInferRequest,
) -> Result<Vec<(String, Arg)>, String> {
    if !r.raw_input_contents.is_empty() && r.raw_input_contents.len() != r.inputs.len() {
        return Err(format!(
            "{} raw_input_contents for {} inputs",
            r.raw_input_contents.len(),
            r.inputs.len()
        ));
    }
    let mut out = Vec::with_capacity(r.inputs.len());
    for (i, t) in r.inputs.iter().enumerate() {
        let name = t.name.as_str();
        let shape = t
            .shape
            .iter()
            .map(|&d| usize::try_from(d))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|_| format!("input `{name}`: shape {:?} has a negative dim", t.shape))?;
        let raw = r.raw_input_contents.get(i);
        if raw.is_some() && t.contents.is_some() {
            return Err(format!(
                "input `{name}`: both contents and raw_input_contents"
            ));
        }
        if bytes_input == Some(name) {
            let arg = bytes_arg(name, &t.datatype, shape, || match (raw, &t.contents) {
                (Some(raw), _) => bytes_elements(name, raw),
                (None, Some(c)) => Ok(c.bytes_contents.iter().map(|b| b.to_vec()).collect()),
                (None, None) => Err(format!("input `{name}`: no contents")),
            });
            out.push(arg?);
            continue;
        }
        let spec = input_spec(d, name, &t.datatype)?;
        let tensor = match (raw, &t.contents) {
            (Some(raw), _) => tensor_from_le(name, spec.dtype, &shape, raw)?,
            (None, Some(c)) => typed(name, spec.dtype, &shape, c)?,
            (None, None) => return Err(format!("input `{name}`: no contents")),
        };
        out.push((name.to_owned(), Arg::Tensor(tensor)));
    }
    Ok(out)
}

/// Typed contents into a tensor of `shape` (as Triton: INT8/16/32 in `int_contents`,
/// UINT8/16/32 in `uint_contents`, each value checked to fit).
fn typed(
    name: &str,
    dtype: DType,
    shape: &[usize],
    c: &InferTensorContents,
) -> Result<Tensor, String> {
    let shaped = |e: ndarray::ShapeError| format!("input `{name}`: {e} (shape {shape:?})");
    // a value that does not fit the datatype (only the narrowed INT8/16, UINT8/16 can fail)
    fn unfit<W: std::fmt::Display>(name: &str, dtype: DType) -> impl Fn(usize, W) -> String + '_ {
        move |i, v| format!("input `{name}`: value {i} ({v}) does not fit {dtype:?}")
    }
    match dtype {
        DType::F32 => narrowed::<f32, _>(shape, &c.fp32_contents, unfit(name, dtype), shaped),
        DType::F64 => narrowed::<f64, _>(shape, &c.fp64_contents, unfit(name, dtype), shaped),
        DType::I64 => narrowed::<i64, _>(shape, &c.int64_contents, unfit(name, dtype), shaped),
        DType::U64 => narrowed::<u64, _>(shape, &c.uint64_contents, unfit(name, dtype), shaped),
        DType::I32 => narrowed::<i32, _>(shape, &c.int_contents, unfit(name, dtype), shaped),
        DType::I16 => narrowed::<i16, _>(shape, &c.int_contents, unfit(name, dtype), shaped),
        DType::I8 => narrowed::<i8, _>(shape, &c.int_contents, unfit(name, dtype), shaped),
        DType::U32 => narrowed::<u32, _>(shape, &c.uint_contents, unfit(name, dtype), shaped),
        DType::U16 => narrowed::<u16, _>(shape, &c.uint_contents, unfit(name, dtype), shaped),
        DType::U8 => narrowed::<u8, _>(shape, &c.uint_contents, unfit(name, dtype), shaped),
        DType::Bool => narrowed::<bool, _>(shape, &c.bool_contents, unfit(name, dtype), shaped),
        other => Err(format!("input `{name}`: datatype {other:?} is not served")),
    }
}
