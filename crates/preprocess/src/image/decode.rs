//! Decoding encoded images into RGB8 (or grey8) pixels in pooled buffers.

use std::io::Cursor;
use std::sync::{Arc, Mutex};

use zune_core::bytestream::ZCursor;
use zune_core::colorspace::ColorSpace;
use zune_core::options::DecoderOptions;
use zune_jpeg::{DecoderScratch, JpegDecoder};

use super::orient::{self, Orientation};
use crate::pool::{BufferPool, Pooled};
use crate::{Error, Result};

/// The formats [`Decoder`] reads, recognised from their leading bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ImageFormat {
    /// JPEG (zune-jpeg).
    Jpeg,
    /// PNG (image).
    Png,
    /// WebP (image).
    WebP,
    /// GIF, first frame (image).
    Gif,
    /// BMP (image).
    Bmp,
    /// TIFF (image).
    Tiff,
}

impl ImageFormat {
    /// Recognises a format from the first bytes of a file.
    pub fn sniff(bytes: &[u8]) -> Option<Self> {
        Some(match bytes {
            [0xFF, 0xD8, 0xFF, ..] => ImageFormat::Jpeg,
            [0x89, b'P', b'N', b'G', 0x0D, 0x0A, 0x1A, 0x0A, ..] => ImageFormat::Png,
            [
                b'R',
                b'I',
                b'F',
                b'F',
                _,
                _,
                _,
                _,
                b'W',
                b'E',
                b'B',
                b'P',
                ..,
            ] => ImageFormat::WebP,
            [b'G', b'I', b'F', b'8', b'7' | b'9', b'a', ..] => ImageFormat::Gif,
            [b'B', b'M', ..] => ImageFormat::Bmp,
            [b'I', b'I', 0x2A, 0x00, ..] | [b'M', b'M', 0x00, 0x2A, ..] => ImageFormat::Tiff,
            _ => return None,
        })
    }

    /// The format's name.
    pub fn name(self) -> &'static str {
        match self {
            ImageFormat::Jpeg => "JPEG",
            ImageFormat::Png => "PNG",
            ImageFormat::WebP => "WebP",
            ImageFormat::Gif => "GIF",
            ImageFormat::Bmp => "BMP",
            ImageFormat::Tiff => "TIFF",
        }
    }

    fn to_image(self) -> image::ImageFormat {
        match self {
            ImageFormat::Jpeg => image::ImageFormat::Jpeg,
            ImageFormat::Png => image::ImageFormat::Png,
            ImageFormat::WebP => image::ImageFormat::WebP,
            ImageFormat::Gif => image::ImageFormat::Gif,
            ImageFormat::Bmp => image::ImageFormat::Bmp,
            ImageFormat::Tiff => image::ImageFormat::Tiff,
        }
    }
}

/// Decoding options. `Copy`, with safe defaults; set through the `with_*` methods
/// (`#[non_exhaustive]`: a field added later is not a breaking change).
///
/// ```
/// use inferkit_preprocess::DecodeOptions;
/// let options = DecodeOptions::new().with_max_pixels(4096 * 4096).with_draft(Some(224));
/// assert!(options.apply_orientation);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct DecodeOptions {
    /// Largest `width * height` accepted, checked from the header before any pixel buffer
    /// exists. Default 178,956,970: Pillow's decompression-bomb error threshold
    /// (2 × `Image.MAX_IMAGE_PIXELS`).
    pub max_pixels: u64,
    /// Decode to one grey channel instead of RGB.
    pub grey: bool,
    /// Apply the EXIF orientation tag (default on), as `ImageOps.exif_transpose` does.
    pub apply_orientation: bool,
    /// DCT-domain downscaling of JPEGs, like Pillow's `draft`: decode at 1/2, 1/4 or 1/8
    /// scale (the smallest that keeps the shorter side at least this many pixels) through
    /// jpeg-decoder's scaled IDCT. Much faster on large photos before a downscaling resize,
    /// but not pixel-exact to a full decode followed by the resize, so `None` by default.
    pub draft: Option<u32>,
}

impl Default for DecodeOptions {
    fn default() -> Self {
        DecodeOptions {
            max_pixels: 178_956_970,
            grey: false,
            apply_orientation: true,
            draft: None,
        }
    }
}

impl DecodeOptions {
    /// The defaults: Pillow's pixel limit, RGB, EXIF orientation applied, no draft.
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets [`max_pixels`](Self::max_pixels).
    #[must_use]
    pub fn with_max_pixels(mut self, max_pixels: u64) -> Self {
        self.max_pixels = max_pixels;
        self
    }

