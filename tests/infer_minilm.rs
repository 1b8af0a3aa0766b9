//! The native MiniLM (all-MiniLM-L6-v2) against sentence-transformers on 26 texts — empty,
//! blank, short, long (614 and 302 word pieces, truncated to 256), accents, Chinese, emoji,
//! Arabic, Cyrillic — (fixtures from scripts/make_minilm_fixtures.py): cosine ≥ 0.9999 each.
//! Needs the model from scripts/fetch-models.sh.

use std::path::{Path, PathBuf};

use inferkit::infer_core::cpu::MiniLm;
use inferkit::infer_core::{Model, Plan};
use ndarray::{Array2, ArrayD, Axis};
use ndarray_npy::read_npy;

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn model_dir() -> PathBuf {
    root().join(".cache/models/all-MiniLM-L6-v2")
}

fn fixtures() -> (Vec<String>, Array2<f32>) {
    let dir = root().join("tests/fixtures/models");
    let meta: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("minilm.texts.json")).unwrap())
            .unwrap();
    let texts = meta["texts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t.as_str().unwrap().to_owned())
        .collect();
    (texts, read_npy(dir.join("minilm.embeddings.npy")).unwrap())
}

fn cosine(a: ndarray::ArrayView1<'_, f32>, b: ndarray::ArrayView1<'_, f32>) -> f32 {
    a.dot(&b) / (a.dot(&a).sqrt() * b.dot(&b).sqrt())
}

fn check(got: &Array2<f32>, want: &Array2<f32>, what: &str) {
    assert_eq!(got.dim(), want.dim(), "{what}");
    let mut worst = 1.0_f32;
    for (i, (g, w)) in got.outer_iter().zip(want.outer_iter()).enumerate() {
        let c = cosine(g, w);
        worst = worst.min(c);
        assert!(c >= 0.9999, "{what}: text {i}: cosine {c}");
        let norm = g.dot(&g).sqrt();
        assert!((norm - 1.0).abs() < 1e-4, "{what}: text {i}: norm {norm}");
    }
    println!("{what}: worst cosine {worst}");
}

#[test]
fn embeddings_match_sentence_transformers() {
    let (texts, want) = fixtures();
    assert!(texts.len() >= 20);
    let model = MiniLm::load(model_dir()).unwrap();
    // all at once: padded to the longest (256 after truncation)
    check(&model.embed(&texts).unwrap(), &want, "one batch");
    // one at a time: no padding at all
    let mut single = Array2::zeros(want.dim());
    for (i, t) in texts.iter().enumerate() {
        single.row_mut(i).assign(&model.embed(&[t]).unwrap().row(0));
    }
    check(&single, &want, "one by one");
    // three threads, through the inference trait
    let three = MiniLm::load(model_dir()).unwrap().with_threads(3).unwrap();
    let tokens = three.tokenize(&texts).unwrap();
    assert_eq!(tokens.ids.ncols(), 256, "truncated to 256 tokens");
    let plan: std::sync::Arc<dyn Plan> = std::sync::Arc::new(std::sync::Arc::new(three));
    let model = Model::new(plan, 1);
    let out: ArrayD<f32> = model
        .run(&[
            ("input_ids", (&tokens.ids).into()),
            ("attention_mask", (&tokens.mask).into()),
        ])
        .unwrap()
        .remove(0)
        .into_array()
        .unwrap();
    let out = out.into_dimensionality::<ndarray::Ix2>().unwrap();
    check(&out, &want, "three threads, Model");
    assert_eq!(out.len_of(Axis(1)), 384);
}

#[test]
fn bad_token_ids_and_shapes_are_errors_naming_the_place() {
    let model = MiniLm::load(model_dir()).unwrap();
    let ids = ndarray::array![[101_i64, 7592, 102], [101, 99_999, 102]];
    let mask = Array2::<i64>::ones((2, 3));
    let e = model
        .forward(ids.view(), mask.view())
        .unwrap_err()
        .to_string();
    assert!(e.contains("input_ids[1, 1] = 99999"), "{e}");
    let e = model
        .forward(ids.view(), Array2::<i64>::ones((2, 2)).view())
        .unwrap_err()
        .to_string();
    assert!(e.contains("differ"), "{e}");
    let long = Array2::<i64>::ones((1, 600));
    let e = model
        .forward(long.view(), long.view())
        .unwrap_err()
        .to_string();
    assert!(e.contains("600 tokens"), "{e}");
}

#[test]
fn a_missing_or_broken_model_folder_is_an_error_naming_the_file() {
    let e = MiniLm::load("/nonexistent").unwrap_err().to_string();
    assert!(e.contains("/nonexistent/model.safetensors"), "{e}");
    // the checkpoint is there, its config is not
    let dir = tempfile::tempdir().unwrap();
    std::os::unix::fs::symlink(
        model_dir().join("model.safetensors"),
        dir.path().join("model.safetensors"),
    )
    .unwrap();
    let e = MiniLm::load(dir.path()).unwrap_err().to_string();
    assert!(
        e.contains(&dir.path().join("config.json").display().to_string()),
        "{e}"
    );
    let dir = tempfile::tempdir().unwrap();
    for f in ["config.json", "tokenizer.json"] {
        std::fs::copy(model_dir().join(f), dir.path().join(f)).unwrap();
    }
    // a checkpoint without the encoder's tensors
    let emb = ndarray::Array2::<f32>::zeros((2, 2));
    inferkit::weights::save(
        dir.path().join("model.safetensors"),
        [(
            "embeddings.LayerNorm.weight",
            inferkit::weights::TensorBytes::from_array(emb.view()),
        )],
        None,
    )
    .unwrap();
    let e = MiniLm::load(dir.path()).unwrap_err().to_string();
    assert!(e.contains("embeddings.word_embeddings.weight"), "{e}");
}
