//! Fault tests: what happens to a pipeline, a checkpoint reader and the server when things go
//! wrong. Each asserts on counts, identities and heap bytes, never on time.
//!
//! | fault | where |
//! |---|---|
//! | a slow consumer: memory stays bounded | [`a_slow_consumer_keeps_memory_bounded`] |
//! | a stage failing 1 item in 100 under the skip policy | [`one_failure_in_a_hundred_is_reported_exactly`] |
//! | a stage that panics | [`a_panicking_stage_under_skip_loses_only_its_item`] (and `tests/pipeline.rs`) |
//! | cancellation during batching | [`cancelling_while_a_batch_is_filling_accounts_for_it`] |
//! | deadlines expiring in a queue | [`deadlines_expire_while_queued_behind_a_slow_stage`] |
//! | a checkpoint replaced while another process reads it | [`a_checkpoint_replaced_under_a_reader_in_another_process`] |
//! | a client that disconnects mid-request | `tests/serve.rs`: `a_client_that_disconnects_cancels_its_queued_request` |
//! | a server under 4x its queue capacity | [`a_server_at_four_times_its_queue_answers_503_with_flat_memory`] |
//!
//! The heap is counted by this binary's global allocator (live bytes, process-wide), so the
//! tests here take one lock and run one at a time.

use inferkit_serve as app;
#[path = "common/serve_support.rs"]
#[allow(dead_code)]
mod serve_support;

use std::alloc::{GlobalAlloc, Layout, System};
use std::collections::BTreeSet;
use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use inferkit::pipeline::{BatchOptions, ErrorPolicy, Input, Pipeline, StageOptions};
use inferkit::weights::{Checkpoint, TensorBytes, save};
use serde_json::{Value, json};

// ---------------------------------------------------------------------------------------------
// Heap accounting

struct Counting;

static LIVE: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

fn grew(n: usize) {
    let now = LIVE.fetch_add(n, Ordering::Relaxed) + n;
    PEAK.fetch_max(now, Ordering::Relaxed);
}

// SAFETY: forwards every call to the system allocator unchanged; only keeps a count of the
// live bytes (and their peak) on the side.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: same contract as the caller's.
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            grew(layout.size());
        }
        p
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: same contract as the caller's.
        let p = unsafe { System.alloc_zeroed(layout) };
        if !p.is_null() {
            grew(layout.size());
        }
        p
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
        // SAFETY: same contract as the caller's.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: same contract as the caller's.
        let p = unsafe { System.realloc(ptr, layout, new_size) };
        if !p.is_null() {
            LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
            grew(new_size);
        }
        p
    }
}

#[global_allocator]
static ALLOC: Counting = Counting;

/// Live heap bytes now.
fn live() -> usize {
    LIVE.load(Ordering::Relaxed)
}

/// Starts a new peak at the live bytes now.
fn reset_peak() {
    PEAK.store(live(), Ordering::Relaxed);
}

fn peak() -> usize {
    PEAK.load(Ordering::Relaxed)
}

/// One test at a time: the heap counts are process-wide.
fn serial() -> MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    LOCK.lock().unwrap_or_else(|e| e.into_inner())
}

const MIB: usize = 1 << 20;

// ---------------------------------------------------------------------------------------------
// Pipeline

