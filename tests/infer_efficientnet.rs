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

/// The PyTorch reference logits of the bundled photos (scripts/make_model_fixtures.py)
/// through the exported model: tract gives the same logits (1e-3) and top-5, and our own
/// preprocessing of the JPEGs gives the same top-1 class.
#[test]
fn efficientnet_lite0_on_the_bundled_photos_matches_pytorch() {
    use inferkit::preprocess::{Batch, BufferPool, DecodeOptions, Decoder, Transform};
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let model_path = root.join(".cache/models/efficientnet-lite0/efficientnet-lite0.onnx");
    if !model_path.exists() {
        eprintln!(
            "skipped: {} absent (run scripts/export_efficientnet_onnx.py)",
            model_path.display()
        );
        return;
    }
    let fixtures = root.join("tests/fixtures/models");
    let x: ArrayD<f32> = read_npy(fixtures.join("efficientnet_lite0.input.npy")).unwrap();
    let want: ArrayD<f32> = read_npy(fixtures.join("efficientnet_lite0.logits.npy")).unwrap();
    let plan = OnnxBackend::new()
        .prepare(ModelSource::Path(&model_path), Device::Cpu)
        .unwrap();
    let model = Model::new(plan, 1);
    let got = model
        .run(&[("images", (&x).into())])
        .unwrap()
        .remove(0)
        .into_array::<f32>()
        .unwrap();
    let diff = got
        .iter()
        .zip(want.iter())
        .map(|(a, b)| (a - b).abs())
        .fold(0.0, f32::max);
    println!("bundled photos: max |tract - PyTorch| = {diff:e}");
    assert!(diff <= 1e-3, "max |tract - PyTorch| = {diff}");
    let top5 = |row: ndarray::ArrayView1<'_, f32>| {
        let mut idx: Vec<usize> = (0..row.len()).collect();
        idx.sort_by(|&a, &b| row[b].total_cmp(&row[a]));
        idx.truncate(5);
        idx
    };
    for n in 0..want.shape()[0] {
        let (g, w) = (
            got.index_axis(ndarray::Axis(0), n),
            want.index_axis(ndarray::Axis(0), n),
        );
        assert_eq!(
            top5(g.into_dimensionality().unwrap()),
            top5(w.into_dimensionality().unwrap()),
            "image {n}"
        );
    }
    // Our decoder + transform instead of Pillow + torchvision: the same top-1 on every photo.
    let mut files: Vec<_> = std::fs::read_dir(root.join("assets/images"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "jpg"))
        .collect();
    files.sort();
    let bytes: Vec<Vec<u8>> = files.iter().map(|p| std::fs::read(p).unwrap()).collect();
    let batch = Batch::from_encoded(
        &bytes,
        &Decoder::new(DecodeOptions::default()),
        &Transform::imagenet(224),
        &BufferPool::new(1),
    )
    .unwrap();
    let ours = model
        .run(&[("images", batch.view().into_dyn().into())])
        .unwrap()
        .remove(0)
        .into_array::<f32>()
        .unwrap();
    for (n, file) in files.iter().enumerate() {
        let (o, w) = (
            ours.index_axis(ndarray::Axis(0), n),
            want.index_axis(ndarray::Axis(0), n),
        );
        assert_eq!(
            top5(o.into_dimensionality().unwrap())[0],
            top5(w.into_dimensionality().unwrap())[0],
            "{}",
            file.display()
        );
    }
}
