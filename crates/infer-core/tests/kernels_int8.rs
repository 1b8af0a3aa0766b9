//! The int8 GEMM (`cpu::int8`) on every path this CPU runs against a plain integer sum:
//! exact equality of the `i32` sums on random shapes (odd depths, ragged columns, rows of `a`
//! wider than `k`, any zero point, weights down to −128), the extremes that would saturate a
//! naive `vpmaddubsw` or overflow `i32`, and the `f32`/`u8` epilogues bit for bit against the
//! formula in the module docs. Also run under valgrind (where the CPU it emulates has AVX2
//! but not AVX-512: the AVX2 and portable paths).
#![cfg(feature = "cpu")]

use inferkit_infer_core::cpu::epilogue::Act;
use inferkit_infer_core::cpu::int8::{
    Isa, MAX_K, Out, PackedI8, Rows, gemm_u8i8, gemm_u8i8_rows, quantize_rows,
};
use proptest::prelude::*;

/// `Σₚ (a[i,p] − zero) · w[p,j]` in i64, row-major `[m, n]`.
fn naive(m: usize, k: usize, n: usize, a: &[u8], lda: usize, zero: u8, w: &[i8]) -> Vec<i64> {
    let mut out = vec![0i64; m * n];
    for i in 0..m {
        for j in 0..n {
            out[i * n + j] = (0..k)
                .map(|p| (i64::from(a[i * lda + p]) - i64::from(zero)) * i64::from(w[p * n + j]))
                .sum();
        }
    }
    out
}

fn finish(v: i64, scale: f32, bias: f32, relu6: bool) -> f32 {
    let y = (v as i32 as f32).mul_add(scale, bias);
    if relu6 { y.clamp(0.0, 6.0) } else { y }
}

fn quantize(y: f32, scale: f32, zero: u8) -> u8 {
    let t = (y / scale).clamp(-65536.0, 65536.0);
    (t.round_ties_even() as i32 + i32::from(zero)).clamp(0, 255) as u8
}

/// A product to check: `a` is `m` rows `lda` apart, `w` row-major `[k, n]`.
#[derive(Debug, Clone)]
struct Case {
    m: usize,
    k: usize,
    n: usize,
    lda: usize,
    zero: u8,
    a: Vec<u8>,
    w: Vec<i8>,
}

