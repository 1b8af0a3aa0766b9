//! Images: decoding into pooled buffers, and transforms into f32 batch slots.

pub(crate) mod decode;
pub(crate) mod orient;
pub(crate) mod resample;
pub(crate) mod transform;
