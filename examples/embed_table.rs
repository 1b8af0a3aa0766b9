//! Embeds a text column of a CSV or Parquet file with all-MiniLM-L6-v2 into a Parquet file.
//!
//! ```text
//! cargo run --release --example embed_table -- INPUT.(csv|parquet) --column text --out OUT.parquet [--id-column id] [--batch N] [--threads N] [--model DIR]
//! ```
//!
//! A `pipeline`: the source reads the file in chunks of 1024 rows (only the text and id
//! columns of a Parquet file) → `tokenize` (`--threads` workers, ordered; texts read from the
//! arrow buffers without copying) → `embed` (one worker; the model on `--threads` threads;
//! each chunk's texts sorted by token count and run in batches of `--batch`, default 32, so
//! little is padded; answers put back in row order) → the writer. Every edge is bounded, so
//! memory stays flat whatever the file size. The output has one row per input row, in input
//! order: the id column (or `row`, the row's index, without `--id-column`) and `embedding`,
//! a `FixedSizeList<Float32, 384>` — null for a row whose text is null (a failed row). A
//! progress bar shows on stderr; the last stdout line is `{"rows":…,"failed":…,"seconds":…,
//! "rows_per_s":…}` (reading to the last write; loading the model apart).

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use indicatif::{ProgressBar, ProgressStyle};
use inferkit::infer_core::cpu::{MiniLm, Tokens};
use inferkit::pipeline::{Pipeline, StageOptions, available_cpus};
use inferkit::preprocess::table::arrow_array::{Array, ArrayRef, Int64Array};
use inferkit::preprocess::table::{
    CsvOptions, ParquetOptions, PredictionWriter, RecordBatch, TableReader, parquet_row_groups,
    read_csv, read_parquet, string_column,
};

const CHUNK: usize = 1024;

struct Args {
    input: PathBuf,
    column: String,
    out: PathBuf,
    id: Option<String>,
    batch: usize,
    threads: usize,
    model: PathBuf,
}

fn parse() -> Result<Args, String> {
    let usage = "usage: embed_table INPUT.(csv|parquet) --column text --out OUT.parquet [--id-column id] [--batch N] [--threads N] [--model DIR]";
    let mut it = std::env::args().skip(1);
    let (mut input, mut column, mut out, mut id) = (None, None, None, None);
    let mut batch = 32;
    let mut threads = available_cpus();
    let mut model = Path::new(env!("CARGO_MANIFEST_DIR")).join(".cache/models/all-MiniLM-L6-v2");
    while let Some(a) = it.next() {
        let mut value = |name: &str| it.next().ok_or(format!("{name} needs a value\n{usage}"));
        let count = |name: &str, v: String| -> Result<usize, String> {
            match v.parse::<usize>() {
                Ok(n) if n > 0 => Ok(n),
                _ => Err(format!("{name}: `{v}` is not a whole number above 0")),
            }
        };
        match a.as_str() {
            "--column" => column = Some(value("--column")?),
            "--out" => out = Some(PathBuf::from(value("--out")?)),
            "--id-column" => id = Some(value("--id-column")?),
            "--batch" => batch = count("--batch", value("--batch")?)?,
            "--threads" => threads = count("--threads", value("--threads")?)?,
            "--model" => model = PathBuf::from(value("--model")?),
            "-h" | "--help" => return Err(usage.into()),
            s if s.starts_with("--") => return Err(format!("unknown option {s}\n{usage}")),
            s if input.is_none() => input = Some(PathBuf::from(s)),
            s => return Err(format!("unexpected argument {s}\n{usage}")),
        }
    }
    Ok(Args {
        input: input.ok_or(usage)?,
        column: column.ok_or(usage)?,
        out: out.ok_or(usage)?,
        id,
        batch,
        threads,
        model,
    })
}

fn main() -> ExitCode {
    let args = match parse() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    };
    match run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

/// A slice of the file: its first row and its text (and id) columns.
struct Chunk {
    first_row: usize,
    batch: RecordBatch,
}

/// A chunk with each row's token ids (`None`: a null text).
struct Tokenized {
    chunk: Chunk,
    ids: Vec<Option<Vec<i64>>>,
}

/// A chunk's keys and embeddings, in row order.
struct Embedded {
    keys: RecordBatch,
    values: Vec<f32>,
    valid: Vec<bool>,
}

fn open(args: &Args) -> Result<(TableReader, Option<u64>), Box<dyn std::error::Error>> {
    let parquet = args
        .input
        .extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| e.eq_ignore_ascii_case("parquet"));
    if parquet {
        let mut columns = vec![args.column.clone()];
        columns.extend(args.id.iter().cloned());
        let options = ParquetOptions::new()
            .with_columns(columns)
            .with_batch_size(CHUNK);
        let total = parquet_row_groups(&args.input)?.iter().sum::<usize>() as u64;
        Ok((read_parquet(&args.input, &options)?, Some(total)))
    } else {
        let options = CsvOptions::new().with_batch_size(CHUNK);
        Ok((read_csv(&args.input, &options)?, None))
    }
}

/// The key columns of `chunk`: the id column, or the row index as `row`.
fn keys(chunk: &Chunk, id: Option<&str>) -> Result<RecordBatch, String> {
    match id {
        Some(name) => {
            let i = chunk
                .batch
                .schema()
                .index_of(name)
                .map_err(|_| format!("no id column `{name}`"))?;
            chunk.batch.project(&[i]).map_err(|e| e.to_string())
        }
        None => {
            let rows: ArrayRef = Arc::new(Int64Array::from_iter_values(
                (0..chunk.batch.num_rows()).map(|i| (chunk.first_row + i) as i64),
            ));
            RecordBatch::try_from_iter([("row", rows)]).map_err(|e| e.to_string())
        }
    }
}

