//! int8 GEMM: `u8` activations × `s8` weights summed in `i32`, with the requantisation fused
//! into the store — [`PackedI8`] and [`gemm_u8i8`]. A pointwise (1×1) convolution over
//! channels-last activations is this product (`[pixels, cin] × [cin, cout]`).
//!
//! **Numbers.** Activations are asymmetric `u8` (`real = scale · (q − zero)`), weights
//! symmetric `s8` per output column (`real = scale[j] · q`), so the product of column `j` is
//! `Σₚ (a[i,p] − a_zero) · w[p,j]`: the kernels sum `a·w` and subtract `a_zero · Σₚ w[p,j]`
//! (the column sums, made at packing) in the epilogue. The `i32` result is exact for any
//! inputs while `k ≤ 65,536` (the largest sum, 65,536 · 255 · 128, is below 2³¹).
//!
//! **Layout.** The weight is packed once into panels of [`NR`] = 16 columns; each panel holds
//! the depth in groups of four, 64 bytes a group: column `j`'s four weights of the group side
//! by side, the 32-bit lane `j` of one 512-bit vector (depth padded with zeros to a multiple
//! of four, columns to a multiple of 16). That is the operand layout of `vpdpbusd` and of
//! `vpmaddubsw` + `vpmaddwd` alike, so one packing serves every path:
//!
//! - [`Isa::Vnni512`] (AVX-512 VNNI): a tile of up to 12 rows × 32 columns keeps its 24 sums
//!   in registers; per group of four, two weight vectors and, per row, one broadcast of the
//!   row's four bytes and two `vpdpbusd` (64 multiply-adds each). Rows go in blocks of
//!   ~256 KiB of `a`, which stay in L2 while every panel passes over them.
//! - [`Isa::Avx2`]: a tile of up to 4 rows × 16 columns. `vpmaddubsw` adds two `u8·s8`
//!   products into an `i16` **with saturation**: `255·(−128)·2` does not fit, so each
//!   activation is split as `a = lo + 128·hi` (`lo = a & 127`, `hi = a >> 7`): `lo` pairs sum
//!   to at most `127·128·2 = 32,512`, `hi` pairs to 256, both exact in `i16`; `vpmaddwd`
//!   widens `lo` pairs with 1 and `hi` pairs with 128 into the `i32` sums. Exact for every
//!   input (tested against the plain integer sum).
//! - [`Isa::Portable`]: the same sums in plain Rust over the same layout.
//!
//! [`Isa::detect`] picks the best this CPU runs (the `std` feature detection, cached); every
//! path gives the same bits: the VNNI path's store is AVX-512 code doing the epilogue's
//! operations in the same order as the scalar store the other two share, the multiply-add
//! fused everywhere, rounding half to even.
//!
//! **Epilogue** ([`Out`]): the exact sums (`I32`), or per column `y = act(v·scale[j] +
//! bias[j])` with `v` the exact sum as `f32` and the multiply-add fused (`F32`), or that `y`
//! quantized again (`U8`): `clamp(round_half_even(y / out_scale) + out_zero, 0, 255)`, so
//! the next layer reads `u8` again. [`gemm_u8i8_rows`] takes a zero point and a scale per row
//! instead of one for all (dynamic per-token activations, made by [`quantize_rows`]).

use super::epilogue::Act;

/// Columns of a packed panel.
pub const NR: usize = 16;
/// Rows of an AVX-512 tile (24 sums in registers, two weight vectors, one broadcast).
const MR512: usize = 12;
/// Rows of an AVX2 tile (8 sums in registers).
const MR256: usize = 4;
/// Largest depth whose sums cannot overflow `i32`.
pub const MAX_K: usize = 1 << 16;

/// Which kernel runs the product.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Isa {
    /// AVX-512F + AVX-512 VNNI (`vpdpbusd`).
    Vnni512,
    /// AVX2 and FMA (`vpmaddubsw`, `vpmaddwd`).
    Avx2,
    /// Plain Rust.
    Portable,
}

impl Isa {
    /// The best path this CPU runs.
    pub fn detect() -> Isa {
        Isa::available()[0]
    }

    /// Every path this CPU runs, best first ([`Isa::Portable`] always, last).
    pub fn available() -> Vec<Isa> {
        let mut paths = Vec::with_capacity(3);
        #[cfg(target_arch = "x86_64")]
        {
            if std::arch::is_x86_feature_detected!("avx512f")
                && std::arch::is_x86_feature_detected!("avx512vnni")
            {
                paths.push(Isa::Vnni512);
            }
            if std::arch::is_x86_feature_detected!("avx2")
                && std::arch::is_x86_feature_detected!("fma")
            {
                paths.push(Isa::Avx2);
            }
        }
        paths.push(Isa::Portable);
        paths
    }

    /// Whether this CPU runs it.
    pub fn is_available(self) -> bool {
        Isa::available().contains(&self)
    }
}

