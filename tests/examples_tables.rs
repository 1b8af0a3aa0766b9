//! The `table_features` example, run as a user runs it, on the pyarrow fixtures
//! (scripts/make_table_fixtures.py).

use std::path::Path;
use std::process::Command;

mod common;
use common::example;

use ndarray::{Array2, Axis};
use ndarray_npy::read_npy;

fn fixture(f: &str) -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/tables")
        .join(f)
        .display()
        .to_string()
}

fn features() -> Vec<String> {
    let meta: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(fixture("types.json")).unwrap()).unwrap();
    meta["features"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_owned())
        .collect()
}

#[test]
fn writes_the_matrix_pyarrow_makes_from_parquet_and_csv() {
    let dir = tempfile::tempdir().unwrap();
    let want: Array2<f32> = read_npy(fixture("types.fill.npy")).unwrap();
    let names = features();
    for (input, threads) in [
        ("types.parquet", "2"),
        ("types.parquet", "1"),
        ("types.csv", "1"),
    ] {
        let out = dir.path().join("x.npy");
        let run = Command::new(example("table_features"))
            .arg(fixture(input))
            .args([
                "--columns",
                &names.join(","),
                "--nulls",
                "fill:-1",
                "--threads",
                threads,
                "--out",
            ])
            .arg(&out)
            .output()
            .unwrap();
        assert!(
            run.status.success(),
            "{}",
            String::from_utf8_lossy(&run.stderr)
        );
        let got: Array2<f32> = read_npy(&out).unwrap();
        assert_eq!(got, want, "{input} on {threads} threads");
        let summary: serde_json::Value = serde_json::from_str(
            String::from_utf8(run.stdout)
                .unwrap()
                .lines()
                .last()
                .unwrap(),
        )
        .unwrap();
        assert_eq!(summary["rows"], 37);
        assert_eq!(summary["columns"], names.len());
        assert!(summary["rows_per_s"].as_f64().unwrap() > 0.0);
    }
    // a subset with masks: columns i32 (nulls) and u8 (none)
    let out = dir.path().join("m.npy");
    let run = Command::new(example("table_features"))
        .arg(fixture("types.parquet"))
        .args(["--columns", "i32,u8", "--nulls", "mask", "--out"])
        .arg(&out)
        .output()
        .unwrap();
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    let got: Array2<f32> = read_npy(&out).unwrap();
    let mask: Array2<f32> = read_npy(fixture("types.mask.npy")).unwrap();
    let i = names.iter().position(|n| n == "i32").unwrap();
    let u = names.iter().position(|n| n == "u8").unwrap();
    let want = ndarray::concatenate(
        Axis(1),
        &[
            mask.slice(ndarray::s![.., 2 * i..2 * i + 2]),
            mask.slice(ndarray::s![.., 2 * u..2 * u + 2]),
        ],
    )
    .unwrap();
    assert_eq!(got, want);
}

#[test]
fn a_null_or_a_bad_column_is_an_error_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("x.npy");
    let run = Command::new(example("table_features"))
        .arg(fixture("types.parquet"))
        .args(["--columns", "i8,i32", "--out"])
        .arg(&out)
        .output()
        .unwrap();
    assert_eq!(run.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(stderr.contains("row 3, column `i32`"), "{stderr}");
    let run = Command::new(example("table_features"))
        .arg(fixture("types.csv"))
        .args(["--columns", "text", "--out"])
        .arg(&out)
        .output()
        .unwrap();
    assert_eq!(run.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(
        stderr.contains("column `text`") && stderr.contains("not numeric"),
        "{stderr}"
    );
}
