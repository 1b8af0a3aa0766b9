//! [`Transform`]: resize, centre crop, scale and normalise, written straight into a batch
//! slot as f32 — no intermediate float image.

use super::decode::DecodedImage;
use super::resample::{Kernel, Resampler, Source, Window};
use crate::{Error, Result};

/// How to resize before cropping.
#[derive(Debug, Clone, Copy, PartialEq)]
#[non_exhaustive]
pub enum Resize {
    /// Shorter side to `S`, longer side to `floor(S * long / short)`: torchvision's
    /// `Resize(S)`.
    ShorterSide(u32),
    /// Exactly `width` × `height`, ignoring the aspect ratio: torchvision's `Resize((h, w))`.
    Exact {
        /// Output width.
        width: u32,
        /// Output height.
        height: u32,
    },
    /// Fit inside `width` × `height` keeping the aspect ratio, centred, the rest filled with
    /// `fill` (as YOLO-style detectors expect).
    Letterbox {
        /// Canvas width.
        width: u32,
        /// Canvas height.
        height: u32,
        /// RGB (or grey: first value) of the padding.
        fill: [u8; 3],
    },
}

/// Memory layout of one image in the output.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Layout {
    /// Channels, then rows, then columns (PyTorch).
    #[default]
    Chw,
    /// Rows, then columns, then channels (TensorFlow).
    Hwc,
}

/// The resampling filter. All are antialiased when downscaling (the support grows with the
/// scale factor), as Pillow's `resize` is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum Filter {
    /// Pillow `BILINEAR` — what torchvision's `Resize` uses on PIL images.
    #[default]
    Bilinear,
    /// Pillow `BICUBIC`.
    Bicubic,
    /// Pillow `LANCZOS`.
    Lanczos3,
    /// Nearest neighbour (no antialiasing).
    Nearest,
}

/// A preprocessing spec, built once and applied to many images: resize, centre crop, scale,
/// per-channel mean/std, layout. Applying it writes f32 straight into the caller's slot.
///
/// ```
/// use inferkit_preprocess::{Decoder, DecodeOptions, Scratch, Transform};
/// let bytes = std::fs::read(concat!(env!("CARGO_MANIFEST_DIR"), "/../../assets/images/coffee.jpg"))?;
/// let img = Decoder::new(DecodeOptions::default()).decode(&bytes)?;
/// let t = Transform::imagenet(224);
/// let mut slot = vec![0f32; t.output_len().unwrap()];
/// t.apply_into(&img, &mut slot, &mut Scratch::new())?;
/// assert_eq!(t.output_shape(), Some([3, 224, 224]));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct Transform {
    resize: Option<Resize>,
    crop: Option<(u32, u32)>,
    filter: Filter,
    channels: u8,
    scale: f32,
    mean: [f32; 3],
    std: [f32; 3],
    layout: Layout,
}

impl Default for Transform {
    fn default() -> Self {
        Self::new()
    }
}

/// Per-thread working memory for [`Transform::apply_into`]: the resizer's buffers and the
/// resized pixels. Reusing one per thread makes the steady state allocation-free.
#[derive(Debug, Default)]
pub struct Scratch {
    resampler: Resampler,
    pixels: Vec<u8>,
    expanded: Vec<u8>,
}

impl Scratch {
    /// Empty scratch space; it grows to the largest image seen and stays.
    pub fn new() -> Self {
        Self::default()
    }
}

/// Where the output window lies, in the resized image's pixel coordinates.
#[derive(Debug, Clone, Copy)]
struct Plan {
    /// Resized image size.
    rw: u32,
    rh: u32,
    /// Output size.
    ow: u32,
    oh: u32,
    /// Output pixel (0, 0) is resized-image pixel (x0, y0) (may be negative: padding).
    x0: i64,
    y0: i64,
    /// Output pixels that are on the letterbox canvas but off the image take `fill`;
    /// those off the canvas (crop padding) take 0. Canvas origin in resized coordinates.
    canvas: (i64, i64, i64, i64),
    fill: [u8; 3],
}

impl Transform {
    /// No resize, no crop, scale 1/255, mean 0, std 1, CHW, RGB.
    pub fn new() -> Self {
        Transform {
            resize: None,
            crop: None,
            filter: Filter::Bilinear,
            channels: 3,
            scale: 1.0 / 255.0,
            mean: [0.0; 3],
            std: [1.0; 3],
            layout: Layout::Chw,
        }
    }

