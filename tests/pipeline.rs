//! The pipeline's behaviour: backpressure, order, batching, deadlines, cancellation, error
//! policies, panics, Prometheus output and log redaction. Every test asserts on counts or
//! order, never on time.

#[path = "common/log.rs"]
mod log;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use inferkit::pipeline::{
    BatchOptions, CancelToken, Error, ErrorPolicy, Input, Pipeline, Redact, StageOptions,
};
use log::Buf;

type Never = std::convert::Infallible;

/// A deterministic pseudo-random cost in microseconds for item `i`.
fn cost_us(i: u64) -> u64 {
    let mut x = i.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ 0xD1B5_4A32_D192_ED03;
    x ^= x >> 29;
    x % 300
}

#[test]
fn backpressure_keeps_in_flight_within_the_bound() {
    // The source is instant; the sink takes 200 µs an item (over 100x slower).
    let run = Pipeline::builder()
        .with_capacity(4)
        .source(0..1500_u64)
        .map(
            "work",
            StageOptions::new().with_workers(2).with_capacity(4),
            |x: u64| x + 1,
        )
        .sink(|_x: u64| {
            std::thread::sleep(Duration::from_micros(200));
            Ok::<(), Never>(())
        });
    let bound = run.in_flight_bound();
    let report = run.wait().unwrap();
    // source 1 + 4, two workers + 4, sink 1
    assert_eq!(bound, 12);
    assert_eq!(report.delivered, 1500);
    let peak = report.metrics.peak_in_flight;
    assert!(peak <= bound as i64, "peak {peak} over the bound {bound}");
    // The queues did fill up (the sink was the bottleneck), so the bound was what held.
    assert!(peak >= 8, "peak {peak}: the queues never filled");
    assert_eq!(report.metrics.in_flight, 0);
}

#[test]
fn ordered_stage_keeps_input_order_with_four_workers() {
    let out = Pipeline::builder()
        .source(0..400_u64)
        .map(
            "shuffle",
            StageOptions::new().with_workers(4).with_ordered(true),
            |x: u64| {
                std::thread::sleep(Duration::from_micros(cost_us(x)));
                x * 10
            },
        )
        .collect()
        .unwrap();
    let values = out.values();
    assert_eq!(values, (0..400).map(|x| x * 10).collect::<Vec<_>>());
    let ids: Vec<u64> = out.items.iter().map(|(id, _)| *id).collect();
    assert_eq!(ids, (0..400).collect::<Vec<_>>());
    let work = out.report.metrics.stage("shuffle").unwrap().clone();
    assert_eq!((work.received, work.emitted, work.workers), (400, 400, 4));
}

#[test]
fn unordered_stage_delivers_everything_once() {
    let out = Pipeline::builder()
        .source(0..400_u64)
        .map("shuffle", StageOptions::new().with_workers(4), |x: u64| {
            std::thread::sleep(Duration::from_micros(cost_us(x)));
            x
        })
        .collect()
        .unwrap();
    let mut v = out.values();
    v.sort_unstable();
    assert_eq!(v, (0..400).collect::<Vec<_>>());
}

#[test]
fn batcher_flushes_by_size_and_at_end_of_input() {
    let out = Pipeline::builder()
        .source(0..10_u32)
        .batch("batch", BatchOptions::new(4, Duration::from_secs(3600)))
        .collect()
        .unwrap();
    assert_eq!(
        out.values(),
        vec![vec![0, 1, 2, 3], vec![4, 5, 6, 7], vec![8, 9]]
    );
    // a batch's id is its first member's
    assert_eq!(
        out.items.iter().map(|(id, _)| *id).collect::<Vec<_>>(),
        vec![0, 4, 8]
    );
}

