//! Weight loading and conversion on a generated ~1.3 GB checkpoint (65 tensors, mixed F32 and
//! BF16), against the Rust floor measured in the same run and the Python anchors that
//! `scripts/anchors/weights.py` measures on the same files (read from
//! target/bench-data/anchors-weights.json when present).
//!
//! ```text
//! cargo bench --bench weights                      # full
//! scripts/bench-weights.sh                         # anchors + bench + table
//! ```

use std::hint::black_box;
use std::path::{Path, PathBuf};
use std::time::Duration;

use criterion::{Criterion, Throughput};

mod common;
use common::{anchors, bench_dir, median, ratio};
use inferkit::weights::{Checkpoint, DType, TensorBytes, save};

const F32_SHAPE: [usize; 2] = [4096, 2048];
const BF16_SHAPE: [usize; 2] = [4096, 1024];
const LAYERS: usize = 32;

fn expected_len() -> u64 {
    let f32_bytes = (LAYERS + 1) * F32_SHAPE.iter().product::<usize>() * 4;
    let bf16_bytes = LAYERS * BF16_SHAPE.iter().product::<usize>() * 2;
    (f32_bytes + bf16_bytes) as u64
}

/// The generated checkpoint: 33 F32 [4096, 2048] and 32 BF16 [4096, 1024] tensors,
/// 1.34 GB, deterministic contents. Written once; rewritten if its size is off.
fn mixed_checkpoint() -> PathBuf {
    let path = bench_dir().join("mixed-1.3g.safetensors");
    if let Ok(c) = Checkpoint::open(&path)
        && c.len() == 2 * LAYERS + 1
        && c.nbytes() as u64 == expected_len()
    {
        return path;
    }
    std::fs::create_dir_all(bench_dir()).unwrap();
    eprintln!(
        "generating {} ({} bytes of tensors)…",
        path.display(),
        expected_len()
    );
    let mut state = 0x9E37_79B9_7F4A_7C15u64;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        ((state >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
    };
    let mut tensors: Vec<(String, DType, Vec<usize>, Vec<u8>)> = Vec::new();
    for i in 0..=LAYERS {
        let n: usize = F32_SHAPE.iter().product();
        let bytes: Vec<u8> = (0..n).flat_map(|_| next().to_le_bytes()).collect();
        tensors.push((
            format!("layers.{i:02}.weight"),
            DType::F32,
            F32_SHAPE.to_vec(),
            bytes,
        ));
        if i < LAYERS {
            let n: usize = BF16_SHAPE.iter().product();
            let bytes: Vec<u8> = (0..n)
                .flat_map(|_| half::bf16::from_f32(next()).to_le_bytes())
                .collect();
            tensors.push((
                format!("layers.{i:02}.proj"),
                DType::BF16,
                BF16_SHAPE.to_vec(),
                bytes,
            ));
        }
    }
    save(
        &path,
        tensors
            .iter()
            .map(|(n, d, s, b)| (n.as_str(), TensorBytes::new(*d, s.clone(), &b[..]).unwrap())),
        None,
    )
    .unwrap();
    path
}

fn efficientnet() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("assets/models/efficientnet-lite0.pth")
}

fn view_all(c: &Checkpoint) -> usize {
    let mut n = 0;
    for t in c.tensors() {
        n += match t.dtype() {
            DType::F32 => t.view::<f32>().unwrap().len(),
            DType::BF16 => t.view::<half::bf16>().unwrap().len(),
            _ => t
                .cow::<f32>()
                .map(|v| v.len())
                .unwrap_or_else(|_| t.to_f32().len()),
        };
    }
    n
}

fn bench_open(c: &mut Criterion, path: &Path, torch_pt: Option<&Path>) {
    let mut g = c.benchmark_group("weights_open");
    g.sample_size(50);
    g.bench_function("floor_mmap_safetensors_deserialize", |b| {
        b.iter(|| {
            let f = std::fs::File::open(path).unwrap();
            // SAFETY: the benchmark's own file, not modified while mapped.
            let m = unsafe { memmap2::Mmap::map(&f) }.unwrap();
            let st = safetensors::SafeTensors::deserialize(&m).unwrap();
            black_box(st.len());
        })
    });
    g.bench_function("open_index", |b| {
        b.iter(|| black_box(Checkpoint::open(path).unwrap().len()))
    });
    g.bench_function("open_view_all", |b| {
        b.iter(|| black_box(view_all(&Checkpoint::open(path).unwrap())))
    });
    if let Some(pt) = torch_pt {
        g.bench_function("torch_zip_open_view_all", |b| {
            b.iter(|| black_box(view_all(&Checkpoint::open(pt).unwrap())))
        });
    }
    g.bench_function("legacy_efficientnet_open_index", |b| {
        b.iter(|| black_box(Checkpoint::open(efficientnet()).unwrap().len()))
    });
    g.finish();
}

