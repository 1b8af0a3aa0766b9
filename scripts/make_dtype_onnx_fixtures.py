"""One ONNX model over every integer width, f64 and bool (issue 21: ONNX's backend tests
failed ~70 times on element types inferkit tensors did not hold), with onnxruntime's outputs.

Inputs and outputs have a dynamic batch axis so that the server can batch requests of it.
The i8 and u16 values include sums past the type's range: ONNX's Add wraps (as onnxruntime
and numpy do); the test checks the ONNX backend wraps the same way.

Run: scripts/pyvenv.sh onnx-dtypes onnx onnxruntime numpy -- scripts/make_dtype_onnx_fixtures.py
Writes tests/fixtures/onnx/dtypes/{dtypes.onnx, <input>.npy, <output>.npy, dtypes.json}.
"""
import json
import pathlib

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto as T, helper

OUT = pathlib.Path(__file__).resolve().parent.parent / "tests/fixtures/onnx/dtypes"
OUT.mkdir(parents=True, exist_ok=True)
rng = np.random.default_rng(2107)

# input name -> (ONNX type, numpy values [batch 3, 4])
INPUTS = {
    "a_i8": (T.INT8, np.array([[100, -100, 5, -128], [127, 0, -1, 64], [3, -3, 90, -90]], np.int8)),
    "b_i8": (T.INT8, np.array([[100, -100, 7, -1], [1, 0, 1, 64], [-3, 3, 90, -90]], np.int8)),
    "c_i16": (T.INT16, rng.integers(-300, 300, (3, 4)).astype(np.int16)),
    "d_u16": (T.UINT16, np.array([[65535, 1, 2, 40000], [0, 7, 9, 30000], [5, 6, 7, 8]], np.uint16)),
    "e_u32": (T.UINT32, rng.integers(0, 2**31, (3, 4)).astype(np.uint32)),
    "f_u64": (T.UINT64, rng.integers(0, 2**62, (3, 4)).astype(np.uint64)),
    "g_f64": (T.DOUBLE, rng.standard_normal((3, 4))),
}
nodes = [
    helper.make_node("Add", ["a_i8", "b_i8"], ["sum_i8"]),
    # (a Mul of a tensor by itself tract 0.21 rewrites as Square, which has no i16 kernel:
    # an error at run time, named; a product by weights is what models do)
    helper.make_node("Mul", ["c_i16", "k_i16"], ["scaled_i16"]),
    helper.make_node("Add", ["d_u16", "d_u16"], ["double_u16"]),
    helper.make_node("Max", ["e_u32", "e_u32"], ["max_u32"]),
    helper.make_node("Add", ["f_u64", "f_u64"], ["double_u64"]),
    helper.make_node("Exp", ["g_f64"], ["exp_f64"]),
    helper.make_node("Cast", ["a_i8"], ["a_as_f64"], to=T.DOUBLE),
    helper.make_node("Greater", ["a_i8", "b_i8"], ["a_gt_b"]),
]
OUTPUTS = {"sum_i8": T.INT8, "scaled_i16": T.INT16, "double_u16": T.UINT16, "max_u32": T.UINT32,
           "double_u64": T.UINT64, "exp_f64": T.DOUBLE, "a_as_f64": T.DOUBLE, "a_gt_b": T.BOOL}
graph = helper.make_graph(
    nodes, "dtypes",
    [helper.make_tensor_value_info(n, t, ["batch", 4]) for n, (t, _) in INPUTS.items()],
    [helper.make_tensor_value_info(n, t, ["batch", 4]) for n, t in OUTPUTS.items()],
    [helper.make_tensor("k_i16", T.INT16, [4], [3, -2, 100, 7])],
)
model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
onnx.checker.check_model(model, full_check=True)
onnx.save(model, OUT / "dtypes.onnx")

feeds = {n: v for n, (_, v) in INPUTS.items()}
sess = ort.InferenceSession(str(OUT / "dtypes.onnx"), providers=["CPUExecutionProvider"])
got = sess.run(list(OUTPUTS), feeds)
for n, v in feeds.items():
    np.save(OUT / f"{n}.npy", v)
for n, v in zip(OUTPUTS, got):
    np.save(OUT / f"{n}.npy", v)
# (onnxruntime wraps like numpy)
assert np.array_equal(got[0], feeds["a_i8"] + feeds["b_i8"])
(OUT / "dtypes.json").write_text(json.dumps({
    "model": "dtypes.onnx",
    "onnxruntime": ort.__version__,
    "inputs": {n: f"{n}.npy" for n in INPUTS},
    "outputs": {n: f"{n}.npy" for n in OUTPUTS},
}, indent=1) + "\n")
print("wrote", OUT)
