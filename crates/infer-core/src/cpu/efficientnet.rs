//! EfficientNet-Lite0 (ImageNet, 1000 classes) from the bundled PyTorch checkpoint.
//!
//! Architecture and key names follow PyPI `efficientnet-lite-pytorch` 0.1.0: TensorFlow
//! `SAME` padding, ReLU6, no squeeze-and-excitation, stem 32 and head 1280 channels, the B0
//! block table. Batch norms (ε = 1e-3) are folded into the convolutions at load, so the
//! weights are copied once into folded f32 arrays (about 19 MB): folding changes them.

use std::path::Path;
use std::sync::Arc;

use ndarray::{Array1, Array2, Array4, ArrayView4, Ix2, Ix4};

use super::kernels::{
    Pad, conv2d, depthwise_conv2d, fold_batch_norm, global_avg_pool, linear, relu6,
};
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

/// A convolution with its batch norm folded in.
struct Conv {
    weight: Array4<f32>,
    bias: Array1<f32>,
}

struct Block {
    expand: Option<Conv>,
    depthwise: Conv,
    project: Conv,
    kernel: usize,
    stride: usize,
    skip: bool,
}

/// EfficientNet-Lite0: a [`Plan`] (input `images` `[batch, 3, 224, 224]` f32, ImageNet
/// mean/std normalised; output `logits` `[batch, 1000]`).
pub struct EfficientNetLite0 {
    descriptor: ModelDescriptor,
    stem: Conv,
    blocks: Vec<Block>,
    head: Conv,
    fc_weight: Array2<f32>,
    fc_bias: Array1<f32>,
}

impl std::fmt::Debug for EfficientNetLite0 {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EfficientNetLite0")
            .field("blocks", &self.blocks.len())
            .finish_non_exhaustive()
    }
}

fn backend_err(message: String) -> Error {
    Error::Backend {
        model: "efficientnet-lite0".into(),
        message,
    }
}

impl EfficientNetLite0 {
    /// Loads the checkpoint (the bundled legacy `.pth`, or any format `weights` reads with
    /// the same keys) and folds its batch norms.
    ///
    /// # Errors
    /// [`Error::Backend`] naming a missing tensor or a wrong shape.
    pub fn load(path: impl AsRef<Path>) -> Result<Self> {
        let ckpt = crate::weights::Checkpoint::open(path.as_ref())
            .map_err(|e| backend_err(e.to_string()))?;
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
        let conv_bn = |conv: &str, bn: &str| -> Result<Conv> {
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
            Ok(Conv { weight, bias })
        };
        let stem = conv_bn("_conv_stem", "_bn0")?;
        let mut blocks = Vec::new();
        for (repeats, kernel, stride, expand, cin, cout) in STAGES {
            for r in 0..repeats {
                let i = blocks.len();
                let p = format!("_blocks.{i}");
                let (cin, stride) = if r == 0 { (cin, stride) } else { (cout, 1) };
                blocks.push(Block {
                    expand: if expand != 1 {
                        Some(conv_bn(&format!("{p}._expand_conv"), &format!("{p}._bn0"))?)
                    } else {
                        None
                    },
                    depthwise: conv_bn(&format!("{p}._depthwise_conv"), &format!("{p}._bn1"))?,
                    project: conv_bn(&format!("{p}._project_conv"), &format!("{p}._bn2"))?,
                    kernel,
                    stride,
                    skip: stride == 1 && cin == cout,
                });
            }
        }
        let head = conv_bn("_conv_head", "_bn1")?;
        let fc_weight = get("_fc.weight")?
            .into_dimensionality::<Ix2>()
            .map_err(|e| backend_err(format!("_fc.weight: {e}")))?;
        let fc_bias = get("_fc.bias")?
            .into_dimensionality::<ndarray::Ix1>()
            .map_err(|e| backend_err(format!("_fc.bias: {e}")))?;
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
                shape: vec![batch(), Dim::Fixed(1000)],
            }],
            runtime: RuntimeHint::Cpu,
            metadata: [("backend".to_string(), "cpu (native)".to_string())].into(),
        };
        Ok(EfficientNetLite0 {
            descriptor,
            stem,
            blocks,
            head,
            fc_weight,
            fc_bias,
        })
    }

    /// Logits for a normalised `[n, 3, 224, 224]` batch.
    pub fn forward(&self, x: ArrayView4<'_, f32>) -> Array2<f32> {
        let (_, _, h, w) = x.dim();
        let mut x = conv2d(
            x,
            &self.stem.weight,
            &self.stem.bias,
            2,
            Pad::same(h, w, 3, 2),
        );
        relu6(&mut x);
        for b in &self.blocks {
            let input = x;
            // Block 0 has no expansion: its depthwise convolution reads the input itself.
            let expanded = b.expand.as_ref().map(|e| {
                let mut y = conv2d(input.view(), &e.weight, &e.bias, 1, Pad::NONE);
                relu6(&mut y);
                y
            });
            let y = expanded.as_ref().unwrap_or(&input);
            let (_, _, h, w) = y.dim();
            let mut y = depthwise_conv2d(
                y.view(),
                &b.depthwise.weight,
                &b.depthwise.bias,
                b.stride,
                Pad::same(h, w, b.kernel, b.stride),
            );
            relu6(&mut y);
            let mut out = conv2d(y.view(), &b.project.weight, &b.project.bias, 1, Pad::NONE);
            if b.skip {
                out += &input;
            }
            x = out;
        }
        let mut x = conv2d(x.view(), &self.head.weight, &self.head.bias, 1, Pad::NONE);
        relu6(&mut x);
        let pooled = global_avg_pool(x.view());
        linear(pooled.view(), self.fc_weight.view(), self.fc_bias.view())
    }
}

impl Plan for Arc<EfficientNetLite0> {
    fn descriptor(&self) -> &ModelDescriptor {
        &self.descriptor
    }

    fn device(&self) -> Device {
        Device::Cpu
    }

    fn session(&self) -> Result<Box<dyn Session>> {
        Ok(Box::new(EfficientNetSession {
            model: Arc::clone(self),
            _context: Device::Cpu.open()?,
        }))
    }
}

struct EfficientNetSession {
    model: Arc<EfficientNetLite0>,
    _context: DeviceContext,
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
        Ok(vec![Tensor::F32(self.model.forward(x).into_dyn())])
    }
}