    /// torchvision's ImageNet evaluation preset for crop `size`: `Resize(size * 256 / 224)`
    /// (256 for 224), `CenterCrop(size)`, `ToTensor`, `Normalize` with the ImageNet mean
    /// and std, CHW.
    pub fn imagenet(size: u32) -> Self {
        Transform::new()
            .with_resize(Resize::ShorterSide(size * 256 / 224))
            .with_center_crop(size, size)
            .with_normalize([0.485, 0.456, 0.406], [0.229, 0.224, 0.225])
    }

    /// Sets the resize step.
    #[must_use]
    pub fn with_resize(mut self, resize: Resize) -> Self {
        self.resize = Some(resize);
        self
    }

    /// Centre-crops to `width` × `height` after resizing (padding with 0 where the image is
    /// smaller, as torchvision does).
    #[must_use]
    pub fn with_center_crop(mut self, width: u32, height: u32) -> Self {
        self.crop = Some((width, height));
        self
    }

    /// Sets the resampling filter.
    #[must_use]
    pub fn with_filter(mut self, filter: Filter) -> Self {
        self.filter = filter;
        self
    }

    /// Multiplies pixel values by `scale` before normalising (default 1/255).
    #[must_use]
    pub fn with_scale(mut self, scale: f32) -> Self {
        self.scale = scale;
        self
    }

    /// `(x * scale - mean[c]) / std[c]` per channel.
    #[must_use]
    pub fn with_normalize(mut self, mean: [f32; 3], std: [f32; 3]) -> Self {
        self.mean = mean;
        self.std = std;
        self
    }

    /// Output layout.
    #[must_use]
    pub fn with_layout(mut self, layout: Layout) -> Self {
        self.layout = layout;
        self
    }

    /// Output channels: 3 (RGB; grey input is replicated, as `convert('RGB')` does) or 1
    /// (grey input; decode with `DecodeOptions::new().with_grey(true)`).
    #[must_use]
    pub fn with_channels(mut self, channels: u8) -> Self {
        self.channels = channels;
        self
    }

    /// The output's `[C, H, W]` (or `[H, W, C]`) when it does not depend on the input (a crop,
    /// an exact resize or a letterbox is set).
    pub fn output_shape(&self) -> Option<[usize; 3]> {
        let (w, h) = match (self.crop, self.resize) {
            (Some(c), _) => c,
            (
                None,
                Some(Resize::Exact { width, height } | Resize::Letterbox { width, height, .. }),
            ) => (width, height),
            _ => return None,
        };
        let c = usize::from(self.channels);
        Some(match self.layout {
            Layout::Chw => [c, h as usize, w as usize],
            Layout::Hwc => [h as usize, w as usize, c],
        })
    }

    /// Floats written per image, when fixed.
    pub fn output_len(&self) -> Option<usize> {
        self.output_shape().map(|s| s.iter().product())
    }

    /// The output `(width, height)` for an input of `width` × `height`.
    pub fn output_size(&self, width: u32, height: u32) -> (u32, u32) {
        let p = self.plan(width, height);
        (p.ow, p.oh)
    }

