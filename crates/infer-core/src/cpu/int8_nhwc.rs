//! Channels-last int8 kernels beside [`int8`](super::int8)'s GEMM (a pointwise convolution
//! is that product): the depthwise convolution over `u8` activations with `s8` taps, and the
//! static quantization of an `f32` activation onto one scale and zero point ([`QParams`]).
//!
//! **Depthwise.** Per channel `c`, the exact sum `Σ (x − x_zero) · w[c]` over the taps
//! inside the image (outside is padding, real 0, so it is skipped: the same as padding with
//! the zero point), then the epilogue of the GEMM's `U8` output: `y = act(v · scale[c] +
//! bias[c])` (multiply-add fused), `clamp(round_half_even(y / out_scale) + out_zero, 0,
//! 255)`. Each product `(x − x_zero) · w` lies in ±255·128 and is exact in `i16`; the sums
//! are `i32` (exact for any window below 2¹⁶ taps). [`Isa::Vnni512`] runs the 3×3 and 5×5
//! windows of stride 1 and 2 over a multiple of 16 channels in AVX-512 intrinsics (16 channels of 8 output pixels at a
//! time, their sums in registers, `vpdpwssd`, and the epilogue of the GEMM's AVX-512
//! store); other windows and the other paths run in plain Rust over a pixel's
//! contiguous channels, compiled per SIMD level (`multiversion`). Every path gives the same
//! bits (tested against a plain integer reference).

use multiversion::multiversion;

use super::epilogue::Act;
use super::int8::{Isa, finish, quantize};
use super::kernels::Pad;
use super::nhwc::{Nhwc, for_rows};

/// An activation's quantization: `real = scale · (q − zero)`, `q` in `0..=255`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct QParams {
    /// Positive and finite.
    pub scale: f32,
    /// The `u8` that stands for real 0.
    pub zero: u8,
}

impl QParams {
    /// The parameters covering `[lo, hi]` (widened to hold 0, so padding and ReLU's zeros
    /// are exact): `scale = (hi − lo) / 255`, `zero = round_half_even(−lo / scale)`. A range
    /// of one point gets scale 1.
    ///
    /// ```
    /// use inferkit_infer_core::cpu::int8_nhwc::QParams;
    ///
    /// assert_eq!(QParams::from_range(0.0, 6.0), QParams { scale: 6.0 / 255.0, zero: 0 });
    /// assert_eq!(QParams::from_range(-1.0, 3.0).zero, 64);
    /// ```
    pub fn from_range(lo: f32, hi: f32) -> QParams {
        let (lo, hi) = (lo.min(0.0), hi.max(0.0));
        let scale = (hi - lo) / 255.0;
        if scale > 0.0 && scale.is_finite() {
            QParams {
                scale,
                zero: (-lo / scale).round_ties_even().clamp(0.0, 255.0) as u8,
            }
        } else {
            QParams {
                scale: 1.0,
                zero: 0,
            }
        }
    }

    /// The real value of `q`.
    #[inline(always)]
    pub fn real(self, q: u8) -> f32 {
        self.scale * (f32::from(q) - f32::from(self.zero))
    }
}

/// `out[i] = clamp(round_half_even(x[i] / p.scale) + p.zero, 0, 255)` (the GEMM's `U8`
/// store, on `f32` input), on `threads` threads.
///
/// # Panics
/// If the lengths differ.
pub fn quantize_tensor(x: &[f32], p: QParams, out: &mut [u8], threads: usize) {
    assert_eq!(x.len(), out.len(), "quantize_tensor: lengths differ");
    requantize(x, None, p, out, threads);
}

/// `out = quantize(y [+ real(r)])` in blocks of 4,096 on `threads` threads, AVX-512 where the
/// CPU has it (the scalar loops' bits): [`quantize_tensor`] and [`quantize_sum`], whose
/// lengths are checked.
fn requantize(y: &[f32], r: Option<(&[u8], QParams)>, q: QParams, out: &mut [u8], threads: usize) {
    for_rows(out, 4096, 64, threads, |first, chunk| {
        let at = first * 4096;
        let end = at + chunk.len();
        let (y, r) = (&y[at..end], r.map(|(r, rq)| (&r[at..end], rq)));
        #[cfg(target_arch = "x86_64")]
        if std::arch::is_x86_feature_detected!("avx512f") {
            // SAFETY: AVX-512F runs here; `y`, `r` and `chunk` are as long
            #[allow(unsafe_code)]
            unsafe {
                avx512::quantize_sum(y, r, q, chunk);
            }
            return;
        }
        match r {
            Some((r, rq)) => sum_run(y, r, rq, q, chunk),
            None => quantize_run(y, q, chunk),
        }
    });
}