/// An `s8` weight `[k, n]` packed for [`gemm_u8i8`] (see the module docs for the layout),
/// with its column sums. Made once at load.
///
/// ```
/// use inferkit_infer_core::cpu::int8::{gemm_u8i8, Isa, Out, PackedI8};
///
/// // [k = 3, n = 2]
/// let w = PackedI8::new(&[1, -2, 3, 4, -5, 6], 3, 2);
/// let a = [10u8, 20, 30]; // one row, zero point 10: (0, 10, 20)
/// let mut out = [0i32; 2];
/// gemm_u8i8(Isa::detect(), (1, &a, 3, 10), &w, Out::I32(&mut out));
/// assert_eq!(out, [0 * 1 + 10 * 3 + 20 * -5, 0 * -2 + 10 * 4 + 20 * 6]);
/// ```
#[derive(Clone)]
pub struct PackedI8 {
    k: usize,
    n: usize,
    /// `n.div_ceil(NR)` panels of `k.div_ceil(4)` groups of 64 bytes.
    data: Vec<i8>,
    col_sums: Vec<i32>,
}

impl std::fmt::Debug for PackedI8 {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PackedI8")
            .field("k", &self.k)
            .field("n", &self.n)
            .finish()
    }
}

impl PackedI8 {
    /// Packs a row-major `[k, n]` weight (`x · w`).
    ///
    /// # Panics
    /// If `w` does not hold `k · n` values, or `k` is above [`MAX_K`].
    pub fn new(w: &[i8], k: usize, n: usize) -> PackedI8 {
        assert_eq!(w.len(), k * n, "PackedI8: weight is not {k}×{n}");
        PackedI8::from_fn(k, n, |p, j| w[p * n + j])
    }

    /// Packs a row-major `[n, k]` weight, one row per output (PyTorch's `Linear` and 1×1
    /// convolution layout), as the `[k, n]` product operand.
    ///
    /// # Panics
    /// As [`PackedI8::new`].
    pub fn from_rows(w: &[i8], n: usize, k: usize) -> PackedI8 {
        assert_eq!(w.len(), k * n, "PackedI8: weight is not {n}×{k}");
        assert!(k <= MAX_K, "PackedI8: depth {k} is above {MAX_K}");
        // a row's four consecutive depths are one lane of a group: copied four at a time
        // (what `from_fn` does one value at a time; the model loads pack megabytes)
        let groups = k.div_ceil(4);
        let mut data = vec![0i8; n.div_ceil(NR) * groups * 64];
        let mut col_sums = vec![0i32; n];
        for (j, (row, sum)) in w.chunks_exact(k.max(1)).zip(&mut col_sums).enumerate() {
            let (panel, lane) = (j / NR, j % NR);
            let panel = &mut data[panel * groups * 64..(panel + 1) * groups * 64];
            for (quad, group) in row.chunks(4).zip(panel.chunks_exact_mut(64)) {
                group[lane * 4..lane * 4 + quad.len()].copy_from_slice(quad);
            }
            *sum = row.iter().map(|&v| i32::from(v)).sum();
        }
        PackedI8 {
            k,
            n,
            data,
            col_sums,
        }
    }

    /// Packs the `[k, n]` weight whose element `(p, j)` is `f(p, j)`.
    ///
    /// # Panics
    /// If `k` is above [`MAX_K`].
    pub fn from_fn(k: usize, n: usize, f: impl Fn(usize, usize) -> i8) -> PackedI8 {
        assert!(k <= MAX_K, "PackedI8: depth {k} is above {MAX_K}");
        let groups = k.div_ceil(4);
        let panels = n.div_ceil(NR);
        let mut data = vec![0i8; panels * groups * 64];
        let mut col_sums = vec![0i32; n];
        for (j, sum) in col_sums.iter_mut().enumerate() {
            let (panel, lane) = (j / NR, j % NR);
            for p in 0..k {
                let v = f(p, j);
                data[(panel * groups + p / 4) * 64 + lane * 4 + p % 4] = v;
                *sum += i32::from(v);
            }
        }
        PackedI8 {
            k,
            n,
            data,
            col_sums,
        }
    }

    /// Depth.
    pub fn k(&self) -> usize {
        self.k
    }

    /// Columns.
    pub fn n(&self) -> usize {
        self.n
    }

    /// `Σₚ w[p, j]` for each column `j`.
    pub fn col_sums(&self) -> &[i32] {
        &self.col_sums
    }

    /// Bytes of one panel.
    fn panel_len(&self) -> usize {
        self.k.div_ceil(4) * 64
    }
}

/// Where [`gemm_u8i8`] writes row-major `[m, n]`, and how.
#[derive(Debug)]
pub enum Out<'a> {
    /// The exact sums `Σₚ (a[i,p] − a_zero) · w[p,j]`.
    I32(&'a mut [i32]),
    /// `act(v · scale[j] + bias[j])`, `v` the exact sum as `f32`, the multiply-add fused.
    F32 {
        /// The output.
        out: &'a mut [f32],
        /// Per column: the activations' scale times the column's weight scale.
        scale: &'a [f32],
        /// Per column (real units).
        bias: &'a [f32],
        /// [`Act::Identity`] or [`Act::Relu6`].
        act: Act,
    },
    /// The `F32` value quantized: `clamp(round_half_even(y / out_scale) + out_zero, 0, 255)`.
    U8 {
        /// The output.
        out: &'a mut [u8],
        /// As in `F32`.
        scale: &'a [f32],
        /// As in `F32`.
        bias: &'a [f32],
        /// As in `F32`.
        act: Act,
        /// The output's scale (positive, finite).
        out_scale: f32,
        /// The output's zero point.
        out_zero: u8,
    },
}

