//! Where this repository's tests, examples and benches find onnxruntime's library for the
//! ort backend when `ORT_DYLIB_PATH` does not say: the one `scripts/fetch-models.sh` fetches
//! into `$INFERKIT_MODELS/onnxruntime/` (default `.cache/models/onnxruntime/`).

use std::path::{Path, PathBuf};

/// The fetched library, when `ORT_DYLIB_PATH` is not set and the file is there.
pub(crate) fn fetched_ort_library() -> Option<PathBuf> {
    if std::env::var_os("ORT_DYLIB_PATH").is_some_and(|p| !p.is_empty()) {
        return None;
    }
    let cache = std::env::var_os("INFERKIT_MODELS")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join(".cache/models"));
    let lib = cache.join("onnxruntime/capi/libonnxruntime.so.1.32.0");
    lib.exists().then_some(lib)
}
