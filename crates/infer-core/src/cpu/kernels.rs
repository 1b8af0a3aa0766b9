//! NCHW f32 kernels: convolution (im2col + GEMM), depthwise convolution, ReLU6, global
//! average pooling, linear layers, and batch-norm folding.

use ndarray::linalg::general_mat_mul;
use ndarray::{Array1, Array2, Array4, ArrayView1, ArrayView2, ArrayView4, Axis};

/// `c = a · b` for row-major matrices: `a` is `m×k`, `b` is `k×n`, `c` is `m×n`, through the
/// `gemm` crate on one thread.
///
/// # Panics
/// If a slice is shorter than its matrix.
pub fn sgemm(m: usize, k: usize, n: usize, a: &[f32], b: &[f32], c: &mut [f32]) {
    sgemm_strided(
        m,
        k,
        n,
        (a, Strides::row_major(k)),
        (b, Strides::row_major(n)),
        (c, n),
    );
}

/// Where element `(i, j)` of a matrix lies in its slice: `i * row + j * col`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Strides {
    /// Step between rows.
    pub row: usize,
    /// Step between columns.
    pub col: usize,
}

impl Strides {
    /// Rows of `cols` contiguous elements.
    pub const fn row_major(cols: usize) -> Strides {
        Strides { row: cols, col: 1 }
    }

    /// The transpose of a row-major matrix with `cols` columns (a PyTorch `[out, in]`
    /// linear weight read as `[in, out]`).
    pub const fn transposed(cols: usize) -> Strides {
        Strides { row: 1, col: cols }
    }

    /// The element one past the last one a `rows`×`cols` matrix addresses.
    fn end(self, rows: usize, cols: usize) -> usize {
        (rows - 1) * self.row + (cols - 1) * self.col + 1
    }
}

