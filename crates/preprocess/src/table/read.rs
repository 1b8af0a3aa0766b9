//! CSV (arrow-csv) and Parquet (parquet's arrow reader) as iterators of `RecordBatch`es,
//! one batch in memory at a time.

use std::fs::File;
use std::path::Path;
use std::sync::Arc;

use arrow_array::RecordBatch;
use arrow_schema::SchemaRef;
use bytes::{Buf as _, Bytes};
use parquet::arrow::ProjectionMask;
use parquet::arrow::arrow_reader::{ParquetRecordBatchReader, ParquetRecordBatchReaderBuilder};

use super::{no_such_column, table_err, table_source};
use crate::Result;

/// How to read a CSV file: [`CsvOptions::new`] (the defaults) and the `with_*` methods
/// (`#[non_exhaustive]`: a field added later is not a breaking change).
///
/// ```
/// use inferkit_preprocess::table::CsvOptions;
/// let options = CsvOptions::new().with_delimiter(b';').with_columns(["price", "qty"]);
/// assert!(options.header);
/// ```
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct CsvOptions {
    /// The first line names the columns (default true).
    pub header: bool,
    /// Field separator (default `,`).
    pub delimiter: u8,
    /// Quote character (default `"`).
    pub quote: u8,
    /// Rows per batch (default 8192).
    pub batch_size: usize,
    /// The schema; `None` infers it from the first `infer_rows` rows.
    pub schema: Option<SchemaRef>,
    /// Rows read to infer a schema (default 1000).
    pub infer_rows: usize,
    /// Only these columns, by name, in file order (default: all). Like pyarrow's
    /// `include_columns`: the others are split off but never parsed, so a bad value there is
    /// no error.
    pub columns: Option<Vec<String>>,
}

impl Default for CsvOptions {
    fn default() -> Self {
        CsvOptions {
            header: true,
            delimiter: b',',
            quote: b'"',
            batch_size: 8192,
            schema: None,
            infer_rows: 1000,
            columns: None,
        }
    }
}

/// How to read a Parquet file: [`ParquetOptions::new`] (the defaults) and the `with_*`
/// methods (`#[non_exhaustive]`: a field added later is not a breaking change).
///
/// ```
/// use inferkit_preprocess::table::ParquetOptions;
/// let options = ParquetOptions::new().with_columns(["id", "score"]).with_row_groups([0, 2]);
/// assert_eq!(options.batch_size, 8192);
/// ```
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct ParquetOptions {
    /// Only these columns (by name), in file order; `None` reads all.
    pub columns: Option<Vec<String>>,
    /// Only these row groups; `None` reads all.
    pub row_groups: Option<Vec<usize>>,
    /// Rows per batch (default 8192).
    pub batch_size: usize,
    /// Map the file into memory and decode its pages in place (default true) instead of
    /// reading them into buffers: fewer copies (a tenth of the time of
    /// [`read_parquet_matrix`](super::read_parquet_matrix) on one thread). The file must not
    /// be truncated or rewritten while it is read (a truncated mapped page is a SIGBUS), as
    /// with pyarrow's `memory_map=True`; set false for files that may change.
    pub memory_map: bool,
}

impl Default for ParquetOptions {
    fn default() -> Self {
        ParquetOptions {
            columns: None,
            row_groups: None,
            batch_size: 8192,
            memory_map: true,
        }
    }
}

impl CsvOptions {
    /// The defaults: a header line, `,` and `"`, batches of 8192 rows, the schema inferred
    /// from 1000 rows, every column.
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets [`header`](Self::header).
    #[must_use]
    pub fn with_header(mut self, header: bool) -> Self {
        self.header = header;
        self
    }

    /// Sets [`delimiter`](Self::delimiter).
    #[must_use]
    pub fn with_delimiter(mut self, delimiter: u8) -> Self {
        self.delimiter = delimiter;
        self
    }

    /// Sets [`quote`](Self::quote).
    #[must_use]
    pub fn with_quote(mut self, quote: u8) -> Self {
        self.quote = quote;
        self
    }

