//! The native CPU backend against onnxruntime and PyTorch, measured by
//! scripts/anchors/models.py in the same run (target/bench-data/anchors-models.json):
//! EfficientNet-Lite0 batch 1 (latency) and 32 (throughput), MiniLM batch 32 × 128 tokens,
//! one thread and two; MiniLM in int8 too (our int8 checkpoint against onnxruntime's
//! `quantize_dynamic` model and PyTorch's dynamic quantization). The ONNX backends — tract
//! and onnxruntime through the `ort` crate (`ORT_DYLIB_PATH`, else the library
//! scripts/fetch-models.sh fetched) — on the exported EfficientNet and MiniLM (f32 and
//! int8) and on a held-back transformer (scripts/anchors/models.py exports them), where the
//! files are there, against onnxruntime's Python API. The table also gives each model's
//! GFLOP/s and its fraction of the measured sgemm
//! peak (PyTorch's 2048³ from scripts/bench-gemm.sh, and the `gemm` crate's when
//! benches/gemm.rs has run).
//!
//! ```text
//! scripts/bench-infer.sh
//! ```

use std::hint::black_box;
use std::path::Path;
use std::time::Duration;

use criterion::{Criterion, Throughput};

mod common;
#[path = "../tests/common/ort_library.rs"]
mod ort_library;
use common::{anchors, median, ratio};
use inferkit::infer_core::cpu::{EfficientNetLite0, MiniLm};
use inferkit::infer_core::onnx::OnnxBackend;
use inferkit::infer_core::ort::OrtBackend;
use inferkit::infer_core::{Backend, Device, ModelSource, Plan, Session};
use ndarray::{Array2, Array3, Array4};
use ort_library::fetched_ort_library;

/// Multiply-adds of EfficientNet-Lite0 per 224² image (convolutions and the classifier).
const EFFNET_MACS: f64 = 385.0e6;
const MINILM_BATCH: usize = 32;
const MINILM_SEQ: usize = 128;

fn input(batch: usize) -> Array4<f32> {
    Array4::<f32>::from_shape_fn((batch, 3, 224, 224), |(n, c, h, w)| {
        ((n + c * 7 + h * 3 + w) % 17) as f32 / 17.0 - 0.5
    })
}

/// Multiply-adds of a MiniLM (6 × 384, FFN 1536) forward pass over `batch` × `seq` tokens.
fn minilm_macs(batch: usize, seq: usize) -> f64 {
    let (t, h, f) = ((batch * seq) as f64, 384.0, 1536.0);
    6.0 * (t * (4.0 * h * h + 2.0 * h * f) + 2.0 * batch as f64 * (seq * seq) as f64 * h)
}

/// Sessions of `file` on the ONNX backends, where it exists: tract (one thread: tract 0.21
/// runs on one) and ort on one and two intra-op threads.
struct OnnxSessions {
    tract: Option<Box<dyn Session>>,
    ort: Option<Box<dyn Session>>,
    ort2: Option<Box<dyn Session>>,
}

fn onnx_sessions(file: &Path) -> Option<OnnxSessions> {
    if !file.exists() {
        return None;
    }
    let tract = OnnxBackend::new()
        .prepare(ModelSource::Path(file), Device::Cpu)
        .and_then(|plan| plan.session());
    let fetched = fetched_ort_library();
    let ort = |threads: usize| {
        let mut b = OrtBackend::new().with_threads(threads);
        if let Some(lib) = &fetched {
            b = b.with_library(lib);
        }
        match b.prepare(ModelSource::Path(file), Device::Cpu) {
            Ok(plan) => Some(plan.session().unwrap()),
            Err(e) => {
                eprintln!("ort backend left out: {e}");
                None
            }
        }
    };
    Some(OnnxSessions {
        tract: tract
            .inspect_err(|e| eprintln!("tract backend left out: {e}"))
            .ok(),
        ort: ort(1),
        ort2: ort(2),
    })
}

