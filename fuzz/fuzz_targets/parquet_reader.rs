//! The Parquet reader (footer, schema, pages, codecs) and the feature matrix on whatever it
//! reads, through arrow batches and straight from the column chunks (`read_parquet_matrix`,
//! on two threads, the file mapped or read by the file's length's parity). Seeds are real
//! files from pyarrow (tests/fixtures/tables). Errors are expected; panics, hangs and huge
//! allocations are bugs.
#![no_main]

use inferkit_preprocess::BufferPool;
use inferkit_preprocess::table::{
    DataType, ParquetOptions, parquet_row_groups, read_parquet, read_parquet_matrix,
};
use libfuzzer_sys::fuzz_target;

include!("tables.rs");

fuzz_target!(|bytes: &[u8]| {
    quiet_caught_panics();
    let path = scratch(bytes, "parquet");
    let _ = parquet_row_groups(&path);
    let options = ParquetOptions::new().with_batch_size(64).with_memory_map(bytes.len() % 2 == 0);
    if let Ok(reader) = read_parquet(&path, &options) {
        let names: Vec<String> = reader
            .schema()
            .fields()
            .iter()
            .filter(|f| f.data_type().is_numeric() || f.data_type() == &DataType::Boolean)
            .map(|f| f.name().clone())
            .collect();
        exercise(reader);
        // bounded like `exercise`: a footer may claim billions of rows
        let rows: usize = parquet_row_groups(&path).map_or(0, |g| g.iter().sum());
        if rows <= 1 << 16 {
            for policy in [Nulls::Error, Nulls::Mask] {
                let f = Features::new(names.iter().map(String::as_str)).with_nulls("*", policy);
                let _ = read_parquet_matrix(&path, &options, &f, &BufferPool::new(0), 2);
            }
        }
    }
});