    /// Sets [`batch_size`](Self::batch_size).
    #[must_use]
    pub fn with_batch_size(mut self, rows: usize) -> Self {
        self.batch_size = rows;
        self
    }

    /// Sets [`schema`](Self::schema): no inference.
    #[must_use]
    pub fn with_schema(mut self, schema: SchemaRef) -> Self {
        self.schema = Some(schema);
        self
    }

    /// Sets [`infer_rows`](Self::infer_rows).
    #[must_use]
    pub fn with_infer_rows(mut self, rows: usize) -> Self {
        self.infer_rows = rows;
        self
    }

    /// Sets [`columns`](Self::columns): only these, by name.
    #[must_use]
    pub fn with_columns<S: Into<String>>(mut self, columns: impl IntoIterator<Item = S>) -> Self {
        self.columns = Some(columns.into_iter().map(Into::into).collect());
        self
    }
}

impl ParquetOptions {
    /// The defaults: every column and row group, batches of 8192 rows, memory-mapped.
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets [`columns`](Self::columns): only these, by name.
    #[must_use]
    pub fn with_columns<S: Into<String>>(mut self, columns: impl IntoIterator<Item = S>) -> Self {
        self.columns = Some(columns.into_iter().map(Into::into).collect());
        self
    }

    /// Sets [`row_groups`](Self::row_groups): only these.
    #[must_use]
    pub fn with_row_groups(mut self, groups: impl IntoIterator<Item = usize>) -> Self {
        self.row_groups = Some(groups.into_iter().collect());
        self
    }

    /// Sets [`batch_size`](Self::batch_size).
    #[must_use]
    pub fn with_batch_size(mut self, rows: usize) -> Self {
        self.batch_size = rows;
        self
    }

    /// Sets [`memory_map`](Self::memory_map).
    #[must_use]
    pub fn with_memory_map(mut self, map: bool) -> Self {
        self.memory_map = map;
        self
    }
}

enum Inner {
    Csv(Box<arrow_csv::Reader<File>>),
    Parquet(ParquetRecordBatchReader),
}

/// Batches of a CSV or Parquet file, in order. Each error names the file and, where arrow
/// says, the line and column.
pub struct TableReader {
    inner: Inner,
    file: String,
    schema: SchemaRef,
    /// Rows handed out so far (the first row of the next batch).
    rows: usize,
    failed: bool,
}

impl std::fmt::Debug for TableReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TableReader")
            .field("file", &self.file)
            .field("rows", &self.rows)
            .finish_non_exhaustive()
    }
}

impl TableReader {
    /// The schema of every batch.
    pub fn schema(&self) -> SchemaRef {
        Arc::clone(&self.schema)
    }

    /// Rows handed out so far: the file row of the next batch's first row.
    pub fn rows_read(&self) -> usize {
        self.rows
    }

    /// The file's name, as errors give it.
    pub fn file(&self) -> &str {
        &self.file
    }
}

impl Iterator for TableReader {
    type Item = Result<RecordBatch>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.failed {
            return None;
        }
        // a decoder that panics on corrupt input (a dependency's bug) ends the read with an
        // error naming the file instead of taking the caller down
        let next =
            std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| match &mut self.inner {
                Inner::Csv(r) => r.next(),
                Inner::Parquet(r) => r.next(),
            }));
        let next = match next {
            Ok(n) => n,
            Err(p) => {
                self.failed = true;
                let msg = p
                    .downcast_ref::<&str>()
                    .map(|s| (*s).to_owned())
                    .or_else(|| p.downcast_ref::<String>().cloned())
                    .unwrap_or_else(|| "a panic".into());
                return Some(Err(table_err(
                    &self.file,
                    Some(self.rows),
                    None,
                    format!("the decoder failed on corrupt data: {msg}"),
                )));
            }
        };
        match next? {
            Ok(b) => {
                self.rows += b.num_rows();
                Some(Ok(b))
            }
            Err(e) => {
                // a reader that failed is not asked again: its position is undefined
                self.failed = true;
                Some(Err(table_source(&self.file, None, None, e)))
            }
        }
    }
}

