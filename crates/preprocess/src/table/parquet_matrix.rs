//! A Parquet file's features into one matrix, row groups spread over threads.
//!
//! Columns of plain numeric types (stored as INT32, INT64, FLOAT, DOUBLE or BOOLEAN, read by
//! arrow as ints, unsigned ints, floats or booleans, not nested) are decoded by parquet's
//! column readers straight into the matrix, a block of rows at a time, without building
//! arrow arrays; other columns (f16, dictionaries, …) go through arrow as
//! [`read_parquet`] reads them.

use std::path::Path;

use arrow_schema::DataType;
use parquet::basic::{Encoding, Type as Physical};
use parquet::column::reader::{ColumnReader, ColumnReaderImpl};
use parquet::data_type::DataType as ParquetType;
use parquet::file::metadata::ParquetMetaData;
use parquet::file::reader::{ChunkReader, FileReader, RowGroupReader};
use parquet::file::serialized_reader::SerializedFileReader;
use rayon::prelude::*;

use super::features::{FeatureMatrix, Features, Nulls, null_error};
use super::plain_pages::{PlainPages, Stretch};
use super::read::{
    ParquetOptions, check_column_chunks, check_row_groups, name, open_parquet, read_parquet,
};
use super::{table_err, table_source};
use crate::{BufferPool, Result};

