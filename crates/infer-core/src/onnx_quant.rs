//! ONNX `QuantizeLinear` and `DequantizeLinear` of our own, registered in tract-onnx's
//! operator registry in place of tract 0.21's (issue 22, "ONNX int8").
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

use std::borrow::Cow;

use tract_onnx::model::{OnnxOpRegister, ParsingContext};
use tract_onnx::pb::NodeProto;
use tract_onnx::tract_core::ops::cast::cast;
use tract_onnx::tract_core::ops::change_axes::AxisOp;
use tract_onnx::tract_core::ops::math::{add, div, max, min, mul, round_half_to_even, sub};
use tract_onnx::tract_hir::internal::*;

/// Replaces tract's two operators in its registry.
pub(crate) fn register(reg: &mut OnnxOpRegister) {
    reg.insert("QuantizeLinear", |ctx, node| build(ctx, node, true));
    reg.insert("DequantizeLinear", |ctx, node| build(ctx, node, false));
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
        let op = self.op();
        let x = inputs[0];
        let rank = model.outlet_fact(x)?.rank();
        // a scalar or 1-D parameter, shaped to broadcast against x
        let axis = self.axis;
        let shaped = |model: &mut TypedModel, o: OutletId, what: &str| -> TractResult<OutletId> {
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
                        bail!(
                            "{op} {name}: {what} of {len} values along axis {at}, which has {dim}"
                        );
                    }
                    for i in 0..rank - at - 1 {
                        o = model.wire_node(
                            format!("{name}.{what}.trailing{i}"),
                            AxisOp::Add(1),
                            &[o],
                        )?[0];
                    }
                }
                r => {
                    bail!("{op} {name}: {what} of rank {r} (blocked quantization) is not supported")
                }
            }
            // leading axes up to x's rank
            while model.outlet_fact(o)?.rank() < rank {
                let at = model.outlet_fact(o)?.rank();
                o = model.wire_node(format!("{name}.{what}.leading{at}"), AxisOp::Add(0), &[o])?[0];
            }
            Ok(o)
        };
        let scale = shaped(model, inputs[1], "scale")?;
        let zero = if self.zero_point {
            Some(shaped(model, inputs[2], "zero_point")?)
        } else {
            None
        };
        let konst = |model: &mut TypedModel, label: &str, v: f32| {
            model.add_const(
                format!("{name}.{label}"),
                tensor0(v).broadcast_into_rank(rank)?,
            )
        };
        if self.quantize {
            let out = match zero {
                Some(z) => model.outlet_fact(z)?.datum_type,
                None => self.output.unwrap_or(DatumType::U8),
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
            let (lo, hi) = (konst(model, "lo", lo)?, konst(model, "hi", hi)?);
            let q = model.wire_node(format!("{name}.max"), max(), &[q, lo])?[0];
            let q = model.wire_node(format!("{name}.min"), min(), &[q, hi])?[0];
            model.wire_node(name, cast(out), &[q])
        } else {
            let dt = model.outlet_fact(x)?.datum_type;
            if range_of(dt).is_none() {
                bail!("{op} {name}: input type {dt:?} is not supported");
            }
            let mut v = model.wire_node(format!("{name}.x_i32"), cast(DatumType::I32), &[x])?[0];
            if let Some(z) = zero {
                let z = model.wire_node(format!("{name}.zero_i32"), cast(DatumType::I32), &[z])?[0];
                v = model.wire_node(format!("{name}.sub_zero"), sub(), &[v, z])?[0];
            }
            let v = model.wire_node(format!("{name}.f32"), cast(DatumType::F32), &[v])?[0];
            model.wire_node(name, mul(), &[v, scale])
        }
    }
}
