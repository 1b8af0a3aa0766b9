//! EfficientNet-Lite0 (ImageNet, 1000 classes) from the bundled PyTorch checkpoint.
//!
//! Architecture and key names follow PyPI `efficientnet-lite-pytorch` 0.1.0: TensorFlow
//! `SAME` padding, ReLU6, no squeeze-and-excitation, stem 32 and head 1280 channels, the B0
//! block table. Batch norms (ε = 1e-3) are folded into the convolutions at load, so the
//! weights are copied once into folded, channels-last f32 arrays (about 19 MB): folding
//! changes their values and NHWC their order.

use std::path::Path;
use std::sync::{Arc, Mutex};

use ndarray::{Array1, Array2, Array4, ArrayView4, Ix2, Ix4};

use super::epilogue::Act;
use super::kernels::{Pad, fold_batch_norm};
use super::nhwc::{MbConv, Nhwc, conv_nchw_to_nhwc, depthwise, global_avg_pool, mbconv, pointwise};
use super::packed::Packed;
use crate::backend::{Plan, Session};

#[path = "efficientnet_int8.rs"]
mod int8;
use crate::{
    DType, Device, DeviceContext, Dim, Error, ModelDescriptor, Result, RuntimeHint, Tensor,
    TensorSpec, TensorView,
};

const BN_EPS: f32 = 1e-3;
/// (repeats, kernel, stride, expand ratio, input channels, output channels) per stage.
const STAGES: [(usize, usize, usize, usize, usize, usize); 7] = [
    (1, 3, 1, 1, 32, 16),
    (2, 3, 2, 6, 16, 24),
    (2, 5, 2, 6, 24, 40),
    (3, 3, 2, 6, 40, 80),
    (3, 5, 1, 6, 80, 112),
    (4, 5, 2, 6, 112, 192),
    (1, 3, 1, 6, 192, 320),
];

/// A dense or 1×1 convolution (or the linear layer) with its batch norm folded in, as a
/// GEMM weight `[k·k·cin, cout]` packed for this CPU.
struct Dense {
    weight: Packed,
    bias: Vec<f32>,
}

impl Dense {
    /// From a folded `[cout, cin, k, k]` weight to `[(ky, kx, ci), cout]`.
    fn conv(weight: &Array4<f32>, bias: Array1<f32>) -> Dense {
        let (cout, cin, kh, kw) = weight.dim();
        // row (ky·kw + kx)·cin + ci, column co: packed straight from the folded tensor
        let at = |r: usize, co: usize| weight[[co, r % cin, r / cin / kw, r / cin % kw]];
        Dense {
            weight: Packed::from_fn(kh * kw * cin, cout, at),
            bias: bias.to_vec(),
        }
    }

    fn cout(&self) -> usize {
        self.bias.len()
    }

    /// This as the stem (3×3, stride 2, `SAME`, ReLU6) over the NCHW image `x`, into the
    /// buffer `get` lends for the length the output needs.
    fn stem<B: std::ops::DerefMut<Target = [f32]>>(
        &self,
        x: ArrayView4<'_, f32>,
        threads: usize,
        get: impl FnOnce(usize) -> B,
    ) -> (B, Nhwc) {
        let (n, c, h, w) = x.dim();
        let x = x.as_standard_layout();
        let pad = Pad::same(h, w, 3, 2);
        let (oh, ow) = Nhwc { n, h, w, c }.out(3, 2, pad);
        let mut out = get(n * oh * ow * self.cout());
        let shape = conv_nchw_to_nhwc(
            x.as_slice().expect("standard layout"),
            (n, c, h, w),
            &self.weight,
            &self.bias,
            3,
            2,
            pad,
            Act::Relu6,
            &mut out,
            threads,
        );
        (out, shape)
    }
}

/// A depthwise convolution with its batch norm folded in, as `[k, k, c]` taps.
struct Conv {
    weight: Vec<f32>,
    bias: Vec<f32>,
}

impl Conv {
    /// From a folded `[c, 1, k, k]` weight to `[ky, kx, c]`.
    fn depthwise(weight: &Array4<f32>, bias: Array1<f32>) -> Conv {
        let w = weight.view().permuted_axes([1, 2, 3, 0]);
        Conv {
            weight: w.iter().copied().collect(),
            bias: bias.to_vec(),
        }
    }
}