/// Reads `features` of the Parquet file at `path` into one row-major `[rows, width]` matrix:
/// each row group (all of them, or `options.row_groups` in that order) is read and
/// converted into its own rows of the matrix, on `threads` threads (1: the calling thread
/// only; more: a pool of that many for this call). arrow-rs reads a file on one thread, so
/// this is how a file is split: each thread takes an equal range of rows, cutting row
/// groups where a range ends (or, when some feature goes through arrow, whole groups handed
/// out as threads free up). Only the features' columns are decoded (`options.columns` is
/// ignored).
///
/// Columns of plain numeric types (INT32, INT64, FLOAT, DOUBLE, BOOLEAN that arrow reads as
/// ints, unsigned ints, floats or booleans, not nested) are decoded straight into the
/// matrix, blocks of ~128 KiB of it at a time: PLAIN pages read where they lie in the
/// decompressed page, other encodings (dictionaries, delta, …) by parquet's column
/// readers. Other columns (f16, dictionary-typed columns) go through arrow arrays as
/// [`FeatureMatrix::from_batch`] does, in batches of `options.batch_size` rows. The values
/// are the same either way.
///
/// Parquet allocates a buffer for every page it decompresses; glibc's malloc returns each
/// to the system and faults it in again, so a program that reads much Parquet should use
/// an allocator such as mimalloc or jemalloc, as pyarrow (mimalloc) and polars (jemalloc)
/// do (BENCHMARKS.md, "Design measurements").
///
/// The matrix reuses a buffer of `pool` when one is big enough; otherwise it is allocated
/// zeroed by the system, so its pages are first touched by the threads that fill them.
///
/// ```
/// use std::sync::Arc;
/// use inferkit_preprocess::table::{
///     arrow_array::{ArrayRef, Float64Array, Int64Array},
///     read_parquet_matrix, Features, ParquetOptions, RecordBatch,
/// };
/// use inferkit_preprocess::BufferPool;
///
/// let dir = tempfile::tempdir()?;
/// let path = dir.path().join("t.parquet");
/// let batch = RecordBatch::try_from_iter([
///     ("a", Arc::new(Float64Array::from(vec![0.5, 1.5])) as ArrayRef),
///     ("b", Arc::new(Int64Array::from(vec![7, 8])) as ArrayRef),
/// ])?;
/// let mut w = parquet::arrow::ArrowWriter::try_new(
///     std::fs::File::create(&path)?, batch.schema(), None)?;
/// w.write(&batch)?;
/// w.close()?;
/// let features = Features::new(["b", "a"]);
/// let m = read_parquet_matrix(&path, &ParquetOptions::default(), &features,
///                             &BufferPool::new(1), 2)?;
/// assert_eq!(m.as_slice(), &[7.0, 0.5, 8.0, 1.5]);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
///
/// # Errors
/// [`Error::Table`](crate::Error::Table) naming the file: as [`read_parquet`] (unreadable,
/// corrupt, a missing column, a row group that is not there); as [`Features::fill`] (a
/// column that is not numeric, a null under [`Nulls::Error`](super::Nulls::Error), naming
/// the row counted from the file's start, and the column); a row group holding another
/// number of rows than its metadata says; the thread pool failing to start.
pub fn read_parquet_matrix(
    path: impl AsRef<Path>,
    options: &ParquetOptions,
    features: &Features,
    pool: &BufferPool<f32>,
    threads: usize,
) -> Result<FeatureMatrix> {
    let path = path.as_ref();
    let file = name(path);
    let (source, len) = open_parquet(path, &file, options)?;
    let reader =
        SerializedFileReader::new(source).map_err(|e| table_source(&file, None, None, e))?;
    let meta = reader.metadata();
    check_column_chunks(&file, meta, len)?;
    let counts: Vec<usize> = meta
        .row_groups()
        .iter()
        .map(|g| g.num_rows() as usize)
        .collect();
    let groups: Vec<usize> = match &options.row_groups {
        Some(g) => g.clone(),
        None => (0..counts.len()).collect(),
    };
    check_row_groups(&file, &groups, counts.len())?;
    let plan = Plan::new(meta, features);
    let (straight, arrow): (Vec<_>, Vec<_>) = features
        .columns()
        .iter()
        .zip(&plan.direct)
        .partition(|(_, d)| d.is_some());
    tracing::debug!(
        file,
        direct = ?straight.iter().map(|((c, _), _)| c).collect::<Vec<_>>(),
        arrow = ?arrow.iter().map(|((c, _), _)| c).collect::<Vec<_>>(),
        "Parquet features: decoded straight from the column chunks, and through arrow"
    );
    let width = features.width();
    let total: usize = groups.iter().map(|&g| counts[g]).sum();
    let mut data = pool.get();
    if data.capacity() >= total * width {
        data.resize(total * width, 0.0);
    } else {
        *data = vec![0.0; total * width];
    }
    // Jobs: on several threads with every feature decoded directly, one range of rows a
    // thread, the ranges equal and laid end to end over the groups, a group cut where a
    // range ends (its readers skip the rows before the cut, whole pages by their headers;
    // the page the cut falls in is decompressed twice), so the shares are even whatever the
    // groups' sizes; otherwise a job a whole group, handed to threads as they free up. The
    // bench file's 15.26 groups of 131,072 rows on two threads: whole groups (8 against
    // 7.26) 57–59 ms, one range a thread 55–59 ms, two ranges a thread 67–69 ms, every group
    // cut in halves 60–71 ms (one thread: 100–104 ms).
    let ranges = if threads > 1 && plan.direct.iter().all(Option::is_some) {
        RANGES_PER_THREAD * threads
    } else {
        0
    };
    let mut jobs: Vec<Vec<(usize, usize, &mut [f32])>> = Vec::new();
    let mut rest: &mut [f32] = &mut data;
    let mut at = 0; // rows of the matrix laid out so far
    for &g in &groups {
        let mut start = 0;
        while start < counts[g] || (counts[g] == 0 && start == 0) {
            // the range row `at` falls in, and where it ends
            let (k, end) = if ranges == 0 {
                (jobs.len(), counts[g])
            } else {
                let k = at * ranges / total.max(1);
                let range_end = (total * (k + 1)).div_ceil(ranges);
                (k, (start + range_end - at).min(counts[g]))
            };
            let (part, tail) = rest.split_at_mut((end - start) * width);
            rest = tail;
            if jobs.len() <= k {
                jobs.resize_with(k + 1, Vec::new);
            }
            jobs[k].push((g, start, part));
            at += end - start;
            if end == start {
                break;
            }
            start = end;
        }
    }
    let block = (BLOCK_FLOATS / width.max(1)).max(1);
    let one = |job: Vec<(usize, usize, &mut [f32])>| -> Result<()> {
        for (g, start, part) in job {
            // rows are counted from the file's start in errors
            let first = counts[..g].iter().sum::<usize>();
            let group = Group {
                file: &file,
                index: g,
                rows: counts[g],
                first,
                width,
            };
            if plan.direct.iter().any(Option::is_some) {
                direct(&reader, &group, start, &plan, features, part, block)
                    .map_err(|e| in_row_group(e, reader.metadata(), g))?;
            }
            if plan.direct.iter().any(Option::is_none) {
                // whole groups only: groups are cut when every feature is direct
                through_arrow(path, &group, &plan, features, options, part)
                    .map_err(|e| in_row_group(e, reader.metadata(), g))?;
            }
        }
        Ok(())
    };
    if threads > 1 && jobs.len() > 1 {
        let workers = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .thread_name(|i| format!("parquet-matrix-{i}"))
            .build()
            .map_err(|e| table_err(&file, None, None, format!("thread pool: {e}")))?;
        workers.install(|| jobs.into_par_iter().try_for_each(one))?;
    } else {
        jobs.into_iter().try_for_each(one)?;
    }
    Ok(FeatureMatrix::from_parts(data, total, width))
}

