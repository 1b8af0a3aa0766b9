//! GEMM against a weight packed once at load, with the bias, the residual and ReLU6 fused
//! into the product's one store: [`Packed`], [`gemm`] and [`gemm_windows`].
//!
//! On a CPU with AVX-512F (and VL, and FMA) the weight `[k, n]` is stored as panels of 32
//! columns, the last 24, 16 or 8 wide when fewer are left, each panel `k` rows of its
//! columns end to end, zero-padded to its width. [`gemm`] runs each 12×32 tile of the
//! output with its 24 sums in registers: per step of `k`, one weight row (two 512-bit
//! vectors; a 24- or 8-wide panel ends in a 256-bit one, half the cost on a CPU that splits
//! 512-bit work in two) and 12 broadcast values of `a`. `a` is read where it lies (no
//! packing: a tile reads 12 rows; [`gemm_windows`] reads them at offsets, a convolution's
//! windows in place), tiles are cut evenly (49 rows are 10+10+10+10+9), the tile starts
//! from the bias, and after the last step adds the residual and clamps before its one
//! store; columns past `n` are masked off. A single row (a classifier at batch 1) runs
//! four panels side by side, so four weight streams are read at once.
//!
//! Faster than the `gemm` crate on EfficientNet's 1×1 convolutions (`benches/gemm.rs`;
//! figures in BENCHMARKS.md, "GEMM choice" and "Design measurements"): the crate packs the
//! weight again on every call and ends 24, 40, 80 or 112 outputs in narrower kernels of its
//! own.
//!
//! Elsewhere (no AVX-512, or [`Packed::portable`]) the weight stays row-major and [`gemm`]
//! is [`sgemm_strided`] followed by the bias pass: the same results to rounding (the same
//! products, summed in another grouping).

use super::epilogue::{Act, add_bias};
use super::kernels::{Strides, sgemm_strided};

/// Columns of a full panel (two AVX-512 vectors).
const NR: usize = 32;
/// Rows of a tile (24 sums in registers with two vectors of weight and a broadcast).
const MR: usize = 12;
/// Depth of one pass. Every product EfficientNet-Lite0 makes (depth ≤ 1280) is one pass,
/// so each panel streams through once, start to end: on its 7×7 layers at batch 1 (49
/// rows, weights read from L3 or memory) shorter passes were slower (BENCHMARKS.md,
/// "Design measurements").
const KC: usize = 2048;
/// Rows of `a` per block (kept in L2 across the panels): 192 rows × 1280 deep is 960 KiB.
const MC: usize = 192;

/// A GEMM weight `[k, n]` laid out for [`gemm`]: panels for the AVX-512 kernel where the
/// CPU has it, else row-major. Made once at load.
///
/// ```
/// use inferkit_infer_core::cpu::epilogue::Act;
/// use inferkit_infer_core::cpu::packed::{Packed, gemm};
///
/// // [2, 3] weight, one row of input
/// let w = Packed::new(&[1.0, 2.0, 3.0, 4.0, 5.0, 6.0], 2, 3);
/// let mut out = [0.0; 3];
/// gemm(1, &[1.0, -1.0], 2, &w, &[0.5, 0.5, 0.5], Act::Relu6, None, &mut out);
/// assert_eq!(out, [0.0, 0.0, 0.0]); // -3 + 0.5 clamped to 0
/// ```
#[derive(Clone)]
pub struct Packed {
    k: usize,
    n: usize,
    layout: Layout,
}

#[derive(Clone)]
enum Layout {
    /// `[k, n]` row-major.
    RowMajor(Vec<f32>),
    /// Panels of [`NR`] columns (the last 24, 16 or 8 wide when fewer are left; see
    /// [`panel_width`]), each `k` rows of its columns end to end.
    Panels(Vec<f32>),
}

