//! The GEMM behind one checked safe wrapper (`sgemm`, `sgemm_strided`: any operand strides,
//! MiniLM's weights in place), TensorFlow "same" padding, and batch-norm folding.

use ndarray::{Array1, Array4, ArrayView1};

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
