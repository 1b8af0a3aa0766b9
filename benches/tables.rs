//! Tables to a row-major f32 matrix: a generated table of `INFERKIT_TABLE_ROWS` rows
//! (default 2,000,000) with 16 numeric columns (8 f64, 1% nulls in the first; 4 f32; 4 i64:
//! full-precision pseudo-random values, as measured features are) and a string column, as
//! Parquet (snappy, and zstd at level 1; row groups of 131,072) and CSV, under
//! target/bench-data/. Parquet (`read_parquet_matrix`) on one thread and on two (row groups
//! handed to threads as they free up), the zstd file on one, CSV on one;
//! a mixed CSV of the same row count (an id, 4 f64, 2 i64, 2 bool columns with 5% empty
//! fields each, a quoted text column with commas, quotes and line breaks, a category
//! column) to a matrix of its 9 number and bool columns, nulls filled with 0, on one thread;
//! then typed rows from the same data in memory — the derived `FromRecordBatch`, a
//! hand-written column loop and the dynamic by-name path. pyarrow + numpy and polars
//! (scripts/anchors/tables.py, target/bench-data/anchors-tables.json) in the same run.
//!
//! ```text
//! scripts/bench-tables.sh
//! ```

use std::hint::black_box;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use criterion::{Criterion, Throughput};

/// mimalloc, as pyarrow's default memory pool is (`pa.default_memory_pool().backend_name`
/// says "mimalloc" for the anchor's pyarrow 26) and polars' global allocator (jemalloc) is
/// an allocator of that kind: parquet allocates a buffer for every page it decompresses,
/// which glibc's malloc hands back to the system and faults in again, page after page
/// (`read_parquet_matrix` on one thread: 166 ms with glibc's, 101 ms with mimalloc).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

mod common;
use common::{anchors, bench_dir, median, ratio};
use inferkit::preprocess::BufferPool;
use inferkit::preprocess::table::arrow_array::cast::AsArray;
use inferkit::preprocess::table::arrow_array::types::{Float32Type, Float64Type, Int64Type};
use inferkit::preprocess::table::arrow_array::{
    Array, ArrayRef, Float32Array, Float64Array, Int64Array, StringArray,
};
use inferkit::preprocess::table::{
    CsvOptions, DynamicRows, FeatureMatrix, Features, FromRecordBatch, Nulls, ParquetOptions,
    RecordBatch, read_csv, read_csv_matrix, read_parquet, read_parquet_matrix,
};

