//! Drives a pipeline hard and shows its memory stays bounded by its configuration:
//! a source, a CPU-light stage with W workers, a batcher, an unbatcher and a sink that
//! sleeps D µs per item.
//!
//! ```text
//! cargo run --release --example pipeline_stress -- --items N --capacity C --workers W --sink-delay-us D
//! ```
//!
//! Ends stdout with one JSON line: items, delivered, peak_in_flight, bound (what the
//! configuration guarantees), peak_rss_bytes, seconds, items_per_s, and every stage's
//! counters. Exits 1 if the peak ever exceeded the bound.

use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressStyle};
use inferkit::pipeline::{BatchOptions, Pipeline, StageOptions};

#[path = "common/rss.rs"]
mod rss;
use rss::peak_rss_bytes;

struct Args {
    items: u64,
    capacity: usize,
    workers: usize,
    sink_delay_us: u64,
    batch: usize,
    batch_delay_ms: u64,
    payload: usize,
}

fn parse() -> Result<Args, String> {
    let mut a = Args {
        items: 100_000,
        capacity: 64,
        workers: 2,
        sink_delay_us: 0,
        batch: 32,
        batch_delay_ms: 5,
        payload: 1024,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || {
            it.next()
                .ok_or_else(|| format!("{flag} needs a value"))?
                .parse::<u64>()
                .map_err(|e| format!("{flag}: {e}"))
        };
        match flag.as_str() {
            "--items" => a.items = value()?,
            "--capacity" => a.capacity = value()? as usize,
            "--workers" => a.workers = value()? as usize,
            "--sink-delay-us" => a.sink_delay_us = value()?,
            "--batch" => a.batch = value()? as usize,
            "--batch-delay-ms" => a.batch_delay_ms = value()?,
            "--payload-bytes" => a.payload = value()? as usize,
            "-h" | "--help" => {
                return Err("usage: pipeline_stress [--items N] [--capacity C] [--workers W] \
                            [--sink-delay-us D] [--batch B] [--batch-delay-ms MS] [--payload-bytes P]"
                    .into());
            }
            other => return Err(format!("unknown argument {other} (try --help)")),
        }
    }
    if a.capacity == 0 || a.workers == 0 || a.batch == 0 {
        return Err("--capacity, --workers and --batch must be at least 1".into());
    }
    Ok(a)
}

fn main() {
    let args = match parse() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("{e}");
            std::process::exit(2);
        }
    };
    let bar = ProgressBar::new(args.items).with_style(
        ProgressStyle::with_template("{bar:40} {pos}/{len} items {per_sec} eta {eta}")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    let payload = args.payload;
    let delay = Duration::from_micros(args.sink_delay_us);
    let sink_bar = bar.clone();
    let started = Instant::now();
    let run = Pipeline::builder()
        .with_capacity(args.capacity)
        .source(0..args.items)
        // every item owns a heap payload, so memory in flight shows in the RSS
        .map(
            "make",
            StageOptions::new().with_workers(args.workers),
            move |i: u64| {
                let mut v = vec![0_u8; payload];
                v[0] = i as u8;
                v
            },
        )
        .batch(
            "batch",
            BatchOptions::new(args.batch, Duration::from_millis(args.batch_delay_ms)),
        )
        .unbatch::<Vec<u8>>("unbatch")
        .sink(move |v: Vec<u8>| {
            std::hint::black_box(&v);
            if !delay.is_zero() {
                std::thread::sleep(delay);
            }
            sink_bar.inc(1);
            Ok::<(), std::convert::Infallible>(())
        });
    let bound = run.in_flight_bound();
    let report = match run.wait() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("pipeline failed: {e}");
            std::process::exit(1);
        }
    };
    bar.finish_and_clear();
    let seconds = started.elapsed().as_secs_f64();
    let stages: Vec<serde_json::Value> = report
        .metrics
        .stages
        .iter()
        .map(|s| {
            serde_json::json!({
                "stage": s.name, "kind": s.kind, "workers": s.workers,
                "received": s.received, "emitted": s.emitted, "errors": s.errors,
                "expired": s.expired, "cancelled": s.cancelled,
                "busy_s": s.busy.as_secs_f64(),
                "p99_latency_s": s.latency_quantile(0.99),
            })
        })
        .collect();
    let peak = report.metrics.peak_in_flight;
    println!(
        "{}",
        serde_json::json!({
            "items": report.items,
            "delivered": report.delivered,
            "peak_in_flight": peak,
            "bound": bound,
            "peak_rss_bytes": peak_rss_bytes(),
            "seconds": seconds,
            "items_per_s": report.delivered as f64 / seconds,
            "stages": stages,
        })
    );
    if peak > bound as i64 {
        eprintln!("peak in flight {peak} exceeded the bound {bound}");
        std::process::exit(1);
    }
}
