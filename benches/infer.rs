//! tract (the ONNX backend) on EfficientNet-Lite0, one thread, batch 1 and 32, against
//! onnxruntime measured by scripts/anchors/onnx.py on the same file in the same run
//! (target/bench-data/anchors-onnx.json). Needs the exported model
//! (scripts/export_efficientnet_onnx.py); without it the bench says so and does nothing.
//!
//! ```text
//! scripts/bench-infer.sh
//! ```

use std::hint::black_box;
use std::path::Path;
use std::time::Duration;

use criterion::{Criterion, Throughput};

mod common;
use common::{anchors, median, ratio};
use inferkit::infer_core::onnx::OnnxBackend;
use inferkit::infer_core::{Backend, Device, ModelSource};
use ndarray::Array4;

fn main() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join(".cache/models/efficientnet-lite0/efficientnet-lite0.onnx");
    if !path.exists() {
        println!(
            "infer: {} absent (run scripts/export_efficientnet_onnx.py); nothing to measure",
            path.display()
        );
        return;
    }
    let plan = OnnxBackend::new()
        .prepare(ModelSource::Path(&path), Device::Cpu)
        .unwrap();
    let mut session = plan.session().unwrap();
    let mut c = Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(5))
        .configure_from_args();
    let mut g = c.benchmark_group("infer");
    g.sample_size(10);
    for batch in [1_usize, 32] {
        let x = Array4::<f32>::from_shape_fn((batch, 3, 224, 224), |(n, c, h, w)| {
            ((n + c * 7 + h * 3 + w) % 17) as f32 / 17.0 - 0.5
        });
        g.throughput(Throughput::Elements(batch as u64));
        g.bench_function(format!("tract_efficientnet_b{batch}"), |b| {
            b.iter(|| black_box(session.run(&[("images", (&x).into())]).unwrap()))
        });
    }
    g.finish();
    c.final_summary();
    let a = anchors("anchors-onnx.json");
    println!(
        "\ninfer: EfficientNet-Lite0, one thread; onnxruntime from target/bench-data/anchors-onnx.json ({})",
        if a.is_empty() {
            "absent: run scripts/bench-infer.sh"
        } else {
            "same machine"
        }
    );
    println!("| batch | tract | onnxruntime | tract / onnxruntime time |");
    println!("|---|---|---|---|");
    for batch in [1, 32] {
        let ours = median("infer", &format!("tract_efficientnet_b{batch}"));
        let ort = a.get(&format!("ort_b{batch}_s")).and_then(|v| v.as_f64());
        let ms = |v: Option<f64>| {
            v.map_or("-".into(), |v| {
                format!("{:.2} ms ({:.1} img/s)", v * 1e3, batch as f64 / v)
            })
        };
        println!(
            "| {batch} | {} | {} | {} |",
            ms(ours),
            ms(ort),
            ratio(ours, ort, 2)
        );
    }
}
