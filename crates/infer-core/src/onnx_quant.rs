//! ONNX `QuantizeLinear`, `DequantizeLinear` and `QLinearConv` of our own, registered in
//! tract-onnx's operator registry in place of tract 0.21's, and onnxruntime's quantized
//! element-wise operators, which tract lacks (issue 22, "ONNX int8").
//!
//! tract 0.21 reads only the first element of `y_scale` and `y_zero_point` and ignores
//! `axis`: a model quantized per channel — what `onnxruntime.quantization.quantize_static`
//! writes by default for convolution and matrix-product weights in QDQ format — came out
//! wrong without an error (0.026 off onnxruntime on an output of 0.24: every weight channel
//! but the first scaled by the first channel's scale). Its `QuantizeLinear` also rounded
//! half away from zero as `x · (1/scale)`, where ONNX (and onnxruntime) divide and round half
//! to even.
//!
//! Here both are expansions into tract's element-wise operators, per tensor (a scalar or
//! one-element scale) or per axis (a 1-D scale and zero point along `axis`, default 1,
//! negative counted from the end), with the parameters constant or not:
//! - `QuantizeLinear`: `saturate(round_half_to_even(x / scale) + zero_point)` into the zero
//!   point's type (u8 without one, or `output_dtype`): u8, i8, u16, i16;
//! - `DequantizeLinear`: `(x − zero_point) · scale`, the subtraction in i32 as onnxruntime
//!   does it, from u8, i8, u16, i16 or i32.
//!
//! Blocked quantization (`block_size`, opset 21), other element types (float8, int4) and
//! f16 scales are refused at prepare, naming the node.
//!
//! `QLinearConv` (what `quantize_static` writes in QOperator format) is ours too: tract's
//! wants one element type for activations and weights (uint8 and int8 here) and its
//! quantized im2col fails on per-channel weights; ours dequantizes, convolves in f32 and
//! quantizes, as onnxruntime's QDQ reference computes it (exact on the fixtures).
//!
//! onnxruntime's own `QLinearAdd`, `QLinearMul`, `QLinearSigmoid`,
//! `QLinearGlobalAveragePool` and `QGemm` (domain `com.microsoft`, which QOperator format
//! writes around residual additions, squeeze-and-excitation gates, sigmoids, global pooling
//! and `nn.Linear` heads; tract has none of them): operands dequantized, the f32 operation
//! (with ONNX broadcasting), the result quantized (exact on the fixtures).

use std::borrow::Cow;

use tract_onnx::model::{OnnxOpRegister, ParsingContext};
use tract_onnx::pb::NodeProto;
use tract_onnx::tract_core::ops::cast::cast;
use tract_onnx::tract_core::ops::change_axes::AxisOp;
use tract_onnx::tract_core::ops::math::{add, div, max, min, mul, round_half_to_even, sub};
use tract_onnx::tract_hir::internal::*;

/// Puts our operators in tract-onnx's registry: `QuantizeLinear`, `DequantizeLinear` and
/// `QLinearConv` in place of tract's, onnxruntime's com.microsoft ones beside them.
pub(crate) fn register(reg: &mut OnnxOpRegister) {
    reg.insert("QuantizeLinear", |ctx, node| build(ctx, node, true));
    reg.insert("DequantizeLinear", |ctx, node| build(ctx, node, false));
    reg.insert("QLinearConv", qlinear_conv);
    reg.insert("QLinearAdd", |_, node| {
        qlinear_elementwise(node, Elementwise::Add)
    });
    reg.insert("QLinearMul", |_, node| {
        qlinear_elementwise(node, Elementwise::Mul)
    });
    reg.insert("QLinearSigmoid", |_, node| {
        qlinear_elementwise(node, Elementwise::Sigmoid)
    });
    reg.insert("QLinearGlobalAveragePool", qlinear_global_average_pool);
    reg.insert("QGemm", qgemm);
}

/// The element types a quantized tensor may have here, with the range it saturates to.
fn range_of(dt: DatumType) -> Option<(f32, f32)> {
    Some(match dt {
        DatumType::U8 => (0.0, 255.0),
        DatumType::I8 => (-128.0, 127.0),
        DatumType::U16 => (0.0, 65_535.0),
        DatumType::I16 => (-32_768.0, 32_767.0),
        DatumType::I32 => (i32::MIN as f32, i32::MAX as f32),
        _ => return None,
    })
}

