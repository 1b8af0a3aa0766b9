//! Lists the tensors of a checkpoint, one JSON object per line, in file order.
//!
//! ```text
//! cargo run --release --example inspect -- PATH [--sums]
//! ```
//!
//! Each line is `{"name":…,"dtype":…,"shape":[…]}`, plus `"sum"` (all elements as f64, in
//! logical order) with `--sums`. On error: exit status 1 and one line on stderr starting
//! with `error:`.

use std::io::{BufWriter, Write};
use std::process::ExitCode;

use inferkit::weights::Checkpoint;

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        // A closed pipe (`inspect … | head`) is the reader's choice, not a failure.
        Err(e)
            if e.downcast_ref::<std::io::Error>()
                .is_some_and(|e| e.kind() == std::io::ErrorKind::BrokenPipe) =>
        {
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run() -> Result<(), Box<dyn std::error::Error>> {
    let mut path = None;
    let mut sums = false;
    for arg in std::env::args().skip(1) {
        match arg.as_str() {
            "--sums" => sums = true,
            "-h" | "--help" => {
                println!("usage: inspect PATH [--sums]");
                return Ok(());
            }
            s if s.starts_with("--") => return Err(format!("unknown option {s}").into()),
            s if path.is_none() => path = Some(s.to_owned()),
            s => return Err(format!("unexpected argument {s}").into()),
        }
    }
    let path = path.ok_or("usage: inspect PATH [--sums]")?;
    let ckpt = Checkpoint::open(&path)?;
    let mut out = BufWriter::new(std::io::stdout().lock());
    for t in ckpt.tensors() {
        let mut line = serde_json::json!({
            "name": t.name(),
            "dtype": t.dtype().as_str(),
            "shape": t.shape(),
        });
        if sums {
            line["sum"] = serde_json::json!(t.sum_f64());
        }
        writeln!(out, "{line}")?;
    }
    out.flush()?;
    Ok(())
}
