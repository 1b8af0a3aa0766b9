"""pyarrow + numpy and polars on the table benches/tables.rs generates: Parquet (1 and 2
threads) and CSV (1 thread) to a row-major float32 matrix of the 16 numeric columns (nulls
of f64_0 filled with 0), and the mixed CSV (1 thread) to a matrix of its 9 number and bool
columns (nulls filled with 0), as a Python user would do it. Writes
target/bench-data/anchors-tables.json (medians of 5 runs after one warm-up).

Run through scripts/bench-tables.sh (which generates the table first).
"""
import json
import os
import pathlib
import statistics
import sys
import time

sys.path = [p for p in sys.path if pathlib.Path(p or ".").resolve() != pathlib.Path(__file__).resolve().parent]

import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

ROOT = pathlib.Path(__file__).resolve().parent.parent.parent
N = int(os.environ.get("INFERKIT_TABLE_ROWS", "2000000"))
DATA = ROOT / "target" / "bench-data"
PQ, CSV = DATA / f"table_{N}_v3.parquet", DATA / f"table_{N}_v3.csv"
ZSTD = DATA / f"table_{N}_v3.zstd.parquet"
MIXED = DATA / f"table_{N}_mixed_v1.csv"
MIXED_COLS = ["id"] + [f"x{i}" for i in range(4)] + [f"n{i}" for i in range(2)] + [f"flag{i}" for i in range(2)]
COLS = [f"f64_{i}" for i in range(8)] + [f"f32_{i}" for i in range(4)] + [f"i64_{i}" for i in range(4)]


def median_time(f, runs=5):
    f()
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        f()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def to_matrix(table, cols=COLS):
    out = np.empty((table.num_rows, len(cols)), dtype=np.float32)
    for j, c in enumerate(cols):
        col = table[c]
        if col.null_count:
            col = col.fill_null(False if pa.types.is_boolean(col.type) else 0)
        out[:, j] = col.to_numpy()
    return out


def pyarrow_parquet(threads, path=PQ):
    pa.set_cpu_count(threads)
    pa.set_io_thread_count(threads)
    return lambda: to_matrix(pq.read_table(path, columns=COLS, use_threads=threads > 1))


def pyarrow_csv():
    ro = pacsv.ReadOptions(use_threads=False)
    co = pacsv.ConvertOptions(include_columns=COLS)
    return lambda: to_matrix(pacsv.read_csv(CSV, read_options=ro, convert_options=co))


def pyarrow_csv_mixed():
    ro = pacsv.ReadOptions(use_threads=False)
    co = pacsv.ConvertOptions(include_columns=MIXED_COLS)
    po = pacsv.ParseOptions(newlines_in_values=True)
    return lambda: to_matrix(pacsv.read_csv(MIXED, read_options=ro, parse_options=po, convert_options=co),
                             MIXED_COLS)


def polars_csv_mixed():
    return lambda: (pl.read_csv(MIXED, columns=MIXED_COLS)
                    .select(pl.col(c).cast(pl.Float32) for c in MIXED_COLS)
                    .fill_null(0).to_numpy())


def polars_parquet(path=PQ):
    return lambda: pl.read_parquet(path, columns=COLS).fill_null(0).to_numpy().astype(np.float32, copy=False)


def polars_csv():
    return lambda: pl.read_csv(CSV, columns=COLS).fill_null(0).to_numpy().astype(np.float32, copy=False)


def main():
    out = {"pyarrow": pa.__version__, "polars": pl.__version__, "numpy": np.__version__, "rows": N}
    # reference check: pyarrow and polars agree
    a, b = pyarrow_parquet(1)(), polars_parquet()()
    assert a.shape == (N, 16) and np.array_equal(a, b), "pyarrow and polars disagree"
    out["pyarrow_parquet_t1_s"] = median_time(pyarrow_parquet(1))
    out["pyarrow_parquet_t2_s"] = median_time(pyarrow_parquet(2))
    assert np.array_equal(pyarrow_parquet(1, ZSTD)(), a), "the zstd file holds another table"
    out["pyarrow_parquet_zstd_t1_s"] = median_time(pyarrow_parquet(1, ZSTD))
    out["pyarrow_csv_t1_s"] = median_time(pyarrow_csv())
    assert np.array_equal(pyarrow_csv_mixed()(), polars_csv_mixed()()), "pyarrow and polars disagree (mixed)"
    out["pyarrow_csv_mixed_t1_s"] = median_time(pyarrow_csv_mixed())
    # polars sizes its pool from POLARS_MAX_THREADS at import: run it in child processes
    for threads in (1, 2):
        import subprocess

        code = (
            "import time,statistics,sys;sys.path.insert(0,%r);import tables as t;"
            "print(t.median_time(t.polars_parquet()), t.median_time(t.polars_csv()),"
            " t.median_time(t.polars_parquet(t.ZSTD)), t.median_time(t.polars_csv_mixed()))"
        ) % str(pathlib.Path(__file__).resolve().parent)
        env = dict(os.environ, POLARS_MAX_THREADS=str(threads))
        r = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
        p, c, z, m = map(float, r.stdout.split())
        out[f"polars_parquet_t{threads}_s"] = p
        if threads == 1:
            out["polars_csv_t1_s"] = c
            out["polars_csv_mixed_t1_s"] = m
            out["polars_parquet_zstd_t1_s"] = z
    for k, v in out.items():
        if k.endswith("_s"):
            print(f"{k}: {v * 1e3:.1f} ms ({N / v / 1e6:.2f} M rows/s)")
    (DATA / "anchors-tables.json").write_text(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
