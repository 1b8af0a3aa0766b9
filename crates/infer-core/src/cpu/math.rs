//! Row-wise kernels of transformer encoders: layer norm, GELU (erf form), softmax with a
//! key mask, mean pooling and L2 normalisation.
//!
//! `exp` and `erf` are written here as polynomials rather than called from `libm`: a call
//! per element keeps the loops scalar (the GELU of one MiniLM batch is 38 M of them), while
//! these inline into loops the compiler vectorises (compiled per SIMD level through
//! `multiversion`). Accuracy: `exp` is Cephes' `expf` (relative error ≲ 2 ulp on the range
//! used), `erf` Abramowitz & Stegun 7.1.26 (absolute error ≤ 1.5e-7).

use multiversion::multiversion;

/// `eˣ` for `x` in about [-87, 88] (clamped outside it), as Cephes `expf`.
#[inline(always)]
pub fn exp(x: f32) -> f32 {
    const LOG2E: f32 = std::f32::consts::LOG2_E;
    const C1: f32 = 0.693_359_4;
    const C2: f32 = -2.121_944_4e-4;
    let x = x.clamp(-87.0, 88.0);
    let n = (x * LOG2E + 0.5).floor();
    let r = x - n * C1 - n * C2;
    let z = r * r;
    let p = (((((1.987_569_1e-4 * r + 1.398_199_9e-3) * r + 8.333_452e-3) * r + 4.166_579_6e-2)
        * r
        + 1.666_666_5e-1)
        * r
        + 0.5)
        * z
        + r
        + 1.0;
    // 2ⁿ from its exponent bits: n is a whole number in [-126, 127] after the clamp. Adding
    // 1.5·2²³ puts n in the low mantissa bits, so no float-to-int conversion is needed (`as`
    // saturates and checks for NaN, which kept this loop from vectorising well).
    const SHIFT: f32 = 12_582_912.0;
    let n_bits = (n + SHIFT).to_bits().wrapping_sub(SHIFT.to_bits());
    p * f32::from_bits(n_bits.wrapping_add(127) << 23)
}

/// The error function, Abramowitz & Stegun 7.1.26 (absolute error ≤ 1.5e-7).
#[inline(always)]
pub fn erf(x: f32) -> f32 {
    let a = x.abs();
    let t = 1.0 / (1.0 + 0.327_591_1 * a);
    let poly = ((((1.061_405_4 * t - 1.453_152_1) * t + 1.421_413_7) * t - 0.284_496_74) * t
        + 0.254_829_6)
        * t;
    let y = 1.0 - poly * exp(-a * a);
    y.copysign(x)
}

/// Lanes of the partial sums and maxima below: a float reduction in one accumulator is a
/// serial chain the compiler may not reorder, sixteen of them vectorise.
const LANES: usize = 16;

#[inline(always)]
fn sum(x: &[f32]) -> f32 {
    let mut acc = [0.0_f32; LANES];
    let chunks = x.chunks_exact(LANES);
    let tail: f32 = chunks.remainder().iter().sum();
    for c in chunks {
        for l in 0..LANES {
            acc[l] += c[l];
        }
    }
    acc.iter().sum::<f32>() + tail
}

/// GELU, erf form (`0.5·x·(1 + erf(x/√2))`, PyTorch's default and BERT's `"gelu"`), in
/// place.
#[multiversion(targets = "simd")]
pub fn gelu(x: &mut [f32]) {
    for v in x.iter_mut() {
        *v = 0.5 * *v * (1.0 + erf(*v * std::f32::consts::FRAC_1_SQRT_2));
    }
}

/// Layer norm over each row of `x` (rows of `gamma.len()`), biased variance, in place.
#[multiversion(targets = "simd")]
pub fn layer_norm(x: &mut [f32], gamma: &[f32], beta: &[f32], eps: f32) {
    let n = gamma.len();
    for row in x.chunks_exact_mut(n) {
        let mean = sum(row) / n as f32;
        row.iter_mut().for_each(|v| *v -= mean);
        let mut sq = [0.0_f32; LANES];
        let chunks = row.chunks_exact(LANES);
        let tail: f32 = chunks.remainder().iter().map(|v| v * v).sum();
        for c in chunks {
            for l in 0..LANES {
                sq[l] += c[l] * c[l];
            }
        }
        let var = (sq.iter().sum::<f32>() + tail) / n as f32;
        let inv = 1.0 / (var + eps).sqrt();
        for ((v, g), b) in row.iter_mut().zip(gamma).zip(beta) {
            *v = *v * inv * g + b;
        }
    }
}

