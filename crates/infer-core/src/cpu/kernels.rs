//! NCHW f32 kernels: convolution (im2col + GEMM), depthwise convolution, ReLU6, global
//! average pooling, linear layers, and batch-norm folding.

use ndarray::linalg::general_mat_mul;
use ndarray::{Array1, Array2, Array4, ArrayView1, ArrayView2, ArrayView4, Axis, s};

/// Zero padding of a 2-D window: (top, left, bottom, right).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pad {
    /// Rows above.
    pub top: usize,
    /// Columns left.
    pub left: usize,
    /// Rows below.
    pub bottom: usize,
    /// Columns right.
    pub right: usize,
}

impl Pad {
    /// TensorFlow's `SAME` padding for an `h`×`w` input, a `k`×`k` kernel and `stride`: the
    /// output is `ceil(h / stride)`, the extra row/column going below/right (as
    /// `efficientnet-lite-pytorch`'s `Conv2dStaticSamePadding`).
    pub fn same(h: usize, w: usize, k: usize, stride: usize) -> Pad {
        let total = |n: usize| ((n.div_ceil(stride) - 1) * stride + k).saturating_sub(n);
        let (ph, pw) = (total(h), total(w));
        Pad {
            top: ph / 2,
            left: pw / 2,
            bottom: ph - ph / 2,
            right: pw - pw / 2,
        }
    }

    fn out(&self, h: usize, w: usize, k: usize, stride: usize) -> (usize, usize) {
        (
            (h + self.top + self.bottom - k) / stride + 1,
            (w + self.left + self.right - k) / stride + 1,
        )
    }
}

/// Folds an inference-mode batch norm into the preceding convolution's weights
/// (`[cout, …]`) and bias: `w·γ/√(σ²+ε)`, `β − μ·γ/√(σ²+ε)`.
pub fn fold_batch_norm(
    weight: &mut Array4<f32>,
    gamma: ArrayView1<'_, f32>,
    beta: ArrayView1<'_, f32>,
    mean: ArrayView1<'_, f32>,
    var: ArrayView1<'_, f32>,
    eps: f32,
) -> Array1<f32> {
    let scale: Array1<f32> = gamma
        .iter()
        .zip(var.iter())
        .map(|(g, v)| g / (v + eps).sqrt())
        .collect();
    for (mut filter, s) in weight.outer_iter_mut().zip(scale.iter()) {
        filter.mapv_inplace(|x| x * s);
    }
    beta.iter()
        .zip(mean.iter())
        .zip(scale.iter())
        .map(|((b, m), s)| b - m * s)
        .collect()
}

/// Convolution, groups = 1: `x` `[n, cin, h, w]`, `weight` `[cout, cin, k, k]`, plus bias.
pub fn conv2d(
    x: ArrayView4<'_, f32>,
    weight: &Array4<f32>,
    bias: &Array1<f32>,
    stride: usize,
    pad: Pad,
) -> Array4<f32> {
    let (n, cin, h, w) = x.dim();
    let (cout, wcin, k, _) = weight.dim();
    assert_eq!(cin, wcin, "conv2d: input channels");
    let (oh, ow) = pad.out(h, w, k, stride);
    let wmat = weight
        .view()
        .into_shape_with_order((cout, cin * k * k))
        .expect("standard layout weight");
    let mut out = Array4::<f32>::zeros((n, cout, oh, ow));
    let pointwise = k == 1
        && stride == 1
        && pad
            == Pad {
                top: 0,
                left: 0,
                bottom: 0,
                right: 0,
            };
    let mut cols = Array2::<f32>::zeros(if pointwise {
        (0, 0)
    } else {
        (cin * k * k, oh * ow)
    });
    for (img, mut o) in x.outer_iter().zip(out.outer_iter_mut()) {
        let mut omat = o
            .view_mut()
            .into_shape_with_order((cout, oh * ow))
            .expect("fresh output");
        if pointwise {
            let xs = img.as_standard_layout();
            let xmat = xs
                .view()
                .into_shape_with_order((cin, h * w))
                .expect("standard layout");
            general_mat_mul(1.0, &wmat, &xmat, 0.0, &mut omat);
        } else {
            im2col(img, k, stride, pad, oh, ow, &mut cols);
            general_mat_mul(1.0, &wmat, &cols, 0.0, &mut omat);
        }
        for (mut row, b) in omat.outer_iter_mut().zip(bias.iter()) {
            row += *b;
        }
    }
    out
}

