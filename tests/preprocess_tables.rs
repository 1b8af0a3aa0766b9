//! `preprocess::table` against pyarrow: the Parquet and CSV fixtures of
//! scripts/make_table_fixtures.py (every numeric type, nulls, a dictionary column, a string
//! column) into feature matrices equal to pyarrow + numpy's under each null policy; typed
//! rows (derived and dynamic); the prediction writer's round trip; and bad input, each error
//! naming file, row and column.

#[path = "common/log.rs"]
mod log;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use inferkit::preprocess::BufferPool;
use inferkit::preprocess::table::arrow_array::cast::AsArray;
use inferkit::preprocess::table::arrow_array::types::Float32Type;
use inferkit::preprocess::table::{
    Cell, CsvOptions, DataType, DynamicRows, FeatureMatrix, Features, Field, FromRecordBatch,
    Nulls, ParquetOptions, PredictionWriter, RecordBatch, Schema, read_csv, read_csv_matrix,
    read_parquet, read_parquet_matrix, string_column,
};
use ndarray::{Array2, Axis, concatenate};
use ndarray_npy::read_npy;

fn fixture(f: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/tables")
        .join(f)
}

fn feature_names() -> Vec<String> {
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
fn matrix(
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

fn small_batches() -> ParquetOptions {
    // batches of 8 cross batches and the two row groups
    ParquetOptions::new().with_batch_size(8)
}

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
fn csv_features_equal_pyarrow_with_an_inferred_schema() {
    let names = feature_names();
    let want: Array2<f32> = read_npy(fixture("types.fill.npy")).unwrap();
    let options = CsvOptions::new().with_batch_size(10);
    let reader = read_csv(fixture("types.csv"), &options).unwrap();
    assert_eq!(
        reader.schema().field_with_name("flag").unwrap().data_type(),
        &DataType::Boolean
    );
    let fill = Features::new(names).with_nulls("*", Nulls::Fill(-1.0));
    assert_eq!(matrix(reader, &fill).unwrap(), want);
}

#[test]
fn csv_straight_to_a_matrix_equals_pyarrow_and_the_arrow_path() {
    let names = feature_names();
    let pool = BufferPool::new(2);
    let direct = |features: &Features, options: &CsvOptions| {
        let m = read_csv_matrix(fixture("types.csv"), options, features, &pool).unwrap();
        m.view().to_owned()
    };
    let fill = Features::new(names.clone()).with_nulls("*", Nulls::Fill(-1.0));
    let mask = Features::new(names.clone()).with_nulls("*", Nulls::Mask);
    // pyarrow's figures (the fixtures) under fill and mask …
    let want_fill: Array2<f32> = read_npy(fixture("types.fill.npy")).unwrap();
    let want_mask: Array2<f32> = read_npy(fixture("types.mask.npy")).unwrap();
    assert_eq!(direct(&fill, &CsvOptions::default()), want_fill);
    assert_eq!(direct(&mask, &CsvOptions::default()), want_mask);
    // … and the arrow path's, bit for bit, with the types inferred and with a schema
    let arrow = |features: &Features, options: &CsvOptions| {
        matrix(read_csv(fixture("types.csv"), options).unwrap(), features).unwrap()
    };
    assert_eq!(
        direct(&fill, &CsvOptions::default()),
        arrow(&fill, &CsvOptions::default())
    );
    let schema = read_csv(fixture("types.csv"), &CsvOptions::default())
        .unwrap()
        .schema();
    let f32s = Arc::new(Schema::new(
        schema
            .fields()
            .iter()
            .map(|f| match f.name().as_str() {
                // integers read as narrower types and floats as f32: other parsers
                "i8" => Field::new("i8", DataType::Int16, true),
                "u8" => Field::new("u8", DataType::UInt32, true),
                "f64" => Field::new("f64", DataType::Float32, true),
                _ => f.as_ref().clone(),
            })
            .collect::<Vec<_>>(),
    ));
    let typed = CsvOptions::new().with_schema(f32s);
    assert_eq!(direct(&mask, &typed), arrow(&mask, &typed));
}

#[test]
fn csv_straight_to_a_matrix_names_row_and_column_in_errors() {
    let dir = tempfile::tempdir().unwrap();
    let pool = BufferPool::new(1);
    let write = |name: &str, text: &str| {
        let p = dir.path().join(name);
        std::fs::write(&p, text).unwrap();
        p
    };
    let err = |path: &Path, features: &Features| {
        read_csv_matrix(path, &CsvOptions::default(), features, &pool)
            .unwrap_err()
            .to_string()
    };
    // a null under the error policy: row 2 (from 0, header not counted), column b
    let nulls = write("nulls.csv", "a,b\n1,2\n3,4\n5,\n");
    let e = err(&nulls, &Features::new(["a", "b"]));
    assert!(
        e.contains("nulls.csv, row 2, column `b`") && e.contains("null"),
        "{e}"
    );
    // a value that is not a number of its column's type (inferred from the first 2 rows)
    let typed = write("typed.csv", "a,b\n1,2\n3,4\n5,4.5\n");
    let options = CsvOptions::new().with_infer_rows(2);
    let e = read_csv_matrix(&typed, &options, &Features::new(["a", "b"]), &pool)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("typed.csv, row 2, column `b`") && e.contains("`4.5` is not a Int64 value"),
        "{e}"
    );
    // a ragged record: the line, from the schema inference or (with the schema given) from
    // the arrow path the read falls back to, as `read_csv` names it
    let ragged = write("ragged.csv", "a,b\n1,2\n3\n4,5\n");
    let e = err(&ragged, &Features::new(["a"]));
    assert!(e.contains("ragged.csv") && e.contains("line 3"), "{e}");
    let schema = Arc::new(Schema::new(vec![
        Field::new("a", DataType::Int64, true),
        Field::new("b", DataType::Int64, true),
    ]));
    let options = CsvOptions::new().with_schema(schema);
    let e = read_csv_matrix(&ragged, &options, &Features::new(["a"]), &pool)
        .unwrap_err()
        .to_string();
    assert!(e.contains("ragged.csv") && e.contains("line 3"), "{e}");
    // a missing column and a string column
    let text = write("text.csv", "a,s\n1,x\n");
    let e = err(&text, &Features::new(["nope"]));
    assert!(
        e.contains("column `nope`") && e.contains("no such column (columns: a, s)"),
        "{e}"
    );
    let e = err(&text, &Features::new(["s"]));
    assert!(e.contains("column `s`") && e.contains("not numeric"), "{e}");
    let e = err(&dir.path().join("absent.csv"), &Features::new(["a"]));
    assert!(e.contains("absent.csv"), "{e}");
}

#[test]
fn csv_straight_to_a_matrix_reads_quotes_other_delimiters_and_no_header() {
    let dir = tempfile::tempdir().unwrap();
    let pool = BufferPool::new(1);
    let p = dir.path().join("q.csv");
    // quoted numbers, a quoted field with the delimiter and an escaped quote, CRLF, a BOM
    std::fs::write(
        &p,
        "\u{feff}id;\"name\";x\r\n1;\"a;\"\"b\"\"\";\"2.5\"\r\n2;c;\"\"\r\n",
    )
    .unwrap();
    let options = CsvOptions::new().with_delimiter(b';');
    let features = Features::new(["x", "id"]).with_nulls("x", Nulls::Fill(-7.0));
    let m = read_csv_matrix(&p, &options, &features, &pool).unwrap();
    assert_eq!(m.as_slice(), &[2.5, 1.0, -7.0, 2.0]);
    let arrow = matrix(read_csv(&p, &options).unwrap(), &features).unwrap();
    assert_eq!(m.view(), arrow.view());
    // no header: columns are column_1, column_2, … (arrow-csv's names)
    let p = dir.path().join("nohead.csv");
    std::fs::write(&p, "1,true,3\n4,FALSE,6\n").unwrap();
    let options = CsvOptions::new().with_header(false);
    let features = Features::new(["column_3", "column_2"]);
    let m = read_csv_matrix(&p, &options, &features, &pool).unwrap();
    assert_eq!(m.as_slice(), &[3.0, 1.0, 6.0, 0.0]);
    assert_eq!(m.rows(), 2);
    // a column type this path does not parse goes through the arrow path, same answer
    let p = dir.path().join("half.csv");
    std::fs::write(&p, "h,x\n0.5,1\n,2\n").unwrap();
    let schema = Arc::new(Schema::new(vec![
        Field::new("h", DataType::Float16, true),
        Field::new("x", DataType::Int64, true),
    ]));
    let options = CsvOptions::new().with_schema(schema);
    let features = Features::new(["h", "x"]).with_nulls("h", Nulls::Mask);
    let m = read_csv_matrix(&p, &options, &features, &pool).unwrap();
    assert_eq!(m.as_slice(), &[0.5, 0.0, 1.0, 0.0, 1.0, 2.0]);
}

#[test]
fn csv_straight_to_a_matrix_agrees_with_arrow_where_the_splitters_differ() {
    // inputs on which simd-csv and csv-core split differently (found by fuzz target
    // csv_reader, which compares the two paths): the direct path must give read_csv's
    // answer, an error where it errs and the same matrix where it reads
    let cases: [&[u8]; 6] = [
        b"\n",                   // no columns: arrow-csv refuses every line
        b"a,Tc\n1\",",           // a stray quote in an unquoted field
        b"xy\n\".0000",          // a quote left open at the end of the file
        b"a\r1\r2\r",            // old Mac line ends
        b"a,b\n1,x\n2,\xff\n",   // not UTF-8, in a column not read
        b"a,b\n\"1\"2,3\n4,5\n", // text after a closing quote
    ];
    let dir = tempfile::tempdir().unwrap();
    let pool = BufferPool::new(1);
    for (n, bytes) in cases.iter().enumerate() {
        let p = dir.path().join(format!("case{n}.csv"));
        std::fs::write(&p, bytes).unwrap();
        let options = CsvOptions::default();
        let Ok(reader) = read_csv(&p, &options) else {
            assert!(read_csv_matrix(&p, &options, &Features::new(["a"]), &pool).is_err());
            continue;
        };
        let names: Vec<String> = reader
            .schema()
            .fields()
            .iter()
            .filter(|f| f.data_type().is_numeric())
            .map(|f| f.name().clone())
            .collect();
        let features = Features::new(names).with_nulls("*", Nulls::Fill(-1.0));
        let arrow = matrix(reader, &features);
        let direct = read_csv_matrix(&p, &options, &features, &pool);
        match (arrow, direct) {
            (Ok(a), Ok(d)) => assert_eq!(a.as_slice().unwrap(), d.as_slice(), "case {n}"),
            (Err(_), Err(_)) => {}
            (a, d) => panic!("case {n}: arrow {a:?}, direct {:?}", d.map(|m| m.rows())),
        }
    }
}

#[test]
fn csv_columns_are_parsed_only_when_chosen() {
    // a value that is not a number in a column nobody reads: no error either way (pyarrow's
    // include_columns), but an error once that column is read
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("bad.csv");
    std::fs::write(&p, "a,b\n1,2\n3,۸4\n").unwrap();
    let schema = Arc::new(Schema::new(vec![
        Field::new("a", DataType::Int64, true),
        Field::new("b", DataType::Int64, true),
    ]));
    let options = CsvOptions::new().with_schema(schema).with_columns(["a"]);
    let reader = read_csv(&p, &options).unwrap();
    assert_eq!(reader.schema().fields().len(), 1);
    let m = matrix(reader, &Features::new(["a"])).unwrap();
    assert_eq!(m.as_slice().unwrap(), &[1.0, 3.0]);
    let pool = BufferPool::new(1);
    let direct = read_csv_matrix(&p, &options, &Features::new(["a"]), &pool).unwrap();
    assert_eq!(direct.as_slice(), &[1.0, 3.0]);
    let e = read_csv_matrix(&p, &options, &Features::new(["b"]), &pool)
        .unwrap_err()
        .to_string();
    assert!(e.contains("row 1, column `b`") && e.contains("۸4"), "{e}");
    let mut all = options.clone();
    all.columns = None;
    assert!(
        read_csv(&p, &all)
            .unwrap()
            .collect::<Result<Vec<_>, _>>()
            .is_err()
    );
    let e = read_csv(&p, &options.with_columns(["zz"]))
        .err()
        .unwrap()
        .to_string();
    assert!(
        e.contains("column `zz`") && e.contains("no such column"),
        "{e}"
    );
}

#[test]
fn a_null_under_the_error_policy_names_file_row_and_column() {
    let e = matrix(
        read_parquet(fixture("types.parquet"), &small_batches()).unwrap(),
        &Features::new(["i8", "i32"]),
    )
    .unwrap_err()
    .to_string();
    assert!(
        e.contains("types.parquet, row 3, column `i32`") && e.contains("null"),
        "{e}"
    );
    // a later batch: f64 is null at rows 3, 10, 17, 24…; with f64 alone and batches of 8 the
    // first null is in the first batch, the row count carries across batches for `flag`
    // (null at 3, 9, 15…) as well
    let e = matrix(
        read_parquet(
            fixture("types.parquet"),
            &small_batches().with_row_groups(vec![1]),
        )
        .unwrap(),
        &Features::new(["f32"]),
    )
    .unwrap_err()
    .to_string();
    // row group 1 starts at file row 20; f32 is null where i % 4 == 3: file row 23 is
    // row 3 of this read
    assert!(e.contains("row 3, column `f32`"), "{e}");
}

#[test]
fn missing_and_non_numeric_columns_are_named() {
    let e = matrix(
        read_parquet(fixture("types.parquet"), &ParquetOptions::default()).unwrap(),
        &Features::new(["nope"]),
    )
    .unwrap_err()
    .to_string();
    assert!(
        e.contains("column `nope`") && e.contains("no such column"),
        "{e}"
    );
    let e = matrix(
        read_parquet(fixture("types.parquet"), &ParquetOptions::default()).unwrap(),
        &Features::new(["text"]),
    )
    .unwrap_err()
    .to_string();
    assert!(
        e.contains("column `text`") && e.contains("not numeric"),
        "{e}"
    );
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

#[derive(FromRecordBatch, Debug, PartialEq)]
#[from_record_batch(crate = "inferkit::preprocess")]
struct Row {
    id: i64,
    #[column(name = "i32")]
    maybe: Option<i32>,
    u8: u8,
    f64: Option<f64>,
    flag: Option<bool>,
    text: String,
}

#[derive(FromRecordBatch, Debug)]
#[from_record_batch(crate = "inferkit::preprocess")]
#[allow(dead_code)]
struct Strict {
    id: i64,
    i32: i32,
}

#[derive(FromRecordBatch, Debug)]
#[from_record_batch(crate = "inferkit::preprocess")]
#[allow(dead_code)]
struct WrongType {
    #[column(name = "text")]
    value: f64,
}

#[test]
fn derived_rows_equal_the_dynamic_path_and_errors_name_the_column() {
    let batches: Vec<RecordBatch> = read_parquet(fixture("types.parquet"), &small_batches())
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    let mut first = 0;
    let mut all = Vec::new();
    for b in &batches {
        let rows = Row::from_batch(b, first, "types.parquet").unwrap();
        let dynamic = DynamicRows::new(b, first, "types.parquet");
        for (i, r) in rows.iter().enumerate() {
            assert_eq!(dynamic.get(i, "id").unwrap(), Cell::Int(r.id));
            assert_eq!(
                dynamic.get(i, "i32").unwrap(),
                r.maybe.map_or(Cell::Null, |v| Cell::Int(v.into()))
            );
            assert_eq!(dynamic.get(i, "u8").unwrap(), Cell::Int(r.u8.into()));
            assert_eq!(
                dynamic.get(i, "f64").unwrap(),
                r.f64.map_or(Cell::Null, Cell::Float)
            );
            assert_eq!(
                dynamic.get(i, "flag").unwrap(),
                r.flag.map_or(Cell::Null, Cell::Bool)
            );
            assert_eq!(dynamic.get(i, "text").unwrap(), Cell::Str(r.text.clone()));
        }
        first += b.num_rows();
        all.extend(rows);
    }
    assert_eq!(all.len(), 37);
    assert_eq!(all[3].maybe, None, "i32 is null at row 3");
    assert_eq!(all[5].text, "row 5 ünïcode 文本");
    let e = Strict::from_batch(&batches[0], 0, "types.parquet")
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("row 3, column `i32`") && e.contains("null"),
        "{e}"
    );
    let e = WrongType::from_batch(&batches[0], 0, "types.parquet")
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("column `text`") && e.contains("expected Float64") && e.contains("found Utf8"),
        "{e}"
    );
    let e = DynamicRows::new(&batches[0], 0, "f")
        .get(0, "nope")
        .unwrap_err()
        .to_string();
    assert!(e.contains("column `nope`"), "{e}");
}