/// What the epilogue needs, as plain values and pointers (the tiles run in `unsafe`).
#[derive(Clone, Copy)]
struct Epi {
    kind: EpiKind,
    col_sums: *const i32,
    a_zero: i32,
    /// One zero point per row (null: `a_zero` for every row).
    row_zero: *const u8,
    /// One scale per row multiplying the column's (null: none).
    row_scale: *const f32,
    scale: *const f32,
    bias: *const f32,
    relu6: bool,
    out_scale: f32,
    out_zero: i32,
    out: *mut u8,
    ldc: usize,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum EpiKind {
    I32,
    F32,
    U8,
}

#[allow(unsafe_code)]
impl Epi {
    /// Row `i`'s zero point.
    ///
    /// # Safety
    /// `i` is a row of the product.
    #[inline(always)]
    unsafe fn zero(&self, i: usize) -> i32 {
        if self.row_zero.is_null() {
            self.a_zero
        } else {
            // SAFETY: one zero point per row (`gemm_u8i8_rows` checked), i < m
            i32::from(unsafe { *self.row_zero.add(i) })
        }
    }

    /// Row `i`'s scale, if the rows have their own.
    ///
    /// # Safety
    /// `i` is a row of the product.
    #[inline(always)]
    unsafe fn row_scale(&self, i: usize) -> Option<f32> {
        // SAFETY: one scale per row where there are any (`gemm_u8i8_rows` checked), i < m
        (!self.row_scale.is_null()).then(|| unsafe { *self.row_scale.add(i) })
    }

    /// Stores the tile `acc` (`acc.len()` rows of raw sums `Σ a·w`, `cols` of each used) at
    /// row `i0`, column `j0`. One loop per kind of output, each over plain slices (the
    /// compiler vectorises them for the path's instruction set).
    ///
    /// # Safety
    /// Rows `i0..i0 + acc.len()` and columns `j0..j0 + cols` are inside the output and the
    /// per-column slices (what [`gemm_u8i8`] checked).
    #[inline(always)]
    unsafe fn store<const W: usize>(&self, acc: &[[i32; W]], i0: usize, j0: usize, cols: usize) {
        use std::slice::{from_raw_parts, from_raw_parts_mut};
        // SAFETY: columns j0..j0 + cols of the column sums (this function's contract)
        let sums = unsafe { from_raw_parts(self.col_sums.add(j0), cols) };
        // SAFETY: columns j0..j0 + cols of the scales and biases (this function's
        // contract; only read for the kinds that have them, which `gemm_u8i8` checked)
        let per_column = || unsafe {
            (
                from_raw_parts(self.scale.add(j0), cols),
                from_raw_parts(self.bias.add(j0), cols),
            )
        };
        for (r, raw) in acc.iter().enumerate() {
            let at = (i0 + r) * self.ldc + j0;
            // SAFETY: row i0 + r < m (this function's contract)
            let (zero, rs) = unsafe { (self.zero(i0 + r), self.row_scale(i0 + r)) };
            let exact = |c: usize| raw[c].wrapping_sub(zero.wrapping_mul(sums[c]));
            let s = |scale: f32| rs.map_or(scale, |rs| rs * scale);
            match self.kind {
                EpiKind::I32 => {
                    // SAFETY: row i0 + r, columns j0..j0 + cols of the i32 output
                    let o = unsafe { from_raw_parts_mut(self.out.cast::<i32>().add(at), cols) };
                    for (c, o) in o.iter_mut().enumerate() {
                        *o = exact(c);
                    }
                }
                EpiKind::F32 => {
                    let (scale, bias) = per_column();
                    // SAFETY: row i0 + r, columns j0..j0 + cols of the f32 output
                    let o = unsafe { from_raw_parts_mut(self.out.cast::<f32>().add(at), cols) };
                    for (c, o) in o.iter_mut().enumerate() {
                        *o = finish(exact(c), s(scale[c]), bias[c], self.relu6);
                    }
                }
                EpiKind::U8 => {
                    let (scale, bias) = per_column();
                    // SAFETY: row i0 + r, columns j0..j0 + cols of the u8 output
                    let o = unsafe { from_raw_parts_mut(self.out.add(at), cols) };
                    for (c, o) in o.iter_mut().enumerate() {
                        let y = finish(exact(c), s(scale[c]), bias[c], self.relu6);
                        *o = quantize(y, self.out_scale, self.out_zero);
                    }
                }
            }
        }
    }
}

/// `act(v · scale + bias)`, fused.
#[inline(always)]
pub(crate) fn finish(v: i32, scale: f32, bias: f32, relu6: bool) -> f32 {
    let y = (v as f32).mul_add(scale, bias);
    if relu6 { y.clamp(0.0, 6.0) } else { y }
}

/// `clamp(round_half_even(y / scale) + zero, 0, 255)`; the quotient is clamped to ±2¹⁶
/// before rounding (a NaN counts as the low end), so the conversion never saturates.
#[inline(always)]
// (not `clamp`, which keeps a NaN: `max` makes it the low end, as the SIMD epilogue does)
#[allow(clippy::manual_clamp)]
pub(crate) fn quantize(y: f32, scale: f32, zero: i32) -> u8 {
    let t = (y / scale).max(-65536.0).min(65536.0);
    (t.round_ties_even() as i32 + zero).clamp(0, 255) as u8
}

/// `u8` activations for [`gemm_u8i8_rows`]: `m` rows of `k` bytes `lda` apart, with one zero
/// point for all rows or one per row, and optionally a scale per row (dynamic per-token
/// quantization: the `F32`/`U8` outputs then use `scale[i] · Out::scale[j]`, that product
/// rounded to `f32` first).
#[derive(Debug, Clone, Copy)]
pub struct Rows<'a> {
    /// Rows.
    pub m: usize,
    /// The bytes.
    pub data: &'a [u8],
    /// Distance between rows (at least `k`).
    pub lda: usize,
    /// One zero point (every row), or `m`.
    pub zeros: &'a [u8],
    /// None, or `m` scales.
    pub scales: &'a [f32],
}