fn case() -> impl Strategy<Value = Case> {
    (0usize..30, 0usize..140, 0usize..70, 0usize..5, any::<u8>()).prop_flat_map(
        |(m, k, n, pad, zero)| {
            let lda = k + pad;
            let a_len = if m == 0 { 0 } else { (m - 1) * lda + k };
            (
                proptest::collection::vec(any::<u8>(), a_len),
                proptest::collection::vec(any::<i8>(), k * n),
            )
                .prop_map(move |(a, w)| Case {
                    m,
                    k,
                    n,
                    lda,
                    zero,
                    a,
                    w,
                })
        },
    )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(
        std::env::var("PROPTEST_CASES").ok().and_then(|c| c.parse().ok()).unwrap_or(64)
    ))]

    /// The exact sums, on every path, equal the integer reference.
    #[test]
    fn int8_gemm_sums_equal_the_integer_reference_on_every_path(c in case()) {
        let want = naive(c.m, c.k, c.n, &c.a, c.lda, c.zero, &c.w);
        let packed = PackedI8::new(&c.w, c.k, c.n);
        for isa in Isa::available() {
            let mut got = vec![i32::MIN; c.m * c.n];
            gemm_u8i8(isa, (c.m, &c.a, c.lda, c.zero), &packed, Out::I32(&mut got));
            for (at, (g, w)) in got.iter().zip(&want).enumerate() {
                prop_assert_eq!(i64::from(*g), *w, "{:?}: {}x{}x{} at {}", isa, c.m, c.k, c.n, at);
            }
        }
    }

    /// The f32 and u8 epilogues, on every path, equal the formula bit for bit.
    #[test]
    fn int8_gemm_epilogues_equal_the_formula_on_every_path(
        c in case(),
        a_scale in 1e-4f32..0.1,
        out_scale in 1e-3f32..1.0,
        out_zero in any::<u8>(),
        relu6 in any::<bool>(),
    ) {
        let want = naive(c.m, c.k, c.n, &c.a, c.lda, c.zero, &c.w);
        let packed = PackedI8::new(&c.w, c.k, c.n);
        let scale: Vec<f32> = (0..c.n).map(|j| a_scale * (0.5 + j as f32 / 64.0) / 127.0).collect();
        let bias: Vec<f32> = (0..c.n).map(|j| (j as f32 - 20.0) / 7.0).collect();
        let act = if relu6 { Act::Relu6 } else { Act::Identity };
        let want_f32: Vec<f32> = want
            .iter()
            .enumerate()
            .map(|(at, v)| finish(*v, scale[at % c.n.max(1)], bias[at % c.n.max(1)], relu6))
            .collect();
        let want_u8: Vec<u8> = want_f32.iter().map(|y| quantize(*y, out_scale, out_zero)).collect();
        for isa in Isa::available() {
            let mut f = vec![f32::NAN; c.m * c.n];
            gemm_u8i8(isa, (c.m, &c.a, c.lda, c.zero), &packed,
                Out::F32 { out: &mut f, scale: &scale, bias: &bias, act });
            let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
            prop_assert_eq!(bits(&f), bits(&want_f32), "{:?} f32", isa);
            let mut q = vec![0u8; c.m * c.n];
            gemm_u8i8(isa, (c.m, &c.a, c.lda, c.zero), &packed,
                Out::U8 { out: &mut q, scale: &scale, bias: &bias, act, out_scale, out_zero });
            prop_assert_eq!(&q, &want_u8, "{:?} u8", isa);
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(
        std::env::var("PROPTEST_CASES").ok().and_then(|c| c.parse().ok()).unwrap_or(64)
    ))]

    /// A zero point and a scale per row (dynamic per-token activations), on every path,
    /// equal the formula bit for bit: `v_ij · (row_scale_i · scale_j) + bias_j`.
    #[test]
    fn int8_gemm_with_per_row_zeros_and_scales_equals_the_formula(
        c in case(),
        seed in any::<u64>(),
        relu6 in any::<bool>(),
    ) {
        let zeros: Vec<u8> = (0..c.m).map(|i| (seed.wrapping_mul(i as u64 + 7) >> 13) as u8).collect();
        let row_scales: Vec<f32> = (0..c.m).map(|i| 1e-3 * (1.0 + (i % 7) as f32)).collect();
        let scale: Vec<f32> = (0..c.n).map(|j| (1.0 + j as f32) / 300.0).collect();
        let bias: Vec<f32> = (0..c.n).map(|j| (j as f32 - 9.0) / 5.0).collect();
        let act = if relu6 { Act::Relu6 } else { Act::Identity };
        let packed = PackedI8::new(&c.w, c.k, c.n);
        let mut want = vec![0f32; c.m * c.n];
        for i in 0..c.m {
            let row = naive(1, c.k, c.n, &c.a[i * c.lda..], c.lda, zeros[i], &c.w);
            for j in 0..c.n {
                want[i * c.n + j] = finish(row[j], row_scales[i] * scale[j], bias[j], relu6);
            }
        }
        for isa in Isa::available() {
            let mut got = vec![f32::NAN; c.m * c.n];
            let rows = Rows { m: c.m, data: &c.a, lda: c.lda, zeros: &zeros, scales: &row_scales };
            gemm_u8i8_rows(isa, rows, &packed, Out::F32 { out: &mut got, scale: &scale, bias: &bias, act });
            let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
            prop_assert_eq!(bits(&got), bits(&want), "{:?}", isa);
        }
    }

    /// Per-row quantization: every value comes back within half a step, zero exactly.
    #[test]
    fn quantize_rows_is_within_half_a_step(
        rows in 0usize..6,
        k in 1usize..40,
        values in proptest::collection::vec(-1e3f32..1e3, 240),
        scale_by in 1e-3f32..10.0,
    ) {
        let x: Vec<f32> = values[..rows * k].iter().map(|v| v * scale_by).collect();
        let (mut q, mut zeros, mut scales) = (vec![0u8; x.len()], vec![0u8; rows], vec![0f32; rows]);
        quantize_rows(&x, k, &mut q, &mut zeros, &mut scales);
        for i in 0..rows {
            let s = scales[i];
            for p in 0..k {
                let back = s * (f32::from(q[i * k + p]) - f32::from(zeros[i]));
                prop_assert!((back - x[i * k + p]).abs() <= 0.5 * s * 1.001 + 1e-6,
                    "row {} col {}: {} came back as {} (scale {})", i, p, x[i * k + p], back, s);
            }
            // zero is representable: a 0 in the row would quantize to the zero point
            prop_assert!(s * f32::from(zeros[i]) >= 0.0);
        }
    }
}

