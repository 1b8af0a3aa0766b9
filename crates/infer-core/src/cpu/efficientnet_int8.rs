//! EfficientNet-Lite0 in int8: the network an int8 checkpoint loads into, and the
//! calibration and writing of that checkpoint from the f32 one.
//!
//! **Scheme.** Every convolution's weight is `s8`, symmetric, one scale per output channel
//! (the stem's is dequantized at load: its input is the f32 image). Activations are `u8`,
//! one scale and zero point per tensor, fixed at calibration: the stem's output, and in
//! each block the expansion's, the depthwise convolution's and the block's output (after
//! the residual sum). The 1×1 convolutions run on the u8×s8 GEMM ([`int8`](super::super::int8))
//! and the depthwise ones on [`depthwise_u8`], each storing `u8` for the next (bias,
//! ReLU6 and requantisation in the store); a block with a residual connection stores its
//! projection as `f32`, adds the input and quantizes the sum. The head's output stays f32
//! for the average pool, and the classifier quantizes the pooled features per image at run
//! time (as MiniLM's layers do their tokens).
//!
//! **Calibration.** The f32 network runs layer by layer over the calibration batch and
//! every quantized activation's values are sampled (one in [`SAMPLE_EVERY`]); its range is
//! the [`PERCENTILE`]th percentile at each end (onnxruntime's default; the ReLU6 outputs'
//! lower end is 0). A percentile rather than the extremes, so that a rare outlier does not
//! stretch a range; on 1,000 ImageNet photos (`scripts/int8-accuracy.sh`) 99.99, 99.999
//! and the extremes agreed with f32 within a point of each other (95.5 % and 95.8 % for the
//! first two, with the bias correction below), 99.9 clipped too much (94.0 %).
//! Entropy calibration was not tried: it needs more than the four bundled photos' values.
//!
//! **Bias correction.** Rounding a convolution's weights shifts its outputs' mean by `(q ·
//! scale − w) · E[x]` per output channel. The calibration also records each convolution's
//! mean input per channel, and the checkpoint gets `<conv>.bias` (PyTorch's `Conv2d.bias`,
//! before the batch norm) cancelling that shift: on those 1,000 photos it raised top-1
//! agreement with f32 from 93.1 % to 95.5 % (Nagel et al. 2019, "Data-Free Quantization").

use std::path::Path;

use ndarray::{Array2, ArrayView4};

use super::super::epilogue::Act;
use super::super::int8::{Isa, Out, PackedI8, Rows, gemm_u8i8, gemm_u8i8_rows, quantize_rows};
use super::super::int8_nhwc::{DepthwiseI8, QParams, depthwise_u8, quantize_sum, quantize_tensor};
use super::super::kernels::Pad;
use super::super::nhwc::{Nhwc, depthwise, for_rows, global_avg_pool, pointwise};
use super::super::quant;
use super::{Dense, F32Weights, Reader, Scratch, Spec, backend_err, specs};
use crate::weights::TensorBytes;
use crate::{Error, Result};

/// The descriptor's `precision` of the int8 network.
pub(super) const PRECISION: &str =
    "int8 (weights per output channel; activations per tensor, calibrated)";

/// The scheme in the checkpoint's metadata.
const SCHEME: &str = "weights: int8, symmetric, one scale per output channel (every \
    convolution and the classifier; the stem's dequantized at load), with a bias correction \
    per convolution (`<conv>.bias`); activations: uint8, \
    asymmetric, one scale and zero point per tensor from `<layer>.activation_range` (stem, \
    expansion, depthwise and block outputs), the classifier's input per image at run time; \
    head output, pooling and logits: f32";

/// The percentile of the sampled values that bounds each activation range.
pub(super) const PERCENTILE: f64 = 99.999;

/// One value in this many is kept for the percentiles (prime, so that no channel is
/// favoured).
const SAMPLE_EVERY: usize = 7;

/// The name of a layer's calibrated output range.
fn range_name(layer: &str) -> String {
    format!("{layer}.activation_range")
}

/// A 1×1 convolution (or the classifier) in int8: the weight packed, and per output
/// channel the scale turning the exact sum into real units (input scale × weight scale ×
/// batch-norm factor) and the folded bias.
struct QDense {
    w: PackedI8,
    scale: Vec<f32>,
    bias: Vec<f32>,
}