#[test]
fn a_slow_consumer_keeps_memory_bounded() {
    let _g = serial();
    // 2,000 items of 256 KiB each (500 MiB in all) from an instant source into a sink that
    // takes 100 µs an item: the queues fill and the source must wait.
    const ITEM: usize = 256 * 1024;
    let before = live();
    reset_peak();
    let run = Pipeline::builder()
        .with_capacity(4)
        .source((0..2000_u32).map(|i| vec![i as u8; ITEM]))
        .map(
            "touch",
            StageOptions::new().with_workers(2).with_capacity(4),
            |mut v: Vec<u8>| {
                v[0] = v[0].wrapping_add(1);
                v
            },
        )
        .sink(|v: Vec<u8>| {
            std::thread::sleep(Duration::from_micros(100));
            assert_eq!(v.len(), ITEM);
            Ok::<(), std::convert::Infallible>(())
        });
    let bound = run.in_flight_bound() as usize;
    let report = run.wait().unwrap();
    assert_eq!(report.delivered, 2000);
    // Items alive at once: the in-flight bound plus the one the source is making, the ones
    // in the workers' and the sink's hands. 1 MiB covers the threads and channels themselves.
    let allowed = (bound + 4) * ITEM + MIB;
    let used = peak() - before;
    assert!(
        used <= allowed,
        "peak heap {used} B over {allowed} B ({bound} items in flight at most)"
    );
    assert!(report.metrics.peak_in_flight as usize <= bound);
}

#[test]
fn one_failure_in_a_hundred_is_reported_exactly() {
    let _g = serial();
    let letters = Arc::new(Mutex::new(Vec::new()));
    let l = Arc::clone(&letters);
    let delivered = Arc::new(Mutex::new(Vec::new()));
    let d = Arc::clone(&delivered);
    let fails = |x: u64| x % 100 == 37;
    let report = Pipeline::builder()
        .with_policy(ErrorPolicy::Skip)
        .with_dead_letter(move |letter| l.lock().unwrap().push((letter.item, letter.stage)))
        .source(0..10_000_u64)
        .stage(
            "flaky",
            StageOptions::new().with_workers(2),
            move |x: u64| {
                if fails(x) {
                    Err(format!("item {x} refused"))
                } else {
                    Ok(x * 3)
                }
            },
        )
        .sink(move |y: u64| {
            d.lock().unwrap().push(y);
            Ok::<(), std::convert::Infallible>(())
        })
        .wait()
        .unwrap();
    assert_eq!(
        (report.items, report.delivered, report.failed),
        (10_000, 9_900, 100)
    );
    let failed: BTreeSet<u64> = letters
        .lock()
        .unwrap()
        .iter()
        .map(|(item, stage)| {
            assert_eq!(stage, "flaky");
            *item
        })
        .collect();
    assert_eq!(failed, (0..10_000).filter(|&x| fails(x)).collect());
    // every other item arrived, once, with its own value
    let mut got = delivered.lock().unwrap().clone();
    got.sort_unstable();
    let want: Vec<u64> = (0..10_000).filter(|&x| !fails(x)).map(|x| x * 3).collect();
    assert_eq!(got, want);
}

#[test]
fn a_panicking_stage_under_skip_loses_only_its_item() {
    let _g = serial();
    let letters = Arc::new(Mutex::new(Vec::new()));
    let l = Arc::clone(&letters);
    let out = Pipeline::builder()
        .with_policy(ErrorPolicy::Skip)
        .with_dead_letter(move |letter| l.lock().unwrap().push(letter.error.to_string()))
        .source(0..1000_u64)
        .map(
            "explode",
            StageOptions::new().with_workers(3).with_ordered(true),
            |x: u64| {
                assert!(x % 250 != 99, "exploded on {x}");
                x + 1
            },
        )
        .collect()
        .unwrap();
    // the other 996 in input order, the workers still alive after each panic
    let want: Vec<u64> = (0..1000).filter(|x| x % 250 != 99).map(|x| x + 1).collect();
    assert_eq!(out.values(), want);
    let mut letters = letters.lock().unwrap().clone();
    letters.sort();
    assert_eq!(letters.len(), 4);
    assert!(letters.iter().all(|m| m.contains("explode")), "{letters:?}");
    assert!(
        [99, 349, 599, 849].iter().all(|i| letters
            .iter()
            .any(|m| m.contains(&format!("exploded on {i}")))),
        "{letters:?}"
    );
    assert_eq!(out.report.failed, 4);
}

