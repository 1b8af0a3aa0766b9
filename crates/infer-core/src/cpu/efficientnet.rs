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
    stem: Dense,
    blocks: Vec<Block>,
    head: Dense,
    fc: Dense,
    threads: usize,
    pool: Option<rayon::ThreadPool>,
}

impl std::fmt::Debug for EfficientNetLite0 {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EfficientNetLite0")
            .field("blocks", &self.net.blocks.len())
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
        let get = |name: &str| -> Result<ndarray::ArrayD<f32>> {
            Ok(ckpt
                .tensor(name)
                .map_err(|e| backend_err(e.to_string()))?
                .to_f32())
        };
        let get4 = |name: &str| -> Result<Array4<f32>> {
            get(name)?
                .into_dimensionality::<Ix4>()
                .map_err(|e| backend_err(format!("{name}: {e}")))
        };
        let conv_bn = |conv: &str, bn: &str| -> Result<(Array4<f32>, Array1<f32>)> {
            let mut weight = get4(&format!("{conv}.weight"))?;
            let p = |s: &str| {
                get(&format!("{bn}.{s}")).map(|a| a.into_dimensionality::<ndarray::Ix1>())
            };
            let (g, b, m, v) = (
                p("weight")?,
                p("bias")?,
                p("running_mean")?,
                p("running_var")?,
            );
            let (g, b, m, v) = match (g, b, m, v) {
                (Ok(g), Ok(b), Ok(m), Ok(v)) => (g, b, m, v),
                _ => return Err(backend_err(format!("{bn}: batch norm tensors must be 1-D"))),
            };
            if g.len() != weight.dim().0 {
                return Err(backend_err(format!(
                    "{bn}: {} channels for {conv}'s {}",
                    g.len(),
                    weight.dim().0
                )));
            }
            let bias = fold_batch_norm(&mut weight, g.view(), b.view(), m.view(), v.view(), BN_EPS);
            Ok((weight, bias))
        };
        let check = |name: &str, w: &Array4<f32>, want: (usize, usize, usize)| -> Result<()> {
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
            Ok(())
        };
        let dense = |conv: &str, bn: &str, cin: usize, k: usize| -> Result<Dense> {
            let (w, b) = conv_bn(conv, bn)?;
            check(conv, &w, (cin, k, k))?;
            Ok(Dense::conv(&w, b))
        };
        let stem = dense("_conv_stem", "_bn0", 3, 3)?;
        let mut blocks = Vec::new();
        let mut channels = stem.cout();
        for (repeats, kernel, stride, expand, cin, cout) in STAGES {
            for r in 0..repeats {
                let i = blocks.len();
                let p = format!("_blocks.{i}");
                let (cin, stride) = if r == 0 { (cin, stride) } else { (cout, 1) };
                if channels != cin {
                    return Err(backend_err(format!(
                        "{p}: {channels} channels in, not {cin}"
                    )));
                }
                let expand_conv = if expand != 1 {
                    Some(dense(
                        &format!("{p}._expand_conv"),
                        &format!("{p}._bn0"),
                        cin,
                        1,
                    )?)
                } else {
                    None
                };
                let mid = expand_conv.as_ref().map_or(cin, Dense::cout);
                let (dw, db) = conv_bn(&format!("{p}._depthwise_conv"), &format!("{p}._bn1"))?;
                check(&format!("{p}._depthwise_conv"), &dw, (1, kernel, kernel))?;
                if dw.dim().0 != mid {
                    return Err(backend_err(format!(
                        "{p}._depthwise_conv: {} channels, not {mid}",
                        dw.dim().0
                    )));
                }
                let project = dense(&format!("{p}._project_conv"), &format!("{p}._bn2"), mid, 1)?;
                channels = project.cout();
                blocks.push(Block {
                    expand: expand_conv,
                    depthwise: Conv::depthwise(&dw, db),
                    project,
                    kernel,
                    stride,
                    skip: stride == 1 && cin == cout,
                });
            }
        }
        let head = dense("_conv_head", "_bn1", channels, 1)?;
        let fc_weight = get("_fc.weight")?
            .into_dimensionality::<Ix2>()
            .map_err(|e| backend_err(format!("_fc.weight: {e}")))?;
        let fc_bias = get("_fc.bias")?
            .into_dimensionality::<ndarray::Ix1>()
            .map_err(|e| backend_err(format!("_fc.bias: {e}")))?;
        if fc_weight.dim() != (fc_bias.len(), head.cout()) {
            return Err(backend_err(format!(
                "_fc.weight: {:?}, expected [{}, {}]",
                fc_weight.shape(),
                fc_bias.len(),
                head.cout()
            )));
        }
        let fc = Dense {
            // PyTorch's [out, in] read as [in, out]
            weight: Packed::from_fn(head.cout(), fc_bias.len(), |i, o| fc_weight[[o, i]]),
            bias: fc_bias.to_vec(),
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
                shape: vec![batch(), Dim::Fixed(fc.cout())],
            }],
            runtime: RuntimeHint::Cpu,
            metadata: [("backend".to_string(), "cpu (native)".to_string())].into(),
        };
        Ok(EfficientNetLite0 {
            net: Arc::new(Net {
                descriptor,
                stem,
                blocks,
                head,
                fc,
                threads: 1,
                pool: None,
            }),
        })
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

    /// Images per forward pass: two per thread (see [`EfficientNetLite0::forward`]).
    pub fn pass_size(&self) -> usize {
        self.net.pass_size()
    }
}

