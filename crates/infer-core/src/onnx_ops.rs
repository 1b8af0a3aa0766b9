//! ONNX operators tract-onnx 0.21 lacks, registered in its operator registry by the ONNX
//! backend (issue 21: "register our own op implementations through tract-onnx's op
//! registry"). Each is an expansion into tract's own element-wise kernels, so tract
//! optimises it like the rest of the graph.
//!
//! - `Gelu` (opset 20; torch's exporter emits it for `nn.GELU` from opset 20): `approximate`
//!   `none` is `0.5·x·(1 + erf(x/√2))`, `tanh` is `0.5·x·(1 + tanh(√(2/π)·(x + 0.044715·x³)))`,
//!   as in the ONNX specification. Upstream tract added Gelu after 0.21.
//! - `Mish` (opset 18): `x·tanh(ln(1 + eˣ))`.
//! - `Dropout` with its `ratio` and `training_mode` inputs (opset 12+) and its `mask`
//!   output: tract 0.21's takes one input and loses the mask ("no entry found for key").
//!   In inference (`training_mode` absent or false, or a ratio of 0) it is the identity and
//!   the mask all true, as in onnxruntime; training mode drops at random, which no
//!   inference server should, and is refused by name.

use std::borrow::Cow;

use tract_onnx::model::{OnnxOpRegister, ParsingContext};
use tract_onnx::pb::NodeProto;
use tract_onnx::tract_hir::internal::*;
use tract_onnx::tract_hir::ops::activations::broadcast_scalar;

/// tract-onnx's operator builder (its type alias is private).
pub(crate) type OpBuilder =
    fn(&ParsingContext<'_>, &NodeProto) -> TractResult<(Box<dyn InferenceOp>, Vec<String>)>;

/// The value of an optional input (`None` when absent), which must be a constant at typing
/// time (the ONNX backend bakes such graph inputs into each plan); `node` and `what` name it
/// in the error.
pub(crate) fn constant_input(
    model: &TypedModel,
    input: Option<OutletId>,
    node: &str,
    what: &str,
) -> TractResult<Option<Arc<Tensor>>> {
    let Some(input) = input else { return Ok(None) };
    match model.outlet_fact(input)?.konst.clone() {
        Some(k) => Ok(Some(k)),
        None => bail!("{node}: {what} is not a constant"),
    }
}

/// The scalar `v` of `inputs[0]`'s type, broadcastable to its rank, as the constant
/// `{name}.{label}`.
fn scalar(
    model: &mut TypedModel,
    inputs: &[OutletId],
    name: &str,
    label: &str,
    v: f32,
) -> TractResult<OutletId> {
    let t = broadcast_scalar(v, model, inputs)?;
    model.add_const(format!("{name}.{label}"), t)
}

/// Adds our operators to tract-onnx's registry.
pub(crate) fn register(reg: &mut OnnxOpRegister) {
    crate::onnx_gru::register(reg);
    crate::onnx_resize::register(reg);
    crate::onnx_scatter::register(reg);
    crate::onnx_quant::register(reg);
    reg.insert("Gelu", gelu);
    reg.insert("Range", |_, _| Ok((expand(Range), vec![])));
    reg.insert("Mish", |_, _| Ok((expand(Mish), vec![])));
    reg.insert("Dropout", |_, node| {
        let mask = node.output.get(1).is_some_and(|o| !o.is_empty());
        Ok((expand(Dropout { mask }), vec![]))
    });
}

/// Rules of an element-wise op: one input, one output of its type and shape.
fn unary_rules<'r, 'p: 'r>(
    s: &mut Solver<'r>,
    inputs: &'p [TensorProxy],
    outputs: &'p [TensorProxy],
) -> InferenceResult {
    check_input_arity(inputs, 1)?;
    check_output_arity(outputs, 1)?;
    s.equals(&inputs[0].datum_type, &outputs[0].datum_type)?;
    s.equals(&inputs[0].shape, &outputs[0].shape)?;
    Ok(())
}

fn gelu(
    _: &ParsingContext<'_>,
    node: &NodeProto,
) -> TractResult<(Box<dyn InferenceOp>, Vec<String>)> {
    let tanh = match node.get_attr_opt::<&str>("approximate")?.unwrap_or("none") {
        "none" => false,
        "tanh" => true,
        other => bail!("Gelu: approximate {other:?} is neither \"none\" nor \"tanh\""),
    };
    Ok((expand(Gelu { tanh }), vec![]))
}

