//! The int8 checkpoint format: safetensors, PyTorch's names and layouts, read in place.
//!
//! A quantized weight keeps its name, shape and layout (a linear weight stays `[out, in]`)
//! with dtype `I8`; beside it `<name>_scale` (`F32`, one per output channel: the weight's
//! first axis) holds the scales, so that `w ≈ scale[o] · q[o, …]`. Weights are symmetric
//! (`scale = max|w[o]| / 127`, values in −127..=127, zero point 0), so no zero-point tensor
//! is written. Everything not quantized (biases, norms, small tables) stays as it was in
//! the source, f32. A model with static activation ranges (EfficientNet-Lite0) adds, per
//! quantized activation, `<layer>.activation_range` (`F32 [2]`: the real `[low, high]` its
//! `u8` values cover, 0 included; scale `(high − low) / 255`, zero point `round(−low /
//! scale)`), and per convolution a `<conv>.bias` (`F32 [out]`, PyTorch's `Conv2d.bias`,
//! before the batch norm) that cancels the mean shift rounding its weight causes (bias
//! correction). The file's `__metadata__` keeps the source's entries and adds:
//!
//! | key | value |
//! |---|---|
//! | `inferkit.quantization` | `int8` (a reader refuses any other value) |
//! | `inferkit.scheme` | the weights' and the activations' granularity, in words |
//! | `inferkit.calibration` | how activation ranges were found (`dynamic`: at run time) |
//! | `inferkit.quantized` | the quantized tensors' names, comma-separated |
//! | `inferkit.source` | the source checkpoint's file name |
//! | `inferkit.source_sha256` | its sha256 (hex), or `unavailable: <why>` |
//!
//! Read back with any safetensors reader (`safetensors.torch.load_file` in Python gives the
//! `int8` tensors and their scales; multiply to dequantize).

use std::collections::HashMap;
use std::io::Read;
use std::path::Path;

use crate::weights::Checkpoint;

/// Metadata key: `int8` in a quantized checkpoint.
pub const QUANTIZATION: &str = "inferkit.quantization";
/// Metadata key: the scheme in words.
pub const SCHEME: &str = "inferkit.scheme";
/// Metadata key: how activation ranges were found.
pub const CALIBRATION: &str = "inferkit.calibration";
/// Metadata key: the quantized tensors.
pub const QUANTIZED: &str = "inferkit.quantized";
/// Metadata key: the source file's name.
pub const SOURCE: &str = "inferkit.source";
/// Metadata key: the source file's sha256.
pub const SOURCE_SHA256: &str = "inferkit.source_sha256";

/// The name of a quantized weight's scales.
pub(crate) fn scale_name(weight: &str) -> String {
    format!("{weight}_scale")
}

/// Whether `ckpt` is an int8 checkpoint of this format: `Ok(false)` when its metadata has no
/// [`QUANTIZATION`] key.
///
/// # Errors
/// The value, when the key is there but says something other than `int8`.
pub(crate) fn is_int8(ckpt: &Checkpoint) -> std::result::Result<bool, String> {
    match ckpt.metadata().get(QUANTIZATION).map(String::as_str) {
        None => Ok(false),
        Some("int8") => Ok(true),
        Some(other) => Err(format!(
            "{}: metadata {QUANTIZATION} = `{other}`; this build reads `int8` only",
            ckpt.path().display()
        )),
    }
}

/// Symmetric int8 rows: `w` as rows of `k`, each on its own scale `max|row| / 127` (1 for
/// a row of zeros), rounded half to even. Returns the values and one scale per row.
pub(crate) fn symmetric_rows(w: &[f32], k: usize) -> (Vec<i8>, Vec<f32>) {
    let rows = w.len() / k.max(1);
    let mut q = vec![0i8; w.len()];
    let mut scale = vec![0.0_f32; rows];
    for ((row, out), s) in w.chunks_exact(k).zip(q.chunks_exact_mut(k)).zip(&mut scale) {
        let most = row.iter().fold(0.0_f32, |m, v| m.max(v.abs()));
        *s = if most > 0.0 { most / 127.0 } else { 1.0 };
        for (o, v) in out.iter_mut().zip(row) {
            *o = (v / *s).round_ties_even().clamp(-127.0, 127.0) as i8;
        }
    }
    (q, scale)
}

/// The metadata of an int8 checkpoint made from `source`: its own entries, and the keys
/// above.
pub(crate) fn metadata(
    source: &Checkpoint,
    scheme: &str,
    calibration: &str,
    quantized: &[String],
) -> HashMap<String, String> {
    let mut m = source.metadata().clone();
    let path = source.path();
    let sha = sha256_file(path).unwrap_or_else(|e| format!("unavailable: {e}"));
    let name = path.file_name().map_or_else(
        || path.display().to_string(),
        |n| n.to_string_lossy().into(),
    );
    for (k, v) in [
        (QUANTIZATION, "int8".to_string()),
        (SCHEME, scheme.into()),
        (CALIBRATION, calibration.into()),
        (QUANTIZED, quantized.join(",")),
        (SOURCE, name),
        (SOURCE_SHA256, sha),
    ] {
        m.insert(k.into(), v);
    }
    m
}

/// Writes `bytes` to `path` through a temporary file beside it renamed into place (a reader
/// of the old file keeps its map); the error names the file.
pub(crate) fn write_file(path: &Path, bytes: &[u8]) -> std::result::Result<(), String> {
    let write = |e: std::io::Error| format!("{}: {e}", path.display());
    let tmp = path.with_extension("partial");
    std::fs::write(&tmp, bytes).map_err(write)?;
    std::fs::rename(&tmp, path).map_err(write)
}

/// The sha256 of a file, lower-case hex, read in 1 MiB pieces.
pub(crate) fn sha256_file(path: &Path) -> std::io::Result<String> {
    use sha2::Digest;
    let mut file = std::fs::File::open(path)?;
    let mut hash = sha2::Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = file.read(&mut buf)?;
        if n == 0 {
            break;
        }
        hash.update(&buf[..n]);
    }
    Ok(hash.finalize().iter().map(|b| format!("{b:02x}")).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn symmetric_rows_round_trip_within_half_a_step() {
        let w = [0.2_f32, -1.0, 0.25, 0.0, 0.0, 0.0, 3.0, 2.9, -0.01];
        let (q, s) = symmetric_rows(&w, 3);
        assert_eq!(s, vec![1.0 / 127.0, 1.0, 3.0 / 127.0]);
        assert_eq!(&q[..3], &[25, -127, 32]);
        assert_eq!(&q[3..6], &[0, 0, 0]);
        for (row, (qr, s)) in w.chunks(3).zip(q.chunks(3).zip(&s)) {
            for (v, q) in row.iter().zip(qr) {
                assert!((v - f32::from(*q) * s).abs() <= s / 2.0 + 1e-7);
            }
        }
    }

    #[test]
    fn sha256_of_a_known_file() {
        let dir = tempfile_dir();
        let p = dir.join("abc");
        std::fs::write(&p, b"abc").unwrap();
        assert_eq!(
            sha256_file(&p).unwrap(),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        std::fs::remove_dir_all(dir).unwrap();
    }

    fn tempfile_dir() -> std::path::PathBuf {
        let d = std::env::temp_dir().join(format!("inferkit-quant-{}", std::process::id()));
        std::fs::create_dir_all(&d).unwrap();
        d
    }
}