fn rows() -> usize {
    std::env::var("INFERKIT_TABLE_ROWS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2_000_000)
}

fn numeric() -> Vec<String> {
    let mut c: Vec<String> = (0..8).map(|i| format!("f64_{i}")).collect();
    c.extend((0..4).map(|i| format!("f32_{i}")));
    c.extend((0..4).map(|i| format!("i64_{i}")));
    c
}

/// Writes the table (once per row count) and returns (snappy parquet, zstd parquet, csv).
fn generate(n: usize) -> (PathBuf, PathBuf, PathBuf) {
    use parquet::basic::{Compression, ZstdLevel};
    let dir = bench_dir();
    std::fs::create_dir_all(&dir).unwrap();
    let pq = dir.join(format!("table_{n}_v3.parquet"));
    let zstd = dir.join(format!("table_{n}_v3.zstd.parquet"));
    let csv = dir.join(format!("table_{n}_v3.csv"));
    if pq.exists() && zstd.exists() && csv.exists() {
        return (pq, zstd, csv);
    }
    let chunk = 131_072;
    // the same table snappy-compressed and zstd-compressed (level 1: pyarrow's and arrow-rs'
    // default level)
    let codecs = [
        (&pq, Compression::SNAPPY),
        (&zstd, Compression::ZSTD(ZstdLevel::default())),
    ];
    let mut writers: Vec<parquet::arrow::ArrowWriter<std::fs::File>> = Vec::new();
    let mut cw = arrow_csv::Writer::new(std::fs::File::create(&csv).unwrap());
    let mut start = 0;
    while start < n {
        let len = chunk.min(n - start);
        let mut cols: Vec<(String, ArrayRef)> = Vec::new();
        // continuous features: full-precision pseudo-random values (splitmix64), PLAIN-encoded
        // as measured data usually is, not dictionary-encoded
        let v = |r: usize, c: usize| {
            let mut z = (r as u64 * 16 + c as u64).wrapping_add(0x9E37_79B9_7F4A_7C15);
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            z ^= z >> 31;
            (z >> 11) as f64 / (1u64 << 53) as f64 * 100.0 - 50.0
        };
        for c in 0..8 {
            let a: Float64Array = (start..start + len)
                .map(|r| (c != 0 || r % 100 != 7).then(|| v(r, c)))
                .collect();
            cols.push((format!("f64_{c}"), Arc::new(a)));
        }
        for c in 0..4 {
            let a: Float32Array = (start..start + len).map(|r| v(r, c + 8) as f32).collect();
            cols.push((format!("f32_{c}"), Arc::new(a)));
        }
        for c in 0..4 {
            let a: Int64Array = (start..start + len)
                .map(|r| (v(r, c + 12) * 1000.0) as i64)
                .collect();
            cols.push((format!("i64_{c}"), Arc::new(a)));
        }
        let t: StringArray = (start..start + len)
            .map(|r| Some(format!("item {r}")))
            .collect();
        cols.push(("text".into(), Arc::new(t)));
        let batch = RecordBatch::try_from_iter(cols).unwrap();
        if writers.is_empty() {
            for (path, codec) in codecs {
                // dictionary encoding off: arrow-rs (like pyarrow) falls back to PLAIN only
                // once a column chunk's dictionary passes 1 MiB, and 131,072 distinct f64s
                // fill exactly 1 MiB, so v2 of this file was dictionary-encoded throughout
                // (a 1 MiB dictionary and 17-bit indices for every column of every group)
                let props = parquet::file::properties::WriterProperties::builder()
                    .set_compression(codec)
                    .set_max_row_group_row_count(Some(chunk))
                    .set_dictionary_enabled(false)
                    .build();
                writers.push(
                    parquet::arrow::ArrowWriter::try_new(
                        std::fs::File::create(path).unwrap(),
                        batch.schema(),
                        Some(props),
                    )
                    .unwrap(),
                );
            }
        }
        for w in &mut writers {
            w.write(&batch).unwrap();
        }
        cw.write(&batch).unwrap();
        start += len;
    }
    for w in writers {
        w.close().unwrap();
    }
    (pq, zstd, csv)
}

/// The columns of the mixed CSV that go into its matrix.
fn mixed_columns() -> Vec<String> {
    let mut c = vec!["id".to_string()];
    c.extend((0..4).map(|i| format!("x{i}")));
    c.extend((0..2).map(|i| format!("n{i}")));
    c.extend((0..2).map(|i| format!("flag{i}")));
    c
}

/// Writes the mixed CSV (once per row count): numbers, bools, quoted text with commas,
/// doubled quotes and line breaks, and 5% empty fields in every column but `id`.
fn generate_mixed(n: usize) -> PathBuf {
    let path = bench_dir().join(format!("table_{n}_mixed_v1.csv"));
    if path.exists() {
        return path;
    }
    let h = |r: usize, c: usize| {
        let mut z = (r as u64 * 32 + c as u64).wrapping_add(0x9E37_79B9_7F4A_7C15);
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    };
    let null = |r: usize, c: usize| h(r, c + 16) % 100 < 5;
    let mut w = csv::Writer::from_path(&path).unwrap();
    let mut header = mixed_columns();
    header.extend(["text".to_string(), "category".to_string()]);
    w.write_record(&header).unwrap();
    let mut rec: Vec<String> = Vec::with_capacity(header.len());
    for r in 0..n {
        rec.clear();
        rec.push(r.to_string());
        for c in 0..4 {
            rec.push(if null(r, c) {
                String::new()
            } else {
                format!(
                    "{}",
                    (h(r, c) >> 11) as f64 / (1u64 << 53) as f64 * 100.0 - 50.0
                )
            });
        }
        for c in 4..6 {
            rec.push(if null(r, c) {
                String::new()
            } else {
                ((h(r, c) % 2_000_001) as i64 - 1_000_000).to_string()
            });
        }
        for c in 6..8 {
            rec.push(if null(r, c) {
                String::new()
            } else {
                (h(r, c) % 2 == 0).to_string()
            });
        }
        rec.push(match h(r, 8) % 4 {
            0 => String::new(),
            1 => format!("item {r}, size {}", h(r, 9) % 50),
            2 => format!("said \"hello\" to {r}"),
            _ => format!("line one of {r}\nline two"),
        });
        rec.push(["red", "green", "blue"][(h(r, 10) % 3) as usize].to_string());
        w.write_record(&rec).unwrap();
    }
    w.flush().unwrap();
    path
}

fn features() -> Features {
    Features::new(numeric()).with_nulls("f64_0", Nulls::Fill(0.0))
}

/// The whole file's features through `read_parquet_matrix` on `threads` threads; a pool that
/// keeps nothing, so the matrix is allocated per run, as numpy's `np.empty` is in the anchor.
fn parquet_matrix(path: &Path, threads: usize) -> FeatureMatrix {
    let options = ParquetOptions::default();
    read_parquet_matrix(path, &options, &features(), &BufferPool::new(0), threads).unwrap()
}

#[derive(FromRecordBatch)]
#[from_record_batch(crate = "inferkit::preprocess")]
#[allow(dead_code)]
struct Row {
    f64_0: Option<f64>,
    f64_1: f64,
    f64_2: f64,
    f64_3: f64,
    f64_4: f64,
    f64_5: f64,
    f64_6: f64,
    f64_7: f64,
    f32_0: f32,
    f32_1: f32,
    f32_2: f32,
    f32_3: f32,
    i64_0: i64,
    i64_1: i64,
    i64_2: i64,
    i64_3: i64,
}

/// The same rows by a hand-written column loop.
fn handwritten(b: &RecordBatch) -> Vec<Row> {
    let f = |n: &str| b.column_by_name(n).unwrap().as_primitive::<Float64Type>();
    let g = |n: &str| b.column_by_name(n).unwrap().as_primitive::<Float32Type>();
    let h = |n: &str| b.column_by_name(n).unwrap().as_primitive::<Int64Type>();
    let (a0, a1, a2, a3, a4, a5, a6, a7) = (
        f("f64_0"),
        f("f64_1"),
        f("f64_2"),
        f("f64_3"),
        f("f64_4"),
        f("f64_5"),
        f("f64_6"),
        f("f64_7"),
    );
    let (b0, b1, b2, b3) = (g("f32_0"), g("f32_1"), g("f32_2"), g("f32_3"));
    let (c0, c1, c2, c3) = (h("i64_0"), h("i64_1"), h("i64_2"), h("i64_3"));
    (0..b.num_rows())
        .map(|i| Row {
            f64_0: a0.is_valid(i).then(|| a0.value(i)),
            f64_1: a1.value(i),
            f64_2: a2.value(i),
            f64_3: a3.value(i),
            f64_4: a4.value(i),
            f64_5: a5.value(i),
            f64_6: a6.value(i),
            f64_7: a7.value(i),
            f32_0: b0.value(i),
            f32_1: b1.value(i),
            f32_2: b2.value(i),
            f32_3: b3.value(i),
            i64_0: c0.value(i),
            i64_1: c1.value(i),
            i64_2: c2.value(i),
            i64_3: c3.value(i),
        })
        .collect()
}

/// The same rows, every value looked up by name.
fn dynamic(b: &RecordBatch) -> Vec<[f64; 16]> {
    let names = numeric();
    let d = DynamicRows::new(b, 0, "bench");
    (0..d.len())
        .map(|i| {
            let mut r = [0.0; 16];
            for (v, n) in r.iter_mut().zip(&names) {
                *v = d.get_f64(i, n).unwrap_or(0.0);
            }
            r
        })
        .collect()
}

fn main() {
    let n = rows();
    let (pq, zstd, csv) = generate(n);
    let mixed = generate_mixed(n);
    let mixed_features = mixed_columns()
        .into_iter()
        .fold(Features::new(mixed_columns()), |f, c| {
            f.with_nulls(&c, Nulls::Fill(0.0))
        });
    let pool = BufferPool::new(4);
    let mut c = Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(5))
        .configure_from_args();
    let mut g = c.benchmark_group("tables");
    g.sample_size(10);
    g.throughput(Throughput::Elements(n as u64));
    g.bench_function("parquet_matrix_t1", |b| {
        b.iter(|| black_box(parquet_matrix(&pq, 1)))
    });
    g.bench_function("parquet_matrix_t2", |b| {
        b.iter(|| black_box(parquet_matrix(&pq, 2)))
    });
    g.bench_function("parquet_zstd_matrix_t1", |b| {
        b.iter(|| black_box(parquet_matrix(&zstd, 1)))
    });
    g.bench_function("csv_matrix_t1", |b| {
        b.iter(|| {
            let m = read_csv_matrix(&csv, &CsvOptions::default(), &features(), &pool).unwrap();
            black_box(m)
        })
    });
    g.bench_function("csv_mixed_matrix_t1", |b| {
        b.iter(|| {
            let m =
                read_csv_matrix(&mixed, &CsvOptions::default(), &mixed_features, &pool).unwrap();
            black_box(m)
        })
    });
    g.bench_function("csv_arrow_matrix_t1", |b| {
        b.iter(|| {
            // CSV has no row count up front: batches through the pool, appended
            let f = features();
            let mut out = Vec::with_capacity(n * 16);
            for batch in read_csv(&csv, &CsvOptions::default()).unwrap() {
                let m = FeatureMatrix::from_batch(&batch.unwrap(), &f, &pool, 0, "bench").unwrap();
                out.extend_from_slice(m.as_slice());
            }
            black_box(out)
        })
    });
    let batches: Vec<RecordBatch> =
        read_parquet(&pq, &ParquetOptions::new().with_columns(numeric()))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
    g.bench_function("rows_derived", |b| {
        b.iter(|| {
            for batch in &batches {
                black_box(Row::from_batch(batch, 0, "bench").unwrap());
            }
        })
    });
    g.bench_function("rows_handwritten", |b| {
        b.iter(|| {
            for batch in &batches {
                black_box(handwritten(batch));
            }
        })
    });
    g.bench_function("rows_dynamic", |b| {
        b.iter(|| {
            for batch in &batches {
                black_box(dynamic(batch));
            }
        })
    });
    g.finish();
    c.final_summary();
    report(n);
}

