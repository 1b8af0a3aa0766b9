//! `preprocess::table` against pyarrow, Parquet: the Parquet fixtures of
//! scripts/make_table_fixtures.py (every numeric type, nulls, a dictionary column, a string
//! column) into feature matrices equal to pyarrow + numpy's, the direct matrix path against
//! the arrow path, the prediction writer's round trip, and corrupt files (the fuzz finds),
//! each error naming the file; and the files users' tools write (scripts/make_parquet_matrix.py:
//! pyarrow under every codec, encoding and data page version, polars under every codec),
//! each read equal to pyarrow's values.

#[path = "common/log.rs"]
mod log;
#[path = "common/tables.rs"]
mod tables;

use std::path::Path;
use std::sync::Arc;

use inferkit::preprocess::BufferPool;
use inferkit::preprocess::table::arrow_array::cast::AsArray;
use inferkit::preprocess::table::arrow_array::types::Float32Type;
use inferkit::preprocess::table::{
    DataType, Features, Field, Nulls, ParquetOptions, PredictionWriter, RecordBatch, Schema,
    read_parquet, read_parquet_matrix, string_column,
};
use ndarray::{Array2, Axis, concatenate};
use ndarray_npy::read_npy;

use tables::{feature_names, fixture, matrix, small_batches};

#[test]
fn parquet_features_equal_pyarrow_under_fill_and_mask() {
    let names = feature_names();
    let want_fill: Array2<f32> = read_npy(fixture("types.fill.npy")).unwrap();
    let want_mask: Array2<f32> = read_npy(fixture("types.mask.npy")).unwrap();
    let fill = Features::new(names.clone()).with_nulls("*", Nulls::Fill(-1.0));
    let got = matrix(
        read_parquet(fixture("types.parquet"), &small_batches()).unwrap(),
        &fill,
    )
    .unwrap();
    assert_eq!(got, want_fill);
    let mask = Features::new(names.clone()).with_nulls("*", Nulls::Mask);
    assert_eq!(mask.width(), 2 * names.len());
    assert_eq!(mask.output_names()[1], "i8_is_null");
    let got = matrix(
        read_parquet(fixture("types.parquet"), &small_batches()).unwrap(),
        &mask,
    )
    .unwrap();
    assert_eq!(got, want_mask);
}

#[test]
fn parquet_straight_to_a_matrix_equals_pyarrow_on_one_and_three_threads() {
    let names = feature_names();
    let want_fill: Array2<f32> = read_npy(fixture("types.fill.npy")).unwrap();
    let want_mask: Array2<f32> = read_npy(fixture("types.mask.npy")).unwrap();
    let pool = BufferPool::new(2);
    for threads in [1, 3] {
        for (policy, want) in [(Nulls::Fill(-1.0), &want_fill), (Nulls::Mask, &want_mask)] {
            let features = Features::new(names.clone()).with_nulls("*", policy);
            let m = read_parquet_matrix(
                fixture("types.parquet"),
                &small_batches(),
                &features,
                &pool,
                threads,
            )
            .unwrap();
            assert_eq!(m.view(), want.view(), "{policy:?} on {threads} threads");
        }
        // the row groups chosen, in the order given: group 1 holds file rows 20..37
        let features = Features::new(names.clone()).with_nulls("*", Nulls::Fill(-1.0));
        let options = small_batches().with_row_groups(vec![1, 0]);
        let m = read_parquet_matrix(
            fixture("types.parquet"),
            &options,
            &features,
            &pool,
            threads,
        )
        .unwrap();
        let want = concatenate(
            Axis(0),
            &[
                want_fill.slice(ndarray::s![20.., ..]),
                want_fill.slice(ndarray::s![..20, ..]),
            ],
        )
        .unwrap();
        assert_eq!(
            m.view(),
            want.view(),
            "row groups [1, 0] on {threads} threads"
        );
        // a null under the error policy: the row is counted from the file's start
        let e = read_parquet_matrix(
            fixture("types.parquet"),
            &small_batches().with_row_groups(vec![1]),
            &Features::new(["f32"]),
            &pool,
            threads,
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("types.parquet, row 23, column `f32`"), "{e}");
        let e = read_parquet_matrix(
            fixture("types.parquet"),
            &ParquetOptions::new().with_row_groups(vec![0, 5]),
            &features,
            &pool,
            threads,
        )
        .unwrap_err()
        .to_string();
        assert!(
            e.contains("types.parquet") && e.contains("row group 5 of 2"),
            "{e}"
        );
    }
}