/// Floats of matrix a block of the direct path fills.
const BLOCK_FLOATS: usize = 32 * 1024;

/// On several threads, the ranges of rows a thread's share is cut into (see the jobs in
/// [`read_parquet_matrix`]).
const RANGES_PER_THREAD: usize = 1;

/// One row group's place: its index, rows, first file row and the matrix's width.
struct Group<'a> {
    file: &'a str,
    index: usize,
    rows: usize,
    first: usize,
    width: usize,
}

/// How a stored value becomes an f32, as arrow reads the column.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Kind {
    F64,
    F32,
    I8,
    I16,
    I32,
    U8,
    U16,
    U32,
    I64,
    U64,
    Bool,
}

impl Kind {
    /// Bytes a PLAIN value takes.
    fn bytes(self) -> usize {
        match self {
            Kind::F64 | Kind::I64 | Kind::U64 => 8,
            Kind::Bool => 0,
            _ => 4,
        }
    }
}

/// Which features are decoded straight from their column chunks: `direct[k]` is the leaf
/// column and its conversion for feature `k`, or `None` for one read through arrow.
struct Plan {
    direct: Vec<Option<(usize, Kind)>>,
}

impl Plan {
    fn new(meta: &ParquetMetaData, features: &Features) -> Plan {
        let schema = meta.file_metadata().schema_descr();
        let arrow = parquet::arrow::parquet_to_arrow_schema(
            schema,
            meta.file_metadata().key_value_metadata(),
        )
        .ok();
        let direct = features
            .columns()
            .iter()
            .map(|(name, _)| {
                let field = arrow.as_ref()?.field_with_name(name).ok()?;
                let leaf = (0..schema.num_columns()).find(|&i| {
                    let c = schema.column(i);
                    c.path().parts() == [name.as_str()]
                        && c.max_rep_level() == 0
                        && c.max_def_level() <= 1
                })?;
                let kind = kind(schema.column(leaf).physical_type(), field.data_type())?;
                Some((leaf, kind))
            })
            .collect();
        Plan { direct }
    }
}

/// The conversion of a column stored as `physical` that arrow reads as `arrow`, if the
/// direct path takes it.
fn kind(physical: Physical, arrow: &DataType) -> Option<Kind> {
    Some(match (physical, arrow) {
        (Physical::DOUBLE, DataType::Float64) => Kind::F64,
        (Physical::FLOAT, DataType::Float32) => Kind::F32,
        (Physical::INT32, DataType::Int8) => Kind::I8,
        (Physical::INT32, DataType::Int16) => Kind::I16,
        (Physical::INT32, DataType::Int32) => Kind::I32,
        (Physical::INT32, DataType::UInt8) => Kind::U8,
        (Physical::INT32, DataType::UInt16) => Kind::U16,
        (Physical::INT32, DataType::UInt32) => Kind::U32,
        (Physical::INT64, DataType::Int64) => Kind::I64,
        (Physical::INT64, DataType::UInt64) => Kind::U64,
        (Physical::BOOLEAN, DataType::Boolean) => Kind::Bool,
        _ => return None,
    })
}

