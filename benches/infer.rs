//! EfficientNet-Lite0, one thread, batch 1 and 32: the native CPU backend (from the bundled
//! checkpoint) and tract (the ONNX backend, on the exported model when
//! scripts/export_efficientnet_onnx.py has made it), against onnxruntime measured by
//! scripts/anchors/onnx.py on the same ONNX file in the same run
//! (target/bench-data/anchors-onnx.json).
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
use inferkit::infer_core::cpu::EfficientNetLite0;
use inferkit::infer_core::onnx::OnnxBackend;
use inferkit::infer_core::{Backend, Device, ModelSource, Session};
use ndarray::Array4;

fn input(batch: usize) -> Array4<f32> {
    Array4::<f32>::from_shape_fn((batch, 3, 224, 224), |(n, c, h, w)| {
        ((n + c * 7 + h * 3 + w) % 17) as f32 / 17.0 - 0.5
    })
}

fn main() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let path = root.join(".cache/models/efficientnet-lite0/efficientnet-lite0.onnx");
    let native =
        EfficientNetLite0::load(root.join("assets/models/efficientnet-lite0.pth")).unwrap();
    let mut tract: Option<Box<dyn Session>> = path.exists().then(|| {
        let plan = OnnxBackend::new()
            .prepare(ModelSource::Path(&path), Device::Cpu)
            .unwrap();
        plan.session().unwrap()
    });
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
            b.iter(|| black_box(native.forward(x.view())))
        });
        if let Some(session) = tract.as_mut() {
            g.bench_function(format!("tract_efficientnet_b{batch}"), |b| {
                b.iter(|| black_box(session.run(&[("images", (&x).into())]).unwrap()))
            });
        }
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
    println!("| batch | native CPU | tract | onnxruntime | native / ORT time | tract / ORT time |");
    println!("|---|---|---|---|---|---|");
    for batch in [1, 32] {
        let native = median("infer", &format!("native_efficientnet_b{batch}"));
        let tract = median("infer", &format!("tract_efficientnet_b{batch}"));
        let ort = a.get(&format!("ort_b{batch}_s")).and_then(|v| v.as_f64());
        let ms = |v: Option<f64>| {
            v.map_or("-".into(), |v| {
                format!("{:.2} ms ({:.1} img/s)", v * 1e3, batch as f64 / v)
            })
        };
        println!(
            "| {batch} | {} | {} | {} | {} | {} |",
            ms(native),
            ms(tract),
            ms(ort),
            ratio(native, ort, 2),
            ratio(tract, ort, 2)
        );
    }
}