    /// Sets [`grey`](Self::grey).
    #[must_use]
    pub fn with_grey(mut self, grey: bool) -> Self {
        self.grey = grey;
        self
    }

    /// Sets [`apply_orientation`](Self::apply_orientation).
    #[must_use]
    pub fn with_orientation(mut self, apply: bool) -> Self {
        self.apply_orientation = apply;
        self
    }

    /// Sets [`draft`](Self::draft).
    #[must_use]
    pub fn with_draft(mut self, min_side: Option<u32>) -> Self {
        self.draft = min_side;
        self
    }
}

/// Decoded pixels: row-major, interleaved, 8 bits per channel, in a pooled buffer.
#[derive(Debug)]
pub struct DecodedImage {
    pixels: Pooled<u8>,
    width: u32,
    height: u32,
    channels: u8,
    format: ImageFormat,
}

/// What a decoded image was: its format and its (upright) size.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ImageInfo {
    /// The encoded format.
    pub format: ImageFormat,
    /// Width in pixels, after EXIF orientation.
    pub width: u32,
    /// Height in pixels, after EXIF orientation.
    pub height: u32,
}

impl ImageInfo {
    /// Megapixels (for throughput figures).
    pub fn megapixels(&self) -> f64 {
        f64::from(self.width) * f64::from(self.height) / 1e6
    }
}

impl DecodedImage {
    /// Width in pixels.
    pub fn width(&self) -> u32 {
        self.width
    }

    /// Height in pixels.
    pub fn height(&self) -> u32 {
        self.height
    }

    /// 3 (RGB) or 1 (grey).
    pub fn channels(&self) -> u8 {
        self.channels
    }

    /// `height * width * channels` bytes.
    pub fn pixels(&self) -> &[u8] {
        &self.pixels
    }

    /// Format and size.
    pub fn info(&self) -> ImageInfo {
        ImageInfo {
            format: self.format,
            width: self.width,
            height: self.height,
        }
    }
}

/// Decodes JPEG (zune-jpeg: baseline and progressive; grey, YCbCr, CMYK and YCCK to RGB) and
/// PNG, WebP, GIF (first frame), BMP and TIFF (the `image` crate) into pooled buffers, the
/// format chosen from the bytes, EXIF orientation applied.
///
/// Cheap to clone (the pool is shared); `Send + Sync`, so one decoder serves many threads.
///
/// ```
/// use inferkit_preprocess::{Decoder, DecodeOptions};
/// let bytes = std::fs::read(concat!(env!("CARGO_MANIFEST_DIR"), "/../../assets/images/chelsea.jpg"))?;
/// let decoder = Decoder::new(DecodeOptions::default());
/// let img = decoder.decode(&bytes)?;
/// assert_eq!((img.width(), img.height(), img.channels()), (451, 300, 3));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone)]
pub struct Decoder {
    options: DecodeOptions,
    pool: BufferPool<u8>,
    /// Idle JPEG decoder state (coefficient, upsampling and component buffers), reused so
    /// that decoding allocates nothing in steady state.
    jpeg_state: Arc<Mutex<Vec<DecoderScratch>>>,
}

/// A JPEG decoder state holding more than this is dropped rather than kept for reuse (a
/// progressive JPEG keeps every coefficient: about 3 bytes per pixel).
const MAX_RETAINED_JPEG_STATE: usize = 64 << 20;

impl Decoder {
    /// A decoder with its own pool (keeping up to 2 idle buffers per CPU).
    pub fn new(options: DecodeOptions) -> Self {
        let cpus = std::thread::available_parallelism().map_or(2, |n| n.get());
        Self::with_pool(options, BufferPool::new(2 * cpus))
    }

    /// A decoder that takes its pixel buffers from `pool`.
    pub fn with_pool(options: DecodeOptions, pool: BufferPool<u8>) -> Self {
        Decoder {
            options,
            pool,
            jpeg_state: Arc::default(),
        }
    }

    fn take_jpeg_state(&self) -> DecoderScratch {
        self.jpeg_state
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .pop()
            .unwrap_or_default()
    }

    fn return_jpeg_state(&self, state: DecoderScratch) {
        if state.retained_bytes() > MAX_RETAINED_JPEG_STATE {
            return;
        }
        let mut idle = self.jpeg_state.lock().unwrap_or_else(|e| e.into_inner());
        // As many idle states as the pool keeps idle pixel buffers.
        if idle.len() < self.pool.max_idle() {
            idle.push(state);
        }
    }