/// A column's reader and the buffers one block is decoded into: a chunk of PLAIN pages
/// read where they lie, or parquet's column reader.
enum Typed {
    Plain(PlainPages),
    F64(ColumnReaderImpl<parquet::data_type::DoubleType>, Vec<f64>),
    F32(ColumnReaderImpl<parquet::data_type::FloatType>, Vec<f32>),
    I32(ColumnReaderImpl<parquet::data_type::Int32Type>, Vec<i32>),
    I64(ColumnReaderImpl<parquet::data_type::Int64Type>, Vec<i64>),
    Bool(ColumnReaderImpl<parquet::data_type::BoolType>, Vec<bool>),
}

/// One feature on the direct path.
struct Column<'a> {
    name: &'a str,
    policy: Nulls,
    /// Its first column in the matrix.
    col: usize,
    kind: Kind,
    nullable: bool,
    reader: Typed,
    defs: Vec<i16>,
}

/// The direct features of row group `group.index`, from its row `start` on, into `part`
/// (those rows of the matrix).
fn direct<R: ChunkReader + 'static>(
    reader: &SerializedFileReader<R>,
    group: &Group<'_>,
    start: usize,
    plan: &Plan,
    features: &Features,
    part: &mut [f32],
    block: usize,
) -> Result<()> {
    let file = group.file;
    // a decoder that panics on corrupt pages (a dependency's bug) is an error naming the
    // file, as in `TableReader`
    let run = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let rg = reader
            .get_row_group(group.index)
            .map_err(|e| table_source(file, None, None, e))?;
        let mut columns = Vec::new();
        let mut col = 0;
        for ((name, policy), d) in features.columns().iter().zip(&plan.direct) {
            if let Some((leaf, kind)) = *d {
                columns.push(open_column(&*rg, leaf, kind, name, *policy, col, file)?);
            }
            col += if *policy == Nulls::Mask { 2 } else { 1 };
        }
        for c in &mut columns {
            let skipped = c.skip(start).map_err(|e| c.error(file, e))?;
            if skipped != start {
                return Err(group_size(file, group.index, group.rows));
            }
        }
        let rows = part.len() / group.width;
        let mut done = 0;
        while done < rows {
            let n = block.min(rows - done);
            let out = &mut part[done * group.width..(done + n) * group.width];
            for c in &mut columns {
                c.block(n, out, group, group.first + start + done)?;
            }
            done += n;
        }
        // a chunk holding more rows than the group's metadata says
        if start + rows == group.rows {
            for c in &mut columns {
                if c.read(1).map_err(|e| c.error(file, e))? != 0 {
                    return Err(group_size(file, group.index, group.rows));
                }
            }
        }
        Ok(())
    }));
    match run {
        Ok(r) => r,
        Err(p) => {
            let msg = p
                .downcast_ref::<&str>()
                .map(|s| (*s).to_owned())
                .or_else(|| p.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "a panic".into());
            Err(table_err(
                file,
                Some(group.first),
                None,
                format!("the decoder failed on corrupt data: {msg}"),
            ))
        }
    }
}