/// ONNX's `TensorProto.DataType` numbers of the types `output_dtype` may name here.
fn onnx_type(code: i64) -> Option<DatumType> {
    Some(match code {
        2 => DatumType::U8,
        3 => DatumType::I8,
        4 => DatumType::U16,
        5 => DatumType::I16,
        _ => return None,
    })
}

fn build(
    _: &ParsingContext<'_>,
    node: &NodeProto,
    quantize: bool,
) -> TractResult<(Box<dyn InferenceOp>, Vec<String>)> {
    let op = if quantize {
        "QuantizeLinear"
    } else {
        "DequantizeLinear"
    };
    let name = &node.name;
    let block = node.get_attr_opt::<i64>("block_size")?.unwrap_or(0);
    if block != 0 {
        bail!("{op} {name}: block_size {block} (blocked quantization) is not supported");
    }
    let output = match node.get_attr_opt::<i64>("output_dtype")?.unwrap_or(0) {
        0 => None,
        code => Some(onnx_type(code).with_context(|| {
            format!("{op} {name}: output_dtype {code} is not one of uint8, int8, uint16, int16")
        })?),
    };
    let zero_point = node.input.get(2).is_some_and(|i| !i.is_empty());
    Ok((
        expand(Quant {
            quantize,
            axis: node.get_attr_opt::<i64>("axis")?.unwrap_or(1),
            zero_point,
            output,
        }),
        vec![],
    ))
}

/// `QuantizeLinear` (`quantize`) or `DequantizeLinear`.
#[derive(Debug, Clone, Hash)]
struct Quant {
    quantize: bool,
    /// The axis of per-axis parameters (as written: negative from the end).
    axis: i64,
    /// Whether the node has its zero-point input.
    zero_point: bool,
    /// `QuantizeLinear`'s `output_dtype` (opset 21), when given.
    output: Option<DatumType>,
}

impl Quant {
    fn op(&self) -> &'static str {
        if self.quantize {
            "QuantizeLinear"
        } else {
            "DequantizeLinear"
        }
    }
}

impl Expansion for Quant {
    fn name(&self) -> Cow<'_, str> {
        self.op().into()
    }

    fn rules<'r, 'p: 'r, 's: 'r>(
        &'s self,
        s: &mut Solver<'r>,
        inputs: &'p [TensorProxy],
        outputs: &'p [TensorProxy],
    ) -> InferenceResult {
        check_input_arity(inputs, 2 + usize::from(self.zero_point))?;
        check_output_arity(outputs, 1)?;
        s.equals(&inputs[1].datum_type, f32::datum_type())?;
        s.equals(&inputs[0].shape, &outputs[0].shape)?;
        if self.quantize {
            s.equals(&inputs[0].datum_type, f32::datum_type())?;
            if self.zero_point {
                s.equals(&outputs[0].datum_type, &inputs[2].datum_type)?;
            }
            if let Some(dt) = self.output {
                s.equals(&outputs[0].datum_type, dt)?;
            } else if !self.zero_point {
                s.equals(&outputs[0].datum_type, u8::datum_type())?;
            }
        } else {
            s.equals(&outputs[0].datum_type, f32::datum_type())?;
            if self.zero_point {
                s.equals(&inputs[0].datum_type, &inputs[2].datum_type)?;
            }
        }
        Ok(())
    }

    fn wire(
        &self,
        name: &str,
        model: &mut TypedModel,
        inputs: &[OutletId],
    ) -> TractResult<TVec<OutletId>> {
        let zero = self.zero_point.then(|| inputs[2]);
        let p = Params {
            op: self.op(),
            name,
            axis: self.axis,
        };
        let y = if self.quantize {
            quantize(model, &p, inputs[0], inputs[1], zero, self.output)?
        } else {
            dequantize(model, &p, inputs[0], inputs[1], zero)?
        };
        Ok(tvec![y])
    }
}

/// Where a quantization is wired: the ONNX operator and node (for errors and node names)
/// and the axis of per-axis parameters (negative from the end).
struct Params<'a> {
    op: &'a str,
    name: &'a str,
    axis: i64,
}

