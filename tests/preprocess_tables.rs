//! `preprocess::table` against pyarrow, CSV and the format-independent parts: the CSV
//! fixtures of scripts/make_table_fixtures.py into feature matrices equal to pyarrow +
//! numpy's under each null policy; typed rows (derived and dynamic); and bad input, each
//! error naming file, row and column. Parquet: `preprocess_parquet.rs`.

#[path = "common/tables.rs"]
mod tables;

use std::path::Path;
use std::sync::Arc;

use inferkit::preprocess::BufferPool;
use inferkit::preprocess::table::arrow_array::cast::AsArray;
use inferkit::preprocess::table::{
    Cell, CsvOptions, DataType, DynamicRows, Features, Field, FromRecordBatch, Nulls,
    ParquetOptions, RecordBatch, Schema, read_csv, read_csv_matrix, read_parquet, string_column,
};
use ndarray::Array2;
use ndarray_npy::read_npy;

use tables::{feature_names, fixture, matrix, small_batches};

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