impl std::fmt::Debug for Packed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let layout = match self.layout {
            Layout::RowMajor(_) => "row-major",
            Layout::Panels(_) => "panels",
        };
        f.debug_struct("Packed")
            .field("k", &self.k)
            .field("n", &self.n)
            .field("layout", &layout)
            .finish()
    }
}

/// Whether this CPU runs the AVX-512 kernel (AVX-512F with VL for the 256-bit masks, and
/// FMA; `std` caches the answer).
fn avx512() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::arch::is_x86_feature_detected!("avx512f")
            && std::arch::is_x86_feature_detected!("avx512vl")
            && std::arch::is_x86_feature_detected!("fma")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// Width of the panel starting at column `j` of `n`: 32, or for the last columns the
/// narrowest of 24, 16 and 8 that holds them (an 8-column part is one 256-bit vector,
/// which costs half a 512-bit one where the machine splits those in two, as this one
/// does: 24 or 40 outputs are not rounded up to 32 or 48).
fn panel_width(n: usize, j: usize) -> usize {
    match n - j {
        25.. => NR,
        17..=24 => 24,
        9..=16 => 16,
        _ => 8,
    }
}

impl Packed {
    /// Packs a row-major `[k, n]` weight for this CPU.
    ///
    /// # Panics
    /// If `w` does not hold `k · n` floats.
    pub fn new(w: &[f32], k: usize, n: usize) -> Packed {
        assert_eq!(w.len(), k * n, "Packed: weight is not {k}×{n}");
        Packed::from_fn(k, n, |r, c| w[r * n + c])
    }

    /// Packs the `[k, n]` weight whose element `(r, c)` is `f(r, c)` for this CPU, with no
    /// row-major copy in between (a convolution's `[cout, cin, kh, kw]` tensor read as
    /// `[(ky, kx, ci), cout]`, say).
    pub fn from_fn(k: usize, n: usize, f: impl Fn(usize, usize) -> f32) -> Packed {
        let layout = if avx512() {
            Layout::Panels(panels(k, n, f))
        } else {
            Layout::RowMajor(
                (0..k * n)
                    .map(|at| f(at / n.max(1), at % n.max(1)))
                    .collect(),
            )
        };
        Packed { k, n, layout }
    }

    /// Keeps a row-major `[k, n]` weight as it is, so [`gemm`] runs the portable path on any
    /// CPU (to compare the two).
    ///
    /// # Panics
    /// If `w` does not hold `k · n` floats.
    pub fn portable(w: &[f32], k: usize, n: usize) -> Packed {
        assert_eq!(w.len(), k * n, "Packed: weight is not {k}×{n}");
        Packed {
            k,
            n,
            layout: Layout::RowMajor(w.to_vec()),
        }
    }

    /// Rows (the depth of the product).
    pub fn k(&self) -> usize {
        self.k
    }

    /// Columns (outputs).
    pub fn n(&self) -> usize {
        self.n
    }

    /// Whether it is laid out for the AVX-512 kernel.
    pub fn is_panels(&self) -> bool {
        matches!(self.layout, Layout::Panels(_))
    }

    /// Bytes of heap it holds.
    pub fn heap_bytes(&self) -> usize {
        match &self.layout {
            Layout::RowMajor(v) | Layout::Panels(v) => v.capacity() * size_of::<f32>(),
        }
    }
}

/// The panels of a `[k, n]` weight given element by element.
fn panels(k: usize, n: usize, f: impl Fn(usize, usize) -> f32) -> Vec<f32> {
    let mut width = 0;
    let mut j = 0;
    while j < n {
        width += panel_width(n, j);
        j += panel_width(n, j);
    }
    let mut data = Vec::with_capacity(k * width);
    let mut j = 0;
    while j < n {
        let pw = panel_width(n, j);
        let cols = pw.min(n - j);
        for r in 0..k {
            data.extend((j..j + cols).map(|c| f(r, c)));
            data.extend(std::iter::repeat_n(0.0, pw - cols));
        }
        j += pw;
    }
    data
}

