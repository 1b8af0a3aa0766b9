//! CSV (arrow-csv) and Parquet (parquet's arrow reader) as iterators of `RecordBatch`es,
//! one batch in memory at a time.

use std::fs::File;
use std::path::Path;
use std::sync::Arc;

use arrow_array::RecordBatch;
use arrow_schema::SchemaRef;
use parquet::arrow::ProjectionMask;
use parquet::arrow::arrow_reader::{ParquetRecordBatchReader, ParquetRecordBatchReaderBuilder};

use super::{no_such_column, table_err};
use crate::Result;

/// How to read a CSV file.
#[derive(Debug, Clone)]
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

/// How to read a Parquet file.
#[derive(Debug, Clone)]
pub struct ParquetOptions {
    /// Only these columns (by name), in file order; `None` reads all.
    pub columns: Option<Vec<String>>,
    /// Only these row groups; `None` reads all.
    pub row_groups: Option<Vec<usize>>,
    /// Rows per batch (default 8192).
    pub batch_size: usize,
}

impl Default for ParquetOptions {
    fn default() -> Self {
        ParquetOptions {
            columns: None,
            row_groups: None,
            batch_size: 8192,
        }
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
                Some(Err(table_err(&self.file, None, None, e)))
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
    let open = || File::open(path).map_err(|e| table_err(&file, None, None, e));
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
                .map_err(|e| table_err(&file, None, None, e))?,
        );
        builder = builder.with_projection(indices);
    }
    let reader = builder
        .build(open()?)
        .map_err(|e| table_err(&file, None, None, e))?;
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
            let f = File::open(path).map_err(|e| table_err(file, None, None, e))?;
            let (schema, _) = format
                .infer_schema(f, Some(options.infer_rows))
                .map_err(|e| table_err(file, None, None, e))?;
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
    let f = File::open(path).map_err(|e| table_err(&file, None, None, e))?;
    let len = f
        .metadata()
        .map_err(|e| table_err(&file, None, None, e))?
        .len();
    let mut builder = ParquetRecordBatchReaderBuilder::try_new(StrictFile(f))
        .map_err(|e| table_err(&file, None, None, e))?
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
        .map_err(|e| table_err(&file, None, None, e))?;
    let schema = arrow_array::RecordBatchReader::schema(&reader);
    Ok(TableReader {
        inner: Inner::Parquet(reader),
        file,
        schema,
        rows: 0,
        failed: false,
    })
}

/// A Parquet file whose readers fail on a read past its end instead of returning 0 bytes.
/// A well-formed file is never read there (its footer follows every page), but parquet 60's
/// Thrift decoder, skipping a corrupt page header's list of a billion elements, read 0
/// bytes a billion times (3 minutes on a 2 KB file, found by fuzz/parquet_reader).
struct StrictFile(File);

impl parquet::file::reader::Length for StrictFile {
    fn len(&self) -> u64 {
        parquet::file::reader::Length::len(&self.0)
    }
}

impl parquet::file::reader::ChunkReader for StrictFile {
    type T = StrictRead;

    fn get_read(&self, start: u64) -> parquet::errors::Result<StrictRead> {
        Ok(StrictRead(self.0.get_read(start)?))
    }

    fn get_bytes(&self, start: u64, length: usize) -> parquet::errors::Result<bytes::Bytes> {
        self.0.get_bytes(start, length)
    }
}

/// See [`StrictFile`].
struct StrictRead(std::io::BufReader<File>);

impl std::io::Read for StrictRead {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        match self.0.read(buf)? {
            0 => Err(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                "read past the end of the file (corrupt page header?)",
            )),
            n => Ok(n),
        }
    }
}

/// Checks that every column chunk the footer describes lies inside the file and that the
/// row groups' row counts are non-negative and sum without overflow: parquet 60 asserts the
/// first (a panic) when it reads a chunk and adds the counts unchecked, so a corrupt footer
/// is an error here first, naming the row group, the column and the bytes (both found by
/// fuzz/parquet_reader).
fn check_column_chunks(
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
    let f = File::open(path).map_err(|e| table_err(&file, None, None, e))?;
    let builder =
        ParquetRecordBatchReaderBuilder::try_new(f).map_err(|e| table_err(&file, None, None, e))?;
    Ok(builder
        .metadata()
        .row_groups()
        .iter()
        .map(|g| g.num_rows() as usize)
        .collect())
}