    fn plan(&self, w: u32, h: u32) -> Plan {
        let (rw, rh, canvas, fill) = match self.resize {
            None => (w, h, (0, 0, i64::from(w), i64::from(h)), [0; 3]),
            Some(Resize::ShorterSide(s)) => {
                // torchvision: int(size * long / short), in double precision.
                let (short, long) = if w <= h { (w, h) } else { (h, w) };
                let new_long = (f64::from(s) * f64::from(long) / f64::from(short)) as u32;
                let (rw, rh) = if w <= h { (s, new_long) } else { (new_long, s) };
                (rw, rh, (0, 0, i64::from(rw), i64::from(rh)), [0; 3])
            }
            Some(Resize::Exact { width, height }) => (
                width,
                height,
                (0, 0, i64::from(width), i64::from(height)),
                [0; 3],
            ),
            Some(Resize::Letterbox {
                width,
                height,
                fill,
            }) => {
                let scale = (f64::from(width) / f64::from(w)).min(f64::from(height) / f64::from(h));
                let rw = ((f64::from(w) * scale).round() as u32).clamp(1, width);
                let rh = ((f64::from(h) * scale).round() as u32).clamp(1, height);
                let left = i64::from((width - rw) / 2);
                let top = i64::from((height - rh) / 2);
                (
                    rw,
                    rh,
                    (
                        -left,
                        -top,
                        i64::from(width) - left,
                        i64::from(height) - top,
                    ),
                    fill,
                )
            }
        };
        let (cw, ch) = (canvas.2 - canvas.0, canvas.3 - canvas.1);
        let (ow, oh, x0, y0) = match self.crop {
            None => (cw as u32, ch as u32, canvas.0, canvas.1),
            Some((ow, oh)) => {
                // torchvision: int(round((size - crop) / 2.0)), round half to even; negative
                // when the crop is larger (torchvision pads first, with the same result).
                let off = |size: i64, crop: u32| {
                    ((size - i64::from(crop)) as f64 / 2.0).round_ties_even() as i64
                };
                (ow, oh, canvas.0 + off(cw, ow), canvas.1 + off(ch, oh))
            }
        };
        Plan {
            rw,
            rh,
            ow,
            oh,
            x0,
            y0,
            canvas,
            fill,
        }
    }

    /// Transforms `img` into `out`, which must hold exactly `C * H * W` floats for this
    /// image's output size ([`output_len`](Self::output_len) when fixed).
    ///
    /// # Errors
    /// [`Error::SlotSize`] for a wrong-sized slot; [`Error::Transform`] when the image's
    /// channels do not fit the transform or the resizer fails.
    pub fn apply_into(
        &self,
        img: &DecodedImage,
        out: &mut [f32],
        scratch: &mut Scratch,
    ) -> Result<()> {
        let c_in = img.channels();
        if !(c_in == self.channels || (c_in == 1 && self.channels == 3)) {
            return Err(Error::Transform(format!(
                "a {c_in}-channel image cannot make {}-channel output (decode with grey: true for 1 channel)",
                self.channels
            )));
        }
        let p = self.plan(img.width(), img.height());
        let c_out = usize::from(self.channels);
        let expected = p.ow as usize * p.oh as usize * c_out;
        if out.len() != expected {
            return Err(Error::SlotSize {
                expected,
                got: out.len(),
            });
        }
        // The part of the output window that shows the resized image.
        let vx0 = p.x0.clamp(0, i64::from(p.rw));
        let vy0 = p.y0.clamp(0, i64::from(p.rh));
        let vx1 = (p.x0 + i64::from(p.ow)).clamp(0, i64::from(p.rw));
        let vy1 = (p.y0 + i64::from(p.oh)).clamp(0, i64::from(p.rh));
        let (vw, vh) = ((vx1 - vx0).max(0) as u32, (vy1 - vy0).max(0) as u32);
        let Scratch {
            resampler,
            pixels,
            expanded,
        } = scratch;
        // Grey input for RGB output: replicate first, as Pillow's convert('RGB') does.
        let (src, c): (&[u8], u8) = if c_in == 1 && self.channels == 3 {
            expanded.clear();
            expanded.extend(img.pixels().iter().flat_map(|&g| [g, g, g]));
            (expanded, 3)
        } else {
            (img.pixels(), c_in)
        };
        if vw > 0 && vh > 0 {
            resize_region(
                resampler,
                src,
                img.width(),
                img.height(),
                c,
                &p,
                (vx0, vy0, vw, vh),
                self.filter,
                pixels,
            )?;
        }
        self.write(out, &p, (vx0, vy0, vw, vh), pixels, c_out);
        Ok(())
    }