#[test]
fn batcher_flushes_a_partial_batch_on_delay() {
    let (submitter, flow) = Pipeline::builder().submitter::<u32>();
    let mut outputs = flow
        .batch("batch", BatchOptions::new(100, Duration::from_millis(20)))
        .outputs();
    for i in 0..3 {
        submitter.try_submit(Input::new(i)).unwrap();
    }
    // The input is still open: only the delay can send this batch. A watchdog cancels the
    // run if it never comes, so a broken batcher fails the test instead of hanging it.
    let watchdog = {
        let m = outputs.metrics();
        let cancel = CancelToken::new();
        let c = cancel.clone();
        let h = std::thread::spawn(move || {
            let start = Instant::now();
            while !c.is_cancelled() && start.elapsed() < Duration::from_secs(20) {
                std::thread::sleep(Duration::from_millis(5));
            }
            m.snapshot()
        });
        (cancel, h)
    };
    let first = outputs.next();
    watchdog.0.cancel();
    watchdog.1.join().unwrap();
    assert_eq!(first.map(|(_, b)| b), Some(vec![0, 1, 2]));
    for i in 3..5 {
        submitter.try_submit(Input::new(i)).unwrap();
    }
    drop(submitter);
    let rest: Vec<Vec<u32>> = outputs.by_ref().map(|(_, b)| b).collect();
    assert_eq!(rest, vec![vec![3, 4]]);
    let report = outputs.finish().unwrap();
    assert!(!report.cancelled);
}

#[test]
fn unbatch_restores_item_ids() {
    let out = Pipeline::builder()
        .source(0..23_u64)
        .batch("batch", BatchOptions::new(5, Duration::from_secs(3600)))
        .map(
            "double",
            StageOptions::new().with_workers(2).with_ordered(true),
            |b: Vec<u64>| b.into_iter().map(|x| 2 * x).collect::<Vec<_>>(),
        )
        .unbatch::<u64>("unbatch")
        .collect()
        .unwrap();
    for (id, v) in &out.items {
        assert_eq!(*v, 2 * id);
    }
    assert_eq!(out.items.len(), 23);
    assert_eq!(out.report.metrics.in_flight, 0);
}

#[test]
fn expired_items_are_not_processed_and_are_reported() {
    let processed = Arc::new(Mutex::new(Vec::new()));
    let seen = processed.clone();
    let now = Instant::now();
    let inputs: Vec<Input<u64>> = (0..20)
        .map(|i| {
            let deadline = if i == 3 || i == 11 {
                now // already passed when the stage looks
            } else {
                now + Duration::from_secs(3600)
            };
            Input::new(i).with_deadline(deadline)
        })
        .collect();
    let report = Pipeline::builder()
        .inputs(inputs)
        .map(
            "work",
            StageOptions::new().with_workers(2),
            move |x: u64| {
                seen.lock().unwrap().push(x);
                x
            },
        )
        .sink(|_x: u64| Ok::<(), Never>(()))
        .wait()
        .unwrap();
    assert_eq!(report.expired, vec![3, 11]);
    assert_eq!(report.delivered, 18);
    let mut p = processed.lock().unwrap().clone();
    p.sort_unstable();
    assert!(!p.contains(&3) && !p.contains(&11) && p.len() == 18);
    assert_eq!(report.metrics.stage("work").unwrap().expired, 2);
}

#[test]
fn cancelling_stops_an_endless_run() {
    let (count_tx, count_rx) = crossbeam_channel::unbounded();
    let run = Pipeline::builder()
        .with_capacity(8)
        .source(0_u64..) // endless
        .map("work", StageOptions::new().with_workers(2), |x: u64| x)
        .sink(move |x: u64| {
            let _ = count_tx.send(x);
            Ok::<(), Never>(())
        });
    for _ in 0..200 {
        count_rx.recv().unwrap();
    }
    run.cancel();
    let report = run.wait().unwrap();
    assert!(report.cancelled);
    assert!(report.delivered >= 200);
    // Bounded: what the source sent is what was delivered plus at most the bound.
    assert!(report.items <= report.delivered + 30, "{report:?}");
}

