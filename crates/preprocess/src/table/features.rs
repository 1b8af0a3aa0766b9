//! Numeric columns of a `RecordBatch` into a row-major f32 matrix in a pooled buffer.

use arrow_array::cast::AsArray;
use arrow_array::types::{
    ArrowPrimitiveType, Float16Type, Float32Type, Float64Type, Int8Type, Int16Type, Int32Type,
    Int64Type, UInt8Type, UInt16Type, UInt32Type, UInt64Type,
};
use arrow_array::{Array, PrimitiveArray, RecordBatch};
use arrow_schema::DataType;
use ndarray::ArrayView2;

use super::{no_such_column, table_err, table_source};
use crate::Result;
use crate::pool::{BufferPool, Pooled};

/// What a null becomes.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Nulls {
    /// An error naming the row and column (the default).
    Error,
    /// This value.
    Fill(f32),
    /// 0, plus a mask column right after this one: 1 where the value was null, else 0.
    Mask,
}

/// The columns of a feature matrix, in order, each with its null policy.
#[derive(Debug, Clone, PartialEq)]
pub struct Features {
    columns: Vec<(String, Nulls)>,
}

impl Features {
    /// These columns, nulls an error.
    pub fn new<I, S>(columns: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        Features {
            columns: columns
                .into_iter()
                .map(|c| (c.into(), Nulls::Error))
                .collect(),
        }
    }

    /// Sets the null policy of `column` (of every column for `"*"`).
    pub fn with_nulls(mut self, column: &str, policy: Nulls) -> Self {
        for (c, p) in &mut self.columns {
            if column == "*" || c == column {
                *p = policy;
            }
        }
        self
    }

    /// The source columns and their policies.
    pub fn columns(&self) -> &[(String, Nulls)] {
        &self.columns
    }

    /// The source columns' names, in order (what a reader needs to decode).
    pub(crate) fn column_names(&self) -> Vec<String> {
        self.columns.iter().map(|(c, _)| c.clone()).collect()
    }

    /// The matrix's column names: each source column, and `<name>_is_null` after a masked
    /// one.
    pub fn output_names(&self) -> Vec<String> {
        let mut out = Vec::new();
        for (c, p) in &self.columns {
            out.push(c.clone());
            if *p == Nulls::Mask {
                out.push(format!("{c}_is_null"));
            }
        }
        out
    }

    /// Converts `batch` straight into `out` (`rows × width`, row-major: a slice of a
    /// larger matrix the caller allocated once), as
    /// [`FeatureMatrix::from_batch`] does into a pooled buffer.
    ///
    /// # Errors
    /// As [`FeatureMatrix::from_batch`], and for an `out` of another length.
    pub fn fill(
        &self,
        batch: &RecordBatch,
        out: &mut [f32],
        first_row: usize,
        file: &str,
    ) -> Result<()> {
        self.fill_some(batch, out, first_row, file, None)
    }

    /// [`Features::fill`] of the columns `only` marks (all for `None`): the others are
    /// neither looked up in `batch` nor written.
    pub(crate) fn fill_some(
        &self,
        batch: &RecordBatch,
        out: &mut [f32],
        first_row: usize,
        file: &str,
        only: Option<&[bool]>,
    ) -> Result<()> {
        let width = self.width();
        if out.len() != batch.num_rows() * width {
            return Err(table_err(
                file,
                Some(first_row),
                None,
                format!(
                    "{} floats for {} rows of {width}",
                    out.len(),
                    batch.num_rows()
                ),
            ));
        }
        let mut col = 0;
        for (k, (name, policy)) in self.columns.iter().enumerate() {
            if only.is_some_and(|o| !o[k]) {
                col += if *policy == Nulls::Mask { 2 } else { 1 };
                continue;
            }
            let array = batch
                .column_by_name(name)
                .ok_or_else(|| no_such_column(file, name, &batch.schema()))?;
            let ctx = Ctx {
                file,
                name,
                first_row,
                policy: *policy,
                col,
                width,
            };
            fill(array.as_ref(), &ctx, out)?;
            if *policy == Nulls::Mask {
                // every row's mask starts at 0: `scatter` sets the nulls' to 1
                for row in out.chunks_exact_mut(width) {
                    row[col + 1] = 0.0;
                }
                fill_mask(array.as_ref(), &ctx, out);
            }
            col += if *policy == Nulls::Mask { 2 } else { 1 };
        }
        Ok(())
    }

    /// The matrix's width.
    pub fn width(&self) -> usize {
        self.columns
            .iter()
            .map(|(_, p)| if *p == Nulls::Mask { 2 } else { 1 })
            .sum()
    }
}

/// A row-major `[rows, width]` f32 matrix in a pooled buffer.
#[derive(Debug)]
pub struct FeatureMatrix {
    data: Pooled<f32>,
    rows: usize,
    width: usize,
}

/// Rows converted per block: the block's output stays in L1/L2 while each column is
/// scattered into it.
const BLOCK: usize = 1024;

impl FeatureMatrix {
    /// Converts `features` of `batch`: integers, floats (16/32/64-bit), booleans (0/1),
    /// decimals (their value through f64, as pyarrow's `cast(float64)`) and
    /// dictionary-encoded numbers; dates, timestamps and strings are an error naming the
    /// column and its type. `first_row` (the file row of the batch's first row) and
    /// `file` name the place in errors.
    ///
    /// # Errors
    /// [`Error::Table`](crate::Error::Table): a missing column, a column of another type
    /// (both named), or a null under [`Nulls::Error`] (row and column named).
    pub fn from_batch(
        batch: &RecordBatch,
        features: &Features,
        pool: &BufferPool<f32>,
        first_row: usize,
        file: &str,
    ) -> Result<FeatureMatrix> {
        let rows = batch.num_rows();
        let width = features.width();
        let mut data = pool.get_with_capacity(rows * width);
        data.resize(rows * width, 0.0);
        features.fill(batch, &mut data, first_row, file)?;
        Ok(FeatureMatrix { data, rows, width })
    }