/// `out = epilogue((a − a_zero) · w)` for `a` `m` rows of `k` bytes `lda` apart and `w`
/// packed `[k, n]`, on path `isa` (see the module docs).
///
/// # Panics
/// If `isa` does not run on this CPU, `a` holds fewer than `m` rows, `lda < k`, the output
/// is not `m · n`, a per-column slice is not `n` long, `act` is [`Act::Gelu`], or
/// `out_scale` is not positive and finite.
pub fn gemm_u8i8(
    isa: Isa,
    (m, a, lda, a_zero): (usize, &[u8], usize, u8),
    w: &PackedI8,
    out: Out<'_>,
) {
    let rows = Rows {
        m,
        data: a,
        lda,
        zeros: &[a_zero],
        scales: &[],
    };
    gemm_u8i8_rows(isa, rows, w, out);
}

/// [`gemm_u8i8`] with a zero point and a scale per row where `a` has them.
///
/// # Panics
/// As [`gemm_u8i8`]; also if `a.zeros` is neither 1 nor `m` long, or `a.scales` neither
/// empty nor `m` long (and not empty for an `I32` output).
#[allow(unsafe_code)]
pub fn gemm_u8i8_rows(isa: Isa, a: Rows<'_>, w: &PackedI8, out: Out<'_>) {
    let (k, n) = (w.k, w.n);
    let Rows {
        m,
        data: a,
        lda,
        zeros,
        scales,
    } = a;
    assert!(
        isa.is_available(),
        "gemm_u8i8: {isa:?} does not run on this CPU"
    );
    assert!(
        lda >= k,
        "gemm_u8i8: rows of {k} bytes cannot be {lda} apart"
    );
    if m > 0 {
        assert!(
            a.len() >= (m - 1) * lda + k,
            "gemm_u8i8: a holds fewer than {m} rows of {k} bytes {lda} apart"
        );
    }
    assert!(
        zeros.len() == 1 || zeros.len() == m,
        "gemm_u8i8: {} zero points for {m} rows (1 or {m})",
        zeros.len()
    );
    assert!(
        scales.is_empty() || scales.len() == m,
        "gemm_u8i8: {} row scales for {m} rows (none or {m})",
        scales.len()
    );
    assert!(
        scales.is_empty() || !matches!(out, Out::I32(_)),
        "gemm_u8i8: row scales with an i32 output"
    );
    let per_column = |what: &str, s: &[f32]| {
        assert_eq!(s.len(), n, "gemm_u8i8: {what} is not one per column ({n})");
    };
    let check_act = |act: Act| {
        assert!(
            act != Act::Gelu,
            "gemm_u8i8: GELU is not an int8 epilogue (Identity or Relu6)"
        );
        act == Act::Relu6
    };
    let mut epi = Epi {
        kind: EpiKind::I32,
        col_sums: w.col_sums.as_ptr(),
        a_zero: zeros.first().map_or(0, |z| i32::from(*z)),
        row_zero: if zeros.len() > 1 {
            zeros.as_ptr()
        } else {
            std::ptr::null()
        },
        row_scale: if scales.is_empty() {
            std::ptr::null()
        } else {
            scales.as_ptr()
        },
        scale: std::ptr::null(),
        bias: std::ptr::null(),
        relu6: false,
        out_scale: 1.0,
        out_zero: 0,
        out: std::ptr::null_mut(),
        ldc: n,
    };
    match out {
        Out::I32(o) => {
            assert_eq!(o.len(), m * n, "gemm_u8i8: output is not {m}×{n}");
            epi.out = o.as_mut_ptr().cast();
        }
        Out::F32 {
            out,
            scale,
            bias,
            act,
        } => {
            assert_eq!(out.len(), m * n, "gemm_u8i8: output is not {m}×{n}");
            per_column("scale", scale);
            per_column("bias", bias);
            epi.kind = EpiKind::F32;
            epi.relu6 = check_act(act);
            (epi.scale, epi.bias, epi.out) =
                (scale.as_ptr(), bias.as_ptr(), out.as_mut_ptr().cast());
        }
        Out::U8 {
            out,
            scale,
            bias,
            act,
            out_scale,
            out_zero,
        } => {
            assert_eq!(out.len(), m * n, "gemm_u8i8: output is not {m}×{n}");
            per_column("scale", scale);
            per_column("bias", bias);
            assert!(
                out_scale.is_finite() && out_scale > 0.0,
                "gemm_u8i8: output scale {out_scale} is not positive and finite"
            );
            epi.kind = EpiKind::U8;
            epi.relu6 = check_act(act);
            (epi.scale, epi.bias, epi.out) = (scale.as_ptr(), bias.as_ptr(), out.as_mut_ptr());
            (epi.out_scale, epi.out_zero) = (out_scale, i32::from(out_zero));
        }
    }
    if m == 0 || n == 0 {
        return;
    }
    match isa {
        // SAFETY: the CPU runs AVX-512F and VNNI (checked above); `a` holds `m` rows of `k`
        // bytes `lda` apart, the output `m · n` and the per-column slices `n` (checked
        // above); `w.data` is `n.div_ceil(16)` panels of `k.div_ceil(4)` groups (its
        // constructor).
        #[cfg(target_arch = "x86_64")]
        Isa::Vnni512 => unsafe { vnni::run(m, a, lda, w, &epi) },
        // SAFETY: as above, with AVX2 and FMA.
        #[cfg(target_arch = "x86_64")]
        Isa::Avx2 => unsafe { avx2::run(m, a, lda, w, &epi) },
        _ => portable(m, a, lda, w, &epi),
    }
}