#[multiversion(targets = "simd")]
fn quantize_run(x: &[f32], p: QParams, out: &mut [u8]) {
    let zero = i32::from(p.zero);
    for (o, &v) in out.iter_mut().zip(x) {
        *o = quantize(v, p.scale, zero);
    }
}

/// `out = quantize(y + real(r))`, element by element, on `threads` threads: a residual
/// connection, `y` in f32 (a projection's output) and `r` a `u8` activation on `rq`, the
/// sum quantized on `out_q`.
///
/// # Panics
/// If the lengths differ.
pub fn quantize_sum(
    y: &[f32],
    r: &[u8],
    rq: QParams,
    out_q: QParams,
    out: &mut [u8],
    threads: usize,
) {
    assert!(
        y.len() == out.len() && r.len() == out.len(),
        "quantize_sum: lengths differ"
    );
    requantize(y, Some((r, rq)), out_q, out, threads);
}

#[multiversion(targets = "simd")]
fn sum_run(y: &[f32], r: &[u8], rq: QParams, out_q: QParams, out: &mut [u8]) {
    let zero = i32::from(out_q.zero);
    for ((o, &y), &r) in out.iter_mut().zip(y).zip(r) {
        *o = quantize(y + rq.real(r), out_q.scale, zero);
    }
}

/// A depthwise convolution's `s8` taps and epilogue.
#[derive(Debug, Clone, Copy)]
pub struct DepthwiseI8<'a> {
    /// `[k, k, c]`, channel fastest.
    pub taps: &'a [i8],
    /// Window size.
    pub k: usize,
    /// Stride.
    pub stride: usize,
    /// Padding.
    pub pad: Pad,
    /// Per channel: the input's scale times the channel's tap scale.
    pub scale: &'a [f32],
    /// Per channel (real units).
    pub bias: &'a [f32],
    /// [`Act::Identity`] or [`Act::Relu6`].
    pub act: Act,
}

/// Depthwise convolution, NHWC, `u8` in (`x_zero`) and out (`out`'s parameters), on path
/// `isa`: see the module docs. `out` is `[n, oh, ow, c]`.
///
/// # Panics
/// If `isa` does not run on this CPU, a shape does not match, `k` or `stride` is 0, the
/// activation is GELU, or the output scale is not positive and finite.
#[allow(clippy::too_many_arguments)]
pub fn depthwise_u8(
    isa: Isa,
    x: &[u8],
    shape: Nhwc,
    x_zero: u8,
    conv: &DepthwiseI8<'_>,
    out: &mut [u8],
    out_q: QParams,
    threads: usize,
) {
    let Nhwc { h, w, c, .. } = shape;
    let (k, stride, pad) = (conv.k, conv.stride, conv.pad);
    assert!(
        isa.is_available(),
        "depthwise_u8: {isa:?} does not run on this CPU"
    );
    assert_eq!(x.len(), shape.len(), "depthwise_u8: input shape");
    assert!(k > 0 && stride > 0, "depthwise_u8: zero kernel or stride");
    assert_eq!(
        conv.taps.len(),
        k * k * c,
        "depthwise_u8: taps are not k×k×c"
    );
    assert!(
        conv.scale.len() == c && conv.bias.len() == c,
        "depthwise_u8: scale or bias is not one per channel"
    );
    assert!(
        conv.act != Act::Gelu,
        "depthwise_u8: GELU is not an int8 epilogue"
    );
    assert!(
        out_q.scale.is_finite() && out_q.scale > 0.0,
        "depthwise_u8: output scale {} is not positive and finite",
        out_q.scale
    );
    let (oh, ow) = shape.out(k, stride, pad);
    assert_eq!(
        out.len(),
        shape.n * oh * ow * c,
        "depthwise_u8: output shape"
    );
    if out.is_empty() {
        return;
    }
    let relu6 = conv.act == Act::Relu6;
    for_rows(out, ow * c, 1, threads, |first, chunk| {
        let mut acc = vec![0i32; c];
        for (i, orow) in chunk.chunks_exact_mut(ow * c).enumerate() {
            let (img, oy) = ((first + i) / oh, (first + i) % oh);
            let image = &x[img * h * w * c..(img + 1) * h * w * c];
            #[cfg(target_arch = "x86_64")]
            if isa == Isa::Vnni512 && c % 16 == 0 && matches!((k, stride), (3 | 5, 1 | 2)) {
                // SAFETY: AVX-512F runs here (`Vnni512` is available, checked above);
                // `image` is one h×w×c image, `orow` one output row of ow×c, the taps
                // k×k×c and the scales and biases c (checked above)
                #[allow(unsafe_code)]
                unsafe {
                    avx512::row(image, (h, w, c), conv, x_zero, oy, out_q, orow);
                }
                continue;
            }
            for (ox, o) in orow.chunks_exact_mut(c).enumerate() {
                acc.fill(0);
                for ky in 0..k {
                    let Some(iy) = (oy * stride + ky).checked_sub(pad.top).filter(|&y| y < h)
                    else {
                        continue;
                    };
                    for kx in 0..k {
                        let Some(ix) = (ox * stride + kx).checked_sub(pad.left).filter(|&x| x < w)
                        else {
                            continue;
                        };
                        let at = (iy * w + ix) * c;
                        let t = (ky * k + kx) * c;
                        mac(&mut acc, &image[at..at + c], &conv.taps[t..t + c], x_zero);
                    }
                }
                store(&acc, conv.scale, conv.bias, relu6, out_q, o);
            }
        }
    });
}