struct QBlock {
    /// The expansion and its output's parameters.
    expand: Option<(QDense, QParams)>,
    /// `[k, k, mid]` taps.
    taps: Vec<i8>,
    dw_scale: Vec<f32>,
    dw_bias: Vec<f32>,
    dw_q: QParams,
    project: QDense,
    /// The block's input's parameters and its output's.
    in_q: QParams,
    out_q: QParams,
    kernel: usize,
    stride: usize,
    skip: bool,
}

/// The int8 network (see the module docs).
pub(super) struct Int8Net {
    isa: Isa,
    stem: Dense,
    stem_q: QParams,
    blocks: Vec<QBlock>,
    /// Its output is f32.
    head: QDense,
    /// Weight scales per class (the input's come per image).
    fc: QDense,
}

/// An int8 convolution read from the checkpoint: `q` `[cout, rest]`, and per output
/// channel the weight scale times the batch norm's factor, and the folded bias.
struct QConv<'a> {
    /// In place in the checkpoint where it can be.
    q: std::borrow::Cow<'a, [i8]>,
    cout: usize,
    scale: Vec<f32>,
    bias: Vec<f32>,
}

/// Int8 weight `t` (`name`) as a slice, in place in the checkpoint where it can be.
fn int8_values<'a>(
    t: &crate::weights::StoredTensor<'a>,
    name: &str,
) -> Result<std::borrow::Cow<'a, [i8]>> {
    if let Some(q) = t.view::<i8>().ok().and_then(|v| v.to_slice()) {
        return Ok(std::borrow::Cow::Borrowed(q));
    }
    let q = t
        .to_owned::<i8>()
        .map_err(|e| backend_err(format!("{name}: {e} (an int8 checkpoint's weight is I8)")))?;
    Ok(std::borrow::Cow::Owned(q.iter().copied().collect()))
}

impl<'a> Reader<'a> {
    /// Int8 convolution `conv` (`[cout, cin, k, k]` = `[_, want…]`) with batch norm `bn`.
    fn qconv(&self, conv: &str, bn: &str, want: (usize, usize, usize)) -> Result<QConv<'a>> {
        let name = format!("{conv}.weight");
        let t = self
            .0
            .tensor(&name)
            .map_err(|e| backend_err(e.to_string()))?;
        let shape = t.shape();
        if shape.len() != 4 || (shape[1], shape[2], shape[3]) != want {
            return Err(backend_err(format!(
                "{name}: weight {shape:?}, expected [_, {}, {}, {}]",
                want.0, want.1, want.2
            )));
        }
        let q = int8_values(&t, &name)?;
        let cout = shape[0];
        let (factor, bias) = self.batch_norm(bn, cout)?;
        let bias = self.conv_bias(conv, &factor, bias)?;
        let scale = self.scales(&name, cout)?;
        Ok(QConv {
            q,
            cout,
            scale: scale.iter().zip(&factor).map(|(s, f)| s * f).collect(),
            bias: bias.to_vec(),
        })
    }

    /// The parameters of a layer's calibrated output.
    fn range(&self, layer: &str) -> Result<QParams> {
        let name = range_name(layer);
        let r = self.get1(&name)?;
        match r.as_slice() {
            Some(&[lo, hi]) if lo.is_finite() && hi.is_finite() && lo <= hi => {
                Ok(QParams::from_range(lo, hi))
            }
            _ => Err(backend_err(format!(
                "{name}: {r} is not a finite range [low, high]"
            ))),
        }
    }
}

impl QDense {
    /// A 1×1 convolution reading `u8` on `input`'s parameters.
    fn pointwise(c: QConv<'_>, input: QParams) -> QDense {
        let k = c.q.len() / c.cout.max(1);
        QDense {
            w: PackedI8::from_rows(&c.q, c.cout, k),
            scale: c.scale.iter().map(|s| s * input.scale).collect(),
            bias: c.bias,
        }
    }

    fn cout(&self) -> usize {
        self.bias.len()
    }

    /// `out = quantize(act(x · w)) ` on `q`, rows split over `threads`.
    #[allow(clippy::too_many_arguments)]
    fn run_u8(&self, isa: Isa, x: &[u8], zero: u8, act: Act, q: QParams, out: &mut [u8], t: usize) {
        let (k, n) = (self.w.k(), self.w.n());
        for_rows(out, n, usize::MAX, t, |first, chunk| {
            let m = chunk.len() / n;
            let out = Out::U8 {
                out: chunk,
                scale: &self.scale,
                bias: &self.bias,
                act,
                out_scale: q.scale,
                out_zero: q.zero,
            };
            gemm_u8i8(isa, (m, &x[first * k..], k, zero), &self.w, out);
        });
    }