/// Quantizes each row of `x` (`k` floats a row) to `u8` on its own range, as ONNX's
/// `DynamicQuantizeLinear` does a tensor but multiplying by the reciprocal of the scale
/// (one multiply a value instead of a division; a value on a rounding tie may land one step
/// away from `DynamicQuantizeLinear`'s): the range widened to hold 0, `scale = (max −
/// min) / 255`, `zero = round_half_even(−min / scale)` (saturated), `q = saturate(
/// round_half_even(x · (1 / scale)) + zero)`; a row of zeros gets scale 1 and zero 0. Writes
/// the rows into `q` and each row's zero point and scale into `zeros` and `scales`: the
/// [`Rows`] of a product with dynamic per-token activations.
///
/// ```
/// use inferkit_infer_core::cpu::int8::quantize_rows;
///
/// let x = [-1.0, 0.0, 3.0, /* row 2 */ 0.5, 1.0, 2.0];
/// let (mut q, mut zeros, mut scales) = ([0u8; 6], [0u8; 2], [0f32; 2]);
/// quantize_rows(&x, 3, &mut q, &mut zeros, &mut scales);
/// assert_eq!((zeros, scales), ([64, 0], [4.0 / 255.0, 2.0 / 255.0]));
/// assert_eq!(q, [0, 64, 255, 64, 127, 255]); // 1 / (2/255 in f32) is 127.49…
/// ```
///
/// # Panics
/// If `x` is not whole rows of `k`, or the outputs do not match it.
pub fn quantize_rows(x: &[f32], k: usize, q: &mut [u8], zeros: &mut [u8], scales: &mut [f32]) {
    let m = x.len().checked_div(k).unwrap_or(0);
    assert!(
        k > 0 && x.len() == m * k || k == 0 && x.is_empty(),
        "quantize_rows: {} floats are not rows of {k}",
        x.len()
    );
    assert!(
        q.len() == x.len() && zeros.len() == m && scales.len() == m,
        "quantize_rows: outputs of {}, {} and {} for {m} rows of {k}",
        q.len(),
        zeros.len(),
        scales.len()
    );
    quantize_loops(x, k, q, zeros, scales);
}

/// [`quantize_rows`]' loops, compiled per SIMD level (the rounding is one instruction from
/// SSE4.1 on, a call to `rintf` below).
#[multiversion::multiversion(targets = "simd")]
fn quantize_loops(x: &[f32], k: usize, q: &mut [u8], zeros: &mut [u8], scales: &mut [f32]) {
    for (((row, out), zero), scale) in x
        .chunks_exact(k.max(1))
        .zip(q.chunks_exact_mut(k.max(1)))
        .zip(zeros.iter_mut())
        .zip(scales.iter_mut())
    {
        // the range in 16 lanes (a chain of one `min` a value does not vectorise), then
        // across them; `min`/`max` skip NaNs either way
        let (mut lo, mut hi) = ([0.0_f32; 16], [0.0_f32; 16]);
        let mut chunks = row.chunks_exact(16);
        for c in &mut chunks {
            for ((l, h), &v) in lo.iter_mut().zip(hi.iter_mut()).zip(c) {
                *l = l.min(v);
                *h = h.max(v);
            }
        }
        for (l, &v) in lo.iter_mut().zip(chunks.remainder()) {
            *l = l.min(v);
        }
        for (h, &v) in hi.iter_mut().zip(chunks.remainder()) {
            *h = h.max(v);
        }
        let lo = lo.iter().fold(0.0_f32, |a, &b| a.min(b));
        let hi = hi.iter().fold(0.0_f32, |a, &b| a.max(b));
        let s = (hi - lo) / 255.0;
        let (s, z) = if s > 0.0 && s.is_finite() {
            (s, (-lo / s).round_ties_even().clamp(0.0, 255.0))
        } else {
            (1.0, 0.0)
        };
        *scale = s;
        *zero = z as u8;
        let inv = 1.0 / s;
        for (o, &v) in out.iter_mut().zip(row) {
            *o = ((v * inv).round_ties_even() + z).clamp(0.0, 255.0) as u8;
        }
    }
}

