//! ONNX `Resize` (opset 11 and later) as the ONNX specification and its reference
//! implementation define it, registered in tract-onnx's registry in place of tract 0.21's,
//! which extrapolates linear half-pixel upsampling at the borders, takes the next pixel at
//! whole coordinates with `nearest_mode` ceil, ignores `antialias`, `axes` and
//! `keep_aspect_ratio_policy`, and has neither cubic mode nor the `pytorch_half_pixel`,
//! `half_pixel_symmetric` and `tf_crop_and_resize` coordinates (PyTorch exports bilinear
//! `interpolate` with `pytorch_half_pixel`).
//!
//! Every mode, coordinate transformation, nearest rounding, cubic coefficient,
//! `exclude_outside`, `extrapolation_value`, `antialias`, `axes` and
//! `keep_aspect_ratio_policy` is done, on f32 data. The ONNX backend plans per shape and
//! per value of `roi`/`scales`/`sizes` (see `needs_value`), so at typing time they are
//! constants: each resized axis becomes a table of (input index, weight) taps per output
//! index, and the kernel applies the tables axis after axis (the interpolation is
//! separable, as the reference computes it).

use std::borrow::Cow;
use std::sync::OnceLock;

use tract_onnx::model::{OnnxOpRegister, ParsingContext};
use tract_onnx::pb::NodeProto;
use tract_onnx::tract_hir::internal::*;

use crate::onnx_ops::{OpBuilder, constant_input};

/// tract's own builder, for `Resize` before opset 11 (whose semantics differ).
static TRACT_RESIZE: OnceLock<OpBuilder> = OnceLock::new();