/// A scalar or 1-D (along `p.axis`) parameter `o`, given axes to broadcast against `x`.
fn shaped(
    model: &mut TypedModel,
    p: &Params<'_>,
    x: OutletId,
    o: OutletId,
    what: &str,
) -> TractResult<OutletId> {
    let (op, name, axis) = (p.op, p.name, p.axis);
    let rank = model.outlet_fact(x)?.rank();
    let fact = model.outlet_fact(o)?.clone();
    let mut o = o;
    match fact.rank() {
        0 => {}
        1 => {
            let at = if axis < 0 { axis + rank as i64 } else { axis };
            if at < 0 || at >= rank as i64 {
                bail!("{op} {name}: axis {axis} outside the input's rank {rank}");
            }
            let at = at as usize;
            let (len, dim) = (&fact.shape[0], &model.outlet_fact(x)?.shape[at]);
            if !len.is_one() && len != dim {
                bail!("{op} {name}: {what} of {len} values along axis {at}, which has {dim}");
            }
            for i in 0..rank - at - 1 {
                o = model.wire_node(format!("{name}.{what}.trailing{i}"), AxisOp::Add(1), &[o])?[0];
            }
        }
        r => bail!("{op} {name}: {what} of rank {r} (blocked quantization) is not supported"),
    }
    // leading axes up to x's rank
    while model.outlet_fact(o)?.rank() < rank {
        let at = model.outlet_fact(o)?.rank();
        o = model.wire_node(format!("{name}.{what}.leading{at}"), AxisOp::Add(0), &[o])?[0];
    }
    Ok(o)
}

/// `saturate(round_half_to_even(x / scale) + zero)` in the zero point's type (else
/// `output`, else u8).
fn quantize(
    model: &mut TypedModel,
    p: &Params<'_>,
    x: OutletId,
    scale: OutletId,
    zero: Option<OutletId>,
    output: Option<DatumType>,
) -> TractResult<OutletId> {
    let (op, name) = (p.op, p.name);
    let rank = model.outlet_fact(x)?.rank();
    let scale = shaped(model, p, x, scale, "scale")?;
    let zero = zero
        .map(|z| shaped(model, p, x, z, "zero_point"))
        .transpose()?;
    let out = match zero {
        Some(z) => model.outlet_fact(z)?.datum_type,
        None => output.unwrap_or(DatumType::U8),
    };
    let (lo, hi) = range_of(out)
        .filter(|_| out != DatumType::I32)
        .with_context(|| format!("{op} {name}: output type {out:?} is not supported"))?;
    let q = model.wire_node(format!("{name}.div"), div(), &[x, scale])?[0];
    let mut q = model.wire_node(format!("{name}.round"), round_half_to_even(), &[q])?[0];
    if let Some(z) = zero {
        let z = model.wire_node(format!("{name}.zero_f32"), cast(DatumType::F32), &[z])?[0];
        q = model.wire_node(format!("{name}.add_zero"), add(), &[q, z])?[0];
    }
    let mut konst = |label: &str, v: f32| {
        model.add_const(
            format!("{name}.{label}"),
            tensor0(v).broadcast_into_rank(rank)?,
        )
    };
    let (lo, hi) = (konst("lo", lo)?, konst("hi", hi)?);
    let q = model.wire_node(format!("{name}.max"), max(), &[q, lo])?[0];
    let q = model.wire_node(format!("{name}.min"), min(), &[q, hi])?[0];
    Ok(model.wire_node(name, cast(out), &[q])?[0])
}

/// `(x − zero) · scale`, the subtraction in i32.
fn dequantize(
    model: &mut TypedModel,
    p: &Params<'_>,
    x: OutletId,
    scale: OutletId,
    zero: Option<OutletId>,
) -> TractResult<OutletId> {
    let (op, name) = (p.op, p.name);
    let dt = model.outlet_fact(x)?.datum_type;
    if range_of(dt).is_none() {
        bail!("{op} {name}: input type {dt:?} is not supported");
    }
    let scale = shaped(model, p, x, scale, "scale")?;
    let zero = zero
        .map(|z| shaped(model, p, x, z, "zero_point"))
        .transpose()?;
    let mut v = model.wire_node(format!("{name}.x_i32"), cast(DatumType::I32), &[x])?[0];
    if let Some(z) = zero {
        let z = model.wire_node(format!("{name}.zero_i32"), cast(DatumType::I32), &[z])?[0];
        v = model.wire_node(format!("{name}.sub_zero"), sub(), &[v, z])?[0];
    }
    let v = model.wire_node(format!("{name}.f32"), cast(DatumType::F32), &[v])?[0];
    Ok(model.wire_node(name, mul(), &[v, scale])?[0])
}