#[test]
fn dropping_the_run_cancels_and_joins() {
    let run = Pipeline::builder()
        .source(0_u64..)
        .map("work", StageOptions::new().with_workers(2), |x: u64| x)
        .sink(|_x: u64| Ok::<(), Never>(()));
    let metrics = run.metrics();
    drop(run); // must return (cancel + join), not hang
    let s = metrics.snapshot();
    let work = s.stage("work").unwrap();
    assert!(work.received >= work.emitted);
}

#[test]
fn fail_fast_returns_the_first_error_with_stage_and_item() {
    let result = Pipeline::builder()
        .source(0..1000_u64)
        .stage("check", StageOptions::new().with_workers(1), |x: u64| {
            if x == 7 {
                Err(format!("bad value {x}"))
            } else {
                Ok(x)
            }
        })
        .sink(|_x: u64| Ok::<(), Never>(()))
        .wait();
    match result {
        Err(Error::Stage {
            stage,
            item,
            source,
        }) => {
            assert_eq!((stage.as_str(), item), ("check", 7));
            assert_eq!(source.to_string(), "bad value 7");
        }
        other => panic!("expected a stage error, got {other:?}"),
    }
}

#[test]
fn skip_policy_counts_and_dead_letters_failures() {
    let dead = Arc::new(Mutex::new(Vec::new()));
    let d = dead.clone();
    let report = Pipeline::builder()
        .with_policy(ErrorPolicy::Skip)
        .with_dead_letter(move |letter| {
            d.lock()
                .unwrap()
                .push((letter.item, letter.stage, letter.error.to_string()))
        })
        .source(0..100_u64)
        .stage("check", StageOptions::new().with_workers(3), |x: u64| {
            if x.is_multiple_of(10) {
                Err("multiple of ten")
            } else {
                Ok(x)
            }
        })
        .sink(|_x: u64| Ok::<(), Never>(()))
        .wait()
        .unwrap();
    assert_eq!(
        (report.items, report.delivered, report.failed),
        (100, 90, 10)
    );
    let mut letters = dead.lock().unwrap().clone();
    letters.sort();
    assert_eq!(
        letters.iter().map(|l| l.0).collect::<Vec<_>>(),
        (0..10).map(|i| i * 10).collect::<Vec<_>>()
    );
    assert!(
        letters
            .iter()
            .all(|l| l.1 == "check" && l.2.contains("multiple of ten"))
    );
    assert_eq!(report.metrics.stage("check").unwrap().errors, 10);
}

#[test]
fn a_panicking_stage_becomes_an_error_not_a_hang() {
    let result = Pipeline::builder()
        .source(0..50_u64)
        .map("explode", StageOptions::new().with_workers(2), |x: u64| {
            if x == 3 {
                panic!("boom on {x}");
            }
            x
        })
        .sink(|_x: u64| Ok::<(), Never>(()))
        .wait();
    match result {
        Err(Error::Panic {
            stage,
            item,
            message,
        }) => {
            assert_eq!((stage.as_str(), item), ("explode", 3));
            assert!(message.contains("boom on 3"), "{message}");
        }
        other => panic!("expected a panic error, got {other:?}"),
    }
    // Under Skip the panic is a dead letter and the rest goes on.
    let letters = Arc::new(Mutex::new(Vec::new()));
    let l = letters.clone();
    let report = Pipeline::builder()
        .with_policy(ErrorPolicy::Skip)
        .with_dead_letter(move |d| l.lock().unwrap().push(d))
        .source(0..50_u64)
        .map("explode", StageOptions::new().with_workers(2), |x: u64| {
            assert!(x != 3, "boom");
            x
        })
        .sink(|_x: u64| Ok::<(), Never>(()))
        .wait()
        .unwrap();
    assert_eq!((report.delivered, report.failed), (49, 1));
    let letters = letters.lock().unwrap();
    assert!(matches!(letters[0].error, Error::Panic { item: 3, .. }));
}

