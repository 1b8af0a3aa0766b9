//! Tables: CSV and Parquet into arrow [`RecordBatch`]es, numeric columns into a row-major
//! f32 [`FeatureMatrix`] (from CSV also straight, with [`read_csv_matrix`]; from Parquet
//! row group by row group on several threads, with [`read_parquet_matrix`]), typed rows
//! through [`FromRecordBatch`] (derived by
//! `inferkit-preprocess-derive`, or looked up by name at run time with [`DynamicRows`]),
//! and predictions back to Parquet with [`PredictionWriter`].
//!
//! ```
//! use inferkit_preprocess::table::{read_csv, CsvOptions, FeatureMatrix, Features, Nulls};
//! use inferkit_preprocess::BufferPool;
//!
//! let dir = tempfile::tempdir()?;
//! let path = dir.path().join("t.csv");
//! std::fs::write(&path, "id,a,b\n1,0.5,\n2,1.5,7\n")?;
//! let features = Features::new(["a", "b"]).with_nulls("b", Nulls::Fill(-1.0));
//! let pool = BufferPool::new(2);
//! for batch in read_csv(&path, &CsvOptions::default())? {
//!     let m = FeatureMatrix::from_batch(&batch?, &features, &pool, 0, "t.csv")?;
//!     assert_eq!(m.view().row(0).to_vec(), vec![0.5, -1.0]);
//! }
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod csv_matrix;
mod features;
mod parquet_matrix;
mod plain_pages;
mod read;
mod rows;
mod write;

pub use arrow_array::{self, RecordBatch};
pub use arrow_schema::{self, DataType, Field, Schema, SchemaRef};
pub use csv_matrix::read_csv_matrix;
pub use features::{FeatureMatrix, Features, Nulls};
/// `#[derive(FromRecordBatch)]` (from `inferkit-preprocess-derive`).
pub use inferkit_preprocess_derive::FromRecordBatch;
pub use parquet_matrix::read_parquet_matrix;
pub use read::{
    CsvOptions, ParquetOptions, TableReader, parquet_row_groups, read_csv, read_parquet,
};
pub use rows::{Cell, ColumnReader, DynamicRows, FromColumn, FromRecordBatch, string_column};
pub use write::PredictionWriter;

/// What the code `#[derive(FromRecordBatch)]` generates calls; not for direct use.
#[doc(hidden)]
pub mod __derive {
    pub use super::rows::{column, required};
}

use crate::Error;

/// A table error with no underlying error: what was wrong, and where.
pub(crate) fn table_err(
    file: &str,
    row: Option<usize>,
    column: Option<&str>,
    message: impl std::fmt::Display,
) -> Error {
    Error::Table {
        file: file.to_string(),
        row,
        column: column.map(str::to_string),
        message: message.to_string(),
        source: None,
    }
}

/// A table error caused by another (I/O, arrow, parquet, CSV): its text as the message, and
/// the error itself as the source.
pub(crate) fn table_source(
    file: &str,
    row: Option<usize>,
    column: Option<&str>,
    source: impl std::error::Error + Send + Sync + 'static,
) -> Error {
    Error::Table {
        file: file.to_string(),
        row,
        column: column.map(str::to_string),
        message: source.to_string(),
        source: Some(Box::new(source)),
    }
}

/// A column `name` that `schema` lacks, naming the columns it has.
pub(crate) fn no_such_column(file: &str, name: &str, schema: &Schema) -> Error {
    let have: Vec<&str> = schema.fields().iter().map(|f| f.name().as_str()).collect();
    table_err(
        file,
        None,
        Some(name),
        format!("no such column (columns: {})", have.join(", ")),
    )
}
