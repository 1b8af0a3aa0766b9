//! Walking a strided tensor in logical (row-major) order, and converting its elements.

use half::{bf16, f16};

use crate::DType;

/// Calls `f(start, len, stride)` for each maximal run of the tensor in logical order:
/// `len` elements at element offsets `start, start + stride, …`. Adjacent dimensions that
/// are contiguous with each other are merged, so a contiguous tensor is a single run.
pub(crate) fn for_each_run(
    shape: &[usize],
    strides: &[usize],
    mut f: impl FnMut(usize, usize, usize),
) {
    if shape.contains(&0) {
        return;
    }
    // Drop size-1 dims, then merge (outer, inner) pairs where outer_stride == inner_len * inner_stride.
    let mut dims: Vec<(usize, usize)> = Vec::with_capacity(shape.len());
    for (&n, &s) in shape.iter().zip(strides) {
        if n == 1 {
            continue;
        }
        if let Some(last) = dims.last_mut()
            && n.checked_mul(s) == Some(last.1)
        {
            *last = (last.0 * n, s);
            continue;
        }
        dims.push((n, s));
    }
    let Some(&(inner_len, inner_stride)) = dims.last() else {
        f(0, 1, 1);
        return;
    };
    let outer = &dims[..dims.len() - 1];
    let mut index = vec![0usize; outer.len()];
    let mut start = 0usize;
    loop {
        f(start, inner_len, inner_stride);
        // Odometer increment over the outer dims.
        let mut d = outer.len();
        loop {
            if d == 0 {
                return;
            }
            d -= 1;
            index[d] += 1;
            start += outer[d].1;
            if index[d] < outer[d].0 {
                break;
            }
            start -= outer[d].1 * outer[d].0;
            index[d] = 0;
        }
    }
}

/// Fills `out` (exactly `numel` long) from `bytes` in logical order, decoding each `N`-byte
/// element with `f`.
#[inline(always)]
fn walk<const N: usize, O>(
    bytes: &[u8],
    shape: &[usize],
    strides: &[usize],
    out: &mut [O],
    f: impl Fn([u8; N]) -> O,
) {
    let mut pos = 0;
    for_each_run(shape, strides, |start, len, stride| {
        let dst = &mut out[pos..pos + len];
        pos += len;
        if stride == 1 {
            let src = &bytes[start * N..(start + len) * N];
            for (d, c) in dst.iter_mut().zip(src.chunks_exact(N)) {
                *d = f(c.try_into().expect("chunks_exact yields N bytes"));
            }
        } else {
            for (i, d) in dst.iter_mut().enumerate() {
                let o = (start + i * stride) * N;
                *d = f(bytes[o..o + N].try_into().expect("slice of N bytes"));
            }
        }
    });
}

/// Copies the elements (raw bytes) of a strided tensor into `out` in logical order.
pub(crate) fn gather_bytes(
    bytes: &[u8],
    elem: usize,
    shape: &[usize],
    strides: &[usize],
    out: &mut Vec<u8>,
) {
    for_each_run(shape, strides, |start, len, stride| {
        if stride == 1 {
            out.extend_from_slice(&bytes[start * elem..(start + len) * elem]);
        } else {
            for i in 0..len {
                let o = (start + i * stride) * elem;
                out.extend_from_slice(&bytes[o..o + elem]);
            }
        }
    });
}

/// A float type elements can be converted into.
pub(crate) trait Float: Copy {
    fn from_f32(v: f32) -> Self;
    fn from_f64(v: f64) -> Self;
    fn from_i64(v: i64) -> Self;
    fn from_u64(v: u64) -> Self;
}

impl Float for f32 {
    #[inline(always)]
    fn from_f32(v: f32) -> Self {
        v
    }
    #[inline(always)]
    fn from_f64(v: f64) -> Self {
        v as f32
    }
    #[inline(always)]
    fn from_i64(v: i64) -> Self {
        v as f32
    }
    #[inline(always)]
    fn from_u64(v: u64) -> Self {
        v as f32
    }
}

impl Float for f64 {
    #[inline(always)]
    fn from_f32(v: f32) -> Self {
        v as f64
    }
    #[inline(always)]
    fn from_f64(v: f64) -> Self {
        v
    }
    #[inline(always)]
    fn from_i64(v: i64) -> Self {
        v as f64
    }
    #[inline(always)]
    fn from_u64(v: u64) -> Self {
        v as f64
    }
}

#[inline(always)]
fn bf16_bits_to_f32(bits: u16) -> f32 {
    f32::from_bits(u32::from(bits) << 16)
}