    /// `out = act(x · w)` in f32, rows split over `threads`.
    fn run_f32(&self, isa: Isa, x: &[u8], zero: u8, act: Act, out: &mut [f32], t: usize) {
        let (k, n) = (self.w.k(), self.w.n());
        for_rows(out, n, usize::MAX, t, |first, chunk| {
            let m = chunk.len() / n;
            let out = Out::F32 {
                out: chunk,
                scale: &self.scale,
                bias: &self.bias,
                act,
            };
            gemm_u8i8(isa, (m, &x[first * k..], k, zero), &self.w, out);
        });
    }
}

impl Int8Net {
    pub(super) fn load(read: &Reader<'_>) -> Result<Int8Net> {
        let (stem_w, stem_b) = read.conv_bn("_conv_stem", "_bn0", (3, 3, 3))?;
        let stem = Dense::conv(&stem_w, stem_b);
        let stem_q = read.range("_conv_stem")?;
        let mut blocks = Vec::new();
        let (mut channels, mut in_q) = (stem.cout(), stem_q);
        for spec in specs() {
            let Spec {
                prefix: p,
                cin,
                kernel,
                stride,
                ..
            } = &spec;
            spec.check_in(channels)?;
            let expand = if spec.expand != 1 {
                let e = format!("{p}._expand_conv");
                let c = read.qconv(&e, &format!("{p}._bn0"), (*cin, 1, 1))?;
                Some((QDense::pointwise(c, in_q), read.range(&e)?))
            } else {
                None
            };
            let (mid, mid_q) = expand
                .as_ref()
                .map_or((*cin, in_q), |(e, q)| (e.cout(), *q));
            let d = format!("{p}._depthwise_conv");
            let dw = read.qconv(&d, &format!("{p}._bn1"), (1, *kernel, *kernel))?;
            if dw.cout != mid {
                return Err(backend_err(format!("{d}: {} channels, not {mid}", dw.cout)));
            }
            let kk = kernel * kernel;
            // [c, k·k] → [k·k, c]
            let taps = (0..kk * mid)
                .map(|i| dw.q[(i % mid) * kk + i / mid])
                .collect();
            let dw_q = read.range(&d)?;
            let pr = format!("{p}._project_conv");
            let project =
                QDense::pointwise(read.qconv(&pr, &format!("{p}._bn2"), (mid, 1, 1))?, dw_q);
            channels = project.cout();
            spec.check_out(channels)?;
            let out_q = read.range(&pr)?;
            blocks.push(QBlock {
                expand,
                taps,
                dw_scale: dw.scale.iter().map(|s| s * mid_q.scale).collect(),
                dw_bias: dw.bias,
                dw_q,
                project,
                in_q,
                out_q,
                kernel: *kernel,
                stride: *stride,
                skip: spec.skip(),
            });
            in_q = out_q;
        }
        let head = QDense::pointwise(read.qconv("_conv_head", "_bn1", (channels, 1, 1))?, in_q);
        let name = "_fc.weight";
        let t = read
            .0
            .tensor(name)
            .map_err(|e| backend_err(e.to_string()))?;
        let (classes, features) = match t.shape() {
            &[c, f] if f == head.cout() => (c, f),
            s => {
                return Err(backend_err(format!(
                    "{name}: {s:?}, expected [_, {}]",
                    head.cout()
                )));
            }
        };
        let q = int8_values(&t, name)?;
        let bias = read.get1("_fc.bias")?;
        if bias.len() != classes {
            return Err(backend_err(format!(
                "_fc.bias: {} values for {classes} classes",
                bias.len()
            )));
        }
        let fc = QDense {
            w: PackedI8::from_rows(&q, classes, features),
            scale: read.scales(name, classes)?,
            bias: bias.to_vec(),
        };
        Ok(Int8Net {
            isa: Isa::detect(),
            stem,
            stem_q,
            blocks,
            head,
            fc,
        })
    }

    pub(super) fn classes(&self) -> usize {
        self.fc.cout()
    }