/// Four bytes of a row at depth `p` (`p < k`) as a little-endian `u32`, zeros past `k`.
#[inline(always)]
fn four(row: &[u8], p: usize) -> u32 {
    match row.get(p..p + 4) {
        Some(b) => u32::from_le_bytes([b[0], b[1], b[2], b[3]]),
        None => {
            let mut b = [0u8; 4];
            let left = &row[p..];
            b[..left.len()].copy_from_slice(left);
            u32::from_le_bytes(b)
        }
    }
}

/// The portable path: plain sums over the packed layout, a row and a panel at a time.
#[allow(unsafe_code)]
fn portable(m: usize, a: &[u8], lda: usize, w: &PackedI8, epi: &Epi) {
    let (k, n) = (w.k, w.n);
    let groups = k.div_ceil(4);
    for i in 0..m {
        let row = &a[i * lda..i * lda + k];
        for panel in 0..n.div_ceil(NR) {
            // (by index: a panel of depth 0 is empty)
            let weights = &w.data[panel * w.panel_len()..(panel + 1) * w.panel_len()];
            let mut acc = [[0i32; NR]; 1];
            for g in 0..groups {
                let x = four(row, 4 * g).to_le_bytes();
                let wg = &weights[g * 64..g * 64 + 64];
                for (lane, s) in acc[0].iter_mut().enumerate() {
                    for (b, &x) in x.iter().enumerate() {
                        *s += i32::from(x) * i32::from(wg[lane * 4 + b]);
                    }
                }
            }
            let j0 = panel * NR;
            // SAFETY: row i < m, columns j0..j0 + cols ≤ n (the caller checked the slices)
            unsafe { epi.store(&acc, i, j0, NR.min(n - j0)) };
        }
    }
}

#[cfg(target_arch = "x86_64")]
#[allow(unsafe_code)]
pub(crate) mod vnni {
    use std::arch::x86_64::{
        __m512, __m512i, _mm512_add_epi32, _mm512_cvtepi32_ps, _mm512_cvtps_epi32, _mm512_div_ps,
        _mm512_dpbusd_epi32, _mm512_fmadd_ps, _mm512_loadu_si512, _mm512_mask_cvtepi32_storeu_epi8,
        _mm512_mask_storeu_epi32, _mm512_mask_storeu_ps, _mm512_maskz_loadu_epi32,
        _mm512_maskz_loadu_ps, _mm512_max_epi32, _mm512_max_ps, _mm512_min_epi32, _mm512_min_ps,
        _mm512_mul_ps, _mm512_mullo_epi32, _mm512_set1_epi32, _mm512_set1_ps, _mm512_setzero_ps,
        _mm512_setzero_si512, _mm512_sub_epi32,
    };

    use super::super::even;
    use super::{Epi, EpiKind, MR512, NR, PackedI8, four};