    /// Normalises the visible pixels (and the fills around them) into `out`.
    fn write(&self, out: &mut [f32], p: &Plan, vis: (i64, i64, u32, u32), pixels: &[u8], c: usize) {
        let (ow, oh) = (p.ow as usize, p.oh as usize);
        let a: [f32; 3] = std::array::from_fn(|i| self.scale / self.std[i]);
        let b: [f32; 3] = std::array::from_fn(|i| -self.mean[i] / self.std[i]);
        let (vx0, vy0, vw, vh) = vis;
        let (vw, vh) = (vw as usize, vh as usize);
        // Output column/row ranges covered by the visible pixels.
        let ox0 = (vx0 - p.x0) as usize;
        let oy0 = (vy0 - p.y0) as usize;
        let fill_value = |x: usize, y: usize, ch: usize| -> f32 {
            let (rx, ry) = (p.x0 + x as i64, p.y0 + y as i64);
            let on_canvas =
                rx >= p.canvas.0 && rx < p.canvas.2 && ry >= p.canvas.1 && ry < p.canvas.3;
            let v = if on_canvas { p.fill[ch.min(2)] } else { 0 };
            f32::from(v) * a[ch] + b[ch]
        };
        let visible = |x: usize, y: usize| x >= ox0 && x < ox0 + vw && y >= oy0 && y < oy0 + vh;
        match self.layout {
            Layout::Chw => {
                for ch in 0..c {
                    let plane = &mut out[ch * ow * oh..(ch + 1) * ow * oh];
                    let (ac, bc) = (a[ch], b[ch]);
                    for y in 0..oh {
                        let row = &mut plane[y * ow..(y + 1) * ow];
                        if y >= oy0 && y < oy0 + vh {
                            let src = &pixels[(y - oy0) * vw * c..(y - oy0 + 1) * vw * c];
                            for (o, px) in row[ox0..ox0 + vw].iter_mut().zip(src.chunks_exact(c)) {
                                *o = f32::from(px[ch]) * ac + bc;
                            }
                        }
                        if vw < ow || !(y >= oy0 && y < oy0 + vh) {
                            for (x, o) in row.iter_mut().enumerate() {
                                if !visible(x, y) {
                                    *o = fill_value(x, y, ch);
                                }
                            }
                        }
                    }
                }
            }
            Layout::Hwc => {
                for y in 0..oh {
                    for x in 0..ow {
                        let o = &mut out[(y * ow + x) * c..(y * ow + x + 1) * c];
                        if visible(x, y) {
                            let i = ((y - oy0) * vw + (x - ox0)) * c;
                            for ch in 0..c {
                                o[ch] = f32::from(pixels[i + ch]) * a[ch] + b[ch];
                            }
                        } else {
                            for (ch, v) in o.iter_mut().enumerate() {
                                *v = fill_value(x, y, ch);
                            }
                        }
                    }
                }
            }
        }
    }
}

/// Resizes the region `vis` (in resized-image coordinates) of the full resize of `src` into
/// `out` (`vw * vh * c` bytes): exactly the pixels a full resize followed by a crop gives,
/// without computing the rest.
#[allow(clippy::too_many_arguments)]
fn resize_region(
    resampler: &mut Resampler,
    src: &[u8],
    w: u32,
    h: u32,
    c: u8,
    p: &Plan,
    vis: (i64, i64, u32, u32),
    filter: Filter,
    out: &mut Vec<u8>,
) -> Result<()> {
    let (vx0, vy0, vw, vh) = vis;
    let c = usize::from(c);
    let win = Window {
        full_w: p.rw as usize,
        full_h: p.rh as usize,
        x0: vx0 as usize,
        y0: vy0 as usize,
        w: vw as usize,
        h: vh as usize,
    };
    out.clear();
    out.resize(win.w * win.h * c, 0);
    let (w, h) = (w as usize, h as usize);
    let kernel = match filter {
        Filter::Bilinear => Kernel::Bilinear,
        Filter::Bicubic => Kernel::Bicubic,
        Filter::Lanczos3 => Kernel::Lanczos3,
        Filter::Nearest => {
            // Pillow's NEAREST: the source pixel under each output pixel's centre.
            for (yy, row) in out.chunks_exact_mut(win.w * c).enumerate() {
                let sy = (((win.y0 + yy) as f64 + 0.5) * h as f64 / win.full_h as f64) as usize;
                for (xx, px) in row.chunks_exact_mut(c).enumerate() {
                    let sx = (((win.x0 + xx) as f64 + 0.5) * w as f64 / win.full_w as f64) as usize;
                    let i = (sy.min(h - 1) * w + sx.min(w - 1)) * c;
                    px.copy_from_slice(&src[i..i + c]);
                }
            }
            return Ok(());
        }
    };
    let source = Source {
        pixels: src,
        width: w,
        height: h,
        channels: c,
    };
    resampler.resize(kernel, &source, &win, out);
    Ok(())
}