/// Where a block sits in the network and what it does ([`specs`]).
struct Spec {
    /// `_blocks.{i}`.
    prefix: String,
    cin: usize,
    cout: usize,
    /// The expansion ratio (1: no expansion convolution).
    expand: usize,
    kernel: usize,
    stride: usize,
}

impl Spec {
    /// Whether the block adds its input to its output.
    fn skip(&self) -> bool {
        self.stride == 1 && self.cin == self.cout
    }

    /// Checks that the block's projection makes `channels`, its output.
    fn check_out(&self, channels: usize) -> Result<()> {
        if channels == self.cout {
            Ok(())
        } else {
            Err(backend_err(format!(
                "{}: {channels} channels out, not {}",
                self.prefix, self.cout
            )))
        }
    }

    /// Checks that the previous layer's `channels` are this block's input.
    fn check_in(&self, channels: usize) -> Result<()> {
        if channels == self.cin {
            Ok(())
        } else {
            Err(backend_err(format!(
                "{}: {channels} channels in, not {}",
                self.prefix, self.cin
            )))
        }
    }
}

/// The sixteen blocks, in order ([`STAGES`] unrolled).
fn specs() -> Vec<Spec> {
    let mut out = Vec::new();
    for (repeats, kernel, stride, expand, cin, cout) in STAGES {
        for r in 0..repeats {
            let (cin, stride) = if r == 0 { (cin, stride) } else { (cout, 1) };
            out.push(Spec {
                prefix: format!("_blocks.{}", out.len()),
                cin,
                cout,
                expand,
                kernel,
                stride,
            });
        }
    }
    out
}

struct Block {
    expand: Option<Dense>,
    depthwise: Conv,
    project: Dense,
    kernel: usize,
    stride: usize,
    skip: bool,
}

/// EfficientNet-Lite0: a [`Plan`] (input `images` `[batch, 3, 224, 224]` f32, ImageNet
/// mean/std normalised; output `logits` `[batch, 1000]`).
///
/// It runs channels-last ([`nhwc`](super::nhwc)) on `threads` threads: 1 (the default) runs
/// on the caller's thread alone; more runs on a rayon pool of that size owned by the model.
///
/// A cheap handle (clones share the weights): share it, or an `Arc<dyn Plan>` of it, across
/// threads. Each [`Session`] owns its activation buffers, so a worker that keeps its session
/// allocates nothing per batch once warm; [`forward`](Self::forward) is the one-off
/// convenience and brings its own buffers each call.
#[derive(Clone)]
pub struct EfficientNetLite0 {
    net: Arc<Net>,
}

/// The weights, the descriptor and the thread pool: immutable once loaded.
struct Net {
    descriptor: ModelDescriptor,
    weights: Weights,
    /// The checkpoint it was loaded from (the source of an int8 checkpoint).
    source: std::path::PathBuf,
    threads: usize,
    pool: Option<rayon::ThreadPool>,
}

/// The weights in either precision.
enum Weights {
    F32(F32Weights),
    Int8(int8::Int8Net),
}

/// The f32 network, batch norms folded, channels-last.
struct F32Weights {
    stem: Dense,
    blocks: Vec<Block>,
    head: Dense,
    fc: Dense,
}

impl std::fmt::Debug for EfficientNetLite0 {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EfficientNetLite0")
            .field("int8", &self.is_int8())
            .field("threads", &self.net.threads)
            .finish_non_exhaustive()
    }
}

fn backend_err(message: String) -> Error {
    Error::Backend {
        model: "efficientnet-lite0".into(),
        message,
        source: None,
    }
}

/// Multiplies each row (first-axis slice) of `w` by its entry of `s`.
fn scale_rows<D: ndarray::RemoveAxis>(w: &mut ndarray::Array<f32, D>, s: &[f32]) {
    for (mut row, s) in w.outer_iter_mut().zip(s) {
        row.mapv_inplace(|x| x * s);
    }
}

/// Reads a checkpoint's tensors by name, with errors naming them.
struct Reader<'a>(&'a crate::weights::Checkpoint);

