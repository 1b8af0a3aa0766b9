//! The native CPU backend's EfficientNet-Lite0 against the original PyTorch model on the
//! bundled photos (fixtures from scripts/make_model_fixtures.py): logits within 1e-3 and the
//! same top-5.

use std::path::Path;

use inferkit::infer_core::cpu::{Architecture, CpuBackend, EfficientNetLite0};
use inferkit::infer_core::{Backend, Device, Error, Model, ModelSource, Plan, Tensor};
use ndarray::{Array2, Array4, ArrayD, Axis};
use ndarray_npy::read_npy;

fn top5(row: ndarray::ArrayView1<'_, f32>) -> Vec<usize> {
    let mut idx: Vec<usize> = (0..row.len()).collect();
    idx.sort_by(|&a, &b| row[b].total_cmp(&row[a]));
    idx.truncate(5);
    idx
}

#[test]
fn efficientnet_lite0_matches_pytorch_on_the_bundled_photos() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let fixtures = root.join("tests/fixtures/models");
    let x: Array4<f32> = read_npy(fixtures.join("efficientnet_lite0.input.npy")).unwrap();
    let want: Array2<f32> = read_npy(fixtures.join("efficientnet_lite0.logits.npy")).unwrap();
    let net = EfficientNetLite0::load(root.join("assets/models/efficientnet-lite0.pth")).unwrap();
    let got = net.forward(x.view());
    let diff = got
        .iter()
        .zip(want.iter())
        .map(|(a, b)| (a - b).abs())
        .fold(0.0, f32::max);
    println!("native EfficientNet-Lite0: max |ours - PyTorch| = {diff:e}");
    assert!(diff <= 1e-3, "max |ours - PyTorch| = {diff}");
    for (n, (g, w)) in got
        .axis_iter(Axis(0))
        .zip(want.axis_iter(Axis(0)))
        .enumerate()
    {
        assert_eq!(top5(g), top5(w), "image {n}");
    }
    // The same through the inference trait, batch of one.
    let plan: std::sync::Arc<dyn Plan> = std::sync::Arc::new(net);
    assert_eq!(plan.descriptor().outputs[0].name, "logits");
    let model = Model::new(plan, 1);
    let one = x.slice_axis(Axis(0), (1..2).into()).to_owned();
    let out: ArrayD<f32> = model
        .run(&[("images", (&one).into())])
        .unwrap()
        .remove(0)
        .into_array()
        .unwrap();
    let d = out
        .iter()
        .zip(want.row(1).iter())
        .map(|(a, b)| (a - b).abs())
        .fold(0.0, f32::max);
    assert!(d <= 1e-3, "batch of one: {d}");
}

#[test]
fn efficientnet_lite0_on_three_threads_gives_the_one_thread_answer() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let x: Array4<f32> =
        read_npy(root.join("tests/fixtures/models/efficientnet_lite0.input.npy")).unwrap();
    let path = root.join("assets/models/efficientnet-lite0.pth");
    let one = EfficientNetLite0::load(&path).unwrap();
    assert_eq!(one.threads(), 1);
    let three = EfficientNetLite0::load(&path)
        .unwrap()
        .with_threads(3)
        .unwrap();
    assert_eq!(three.threads(), 3);
    let (a, b) = (one.forward(x.view()), three.forward(x.view()));
    // Row blocks differ between thread counts, but every output sums the same terms in the
    // same order: GEMM rows are independent.
    let diff = a
        .iter()
        .zip(b.iter())
        .map(|(p, q)| (p - q).abs())
        .fold(0.0, f32::max);
    assert!(diff <= 1e-5, "1 vs 3 threads: {diff}");
}