/// Converts every element of a (validated) strided tensor to `O`, in logical order.
/// `out.len()` must equal the element count.
pub(crate) fn to_float<O: Float>(
    dtype: DType,
    bytes: &[u8],
    shape: &[usize],
    strides: &[usize],
    out: &mut [O],
) {
    match dtype {
        DType::F32 => walk::<4, O>(bytes, shape, strides, out, |b| {
            O::from_f32(f32::from_le_bytes(b))
        }),
        DType::F64 => walk::<8, O>(bytes, shape, strides, out, |b| {
            O::from_f64(f64::from_le_bytes(b))
        }),
        DType::BF16 => walk::<2, O>(bytes, shape, strides, out, |b| {
            O::from_f32(bf16_bits_to_f32(u16::from_le_bytes(b)))
        }),
        DType::F16 => walk::<2, O>(bytes, shape, strides, out, |b| {
            O::from_f32(f16::from_bits(u16::from_le_bytes(b)).to_f32())
        }),
        DType::F8E4M3 => {
            let lut: [f32; 256] =
                std::array::from_fn(|i| float8::F8E4M3::from_bits(i as u8).to_f32());
            walk::<1, O>(bytes, shape, strides, out, |b| {
                O::from_f32(lut[b[0] as usize])
            })
        }
        DType::F8E5M2 => {
            let lut: [f32; 256] =
                std::array::from_fn(|i| float8::F8E5M2::from_bits(i as u8).to_f32());
            walk::<1, O>(bytes, shape, strides, out, |b| {
                O::from_f32(lut[b[0] as usize])
            })
        }
        DType::I64 => walk::<8, O>(bytes, shape, strides, out, |b| {
            O::from_i64(i64::from_le_bytes(b))
        }),
        DType::U64 => walk::<8, O>(bytes, shape, strides, out, |b| {
            O::from_u64(u64::from_le_bytes(b))
        }),
        DType::I32 => walk::<4, O>(bytes, shape, strides, out, |b| {
            O::from_i64(i32::from_le_bytes(b).into())
        }),
        DType::U32 => walk::<4, O>(bytes, shape, strides, out, |b| {
            O::from_u64(u32::from_le_bytes(b).into())
        }),
        DType::I16 => walk::<2, O>(bytes, shape, strides, out, |b| {
            O::from_i64(i16::from_le_bytes(b).into())
        }),
        DType::U16 => walk::<2, O>(bytes, shape, strides, out, |b| {
            O::from_u64(u16::from_le_bytes(b).into())
        }),
        DType::I8 => walk::<1, O>(bytes, shape, strides, out, |b| {
            O::from_i64(i8::from_le_bytes(b).into())
        }),
        DType::U8 => walk::<1, O>(bytes, shape, strides, out, |b| O::from_u64(b[0].into())),
        DType::Bool => walk::<1, O>(bytes, shape, strides, out, |b| {
            O::from_u64(u64::from(b[0] != 0))
        }),
    }
}

/// The fast path for contiguous, aligned F16 → f32 (F16C where the CPU has it).
pub(crate) fn f16_slice_to_f32(src: &[f16], out: &mut [f32]) {
    use half::slice::HalfFloatSliceExt;
    src.convert_to_f32_slice(out);
}

/// The fast path for contiguous, aligned BF16 → f32.
pub(crate) fn bf16_slice_to_f32(src: &[bf16], out: &mut [f32]) {
    for (o, v) in out.iter_mut().zip(src) {
        *o = bf16_bits_to_f32(v.to_bits());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn runs(shape: &[usize], strides: &[usize]) -> Vec<(usize, usize, usize)> {
        let mut v = Vec::new();
        for_each_run(shape, strides, |a, b, c| v.push((a, b, c)));
        v
    }

    #[test]
    fn contiguous_tensor_is_one_run() {
        assert_eq!(runs(&[2, 3, 4], &[12, 4, 1]), vec![(0, 24, 1)]);
    }

    #[test]
    fn scalar_is_one_element() {
        assert_eq!(runs(&[], &[]), vec![(0, 1, 1)]);
        assert_eq!(runs(&[1, 1], &[5, 7]), vec![(0, 1, 1)]);
    }

    #[test]
    fn empty_tensor_has_no_runs() {
        assert!(runs(&[3, 0], &[0, 1]).is_empty());
    }

    #[test]
    fn transposed_matrix_walks_columns() {
        // A 2x3 row-major matrix viewed transposed: shape [3, 2], strides [1, 3].
        assert_eq!(
            runs(&[3, 2], &[1, 3]),
            vec![(0, 2, 3), (1, 2, 3), (2, 2, 3)]
        );
    }

    #[test]
    fn strided_matches_naive_indexing() {
        let shape = [2, 3, 2];
        let strides = [1, 4, 12];
        let mut got = Vec::new();
        for_each_run(&shape, &strides, |s, n, st| {
            got.extend((0..n).map(|i| s + i * st))
        });
        let mut want = Vec::new();
        for i in 0..2 {
            for j in 0..3 {
                for k in 0..2 {
                    want.push(i + 4 * j + 12 * k);
                }
            }
        }
        assert_eq!(got, want);
    }
}
