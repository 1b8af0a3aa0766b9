//! The `inferkit-serve` binary refuses what it cannot serve before it listens: an unknown
//! flag with its usage, a model repository whose `config.pbtxt` names a field it does not
//! know, naming the file and the field, an OTLP endpoint that is not a URL (exit status 1,
//! nothing served).

use std::process::Command;

fn serve(args: &[&str]) -> (i32, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_inferkit-serve"))
        .args(args)
        .output()
        .expect("the binary runs");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn an_unknown_flag_is_refused_with_the_usage() {
    let (code, err) = serve(&["--no-such-flag"]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("unexpected argument --no-such-flag"), "{err}");
    assert!(err.contains("--model-repository DIR"), "{err}");
}

#[test]
fn a_repository_with_an_unknown_config_field_is_refused_by_name() {
    let dir = std::env::temp_dir().join(format!("inferkit-serve-cli-{}", std::process::id()));
    let model = dir.join("m");
    std::fs::create_dir_all(model.join("1")).unwrap();
    std::fs::write(model.join("1/model.onnx"), b"not read").unwrap();
    std::fs::write(
        model.join("config.pbtxt"),
        "name: \"m\"\nmax_batch_size: 4\nsequence_batching { }\n",
    )
    .unwrap();
    let (code, err) = serve(&[
        "--model-repository",
        dir.to_str().unwrap(),
        "--addr",
        "127.0.0.1:0",
        "--grpc-addr",
        "none",
    ]);
    std::fs::remove_dir_all(&dir).unwrap();
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("m/config.pbtxt"), "{err}");
    assert!(err.contains("field 'sequence_batching' not found"), "{err}");
}

#[test]
fn an_otlp_endpoint_that_is_not_a_url_is_refused_by_name() {
    let (code, err) = serve(&[
        "--otlp-endpoint",
        "not a url",
        "--addr",
        "127.0.0.1:0",
        "--grpc-addr",
        "none",
        "--model",
        "m=/nonexistent.onnx",
    ]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("OTLP export to `not a url`"), "{err}");
}
