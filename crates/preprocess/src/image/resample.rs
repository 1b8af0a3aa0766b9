//! Pillow's antialiased convolution resampling (`Image.resize` with `BILINEAR`, `BICUBIC`,
//! `LANCZOS`), re-implemented so that it is exact and allocation-free in steady state.
//!
//! Same coefficients as Pillow's `Resample.c` for 8-bit images: computed in double
//! precision, normalised, converted to 22-bit fixed point, each pass rounding and clipping to
//! 8 bits. Pillow runs the horizontal pass first; we run the vertical pass first (over only
//! the columns the horizontal pass reads), which keeps the scalar horizontal pass to the
//! output's rows and makes large downscales several times cheaper. The intermediate rounds
//! at the other pass, so a pixel can differ from Pillow's by one 8-bit level. Computing a
//! window `[x0, x0 + w) × [y0, y0 + h)` of the full resize uses exactly the taps the full
//! resize uses for those pixels, so a fused resize + crop equals a resize followed by a crop.
//!
//! All buffers live in [`Resampler`] and only grow: once they have seen the largest image,
//! resizing allocates nothing.

/// Fixed-point precision of the 8-bit passes (Pillow: `32 - 8 - 2`).
const PRECISION_BITS: u32 = 32 - 8 - 2;

/// The filters, with Pillow's supports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kernel {
    Bilinear,
    Bicubic,
    Lanczos3,
}

impl Kernel {
    fn support(self) -> f64 {
        match self {
            Kernel::Bilinear => 1.0,
            Kernel::Bicubic => 2.0,
            Kernel::Lanczos3 => 3.0,
        }
    }

    fn weight(self, x: f64) -> f64 {
        match self {
            Kernel::Bilinear => {
                let x = x.abs();
                if x < 1.0 { 1.0 - x } else { 0.0 }
            }
            Kernel::Bicubic => {
                // Pillow's bicubic, a = -0.5.
                let a = -0.5;
                let x = x.abs();
                if x < 1.0 {
                    ((a + 2.0) * x - (a + 3.0)) * x * x + 1.0
                } else if x < 2.0 {
                    (((x - 5.0) * x + 8.0) * x - 4.0) * a
                } else {
                    0.0
                }
            }
            Kernel::Lanczos3 => {
                let sinc = |x: f64| {
                    if x == 0.0 {
                        1.0
                    } else {
                        let x = x * std::f64::consts::PI;
                        x.sin() / x
                    }
                };
                if (-3.0..3.0).contains(&x) {
                    sinc(x) * sinc(x / 3.0)
                } else {
                    0.0
                }
            }
        }
    }
}

/// Coefficients of one axis: for each output index, the first input index and the fixed-point
/// weights of its taps (`ksize` slots, the unused ones zero).
#[derive(Debug, Default)]
struct Axis {
    ksize: usize,
    /// `(first input index, tap count)` per output index.
    bounds: Vec<(usize, usize)>,
    weights: Vec<i32>,
    scratch: Vec<f64>,
}

impl Axis {
    /// Pillow's `precompute_coeffs` + `normalize_coeffs_8bpc` for outputs
    /// `[first, first + count)` of resizing `in_size` to `out_size`.
    fn compute(
        &mut self,
        kernel: Kernel,
        in_size: usize,
        out_size: usize,
        first: usize,
        count: usize,
    ) {
        let scale = in_size as f64 / out_size as f64;
        let filterscale = scale.max(1.0);
        let support = kernel.support() * filterscale;
        self.ksize = support.ceil() as usize * 2 + 1;
        self.bounds.clear();
        self.weights.clear();
        self.weights.resize(count * self.ksize, 0);
        self.scratch.clear();
        self.scratch.resize(self.ksize, 0.0);
        let ss = 1.0 / filterscale;
        for (i, xx) in (first..first + count).enumerate() {
            let center = (xx as f64 + 0.5) * scale;
            let xmin = ((center - support + 0.5) as i64).max(0) as usize;
            let xmax = ((center + support + 0.5) as i64).min(in_size as i64) as usize;
            let n = xmax.saturating_sub(xmin).min(self.ksize);
            let mut total = 0.0;
            for (x, w) in self.scratch[..n].iter_mut().enumerate() {
                *w = kernel.weight((x as f64 + xmin as f64 - center + 0.5) * ss);
                total += *w;
            }
            let k = &mut self.weights[i * self.ksize..(i + 1) * self.ksize];
            for (slot, &w) in k.iter_mut().zip(&self.scratch[..n]) {
                let w = if total != 0.0 { w / total } else { w };
                let fixed = w * f64::from(1u32 << PRECISION_BITS);
                *slot = if w < 0.0 {
                    (fixed - 0.5) as i32
                } else {
                    (fixed + 0.5) as i32
                };
            }
            self.bounds.push((xmin, n));
        }
    }
}

