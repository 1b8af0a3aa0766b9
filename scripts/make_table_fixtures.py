"""Table fixtures from pyarrow: one Parquet and one CSV file with every numeric type the
feature matrix takes (ints, unsigned, f16/f32/f64, bool, a dictionary-encoded number), nulls,
and a string column; with the matrices pyarrow + numpy make of them under each null policy.

Run: scripts/pyvenv.sh tables-ref pyarrow numpy -- scripts/make_table_fixtures.py
Writes tests/fixtures/tables/: types.parquet (2 row groups), types.csv, and
types.fill.npy (nulls -> -1), types.mask.npy (nulls -> 0 plus an is-null column after each
column), the column list in types.json.
"""
import json
import pathlib

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

OUT = pathlib.Path(__file__).resolve().parent.parent / "tests/fixtures/tables"
N = 37
rng = np.random.default_rng(7)


def nulls(values, every):
    return [None if i % every == 3 else v for i, v in enumerate(values)]


cols = {
    "id": pa.array(np.arange(N, dtype=np.int64)),
    "i8": pa.array(rng.integers(-128, 127, N, dtype=np.int8)),
    "i16": pa.array(rng.integers(-30000, 30000, N, dtype=np.int16)),
    "i32": pa.array(nulls(rng.integers(-(2**31), 2**31 - 1, N, dtype=np.int32).tolist(), 5), type=pa.int32()),
    "i64": pa.array(rng.integers(-(2**40), 2**40, N, dtype=np.int64)),
    "u8": pa.array(rng.integers(0, 255, N, dtype=np.uint8)),
    "u16": pa.array(rng.integers(0, 65535, N, dtype=np.uint16)),
    "u32": pa.array(rng.integers(0, 2**32 - 1, N, dtype=np.uint32)),
    "u64": pa.array(rng.integers(0, 2**50, N, dtype=np.uint64)),
    "f16": pa.array(rng.standard_normal(N).astype(np.float16)),
    "f32": pa.array(nulls(rng.standard_normal(N).astype(np.float32).tolist(), 4), type=pa.float32()),
    "f64": pa.array(nulls((rng.standard_normal(N) * 1e3).tolist(), 7), type=pa.float64()),
    "flag": pa.array(nulls((rng.integers(0, 2, N) == 1).tolist(), 6), type=pa.bool_()),
    "level": pa.array(rng.choice([1.5, 2.5, 10.0], N)).dictionary_encode(),
    "text": pa.array([f"row {i} ünïcode 文本" for i in range(N)]),
}
table = pa.table(cols)
FEATURES = [c for c in cols if c not in ("id", "text")]


def matrix(policy):
    out = []
    for c in FEATURES:
        arr = table[c].combine_chunks()
        if pa.types.is_dictionary(arr.type):
            arr = arr.cast(arr.type.value_type)
        v = arr.to_numpy(zero_copy_only=False)
        mask = np.array(arr.is_null().to_pylist())
        v = np.where(mask, 0, v).astype(np.float64).astype(np.float32)
        if policy == "fill":
            out.append(np.where(mask, np.float32(-1.0), v))
        else:
            out.append(v)
            out.append(mask.astype(np.float32))
    return np.stack(out, axis=1).astype(np.float32)


OUT.mkdir(parents=True, exist_ok=True)
pq.write_table(table, OUT / "types.parquet", row_group_size=20, compression="snappy")
# CSV: f16 and dictionary columns are written as their values
csv_table = table.set_column(
    table.schema.get_field_index("f16"), "f16", table["f16"].cast(pa.float32())
).set_column(table.schema.get_field_index("level"), "level", table["level"].cast(pa.float64()))
pacsv.write_csv(csv_table, OUT / "types.csv")
np.save(OUT / "types.fill.npy", matrix("fill"))
np.save(OUT / "types.mask.npy", matrix("mask"))
(OUT / "types.json").write_text(json.dumps({"pyarrow": pa.__version__, "rows": N, "features": FEATURES}, indent=1) + "\n")
print(f"{N} rows, features {FEATURES}")