fn open_column<'a>(
    rg: &dyn RowGroupReader,
    leaf: usize,
    kind: Kind,
    name: &'a str,
    policy: Nulls,
    col: usize,
    file: &str,
) -> Result<Column<'a>> {
    let nullable = rg.metadata().schema_descr().column(leaf).max_def_level() > 0;
    // non-negative: `check_column_chunks` read every group's count
    let rows = usize::try_from(rg.metadata().num_rows()).unwrap_or(0);
    let chunk = rg.metadata().column(leaf);
    let plain = chunk.dictionary_page_offset().is_none()
        && chunk
            .encodings()
            .all(|e| matches!(e, Encoding::PLAIN | Encoding::RLE));
    // booleans are bit-packed: parquet's reader
    if plain && kind != Kind::Bool {
        let pages = rg
            .get_column_page_reader(leaf)
            .map_err(|e| table_source(file, None, Some(name), e))?;
        return Ok(Column {
            name,
            policy,
            col,
            kind,
            nullable,
            reader: Typed::Plain(PlainPages::new(pages, nullable, kind.bytes(), rows)),
            defs: Vec::new(),
        });
    }
    let reader = match rg
        .get_column_reader(leaf)
        .map_err(|e| table_source(file, None, Some(name), e))?
    {
        ColumnReader::DoubleColumnReader(r) => Typed::F64(r, Vec::new()),
        ColumnReader::FloatColumnReader(r) => Typed::F32(r, Vec::new()),
        ColumnReader::Int32ColumnReader(r) => Typed::I32(r, Vec::new()),
        ColumnReader::Int64ColumnReader(r) => Typed::I64(r, Vec::new()),
        ColumnReader::BoolColumnReader(r) => Typed::Bool(r, Vec::new()),
        _ => unreachable!("`kind` takes only these physical types"),
    };
    Ok(Column {
        name,
        policy,
        col,
        kind,
        nullable,
        reader,
        defs: Vec::new(),
    })
}

impl Column<'_> {
    /// Decodes up to `n` rows into the buffers (parquet's reader) or past them (PLAIN pages,
    /// at most a page): the rows decoded.
    fn read(&mut self, n: usize) -> std::result::Result<usize, String> {
        fn records<T: ParquetType>(
            r: &mut ColumnReaderImpl<T>,
            values: &mut Vec<T::T>,
            defs: Option<&mut Vec<i16>>,
            n: usize,
        ) -> std::result::Result<usize, String> {
            values.clear();
            r.read_records(n, defs, None, values)
                .map(|(rows, _, _)| rows)
                .map_err(|e| e.to_string())
        }
        self.defs.clear();
        let defs = self.nullable.then_some(&mut self.defs);
        match &mut self.reader {
            Typed::Plain(p) => Ok(p.take(n)?.map_or(0, |s| s.rows)),
            Typed::F64(r, v) => records(r, v, defs, n),
            Typed::F32(r, v) => records(r, v, defs, n),
            Typed::I32(r, v) => records(r, v, defs, n),
            Typed::I64(r, v) => records(r, v, defs, n),
            Typed::Bool(r, v) => records(r, v, defs, n),
        }
    }

    /// Skips `n` rows: the rows skipped.
    fn skip(&mut self, n: usize) -> std::result::Result<usize, String> {
        if n == 0 {
            return Ok(0);
        }
        let skipped = match &mut self.reader {
            Typed::Plain(p) => return p.skip(n),
            Typed::F64(r, _) => r.skip_records(n),
            Typed::F32(r, _) => r.skip_records(n),
            Typed::I32(r, _) => r.skip_records(n),
            Typed::I64(r, _) => r.skip_records(n),
            Typed::Bool(r, _) => r.skip_records(n),
        };
        skipped.map_err(|e| e.to_string())
    }

    fn error(&self, file: &str, e: impl std::fmt::Display) -> crate::Error {
        table_err(file, None, Some(self.name), e)
    }

    /// The next `n` rows of this column into `out` (those rows of the matrix); `first` is
    /// the file row of the first.
    fn block(&mut self, n: usize, out: &mut [f32], group: &Group<'_>, first: usize) -> Result<()> {
        let mut at = Place {
            file: group.file,
            name: self.name,
            policy: self.policy,
            col: self.col,
            width: group.width,
            first,
        };
        if let Typed::Plain(pages) = &mut self.reader {
            let mut done = 0;
            while done < n {
                let stretch = pages
                    .take(n - done)
                    .map_err(|e| table_err(group.file, None, Some(self.name), e))?;
                let Some(s) = stretch else {
                    return Err(group_size(group.file, group.index, group.rows));
                };
                let rows = &mut out[done * group.width..(done + s.rows) * group.width];
                at.first = first + done;
                plain(&s, self.kind, rows, &at)?;
                done += s.rows;
            }
            return Ok(());
        }
        let got = self.read(n).map_err(|e| self.error(group.file, e))?;
        if got != n {
            return Err(group_size(group.file, group.index, group.rows));
        }
        let defs = self.nullable.then_some(self.defs.as_slice());
        // the values and whether any row is null
        macro_rules! put {
            ($v:expr, $to:expr) => {
                put(
                    $v.iter().map($to),
                    defs.is_some_and(|d| d.len() != $v.len()),
                    defs,
                    out,
                    &at,
                )
            };
        }
        match (&self.reader, self.kind) {
            (Typed::F64(_, v), _) => put!(v, |&x| x as f32),
            (Typed::F32(_, v), _) => put!(v, |&x| x),
            (Typed::I32(_, v), Kind::I8) => put!(v, |&x| f32::from(x as i8)),
            (Typed::I32(_, v), Kind::I16) => put!(v, |&x| f32::from(x as i16)),
            (Typed::I32(_, v), Kind::U8) => put!(v, |&x| f32::from(x as u8)),
            (Typed::I32(_, v), Kind::U16) => put!(v, |&x| f32::from(x as u16)),
            (Typed::I32(_, v), Kind::U32) => put!(v, |&x| x as u32 as f32),
            (Typed::I32(_, v), _) => put!(v, |&x| x as f32),
            (Typed::I64(_, v), Kind::U64) => put!(v, |&x| x as u64 as f32),
            (Typed::I64(_, v), _) => put!(v, |&x| x as f32),
            (Typed::Bool(_, v), _) => put!(v, |&x| f32::from(u8::from(x))),
            (Typed::Plain(_), _) => unreachable!("read above"),
        }
    }
}

