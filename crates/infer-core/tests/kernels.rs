//! The native kernels against naive references on odd shapes (these tests also run under
//! valgrind: `sgemm` wraps the `gemm` crate's unsafe entry point).
#![cfg(feature = "cpu")]

use std::sync::Mutex;

use inferkit_infer_core::cpu::epilogue::Act;
use inferkit_infer_core::cpu::kernels::{Pad, Strides, sgemm, sgemm_strided};
use inferkit_infer_core::cpu::nhwc::{self, Nhwc};
use inferkit_infer_core::cpu::packed::{self, Packed};
use ndarray::{Array1, Array4};

fn value(i: usize) -> f32 {
    ((i * 7919 + 13) % 101) as f32 / 50.0 - 1.0
}

#[test]
fn sgemm_matches_a_naive_product() {
    for &(m, k, n) in &[
        (1, 1, 1),
        (3, 5, 7),
        (17, 1, 9),
        (33, 64, 5),
        (8, 0, 4),
        (64, 27, 130),
        (2, 300, 3),
    ] {
        let a: Vec<f32> = (0..m * k).map(value).collect();
        let b: Vec<f32> = (0..k * n).map(|i| value(i + 5)).collect();
        let mut c = vec![f32::NAN; m * n];
        sgemm(m, k, n, &a, &b, &mut c);
        for i in 0..m {
            for j in 0..n {
                let want: f32 = (0..k).map(|p| a[i * k + p] * b[p * n + j]).sum();
                assert!(
                    (c[i * n + j] - want).abs() <= 1e-4 * (1.0 + want.abs()),
                    "{m}x{k}x{n} at ({i},{j})"
                );
            }
        }
    }
}

#[test]
#[should_panic(expected = "sgemm: c holds fewer than 2 rows of 2")]
fn sgemm_refuses_short_slices() {
    let mut c = vec![0.0; 3];
    sgemm(2, 2, 2, &[1.0; 4], &[1.0; 4], &mut c);
}

#[test]
#[should_panic(expected = "reaches past its slice")]
fn sgemm_strided_refuses_strides_past_the_end() {
    let mut c = vec![0.0; 4];
    // b as the transpose of a 2×3 matrix needs 6 elements
    sgemm_strided(
        2,
        3,
        2,
        (&[1.0; 6], Strides::row_major(3)),
        (&[1.0; 5], Strides::transposed(3)),
        (&mut c, 2),
    );
}

#[test]
fn sgemm_strided_reads_transposed_operands_and_writes_a_block() {
    let (m, k, n) = (5, 7, 3);
    let a: Vec<f32> = (0..m * k).map(value).collect();
    // w is [n, k] row-major; b = wᵀ
    let w: Vec<f32> = (0..n * k).map(|i| value(i + 40)).collect();
    // c is the middle 3 columns of a 5×8 matrix, the rest untouched
    let mut c = vec![9.0_f32; m * 8];
    sgemm_strided(
        m,
        k,
        n,
        (&a, Strides::row_major(k)),
        (&w, Strides::transposed(k)),
        (&mut c[2..], 8),
    );
    for i in 0..m {
        for j in 0..8 {
            let want = if (2..2 + n).contains(&j) {
                (0..k).map(|p| a[i * k + p] * w[(j - 2) * k + p]).sum()
            } else {
                9.0
            };
            assert!((c[i * 8 + j] - want).abs() <= 1e-5, "({i}, {j})");
        }
    }
}