#[inline(always)]
fn clip8(v: i32) -> u8 {
    (v >> PRECISION_BITS).clamp(0, 255) as u8
}

/// `acc[i] += row[i] * w`: the vertical pass's inner loop, compiled for AVX2 and SSE4.1 too
/// (32-bit multiplies vectorise only there) and picked at run time.
#[multiversion::multiversion(targets("x86_64+avx2", "x86_64+sse4.1"))]
fn accumulate(acc: &mut [i32], row: &[u8], w: i32) {
    for (a, &p) in acc.iter_mut().zip(row) {
        *a += i32::from(p) * w;
    }
}

/// One output row of the horizontal pass, dispatched like [`accumulate`].
#[multiversion::multiversion(targets("x86_64+avx2", "x86_64+sse4.1"))]
fn horizontal_row(
    src_row: &[u8],
    dst: &mut [u8],
    bounds: &[(usize, usize)],
    weights: &[i32],
    ks: usize,
    col0: usize,
    c: usize,
) {
    for (xx, px) in dst.chunks_exact_mut(c).enumerate() {
        let (xmin, n) = bounds[xx];
        let k = &weights[xx * ks..xx * ks + n];
        let taps = &src_row[(xmin - col0) * c..(xmin - col0 + n) * c];
        if c == 3 {
            let half = 1i32 << (PRECISION_BITS - 1);
            let (mut s0, mut s1, mut s2) = (half, half, half);
            for (&w, p) in k.iter().zip(taps.chunks_exact(3)) {
                s0 += i32::from(p[0]) * w;
                s1 += i32::from(p[1]) * w;
                s2 += i32::from(p[2]) * w;
            }
            px[0] = clip8(s0);
            px[1] = clip8(s1);
            px[2] = clip8(s2);
        } else {
            for (ch, o) in px.iter_mut().enumerate() {
                let mut s = 1i32 << (PRECISION_BITS - 1);
                for (j, &w) in k.iter().enumerate() {
                    s += i32::from(taps[j * c + ch]) * w;
                }
                *o = clip8(s);
            }
        }
    }
}

/// `dst[i] = clip8(acc[i])`, dispatched like [`accumulate`].
#[multiversion::multiversion(targets("x86_64+avx2", "x86_64+sse4.1"))]
fn store(dst: &mut [u8], acc: &[i32]) {
    for (o, &a) in dst.iter_mut().zip(acc) {
        *o = clip8(a);
    }
}

/// Reusable resampling state: coefficient tables and the intermediate image.
#[derive(Debug, Default)]
pub(crate) struct Resampler {
    horizontal: Axis,
    vertical: Axis,
    temp: Vec<u8>,
    acc: Vec<i32>,
}

/// Interleaved 8-bit source pixels.
pub(crate) struct Source<'a> {
    pub(crate) pixels: &'a [u8],
    pub(crate) width: usize,
    pub(crate) height: usize,
    pub(crate) channels: usize,
}

/// One resize request: the full resized size, and the window of it to produce.
pub(crate) struct Window {
    pub(crate) full_w: usize,
    pub(crate) full_h: usize,
    pub(crate) x0: usize,
    pub(crate) y0: usize,
    pub(crate) w: usize,
    pub(crate) h: usize,
}

