//! Channels-last (NHWC) f32 kernels, the layout the native models run in.
//!
//! In NHWC a 1×1 convolution is one GEMM over every pixel of the batch (`[n·h·w, cin] ·
//! [cin, cout]`, no im2col), and a depthwise convolution multiplies contiguous channel runs,
//! which the compiler vectorises. The inner loops are compiled for AVX-512, AVX2 and the
//! baseline and picked at run time (`multiversion`), so a binary built for plain x86-64 still
//! uses the wide registers of the machine it runs on.
//!
//! Every kernel takes a thread count: 1 runs on the calling thread and never touches rayon;
//! more splits the work into that many row ranges on the current rayon pool (run it inside
//! [`rayon::ThreadPool::install`] to bound it).

use multiversion::multiversion;
use rayon::prelude::*;

use super::kernels::{Pad, sgemm};

/// The activation fused into a kernel's output.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Act {
    /// None.
    Identity,
    /// `min(max(x, 0), 6)`.
    Relu6,
    /// GELU, erf form ([`gelu`](super::math::gelu)).
    Gelu,
}

/// Runs `f(first_row, rows)` over `out` split into blocks of about `block_rows` rows of
/// `row_len` floats (so each block's output stays in cache while `f` finishes it): in order
/// on the calling thread for `threads == 1`, else in parallel on the current rayon pool.
pub fn for_rows(
    out: &mut [f32],
    row_len: usize,
    block_rows: usize,
    threads: usize,
    f: impl Fn(usize, &mut [f32]) + Sync,
) {
    let rows = out.len() / row_len.max(1);
    let mut per = block_rows.clamp(1, rows.max(1));
    if threads > 1 {
        // at least two blocks per thread, so work stealing can even out the ends
        per = per.min(rows.div_ceil(2 * threads)).max(1);
        out.par_chunks_mut(per * row_len)
            .enumerate()
            .for_each(|(i, chunk)| f(i * per, chunk));
    } else {
        out.chunks_mut(per * row_len)
            .enumerate()
            .for_each(|(i, chunk)| f(i * per, chunk));
    }
}

/// Rows per GEMM call of [`pointwise`]: the GEMM packs the weight once per call and blocks
/// for the cache itself, so calls are made as tall as the threads allow (small blocks spent
/// a third of MiniLM's time repacking weights).
const GEMM_ROWS: usize = usize::MAX;

/// Rows per block for a kernel whose rows read `cin` and write `cout` floats: about 128 KiB
/// of both together, at least 16 rows.
fn block_rows(cin: usize, cout: usize) -> usize {
    (32 * 1024 / (cin + cout).max(1)).max(16)
}

/// `out = act(x · w + bias [+ residual])`: `x` `[rows, cin]`, `w` `[cin, cout]`, `out` and
/// `residual` `[rows, cout]`, all row-major. A 1×1 convolution in NHWC, or a linear layer.
#[allow(clippy::too_many_arguments)]
pub fn pointwise(
    x: &[f32],
    cin: usize,
    w: &[f32],
    bias: &[f32],
    act: Act,
    residual: Option<&[f32]>,
    out: &mut [f32],
    threads: usize,
) {
    let cout = bias.len();
    assert_eq!(w.len(), cin * cout, "pointwise: weight is not cin×cout");
    assert_eq!(x.len() / cin * cout, out.len(), "pointwise: rows differ");
    if let Some(r) = residual {
        assert_eq!(r.len(), out.len(), "pointwise: residual shape");
    }
    for_rows(out, cout, GEMM_ROWS, threads, |first, chunk| {
        let rows = chunk.len() / cout;
        let xs = &x[first * cin..(first + rows) * cin];
        sgemm(rows, cin, cout, xs, w, chunk);
        let res = residual.map(|r| &r[first * cout..(first + rows) * cout]);
        bias_act(chunk, bias, act, res);
    });
}