#[test]
fn string_columns_are_handed_out_without_copying() {
    let batch = read_parquet(fixture("types.parquet"), &ParquetOptions::default())
        .unwrap()
        .next()
        .unwrap()
        .unwrap();
    let texts = string_column(&batch, "text", "types.parquet").unwrap();
    let col = batch.column_by_name("text").unwrap().as_string::<i32>();
    assert_eq!(texts.value_data().as_ptr(), col.value_data().as_ptr());
    assert_eq!(texts.value(1), "row 1 ünïcode 文本");
    let e = string_column(&batch, "id", "types.parquet")
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("column `id`") && e.contains("expected Utf8"),
        "{e}"
    );
}

#[test]
fn ragged_and_mistyped_csv_rows_name_file_and_line() {
    let dir = tempfile::tempdir().unwrap();
    let ragged = dir.path().join("ragged.csv");
    std::fs::write(&ragged, "a,b\n1,2\n3\n4,5\n").unwrap();
    let schema = Arc::new(Schema::new(vec![
        Field::new("a", DataType::Int64, true),
        Field::new("b", DataType::Int64, true),
    ]));
    let options = CsvOptions::new().with_schema(Arc::clone(&schema));
    let e = read_csv(&ragged, &options)
        .unwrap()
        .collect::<Result<Vec<_>, _>>()
        .unwrap_err()
        .to_string();
    assert!(e.contains("ragged.csv") && e.contains("line 3"), "{e}");
    let typed = dir.path().join("typed.csv");
    std::fs::write(&typed, "a,b\n1,2\n3,abc\n").unwrap();
    let e = read_csv(&typed, &options)
        .unwrap()
        .collect::<Result<Vec<_>, _>>()
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("typed.csv") && e.contains("abc") && e.contains("column"),
        "{e}"
    );
    let e = read_csv(dir.path().join("absent.csv"), &CsvOptions::default())
        .unwrap_err()
        .to_string();
    assert!(e.contains("absent.csv"), "{e}");
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
    let m = tracing::subscriber::with_default(subscriber, || {
        read_parquet_matrix(
            fixture("types.parquet"),
            &ParquetOptions::default(),
            &features,
            &BufferPool::new(0),
            1,
        )
        .unwrap()
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

#[test]
fn table_errors_carry_the_file_row_column_and_the_underlying_error() {
    use inferkit::preprocess::Error;
    // a missing file: the path, and the operating system's error as the source
    let missing = fixture("no-such-table.parquet");
    let e = read_parquet(&missing, &ParquetOptions::default()).unwrap_err();
    let Error::Table {
        file,
        row,
        column,
        source,
        ..
    } = &e
    else {
        panic!("{e:?}")
    };
    assert!(file.ends_with("no-such-table.parquet"), "{file}");
    assert_eq!((row, column), (&None, &None));
    let io = source
        .as_deref()
        .and_then(|s| s.downcast_ref::<std::io::Error>())
        .expect("the io::Error is the source");
    assert_eq!(io.kind(), std::io::ErrorKind::NotFound);
    assert!(e.to_string().contains("no-such-table.parquet"), "{e}");

    // a null under the error policy: row and column as fields, no underlying error
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("nulls.csv");
    std::fs::write(&p, "a,b\n1,2\n3,4\n5,\n").unwrap();
    let e = read_csv_matrix(
        &p,
        &CsvOptions::default(),
        &Features::new(["a", "b"]),
        &BufferPool::new(1),
    )
    .unwrap_err();
    let Error::Table {
        row,
        column,
        source,
        ..
    } = &e
    else {
        panic!("{e:?}")
    };
    assert_eq!((*row, column.as_deref()), (Some(2), Some("b")), "{e}");
    assert!(source.is_none(), "{e:?}");
}
