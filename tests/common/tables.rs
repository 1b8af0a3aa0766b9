//! Helpers of the table tests (`preprocess_tables.rs`, `preprocess_parquet.rs`): the
//! fixtures of scripts/make_table_fixtures.py and the batch path stacked into a matrix.
#![allow(dead_code)] // each test file uses some of them

use std::path::{Path, PathBuf};

use inferkit::preprocess::BufferPool;
use inferkit::preprocess::table::{FeatureMatrix, Features, ParquetOptions};
use ndarray::{Array2, Axis, concatenate};

pub(crate) fn fixture(f: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/tables")
        .join(f)
}

pub(crate) fn feature_names() -> Vec<String> {
    let meta: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(fixture("types.json")).unwrap()).unwrap();
    meta["features"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_owned())
        .collect()
}

/// Every batch of a reader through `features`, stacked.
pub(crate) fn matrix(
    reader: inferkit::preprocess::table::TableReader,
    features: &Features,
) -> inferkit::preprocess::Result<Array2<f32>> {
    let pool = BufferPool::new(2);
    let file = reader.file().to_owned();
    let mut parts = Vec::new();
    let mut first = 0;
    for batch in reader {
        let batch = batch?;
        let m = FeatureMatrix::from_batch(&batch, features, &pool, first, &file)?;
        first += batch.num_rows();
        parts.push(m.view().to_owned());
    }
    let views: Vec<_> = parts.iter().map(|p| p.view()).collect();
    Ok(concatenate(Axis(0), &views).unwrap())
}

pub(crate) fn small_batches() -> ParquetOptions {
    // batches of 8 cross batches and the two row groups
    ParquetOptions::new().with_batch_size(8)
}
