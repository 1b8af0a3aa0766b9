//! Owned and borrowed dtype-tagged tensors over `ndarray`.

use half::{bf16, f16};
use ndarray::{ArrayD, ArrayViewD, Dimension};

use crate::{DType, Error, Result};

/// An owned tensor: one of the element types models exchange, in an `ndarray` array.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum Tensor {
    /// `f32`.
    F32(ArrayD<f32>),
    /// IEEE half.
    F16(ArrayD<f16>),
    /// bfloat16.
    BF16(ArrayD<bf16>),
    /// `f64`.
    F64(ArrayD<f64>),
    /// `i64` (token ids, indices).
    I64(ArrayD<i64>),
    /// `i32`.
    I32(ArrayD<i32>),
    /// `i16`.
    I16(ArrayD<i16>),
    /// `i8` (quantized values).
    I8(ArrayD<i8>),
    /// `u64`.
    U64(ArrayD<u64>),
    /// `u32`.
    U32(ArrayD<u32>),
    /// `u16`.
    U16(ArrayD<u16>),
    /// `u8` (images).
    U8(ArrayD<u8>),
    /// `bool` (masks).
    Bool(ArrayD<bool>),
}

/// A borrowed tensor: the lifetime ties it to the data, so an input cannot be freed (or
/// changed) while a backend reads it.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum TensorView<'a> {
    /// `f32`.
    F32(ArrayViewD<'a, f32>),
    /// IEEE half.
    F16(ArrayViewD<'a, f16>),
    /// bfloat16.
    BF16(ArrayViewD<'a, bf16>),
    /// `f64`.
    F64(ArrayViewD<'a, f64>),
    /// `i64`.
    I64(ArrayViewD<'a, i64>),
    /// `i32`.
    I32(ArrayViewD<'a, i32>),
    /// `i16`.
    I16(ArrayViewD<'a, i16>),
    /// `i8`.
    I8(ArrayViewD<'a, i8>),
    /// `u64`.
    U64(ArrayViewD<'a, u64>),
    /// `u32`.
    U32(ArrayViewD<'a, u32>),
    /// `u16`.
    U16(ArrayViewD<'a, u16>),
    /// `u8`.
    U8(ArrayViewD<'a, u8>),
    /// `bool`.
    Bool(ArrayViewD<'a, bool>),
}

/// `$e` for whichever variant `$v` (a `Tensor` or `TensorView`, named by `$ty`) holds, its
/// array bound to `$a`; `$wrap` (if given) is the same variant's constructor of another enum.
macro_rules! each {
    ($v:expr, $a:ident => $e:expr) => {
        each!(@ $v, Self, $a => $e)
    };
    (@ $v:expr, $ty:ident, $a:ident => $e:expr) => {
        match $v {
            $ty::F32($a) => $e,
            $ty::F16($a) => $e,
            $ty::BF16($a) => $e,
            $ty::F64($a) => $e,
            $ty::I64($a) => $e,
            $ty::I32($a) => $e,
            $ty::I16($a) => $e,
            $ty::I8($a) => $e,
            $ty::U64($a) => $e,
            $ty::U32($a) => $e,
            $ty::U16($a) => $e,
            $ty::U8($a) => $e,
            $ty::Bool($a) => $e,
        }
    };
    (map $v:expr, $from:ident => $to:ident, $a:ident => $e:expr) => {
        match $v {
            $from::F32($a) => $to::F32($e),
            $from::F16($a) => $to::F16($e),
            $from::BF16($a) => $to::BF16($e),
            $from::F64($a) => $to::F64($e),
            $from::I64($a) => $to::I64($e),
            $from::I32($a) => $to::I32($e),
            $from::I16($a) => $to::I16($e),
            $from::I8($a) => $to::I8($e),
            $from::U64($a) => $to::U64($e),
            $from::U32($a) => $to::U32($e),
            $from::U16($a) => $to::U16($e),
            $from::U8($a) => $to::U8($e),
            $from::Bool($a) => $to::Bool($e),
        }
    };
}
// (for the backends' conversions of every element type)
#[cfg(feature = "ort")]
pub(crate) use each;

impl Tensor {
    /// The element type.
    pub fn dtype(&self) -> DType {
        self.view().dtype()
    }

    /// The shape.
    pub fn shape(&self) -> &[usize] {
        each!(self, a => a.shape())
    }

    /// A borrowed view.
    pub fn view(&self) -> TensorView<'_> {
        each!(map self, Tensor => TensorView, a => a.view())
    }

    /// The array, if the tensor holds `T`.
    ///
    /// # Errors
    /// [`Error::DType`] naming both types.
    pub fn view_as<T: Element>(&self) -> Result<ArrayViewD<'_, T>> {
        T::view_of(&self.view()).ok_or(Error::DType {
            requested: T::DTYPE,
            actual: self.dtype(),
        })
    }

    /// The array, if the tensor holds `T`.
    ///
    /// # Errors
    /// [`Error::DType`]; the tensor is dropped.
    pub fn into_array<T: Element>(self) -> Result<ArrayD<T>> {
        let actual = self.dtype();
        T::take(self).ok_or(Error::DType {
            requested: T::DTYPE,
            actual,
        })
    }
}

impl TensorView<'_> {
    /// The element type.
    pub fn dtype(&self) -> DType {
        fn of<T: Element, D>(_: &ndarray::ArrayBase<D, ndarray::IxDyn>) -> DType
        where
            D: ndarray::Data<Elem = T>,
        {
            T::DTYPE
        }
        each!(self, a => of(a))
    }

    /// The shape.
    pub fn shape(&self) -> &[usize] {
        each!(self, a => a.shape())
    }

    /// An owned copy.
    pub fn to_owned(&self) -> Tensor {
        each!(map self, TensorView => Tensor, a => a.to_owned())
    }
}

/// The element types a [`Tensor`] holds. Sealed.
pub trait Element: Copy + Send + Sync + std::fmt::Debug + sealed::Sealed + 'static {
    /// Its dtype tag.
    const DTYPE: DType;
    #[doc(hidden)]
    fn wrap(a: ArrayD<Self>) -> Tensor;
    #[doc(hidden)]
    fn wrap_view(a: ArrayViewD<'_, Self>) -> TensorView<'_>;
    #[doc(hidden)]
    fn view_of<'a>(v: &TensorView<'a>) -> Option<ArrayViewD<'a, Self>>;
    #[doc(hidden)]
    fn take(t: Tensor) -> Option<ArrayD<Self>>;
}

mod sealed {
    pub trait Sealed {}
}

/// Little-endian bytes of an element (the layout of safetensors, npy and the KServe binary
/// and raw contents).
trait LeBytes: Sized {
    fn put_le(self, out: &mut Vec<u8>);
    /// `None` for bytes that are no value (a bool other than 0 or 1).
    fn from_le(b: &[u8]) -> Option<Self>;
}

macro_rules! le_bytes {
    ($($t:ty),*) => {$(
        impl LeBytes for $t {
            fn put_le(self, out: &mut Vec<u8>) {
                out.extend_from_slice(&self.to_le_bytes());
            }
            fn from_le(b: &[u8]) -> Option<Self> {
                Some(<$t>::from_le_bytes(b.try_into().ok()?))
            }
        }
    )*};
}
le_bytes!(f32, f16, bf16, f64, i64, i32, i16, i8, u64, u32, u16, u8);

impl LeBytes for bool {
    fn put_le(self, out: &mut Vec<u8>) {
        out.push(u8::from(self));
    }
    fn from_le(b: &[u8]) -> Option<Self> {
        match b {
            [0] => Some(false),
            [1] => Some(true),
            _ => None,
        }
    }
}

impl Tensor {
    /// A tensor of `dtype` and `shape` from its values' little-endian bytes, in C order (the
    /// layout of the KServe binary data extension and of gRPC's raw contents).
    ///
    /// ```
    /// use inferkit_infer_core::{DType, Tensor};
    /// let t = Tensor::from_le_bytes(DType::I16, &[2], &[1, 0, 0xff, 0xff])?;
    /// assert_eq!(t.view_as::<i16>()?.as_slice().unwrap(), &[1, -1]);
    /// # Ok::<(), inferkit_infer_core::Error>(())
    /// ```
    ///
    /// # Errors
    /// [`Error::Tensor`] naming what is wrong: a byte count other than the shape's values
    /// times the element size, an element type no tensor holds, a bool byte other than 0 or 1
    /// (with its offset).
    pub fn from_le_bytes(dtype: DType, shape: &[usize], bytes: &[u8]) -> Result<Tensor> {
        fn read<T: Element + LeBytes>(shape: &[usize], bytes: &[u8]) -> Result<Tensor> {
            let width = std::mem::size_of::<T>();
            let values = bytes
                .chunks_exact(width)
                .enumerate()
                .map(|(i, c)| {
                    T::from_le(c).ok_or_else(|| {
                        Error::Tensor(format!(
                            "byte {} ({:#04x}) is no {:?} value",
                            i * width,
                            c[0],
                            T::DTYPE
                        ))
                    })
                })
                .collect::<Result<Vec<T>>>()?;
            let a = ArrayD::from_shape_vec(shape, values)
                .map_err(|e| Error::Tensor(format!("shape {shape:?}: {e}")))?;
            Ok(T::wrap(a))
        }
        let n = shape
            .iter()
            .try_fold(1usize, |a, &d| a.checked_mul(d))
            .ok_or_else(|| Error::Tensor(format!("shape {shape:?} is too large")))?;
        if n.checked_mul(dtype.size()) != Some(bytes.len()) {
            return Err(Error::Tensor(format!(
                "{} bytes for shape {shape:?} of {dtype:?} ({n} values of {} bytes)",
                bytes.len(),
                dtype.size()
            )));
        }
        match dtype {
            DType::F32 => read::<f32>(shape, bytes),
            DType::F16 => read::<f16>(shape, bytes),
            DType::BF16 => read::<bf16>(shape, bytes),
            DType::F64 => read::<f64>(shape, bytes),
            DType::I64 => read::<i64>(shape, bytes),
            DType::I32 => read::<i32>(shape, bytes),
            DType::I16 => read::<i16>(shape, bytes),
            DType::I8 => read::<i8>(shape, bytes),
            DType::U64 => read::<u64>(shape, bytes),
            DType::U32 => read::<u32>(shape, bytes),
            DType::U16 => read::<u16>(shape, bytes),
            DType::U8 => read::<u8>(shape, bytes),
            DType::Bool => read::<bool>(shape, bytes),
            other => Err(Error::Tensor(format!(
                "element type {other:?} is not one a tensor holds"
            ))),
        }
    }

    /// Appends the values' little-endian bytes, in C order, to `out`; returns their count.
    pub fn write_le_bytes(&self, out: &mut Vec<u8>) -> usize {
        self.view().write_le_bytes(out)
    }

    /// The tensors joined along `axis` (a batch from requests, `axis` 0).
    ///
    /// ```
    /// use inferkit_infer_core::Tensor;
    /// let a = Tensor::from(ndarray::array![[1u16, 2]]);
    /// let b = Tensor::from(ndarray::array![[3u16, 4], [5, 6]]);
    /// let joined = Tensor::concatenate(0, &[a.view(), b.view()])?;
    /// assert_eq!(joined.shape(), &[3, 2]);
    /// # Ok::<(), inferkit_infer_core::Error>(())
    /// ```
    ///
    /// # Errors
    /// [`Error::Tensor`] when there is nothing to join, the element types differ, or the other
    /// dimensions differ.
    pub fn concatenate(axis: usize, parts: &[TensorView<'_>]) -> Result<Tensor> {
        fn join<T: Element>(axis: usize, parts: &[TensorView<'_>]) -> Result<Tensor> {
            let views = parts
                .iter()
                .map(|p| {
                    T::view_of(p).ok_or_else(|| {
                        Error::Tensor(format!(
                            "cannot join {:?} with {:?} tensors",
                            p.dtype(),
                            T::DTYPE
                        ))
                    })
                })
                .collect::<Result<Vec<_>>>()?;
            ndarray::concatenate(ndarray::Axis(axis), &views)
                .map(T::wrap)
                .map_err(|e| Error::Tensor(format!("joining along axis {axis}: {e}")))
        }
        let first = parts
            .first()
            .ok_or_else(|| Error::Tensor("no tensors to join".into()))?;
        fn first_of<T: Element, D>(
            _: &ndarray::ArrayBase<D, ndarray::IxDyn>,
            axis: usize,
            parts: &[TensorView<'_>],
        ) -> Result<Tensor>
        where
            D: ndarray::Data<Elem = T>,
        {
            join::<T>(axis, parts)
        }
        each!(@ first, TensorView, a => first_of(a, axis, parts))
    }
}

impl<'a> TensorView<'a> {
    /// Rows `range` of `axis`, borrowed.
    ///
    /// # Panics
    /// When `axis` or `range` is out of bounds (as `ndarray`'s `slice_axis`).
    pub fn slice_axis(&self, axis: usize, range: std::ops::Range<usize>) -> TensorView<'a> {
        each!(map self, TensorView => TensorView, a => a
            .clone()
            .slice_axis_move(ndarray::Axis(axis), range.clone().into()))
    }

    /// Appends the values' little-endian bytes, in C order, to `out`; returns their count.
    pub fn write_le_bytes(&self, out: &mut Vec<u8>) -> usize {
        fn put<T: LeBytes + Copy>(a: &ArrayViewD<'_, T>, out: &mut Vec<u8>) {
            a.iter().for_each(|&x| x.put_le(out));
        }
        let start = out.len();
        each!(self, a => put(a, out));
        out.len() - start
    }
}

macro_rules! element {
    ($t:ty, $v:ident, $d:ident) => {
        impl sealed::Sealed for $t {}
        impl Element for $t {
            const DTYPE: DType = DType::$d;
            fn wrap(a: ArrayD<Self>) -> Tensor {
                Tensor::$v(a)
            }
            fn wrap_view(a: ArrayViewD<'_, Self>) -> TensorView<'_> {
                TensorView::$v(a)
            }
            fn view_of<'a>(v: &TensorView<'a>) -> Option<ArrayViewD<'a, Self>> {
                match v {
                    TensorView::$v(a) => Some(a.clone()),
                    _ => None,
                }
            }
            fn take(t: Tensor) -> Option<ArrayD<Self>> {
                match t {
                    Tensor::$v(a) => Some(a),
                    _ => None,
                }
            }
        }
    };
}
element!(f32, F32, F32);
element!(f16, F16, F16);
element!(bf16, BF16, BF16);
element!(f64, F64, F64);
element!(i64, I64, I64);
element!(i32, I32, I32);
element!(i16, I16, I16);
element!(i8, I8, I8);
element!(u64, U64, U64);
element!(u32, U32, U32);
element!(u16, U16, U16);
element!(u8, U8, U8);
element!(bool, Bool, Bool);

impl<T: Element, D: Dimension> From<ndarray::Array<T, D>> for Tensor {
    fn from(a: ndarray::Array<T, D>) -> Self {
        T::wrap(a.into_dyn())
    }
}

impl<'a, T: Element, D: Dimension> From<ndarray::ArrayView<'a, T, D>> for TensorView<'a> {
    fn from(a: ndarray::ArrayView<'a, T, D>) -> Self {
        T::wrap_view(a.into_dyn())
    }
}

impl<'a, T: Element, D: Dimension> From<&'a ndarray::Array<T, D>> for TensorView<'a> {
    fn from(a: &'a ndarray::Array<T, D>) -> Self {
        T::wrap_view(a.view().into_dyn())
    }
}

impl<'a> From<&'a Tensor> for TensorView<'a> {
    fn from(t: &'a Tensor) -> Self {
        t.view()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn le_bytes_round_trip_every_element_type() {
        let tensors: Vec<Tensor> = vec![
            ndarray::array![1.5f32, -2.0].into(),
            ndarray::array![f16::from_f32(0.5), f16::from_f32(-3.0)].into(),
            ndarray::array![bf16::from_f32(0.5), bf16::from_f32(-3.0)].into(),
            ndarray::array![1e300f64, -0.25].into(),
            ndarray::array![i64::MIN, 7].into(),
            ndarray::array![i32::MIN, 7].into(),
            ndarray::array![i16::MIN, 7].into(),
            ndarray::array![i8::MIN, 7].into(),
            ndarray::array![u64::MAX, 7].into(),
            ndarray::array![u32::MAX, 7].into(),
            ndarray::array![u16::MAX, 7].into(),
            ndarray::array![u8::MAX, 7].into(),
            ndarray::array![true, false].into(),
        ];
        for t in tensors {
            let mut bytes = vec![0xAA];
            let n = t.write_le_bytes(&mut bytes);
            assert_eq!(n, 2 * t.dtype().size());
            let back = Tensor::from_le_bytes(t.dtype(), &[2], &bytes[1..]).unwrap();
            assert_eq!(back, t);
        }
    }

    #[test]
    fn bad_bytes_are_named() {
        let e = Tensor::from_le_bytes(DType::Bool, &[3], &[1, 0, 2]).unwrap_err();
        assert_eq!(e.to_string(), "tensor: byte 2 (0x02) is no Bool value");
        let e = Tensor::from_le_bytes(DType::I32, &[2], &[0; 7]).unwrap_err();
        assert!(
            e.to_string()
                .contains("7 bytes for shape [2] of I32 (2 values of 4 bytes)"),
            "{e}"
        );
        let e = Tensor::from_le_bytes(DType::U8, &[usize::MAX, 2], &[]).unwrap_err();
        assert!(e.to_string().contains("too large"), "{e}");
    }

    #[test]
    fn concatenate_and_slice() {
        let a = Tensor::from(ndarray::array![[1i8, 2], [3, 4]]);
        let b = Tensor::from(ndarray::array![[5i8, 6]]);
        let j = Tensor::concatenate(0, &[a.view(), b.view()]).unwrap();
        assert_eq!(j, Tensor::from(ndarray::array![[1i8, 2], [3, 4], [5, 6]]));
        assert_eq!(
            j.view().slice_axis(0, 1..3).to_owned(),
            Tensor::from(ndarray::array![[3i8, 4], [5, 6]])
        );
        let c = Tensor::from(ndarray::array![[5u8, 6]]);
        let e = Tensor::concatenate(0, &[a.view(), c.view()]).unwrap_err();
        assert!(e.to_string().contains("cannot join U8 with I8"), "{e}");
        let d = Tensor::from(ndarray::array![[5i8, 6, 7]]);
        assert!(Tensor::concatenate(0, &[a.view(), d.view()]).is_err());
        assert!(Tensor::concatenate(0, &[]).is_err());
    }
}