/// ONNX `Gelu`.
#[derive(Debug, Clone, Hash)]
struct Gelu {
    tanh: bool,
}

impl Expansion for Gelu {
    fn name(&self) -> Cow<'_, str> {
        "Gelu".into()
    }

    fn rules<'r, 'p: 'r, 's: 'r>(
        &'s self,
        s: &mut Solver<'r>,
        inputs: &'p [TensorProxy],
        outputs: &'p [TensorProxy],
    ) -> InferenceResult {
        unary_rules(s, inputs, outputs)
    }

    fn wire(
        &self,
        name: &str,
        model: &mut TypedModel,
        inputs: &[OutletId],
    ) -> TractResult<TVec<OutletId>> {
        use tract_onnx::tract_core::ops::math::{add, erf, mul, tanh};
        let x = inputs[0];
        let mut constant = |label: &str, v: f32| scalar(model, inputs, name, label, v);
        let half = constant("half", 0.5)?;
        let one = constant("one", 1.0)?;
        let inner = if self.tanh {
            let k = constant("k", (2.0 / std::f32::consts::PI).sqrt())?;
            let c = constant("c", 0.044_715)?;
            let x2 = model.wire_node(format!("{name}.x2"), mul(), &[x, x])?[0];
            let x3 = model.wire_node(format!("{name}.x3"), mul(), &[x2, x])?[0];
            let cx3 = model.wire_node(format!("{name}.cx3"), mul(), &[c, x3])?[0];
            let sum = model.wire_node(format!("{name}.sum"), add(), &[x, cx3])?[0];
            let arg = model.wire_node(format!("{name}.arg"), mul(), &[k, sum])?[0];
            model.wire_node(format!("{name}.tanh"), tanh(), &[arg])?[0]
        } else {
            let r = constant("rsqrt2", std::f32::consts::FRAC_1_SQRT_2)?;
            let arg = model.wire_node(format!("{name}.arg"), mul(), &[x, r])?[0];
            model.wire_node(format!("{name}.erf"), erf(), &[arg])?[0]
        };
        let plus1 = model.wire_node(format!("{name}.plus1"), add(), &[inner, one])?[0];
        let xs = model.wire_node(format!("{name}.x_plus1"), mul(), &[x, plus1])?[0];
        model.wire_node(name, mul(), &[xs, half])
    }
}

/// ONNX `Mish`.
#[derive(Debug, Clone, Hash)]
struct Mish;

impl Expansion for Mish {
    fn name(&self) -> Cow<'_, str> {
        "Mish".into()
    }

    fn rules<'r, 'p: 'r, 's: 'r>(
        &'s self,
        s: &mut Solver<'r>,
        inputs: &'p [TensorProxy],
        outputs: &'p [TensorProxy],
    ) -> InferenceResult {
        unary_rules(s, inputs, outputs)
    }

    fn wire(
        &self,
        name: &str,
        model: &mut TypedModel,
        inputs: &[OutletId],
    ) -> TractResult<TVec<OutletId>> {
        use tract_onnx::tract_core::ops::math::{add, exp, ln, mul, tanh};
        let x = inputs[0];
        let one = scalar(model, inputs, name, "one", 1.0)?;
        let e = model.wire_node(format!("{name}.exp"), exp(), &[x])?[0];
        let e1 = model.wire_node(format!("{name}.exp_plus1"), add(), &[e, one])?[0];
        let softplus = model.wire_node(format!("{name}.softplus"), ln(), &[e1])?[0];
        let t = model.wire_node(format!("{name}.tanh"), tanh(), &[softplus])?[0];
        model.wire_node(name, mul(), &[x, t])
    }
}

/// ONNX `Dropout` in inference.
#[derive(Debug, Clone, Hash)]
struct Dropout {
    /// Whether the node has its `mask` output.
    mask: bool,
}

