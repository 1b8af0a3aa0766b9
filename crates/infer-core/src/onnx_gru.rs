//! ONNX `GRU` of our own, registered in tract-onnx's registry in place of tract 0.21's, which
//! answers wrongly without an error once batch × hidden size reaches about 32 (a PyTorch
//! `nn.GRU(16, 24)` at batch 3 is 1.5 off onnxruntime; every ONNX test of GRU has a smaller
//! one, so tract passes them: found with `scripts/export_torchvision_onnx.py`), and runs a
//! `reverse` direction forward. This one computes the ONNX definition directly, per batch
//! row and step (gate order z, r, h): every direction, `linear_before_reset`, `layout`,
//! `clip`, `sequence_lens` (steps past a row's length give zeros in `Y`, its `Y_h` is the
//! state after its last step), `initial_h`; outputs `Y` and `Y_h`, either optional. The
//! activations are the defaults (Sigmoid, Tanh); others are refused by name. f32.

use std::borrow::Cow;

use tract_onnx::model::{OnnxOpRegister, ParsingContext, optional_inputs, optional_outputs};
use tract_onnx::pb::NodeProto;
use tract_onnx::tract_hir::internal::*;
use tract_onnx::tract_hir::tract_ndarray::{Array3, Array4, ArrayView1, Axis, Ix2, Ix3, s};

/// Puts our GRU in the registry.
pub(crate) fn register(reg: &mut OnnxOpRegister) {
    reg.insert("GRU", build);
}

fn build(
    _ctx: &ParsingContext<'_>,
    node: &NodeProto,
) -> TractResult<(Box<dyn InferenceOp>, Vec<String>)> {
    let reverse = match node.get_attr_opt::<&str>("direction")?.unwrap_or("forward") {
        "forward" => vec![false],
        "reverse" => vec![true],
        "bidirectional" => vec![false, true],
        other => bail!("GRU {}: direction {other:?}", node.name),
    };
    if let Some(acts) = node.get_attr_opt_tvec::<&str>("activations")? {
        for (i, a) in acts.iter().enumerate() {
            let default = if i % 2 == 0 { "Sigmoid" } else { "Tanh" };
            ensure!(
                a.eq_ignore_ascii_case(default),
                "GRU {}: activation {a:?} (inferkit's GRU runs the defaults, Sigmoid and Tanh)",
                node.name
            );
        }
    }
    let mut inputs = optional_inputs(node).skip(3);
    let mut outputs = optional_outputs(node);
    Ok((
        expand(Gru {
            reverse,
            linear_before_reset: node
                .get_attr_opt::<i64>("linear_before_reset")?
                .unwrap_or(0)
                != 0,
            batch_first: node.get_attr_opt::<i64>("layout")?.unwrap_or(0) == 1,
            clip: node.get_attr_opt::<f32>("clip")?,
            bias: inputs.next().flatten(),
            seq_lens: inputs.next().flatten(),
            initial_h: inputs.next().flatten(),
            y: outputs.next().flatten(),
            y_h: outputs.next().flatten(),
        }),
        vec![],
    ))
}

/// A GRU node: its attributes and where its optional inputs and outputs are.
#[derive(Debug, Clone)]
struct Gru {
    /// Per direction, whether it runs backwards in time.
    reverse: Vec<bool>,
    linear_before_reset: bool,
    /// `layout` 1: `X` is `[batch, seq, input]`, `Y` `[batch, seq, dirs, hidden]`, `Y_h`
    /// `[batch, dirs, hidden]`.
    batch_first: bool,
    clip: Option<f32>,
    bias: Option<usize>,
    seq_lens: Option<usize>,
    initial_h: Option<usize>,
    y: Option<usize>,
    y_h: Option<usize>,
}

