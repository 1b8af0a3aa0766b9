//! Pipeline overheads, against a bare crossbeam channel chain in the same run:
//! per item per hop with one worker; a CPU-bound stage on 1 and 2 workers; and the latency
//! a batcher adds (p99 against its max delay plus one batch's service time).
//!
//! ```text
//! cargo bench --bench pipeline
//! ```

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput};

mod common;
use common::{median, ratio};
use inferkit::pipeline::{BatchOptions, Pipeline, StageOptions};

const ITEMS: u64 = 100_000;
const CPU_ITEMS: u64 = 200;

/// About 140 µs of arithmetic (on the 2-core EPYC VM) that the optimiser cannot remove.
fn spin(x: u64) -> u64 {
    let mut h = x;
    for i in 0..600_000_u64 {
        h = h.wrapping_mul(6364136223846793005).wrapping_add(i);
    }
    h
}

/// Source thread -> relay thread -> this thread over bounded(64) channels: 2 hops.
fn bare_two_hops(n: u64) -> u64 {
    let (tx1, rx1) = crossbeam_channel::bounded::<u64>(64);
    let (tx2, rx2) = crossbeam_channel::bounded::<u64>(64);
    let src = std::thread::spawn(move || {
        for i in 0..n {
            tx1.send(i).unwrap();
        }
    });
    let relay = std::thread::spawn(move || {
        for v in rx1 {
            tx2.send(v + 1).unwrap();
        }
    });
    let s = rx2.iter().sum();
    src.join().unwrap();
    relay.join().unwrap();
    s
}

/// The same shape as a pipeline: source -> one-worker stage -> caller: 2 hops.
fn pipeline_two_hops(n: u64) -> u64 {
    let out = Pipeline::builder()
        .with_capacity(64)
        .source(0..n)
        .map("relay", StageOptions::new().with_workers(1), |v: u64| v + 1)
        .outputs();
    out.map(|(_, v)| v).sum()
}

fn cpu_stage(workers: usize) -> u64 {
    Pipeline::builder()
        .source(0..CPU_ITEMS)
        .map("cpu", StageOptions::new().with_workers(workers), spin)
        .outputs()
        .map(|(_, v)| v)
        .fold(0, u64::wrapping_add)
}

fn main() {
    let mut c = Criterion::default()
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(3))
        .configure_from_args();
    let mut g = c.benchmark_group("pipeline");
    g.sample_size(20);
    g.throughput(Throughput::Elements(ITEMS));
    g.bench_function("bare_crossbeam_2hops", |b| {
        b.iter(|| black_box(bare_two_hops(ITEMS)))
    });
    g.bench_function("pipeline_2hops", |b| {
        b.iter(|| black_box(pipeline_two_hops(ITEMS)))
    });
    g.throughput(Throughput::Elements(CPU_ITEMS));
    g.sample_size(10);
    g.bench_function("cpu_stage_1w", |b| b.iter(|| black_box(cpu_stage(1))));
    g.bench_function("cpu_stage_2w", |b| b.iter(|| black_box(cpu_stage(2))));
    g.finish();
    c.final_summary();
    let latency = batch_latency();
    report(latency);
}

/// Items every 100 µs into a batcher (32 items, max delay 2 ms) and a stage that takes
/// 1 ms per batch: the latency the batcher and the service add to each item, from when the
/// source sent it to the end of its batch's service.
fn batch_latency() -> (f64, f64, f64) {
    let max_delay = Duration::from_millis(2);
    let service = Duration::from_millis(1);
    let items = 2_000_u32;
    let source = (0..items).map(|_| {
        std::thread::sleep(Duration::from_micros(100));
        Instant::now()
    });
    let out = Pipeline::builder()
        .source(source)
        .batch("batch", BatchOptions::new(32, max_delay))
        .map(
            "serve",
            StageOptions::new().with_workers(1),
            move |b: Vec<Instant>| {
                let t = Instant::now();
                while t.elapsed() < service {
                    std::hint::spin_loop();
                }
                let done = Instant::now();
                b.into_iter()
                    .map(|created| (done - created).as_secs_f64())
                    .collect::<Vec<_>>()
            },
        )
        .unbatch::<f64>("unbatch")
        .outputs();
    let mut lat: Vec<f64> = out.map(|(_, l)| l).collect();
    lat.sort_by(f64::total_cmp);
    let p = |q: f64| lat[((lat.len() - 1) as f64 * q) as usize];
    (p(0.5), p(0.99), (max_delay + service).as_secs_f64())
}

fn report((p50, p99, limit): (f64, f64, f64)) {
    let per = |id: &str, n: u64, hops: u64| median("pipeline", id).map(|s| s / (n * hops) as f64);
    let ns = |v: Option<f64>| v.map_or("-".into(), |v| format!("{:.0} ns", v * 1e9));
    let bare = per("bare_crossbeam_2hops", ITEMS, 2);
    let ours = per("pipeline_2hops", ITEMS, 2);
    println!("\npipeline: medians of this run, one machine");
    println!("| measure | inferkit | bare crossbeam | ratio | target |");
    println!("|---|---|---|---|---|");
    println!(
        "| per item per hop, 1 worker | {} | {} | {} | <= 1 µs |",
        ns(ours),
        ns(bare),
        ratio(ours, bare, 2)
    );
    let tput = |id: &str| median("pipeline", id).map(|s| CPU_ITEMS as f64 / s);
    println!(
        "| CPU-bound stage (~140 µs/item), 2 workers vs 1 | {} vs {} items/s | | {} | >= 1.8x |",
        tput("cpu_stage_2w").map_or("-".into(), |v| format!("{v:.0}")),
        tput("cpu_stage_1w").map_or("-".into(), |v| format!("{v:.0}")),
        ratio(tput("cpu_stage_2w"), tput("cpu_stage_1w"), 2)
    );
    println!(
        "| batcher (32 items, 2 ms) + 1 ms service: p50 / p99 latency | {:.2} / {:.2} ms | | | p99 <= {:.1} ms |",
        p50 * 1e3,
        p99 * 1e3,
        limit * 1e3
    );
}