/// `c = act(a · w + bias [+ residual])`: `a` is `m` rows of `w.k()` floats, `lda` apart;
/// `c` and `residual` are `[m, w.n()]` row-major; `bias` holds `w.n()` floats. The
/// residual is added before the activation. One thread.
///
/// # Panics
/// If a slice is shorter than its matrix or `lda < w.k()`.
#[allow(clippy::too_many_arguments)]
pub fn gemm(
    m: usize,
    a: &[f32],
    lda: usize,
    w: &Packed,
    bias: &[f32],
    act: Act,
    residual: Option<&[f32]>,
    c: &mut [f32],
) {
    if m > 0 && w.n > 0 {
        assert!(
            lda >= w.k && a.len() >= (m - 1) * lda + w.k,
            "gemm: a holds fewer than {m} rows of {} ({lda} apart)",
            w.k
        );
    }
    product(m, a, lda, None, w, bias, act, residual, c);
}

/// [`gemm`] with the left side's rows gathered where they lie: element `(i, p)` is
/// `a[i·lda + offsets[p]]`. A convolution's windows are such rows without im2col: in a
/// zero-padded channels-last image, the windows of one output row are `stride·cin` apart
/// and a window's taps at fixed offsets from its corner.
///
/// # Panics
/// If `offsets` is not `w.k()` long, or an element lies past the end of `a`.
#[allow(clippy::too_many_arguments)]
pub fn gemm_windows(
    m: usize,
    a: &[f32],
    lda: usize,
    offsets: &[usize],
    w: &Packed,
    bias: &[f32],
    act: Act,
    c: &mut [f32],
) {
    assert_eq!(
        offsets.len(),
        w.k,
        "gemm_windows: {} offsets for depth {}",
        offsets.len(),
        w.k
    );
    if m > 0 && w.n > 0 {
        let last = offsets.iter().max().map_or(0, |&o| o + 1);
        assert!(
            a.len() >= (m - 1) * lda + last,
            "gemm_windows: a ({}) is too short for {m} rows {lda} apart reaching {last}",
            a.len()
        );
    }
    match &w.layout {
        Layout::Panels(_) => product(m, a, lda, Some(offsets), w, bias, act, None, c),
        Layout::RowMajor(_) => {
            // the rows gathered (im2col), then the plain product
            let k = w.k;
            let rows: Vec<f32> = (0..m * k)
                .map(|at| a[at / k * lda + offsets[at % k]])
                .collect();
            product(m, &rows, k, None, w, bias, act, None, c);
        }
    }
}

/// [`gemm`] and [`gemm_windows`]; the caller checked that `a` holds what they address.
#[allow(clippy::too_many_arguments)]
fn product(
    m: usize,
    a: &[f32],
    lda: usize,
    offsets: Option<&[usize]>,
    w: &Packed,
    bias: &[f32],
    act: Act,
    residual: Option<&[f32]>,
    c: &mut [f32],
) {
    let (k, n) = (w.k, w.n);
    assert_eq!(bias.len(), n, "gemm: bias is not {n} long");
    assert_eq!(c.len(), m * n, "gemm: c is not {m}×{n}");
    if let Some(r) = residual {
        assert_eq!(r.len(), m * n, "gemm: residual is not {m}×{n}");
    }
    if m == 0 || n == 0 {
        return;
    }
    match &w.layout {
        Layout::Panels(p) if k > 0 => {
            #[cfg(target_arch = "x86_64")]
            {
                // SAFETY: `Panels` is only made when `avx512()` said the CPU has AVX-512F,
                // AVX-512VL and FMA.
                // The callers' asserts bound every element of `a` the kernel reads: row `i`
                // (< m) at `i·lda + p`, or at `i·lda + offsets[p]` (p < k), inside `a`; rows
                // of `c` and `residual` at `i·n + (0..n)`, masked at `n` (`m·n` each,
                // asserted above); the bias's `n` floats, masked; and the panels, which
                // `panels` made `k` rows of their width each. `c` is a unique borrow, so it
                // aliases nothing read.
                #[allow(unsafe_code)]
                unsafe {
                    avx512::run(
                        (m, k, n),
                        (a, lda, offsets),
                        p,
                        bias,
                        act == Act::Relu6,
                        residual,
                        c,
                    )
                };
                if act == Act::Gelu {
                    super::math::gelu(c);
                }
            }
            #[cfg(not(target_arch = "x86_64"))]
            unreachable!("panels are only made on x86-64 ({p:?})");
        }
        Layout::Panels(_) => add_bias_to_zero(c, bias, act, residual),
        Layout::RowMajor(b) => {
            debug_assert!(offsets.is_none(), "gemm_windows gathers before the product");
            sgemm_strided(
                m,
                k,
                n,
                (a, Strides::row_major(lda)),
                (b, Strides::row_major(n)),
                (c, n),
            );
            add_bias(c, bias, act, residual);
        }
    }
}

