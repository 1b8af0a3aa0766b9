//! Heap allocations per image in steady state, counted by a global allocator (this test
//! binary only): decode + transform of a JPEG into a batch slot.
//!
//! Once the pools are warm, decoding a JPEG allocates nothing: pixel buffers come from the
//! `BufferPool`, and zune-jpeg's own state (coefficients, upsampling rows, component list)
//! is carried from one image to the next through the `DecoderScratch` our patched copy adds
//! (crates/zune-jpeg/PATCHES.md). The transform (resampling included) allocates nothing at
//! all. Unpatched, zune-jpeg allocates 17–19 times per image; the test prints that too.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

use inferkit::preprocess::{BufferPool, DecodeOptions, Decoder, Scratch, Transform};

struct Counting;

thread_local! {
    /// Allocations made by this thread. Per thread, so that the test harness's own thread
    /// (which allocates to print "has been running for over 60 seconds" when valgrind slows
    /// the test down) does not count as the decoder's.
    static ALLOCS: Cell<usize> = const { Cell::new(0) };
}

fn counted() {
    // `try_with`: a thread being torn down may still allocate.
    let _ = ALLOCS.try_with(|c| c.set(c.get() + 1));
}

// SAFETY: forwards to the system allocator unchanged; only counts calls.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        counted();
        // SAFETY: same contract as the caller's.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: same contract as the caller's.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        counted();
        // SAFETY: same contract as the caller's.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// Allocations `f` makes on this thread (decode and transform run on the caller's thread).
fn count(f: impl FnOnce()) -> usize {
    let before = ALLOCS.with(Cell::get);
    f();
    ALLOCS.with(Cell::get) - before
}

/// JPEG encodings of the same photos: baseline 4:2:0, progressive, restart markers,
/// 4:2:2, 4:4:4, grey, grey progressive, CMYK and YCCK.
const FILES: &[&str] = &[
    "assets/images/chelsea.jpg",
    "tests/fixtures/images/chelsea_progressive.jpg",
    "tests/fixtures/images/astronaut_restart_rows.jpg",
    "tests/fixtures/images/coffee_422.jpg",
    "tests/fixtures/images/coffee_444.jpg",
    "tests/fixtures/images/camera_grey.jpg",
    "tests/fixtures/images/camera_grey_progressive.jpg",
    "tests/fixtures/images/chelsea_cmyk.jpg",
    "tests/fixtures/images/chelsea_ycck.jpg",
];

#[test]
fn steady_state_allocations_per_image() {
    let t = Transform::imagenet(224);
    let mut slot = vec![0f32; t.output_len().unwrap()];
    for file in FILES {
        let bytes = std::fs::read(format!("{}/{file}", env!("CARGO_MANIFEST_DIR"))).unwrap();
        let decoder = Decoder::with_pool(DecodeOptions::default(), BufferPool::new(2));
        let mut scratch = Scratch::new();
        for _ in 0..3 {
            let img = decoder.decode(&bytes).unwrap();
            t.apply_into(&img, &mut slot, &mut scratch).unwrap();
        }
        for round in 0..3 {
            let mut img = None;
            let decode = count(|| img = Some(decoder.decode(&bytes).unwrap()));
            let img = img.unwrap();
            let transform = count(|| t.apply_into(&img, &mut slot, &mut scratch).unwrap());
            let release = count(|| drop(img));
            if round == 0 {
                // The unpatched path for comparison: a fresh zune-jpeg decoder per image.
                let bare = count(|| {
                    use zune_core::bytestream::ZCursor;
                    let mut d = zune_jpeg::JpegDecoder::new(ZCursor::new(&bytes[..]));
                    let _ = d.decode();
                });
                println!(
                    "{file}: allocations per image: decode {decode}, transform {transform} \
                     (a fresh zune-jpeg decoder: {bare}, its output included)"
                );
            }
            assert_eq!(decode, 0, "{file}: decoding allocated (round {round})");
            assert_eq!(
                transform, 0,
                "{file}: the transform allocated (round {round})"
            );
            assert_eq!(release, 0, "{file}: returning the buffer allocated");
        }
    }
}
