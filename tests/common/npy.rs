//! Reads an `.npy` fixture of any element type `ndarray-npy` reads (all but f16/bf16) into
//! an inferkit tensor, and compares f32 tensors.

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

/// The largest absolute difference between two f32 tensors of one shape.
#[allow(dead_code)] // not every test that reads fixtures compares f32 tensors
pub(crate) fn max_abs_diff(a: &Tensor, b: &Tensor) -> f32 {
    let (a, b) = (a.view_as::<f32>().unwrap(), b.view_as::<f32>().unwrap());
    assert_eq!(a.shape(), b.shape());
    a.iter()
        .zip(b.iter())
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}