/// `k == 0`: the product is zero.
fn add_bias_to_zero(c: &mut [f32], bias: &[f32], act: Act, residual: Option<&[f32]>) {
    c.fill(0.0);
    add_bias(c, bias, act, residual);
}

#[cfg(target_arch = "x86_64")]
#[allow(unsafe_code)]
mod avx512 {
    use std::arch::x86_64::{
        __m256, __mmask8, __mmask16, _mm256_add_ps, _mm256_fmadd_ps, _mm256_loadu_ps,
        _mm256_mask_storeu_ps, _mm256_maskz_loadu_ps, _mm256_max_ps, _mm256_min_ps, _mm256_set1_ps,
        _mm256_setzero_ps, _mm512_add_ps, _mm512_fmadd_ps, _mm512_loadu_ps, _mm512_mask_storeu_ps,
        _mm512_maskz_loadu_ps, _mm512_max_ps, _mm512_min_ps, _mm512_set1_ps, _mm512_setzero_ps,
        _mm512_storeu_ps,
    };

    use super::super::even;
    use super::{KC, MC, MR, NR, panel_width};

    /// The whole product; see [`super::gemm`] for what the caller guarantees.
    ///
    /// # Safety
    /// AVX-512F, AVX-512VL and FMA are available; `a` holds `m` rows of `k` floats `lda`
    /// apart (or, with `offsets`, row `i` column `p` at `i·lda + offsets[p]`, `k`
    /// offsets); `c` and `residual` hold `m·n`; `bias` `n`; `panels` is `panels(k, n, _)`
    /// of a `[k, n]`.
    #[target_feature(enable = "avx512f,avx512vl,fma")]
    pub(super) unsafe fn run(
        (m, k, n): (usize, usize, usize),
        (a, lda, offsets): (&[f32], usize, Option<&[usize]>),
        panels: &[f32],
        bias: &[f32],
        relu6: bool,
        residual: Option<&[f32]>,
        c: &mut [f32],
    ) {
        let res = residual.map_or(std::ptr::null(), <[f32]>::as_ptr);
        // one row of `a` (a classifier at batch 1): full panels four at a time, so that
        // four weight streams are read side by side and eight sums hide the multiply-add
        // latency (one panel at a time is a single stream and a chain of two sums)
        let (mut j0, mut off0) = (0, 0);
        if m == 1 && offsets.is_none() && k <= KC {
            while n - j0 >= 4 * NR {
                // SAFETY: AVX-512F, VL and FMA are there (this function's contract); row 0
                // of `a` holds `k` floats, the four panels at `off0` are `k` rows of 32
                // each, and columns `j0..j0 + 128` (≤ n) of the bias, `c` and `residual`.
                unsafe {
                    row4(
                        k,
                        a.as_ptr(),
                        panels.as_ptr().add(off0),
                        bias.as_ptr().add(j0),
                        if res.is_null() { res } else { res.add(j0) },
                        c.as_mut_ptr().add(j0),
                        relu6,
                    )
                };
                j0 += 4 * NR;
                off0 += 4 * NR * k;
            }
        }
        let gather = offsets.is_some();
        // blocks of rows, and tiles within a block, as even as they can be: 49 rows are
        // tiles of 10, 10, 10, 10 and 9, not four of 12 and one of 1 (a tile of one or two
        // rows has too few sums to hide the multiply-add latency)
        for (m0, mb) in even(m, MC) {
            for k0 in (0..k).step_by(KC) {
                let kb = KC.min(k - k0);
                let step = Step {
                    kb,
                    lda,
                    offsets: offsets.map_or(std::ptr::null(), |o| o.as_ptr().wrapping_add(k0)),
                    ldc: n,
                    first: k0 == 0,
                    last: k0 + kb == k,
                    relu6,
                };
                let (mut j, mut off) = (j0, off0);
                while j < n {
                    let pw = panel_width(n, j);
                    let (masks, half) = masks(n - j, pw);
                    // the corners of this panel's tiles (in bounds; see the SAFETY below)
                    let b = panels.as_ptr().wrapping_add(off + k0 * pw);
                    let bias = bias.as_ptr().wrapping_add(j);
                    for (i0, rows) in even(mb, MR) {
                        let row = m0 + i0;
                        let t = Tile {
                            // (gathered rows start at their corner; the offsets move on)
                            a: a.as_ptr()
                                .wrapping_add(row * lda + if gather { 0 } else { k0 }),
                            b,
                            bias,
                            res: if res.is_null() {
                                res
                            } else {
                                res.wrapping_add(row * n + j)
                            },
                            c: c.as_mut_ptr().wrapping_add(row * n + j),
                            masks,
                            half,
                        };
                        // SAFETY: AVX-512F, VL and FMA are there (this function's
                        // contract). The tile reads rows `row..row + rows` (≤ m) of `a` at
                        // columns `k0..k0 + kb` (≤ k), or at those columns' offsets, rows `k0..k0 + kb` of the panel at `off`
                        // (`k` rows of `pw` floats), and, masked to the `n - j` columns
                        // left, the bias from column `j` and rows `row..row + rows` of
                        // `c` and `residual` from column `j`: all inside their slices.
                        unsafe {
                            match (pw, gather) {
                                (32, false) => tile_rows::<2, false, false>(rows, &step, &t),
                                (24, false) => tile_rows::<1, true, false>(rows, &step, &t),
                                (16, false) => tile_rows::<1, false, false>(rows, &step, &t),
                                (_, false) => tile_rows::<0, true, false>(rows, &step, &t),
                                (32, true) => tile_rows::<2, false, true>(rows, &step, &t),
                                (24, true) => tile_rows::<1, true, true>(rows, &step, &t),
                                (16, true) => tile_rows::<1, false, true>(rows, &step, &t),
                                (_, true) => tile_rows::<0, true, true>(rows, &step, &t),
                            }
                        }
                    }
                    off += k * pw;
                    j += pw;
                }
            }
        }
    }

