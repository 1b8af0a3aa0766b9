//! EfficientNet-Lite0 through the ONNX backend, against onnxruntime's logits (<= 1e-4 abs).
//! The ONNX file is too large to commit: scripts/export_efficientnet_onnx.py makes it from
//! the bundled checkpoint into .cache/models/efficientnet-lite0/. Without it this test says
//! so and passes.

use std::path::Path;

use inferkit::infer_core::onnx::OnnxBackend;
use inferkit::infer_core::{Backend, Device, Dim, Model, ModelSource};
use ndarray::ArrayD;
use ndarray_npy::read_npy;

#[test]
fn efficientnet_lite0_matches_onnxruntime() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join(".cache/models/efficientnet-lite0");
    let model_path = dir.join("efficientnet-lite0.onnx");
    if !model_path.exists() {
        eprintln!(
            "skipped: {} absent (run scripts/export_efficientnet_onnx.py)",
            model_path.display()
        );
        return;
    }
    let plan = OnnxBackend::new()
        .prepare(ModelSource::Path(&model_path), Device::Cpu)
        .unwrap();
    let d = plan.descriptor();
    assert_eq!(d.inputs[0].name, "images");
    assert_eq!(d.inputs[0].shape[0], Dim::Dynamic("batch".into()));
    let x: ArrayD<f32> = read_npy(dir.join("efficientnet-lite0.input.npy")).unwrap();
    let want: ArrayD<f32> = read_npy(dir.join("efficientnet-lite0.logits.npy")).unwrap();
    let model = Model::new(plan, 1);
    let out = model.run(&[("images", (&x).into())]).unwrap();
    let got = out[0].view_as::<f32>().unwrap();
    assert_eq!(got.shape(), want.shape());
    let diff = got
        .iter()
        .zip(want.iter())
        .map(|(a, b)| (a - b).abs())
        .fold(0.0, f32::max);
    println!(
        "EfficientNet-Lite0: max |tract - onnxruntime| = {diff:e} over {} logits",
        got.len()
    );
    assert!(diff <= 1e-4, "max |tract - onnxruntime| = {diff}");
}
