//! CSV straight into a feature matrix, without arrow arrays in between.

use std::borrow::Cow;
use std::fs::File;
use std::path::Path;

use arrow_array::types::{
    Float32Type, Float64Type, Int8Type, Int16Type, Int32Type, Int64Type, UInt8Type, UInt16Type,
    UInt32Type, UInt64Type,
};
use arrow_cast::parse::Parser;
use arrow_schema::DataType;

use super::features::null_error;
use super::read::{CsvOptions, csv_schema, name, read_csv};
use super::{FeatureMatrix, Features, Nulls, no_such_column, table_err, table_source};
use crate::Result;
use crate::pool::BufferPool;

/// How one matrix column's text becomes a number: the column's arrow type decides, so the
/// values are those the arrow path ([`read_csv`] then [`FeatureMatrix::from_batch`]) gives.
#[derive(Debug, Clone, Copy)]
enum Kind {
    I8,
    I16,
    I32,
    I64,
    U8,
    U16,
    U32,
    U64,
    F32,
    F64,
    Bool,
}

impl Kind {
    fn of(t: &DataType) -> Option<Kind> {
        Some(match t {
            DataType::Int8 => Kind::I8,
            DataType::Int16 => Kind::I16,
            DataType::Int32 => Kind::I32,
            DataType::Int64 => Kind::I64,
            DataType::UInt8 => Kind::U8,
            DataType::UInt16 => Kind::U16,
            DataType::UInt32 => Kind::U32,
            DataType::UInt64 => Kind::U64,
            DataType::Float32 => Kind::F32,
            DataType::Float64 => Kind::F64,
            DataType::Boolean => Kind::Bool,
            _ => return None,
        })
    }

    /// The number in `text` (not empty), or `None` when it is not one of this type: arrow-cast's
    /// parsers, which arrow-csv uses, so the same text gives the same number or the same
    /// refusal.
    #[inline]
    fn parse(self, text: &str) -> Option<f32> {
        macro_rules! p {
            ($t:ty) => {
                <$t as Parser>::parse(text).map(|v| v as f32)
            };
        }
        match self {
            Kind::I8 => p!(Int8Type),
            Kind::I16 => p!(Int16Type),
            Kind::I32 => p!(Int32Type),
            Kind::I64 => p!(Int64Type),
            Kind::U8 => p!(UInt8Type),
            Kind::U16 => p!(UInt16Type),
            Kind::U32 => p!(UInt32Type),
            Kind::U64 => p!(UInt64Type),
            Kind::F32 => Float32Type::parse(text),
            Kind::F64 => p!(Float64Type),
            // arrow-csv's boolean parsing
            Kind::Bool => {
                if text.eq_ignore_ascii_case("true") {
                    Some(1.0)
                } else if text.eq_ignore_ascii_case("false") {
                    Some(0.0)
                } else {
                    None
                }
            }
        }
    }
}

/// One matrix column: where its text is in a record, how to parse it, what a null becomes.
struct Column<'a> {
    name: &'a str,
    field: usize,
    kind: Kind,
    dtype: &'a DataType,
    policy: Nulls,
    /// Its place in a matrix row (its mask, if any, right after).
    col: usize,
}