fn im2col(
    img: ndarray::ArrayView3<'_, f32>,
    k: usize,
    stride: usize,
    pad: Pad,
    oh: usize,
    ow: usize,
    cols: &mut Array2<f32>,
) {
    let (cin, h, w) = img.dim();
    for c in 0..cin {
        for ky in 0..k {
            for kx in 0..k {
                let mut row = cols.row_mut((c * k + ky) * k + kx);
                for oy in 0..oh {
                    let iy = (oy * stride + ky) as isize - pad.top as isize;
                    for ox in 0..ow {
                        let ix = (ox * stride + kx) as isize - pad.left as isize;
                        row[oy * ow + ox] =
                            if iy >= 0 && ix >= 0 && (iy as usize) < h && (ix as usize) < w {
                                img[[c, iy as usize, ix as usize]]
                            } else {
                                0.0
                            };
                    }
                }
            }
        }
    }
}

/// Depthwise convolution: `x` `[n, c, h, w]`, `weight` `[c, 1, k, k]`, plus bias.
pub fn depthwise_conv2d(
    x: ArrayView4<'_, f32>,
    weight: &Array4<f32>,
    bias: &Array1<f32>,
    stride: usize,
    pad: Pad,
) -> Array4<f32> {
    let (n, c, h, w) = x.dim();
    let k = weight.dim().2;
    let (oh, ow) = pad.out(h, w, k, stride);
    let mut out = Array4::<f32>::zeros((n, c, oh, ow));
    for b in 0..n {
        for ch in 0..c {
            let src = x.slice(s![b, ch, .., ..]);
            let wk = weight.slice(s![ch, 0, .., ..]);
            let mut dst = out.slice_mut(s![b, ch, .., ..]);
            let bias = bias[ch];
            for oy in 0..oh {
                for ox in 0..ow {
                    let mut acc = bias;
                    for ky in 0..k {
                        let iy = (oy * stride + ky) as isize - pad.top as isize;
                        if iy < 0 || iy as usize >= h {
                            continue;
                        }
                        for kx in 0..k {
                            let ix = (ox * stride + kx) as isize - pad.left as isize;
                            if ix < 0 || ix as usize >= w {
                                continue;
                            }
                            acc += src[[iy as usize, ix as usize]] * wk[[ky, kx]];
                        }
                    }
                    dst[[oy, ox]] = acc;
                }
            }
        }
    }
    out
}

/// `min(max(x, 0), 6)` in place.
pub fn relu6(x: &mut Array4<f32>) {
    x.mapv_inplace(|v| v.clamp(0.0, 6.0));
}

/// Mean over the spatial dims: `[n, c, h, w]` → `[n, c]`.
pub fn global_avg_pool(x: ArrayView4<'_, f32>) -> Array2<f32> {
    let (_, _, h, w) = x.dim();
    x.sum_axis(Axis(3)).sum_axis(Axis(2)) / (h * w) as f32
}

/// `x · weightᵀ + bias`: `x` `[n, in]`, `weight` `[out, in]`.
pub fn linear(
    x: ArrayView2<'_, f32>,
    weight: ArrayView2<'_, f32>,
    bias: ArrayView1<'_, f32>,
) -> Array2<f32> {
    let mut out = Array2::<f32>::zeros((x.nrows(), weight.nrows()));
    general_mat_mul(1.0, &x, &weight.t(), 0.0, &mut out);
    out += &bias;
    out
}