impl Reader<'_> {
    fn get(&self, name: &str) -> Result<ndarray::ArrayD<f32>> {
        Ok(self
            .0
            .tensor(name)
            .map_err(|e| backend_err(e.to_string()))?
            .to_f32())
    }

    fn get1(&self, name: &str) -> Result<Array1<f32>> {
        self.get(name)?
            .into_dimensionality::<ndarray::Ix1>()
            .map_err(|e| backend_err(format!("{name}: {e}")))
    }

    /// A convolution's weight `[cout, cin, k, k]`, checked against `want` = (cin, k, k);
    /// an int8 one dequantized (times its `_scale`).
    fn conv(&self, conv: &str, want: (usize, usize, usize)) -> Result<Array4<f32>> {
        let name = format!("{conv}.weight");
        let w = self
            .get(&name)?
            .into_dimensionality::<Ix4>()
            .map_err(|e| backend_err(format!("{name}: {e}")))?;
        let (_, cin, kh, kw) = w.dim();
        if (cin, kh, kw) != want {
            return Err(backend_err(format!(
                "{name}: weight {:?}, expected [_, {}, {}, {}]",
                w.shape(),
                want.0,
                want.1,
                want.2
            )));
        }
        self.dequantize(&name, w)
    }

    /// Weight `name` (`w`, read as stored) times its `_scale` per row where the checkpoint
    /// has one (an int8 weight), else as it is.
    fn dequantize<D: ndarray::RemoveAxis>(
        &self,
        name: &str,
        mut w: ndarray::Array<f32, D>,
    ) -> Result<ndarray::Array<f32, D>> {
        if self.0.get(&super::quant::scale_name(name)).is_some() {
            let scale = self.scales(name, w.len_of(ndarray::Axis(0)))?;
            scale_rows(&mut w, &scale);
        }
        Ok(w)
    }

    /// The `_scale` of int8 weight `name`: one per row of its `rows`.
    fn scales(&self, name: &str, rows: usize) -> Result<Vec<f32>> {
        let scale_name = super::quant::scale_name(name);
        let scale = self.get1(&scale_name)?;
        if scale.len() != rows {
            return Err(backend_err(format!(
                "{scale_name}: {} scales for {rows} output channels",
                scale.len()
            )));
        }
        Ok(scale.to_vec())
    }

    /// Batch norm `bn` of `channels`: the factor `γ/√(σ²+ε)` and the folded bias `β − μ·`
    /// that factor, per channel (as [`fold_batch_norm`]).
    fn batch_norm(&self, bn: &str, channels: usize) -> Result<(Array1<f32>, Array1<f32>)> {
        let p = |s: &str| self.get1(&format!("{bn}.{s}"));
        let (g, b, m, v) = (
            p("weight")?,
            p("bias")?,
            p("running_mean")?,
            p("running_var")?,
        );
        if [&g, &b, &m, &v].iter().any(|a| a.len() != channels) {
            return Err(backend_err(format!(
                "{bn}: batch norm tensors of {} channels for {channels}",
                g.len()
            )));
        }
        let mut unit = Array4::<f32>::ones((channels, 1, 1, 1));
        let bias = fold_batch_norm(&mut unit, g.view(), b.view(), m.view(), v.view(), BN_EPS);
        Ok((
            unit.into_shape_with_order(channels).expect("c × 1 × 1 × 1"),
            bias,
        ))
    }

    /// `bias` plus `conv`'s own bias (an int8 checkpoint's bias correction; PyTorch's
    /// `Conv2d.bias`, added before the batch norm, so scaled by its `factor`) where the
    /// checkpoint has one.
    fn conv_bias(
        &self,
        conv: &str,
        factor: &Array1<f32>,
        bias: Array1<f32>,
    ) -> Result<Array1<f32>> {
        let name = format!("{conv}.bias");
        if self.0.get(&name).is_none() {
            return Ok(bias);
        }
        let own = self.get1(&name)?;
        if own.len() != bias.len() {
            return Err(backend_err(format!(
                "{name}: {} values for {} output channels",
                own.len(),
                bias.len()
            )));
        }
        Ok(bias + &(own * factor))
    }

    /// Convolution `conv` with batch norm `bn` folded in.
    fn conv_bn(
        &self,
        conv: &str,
        bn: &str,
        want: (usize, usize, usize),
    ) -> Result<(Array4<f32>, Array1<f32>)> {
        let mut w = self.conv(conv, want)?;
        let (factor, bias) = self.batch_norm(bn, w.dim().0)?;
        let bias = self.conv_bias(conv, &factor, bias)?;
        scale_rows(&mut w, factor.as_slice().expect("a fresh 1-D array"));
        Ok((w, bias))
    }

    /// The classifier `_fc`: weight `[classes, features]` and bias, checked.
    fn fc(&self, features: usize) -> Result<(Array2<f32>, Array1<f32>)> {
        let w = self
            .get("_fc.weight")?
            .into_dimensionality::<Ix2>()
            .map_err(|e| backend_err(format!("_fc.weight: {e}")))?;
        let w = self.dequantize("_fc.weight", w)?;
        let b = self.get1("_fc.bias")?;
        if w.dim() != (b.len(), features) {
            return Err(backend_err(format!(
                "_fc.weight: {:?}, expected [{}, {features}]",
                w.shape(),
                b.len(),
            )));
        }
        Ok((w, b))
    }
}