/// A stretch of PLAIN values (little-endian, `kind`'s width) into `out`, its rows.
fn plain(s: &Stretch<'_>, kind: Kind, out: &mut [f32], at: &Place<'_>) -> Result<()> {
    fn le<const N: usize>(c: &[u8]) -> [u8; N] {
        let mut a = [0; N];
        a.copy_from_slice(c);
        a
    }
    let nulls = s.defs.is_some() && s.values.len() != s.rows * kind.bytes();
    // the values of each width, converted as parquet's arrow reader converts them
    macro_rules! put {
        ($width:literal, $to:expr) => {
            put(
                s.values.chunks_exact($width).map($to),
                nulls,
                s.defs,
                out,
                at,
            )
        };
    }
    match kind {
        Kind::F64 => put!(8, |c| f64::from_le_bytes(le(c)) as f32),
        Kind::I64 => put!(8, |c| i64::from_le_bytes(le(c)) as f32),
        Kind::U64 => put!(8, |c| u64::from_le_bytes(le(c)) as f32),
        Kind::F32 => put!(4, |c| f32::from_le_bytes(le(c))),
        Kind::I32 => put!(4, |c| i32::from_le_bytes(le(c)) as f32),
        Kind::U32 => put!(4, |c| u32::from_le_bytes(le(c)) as f32),
        Kind::I8 => put!(4, |c| f32::from(i32::from_le_bytes(le(c)) as i8)),
        Kind::I16 => put!(4, |c| f32::from(i32::from_le_bytes(le(c)) as i16)),
        Kind::U8 => put!(4, |c| f32::from(i32::from_le_bytes(le(c)) as u8)),
        Kind::U16 => put!(4, |c| f32::from(i32::from_le_bytes(le(c)) as u16)),
        Kind::Bool => unreachable!("booleans go through parquet's reader"),
    }
}