#[test]
fn a_session_keeps_its_buffers_and_answers_as_forward_does() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let x: Array4<f32> =
        read_npy(root.join("tests/fixtures/models/efficientnet_lite0.input.npy")).unwrap();
    let path = root.join("assets/models/efficientnet-lite0.pth");
    for threads in [1, 3] {
        let net = EfficientNetLite0::load(&path)
            .unwrap()
            .with_threads(threads)
            .unwrap();
        let want = net.forward(x.view());
        let mut session = net.session().unwrap();
        // batches of different sizes through one session's buffers: each answer is the
        // one-off forward pass's, bit for bit
        for n in [x.dim().0, 1, x.dim().0] {
            let part = x.slice_axis(Axis(0), (0..n).into());
            let got = match session.run(&[("images", part.into())]).unwrap().remove(0) {
                Tensor::F32(a) => a,
                other => panic!("logits of dtype {:?}", other.dtype()),
            };
            let want = want.slice_axis(Axis(0), (0..n).into());
            assert_eq!(got, want.into_dyn(), "{threads} threads, batch {n}");
        }
    }
}

#[test]
fn cpu_backend_recognises_the_architecture_and_names_what_it_cannot_run() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let pth = root.join("assets/models/efficientnet-lite0.pth");
    assert_eq!(
        Architecture::recognise(&pth).unwrap(),
        Architecture::EfficientNetLite0
    );
    let plan = CpuBackend::new()
        .with_threads(2)
        .with_name("classifier")
        .with_version(semver::Version::new(3, 1, 0))
        .prepare(ModelSource::Path(&pth), Device::Cpu)
        .unwrap();
    let d = plan.descriptor();
    assert_eq!(
        (d.name.as_str(), d.version.to_string()),
        ("classifier", "3.1.0".into())
    );
    assert_eq!(d.inputs[0].name, "images");

    // MiniLM: a directory (or the safetensors in it) is recognised as such
    let minilm = root.join(".cache/models/all-MiniLM-L6-v2");
    assert_eq!(
        Architecture::recognise(&minilm).unwrap(),
        Architecture::MiniLm
    );
    let plan = CpuBackend::new()
        .prepare(
            ModelSource::Path(&minilm.join("model.safetensors")),
            Device::Cpu,
        )
        .unwrap();
    assert_eq!(plan.descriptor().outputs[0].name, "sentence_embedding");
    let plan = CpuBackend::new()
        .prepare(ModelSource::Path(&minilm), Device::Cpu)
        .unwrap();
    assert_eq!(plan.descriptor().name, "minilm");

    // a checkpoint of neither: an error naming the file and the tensors it has
    let other = root.join("tests/fixtures/weights/mixed.safetensors");
    let e = CpuBackend::new()
        .prepare(ModelSource::Path(&other), Device::Cpu)
        .unwrap_err();
    assert!(matches!(e, Error::Backend { .. }), "{e:?}");
    let msg = e.to_string();
    assert!(
        msg.contains("mixed.safetensors") && msg.contains("no architecture"),
        "{msg}"
    );
    // a missing file: the weights error, with the path
    let missing = root.join("assets/models/no-such-model.pth");
    let e = CpuBackend::new()
        .prepare(ModelSource::Path(&missing), Device::Cpu)
        .unwrap_err();
    assert!(matches!(e, Error::Weights { .. }), "{e:?}");
    assert!(e.to_string().contains("no-such-model.pth"), "{e}");
    assert!(std::error::Error::source(&e).is_some(), "the cause is kept");
    // named architecture, wrong file: the loader's error, not a guess
    let e = CpuBackend::new()
        .with_architecture(Architecture::EfficientNetLite0)
        .prepare(ModelSource::Path(&other), Device::Cpu)
        .unwrap_err();
    assert!(e.to_string().contains("_conv_stem"), "{e}");
    // no GPU backend, no bytes
    let e = CpuBackend::new()
        .prepare(ModelSource::Path(&pth), Device::Cuda(0))
        .unwrap_err();
    assert!(matches!(e, Error::Device { .. }), "{e:?}");
    let e = CpuBackend::new()
        .prepare(ModelSource::Bytes(b"not a model"), Device::Cpu)
        .unwrap_err();
    assert!(e.to_string().contains("ModelSource::Path"), "{e}");
}

#[test]
fn configuring_a_shared_model_is_an_error_not_a_silent_copy() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let net = EfficientNetLite0::load(root.join("assets/models/efficientnet-lite0.pth")).unwrap();
    let shared = net.clone();
    let e = net.with_threads(2).unwrap_err();
    assert!(e.to_string().contains("already shared"), "{e}");
    assert_eq!(shared.threads(), 1);
}