    /// The options in force.
    pub fn options(&self) -> &DecodeOptions {
        &self.options
    }

    /// The pixel-buffer pool (for its counters).
    pub fn pool(&self) -> &BufferPool<u8> {
        &self.pool
    }

    /// Decodes one image.
    ///
    /// # Errors
    /// [`Error::Empty`], [`Error::UnknownFormat`], [`Error::TooLarge`] (checked from the header,
    /// before decoding), [`Error::Decode`] for truncated or corrupt data.
    pub fn decode(&self, bytes: &[u8]) -> Result<DecodedImage> {
        if bytes.is_empty() {
            return Err(Error::Empty);
        }
        let format = ImageFormat::sniff(bytes).ok_or_else(|| Error::UnknownFormat {
            head: bytes.iter().take(12).map(|b| format!("{b:02x}")).collect(),
        })?;
        let (img, orientation) = match format {
            ImageFormat::Jpeg => match self.options.draft {
                Some(min_side) => match self.decode_jpeg_draft(bytes, min_side)? {
                    Some(decoded) => decoded,
                    None => self.decode_jpeg(bytes)?,
                },
                None => self.decode_jpeg(bytes)?,
            },
            other => self.decode_other(bytes, other)?,
        };
        match orientation {
            Some(o) if self.options.apply_orientation && o != Orientation::Normal => {
                let mut out = self.pool.get_with_capacity(img.pixels.len());
                let (width, height) = orient::apply(
                    o,
                    &img.pixels,
                    img.width,
                    img.height,
                    img.channels,
                    &mut out,
                );
                Ok(DecodedImage {
                    pixels: out,
                    width,
                    height,
                    channels: img.channels,
                    format,
                })
            }
            _ => Ok(img),
        }
    }

    fn check_size(&self, format: ImageFormat, width: u64, height: u64) -> Result<()> {
        let pixels = width.saturating_mul(height);
        if pixels > self.options.max_pixels {
            return Err(Error::TooLarge {
                format: format.name(),
                width,
                height,
                pixels,
                limit: self.options.max_pixels,
            });
        }
        if pixels == 0 {
            return Err(Error::Decode {
                format: format.name(),
                message: format!("image has no pixels ({width}x{height})"),
            });
        }
        Ok(())
    }

    fn decode_jpeg(&self, bytes: &[u8]) -> Result<(DecodedImage, Option<Orientation>)> {
        let out_space = if self.options.grey {
            ColorSpace::Luma
        } else {
            ColorSpace::RGB
        };
        // zune's own caps (16,384 px a side by default) would refuse valid wide images;
        // the pixel limit below is the guard.
        let options = DecoderOptions::default()
            .set_max_width(usize::from(u16::MAX))
            .set_max_height(usize::from(u16::MAX))
            .jpeg_set_out_colorspace(out_space)
            // Strict: a truncated or corrupt stream is an error, not an image padded with grey.
            .set_strict_mode(true);
        let mut dec =
            JpegDecoder::new_with_scratch(ZCursor::new(bytes), options, self.take_jpeg_state());
        let result = self.decode_jpeg_with(&mut dec);
        self.return_jpeg_state(dec.into_scratch());
        result
    }

    fn decode_jpeg_with(
        &self,
        dec: &mut JpegDecoder<ZCursor<&[u8]>>,
    ) -> Result<(DecodedImage, Option<Orientation>)> {
        let err = |e: zune_jpeg::errors::DecodeErrors| Error::Decode {
            format: "JPEG",
            message: e.to_string(),
        };
        dec.decode_headers().map_err(err)?;
        let (w, h) = dec.dimensions().expect("headers decoded");
        self.check_size(ImageFormat::Jpeg, w as u64, h as u64)?;
        let orientation = if self.options.apply_orientation {
            dec.exif().and_then(|e| orient::from_exif(e))
        } else {
            None
        };
        let channels = if self.options.grey { 1 } else { 3 };
        let n = w * h * channels;
        let mut pixels = self.pool.get_with_capacity(n);
        pixels.resize(n, 0);
        dec.decode_into(&mut pixels).map_err(err)?;
        let img = DecodedImage {
            pixels,
            width: w as u32,
            height: h as u32,
            channels: channels as u8,
            format: ImageFormat::Jpeg,
        };
        Ok((img, orientation))
    }