#[test]
fn quantize_rows_gives_a_row_of_zeros_scale_one() {
    let (mut q, mut zeros, mut scales) = ([9u8; 4], [9u8; 2], [0f32; 2]);
    quantize_rows(&[0.0, 0.0, 1.0, -1.0], 2, &mut q, &mut zeros, &mut scales);
    assert_eq!((q[0], q[1], zeros[0], scales[0]), (0, 0, 0, 1.0));
    // −(−1) / (2/255 in f32) is 127.49…
    assert_eq!((zeros[1], scales[1]), (127, 2.0 / 255.0));
}

/// Every tile height of each path (1–12 rows and past), columns on and off the 16-column
/// panels, depths 0–9 (none; the partial last group of four) — deterministic, so every branch runs
/// whatever proptest draws.
#[test]
fn int8_gemm_covers_every_tile_and_tail() {
    for m in [1usize, 2, 3, 4, 5, 7, 8, 11, 12, 13, 25, 49] {
        for n in [1usize, 15, 16, 17, 31, 32, 33, 48, 65] {
            for k in 0usize..=9 {
                let a: Vec<u8> = (0..m * k).map(|i| (i * 37 + 11) as u8).collect();
                let w: Vec<i8> = (0..k * n).map(|i| (i * 53 + 7) as u8 as i8).collect();
                let want = naive(m, k, n, &a, k, 3, &w);
                let packed = PackedI8::from_rows(
                    &(0..n * k)
                        .map(|i| w[(i % k) * n + i / k])
                        .collect::<Vec<_>>(),
                    n,
                    k,
                );
                for isa in Isa::available() {
                    let mut got = vec![0i32; m * n];
                    gemm_u8i8(isa, (m, &a, k, 3), &packed, Out::I32(&mut got));
                    let got: Vec<i64> = got.into_iter().map(i64::from).collect();
                    assert_eq!(got, want, "{isa:?} {m}x{k}x{n}");
                }
            }
        }
    }
}

/// The corners: activations 255 against weights −128 and 127 (two such products overflow a
/// saturating `i16` pair sum), zero point 0 and 255, and the deepest product allowed, whose
/// sums reach ±2.1·10⁹.
#[test]
fn int8_gemm_is_exact_at_the_extremes() {
    for (k, a_value, zero) in [
        (64usize, 255u8, 0u8),
        (64, 0, 255),
        (MAX_K, 255, 0),
        (MAX_K, 0, 255),
    ] {
        let n = 18;
        let a = vec![a_value; 2 * k];
        let w: Vec<i8> = (0..k * n)
            .map(|i| match (i % n) % 3 {
                0 => -128,
                1 => 127,
                _ => {
                    if (i / n) % 2 == 0 {
                        -128
                    } else {
                        127
                    }
                }
            })
            .collect();
        let want = naive(2, k, n, &a, k, zero, &w);
        let packed = PackedI8::new(&w, k, n);
        for isa in Isa::available() {
            let mut got = vec![0i32; 2 * n];
            gemm_u8i8(isa, (2, &a, k, zero), &packed, Out::I32(&mut got));
            let got: Vec<i64> = got.into_iter().map(i64::from).collect();
            assert_eq!(got, want, "{isa:?} k={k} a={a_value} zero={zero}");
        }
    }
}

#[test]
fn the_portable_path_runs_everywhere_and_detect_is_the_first_available() {
    let paths = Isa::available();
    assert_eq!(paths.last(), Some(&Isa::Portable));
    assert_eq!(Isa::detect(), paths[0]);
}

#[test]
#[should_panic(expected = "gemm_u8i8: a holds fewer than 3 rows of 4 bytes 4 apart")]
fn int8_gemm_refuses_a_short_input() {
    let w = PackedI8::new(&[1; 8], 4, 2);
    let mut out = [0i32; 6];
    gemm_u8i8(Isa::Portable, (3, &[0u8; 11], 4, 0), &w, Out::I32(&mut out));
}

#[test]
#[should_panic(expected = "GELU is not an int8 epilogue")]
fn int8_gemm_refuses_gelu() {
    let w = PackedI8::new(&[1; 8], 4, 2);
    let mut out = [0f32; 2];
    gemm_u8i8(
        Isa::detect(),
        (1, &[0u8; 4], 4, 0),
        &w,
        Out::F32 {
            out: &mut out,
            scale: &[1.0; 2],
            bias: &[0.0; 2],
            act: Act::Gelu,
        },
    );
}

#[test]
#[should_panic(expected = "PackedI8: depth 65537 is above 65536")]
fn packing_refuses_a_depth_whose_sums_could_overflow() {
    PackedI8::from_fn(MAX_K + 1, 1, |_, _| 0);
}