/// Reads the `features` of a CSV file into one row-major f32 matrix (`rows × width`) in a
/// buffer from `pool` — the values, nulls and errors of [`read_csv`] followed by
/// [`FeatureMatrix::from_batch`] on every batch, without building arrow arrays: records are
/// split by `simd-csv` and each chosen field is parsed (by arrow-cast's parsers, as
/// arrow-csv does) straight into its place. About twice as fast as the arrow path on a table
/// of numbers (see the crate README). Column types come from `options.schema` or are
/// inferred from the first `options.infer_rows` rows, as [`read_csv`] does. A column of a
/// type this path does not parse (e.g. `Float16`, a dictionary), or a record with a bare
/// carriage return (old Mac line ends), with a quote anywhere but around a whole field, with
/// bytes that are not UTF-8, or with another number of fields than the header, sends the
/// whole read through the arrow path, so the answer is always `read_csv`'s (checked by fuzz
/// target `csv_reader`, which compares the two paths). One thread (CSV has no row groups to
/// split by). Only the features' columns are parsed, on either path (`options.columns` and
/// `options.batch_size` do not change the result).
///
/// An empty field is a null. Records may quote fields (`options.quote`, doubled to escape).
///
/// ```
/// use inferkit_preprocess::table::{read_csv_matrix, CsvOptions, Features, Nulls};
/// use inferkit_preprocess::BufferPool;
///
/// let dir = tempfile::tempdir()?;
/// let path = dir.path().join("t.csv");
/// std::fs::write(&path, "id,a,b\n1,0.5,\n2,1.5,7\n")?;
/// let features = Features::new(["a", "b"]).with_nulls("b", Nulls::Mask);
/// let m = read_csv_matrix(&path, &CsvOptions::default(), &features, &BufferPool::new(1))?;
/// assert_eq!(m.as_slice(), &[0.5, 0.0, 1.0, 1.5, 7.0, 0.0]);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
///
/// # Errors
/// [`Error::Table`](crate::Error::Table) naming the file: unreadable, a schema that cannot be
/// inferred, a missing column (naming those there are), a column that is not numeric; a
/// record with another number of fields than the header (through the arrow path, which
/// names the line); a value that is not a number of its column's type, or a null under
/// [`Nulls::Error`] (row and column). Rows are counted from 0, the header not included.
pub fn read_csv_matrix(
    path: impl AsRef<Path>,
    options: &CsvOptions,
    features: &Features,
    pool: &BufferPool<f32>,
) -> Result<FeatureMatrix> {
    let path = path.as_ref();
    let file = name(path);
    let (_, schema) = csv_schema(path, &file, options)?;
    let mut columns = Vec::with_capacity(features.columns().len());
    let mut col = 0;
    for (name, policy) in features.columns() {
        let (field, f) = schema
            .column_with_name(name)
            .ok_or_else(|| no_such_column(&file, name, &schema))?;
        let Some(kind) = Kind::of(f.data_type()) else {
            return arrow_path(path, &file, options, features, pool);
        };
        columns.push(Column {
            name,
            field,
            kind,
            dtype: f.data_type(),
            policy: *policy,
            col,
        });
        col += if *policy == Nulls::Mask { 2 } else { 1 };
    }
    let width = col;
    let fields = schema.fields().len();
    if fields == 0 || !options.quote.is_ascii() || !options.delimiter.is_ascii() {
        // arrow-csv's answer to a file without columns (an error for any line); separators
        // that are not ASCII (fields would not be slices of the record's text)
        return arrow_path(path, &file, options, features, pool);
    }

    let f = File::open(path).map_err(|e| table_source(&file, None, None, e))?;
    let file_len = f.metadata().map_or(0, |m| m.len()) as usize;
    let mut reader = simd_csv::ZeroCopyReaderBuilder::new()
        .delimiter(options.delimiter)
        .quote(options.quote)
        .has_headers(options.header)
        .flexible(true)
        .buffer_capacity(1 << 20)
        .from_reader(f);
    let io = |e: simd_csv::Error| table_source(&file, None, None, e);
    let header = reader.byte_headers().map_err(io)?;
    if header.as_slice().contains(&b'\r') || header.as_slice().contains(&options.quote) {
        // a bare CR or a stray quote in the header (see `unusual`)
        return arrow_path(path, &file, options, features, pool);
    }
    let q = options.quote;
    let mut data = pool.get_with_capacity(0);
    data.clear();
    let mut rows = 0usize;
    while let Some(record) = reader.read_byte_record().map_err(io)? {
        let raw = record.as_slice();
        let line = match simdutf8::basic::from_utf8(raw) {
            Ok(line) if record.len() == fields && !unusual(&record, q) => line,
            // a ragged record, a bare CR (old Mac line ends, which csv-core reads as line
            // ends and simd-csv does not), quotes other than around a whole field (which
            // the two splitters read differently), or bytes that are not UTF-8 in any field
            // (arrow-csv refuses the file): the arrow path gives `read_csv`'s answer (an
            // error naming the line, or csv-core's reading)
            _ => return arrow_path(path, &file, options, features, pool),
        };
        if rows == 0 {
            // room for the rows the file seems to hold, judged by this one (at most a row
            // per two bytes a field)
            let guess = (file_len / (raw.len() + 1)).saturating_mul(11) / 10;
            data.reserve(guess.min(file_len / (2 * fields)).max(1) * width);
        }
        let start = data.len();
        data.resize(start + width, 0.0);
        let row = &mut data[start..];
        for c in &columns {
            let Some(text) = field(&record, line, raw, c.field, q) else {
                return arrow_path(path, &file, options, features, pool);
            };
            if text.is_empty() {
                match c.policy {
                    Nulls::Error => return Err(null_error(&file, rows, c.name)),
                    Nulls::Fill(v) => row[c.col] = v,
                    Nulls::Mask => row[c.col + 1] = 1.0,
                }
                continue;
            }
            row[c.col] = c.kind.parse(&text).ok_or_else(|| {
                table_err(
                    &file,
                    Some(rows),
                    Some(c.name),
                    format!("`{text}` is not a {} value", c.dtype),
                )
            })?;
        }
        rows += 1;
    }
    Ok(FeatureMatrix::from_parts(data, rows, width))
}

