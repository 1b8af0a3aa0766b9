//! Sentence embeddings with all-MiniLM-L6-v2 on the native CPU backend.
//!
//! ```text
//! cargo run --release --example embed -- --text "first text" --text "second" [--batch N] [--threads N] [--model DIR] [--int8]
//! cargo run --release --example embed -- --input FILE [--batch N] [--threads N] [--int8]
//! ```
//!
//! `--input` takes one text per line (`-` for stdin). The model comes from
//! `.cache/models/all-MiniLM-L6-v2` (fetched by `scripts/fetch-models.sh`) unless `--model`
//! names another folder with `model.safetensors`, `config.json` and `tokenizer.json`.
//! Texts are grouped by token count into batches of `--batch` (default 32) so little is
//! padded, and printed in input order, one JSON line each: `{"text":…,"embedding":[384
//! floats]}` (unit length, as sentence-transformers returns). The last line is a summary:
//! `texts`, `tokens`, `seconds` (tokenizing and the model; loading apart, as
//! `load_seconds`), `texts_per_s`, `batch`, `threads`, `precision`, and resident memory in
//! MiB (Linux; null elsewhere): `rss_before_load_mb`, `rss_mb` at the end, `peak_rss_mb`.
//!
//! `--model` takes an int8 checkpoint as well (the precision is read from its metadata).
//! `--int8` runs in int8: the folder `scripts/fetch-models.sh` makes with the `quantize`
//! example (`.cache/models/all-MiniLM-L6-v2-int8`), or, with `--model` naming an f32 one,
//! that model quantized as it loads (`MiniLm::with_int8`, the same numbers). Linear layers
//! and word embeddings int8 per output channel, activations per token: ~1.8x faster on one
//! thread of a CPU with AVX-512 VNNI, embeddings within 0.99 cosine of the f32 ones
//! (BENCHMARKS.md).

use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use inferkit::infer_core::Plan;
use inferkit::infer_core::cpu::{MiniLm, Tokens};
use inferkit::pipeline::available_cpus;

#[path = "common/rss.rs"]
mod rss;

struct Args {
    texts: Vec<String>,
    batch: usize,
    threads: usize,
    model: Option<PathBuf>,
    int8: bool,
}

fn parse() -> Result<Args, String> {
    let usage = "usage: embed (--text TEXT)… | --input FILE [--batch N] [--threads N] [--model DIR] [--int8]";
    let mut it = std::env::args().skip(1);
    let mut args = Args {
        texts: Vec::new(),
        batch: 32,
        threads: available_cpus(),
        model: None,
        int8: false,
    };
    let mut input = None;
    while let Some(a) = it.next() {
        let mut value = |name: &str| it.next().ok_or(format!("{name} needs a value\n{usage}"));
        let count = |name: &str, v: String| -> Result<usize, String> {
            match v.parse::<usize>() {
                Ok(n) if n > 0 => Ok(n),
                _ => Err(format!("{name}: `{v}` is not a whole number above 0")),
            }
        };
        match a.as_str() {
            "--text" => args.texts.push(value("--text")?),
            "--input" => input = Some(value("--input")?),
            "--batch" => args.batch = count("--batch", value("--batch")?)?,
            "--threads" => args.threads = count("--threads", value("--threads")?)?,
            "--model" => args.model = Some(PathBuf::from(value("--model")?)),
            "--int8" => args.int8 = true,
            "-h" | "--help" => return Err(usage.into()),
            s => return Err(format!("unexpected argument {s}\n{usage}")),
        }
    }
    if let Some(path) = input {
        let reader: Box<dyn BufRead> = if path == "-" {
            Box::new(std::io::stdin().lock())
        } else {
            Box::new(std::io::BufReader::new(
                std::fs::File::open(&path).map_err(|e| format!("{path}: {e}"))?,
            ))
        };
        for (n, line) in reader.lines().enumerate() {
            args.texts
                .push(line.map_err(|e| format!("{path}: line {}: {e}", n + 1))?);
        }
    }
    if args.texts.is_empty() {
        return Err(format!("no texts\n{usage}"));
    }
    Ok(args)
}

