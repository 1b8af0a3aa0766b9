//! The native CPU backend's EfficientNet-Lite0 against the original PyTorch model on the
//! bundled photos (fixtures from scripts/make_model_fixtures.py): logits within 1e-3 and the
//! same top-5.

use std::path::Path;

use inferkit::infer_core::cpu::EfficientNetLite0;
use inferkit::infer_core::{Model, Plan};
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
    let plan: std::sync::Arc<dyn Plan> = std::sync::Arc::new(std::sync::Arc::new(net));
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