/// One session's buffers: the activations between layers, and the fused blocks' strips,
/// one for each thread of the model (see [`mbconv`]).
struct Scratch {
    bufs: Buffers,
    strips: Vec<Mutex<Vec<f32>>>,
}

impl Scratch {
    fn new(threads: usize) -> Scratch {
        Scratch {
            bufs: Buffers::default(),
            strips: (0..threads.max(1)).map(|_| Mutex::default()).collect(),
        }
    }
}

impl Net {
    fn pass_size(&self) -> usize {
        2 * self.threads
    }

    fn forward(&self, x: ArrayView4<'_, f32>, scratch: &mut Scratch) -> Array2<f32> {
        let pass = self.pass_size();
        let n = x.dim().0;
        if n <= pass {
            return self.forward_pass(x, scratch);
        }
        let mut out = Array2::zeros((n, self.fc.cout()));
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

    fn forward_on(&self, x: ArrayView4<'_, f32>, scratch: &mut Scratch) -> Array2<f32> {
        let t = self.threads;
        let Scratch { bufs, strips } = scratch;
        let (n, c, h, w) = x.dim();
        let x = x.as_standard_layout();
        let pad = Pad::same(h, w, 3, 2);
        let (oh, ow) = Nhwc { n, h, w, c }.out(3, 2, pad);
        let mut cur = bufs.get(n * oh * ow * self.stem.cout());
        let mut shape = conv_nchw_to_nhwc(
            x.as_slice().expect("standard layout"),
            (n, c, h, w),
            &self.stem.weight,
            &self.stem.bias,
            3,
            2,
            pad,
            Act::Relu6,
            &mut cur,
            t,
        );
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
/// Buffers over [`Buffers::KEEP`] bytes are not kept between passes.
#[derive(Default)]
struct Buffers(Vec<Vec<f32>>);

/// A buffer lent by [`Buffers`]: its first `len` floats, stale contents.
struct Buf {
    v: Vec<f32>,
    len: usize,
}

impl std::ops::Deref for Buf {
    type Target = [f32];
    fn deref(&self) -> &[f32] {
        &self.v[..self.len]
    }
}

impl std::ops::DerefMut for Buf {
    fn deref_mut(&mut self) -> &mut [f32] {
        &mut self.v[..self.len]
    }
}

impl Buffers {
    const KEEP: usize = 64 << 20;

    /// `len` floats with unspecified (stale or zero) contents: the smallest kept buffer that
    /// holds them, else the largest, grown (only the growth is zeroed).
    fn get(&mut self, len: usize) -> Buf {
        let fit = (0..self.0.len())
            .filter(|&i| self.0[i].len() >= len)
            .min_by_key(|&i| self.0[i].len())
            .or_else(|| (0..self.0.len()).max_by_key(|&i| self.0[i].len()));
        let mut v = fit.map_or_else(Vec::new, |i| self.0.swap_remove(i));
        if v.len() < len {
            v.resize(len, 0.0);
        }
        Buf { v, len }
    }

    fn put(&mut self, b: Buf) {
        self.0.push(b.v);
    }

    /// Drops the buffers too large to keep between passes.
    fn trim(&mut self) {
        self.0.retain(|v| v.len() * 4 <= Self::KEEP);
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
