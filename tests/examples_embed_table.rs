//! The `embed_table` example, run as a user runs it: one output row per input row in input
//! order, the id carried over, nulls counted as failed, and embeddings equal to the `embed`
//! example's for the same texts. Needs the MiniLM model from scripts/fetch-models.sh.

use std::path::Path;
use std::process::Command;

mod common;
use common::example;

use inferkit::preprocess::table::arrow_array::Array;
use inferkit::preprocess::table::arrow_array::cast::AsArray;
use inferkit::preprocess::table::arrow_array::types::{Float32Type, Int64Type};
use inferkit::preprocess::table::{ParquetOptions, RecordBatch, read_parquet};

/// `embed`'s embeddings of `texts`.
fn embed(texts: &[String]) -> Vec<Vec<f32>> {
    let mut cmd = Command::new(example("embed"));
    for t in texts {
        cmd.args(["--text", t]);
    }
    let run = cmd.args(["--threads", "1"]).output().unwrap();
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    String::from_utf8(run.stdout)
        .unwrap()
        .lines()
        .take(texts.len())
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            v["embedding"]
                .as_array()
                .unwrap()
                .iter()
                .map(|x| x.as_f64().unwrap() as f32)
                .collect()
        })
        .collect()
}

fn read_back(path: &Path) -> Vec<RecordBatch> {
    read_parquet(path, &ParquetOptions::default())
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap()
}

#[test]
fn csv_rows_in_order_with_ids_nulls_failed_and_embed_equal() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in.csv");
    let texts = [
        "A man is eating food.",
        "", // null in arrow-csv's reading: a failed row
        "Zero-copy weight loading maps the file.",
        "深度学习 and English mixed 混合 text",
        "a",
        "The cat sits outside, while the new movie is awesome and the girl carries a baby.",
    ];
    let mut csv = String::from("id,text\n");
    for (i, t) in texts.iter().enumerate() {
        csv.push_str(&format!("{},\"{t}\"\n", 100 + i));
    }
    std::fs::write(&input, csv).unwrap();
    let out = dir.path().join("out.parquet");
    let run = Command::new(example("embed_table"))
        .arg(&input)
        .args([
            "--column",
            "text",
            "--id-column",
            "id",
            "--batch",
            "2",
            "--threads",
            "2",
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
    let summary: serde_json::Value = serde_json::from_str(
        String::from_utf8(run.stdout)
            .unwrap()
            .lines()
            .last()
            .unwrap(),
    )
    .unwrap();
    assert_eq!(summary["rows"], texts.len());
    assert_eq!(summary["failed"], 1);
    let batches = read_back(&out);
    let real: Vec<String> = texts
        .iter()
        .filter(|t| !t.is_empty())
        .map(|t| t.to_string())
        .collect();
    let want = embed(&real);
    let mut row = 0;
    let mut k = 0;
    for b in &batches {
        let ids = b.column_by_name("id").unwrap().as_primitive::<Int64Type>();
        let emb = b.column_by_name("embedding").unwrap().as_fixed_size_list();
        for i in 0..b.num_rows() {
            assert_eq!(ids.value(i), 100 + row as i64, "row order");
            if texts[row].is_empty() {
                assert!(
                    emb.is_null(i),
                    "row {row}: a null text has a null embedding"
                );
            } else {
                let v = emb.value(i);
                let got = v.as_primitive::<Float32Type>().values();
                let diff = got
                    .iter()
                    .zip(&want[k])
                    .map(|(a, b)| (a - b).abs())
                    .fold(0.0_f32, f32::max);
                assert!(diff <= 1e-5, "row {row}: max |diff| {diff} against embed");
                k += 1;
            }
            row += 1;
        }
    }
    assert_eq!(row, texts.len());
}

#[test]
fn parquet_without_an_id_column_gets_row_numbers() {
    let dir = tempfile::tempdir().unwrap();
    let fixture = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/tables/types.parquet");
    let out = dir.path().join("out.parquet");
    let run = Command::new(example("embed_table"))
        .arg(&fixture)
        .args(["--column", "text", "--threads", "1", "--out"])
        .arg(&out)
        .output()
        .unwrap();
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    let batches = read_back(&out);
    let rows: Vec<i64> = batches
        .iter()
        .flat_map(|b| {
            b.column_by_name("row")
                .unwrap()
                .as_primitive::<Int64Type>()
                .values()
                .to_vec()
        })
        .collect();
    assert_eq!(rows, (0..37).collect::<Vec<i64>>());
    let run = Command::new(example("embed_table"))
        .arg(&fixture)
        .args(["--column", "id", "--out"])
        .arg(dir.path().join("x.parquet"))
        .output()
        .unwrap();
    assert_eq!(run.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(
        stderr.contains("column `id`") && stderr.contains("expected Utf8"),
        "{stderr}"
    );
}
