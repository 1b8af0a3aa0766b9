//! The int8 GEMM (`cpu::int8`: u8 activations × s8 weights, `i32` sums, requantised to u8 in
//! the store) on each path this CPU runs — AVX-512 VNNI, AVX2, portable — against the f32
//! packed-weight kernel the native EfficientNet uses (`cpu::packed`), single-threaded, on the
//! models' shapes of `benches/gemm.rs` (EfficientNet-Lite0's 1×1 convolutions and im2col
//! stem, MiniLM's projections). Both outputs are
//! checked before timing (int8 against the f32 product of the dequantised operands).
//!
//! ```text
//! cargo bench --bench int8
//! ```

use std::hint::black_box;
use std::time::Duration;

use criterion::{Criterion, Throughput};

mod common;
use common::{GEMM_SHAPES, median, ratio};
use inferkit::infer_core::cpu::epilogue::Act;
use inferkit::infer_core::cpu::int8::{Isa, Out, PackedI8, gemm_u8i8};
use inferkit::infer_core::cpu::packed::{self, Packed};

/// The models' products of `benches/gemm.rs` (not its square peak shape).
fn shapes() -> &'static [(&'static str, usize, usize, usize)] {
    &GEMM_SHAPES[1..]
}

fn name(isa: Isa) -> &'static str {
    match isa {
        Isa::Vnni512 => "vnni512",
        Isa::Avx2 => "avx2",
        Isa::Portable => "portable",
    }
}

fn main() {
    let mut c = Criterion::default()
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(3))
        .configure_from_args();
    let mut g = c.benchmark_group("int8");
    g.sample_size(10);
    let paths = Isa::available();
    // scripts/bench-short.sh (CI): the portable path only on the small products
    let short = std::env::var_os("INFERKIT_BENCH_SHORT").is_some();
    for &(shape, m, k, n) in shapes() {
        // activations 0..=255 around zero point 128, weights −127..=127
        let a: Vec<u8> = (0..m * k).map(|i| (i * 7919 % 251) as u8).collect();
        let w: Vec<i8> = (0..k * n)
            .map(|i| ((i * 104_729 % 255) as i32 - 127) as i8)
            .collect();
        let (a_scale, w_scale, zero) = (0.02_f32, 0.01_f32, 128_u8);
        let af: Vec<f32> = a
            .iter()
            .map(|&q| a_scale * (f32::from(q) - f32::from(zero)))
            .collect();
        let wf: Vec<f32> = w.iter().map(|&q| w_scale * f32::from(q)).collect();
        let scale = vec![a_scale * w_scale; n];
        let bias = vec![0.0_f32; n];
        g.throughput(Throughput::Elements((2 * m * k * n) as u64));

        let fw = Packed::new(&wf, k, n);
        let mut f32_out = vec![0.0_f32; m * n];
        // the reference, computed here too: a filter may skip the f32 benchmark
        packed::gemm(m, &af, k, &fw, &bias, Act::Identity, None, &mut f32_out);
        g.bench_function(format!("f32_packed_{shape}"), |b| {
            b.iter(|| {
                packed::gemm(
                    m,
                    black_box(&af),
                    k,
                    &fw,
                    &bias,
                    Act::Identity,
                    None,
                    &mut f32_out,
                )
            })
        });

        let qw = PackedI8::new(&w, k, n);
        let mut got = vec![0.0_f32; m * n];
        let out_scale = 0.05_f32;
        let mut q8 = vec![0_u8; m * n];
        for &isa in &paths {
            if short && isa == Isa::Portable && m * k * n > 50_000_000 {
                continue;
            }
            gemm_u8i8(
                isa,
                (m, &a, k, zero),
                &qw,
                Out::F32 {
                    out: &mut got,
                    scale: &scale,
                    bias: &bias,
                    act: Act::Identity,
                },
            );
            let worst = got
                .iter()
                .zip(&f32_out)
                .map(|(x, y)| (x - y).abs() / (1.0 + y.abs()))
                .fold(0.0_f32, f32::max);
            assert!(
                worst < 1e-3,
                "{shape}: int8 {isa:?} and f32 differ by {worst}"
            );
            g.bench_function(format!("int8_{}_{shape}", name(isa)), |b| {
                b.iter(|| {
                    gemm_u8i8(
                        isa,
                        (m, black_box(&a), k, zero),
                        &qw,
                        Out::U8 {
                            out: &mut q8,
                            scale: &scale,
                            bias: &bias,
                            act: Act::Relu6,
                            out_scale,
                            out_zero: 0,
                        },
                    )
                })
            });
        }
    }
    g.finish();
    c.final_summary();

    println!(
        "\nint8: one thread, GOP/s (2·m·k·n per product; medians of this run); int8 stores u8 (bias, ReLU6, requantised), f32 stores f32 (packed: the native EfficientNet's kernel)"
    );
    let head: Vec<String> = paths.iter().map(|&i| format!("int8 {}", name(i))).collect();
    println!(
        "| shape (m×k×n) | f32 packed | {} | int8 {} / f32 |",
        head.join(" | "),
        name(paths[0])
    );
    println!("|---|---|{}---|", "---|".repeat(paths.len()));
    for &(shape, m, k, n) in shapes() {
        let ops = (2 * m * k * n) as f64;
        let gops = |id: String| median("int8", &id).map(|s| ops / s / 1e9);
        let f = gops(format!("f32_packed_{shape}"));
        let per: Vec<Option<f64>> = paths
            .iter()
            .map(|&i| gops(format!("int8_{}_{shape}", name(i))))
            .collect();
        let show = |v: Option<f64>| v.map_or("-".into(), |v| format!("{v:.1}"));
        println!(
            "| {m}×{k}×{n} | {} | {} | {} |",
            show(f),
            per.iter().map(|v| show(*v)).collect::<Vec<_>>().join(" | "),
            ratio(per[0], f, 2)
        );
    }
}
