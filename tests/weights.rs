//! The weights crate against reference values computed by PyTorch and the safetensors
//! library (scripts/make_weight_fixtures.py made them once; see tests/fixtures/weights/).

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use inferkit::weights::{Checkpoint, DType, Error, Format, StoredTensor};
use serde::Deserialize;

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/weights")
}

#[derive(Deserialize, Debug)]
struct Expected {
    name: String,
    dtype: String,
    shape: Vec<usize>,
    #[serde(default)]
    strides: Option<Vec<usize>>,
    sum: f64,
    #[serde(default)]
    values: Option<Vec<f64>>,
}

fn expected() -> HashMap<String, Vec<Expected>> {
    let text = std::fs::read_to_string(fixtures().join("expected.json")).unwrap();
    serde_json::from_str(&text).unwrap()
}

/// Relative closeness for sums: torch sums in a different order than ours (pairwise,
/// vectorised), so f64 sums may differ in the last bits.
fn close(a: f64, b: f64) -> bool {
    a == b || (a - b).abs() <= 1e-9 * a.abs().max(b.abs()).max(1e-300)
}

fn check_tensor(file: &str, t: &StoredTensor<'_>, e: &Expected) {
    let ctx = format!("{file}: {}", e.name);
    assert_eq!(t.dtype().as_str(), e.dtype, "{ctx}: dtype");
    assert_eq!(t.shape(), e.shape.as_slice(), "{ctx}: shape");
    if let Some(strides) = &e.strides {
        assert_eq!(t.strides(), strides.as_slice(), "{ctx}: strides");
    }
    // Every value, exactly: each dtype converts to f64 without rounding (the fixtures keep
    // 64-bit integers below 2^53).
    let got = t.to_f64();
    assert_eq!(got.shape(), e.shape.as_slice(), "{ctx}: to_f64 shape");
    let want = e.values.as_ref().expect("fixture values");
    assert_eq!(
        got.iter().copied().collect::<Vec<_>>(),
        *want,
        "{ctx}: values"
    );
    assert!(
        close(t.sum_f64(), e.sum),
        "{ctx}: sum {} vs torch {}",
        t.sum_f64(),
        e.sum
    );
    // f32 conversion: the same values rounded to f32, into a fresh array and a caller buffer.
    let want32: Vec<f32> = want.iter().map(|&v| v as f32).collect();
    assert_eq!(
        t.to_f32().iter().copied().collect::<Vec<_>>(),
        want32,
        "{ctx}: to_f32"
    );
    let mut buf = vec![f32::NAN; t.numel()];
    t.to_f32_into(&mut buf).unwrap();
    assert_eq!(buf, want32, "{ctx}: to_f32_into");
}

fn check_file(file: &str, ordered: bool) {
    let all = expected();
    let want = &all[file];
    for ckpt in [
        Checkpoint::open(fixtures().join(file)).unwrap(),
        Checkpoint::read(fixtures().join(file)).unwrap(),
    ] {
        assert_eq!(ckpt.len(), want.len(), "{file}: tensor count");
        if ordered {
            let names: Vec<_> = ckpt.names().collect();
            let want_names: Vec<_> = want.iter().map(|e| e.name.as_str()).collect();
            assert_eq!(names, want_names, "{file}: names in file order");
        }
        for e in want {
            check_tensor(file, &ckpt.tensor(&e.name).unwrap(), e);
        }
    }
}

#[test]
fn torch_zip_matches_torch() {
    check_file("mixed.pt", true);
    assert_eq!(
        Checkpoint::open(fixtures().join("mixed.pt"))
            .unwrap()
            .format(),
        Format::TorchZip
    );
}

#[test]
fn torch_legacy_matches_torch() {
    check_file("mixed_legacy.pt", true);
    assert_eq!(
        Checkpoint::open(fixtures().join("mixed_legacy.pt"))
            .unwrap()
            .format(),
        Format::TorchLegacy
    );
}

#[test]
fn rebuild_tensor_v3_dtypes_match_torch() {
    check_file("v3.pt", true);
}

#[test]
fn safetensors_matches_safetensors_library() {
    check_file("mixed.safetensors", false);
    let ckpt = Checkpoint::open(fixtures().join("mixed.safetensors")).unwrap();
    assert_eq!(
        ckpt.metadata().get("source").map(String::as_str),
        Some("make_weight_fixtures.py")
    );
    // File order is data-offset order.
    let offsets: Vec<_> = ckpt.tensors().map(|t| t.file_offset()).collect();
    assert!(offsets.windows(2).all(|w| w[0] <= w[1]), "{offsets:?}");
}

#[test]
fn sharded_index_matches_and_maps_each_shard_once() {
    check_file("sharded/model.safetensors.index.json", false);
    let ckpt = Checkpoint::open(fixtures().join("sharded/model.safetensors.index.json")).unwrap();
    assert_eq!(ckpt.format(), Format::ShardedSafetensors);
    let mut files: Vec<_> = ckpt.tensors().map(|t| t.file().to_path_buf()).collect();
    files.dedup();
    assert_eq!(
        files.len(),
        2,
        "tensors grouped by shard, shards in order: {files:?}"
    );
    assert!(ckpt.metadata().contains_key("total_size"));
}

