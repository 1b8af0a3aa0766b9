//! Heap bytes allocated while loading the native models, counted by a global allocator
//! (this test binary only, on the loading thread).
//!
//! MiniLM reads its weights in place from the mapped safetensors file: loading it must not
//! allocate anything near the checkpoint's size (the word-embedding table alone is 47 MB).
//! What it allocates is the tokenizer (~16 MB while parsing `tokenizer.json` into its
//! vocabulary maps, counted apart) and the checkpoint's tensor index (~150 KB). EfficientNet-Lite0
//! folds its batch norms into the convolutions, so it copies its weights once by design.
//! Needs the MiniLM model from scripts/fetch-models.sh.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::path::Path;

use inferkit::infer_core::cpu::{EfficientNetLite0, MiniLm};

struct Counting;

thread_local! {
    static BYTES: Cell<usize> = const { Cell::new(0) };
}

fn counted(n: usize) {
    let _ = BYTES.try_with(|c| c.set(c.get() + n));
}

// SAFETY: forwards to the system allocator unchanged; only adds up the sizes asked for.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        counted(layout.size());
        // SAFETY: same contract as the caller's.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: same contract as the caller's.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        counted(new_size.saturating_sub(layout.size()));
        // SAFETY: same contract as the caller's.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// Bytes `f` allocates on this thread (reallocations count their growth).
fn bytes<T>(f: impl FnOnce() -> T) -> (T, usize) {
    let before = BYTES.with(Cell::get);
    let out = f();
    (out, BYTES.with(Cell::get) - before)
}

#[test]
fn minilm_loads_without_copying_its_weights() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join(".cache/models/all-MiniLM-L6-v2");
    let file = std::fs::metadata(dir.join("model.safetensors"))
        .unwrap()
        .len() as usize;
    let (model, heap) = bytes(|| MiniLm::load(&dir).unwrap());
    // the tokenizer alone: parsing tokenizer.json and its vocabulary maps
    let (_, tokenizer) =
        bytes(|| tokenizers::Tokenizer::from_file(dir.join("tokenizer.json")).unwrap());
    let weights = heap.saturating_sub(tokenizer);
    println!(
        "MiniLM load: {heap} heap bytes allocated, {tokenizer} of them the tokenizer's; \
         {weights} for a {file}-byte checkpoint ({:.2}%)",
        100.0 * weights as f64 / file as f64
    );
    assert!(
        weights < 1 << 20,
        "{weights} bytes allocated besides the tokenizer: weights copied?"
    );
    // and the model works from the map
    let e = model.embed(&["in place"]).unwrap();
    assert!((e.row(0).dot(&e.row(0)) - 1.0).abs() < 1e-4);
}

#[test]
fn efficientnet_copies_its_weights_once_folded() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("assets/models/efficientnet-lite0.pth");
    let (_, heap) = bytes(|| EfficientNetLite0::load(&path).unwrap());
    // 4.65 M parameters after folding, f32: the folded weights are ~18.6 MB; loading
    // allocates them twice: read into arrays to fold the batch norms, then packed from
    // those straight into the GEMM's panels (no row-major copy between: with one, 56 MB)
    println!("EfficientNet-Lite0 load: {heap} heap bytes allocated");
    assert!(heap >= 18_000_000, "{heap}");
    assert!(heap <= 45_000_000, "{heap}");
}