/// Field `i` of `record` as text, unquoted: `line` is the whole record (`raw`) already
/// checked as UTF-8, so a field is a slice of it; only a quoted field with doubled quotes
/// inside is copied. `record` has passed [`unusual`], so a quoted field is quoted whole.
/// `None` for a field that is not there or not on character boundaries (neither can happen
/// with ASCII separators; the caller then reads through the arrow path).
#[inline(always)]
fn field<'a>(
    record: &simd_csv::ZeroCopyByteRecord<'_>,
    line: &'a str,
    raw: &[u8],
    i: usize,
    q: u8,
) -> Option<Cow<'a, str>> {
    let mut cell = record.get(i)?;
    let quoted = cell.len() >= 2 && cell[0] == q;
    if quoted {
        cell = &cell[1..cell.len() - 1];
    }
    // where the field lies in the record: its separators are ASCII, so the slice of `line`
    // is on character boundaries (`get` checks)
    let at = (cell.as_ptr() as usize).wrapping_sub(raw.as_ptr() as usize);
    let text = line.get(at..at.checked_add(cell.len())?)?;
    if quoted && cell.contains(&q) {
        // doubled quotes inside: simd-csv's own unescaping (text already checked as UTF-8)
        let unescaped = record.unescape(i)?.into_owned();
        return String::from_utf8(unescaped).ok().map(Cow::Owned);
    }
    Some(Cow::Borrowed(text))
}

/// Whether `record` has a carriage return, or a quote anywhere but around a whole field
/// (with doubled quotes inside): what simd-csv and csv-core may read differently. One SIMD
/// search per record; when it finds a quote, the record's quotes are counted in one more
/// pass and only the fields that open with a quote are looked into: every quote must be one
/// of theirs (an unquoted field holding one leaves the count short).
fn unusual(record: &simd_csv::ZeroCopyByteRecord<'_>, quote: u8) -> bool {
    let raw = record.as_slice();
    if memchr::memchr2(b'\r', quote, raw).is_none() {
        return false;
    }
    if memchr::memchr(b'\r', raw).is_some() {
        return true;
    }
    let mut accounted = 0;
    for f in record.iter() {
        if f.first() != Some(&quote) {
            continue;
        }
        if f.len() < 2 || f[f.len() - 1] != quote {
            return true;
        }
        // inside: quotes only in doubled pairs
        let inner = &f[1..f.len() - 1];
        let mut at = memchr::memchr_iter(quote, inner);
        while let Some(i) = at.next() {
            if at.next() != Some(i + 1) {
                return true;
            }
            accounted += 2;
        }
        accounted += 2;
    }
    memchr::memchr_iter(quote, raw).count() != accounted
}

/// [`read_csv`] then [`FeatureMatrix::from_batch`] batch by batch, appended.
fn arrow_path(
    path: &Path,
    file: &str,
    options: &CsvOptions,
    features: &Features,
    pool: &BufferPool<f32>,
) -> Result<FeatureMatrix> {
    tracing::debug!(file, "CSV read through the arrow path");
    let width = features.width();
    let mut data = pool.get_with_capacity(width * 4096);
    data.clear();
    let mut rows = 0;
    // only the features' columns are parsed, as on the direct path
    let options = CsvOptions {
        columns: Some(features.column_names()),
        ..options.clone()
    };
    for batch in read_csv(path, &options)? {
        let batch = batch?;
        let start = data.len();
        data.resize(start + batch.num_rows() * width, 0.0);
        features.fill(&batch, &mut data[start..], rows, file)?;
        rows += batch.num_rows();
    }
    Ok(FeatureMatrix::from_parts(data, rows, width))
}