/// Direct convolution with explicit zero padding, groups = 1 or depthwise.
fn naive(
    x: &Array4<f32>,
    w: &Array4<f32>,
    bias: &Array1<f32>,
    stride: usize,
    pad: Pad,
    depthwise: bool,
) -> Array4<f32> {
    let (n, cin, h, wd) = x.dim();
    let (cout, _, k, _) = w.dim();
    let oh = (h + pad.top + pad.bottom - k) / stride + 1;
    let ow = (wd + pad.left + pad.right - k) / stride + 1;
    Array4::from_shape_fn((n, cout, oh, ow), |(b, o, y, xo)| {
        let mut acc = bias[o];
        let chans: Vec<usize> = if depthwise {
            vec![o]
        } else {
            (0..cin).collect()
        };
        for (ci, c) in chans.iter().enumerate() {
            for ky in 0..k {
                for kx in 0..k {
                    let iy = (y * stride + ky) as isize - pad.top as isize;
                    let ix = (xo * stride + kx) as isize - pad.left as isize;
                    if iy >= 0 && ix >= 0 && (iy as usize) < h && (ix as usize) < wd {
                        let wi = if depthwise { 0 } else { ci };
                        acc += x[[b, *c, iy as usize, ix as usize]] * w[[o, wi, ky, kx]];
                    }
                }
            }
        }
        acc
    })
}

/// `[n, c, h, w]` → NHWC floats.
fn to_nhwc(x: &Array4<f32>) -> Vec<f32> {
    x.view()
        .permuted_axes([0, 2, 3, 1])
        .iter()
        .copied()
        .collect()
}

fn close(got: &[f32], want: &[f32], what: &str) {
    assert_eq!(got.len(), want.len(), "{what}: length");
    let worst = got
        .iter()
        .zip(want)
        .map(|(a, b)| (a - b).abs())
        .fold(0.0_f32, f32::max);
    assert!(worst <= 1e-4, "{what}: max |diff| {worst}");
}

#[test]
fn nhwc_kernels_match_the_direct_formula_on_one_and_three_threads() {
    for threads in [1, 3] {
        for &(n, c, h, w, k, stride) in &[
            (1, 3, 9, 7, 3, 2),
            (2, 4, 8, 8, 3, 1),
            (1, 5, 11, 6, 5, 2),
            (2, 3, 7, 10, 5, 1),
            (3, 17, 6, 5, 3, 2),
            // channel blocks of 16 (8 below AVX-512) with and without a tail; rows shorter
            // than a span of 8 outputs, a whole number of spans, and spans cut at the end
            (1, 40, 9, 13, 3, 1),
            (2, 32, 12, 11, 5, 2),
            (1, 16, 7, 20, 3, 2),
            (1, 48, 5, 17, 5, 1),
            (1, 24, 7, 7, 5, 1),
            (1, 32, 16, 16, 3, 1),
            (2, 64, 15, 15, 5, 2),
            (1, 16, 3, 2, 5, 1),
            // a window with no span kernel (a pixel at a time)
            (1, 16, 9, 9, 7, 1),
        ] {
            let what = format!("{n}x{c}x{h}x{w} k{k} s{stride} on {threads} threads");
            let x = Array4::from_shape_fn((n, c, h, w), |(a, b, y, z)| {
                value(((a * c + b) * h + y) * w + z)
            });
            let shape = Nhwc { n, h, w, c };
            let pad = Pad::same(h, w, k, stride);
            // depthwise, then ReLU6
            let wd =
                Array4::from_shape_fn((c, 1, k, k), |(a, _, y, z)| value(a * 31 + y * 5 + z + 3));
            let bd = Array1::from_shape_fn(c, |i| value(i + 11));
            let taps: Vec<f32> = wd
                .view()
                .permuted_axes([1, 2, 3, 0])
                .iter()
                .copied()
                .collect();
            let (oh, ow) = shape.out(k, stride, pad);
            let mut got = vec![f32::NAN; n * oh * ow * c];
            nhwc::depthwise(
                &to_nhwc(&x),
                shape,
                &taps,
                bd.as_slice().unwrap(),
                k,
                stride,
                pad,
                Act::Relu6,
                &mut got,
                threads,
            );
            let want = naive(&x, &wd, &bd, stride, pad, true).mapv(|v| v.clamp(0.0, 6.0));
            close(&got, &to_nhwc(&want), &format!("depthwise {what}"));
            // dense convolution from NCHW
            let cout = 6;
            let wc = Array4::from_shape_fn((cout, c, k, k), |(a, b, y, z)| {
                value(((a * c + b) * k + y) * k + z + 7)
            });
            let bc = Array1::from_shape_fn(cout, |i| value(i + 2));
            let packed: Vec<f32> = wc
                .view()
                .permuted_axes([2, 3, 1, 0])
                .iter()
                .copied()
                .collect();
            let mut got = vec![f32::NAN; n * oh * ow * cout];
            let out_shape = nhwc::conv_nchw_to_nhwc(
                x.as_slice().unwrap(),
                (n, c, h, w),
                &Packed::new(&packed, k * k * c, cout),
                bc.as_slice().unwrap(),
                k,
                stride,
                pad,
                Act::Identity,
                &mut got,
                threads,
            );
            assert_eq!((out_shape.h, out_shape.w, out_shape.c), (oh, ow, cout));
            let want = naive(&x, &wc, &bc, stride, pad, false);
            close(&got, &to_nhwc(&want), &format!("conv {what}"));
            // 1×1 convolution with a residual and ReLU6
            let w1 = Array4::from_shape_fn((c, c, 1, 1), |(a, b, _, _)| value(a * 13 + b + 5));
            let b1 = Array1::from_shape_fn(c, |i| value(i + 9));
            let wt: Vec<f32> = w1
                .view()
                .permuted_axes([2, 3, 1, 0])
                .iter()
                .copied()
                .collect();
            let mut got = vec![f32::NAN; shape.len()];
            let xs = to_nhwc(&x);
            nhwc::pointwise(
                &xs,
                &Packed::new(&wt, c, c),
                b1.as_slice().unwrap(),
                Act::Relu6,
                Some(&xs),
                &mut got,
                threads,
            );
            let want = (naive(&x, &w1, &b1, 1, Pad::NONE, false) + &x).mapv(|v| v.clamp(0.0, 6.0));
            close(&got, &to_nhwc(&want), &format!("pointwise {what}"));
        }
    }
}