#[test]
fn parquet_of_many_row_groups_splits_evenly_and_equals_the_batch_path() {
    use inferkit::preprocess::table::arrow_array::{ArrayRef, Float64Array, Int32Array};
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("groups.parquet");
    let n = 1000;
    let batch = RecordBatch::try_from_iter([
        (
            "x",
            Arc::new(Float64Array::from_iter(
                (0..n).map(|i| (i % 7 != 3).then_some(i as f64 * 0.25)),
            )) as ArrayRef,
        ),
        (
            "k",
            Arc::new(Int32Array::from_iter_values((0..n).map(|i| i as i32 - 500))) as ArrayRef,
        ),
    ])
    .unwrap();
    let props = parquet::file::properties::WriterProperties::builder()
        .set_max_row_group_row_count(Some(64))
        .build();
    let mut w = parquet::arrow::ArrowWriter::try_new(
        std::fs::File::create(&path).unwrap(),
        batch.schema(),
        Some(props),
    )
    .unwrap();
    w.write(&batch).unwrap();
    w.close().unwrap();
    let features = Features::new(["k", "x"]).with_nulls("x", Nulls::Mask);
    let want = matrix(
        read_parquet(&path, &ParquetOptions::default()).unwrap(),
        &features,
    )
    .unwrap();
    assert_eq!(want.dim(), (n, 3));
    for threads in [1, 2, 3] {
        let m = read_parquet_matrix(
            &path,
            &ParquetOptions::new().with_batch_size(10),
            &features,
            &BufferPool::new(0),
            threads,
        )
        .unwrap();
        assert_eq!(m.view(), want.view(), "{threads} threads");
    }
}

#[test]
fn projection_and_row_groups() {
    let options = ParquetOptions::new()
        .with_columns(["id", "f64"])
        .with_row_groups(vec![1])
        .with_batch_size(100);
    let batches: Vec<RecordBatch> = read_parquet(fixture("types.parquet"), &options)
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    let batch = &batches[0];
    assert_eq!(batch.num_columns(), 2);
    assert_eq!(batch.num_rows(), 17);
    assert_eq!(
        batch
            .column(0)
            .as_primitive::<inferkit::preprocess::table::arrow_array::types::Int64Type>()
            .value(0),
        20
    );
    let e = read_parquet(
        fixture("types.parquet"),
        &ParquetOptions::new().with_row_groups(vec![5]),
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("row group 5 of 2"), "{e}");
    let e = read_parquet(
        fixture("types.parquet"),
        &ParquetOptions::new().with_columns(["zzz"]),
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("column `zzz`"), "{e}");
}

#[test]
fn corrupt_parquet_names_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let bytes = std::fs::read(fixture("types.parquet")).unwrap();
    // not Parquet at all
    let junk = dir.path().join("junk.parquet");
    std::fs::write(&junk, b"this is not parquet").unwrap();
    let e = read_parquet(&junk, &ParquetOptions::default())
        .unwrap_err()
        .to_string();
    assert!(e.contains("junk.parquet"), "{e}");
    // truncated: the footer is gone
    let cut = dir.path().join("cut.parquet");
    std::fs::write(&cut, &bytes[..bytes.len() / 2]).unwrap();
    let e = read_parquet(&cut, &ParquetOptions::default())
        .unwrap_err()
        .to_string();
    assert!(e.contains("cut.parquet"), "{e}");
    // pages overwritten, footer intact: fails while reading batches, never panics
    let mut bad = bytes.clone();
    for b in &mut bad[8..bytes.len() / 2] {
        *b = 0xA5;
    }
    let broken = dir.path().join("pages.parquet");
    std::fs::write(&broken, &bad).unwrap();
    let r =
        read_parquet(&broken, &ParquetOptions::default()).map(|r| r.collect::<Result<Vec<_>, _>>());
    let e = match r {
        Err(e) | Ok(Err(e)) => e.to_string(),
        Ok(Ok(_)) => panic!("corrupt pages read without error"),
    };
    assert!(e.contains("pages.parquet"), "{e}");
}

/// Reads a file found by fuzz/parquet_reader to the end: its error, which must name it.
fn fuzz_found(name: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/fuzz")
        .join(name);
    let r = std::panic::catch_unwind(|| {
        read_parquet(&path, &ParquetOptions::default()).map(|r| r.collect::<Result<Vec<_>, _>>())
    })
    .expect("read_parquet panicked");
    let e = match r {
        Err(e) | Ok(Err(e)) => e.to_string(),
        Ok(Ok(_)) => panic!("{name} read without error"),
    };
    assert!(e.contains(name), "{e}");
    e
}