    /// One row of the product over four full panels (128 columns): `b` is the first
    /// panel, each `k` rows of 32; `res` null for no residual.
    ///
    /// # Safety
    /// As [`run`], for that row and those columns.
    #[target_feature(enable = "avx512f,avx512vl,fma")]
    unsafe fn row4(
        k: usize,
        a: *const f32,
        b: *const f32,
        bias: *const f32,
        res: *const f32,
        c: *mut f32,
        relu6: bool,
    ) {
        // SAFETY: as this function's contract.
        unsafe {
            let mut acc = [_mm512_setzero_ps(); 8];
            for (v, x) in acc.iter_mut().enumerate() {
                *x = _mm512_loadu_ps(bias.add(16 * v));
            }
            for p in 0..k {
                let x = _mm512_set1_ps(*a.add(p));
                for (v, y) in acc.iter_mut().enumerate() {
                    let w = b.add((v / 2) * k * NR + p * NR + 16 * (v % 2));
                    *y = _mm512_fmadd_ps(x, _mm512_loadu_ps(w), *y);
                }
            }
            let (lo, hi) = (_mm512_setzero_ps(), _mm512_set1_ps(6.0));
            for (v, y) in acc.iter_mut().enumerate() {
                if !res.is_null() {
                    *y = _mm512_add_ps(*y, _mm512_loadu_ps(res.add(16 * v)));
                }
                if relu6 {
                    *y = _mm512_min_ps(_mm512_max_ps(*y, lo), hi);
                }
                _mm512_storeu_ps(c.add(16 * v), *y);
            }
        }
    }