#[test]
fn same_padding_is_tensorflows() {
    // 224 / stride 2 / k 3: output 112, total pad 1: (0, 1)
    assert_eq!(
        Pad::same(224, 224, 3, 2),
        Pad {
            top: 0,
            left: 0,
            bottom: 1,
            right: 1
        }
    );
    // k 5, stride 1: 2 on each side
    assert_eq!(
        Pad::same(14, 14, 5, 1),
        Pad {
            top: 2,
            left: 2,
            bottom: 2,
            right: 2
        }
    );
    // k 5, stride 2 on 28: output 14, total 3: (1, 2)
    assert_eq!(
        Pad::same(28, 28, 5, 2),
        Pad {
            top: 1,
            left: 1,
            bottom: 2,
            right: 2
        }
    );
}

/// The fused block against its three kernels one after the other (which the test above
/// checks against the direct formula). Most shapes take several strips, so the rolling rows
/// wrap around; three threads also split images.
#[test]
fn mbconv_equals_expand_depthwise_project_on_one_and_three_threads() {
    for threads in [1, 3] {
        for &(n, cin, mid, cout, h, w, k, stride) in &[
            // EfficientNet's shapes, scaled down: a residual block, stride 2, 5×5
            (1, 16, 96, 16, 23, 23, 3, 1),
            (2, 16, 96, 24, 30, 29, 3, 2),
            (1, 24, 144, 40, 17, 17, 5, 2),
            (2, 40, 240, 40, 12, 12, 5, 1),
            // whole image in one strip, channels off the 16-lane blocks, a tall thin image
            (1, 8, 40, 8, 7, 7, 5, 1),
            (3, 5, 30, 7, 9, 4, 3, 2),
            (1, 16, 512, 16, 70, 9, 3, 1),
            (1, 24, 480, 40, 41, 20, 5, 2),
        ] {
            let what =
                format!("n{n} {cin}->{mid}->{cout} {h}x{w} k{k} s{stride} on {threads} threads");
            let f = |len: usize, seed: usize| -> Vec<f32> {
                (0..len).map(|i| value(i * 3 + seed) * 0.5).collect()
            };
            let shape = Nhwc { n, h, w, c: cin };
            let x = f(shape.len(), 1);
            let (we, be) = (Packed::new(&f(cin * mid, 2), cin, mid), f(mid, 3));
            let (taps, bd) = (f(k * k * mid, 4), f(mid, 5));
            let (wp, bp) = (Packed::new(&f(mid * cout, 6), mid, cout), f(cout, 7));
            let residual = stride == 1 && cin == cout;
            // one kernel after another
            let mut e = vec![f32::NAN; n * h * w * mid];
            nhwc::pointwise(&x, &we, &be, Act::Relu6, None, &mut e, 1);
            let mid_shape = Nhwc { c: mid, ..shape };
            let pad = Pad::same(h, w, k, stride);
            let (oh, ow) = mid_shape.out(k, stride, pad);
            let mut d = vec![f32::NAN; n * oh * ow * mid];
            nhwc::depthwise(
                &e,
                mid_shape,
                &taps,
                &bd,
                k,
                stride,
                pad,
                Act::Relu6,
                &mut d,
                1,
            );
            let mut want = vec![f32::NAN; n * oh * ow * cout];
            let res = residual.then_some(&x[..]);
            nhwc::pointwise(&d, &wp, &bp, Act::Identity, res, &mut want, 1);
            // fused
            let block = nhwc::MbConv {
                expand: (&we, &be),
                depthwise: (&taps, &bd),
                k,
                stride,
                project: (&wp, &bp),
                residual,
            };
            let mut got = vec![f32::NAN; want.len()];
            let strips: Vec<Mutex<Vec<f32>>> = (0..threads).map(|_| Mutex::default()).collect();
            let out = nhwc::mbconv(&x, shape, &block, &mut got, threads, &strips);
            assert_eq!((out.n, out.h, out.w, out.c), (n, oh, ow, cout), "{what}");
            close(&got, &want, &what);
            assert!(
                got.iter().all(|v| v.is_finite()),
                "{what}: an output left unwritten"
            );
        }
    }
}