pub(crate) fn name(path: &Path) -> String {
    path.display().to_string()
}

/// Reads a CSV file in batches. With no schema in `options`, infers one from the first
/// `infer_rows` rows (then reads from the start).
///
/// # Errors
/// [`Error::Table`](crate::Error::Table) naming the file for an unreadable file or a schema
/// that cannot be inferred; each batch can fail too (a ragged row, a value of the wrong
/// type: arrow names the line and column).
pub fn read_csv(path: impl AsRef<Path>, options: &CsvOptions) -> Result<TableReader> {
    let path = path.as_ref();
    let file = name(path);
    let (format, schema) = csv_schema(path, &file, options)?;
    let open = || File::open(path).map_err(|e| table_source(&file, None, None, e));
    let mut builder = arrow_csv::ReaderBuilder::new(Arc::clone(&schema))
        .with_format(format)
        .with_batch_size(options.batch_size.max(1));
    let mut schema = schema;
    if let Some(names) = &options.columns {
        let mut indices = Vec::with_capacity(names.len());
        for n in names {
            let (i, _) = schema
                .column_with_name(n)
                .ok_or_else(|| no_such_column(&file, n, &schema))?;
            indices.push(i);
        }
        indices.sort_unstable();
        indices.dedup();
        schema = Arc::new(
            schema
                .project(&indices)
                .map_err(|e| table_source(&file, None, None, e))?,
        );
        builder = builder.with_projection(indices);
    }
    let reader = builder
        .build(open()?)
        .map_err(|e| table_source(&file, None, None, e))?;
    Ok(TableReader {
        inner: Inner::Csv(Box::new(reader)),
        file,
        schema,
        rows: 0,
        failed: false,
    })
}

/// The CSV format `options` describe and the schema: `options.schema`, or inferred from the
/// first `options.infer_rows` rows.
pub(crate) fn csv_schema(
    path: &Path,
    file: &str,
    options: &CsvOptions,
) -> Result<(arrow_csv::reader::Format, SchemaRef)> {
    let format = arrow_csv::reader::Format::default()
        .with_header(options.header)
        .with_delimiter(options.delimiter)
        .with_quote(options.quote);
    let schema = match &options.schema {
        Some(s) => Arc::clone(s),
        None => {
            let f = File::open(path).map_err(|e| table_source(file, None, None, e))?;
            let (schema, _) = format
                .infer_schema(f, Some(options.infer_rows))
                .map_err(|e| table_source(file, None, None, e))?;
            Arc::new(schema)
        }
    };
    Ok((format, schema))
}

/// Reads a Parquet file in batches: only `options.columns` (by name) and
/// `options.row_groups` when given.
///
/// # Errors
/// [`Error::Table`](crate::Error::Table) naming the file: unreadable, not Parquet or
/// corrupt footer, an unknown column, a row group out of range; each batch can fail too
/// (corrupt pages).
pub fn read_parquet(path: impl AsRef<Path>, options: &ParquetOptions) -> Result<TableReader> {
    let path = path.as_ref();
    let file = name(path);
    let (source, len) = open_parquet(path, &file, options)?;
    let mut builder = ParquetRecordBatchReaderBuilder::try_new(source)
        .map_err(|e| table_source(&file, None, None, e))?
        .with_batch_size(options.batch_size.max(1));
    check_column_chunks(&file, builder.metadata(), len)?;
    if let Some(cols) = &options.columns {
        let schema = builder.schema();
        let mut roots = Vec::with_capacity(cols.len());
        for c in cols {
            let i = schema
                .index_of(c)
                .map_err(|_| no_such_column(&file, c, schema))?;
            roots.push(i);
        }
        let mask = ProjectionMask::roots(builder.parquet_schema(), roots);
        builder = builder.with_projection(mask);
    }
    if let Some(groups) = &options.row_groups {
        check_row_groups(&file, groups, builder.metadata().num_row_groups())?;
        builder = builder.with_row_groups(groups.clone());
    }
    let reader = builder
        .build()
        .map_err(|e| table_source(&file, None, None, e))?;
    let schema = arrow_array::RecordBatchReader::schema(&reader);
    Ok(TableReader {
        inner: Inner::Parquet(reader),
        file,
        schema,
        rows: 0,
        failed: false,
    })
}

