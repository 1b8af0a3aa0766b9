//! The CSV reader (schema inferred from the bytes themselves, header on) and the feature
//! matrix on whatever it reads. Errors are expected; panics and hangs are bugs.
#![no_main]

use inferkit_preprocess::table::{CsvOptions, read_csv};
use libfuzzer_sys::fuzz_target;

include!("tables.rs");

fuzz_target!(|bytes: &[u8]| {
    quiet_caught_panics();
    let path = scratch(bytes, "csv");
    let options = CsvOptions {
        batch_size: 64,
        infer_rows: 100,
        ..CsvOptions::default()
    };
    if let Ok(reader) = read_csv(&path, &options) {
        exercise(reader);
    }
});