/// The packed GEMM (AVX-512 panels where the CPU has them) and its portable path against a
/// sum in f64, over every row count of a tile (1–12) and past it, columns on and off the
/// 16- and 32-column panels, depths across the 256-deep passes, rows of `a` wider than
/// `k`, and each fused epilogue: bias, residual, ReLU6, GELU.
#[test]
fn packed_gemm_equals_a_direct_sum_for_every_tile_shape() {
    let mut checked = 0;
    for &k in &[1_usize, 3, 16, 27, 256, 600] {
        for &n in &[
            1_usize, 5, 8, 15, 16, 17, 24, 31, 32, 33, 40, 47, 48, 80, 100,
        ] {
            let w: Vec<f32> = (0..k * n).map(|i| value(i * 7 + 1)).collect();
            let bias: Vec<f32> = (0..n).map(|i| value(i + 3) * 4.0).collect();
            let layouts = [Packed::new(&w, k, n), Packed::portable(&w, k, n)];
            // (200 rows: two blocks of rows; only on small products, so that the test stays
            // quick under valgrind)
            let tall: &[usize] = if k * n <= 27 * 40 { &[200] } else { &[] };
            for &m in [1_usize, 2, 5, 11, 12, 13, 24, 25].iter().chain(tall) {
                let lda = k + 3;
                let a: Vec<f32> = (0..m * lda).map(|i| value(i * 5 + 2)).collect();
                let res: Vec<f32> = (0..m * n).map(|i| value(i + 11) * 3.0).collect();
                for act in [Act::Identity, Act::Relu6, Act::Gelu] {
                    for residual in [None, Some(&res[..])] {
                        // each sum, and the sum of its terms' magnitudes (f32 rounding
                        // grows with it)
                        let (want, scale): (Vec<f32>, Vec<f64>) = (0..m * n)
                            .map(|at| {
                                let (i, j) = (at / n, at % n);
                                let mut s = f64::from(bias[j]);
                                let mut mag = s.abs();
                                for p in 0..k {
                                    let t = f64::from(a[i * lda + p]) * f64::from(w[p * n + j]);
                                    s += t;
                                    mag += t.abs();
                                }
                                if let Some(r) = residual {
                                    s += f64::from(r[at]);
                                    mag += f64::from(r[at]).abs();
                                }
                                let v = s as f32;
                                let v = match act {
                                    Act::Identity => v,
                                    Act::Relu6 => v.clamp(0.0, 6.0),
                                    Act::Gelu => {
                                        let mut g = [v];
                                        inferkit_infer_core::cpu::math::gelu(&mut g);
                                        g[0]
                                    }
                                };
                                (v, mag)
                            })
                            .unzip();
                        for wl in &layouts {
                            let mut got = vec![f32::NAN; m * n];
                            packed::gemm(m, &a, lda, wl, &bias, act, residual, &mut got);
                            for (at, ((g, w), s)) in got.iter().zip(&want).zip(&scale).enumerate() {
                                let tol = 4e-6 * s + 1e-6;
                                assert!(
                                    f64::from((g - w).abs()) <= tol,
                                    "{m}x{k}x{n} {act:?} residual {} {wl:?}: [{}, {}] is {g}, \
                                     not {w}",
                                    residual.is_some(),
                                    at / n,
                                    at % n
                                );
                            }
                            checked += 1;
                        }
                    }
                }
            }
        }
    }
    assert!(checked >= 6 * 15 * 8 * 3 * 2 * 2, "{checked}");
}