/// ONNX `QLinearConv`, computed as onnxruntime's QDQ reference does it: activation, weight
/// (per output channel or per tensor) and int32 bias (on the scale `x_scale · w_scale`)
/// dequantized, a float convolution, the result quantized on `y_scale` and `y_zero_point`.
/// tract 0.21's own quantized convolution fails on per-channel weights ("Incompatible
/// reshape" in its im2col), and wants one element type for activation and weight (see
/// [`uint8_weights_for_qlinearconv`]).
fn qlinear_conv(
    _: &ParsingContext<'_>,
    node: &NodeProto,
) -> TractResult<(Box<dyn InferenceOp>, Vec<String>)> {
    use tract_onnx::tract_hir::ops::cnn::{Conv, PaddingSpec};
    let kernel = node.get_attr_opt_tvec::<usize>("kernel_shape")?;
    let default = match &kernel {
        Some(k) => PaddingSpec::Explicit(tvec![0; k.len()], tvec![0; k.len()]),
        None => PaddingSpec::Valid,
    };
    let padding = if let Some(pads) = node.get_attr_opt_tvec::<usize>("pads")? {
        let half = pads.len() / 2;
        PaddingSpec::Explicit(pads[..half].into(), pads[half..].into())
    } else {
        match node.get_attr_opt::<&str>("auto_pad")?.unwrap_or("NOTSET") {
            "NOTSET" => default,
            "VALID" => PaddingSpec::Valid,
            "SAME_UPPER" => PaddingSpec::SameUpper,
            "SAME_LOWER" => PaddingSpec::SameLower,
            other => bail!("QLinearConv {}: auto_pad {other:?}", node.name),
        }
    };
    let mut float = Conv::default().padding(padding);
    if let Some(k) = kernel {
        float = float.kernel_shape(k);
    }
    if let Some(g) = node.get_attr_opt::<usize>("group")? {
        float = float.group(g);
    }
    if let Some(d) = node.get_attr_opt_tvec::<usize>("dilations")? {
        float = float.dilations(d);
    }
    if let Some(s) = node.get_attr_opt_tvec::<usize>("strides")? {
        float = float.strides(s);
    }
    let bias = node.input.get(8).is_some_and(|b| !b.is_empty());
    // the same geometry with QLinearConv's inputs, for the shape rules
    let quantized = Conv {
        x_scale_input: Some(1),
        x_zero_point_input: Some(2),
        k_input: Some(3),
        k_scale_input: Some(4),
        k_zero_point_input: Some(5),
        y_scale_input: Some(6),
        y_zero_point_input: Some(7),
        bias_input: bias.then_some(8),
        ..float.clone()
    };
    if bias {
        float = float.bias_input(2);
    }
    Ok((expand(QLinearConv { quantized, float }), vec![]))
}

#[derive(Debug, Clone, Hash)]
struct QLinearConv {
    /// tract's quantized convolution, whose rules give the output's type and shape.
    quantized: tract_onnx::tract_hir::ops::cnn::Conv,
    /// The float convolution it runs.
    float: tract_onnx::tract_hir::ops::cnn::Conv,
}

impl Expansion for QLinearConv {
    fn name(&self) -> Cow<'_, str> {
        "QLinearConv".into()
    }

    fn rules<'r, 'p: 'r, 's: 'r>(
        &'s self,
        s: &mut Solver<'r>,
        inputs: &'p [TensorProxy],
        outputs: &'p [TensorProxy],
    ) -> InferenceResult {
        self.quantized.rules(s, inputs, outputs)
    }

    fn wire(
        &self,
        name: &str,
        model: &mut TypedModel,
        inputs: &[OutletId],
    ) -> TractResult<TVec<OutletId>> {
        let names = [
            format!("{name}.x"),
            format!("{name}.w"),
            format!("{name}.b"),
        ];
        let at = |i: usize, axis: i64| Params {
            op: "QLinearConv",
            name: &names[i],
            axis,
        };
        let x = dequantize(model, &at(0, 1), inputs[0], inputs[1], Some(inputs[2]))?;
        let w = dequantize(model, &at(1, 0), inputs[3], inputs[4], Some(inputs[5]))?;
        let mut wires = vec![x, w];
        if let Some(&b) = inputs.get(8) {
            // the bias's scale: x_scale · w_scale (per output channel or not)
            let scales = tract_onnx::tract_hir::ops::binary::wire_rank_broadcast(
                format!("{name}.bias_scale"),
                model,
                &[inputs[1], inputs[4]],
            )?;
            let s = model.wire_node(format!("{name}.bias_scale"), mul(), &scales)?[0];
            wires.push(dequantize(model, &at(2, 0), b, s, None)?);
        }
        let y = self.float.wire(&format!("{name}.conv"), model, &wires)?[0];
        let p = Params {
            op: "QLinearConv",
            name,
            axis: 1,
        };
        Ok(tvec![quantize(
            model,
            &p,
            y,
            inputs[6],
            Some(inputs[7]),
            None
        )?])
    }
}

