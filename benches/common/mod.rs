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
