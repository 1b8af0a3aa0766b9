//! ONNX `ScatterElements` and `ScatterND` with a `reduction` (`add`, `mul`, `max`, `min`:
//! opset 16/18), registered in tract-onnx's registry: tract 0.21 ignores the attribute and
//! overwrites. Without a reduction (or `none`) tract's own ops still run. Indices may be
//! negative (counted from the end); one out of range is an error naming it.

use std::borrow::Cow;
use std::sync::OnceLock;

use tract_onnx::model::{OnnxOpRegister, ParsingContext};
use tract_onnx::pb::NodeProto;
use tract_onnx::tract_hir::internal::*;
use tract_onnx::tract_hir::tract_ndarray::{ArrayD, ArrayViewD, Dimension, IxDyn};

use crate::onnx_ops::OpBuilder;

static TRACT_ELEMENTS: OnceLock<OpBuilder> = OnceLock::new();
static TRACT_ND: OnceLock<OpBuilder> = OnceLock::new();

/// Puts our scatters in the registry (tract's stay for no reduction).
pub(crate) fn register(reg: &mut OnnxOpRegister) {
    if let Some(b) = reg.0.get("ScatterElements") {
        let _ = TRACT_ELEMENTS.set(*b);
    }
    if let Some(b) = reg.0.get("ScatterND") {
        let _ = TRACT_ND.set(*b);
    }
    reg.insert("ScatterElements", |ctx, node| build(ctx, node, false));
    reg.insert("ScatterND", |ctx, node| build(ctx, node, true));
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Reduction {
    Add,
    Mul,
    Max,
    Min,
}

fn build(
    ctx: &ParsingContext<'_>,
    node: &NodeProto,
    nd: bool,
) -> TractResult<(Box<dyn InferenceOp>, Vec<String>)> {
    let reduction = match node.get_attr_opt::<&str>("reduction")?.unwrap_or("none") {
        "none" => None,
        "add" => Some(Reduction::Add),
        "mul" => Some(Reduction::Mul),
        "max" => Some(Reduction::Max),
        "min" => Some(Reduction::Min),
        other => bail!("{}: reduction {other:?}", node.op_type),
    };
    let Some(reduction) = reduction else {
        let original = if nd { &TRACT_ND } else { &TRACT_ELEMENTS };
        let original = original
            .get()
            .context("tract's scatter is not registered")?;
        return original(ctx, node);
    };
    let axis = if nd {
        0
    } else {
        node.get_attr_opt::<i64>("axis")?.unwrap_or(0)
    };
    Ok((
        expand(Scatter {
            nd,
            axis,
            reduction,
        }),
        vec![],
    ))
}

/// A scatter with a reduction.
#[derive(Debug, Clone)]
struct Scatter {
    nd: bool,
    axis: i64,
    reduction: Reduction,
}

impl Expansion for Scatter {
    fn name(&self) -> Cow<'_, str> {
        if self.nd {
            "ScatterND"
        } else {
            "ScatterElements"
        }
        .into()
    }

    fn rules<'r, 'p: 'r, 's: 'r>(
        &'s self,
        s: &mut Solver<'r>,
        inputs: &'p [TensorProxy],
        outputs: &'p [TensorProxy],
    ) -> InferenceResult {
        check_input_arity(inputs, 3)?;
        check_output_arity(outputs, 1)?;
        s.equals(&inputs[0].datum_type, &outputs[0].datum_type)?;
        s.equals(&inputs[2].datum_type, &outputs[0].datum_type)?;
        s.equals(&inputs[0].shape, &outputs[0].shape)?;
        Ok(())
    }

    fn wire(
        &self,
        name: &str,
        model: &mut TypedModel,
        inputs: &[OutletId],
    ) -> TractResult<TVec<OutletId>> {
        let indices = model.wire_node(
            format!("{name}.indices"),
            tract_onnx::tract_core::ops::cast::cast(i64::datum_type()),
            &[inputs[1]],
        )?[0];
        model.wire_node(name, self.clone(), &[inputs[0], indices, inputs[2]])
    }
}

impl Op for Scatter {
    fn name(&self) -> Cow<'_, str> {
        Expansion::name(self)
    }

    op_as_typed_op!();
}

impl TypedOp for Scatter {
    as_op!();

    fn output_facts(&self, inputs: &[&TypedFact]) -> TractResult<TVec<TypedFact>> {
        Ok(tvec!(inputs[0].without_value()))
    }
}

