//! Typed rows out of `RecordBatch`es: the generated path ([`FromRecordBatch`], derived by
//! `#[derive(FromRecordBatch)]` from `inferkit-preprocess-derive`, which looks each column up
//! and checks its type once per batch, then reads values column by column) and the dynamic
//! path ([`DynamicRows`]: a column looked up by name and matched on its type for every
//! value), kept to measure one against the other.

use arrow_array::cast::AsArray;
use arrow_array::types::{
    Float32Type, Float64Type, Int8Type, Int16Type, Int32Type, Int64Type, UInt8Type, UInt16Type,
    UInt32Type, UInt64Type,
};
use arrow_array::{Array, BooleanArray, PrimitiveArray, RecordBatch, StringArray};
use arrow_schema::DataType;

use super::table_err;
use crate::Result;

/// A type whose values can be built from the rows of a `RecordBatch`.
///
/// ```
/// use inferkit_preprocess::table::{FromRecordBatch, RecordBatch};
/// use inferkit_preprocess::table::arrow_array::{Float64Array, Int64Array, StringArray};
/// use std::sync::Arc;
///
/// #[derive(inferkit_preprocess::table::FromRecordBatch, Debug, PartialEq)]
/// struct Row {
///     id: i64,
///     #[column(name = "score")]
///     value: Option<f64>,
///     text: String,
/// }
///
/// let batch = RecordBatch::try_from_iter([
///     ("id", Arc::new(Int64Array::from(vec![1, 2])) as _),
///     ("score", Arc::new(Float64Array::from(vec![Some(0.5), None])) as _),
///     ("text", Arc::new(StringArray::from(vec!["a", "b"])) as _),
/// ])?;
/// let rows = Row::from_batch(&batch, 0, "inline")?;
/// assert_eq!(rows[1], Row { id: 2, value: None, text: "b".into() });
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub trait FromRecordBatch: Sized {
    /// One value per row. `first_row` (the file row of the batch's first row) and `file`
    /// name the place in errors.
    ///
    /// # Errors
    /// [`Error::Table`](crate::Error::Table): a missing column, a column of another type
    /// (column, expected and found types named), a null in a non-`Option` field (row and
    /// column named).
    fn from_batch(batch: &RecordBatch, first_row: usize, file: &str) -> Result<Vec<Self>>;
}

/// A Rust type a column can be read as: which arrow array it takes, and how a value comes
/// out of it. `Option<T>` fields use `T`'s.
pub trait FromColumn: Sized {
    /// The typed array.
    type Column<'a>;
    /// The arrow type(s) accepted, for errors.
    const EXPECTED: &'static str;
    /// The typed array, if `array` has the right type.
    fn column(array: &dyn Array) -> Option<Self::Column<'_>>;
    /// Row `i`, `None` if null.
    fn value(column: &Self::Column<'_>, i: usize) -> Option<Self>;
    /// Row `i` without looking at its validity (the derived code's path for a column with
    /// no nulls).
    fn get(column: &Self::Column<'_>, i: usize) -> Self;
    /// The column's null count.
    fn null_count(column: &Self::Column<'_>) -> usize;
}

macro_rules! primitive {
    ($($rust:ty => $arrow:ty, $name:literal;)*) => {$(
        impl FromColumn for $rust {
            // the values as a slice of their own: the derived loop keeps its pointer and
            // length in registers (read through the array, they are reloaded for every row,
            // as the rows written might alias them: 1.12x a hand-written loop's time)
            type Column<'a> = (&'a PrimitiveArray<$arrow>, &'a [$rust]);
            const EXPECTED: &'static str = $name;
            fn column(array: &dyn Array) -> Option<Self::Column<'_>> {
                let a = array.as_primitive_opt::<$arrow>()?;
                Some((a, a.values()))
            }
            #[inline]
            fn value(c: &Self::Column<'_>, i: usize) -> Option<Self> {
                c.0.is_valid(i).then(|| c.1[i])
            }
            #[inline]
            fn get(c: &Self::Column<'_>, i: usize) -> Self {
                c.1[i]
            }
            fn null_count(c: &Self::Column<'_>) -> usize {
                Array::null_count(c.0)
            }
        }
    )*};
}

primitive! {
    i8 => Int8Type, "Int8";
    i16 => Int16Type, "Int16";
    i32 => Int32Type, "Int32";
    i64 => Int64Type, "Int64";
    u8 => UInt8Type, "UInt8";
    u16 => UInt16Type, "UInt16";
    u32 => UInt32Type, "UInt32";
    u64 => UInt64Type, "UInt64";
    f32 => Float32Type, "Float32";
    f64 => Float64Type, "Float64";
}

impl FromColumn for bool {
    type Column<'a> = &'a BooleanArray;
    const EXPECTED: &'static str = "Boolean";
    fn column(array: &dyn Array) -> Option<Self::Column<'_>> {
        array.as_boolean_opt()
    }
    #[inline]
    fn value(c: &Self::Column<'_>, i: usize) -> Option<Self> {
        c.is_valid(i).then(|| c.value(i))
    }
    #[inline]
    fn get(c: &Self::Column<'_>, i: usize) -> Self {
        c.value(i)
    }
    fn null_count(c: &Self::Column<'_>) -> usize {
        Array::null_count(*c)
    }
}

impl FromColumn for String {
    type Column<'a> = &'a StringArray;
    const EXPECTED: &'static str = "Utf8";
    fn column(array: &dyn Array) -> Option<Self::Column<'_>> {
        array.as_string_opt::<i32>()
    }
    #[inline]
    fn value(c: &Self::Column<'_>, i: usize) -> Option<Self> {
        c.is_valid(i).then(|| c.value(i).to_owned())
    }
    #[inline]
    fn get(c: &Self::Column<'_>, i: usize) -> Self {
        c.value(i).to_owned()
    }
    fn null_count(c: &Self::Column<'_>) -> usize {
        Array::null_count(*c)
    }
}