/// Found by fuzz/parquet_reader: a footer whose column chunk starts at a negative offset
/// made parquet 60 panic ("column start and length should not be negative").
#[test]
fn a_footer_pointing_outside_the_file_is_an_error_not_a_panic() {
    let e = fuzz_found("parquet_negative_column_start.parquet");
    assert!(
        e.contains("row group") && e.contains("not inside the file"),
        "{e}"
    );
}

/// Found by fuzz/parquet_reader: corrupt definition levels made parquet 60 panic inside its
/// page decoder ("offset + len out of bounds"); the reader turns it into an error.
#[test]
fn a_decoder_panic_on_corrupt_pages_is_an_error() {
    let e = fuzz_found("parquet_corrupt_definition_levels.parquet");
    assert!(e.contains("corrupt data"), "{e}");
}

/// Found by fuzz/parquet_reader: a corrupt page header whose Thrift list claims about a
/// billion elements made parquet 60 read 0 bytes at the end of the file that many times
/// (3 minutes on a 2 KB file); a read past the end is now an error.
#[test]
fn a_page_header_claiming_a_huge_list_ends_at_the_end_of_the_file() {
    fuzz_found("parquet_page_header_billion_element_list.parquet");
}

/// Found by fuzz/parquet_reader: row groups whose row counts overflow when parquet 60 adds
/// them (a panic in debug builds, a wrapped count in release).
#[test]
fn row_counts_that_overflow_are_an_error() {
    let e = fuzz_found("parquet_row_count_overflow.parquet");
    assert!(e.contains("claims"), "{e}");
}

/// Found by fuzz/parquet_reader: a footer whose Thrift list of booleans claims a huge
/// length. parquet 60.1.0 skipped it element by element without reading a byte (seconds of
/// CPU for a 1.4 KB file); with crates/parquet's patch 2 it is an EOF error at once.
#[test]
fn a_footer_claiming_a_huge_thrift_list_ends_in_an_error() {
    let e = fuzz_found("parquet_footer_huge_thrift_list.parquet");
    assert!(e.contains("EOF") || e.contains("eof"), "{e}");
}

#[test]
fn a_footer_list_of_two_billion_booleans_ends_at_the_end_of_the_file() {
    // 2 KB: parquet 60.1.0 skipped a list of bools without reading their bytes, looping
    // over the claimed count (19 s of CPU in the fuzz build; crates/parquet/PATCHES.md)
    let e = fuzz_found("parquet_footer_bool_list_of_2e9.parquet");
    assert!(e.contains("EOF") || e.contains("eof"), "{e}");
}

#[test]
fn a_dictionary_page_claiming_a_billion_values_allocates_nothing() {
    // 3 KB whose dictionary page header claims 1.6 billion INT64 values: parquet 60.1.0
    // allocated and zeroed 13 GB for them before failing (crates/parquet/PATCHES.md)
    let e = fuzz_found("parquet_dictionary_page_huge_num_values.parquet");
    assert!(
        e.contains("dictionary page claims") && e.contains("values"),
        "{e}"
    );
}

#[test]
fn predictions_round_trip_through_parquet_with_their_keys() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("pred.parquet");
    let keys = read_parquet(
        fixture("types.parquet"),
        &ParquetOptions::new()
            .with_columns(["id", "text"])
            .with_batch_size(16),
    )
    .unwrap();
    let mut w = PredictionWriter::create(&out, keys.schema(), "embedding", 4).unwrap();
    let mut expected = Vec::new();
    for batch in keys {
        let batch = batch.unwrap();
        let values: Vec<f32> = (0..batch.num_rows() * 4)
            .map(|i| (expected.len() + i) as f32 * 0.25)
            .collect();
        w.write(&batch, &values).unwrap();
        expected.extend(values);
    }
    assert_eq!(w.close().unwrap(), 37);
    let back: Vec<RecordBatch> = read_parquet(&out, &ParquetOptions::default())
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    let mut got = Vec::new();
    let mut ids = Vec::new();
    for b in &back {
        let list = b.column_by_name("embedding").unwrap().as_fixed_size_list();
        assert_eq!(list.value_length(), 4);
        got.extend(
            list.values()
                .as_primitive::<Float32Type>()
                .values()
                .iter()
                .copied(),
        );
        ids.extend(
            b.column_by_name("id")
                .unwrap()
                .as_primitive::<inferkit::preprocess::table::arrow_array::types::Int64Type>()
                .values()
                .iter()
                .copied(),
        );
        assert!(
            !string_column(b, "text", "pred")
                .unwrap()
                .value(0)
                .is_empty()
        );
    }
    assert_eq!(got, expected);
    assert_eq!(ids, (0..37).collect::<Vec<i64>>());
    let schema = Arc::new(Schema::new(vec![Field::new("id", DataType::Int64, false)]));
    let e = PredictionWriter::create(dir.path().join("x.parquet"), schema, "id", 1)
        .unwrap_err()
        .to_string();
    assert!(e.contains("already a key column"), "{e}");
}