/// The element operations a reduction needs.
trait Reducible:
    Datum + Copy + PartialOrd + std::ops::Add<Output = Self> + std::ops::Mul<Output = Self>
{
}
impl<T: Datum + Copy + PartialOrd + std::ops::Add<Output = T> + std::ops::Mul<Output = T>> Reducible
    for T
{
}

impl Scatter {
    fn reduce<T: Reducible>(&self, a: T, b: T) -> T {
        match self.reduction {
            Reduction::Add => a + b,
            Reduction::Mul => a * b,
            Reduction::Max => {
                if b > a {
                    b
                } else {
                    a
                }
            }
            Reduction::Min => {
                if b < a {
                    b
                } else {
                    a
                }
            }
        }
    }

    fn run<T: Reducible>(
        &self,
        data: &Tensor,
        indices: ArrayViewD<'_, i64>,
        updates: &Tensor,
    ) -> TractResult<Tensor> {
        let mut out: ArrayD<T> = data.to_array_view::<T>()?.to_owned();
        let updates = updates.to_array_view::<T>()?;
        let shape = out.shape().to_vec();
        let fix = |i: i64, dim: usize, at: &[usize]| -> TractResult<usize> {
            let j = if i < 0 { i + dim as i64 } else { i };
            ensure!(
                (0..dim as i64).contains(&j),
                "{}: index {i} at {at:?} is out of range for a dimension of {dim}",
                Expansion::name(self)
            );
            Ok(j as usize)
        };
        if self.nd {
            let k = *indices
                .shape()
                .last()
                .context("ScatterND: indices of rank 0")?;
            ensure!(
                k <= shape.len(),
                "ScatterND: index tuples of {k} into rank {}",
                shape.len()
            );
            let outer: Vec<usize> = indices.shape()[..indices.ndim() - 1].to_vec();
            let n: usize = outer.iter().product();
            let flat = indices.to_shape((n, k))?;
            let inner: usize = shape[k..].iter().product();
            let upd = updates.to_shape((n, inner))?;
            for t in 0..n {
                let mut base = vec![0usize; shape.len()];
                for (d, b) in base.iter_mut().enumerate().take(k) {
                    *b = fix(flat[[t, d]], shape[d], &[t, d])?;
                }
                // the slice out[base[..k], ...] in C order
                let mut offset = 0usize;
                let mut stride = 1usize;
                for d in (0..shape.len()).rev() {
                    offset += base[d] * stride;
                    stride *= shape[d];
                }
                let slice = out.as_slice_mut().context("contiguous output")?;
                for j in 0..inner {
                    let o = &mut slice[offset + j];
                    *o = self.reduce(*o, upd[[t, j]]);
                }
            }
        } else {
            let rank = shape.len() as i64;
            let axis = if self.axis < 0 {
                self.axis + rank
            } else {
                self.axis
            };
            ensure!(
                (0..rank).contains(&axis),
                "ScatterElements: axis {} of rank {rank}",
                self.axis
            );
            let axis = axis as usize;
            ensure!(
                indices.shape() == updates.shape(),
                "ScatterElements: indices {:?} and updates {:?} differ",
                indices.shape(),
                updates.shape()
            );
            for (at, &i) in indices.indexed_iter() {
                let mut target: Vec<usize> = at.slice().to_vec();
                target[axis] = fix(i, shape[axis], at.slice())?;
                let o = &mut out[IxDyn(&target)];
                *o = self.reduce(*o, updates[&at]);
            }
        }
        Ok(out.into_tensor())
    }
}

impl EvalOp for Scatter {
    fn is_stateless(&self) -> bool {
        true
    }

    fn eval(&self, inputs: TVec<TValue>) -> TractResult<TVec<TValue>> {
        let (data, indices, updates) = (&inputs[0], &inputs[1], &inputs[2]);
        let indices = indices.to_array_view::<i64>()?;
        let out = match data.datum_type() {
            DatumType::F32 => self.run::<f32>(data, indices, updates)?,
            DatumType::F64 => self.run::<f64>(data, indices, updates)?,
            DatumType::I64 => self.run::<i64>(data, indices, updates)?,
            DatumType::I32 => self.run::<i32>(data, indices, updates)?,
            other => bail!("{} with a reduction on {other:?}", Expansion::name(self)),
        };
        Ok(tvec!(out.into_tvalue()))
    }
}
