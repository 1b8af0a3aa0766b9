//! Channels-last (NHWC) f32 kernels, the layout the native models run in.
//!
//! In NHWC a 1×1 convolution is one GEMM over every pixel of the batch (`[n·h·w, cin] ·
//! [cin, cout]`, no im2col), and a depthwise convolution multiplies contiguous channel runs,
//! which the compiler vectorises. [`mbconv`] runs a whole inverted-residual block strip by
//! strip, so its 6×-wide expanded activation stays in cache. The inner loops are compiled
//! for AVX-512, AVX2 and the baseline and picked at run time (`multiversion`), so a binary
//! built for plain x86-64 still uses the wide registers of the machine it runs on.
//!
//! Every kernel takes a thread count: 1 runs on the calling thread and never touches rayon;
//! more splits the work into that many row ranges on the current rayon pool (run it inside
//! [`rayon::ThreadPool::install`] to bound it).

use std::sync::Mutex;

use multiversion::multiversion;
use rayon::prelude::*;

use seq_macro::seq;

use super::epilogue::Act;
use super::kernels::Pad;
use super::packed::{Packed, gemm, gemm_windows};

/// Runs `f(first_row, rows)` over `out` split into blocks of about `block_rows` rows of
/// `row_len` elements (so each block's output stays in cache while `f` finishes it): in order
/// on the calling thread for `threads == 1`, else in parallel on the current rayon pool.
pub fn for_rows<T: Send>(
    out: &mut [T],
    row_len: usize,
    block_rows: usize,
    threads: usize,
    f: impl Fn(usize, &mut [T]) + Sync,
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

/// Rows per GEMM call of [`pointwise`]: as tall as the threads allow (the packed GEMM
/// blocks rows for the cache itself; on the `gemm` crate's path each call packs the weight
/// again, and small blocks spent a third of MiniLM's time doing so).
const GEMM_ROWS: usize = usize::MAX;

/// `out = act(x · w + bias [+ residual])`: `x` `[rows, w.k()]`, `w` `[w.k(), cout]`
/// (packed), `out` and `residual` `[rows, cout]`, all row-major. A 1×1 convolution in
/// NHWC, or a linear layer.
pub fn pointwise(
    x: &[f32],
    w: &Packed,
    bias: &[f32],
    act: Act,
    residual: Option<&[f32]>,
    out: &mut [f32],
    threads: usize,
) {
    let (cin, cout) = (w.k(), w.n());
    assert_eq!(bias.len(), cout, "pointwise: bias is not cout long");
    assert_eq!(
        x.len() / cin.max(1) * cout,
        out.len(),
        "pointwise: rows differ"
    );
    if let Some(r) = residual {
        assert_eq!(r.len(), out.len(), "pointwise: residual shape");
    }
    for_rows(out, cout, GEMM_ROWS, threads, |first, chunk| {
        let rows = chunk.len() / cout;
        let xs = &x[first * cin..(first + rows) * cin];
        let res = residual.map(|r| &r[first * cout..(first + rows) * cout]);
        gemm(rows, xs, cin, w, bias, act, res, chunk);
    });
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
        ring: h,
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
    /// Input row `iy` is row `iy % ring` of the slice given (`h` for a whole image; fewer
    /// for the rolling rows of [`mbconv`]).
    ring: usize,
    k: usize,
    stride: usize,
    pad: Pad,
    relu6: bool,
}

impl Window {
    /// An output's sum as stored: ReLU6 when the window has it.
    #[inline(always)]
    fn finish(&self, v: f32) -> f32 {
        if self.relu6 { v.clamp(0.0, 6.0) } else { v }
    }
}

/// Output pixels a span of [`depthwise_row`] computes together.
const PIXELS: usize = 8;

/// One output row of [`depthwise`].
///
/// For the 3×3 and 5×5 windows of stride 1 and 2 (every one EfficientNet has), channels go
/// in blocks of 16 lanes (AVX-512, in intrinsics: `avx512_dw`) or 8 (below it, [`spans`])
/// and outputs in spans of [`PIXELS`]: the span's
/// sums and one window row of taps stay in registers while each input pixel under the span
/// is loaded once and added into every output it touches (half a load per multiply-add,
/// where a pixel at a time needs two). Inputs outside the image are skipped, so the same
/// span serves the edges; outputs past the row's end are computed and not stored. Other
/// windows, and channels past the last whole block, go a pixel at a time.
#[multiversion(targets = "simd")]
fn depthwise_row(
    image: &[f32],
    g: &Window,
    taps: &[f32],
    bias: &[f32],
    oy: usize,
    orow: &mut [f32],
) {
    let wide = multiversion::target::target_cfg_f!(target_feature = "avx512f");
    let fma = multiversion::target::target_cfg_f!(target_feature = "fma");
    let c = g.c;
    // rows of the window inside the image
    let ky0 = g.pad.top.saturating_sub(oy * g.stride);
    let ky1 = g.k.min((g.h + g.pad.top).saturating_sub(oy * g.stride));
    let rows = Rows {
        ky0,
        ky1,
        iy0: oy * g.stride + ky0 - g.pad.top,
    };
    let done = match (wide, fma) {
        #[cfg(target_arch = "x86_64")]
        (true, true) => {
            // SAFETY: `wide` is true only in the copy of this function compiled for
            // AVX-512F, which `multiversion` runs only on a CPU that has it; what the
            // slices must hold is asserted inside.
            #[allow(unsafe_code)]
            unsafe {
                avx512_dw::spans(image, g, taps, bias, &rows, orow)
            }
        }
        // (AVX-512 is x86-64 only: elsewhere `wide` is never true)
        (_, true) => spans::<8, true>(image, g, taps, bias, &rows, orow),
        (_, false) => spans::<8, false>(image, g, taps, bias, &rows, orow),
    };
    // whatever the spans did not cover: a pixel and a channel at a time
    let ow = orow.len() / c;
    for ox in 0..ow {
        let kx0 = g.pad.left.saturating_sub(ox * g.stride);
        let kx1 = g.k.min((g.w + g.pad.left).saturating_sub(ox * g.stride));
        for ch in done..c {
            let mut a = bias[ch];
            for ky in ky0..ky1 {
                let iy = rows.iy0 + ky - ky0;
                for kx in kx0..kx1 {
                    let ix = ox * g.stride + kx - g.pad.left;
                    let at = ((iy % g.ring) * g.w + ix) * c + ch;
                    a += image[at] * taps[(ky * g.k + kx) * c + ch];
                }
            }
            orow[ox * c + ch] = g.finish(a);
        }
    }
}

/// [`spans`] for AVX-512 in intrinsics: the same arithmetic in the same order (each sum
/// the bias, then the taps row by row), with the span's input columns inside the image
/// found once per window row instead of tested column by column.
#[cfg(target_arch = "x86_64")]
#[allow(unsafe_code)]
mod avx512_dw {
    use std::arch::x86_64::{
        __m512, _mm512_fmadd_ps, _mm512_loadu_ps, _mm512_max_ps, _mm512_min_ps, _mm512_set1_ps,
        _mm512_setzero_ps, _mm512_storeu_ps,
    };

    use super::{PIXELS, Rows, Window};

    /// The channel blocks of 16 of one output row, for 3×3 and 5×5 windows of stride 1
    /// and 2; returns the channels done (0 for other windows).
    ///
    /// # Safety
    /// AVX-512F is available.
    ///
    /// # Panics
    /// If `image` holds fewer than `g.ring` rows of `g.w · g.c` floats, or `taps`, `bias`
    /// or `orow` are not `k·k·c`, `c` and a multiple of `c` long.
    #[target_feature(enable = "avx512f")]
    pub(super) unsafe fn spans(
        image: &[f32],
        g: &Window,
        taps: &[f32],
        bias: &[f32],
        rows: &Rows,
        orow: &mut [f32],
    ) -> usize {
        let c = g.c;
        assert!(
            image.len() >= g.ring.min(g.h) * g.w * c,
            "depthwise: image rows"
        );
        assert_eq!(taps.len(), g.k * g.k * c, "depthwise: taps");
        assert_eq!(bias.len(), c, "depthwise: bias");
        assert!(
            rows.ky1 <= g.k && orow.len().is_multiple_of(c.max(1)),
            "depthwise: output row"
        );
        assert!(
            rows.ky0 >= rows.ky1 || (rows.iy0 + (rows.ky1 - 1 - rows.ky0)) < g.h,
            "depthwise: window rows past the image"
        );
        // SAFETY: AVX-512F is there (this function's contract), and the asserts above are
        // what `span` needs.
        unsafe {
            match (g.k, g.stride) {
                (3, 1) => blocks::<3, 1>(image, g, taps, bias, rows, orow),
                (3, 2) => blocks::<3, 2>(image, g, taps, bias, rows, orow),
                (5, 1) => blocks::<5, 1>(image, g, taps, bias, rows, orow),
                (5, 2) => blocks::<5, 2>(image, g, taps, bias, rows, orow),
                _ => 0,
            }
        }
    }

    /// # Safety
    /// As [`spans`], with its asserts passed.
    #[target_feature(enable = "avx512f")]
    unsafe fn blocks<const K: usize, const S: usize>(
        image: &[f32],
        g: &Window,
        taps: &[f32],
        bias: &[f32],
        rows: &Rows,
        orow: &mut [f32],
    ) -> usize {
        let c = g.c;
        let ow = orow.len() / c;
        let blocks = c / 16;
        for b in 0..blocks {
            for ox in (0..ow).step_by(PIXELS) {
                // SAFETY: as this function's contract; `b·16 + 16 ≤ c`, `ox < ow`.
                unsafe { span::<K, S>(image, g, taps, bias, rows, (b * 16, ox), orow) };
            }
        }
        blocks * 16
    }

    /// Outputs `ox..ox + PIXELS` (those before the row's end) of channels `cb..cb + 16`.
    ///
    /// # Safety
    /// As [`spans`], with its asserts passed; `cb + 16 ≤ c`; `ox` < the row's outputs.
    #[inline]
    #[target_feature(enable = "avx512f")]
    unsafe fn span<const K: usize, const S: usize>(
        image: &[f32],
        g: &Window,
        taps: &[f32],
        bias: &[f32],
        rows: &Rows,
        (cb, ox): (usize, usize),
        orow: &mut [f32],
    ) {
        let c = g.c;
        let cols = (PIXELS - 1) * S + K;
        // the span's input columns `x0 + j`, `j` in `j0..j1`, that lie inside the image
        let x0 = (ox * S) as isize - g.pad.left as isize;
        let j0 = (-x0).max(0) as usize;
        let j1 = (g.w as isize - x0).clamp(0, cols as isize) as usize;
        // SAFETY: every load below is 16 floats from channel `cb` (`cb + 16 ≤ c`) of a
        // pixel inside its slice: taps `(ky·K + kx)·c` with `ky < K`; input row
        // `iy % ring` (< ring) at column `x0 + j` in `0..w` (`j0..j1`); the bias; and
        // the stores are outputs `ox + p < ow`.
        unsafe {
            let init = _mm512_loadu_ps(bias.as_ptr().add(cb));
            let mut acc: [__m512; PIXELS] = [init; PIXELS];
            for ky in rows.ky0..rows.ky1 {
                let iy = (rows.iy0 + ky - rows.ky0) % g.ring;
                let row = image.as_ptr().add(iy * g.w * c + cb);
                let mut t = [_mm512_setzero_ps(); K];
                for (kx, t) in t.iter_mut().enumerate() {
                    *t = _mm512_loadu_ps(taps.as_ptr().add((ky * K + kx) * c + cb));
                }
                seq_macro::seq!(J in 0..19 {
                    let j: usize = J;
                    if j < cols && j >= j0 && j < j1 {
                        let v = _mm512_loadu_ps(row.offset((x0 + j as isize) * c as isize));
                        seq_macro::seq!(KX in 0..5 {
                            let d = j.wrapping_sub(KX);
                            if KX < K && d < PIXELS * S && d.is_multiple_of(S) {
                                acc[d / S] = _mm512_fmadd_ps(v, t[KX], acc[d / S]);
                            }
                        });
                    }
                });
            }
            let ow = orow.len() / c;
            let (lo, hi) = (_mm512_setzero_ps(), _mm512_set1_ps(6.0));
            for (p, a) in acc.iter().enumerate().take(ow - ox) {
                let v = if g.relu6 {
                    _mm512_min_ps(_mm512_max_ps(*a, lo), hi)
                } else {
                    *a
                };
                _mm512_storeu_ps(orow.as_mut_ptr().add((ox + p) * c + cb), v);
            }
        }
    }
}

/// The window rows of one output row that lie inside the image: taps `ky0..ky1`, the
/// first on input row `iy0`.
struct Rows {
    ky0: usize,
    ky1: usize,
    iy0: usize,
}

/// The channel blocks of `L` lanes of one output row in spans, for the windows
/// [`span`] is made for; returns the channels done (0 for other windows).
#[inline(always)]
fn spans<const L: usize, const FMA: bool>(
    image: &[f32],
    g: &Window,
    taps: &[f32],
    bias: &[f32],
    rows: &Rows,
    orow: &mut [f32],
) -> usize {
    if !matches!((g.k, g.stride), (3 | 5, 1 | 2)) {
        return 0;
    }
    let ow = orow.len() / g.c;
    let blocks = g.c / L;
    for b in 0..blocks {
        for ox in (0..ow).step_by(PIXELS) {
            // direct calls, so each is inlined into (and compiled for) the caller's target
            let at = (b * L, ox);
            match (g.k, g.stride) {
                (3, 1) => span::<3, 1, L, FMA>(image, g, taps, bias, rows, at, orow),
                (3, 2) => span::<3, 2, L, FMA>(image, g, taps, bias, rows, at, orow),
                (5, 1) => span::<5, 1, L, FMA>(image, g, taps, bias, rows, at, orow),
                _ => span::<5, 2, L, FMA>(image, g, taps, bias, rows, at, orow),
            }
        }
    }
    blocks * L
}

/// `a + x·y`, fused where the target has FMA.
#[inline(always)]
fn madd<const FMA: bool>(x: f32, y: f32, a: f32) -> f32 {
    if FMA { x.mul_add(y, a) } else { a + x * y }
}

/// Outputs `ox..ox + PIXELS` (those before the row's end) of channels `cb..cb + L`: `K`×`K`
/// window, stride `S`.
#[inline(always)]
fn span<const K: usize, const S: usize, const L: usize, const FMA: bool>(
    image: &[f32],
    g: &Window,
    taps: &[f32],
    bias: &[f32],
    rows: &Rows,
    (cb, ox): (usize, usize),
    orow: &mut [f32],
) {
    let c = g.c;
    let init: [f32; L] = bias[cb..cb + L].try_into().expect("a block of bias");
    let mut acc = [init; PIXELS];
    // input column under the span's first tap; negative inside the left padding
    let x0 = (ox * S) as isize - g.pad.left as isize;
    for ky in rows.ky0..rows.ky1 {
        let iy = rows.iy0 + ky - rows.ky0;
        let iy = iy % g.ring;
        let row = &image[iy * g.w * c..(iy + 1) * g.w * c];
        let mut t = [[0.0_f32; L]; K];
        for (kx, t) in t.iter_mut().enumerate() {
            *t = taps[(ky * K + kx) * c + cb..][..L]
                .try_into()
                .expect("a block of taps");
        }
        // every input column under the span, loaded once; unrolled by `seq!` (for every
        // window size) so that each sum is a register, not an indexed stack slot
        seq!(J in 0..19 {
            let j: usize = J;
            if j < (PIXELS - 1) * S + K {
                let ix = x0 + j as isize;
                if ix >= 0 && (ix as usize) < g.w {
                    let v: [f32; L] = row[ix as usize * c + cb..][..L]
                        .try_into()
                        .expect("a block of input");
                    seq!(KX in 0..5 {
                        // output p takes column j through tap KX when j = p·S + KX (for
                        // j < KX, d wraps past every span)
                        let d = j.wrapping_sub(KX);
                        if KX < K && d < PIXELS * S && d.is_multiple_of(S) {
                            let a = &mut acc[d / S];
                            let t = &t[KX];
                            for l in 0..L {
                                a[l] = madd::<FMA>(v[l], t[l], a[l]);
                            }
                        }
                    });
                }
            }
        });
    }
    let ow = orow.len() / c;
    for (p, a) in acc.iter().enumerate().take(ow.saturating_sub(ox)) {
        let o = &mut orow[(ox + p) * c + cb..][..L];
        for (o, v) in o.iter_mut().zip(a) {
            *o = g.finish(*v);
        }
    }
}

/// The weights of an inverted-residual block ([`mbconv`]): a 1×1 expansion with ReLU6, a
/// `k`×`k` depthwise convolution of `stride` (TensorFlow "same" padding) with ReLU6, and a
/// 1×1 projection, plus the input when `residual`.
#[derive(Debug, Clone, Copy)]
pub struct MbConv<'a> {
    /// Expansion weight `[cin, mid]` (packed) and bias `[mid]`.
    pub expand: (&'a Packed, &'a [f32]),
    /// Depthwise taps `[k, k, mid]` and bias `[mid]`.
    pub depthwise: (&'a [f32], &'a [f32]),
    /// Window size.
    pub k: usize,
    /// Window stride.
    pub stride: usize,
    /// Projection weight `[mid, cout]` (packed) and bias `[cout]`.
    pub project: (&'a Packed, &'a [f32]),
    /// Whether the input is added to the output (stride 1 and `cin == cout` only).
    pub residual: bool,
}