/// Products deeper than one pass of the kernel (2048) carry their sums from pass to pass
/// in the output, and add the residual and clamp only after the last: against the
/// portable path (the `gemm` crate).
#[test]
fn packed_gemm_carries_sums_across_passes() {
    for &(m, k, n) in &[
        (1_usize, 2049_usize, 17_usize),
        (13, 4097, 40),
        (30, 2048, 33),
    ] {
        let a: Vec<f32> = (0..m * k).map(|i| value(i * 3 + 1) * 0.1).collect();
        let w: Vec<f32> = (0..k * n).map(|i| value(i * 7 + 2) * 0.1).collect();
        let bias: Vec<f32> = (0..n).map(|i| value(i + 5)).collect();
        let res: Vec<f32> = (0..m * n).map(|i| value(i + 9) * 2.0).collect();
        let mut want = vec![f32::NAN; m * n];
        let portable = Packed::portable(&w, k, n);
        packed::gemm(
            m,
            &a,
            k,
            &portable,
            &bias,
            Act::Relu6,
            Some(&res),
            &mut want,
        );
        let mut got = vec![f32::NAN; m * n];
        let wl = Packed::new(&w, k, n);
        packed::gemm(m, &a, k, &wl, &bias, Act::Relu6, Some(&res), &mut got);
        close(&got, &want, &format!("{m}x{k}x{n} {wl:?}"));
        assert!(
            want.iter().any(|v| *v > 0.0 && *v < 6.0),
            "{m}x{k}x{n}: all clamped"
        );
    }
}

/// One row (a classifier at batch 1) runs four panels at a time: its outputs, with the
/// columns after the last group of four, against the portable path.
#[test]
fn packed_gemm_of_one_row_equals_the_portable_path() {
    for &(k, n) in &[
        (1_usize, 128_usize),
        (300, 160),
        (1280, 1000),
        (7, 129),
        (64, 127),
    ] {
        let a: Vec<f32> = (0..k).map(|i| value(i * 3 + 1)).collect();
        let w: Vec<f32> = (0..k * n).map(|i| value(i * 7 + 2) * 0.1).collect();
        let bias: Vec<f32> = (0..n).map(|i| value(i + 5)).collect();
        let res: Vec<f32> = (0..n).map(|i| value(i + 9) * 2.0).collect();
        for (act, residual) in [(Act::Identity, None), (Act::Relu6, Some(&res[..]))] {
            let mut want = vec![f32::NAN; n];
            let portable = Packed::portable(&w, k, n);
            packed::gemm(1, &a, k, &portable, &bias, act, residual, &mut want);
            let mut got = vec![f32::NAN; n];
            let wl = Packed::new(&w, k, n);
            packed::gemm(1, &a, k, &wl, &bias, act, residual, &mut got);
            close(&got, &want, &format!("1x{k}x{n} {act:?} {wl:?}"));
        }
    }
}

