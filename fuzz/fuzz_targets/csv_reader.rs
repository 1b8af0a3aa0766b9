//! The CSV readers on arbitrary bytes (schema inferred from the bytes themselves, header
//! on): the arrow path (`read_csv`, then the feature matrix under each null policy) and the
//! direct one (`read_csv_matrix`) against the arrow path parsing the same columns: both
//! read the file or both refuse it, and their matrices are equal bit for bit. Errors are expected; panics, hangs and disagreements are bugs.
#![no_main]

use inferkit_preprocess::BufferPool;
use inferkit_preprocess::table::{CsvOptions, DataType, read_csv, read_csv_matrix};
use libfuzzer_sys::fuzz_target;

include!("tables.rs");

fuzz_target!(|bytes: &[u8]| {
    quiet_caught_panics();
    let path = scratch(bytes, "csv");
    let options = CsvOptions::new().with_batch_size(64).with_infer_rows(100);
    let Ok(reader) = read_csv(&path, &options) else {
        return;
    };
    let schema = reader.schema();
    exercise(reader);
    // the direct path against the arrow path, every numeric column filled or masked
    let names: Vec<&str> = schema
        .fields()
        .iter()
        .filter(|f| f.data_type().is_numeric() || f.data_type() == &DataType::Boolean)
        .map(|f| f.name().as_str())
        .collect();
    let pool = BufferPool::new(1);
    for policy in [Nulls::Fill(-1.0), Nulls::Mask] {
        let features = Features::new(names.iter().copied()).with_nulls("*", policy);
        let direct = read_csv_matrix(&path, &options, &features, &pool);
        // the arrow path parsing the same columns (the direct path never parses the others)
        let projected = options.clone().with_columns(names.iter().copied());
        let Ok(reader) = read_csv(&path, &projected) else {
            assert!(direct.is_err(), "the arrow path refused the file, the direct one read it");
            return;
        };
        let mut arrow = Vec::new();
        let mut failed = false;
        for batch in reader {
            let Ok(batch) = batch else {
                failed = true;
                break;
            };
            let start = arrow.len();
            arrow.resize(start + batch.num_rows() * features.width(), 0.0);
            if features.fill(&batch, &mut arrow[start..], 0, "fuzz").is_err() {
                failed = true;
                break;
            }
        }
        assert_eq!(
            direct.is_ok(),
            !failed,
            "one path read it, the other did not: direct {:?}",
            direct.as_ref().err()
        );
        if let Ok(direct) = &direct {
            let same = direct.as_slice().len() == arrow.len()
                && direct
                    .as_slice()
                    .iter()
                    .zip(&arrow)
                    .all(|(a, b)| a.to_bits() == b.to_bits());
            assert!(same, "direct {:?} != arrow {:?}", direct.as_slice(), arrow);
        }
    }
});