    /// A matrix of `rows × width` over `data` (row-major, exactly that long).
    pub(crate) fn from_parts(data: Pooled<f32>, rows: usize, width: usize) -> FeatureMatrix {
        debug_assert_eq!(data.len(), rows * width);
        FeatureMatrix { data, rows, width }
    }

    /// The matrix.
    pub fn view(&self) -> ArrayView2<'_, f32> {
        ArrayView2::from_shape((self.rows, self.width), &self.data).expect("rows × width")
    }

    /// Rows.
    pub fn rows(&self) -> usize {
        self.rows
    }

    /// Columns (mask columns included).
    pub fn width(&self) -> usize {
        self.width
    }

    /// The row-major data.
    pub fn as_slice(&self) -> &[f32] {
        &self.data
    }
}

struct Ctx<'a> {
    file: &'a str,
    name: &'a str,
    first_row: usize,
    policy: Nulls,
    col: usize,
    width: usize,
}

fn fill(array: &dyn Array, ctx: &Ctx<'_>, out: &mut [f32]) -> Result<()> {
    macro_rules! prim {
        ($t:ty) => {
            scatter(array.as_primitive::<$t>(), ctx, out, |v| v as f32)
        };
    }
    match array.data_type() {
        DataType::Int8 => prim!(Int8Type),
        DataType::Int16 => prim!(Int16Type),
        DataType::Int32 => prim!(Int32Type),
        DataType::Int64 => prim!(Int64Type),
        DataType::UInt8 => prim!(UInt8Type),
        DataType::UInt16 => prim!(UInt16Type),
        DataType::UInt32 => prim!(UInt32Type),
        DataType::UInt64 => prim!(UInt64Type),
        DataType::Float16 => scatter(array.as_primitive::<Float16Type>(), ctx, out, f32::from),
        DataType::Float32 => prim!(Float32Type),
        DataType::Float64 => prim!(Float64Type),
        DataType::Boolean => {
            let b = array.as_boolean();
            let values = PrimitiveArray::<Float32Type>::from_iter(
                (0..b.len()).map(|i| b.is_valid(i).then(|| f32::from(u8::from(b.value(i))))),
            );
            scatter(&values, ctx, out, |v| v)
        }
        // decimals: their value (unscaled / 10^scale) as f64, then f32, as pyarrow's
        // `cast(float64)` and numpy's `astype(float32)` make it
        DataType::Decimal32(..)
        | DataType::Decimal64(..)
        | DataType::Decimal128(..)
        | DataType::Decimal256(..) => {
            let cast = arrow_cast::cast(array, &DataType::Float64)
                .map_err(|e| table_source(ctx.file, None, Some(ctx.name), e))?;
            scatter(cast.as_primitive::<Float64Type>(), ctx, out, |v| v as f32)
        }
        DataType::Dictionary(_, value) if value.is_numeric() => {
            let cast = arrow_cast::cast(array, &DataType::Float32)
                .map_err(|e| table_source(ctx.file, None, Some(ctx.name), e))?;
            scatter(cast.as_primitive::<Float32Type>(), ctx, out, |v| v)
        }
        other => Err(table_err(
            ctx.file,
            None,
            Some(ctx.name),
            format!(
                "type {other} is not numeric (integers, floats, booleans, decimals, numeric \
                 dictionaries; a date or timestamp has no one unit to count in: convert it \
                 to a number first)"
            ),
        )),
    }
}

/// Sets the mask column (`ctx.col + 1`) to 1 where `array` is null.
fn fill_mask(array: &dyn Array, ctx: &Ctx<'_>, out: &mut [f32]) {
    if array.null_count() == 0 {
        return;
    }
    for (i, row) in out.chunks_exact_mut(ctx.width).enumerate() {
        if array.is_null(i) {
            row[ctx.col + 1] = 1.0;
        }
    }
}

/// Writes column `ctx.col` of every row, blocks of rows at a time.
fn scatter<T: ArrowPrimitiveType>(
    a: &PrimitiveArray<T>,
    ctx: &Ctx<'_>,
    out: &mut [f32],
    to: impl Fn(T::Native) -> f32,
) -> Result<()> {
    let values = a.values();
    let w = ctx.width;
    if a.null_count() == 0 {
        for (b, block) in values.chunks(BLOCK).enumerate() {
            let rows = &mut out[b * BLOCK * w..];
            for (i, v) in block.iter().enumerate() {
                rows[i * w + ctx.col] = to(*v);
            }
        }
        return Ok(());
    }
    for (i, v) in values.iter().enumerate() {
        let row = &mut out[i * w..(i + 1) * w];
        if a.is_valid(i) {
            row[ctx.col] = to(*v);
        } else {
            match ctx.policy {
                Nulls::Error => return Err(null_error(ctx.file, ctx.first_row + i, ctx.name)),
                Nulls::Fill(f) => row[ctx.col] = f,
                Nulls::Mask => row[ctx.col] = 0.0,
            }
        }
    }
    Ok(())
}

/// A null under [`Nulls::Error`], at `row` of column `name`.
pub(crate) fn null_error(file: &str, row: usize, name: &str) -> crate::Error {
    table_err(
        file,
        Some(row),
        Some(name),
        "null value (set a null policy: fill or mask)",
    )
}
