//! The `classify_images` main job, run as a user runs it: on the bundled photos against
//! PyTorch's own answers (tests/fixtures/models/efficientnet_lite0.json, from
//! scripts/make_model_fixtures.py), and on a folder with a broken file.

use std::path::Path;
use std::process::Command;

mod common;
use common::example;

use serde_json::Value;

fn lines(stdout: &[u8]) -> Vec<Value> {
    String::from_utf8(stdout.to_vec())
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{l}: {e}")))
        .collect()
}

fn top5(v: &Value) -> Vec<(u64, f64)> {
    v["top5"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| (r[0].as_u64().unwrap(), r[2].as_f64().unwrap()))
        .collect()
}

#[test]
fn classifies_the_bundled_photos_as_pytorch_does() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let reference: Value = serde_json::from_str(
        &std::fs::read_to_string(root.join("tests/fixtures/models/efficientnet_lite0.json"))
            .unwrap(),
    )
    .unwrap();
    let run = Command::new(example("classify_images"))
        .args(["--batch", "3", "--threads", "2"])
        .output()
        .unwrap();
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    let out = lines(&run.stdout);
    let want = reference["images"].as_array().unwrap();
    assert_eq!(
        out.len(),
        want.len() + 1,
        "one line per photo and a summary"
    );
    for (got, want) in out.iter().zip(want) {
        assert_eq!(got["file"], want["file"]);
        let (g, w) = (top5(got), top5(want));
        // The pixels differ slightly from Pillow's JPEG decoder (another IDCT), so near-ties
        // may swap places and probabilities move by up to ~0.01 (0.0085 at worst here); the
        // best class and the set of five may not change.
        assert_eq!(g[0].0, w[0].0, "{}: top-1", got["file"]);
        let mut gs: Vec<u64> = g.iter().map(|x| x.0).collect();
        let mut ws: Vec<u64> = w.iter().map(|x| x.0).collect();
        gs.sort_unstable();
        ws.sort_unstable();
        assert_eq!(gs, ws, "{}: top-5 set", got["file"]);
        for (a, b) in &g {
            let p = w.iter().find(|x| x.0 == *a).unwrap().1;
            assert!(
                (b - p).abs() <= 2e-2,
                "{}: class {a}: {b} vs {p}",
                got["file"]
            );
        }
        let label = got["top5"][0][1].as_str().unwrap();
        assert_eq!(label, want["top5"][0][1].as_str().unwrap());
    }
    let summary = out.last().unwrap();
    assert_eq!(summary["images"], want.len());
    assert_eq!(summary["failed"], 0);
    assert!(summary["images_per_s"].as_f64().unwrap() > 0.0);
    assert!(summary["load_seconds"].as_f64().is_some());
}

#[test]
fn a_broken_file_is_reported_and_the_rest_classified_with_exit_status_2() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let dir = tempfile::tempdir().unwrap();
    for f in ["coffee.jpg", "chelsea.jpg"] {
        std::fs::copy(root.join("assets/images").join(f), dir.path().join(f)).unwrap();
    }
    std::fs::write(
        dir.path().join("broken.jpg"),
        b"\xFF\xD8\xFF\xE0 not really",
    )
    .unwrap();
    std::fs::write(dir.path().join("notes.txt"), b"not an image, not listed").unwrap();
    let csv = dir.path().join("results.csv");
    let run = Command::new(example("classify_images"))
        .arg(dir.path())
        .args(["--threads", "1", "--out"])
        .arg(&csv)
        .output()
        .unwrap();
    assert_eq!(
        run.status.code(),
        Some(2),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    let out = lines(&run.stdout);
    let files: Vec<&str> = out[..3]
        .iter()
        .map(|v| v["file"].as_str().unwrap())
        .collect();
    assert_eq!(files, ["broken.jpg", "chelsea.jpg", "coffee.jpg"]);
    assert!(out[0]["error"].as_str().unwrap().len() > 3);
    assert!(out[0].get("top5").is_none());
    assert_eq!(out[1]["top5"][0][0], 285, "Egyptian cat");
    assert_eq!(out[2]["top5"][0][0], 967, "espresso");
    assert_eq!(out[3]["images"], 2);
    assert_eq!(out[3]["failed"], 1);
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(stderr.contains("broken.jpg"), "{stderr}");
    let table = std::fs::read_to_string(&csv).unwrap();
    let rows: Vec<&str> = table.lines().collect();
    assert_eq!(rows[0], "file,rank,class_index,label,probability");
    assert_eq!(rows.len(), 1 + 2 * 5);
    assert!(
        rows[1].starts_with("chelsea.jpg,1,285,Egyptian cat,"),
        "{}",
        rows[1]
    );
}

#[test]
fn a_missing_folder_is_an_error() {
    let run = Command::new(example("classify_images"))
        .arg("/nonexistent/folder")
        .output()
        .unwrap();
    assert_eq!(run.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&run.stderr).contains("/nonexistent/folder"));
}

/// `--int8` (issue 22): the int8 checkpoint `scripts/fetch-models.sh` makes, calibrated on
/// these very photos, gives PyTorch's best class for each of them; the summary says so
/// through the same fields. Without the file (fetch-models not run) the test says so and
/// passes; `--int8` itself then names the missing file.
#[test]
fn int8_classifies_the_bundled_photos_with_pytorchs_best_class() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let int8 = root.join(".cache/models/efficientnet-lite0-int8.safetensors");
    let run = Command::new(example("classify_images"))
        .args(["--int8", "--batch", "3", "--threads", "2"])
        .env_remove("INFERKIT_MODELS")
        .output()
        .unwrap();
    if !int8.exists() {
        assert_eq!(run.status.code(), Some(1));
        let stderr = String::from_utf8_lossy(&run.stderr);
        assert!(
            stderr.contains("efficientnet-lite0-int8.safetensors"),
            "{stderr}"
        );
        eprintln!(
            "skipped: {} absent (run scripts/fetch-models.sh)",
            int8.display()
        );
        return;
    }
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    let reference: Value = serde_json::from_str(
        &std::fs::read_to_string(root.join("tests/fixtures/models/efficientnet_lite0.json"))
            .unwrap(),
    )
    .unwrap();
    let out = lines(&run.stdout);
    let want = reference["images"].as_array().unwrap();
    assert_eq!(out.len(), want.len() + 1);
    for (got, want) in out.iter().zip(want) {
        assert_eq!(got["file"], want["file"]);
        assert_eq!(
            got["top5"][0][0], want["top5"][0][0],
            "{}: top-1",
            got["file"]
        );
    }
    assert_eq!(out.last().unwrap()["images"], want.len());
}