/// `acc[c] += (x[c] − zero) · w[c]`, the product in `i16` (exact: see the module docs).
#[multiversion(targets = "simd")]
fn mac(acc: &mut [i32], x: &[u8], w: &[i8], zero: u8) {
    let z = i16::from(zero);
    for ((a, &x), &w) in acc.iter_mut().zip(x).zip(w) {
        *a += i32::from((i16::from(x) - z) * i16::from(w));
    }
}

/// The `U8` epilogue of a pixel's sums.
#[multiversion(targets = "simd")]
fn store(acc: &[i32], scale: &[f32], bias: &[f32], relu6: bool, q: QParams, out: &mut [u8]) {
    let zero = i32::from(q.zero);
    for (((o, &v), &s), &b) in out.iter_mut().zip(acc).zip(scale).zip(bias) {
        *o = quantize(finish(v, s, b, relu6), q.scale, zero);
    }
}

#[cfg(target_arch = "x86_64")]
#[allow(unsafe_code)]
mod avx512 {
    use std::arch::x86_64::{
        __m128i, _mm_loadu_si128, _mm512_add_ps, _mm512_and_si512, _mm512_cvtepi8_epi32,
        _mm512_cvtepi32_ps, _mm512_cvtepu8_epi32, _mm512_dpwssd_epi32, _mm512_loadu_ps,
        _mm512_mask_cvtepi32_storeu_epi8, _mm512_mul_ps, _mm512_set1_epi32, _mm512_set1_ps,
        _mm512_setzero_si512, _mm512_sub_epi32, _mm512_sub_ps,
    };

    use super::super::int8::vnni::{finish, quantize};
    use super::{Act, DepthwiseI8, QParams};

    /// [`super::quantize_tensor`] (no `r`) and [`super::quantize_sum`] 16 values at a time,
    /// the operations of the scalar loops in the same order (the same bits); the last few
    /// values by those loops.
    ///
    /// # Safety
    /// AVX-512F is available; `y`, `out` and `r`'s bytes are equally long.
    #[target_feature(enable = "avx512f")]
    pub(super) unsafe fn quantize_sum(
        y: &[f32],
        r: Option<(&[u8], QParams)>,
        q: QParams,
        out: &mut [u8],
    ) {
        let whole = y.len() / 16 * 16;
        let zero = i32::from(q.zero);
        for i in (0..whole).step_by(16) {
            // SAFETY: 16 values from i < whole ≤ len of each (this function's contract)
            unsafe {
                let mut v = _mm512_loadu_ps(y.as_ptr().add(i));
                if let Some((r, rq)) = r {
                    let b = _mm512_cvtepu8_epi32(_mm_loadu_si128(r.as_ptr().add(i).cast()));
                    let centred =
                        _mm512_sub_ps(_mm512_cvtepi32_ps(b), _mm512_set1_ps(f32::from(rq.zero)));
                    v = _mm512_add_ps(v, _mm512_mul_ps(_mm512_set1_ps(rq.scale), centred));
                }
                let o = quantize(v, q.scale, zero);
                _mm512_mask_cvtepi32_storeu_epi8(out.as_mut_ptr().add(i).cast(), 0xFFFF, o);
            }
        }
        match r {
            Some((r, rq)) => super::sum_run(&y[whole..], &r[whole..], rq, q, &mut out[whole..]),
            None => super::quantize_run(&y[whole..], q, &mut out[whole..]),
        }
    }