/// Plain numeric columns are decoded straight from their column chunks, the rest (f16, a
/// dictionary-typed column) through arrow: both on one matrix, equal to pyarrow's.
#[test]
fn parquet_matrix_decodes_plain_columns_directly_and_the_rest_through_arrow() {
    let buf = log::Buf::default();
    let w = buf.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::DEBUG)
        .with_writer(move || w.clone())
        .with_ansi(false)
        .finish();
    let want: Array2<f32> = read_npy(fixture("types.fill.npy")).unwrap();
    let features = Features::new(feature_names()).with_nulls("*", Nulls::Fill(-1.0));
    let read = || {
        read_parquet_matrix(
            fixture("types.parquet"),
            &ParquetOptions::default(),
            &features,
            &BufferPool::new(0),
            1,
        )
        .unwrap()
    };
    let m = tracing::subscriber::with_default(subscriber, || {
        let m = read();
        // Another test's thread may have been registering the event's callsite (with no
        // subscriber interested) while this one registered: tracing-core then caches
        // "never" for it. The callsite is registered now; interest rebuilt, a second read
        // logs (once: the assertion below still fails if nothing is logged).
        if buf.text().is_empty() {
            tracing::callsite::rebuild_interest_cache();
            read()
        } else {
            m
        }
    });
    assert_eq!(m.view(), want.view());
    let log = buf.text();
    assert!(
        log.contains(
            r#"direct=["i8", "i16", "i32", "i64", "u8", "u16", "u32", "u64", "f32", "f64", "flag"] arrow=["f16", "level"]"#
        ),
        "{log}"
    );
}