/// `out[r] = act(out[r] + bias [+ residual[r]])` for every row `r` (rows of
/// `bias.len()`).
pub fn add_bias(out: &mut [f32], bias: &[f32], act: Act, residual: Option<&[f32]>) {
    bias_act(out, bias, act, residual);
}

/// `out[r] = act(out[r] + bias [+ residual[r]])` for every row `r`.
#[multiversion(targets = "simd")]
fn bias_act(out: &mut [f32], bias: &[f32], act: Act, residual: Option<&[f32]>) {
    let c = bias.len();
    match residual {
        None => {
            for row in out.chunks_exact_mut(c) {
                for (o, b) in row.iter_mut().zip(bias) {
                    *o += *b;
                }
            }
        }
        Some(res) => {
            for (row, r) in out.chunks_exact_mut(c).zip(res.chunks_exact(c)) {
                for ((o, b), r) in row.iter_mut().zip(bias).zip(r) {
                    *o += *b + *r;
                }
            }
        }
    }
    match act {
        Act::Identity => {}
        Act::Relu6 => relu6(out),
        Act::Gelu => super::math::gelu(out),
    }
}

#[multiversion(targets = "simd")]
fn relu6(out: &mut [f32]) {
    for o in out.iter_mut() {
        *o = o.clamp(0.0, 6.0);
    }
}

/// Shape of an NHWC activation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Nhwc {
    /// Batch.
    pub n: usize,
    /// Height.
    pub h: usize,
    /// Width.
    pub w: usize,
    /// Channels.
    pub c: usize,
}

impl Nhwc {
    /// Number of floats.
    pub fn len(&self) -> usize {
        self.n * self.h * self.w * self.c
    }

    /// Whether it holds no floats.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Output height and width of a `k`×`k` window with `stride` and `pad`.
    pub fn out(&self, k: usize, stride: usize, pad: Pad) -> (usize, usize) {
        (
            (self.h + pad.top + pad.bottom - k) / stride + 1,
            (self.w + pad.left + pad.right - k) / stride + 1,
        )
    }
}

/// Depthwise convolution, NHWC: `taps` `[k, k, c]` (channel fastest), plus bias and `act`.
/// `out` is `[n, oh, ow, c]`. Each output sums the bias, then the taps in row-major order.
#[allow(clippy::too_many_arguments)]
pub fn depthwise(
    x: &[f32],
    shape: Nhwc,
    taps: &[f32],
    bias: &[f32],
    k: usize,
    stride: usize,
    pad: Pad,
    act: Act,
    out: &mut [f32],
    threads: usize,
) {
    let Nhwc { h, w, c, .. } = shape;
    assert_eq!(x.len(), shape.len(), "depthwise: input shape");
    assert_eq!(taps.len(), k * k * c, "depthwise: taps are not k×k×c");
    assert_eq!(bias.len(), c, "depthwise: bias");
    assert!(k > 0 && stride > 0, "depthwise: zero kernel or stride");
    let (oh, ow) = shape.out(k, stride, pad);
    assert_eq!(out.len(), shape.n * oh * ow * c, "depthwise: output shape");
    let geometry = Window {
        h,
        w,
        c,
        k,
        stride,
        pad,
        relu6: act == Act::Relu6,
    };
    for_rows(out, ow * c, 1, threads, |first, chunk| {
        for (i, orow) in chunk.chunks_exact_mut(ow * c).enumerate() {
            let (img, oy) = ((first + i) / oh, (first + i) % oh);
            let image = &x[img * h * w * c..(img + 1) * h * w * c];
            depthwise_row(image, &geometry, taps, bias, oy, orow);
        }
    });
}

/// What [`depthwise_row`] needs to know of the input and the window.
struct Window {
    h: usize,
    w: usize,
    c: usize,
    k: usize,
    stride: usize,
    pad: Pad,
    relu6: bool,
}

/// Channels per register-held accumulator block.
const LANES: usize = 16;
/// Output pixels computed together where the whole window is inside the image.
const PIXELS: usize = 4;

