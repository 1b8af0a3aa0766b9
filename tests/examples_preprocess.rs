//! The `prep_images` example, run as a user runs it.

use std::path::Path;
use std::process::Command;

mod common;
use common::example;

use ndarray::{Array4, Axis};
use ndarray_npy::read_npy;

#[test]
fn prep_images_writes_the_good_images_and_names_the_bad() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let dir = tempfile::tempdir().unwrap();
    // Sorted order: a_coffee, b_broken, c_chelsea; the README is not an image file.
    std::fs::copy(
        root.join("assets/images/coffee.jpg"),
        dir.path().join("a_coffee.jpg"),
    )
    .unwrap();
    std::fs::write(dir.path().join("b_broken.jpg"), b"not a jpeg").unwrap();
    std::fs::copy(
        root.join("tests/fixtures/images/chelsea.bmp"),
        dir.path().join("c_chelsea.BMP"),
    )
    .unwrap();
    std::fs::write(dir.path().join("README.md"), b"# notes").unwrap();
    let out = dir.path().join("batch.npy");
    let run = Command::new(example("prep_images"))
        .arg(dir.path())
        .args([
            "--out".as_ref(),
            out.as_os_str(),
            "--threads".as_ref(),
            "2".as_ref(),
        ])
        .output()
        .unwrap();
    assert_eq!(
        run.status.code(),
        Some(2),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    let stderr = String::from_utf8(run.stderr).unwrap();
    assert!(
        stderr.contains("b_broken.jpg") && stderr.contains("unknown image format"),
        "{stderr}"
    );
    let stdout = String::from_utf8(run.stdout).unwrap();
    let summary: serde_json::Value = serde_json::from_str(stdout.lines().last().unwrap()).unwrap();
    assert_eq!(summary["images"], 2);
    assert_eq!(summary["failed"], 1);
    for k in ["seconds", "images_per_s", "mp_per_s"] {
        assert!(summary[k].as_f64().unwrap() > 0.0, "{k}: {summary}");
    }
    let batch: Array4<f32> = read_npy(&out).unwrap();
    assert_eq!(batch.shape(), &[2, 3, 224, 224]);
    // Slot 0 is coffee, slot 1 chelsea: each equals the library's own transform.
    use inferkit::preprocess::{DecodeOptions, Decoder, Scratch, Transform};
    let decoder = Decoder::new(DecodeOptions::default());
    for (i, f) in [
        "assets/images/coffee.jpg",
        "tests/fixtures/images/chelsea.bmp",
    ]
    .iter()
    .enumerate()
    {
        let img = decoder
            .decode(&std::fs::read(root.join(f)).unwrap())
            .unwrap();
        let mut slot = vec![0f32; 3 * 224 * 224];
        Transform::imagenet(224)
            .apply_into(&img, &mut slot, &mut Scratch::new())
            .unwrap();
        assert_eq!(
            batch.index_axis(Axis(0), i).as_slice().unwrap(),
            &slot[..],
            "{f}"
        );
    }
}

#[test]
fn prep_images_resize_and_crop_options() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let out = tempfile::NamedTempFile::new().unwrap();
    let run = Command::new(example("prep_images"))
        .arg(root.join("assets/images"))
        .args(["--out".as_ref(), out.path().as_os_str()])
        .args(["--resize", "160", "--crop", "128", "--threads", "1"])
        .output()
        .unwrap();
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    let batch: Array4<f32> = read_npy(out.path()).unwrap();
    assert_eq!(batch.shape(), &[4, 3, 128, 128]);
}