impl F32Weights {
    fn load(read: &Reader<'_>) -> Result<F32Weights> {
        let dense = |conv: &str, bn: &str, cin: usize, k: usize| -> Result<Dense> {
            let (w, b) = read.conv_bn(conv, bn, (cin, k, k))?;
            Ok(Dense::conv(&w, b))
        };
        let stem = dense("_conv_stem", "_bn0", 3, 3)?;
        let mut blocks = Vec::new();
        let mut channels = stem.cout();
        for spec in specs() {
            let Spec {
                prefix: p,
                cin,
                kernel,
                stride,
                ..
            } = &spec;
            spec.check_in(channels)?;
            let expand = (spec.expand != 1)
                .then(|| dense(&format!("{p}._expand_conv"), &format!("{p}._bn0"), *cin, 1))
                .transpose()?;
            let mid = expand.as_ref().map_or(*cin, Dense::cout);
            let (dw, db) = read.conv_bn(
                &format!("{p}._depthwise_conv"),
                &format!("{p}._bn1"),
                (1, *kernel, *kernel),
            )?;
            if dw.dim().0 != mid {
                return Err(backend_err(format!(
                    "{p}._depthwise_conv: {} channels, not {mid}",
                    dw.dim().0
                )));
            }
            let project = dense(&format!("{p}._project_conv"), &format!("{p}._bn2"), mid, 1)?;
            channels = project.cout();
            spec.check_out(channels)?;
            blocks.push(Block {
                expand,
                depthwise: Conv::depthwise(&dw, db),
                project,
                kernel: *kernel,
                stride: *stride,
                skip: spec.skip(),
            });
        }
        let head = dense("_conv_head", "_bn1", channels, 1)?;
        let (fc_weight, fc_bias) = read.fc(head.cout())?;
        let fc = Dense {
            // PyTorch's [out, in] read as [in, out]
            weight: Packed::from_fn(head.cout(), fc_bias.len(), |i, o| fc_weight[[o, i]]),
            bias: fc_bias.to_vec(),
        };
        Ok(F32Weights {
            stem,
            blocks,
            head,
            fc,
        })
    }
}

impl EfficientNetLite0 {
    /// Loads the checkpoint (the bundled legacy `.pth`, or any format `weights` reads with
    /// the same keys), folds its batch norms and lays the weights out channels-last. Runs on
    /// one thread until [`with_threads`](Self::with_threads).
    ///
    /// # Errors
    /// [`Error::Weights`] when the checkpoint cannot be opened or read (it names the file);
    /// [`Error::Backend`] naming a missing tensor or a wrong shape.
    pub fn load(path: impl AsRef<Path>) -> Result<Self> {
        let ckpt =
            crate::weights::Checkpoint::open(path.as_ref()).map_err(|source| Error::Weights {
                model: "efficientnet-lite0".into(),
                source,
            })?;
        Self::from_checkpoint(&ckpt)
    }

    /// [`load`](Self::load) from a checkpoint already open (the weights are copied out:
    /// folded and repacked, so `ckpt` can be dropped afterwards).
    ///
    /// # Errors
    /// [`Error::Backend`] naming a missing tensor or a wrong shape.
    pub fn from_checkpoint(ckpt: &crate::weights::Checkpoint) -> Result<Self> {
        let read = Reader(ckpt);
        let (weights, precision) = if super::quant::is_int8(ckpt).map_err(backend_err)? {
            (Weights::Int8(int8::Int8Net::load(&read)?), int8::PRECISION)
        } else {
            (Weights::F32(F32Weights::load(&read)?), "fp32")
        };
        let classes = match &weights {
            Weights::F32(w) => w.fc.cout(),
            Weights::Int8(q) => q.classes(),
        };
        let batch = || Dim::Dynamic("batch".into());
        let descriptor = ModelDescriptor {
            name: "efficientnet-lite0".into(),
            version: semver::Version::new(1, 0, 0),
            inputs: vec![TensorSpec {
                name: "images".into(),
                dtype: DType::F32,
                shape: vec![batch(), Dim::Fixed(3), Dim::Fixed(224), Dim::Fixed(224)],
            }],
            outputs: vec![TensorSpec {
                name: "logits".into(),
                dtype: DType::F32,
                shape: vec![batch(), Dim::Fixed(classes)],
            }],
            runtime: RuntimeHint::Cpu,
            metadata: [
                ("backend".to_string(), "cpu (native)".to_string()),
                ("precision".to_string(), precision.to_string()),
            ]
            .into(),
        };
        Ok(EfficientNetLite0 {
            net: Arc::new(Net {
                descriptor,
                weights,
                source: ckpt.path().to_path_buf(),
                threads: 1,
                pool: None,
            }),
        })
    }

