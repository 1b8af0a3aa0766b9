//! EfficientNet-Lite0 in int8 (issue 22): the checkpoint `save_int8` writes from the bundled
//! model, calibrated on the bundled photos (PyTorch's preprocessing of them, the fixture
//! `efficientnet_lite0.input.npy`, and their mirror images), loaded back through `load`
//! and the cpu backend, against the f32 model; broken int8 files refused by name. The
//! accuracy on 1,000 photos that are not in the calibration is `scripts/int8-accuracy.sh`'s
//! (BENCHMARKS.md).

use std::path::{Path, PathBuf};

use inferkit::infer_core::cpu::{CpuBackend, EfficientNetLite0};
use inferkit::infer_core::{Backend, Device, ModelSource, TensorView};
use inferkit::weights::{Checkpoint, TensorBytes};
use ndarray::{Array2, Array4, Axis, s};
use ndarray_npy::read_npy;

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn source() -> PathBuf {
    root().join("assets/models/efficientnet-lite0.pth")
}

/// The bundled photos as PyTorch preprocessed them.
fn photos() -> Array4<f32> {
    read_npy(root().join("tests/fixtures/models/efficientnet_lite0.input.npy")).unwrap()
}

fn top5(row: ndarray::ArrayView1<'_, f32>) -> Vec<usize> {
    let mut idx: Vec<usize> = (0..row.len()).collect();
    idx.sort_by(|&a, &b| row[b].total_cmp(&row[a]));
    idx.truncate(5);
    idx
}

/// Writes the int8 checkpoint of the bundled model into `dir`, calibrated on the photos
/// and their mirror images.
fn quantized(dir: &Path) -> (PathBuf, u64) {
    let x = photos();
    let calibration =
        ndarray::concatenate(Axis(0), &[x.view(), x.slice(s![.., .., .., ..;-1])]).unwrap();
    let path = dir.join("efficientnet-lite0-int8.safetensors");
    let written = EfficientNetLite0::load(source())
        .unwrap()
        .save_int8(
            &path,
            calibration.view(),
            "the bundled photos and their mirrors",
        )
        .unwrap();
    (path, written)
}

#[test]
fn int8_checkpoint_is_small_self_describing_and_agrees_with_f32() {
    let dir = tempfile::tempdir().unwrap();
    let (path, written) = quantized(dir.path());
    let source_len = std::fs::metadata(source()).unwrap().len();
    assert_eq!(written, std::fs::metadata(&path).unwrap().len());
    println!("int8 checkpoint: {written} bytes, f32 {source_len}");
    assert!(
        written * 10 <= source_len * 3,
        "{written} bytes is above 0.3x the f32 {source_len}"
    );
    let ckpt = Checkpoint::open(&path).unwrap();
    let meta = ckpt.metadata();
    assert_eq!(meta["inferkit.quantization"], "int8");
    assert!(meta["inferkit.calibration"].contains("percentile"));
    assert!(meta["inferkit.calibration"].contains("the bundled photos"));
    assert_eq!(meta["inferkit.source"], "efficientnet-lite0.pth");
    assert_eq!(meta["inferkit.source_sha256"].len(), 64);
    // every convolution and the classifier: stem, 16 blocks (the first without expansion),
    // head, fc
    let quantized: Vec<&str> = meta["inferkit.quantized"].split(',').collect();
    assert_eq!(quantized.len(), 1 + 16 * 3 - 1 + 1 + 1, "{quantized:?}");
    for name in &quantized {
        assert_eq!(
            ckpt.tensor(name).unwrap().dtype(),
            inferkit::weights::DType::I8
        );
        let scale = ckpt.tensor(&format!("{name}_scale")).unwrap();
        assert_eq!(scale.shape()[0], ckpt.tensor(name).unwrap().shape()[0]);
    }
    let range = ckpt
        .tensor("_blocks.3._project_conv.activation_range")
        .unwrap()
        .to_f32();
    assert!(range[0] < 0.0 && range[1] > 0.0, "{range}");

    let f32_model = EfficientNetLite0::load(source()).unwrap();
    let int8 = EfficientNetLite0::load(&path).unwrap();
    assert!(int8.is_int8() && !f32_model.is_int8());
    let x = photos();
    let (want, got) = (f32_model.forward(x.view()), int8.forward(x.view()));
    // the same best class for every photo; of the top five (measured: 16 of 20) the
    // astronaut (no ImageNet class: f32's best is 3 %, its five within 1 %) keeps two, the
    // rocket four, the cat and the coffee all five
    let mut common = 0;
    for n in 0..x.dim().0 {
        let (w, g) = (top5(want.row(n)), top5(got.row(n)));
        println!("photo {n}: f32 top-5 {w:?}, int8 {g:?}");
        assert_eq!(w[0], g[0], "photo {n}: top-1");
        common += w.iter().filter(|c| g.contains(c)).count();
    }
    assert!(common >= 15, "top-5 overlap {common} of 20");
    // the logits stay close (measured: max |Δ| 0.58, on logits of up to 14)
    let diff = (&want - &got).iter().fold(0.0_f32, |m, d| m.max(d.abs()));
    println!("max |int8 − f32| logit: {diff}");
    assert!(diff < 1.5, "max |int8 − f32| logit {diff}");

    // an image's answer does not depend on its batch (static per-tensor ranges; the
    // classifier's input quantized per image): alone it gets the very same logits
    for n in 0..x.dim().0 {
        let alone = int8.forward(x.slice(s![n..n + 1, .., .., ..]));
        assert_eq!(alone.row(0), got.row(n), "photo {n} alone");
    }
    // the same numbers on more threads, and through the cpu backend's session
    let two = EfficientNetLite0::load(&path)
        .unwrap()
        .with_threads(3)
        .unwrap();
    assert_eq!(two.forward(x.view()), got);
    let plan = CpuBackend::new()
        .prepare(ModelSource::Path(&path), Device::Cpu)
        .unwrap();
    assert!(plan.descriptor().metadata["precision"].starts_with("int8"));
    let out = plan
        .session()
        .unwrap()
        .run(&[("images", TensorView::F32(x.view().into_dyn()))])
        .unwrap()
        .remove(0)
        .into_array::<f32>()
        .unwrap();
    let out: Array2<f32> = out.into_dimensionality().unwrap();
    assert_eq!(out, got);
}