/// Rows gathered at offsets (a convolution's windows in place) equal the same rows copied
/// out first, on both layouts, across tile sizes and a pass boundary.
#[test]
fn packed_gemm_windows_equals_the_rows_gathered_first() {
    for &(m, k, n, lda) in &[
        (1_usize, 27_usize, 32_usize, 6_usize),
        (13, 27, 32, 6),
        (112, 27, 40, 6),
        (25, 300, 17, 2),
    ] {
        // a window: runs of 9 floats, one every 50, past a shifting corner
        let offsets: Vec<usize> = (0..k).map(|p| p / 9 * 50 + p % 9).collect();
        let span = (m - 1) * lda + offsets.iter().max().unwrap() + 1;
        let a: Vec<f32> = (0..span).map(|i| value(i * 3 + 1)).collect();
        let w: Vec<f32> = (0..k * n).map(|i| value(i * 7 + 2)).collect();
        let bias: Vec<f32> = (0..n).map(|i| value(i + 5)).collect();
        let rows: Vec<f32> = (0..m * k)
            .map(|at| a[at / k * lda + offsets[at % k]])
            .collect();
        for wl in [Packed::new(&w, k, n), Packed::portable(&w, k, n)] {
            let mut want = vec![f32::NAN; m * n];
            packed::gemm(m, &rows, k, &wl, &bias, Act::Relu6, None, &mut want);
            let mut got = vec![f32::NAN; m * n];
            packed::gemm_windows(m, &a, lda, &offsets, &wl, &bias, Act::Relu6, &mut got);
            close(&got, &want, &format!("windows {m}x{k}x{n} {wl:?}"));
        }
    }
}

/// An offset past the end of the left side is refused, not read.
#[test]
#[should_panic(expected = "too short")]
fn packed_gemm_windows_refuses_offsets_past_the_end() {
    let w = Packed::new(&[1.0; 4 * 16], 4, 16);
    let mut out = [0.0; 2 * 16];
    packed::gemm_windows(
        2,
        &[1.0; 10],
        3,
        &[0, 1, 2, 7],
        &w,
        &[0.0; 16],
        Act::Identity,
        &mut out,
    );
}

/// The layout follows the CPU: panels exactly where AVX-512F is (so the test above ran the
/// kernel on such a machine), row-major elsewhere; and a product of depth 0 is the bias.
#[test]
fn packed_layout_follows_the_cpu_and_depth_zero_is_the_bias() {
    let w = Packed::new(&[0.0; 64 * 40], 64, 40);
    #[cfg(target_arch = "x86_64")]
    assert_eq!(
        w.is_panels(),
        std::arch::is_x86_feature_detected!("avx512f")
    );
    // panels of 32 and 8 columns hold 40 without padding; 41 take 32 + 16
    if w.is_panels() {
        assert_eq!(w.heap_bytes(), 64 * 40 * 4);
        assert_eq!(Packed::new(&[0.0; 2 * 41], 2, 41).heap_bytes(), 2 * 48 * 4);
    }
    for wl in [Packed::new(&[], 0, 3), Packed::portable(&[], 0, 3)] {
        let mut out = [f32::NAN; 6];
        packed::gemm(
            2,
            &[],
            0,
            &wl,
            &[1.0, -2.0, 7.0],
            Act::Relu6,
            None,
            &mut out,
        );
        assert_eq!(out, [1.0, 0.0, 6.0, 1.0, 0.0, 6.0], "{wl:?}");
    }
}