    /// Whether the model runs in int8 (it was loaded from an int8 checkpoint).
    pub fn is_int8(&self) -> bool {
        matches!(self.net.weights, Weights::Int8(_))
    }

    /// Writes this (f32) model's int8 checkpoint to `path`, its activation ranges
    /// calibrated on `calibration` (a normalised `[n, 3, 224, 224]` batch of real photos;
    /// `described` says which, recorded in the metadata). The format: [`quant`](super::quant);
    /// every convolution's and the classifier's weight int8 per output channel, batch norms
    /// and biases f32 as in the source, and one `<layer>.activation_range` (`F32 [2]`: the
    /// real range its `u8` output covers) per quantized activation, the 99.99th percentile
    /// of the values the f32 network produced there. Load it with [`load`](Self::load).
    /// Returns the bytes written.
    ///
    /// # Errors
    /// [`Error::Backend`] when the model is int8 already, the batch is empty or not `[n, 3,
    /// 224, 224]`, or naming `path` when the file cannot be written; [`Error::Weights`] when
    /// the source checkpoint cannot be read again or the writer refuses the tensors.
    pub fn save_int8(
        &self,
        path: impl AsRef<Path>,
        calibration: ArrayView4<'_, f32>,
        described: &str,
    ) -> Result<u64> {
        let Weights::F32(w) = &self.net.weights else {
            return Err(backend_err(format!(
                "{}: already int8; quantize the f32 checkpoint",
                self.net.source.display()
            )));
        };
        let bytes = int8::checkpoint_bytes(w, &self.net.source, calibration, described)?;
        super::quant::write_file(path.as_ref(), &bytes).map_err(backend_err)?;
        Ok(bytes.len() as u64)
    }

    /// Runs on `threads` threads (0 is taken as 1): 1 on the caller's thread, more on a
    /// rayon pool of exactly that size owned by the model.
    ///
    /// # Errors
    /// [`Error::Backend`] when the pool's threads cannot be started, or when the model is
    /// already shared (a clone of it exists).
    pub fn with_threads(mut self, threads: usize) -> Result<Self> {
        let threads = threads.max(1);
        let pool = super::thread_pool(threads, "efficientnet").map_err(backend_err)?;
        let net = super::unshared(&mut self.net, "efficientnet-lite0", "with_threads")?;
        net.pool = pool;
        net.threads = threads;
        Ok(self)
    }

    /// Serves under another name and version (its descriptor's; default: the model's own
    /// name, 1.0.0).
    ///
    /// # Errors
    /// [`Error::Backend`] when the model is already shared (a clone of it exists).
    pub fn with_name(mut self, name: impl Into<String>, version: semver::Version) -> Result<Self> {
        let net = super::unshared(&mut self.net, "efficientnet-lite0", "with_name")?;
        net.descriptor.name = name.into();
        net.descriptor.version = version;
        Ok(self)
    }

    /// The number of threads a forward pass uses.
    pub fn threads(&self) -> usize {
        self.net.threads
    }

    /// Logits for a normalised `[n, 3, 224, 224]` batch.
    ///
    /// A batch runs as passes of at most [`EfficientNetLite0::pass_size`] images, one after
    /// another: activations stay in cache-sized buffers and memory stays bounded whatever
    /// the batch (the pass sizes measured: BENCHMARKS.md, "Design measurements").
    ///
    /// This brings fresh activation buffers each call (megabytes, faulted in anew); a
    /// [`Session`] (from [`Plan::session`]) keeps its own between calls.
    pub fn forward(&self, x: ArrayView4<'_, f32>) -> Array2<f32> {
        self.net.forward(x, &mut Scratch::new(self.net.threads))
    }