#[test]
fn a_panicking_sink_is_an_error_too() {
    let result = Pipeline::builder()
        .source(0..10_u64)
        .sink(|x: u64| {
            assert!(x < 5, "sink gave up");
            Ok::<(), Never>(())
        })
        .wait();
    assert!(
        matches!(result, Err(Error::Panic { ref stage, item: 5, .. }) if stage == "sink"),
        "{result:?}"
    );
}

#[test]
fn zero_workers_is_a_configuration_error() {
    let result = Pipeline::builder()
        .source(0..10_u64)
        .map("none", StageOptions::new().with_workers(0), |x: u64| x)
        .sink(|_x: u64| Ok::<(), Never>(()))
        .wait();
    assert!(
        matches!(result, Err(Error::Config { ref stage, option: "workers", .. }) if stage == "none"),
        "{result:?}"
    );
}

#[test]
fn a_stage_can_own_a_rayon_pool() {
    let out = Pipeline::builder()
        .source(0..8_u64)
        .map(
            "par",
            StageOptions::new().with_workers(1).with_rayon_threads(2),
            |x: u64| {
                use rayon::prelude::*;
                let in_pool = rayon::current_num_threads();
                let s: u64 = (0..1000_u64).into_par_iter().map(|i| i * x).sum();
                (s, in_pool)
            },
        )
        .collect()
        .unwrap();
    for (id, (s, threads)) in &out.items {
        assert_eq!(*s, id * 999 * 1000 / 2);
        assert_eq!(*threads, 2, "the closure ran in the stage's own pool");
    }
}

#[test]
fn prometheus_text_parses_with_a_real_parser() {
    let out = Pipeline::builder()
        .with_policy(ErrorPolicy::Skip)
        .source(0..30_u64)
        .stage("odd-one", StageOptions::new().with_workers(2), |x: u64| {
            if x.is_multiple_of(3) {
                Err("no")
            } else {
                Ok(x)
            }
        })
        .batch("batch", BatchOptions::new(4, Duration::from_secs(3600)))
        .collect()
        .unwrap();
    let text = out.report.metrics.to_prometheus();
    // (prometheus-parse does not unescape label values, so the escaping is checked apart:
    // see `prometheus_label_values_are_escaped`.)
    let lines = text.lines().map(|l| Ok(l.to_string()));
    let scrape = prometheus_parse::Scrape::parse(lines).expect("valid exposition format");
    let value = |name: &str, stage: &str| {
        scrape
            .samples
            .iter()
            .find(|s| s.metric == name && s.labels.get("stage") == Some(stage))
            .map(|s| match s.value {
                prometheus_parse::Value::Counter(v)
                | prometheus_parse::Value::Gauge(v)
                | prometheus_parse::Value::Untyped(v) => v,
                _ => f64::NAN,
            })
    };
    assert_eq!(
        value("inferkit_pipeline_received_total", "odd-one"),
        Some(30.0)
    );
    assert_eq!(
        value("inferkit_pipeline_errors_total", "odd-one"),
        Some(10.0)
    );
    assert_eq!(
        value("inferkit_pipeline_emitted_total", "odd-one"),
        Some(20.0)
    );
    assert_eq!(value("inferkit_pipeline_emitted_total", "batch"), Some(5.0));
    assert_eq!(
        value("inferkit_pipeline_received_total", "source"),
        Some(30.0)
    );
    // help and type lines for every family
    assert!(
        scrape
            .docs
            .contains_key("inferkit_pipeline_latency_seconds")
    );
    let hist = scrape
        .samples
        .iter()
        .find(|s| {
            s.metric == "inferkit_pipeline_latency_seconds"
                && s.labels.get("stage") == Some("odd-one")
        })
        .expect("latency histogram");
    match &hist.value {
        prometheus_parse::Value::Histogram(buckets) => {
            assert_eq!(buckets.last().unwrap().count, 30.0);
            assert!(buckets.windows(2).all(|w| w[0].count <= w[1].count));
        }
        v => panic!("not a histogram: {v:?}"),
    }
}

