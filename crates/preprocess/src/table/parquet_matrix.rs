//! A Parquet file's features into one matrix, row groups spread over threads.

use std::path::Path;

use rayon::prelude::*;

use super::features::{FeatureMatrix, Features};
use super::read::{ParquetOptions, check_row_groups, name, parquet_row_groups, read_parquet};
use super::table_err;
use crate::{BufferPool, Result};

/// Reads `features` of the Parquet file at `path` into one row-major `[rows, width]` matrix:
/// each row group (all of them, or `options.row_groups` in that order) is read and
/// converted into its own rows of the matrix, on `threads` threads (1: the calling thread
/// only; more: a pool of that many for this call). arrow-rs reads a file on one thread, so
/// this is how a file is split; a group is the unit, handed out as threads free up, so a
/// file of many groups divides evenly. Only the features' columns are decoded
/// (`options.columns` is ignored); `options.batch_size` sets the batches each group is read
/// in.
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
    let counts = parquet_row_groups(path)?;
    let groups: Vec<usize> = match &options.row_groups {
        Some(g) => g.clone(),
        None => (0..counts.len()).collect(),
    };
    check_row_groups(&file, &groups, counts.len())?;
    let width = features.width();
    let total: usize = groups.iter().map(|&g| counts[g]).sum();
    let mut data = pool.get();
    if data.capacity() >= total * width {
        data.resize(total * width, 0.0);
    } else {
        *data = vec![0.0; total * width];
    }
    let columns = features.column_names();
    let mut jobs = Vec::with_capacity(groups.len());
    let mut rest: &mut [f32] = &mut data;
    for &g in &groups {
        let (part, tail) = rest.split_at_mut(counts[g] * width);
        rest = tail;
        jobs.push((g, part));
    }
    let one = |(g, part): (usize, &mut [f32])| -> Result<()> {
        let options = ParquetOptions {
            columns: Some(columns.clone()),
            row_groups: Some(vec![g]),
            batch_size: options.batch_size,
        };
        // rows are counted from the file's start in errors
        let (mut at, mut row) = (0, counts[..g].iter().sum::<usize>());
        for batch in read_parquet(path, &options)? {
            let batch = batch?;
            let len = batch.num_rows() * width;
            let Some(dst) = part.get_mut(at..at + len) else {
                return Err(group_size(&file, g, counts[g]));
            };
            features.fill(&batch, dst, row, &file)?;
            at += len;
            row += batch.num_rows();
        }
        if at != part.len() {
            return Err(group_size(&file, g, counts[g]));
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

fn group_size(file: &str, group: usize, rows: usize) -> crate::Error {
    table_err(
        file,
        None,
        None,
        format!("row group {group} does not hold the {rows} rows its metadata says"),
    )
}