#[test]
fn cancelling_while_a_batch_is_filling_accounts_for_it() {
    let _g = serial();
    let delivered = Arc::new(AtomicUsize::new(0));
    let d = Arc::clone(&delivered);
    // A batch of up to 100 that waits an hour: only cancellation can end it.
    let (submitter, flow) = Pipeline::builder().with_capacity(8).submitter::<u32>();
    let run = flow
        .batch("batch", BatchOptions::new(100, Duration::from_secs(3600)))
        .sink(move |b: Vec<u32>| {
            d.fetch_add(b.len(), Ordering::Relaxed);
            Ok::<(), std::convert::Infallible>(())
        });
    for i in 0..7 {
        submitter
            .submit_timeout(Input::new(i), Duration::from_secs(30))
            .unwrap();
    }
    let metrics = run.metrics();
    let start = Instant::now();
    while metrics.snapshot().stage("batch").unwrap().received < 7 {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "batcher never took the items"
        );
        std::thread::sleep(Duration::from_millis(1));
    }
    // The input is still open and the batch is neither full nor due.
    run.cancel();
    let report = run.wait().unwrap();
    assert!(report.cancelled);
    assert_eq!(delivered.load(Ordering::Relaxed), 0);
    assert_eq!(report.delivered, 0);
    let batch = report.metrics.stage("batch").unwrap();
    assert_eq!((batch.received, batch.cancelled), (7, 7));
    assert_eq!(report.metrics.in_flight, 0);
    // the submitter outliving the run is fine: the queue is closed
    assert!(submitter.try_submit(Input::new(7)).unwrap_err().is_closed());
}

#[test]
fn deadlines_expire_while_queued_behind_a_slow_stage() {
    let _g = serial();
    // 40 items with a deadline 100 ms ahead, behind a stage that takes 20 ms each on one
    // worker: the first few make it, the rest expire in the queue and are never run.
    let t0 = Instant::now();
    let inputs: Vec<Input<u64>> = (0..40)
        .map(|i| Input::new(i).with_deadline(t0 + Duration::from_millis(100)))
        .collect();
    let ran = Arc::new(Mutex::new(Vec::new()));
    let r = Arc::clone(&ran);
    let delivered = Arc::new(Mutex::new(Vec::new()));
    let d = Arc::clone(&delivered);
    let report = Pipeline::builder()
        .inputs(inputs)
        .map(
            "slow",
            StageOptions::new().with_workers(1),
            move |x: u64| {
                r.lock().unwrap().push(x);
                std::thread::sleep(Duration::from_millis(20));
                x
            },
        )
        .sink(move |x: u64| {
            d.lock().unwrap().push(x);
            Ok::<(), std::convert::Infallible>(())
        })
        .wait()
        .unwrap();
    let ran = ran.lock().unwrap().clone();
    let delivered: BTreeSet<u64> = delivered.lock().unwrap().iter().copied().collect();
    let expired: BTreeSet<u64> = report.expired.iter().copied().collect();
    // 100 ms holds at most 6 runs of 20 ms; the rest (at least 34) expired in the queue.
    assert!(ran.len() <= 6, "{} items ran", ran.len());
    assert!(expired.len() >= 34, "{expired:?}");
    // Every item is delivered or reported expired (one that ran can still expire before the
    // sink), never both, never lost.
    assert!(delivered.is_disjoint(&expired));
    assert_eq!(delivered.len() + expired.len(), 40);
    assert!(delivered.iter().all(|x| ran.contains(x)));
    assert_eq!(report.delivered as usize, delivered.len());
    assert_eq!(report.metrics.in_flight, 0);
}

// ---------------------------------------------------------------------------------------------
// Checkpoint replaced under a reader

/// The two versions of the file: (version, element count). Different lengths, neither a
/// multiple of the writer's chunk.
const VERSIONS: [(f32, usize); 2] = [(1.0, 2_000_003), (2.0, 1_500_007)];