fn main() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let onnx = root.join(".cache/models/efficientnet-lite0/efficientnet-lite0.onnx");
    let pth = root.join("assets/models/efficientnet-lite0.pth");
    // Sessions, as a serving worker keeps them: each owns its activation buffers.
    let mut eff1 = EfficientNetLite0::load(&pth).unwrap().session().unwrap();
    let mut eff2 = EfficientNetLite0::load(&pth)
        .unwrap()
        .with_threads(2)
        .unwrap()
        .session()
        .unwrap();
    // int8 (issue 22): the checkpoint scripts/fetch-models.sh makes with examples/quantize.rs
    // (calibrated on the bundled photos)
    let eff8_path = root.join(".cache/models/efficientnet-lite0-int8.safetensors");
    let eff8 = |threads: usize| {
        EfficientNetLite0::load(&eff8_path)
            .and_then(|m| m.with_threads(threads))
            .and_then(|m| m.session())
            .ok()
    };
    let (mut eff8_1, mut eff8_2) = (eff8(1), eff8(2));
    let minilm_dir = root.join(".cache/models/all-MiniLM-L6-v2");
    let minilm = MiniLm::load(&minilm_dir).ok();
    let minilm2 = MiniLm::load(&minilm_dir)
        .ok()
        .map(|m| m.with_threads(2).unwrap());
    // int8 (issue 22): the checkpoint scripts/fetch-models.sh makes with examples/quantize.rs
    // (weights per channel, activations per token)
    let minilm8_dir = root.join(".cache/models/all-MiniLM-L6-v2-int8");
    let minilm8 = MiniLm::load(&minilm8_dir).ok();
    let minilm8_2 = MiniLm::load(&minilm8_dir)
        .ok()
        .map(|m| m.with_threads(2).unwrap());
    let mut eff_onnx = onnx_sessions(&onnx);
    let mut minilm_onnx = onnx_sessions(&minilm_dir.join("minilm-embed.onnx"));
    // onnxruntime's quantize_dynamic of that export (scripts/anchors/models.py makes it)
    let mut minilm_onnx8 = onnx_sessions(&minilm_dir.join("minilm-embed.int8.onnx"));
    let mut heldback =
        onnx_sessions(&root.join(".cache/models/heldback-transformer/transformer.onnx"));
    let mut c = Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(5))
        .configure_from_args();
    let mut g = c.benchmark_group("infer");
    g.sample_size(10);
    for batch in [1_usize, 32] {
        let x = input(batch);
        g.throughput(Throughput::Elements(batch as u64));
        g.bench_function(format!("native_efficientnet_b{batch}"), |b| {
            b.iter(|| black_box(eff1.run(&[("images", (&x).into())]).unwrap()))
        });
        if batch > 1 {
            g.bench_function(format!("native_efficientnet_b{batch}_t2"), |b| {
                b.iter(|| black_box(eff2.run(&[("images", (&x).into())]).unwrap()))
            });
        }
        let int8 = [("", eff8_1.as_mut()), ("_t2", eff8_2.as_mut())];
        for (t, session) in int8 {
            let Some(session) = session.filter(|_| batch > 1 || t.is_empty()) else {
                continue;
            };
            g.bench_function(format!("native_efficientnet_int8_b{batch}{t}"), |b| {
                b.iter(|| black_box(session.run(&[("images", (&x).into())]).unwrap()))
            });
        }
        if let Some(o) = eff_onnx.as_mut() {
            let inputs = [("images", (&x).into())];
            let runs = if batch == 1 { 50 } else { 10 };
            onnx_benches(&mut g, o, &format!("efficientnet_b{batch}"), &inputs, runs);
        }
    }
    // token ids as the anchor draws them: [CLS] … [SEP], every token real
    let ids = Array2::<i64>::from_shape_fn((MINILM_BATCH, MINILM_SEQ), |(b, s)| match s {
        0 => 101,
        s if s == MINILM_SEQ - 1 => 102,
        _ => 1000 + ((b * 7919 + s * 104_729) % 29_000) as i64,
    });
    let mask = Array2::<i64>::ones(ids.dim());
    g.throughput(Throughput::Elements(MINILM_BATCH as u64));
    for (name, m) in [
        ("", &minilm),
        ("_t2", &minilm2),
        ("_int8", &minilm8),
        ("_int8_t2", &minilm8_2),
    ] {
        if let Some(m) = m {
            g.bench_function(
                format!("native_minilm_b{MINILM_BATCH}_s{MINILM_SEQ}{name}"),
                |b| b.iter(|| black_box(m.forward(ids.view(), mask.view()).unwrap())),
            );
        }
    }
    for (o, what) in [(&mut minilm_onnx, ""), (&mut minilm_onnx8, "_int8")] {
        let Some(o) = o.as_mut() else { continue };
        let inputs = [
            ("input_ids", (&ids).into()),
            ("attention_mask", (&mask).into()),
        ];
        onnx_benches(
            &mut g,
            o,
            &format!("minilm{what}_b{MINILM_BATCH}_s{MINILM_SEQ}"),
            &inputs,
            10,
        );
    }
    if let Some(o) = heldback.as_mut() {
        let x = Array3::<f32>::from_shape_fn((8, 128, 256), |(b, s, d)| {
            ((b * 31 + s * 7 + d) % 23) as f32 / 23.0 - 0.5
        });
        g.throughput(Throughput::Elements(8));
        onnx_benches(&mut g, o, "heldback_b8_s128", &[("x", (&x).into())], 20);
    }
    g.finish();
    c.final_summary();
    report();
}

