//! Element types: the [`DType`] tag every tensor carries, and the [`StoredElement`] trait of the
//! Rust types a tensor can be read as.

use half::{bf16, f16};

/// The element type of a stored tensor. Defined once here for the whole workspace.
///
/// The names follow safetensors (`F32`, `BF16`, `F8_E4M3`, …); [`DType::as_str`] gives them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum DType {
    /// `bool`, one byte, 0 or 1.
    Bool,
    /// `u8`.
    U8,
    /// `i8`.
    I8,
    /// `i16`.
    I16,
    /// `u16`.
    U16,
    /// `i32`.
    I32,
    /// `u32`.
    U32,
    /// `i64`.
    I64,
    /// `u64`.
    U64,
    /// IEEE half precision.
    F16,
    /// bfloat16.
    BF16,
    /// `f32`.
    F32,
    /// `f64`.
    F64,
    /// FP8 E4M3 (the "FN" variant: no infinities, NaN at 0x7F/0xFF), as safetensors and
    /// `torch.float8_e4m3fn` store it.
    F8E4M3,
    /// FP8 E5M2, as `torch.float8_e5m2`.
    F8E5M2,
}

impl DType {
    /// Bytes per element.
    pub const fn size(self) -> usize {
        match self {
            DType::Bool | DType::U8 | DType::I8 | DType::F8E4M3 | DType::F8E5M2 => 1,
            DType::I16 | DType::U16 | DType::F16 | DType::BF16 => 2,
            DType::I32 | DType::U32 | DType::F32 => 4,
            DType::I64 | DType::U64 | DType::F64 => 8,
        }
    }

    /// The safetensors spelling: `"F32"`, `"BOOL"`, `"F8_E4M3"`, …
    pub const fn as_str(self) -> &'static str {
        match self {
            DType::Bool => "BOOL",
            DType::U8 => "U8",
            DType::I8 => "I8",
            DType::I16 => "I16",
            DType::U16 => "U16",
            DType::I32 => "I32",
            DType::U32 => "U32",
            DType::I64 => "I64",
            DType::U64 => "U64",
            DType::F16 => "F16",
            DType::BF16 => "BF16",
            DType::F32 => "F32",
            DType::F64 => "F64",
            DType::F8E4M3 => "F8_E4M3",
            DType::F8E5M2 => "F8_E5M2",
        }
    }

    /// Parses the safetensors spelling; `None` for anything this crate does not handle.
    pub fn from_safetensors_name(name: &str) -> Option<Self> {
        Some(match name {
            "BOOL" => DType::Bool,
            "U8" => DType::U8,
            "I8" => DType::I8,
            "I16" => DType::I16,
            "U16" => DType::U16,
            "I32" => DType::I32,
            "U32" => DType::U32,
            "I64" => DType::I64,
            "U64" => DType::U64,
            "F16" => DType::F16,
            "BF16" => DType::BF16,
            "F32" => DType::F32,
            "F64" => DType::F64,
            "F8_E4M3" => DType::F8E4M3,
            "F8_E5M2" => DType::F8E5M2,
            _ => return None,
        })
    }

    /// Whether the type is a floating-point format.
    pub const fn is_float(self) -> bool {
        matches!(
            self,
            DType::F16 | DType::BF16 | DType::F32 | DType::F64 | DType::F8E4M3 | DType::F8E5M2
        )
    }

    pub(crate) fn to_safetensors(self) -> safetensors::Dtype {
        use safetensors::Dtype as S;
        match self {
            DType::Bool => S::BOOL,
            DType::U8 => S::U8,
            DType::I8 => S::I8,
            DType::I16 => S::I16,
            DType::U16 => S::U16,
            DType::I32 => S::I32,
            DType::U32 => S::U32,
            DType::I64 => S::I64,
            DType::U64 => S::U64,
            DType::F16 => S::F16,
            DType::BF16 => S::BF16,
            DType::F32 => S::F32,
            DType::F64 => S::F64,
            DType::F8E4M3 => S::F8_E4M3,
            DType::F8E5M2 => S::F8_E5M2,
        }
    }
}

impl std::fmt::Display for DType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

mod sealed {
    pub trait Sealed {}
}

/// A Rust type a tensor's elements can be read as: `f32`, `f16`, `bf16`, `i64`, `bool`, …
///
/// Sealed: implemented for exactly one type per [`DType`] that has a native Rust type
/// (FP8 has none; convert it with [`StoredTensor::to_f32`](crate::StoredTensor::to_f32)).
pub trait StoredElement: Copy + Send + Sync + std::fmt::Debug + 'static + sealed::Sealed {
    /// The dtype whose bytes this type reads.
    const DTYPE: DType;
    /// Reads one element from exactly `DTYPE.size()` little-endian bytes.
    #[doc(hidden)]
    fn read_le(bytes: &[u8]) -> Self;
}

macro_rules! pod_element {
    ($($t:ty => $d:ident),* $(,)?) => {$(
        impl sealed::Sealed for $t {}
        impl StoredElement for $t {
            const DTYPE: DType = DType::$d;
            #[inline(always)]
            fn read_le(bytes: &[u8]) -> Self {
                // Little-endian host is enforced at compile time in lib.rs.
                bytemuck::pod_read_unaligned(bytes)
            }
        }
    )*};
}

pod_element!(
    u8 => U8, i8 => I8, i16 => I16, u16 => U16, i32 => I32, u32 => U32,
    i64 => I64, u64 => U64, f16 => F16, bf16 => BF16, f32 => F32, f64 => F64,
);

impl sealed::Sealed for bool {}
impl StoredElement for bool {
    const DTYPE: DType = DType::Bool;
    #[inline(always)]
    fn read_le(bytes: &[u8]) -> Self {
        bytes[0] != 0
    }
}
