//! Reads an `.npy` fixture of any element type `ndarray-npy` reads (all but f16/bf16) into
//! an inferkit tensor.

use std::path::Path;

use inferkit::infer_core::Tensor;
use ndarray::ArrayD;
use ndarray_npy::read_npy;

/// The array in `path`, whatever its element type.
pub(crate) fn read_any(path: &Path) -> Tensor {
    macro_rules! try_read {
        ($($t:ty),*) => {$(
            if let Ok(a) = read_npy::<_, ArrayD<$t>>(path) {
                return a.into();
            }
        )*};
    }
    try_read!(f32, f64, i64, i32, i16, i8, u64, u32, u16, u8);
    read_npy::<_, ArrayD<bool>>(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .into()
}