/// ONNX's element type numbers of uint8 and int8.
const UINT8: i32 = 2;
const INT8: i32 = 3;

/// The values of an int8 initializer (raw bytes, or `int32_data`), or `None` for another
/// type or data kept outside the file.
fn int8_values(t: &tract_onnx::pb::TensorProto) -> Option<Vec<i8>> {
    if t.data_type != INT8 || t.data_location == Some(1) {
        return None;
    }
    Some(if t.raw_data.is_empty() {
        t.int32_data.iter().map(|&v| v as i8).collect()
    } else {
        t.raw_data.iter().map(|&b| b as i8).collect()
    })
}

/// `QLinearConv` of uint8 activations on int8 weights — what `onnxruntime.quantization`
/// writes in QOperator format — which tract 0.21 refuses (it wants one type for both): the
/// node is given uint8 copies of its weight and weight zero point, each value plus 128
/// (`w − w_zero_point` unchanged, so the product is the same, exactly). Only where the
/// weight, its zero point and the activation's zero point are initializers; anything else
/// is left for tract to refuse by name. Returns how many nodes changed.
pub(crate) fn uint8_weights_for_qlinearconv(graph: &mut tract_onnx::pb::GraphProto) -> usize {
    let index: std::collections::HashMap<String, usize> = graph
        .initializer
        .iter()
        .enumerate()
        .map(|(i, t)| (t.name.clone(), i))
        .collect();
    let mut added = Vec::new();
    let mut changed = 0;
    for node in graph.node.iter_mut().filter(|n| n.op_type == "QLinearConv") {
        let init = |i: usize| {
            node.input
                .get(i)
                .and_then(|n| index.get(n))
                .map(|&k| &graph.initializer[k])
        };
        let (Some(x_zero), Some(w), Some(w_zero)) = (init(2), init(3), init(5)) else {
            continue;
        };
        if x_zero.data_type != UINT8 {
            continue;
        }
        let (Some(wv), Some(zv)) = (int8_values(w), int8_values(w_zero)) else {
            continue;
        };
        let shifted = |t: &tract_onnx::pb::TensorProto, v: Vec<i8>| tract_onnx::pb::TensorProto {
            name: format!("{}.as_uint8", t.name),
            dims: t.dims.clone(),
            data_type: UINT8,
            raw_data: v.into_iter().map(|v| (i16::from(v) + 128) as u8).collect(),
            ..Default::default()
        };
        let (w8, z8) = (shifted(w, wv), shifted(w_zero, zv));
        node.input[3] = w8.name.clone();
        node.input[5] = z8.name.clone();
        added.push(w8);
        added.push(z8);
        changed += 1;
    }
    // (a weight shared by two nodes gets two copies of the same name: keep one)
    added.sort_by(|a, b| a.name.cmp(&b.name));
    added.dedup_by(|a, b| a.name == b.name);
    graph.initializer.extend(added);
    changed
}

/// A node's inputs, some of which may be left out (an empty name): the input position of
/// each of its first `n` slots (`None`: left out).
#[derive(Debug, Clone, Hash)]
struct Slots(Vec<Option<usize>>);

impl Slots {
    fn of(node: &NodeProto, n: usize) -> Slots {
        Slots(tract_onnx::model::optional_inputs(node).take(n).collect())
    }

    /// How many inputs the node has.
    fn count(&self) -> usize {
        self.0.iter().flatten().count()
    }

    /// The input position of slot `i`, if it is there.
    fn at(&self, i: usize) -> Option<usize> {
        self.0.get(i).copied().flatten()
    }

    /// The wire of slot `i`, if it is there.
    fn wire(&self, inputs: &[OutletId], i: usize) -> Option<OutletId> {
        self.at(i).map(|k| inputs[k])
    }