    /// The whole product: blocks of rows that stay in L2 while every panel passes over them,
    /// each cut into tiles of up to 12 rows × two panels.
    ///
    /// # Safety
    /// AVX-512F and AVX-512 VNNI are available; `a` holds `m` rows of `w.k` bytes `lda`
    /// apart; `epi`'s output is `m × w.n` and its per-column slices `w.n` long.
    #[target_feature(enable = "avx512f,avx512vnni")]
    pub(super) unsafe fn run(m: usize, a: &[u8], lda: usize, w: &PackedI8, epi: &Epi) {
        let (k, n) = (w.k, w.n);
        let panels = n.div_ceil(NR);
        let plen = w.panel_len();
        // rows per block: ~256 KiB of `a`
        let mc = (256 * 1024 / lda.max(1)).clamp(MR512, 1024);
        for (b0, mb) in even(m, mc) {
            let mut p = 0;
            while p < panels {
                let two = panels - p >= 2;
                let j0 = p * NR;
                let cols = (n - j0).min(2 * NR);
                let b = &w.data[p * plen..(p + if two { 2 } else { 1 }) * plen];
                for (t0, rows) in even(mb, MR512) {
                    let i0 = b0 + t0;
                    let a = &a[i0 * lda..];
                    // SAFETY: AVX-512F and VNNI (this function's contract); `a` holds `rows`
                    // rows of `k` bytes `lda` apart from here, `b` one or two panels of
                    // `k.div_ceil(4)` groups; rows `i0..i0 + rows` and columns
                    // `j0..j0 + cols` are inside the output
                    unsafe {
                        seq_macro::seq!(R in 1..=12 {
                            match (rows, two) {
                                #(
                                    (R, true) => tile::<R, 2>(a, lda, k, b, plen, epi, (i0, j0, cols)),
                                    (R, false) => tile::<R, 1>(a, lda, k, b, plen, epi, (i0, j0, cols)),
                                )*
                                _ => unreachable!("tiles are 1 to {MR512} rows"),
                            }
                        });
                    }
                }
                p += if two { 2 } else { 1 };
            }
        }
    }

    /// One tile: `R` rows × `P` panels, its sums in registers.
    ///
    /// # Safety
    /// As [`run`]; `a` holds `R` rows of `k` bytes `lda` apart, `b` `P` panels of `plen`
    /// bytes.
    #[target_feature(enable = "avx512f,avx512vnni")]
    #[allow(clippy::too_many_arguments)]
    unsafe fn tile<const R: usize, const P: usize>(
        a: &[u8],
        lda: usize,
        k: usize,
        b: &[i8],
        plen: usize,
        epi: &Epi,
        (i0, j0, cols): (usize, usize, usize),
    ) {
        debug_assert!(a.len() >= (R - 1) * lda + k && b.len() >= P * plen);
        let groups = k / 4;
        let mut acc = [[_mm512_setzero_si512(); P]; R];
        let bp = b.as_ptr();
        let ap = a.as_ptr();
        for g in 0..groups {
            let mut wv = [_mm512_setzero_si512(); P];
            for (q, v) in wv.iter_mut().enumerate() {
                // SAFETY: group g < k.div_ceil(4) of panel q < P: 64 bytes inside `b`
                *v = unsafe { _mm512_loadu_si512(bp.add(q * plen + g * 64).cast::<__m512i>()) };
            }
            for (r, sums) in acc.iter_mut().enumerate() {
                // SAFETY: bytes 4g..4g + 4 ≤ k of row r < R: inside `a`
                let x = unsafe { ap.add(r * lda + 4 * g).cast::<u32>().read_unaligned() };
                let x = _mm512_set1_epi32(x as i32);
                for (s, v) in sums.iter_mut().zip(&wv) {
                    *s = _mm512_dpbusd_epi32(*s, x, *v);
                }
            }
        }
        if !k.is_multiple_of(4) {
            let g = groups;
            let mut wv = [_mm512_setzero_si512(); P];
            for (q, v) in wv.iter_mut().enumerate() {
                // SAFETY: the last group (k.div_ceil(4) - 1) of panel q: inside `b`
                *v = unsafe { _mm512_loadu_si512(bp.add(q * plen + g * 64).cast::<__m512i>()) };
            }
            for (r, sums) in acc.iter_mut().enumerate() {
                let x = _mm512_set1_epi32(four(&a[r * lda..r * lda + k], 4 * g) as i32);
                for (s, v) in sums.iter_mut().zip(&wv) {
                    *s = _mm512_dpbusd_epi32(*s, x, *v);
                }
            }
        }
        for (r, sums) in acc.iter().enumerate() {
            for (q, s) in sums.iter().enumerate() {
                let lanes = cols.saturating_sub(q * NR).min(NR);
                if lanes > 0 {
                    // SAFETY: row i0 + r < m and columns j0 + 16q .. + lanes ≤ n are inside
                    // the output and the per-column slices (the contract of `run`)
                    unsafe { store(epi, *s, i0 + r, j0 + q * NR, lanes) };
                }
            }
        }
    }

    /// The epilogue of 16 sums (the module docs' formula, in the same operations as
    /// [`Epi::store`], so the bits are the same): `lanes` of them stored at `row`, `col`.
    ///
    /// # Safety
    /// AVX-512F; `row` and columns `col..col + lanes` (1–16) are inside the output and the
    /// per-column slices.
    #[target_feature(enable = "avx512f")]
    #[inline]
    unsafe fn store(epi: &Epi, raw: __m512i, row: usize, col: usize, lanes: usize) {
        let mask = ((1u32 << lanes) - 1) as u16;
        let at = row * epi.ldc + col;
        // SAFETY: `lanes` values from `col` of the column sums, scales and biases, and of
        // the output row (this function's contract); masked lanes are not touched
        unsafe {
            let sums = _mm512_maskz_loadu_epi32(mask, epi.col_sums.add(col));
            let zero = _mm512_set1_epi32(epi.zero(row));
            let v = _mm512_sub_epi32(raw, _mm512_mullo_epi32(zero, sums));
            if epi.kind == EpiKind::I32 {
                _mm512_mask_storeu_epi32(epi.out.cast::<i32>().add(at), mask, v);
                return;
            }
            let mut scale = _mm512_maskz_loadu_ps(mask, epi.scale.add(col));
            if let Some(rs) = epi.row_scale(row) {
                scale = _mm512_mul_ps(_mm512_set1_ps(rs), scale);
            }
            let bias = _mm512_maskz_loadu_ps(mask, epi.bias.add(col));
            let y = finish(v, scale, bias, epi.relu6);
            if epi.kind == EpiKind::F32 {
                _mm512_mask_storeu_ps(epi.out.cast::<f32>().add(at), mask, y);
                return;
            }
            let q = quantize(y, epi.out_scale, epi.out_zero);
            _mm512_mask_cvtepi32_storeu_epi8(epi.out.add(at).cast(), mask, q);
        }
    }

    /// [`super::finish`] on 16 lanes: `act(v · scale + bias)`, fused.
    #[target_feature(enable = "avx512f")]
    #[inline]
    pub(crate) fn finish(v: __m512i, scale: __m512, bias: __m512, relu6: bool) -> __m512 {
        let y = _mm512_fmadd_ps(_mm512_cvtepi32_ps(v), scale, bias);
        if relu6 {
            _mm512_min_ps(_mm512_max_ps(y, _mm512_setzero_ps()), _mm512_set1_ps(6.0))
        } else {
            y
        }
    }

    /// [`super::quantize`] on 16 lanes, the `u8` values in the `i32` lanes.
    #[target_feature(enable = "avx512f")]
    #[inline]
    pub(crate) fn quantize(y: __m512, out_scale: f32, out_zero: i32) -> __m512i {
        let t = _mm512_div_ps(y, _mm512_set1_ps(out_scale));
        // (a NaN becomes the low end, as `f32::max` makes it in `quantize`)
        let t = _mm512_min_ps(
            _mm512_max_ps(t, _mm512_set1_ps(-65536.0)),
            _mm512_set1_ps(65536.0),
        );
        // rounding to nearest, ties to even (the default MXCSR mode)
        let q = _mm512_add_epi32(_mm512_cvtps_epi32(t), _mm512_set1_epi32(out_zero));
        _mm512_min_epi32(
            _mm512_max_epi32(q, _mm512_setzero_si512()),
            _mm512_set1_epi32(255),
        )
    }
}