impl Expansion for Gru {
    fn name(&self) -> Cow<'_, str> {
        "GRU".into()
    }

    fn nboutputs(&self) -> TractResult<usize> {
        Ok(self.y.is_some() as usize + self.y_h.is_some() as usize)
    }

    fn rules<'r, 'p: 'r, 's: 'r>(
        &'s self,
        s: &mut Solver<'r>,
        inputs: &'p [TensorProxy],
        outputs: &'p [TensorProxy],
    ) -> InferenceResult {
        check_output_arity(outputs, self.nboutputs()?)?;
        let dirs = (self.reverse.len() as i64).to_dim();
        let (t, b) = if self.batch_first { (1, 0) } else { (0, 1) };
        if let Some(y) = self.y {
            let o = &outputs[y];
            s.equals(&inputs[0].datum_type, &o.datum_type)?;
            s.equals(&o.rank, 4)?;
            let (ot, od, ob) = if self.batch_first {
                (1, 2, 0)
            } else {
                (0, 1, 2)
            };
            s.equals(&o.shape[ot], &inputs[0].shape[t])?;
            s.equals(&o.shape[ob], &inputs[0].shape[b])?;
            s.equals(&o.shape[od], dirs.clone())?;
            s.equals(&o.shape[3], &inputs[2].shape[2])?;
        }
        if let Some(y_h) = self.y_h {
            let o = &outputs[y_h];
            s.equals(&inputs[0].datum_type, &o.datum_type)?;
            s.equals(&o.rank, 3)?;
            let (od, ob) = if self.batch_first { (1, 0) } else { (0, 1) };
            s.equals(&o.shape[ob], &inputs[0].shape[b])?;
            s.equals(&o.shape[od], dirs)?;
            s.equals(&o.shape[2], &inputs[2].shape[2])?;
        }
        Ok(())
    }

    fn wire(
        &self,
        name: &str,
        model: &mut TypedModel,
        inputs: &[OutletId],
    ) -> TractResult<TVec<OutletId>> {
        let dt = model.outlet_fact(inputs[0])?.datum_type;
        ensure!(
            dt == f32::datum_type(),
            "GRU {name}: {dt:?} data (inferkit's GRU takes f32)"
        );
        model.wire_node(name, self.clone(), inputs)
    }
}

impl Op for Gru {
    fn name(&self) -> Cow<'_, str> {
        Expansion::name(self)
    }

    op_as_typed_op!();
}

impl TypedOp for Gru {
    as_op!();

    fn output_facts(&self, inputs: &[&TypedFact]) -> TractResult<TVec<TypedFact>> {
        let x = &inputs[0].shape;
        let hidden = inputs[2].shape[2].clone();
        let dirs = self.reverse.len().to_dim();
        let (t, b) = if self.batch_first {
            (x[1].clone(), x[0].clone())
        } else {
            (x[0].clone(), x[1].clone())
        };
        let mut facts = tvec![];
        if self.y.is_some() {
            facts.push(f32::fact(if self.batch_first {
                [b.clone(), t, dirs.clone(), hidden.clone()]
            } else {
                [t, dirs.clone(), b.clone(), hidden.clone()]
            }));
        }
        if self.y_h.is_some() {
            facts.push(f32::fact(if self.batch_first {
                [b, dirs, hidden]
            } else {
                [dirs, b, hidden]
            }));
        }
        Ok(facts)
    }
}

fn sigmoid(x: f32) -> f32 {
    1.0 / (1.0 + (-x).exp())
}

impl EvalOp for Gru {
    fn is_stateless(&self) -> bool {
        true
    }

