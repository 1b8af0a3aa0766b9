//! What every kernel does to its output last: the bias, an optional residual, and the
//! activation, in one pass. Shared by [`nhwc`](super::nhwc) and [`packed`](super::packed)
//! (which neither depend on each other for it).

use multiversion::multiversion;

/// The activation fused into a kernel's output.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Act {
    /// None.
    Identity,
    /// `min(max(x, 0), 6)`.
    Relu6,
    /// GELU, erf form ([`gelu`](super::math::gelu)).
    Gelu,
}

/// `out[r] = act(out[r] + bias [+ residual[r]])` for every row `r` (rows of
/// `bias.len()`).
pub fn add_bias(out: &mut [f32], bias: &[f32], act: Act, residual: Option<&[f32]>) {
    bias_act(out, bias, act, residual);
}

/// `out[r] = act(out[r] + bias [+ residual[r]])` for every row `r`.
#[multiversion(targets = "simd")]
fn bias_act(out: &mut [f32], bias: &[f32], act: Act, residual: Option<&[f32]>) {
    let c = bias.len();
    // the bias, the residual and ReLU6 in one pass over the output
    let relu6 = act == Act::Relu6;
    let finish = |v: f32| if relu6 { v.clamp(0.0, 6.0) } else { v };
    match residual {
        None => {
            for row in out.chunks_exact_mut(c) {
                for (o, b) in row.iter_mut().zip(bias) {
                    *o = finish(*o + *b);
                }
            }
        }
        Some(res) => {
            for (row, r) in out.chunks_exact_mut(c).zip(res.chunks_exact(c)) {
                for ((o, b), r) in row.iter_mut().zip(bias).zip(r) {
                    *o = finish(*o + (*b + *r));
                }
            }
        }
    }
    if act == Act::Gelu {
        super::math::gelu(out);
    }
}
