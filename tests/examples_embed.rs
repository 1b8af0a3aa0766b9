//! The `embed` example, run as a user runs it, against sentence-transformers' embeddings
//! (tests/fixtures/models/minilm.*, from scripts/make_minilm_fixtures.py). Needs the model
//! from scripts/fetch-models.sh.

use std::path::Path;
use std::process::Command;

mod common;
use common::example;

use ndarray::Array2;
use ndarray_npy::read_npy;

/// The texts of tests/fixtures/models/minilm.texts.json and sentence-transformers'
/// embeddings of them.
fn fixtures() -> (Vec<String>, Array2<f32>) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/models");
    let meta: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("minilm.texts.json")).unwrap())
            .unwrap();
    let texts = meta["texts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t.as_str().unwrap().to_owned())
        .collect();
    (texts, read_npy(dir.join("minilm.embeddings.npy")).unwrap())
}

/// `embed --text …` on `texts` with `extra` arguments: its stdout lines as JSON (the run
/// must succeed).
fn run_embed<S: AsRef<std::ffi::OsStr>>(texts: &[String], extra: &[S]) -> Vec<serde_json::Value> {
    let mut cmd = Command::new(example("embed"));
    for t in texts {
        cmd.arg("--text").arg(t);
    }
    let run = cmd.args(extra).output().unwrap();
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    String::from_utf8(run.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// A line's `embedding` and its cosine to `want`.
fn embedding(line: &serde_json::Value, want: ndarray::ArrayView1<'_, f32>) -> (Vec<f32>, f32) {
    let e: Vec<f32> = line["embedding"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_f64().unwrap() as f32)
        .collect();
    let dot: f32 = e.iter().zip(want.iter()).map(|(a, b)| a * b).sum();
    let cos = dot / (want.dot(&want).sqrt() * e.iter().map(|v| v * v).sum::<f32>().sqrt());
    (e, cos)
}

#[test]
fn embeds_every_text_in_input_order_as_sentence_transformers_does() {
    let (texts, want) = fixtures();
    let lines = run_embed(&texts, &["--batch", "4", "--threads", "2"]);
    assert_eq!(lines.len(), texts.len() + 1);
    for (i, (line, text)) in lines.iter().zip(&texts).enumerate() {
        assert_eq!(line["text"], *text, "line {i} is text {i}");
        let (e, cos) = embedding(line, want.row(i));
        assert_eq!(e.len(), 384);
        assert!(cos >= 0.9999, "text {i}: cosine {cos}");
    }
    let summary = lines.last().unwrap();
    assert_eq!(summary["texts"], texts.len());
    assert!(summary["texts_per_s"].as_f64().unwrap() > 0.0);
}

#[test]
fn input_file_one_text_per_line_and_errors() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("texts.txt");
    std::fs::write(&file, "first line\nsecond line\n\n").unwrap();
    let run = Command::new(example("embed"))
        .arg("--input")
        .arg(&file)
        .args(["--threads", "1"])
        .output()
        .unwrap();
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    let stdout = String::from_utf8(run.stdout).unwrap();
    let texts: Vec<String> = stdout
        .lines()
        .take(3)
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap()["text"].to_string())
        .collect();
    assert_eq!(texts, ["\"first line\"", "\"second line\"", "\"\""]);
    let run = Command::new(example("embed"))
        .args(["--input", "/nonexistent/texts.txt"])
        .output()
        .unwrap();
    assert_eq!(run.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&run.stderr).contains("/nonexistent/texts.txt"));
    let run = Command::new(example("embed"))
        .args(["--text", "x", "--model", "/nonexistent/model"])
        .output()
        .unwrap();
    assert_eq!(run.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(
        stderr.contains("/nonexistent/model/model.safetensors") && stderr.contains("fetch-models"),
        "{stderr}"
    );
}

/// `quantize minilm` as a user runs it, then `embed --model` on what it wrote: int8 (read
/// from the file), within 0.99 cosine of sentence-transformers' f32 embeddings, and the
/// same numbers as `embed --int8` on the folder scripts/fetch-models.sh made; a second
/// quantization of an int8 folder, into the source folder, or of a folder not there is
/// refused, naming why.
#[test]
fn quantize_writes_an_int8_folder_that_embed_runs() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let src = root.join(".cache/models/all-MiniLM-L6-v2");
    let out = tempfile::tempdir().unwrap();
    let int8 = out.path().join("int8");
    let run = Command::new(example("quantize"))
        .arg("minilm")
        .arg(&src)
        .arg(&int8)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&run.stdout);
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    assert!(stdout.contains("37 tensors int8"), "{stdout}");
    for f in [
        "model.safetensors",
        "config.json",
        "tokenizer.json",
        "1_Pooling/config.json",
    ] {
        assert!(int8.join(f).is_file(), "{f} missing in {}", int8.display());
    }
    assert!(!int8.join("minilm-embed.onnx").exists());

    let (texts, want) = fixtures();
    let texts = &texts[..8];
    let embed = |extra: &[&std::ffi::OsStr]| {
        run_embed(
            texts,
            &[extra, &["--threads".as_ref(), "1".as_ref()]].concat(),
        )
    };
    let from_file = embed(&["--model".as_ref(), int8.as_os_str()]);
    let fetched = embed(&["--int8".as_ref()]);
    assert_eq!(from_file[..texts.len()], fetched[..texts.len()]);
    let summary = from_file.last().unwrap();
    assert!(
        summary["precision"].as_str().unwrap().starts_with("int8"),
        "{summary}"
    );
    for (i, line) in from_file[..texts.len()].iter().enumerate() {
        let (_, cos) = embedding(line, want.row(i));
        assert!(
            cos >= 0.99,
            "text {i}: int8 vs sentence-transformers: cosine {cos}"
        );
    }

    for (from, to, says) in [
        (int8.clone(), out.path().join("again"), "already int8"),
        (src.clone(), src.clone(), "must differ from the source"),
        (
            Path::new("/nonexistent").to_path_buf(),
            out.path().join("none"),
            "/nonexistent/model.safetensors",
        ),
    ] {
        let run = Command::new(example("quantize"))
            .arg("minilm")
            .arg(from)
            .arg(&to)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&run.stderr);
        assert!(!run.status.success() && stderr.contains(says), "{stderr}");
    }
}