    /// The rules the quantized operators share: their input count, one output, of the type
    /// of the zero point in slot `zero` (u8 without one).
    fn rules<'r, 'p: 'r>(
        &self,
        s: &mut Solver<'r>,
        inputs: &'p [TensorProxy],
        outputs: &'p [TensorProxy],
        zero: usize,
    ) -> InferenceResult {
        check_input_arity(inputs, self.count())?;
        check_output_arity(outputs, 1)?;
        match self.at(zero) {
            Some(z) => s.equals(&outputs[0].datum_type, &inputs[z].datum_type),
            None => s.equals(&outputs[0].datum_type, u8::datum_type()),
        }
    }

    /// The wire of slot `i`, which the operator needs.
    fn need(&self, inputs: &[OutletId], i: usize, op: &str, name: &str) -> TractResult<OutletId> {
        self.wire(inputs, i)
            .with_context(|| format!("{op} {name}: input {i} is missing"))
    }
}

/// onnxruntime's element-wise quantized operators (domain `com.microsoft`), which
/// `quantize_static` writes in QOperator format around additions, products and sigmoids.
#[derive(Debug, Clone, Copy, Hash, PartialEq, Eq)]
enum Elementwise {
    Add,
    Mul,
    Sigmoid,
}

impl Elementwise {
    fn op(self) -> &'static str {
        match self {
            Elementwise::Add => "QLinearAdd",
            Elementwise::Mul => "QLinearMul",
            Elementwise::Sigmoid => "QLinearSigmoid",
        }
    }

    /// Operands: two for Add and Mul, one for Sigmoid.
    fn operands(self) -> usize {
        if self == Elementwise::Sigmoid { 1 } else { 2 }
    }
}

fn qlinear_elementwise(
    node: &NodeProto,
    kind: Elementwise,
) -> TractResult<(Box<dyn InferenceOp>, Vec<String>)> {
    // each operand's (value, scale, zero point), then the output's (scale, zero point); the
    // zero points may be left out
    let slots = Slots::of(node, 3 * kind.operands() + 2);
    Ok((expand(QLinearElementwise { kind, slots }), vec![]))
}

/// A `com.microsoft` element-wise quantized operator, computed as its QDQ reference:
/// operands dequantized, the f32 operation (broadcasting as ONNX does), the result quantized.
#[derive(Debug, Clone, Hash)]
struct QLinearElementwise {
    kind: Elementwise,
    slots: Slots,
}

impl Expansion for QLinearElementwise {
    fn name(&self) -> Cow<'_, str> {
        self.kind.op().into()
    }

    fn rules<'r, 'p: 'r, 's: 'r>(
        &'s self,
        s: &mut Solver<'r>,
        inputs: &'p [TensorProxy],
        outputs: &'p [TensorProxy],
    ) -> InferenceResult {
        let n = self.kind.operands();
        self.slots.rules(s, inputs, outputs, 3 * n + 1)?;
        let op = self.kind.op();
        let a = self
            .slots
            .at(0)
            .with_context(|| format!("{op}: A is missing"))?;
        if n == 1 {
            s.equals(&inputs[a].shape, &outputs[0].shape)?;
        } else {
            let b = self
                .slots
                .at(3)
                .with_context(|| format!("{op}: B is missing"))?;
            s.given_2(&inputs[a].shape, &inputs[b].shape, move |s, a, b| {
                let c = tract_onnx::tract_core::broadcast::multi_broadcast(&[a, b])?;
                s.equals(&outputs[0].shape, c)
            })?;
        }
        Ok(())
    }

    fn wire(
        &self,
        name: &str,
        model: &mut TypedModel,
        inputs: &[OutletId],
    ) -> TractResult<TVec<OutletId>> {
        let op = self.kind.op();
        let n = self.kind.operands();
        let input = |i: usize| self.slots.wire(inputs, i);
        let need = |i: usize| self.slots.need(inputs, i, op, name);
        let mut values = Vec::new();
        for k in 0..n {
            let part = format!("{name}.in{k}");
            let p = Params {
                op,
                name: &part,
                axis: 1,
            };
            let (x, scale) = (need(3 * k)?, need(3 * k + 1)?);
            values.push(dequantize(model, &p, x, scale, input(3 * k + 2))?);
        }
        let y = match self.kind {
            Elementwise::Sigmoid => model.wire_node(
                format!("{name}.f32"),
                tract_onnx::tract_core::ops::nn::sigmoid(),
                &[values[0]],
            )?[0],
            kind => {
                let ab = tract_onnx::tract_hir::ops::binary::wire_rank_broadcast(
                    format!("{name}.f32"),
                    model,
                    &values,
                )?;
                let f = if kind == Elementwise::Add {
                    add()
                } else {
                    mul()
                };
                model.wire_node(format!("{name}.f32"), f, &ab)?[0]
            }
        };
        let p = Params { op, name, axis: 1 };
        let scale = need(3 * n)?;
        Ok(tvec![quantize(
            model,
            &p,
            y,
            scale,
            input(3 * n + 1),
            None
        )?])
    }
}