    /// Images per forward pass: two per thread in f32, one in int8 (see
    /// [`EfficientNetLite0::forward`]).
    pub fn pass_size(&self) -> usize {
        self.net.pass_size()
    }
}

/// One session's buffers: the activations between layers, and the fused blocks' strips,
/// one for each thread of the model (see [`mbconv`]).
struct Scratch {
    bufs: Buffers<f32>,
    /// The int8 network's `u8` activations.
    bytes: Buffers<u8>,
    strips: Vec<Mutex<Vec<f32>>>,
}

impl Scratch {
    fn new(threads: usize) -> Scratch {
        Scratch {
            bufs: Buffers::default(),
            bytes: Buffers::default(),
            strips: (0..threads.max(1)).map(|_| Mutex::default()).collect(),
        }
    }
}

impl Net {
    fn pass_size(&self) -> usize {
        match self.weights {
            Weights::F32(_) => 2 * self.threads,
            // (one image per thread: with two, batch 32 ran 15 % slower, measured)
            Weights::Int8(_) => self.threads,
        }
    }

    fn forward(&self, x: ArrayView4<'_, f32>, scratch: &mut Scratch) -> Array2<f32> {
        let pass = self.pass_size();
        let n = x.dim().0;
        if n <= pass {
            return self.forward_pass(x, scratch);
        }
        let mut out = Array2::zeros((n, self.classes()));
        for (i, part) in x.axis_chunks_iter(ndarray::Axis(0), pass).enumerate() {
            let at = i * pass;
            out.slice_mut(ndarray::s![at..at + part.dim().0, ..])
                .assign(&self.forward_pass(part, scratch));
        }
        out
    }

    fn forward_pass(&self, x: ArrayView4<'_, f32>, scratch: &mut Scratch) -> Array2<f32> {
        match &self.pool {
            Some(pool) => pool.install(|| self.forward_on(x, scratch)),
            None => self.forward_on(x, scratch),
        }
    }

    fn classes(&self) -> usize {
        match &self.weights {
            Weights::F32(w) => w.fc.cout(),
            Weights::Int8(q) => q.classes(),
        }
    }

    fn forward_on(&self, x: ArrayView4<'_, f32>, scratch: &mut Scratch) -> Array2<f32> {
        match &self.weights {
            Weights::F32(w) => w.forward(x, scratch, self.threads),
            Weights::Int8(q) => q.forward(x, scratch, self.threads),
        }
    }
}

impl F32Weights {
    fn forward(&self, x: ArrayView4<'_, f32>, scratch: &mut Scratch, t: usize) -> Array2<f32> {
        let Scratch { bufs, strips, .. } = scratch;
        let n = x.dim().0;
        let (mut cur, mut shape) = self.stem.stem(x, t, |len| bufs.get(len));
        for b in &self.blocks {
            let pad = Pad::same(shape.h, shape.w, b.kernel, b.stride);
            let (oh, ow) = shape.out(b.kernel, b.stride, pad);
            let out_shape = Nhwc {
                n: shape.n,
                h: oh,
                w: ow,
                c: b.project.cout(),
            };
            let mut out = bufs.get(out_shape.len());
            match &b.expand {
                // expansion, depthwise and projection fused, strip by strip
                Some(e) => {
                    let block = MbConv {
                        expand: (&e.weight, &e.bias),
                        depthwise: (&b.depthwise.weight, &b.depthwise.bias),
                        k: b.kernel,
                        stride: b.stride,
                        project: (&b.project.weight, &b.project.bias),
                        residual: b.skip,
                    };
                    mbconv(&cur, shape, &block, &mut out, t, strips);
                }
                // block 0 has no expansion: its depthwise convolution reads the input itself
                None => {
                    let mut y = bufs.get(shape.n * oh * ow * shape.c);
                    depthwise(
                        &cur,
                        shape,
                        &b.depthwise.weight,
                        &b.depthwise.bias,
                        b.kernel,
                        b.stride,
                        pad,
                        Act::Relu6,
                        &mut y,
                        t,
                    );
                    let residual = b.skip.then_some(&*cur);
                    pointwise(
                        &y,
                        &b.project.weight,
                        &b.project.bias,
                        Act::Identity,
                        residual,
                        &mut out,
                        t,
                    );
                    bufs.put(y);
                }
            }
            bufs.put(std::mem::replace(&mut cur, out));
            shape = out_shape;
        }
        let head_shape = Nhwc {
            c: self.head.cout(),
            ..shape
        };
        let mut y = bufs.get(head_shape.len());
        pointwise(
            &cur,
            &self.head.weight,
            &self.head.bias,
            Act::Relu6,
            None,
            &mut y,
            t,
        );
        let pooled = global_avg_pool(&y, head_shape);
        bufs.put(y);
        bufs.put(cur);
        let mut logits = vec![0.0; n * self.fc.cout()];
        pointwise(
            &pooled,
            &self.fc.weight,
            &self.fc.bias,
            Act::Identity,
            None,
            &mut logits,
            t,
        );
        bufs.trim();
        Array2::from_shape_vec((n, self.fc.cout()), logits).expect("n × classes")
    }
}