/// Floats of rolling expanded rows and depthwise output [`mbconv`] aims to keep per strip
/// (about 256 KiB: well inside the L2 cache).
const STRIP_FLOATS: usize = 64 * 1024;

/// An inverted-residual block, fused: output rows are made in strips of a few rows, and only
/// the expanded input rows those need (kept in a rolling buffer, each computed once) and the
/// strip's depthwise output exist at a time, so the expanded activation (6× the input's
/// channels) never goes to memory whole. The same arithmetic as [`pointwise`] (expand),
/// [`depthwise`] and [`pointwise`] (project) one after the other.
/// More threads split each image's output rows (the rows at a split are expanded twice).
/// Returns the output's shape; `out` is `[n, oh, ow, cout]`.
///
/// `strips` holds the caller's buffers for the rolling rows, one per thread (a session's,
/// kept between calls so they are neither allocated nor faulted in again): a unit of work
/// on rayon thread `i` of the pool takes `strips[i % strips.len()]`, on the caller's thread
/// `strips[0]`.
///
/// # Panics
/// As the other kernels, on shapes that do not fit; and when `strips` is empty.
pub fn mbconv(
    x: &[f32],
    shape: Nhwc,
    b: &MbConv<'_>,
    out: &mut [f32],
    threads: usize,
    strips: &[Mutex<Vec<f32>>],
) -> Nhwc {
    let Nhwc { n, h, w, c: cin } = shape;
    let (we, be) = b.expand;
    let (taps, bd) = b.depthwise;
    let (wp, bp) = b.project;
    let (mid, cout) = (be.len(), bp.len());
    assert_eq!(x.len(), shape.len(), "mbconv: input shape");
    assert_eq!(
        (we.k(), we.n()),
        (cin, mid),
        "mbconv: expansion is not cin×mid"
    );
    assert_eq!(taps.len(), b.k * b.k * mid, "mbconv: taps are not k×k×mid");
    assert_eq!(bd.len(), mid, "mbconv: depthwise bias");
    assert_eq!(
        (wp.k(), wp.n()),
        (mid, cout),
        "mbconv: projection is not mid×cout"
    );
    assert!(b.k > 0 && b.stride > 0, "mbconv: zero kernel or stride");
    assert!(!strips.is_empty(), "mbconv: no strip buffer");
    assert!(
        !b.residual || (b.stride == 1 && cin == cout),
        "mbconv: a residual needs stride 1 and cin == cout"
    );
    let pad = Pad::same(h, w, b.k, b.stride);
    let (oh, ow) = shape.out(b.k, b.stride, pad);
    let out_shape = Nhwc {
        n,
        h: oh,
        w: ow,
        c: cout,
    };
    assert_eq!(out.len(), out_shape.len(), "mbconv: output shape");
    // output rows per strip, and the rolling rows they need
    let strip = (STRIP_FLOATS / ((b.stride * w + ow) * mid).max(1)).clamp(1, oh.max(1));
    let ring = (b.k + strip * b.stride).min(h);
    let geometry = Window {
        h,
        w,
        c: mid,
        ring,
        k: b.k,
        stride: b.stride,
        pad,
        relu6: true,
    };
    // units of work: a run of one image's output rows
    let parts = if threads > 1 {
        (2 * threads).div_ceil(n).clamp(1, oh.max(1))
    } else {
        1
    };
    let per = oh.div_ceil(parts).max(1);
    let unit = |img: usize, oy0: usize, dst: &mut [f32]| {
        let image = &x[img * h * w * cin..(img + 1) * h * w * cin];
        let oy1 = oy0 + dst.len() / (ow * cout);
        let slot = match rayon::current_thread_index() {
            Some(i) if threads > 1 => i,
            _ => 0,
        };
        {
            let mut scratch = strips[slot % strips.len()]
                .lock()
                .unwrap_or_else(|e| e.into_inner());
            let need = ring * w * mid + strip * ow * mid;
            if scratch.len() < need {
                scratch.resize(need, 0.0);
            }
            let (rows, dw) = scratch[..need].split_at_mut(ring * w * mid);
            // next input row to expand
            let mut next = (oy0 * b.stride).saturating_sub(pad.top);
            for a in (oy0..oy1).step_by(strip) {
                let z = (a + strip).min(oy1);
                // input rows the strip's last window reaches
                let hi = ((z - 1) * b.stride + b.k).saturating_sub(pad.top).min(h);
                while next < hi {
                    // a run of rows that does not wrap around the ring
                    let slot = next % ring;
                    let run = (hi - next).min(ring - slot);
                    let dst = &mut rows[slot * w * mid..(slot + run) * w * mid];
                    let src = &image[next * w * cin..(next + run) * w * cin];
                    gemm(run * w, src, cin, we, be, Act::Relu6, None, dst);
                    next += run;
                }
                let dw = &mut dw[..(z - a) * ow * mid];
                for (i, orow) in dw.chunks_exact_mut(ow * mid).enumerate() {
                    depthwise_row(rows, &geometry, taps, bd, a + i, orow);
                }
                let o = &mut dst[(a - oy0) * ow * cout..(z - oy0) * ow * cout];
                let res = b.residual.then(|| &image[a * w * cin..z * w * cin]);
                gemm((z - a) * ow, dw, mid, wp, bp, Act::Identity, res, o);
            }
        }
    };
    let mut units: Vec<(usize, usize, &mut [f32])> = Vec::with_capacity(n * parts);
    for (img, o) in out.chunks_mut((oh * ow * cout).max(1)).enumerate() {
        for (i, d) in o.chunks_mut(per * ow * cout).enumerate() {
            units.push((img, i * per, d));
        }
    }
    if threads > 1 {
        units
            .into_par_iter()
            .for_each(|(img, oy0, d)| unit(img, oy0, d));
    } else {
        for (img, oy0, d) in units {
            unit(img, oy0, d);
        }
    }
    out_shape
}