#[test]
fn redaction_hides_named_fields_and_keeps_the_rest() {
    let buf = Buf::default();
    let w = buf.clone();
    let subscriber = tracing_subscriber::fmt()
        .fmt_fields(Redact::default().with_field("api_key"))
        .with_writer(move || w.clone())
        .with_ansi(false)
        .finish();
    tracing::subscriber::with_default(subscriber, || {
        let span = tracing::info_span!("request", user = "ada", authorization = "Bearer abc");
        let _e = span.enter();
        tracing::info!(
            token = "tok-123",
            prompt = %"tell me a secret",
            Password = "hunter2",
            api_key = "k-9",
            model = "resnet",
            latency_ms = 12.5,
            "served"
        );
    });
    let out = String::from_utf8(buf.0.lock().unwrap().clone()).unwrap();
    for secret in [
        "tok-123",
        "tell me a secret",
        "hunter2",
        "k-9",
        "Bearer abc",
    ] {
        assert!(!out.contains(secret), "{secret} leaked: {out}");
    }
    for kept in [
        "served",
        "model=\"resnet\"",
        "latency_ms=12.5",
        "user=\"ada\"",
        "token=[REDACTED]",
        "prompt=[REDACTED]",
        "Password=[REDACTED]",
        "api_key=[REDACTED]",
        "authorization=[REDACTED]",
    ] {
        assert!(out.contains(kept), "{kept} missing: {out}");
    }
}

#[test]
fn json_redaction_writes_parseable_lines_without_the_secrets() {
    let buf = Buf::default();
    let w = buf.clone();
    let subscriber = tracing_subscriber::fmt()
        .fmt_fields(Redact::default())
        .event_format(Redact::default().with_field("api_key").json())
        .with_writer(move || w.clone())
        .finish();
    tracing::subscriber::with_default(subscriber, || {
        let span = tracing::info_span!("request", user = "ada", authorization = "Bearer abc");
        let _e = span.enter();
        tracing::warn!(
            token = "tok-123",
            prompt = %"tell me \"a\" secret\n",
            api_key = "k-9",
            model = "res\"net",
            rows = 3_u64,
            ok = true,
            latency_ms = 12.5,
            "served"
        );
    });
    let out = String::from_utf8(buf.0.lock().unwrap().clone()).unwrap();
    for secret in ["tok-123", "a\\\" secret", "k-9", "Bearer abc"] {
        assert!(!out.contains(secret), "{secret} leaked: {out}");
    }
    let line: serde_json::Value = serde_json::from_str(out.trim_end()).expect(&out);
    assert_eq!(line["level"], "WARN");
    assert!(line["timestamp"].as_str().unwrap().contains('T'), "{line}");
    let f = &line["fields"];
    assert_eq!(f["message"], "served");
    assert_eq!(f["model"], "res\"net");
    assert_eq!(f["rows"], 3);
    assert_eq!(f["ok"], true);
    assert_eq!(f["latency_ms"], 12.5);
    for k in ["token", "prompt", "api_key"] {
        assert_eq!(f[k], "[REDACTED]", "{k}: {line}");
    }
    assert_eq!(line["spans"][0]["name"], "request");
    let span_fields = line["spans"][0]["fields"].as_str().unwrap();
    assert!(span_fields.contains("user=\"ada\""), "{span_fields}");
    assert!(
        span_fields.contains("authorization=[REDACTED]"),
        "{span_fields}"
    );
}

#[test]
fn prometheus_label_values_are_escaped() {
    let out = Pipeline::builder()
        .source(0..3_u64)
        .map(
            "say \"hi\"\\now",
            StageOptions::new().with_workers(1),
            |x: u64| x,
        )
        .collect()
        .unwrap();
    let text = out.report.metrics.to_prometheus();
    assert!(
        text.contains("inferkit_pipeline_emitted_total{stage=\"say \\\"hi\\\"\\\\now\"} 3"),
        "{text}"
    );
}