impl Resampler {
    /// Writes the window `win` of the resize of `source` to `out` (`win.w * win.h * channels`
    /// bytes, row-major).
    pub(crate) fn resize(
        &mut self,
        kernel: Kernel,
        source: &Source<'_>,
        win: &Window,
        out: &mut [u8],
    ) {
        let Source {
            pixels: src,
            width: sw,
            height: sh,
            channels: c,
        } = *source;
        debug_assert_eq!(out.len(), win.w * win.h * c);
        let need_h = win.full_w != sw;
        let need_v = win.full_h != sh;
        // Source columns the horizontal pass reads (the window's own when there is none).
        let (col0, cols) = if need_h {
            self.horizontal
                .compute(kernel, sw, win.full_w, win.x0, win.w);
            let first = self
                .horizontal
                .bounds
                .iter()
                .map(|b| b.0)
                .min()
                .unwrap_or(0);
            let last = self
                .horizontal
                .bounds
                .iter()
                .map(|b| b.0 + b.1)
                .max()
                .unwrap_or(0);
            (first, last - first)
        } else {
            (win.x0, win.w)
        };
        // Vertical pass into `temp`: `win.h` rows of `cols` pixels. Running it first keeps the
        // horizontal pass to the output's rows: a large downscale reads many source rows,
        // and the vertical pass over them is contiguous and vectorises.
        let row_len = cols * c;
        self.temp.clear();
        if need_v {
            self.vertical.compute(kernel, sh, win.full_h, win.y0, win.h);
            self.temp.resize(win.h * row_len, 0);
            let ks = self.vertical.ksize;
            self.acc.clear();
            self.acc.resize(row_len, 0);
            for (yy, dst) in self.temp.chunks_exact_mut(row_len).enumerate() {
                let (ymin, n) = self.vertical.bounds[yy];
                let k = &self.vertical.weights[yy * ks..yy * ks + n];
                self.acc.fill(1 << (PRECISION_BITS - 1));
                for (j, &w) in k.iter().enumerate() {
                    let start = ((ymin + j) * sw + col0) * c;
                    accumulate(&mut self.acc, &src[start..start + row_len], w);
                }
                store(dst, &self.acc);
            }
        } else {
            for r in win.y0..win.y0 + win.h {
                let start = (r * sw + col0) * c;
                self.temp.extend_from_slice(&src[start..start + row_len]);
            }
        }
        // Horizontal pass from `temp` into `out`.
        if !need_h {
            out.copy_from_slice(&self.temp);
            return;
        }
        let ks = self.horizontal.ksize;
        for (src_row, dst) in self
            .temp
            .chunks_exact(row_len)
            .zip(out.chunks_exact_mut(win.w * c))
        {
            horizontal_row(
                src_row,
                dst,
                &self.horizontal.bounds,
                &self.horizontal.weights,
                ks,
                col0,
                c,
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identity_when_sizes_match() {
        let src: Vec<u8> = (0..60).map(|i| (i * 4) as u8).collect();
        let mut r = Resampler::default();
        let mut out = vec![0; 60];
        let win = Window {
            full_w: 5,
            full_h: 4,
            x0: 0,
            y0: 0,
            w: 5,
            h: 4,
        };
        let source = Source {
            pixels: &src,
            width: 5,
            height: 4,
            channels: 3,
        };
        r.resize(Kernel::Bilinear, &source, &win, &mut out);
        assert_eq!(out, src);
    }

    #[test]
    fn window_equals_crop_of_full_resize() {
        let (sw, sh) = (37, 23);
        let src: Vec<u8> = (0..sw * sh * 3).map(|i| ((i * 7919) % 251) as u8).collect();
        let mut r = Resampler::default();
        let source = Source {
            pixels: &src,
            width: sw,
            height: sh,
            channels: 3,
        };
        for kernel in [Kernel::Bilinear, Kernel::Bicubic, Kernel::Lanczos3] {
            let (fw, fh) = (16, 11);
            let mut full = vec![0; fw * fh * 3];
            r.resize(
                kernel,
                &source,
                &Window {
                    full_w: fw,
                    full_h: fh,
                    x0: 0,
                    y0: 0,
                    w: fw,
                    h: fh,
                },
                &mut full,
            );
            let (x0, y0, w, h) = (3, 2, 9, 7);
            let mut part = vec![0; w * h * 3];
            r.resize(
                kernel,
                &source,
                &Window {
                    full_w: fw,
                    full_h: fh,
                    x0,
                    y0,
                    w,
                    h,
                },
                &mut part,
            );
            for y in 0..h {
                assert_eq!(
                    &part[y * w * 3..(y + 1) * w * 3],
                    &full[((y0 + y) * fw + x0) * 3..((y0 + y) * fw + x0 + w) * 3],
                    "{kernel:?} row {y}"
                );
            }
        }
    }
}