/// Activation buffers reused from one layer and one forward pass to the next, so their
/// memory is neither allocated nor zeroed again (every kernel overwrites its whole output).
/// Buffers over [`KEEP`] bytes are not kept between passes.
struct Buffers<T>(Vec<Vec<T>>);

impl<T> Default for Buffers<T> {
    fn default() -> Self {
        Buffers(Vec::new())
    }
}

/// A buffer lent by [`Buffers`]: its first `len` elements, stale contents.
struct Buf<T> {
    v: Vec<T>,
    len: usize,
}

impl<T> std::ops::Deref for Buf<T> {
    type Target = [T];
    fn deref(&self) -> &[T] {
        &self.v[..self.len]
    }
}

impl<T> std::ops::DerefMut for Buf<T> {
    fn deref_mut(&mut self) -> &mut [T] {
        &mut self.v[..self.len]
    }
}

/// Bytes of buffers [`Buffers`] keeps between passes.
const KEEP: usize = 64 << 20;

impl<T: Copy + Default> Buffers<T> {
    /// `len` elements with unspecified (stale or zero) contents: the smallest kept buffer
    /// that holds them, else the largest, grown (only the growth is zeroed).
    fn get(&mut self, len: usize) -> Buf<T> {
        let fit = (0..self.0.len())
            .filter(|&i| self.0[i].len() >= len)
            .min_by_key(|&i| self.0[i].len())
            .or_else(|| (0..self.0.len()).max_by_key(|&i| self.0[i].len()));
        let mut v = fit.map_or_else(Vec::new, |i| self.0.swap_remove(i));
        if v.len() < len {
            v.resize(len, T::default());
        }
        Buf { v, len }
    }

    fn put(&mut self, b: Buf<T>) {
        self.0.push(b.v);
    }

    /// Drops the buffers too large to keep between passes.
    fn trim(&mut self) {
        self.0
            .retain(|v| std::mem::size_of_val(v.as_slice()) <= KEEP);
    }
}

impl Plan for EfficientNetLite0 {
    fn descriptor(&self) -> &ModelDescriptor {
        &self.net.descriptor
    }

    fn device(&self) -> Device {
        Device::Cpu
    }

    fn session(&self) -> Result<Box<dyn Session>> {
        Ok(Box::new(EfficientNetSession {
            model: Arc::clone(&self.net),
            scratch: Scratch::new(self.net.threads),
            _context: Device::Cpu.open()?,
        }))
    }
}

/// A worker's session: the shared weights, its own activation buffers, its device context.
struct EfficientNetSession {
    model: Arc<Net>,
    scratch: Scratch,
    _context: DeviceContext,
}

impl std::fmt::Debug for EfficientNetSession {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EfficientNetSession")
            .field("model", &self.model.descriptor.name)
            .field("buffers", &self.scratch.bufs.0.len())
            .finish_non_exhaustive()
    }
}

impl Session for EfficientNetSession {
    fn descriptor(&self) -> &ModelDescriptor {
        &self.model.descriptor
    }

    fn run(&mut self, inputs: &[(&str, TensorView<'_>)]) -> Result<Vec<Tensor>> {
        let (ordered, _) = self.model.descriptor.validate(inputs)?;
        let TensorView::F32(x) = ordered[0] else {
            unreachable!("validated as F32")
        };
        let x = x
            .view()
            .into_dimensionality::<Ix4>()
            .map_err(|e| backend_err(e.to_string()))?;
        let logits = self.model.forward(x, &mut self.scratch);
        Ok(vec![Tensor::F32(logits.into_dyn())])
    }
}
