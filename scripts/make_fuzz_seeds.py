"""Writes the seed inputs of the fuzz targets that start from real files (committed under
fuzz/seeds/): tiny images in every format the decoder takes (Pillow), small CSV and Parquet
tables (pyarrow, snappy and uncompressed, with nulls and a dictionary column), request
bodies of inferkit-serve (JSON, nested, binary extension) and its gRPC requests (serialized
by tritonclient's own protobuf messages: typed and raw contents, BYTES, parameters).

Run: scripts/pyvenv.sh fuzz-seeds pillow pyarrow numpy "tritonclient[grpc]==2.*" -- scripts/make_fuzz_seeds.py
"""
import io
import json
import struct
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from PIL import Image

ROOT = Path(__file__).resolve().parent.parent
SEEDS = ROOT / "fuzz" / "seeds"

# images: 16x12, a gradient so every codec has something to encode
d = SEEDS / "image_decode"
d.mkdir(parents=True, exist_ok=True)
y, x = np.mgrid[0:12, 0:16]
rgb = np.stack([x * 16, y * 20, (x + y) * 8], -1).astype(np.uint8)
img = Image.fromarray(rgb, "RGB")
img.save(d / "baseline.jpg", quality=80)
img.save(d / "progressive.jpg", quality=80, progressive=True)
exif = Image.Exif()
exif[0x0112] = 6  # orientation: rotate 90
img.save(d / "exif_rotated.jpg", quality=80, exif=exif)
img.convert("L").save(d / "grey.jpg", quality=80)
img.save(d / "rgb.png")
img.convert("RGBA").save(d / "rgba.png")
img.convert("L").save(d / "grey.png")
Image.fromarray(rgb[..., 0].astype(np.uint16) * 257).save(d / "grey16.png")
img.convert("P").save(d / "palette.gif")
img.save(d / "rgb.bmp")
img.save(d / "rgb.tiff")
img.save(d / "lossy.webp", quality=80)
img.save(d / "lossless.webp", lossless=True)

# tables: 6 rows, ints, floats with a null, bool, a dictionary column, strings
t = pa.table({
    "id": pa.array([1, 2, 3, 4, 5, 6], pa.int64()),
    "f32": pa.array([0.5, None, 2.5, -1.0, 3.25, 0.0], pa.float32()),
    "f64": pa.array([1e10, 2.0, None, 4.0, 5.5, -6.0], pa.float64()),
    "flag": pa.array([True, False, None, True, True, False]),
    "small": pa.array([1, -2, 3, -4, 5, -6], pa.int8()),
    "cat": pa.array([1, 2, 1, 2, 1, 3], pa.int32()).dictionary_encode(),
    "text": pa.array(["a", "b,c", "\"q\"", "", None, "é"]),
})
for name in ["csv_reader", "parquet_reader"]:
    (SEEDS / name).mkdir(parents=True, exist_ok=True)
pq.write_table(t, SEEDS / "parquet_reader" / "snappy.parquet", compression="snappy", row_group_size=3)
pq.write_table(t, SEEDS / "parquet_reader" / "plain.parquet", compression="none", use_dictionary=False)
import pyarrow.csv as pcsv
pcsv.write_csv(t.drop(["cat"]), SEEDS / "csv_reader" / "types.csv")
(SEEDS / "csv_reader" / "ragged.csv").write_text("a,b,c\n1,2,3\n4,5\n6,7,8,9\n")
(SEEDS / "csv_reader" / "quoted.csv").write_text('x,y\n"1.5","a ""b"""\n,2\n-3e4,\n')

# serve requests: the first byte picks plain JSON (< 128) or a binary header of
# (byte - 128) * 4 bytes (see fuzz/fuzz_targets/serve_request.rs)
d = SEEDS / "serve_request"
d.mkdir(parents=True, exist_ok=True)
x = [float(i) / 4 for i in range(16)]
plain = {"id": "r", "inputs": [{"name": "x", "shape": [2, 8], "datatype": "FP32", "data": x}],
         "outputs": [{"name": "y"}], "parameters": {"timeout": 1000, "priority": 1}}
(d / "plain.bin").write_bytes(b"\x00" + json.dumps(plain).encode())
nested = {"inputs": [
    {"name": "ids", "shape": [2, 3], "datatype": "INT64", "data": [[1, 2, 3], [4, 5, 6]]},
    {"name": "mask", "shape": [2, 3], "datatype": "INT32", "data": [[1, 1, 1], [1, 1, 0]]}]}
(d / "nested.bin").write_bytes(b"\x00" + json.dumps(nested).encode())
head = {"inputs": [{"name": "x", "shape": [2, 8], "datatype": "FP32",
                    "parameters": {"binary_data_size": 64}}],
        "outputs": [{"name": "y", "parameters": {"binary_data": True}}]}
h = json.dumps(head).encode()
h += b" " * (-len(h) % 4)  # the target's header lengths are multiples of 4
assert len(h) // 4 < 128
(d / "binary.bin").write_bytes(bytes([128 + len(h) // 4]) + h + struct.pack("<16f", *x))

# gRPC ModelInferRequests: the first byte picks a served BYTES input `img` (odd) or none
# (see fuzz/fuzz_targets/serve_grpc_request.rs)
from tritonclient.grpc import service_pb2 as pb

d = SEEDS / "serve_grpc_request"
d.mkdir(parents=True, exist_ok=True)


def infer_request(**kw):
    r = pb.ModelInferRequest(model_name="fuzz", id="r", **kw)
    return r


typed = infer_request()
t = typed.inputs.add(name="x", datatype="FP32", shape=[2, 8])
t.contents.fp32_contents.extend(x)
o = typed.outputs.add(name="y")
o.parameters["classification"].int64_param = 2
typed.parameters["timeout"].int64_param = 1000
typed.parameters["priority"].int64_param = 1
(d / "typed.bin").write_bytes(b"\x00" + typed.SerializeToString())
raw = infer_request()
raw.inputs.add(name="ids", datatype="INT64", shape=[2, 3])
raw.inputs.add(name="mask", datatype="INT32", shape=[2, 3])
raw.raw_input_contents.append(struct.pack("<6q", 1, 2, 3, 4, 5, 6))
raw.raw_input_contents.append(struct.pack("<6i", 1, 1, 1, 1, 1, 0))
(d / "raw.bin").write_bytes(b"\x00" + raw.SerializeToString())
photos = infer_request()
photos.inputs.add(name="img", datatype="BYTES", shape=[2])
items = [b"\xff\xd8\xff\xe0not a photo", b"second"]
photos.raw_input_contents.append(b"".join(struct.pack("<I", len(i)) + i for i in items))
(d / "bytes_raw.bin").write_bytes(b"\x01" + photos.SerializeToString())
texts = infer_request()
t = texts.inputs.add(name="img", datatype="BYTES", shape=[1, 2])
t.contents.bytes_contents.extend([b"hello", b"world"])
(d / "bytes_typed.bin").write_bytes(b"\x01" + texts.SerializeToString())
print("seeds written under", SEEDS)