fn run(args: &Args) -> Result<(), Box<dyn std::error::Error>> {
    let load = Instant::now();
    let model = Arc::new(
        MiniLm::load(&args.model)
            .map_err(|e| format!("{e} (scripts/fetch-models.sh fetches the model)"))?
            .with_threads(args.threads)?,
    );
    let load_seconds = load.elapsed().as_secs_f64();
    let width = model.width();
    let (reader, total) = open(args)?;
    let file = reader.file().to_owned();
    let bar = match total {
        Some(n) => ProgressBar::new(n).with_style(
            ProgressStyle::with_template("{bar:40} {pos}/{len} rows {per_sec} eta {eta}")
                .unwrap_or_else(|_| ProgressStyle::default_bar()),
        ),
        None => ProgressBar::new_spinner().with_style(
            ProgressStyle::with_template("{spinner} {pos} rows {per_sec}")
                .unwrap_or_else(|_| ProgressStyle::default_spinner()),
        ),
    };

    let start = Instant::now();
    let failed = Arc::new(AtomicU64::new(0));
    let read_error: Arc<std::sync::Mutex<Option<String>>> = Arc::default();
    let source_error = Arc::clone(&read_error);
    let mut first_row = 0;
    // the reader runs on the pipeline's source thread; a read error ends the input and is
    // reported after the run
    let chunks = reader.map_while(move |b| match b {
        Ok(batch) => {
            let c = Chunk { first_row, batch };
            first_row += c.batch.num_rows();
            Some(c)
        }
        Err(e) => {
            *source_error.lock().unwrap_or_else(|p| p.into_inner()) = Some(e.to_string());
            None
        }
    });
    let (tok_model, column, tok_file, tok_failed) = (
        Arc::clone(&model),
        args.column.clone(),
        file.clone(),
        Arc::clone(&failed),
    );
    let (batch, id) = (args.batch, args.id.clone());
    let embed_model = Arc::clone(&model);
    let mut outputs = Pipeline::builder()
        .with_capacity(4)
        .source(chunks)
        .stage(
            "tokenize",
            StageOptions::new()
                .with_workers(args.threads)
                .with_ordered(true),
            move |chunk: Chunk| -> Result<Tokenized, String> {
                let texts =
                    string_column(&chunk.batch, &column, &tok_file).map_err(|e| e.to_string())?;
                let ids = (0..texts.len())
                    .map(|i| {
                        if texts.is_valid(i) {
                            let ids = tok_model
                                .encode(texts.value(i))
                                .map_err(|e| e.to_string())?;
                            Ok(Some(ids))
                        } else {
                            tok_failed.fetch_add(1, Ordering::Relaxed);
                            Ok(None)
                        }
                    })
                    .collect::<Result<Vec<_>, String>>()?;
                Ok(Tokenized { chunk, ids })
            },
        )
        .stage(
            "embed",
            StageOptions::new().with_workers(1),
            move |t: Tokenized| -> Result<Embedded, String> {
                let keys = keys(&t.chunk, id.as_deref())?;
                let rows = t.ids.len();
                let mut values = vec![0.0_f32; rows * width];
                let valid: Vec<bool> = t.ids.iter().map(Option::is_some).collect();
                // group texts of similar length
                let mut order: Vec<usize> = (0..rows).filter(|&i| valid[i]).collect();
                order.sort_by_key(|&i| t.ids[i].as_ref().map_or(0, Vec::len));
                for group in order.chunks(batch) {
                    let ids: Vec<&[i64]> = group
                        .iter()
                        .map(|&i| t.ids[i].as_deref().unwrap_or(&[]))
                        .collect();
                    let tokens = Tokens::pad(&ids);
                    let out = embed_model
                        .forward(tokens.ids.view(), tokens.mask.view())
                        .map_err(|e| e.to_string())?;
                    for (r, &i) in group.iter().enumerate() {
                        values[i * width..(i + 1) * width]
                            .copy_from_slice(out.row(r).as_slice().expect("contiguous"));
                    }
                }
                Ok(Embedded {
                    keys,
                    values,
                    valid,
                })
            },
        )
        .outputs();

    let mut writer: Option<PredictionWriter> = None;
    let mut rows = 0usize;
    for (_, e) in outputs.by_ref() {
        let w = match writer.as_mut() {
            Some(w) => w,
            None => writer.insert(PredictionWriter::create(
                &args.out,
                e.keys.schema(),
                "embedding",
                width,
            )?),
        };
        w.write_valid(&e.keys, &e.values, Some(&e.valid))?;
        rows += e.keys.num_rows();
        bar.inc(e.keys.num_rows() as u64);
    }
    let report = outputs.finish().map_err(|e| format!("{file}: {e}"))?;
    if let Some(e) = read_error.lock().unwrap_or_else(|p| p.into_inner()).take() {
        return Err(e.into());
    }
    match writer {
        Some(w) => {
            w.close()?;
        }
        None => return Err(format!("{file}: no rows").into()),
    }
    let seconds = start.elapsed().as_secs_f64();
    bar.finish_and_clear();
    println!(
        "{}",
        serde_json::json!({
            "rows": rows,
            "failed": failed.load(Ordering::Relaxed),
            "seconds": seconds,
            "rows_per_s": rows as f64 / seconds.max(1e-9),
            "load_seconds": load_seconds,
            "batch": args.batch,
            "threads": args.threads,
            "peak_in_flight_chunks": report.metrics.peak_in_flight,
        })
    );
    Ok(())
}