/// Medians of single calls of the ONNX backends, by bench id: the statistic the Python
/// anchor takes (`median_time`: 3 calls to warm up, then the median of `runs` single calls),
/// where criterion's median is of sample means, which on a shared VM carry its hiccups.
static SINGLE_CALLS: std::sync::Mutex<Vec<(String, f64)>> = std::sync::Mutex::new(Vec::new());

fn single_call_median(id: &str) -> Option<f64> {
    let m = SINGLE_CALLS.lock().unwrap();
    m.iter().find(|(k, _)| k == id).map(|(_, v)| *v)
}

/// `tract_<what>`, `ort_<what>` and `ort_<what>_t2` on `inputs` (criterion, and `runs`
/// single calls timed as the Python anchor times them).
fn onnx_benches(
    g: &mut criterion::BenchmarkGroup<'_, criterion::measurement::WallTime>,
    o: &mut OnnxSessions,
    what: &str,
    inputs: &[(&str, inferkit::infer_core::TensorView<'_>)],
    runs: usize,
) {
    let sessions = [
        ("tract_", &mut o.tract),
        ("ort_", &mut o.ort),
        ("ort_", &mut o.ort2),
    ];
    for (i, (backend, session)) in sessions.into_iter().enumerate() {
        let Some(session) = session else { continue };
        // a model a backend cannot run is left out of the table, saying why
        if let Err(e) = session.run(inputs) {
            eprintln!("{backend}{what} left out: {e}");
            continue;
        }
        let suffix = if i == 2 { "_t2" } else { "" };
        let id = format!("{backend}{what}{suffix}");
        g.bench_function(&id, |b| b.iter(|| black_box(session.run(inputs).unwrap())));
        if backend == "ort_" {
            for _ in 0..3 {
                black_box(session.run(inputs).unwrap());
            }
            let mut times: Vec<f64> = (0..runs)
                .map(|_| {
                    let t = std::time::Instant::now();
                    black_box(session.run(inputs).unwrap());
                    t.elapsed().as_secs_f64()
                })
                .collect();
            times.sort_by(f64::total_cmp);
            SINGLE_CALLS
                .lock()
                .unwrap()
                .push((id, times[times.len() / 2]));
        }
    }
}

fn report() {
    let a = anchors("anchors-models.json");
    let peak = anchors("anchors-gemm.json")
        .get("torch_sgemm_2048_gflops")
        .and_then(|v| v.as_f64());
    let gemm_peak = median("gemm", "gemm_square_2048").map(|s| 2.0 * 2048f64.powi(3) / s / 1e9);
    let get = |k: &str| a.get(k).and_then(|v| v.as_f64());
    println!(
        "\ninfer: native CPU backend vs onnxruntime {} and PyTorch {} (target/bench-data/anchors-models.json: {}); medians",
        a.get("onnxruntime").and_then(|v| v.as_str()).unwrap_or("?"),
        a.get("torch").and_then(|v| v.as_str()).unwrap_or("?"),
        if a.is_empty() {
            "absent: run scripts/bench-infer.sh"
        } else {
            "same run"
        }
    );
    println!(
        "sgemm peak, one thread, 2048³: PyTorch {}, gemm crate {}",
        peak.map_or("-".into(), |v| format!("{v:.1} GFLOP/s")),
        gemm_peak.map_or("-".into(), |v| format!("{v:.1} GFLOP/s"))
    );
    println!(
        "| model | threads | native | onnxruntime | PyTorch | ORT / native speed | faster anchor / native speed | native GFLOP/s | of PyTorch sgemm peak |"
    );
    println!("|---|---|---|---|---|---|---|---|---|");
    let rows: [(&str, String, String, usize, f64); 10] = [
        (
            "EfficientNet-Lite0 b1",
            "native_efficientnet_b1".into(),
            "eff_b1_t1".into(),
            1,
            EFFNET_MACS,
        ),
        (
            "EfficientNet-Lite0 b32",
            "native_efficientnet_b32".into(),
            "eff_b32_t1".into(),
            32,
            32.0 * EFFNET_MACS,
        ),
        (
            "EfficientNet-Lite0 b32",
            "native_efficientnet_b32_t2".into(),
            "eff_b32_t2".into(),
            32,
            32.0 * EFFNET_MACS,
        ),
        // int8 against onnxruntime's static int8 (QDQ, the same calibration photos)
        (
            "EfficientNet-Lite0 int8 b1",
            "native_efficientnet_int8_b1".into(),
            "eff_int8_b1_t1".into(),
            1,
            EFFNET_MACS,
        ),
        (
            "EfficientNet-Lite0 int8 b32",
            "native_efficientnet_int8_b32".into(),
            "eff_int8_b32_t1".into(),
            32,
            32.0 * EFFNET_MACS,
        ),
        (
            "EfficientNet-Lite0 int8 b32",
            "native_efficientnet_int8_b32_t2".into(),
            "eff_int8_b32_t2".into(),
            32,
            32.0 * EFFNET_MACS,
        ),
        (
            "MiniLM b32×128",
            format!("native_minilm_b{MINILM_BATCH}_s{MINILM_SEQ}"),
            format!("minilm_b{MINILM_BATCH}_s{MINILM_SEQ}_t1"),
            MINILM_BATCH,
            minilm_macs(MINILM_BATCH, MINILM_SEQ),
        ),
        (
            "MiniLM b32×128",
            format!("native_minilm_b{MINILM_BATCH}_s{MINILM_SEQ}_t2"),
            format!("minilm_b{MINILM_BATCH}_s{MINILM_SEQ}_t2"),
            MINILM_BATCH,
            minilm_macs(MINILM_BATCH, MINILM_SEQ),
        ),
        // int8 against onnxruntime's quantize_dynamic and PyTorch's dynamic quantization
        (
            "MiniLM int8 b32×128",
            format!("native_minilm_b{MINILM_BATCH}_s{MINILM_SEQ}_int8"),
            format!("minilm_int8_b{MINILM_BATCH}_s{MINILM_SEQ}_t1"),
            MINILM_BATCH,
            minilm_macs(MINILM_BATCH, MINILM_SEQ),
        ),
        (
            "MiniLM int8 b32×128",
            format!("native_minilm_b{MINILM_BATCH}_s{MINILM_SEQ}_int8_t2"),
            format!("minilm_int8_b{MINILM_BATCH}_s{MINILM_SEQ}_t2"),
            MINILM_BATCH,
            minilm_macs(MINILM_BATCH, MINILM_SEQ),
        ),
    ];
    for (label, id, anchor, batch, macs) in rows {
        let threads = if id.ends_with("_t2") { 2 } else { 1 };
        let native = median("infer", &id);
        let ort = get(&format!("ort_{anchor}_s"));
        let torch = get(&format!("torch_{anchor}_s"));
        let fastest = match (ort, torch) {
            (Some(o), Some(t)) => Some(o.min(t)),
            (o, t) => o.or(t),
        };
        let show = |v: Option<f64>| {
            v.map_or("-".into(), |v| {
                if batch == 1 {
                    format!("{:.2} ms", v * 1e3)
                } else {
                    format!("{:.1}/s", batch as f64 / v)
                }
            })
        };
        let gflops = native.map(|s| 2.0 * macs / s / 1e9);
        println!(
            "| {label} | {threads} | {} | {} | {} | {} | {} | {} | {} |",
            show(native),
            show(ort),
            show(torch),
            ratio(ort, native, 2),
            ratio(fastest, native, 2),
            gflops.map_or("-".into(), |g| format!("{g:.1}")),
            match (gflops, peak) {
                (Some(g), Some(p)) => format!("{:.0}%", 100.0 * g / p / threads as f64),
                _ => "-".into(),
            }
        );
    }
    let speedup = |one: &str, two: &str| ratio(median("infer", one), median("infer", two), 2);
    println!(
        "two threads / one: EfficientNet b32 {}, MiniLM {}",
        speedup("native_efficientnet_b32", "native_efficientnet_b32_t2"),
        speedup(
            &format!("native_minilm_b{MINILM_BATCH}_s{MINILM_SEQ}"),
            &format!("native_minilm_b{MINILM_BATCH}_s{MINILM_SEQ}_t2")
        )
    );
    println!(
        "EfficientNet-Lite0 int8 (convolutions; weights per channel, activations per tensor): f32 / int8 time {} at batch 1, {} at 32, {} at 32 on two threads",
        speedup("native_efficientnet_b1", "native_efficientnet_int8_b1"),
        speedup("native_efficientnet_b32", "native_efficientnet_int8_b32"),
        speedup(
            "native_efficientnet_b32_t2",
            "native_efficientnet_int8_b32_t2"
        ),
    );
    let f32_time = |t: &str| format!("native_minilm_b{MINILM_BATCH}_s{MINILM_SEQ}{t}");
    println!(
        "MiniLM b{MINILM_BATCH}×{MINILM_SEQ} int8 (linear layers; weights per channel, activations per token): f32 / int8 time {} on one thread, {} on two",
        speedup(&f32_time(""), &f32_time("_int8")),
        speedup(&f32_time("_t2"), &f32_time("_int8_t2")),
    );
    println!(
        "\nONNX backends vs onnxruntime's Python API {} (same library, same run); medians  ",
        a.get("onnxruntime").and_then(|v| v.as_str()).unwrap_or("?"),
    );
    println!(
        "| model | threads | tract | ort backend | onnxruntime (Python) | ort backend / Python time | ort backend, median of single calls | that / Python time | tract / Python time |"
    );
    println!("|---|---|---|---|---|---|---|---|---|");
    let mb = format!("minilm_b{MINILM_BATCH}_s{MINILM_SEQ}");
    let mb8 = format!("minilm_int8_b{MINILM_BATCH}_s{MINILM_SEQ}");
    let onnx_rows: [(&str, &str, &str, usize); 9] = [
        ("EfficientNet-Lite0 b1", "efficientnet_b1", "eff_b1", 1),
        ("EfficientNet-Lite0 b32", "efficientnet_b32", "eff_b32", 1),
        ("EfficientNet-Lite0 b32", "efficientnet_b32", "eff_b32", 2),
        ("MiniLM b32×128", &mb, &mb, 1),
        ("MiniLM b32×128", &mb, &mb, 2),
        ("MiniLM int8 (quantize_dynamic) b32×128", &mb8, &mb8, 1),
        ("MiniLM int8 (quantize_dynamic) b32×128", &mb8, &mb8, 2),
        (
            "held-back transformer b8×128",
            "heldback_b8_s128",
            "heldback_b8_s128",
            1,
        ),
        (
            "held-back transformer b8×128",
            "heldback_b8_s128",
            "heldback_b8_s128",
            2,
        ),
    ];
    let ms = |v: Option<f64>| v.map_or("-".into(), |v| format!("{:.2} ms", v * 1e3));
    for (label, id, anchor, threads) in onnx_rows {
        let tract = (threads == 1)
            .then(|| median("infer", &format!("tract_{id}")))
            .flatten();
        let suffix = if threads == 2 { "_t2" } else { "" };
        let ort = median("infer", &format!("ort_{id}{suffix}"));
        let single = single_call_median(&format!("ort_{id}{suffix}"));
        let py = get(&format!("ort_{anchor}_t{threads}_s"));
        println!(
            "| {label} | {threads} | {} | {} | {} | {} | {} | {} | {} |",
            ms(tract),
            ms(ort),
            ms(py),
            ratio(ort, py, 3),
            ms(single),
            ratio(single, py, 3),
            ratio(tract, py, 2)
        );
    }
}
