//! Heap allocations per image in steady state, counted by a global allocator (this test
//! binary only): decode + transform of a JPEG into a batch slot.
//!
//! inferkit's own code allocates nothing per image once its pools and scratch are warm: the
//! transform (resampling included) allocates nothing at all. The JPEG decoder it drives,
//! zune-jpeg, builds fresh decoder state per image (17 allocations for this photo); this
//! test pins that we add nothing on top of it.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};

use inferkit::preprocess::{BufferPool, DecodeOptions, Decoder, Scratch, Transform};

struct Counting;

static ALLOCS: AtomicUsize = AtomicUsize::new(0);

// SAFETY: forwards to the system allocator unchanged; only counts calls.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: same contract as the caller's.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: same contract as the caller's.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: same contract as the caller's.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

fn count(f: impl FnOnce()) -> usize {
    let before = ALLOCS.load(Ordering::Relaxed);
    f();
    ALLOCS.load(Ordering::Relaxed) - before
}

#[test]
fn steady_state_allocations_per_image() {
    let bytes = std::fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/assets/images/chelsea.jpg"
    ))
    .unwrap();
    let decoder = Decoder::with_pool(DecodeOptions::default(), BufferPool::new(2));
    let t = Transform::imagenet(224);
    let mut scratch = Scratch::new();
    let mut slot = vec![0f32; t.output_len().unwrap()];
    for _ in 0..3 {
        let img = decoder.decode(&bytes).unwrap();
        t.apply_into(&img, &mut slot, &mut scratch).unwrap();
    }
    let mut img = None;
    let decode = count(|| img = Some(decoder.decode(&bytes).unwrap()));
    let img = img.unwrap();
    let transform = count(|| t.apply_into(&img, &mut slot, &mut scratch).unwrap());
    drop(img);
    // The bare decoder on the same bytes, for what it allocates internally.
    let bare = count(|| {
        use zune_core::bytestream::ZCursor;
        let mut out = vec![0u8; 451 * 300 * 3];
        let mut d = zune_jpeg::JpegDecoder::new(ZCursor::new(&bytes[..]));
        d.decode_into(&mut out).unwrap();
    });
    println!(
        "allocations per image: decode {decode} (bare zune-jpeg: {bare}, incl. its output), transform {transform}"
    );
    assert_eq!(
        decode + 1,
        bare,
        "decode adds nothing to zune-jpeg's own (its output comes from the pool)"
    );
    assert_eq!(transform, 0, "transform into a slot allocates nothing");
}
