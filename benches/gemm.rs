//! Which GEMM the native CPU backend should use: its own packed-weight AVX-512 kernel
//! (`cpu::packed`, EfficientNet's convolutions) and `gemm` (sarah-quinones, MiniLM's
//! layers) against `matrixmultiply` (ndarray's `dot`), single-threaded f32, on a square
//! 2048³ product (the peak figure; PyTorch's sgemm on the same shape, measured by
//! scripts/anchors/gemm.py in the same run, is the anchor) and on shapes the two real
//! models use.
//!
//! ```text
//! scripts/bench-gemm.sh
//! ```

use std::hint::black_box;
use std::time::Duration;

use criterion::{Criterion, Throughput};
use ndarray::{Array2, linalg::general_mat_mul};

mod common;
use common::{GEMM_SHAPES as SHAPES, anchors, median};
use inferkit::infer_core::cpu::epilogue::Act;
use inferkit::infer_core::cpu::kernels::{Strides, sgemm, sgemm_strided};
use inferkit::infer_core::cpu::packed::{self, Packed};

fn filled(r: usize, c: usize, seed: f32) -> Array2<f32> {
    Array2::from_shape_fn((r, c), |(i, j)| {
        ((i * 31 + j * 17) % 97) as f32 / 97.0 - 0.5 + seed
    })
}

/// C = A·B with the `gemm` crate, one thread: the native backend's own checked wrapper.
fn gemm_crate(a: &Array2<f32>, b: &Array2<f32>, c: &mut Array2<f32>) {
    let (m, k) = a.dim();
    let n = b.dim().1;
    sgemm(
        m,
        k,
        n,
        a.as_slice().expect("standard layout"),
        b.as_slice().expect("standard layout"),
        c.as_slice_mut().expect("standard layout"),
    );
}

/// The largest `|x - y| / (1 + |y|)` over two products of the same shape.
fn worst_diff(out: &Array2<f32>, reference: &Array2<f32>) -> f32 {
    out.iter()
        .zip(reference.iter())
        .map(|(x, y)| (x - y).abs() / (1.0 + y.abs()))
        .fold(0.0_f32, f32::max)
}

fn main() {
    let mut c = Criterion::default()
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(3))
        .configure_from_args();
    let mut g = c.benchmark_group("gemm");
    g.sample_size(10);
    for (name, m, k, n) in SHAPES {
        let a = filled(m, k, 0.0);
        let b = filled(k, n, 0.25);
        let mut out = Array2::<f32>::zeros((m, n));
        // Both crates must agree before either is timed.
        gemm_crate(&a, &b, &mut out);
        let mut reference = Array2::<f32>::zeros((m, n));
        general_mat_mul(1.0, &a, &b, 0.0, &mut reference);
        let worst = worst_diff(&out, &reference);
        assert!(
            worst < 1e-3,
            "{name}: gemm and matrixmultiply differ by {worst}"
        );
        g.throughput(Throughput::Elements((2 * m * k * n) as u64));
        g.bench_function(format!("gemm_{name}"), |bch| {
            bch.iter(|| gemm_crate(black_box(&a), black_box(&b), &mut out))
        });
        // the weight packed once, as the models hold it (AVX-512 panels on this machine)
        let w = Packed::new(b.as_slice().unwrap(), k, n);
        let zero = vec![0.0_f32; n];
        let run = |out: &mut Array2<f32>| {
            let a = a.as_slice().unwrap();
            let out = out.as_slice_mut().unwrap();
            packed::gemm(m, black_box(a), k, &w, &zero, Act::Identity, None, out)
        };
        run(&mut out);
        let worst = worst_diff(&out, &reference);
        assert!(
            worst < 1e-3,
            "{name}: packed and matrixmultiply differ by {worst}"
        );
        g.bench_function(format!("packed_{name}"), |bch| bch.iter(|| run(&mut out)));
        if name.starts_with("minilm") {
            // MiniLM reads PyTorch's [out, in] weights in place: B as a transposed matrix
            let bt = b.t().as_standard_layout().into_owned();
            let (bt, a, out) = (bt.as_slice().unwrap(), a.as_slice().unwrap(), &mut out);
            g.bench_function(format!("gemm_bt_{name}"), |bch| {
                bch.iter(|| {
                    sgemm_strided(
                        m,
                        k,
                        n,
                        (black_box(a), Strides::row_major(k)),
                        (black_box(bt), Strides::transposed(k)),
                        (out.as_slice_mut().unwrap(), n),
                    )
                })
            });
        }
        g.bench_function(format!("matrixmultiply_{name}"), |bch| {
            bch.iter(|| general_mat_mul(1.0, black_box(&a), black_box(&b), 0.0, &mut reference))
        });
    }
    g.finish();
    c.final_summary();

    let torch = anchors("anchors-gemm.json")
        .get("torch_sgemm_2048_gflops")
        .and_then(|v| v.as_f64());
    println!(
        "\ngemm: one thread, f32, GFLOP/s (medians of this run); PyTorch sgemm 2048³ from target/bench-data/anchors-gemm.json: {}",
        torch.map_or("absent (run scripts/bench-gemm.sh)".into(), |v| format!(
            "{v:.1} GFLOP/s"
        ))
    );
    println!(
        "| shape (m×k×n) | packed | gemm | matrixmultiply | packed / gemm | gemm / matrixmultiply | packed / PyTorch 2048³ peak |"
    );
    println!("|---|---|---|---|---|---|---|");
    for (name, m, k, n) in SHAPES {
        let flops = (2 * m * k * n) as f64;
        let gf = |id: String| median("gemm", &id).map(|s| flops / s / 1e9);
        let (p, a, b) = (
            gf(format!("packed_{name}")),
            gf(format!("gemm_{name}")),
            gf(format!("matrixmultiply_{name}")),
        );
        let show = |v: Option<f64>| v.map_or("-".into(), |v| format!("{v:.1}"));
        let r = |x: Option<f64>, y: Option<f64>| match (x, y) {
            (Some(x), Some(y)) => format!("{:.2}", x / y),
            _ => "-".into(),
        };
        println!(
            "| {m}×{k}×{n} | {} | {} | {} | {} | {} | {} |",
            show(p),
            show(a),
            show(b),
            r(p, a),
            r(a, b),
            r(p, torch)
        );
    }
    println!(
        "packed: the weight packed once into 32-column panels and the AVX-512 tile kernel (cpu::packed; the EfficientNet path, bias fused, zero here); gemm: the gemm crate, packing per call (MiniLM's path)."
    );
}
