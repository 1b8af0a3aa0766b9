//! The native CPU backend (feature `cpu`): kernels on `ndarray` views and the models built
//! from them. Work in progress: EfficientNet-Lite0 is correct against PyTorch; the kernels
//! are straightforward (im2col + GEMM through ndarray's `matrixmultiply`, direct depthwise
//! convolution) and not yet tuned.

pub mod efficientnet;
pub mod kernels;
pub mod nhwc;

pub use efficientnet::EfficientNetLite0;
