//! The `inspect` and `convert` examples, run as a user runs them (cargo builds examples
//! before integration tests).

use std::path::{Path, PathBuf};
use std::process::Command;

mod common;
use common::example;

fn fixture(f: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/weights")
        .join(f)
}

#[test]
fn inspect_prints_one_json_line_per_tensor_in_file_order() {
    let out = Command::new(example("inspect"))
        .arg(fixture("mixed_legacy.pt"))
        .arg("--sums")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let lines: Vec<serde_json::Value> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let expected: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(fixture("expected.json")).unwrap()).unwrap();
    let want = expected["mixed_legacy.pt"].as_array().unwrap();
    assert_eq!(lines.len(), want.len());
    for (got, want) in lines.iter().zip(want) {
        assert_eq!(got["name"], want["name"]);
        assert_eq!(got["dtype"], want["dtype"]);
        assert_eq!(got["shape"], want["shape"]);
        let (a, b) = (got["sum"].as_f64().unwrap(), want["sum"].as_f64().unwrap());
        assert!(
            (a - b).abs() <= 1e-9 * a.abs().max(b.abs()),
            "{}: {a} vs {b}",
            got["name"]
        );
        assert_eq!(got.as_object().unwrap().len(), 4);
    }
    // Without --sums: exactly name, dtype, shape.
    let out = Command::new(example("inspect"))
        .arg(fixture("mixed.pt"))
        .output()
        .unwrap();
    let first: serde_json::Value = serde_json::from_str(
        String::from_utf8(out.stdout)
            .unwrap()
            .lines()
            .next()
            .unwrap(),
    )
    .unwrap();
    assert_eq!(
        first,
        serde_json::json!({"name": "state_dict.shared.base", "dtype": "F32", "shape": [24]})
    );
}

#[test]
fn inspect_fails_with_one_error_line() {
    for path in [fixture("evil_zip.pt"), fixture("does-not-exist.pt")] {
        let out = Command::new(example("inspect"))
            .arg(&path)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(1));
        let err = String::from_utf8(out.stderr).unwrap();
        assert!(err.starts_with("error:"), "{err}");
        assert_eq!(err.trim_end().lines().count(), 1, "{err}");
        assert!(out.stdout.is_empty());
    }
}

#[test]
fn convert_writes_safetensors_that_inspect_reads_identically() {
    let dir = tempfile::tempdir().unwrap();
    let out_path = dir.path().join("eff.safetensors");
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("assets/models/efficientnet-lite0.pth");
    let out = Command::new(example("convert"))
        .arg(&src)
        .arg(&out_path)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let sums = |p: &Path| -> std::collections::BTreeMap<String, (String, String)> {
        let out = Command::new(example("inspect"))
            .arg(p)
            .arg("--sums")
            .output()
            .unwrap();
        assert!(out.status.success());
        String::from_utf8(out.stdout)
            .unwrap()
            .lines()
            .map(|l| {
                let v: serde_json::Value = serde_json::from_str(l).unwrap();
                (
                    v["name"].as_str().unwrap().to_owned(),
                    (
                        v["dtype"].to_string() + &v["shape"].to_string(),
                        v["sum"].to_string(),
                    ),
                )
            })
            .collect()
    };
    // Same names, dtypes, shapes and (bit-identical, same summation order) sums.
    assert_eq!(sums(&src), sums(&out_path));

    let out = Command::new(example("convert"))
        .arg(fixture("evil_legacy.pt"))
        .arg(dir.path().join("x.safetensors"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8(out.stderr).unwrap().starts_with("error:"));
}