    fn eval(&self, inputs: TVec<TValue>) -> TractResult<TVec<TValue>> {
        let x = inputs[0]
            .to_array_view::<f32>()?
            .into_dimensionality::<Ix3>()?;
        // [seq, batch, input]
        let x = if self.batch_first {
            x.permuted_axes([1, 0, 2])
        } else {
            x
        };
        let w = inputs[1]
            .to_array_view::<f32>()?
            .into_dimensionality::<Ix3>()?;
        let r = inputs[2]
            .to_array_view::<f32>()?
            .into_dimensionality::<Ix3>()?;
        let (steps, batch, input) = x.dim();
        let dirs = self.reverse.len();
        let h = r.shape()[2];
        ensure!(
            w.shape() == [dirs, 3 * h, input] && r.shape() == [dirs, 3 * h, h],
            "GRU: W {:?} and R {:?} do not fit {dirs} direction(s) of hidden size {h} over \
             inputs of size {input}",
            w.shape(),
            r.shape()
        );
        let bias = match self.bias {
            Some(i) => Some(
                inputs[i]
                    .to_array_view::<f32>()?
                    .into_dimensionality::<Ix2>()?,
            ),
            None => None,
        };
        if let Some(b) = &bias {
            ensure!(
                b.shape() == [dirs, 6 * h],
                "GRU: B {:?}, not [{dirs}, {}]",
                b.shape(),
                6 * h
            );
        }
        let lens: Vec<usize> = match self.seq_lens {
            Some(i) => {
                let l = inputs[i].cast_to::<i64>()?;
                let l = l.as_slice::<i64>()?;
                ensure!(
                    l.len() == batch,
                    "GRU: {} sequence_lens for batch {batch}",
                    l.len()
                );
                l.iter()
                    .map(|&n| {
                        ensure!(
                            (0..=steps as i64).contains(&n),
                            "GRU: sequence length {n} out of 0..={steps}"
                        );
                        Ok(n as usize)
                    })
                    .collect::<TractResult<_>>()?
            }
            None => vec![steps; batch],
        };
        let h0 = match self.initial_h {
            Some(i) => Some(
                inputs[i]
                    .to_array_view::<f32>()?
                    .into_dimensionality::<Ix3>()?,
            ),
            None => None,
        };
        if let Some(h0) = &h0 {
            ensure!(
                h0.shape() == [dirs, batch, h],
                "GRU: initial_h {:?}, not [{dirs}, {batch}, {h}]",
                h0.shape()
            );
        }
        let clip = |v: f32| self.clip.map_or(v, |c| v.clamp(-c, c));
        let mut y = Array4::<f32>::zeros((steps, dirs, batch, h));
        let mut y_h = Array3::<f32>::zeros((dirs, batch, h));
        let zero = vec![0.0f32; 6 * h];
        for (d, &reverse) in self.reverse.iter().enumerate() {
            let (w, r) = (w.index_axis(Axis(0), d), r.index_axis(Axis(0), d));
            let rh = r.slice(s![2 * h.., ..]);
            let bias_d: ArrayView1<'_, f32> = match &bias {
                Some(b) => b.index_axis(Axis(0), d),
                None => ArrayView1::from(&zero[..]),
            };
            let wb = |g: usize, j: usize| bias_d[g * h + j];
            let rb = |g: usize, j: usize| bias_d[(3 + g) * h + j];
            for (b, &len) in lens.iter().enumerate() {
                let mut prev: Vec<f32> = match &h0 {
                    Some(h0) => h0.slice(s![d, b, ..]).to_vec(),
                    None => vec![0.0; h],
                };
                for step in 0..len {
                    let t = if reverse { len - 1 - step } else { step };
                    let gx = w.dot(&x.slice(s![t, b, ..]));
                    let prev_v = ArrayView1::from(&prev[..]);
                    // z and r from R·H; h's term depends on linear_before_reset
                    let gh = r.slice(s![..2 * h, ..]).dot(&prev_v);
                    let z: Vec<f32> = (0..h)
                        .map(|j| sigmoid(clip(gx[j] + gh[j] + wb(0, j) + rb(0, j))))
                        .collect();
                    let rg: Vec<f32> = (0..h)
                        .map(|j| sigmoid(clip(gx[h + j] + gh[h + j] + wb(1, j) + rb(1, j))))
                        .collect();
                    let hh: Vec<f32> = if self.linear_before_reset {
                        let rhh = rh.dot(&prev_v);
                        (0..h)
                            .map(|j| {
                                clip(gx[2 * h + j] + rg[j] * (rhh[j] + rb(2, j)) + wb(2, j)).tanh()
                            })
                            .collect()
                    } else {
                        let reset: Vec<f32> = (0..h).map(|j| rg[j] * prev[j]).collect();
                        let rhh = rh.dot(&ArrayView1::from(&reset[..]));
                        (0..h)
                            .map(|j| clip(gx[2 * h + j] + rhh[j] + rb(2, j) + wb(2, j)).tanh())
                            .collect()
                    };
                    for j in 0..h {
                        prev[j] = (1.0 - z[j]) * hh[j] + z[j] * prev[j];
                    }
                    y.slice_mut(s![t, d, b, ..])
                        .assign(&ArrayView1::from(&prev[..]));
                }
                if len > 0 {
                    y_h.slice_mut(s![d, b, ..])
                        .assign(&ArrayView1::from(&prev[..]));
                }
            }
        }
        let mut out = tvec![];
        if self.y.is_some() {
            let y = if self.batch_first {
                y.permuted_axes([2, 0, 1, 3])
                    .as_standard_layout()
                    .into_owned()
            } else {
                y
            };
            out.push(y.into_dyn().into_tvalue());
        }
        if self.y_h.is_some() {
            let y_h = if self.batch_first {
                y_h.permuted_axes([1, 0, 2])
                    .as_standard_layout()
                    .into_owned()
            } else {
                y_h
            };
            out.push(y_h.into_dyn().into_tvalue());
        }
        Ok(out)
    }
}