/// onnxruntime's `QLinearGlobalAveragePool` (com.microsoft): `X, x_scale, x_zero_point,
/// y_scale, y_zero_point`, NCHW (`channels_last` 0; 1 is refused by name).
fn qlinear_global_average_pool(
    _: &ParsingContext<'_>,
    node: &NodeProto,
) -> TractResult<(Box<dyn InferenceOp>, Vec<String>)> {
    if node.get_attr_opt::<i64>("channels_last")?.unwrap_or(0) != 0 {
        bail!(
            "QLinearGlobalAveragePool {}: channels_last 1 is not supported",
            node.name
        );
    }
    let slots = Slots::of(node, 5);
    Ok((expand(QLinearGlobalAveragePool { slots }), vec![]))
}

#[derive(Debug, Clone, Hash)]
struct QLinearGlobalAveragePool {
    slots: Slots,
}

impl Expansion for QLinearGlobalAveragePool {
    fn name(&self) -> Cow<'_, str> {
        "QLinearGlobalAveragePool".into()
    }

    fn rules<'r, 'p: 'r, 's: 'r>(
        &'s self,
        s: &mut Solver<'r>,
        inputs: &'p [TensorProxy],
        outputs: &'p [TensorProxy],
    ) -> InferenceResult {
        self.slots.rules(s, inputs, outputs, 4)?;
        s.equals(&inputs[0].rank, &outputs[0].rank)?;
        s.equals(&inputs[0].shape[0], &outputs[0].shape[0])?;
        s.equals(&inputs[0].shape[1], &outputs[0].shape[1])?;
        s.given(&inputs[0].rank, move |s, rank| {
            for axis in 2..rank as usize {
                s.equals(&outputs[0].shape[axis], TDim::from(1))?;
            }
            Ok(())
        })
    }

    fn wire(
        &self,
        name: &str,
        model: &mut TypedModel,
        inputs: &[OutletId],
    ) -> TractResult<TVec<OutletId>> {
        let op = "QLinearGlobalAveragePool";
        let input = |i: usize| self.slots.wire(inputs, i);
        let need = |i: usize| self.slots.need(inputs, i, op, name);
        let part = format!("{name}.x");
        let p = Params {
            op,
            name: &part,
            axis: 1,
        };
        let x = dequantize(model, &p, need(0)?, need(1)?, input(2))?;
        let y = tract_onnx::tract_hir::ops::nn::GlobalAvgPool.wire(
            &format!("{name}.f32"),
            model,
            &[x],
        )?[0];
        let p = Params { op, name, axis: 1 };
        Ok(tvec![quantize(model, &p, y, need(3)?, input(4), None)?])
    }
}

/// onnxruntime's `QGemm` (com.microsoft): `A, a_scale, a_zero_point, B, b_scale,
/// b_zero_point, C, y_scale, y_zero_point` — `alpha · A'B' + C` of the dequantized operands
/// (B per tensor or per output column), C an int32 bias on `a_scale · b_scale`; quantized
/// when `y_scale` is given, else f32.
fn qgemm(
    _: &ParsingContext<'_>,
    node: &NodeProto,
) -> TractResult<(Box<dyn InferenceOp>, Vec<String>)> {
    let slots = Slots::of(node, 9);
    Ok((
        expand(QGemm {
            slots,
            alpha: node.get_attr_opt::<f32>("alpha")?.unwrap_or(1.0).to_bits(),
            trans_a: node.get_attr_opt::<i64>("transA")?.unwrap_or(0) != 0,
            trans_b: node.get_attr_opt::<i64>("transB")?.unwrap_or(0) != 0,
        }),
        vec![],
    ))
}

