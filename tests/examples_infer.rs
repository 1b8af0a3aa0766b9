//! The `run_onnx` example, run as a user runs it.

use std::path::Path;
use std::process::Command;

mod common;
use common::example;

use ndarray::ArrayD;
use ndarray_npy::read_npy;

fn fixture(f: &str) -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/onnx")
        .join(f)
        .display()
        .to_string()
}

/// `run_onnx MODEL` on the inputs of the `two_inputs` fixture, writing into `out`, with
/// `extra` arguments: its stdout (the run must succeed).
fn run_two_inputs(model: &Path, out: &Path, extra: &[&str]) -> String {
    let run = Command::new(example("run_onnx"))
        .arg(model)
        .args(["--input", &format!("a={}", fixture("two_inputs.a.npy"))])
        .args(["--input", &format!("b={}", fixture("two_inputs.b.npy"))])
        .args(["--input", &format!("ids={}", fixture("two_inputs.ids.npy"))])
        .args(extra)
        .arg("--out")
        .arg(out)
        .output()
        .unwrap();
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    String::from_utf8(run.stdout).unwrap()
}

#[test]
fn run_onnx_writes_every_output_and_prints_the_descriptor() {
    let out = tempfile::tempdir().unwrap();
    let stdout = run_two_inputs(
        Path::new(&fixture("two_inputs.onnx")),
        out.path(),
        &["--threads", "3"],
    );
    let mut lines = stdout.lines();
    let descriptor: serde_json::Value = serde_json::from_str(lines.next().unwrap()).unwrap();
    assert_eq!(descriptor["name"], "two_inputs");
    assert_eq!(descriptor["inputs"][2]["dtype"], "I64");
    let summary: serde_json::Value = serde_json::from_str(lines.last().unwrap()).unwrap();
    assert_eq!(summary["threads"], 3);
    for name in ["prod", "emb"] {
        let got: ArrayD<f32> = read_npy(out.path().join(format!("{name}.npy"))).unwrap();
        let want: ArrayD<f32> = read_npy(fixture(&format!("two_inputs.{name}.npy"))).unwrap();
        assert_eq!(got.shape(), want.shape());
        assert!(
            got.iter()
                .zip(want.iter())
                .all(|(a, b)| (a - b).abs() <= 1e-5)
        );
    }
}

/// PyTorch names outputs like `/encoder/Add_output_0`: each is written inside `--out` under a
/// file name made of safe characters (never a path out of it), and the summary line says
/// which file holds which output.
#[test]
fn run_onnx_writes_outputs_named_like_paths_inside_its_folder() {
    // the fixture with its outputs renamed, byte for byte (same lengths): `prod` → `/p:d`,
    // `emb` → `/..`
    let mut renamed = std::fs::read(fixture("two_inputs.onnx")).unwrap();
    for (from, to) in [(&b"prod"[..], &b"/p:d"[..]), (b"emb", b"/..")] {
        let mut hits = 0;
        for i in 0..renamed.len() - from.len() {
            if &renamed[i..i + from.len()] == from {
                renamed[i..i + from.len()].copy_from_slice(to);
                hits += 1;
            }
        }
        assert_eq!(hits, 2, "{}", String::from_utf8_lossy(from)); // node output + graph output
    }
    let dir = tempfile::tempdir().unwrap();
    let model = dir.path().join("renamed.onnx");
    std::fs::write(&model, renamed).unwrap();
    let out = dir.path().join("out");
    let stdout = run_two_inputs(&model, &out, &[]);
    let summary: serde_json::Value = serde_json::from_str(stdout.lines().last().unwrap()).unwrap();
    let files: Vec<(String, String)> = summary["outputs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| {
            (
                o["name"].as_str().unwrap().into(),
                o["file"].as_str().unwrap().into(),
            )
        })
        .collect();
    let want = |name: &str| out.join(name).display().to_string();
    assert_eq!(
        files,
        [
            ("/p:d".to_string(), want("_p_d.npy")),
            ("/..".to_string(), want("_...npy"))
        ]
    );
    let got: ArrayD<f32> = read_npy(out.join("_p_d.npy")).unwrap();
    let expected: ArrayD<f32> = read_npy(fixture("two_inputs.prod.npy")).unwrap();
    assert_eq!(got.shape(), expected.shape());
    assert_eq!(std::fs::read_dir(&out).unwrap().count(), 2);
}

#[test]
fn run_onnx_names_what_is_wrong() {
    let out = tempfile::tempdir().unwrap();
    let cases = [
        (
            vec![
                "mlp.onnx".to_string(),
                "--input".into(),
                format!("z={}", fixture("mlp.x.npy")),
            ],
            "input `z`: no such input",
        ),
        (
            vec![
                "mlp.onnx".to_string(),
                "--input".into(),
                format!("x={}", fixture("conv.x.npy")),
            ],
            "input `x`: rank 4",
        ),
        (
            vec![
                "two_inputs.onnx".to_string(),
                "--input".into(),
                format!("a={}", fixture("two_inputs.a.npy")),
                "--input".into(),
                format!("b={}", fixture("two_inputs.b.npy")),
                "--input".into(),
                format!("ids={}", fixture("two_inputs.a.npy")),
            ],
            "input `ids`: dtype F32, expected I64",
        ),
        (vec!["custom_op.onnx".to_string()], "Frobnicate"),
    ];
    for (args, expected) in cases {
        let mut cmd = Command::new(example("run_onnx"));
        cmd.arg(fixture(&args[0]))
            .args(&args[1..])
            .arg("--out")
            .arg(out.path());
        let run = cmd.output().unwrap();
        assert_eq!(run.status.code(), Some(1), "{args:?}");
        let stderr = String::from_utf8_lossy(&run.stderr);
        assert!(stderr.starts_with("error: "), "{stderr}");
        assert!(stderr.contains(expected), "{args:?}: {stderr}");
    }
}