fn report(n: usize) {
    let a = anchors("anchors-tables.json");
    let get = |k: &str| a.get(k).and_then(|v| v.as_f64());
    let ours = |id: &str| median("tables", id);
    let rate = |s: Option<f64>| {
        s.map_or("-".into(), |s| {
            format!("{:.2} M rows/s", n as f64 / s / 1e6)
        })
    };
    println!(
        "\ntables: {n} rows × 16 numeric columns to a row-major f32 matrix; anchors from target/bench-data/anchors-tables.json ({}); medians",
        if a.is_empty() {
            "absent: run scripts/bench-tables.sh"
        } else {
            "same run"
        }
    );
    println!(
        "| path | inferkit | pyarrow + numpy | polars | inferkit / pyarrow | inferkit / polars |"
    );
    println!("|---|---|---|---|---|---|");
    let row = |label: &str, id: &str, pa: &str, pl: &str| {
        let (o, p, q) = (ours(id), get(pa), get(pl));
        println!(
            "| {label} | {} | {} | {} | {} | {} |",
            rate(o),
            rate(p),
            rate(q),
            ratio(p, o, 2),
            ratio(q, o, 2)
        );
    };
    row(
        "Parquet (snappy), 1 thread",
        "parquet_matrix_t1",
        "pyarrow_parquet_t1_s",
        "polars_parquet_t1_s",
    );
    row(
        "Parquet (snappy), 2 threads",
        "parquet_matrix_t2",
        "pyarrow_parquet_t2_s",
        "polars_parquet_t2_s",
    );
    row(
        "Parquet (zstd), 1 thread",
        "parquet_zstd_matrix_t1",
        "pyarrow_parquet_zstd_t1_s",
        "polars_parquet_zstd_t1_s",
    );
    row(
        "CSV, 1 thread",
        "csv_matrix_t1",
        "pyarrow_csv_t1_s",
        "polars_csv_t1_s",
    );
    row(
        "CSV mixed (9 of 11 columns: numbers, bools; quoted text; 5% nulls), 1 thread",
        "csv_mixed_matrix_t1",
        "pyarrow_csv_mixed_t1_s",
        "polars_csv_mixed_t1_s",
    );
    row(
        "CSV through arrow RecordBatches, 1 thread",
        "csv_arrow_matrix_t1",
        "pyarrow_csv_t1_s",
        "polars_csv_t1_s",
    );
    println!(
        "two threads / one (Parquet): {}",
        ratio(ours("parquet_matrix_t1"), ours("parquet_matrix_t2"), 2)
    );
    let (d, h, y) = (
        ours("rows_derived"),
        ours("rows_handwritten"),
        ours("rows_dynamic"),
    );
    println!(
        "typed rows in memory: derived {} , hand-written {}, dynamic {}; derived / hand-written time {}, dynamic / derived time {}",
        rate(d),
        rate(h),
        rate(y),
        ratio(d, h, 2),
        ratio(y, d, 2)
    );
}
