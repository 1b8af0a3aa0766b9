//! `Checkpoint::release`: the pages of a tensor given back to the kernel are read back from
//! the file, unchanged (this runs under valgrind: scripts/valgrind.sh), and what cannot be
//! given back says 0.

use inferkit_weights::{Checkpoint, Error, TensorBytes, save};

#[test]
fn released_tensors_read_back_unchanged() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("m.safetensors");
    let big =
        ndarray::Array2::<i8>::from_shape_fn((700, 1000), |(i, j)| ((i * 31 + j * 7) % 255) as i8);
    let small = ndarray::Array1::<f32>::from_elem(100, 1.5);
    save(
        &path,
        [
            ("big", TensorBytes::from_array(big.view())),
            ("small", TensorBytes::from_array(small.view())),
        ],
        None,
    )
    .unwrap();
    let ckpt = Checkpoint::open(&path).unwrap();
    let view = ckpt.tensor("big").unwrap().view::<i8>().unwrap();
    assert_eq!(view, big.view().into_dyn());
    // 700,000 bytes hold at least 9 whole 64 KiB blocks wherever they start
    let given = ckpt.release(["big"]).unwrap();
    assert!((9 * 65536..=700_000).contains(&given), "{given}");
    assert_eq!(given % 65536, 0);
    // the view borrowed before still reads the file's bytes, and a new one too
    assert_eq!(view, big.view().into_dyn());
    assert_eq!(
        ckpt.tensor("big").unwrap().view::<i8>().unwrap(),
        big.view().into_dyn()
    );
    // twice is fine
    assert_eq!(ckpt.release(["big"]).unwrap(), given);
    // side by side ("big" then "small", sorted by dtype size: F32 first, so "small" leads):
    // together they give back at least what "big" gives alone
    assert!(ckpt.release(["small", "big"]).unwrap() >= given);
    // less than a block, a copy in memory, a name not there
    assert_eq!(ckpt.release(["small"]).unwrap(), 0);
    assert_eq!(
        Checkpoint::read(&path).unwrap().release(["big"]).unwrap(),
        0
    );
    assert!(matches!(
        ckpt.release(["big", "nope"]),
        Err(Error::TensorNotFound { tensor, .. }) if tensor == "nope"
    ));
}
