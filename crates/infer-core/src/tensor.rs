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
    /// `i64` (token ids, indices).
    I64(ArrayD<i64>),
    /// `i32`.
    I32(ArrayD<i32>),
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
    /// `i64`.
    I64(ArrayViewD<'a, i64>),
    /// `i32`.
    I32(ArrayViewD<'a, i32>),
    /// `u8`.
    U8(ArrayViewD<'a, u8>),
    /// `bool`.
    Bool(ArrayViewD<'a, bool>),
}

macro_rules! each {
    ($v:expr, $a:ident => $e:expr) => {
        match $v {
            Self::F32($a) => $e,
            Self::F16($a) => $e,
            Self::BF16($a) => $e,
            Self::I64($a) => $e,
            Self::I32($a) => $e,
            Self::U8($a) => $e,
            Self::Bool($a) => $e,
        }
    };
}

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
        match self {
            Tensor::F32(a) => TensorView::F32(a.view()),
            Tensor::F16(a) => TensorView::F16(a.view()),
            Tensor::BF16(a) => TensorView::BF16(a.view()),
            Tensor::I64(a) => TensorView::I64(a.view()),
            Tensor::I32(a) => TensorView::I32(a.view()),
            Tensor::U8(a) => TensorView::U8(a.view()),
            Tensor::Bool(a) => TensorView::Bool(a.view()),
        }
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
        match self {
            Self::F32(_) => DType::F32,
            Self::F16(_) => DType::F16,
            Self::BF16(_) => DType::BF16,
            Self::I64(_) => DType::I64,
            Self::I32(_) => DType::I32,
            Self::U8(_) => DType::U8,
            Self::Bool(_) => DType::Bool,
        }
    }

    /// The shape.
    pub fn shape(&self) -> &[usize] {
        each!(self, a => a.shape())
    }

    /// An owned copy.
    pub fn to_owned(&self) -> Tensor {
        match self {
            Self::F32(a) => Tensor::F32(a.to_owned()),
            Self::F16(a) => Tensor::F16(a.to_owned()),
            Self::BF16(a) => Tensor::BF16(a.to_owned()),
            Self::I64(a) => Tensor::I64(a.to_owned()),
            Self::I32(a) => Tensor::I32(a.to_owned()),
            Self::U8(a) => Tensor::U8(a.to_owned()),
            Self::Bool(a) => Tensor::Bool(a.to_owned()),
        }
    }
}

/// The element types a [`Tensor`] holds. Sealed.
pub trait Element: Clone + sealed::Sealed + 'static {
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
element!(i64, I64, I64);
element!(i32, I32, I32);
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