fn bench_convert(c: &mut Criterion, path: &Path) {
    let ckpt = Checkpoint::open(path).unwrap();
    let out_bytes: usize = ckpt.tensors().map(|t| t.numel() * 4).sum();
    // Page the file in, so every variant reads from the page cache.
    black_box(
        ckpt.tensors()
            .map(|t| {
                t.data()
                    .unwrap()
                    .iter()
                    .step_by(4096)
                    .map(|&b| b as usize)
                    .sum::<usize>()
            })
            .sum::<usize>(),
    );

    let mut g = c.benchmark_group("weights_convert");
    g.sample_size(10);
    g.throughput(Throughput::Bytes(out_bytes as u64));

    // Touched destination buffers, reused across iterations.
    let mut bufs: Vec<Vec<f32>> = ckpt.tensors().map(|t| vec![1.0f32; t.numel()]).collect();
    let src: Vec<Vec<f32>> = ckpt.tensors().map(|t| vec![2.0f32; t.numel()]).collect();
    g.bench_function("memcpy_touched", |b| {
        b.iter(|| {
            for (d, s) in bufs.iter_mut().zip(&src) {
                d.copy_from_slice(s);
            }
            black_box(&bufs);
        })
    });
    drop(src);
    g.bench_function("to_f32_into_touched", |b| {
        b.iter(|| {
            for (t, buf) in ckpt.tensors().zip(bufs.iter_mut()) {
                t.to_f32_into(buf).unwrap();
            }
            black_box(&bufs);
        })
    });
    drop(bufs);
    g.bench_function("naive_vec_copy_fresh", |b| {
        b.iter(|| {
            let v: Vec<Vec<u8>> = ckpt.tensors().map(|t| t.data().unwrap().to_vec()).collect();
            black_box(v);
        })
    });
    g.bench_function("to_f32_fresh_vec", |b| {
        b.iter(|| {
            let v: Vec<_> = ckpt.tensors().map(|t| t.to_f32()).collect();
            black_box(v);
        })
    });
    g.bench_function("to_f32_all_arena", |b| {
        b.iter(|| black_box(ckpt.to_f32_all().unwrap()))
    });
    g.finish();
}

fn report(out_bytes: f64, torch_pt: bool) {
    let anchors = anchors("anchors-weights.json");
    let a = |k: &str| anchors.get(k).and_then(|v| v.as_f64());
    let m = |id: &str| median("weights_open", id);
    let c = |id: &str| median("weights_convert", id);
    let ms = |s: Option<f64>| s.map_or("-".into(), |s| format!("{:.3} ms", s * 1e3));
    let gbs = |s: Option<f64>| s.map_or("-".into(), |s| format!("{:.2} GB/s", out_bytes / s / 1e9));
    let ratio = |x, y| ratio(x, y, 1);
    println!(
        "\nweights: medians of this run (anchors from target/bench-data/anchors-weights.json: {})",
        if anchors.is_empty() {
            "absent: run scripts/bench-weights.sh"
        } else {
            "same machine"
        }
    );
    println!("| work | inferkit | reference | ratio |");
    println!("|---|---|---|---|");
    println!(
        "| open + index 1.3 GB safetensors | {} | Rust floor mmap+deserialize {} | {} |",
        ms(m("open_index")),
        ms(m("floor_mmap_safetensors_deserialize")),
        ratio(m("open_index"), m("floor_mmap_safetensors_deserialize"))
    );
    println!(
        "| open + view every tensor | {} | - | - |",
        ms(m("open_view_all"))
    );
    println!(
        "| usable weights vs torch.load(weights_only=True) of the same .pt | {} | {} | {} faster |",
        ms(if torch_pt {
            m("torch_zip_open_view_all")
        } else {
            None
        }),
        ms(a("torch_load_pt_s")),
        ratio(a("torch_load_pt_s"), m("torch_zip_open_view_all"))
    );
    println!(
        "| usable weights (safetensors) vs torch.load of the .pt | {} | {} | {} faster |",
        ms(m("open_view_all")),
        ms(a("torch_load_pt_s")),
        ratio(a("torch_load_pt_s"), m("open_view_all"))
    );
    println!(
        "| vs safetensors.torch.load_file (Python, mmap) | {} | {} | {} faster |",
        ms(m("open_view_all")),
        ms(a("safetensors_load_file_s")),
        ratio(a("safetensors_load_file_s"), m("open_view_all"))
    );
    println!(
        "| legacy EfficientNet open + index vs torch.load | {} | {} | {} faster |",
        ms(m("legacy_efficientnet_open_index")),
        ms(a("torch_load_efficientnet_s")),
        ratio(
            a("torch_load_efficientnet_s"),
            m("legacy_efficientnet_open_index")
        )
    );
    println!(
        "| to f32 into touched buffers (f32 bytes out) | {} | memcpy touched {} | {} of memcpy |",
        gbs(c("to_f32_into_touched")),
        gbs(c("memcpy_touched")),
        ratio(c("memcpy_touched"), c("to_f32_into_touched")).replace('x', "x the speed")
    );
    println!(
        "| to f32, fresh memory: arena (to_f32_all) | {} | naive per-tensor Vec copy {} | {} faster |",
        ms(c("to_f32_all_arena")),
        ms(c("naive_vec_copy_fresh")),
        ratio(c("naive_vec_copy_fresh"), c("to_f32_all_arena"))
    );
    println!(
        "| to f32, fresh memory: per-tensor to_f32() | {} | naive per-tensor Vec copy {} | {} faster |",
        ms(c("to_f32_fresh_vec")),
        ms(c("naive_vec_copy_fresh")),
        ratio(c("naive_vec_copy_fresh"), c("to_f32_fresh_vec"))
    );
}

fn main() {
    let path = mixed_checkpoint();
    let pt = bench_dir().join("mixed-1.3g.pt");
    let torch_pt = pt.exists().then_some(pt.as_path());
    let mut c = Criterion::default()
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(5))
        .configure_from_args();
    bench_open(&mut c, &path, torch_pt);
    bench_convert(&mut c, &path);
    c.final_summary();
    let out_bytes = Checkpoint::open(&path)
        .unwrap()
        .tensors()
        .map(|t| t.numel() * 4)
        .sum::<usize>() as f64;
    report(out_bytes, torch_pt.is_some());
}