/// Required and nullable columns of every type the direct path takes, PLAIN-encoded and
/// dictionary-encoded, in data pages of format 1 and 2, small pages, mapped and read: the
/// same matrix as the arrow path under each null policy, on one thread and two.
#[test]
fn parquet_matrix_direct_path_equals_the_arrow_path_for_every_layout() {
    use inferkit::preprocess::table::arrow_array::{
        ArrayRef, BooleanArray, Float32Array, Float64Array, Int8Array, Int64Array, UInt16Array,
        UInt64Array,
    };
    use parquet::file::properties::{WriterProperties, WriterVersion};
    let n = 3000;
    let schema = Arc::new(Schema::new(vec![
        Field::new("req_f64", DataType::Float64, false),
        Field::new("opt_f32", DataType::Float32, true),
        Field::new("req_i64", DataType::Int64, false),
        Field::new("opt_i8", DataType::Int8, true),
        Field::new("req_u16", DataType::UInt16, false),
        Field::new("opt_u64", DataType::UInt64, true),
        Field::new("opt_flag", DataType::Boolean, true),
    ]));
    let columns: Vec<ArrayRef> = vec![
        Arc::new(Float64Array::from_iter_values(
            (0..n).map(|i| i as f64 * 0.37 - 400.0),
        )),
        Arc::new(Float32Array::from_iter(
            (0..n).map(|i| (i % 11 != 4).then_some(i as f32 * -1.5)),
        )),
        Arc::new(Int64Array::from_iter_values(
            (0..n).map(|i| (i as i64 - 1500) * 1_000_003),
        )),
        Arc::new(Int8Array::from_iter(
            (0..n).map(|i| (i % 5 != 0).then_some((i % 256) as u8 as i8)),
        )),
        Arc::new(UInt16Array::from_iter_values(
            (0..n).map(|i| (i * 37 % 65536) as u16),
        )),
        Arc::new(UInt64Array::from_iter((0..n).map(|i| {
            (i % 3 != 1).then_some(u64::MAX - i as u64 * 1_000_000_007)
        }))),
        Arc::new(BooleanArray::from_iter(
            (0..n).map(|i| (i % 7 != 2).then_some(i % 2 == 0)),
        )),
    ];
    let batch = RecordBatch::try_new(Arc::clone(&schema), columns).unwrap();
    let names: Vec<String> = schema.fields().iter().map(|f| f.name().clone()).collect();
    let dir = tempfile::tempdir().unwrap();
    for dictionary in [false, true] {
        for version in [WriterVersion::PARQUET_1_0, WriterVersion::PARQUET_2_0] {
            let path = dir
                .path()
                .join(format!("layout-{dictionary}-{version:?}.parquet"));
            let props = WriterProperties::builder()
                .set_dictionary_enabled(dictionary)
                .set_writer_version(version)
                // pages of 300 rows: a piece of a group on two threads starts 550 rows
                // in, past a whole page (skipped by its header) and into the next
                .set_data_page_row_count_limit(300)
                .set_write_batch_size(50)
                .set_max_row_group_row_count(Some(1100))
                .build();
            let mut w = parquet::arrow::ArrowWriter::try_new(
                std::fs::File::create(&path).unwrap(),
                Arc::clone(&schema),
                Some(props),
            )
            .unwrap();
            w.write(&batch).unwrap();
            w.close().unwrap();
            for policy in [Nulls::Fill(-7.0), Nulls::Mask] {
                let features = Features::new(names.clone()).with_nulls("*", policy);
                let want = matrix(
                    read_parquet(&path, &ParquetOptions::default()).unwrap(),
                    &features,
                )
                .unwrap();
                for memory_map in [true, false] {
                    for threads in [1, 2] {
                        let options = ParquetOptions::new().with_memory_map(memory_map);
                        let m = read_parquet_matrix(
                            &path,
                            &options,
                            &features,
                            &BufferPool::new(0),
                            threads,
                        )
                        .unwrap_or_else(|e| panic!("{e}: dictionary {dictionary}, {version:?}, {policy:?}, mapped {memory_map}, {threads} threads"));
                        assert_eq!(
                            m.view(),
                            want.view(),
                            "dictionary {dictionary}, {version:?}, {policy:?}, mapped {memory_map}, {threads} threads"
                        );
                    }
                }
            }
            // the first null of a column under the error policy, counted from the file's
            // start: opt_i8 is null at row 0, and in row group 1 (rows 1100..) at 1100
            let e = read_parquet_matrix(
                &path,
                &ParquetOptions::new().with_row_groups(vec![1]),
                &Features::new(["req_f64", "opt_i8"]),
                &BufferPool::new(0),
                1,
            )
            .unwrap_err()
            .to_string();
            assert!(e.contains("row 1100, column `opt_i8`"), "{e}");
        }
    }
}

/// The writers' matrix of scripts/make_parquet_matrix.py: its files and what it says of them.
fn writers_matrix() -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(fixture("matrix/matrix.json")).unwrap()).unwrap()
}

fn strings(v: &serde_json::Value) -> Vec<String> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|s| s.as_str().unwrap().to_owned())
        .collect()
}

