//! Helpers shared by the benches: where bench data and anchors live, and reading criterion's
//! medians back for the ratio tables.
#![allow(dead_code)] // each bench uses some of these

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// `target/bench-data` (or under `$CARGO_TARGET_DIR`).
pub(crate) fn bench_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("target"))
        .join("bench-data")
}

/// Median of a finished benchmark in seconds, from criterion's own estimates.
pub(crate) fn median(group: &str, id: &str) -> Option<f64> {
    let p = bench_dir()
        .parent()?
        .join("criterion")
        .join(group)
        .join(id)
        .join("new/estimates.json");
    let v: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(p).ok()?).ok()?;
    Some(v["median"]["point_estimate"].as_f64()? / 1e9)
}

/// The anchor figures an anchor script wrote to `target/bench-data/<file>` (empty if absent).
pub(crate) fn anchors(file: &str) -> BTreeMap<String, serde_json::Value> {
    std::fs::read_to_string(bench_dir().join(file))
        .ok()
        .and_then(|s| serde_json::from_str(&s).ok())
        .unwrap_or_default()
}

/// `x / y` as `"1.23x"`, or `-` when either is missing.
pub(crate) fn ratio(x: Option<f64>, y: Option<f64>, digits: usize) -> String {
    match (x, y) {
        (Some(x), Some(y)) => format!("{:.*}x", digits, x / y),
        _ => "-".into(),
    }
}

/// The products `benches/gemm.rs` and `benches/int8.rs` time — (name, m, k, n): C[m×n] =
/// A[m×k] · B[k×n]: a square peak shape, then the shapes the native models use.
pub(crate) const GEMM_SHAPES: [(&str, usize, usize, usize); 12] = [
    ("square_2048", 2048, 2048, 2048),
    // EfficientNet-Lite0, batch 1: a 1×1 expand conv at 112² and the 1×1 head conv at 7²
    ("effnet_expand_12544x16x96", 12544, 16, 96),
    // … 1×1 projections at 56², 28² and 7², and an expansion at 14²
    ("effnet_project_3136x144x24", 3136, 144, 24),
    ("effnet_project_784x240x40", 784, 240, 40),
    ("effnet_expand_196x112x672", 196, 112, 672),
    ("effnet_project_49x1152x320", 49, 1152, 320),
    ("effnet_head_49x320x1280", 49, 320, 1280),
    // EfficientNet-Lite0 stem as im2col at batch 32: 32·112² × 27 × 32
    ("effnet_stem_b32_401408x27x32", 401_408, 27, 32),
    // MiniLM, batch 32 × seq 128 tokens: QKV projection and the FFN up-projection
    ("minilm_qkv_4096x384x1152", 4096, 384, 1152),
    ("minilm_ffn_4096x384x1536", 4096, 384, 1536),
    // … the FFN down-projection and the attention output projection
    ("minilm_ffn_down_4096x1536x384", 4096, 1536, 384),
    ("minilm_out_4096x384x384", 4096, 384, 384),
];