/// Softmax of each row of `scores` (rows of `keep.len()`) after scaling by `scale`; keys with
/// `keep[j] == false` get probability 0 (as adding the most negative f32 does in PyTorch).
/// A row with no kept key is all zeros.
#[multiversion(targets = "simd")]
pub fn masked_softmax(scores: &mut [f32], keep: &[bool], scale: f32) {
    let n = keep.len();
    // `a > b` rather than `f32::max`: one vmaxps, no NaN ordering (scores have no NaN)
    let larger = |a: f32, b: f32| if a > b { a } else { b };
    for row in scores.chunks_exact_mut(n) {
        // scale, mask and the row's maximum in one pass, LANES running maxima
        let mut top = [f32::NEG_INFINITY; LANES];
        let mut chunks = row.chunks_exact_mut(LANES);
        let mut keeps = keep.chunks_exact(LANES);
        for (c, k) in (&mut chunks).zip(&mut keeps) {
            for l in 0..LANES {
                c[l] = if k[l] {
                    c[l] * scale
                } else {
                    f32::NEG_INFINITY
                };
                top[l] = larger(c[l], top[l]);
            }
        }
        let mut top = top.iter().fold(f32::NEG_INFINITY, |a, b| larger(a, *b));
        for (v, k) in chunks.into_remainder().iter_mut().zip(keeps.remainder()) {
            *v = if *k { *v * scale } else { f32::NEG_INFINITY };
            top = larger(*v, top);
        }
        if top == f32::NEG_INFINITY {
            row.fill(0.0);
            continue;
        }
        // exp clamps, so a masked key needs its own zero
        let e = |v: f32| {
            if v == f32::NEG_INFINITY {
                0.0
            } else {
                exp(v - top)
            }
        };
        let mut total = [0.0_f32; LANES];
        let mut chunks = row.chunks_exact_mut(LANES);
        for c in &mut chunks {
            for l in 0..LANES {
                c[l] = e(c[l]);
                total[l] += c[l];
            }
        }
        let mut total: f32 = total.iter().sum();
        for v in chunks.into_remainder() {
            *v = e(*v);
            total += *v;
        }
        let inv = 1.0 / total;
        row.iter_mut().for_each(|v| *v *= inv);
    }
}

/// Mean of the rows of `x` (`[tokens, width]`) whose `keep` is true, then divided by its
/// L2 norm (at least 1e-12): sentence-transformers' mean pooling and `Normalize`.
pub fn mean_pool_l2(x: &[f32], keep: &[bool], width: usize) -> Vec<f32> {
    let mut out = vec![0.0_f32; width];
    let mut count = 0.0_f32;
    for (row, k) in x.chunks_exact(width).zip(keep) {
        if *k {
            count += 1.0;
            for (o, v) in out.iter_mut().zip(row) {
                *o += *v;
            }
        }
    }
    let count = count.max(1e-9);
    out.iter_mut().for_each(|o| *o /= count);
    let norm = out.iter().map(|v| v * v).sum::<f32>().sqrt().max(1e-12);
    out.iter_mut().for_each(|o| *o /= norm);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    #[allow(clippy::excessive_precision)] // the table's digits, as printed
    fn exp_and_erf_match_the_standard_library_and_libm_values() {
        for i in -8000..=8000 {
            let x = i as f32 / 100.0;
            let (got, want) = (exp(x), (x as f64).exp());
            assert!(
                ((got as f64 - want) / want).abs() < 4e-7,
                "exp({x}) = {got}, want {want}"
            );
        }
        // erf reference values (Abramowitz & Stegun table 7.1)
        for (x, want) in [
            (0.0, 0.0),
            (0.1, 0.112_462_916),
            (0.5, 0.520_499_878),
            (1.0, 0.842_700_793),
            (2.0, 0.995_322_265),
            (3.5, 0.999_999_257),
            (-1.0, -0.842_700_793),
        ] {
            // 1.5e-7 from the approximation, the rest f32 rounding
            assert!((erf(x) - want).abs() <= 4e-7, "erf({x}) = {}", erf(x));
        }
    }

    #[test]
    fn masked_softmax_zeroes_masked_keys_and_sums_to_one() {
        let mut s = vec![1.0, 2.0, 3.0, 100.0, 0.5, 0.5, 0.5, -100.0];
        masked_softmax(&mut s, &[true, true, true, false], 1.0);
        assert_eq!(s[3], 0.0);
        assert!((s[..3].iter().sum::<f32>() - 1.0).abs() < 1e-6);
        assert!((s[2] - 0.665_240_9).abs() < 1e-6);
        assert!((s[4] - 1.0 / 3.0).abs() < 1e-6);
    }
}
