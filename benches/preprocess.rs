//! Image preprocessing on real JPEGs (the bundled photos and the baseline/progressive fixture
//! photos), one thread and two, against Pillow measured by `scripts/anchors/images.py` on the
//! same files (read from target/bench-data/anchors-images.json when present).
//!
//! ```text
//! scripts/bench-images.sh      # anchors + bench + table
//! ```

use std::hint::black_box;
use std::path::{Path, PathBuf};
use std::time::Duration;

use criterion::{Criterion, Throughput};

mod common;
use common::{anchors, median, ratio};
use inferkit::preprocess::{Batch, BufferPool, DecodeOptions, Decoder, Scratch, Transform};

/// The benchmark set: every `.jpg` in assets/images and the baseline and progressive photos
/// of tests/fixtures/images, in sorted order (the anchor script uses the same list).
fn files() -> Vec<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut v: Vec<PathBuf> = Vec::new();
    for (dir, pred) in [
        (
            "assets/images",
            (|n: &str| n.ends_with(".jpg")) as fn(&str) -> bool,
        ),
        ("tests/fixtures/images", |n: &str| {
            n.ends_with("_baseline.jpg") || n.ends_with("_progressive.jpg")
        }),
    ] {
        let mut names: Vec<PathBuf> = std::fs::read_dir(root.join(dir))
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| pred(p.file_name().unwrap().to_str().unwrap()))
            .collect();
        names.sort();
        v.extend(names);
    }
    v
}

fn main() {
    let data: Vec<Vec<u8>> = files().iter().map(|p| std::fs::read(p).unwrap()).collect();
    let decoder = Decoder::new(DecodeOptions::default());
    let megapixels: f64 = data
        .iter()
        .map(|b| decoder.decode(b).unwrap().info().megapixels())
        .sum();
    let pixels = (megapixels * 1e6) as u64;
    let transform = Transform::imagenet(224);

    let mut c = Criterion::default()
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(3))
        .configure_from_args();
    let mut g = c.benchmark_group("images");
    g.throughput(Throughput::Elements(pixels));
    g.sample_size(20);
    g.bench_function("decode_1t", |b| {
        b.iter(|| {
            for bytes in &data {
                black_box(decoder.decode(bytes).unwrap());
            }
        })
    });
    let mut scratch = Scratch::new();
    let mut slot = vec![0f32; transform.output_len().unwrap()];
    g.bench_function("imagenet_1t", |b| {
        b.iter(|| {
            for bytes in &data {
                let img = decoder.decode(bytes).unwrap();
                transform.apply_into(&img, &mut slot, &mut scratch).unwrap();
            }
            black_box(&slot);
        })
    });
    let decoded: Vec<_> = data.iter().map(|b| decoder.decode(b).unwrap()).collect();
    g.bench_function("transform_only_1t", |b| {
        b.iter(|| {
            for img in &decoded {
                transform.apply_into(img, &mut slot, &mut scratch).unwrap();
            }
            black_box(&slot);
        })
    });
    drop(decoded);
    let draft = Decoder::new(DecodeOptions::new().with_draft(Some(256)));
    g.bench_function("imagenet_draft_1t", |b| {
        b.iter(|| {
            for bytes in &data {
                let img = draft.decode(bytes).unwrap();
                transform.apply_into(&img, &mut slot, &mut scratch).unwrap();
            }
            black_box(&slot);
        })
    });
    let pool = BufferPool::new(2);
    for threads in [1, 2] {
        let rayon_pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .unwrap();
        g.bench_function(format!("batch_imagenet_{threads}t"), |b| {
            b.iter(|| {
                black_box(
                    rayon_pool.install(|| {
                        Batch::from_encoded(&data, &decoder, &transform, &pool).unwrap()
                    }),
                )
            })
        });
    }
    g.finish();
    c.final_summary();
    report(megapixels);
}

fn report(megapixels: f64) {
    let anchors = anchors("anchors-images.json");
    let a = |k: &str| anchors.get(k).and_then(|v| v.as_f64());
    let ours = |id: &str| median("images", id).map(|s| megapixels / s);
    let mps = |v: Option<f64>| v.map_or("-".into(), |v| format!("{v:.1} MP/s"));
    let ratio = |x, y| ratio(x, y, 2);
    println!(
        "\nimages: {megapixels:.2} MP in {} JPEGs; medians of this run; Pillow from target/bench-data/anchors-images.json ({})",
        files().len(),
        if anchors.is_empty() {
            "absent: run scripts/bench-images.sh"
        } else {
            "same machine"
        }
    );
    println!("| work | inferkit | Pillow | ratio |");
    println!("|---|---|---|---|");
    println!(
        "| JPEG decode, 1 thread | {} | {} | {} |",
        mps(ours("decode_1t")),
        mps(a("pillow_decode_mps")),
        ratio(ours("decode_1t"), a("pillow_decode_mps"))
    );
    println!(
        "| ImageNet preprocessing, 1 thread | {} | {} | {} |",
        mps(ours("imagenet_1t")),
        mps(a("pillow_imagenet_mps")),
        ratio(ours("imagenet_1t"), a("pillow_imagenet_mps"))
    );
    println!(
        "| ImageNet preprocessing (exact) vs Pillow draft mode | {} | {} | {} |",
        mps(ours("imagenet_1t")),
        mps(a("pillow_imagenet_draft_mps")),
        ratio(ours("imagenet_1t"), a("pillow_imagenet_draft_mps"))
    );
    println!(
        "| ImageNet preprocessing, draft mode, vs Pillow draft mode | {} | {} | {} |",
        mps(ours("imagenet_draft_1t")),
        mps(a("pillow_imagenet_draft_mps")),
        ratio(ours("imagenet_draft_1t"), a("pillow_imagenet_draft_mps"))
    );
    println!(
        "| transform only (resize, crop, normalise; decoded input), 1 thread | {} | | |",
        mps(ours("transform_only_1t"))
    );
    println!(
        "| Batch, 1 thread | {} | | |",
        mps(ours("batch_imagenet_1t"))
    );
    println!(
        "| Batch, 2 threads | {} | | {} of 1 thread |",
        mps(ours("batch_imagenet_2t")),
        ratio(ours("batch_imagenet_2t"), ours("batch_imagenet_1t"))
    );
}