/// `c = a · b` with any strides for `a` (`m×k`) and `b` (`k×n`); `c` is `m×n` with rows
/// `c_row ≥ n` apart (so a block of a wider matrix), through the `gemm` crate on one thread.
///
/// # Panics
/// If a slice is shorter than its strides address, or `c_row < n`.
pub fn sgemm_strided(
    m: usize,
    k: usize,
    n: usize,
    (a, sa): (&[f32], Strides),
    (b, sb): (&[f32], Strides),
    (c, c_row): (&mut [f32], usize),
) {
    if m == 0 || n == 0 {
        return;
    }
    assert!(
        c_row >= n && c.len() >= Strides::row_major(c_row).end(m, n),
        "sgemm: c holds fewer than {m} rows of {n} (row stride {c_row})"
    );
    if k == 0 {
        for row in c.chunks_mut(c_row).take(m) {
            row[..n].fill(0.0);
        }
        return;
    }
    assert!(
        a.len() >= sa.end(m, k) && b.len() >= sb.end(k, n),
        "sgemm: a ({m}x{k}, {sa:?}) or b ({k}x{n}, {sb:?}) reaches past its slice"
    );
    // SAFETY: the asserts above put every element the strides address for `a` (m×k), `b`
    // (k×n) and `c` (m×n, row stride ≥ n, column stride 1, so no two elements of `c`
    // coincide) inside their slices; `c` is a unique borrow so it aliases neither input;
    // `read_dst` is false, so `c`'s old values are not read; one thread.
    #[allow(unsafe_code)]
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            c.as_mut_ptr(),
            1,
            c_row as isize,
            false,
            a.as_ptr(),
            sa.col as isize,
            sa.row as isize,
            b.as_ptr(),
            sb.col as isize,
            sb.row as isize,
            0.0,
            1.0,
            false,
            false,
            false,
            gemm::Parallelism::None,
        );
    }
}

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
    /// No padding.
    pub const NONE: Pad = Pad {
        top: 0,
        left: 0,
        bottom: 0,
        right: 0,
    };

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
    let weights = weight.as_standard_layout();
    let wmat = weights.as_slice().expect("standard layout");
    let mut out = Array4::<f32>::zeros((n, cout, oh, ow));
    let pointwise = k == 1 && stride == 1 && pad == Pad::NONE;
    let mut cols = Array2::<f32>::zeros(if pointwise {
        (0, 0)
    } else {
        (cin * k * k, oh * ow)
    });
    let x = x.as_standard_layout();
    let plane = oh * ow;
    let dst_all = out.as_slice_mut().expect("fresh array");
    for (img, o) in x.outer_iter().zip(dst_all.chunks_exact_mut(cout * plane)) {
        if pointwise {
            sgemm(
                cout,
                cin,
                plane,
                wmat,
                img.as_slice().expect("standard layout"),
                o,
            );
        } else {
            im2col(img, k, stride, pad, oh, ow, &mut cols);
            sgemm(
                cout,
                cin * k * k,
                plane,
                wmat,
                cols.as_slice().expect("fresh array"),
                o,
            );
        }
        for (row, b) in o.chunks_exact_mut(plane).zip(bias.iter()) {
            row.iter_mut().for_each(|v| *v += *b);
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
///
/// Each plane is first copied into a zero-padded scratch plane (for stride 2, split into
/// its even and odd columns), so every kernel tap is a contiguous multiply-add over an output
/// row that the compiler vectorises, with no bounds tests per pixel. Each output sums the
/// bias, then the taps in row-major order.
///
/// # Panics
/// For a stride other than 1 or 2 (what MobileNet-style models use).
pub fn depthwise_conv2d(
    x: ArrayView4<'_, f32>,
    weight: &Array4<f32>,
    bias: &Array1<f32>,
    stride: usize,
    pad: Pad,
) -> Array4<f32> {
    assert!(
        stride == 1 || stride == 2,
        "depthwise_conv2d: stride {stride}, not 1 or 2"
    );
    let (n, c, h, w) = x.dim();
    let k = weight.dim().2;
    let (oh, ow) = pad.out(h, w, k, stride);
    let x = x.as_standard_layout();
    let src_all = x.as_slice().expect("standard layout");
    let weights = weight.as_standard_layout();
    let taps = weights.as_slice().expect("standard layout");
    let mut out = Array4::<f32>::zeros((n, c, oh, ow));
    let dst_all = out.as_slice_mut().expect("fresh array");
    let (ph, pw) = (h + pad.top + pad.bottom, w + pad.left + pad.right);
    let mut padded = vec![0.0_f32; ph * pw];
    // stride 2: columns split by parity, each `cols` wide
    let cols = pw.div_ceil(2);
    let (mut even, mut odd) = (vec![0.0_f32; ph * cols], vec![0.0_f32; ph * cols]);
    for (plane, (src, dst)) in src_all
        .chunks_exact(h * w)
        .zip(dst_all.chunks_exact_mut(oh * ow))
        .enumerate()
    {
        let ch = plane % c;
        for (y, row) in src.chunks_exact(w).enumerate() {
            let at = (y + pad.top) * pw + pad.left;
            padded[at..at + w].copy_from_slice(row);
        }
        if stride == 2 {
            for y in 0..ph {
                let row = &padded[y * pw..(y + 1) * pw];
                for (i, v) in row.iter().enumerate() {
                    if i % 2 == 0 {
                        even[y * cols + i / 2] = *v;
                    } else {
                        odd[y * cols + i / 2] = *v;
                    }
                }
            }
        }
        let ktaps = &taps[ch * k * k..(ch + 1) * k * k];
        for (oy, drow) in dst.chunks_exact_mut(ow).enumerate() {
            drow.fill(bias[ch]);
            for ky in 0..k {
                let y = oy * stride + ky;
                for kx in 0..k {
                    let wv = ktaps[ky * k + kx];
                    let src = match stride {
                        1 => &padded[y * pw + kx..y * pw + kx + ow],
                        _ if kx % 2 == 0 => &even[y * cols + kx / 2..y * cols + kx / 2 + ow],
                        _ => &odd[y * cols + kx / 2..y * cols + kx / 2 + ow],
                    };
                    for (d, s) in drow.iter_mut().zip(src) {
                        *d += wv * s;
                    }
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