    /// The `draft` path: `None` when no downscaling applies (the image is already small), so
    /// the exact decoder runs instead.
    fn decode_jpeg_draft(
        &self,
        bytes: &[u8],
        min_side: u32,
    ) -> Result<Option<(DecodedImage, Option<Orientation>)>> {
        use jpeg_decoder::PixelFormat;
        let err = |e: jpeg_decoder::Error| Error::Decode {
            format: "JPEG",
            message: e.to_string(),
        };
        let mut dec = jpeg_decoder::Decoder::new(bytes);
        dec.read_info().map_err(err)?;
        let info = dec.info().expect("info read");
        let (w, h) = (u32::from(info.width), u32::from(info.height));
        self.check_size(ImageFormat::Jpeg, w.into(), h.into())?;
        let Some(k) = [8u32, 4, 2]
            .into_iter()
            .find(|k| w.min(h).div_ceil(*k) >= min_side)
        else {
            return Ok(None);
        };
        // Ask for the same factor on both axes.
        let (sw, sh) = dec
            .scale(w.div_ceil(k) as u16, h.div_ceil(k) as u16)
            .map_err(err)?;
        let orientation = if self.options.apply_orientation {
            dec.exif_data().and_then(orient::from_exif)
        } else {
            None
        };
        let raw = dec.decode().map_err(err)?;
        let info = dec.info().expect("info read");
        let n = usize::from(sw) * usize::from(sh);
        let channels = if self.options.grey { 1 } else { 3 };
        let mut pixels = self.pool.get_with_capacity(n * channels);
        // Pillow's conversions: L = (299 R + 587 G + 114 B) / 1000; CMYK to RGB as convert('RGB').
        let grey = |r: u8, g: u8, b: u8| {
            ((299 * u32::from(r) + 587 * u32::from(g) + 114 * u32::from(b) + 500) / 1000) as u8
        };
        let cmyk = |v: u8, k: u8| ((u32::from(255 - v) * u32::from(255 - k) + 127) / 255) as u8;
        match (info.pixel_format, channels) {
            (PixelFormat::RGB24, 3) | (PixelFormat::L8, 1) => {
                pixels.extend_from_slice(&raw[..n * channels])
            }
            (PixelFormat::RGB24, _) => {
                pixels.extend(raw.chunks_exact(3).map(|p| grey(p[0], p[1], p[2])))
            }
            (PixelFormat::L8, _) => pixels.extend(raw.iter().flat_map(|&g| [g, g, g])),
            (PixelFormat::CMYK32, _) => {
                for p in raw.chunks_exact(4) {
                    let (r, g, b) = (cmyk(p[0], p[3]), cmyk(p[1], p[3]), cmyk(p[2], p[3]));
                    if channels == 3 {
                        pixels.extend_from_slice(&[r, g, b]);
                    } else {
                        pixels.push(grey(r, g, b));
                    }
                }
            }
            (other, _) => {
                return Err(Error::Decode {
                    format: "JPEG",
                    message: format!("draft decoding of {other:?} is not supported"),
                });
            }
        }
        let img = DecodedImage {
            pixels,
            width: sw.into(),
            height: sh.into(),
            channels: channels as u8,
            format: ImageFormat::Jpeg,
        };
        Ok(Some((img, orientation)))
    }

    fn decode_other(
        &self,
        bytes: &[u8],
        format: ImageFormat,
    ) -> Result<(DecodedImage, Option<Orientation>)> {
        use image::ImageDecoder;
        let err = |e: image::ImageError| Error::Decode {
            format: format.name(),
            message: e.to_string(),
        };
        let mut reader = image::ImageReader::with_format(Cursor::new(bytes), format.to_image());
        let mut limits = image::Limits::default();
        // Allocation cap for the decoder's own buffers: 16-bit RGBA at the pixel limit.
        limits.max_alloc = Some(self.options.max_pixels.saturating_mul(8));
        reader.limits(limits);
        let mut decoder = reader.into_decoder().map_err(err)?;
        let (w, h) = decoder.dimensions();
        self.check_size(format, w.into(), h.into())?;
        let orientation = if self.options.apply_orientation {
            decoder.orientation().ok().map(Orientation::from_image)
        } else {
            None
        };
        let img = image::DynamicImage::from_decoder(decoder).map_err(err)?;
        let (channels, raw) = if self.options.grey {
            (1u8, img.into_luma8().into_raw())
        } else {
            (3u8, img.into_rgb8().into_raw())
        };
        let mut pixels = self.pool.get_with_capacity(raw.len());
        pixels.extend_from_slice(&raw);
        Ok((
            DecodedImage {
                pixels,
                width: w,
                height: h,
                channels,
                format,
            },
            orientation,
        ))
    }
}