#[test]
fn every_codec_encoding_and_page_version_pyarrow_and_polars_write_reads_as_pyarrow_reads_it() {
    let meta = writers_matrix();
    let all = strings(&meta["features"]);
    let want: Array2<f32> = read_npy(fixture("matrix/matrix.mask.npy")).unwrap();
    let pool = BufferPool::new(2);
    let mut codecs = std::collections::BTreeSet::new();
    for f in meta["files"].as_array().unwrap() {
        let file = f["file"].as_str().unwrap();
        let writer = f["writer"].as_str().unwrap();
        let names = strings(
            &meta[if writer == "polars" {
                "polars_features"
            } else {
                "features"
            }],
        );
        // pyarrow's matrix, the columns of this writer's features (value, then is-null)
        let columns: Vec<usize> = names
            .iter()
            .flat_map(|n| {
                let k = all.iter().position(|a| a == n).unwrap();
                [2 * k, 2 * k + 1]
            })
            .collect();
        let want = want.select(Axis(1), &columns);
        let features = Features::new(names.clone()).with_nulls("*", Nulls::Mask);
        let path = fixture(&format!("matrix/{file}"));
        let mut direct = None;
        for threads in [1, 3] {
            let got =
                read_parquet_matrix(&path, &ParquetOptions::default(), &features, &pool, threads)
                    .unwrap_or_else(|e| panic!("{file}: {e}"));
            assert_eq!(got.view().shape(), want.shape(), "{file}");
            for (c, name) in features.output_names().iter().enumerate() {
                let (g, w) = (got.view().column(c).to_owned(), want.column(c).to_owned());
                if name == "price" {
                    // a decimal: unscaled / 100 in f64, then f32 — pyarrow's cast and arrow's
                    // may round the division differently by one f64 ulp, so allow one f32 ulp
                    for (a, b) in g.iter().zip(&w) {
                        assert!(
                            (a - b).abs() <= b.abs() * f32::EPSILON,
                            "{file} {name}: {a} vs {b}"
                        );
                    }
                } else {
                    assert_eq!(g, w, "{file}, column {name}, {threads} threads");
                }
            }
            direct = Some(got.view().to_owned());
        }
        // the batch path (arrow arrays, then the matrix) reads the same
        let batches = matrix(read_parquet(&path, &small_batches()).unwrap(), &features).unwrap();
        assert_eq!(Some(batches), direct, "{file}: batch path");
        // what the file holds, from its own metadata
        let reader = parquet::file::serialized_reader::SerializedFileReader::new(
            std::fs::File::open(&path).unwrap(),
        )
        .unwrap();
        use parquet::file::reader::FileReader;
        for rg in reader.metadata().row_groups() {
            for c in rg.columns() {
                codecs.insert((writer.to_owned(), format!("{:?}", c.compression())));
            }
        }
    }
    // every codec from both writers (lz4: LZ4_RAW, the one both write), zstd at its default
    // level and polars' default one
    for writer in ["pyarrow", "polars"] {
        for codec in [
            "UNCOMPRESSED",
            "SNAPPY",
            "GZIP",
            "BROTLI",
            "LZ4_RAW",
            "ZSTD",
        ] {
            assert!(
                codecs
                    .iter()
                    .any(|(w, c)| w == writer && c.starts_with(codec)),
                "no {codec} file from {writer}: {codecs:?}"
            );
        }
    }
}

#[test]
fn dates_timestamps_and_strings_are_refused_by_name_not_guessed() {
    let meta = writers_matrix();
    let path = fixture("matrix/pyarrow.zstd.dict.v2.parquet");
    for name in strings(&meta["not_numeric"]) {
        let features = Features::new([name.clone()]);
        let e = read_parquet_matrix(
            &path,
            &ParquetOptions::default(),
            &features,
            &BufferPool::new(1),
            1,
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("pyarrow.zstd.dict.v2.parquet"), "{e}");
        assert!(e.contains(&name), "{e}");
        assert!(e.contains("is not numeric"), "{e}");
    }
}

#[test]
fn a_zstd_page_that_fails_to_decompress_names_the_file_row_group_and_column() {
    // the second row group's first zstd frame (magic 28 B5 2F FD) of column `f64` gets its
    // frame header overwritten
    let src = fixture("matrix/pyarrow.zstd.plain.v1.parquet");
    let mut bytes = std::fs::read(&src).unwrap();
    let reader = parquet::file::serialized_reader::SerializedFileReader::new(
        std::fs::File::open(&src).unwrap(),
    )
    .unwrap();
    use parquet::file::reader::FileReader;
    let rg = reader.metadata().row_group(1);
    let leaf = (0..rg.num_columns())
        .find(|&i| rg.column(i).column_path().string() == "f64")
        .unwrap();
    let (start, len) = rg.column(leaf).byte_range();
    let (start, len) = (start as usize, len as usize);
    let magic = [0x28, 0xb5, 0x2f, 0xfd];
    let at = start
        + bytes[start..start + len]
            .windows(4)
            .position(|w| w == magic)
            .expect("a zstd frame");
    for b in &mut bytes[at + 4..at + 12] {
        *b = 0xff;
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("broken.zstd.parquet");
    std::fs::write(&path, &bytes).unwrap();
    for features in [Features::new(["f64"]), Features::new(["f64", "price"])] {
        let features = features.with_nulls("*", Nulls::Mask);
        for threads in [1, 2] {
            let e = read_parquet_matrix(
                &path,
                &ParquetOptions::default(),
                &features,
                &BufferPool::new(1),
                threads,
            )
            .unwrap_err()
            .to_string();
            assert!(e.contains("broken.zstd.parquet"), "{e}");
            // `…, column `f64`: row group 1, ZSTD chunk: External: Unsupported frame parameter`
            assert!(e.contains("column `f64`"), "{e}");
            assert!(e.contains("row group 1, ZSTD chunk: "), "{e}");
        }
    }
}