#[test]
fn shared_storages_and_offsets_are_views_of_the_same_bytes() {
    for file in ["mixed.pt", "mixed_legacy.pt"] {
        let ckpt = Checkpoint::open(fixtures().join(file)).unwrap();
        let base = ckpt.tensor("state_dict.shared.base").unwrap().file_offset();
        let at = |n: &str| ckpt.tensor(n).unwrap().file_offset();
        assert_eq!(at("state_dict.shared.matrix"), base, "{file}");
        assert_eq!(at("state_dict.shared.transposed"), base, "{file}");
        assert_eq!(at("state_dict.shared.row_slice"), base + 6 * 4, "{file}");
        assert_eq!(at("state_dict.shared.stepped"), base + 4 * 4, "{file}");
        let t = ckpt.tensor("state_dict.shared.transposed").unwrap();
        assert!(!t.is_contiguous());
        assert!(t.data().is_none());
        assert_eq!(t.strides(), &[1, 6]);
    }
}

#[test]
fn zip_storages_are_viewed_in_place() {
    // torch aligns zip entries to 64 bytes, so f32 data is viewable without a copy, with the
    // tensor's own strides.
    let ckpt = Checkpoint::open(fixtures().join("mixed.pt")).unwrap();
    let t = ckpt.tensor("state_dict.shared.transposed").unwrap();
    let v = t.view::<f32>().unwrap();
    assert_eq!(v.shape(), &[6, 4]);
    assert_eq!(v[[1, 2]], 13.0); // base.view(4, 6)[2][1]
    assert_eq!(v.strides(), &[1, 6]);
    let bf = ckpt
        .tensor("dtypes.bf16_t")
        .unwrap()
        .view::<half::bf16>()
        .unwrap();
    assert_eq!(bf[[3, 1]].to_f32(), 7.0);
    // Expanded (stride 0) tensors convert correctly whether or not ndarray views them.
    let e = ckpt.tensor("state_dict.expanded").unwrap();
    assert_eq!(e.strides(), &[0, 1]);
    if let Ok(v) = e.view::<f32>() {
        assert_eq!(v[[3, 2]], 3.25);
    }
    assert_eq!(e.cow::<f32>().unwrap()[[2, 1]], -2.0);
}

#[test]
fn view_refuses_wrong_type_and_says_what_to_call() {
    let ckpt = Checkpoint::open(fixtures().join("mixed.pt")).unwrap();
    let t = ckpt.tensor("dtypes.f16").unwrap();
    let err = t.view::<f32>().unwrap_err();
    assert!(matches!(err, Error::NotViewable { .. }), "{err}");
    assert!(err.to_string().contains("to_f32()"), "{err}");
    assert!(t.to_owned::<f32>().is_err());
    assert_eq!(t.to_owned::<half::f16>().unwrap()[[0, 1]].to_f32(), -1.25);
    let mut small = vec![0f32; 2];
    assert!(matches!(
        t.to_f32_into(&mut small),
        Err(Error::BufferSize {
            expected: 6,
            got: 2,
            ..
        })
    ));
    assert!(matches!(
        ckpt.tensor("nope"),
        Err(Error::TensorNotFound { .. })
    ));
}

#[test]
fn pickles_naming_os_system_are_refused_and_nothing_runs() {
    let marker = Path::new("/tmp/inferkit-pwned");
    let _ = std::fs::remove_file(marker);
    for file in ["evil_zip.pt", "evil_legacy.pt"] {
        for res in [
            Checkpoint::open(fixtures().join(file)),
            Checkpoint::read(fixtures().join(file)),
        ] {
            match res {
                Err(Error::ForbiddenGlobal {
                    module, name, path, ..
                }) => {
                    assert_eq!((module.as_str(), name.as_str()), ("os", "system"));
                    assert!(path.ends_with(file));
                }
                other => panic!("{file}: expected ForbiddenGlobal, got {other:?}"),
            }
        }
    }
    assert!(!marker.exists());
}

#[test]
fn bundled_efficientnet_matches_torch_load() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("assets/models/efficientnet-lite0.pth");
    let want: Vec<Expected> = serde_json::from_str(
        &std::fs::read_to_string(fixtures().join("efficientnet-lite0.expected.json")).unwrap(),
    )
    .unwrap();
    let ckpt = Checkpoint::open(&path).unwrap();
    assert_eq!(ckpt.format(), Format::TorchLegacy);
    assert_eq!(ckpt.len(), 296);
    assert_eq!(ckpt.tensors().map(|t| t.numel()).sum::<usize>(), 4_694_073);
    for (t, e) in ckpt.tensors().zip(&want) {
        assert_eq!(t.name(), e.name);
        assert_eq!(t.dtype().as_str(), e.dtype, "{}", e.name);
        assert_eq!(t.shape(), e.shape.as_slice(), "{}", e.name);
        assert_eq!(Some(t.strides()), e.strides.as_deref(), "{}", e.name);
        assert!(
            close(t.sum_f64(), e.sum),
            "{}: {} vs torch {}",
            e.name,
            t.sum_f64(),
            e.sum
        );
    }
    // Its conv weights are stored non-contiguous (channels-last strides).
    assert!(ckpt.tensors().any(|t| !t.is_contiguous()));
}