    /// Output pixels a span computes together.
    const P: usize = 8;

    /// One output row (`oy`) of [`super::depthwise_u8`]: channels in blocks of 16 (one
    /// register of `i32` sums per output pixel), outputs in spans of [`P`] pixels. Per
    /// window row, the row's taps stay in registers and each input pixel under the span is
    /// loaded once (`x − zero` widened to `i32`) and added into every output it touches with
    /// `vpdpwssd` (each tap as the `i16` pair `(w, 0)`, so one instruction multiplies and
    /// adds). Inputs outside the image are skipped (padding is real 0); outputs past the
    /// row's end are computed and not stored.
    ///
    /// # Safety
    /// AVX-512F and AVX-512 VNNI are available; `image` is `h × w × c` bytes, `orow`
    /// `ow × c`, `conv`'s taps `k × k × c` and its scales and biases `c`; `c` is a multiple
    /// of 16; the window is 3×3 or 5×5 of stride 1 or 2.
    #[target_feature(enable = "avx512f,avx512vnni")]
    pub(super) unsafe fn row(
        image: &[u8],
        (h, w, c): (usize, usize, usize),
        conv: &DepthwiseI8<'_>,
        x_zero: u8,
        oy: usize,
        out_q: QParams,
        orow: &mut [u8],
    ) {
        let ow = orow.len() / c;
        let g = Geometry {
            h,
            w,
            c,
            oy,
            x_zero,
        };
        let mut cb = 0;
        while cb < c {
            let mut ox0 = 0;
            while ox0 < ow {
                // SAFETY: as this function's (channels cb.., outputs ox0..)
                unsafe {
                    match (conv.k, conv.stride) {
                        (3, 1) => span::<3, 1>(image, &g, conv, cb, ox0, out_q, orow),
                        (3, 2) => span::<3, 2>(image, &g, conv, cb, ox0, out_q, orow),
                        (5, 1) => span::<5, 1>(image, &g, conv, cb, ox0, out_q, orow),
                        (5, 2) => span::<5, 2>(image, &g, conv, cb, ox0, out_q, orow),
                        _ => unreachable!("the caller runs these four windows only"),
                    }
                }
                ox0 += P;
            }
            cb += 16;
        }
    }

    /// What a span needs of the input.
    struct Geometry {
        h: usize,
        w: usize,
        c: usize,
        oy: usize,
        x_zero: u8,
    }

    /// 16 bytes at `p`.
    ///
    /// # Safety
    /// 16 bytes are readable at `p`.
    #[target_feature(enable = "avx512f")]
    #[inline]
    unsafe fn bytes(p: *const u8) -> __m128i {
        // SAFETY: this function's contract
        unsafe { _mm_loadu_si128(p.cast()) }
    }