#[test]
fn broken_int8_checkpoints_and_calibrations_are_errors_naming_what_is_wrong() {
    let dir = tempfile::tempdir().unwrap();
    let (path, _) = quantized(dir.path());
    let int8 = EfficientNetLite0::load(&path).unwrap();
    let e = int8
        .save_int8(dir.path().join("again.safetensors"), photos().view(), "x")
        .unwrap_err()
        .to_string();
    assert!(e.contains("already int8"), "{e}");
    let e = EfficientNetLite0::load(source())
        .unwrap()
        .save_int8(
            dir.path().join("small.safetensors"),
            photos().slice(s![.., .., ..100, ..100]),
            "x",
        )
        .unwrap_err()
        .to_string();
    assert!(e.contains("calibration batch") && e.contains("224"), "{e}");

    // rewrite the good file keeping the tensors `keep` allows, one of them replaced by `swap`
    let ckpt = Checkpoint::open(&path).unwrap();
    let rewrite = |keep: &dyn Fn(&str) -> bool, swap: Option<(&str, TensorBytes<'_>)>| {
        let mut tensors: Vec<(String, TensorBytes<'_>)> = ckpt
            .tensors()
            .filter(|t| keep(t.name()))
            .map(|t| (t.name().to_string(), TensorBytes::from_view(&t)))
            .collect();
        if let Some((name, t)) = swap {
            tensors.retain(|(n, _)| n != name);
            tensors.push((name.to_string(), t));
        }
        let out = dir.path().join("broken.safetensors");
        inferkit::weights::save(&out, tensors, Some(ckpt.metadata().clone())).unwrap();
        EfficientNetLite0::load(&out).unwrap_err().to_string()
    };
    let range = "_blocks.5._expand_conv.activation_range";
    let e = rewrite(&|n| n != range, None);
    assert!(e.contains(range), "{e}");
    let bad = TensorBytes::new(
        inferkit::weights::DType::F32,
        vec![2],
        [1.0_f32, f32::NAN]
            .iter()
            .flat_map(|v| v.to_le_bytes())
            .collect::<Vec<u8>>(),
    )
    .unwrap();
    let e = rewrite(&|_| true, Some((range, bad)));
    assert!(e.contains(range) && e.contains("finite range"), "{e}");
    let scale = "_blocks.2._depthwise_conv.weight_scale";
    let e = rewrite(&|n| n != scale, None);
    assert!(e.contains(scale), "{e}");
    // an f32 weight where the metadata says int8
    let name = "_blocks.4._project_conv.weight";
    let f32_weight = Checkpoint::open(source()).unwrap();
    let t = f32_weight.tensor(name).unwrap();
    let e = rewrite(&|_| true, Some((name, TensorBytes::from_view(&t))));
    assert!(e.contains(name) && e.contains("I8"), "{e}");
}