fn minilm_path() -> PathBuf {
    let cache = std::env::var_os("INFERKIT_MODELS")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join(".cache/models"));
    cache.join("all-MiniLM-L6-v2/model.safetensors")
}

#[test]
fn fetched_minilm_matches_safetensors_library() {
    let path = minilm_path();
    assert!(
        path.exists(),
        "{} is missing: run scripts/fetch-models.sh (the README's test command does)",
        path.display()
    );
    let ckpt = Checkpoint::open(&path).unwrap();
    let want: Vec<Expected> = serde_json::from_str(
        &std::fs::read_to_string(fixtures().join("minilm.expected.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(ckpt.len(), want.len());
    for e in &want {
        let t = ckpt.tensor(&e.name).unwrap();
        assert_eq!(t.shape(), e.shape.as_slice(), "{}", e.name);
        let numpy_name = match t.dtype() {
            DType::F32 => "float32",
            DType::I64 => "int64",
            other => panic!("{}: unexpected dtype {other}", e.name),
        };
        assert_eq!(e.dtype, numpy_name, "{}", e.name);
        assert!(
            close(t.sum_f64(), e.sum),
            "{}: {} vs numpy {}",
            e.name,
            t.sum_f64(),
            e.sum
        );
    }
    // Byte for byte what the safetensors crate reads, and zero-copy viewable.
    let bytes = std::fs::read(&path).unwrap();
    let reference = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    for (name, view) in reference.tensors() {
        let t = ckpt.tensor(&name).unwrap();
        assert_eq!(t.data().unwrap(), view.data(), "{name}");
        if t.dtype() == DType::F32 {
            assert_eq!(t.view::<f32>().unwrap().len(), t.numel());
        }
    }
}

#[test]
fn convert_round_trips_every_fixture() {
    let dir = tempfile::tempdir().unwrap();
    for file in [
        "mixed.pt",
        "mixed_legacy.pt",
        "v3.pt",
        "mixed.safetensors",
        "sharded/model.safetensors.index.json",
    ] {
        let out = dir.path().join("out.safetensors");
        let n = inferkit::weights::convert(fixtures().join(file), &out).unwrap();
        let src = Checkpoint::open(fixtures().join(file)).unwrap();
        let dst = Checkpoint::open(&out).unwrap();
        assert_eq!((n, dst.len()), (src.len(), src.len()), "{file}");
        for t in src.tensors() {
            let c = dst.tensor(t.name()).unwrap();
            assert_eq!(
                (c.dtype(), c.shape()),
                (t.dtype(), t.shape()),
                "{file}: {}",
                t.name()
            );
            assert!(c.is_contiguous());
            assert_eq!(
                c.data().unwrap(),
                &*t.to_contiguous_bytes(),
                "{file}: {}",
                t.name()
            );
        }
    }
}

#[test]
fn prefetch_options_open_the_same_tensors() {
    use inferkit::weights::{OpenOptions, Prefetch};
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("assets/models/efficientnet-lite0.pth");
    let plain = Checkpoint::open(&path).unwrap();
    for p in [Prefetch::WillNeed, Prefetch::Populate] {
        let c = Checkpoint::open_with(&path, &OpenOptions::new().with_prefetch(p)).unwrap();
        assert_eq!(c.len(), plain.len());
        for (a, b) in c.tensors().zip(plain.tensors()) {
            assert_eq!(
                a.to_contiguous_bytes(),
                b.to_contiguous_bytes(),
                "{p:?} {}",
                a.name()
            );
        }
    }
}

#[test]
fn f32_arena_holds_every_tensor_converted() {
    let ckpt = Checkpoint::open(fixtures().join("mixed.pt")).unwrap();
    let arena = ckpt.to_f32_all().unwrap();
    assert_eq!(arena.len(), ckpt.len());
    for ((name, v), t) in arena.iter().zip(ckpt.tensors()) {
        assert_eq!(name, t.name());
        assert_eq!(v, t.to_f32(), "{name}");
        assert_eq!(v.as_ptr() as usize % 64, 0, "{name}: 64-byte aligned");
    }
}

#[test]
fn bundled_efficientnet_f32_weights_are_viewed_in_place() {
    // Legacy files place storages back to back after the pickles, so their alignment depends
    // on the pickles' length; in the bundled file every F32 storage is 4-byte aligned, so
    // every F32 tensor (strided conv weights included) is a zero-copy view.
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("assets/models/efficientnet-lite0.pth");
    let ckpt = Checkpoint::open(&path).unwrap();
    let mut viewed = 0;
    for t in ckpt.tensors().filter(|t| t.dtype() == DType::F32) {
        let v = t.view::<f32>().unwrap();
        assert_eq!(
            v.strides().iter().map(|&s| s as usize).collect::<Vec<_>>(),
            t.strides()
        );
        assert_eq!(v.to_owned(), t.to_f32(), "{}", t.name());
        viewed += 1;
    }
    assert_eq!(viewed, 247);
}