/// Puts our `Resize` in the registry (tract's stays for opset 10).
pub(crate) fn register(reg: &mut OnnxOpRegister) {
    if let Some(original) = reg.0.get("Resize") {
        let _ = TRACT_RESIZE.set(*original);
    }
    reg.insert("Resize", build);
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Coord {
    HalfPixel,
    HalfPixelSymmetric,
    PytorchHalfPixel,
    AlignCorners,
    Asymmetric,
    TfCropAndResize,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Nearest {
    RoundPreferFloor,
    RoundPreferCeil,
    Floor,
    Ceil,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Mode {
    Nearest(Nearest),
    Linear,
    Cubic,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Policy {
    Stretch,
    NotLarger,
    NotSmaller,
}

/// The node's attributes and where its optional inputs are among the wired ones.
#[derive(Debug, Clone)]
struct Resize {
    axes: Option<Vec<i64>>,
    coord: Coord,
    mode: Mode,
    cubic_a: f32,
    exclude_outside: bool,
    extrapolation: f32,
    antialias: bool,
    policy: Policy,
    roi: Option<usize>,
    scales: Option<usize>,
    sizes: Option<usize>,
}

fn build(
    ctx: &ParsingContext<'_>,
    node: &NodeProto,
) -> TractResult<(Box<dyn InferenceOp>, Vec<String>)> {
    if ctx.onnx_operator_set_version < 11 {
        let original = TRACT_RESIZE
            .get()
            .context("tract's Resize is not registered")?;
        return original(ctx, node);
    }
    // optional inputs: their index among the non-empty ones (tract wires only those)
    let mut wired = 0;
    let mut at = [None; 4];
    for (i, name) in node.input.iter().enumerate().take(4) {
        if !name.is_empty() {
            at[i] = Some(wired);
            wired += 1;
        }
    }
    let text = |name: &str, default: &'static str| -> TractResult<String> {
        Ok(node
            .get_attr_opt::<&str>(name)?
            .unwrap_or(default)
            .to_owned())
    };
    let coord = match text("coordinate_transformation_mode", "half_pixel")?.as_str() {
        "half_pixel" => Coord::HalfPixel,
        "half_pixel_symmetric" => Coord::HalfPixelSymmetric,
        "pytorch_half_pixel" => Coord::PytorchHalfPixel,
        "align_corners" => Coord::AlignCorners,
        "asymmetric" => Coord::Asymmetric,
        "tf_crop_and_resize" => Coord::TfCropAndResize,
        other => bail!("Resize: coordinate_transformation_mode {other:?}"),
    };
    let nearest = match text("nearest_mode", "round_prefer_floor")?.as_str() {
        "round_prefer_floor" => Nearest::RoundPreferFloor,
        "round_prefer_ceil" => Nearest::RoundPreferCeil,
        "floor" => Nearest::Floor,
        "ceil" => Nearest::Ceil,
        other => bail!("Resize: nearest_mode {other:?}"),
    };
    let mode = match text("mode", "nearest")?.as_str() {
        "nearest" => Mode::Nearest(nearest),
        "linear" => Mode::Linear,
        "cubic" => Mode::Cubic,
        other => bail!("Resize: mode {other:?}"),
    };
    let policy = match text("keep_aspect_ratio_policy", "stretch")?.as_str() {
        "stretch" => Policy::Stretch,
        "not_larger" => Policy::NotLarger,
        "not_smaller" => Policy::NotSmaller,
        other => bail!("Resize: keep_aspect_ratio_policy {other:?}"),
    };
    let antialias = node.get_attr_opt::<i64>("antialias")?.unwrap_or(0) != 0;
    if antialias && matches!(mode, Mode::Nearest(_)) {
        bail!("Resize: antialias is not defined for mode nearest");
    }
    let op = Resize {
        axes: node.get_attr_opt_vec::<i64>("axes")?,
        coord,
        mode,
        cubic_a: node.get_attr_opt::<f32>("cubic_coeff_a")?.unwrap_or(-0.75),
        exclude_outside: node.get_attr_opt::<i64>("exclude_outside")?.unwrap_or(0) != 0,
        extrapolation: node
            .get_attr_opt::<f32>("extrapolation_value")?
            .unwrap_or(0.0),
        antialias,
        policy,
        roi: at[1],
        scales: at[2],
        sizes: at[3],
    };
    Ok((expand(op), vec![]))
}

/// A tensor given as a constant and holding values (an empty one is as absent).
fn values(t: Option<&Tensor>) -> TractResult<Option<Vec<f64>>> {
    match t {
        Some(t) if t.len() > 0 => Ok(Some(t.cast_to::<f64>()?.as_slice::<f64>()?.to_vec())),
        _ => Ok(None),
    }
}

impl Resize {
    /// The output shape and each axis's scale factor, from the input shape and whichever
    /// of `scales`/`sizes` holds values (as the reference's `_interpolate_nd`).
    fn plan(
        &self,
        shape: &[usize],
        scales: Option<&Tensor>,
        sizes: Option<&Tensor>,
    ) -> TractResult<(Vec<usize>, Vec<f64>)> {
        let rank = shape.len();
        let axes: Vec<usize> = match &self.axes {
            Some(a) => a
                .iter()
                .map(|&a| {
                    let a = if a < 0 { a + rank as i64 } else { a };
                    ensure!(
                        (0..rank as i64).contains(&a),
                        "Resize: axis {a} of rank {rank}"
                    );
                    Ok(a as usize)
                })
                .collect::<TractResult<_>>()?,
            None => (0..rank).collect(),
        };
        let per_axis =
            |v: Vec<f64>, what: &str, fill: &dyn Fn(usize) -> f64| -> TractResult<Vec<f64>> {
                ensure!(
                    v.len() == axes.len(),
                    "Resize: {} {what} for {} axes",
                    v.len(),
                    axes.len()
                );
                let mut all: Vec<f64> = (0..rank).map(fill).collect();
                for (a, x) in axes.iter().zip(v) {
                    all[*a] = x;
                }
                Ok(all)
            };
        if let Some(sizes) = values(sizes)? {
            let sizes = per_axis(sizes, "sizes", &|i| shape[i] as f64)?;
            let mut factors: Vec<f64> = (0..rank).map(|i| sizes[i] / shape[i] as f64).collect();
            let mut out: Vec<usize> = sizes.iter().map(|&s| s as usize).collect();
            if self.policy != Policy::Stretch {
                let chosen = axes.iter().map(|&a| factors[a]);
                let scale = if self.policy == Policy::NotLarger {
                    chosen.fold(f64::INFINITY, f64::min)
                } else {
                    chosen.fold(f64::NEG_INFINITY, f64::max)
                };
                for &a in &axes {
                    factors[a] = scale;
                    out[a] = (scale * shape[a] as f64 + 0.5) as usize;
                }
            }
            return Ok((out, factors));
        }
        if let Some(scales) = values(scales)? {
            let factors = per_axis(scales, "scales", &|_| 1.0)?;
            let out = (0..rank)
                .map(|i| (factors[i] * shape[i] as f64) as usize)
                .collect();
            return Ok((out, factors));
        }
        bail!("Resize: neither scales nor sizes hold values")
    }

    /// Coefficients of the kernel at `ratio` (in (0, 1]) for this mode.
    fn coeffs(&self, ratio: f64, scale: f64) -> Vec<f64> {
        let a = f64::from(self.cubic_a);
        match self.mode {
            Mode::Nearest(n) => {
                if ratio == 1.0 {
                    return vec![0.0, 1.0];
                }
                let right = match n {
                    Nearest::RoundPreferFloor => ratio > 0.5,
                    Nearest::RoundPreferCeil => ratio >= 0.5,
                    Nearest::Floor => false,
                    Nearest::Ceil => true,
                };
                if right {
                    vec![0.0, 1.0]
                } else {
                    vec![1.0, 0.0]
                }
            }
            Mode::Linear if self.antialias => {
                let scale = scale.min(1.0);
                let start = (-1.0 / scale).floor() as i64 + 1;
                let footprint = 2 - 2 * start;
                let c: Vec<f64> = (start..start + footprint)
                    .map(|i| (1.0 - ((i as f64 - ratio) * scale).abs()).clamp(0.0, 1.0))
                    .collect();
                let sum: f64 = c.iter().sum();
                c.into_iter().map(|x| x / sum).collect()
            }
            Mode::Linear => vec![1.0 - ratio, ratio],
            Mode::Cubic if self.antialias => {
                let scale = scale.min(1.0);
                let coeff = |x: f64| {
                    let x = x.abs();
                    let (x2, x3) = (x * x, x * x * x);
                    if x <= 1.0 {
                        (a + 2.0) * x3 - (a + 3.0) * x2 + 1.0
                    } else if x < 2.0 {
                        a * x3 - 5.0 * a * x2 + 8.0 * a * x - 4.0 * a
                    } else {
                        0.0
                    }
                };
                let start = (-2.0 / scale).floor() as i64 + 1;
                let end = 2 - start;
                let c: Vec<f64> = (start..end)
                    .map(|i| coeff(scale * (i as f64 - ratio)))
                    .collect();
                let sum: f64 = c.iter().sum();
                c.into_iter().map(|x| x / sum).collect()
            }
            Mode::Cubic => {
                let r = ratio;
                let s = 1.0 - ratio;
                vec![
                    ((a * (r + 1.0) - 5.0 * a) * (r + 1.0) + 8.0 * a) * (r + 1.0) - 4.0 * a,
                    ((a + 2.0) * r - (a + 3.0)) * r * r + 1.0,
                    ((a + 2.0) * s - (a + 3.0)) * s * s + 1.0,
                    ((a * (s + 1.0) - 5.0 * a) * (s + 1.0) + 8.0 * a) * (s + 1.0) - 4.0 * a,
                ]
            }
        }
    }

    /// One axis's taps: for each output index, (input index, weight) pairs, or `None`
    /// where `tf_crop_and_resize` extrapolates (as `_interpolate_1d_along_axis`).
    fn taps(
        &self,
        len_in: usize,
        len_out: usize,
        scale: f64,
        roi: (f64, f64),
    ) -> Vec<Option<Vec<(usize, f32)>>> {
        let width = scale * len_in as f64;
        let n_in = len_in as f64;
        (0..len_out)
            .map(|y| {
                let y = y as f64;
                let x = match self.coord {
                    Coord::AlignCorners if width == 1.0 => 0.0,
                    Coord::AlignCorners => y * (n_in - 1.0) / (width - 1.0),
                    Coord::Asymmetric => y / scale,
                    Coord::TfCropAndResize => {
                        let x = if width == 1.0 {
                            (roi.1 - roi.0) * (n_in - 1.0) / 2.0
                        } else {
                            y * (roi.1 - roi.0) * (n_in - 1.0) / (width - 1.0)
                        } + roi.0 * (n_in - 1.0);
                        if x < 0.0 || x > n_in - 1.0 {
                            return None;
                        }
                        x
                    }
                    Coord::PytorchHalfPixel if width == 1.0 => -0.5,
                    Coord::PytorchHalfPixel | Coord::HalfPixel => (y + 0.5) / scale - 0.5,
                    Coord::HalfPixelSymmetric => {
                        let adjustment = len_out as f64 / width;
                        let offset = n_in / 2.0 * (1.0 - adjustment);
                        offset + (y + 0.5) / scale - 0.5
                    }
                };
                let floor = x.floor();
                let ratio = if x == floor { 1.0 } else { x - floor };
                let mut c = self.coeffs(ratio, scale);
                let n = c.len() as i64;
                let pad = (n + 1) / 2;
                let xp = x + pad as f64;
                let p = xp.floor() as i64;
                let frac = xp - p as f64;
                let offset = if n % 2 == 0 {
                    if frac == 0.0 { -(n / 2) } else { -(n / 2) + 1 }
                } else {
                    let base = -((n - 1) / 2);
                    if frac <= 0.5 { base } else { base + 1 }
                };
                let start = p + offset - pad;
                let idx: Vec<i64> = (start..start + n).collect();
                if self.exclude_outside {
                    for (w, &i) in c.iter_mut().zip(&idx) {
                        if i < 0 || i >= len_in as i64 {
                            *w = 0.0;
                        }
                    }
                    let sum: f64 = c.iter().sum();
                    let sum = if sum == 0.0 { 1.0 } else { sum };
                    c.iter_mut().for_each(|w| *w /= sum);
                }
                Some(
                    idx.iter()
                        .zip(c)
                        .filter(|(_, w)| *w != 0.0)
                        .map(|(&i, w)| (i.clamp(0, len_in as i64 - 1) as usize, w as f32))
                        .collect(),
                )
            })
            .collect()
    }
}

impl Expansion for Resize {
    fn name(&self) -> Cow<'_, str> {
        "Resize".into()
    }

    fn rules<'r, 'p: 'r, 's: 'r>(
        &'s self,
        s: &mut Solver<'r>,
        inputs: &'p [TensorProxy],
        outputs: &'p [TensorProxy],
    ) -> InferenceResult {
        check_output_arity(outputs, 1)?;
        s.equals(&inputs[0].datum_type, &outputs[0].datum_type)?;
        s.equals(&inputs[0].rank, &outputs[0].rank)?;
        let shape_of = move |s: &mut Solver<'r>,
                             shape: TVec<TDim>,
                             scales: Option<Arc<Tensor>>,
                             sizes: Option<Arc<Tensor>>| {
            let Ok(shape) = shape
                .iter()
                .map(|d| d.to_usize())
                .collect::<TractResult<Vec<_>>>()
            else {
                return Ok(());
            };
            let (out, _) = self.plan(&shape, scales.as_deref(), sizes.as_deref())?;
            for (i, d) in out.into_iter().enumerate() {
                s.equals(&outputs[0].shape[i], d.to_dim())?;
            }
            Ok(())
        };
        match (self.scales, self.sizes) {
            (Some(sc), Some(si)) => s.given_3(
                &inputs[0].shape,
                &inputs[sc].value,
                &inputs[si].value,
                move |s, shape, scales, sizes| shape_of(s, shape, Some(scales), Some(sizes)),
            ),
            (Some(sc), None) => s.given_2(
                &inputs[0].shape,
                &inputs[sc].value,
                move |s, shape, scales| shape_of(s, shape, Some(scales), None),
            ),
            (None, Some(si)) => s.given_2(
                &inputs[0].shape,
                &inputs[si].value,
                move |s, shape, sizes| shape_of(s, shape, None, Some(sizes)),
            ),
            (None, None) => bail!("Resize: neither scales nor sizes given"),
        }
    }

    fn wire(
        &self,
        name: &str,
        model: &mut TypedModel,
        inputs: &[OutletId],
    ) -> TractResult<TVec<OutletId>> {
        let node = format!("Resize {name}");
        let konst =
            |i: Option<usize>, what: &str| constant_input(model, i.map(|i| inputs[i]), &node, what);
        let (roi, scales, sizes) = (
            konst(self.roi, "roi")?,
            konst(self.scales, "scales")?,
            konst(self.sizes, "sizes")?,
        );
        let fact = model.outlet_fact(inputs[0])?.clone();
        ensure!(
            fact.datum_type == f32::datum_type(),
            "Resize {name}: {:?} data (inferkit's Resize takes f32)",
            fact.datum_type
        );
        let Some(shape) = fact.shape.as_concrete().map(<[usize]>::to_vec) else {
            bail!("Resize {name}: the input shape is not known");
        };
        let (out, factors) = self.plan(&shape, scales.as_deref(), sizes.as_deref())?;
        let rank = shape.len();
        let roi = values(roi.as_deref())?;
        let roi_of = |a: usize| -> TractResult<(f64, f64)> {
            let Some(r) = &roi else { return Ok((0.0, 1.0)) };
            match &self.axes {
                Some(axes) => {
                    let k = axes
                        .iter()
                        .position(|&x| (if x < 0 { x + rank as i64 } else { x }) as usize == a);
                    Ok(k.map_or((0.0, 1.0), |k| (r[k], r[axes.len() + k])))
                }
                None => {
                    ensure!(
                        r.len() == 2 * rank,
                        "Resize {name}: roi of {} values",
                        r.len()
                    );
                    Ok((r[a], r[rank + a]))
                }
            }
        };
        let mut steps = Vec::new();
        for a in 0..rank {
            let roi = roi_of(a)?;
            let identity = (factors[a] - 1.0).abs() < 1e-12
                && out[a] == shape[a]
                && (roi.0.abs() < 1e-12 && (roi.1 - 1.0).abs() < 1e-12);
            if !identity {
                ensure!(
                    shape[a] > 0,
                    "Resize {name}: axis {a} of the input is empty"
                );
                steps.push((a, out[a], self.taps(shape[a], out[a], factors[a], roi)));
            }
        }
        model.wire_node(
            name,
            ResizeKernel {
                steps,
                extrapolation: self.extrapolation,
                out,
            },
            &[inputs[0]],
        )
    }
}

/// One resized axis: its output length and, per output index, taps or extrapolation.
type Step = (usize, usize, Vec<Option<Vec<(usize, f32)>>>);

/// The resize with its tap tables, applied axis after axis.
#[derive(Debug, Clone)]
struct ResizeKernel {
    steps: Vec<Step>,
    extrapolation: f32,
    out: Vec<usize>,
}

impl Op for ResizeKernel {
    fn name(&self) -> Cow<'_, str> {
        "Resize".into()
    }

    op_as_typed_op!();
}

impl EvalOp for ResizeKernel {
    fn is_stateless(&self) -> bool {
        true
    }

    fn eval(&self, inputs: TVec<TValue>) -> TractResult<TVec<TValue>> {
        use tract_onnx::tract_hir::tract_ndarray::{ArrayD, Axis};
        let mut data: ArrayD<f32> = inputs[0].to_array_view::<f32>()?.to_owned();
        for (axis, len, taps) in &self.steps {
            let mut shape = data.shape().to_vec();
            shape[*axis] = *len;
            let mut next = ArrayD::<f32>::zeros(shape);
            for (y, taps) in taps.iter().enumerate() {
                let mut lane = next.index_axis_mut(Axis(*axis), y);
                match taps {
                    None => lane.fill(self.extrapolation),
                    Some(taps) => {
                        for &(i, w) in taps {
                            lane.scaled_add(w, &data.index_axis(Axis(*axis), i));
                        }
                    }
                }
            }
            data = next;
        }
        Ok(tvec!(data.into_tvalue()))
    }
}

impl TypedOp for ResizeKernel {
    as_op!();

    fn output_facts(&self, _inputs: &[&TypedFact]) -> TractResult<TVec<TypedFact>> {
        Ok(tvec!(f32::fact(&self.out)))
    }
}