    /// The lanes of a panel's 512-bit vectors, and of its 256-bit one (a panel of 24 or
    /// 8), that lie before the end of `c`'s row, `left` columns away.
    fn masks(left: usize, pw: usize) -> ([__mmask16; 2], __mmask8) {
        let lanes = |from: usize, most: usize| left.saturating_sub(from).min(most);
        let mask = |l: usize| ((1u32 << l) - 1) as u16;
        let wide = pw / 16;
        (
            [mask(lanes(0, 16)), mask(lanes(16, 16))],
            mask(lanes(16 * wide, 8)) as u8,
        )
    }

    /// What every tile of one pass shares.
    struct Step {
        /// Depth of the pass.
        kb: usize,
        lda: usize,
        /// The pass's first column offset (null when rows are dense).
        offsets: *const usize,
        ldc: usize,
        /// The first pass starts from the bias, a later one from `c`.
        first: bool,
        /// The last pass adds the residual and clamps.
        last: bool,
        relu6: bool,
    }

    /// Where one tile reads and writes (its top-left corner in each matrix).
    struct Tile {
        a: *const f32,
        b: *const f32,
        bias: *const f32,
        /// Null for no residual.
        res: *const f32,
        c: *mut f32,
        masks: [__mmask16; 2],
        /// The 256-bit vector's lanes.
        half: __mmask8,
    }

    /// A tile of `rows` (1..=12) rows, `NV` 512-bit vectors of columns and (`H`) one
    /// 256-bit vector.
    ///
    /// # Safety
    /// As [`run`], for the tile's corner and size.
    #[target_feature(enable = "avx512f,avx512vl,fma")]
    unsafe fn tile_rows<const NV: usize, const H: bool, const G: bool>(
        rows: usize,
        s: &Step,
        t: &Tile,
    ) {
        // SAFETY: this function's contract, for a tile of `rows` rows.
        unsafe {
            match rows {
                12 => tile::<12, NV, H, G>(s, t),
                11 => tile::<11, NV, H, G>(s, t),
                10 => tile::<10, NV, H, G>(s, t),
                9 => tile::<9, NV, H, G>(s, t),
                8 => tile::<8, NV, H, G>(s, t),
                7 => tile::<7, NV, H, G>(s, t),
                6 => tile::<6, NV, H, G>(s, t),
                5 => tile::<5, NV, H, G>(s, t),
                4 => tile::<4, NV, H, G>(s, t),
                3 => tile::<3, NV, H, G>(s, t),
                2 => tile::<2, NV, H, G>(s, t),
                _ => tile::<1, NV, H, G>(s, t),
            }
        }
    }

