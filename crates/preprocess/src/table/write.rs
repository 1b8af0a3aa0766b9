//! Predictions and embeddings back to Parquet, beside the input's key columns.

use std::fs::File;
use std::path::Path;
use std::sync::Arc;

use arrow_array::{ArrayRef, FixedSizeListArray, Float32Array, RecordBatch};
use arrow_schema::{DataType, Field, Schema, SchemaRef};
use parquet::arrow::ArrowWriter;
use parquet::basic::Compression;
use parquet::file::properties::WriterProperties;

use super::{table_err, table_source};
use crate::Result;

/// Writes rows of `key columns…, <name>` to a Parquet file (snappy): `<name>` is `Float32`
/// for a width of 1, else `FixedSizeList<Float32, width>` (an embedding per row). Row
/// groups hold about 8 MiB of predictions, so memory stays bounded however many rows.
///
/// ```
/// use inferkit_preprocess::table::{PredictionWriter, RecordBatch};
/// use inferkit_preprocess::table::arrow_array::Int64Array;
/// use std::sync::Arc;
///
/// let dir = tempfile::tempdir()?;
/// let keys = RecordBatch::try_from_iter([("id", Arc::new(Int64Array::from(vec![7, 8])) as _)])?;
/// let mut w = PredictionWriter::create(dir.path().join("out.parquet"), keys.schema(), "embedding", 3)?;
/// w.write(&keys, &[0.1, 0.2, 0.3, 0.4, 0.5, 0.6])?;
/// assert_eq!(w.close()?, 2);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct PredictionWriter {
    writer: ArrowWriter<File>,
    schema: SchemaRef,
    width: usize,
    file: String,
    rows: usize,
}

impl std::fmt::Debug for PredictionWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PredictionWriter")
            .field("file", &self.file)
            .field("width", &self.width)
            .field("rows", &self.rows)
            .finish_non_exhaustive()
    }
}

impl PredictionWriter {
    /// Creates `path` for key columns of `keys` (their fields, in order) and a prediction
    /// column `name` of `width` floats per row.
    ///
    /// # Errors
    /// [`Error::Table`](crate::Error::Table) naming the file when it cannot be created, a
    /// width of 0, or `name` already a key column.
    pub fn create(
        path: impl AsRef<Path>,
        keys: SchemaRef,
        name: &str,
        width: usize,
    ) -> Result<PredictionWriter> {
        let file = path.as_ref().display().to_string();
        if width == 0 {
            return Err(table_err(&file, None, Some(name), "width 0"));
        }
        if keys.index_of(name).is_ok() {
            return Err(table_err(&file, None, Some(name), "already a key column"));
        }
        let value = if width == 1 {
            DataType::Float32
        } else {
            DataType::FixedSizeList(
                Arc::new(Field::new("item", DataType::Float32, false)),
                width as i32,
            )
        };
        let mut fields: Vec<Field> = keys.fields().iter().map(|f| f.as_ref().clone()).collect();
        fields.push(Field::new(name, value, true));
        let schema = Arc::new(Schema::new(fields));
        let f = File::create(path.as_ref()).map_err(|e| table_source(&file, None, None, e))?;
        // The writer holds a whole row group in memory until it is full: bound it at about
        // 8 MiB of predictions (1M rows of 384 floats would be 1.5 GB).
        let group = (8 << 20) / (4 * width);
        let props = WriterProperties::builder()
            .set_compression(Compression::SNAPPY)
            .set_max_row_group_row_count(Some(group.clamp(1024, 1 << 20)))
            .build();
        let writer = ArrowWriter::try_new(f, Arc::clone(&schema), Some(props))
            .map_err(|e| table_source(&file, None, None, e))?;
        Ok(PredictionWriter {
            writer,
            schema,
            width,
            file,
            rows: 0,
        })
    }

    /// Appends `keys.num_rows()` rows: the key columns of `keys` and `values` (row-major,
    /// `rows × width`).
    ///
    /// # Errors
    /// [`Error::Table`](crate::Error::Table): key columns that differ from the schema given
    /// at creation, a value count that is not `rows × width`, a write error.
    pub fn write(&mut self, keys: &RecordBatch, values: &[f32]) -> Result<()> {
        self.write_valid(keys, values, None)
    }

    /// [`write`](Self::write) with a validity per row: rows whose `valid` is false get a
    /// null prediction (their values are ignored).
    ///
    /// # Errors
    /// As `write`, and for a `valid` of another length.
    pub fn write_valid(
        &mut self,
        keys: &RecordBatch,
        values: &[f32],
        valid: Option<&[bool]>,
    ) -> Result<()> {
        let rows = keys.num_rows();
        if valid.is_some_and(|v| v.len() != rows) {
            return Err(table_err(
                &self.file,
                Some(self.rows),
                None,
                format!(
                    "{} validity flags for {rows} rows",
                    valid.map_or(0, <[bool]>::len)
                ),
            ));
        }
        let nulls = valid.map(|v| arrow_buffer::NullBuffer::from(v.to_vec()));
        if values.len() != rows * self.width {
            return Err(table_err(
                &self.file,
                Some(self.rows),
                None,
                format!("{} values for {rows} rows of {}", values.len(), self.width),
            ));
        }
        let column: ArrayRef = if self.width == 1 {
            Arc::new(Float32Array::new(values.to_vec().into(), nulls))
        } else {
            let flat = Arc::new(Float32Array::from(values.to_vec()));
            Arc::new(
                FixedSizeListArray::try_new(
                    Arc::new(Field::new("item", DataType::Float32, false)),
                    self.width as i32,
                    flat,
                    nulls,
                )
                .map_err(|e| table_source(&self.file, Some(self.rows), None, e))?,
            )
        };
        let mut columns: Vec<ArrayRef> = keys.columns().to_vec();
        columns.push(column);
        let batch = RecordBatch::try_new(Arc::clone(&self.schema), columns)
            .map_err(|e| table_source(&self.file, Some(self.rows), None, e))?;
        self.writer
            .write(&batch)
            .map_err(|e| table_source(&self.file, Some(self.rows), None, e))?;
        self.rows += rows;
        Ok(())
    }

    /// Finishes the file; returns the rows written.
    ///
    /// # Errors
    /// [`Error::Table`](crate::Error::Table) for a write error.
    pub fn close(self) -> Result<usize> {
        self.writer
            .close()
            .map_err(|e| table_source(&self.file, None, None, e))?;
        Ok(self.rows)
    }
}