/// The file at `path` as parquet reads it (mapped under `options.memory_map`), and its
/// length.
pub(crate) fn open_parquet(
    path: &Path,
    file: &str,
    options: &ParquetOptions,
) -> Result<(Source, u64)> {
    let f = File::open(path).map_err(|e| table_source(file, None, None, e))?;
    let len = f
        .metadata()
        .map_err(|e| table_source(file, None, None, e))?
        .len();
    if !options.memory_map {
        return Ok((Source::File(Arc::new(f)), len));
    }
    #[allow(unsafe_code)]
    // SAFETY: the mapping is read-only (PROT_READ, MAP_SHARED): this process never writes
    // through it, and every view of it is a `Bytes` keeping the map alive. What memmap2
    // cannot rule out is another process truncating or rewriting the file while it is read:
    // a read of a truncated page raises SIGBUS and rewritten pages change under the reader.
    // `ParquetOptions::memory_map` documents this contract (pyarrow's `memory_map=True` and
    // polars' default have the same one) and `memory_map: false` reads with pread instead.
    let map = unsafe { memmap2::Mmap::map(&f) }.map_err(|e| table_source(file, None, None, e))?;
    Ok((Source::Mapped(Bytes::from_owner(map)), len))
}

/// A Parquet file, mapped or read, whose readers fail on a read past its end instead of
/// returning 0 bytes. A well-formed file is never read there (its footer follows every
/// page), but parquet 60's Thrift decoder, skipping a corrupt page header's list of a
/// billion elements, read 0 bytes a billion times (3 minutes on a 2 KB file, found by
/// fuzz/parquet_reader).
pub(crate) enum Source {
    /// The whole file, mapped: pages are handed out as slices of the map, never copied.
    Mapped(Bytes),
    /// Read at offsets (pread), never moving the handle's cursor, so that threads decoding
    /// row groups side by side can share it.
    File(Arc<File>),
}

impl parquet::file::reader::Length for Source {
    fn len(&self) -> u64 {
        match self {
            Source::Mapped(b) => b.len() as u64,
            Source::File(f) => parquet::file::reader::Length::len(&**f),
        }
    }
}

/// `length` bytes at `start` of a file of `len` bytes, if they are all inside it.
fn inside(start: u64, length: usize, len: usize) -> Option<std::ops::Range<usize>> {
    let start = usize::try_from(start).ok()?;
    Some(start..start.checked_add(length)?).filter(|r| r.end <= len)
}

fn past_the_end(start: u64, length: usize, len: usize) -> parquet::errors::ParquetError {
    parquet::errors::ParquetError::EOF(format!(
        "{length} bytes at byte {start} of a file of {len} bytes"
    ))
}

impl parquet::file::reader::ChunkReader for Source {
    type T = SourceRead;

    fn get_read(&self, start: u64) -> parquet::errors::Result<SourceRead> {
        match self {
            Source::Mapped(b) => match inside(start, 0, b.len()) {
                Some(r) => Ok(SourceRead::Mapped(b.slice(r.start..))),
                None => Err(past_the_end(start, 0, b.len())),
            },
            Source::File(f) => Ok(SourceRead::File(std::io::BufReader::new(FileAt {
                file: Arc::clone(f),
                at: start,
            }))),
        }
    }

    fn get_bytes(&self, start: u64, length: usize) -> parquet::errors::Result<Bytes> {
        match self {
            Source::Mapped(b) => match inside(start, length, b.len()) {
                Some(r) => Ok(b.slice(r)),
                None => Err(past_the_end(start, length, b.len())),
            },
            Source::File(f) => {
                let mut buf = vec![0; length];
                let mut done = 0;
                while done < length {
                    match read_at(f, &mut buf[done..], start + done as u64)? {
                        0 => return Err(past_the_end(start, length, f.metadata()?.len() as usize)),
                        n => done += n,
                    }
                }
                Ok(buf.into())
            }
        }
    }
}

