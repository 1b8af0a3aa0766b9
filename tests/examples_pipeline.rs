//! The `pipeline_stress` example, run as a user runs it.

use std::process::Command;

mod common;
use common::example;

#[test]
fn pipeline_stress_stays_within_its_bound_and_reports() {
    let out = Command::new(example("pipeline_stress"))
        .args([
            "--items",
            "3000",
            "--capacity",
            "8",
            "--workers",
            "2",
            "--sink-delay-us",
            "50",
        ])
        .args(["--batch", "16", "--payload-bytes", "4096"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let stdout = String::from_utf8(out.stdout).unwrap();
    let last = stdout.lines().last().expect("a JSON line");
    let v: serde_json::Value = serde_json::from_str(last).unwrap();
    assert_eq!(v["items"], 3000);
    assert_eq!(v["delivered"], 3000);
    // source 1 + 8; make: 2 workers + 8; batch: 16 + 8 batches of 16; unbatch 16 + 8; sink 1
    assert_eq!(v["bound"], 1 + 8 + 2 + 8 + 16 + 8 * 16 + 16 + 8 + 1);
    let peak = v["peak_in_flight"].as_i64().unwrap();
    assert!(peak > 0 && peak <= v["bound"].as_i64().unwrap(), "{v}");
    assert!(v["peak_rss_bytes"].as_u64().unwrap() > 0);
    let stages = v["stages"].as_array().unwrap();
    let names: Vec<&str> = stages
        .iter()
        .map(|s| s["stage"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["source", "make", "batch", "unbatch", "sink"]);
    assert_eq!(stages[1]["emitted"], 3000);
    assert_eq!(stages[4]["emitted"], 3000);
}

#[test]
fn pipeline_stress_rejects_bad_arguments() {
    let out = Command::new(example("pipeline_stress"))
        .args(["--workers", "0"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("at least 1"));
}