/// One output row of [`depthwise`]. Channels go in blocks of [`LANES`] whose sums stay in
/// registers across all taps; inside the image, [`PIXELS`] neighbouring outputs share each
/// tap load.
#[multiversion(targets = "simd")]
fn depthwise_row(
    image: &[f32],
    g: &Window,
    taps: &[f32],
    bias: &[f32],
    oy: usize,
    orow: &mut [f32],
) {
    let (c, k, s) = (g.c, g.k, g.stride);
    let ow = orow.len() / c;
    // rows of the window inside the image
    let ky0 = g.pad.top.saturating_sub(oy * s);
    let ky1 = k.min((g.h + g.pad.top).saturating_sub(oy * s));
    let iy0 = oy * s + ky0 - g.pad.top;
    // outputs whose window lies inside the image horizontally
    let lo = g.pad.left.div_ceil(s).min(ow);
    let hi = if g.w + g.pad.left >= k {
        ((g.w + g.pad.left - k) / s + 1).clamp(lo, ow)
    } else {
        lo
    };
    let finish = |v: f32| if g.relu6 { v.clamp(0.0, 6.0) } else { v };
    let blocks = c / LANES;
    // one output pixel, any position: taps outside the image skipped
    let single = |ox: usize, out: &mut [f32]| {
        let kx0 = g.pad.left.saturating_sub(ox * s);
        let kx1 = k.min((g.w + g.pad.left).saturating_sub(ox * s));
        for b in 0..blocks {
            let cb = b * LANES;
            let mut acc: [f32; LANES] = bias[cb..cb + LANES].try_into().expect("block");
            for ky in ky0..ky1 {
                let iy = iy0 + ky - ky0;
                for kx in kx0..kx1 {
                    let ix = ox * s + kx - g.pad.left;
                    let src = &image[(iy * g.w + ix) * c + cb..][..LANES];
                    let tap = &taps[(ky * k + kx) * c + cb..][..LANES];
                    for l in 0..LANES {
                        acc[l] += src[l] * tap[l];
                    }
                }
            }
            for (o, a) in out[cb..cb + LANES].iter_mut().zip(acc) {
                *o = finish(a);
            }
        }
        for ch in blocks * LANES..c {
            let mut a = bias[ch];
            for ky in ky0..ky1 {
                let iy = iy0 + ky - ky0;
                for kx in kx0..kx1 {
                    let ix = ox * s + kx - g.pad.left;
                    a += image[(iy * g.w + ix) * c + ch] * taps[(ky * k + kx) * c + ch];
                }
            }
            out[ch] = finish(a);
        }
    };
    let mut ox = 0;
    while ox < ow {
        if ox >= lo && ox + PIXELS <= hi && blocks > 0 {
            // PIXELS outputs, every tap inside the image horizontally
            for b in 0..blocks {
                let cb = b * LANES;
                let init: [f32; LANES] = bias[cb..cb + LANES].try_into().expect("block");
                let mut acc = [init; PIXELS];
                for ky in ky0..ky1 {
                    let iy = iy0 + ky - ky0;
                    let row = &image[iy * g.w * c..(iy + 1) * g.w * c];
                    for kx in 0..k {
                        let tap = &taps[(ky * k + kx) * c + cb..][..LANES];
                        for (p, a) in acc.iter_mut().enumerate() {
                            let ix = (ox + p) * s + kx - g.pad.left;
                            let src = &row[ix * c + cb..][..LANES];
                            for l in 0..LANES {
                                a[l] += src[l] * tap[l];
                            }
                        }
                    }
                }
                for (p, a) in acc.iter().enumerate() {
                    let o = &mut orow[(ox + p) * c + cb..][..LANES];
                    for (o, v) in o.iter_mut().zip(a) {
                        *o = finish(*v);
                    }
                }
            }
            if blocks * LANES < c {
                for p in 0..PIXELS {
                    let px = ox + p;
                    let mut tail = [0.0_f32; LANES];
                    let n = c - blocks * LANES;
                    for (t, ch) in tail.iter_mut().zip(blocks * LANES..c) {
                        let mut a = bias[ch];
                        for ky in ky0..ky1 {
                            let iy = iy0 + ky - ky0;
                            for kx in 0..k {
                                let ix = px * s + kx - g.pad.left;
                                a += image[(iy * g.w + ix) * c + ch] * taps[(ky * k + kx) * c + ch];
                            }
                        }
                        *t = finish(a);
                    }
                    orow[px * c + blocks * LANES..(px + 1) * c].copy_from_slice(&tail[..n]);
                }
            }
            ox += PIXELS;
        } else {
            single(ox, &mut orow[ox * c..(ox + 1) * c]);
            ox += 1;
        }
    }
}

