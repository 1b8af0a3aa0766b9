//! Numeric columns of a CSV or Parquet file into a row-major f32 matrix, written as `.npy`.
//!
//! ```text
//! cargo run --release --example table_features -- INPUT.(csv|parquet) --columns a,b,… --out X.npy [--nulls error|fill:V|mask] [--threads N]
//! ```
//!
//! Parquet is read with only the named columns by `read_parquet_matrix`: the file mapped,
//! its rows split evenly over `--threads` threads (default: the CPUs this process may use),
//! each decoding its column chunks straight into its rows of one matrix allocated up front
//! (the row counts are in the footer). CSV is read on
//! one thread straight into the matrix (`read_csv_matrix`: simd-csv splits records, arrow's
//! parsers read the numbers; the column types are inferred from the first 1000 rows). `--nulls` applies to every column:
//! `error` (the default: the first null stops the run, naming row and column), `fill:V`, or
//! `mask` (0 and an `<name>_is_null` column after each). The last stdout line is
//! `{"rows":…,"columns":…,"seconds":…,"rows_per_s":…}`: `seconds` counts reading and
//! conversion, not writing the `.npy`. Errors: `error: …` on stderr, exit 1.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use inferkit::pipeline::available_cpus;
use inferkit::preprocess::BufferPool;
use inferkit::preprocess::table::{
    CsvOptions, Features, Nulls, ParquetOptions, read_csv_matrix, read_parquet_matrix,
};
use ndarray_npy::WriteNpyExt;

/// mimalloc, as pyarrow and polars use allocators of their own: parquet allocates a buffer
/// for every page it decompresses, which glibc's malloc returns to the system and faults in
/// again (the Parquet bench file on one thread: 166 ms with glibc's, 101 ms with mimalloc).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

struct Args {
    input: PathBuf,
    columns: Vec<String>,
    out: PathBuf,
    nulls: Nulls,
    threads: usize,
}

fn parse() -> Result<Args, String> {
    let usage = "usage: table_features INPUT.(csv|parquet) --columns a,b,… --out X.npy [--nulls error|fill:V|mask] [--threads N]";
    let mut it = std::env::args().skip(1);
    let (mut input, mut columns, mut out) = (None, None, None);
    let mut nulls = Nulls::Error;
    let mut threads = available_cpus();
    while let Some(a) = it.next() {
        let mut value = |name: &str| it.next().ok_or(format!("{name} needs a value\n{usage}"));
        match a.as_str() {
            "--columns" => {
                columns = Some(
                    value("--columns")?
                        .split(',')
                        .map(|c| c.trim().to_owned())
                        .filter(|c| !c.is_empty())
                        .collect::<Vec<_>>(),
                )
            }
            "--out" => out = Some(PathBuf::from(value("--out")?)),
            "--nulls" => {
                let v = value("--nulls")?;
                nulls = match v.as_str() {
                    "error" => Nulls::Error,
                    "mask" => Nulls::Mask,
                    s => match s.strip_prefix("fill:").map(str::parse::<f32>) {
                        Some(Ok(f)) => Nulls::Fill(f),
                        _ => return Err(format!("--nulls: `{v}` is not error, fill:V or mask")),
                    },
                }
            }
            "--threads" => {
                threads = match value("--threads")?.parse::<usize>() {
                    Ok(n) if n > 0 => n,
                    _ => return Err("--threads: a whole number above 0".into()),
                }
            }
            "-h" | "--help" => return Err(usage.into()),
            s if s.starts_with("--") => return Err(format!("unknown option {s}\n{usage}")),
            s if input.is_none() => input = Some(PathBuf::from(s)),
            s => return Err(format!("unexpected argument {s}\n{usage}")),
        }
    }
    let columns = columns.ok_or(usage)?;
    if columns.is_empty() {
        return Err("--columns names no column".into());
    }
    Ok(Args {
        input: input.ok_or(usage)?,
        columns,
        out: out.ok_or(usage)?,
        nulls,
        threads,
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

/// Converts every batch of `reader`; `first_row` is the file row of its first row.
fn is_parquet(p: &Path) -> bool {
    p.extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| e.eq_ignore_ascii_case("parquet") || e.eq_ignore_ascii_case("pq"))
}

fn run(args: &Args) -> Result<(), Box<dyn std::error::Error>> {
    let features = Features::new(args.columns.clone()).with_nulls("*", args.nulls);
    let width = features.width();
    let buffers = BufferPool::new(1);
    let start = Instant::now();
    let matrix = if is_parquet(&args.input) {
        let options = ParquetOptions::default();
        read_parquet_matrix(&args.input, &options, &features, &buffers, args.threads)?
    } else {
        read_csv_matrix(&args.input, &CsvOptions::default(), &features, &buffers)?
    };
    let seconds = start.elapsed().as_secs_f64();
    let rows = matrix.rows();
    let file =
        std::fs::File::create(&args.out).map_err(|e| format!("{}: {e}", args.out.display()))?;
    matrix.view().write_npy(std::io::BufWriter::new(file))?;
    println!(
        "{}",
        serde_json::json!({
            "rows": rows,
            "columns": width,
            "names": features.output_names(),
            "seconds": seconds,
            "rows_per_s": rows as f64 / seconds.max(1e-9),
            "threads": args.threads,
        })
    );
    Ok(())
}