    pub(super) fn forward(
        &self,
        x: ArrayView4<'_, f32>,
        scratch: &mut Scratch,
        t: usize,
    ) -> Array2<f32> {
        let isa = self.isa;
        let Scratch { bufs, bytes, .. } = scratch;
        let n = x.dim().0;
        let (stem, mut shape) = self.stem.stem(x, t, |len| bufs.get(len));
        let mut cur = bytes.get(stem.len());
        quantize_tensor(&stem, self.stem_q, &mut cur, t);
        bufs.put(stem);
        for b in &self.blocks {
            let pad = Pad::same(shape.h, shape.w, b.kernel, b.stride);
            let (oh, ow) = shape.out(b.kernel, b.stride, pad);
            let mut d = bytes.get(shape.n * oh * ow * b.dw_bias.len());
            let expanded = b.expand.as_ref().map(|(e, q)| {
                let mut y = bytes.get(shape.n * shape.h * shape.w * e.cout());
                e.run_u8(isa, &cur, b.in_q.zero, Act::Relu6, *q, &mut y, t);
                (y, *q)
            });
            let (mid, mid_q) = match &expanded {
                Some((y, q)) => (&y[..], *q),
                None => (&cur[..], b.in_q),
            };
            let mid_shape = Nhwc {
                c: b.dw_bias.len(),
                ..shape
            };
            let conv = DepthwiseI8 {
                taps: &b.taps,
                k: b.kernel,
                stride: b.stride,
                pad,
                scale: &b.dw_scale,
                bias: &b.dw_bias,
                act: Act::Relu6,
            };
            depthwise_u8(isa, mid, mid_shape, mid_q.zero, &conv, &mut d, b.dw_q, t);
            if let Some((y, _)) = expanded {
                bytes.put(y);
            }
            let out_shape = Nhwc {
                n: shape.n,
                h: oh,
                w: ow,
                c: b.project.cout(),
            };
            let mut out = bytes.get(out_shape.len());
            if b.skip {
                let mut y = bufs.get(out_shape.len());
                b.project
                    .run_f32(isa, &d, b.dw_q.zero, Act::Identity, &mut y, t);
                quantize_sum(&y, &cur, b.in_q, b.out_q, &mut out, t);
                bufs.put(y);
            } else {
                b.project
                    .run_u8(isa, &d, b.dw_q.zero, Act::Identity, b.out_q, &mut out, t);
            }
            bytes.put(d);
            bytes.put(std::mem::replace(&mut cur, out));
            shape = out_shape;
        }
        let head_shape = Nhwc {
            c: self.head.cout(),
            ..shape
        };
        let mut y = bufs.get(head_shape.len());
        let last_zero = self.blocks.last().map_or(self.stem_q, |b| b.out_q).zero;
        self.head
            .run_f32(isa, &cur, last_zero, Act::Relu6, &mut y, t);
        bytes.put(cur);
        let pooled = global_avg_pool(&y, head_shape);
        bufs.put(y);
        let features = self.fc.w.k();
        let mut q = vec![0u8; pooled.len()];
        let (mut zeros, mut scales) = (vec![0u8; n], vec![0f32; n]);
        quantize_rows(&pooled, features, &mut q, &mut zeros, &mut scales);
        let classes = self.classes();
        let mut logits = vec![0.0; n * classes];
        let rows = Rows {
            m: n,
            data: &q,
            lda: features,
            zeros: &zeros,
            scales: &scales,
        };
        let out = Out::F32 {
            out: &mut logits,
            scale: &self.fc.scale,
            bias: &self.fc.bias,
            act: Act::Identity,
        };
        gemm_u8i8_rows(isa, rows, &self.fc.w, out);
        bufs.trim();
        bytes.trim();
        Array2::from_shape_vec((n, classes), logits).expect("n × classes")
    }
}

/// What calibration gathers, by layer name in network order: sampled values of each
/// quantized activation, and the per-channel sums of each convolution's input (for the
/// bias correction).
#[derive(Default)]
struct Samples {
    values: Vec<(String, Vec<f32>)>,
    /// Per input channel: the sums, and the count of pixels.
    inputs: Vec<(String, Vec<f64>, usize)>,
}

/// The entry of `list` whose `key` is `name`, made by `new` when absent.
fn entry<'a, T>(
    list: &'a mut Vec<T>,
    name: &str,
    key: impl Fn(&T) -> &str,
    new: impl FnOnce() -> T,
) -> &'a mut T {
    let at = match list.iter().position(|e| key(e) == name) {
        Some(i) => i,
        None => {
            list.push(new());
            list.len() - 1
        }
    };
    &mut list[at]
}

impl Samples {
    fn add(&mut self, layer: &str, values: &[f32]) {
        let new = || (layer.to_string(), Vec::new());
        let keep = &mut entry(&mut self.values, layer, |e| &e.0, new).1;
        keep.extend(
            values
                .iter()
                .step_by(SAMPLE_EVERY)
                .filter(|v| v.is_finite()),
        );
    }