fn main() -> ExitCode {
    let args = match parse() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    };
    if let Err(e) = run(&args) {
        eprintln!("error: {e}");
        return ExitCode::FAILURE;
    }
    ExitCode::SUCCESS
}

fn run(args: &Args) -> Result<(), Box<dyn std::error::Error>> {
    let rss_before_load = rss::rss_bytes();
    let load = Instant::now();
    let dir = args.model.clone().unwrap_or_else(|| {
        let cache = Path::new(env!("CARGO_MANIFEST_DIR")).join(".cache/models");
        cache.join(if args.int8 {
            "all-MiniLM-L6-v2-int8"
        } else {
            "all-MiniLM-L6-v2"
        })
    });
    let model = MiniLm::load(&dir)
        .map_err(|e| {
            format!("{e} (scripts/fetch-models.sh fetches the model and makes its int8 copy)")
        })?
        .with_threads(args.threads)?;
    // an f32 model named by --model, asked for in int8 (an int8 one is returned as it is)
    let model = if args.int8 { model.with_int8()? } else { model };
    let load_seconds = load.elapsed().as_secs_f64();

    let start = Instant::now();
    // each text tokenized once; batches of similar length, padded to their longest
    let encoded: Vec<Vec<i64>> = args
        .texts
        .iter()
        .map(|t| model.encode(t))
        .collect::<Result<_, _>>()?;
    let mut order: Vec<usize> = (0..args.texts.len()).collect();
    order.sort_by_key(|&i| encoded[i].len());
    let bar = ProgressBar::with_draw_target(
        Some(args.texts.len() as u64),
        if args.texts.len() > 1000 {
            ProgressDrawTarget::stderr()
        } else {
            ProgressDrawTarget::hidden()
        },
    )
    .with_style(
        ProgressStyle::with_template("{bar:40} {pos}/{len} texts {per_sec} eta {eta}")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    let mut embeddings = vec![Vec::new(); args.texts.len()];
    for group in order.chunks(args.batch) {
        let ids: Vec<&[i64]> = group.iter().map(|&i| encoded[i].as_slice()).collect();
        let tokens = Tokens::pad(&ids);
        let out = model.forward(tokens.ids.view(), tokens.mask.view())?;
        for (&i, row) in group.iter().zip(out.outer_iter()) {
            embeddings[i] = row.to_vec();
        }
        bar.inc(group.len() as u64);
    }
    let seconds = start.elapsed().as_secs_f64();
    bar.finish_and_clear();
    let mut stdout = std::io::BufWriter::new(std::io::stdout().lock());
    // serialised from f32 (shortest round-trip digits of an f32, not of an f64)
    #[derive(serde::Serialize)]
    struct Line<'a> {
        text: &'a str,
        embedding: &'a [f32],
    }
    for (text, e) in args.texts.iter().zip(&embeddings) {
        serde_json::to_writer(&mut stdout, &Line { text, embedding: e })?;
        writeln!(stdout)?;
    }
    writeln!(
        stdout,
        "{}",
        serde_json::json!({
            "texts": args.texts.len(),
            "tokens": encoded.iter().map(Vec::len).sum::<usize>(),
            "seconds": seconds,
            "texts_per_s": args.texts.len() as f64 / seconds.max(1e-9),
            "load_seconds": load_seconds,
            "batch": args.batch,
            "threads": args.threads,
            "precision": model.descriptor().metadata.get("precision"),
            "rss_before_load_mb": rss::mb(rss_before_load),
            "rss_mb": rss::mb(rss::rss_bytes()),
            "peak_rss_mb": rss::mb(rss::peak_rss_bytes()),
        })
    )?;
    stdout.flush()?;
    Ok(())
}
