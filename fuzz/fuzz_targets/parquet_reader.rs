//! The Parquet reader (footer, schema, pages, codecs) and the feature matrix on whatever it
//! reads. Seeds are real files from pyarrow (tests/fixtures/tables). Errors are expected;
//! panics, hangs and huge allocations are bugs.
#![no_main]

use inferkit_preprocess::table::{ParquetOptions, parquet_row_groups, read_parquet};
use libfuzzer_sys::fuzz_target;

include!("tables.rs");

fuzz_target!(|bytes: &[u8]| {
    quiet_caught_panics();
    let path = scratch(bytes, "parquet");
    let _ = parquet_row_groups(&path);
    let options = ParquetOptions {
        batch_size: 64,
        ..ParquetOptions::default()
    };
    if let Ok(reader) = read_parquet(&path, &options) {
        exercise(reader);
    }
});
