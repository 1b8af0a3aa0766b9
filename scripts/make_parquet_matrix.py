"""Parquet files as users' tools write them: one table written by pyarrow under every codec
(none, snappy, gzip, brotli, lz4_raw, zstd) x encoding (dictionary, plain) x data page
version (1.0, 2.0), plus delta / byte-stream-split encodings, and by polars' own writer under
every codec it has; with nulls in every column and several row groups. Each file is read
back with pyarrow and checked equal to the table before it is kept.

Run: scripts/pyvenv.sh parquet-matrix pyarrow polars numpy -- scripts/make_parquet_matrix.py
Writes tests/fixtures/tables/matrix/: the files, matrix.mask.npy (pyarrow + numpy's matrix of
FEATURES: each column's value as f32, 0 where null, then a 1-where-null column), and
matrix.json (the files, the features each writer kept, versions).
"""
import json
import pathlib

import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq

OUT = pathlib.Path(__file__).resolve().parent.parent / "tests/fixtures/tables/matrix"
N = 300
GROUP = 128
rng = np.random.default_rng(21)


def with_nulls(values, typ, seed):
    """~5% nulls at random rows."""
    mask = np.random.default_rng(seed).random(N) < 0.05
    return pa.array([None if m else v for v, m in zip(values, mask)], type=typ)


def ints(lo, hi, dtype):
    return rng.integers(lo, hi, N, dtype=dtype).tolist()


cols = {
    "i8": with_nulls(ints(-128, 127, np.int8), pa.int8(), 1),
    "i16": with_nulls(ints(-30000, 30000, np.int16), pa.int16(), 2),
    "i32": with_nulls(ints(-(2**31), 2**31 - 1, np.int32), pa.int32(), 3),
    "i64": with_nulls(ints(-(2**40), 2**40, np.int64), pa.int64(), 4),
    "u8": with_nulls(ints(0, 255, np.uint8), pa.uint8(), 5),
    "u16": with_nulls(ints(0, 65535, np.uint16), pa.uint16(), 6),
    "u32": with_nulls(ints(0, 2**32 - 1, np.uint32), pa.uint32(), 7),
    "u64": with_nulls(ints(0, 2**50, np.uint64), pa.uint64(), 8),
    # few distinct values, so dictionary encoding is used where it is allowed
    "f16": with_nulls(rng.choice([0.5, -1.25, 3.0], N).astype(np.float16).tolist(), pa.float16(), 9),
    "f32": with_nulls(rng.standard_normal(N).astype(np.float32).tolist(), pa.float32(), 10),
    "f64": with_nulls((rng.standard_normal(N) * 1e3).tolist(), pa.float64(), 11),
    "flag": with_nulls((rng.integers(0, 2, N) == 1).tolist(), pa.bool_(), 12),
    "price": with_nulls(
        [pa.scalar(int(v), pa.int64()).as_py() / 100 for v in rng.integers(-10**6, 10**6, N)],
        pa.float64(), 13,
    ).cast(pa.decimal128(9, 2)),
    "day": with_nulls(ints(0, 20000, np.int32), pa.int32(), 14).cast(pa.date32()),
    "at": with_nulls(ints(0, 2**40, np.int64), pa.int64(), 15).cast(pa.timestamp("ms")),
    "text": with_nulls([f"r{i}, ü" for i in range(N)], pa.string(), 16),
}
table = pa.table(cols)
FEATURES = ["i8", "i16", "i32", "i64", "u8", "u16", "u32", "u64", "f16", "f32", "f64", "flag", "price"]


def mask_matrix(t, features):
    out = []
    for c in features:
        arr = t[c].combine_chunks()
        if pa.types.is_decimal(arr.type):
            arr = arr.cast(pa.float64())
        v = arr.to_numpy(zero_copy_only=False)
        null = np.array(arr.is_null().to_pylist())
        v = np.where(null, 0, v).astype(np.float64).astype(np.float32)
        out += [v, null.astype(np.float32)]
    return np.stack(out, axis=1).astype(np.float32)


def check(path, expected):
    back = pq.read_table(path)
    assert back.num_rows == N, path
    for c in expected.column_names:
        a, b = back[c].combine_chunks(), expected[c].combine_chunks()
        if pa.types.is_dictionary(a.type):
            a = a.cast(a.type.value_type)
        # (polars reads strings back as its own string type: compared by value)
        same = a.equals(b) if a.type == b.type else a.to_pylist() == b.to_pylist()
        assert same, (path, c, a.type, b.type)


OUT.mkdir(parents=True, exist_ok=True)
for old in OUT.glob("*.parquet"):
    old.unlink()
files = []
for codec in ["none", "snappy", "gzip", "brotli", "lz4", "zstd"]:
    for dictionary in [True, False]:
        for page in ["1.0", "2.0"]:
            name = f"pyarrow.{codec}.{'dict' if dictionary else 'plain'}.v{page[0]}.parquet"
            pq.write_table(table, OUT / name, row_group_size=GROUP, compression=codec,
                           use_dictionary=dictionary, data_page_version=page,
                           data_page_size=512)
            check(OUT / name, table)
            files.append({"file": name, "writer": "pyarrow", "codec": codec,
                          "encoding": "dictionary" if dictionary else "plain",
                          "data_page_version": page})
# delta and byte-stream-split encodings (no dictionary)
name = "pyarrow.zstd.delta.v2.parquet"
pq.write_table(table, OUT / name, row_group_size=GROUP, compression="zstd", use_dictionary=False,
               data_page_version="2.0",
               column_encoding={"i32": "DELTA_BINARY_PACKED", "i64": "DELTA_BINARY_PACKED",
                                "u32": "DELTA_BINARY_PACKED", "f32": "BYTE_STREAM_SPLIT",
                                "f64": "BYTE_STREAM_SPLIT", "text": "DELTA_LENGTH_BYTE_ARRAY"})
check(OUT / name, table)
files.append({"file": name, "writer": "pyarrow", "codec": "zstd", "encoding": "delta",
              "data_page_version": "2.0"})

# polars' own (Rust) writer: no f16 in polars
pl_table = table.drop_columns(["f16"])
frame = pl.from_arrow(pl_table)
for codec in ["uncompressed", "snappy", "gzip", "brotli", "lz4", "zstd"]:
    name = f"polars.{codec}.parquet"
    frame.write_parquet(OUT / name, compression=codec, row_group_size=GROUP)
    check(OUT / name, pl_table)
    files.append({"file": name, "writer": "polars", "codec": codec, "encoding": "polars default",
                  "data_page_version": "polars default"})

np.save(OUT / "matrix.mask.npy", mask_matrix(table, FEATURES))
(OUT / "matrix.json").write_text(json.dumps({
    "pyarrow": pa.__version__, "polars": pl.__version__, "rows": N, "row_group_size": GROUP,
    "features": FEATURES, "polars_features": [f for f in FEATURES if f != "f16"],
    "not_numeric": ["day", "at", "text"], "files": files,
}, indent=1) + "\n")
print(f"{len(files)} files, {N} rows, features {FEATURES}")