#[cfg(target_arch = "x86_64")]
#[allow(unsafe_code)]
mod avx2 {
    use std::arch::x86_64::{
        __m256i, _mm256_add_epi32, _mm256_loadu_si256, _mm256_madd_epi16, _mm256_maddubs_epi16,
        _mm256_set1_epi16, _mm256_set1_epi32, _mm256_setzero_si256, _mm256_storeu_si256,
    };

    use super::super::even;
    use super::{Epi, MR256, NR, PackedI8, four};

    /// The whole product: tiles of up to 4 rows × one panel.
    ///
    /// # Safety
    /// AVX2 and FMA are available; otherwise as [`super::vnni::run`].
    #[target_feature(enable = "avx2,fma")]
    pub(super) unsafe fn run(m: usize, a: &[u8], lda: usize, w: &PackedI8, epi: &Epi) {
        let (k, n) = (w.k, w.n);
        let plen = w.panel_len();
        for p in 0..n.div_ceil(NR) {
            // (by index: a panel of depth 0 is empty)
            let b = &w.data[p * plen..(p + 1) * plen];
            let j0 = p * NR;
            let cols = (n - j0).min(NR);
            for (i0, rows) in even(m, MR256) {
                let a = &a[i0 * lda..];
                // SAFETY: AVX2 (this function's contract); `a` holds `rows` rows of `k`
                // bytes `lda` apart from here, `b` one panel; rows `i0..i0 + rows` and
                // columns `j0..j0 + cols` are inside the output
                unsafe {
                    match rows {
                        1 => tile::<1>(a, lda, k, b, epi, (i0, j0, cols)),
                        2 => tile::<2>(a, lda, k, b, epi, (i0, j0, cols)),
                        3 => tile::<3>(a, lda, k, b, epi, (i0, j0, cols)),
                        4 => tile::<4>(a, lda, k, b, epi, (i0, j0, cols)),
                        _ => unreachable!("tiles are 1 to {MR256} rows"),
                    }
                }
            }
        }
    }

    /// One tile: `R` rows × one panel (two halves of 8 columns).
    ///
    /// # Safety
    /// As [`run`]; `a` holds `R` rows of `k` bytes `lda` apart, `b` one panel.
    #[target_feature(enable = "avx2,fma")]
    unsafe fn tile<const R: usize>(
        a: &[u8],
        lda: usize,
        k: usize,
        b: &[i8],
        epi: &Epi,
        (i0, j0, cols): (usize, usize, usize),
    ) {
        debug_assert!(a.len() >= (R - 1) * lda + k && b.len() >= k.div_ceil(4) * 64);
        let ones = _mm256_set1_epi16(1);
        let c128 = _mm256_set1_epi16(128);
        let mut acc = [[_mm256_setzero_si256(); 2]; R];
        let bp = b.as_ptr();
        for g in 0..k.div_ceil(4) {
            // SAFETY: group g < k.div_ceil(4) of the panel: 64 bytes inside `b`
            let wv = unsafe {
                [
                    _mm256_loadu_si256(bp.add(g * 64).cast::<__m256i>()),
                    _mm256_loadu_si256(bp.add(g * 64 + 32).cast::<__m256i>()),
                ]
            };
            for (r, sums) in acc.iter_mut().enumerate() {
                let x = if 4 * g + 4 <= k {
                    // SAFETY: bytes 4g..4g + 4 ≤ k of row r < R: inside `a`
                    unsafe {
                        a.as_ptr()
                            .add(r * lda + 4 * g)
                            .cast::<u32>()
                            .read_unaligned()
                    }
                } else {
                    four(&a[r * lda..r * lda + k], 4 * g)
                };
                // a = lo + 128·hi: no pair of lo or hi products saturates in i16
                let lo = _mm256_set1_epi32((x & 0x7f7f_7f7f) as i32);
                let hi = _mm256_set1_epi32(((x >> 7) & 0x0101_0101) as i32);
                for (s, v) in sums.iter_mut().zip(&wv) {
                    let plo = _mm256_madd_epi16(_mm256_maddubs_epi16(lo, *v), ones);
                    let phi = _mm256_madd_epi16(_mm256_maddubs_epi16(hi, *v), c128);
                    *s = _mm256_add_epi32(*s, _mm256_add_epi32(plo, phi));
                }
            }
        }
        let mut out = [[0i32; NR]; R];
        for (o, sums) in out.iter_mut().zip(&acc) {
            for (h, s) in sums.iter().enumerate() {
                // SAFETY: 8 lanes at 8h < 16 of the row's array
                unsafe { _mm256_storeu_si256(o.as_mut_ptr().add(h * 8).cast::<__m256i>(), *s) };
            }
        }
        // SAFETY: rows i0..i0 + R and columns j0..j0 + cols are inside the output (the
        // contract of `run`)
        unsafe { epi.store(&out, i0, j0, cols) };
    }
}