/// Column `name` of `batch` as `T`'s array (used by the derived code).
///
/// # Errors
/// [`Error::Table`](crate::Error::Table) for a missing column or one of another type.
#[doc(hidden)]
pub fn column<'a, T: FromColumn>(
    batch: &'a RecordBatch,
    name: &str,
    file: &str,
) -> Result<T::Column<'a>> {
    let array = batch
        .column_by_name(name)
        .ok_or_else(|| table_err(file, None, Some(name), "no such column"))?;
    T::column(array.as_ref()).ok_or_else(|| {
        table_err(
            file,
            None,
            Some(name),
            format!(
                "expected {} for a {} field, found {}",
                T::EXPECTED,
                std::any::type_name::<T>(),
                array.data_type()
            ),
        )
    })
}

/// Row `i` of a column for a non-`Option` field (used by the derived code).
///
/// # Errors
/// [`Error::Table`](crate::Error::Table) naming the row and column when the value is null.
#[doc(hidden)]
#[inline]
pub fn required<T: FromColumn>(
    c: &T::Column<'_>,
    i: usize,
    first_row: usize,
    name: &str,
    file: &str,
) -> Result<T> {
    T::value(c, i).ok_or_else(|| {
        table_err(
            file,
            Some(first_row + i),
            Some(name),
            "null in a non-Option field",
        )
    })
}

/// A string column of `batch`, without copying (for tokenizers).
///
/// # Errors
/// [`Error::Table`](crate::Error::Table) for a missing column or one that is not Utf8.
pub fn string_column<'a>(
    batch: &'a RecordBatch,
    name: &str,
    file: &str,
) -> Result<&'a StringArray> {
    column::<String>(batch, name, file)
}

/// One value, as the dynamic path hands it out.
#[derive(Debug, Clone, PartialEq)]
pub enum Cell {
    /// Null.
    Null,
    /// Any integer type.
    Int(i64),
    /// Any float type.
    Float(f64),
    /// Boolean.
    Bool(bool),
    /// Utf8.
    Str(String),
}

/// The dynamic path: values looked up by column name at run time, one at a time (the way
/// reflection-based row mappers work), kept to measure the derived path against.
#[derive(Debug)]
pub struct DynamicRows<'a> {
    batch: &'a RecordBatch,
    first_row: usize,
    file: &'a str,
}

impl<'a> DynamicRows<'a> {
    /// Over `batch`, whose first row is file row `first_row` of `file`.
    pub fn new(batch: &'a RecordBatch, first_row: usize, file: &'a str) -> Self {
        DynamicRows {
            batch,
            first_row,
            file,
        }
    }

    /// Rows.
    pub fn len(&self) -> usize {
        self.batch.num_rows()
    }

    /// Whether there are no rows.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The value at `row` of column `name`: the column is found by name and its type
    /// matched on every call.
    ///
    /// # Errors
    /// [`Error::Table`](crate::Error::Table): a missing column, an unsupported type, a row
    /// out of range.
    pub fn get(&self, row: usize, name: &str) -> Result<Cell> {
        let err = |m: String| table_err(self.file, Some(self.first_row + row), Some(name), m);
        let a = self
            .batch
            .column_by_name(name)
            .ok_or_else(|| err("no such column".into()))?;
        if row >= a.len() {
            return Err(err(format!("row out of range ({} rows)", a.len())));
        }
        if a.is_null(row) {
            return Ok(Cell::Null);
        }
        Ok(match a.data_type() {
            DataType::Int8 => Cell::Int(a.as_primitive::<Int8Type>().value(row).into()),
            DataType::Int16 => Cell::Int(a.as_primitive::<Int16Type>().value(row).into()),
            DataType::Int32 => Cell::Int(a.as_primitive::<Int32Type>().value(row).into()),
            DataType::Int64 => Cell::Int(a.as_primitive::<Int64Type>().value(row)),
            DataType::UInt8 => Cell::Int(a.as_primitive::<UInt8Type>().value(row).into()),
            DataType::UInt16 => Cell::Int(a.as_primitive::<UInt16Type>().value(row).into()),
            DataType::UInt32 => Cell::Int(a.as_primitive::<UInt32Type>().value(row).into()),
            DataType::Float32 => Cell::Float(a.as_primitive::<Float32Type>().value(row).into()),
            DataType::Float64 => Cell::Float(a.as_primitive::<Float64Type>().value(row)),
            DataType::Boolean => Cell::Bool(a.as_boolean().value(row)),
            DataType::Utf8 => Cell::Str(a.as_string::<i32>().value(row).to_owned()),
            other => return Err(err(format!("unsupported type {other}"))),
        })
    }

    /// [`get`](Self::get) as an f64 (integers and booleans converted).
    ///
    /// # Errors
    /// As `get`, and for a null or a string.
    pub fn get_f64(&self, row: usize, name: &str) -> Result<f64> {
        match self.get(row, name)? {
            Cell::Int(v) => Ok(v as f64),
            Cell::Float(v) => Ok(v),
            Cell::Bool(v) => Ok(f64::from(u8::from(v))),
            other => Err(table_err(
                self.file,
                Some(self.first_row + row),
                Some(name),
                format!("{other:?} is not a number"),
            )),
        }
    }
}

/// What reads a column: the derived code's per-batch typed arrays implement nothing more
/// than [`FromColumn`]; this alias names the concept in docs.
pub type ColumnReader<'a, T> = <T as FromColumn>::Column<'a>;