    /// Adds channels-last input `x` of `c` channels to convolution `conv`'s sums.
    fn input(&mut self, conv: &str, x: &[f32], c: usize) {
        let new = || (conv.to_string(), vec![0.0; c], 0);
        let e = entry(&mut self.inputs, conv, |e| &e.0, new);
        for px in x.chunks_exact(c) {
            for (s, &v) in e.1.iter_mut().zip(px) {
                *s += f64::from(v);
            }
        }
        e.2 += x.len() / c.max(1);
    }

    /// Convolution `conv`'s mean input per channel, if calibration saw it.
    fn mean(&self, conv: &str) -> Option<Vec<f64>> {
        let (_, sums, count) = self.inputs.iter().find(|e| e.0 == conv)?;
        Some(sums.iter().map(|s| s / (*count).max(1) as f64).collect())
    }

    /// Each layer's `[low, high]`: the `pct`th percentile at each end.
    fn ranges(&mut self, pct: f64) -> Vec<(String, [f32; 2])> {
        std::mem::take(&mut self.values)
            .into_iter()
            .map(|(name, mut v)| {
                v.sort_unstable_by(f32::total_cmp);
                let at = |p: f64| {
                    let i = ((v.len().saturating_sub(1)) as f64 * p / 100.0).round() as usize;
                    v.get(i).copied().unwrap_or(0.0)
                };
                let r = [at(100.0 - pct).min(0.0), at(pct).max(0.0)];
                (name, r)
            })
            .collect()
    }
}

/// The bias that cancels, on average, what quantizing a convolution's weight (`w`, rows of
/// output channels, as `q · scale`) shifts its output by: `−Σ (q·scale − w) · mean` over
/// each row, `mean` the calibration's mean input per input channel (the row's taps of one
/// input channel are consecutive; a depthwise row reads its own channel only).
fn bias_correction(w: &[f32], q: &[i8], scale: &[f32], mean: &[f64], depthwise: bool) -> Vec<f32> {
    let rows = scale.len();
    let per_row = w.len() / rows.max(1);
    let taps = if depthwise {
        per_row
    } else {
        per_row / mean.len().max(1)
    };
    (0..rows)
        .map(|o| {
            let mut shift = 0.0_f64;
            for i in 0..per_row {
                let at = o * per_row + i;
                let err = f64::from(f32::from(q[at]) * scale[o] - w[at]);
                let channel = if depthwise { o } else { i / taps.max(1) };
                shift += err * mean[channel];
            }
            -shift as f32
        })
        .collect()
}

impl F32Weights {
    /// Runs the f32 network layer by layer (unfused) over `x`, sampling every activation
    /// the int8 network quantizes.
    fn calibrate(&self, x: ArrayView4<'_, f32>, samples: &mut Samples) {
        let (n, c, h, w) = x.dim();
        let (mut cur, mut shape) = self.stem.stem(x, 1, |len| vec![0.0; len]);
        // the image's channel means (NCHW: a plane per channel), as a pixel's channels
        let plane = h * w;
        let means: Vec<f32> = (0..c)
            .map(|ch| {
                let sum: f64 = x
                    .slice(ndarray::s![.., ch, .., ..])
                    .iter()
                    .map(|&v| f64::from(v))
                    .sum();
                (sum / (n * plane) as f64) as f32
            })
            .collect();
        samples.input("_conv_stem", &means, c);
        samples.add("_conv_stem", &cur);
        for (b, spec) in self.blocks.iter().zip(specs()) {
            let p = &spec.prefix;
            let mid = match &b.expand {
                Some(e) => {
                    samples.input(&format!("{p}._expand_conv"), &cur, shape.c);
                    let mut y = vec![0.0; shape.n * shape.h * shape.w * e.cout()];
                    pointwise(&cur, &e.weight, &e.bias, Act::Relu6, None, &mut y, 1);
                    samples.add(&format!("{p}._expand_conv"), &y);
                    y
                }
                None => cur.clone(),
            };
            let mid_shape = Nhwc {
                c: b.depthwise.bias.len(),
                ..shape
            };
            samples.input(&format!("{p}._depthwise_conv"), &mid, mid_shape.c);
            let pad = Pad::same(shape.h, shape.w, b.kernel, b.stride);
            let (oh, ow) = shape.out(b.kernel, b.stride, pad);
            let mut d = vec![0.0; shape.n * oh * ow * mid_shape.c];
            let dw = &b.depthwise;
            let (k, s) = (b.kernel, b.stride);
            depthwise(
                &mid,
                mid_shape,
                &dw.weight,
                &dw.bias,
                k,
                s,
                pad,
                Act::Relu6,
                &mut d,
                1,
            );
            samples.add(&format!("{p}._depthwise_conv"), &d);
            samples.input(&format!("{p}._project_conv"), &d, mid_shape.c);
            let out_shape = Nhwc {
                n: shape.n,
                h: oh,
                w: ow,
                c: b.project.cout(),
            };
            let mut out = vec![0.0; out_shape.len()];
            let residual = b.skip.then_some(&cur[..]);
            let pr = &b.project;
            pointwise(
                &d,
                &pr.weight,
                &pr.bias,
                Act::Identity,
                residual,
                &mut out,
                1,
            );
            samples.add(&format!("{p}._project_conv"), &out);
            cur = out;
            shape = out_shape;
        }
        samples.input("_conv_head", &cur, shape.c);
    }
}