    /// `R` rows by `NV` 512-bit vectors of columns and (`H`) a 256-bit one: sums in
    /// registers over the pass's depth, then (last pass) residual and clamp, and one masked
    /// store. `G`: `a`'s columns are at the pass's offsets.
    ///
    /// # Safety
    /// As [`run`], for the tile's corner and size.
    #[inline]
    #[target_feature(enable = "avx512f,avx512vl,fma")]
    unsafe fn tile<const R: usize, const NV: usize, const H: bool, const G: bool>(
        s: &Step,
        t: &Tile,
    ) {
        let pw = NV * 16 + if H { 8 } else { 0 };
        let mut acc = [[_mm512_setzero_ps(); NV]; R];
        // the 256-bit sums (unused without `H`)
        let mut half: [__m256; R] = [_mm256_setzero_ps(); R];
        let (hm, ho) = (t.half, 16 * NV);
        // SAFETY: as `run` says; masked lanes are neither read nor written.
        unsafe {
            if s.first {
                for v in 0..NV {
                    let b = _mm512_maskz_loadu_ps(t.masks[v], t.bias.add(16 * v));
                    for row in acc.iter_mut() {
                        row[v] = b;
                    }
                }
                if H {
                    half = [_mm256_maskz_loadu_ps(hm, t.bias.add(ho)); R];
                }
            } else {
                for (i, row) in acc.iter_mut().enumerate() {
                    for (v, x) in row.iter_mut().enumerate() {
                        *x = _mm512_maskz_loadu_ps(t.masks[v], t.c.add(i * s.ldc + 16 * v));
                    }
                    if H {
                        half[i] = _mm256_maskz_loadu_ps(hm, t.c.add(i * s.ldc + ho));
                    }
                }
            }
            for p in 0..s.kb {
                let mut b = [_mm512_setzero_ps(); NV];
                for (v, b) in b.iter_mut().enumerate() {
                    *b = _mm512_loadu_ps(t.b.add(p * pw + 16 * v));
                }
                let bh = if H {
                    _mm256_loadu_ps(t.b.add(p * pw + ho))
                } else {
                    _mm256_setzero_ps()
                };
                let col = if G { *s.offsets.add(p) } else { p };
                for (i, (row, h)) in acc.iter_mut().zip(half.iter_mut()).enumerate() {
                    let a = t.a.add(i * s.lda + col);
                    let x = _mm512_set1_ps(*a);
                    for (v, y) in row.iter_mut().enumerate() {
                        *y = _mm512_fmadd_ps(x, b[v], *y);
                    }
                    if H {
                        *h = _mm256_fmadd_ps(_mm256_set1_ps(*a), bh, *h);
                    }
                }
            }
            if s.last {
                if !t.res.is_null() {
                    for (i, (row, h)) in acc.iter_mut().zip(half.iter_mut()).enumerate() {
                        let r = t.res.add(i * s.ldc);
                        for (v, y) in row.iter_mut().enumerate() {
                            let x = _mm512_maskz_loadu_ps(t.masks[v], r.add(16 * v));
                            *y = _mm512_add_ps(*y, x);
                        }
                        if H {
                            *h = _mm256_add_ps(*h, _mm256_maskz_loadu_ps(hm, r.add(ho)));
                        }
                    }
                }
                if s.relu6 {
                    let (lo, hi) = (_mm512_setzero_ps(), _mm512_set1_ps(6.0));
                    let (lo8, hi8) = (_mm256_setzero_ps(), _mm256_set1_ps(6.0));
                    for (row, h) in acc.iter_mut().zip(half.iter_mut()) {
                        for y in row.iter_mut() {
                            *y = _mm512_min_ps(_mm512_max_ps(*y, lo), hi);
                        }
                        if H {
                            *h = _mm256_min_ps(_mm256_max_ps(*h, lo8), hi8);
                        }
                    }
                }
            }
            for (i, (row, h)) in acc.iter().zip(&half).enumerate() {
                let c = t.c.add(i * s.ldc);
                for (v, y) in row.iter().enumerate() {
                    _mm512_mask_storeu_ps(c.add(16 * v), t.masks[v], *y);
                }
                if H {
                    _mm256_mask_storeu_ps(c.add(ho), hm, *h);
                }
            }
        }
    }
}