#[derive(Debug, Clone, Hash)]
struct QGemm {
    slots: Slots,
    /// `alpha`'s bits (the struct is hashed).
    alpha: u32,
    trans_a: bool,
    trans_b: bool,
}

impl Expansion for QGemm {
    fn name(&self) -> Cow<'_, str> {
        "QGemm".into()
    }

    fn rules<'r, 'p: 'r, 's: 'r>(
        &'s self,
        s: &mut Solver<'r>,
        inputs: &'p [TensorProxy],
        outputs: &'p [TensorProxy],
    ) -> InferenceResult {
        let slot = |i: usize| self.slots.at(i);
        let (Some(a), Some(b)) = (slot(0), slot(3)) else {
            bail!("QGemm: A or B is missing");
        };
        if slot(7).is_some() {
            self.slots.rules(s, inputs, outputs, 8)?;
        } else {
            // no y_scale: f32 out
            check_input_arity(inputs, self.slots.count())?;
            check_output_arity(outputs, 1)?;
            s.equals(&outputs[0].datum_type, f32::datum_type())?;
        }
        s.equals(&inputs[a].rank, 2)?;
        s.equals(&inputs[b].rank, 2)?;
        s.equals(&outputs[0].rank, 2)?;
        let (ca, ra) = if self.trans_a { (0, 1) } else { (1, 0) };
        let (cb, rb) = if self.trans_b { (0, 1) } else { (1, 0) };
        s.equals(&inputs[a].shape[ra], &outputs[0].shape[0])?;
        s.equals(&inputs[a].shape[ca], &inputs[b].shape[rb])?;
        s.equals(&inputs[b].shape[cb], &outputs[0].shape[1])?;
        Ok(())
    }

    fn wire(
        &self,
        name: &str,
        model: &mut TypedModel,
        inputs: &[OutletId],
    ) -> TractResult<TVec<OutletId>> {
        use tract_onnx::tract_core::ops::einsum::EinSum;
        let op = "QGemm";
        let input = |i: usize| self.slots.wire(inputs, i);
        let need = |i: usize| self.slots.need(inputs, i, op, name);
        let names = [
            format!("{name}.a"),
            format!("{name}.b"),
            format!("{name}.c"),
        ];
        let at = |i: usize, axis: i64| Params {
            op,
            name: &names[i],
            axis,
        };
        let a = dequantize(model, &at(0, 1), need(0)?, need(1)?, input(2))?;
        // B's per-column scales lie along its output axis: 0 when transposed ([N, K])
        let b_axis = if self.trans_b { 0 } else { 1 };
        let b = dequantize(model, &at(1, b_axis), need(3)?, need(4)?, input(5))?;
        let axes = AxesMapping::for_numpy_matmul(2, self.trans_a, self.trans_b, false)?;
        let mut y = model.wire_node(
            format!("{name}.ab"),
            EinSum::new(axes, DatumType::F32),
            &[a, b],
        )?[0];
        let alpha = f32::from_bits(self.alpha);
        if alpha != 1.0 {
            let k = model.add_const(
                format!("{name}.alpha"),
                tensor0(alpha).broadcast_into_rank(2)?,
            )?;
            y = model.wire_node(format!("{name}.alpha_ab"), mul(), &[k, y])?[0];
        }
        if let Some(c) = input(6) {
            // the bias's scale: a_scale · b_scale (per output column or not)
            let scales = tract_onnx::tract_hir::ops::binary::wire_rank_broadcast(
                format!("{name}.c_scale"),
                model,
                &[need(1)?, need(4)?],
            )?;
            let s = model.wire_node(format!("{name}.c_scale"), mul(), &scales)?[0];
            let c_rank = model.outlet_fact(c)?.rank() as i64;
            let c = dequantize(model, &at(2, (c_rank - 1).max(0)), c, s, None)?;
            let yc = tract_onnx::tract_hir::ops::binary::wire_rank_broadcast(
                format!("{name}.plus_c"),
                model,
                &[y, c],
            )?;
            y = model.wire_node(format!("{name}.plus_c"), add(), &yc)?[0];
        }
        match input(7) {
            Some(scale) => {
                let p = Params { op, name, axis: 1 };
                Ok(tvec![quantize(model, &p, y, scale, input(8), None)?])
            }
            None => Ok(tvec![
                model.wire_node(name, tract_onnx::tract_hir::ops::identity::Identity, &[y])?[0]
            ]),
        }
    }
}