fn checkpoint_bytes(version: f32, n: usize, dir: &Path) -> Vec<u8> {
    let data = ndarray::Array1::from_elem(n, version);
    let p = dir.join(format!("v{version}.safetensors"));
    save(
        &p,
        [("w", TensorBytes::from_array(data.view()))],
        Some([("version".to_string(), version.to_string())].into()),
    )
    .unwrap();
    std::fs::read(&p).unwrap()
}

/// The reader process: `Checkpoint::read` in a loop until the stop file appears. Each read is
/// either a whole version (every value equal to the version in the metadata, the length
/// that version has) or an error naming the file; anything else panics (exit status 101).
fn reader_process(path: &Path) {
    let stop = path.with_extension("stop");
    let (mut whole, mut errors) = ([0usize; 2], 0usize);
    let mut reasons = BTreeSet::new();
    while !stop.exists() {
        match Checkpoint::read(path) {
            Ok(ck) => {
                let v: f32 = ck.metadata()["version"].parse().unwrap();
                let idx = VERSIONS.iter().position(|(x, _)| *x == v).unwrap();
                let w = ck.tensor("w").unwrap().to_f32();
                assert_eq!(w.len(), VERSIONS[idx].1, "torn read: wrong length");
                assert!(w.iter().all(|x| *x == v), "torn read: mixed values");
                whole[idx] += 1;
            }
            Err(e) => {
                let msg = e.to_string();
                assert!(
                    msg.contains("ckpt.safetensors"),
                    "error without the file: {msg}"
                );
                // the reason, numbers left out
                let reason = msg.split(": ").last().unwrap_or("");
                reasons.insert(
                    reason
                        .replace(|c: char| c.is_ascii_digit(), "")
                        .replace("  ", " "),
                );
                errors += 1;
            }
        }
    }
    println!(
        "READER whole_a={} whole_b={} errors={errors} reasons={reasons:?}",
        whole[0], whole[1]
    );
}

#[test]
fn a_checkpoint_replaced_under_a_reader_in_another_process() {
    if let Some(path) = std::env::var_os("INFERKIT_FAULT_READER") {
        reader_process(Path::new(&path));
        return;
    }
    let _g = serial();
    let dir = tempfile::tempdir().unwrap();
    let files: Vec<Vec<u8>> = VERSIONS
        .iter()
        .map(|(v, n)| checkpoint_bytes(*v, *n, dir.path()))
        .collect();
    let path = dir.path().join("ckpt.safetensors");
    std::fs::write(&path, &files[0]).unwrap();
    let child = Command::new(std::env::current_exe().unwrap())
        .args([
            "a_checkpoint_replaced_under_a_reader_in_another_process",
            "--exact",
            "--nocapture",
            "--test-threads=1",
        ])
        .env("INFERKIT_FAULT_READER", &path)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // 120 replacements, alternating: in place (truncate, then 64 KiB writes: the reader can
    // meet any prefix) and by rename (a finished file moved over the old one).
    for round in 0..120 {
        let bytes = &files[round % 2];
        if round % 4 < 2 {
            let mut f = std::fs::OpenOptions::new()
                .write(true)
                .truncate(true)
                .open(&path)
                .unwrap();
            for chunk in bytes.chunks(64 * 1024) {
                f.write_all(chunk).unwrap();
            }
        } else {
            let tmp = dir.path().join("ckpt.tmp");
            std::fs::write(&tmp, bytes).unwrap();
            std::fs::rename(&tmp, &path).unwrap();
        }
        // a version stays a while, so readers also see whole ones
        std::thread::sleep(Duration::from_millis(10));
    }
    std::fs::write(path.with_extension("stop"), b"").unwrap();
    let out = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "reader process failed ({:?}):\n{stdout}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    // libtest prints the test's name on the same line as its output
    let line = stdout
        .lines()
        .find_map(|l| l.find("READER").map(|i| &l[i..]))
        .unwrap_or_else(|| panic!("no summary from the reader:\n{stdout}"));
    eprintln!("{line}");
    let count = |key: &str| -> usize {
        line.split_whitespace()
            .find_map(|w| w.strip_prefix(key))
            .unwrap()
            .parse()
            .unwrap()
    };
    // It read both versions whole while they were being replaced.
    assert!(count("whole_a=") > 0 && count("whole_b=") > 0, "{line}");
}