    /// Outputs `ox0..ox0 + P` (those before the row's end stored), channels `cb..cb + 16`,
    /// of a `K`×`K` window (`K ≤ 5`) of stride `S` (`S ≤ 2`).
    ///
    /// # Safety
    /// As [`row`].
    #[target_feature(enable = "avx512f,avx512vnni")]
    // (the unrolled copies for R = 0 and PP = 0 compare and multiply by zero)
    #[allow(
        clippy::too_many_arguments,
        clippy::identity_op,
        clippy::erasing_op,
        clippy::absurd_extreme_comparisons
    )]
    unsafe fn span<const K: usize, const S: usize>(
        image: &[u8],
        g: &Geometry,
        conv: &DepthwiseI8<'_>,
        cb: usize,
        ox0: usize,
        out_q: QParams,
        orow: &mut [u8],
    ) {
        let (pad, c) = (conv.pad, g.c);
        let low = _mm512_set1_epi32(0xFFFF);
        let zero = _mm512_set1_epi32(i32::from(g.x_zero));
        seq_macro::seq!(PP in 0..8 { let mut acc~PP = _mm512_setzero_si512(); });
        for ky in 0..K {
            let Some(iy) = (g.oy * S + ky).checked_sub(pad.top).filter(|&y| y < g.h) else {
                continue;
            };
            let mut taps = [_mm512_setzero_si512(); 5];
            seq_macro::seq!(KX in 0..5 {
                if KX < K {
                    // SAFETY: tap (ky, KX), channels cb.. (ky, KX < K; this function's
                    // contract)
                    let b = unsafe {
                        bytes(conv.taps.as_ptr().add((ky * K + KX) * c + cb).cast())
                    };
                    // the tap as the i16 pair (w, 0)
                    taps[KX] = _mm512_and_si512(_mm512_cvtepi8_epi32(b), low);
                }
            });
            // every input r under the span, and every output p it reaches through tap
            // kx = r − p·S, unrolled with constant indices (the sums stay in registers)
            seq_macro::seq!(R in 0..19 {
                if R < (P - 1) * S + K
                    && let Some(ix) = (ox0 * S + R).checked_sub(pad.left).filter(|&x| x < g.w)
                {
                    // SAFETY: pixel (iy, ix) of the image, channels cb.. (iy < h, ix < w)
                    let b = unsafe {
                        bytes(image.as_ptr().add((iy * g.w + ix) * c + cb))
                    };
                    // x − zero in i32: its low half the i16 value, exact
                    let x = _mm512_sub_epi32(_mm512_cvtepu8_epi32(b), zero);
                    seq_macro::seq!(PP in 0..8 {
                        if R >= PP * S && R - PP * S < K {
                            acc~PP = _mm512_dpwssd_epi32(acc~PP, x, taps[R - PP * S]);
                        }
                    });
                }
            });
        }
        let ow = orow.len() / c;
        // SAFETY: 16 scales and biases from channel cb
        let (scale, bias) = unsafe {
            (
                _mm512_loadu_ps(conv.scale.as_ptr().add(cb)),
                _mm512_loadu_ps(conv.bias.as_ptr().add(cb)),
            )
        };
        let relu6 = conv.act == Act::Relu6;
        let stored = ow.saturating_sub(ox0);
        // (constant indices again: a loop over the array would keep it in memory)
        seq_macro::seq!(PP in 0..8 {
            if PP < stored {
                let q = quantize(
                    finish(acc~PP, scale, bias, relu6),
                    out_q.scale,
                    i32::from(out_q.zero),
                );
                // SAFETY: output pixel ox0 + PP < ow, channels cb..cb + 16
                unsafe {
                    let at = orow.as_mut_ptr().add((ox0 + PP) * c + cb);
                    _mm512_mask_cvtepi32_storeu_epi8(at.cast(), 0xFFFF, q);
                }
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// The plain integer reference: every tap, padding as real 0, the same epilogue.
    fn naive(x: &[u8], shape: Nhwc, x_zero: u8, conv: &DepthwiseI8<'_>, out_q: QParams) -> Vec<u8> {
        let Nhwc { n, h, w, c } = shape;
        let (oh, ow) = shape.out(conv.k, conv.stride, conv.pad);
        let mut out = vec![0u8; n * oh * ow * c];
        for img in 0..n {
            for oy in 0..oh {
                for ox in 0..ow {
                    for ch in 0..c {
                        let mut v = 0i32;
                        for ky in 0..conv.k {
                            for kx in 0..conv.k {
                                let iy = (oy * conv.stride + ky) as isize - conv.pad.top as isize;
                                let ix = (ox * conv.stride + kx) as isize - conv.pad.left as isize;
                                if iy < 0 || ix < 0 || iy >= h as isize || ix >= w as isize {
                                    continue;
                                }
                                let xv = x[((img * h + iy as usize) * w + ix as usize) * c + ch];
                                let t = conv.taps[(ky * conv.k + kx) * c + ch];
                                v += (i32::from(xv) - i32::from(x_zero)) * i32::from(t);
                            }
                        }
                        let y = finish(v, conv.scale[ch], conv.bias[ch], conv.act == Act::Relu6);
                        out[((img * oh + oy) * ow + ox) * c + ch] =
                            quantize(y, out_q.scale, i32::from(out_q.zero));
                    }
                }
            }
        }
        out
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        #[test]
        fn depthwise_matches_the_integer_reference(
            n in 1usize..3, h in 1usize..12, w in 1usize..12,
            c in prop_oneof![1usize..40, Just(16usize), Just(32), Just(48)],
            k in prop::sample::select(vec![1usize, 3, 5, 9]), stride in 1usize..3,
            relu6 in any::<bool>(), x_zero in any::<u8>(), seed in any::<u64>(),
            threads in 1usize..4,
        ) {
            let shape = Nhwc { n, h, w, c };
            let mut s = seed | 1;
            let mut next = || { s ^= s << 13; s ^= s >> 7; s ^= s << 17; s };
            let x: Vec<u8> = (0..shape.len()).map(|_| next() as u8).collect();
            let taps: Vec<i8> = (0..k * k * c).map(|_| next() as i8).collect();
            let scale: Vec<f32> = (0..c).map(|_| (next() % 1000) as f32 * 1e-5 + 1e-6).collect();
            let bias: Vec<f32> = (0..c).map(|_| (next() % 2001) as f32 * 1e-3 - 1.0).collect();
            let pad = Pad::same(h, w, k, stride);
            let conv = DepthwiseI8 {
                taps: &taps, k, stride, pad, scale: &scale, bias: &bias,
                act: if relu6 { Act::Relu6 } else { Act::Identity },
            };
            let out_q = QParams::from_range(-2.0, 5.0);
            let (oh, ow) = shape.out(k, stride, pad);
            let want = naive(&x, shape, x_zero, &conv, out_q);
            for isa in Isa::available() {
                let mut out = vec![0u8; n * oh * ow * c];
                depthwise_u8(isa, &x, shape, x_zero, &conv, &mut out, out_q, threads);
                prop_assert_eq!(&out, &want, "{:?}", isa);
            }
        }
    }

    #[test]
    fn quantize_and_add_round_trip_within_a_step() {
        let p = QParams::from_range(-1.0, 3.0);
        let x: Vec<f32> = (0..10_000).map(|i| i as f32 * 4e-4 - 1.0).collect();
        let mut q = vec![0u8; x.len()];
        quantize_tensor(&x, p, &mut q, 2);
        for (&v, &q) in x.iter().zip(&q) {
            assert!((p.real(q) - v).abs() <= p.scale / 2.0 + 1e-6, "{v} → {q}");
        }
        let po = QParams::from_range(-2.0, 6.0);
        let mut sum = vec![0u8; x.len()];
        quantize_sum(&x, &q, p, po, &mut sum, 3);
        for (&v, &s) in x.iter().zip(&sum) {
            assert!((po.real(s) - 2.0 * v).abs() <= po.scale / 2.0 + p.scale + 1e-5);
        }
    }

    #[test]
    fn quantize_and_sum_give_the_scalar_bits() {
        // values on and beside rounding ties, out of range, and NaN; a length that leaves a
        // tail past the last 16
        let (p, rq) = (
            QParams::from_range(-3.0, 5.0),
            QParams::from_range(-1.0, 2.0),
        );
        let mut s = 0x9E37_79B9_u32;
        let mut next = || {
            s ^= s << 13;
            s ^= s >> 17;
            s ^= s << 5;
            s
        };
        let mut y: Vec<f32> = (0..4099)
            .map(|i| match i % 4 {
                0 => (i as f32 - 2000.0) * p.scale * 0.5,
                _ => (next() % 20_000) as f32 * 1e-3 - 10.0,
            })
            .collect();
        y[7] = f32::NAN;
        let r: Vec<u8> = (0..y.len()).map(|_| next() as u8).collect();
        let mut q = vec![0u8; y.len()];
        quantize_tensor(&y, p, &mut q, 2);
        let want: Vec<u8> = y
            .iter()
            .map(|&v| quantize(v, p.scale, i32::from(p.zero)))
            .collect();
        assert_eq!(q, want);
        quantize_sum(&y, &r, rq, p, &mut q, 2);
        let want: Vec<u8> = y
            .iter()
            .zip(&r)
            .map(|(&v, &r)| quantize(v + rq.real(r), p.scale, i32::from(p.zero)))
            .collect();
        assert_eq!(q, want);
    }

    #[test]
    fn a_degenerate_range_gets_scale_one() {
        assert_eq!(
            QParams::from_range(0.0, 0.0),
            QParams {
                scale: 1.0,
                zero: 0
            }
        );
        assert_eq!(QParams::from_range(f32::NAN, f32::NAN).scale, 1.0);
    }
}
