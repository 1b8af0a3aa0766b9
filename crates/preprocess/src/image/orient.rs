//! EXIF orientation: reading the tag and applying it to interleaved 8-bit pixels.

/// The eight EXIF orientations (tag 0x0112), named by what displaying the stored pixels
/// upright takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Orientation {
    Normal,
    FlipH,
    Rotate180,
    FlipV,
    Transpose,
    Rotate90,
    Transverse,
    Rotate270,
}

impl Orientation {
    fn from_tag(v: u32) -> Option<Self> {
        Some(match v {
            1 => Orientation::Normal,
            2 => Orientation::FlipH,
            3 => Orientation::Rotate180,
            4 => Orientation::FlipV,
            5 => Orientation::Transpose,
            6 => Orientation::Rotate90,
            7 => Orientation::Transverse,
            8 => Orientation::Rotate270,
            _ => return None,
        })
    }

    pub(crate) fn from_image(o: image::metadata::Orientation) -> Self {
        use image::metadata::Orientation as O;
        match o {
            O::NoTransforms => Orientation::Normal,
            O::FlipHorizontal => Orientation::FlipH,
            O::Rotate180 => Orientation::Rotate180,
            O::FlipVertical => Orientation::FlipV,
            O::Rotate90FlipH => Orientation::Transpose,
            O::Rotate90 => Orientation::Rotate90,
            O::Rotate270FlipH => Orientation::Transverse,
            O::Rotate270 => Orientation::Rotate270,
        }
    }
}

/// The orientation in a raw EXIF block (as a JPEG's APP1 carries it, without the `Exif\0\0`
/// prefix or with it), through kamadak-exif.
pub(crate) fn from_exif(raw: &[u8]) -> Option<Orientation> {
    let tiff = raw.strip_prefix(b"Exif\0\0").unwrap_or(raw);
    let exif = exif::Reader::new().read_raw(tiff.to_vec()).ok()?;
    let field = exif.get_field(exif::Tag::Orientation, exif::In::PRIMARY)?;
    Orientation::from_tag(field.value.get_uint(0)?)
}

/// Writes `src` (`w`×`h`, `c` channels) displayed upright into `out`; returns the new
/// (width, height). `out` is cleared and filled.
pub(crate) fn apply(
    o: Orientation,
    src: &[u8],
    w: u32,
    h: u32,
    c: u8,
    out: &mut Vec<u8>,
) -> (u32, u32) {
    let (w, h, c) = (w as usize, h as usize, c as usize);
    let swap = matches!(
        o,
        Orientation::Transpose
            | Orientation::Rotate90
            | Orientation::Transverse
            | Orientation::Rotate270
    );
    let (ow, oh) = if swap { (h, w) } else { (w, h) };
    out.clear();
    out.reserve(src.len());
    for y in 0..oh {
        for x in 0..ow {
            // Source pixel shown at (x, y).
            let (sx, sy) = match o {
                Orientation::Normal => (x, y),
                Orientation::FlipH => (w - 1 - x, y),
                Orientation::Rotate180 => (w - 1 - x, h - 1 - y),
                Orientation::FlipV => (x, h - 1 - y),
                Orientation::Transpose => (y, x),
                Orientation::Rotate90 => (y, h - 1 - x),
                Orientation::Transverse => (w - 1 - y, h - 1 - x),
                Orientation::Rotate270 => (w - 1 - y, x),
            };
            let i = (sy * w + sx) * c;
            out.extend_from_slice(&src[i..i + c]);
        }
    }
    (ow as u32, oh as u32)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A 3x2 grey image with distinct pixels:
    /// 1 2 3
    /// 4 5 6
    const SRC: [u8; 6] = [1, 2, 3, 4, 5, 6];

    fn run(o: Orientation) -> (u32, u32, Vec<u8>) {
        let mut out = Vec::new();
        let (w, h) = apply(o, &SRC, 3, 2, 1, &mut out);
        (w, h, out)
    }

    #[test]
    fn all_eight_match_pillow_exif_transpose() {
        // What PIL.ImageOps.exif_transpose gives for each tag on the image above.
        assert_eq!(run(Orientation::Normal), (3, 2, vec![1, 2, 3, 4, 5, 6]));
        assert_eq!(run(Orientation::FlipH), (3, 2, vec![3, 2, 1, 6, 5, 4]));
        assert_eq!(run(Orientation::Rotate180), (3, 2, vec![6, 5, 4, 3, 2, 1]));
        assert_eq!(run(Orientation::FlipV), (3, 2, vec![4, 5, 6, 1, 2, 3]));
        assert_eq!(run(Orientation::Transpose), (2, 3, vec![1, 4, 2, 5, 3, 6]));
        assert_eq!(run(Orientation::Rotate90), (2, 3, vec![4, 1, 5, 2, 6, 3]));
        assert_eq!(run(Orientation::Transverse), (2, 3, vec![6, 3, 5, 2, 4, 1]));
        assert_eq!(run(Orientation::Rotate270), (2, 3, vec![3, 6, 2, 5, 1, 4]));
    }
}