// ---------------------------------------------------------------------------------------------
// Server under load

#[test]
fn a_server_at_four_times_its_queue_answers_503_with_flat_memory() {
    let _g = serial();
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(4)
        .enable_all()
        .build()
        .unwrap()
        .block_on(overload());
}

async fn overload() {
    const QUEUE: usize = 4;
    let (app, base, _) = serve_support::slow_server(QUEUE).await;
    // 4,096 rows a request (~70 KB of JSON in, as much out): a request kept anywhere after
    // its answer would show in the heap.
    let rows = 4096;
    let data: Vec<f32> = (0..2 * rows).map(|i| (i % 97) as f32).collect();
    let body =
        json!({"inputs": [{"name": "x", "shape": [rows, 2], "datatype": "FP32", "data": data}]});
    let c = reqwest::Client::new();
    let mut after_round = Vec::new();
    let mut peaks = Vec::new();
    let (mut ok, mut refused) = (0, 0);
    for _round in 0..16 {
        reset_peak();
        let tasks: Vec<_> = (0..4 * QUEUE)
            .map(|_| {
                let (c, url, body) = (
                    c.clone(),
                    format!("{base}/v2/models/slow/infer"),
                    body.clone(),
                );
                tokio::spawn(async move {
                    let r = c.post(url).json(&body).send().await.unwrap();
                    let status = r.status().as_u16();
                    let retry = r.headers().contains_key("retry-after");
                    (status, retry, r.json::<Value>().await.unwrap())
                })
            })
            .collect();
        for t in tasks {
            match t.await.unwrap() {
                (200, _, v) => {
                    let y = &v["outputs"][0]["data"];
                    assert_eq!(y.as_array().unwrap().len(), 2 * rows);
                    assert_eq!(y[3].as_f64(), Some(6.0));
                    ok += 1;
                }
                (503, retry, v) => {
                    assert!(retry, "503 without Retry-After");
                    assert!(v["error"].as_str().unwrap().contains("queue full"), "{v}");
                    refused += 1;
                }
                (s, _, v) => panic!("status {s}: {v}"),
            }
        }
        peaks.push(peak());
        after_round.push(live());
    }
    // Refused beyond the queue, served within it; the server still answers.
    assert!(
        refused >= 16 * (4 * QUEUE - QUEUE - 1) / 2,
        "{ok} ok, {refused} refused"
    );
    assert!(ok >= 16 * QUEUE / 2, "{ok} ok, {refused} refused");
    let health = c
        .get(format!("{base}/v2/health/ready"))
        .send()
        .await
        .unwrap();
    assert_eq!(health.status(), 200);
    // Flat: the connections' buffers reach their working size within a few rounds (measured:
    // the live heap levels off by the 8th); after that, 8 more rounds (128 requests, each
    // ~70 KB of JSON: keeping any one would show) leave the live heap within 1 MiB of rounds
    // 4-7 and the peak within 10% of theirs.
    eprintln!("live after each round {after_round:?}, peaks {peaks:?}");
    let max = |v: &[usize]| v.iter().copied().max().unwrap();
    let (warm_live, warm_peak) = (max(&after_round[4..8]), max(&peaks[4..8]));
    let (live_later, peak_later) = (max(&after_round[8..]), max(&peaks[8..]));
    assert!(
        live_later <= warm_live + MIB,
        "live heap grew: {warm_live} -> {live_later} B"
    );
    assert!(
        peak_later as f64 <= 1.1 * warm_peak as f64,
        "peak heap grew: {warm_peak} -> {peak_later} B"
    );
    drop(app);
}