/// A dense `k`×`k` convolution from an NCHW input (the stem: few input channels) to NHWC,
/// with `w` `[k·k·cin, cout]` (packed, rows in order ky, kx, ci), plus bias and `act`, into
/// `out` (`[n, oh, ow, cout]`). The input is copied channels-last into a zero-padded image,
/// where each output row is one [`gemm_windows`] over its windows in place (no im2col).
/// Returns the output's shape.
#[allow(clippy::too_many_arguments)]
pub fn conv_nchw_to_nhwc(
    x: &[f32],
    shape_nchw: (usize, usize, usize, usize),
    w: &Packed,
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
    assert_eq!(
        (w.k(), w.n()),
        (depth, cout),
        "conv: weight is not (k·k·cin)×cout"
    );
    assert!(k > 0 && stride > 0, "conv: zero kernel or stride");
    let shape = Nhwc {
        n,
        h,
        w: wd,
        c: cin,
    };
    let (oh, ow) = shape.out(k, stride, pad);
    assert_eq!(out.len(), n * oh * ow * cout, "conv: output shape");
    // channels-last inside a border of zeros, so that every window lies inside
    let (hp, wp) = (h + pad.top + pad.bottom, wd + pad.left + pad.right);
    let mut xl = vec![0.0_f32; n * hp * wp * cin];
    for (img, src) in x.chunks_exact(cin * h * wd).enumerate() {
        let dst = &mut xl[img * hp * wp * cin..(img + 1) * hp * wp * cin];
        for (ci, plane) in src.chunks_exact(h * wd).enumerate() {
            for (y, row) in plane.chunks_exact(wd).enumerate() {
                let at = ((y + pad.top) * wp + pad.left) * cin + ci;
                for (px, v) in row.iter().enumerate() {
                    dst[at + px * cin] = *v;
                }
            }
        }
    }
    // tap (ky, kx, ci) of a window lies this far from the window's corner
    let offsets: Vec<usize> = (0..k)
        .flat_map(|ky| (0..k * cin).map(move |r| ky * wp * cin + r))
        .collect();
    for_rows(out, ow * cout, 1, threads, |first, chunk| {
        for (i, orow) in chunk.chunks_exact_mut(ow * cout).enumerate() {
            let (img, oy) = ((first + i) / oh, (first + i) % oh);
            let corner = (img * hp + oy * stride) * wp * cin;
            // windows of one output row: `stride · cin` apart
            let windows = &xl[corner..];
            gemm_windows(ow, windows, stride * cin, &offsets, w, bias, act, orow);
        }
    });
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
