//! ONNX operators tract-onnx 0.21 lacks, registered in its operator registry by the ONNX
//! backend (issue 21: "register our own op implementations through tract-onnx's op
//! registry"). Each is an expansion into tract's own element-wise kernels, so tract
//! optimises it like the rest of the graph.
//!
//! - `Gelu` (opset 20; torch's exporter emits it for `nn.GELU` from opset 20): `approximate`
//!   `none` is `0.5·x·(1 + erf(x/√2))`, `tanh` is `0.5·x·(1 + tanh(√(2/π)·(x + 0.044715·x³)))`,
//!   as in the ONNX specification. Upstream tract added Gelu after 0.21.

use std::borrow::Cow;

use tract_onnx::model::{OnnxOpRegister, ParsingContext};
use tract_onnx::pb::NodeProto;
use tract_onnx::tract_hir::internal::*;
use tract_onnx::tract_hir::ops::activations::broadcast_scalar;

/// Adds our operators to tract-onnx's registry.
pub(crate) fn register(reg: &mut OnnxOpRegister) {
    reg.insert("Gelu", gelu);
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
        check_input_arity(inputs, 1)?;
        check_output_arity(outputs, 1)?;
        s.equals(&inputs[0].datum_type, &outputs[0].datum_type)?;
        s.equals(&inputs[0].shape, &outputs[0].shape)?;
        Ok(())
    }

    fn wire(
        &self,
        name: &str,
        model: &mut TypedModel,
        inputs: &[OutletId],
    ) -> TractResult<TVec<OutletId>> {
        use tract_onnx::tract_core::ops::math::{add, erf, mul, tanh};
        let x = inputs[0];
        let mut constant = |label: &str, v: f32| -> TractResult<OutletId> {
            let t = broadcast_scalar(v, model, inputs)?;
            model.add_const(format!("{name}.{label}"), t)
        };
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