/// The int8 checkpoint of `w` (loaded from `source`), calibrated on `calibration`.
pub(super) fn checkpoint_bytes(
    w: &F32Weights,
    source: &Path,
    calibration: ArrayView4<'_, f32>,
    described: &str,
) -> Result<Vec<u8>> {
    let (n, c, h, wd) = calibration.dim();
    if n == 0 || (c, h, wd) != (3, 224, 224) {
        return Err(backend_err(format!(
            "calibration batch {:?}: expected [n ≥ 1, 3, 224, 224]",
            calibration.shape()
        )));
    }
    let mut samples = Samples::default();
    for part in calibration.axis_chunks_iter(ndarray::Axis(0), 4) {
        w.calibrate(part, &mut samples);
    }
    let ranges = samples.ranges(PERCENTILE);
    let weights = |source| Error::Weights {
        model: "efficientnet-lite0".into(),
        source,
    };
    let ckpt = crate::weights::Checkpoint::open(source).map_err(weights)?;
    let mut tensors: Vec<(String, TensorBytes<'_>)> = Vec::new();
    let mut quantized = Vec::new();
    for t in ckpt.tensors() {
        let name = t.name();
        let is_weight = name.ends_with("_conv.weight")
            || name.ends_with("_conv_stem.weight")
            || name.ends_with("_conv_head.weight")
            || name == "_fc.weight";
        if !is_weight {
            tensors.push((name.into(), TensorBytes::from_view(&t)));
            continue;
        }
        let shape = t.shape().to_vec();
        let rows = shape.first().copied().unwrap_or(1).max(1);
        let values = t.to_f32();
        let values = values.as_standard_layout();
        let flat = values.as_slice().expect("standard layout");
        let (q, scale) = quant::symmetric_rows(flat, flat.len() / rows);
        let conv = name.strip_suffix(".weight").unwrap_or(name);
        if let Some(mean) = samples.mean(conv) {
            let depthwise = conv.ends_with("_depthwise_conv");
            let b = bias_correction(flat, &q, &scale, &mean, depthwise);
            tensors.push((
                format!("{conv}.bias"),
                TensorBytes::new(
                    crate::DType::F32,
                    vec![rows],
                    bytemuck::cast_slice::<f32, u8>(&b).to_vec(),
                )
                .map_err(weights)?,
            ));
        }
        tensors.push((
            name.into(),
            TensorBytes::new(crate::DType::I8, shape, bytemuck::cast_vec::<i8, u8>(q))
                .map_err(weights)?,
        ));
        tensors.push((
            quant::scale_name(name),
            TensorBytes::new(
                crate::DType::F32,
                vec![rows],
                bytemuck::cast_slice::<f32, u8>(&scale).to_vec(),
            )
            .map_err(weights)?,
        ));
        quantized.push(name.to_string());
    }
    for (layer, r) in &ranges {
        tensors.push((
            range_name(layer),
            TensorBytes::new(crate::DType::F32, vec![2], bytemuck::cast_slice(r).to_vec())
                .map_err(weights)?,
        ));
    }
    let calibration = format!(
        "static: percentile {PERCENTILE} of the f32 activations (one value in {SAMPLE_EVERY}), \
         and the bias corrections' mean inputs, over {n} images: {described}"
    );
    let meta = quant::metadata(&ckpt, SCHEME, &calibration, &quantized);
    crate::weights::to_bytes(tensors, Some(meta)).map_err(weights)
}