/// A dense `k`×`k` convolution from an NCHW input (the stem: few input channels) to NHWC:
/// im2col into `[n·oh·ow, k·k·cin]` (order ky, kx, ci) and one GEMM with `w`
/// `[k·k·cin, cout]`, plus bias and `act`, into `out` (`[n, oh, ow, cout]`). Returns the
/// output's shape.
#[allow(clippy::too_many_arguments)]
pub fn conv_nchw_to_nhwc(
    x: &[f32],
    shape_nchw: (usize, usize, usize, usize),
    w: &[f32],
    bias: &[f32],
    k: usize,
    stride: usize,
    pad: Pad,
    act: Act,
    out: &mut [f32],
    threads: usize,
) -> Nhwc {
    let (n, cin, h, wd) = shape_nchw;
    assert_eq!(x.len(), n * cin * h * wd, "conv: input shape");
    let cout = bias.len();
    let depth = k * k * cin;
    assert_eq!(w.len(), depth * cout, "conv: weight is not (k·k·cin)×cout");
    let shape = Nhwc {
        n,
        h,
        w: wd,
        c: cin,
    };
    let (oh, ow) = shape.out(k, stride, pad);
    assert_eq!(out.len(), n * oh * ow * cout, "conv: output shape");
    for_rows(
        out,
        cout,
        block_rows(depth, cout),
        threads,
        |first, chunk| {
            let rows = chunk.len() / cout;
            let mut cols = vec![0.0_f32; rows * depth];
            for (r, col) in cols.chunks_exact_mut(depth).enumerate() {
                let p = first + r;
                let (img, oy, ox) = (p / (oh * ow), p / ow % oh, p % ow);
                for ky in 0..k {
                    let iy = (oy * stride + ky).wrapping_sub(pad.top);
                    for kx in 0..k {
                        let ix = (ox * stride + kx).wrapping_sub(pad.left);
                        for ci in 0..cin {
                            col[(ky * k + kx) * cin + ci] = if iy < h && ix < wd {
                                x[((img * cin + ci) * h + iy) * wd + ix]
                            } else {
                                0.0
                            };
                        }
                    }
                }
            }
            sgemm(rows, depth, cout, &cols, w, chunk);
            bias_act(chunk, bias, act, None);
        },
    );
    Nhwc {
        n,
        h: oh,
        w: ow,
        c: cout,
    }
}

/// Mean over height and width: `[n, h, w, c]` → `[n, c]`.
pub fn global_avg_pool(x: &[f32], shape: Nhwc) -> Vec<f32> {
    let Nhwc { n, h, w, c } = shape;
    let mut out = vec![0.0_f32; n * c];
    for (img, o) in x.chunks_exact(h * w * c).zip(out.chunks_exact_mut(c)) {
        for px in img.chunks_exact(c) {
            for (a, v) in o.iter_mut().zip(px) {
                *a += *v;
            }
        }
        let inv = 1.0 / (h * w) as f32;
        o.iter_mut().for_each(|a| *a *= inv);
    }
    out
}