impl Expansion for Dropout {
    fn name(&self) -> Cow<'_, str> {
        "Dropout".into()
    }

    fn nboutputs(&self) -> TractResult<usize> {
        Ok(1 + usize::from(self.mask))
    }

    fn rules<'r, 'p: 'r, 's: 'r>(
        &'s self,
        s: &mut Solver<'r>,
        inputs: &'p [TensorProxy],
        outputs: &'p [TensorProxy],
    ) -> InferenceResult {
        if inputs.is_empty() || inputs.len() > 3 {
            bail!("Dropout takes 1 to 3 inputs, not {}", inputs.len());
        }
        check_output_arity(outputs, 1 + usize::from(self.mask))?;
        s.equals(&inputs[0].datum_type, &outputs[0].datum_type)?;
        s.equals(&inputs[0].shape, &outputs[0].shape)?;
        if self.mask {
            s.equals(&outputs[1].datum_type, bool::datum_type())?;
            s.equals(&inputs[0].shape, &outputs[1].shape)?;
        }
        Ok(())
    }

    fn wire(
        &self,
        name: &str,
        model: &mut TypedModel,
        inputs: &[OutletId],
    ) -> TractResult<TVec<OutletId>> {
        let konst = |i: usize| {
            constant_input(
                model,
                inputs.get(i).copied(),
                &format!("Dropout {name}"),
                &format!("input {i}"),
            )
        };
        let training = match konst(2)? {
            Some(t) => *t.cast_to::<bool>()?.to_scalar::<bool>()?,
            None => false,
        };
        let ratio = match konst(1)? {
            Some(r) => *r.cast_to::<f32>()?.to_scalar::<f32>()?,
            None => 0.5,
        };
        if training && ratio != 0.0 {
            bail!(
                "Dropout {name} in training mode (ratio {ratio}) drops at random: \
                 not run by an inference backend"
            );
        }
        let mut out = model.wire_node(
            name,
            tract_onnx::tract_hir::ops::identity::Identity,
            &[inputs[0]],
        )?;
        if self.mask {
            let fact = model.outlet_fact(inputs[0])?;
            let Some(shape) = fact.shape.as_concrete().map(<[usize]>::to_vec) else {
                bail!("Dropout {name}: its mask needs a concrete input shape");
            };
            let mask = tract_onnx::tract_hir::tract_ndarray::ArrayD::from_elem(shape, true);
            out.push(model.add_const(format!("{name}.mask"), mask.into_arc_tensor())?);
        }
        Ok(out)
    }
}

/// ONNX `Range`, typed as the ONNX type of its bounds (int64 for shape arithmetic, which
/// tract holds as TDim).
#[derive(Debug, Clone)]
struct Range;

/// The element type of a range over `types`: their common type, with tract's TDim (shape
/// arithmetic) as the int64 ONNX has there.
fn range_type(types: impl IntoIterator<Item = DatumType>) -> TractResult<DatumType> {
    let dt = DatumType::super_type_for(types).context("Range: bounds of no common type")?;
    Ok(if dt == DatumType::TDim {
        DatumType::I64
    } else {
        dt
    })
}

impl Expansion for Range {
    fn name(&self) -> Cow<'_, str> {
        "Range".into()
    }

    fn rules<'r, 'p: 'r, 's: 'r>(
        &'s self,
        s: &mut Solver<'r>,
        inputs: &'p [TensorProxy],
        outputs: &'p [TensorProxy],
    ) -> InferenceResult {
        check_input_arity(inputs, 3)?;
        check_output_arity(outputs, 1)?;
        s.given_3(
            &inputs[0].datum_type,
            &inputs[1].datum_type,
            &inputs[2].datum_type,
            move |s, a, b, c| s.equals(range_type([a, b, c])?, &outputs[0].datum_type),
        )?;
        for i in inputs {
            s.equals(&i.rank, 0)?;
        }
        s.equals(&outputs[0].rank, 1)?;
        s.given_3(
            &inputs[0].value,
            &inputs[1].value,
            &inputs[2].value,
            move |s, start, limit, delta| {
                let (start, limit) = (start.cast_to::<TDim>()?, limit.cast_to::<TDim>()?);
                let delta = delta.cast_to::<i64>()?;
                let len = (limit.to_scalar::<TDim>()?.clone() - start.to_scalar::<TDim>()?)
                    .divceil(*delta.to_scalar::<i64>()? as _);
                s.equals(&outputs[0].shape[0], len)
            },
        )
    }

    fn wire(
        &self,
        name: &str,
        model: &mut TypedModel,
        inputs: &[OutletId],
    ) -> TractResult<TVec<OutletId>> {
        let types = inputs
            .iter()
            .map(|o| Ok(model.outlet_fact(*o)?.datum_type))
            .collect::<TractResult<Vec<_>>>()?;
        let dt = range_type(types)?;
        let inputs = tract_onnx::tract_core::ops::cast::wire_cast(name, model, inputs, dt)?;
        let len = model.symbols.new_with_prefix("range");
        model.wire_node(
            name,
            tract_onnx::tract_core::ops::array::Range::new(len.into()),
            &inputs,
        )
    }
}
