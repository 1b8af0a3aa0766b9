//! With the `metrics` feature, every stage counter and latency also goes to the `metrics`
//! facade: checked with metrics-util's debugging recorder installed as the global recorder
//! (stage threads report from their own threads). Run with `--features metrics`.
#![cfg(feature = "metrics")]

use std::collections::HashMap;

use inferkit_pipeline::{ErrorPolicy, Pipeline, StageOptions};
use metrics_util::debugging::{DebugValue, DebuggingRecorder};

#[test]
fn stage_counters_reach_the_installed_recorder() {
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    recorder
        .install()
        .expect("no other global recorder in this test binary");

    let report = Pipeline::builder()
        .with_policy(ErrorPolicy::Skip)
        .source(0..40_u64)
        .stage("check", StageOptions::new().with_workers(2), |x: u64| {
            if x.is_multiple_of(8) {
                Err("multiple of eight")
            } else {
                Ok(x)
            }
        })
        .sink(|_x: u64| Ok::<(), std::convert::Infallible>(()))
        .wait()
        .unwrap();
    assert_eq!(report.failed, 5);

    let mut counters: HashMap<(String, String), u64> = HashMap::new();
    let mut latency_samples: HashMap<String, usize> = HashMap::new();
    for (key, _, _, value) in snapshotter.snapshot().into_vec() {
        let name = key.key().name().to_string();
        let stage = key
            .key()
            .labels()
            .find(|l| l.key() == "stage")
            .map(|l| l.value().to_string())
            .unwrap_or_default();
        match value {
            DebugValue::Counter(v) => {
                counters.insert((name, stage), v);
            }
            DebugValue::Histogram(v) => {
                latency_samples.insert(stage, v.len());
            }
            DebugValue::Gauge(_) => {}
        }
    }
    let get = |n: &str, s: &str| counters.get(&(n.to_string(), s.to_string())).copied();
    assert_eq!(get("inferkit_pipeline_received_total", "check"), Some(40));
    assert_eq!(get("inferkit_pipeline_errors_total", "check"), Some(5));
    assert_eq!(get("inferkit_pipeline_emitted_total", "check"), Some(35));
    assert_eq!(get("inferkit_pipeline_emitted_total", "sink"), Some(35));
    assert_eq!(get("inferkit_pipeline_emitted_total", "source"), Some(40));
    assert_eq!(latency_samples.get("check"), Some(&40));
    // The same figures as the crate's own snapshot.
    let own = report.metrics.stage("check").unwrap();
    assert_eq!((own.received, own.errors, own.emitted), (40, 5, 35));
}