/// Where a block of one column goes, and what names it in errors.
struct Place<'a> {
    file: &'a str,
    name: &'a str,
    policy: Nulls,
    col: usize,
    width: usize,
    first: usize,
}

/// Writes a block of `values` (the non-null ones, in order; with `nulls`, `defs` says which
/// rows they are, 0 a null) into column `at.col` of `out`, and the mask column after it
/// under [`Nulls::Mask`].
fn put<D: Copy + Into<i16>>(
    values: impl Iterator<Item = f32>,
    nulls: bool,
    defs: Option<&[D]>,
    out: &mut [f32],
    at: &Place<'_>,
) -> Result<()> {
    let rows = out.chunks_exact_mut(at.width);
    let mask = at.policy == Nulls::Mask;
    match defs {
        Some(defs) if nulls => {
            let mut values = values;
            for (i, (row, &d)) in rows.zip(defs).enumerate() {
                let null = d.into() == 0;
                row[at.col] = match if null { None } else { values.next() } {
                    Some(v) => v,
                    None => match at.policy {
                        Nulls::Error => return Err(null_error(at.file, at.first + i, at.name)),
                        Nulls::Fill(f) => f,
                        Nulls::Mask => 0.0,
                    },
                };
                if mask {
                    row[at.col + 1] = f32::from(u8::from(null));
                }
            }
        }
        _ => {
            for (row, v) in rows.zip(values) {
                row[at.col] = v;
                if mask {
                    row[at.col + 1] = 0.0;
                }
            }
        }
    }
    Ok(())
}

/// The features the plan leaves to arrow, of row group `group.index`, into `part`.
fn through_arrow(
    path: &Path,
    group: &Group<'_>,
    plan: &Plan,
    features: &Features,
    options: &ParquetOptions,
    part: &mut [f32],
) -> Result<()> {
    let only: Vec<bool> = plan.direct.iter().map(Option::is_none).collect();
    let columns = features
        .columns()
        .iter()
        .zip(&only)
        .filter(|(_, o)| **o)
        .map(|((c, _), _)| c.clone())
        .collect();
    let options = ParquetOptions {
        columns: Some(columns),
        row_groups: Some(vec![group.index]),
        ..options.clone()
    };
    let (mut at, mut row) = (0, group.first);
    for batch in read_parquet(path, &options)? {
        let batch = batch?;
        let len = batch.num_rows() * group.width;
        let Some(dst) = part.get_mut(at..at + len) else {
            return Err(group_size(group.file, group.index, group.rows));
        };
        features.fill_some(&batch, dst, row, group.file, Some(&only))?;
        at += len;
        row += batch.num_rows();
    }
    if at != part.len() {
        return Err(group_size(group.file, group.index, group.rows));
    }
    Ok(())
}

/// A table error of row group `index` that names no row: the group, and the column chunk's
/// codec where it names a column, in its message (a corrupt page or a codec that fails says
/// where it is: `row group 1, ZSTD chunk: …`).
fn in_row_group(mut e: crate::Error, meta: &ParquetMetaData, index: usize) -> crate::Error {
    if let crate::Error::Table {
        row: None,
        column,
        message,
        ..
    } = &mut e
        && !message.contains("row group")
    {
        let codec = meta.row_groups().get(index).and_then(|rg| {
            let chunk = rg
                .columns()
                .iter()
                .find(|c| Some(c.column_path().string()) == *column)?;
            let codec = format!("{:?}", chunk.compression());
            Some(codec.split('(').next().unwrap_or_default().to_owned())
        });
        *message = match codec {
            Some(codec) => format!("row group {index}, {codec} chunk: {message}"),
            None => format!("row group {index}: {message}"),
        };
    }
    e
}

fn group_size(file: &str, group: usize, rows: usize) -> crate::Error {
    table_err(
        file,
        None,
        None,
        format!("row group {group} does not hold the {rows} rows its metadata says"),
    )
}
