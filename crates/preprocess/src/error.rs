//! The one error type of this crate.

/// A `Result` whose error is this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What can go wrong while decoding or transforming an image.
///
/// Decoding works on bytes, so errors name the format and what was wrong; callers that read
/// files (the batch builder, the examples) add the file name.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Zero bytes.
    #[error("empty input: zero bytes")]
    Empty,

    /// The bytes start like no supported image format.
    #[error(
        "unknown image format (first bytes {head}); expected JPEG, PNG, WebP, GIF, BMP or TIFF"
    )]
    UnknownFormat {
        /// The first bytes, in hex.
        head: String,
    },

    /// The header declares more pixels than the configured limit (a decompression bomb, or
    /// an image larger than this pipeline accepts). Checked before any pixel buffer exists.
    #[error(
        "{format} image of {width}x{height} = {pixels} pixels exceeds the limit of {limit} pixels"
    )]
    TooLarge {
        /// The format.
        format: &'static str,
        /// Declared width.
        width: u64,
        /// Declared height.
        height: u64,
        /// `width * height`.
        pixels: u64,
        /// The limit in force ([`DecodeOptions::max_pixels`](crate::DecodeOptions)).
        limit: u64,
    },

    /// The decoder refused the data: truncated, corrupt, or an unsupported variant.
    #[error("{format}: {message}")]
    Decode {
        /// The format.
        format: &'static str,
        /// What the decoder said.
        message: String,
    },

    /// A transform cannot be built or applied as asked.
    #[error("transform: {0}")]
    Transform(String),

    /// A table (CSV or Parquet) could not be read or written, or a value could not become a
    /// feature. Displayed as `file[, row R][, column `C`]: message`.
    #[error("{}: {message}", location(.file, .row, .column))]
    Table {
        /// The file.
        file: String,
        /// The row, 0-based across the whole file, where one is to blame.
        row: Option<usize>,
        /// The column, where one is to blame.
        column: Option<String>,
        /// What was wrong (the underlying error's text, where there is one).
        message: String,
        /// The underlying error (I/O, arrow, parquet, CSV), kept for callers that inspect it
        /// (`downcast_ref::<std::io::Error>()`).
        #[source]
        source: Option<Box<dyn std::error::Error + Send + Sync>>,
    },

    /// An output slot has the wrong length.
    #[error("output slot holds {got} floats, the transform writes {expected}")]
    SlotSize {
        /// What the transform writes.
        expected: usize,
        /// What the slot holds.
        got: usize,
    },
}

/// `file`, `file, row R`, `file, row R, column `C``, `file, column `C``.
fn location(file: &str, row: &Option<usize>, column: &Option<String>) -> String {
    match (row, column) {
        (Some(r), Some(c)) => format!("{file}, row {r}, column `{c}`"),
        (Some(r), None) => format!("{file}, row {r}"),
        (None, Some(c)) => format!("{file}, column `{c}`"),
        (None, None) => file.to_string(),
    }
}