/// A reader of `file` from byte `at` on, by positional reads.
pub(crate) struct FileAt {
    file: Arc<File>,
    at: u64,
}

impl std::io::Read for FileAt {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = read_at(&self.file, buf, self.at)?;
        self.at += n as u64;
        Ok(n)
    }
}

/// Reads at byte `at` of `f` without using or moving its cursor.
fn read_at(f: &File, buf: &mut [u8], at: u64) -> std::io::Result<usize> {
    #[cfg(unix)]
    return std::os::unix::fs::FileExt::read_at(f, buf, at);
    #[cfg(windows)]
    return std::os::windows::fs::FileExt::seek_read(f, buf, at);
}

/// See [`Source`].
pub(crate) enum SourceRead {
    Mapped(Bytes),
    File(std::io::BufReader<FileAt>),
}

impl std::io::Read for SourceRead {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        let n = match self {
            SourceRead::Mapped(b) => {
                let n = buf.len().min(b.len());
                buf[..n].copy_from_slice(&b[..n]);
                b.advance(n);
                n
            }
            SourceRead::File(f) => f.read(buf)?,
        };
        if n == 0 {
            return Err(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                "read past the end of the file (corrupt page header?)",
            ));
        }
        Ok(n)
    }
}

/// Checks that every column chunk the footer describes lies inside the file and that the
/// row groups' row counts are non-negative and sum without overflow: parquet 60 asserts the
/// first (a panic) when it reads a chunk and adds the counts unchecked, so a corrupt footer
/// is an error here first, naming the row group, the column and the bytes (both found by
/// fuzz/parquet_reader).
pub(crate) fn check_column_chunks(
    file: &str,
    metadata: &parquet::file::metadata::ParquetMetaData,
    len: u64,
) -> Result<()> {
    let mut rows: usize = 0;
    for (g, rg) in metadata.row_groups().iter().enumerate() {
        // parquet sums these as usize (an overflow panic in debug builds, a wrap in release)
        let n = usize::try_from(rg.num_rows()).ok();
        match n.and_then(|n| rows.checked_add(n)) {
            Some(total) => rows = total,
            None => {
                return Err(table_err(
                    file,
                    None,
                    None,
                    format!(
                        "corrupt footer: row group {g} claims {} rows",
                        rg.num_rows()
                    ),
                ));
            }
        }
        for c in rg.columns() {
            let start = c.dictionary_page_offset().unwrap_or(c.data_page_offset());
            let size = c.compressed_size();
            let inside = u64::try_from(start)
                .ok()
                .zip(u64::try_from(size).ok())
                .and_then(|(s, n)| s.checked_add(n))
                .is_some_and(|end| end <= len);
            if !inside {
                return Err(table_err(
                    file,
                    None,
                    None,
                    format!(
                        "corrupt footer: row group {g}, column `{}`: a chunk of {size} bytes at byte {start} is not inside the file's {len} bytes",
                        c.column_path()
                    ),
                ));
            }
        }
    }
    Ok(())
}

/// An error naming the first of `groups` that a file of `n` row groups lacks.
pub(crate) fn check_row_groups(file: &str, groups: &[usize], n: usize) -> Result<()> {
    match groups.iter().find(|&&g| g >= n) {
        Some(g) => Err(table_err(file, None, None, format!("row group {g} of {n}"))),
        None => Ok(()),
    }
}

/// The row count of each row group of a Parquet file (to split it across threads: arrow-rs
/// reads one file on one thread).
///
/// # Errors
/// As [`read_parquet`].
pub fn parquet_row_groups(path: impl AsRef<Path>) -> Result<Vec<usize>> {
    let path = path.as_ref();
    let file = name(path);
    let f = File::open(path).map_err(|e| table_source(&file, None, None, e))?;
    let builder = ParquetRecordBatchReaderBuilder::try_new(f)
        .map_err(|e| table_source(&file, None, None, e))?;
    Ok(builder
        .metadata()
        .row_groups()
        .iter()
        .map(|g| g.num_rows() as usize)
        .collect())
}
