"""An ONNX model whose shape, axes and gather indices are graph inputs given at run time
(issue 21: ~95 of ONNX's backend tests failed as "not const" in tract 0.21), with
onnxruntime's outputs for several values of them.

y = ReduceSum(Reshape(x, shape), axes, keepdims=0); g = Gather(x, idx, axis=1). The ONNX
backend plans per value of `shape` and `axes` (the graph needs them as constants) and not
per value of `idx` (data, which tract takes at run time).

Beside it, batch_sum.onnx: y = 2·x per row and s = ReduceSum over the batch axis — an
output not batched along axis 0, which a server must not cut into rows (inferkit-serve runs
each request of such a model alone).

Run: scripts/pyvenv.sh onnx-dtypes onnx onnxruntime numpy -- scripts/make_value_input_onnx_fixtures.py
Writes tests/fixtures/onnx/value_inputs/{value_inputs.onnx, case<N>.<name>.npy, value_inputs.json,
batch_sum.onnx}.
"""
import json
import pathlib

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto as T, helper

OUT = pathlib.Path(__file__).resolve().parent.parent / "tests/fixtures/onnx/value_inputs"
OUT.mkdir(parents=True, exist_ok=True)
rng = np.random.default_rng(2108)

graph = helper.make_graph(
    [
        helper.make_node("Reshape", ["x", "shape"], ["r"]),
        helper.make_node("ReduceSum", ["r", "axes"], ["y"], keepdims=0),
        helper.make_node("Gather", ["x", "idx"], ["g"], axis=1),
    ],
    "value_inputs",
    [
        helper.make_tensor_value_info("x", T.FLOAT, ["n", 12]),
        helper.make_tensor_value_info("shape", T.INT64, [3]),
        helper.make_tensor_value_info("axes", T.INT64, [1]),
        helper.make_tensor_value_info("idx", T.INT64, ["k"]),
    ],
    [
        helper.make_tensor_value_info("y", T.FLOAT, ["y0", "y1"]),
        helper.make_tensor_value_info("g", T.FLOAT, ["n", "k"]),
    ],
)
model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
onnx.checker.check_model(model, full_check=True)
onnx.save(model, OUT / "value_inputs.onnx")
sess = ort.InferenceSession(str(OUT / "value_inputs.onnx"), providers=["CPUExecutionProvider"])

cases = []
for i, (n, shape, axes, idx) in enumerate([
    (2, [2, 3, 4], [1], [0, 11, 5]),
    (2, [2, 4, 3], [1], [1, 1]),       # same x shape, another target shape
    (2, [2, 3, 4], [2], [0, 11, 5]),   # same shape, another axis
    (3, [3, -1, 2], [0], [7]),         # -1 inferred
    (2, [2, 3, 4], [1], [2, 3]),       # the first case's plan again, other indices
]):
    feeds = {
        "x": rng.standard_normal((n, 12)).astype(np.float32),
        "shape": np.array(shape, np.int64),
        "axes": np.array(axes, np.int64),
        "idx": np.array(idx, np.int64),
    }
    y, g = sess.run(["y", "g"], feeds)
    files = {}
    for k, v in list(feeds.items()) + [("y", y), ("g", g)]:
        f = f"case{i}.{k}.npy"
        np.save(OUT / f, v)
        files[k] = f
    cases.append({"inputs": {k: files[k] for k in feeds}, "outputs": {"y": files["y"], "g": files["g"]}})
(OUT / "value_inputs.json").write_text(json.dumps({
    "model": "value_inputs.onnx", "onnxruntime": ort.__version__, "cases": cases}, indent=1) + "\n")
print("wrote", OUT)

graph = helper.make_graph(
    [
        helper.make_node("Add", ["x", "x"], ["y"]),
        helper.make_node("ReduceSum", ["x", "axes0"], ["s"], keepdims=0),
    ],
    "batch_sum",
    [helper.make_tensor_value_info("x", T.FLOAT, ["n", 4])],
    [helper.make_tensor_value_info("y", T.FLOAT, ["n", 4]), helper.make_tensor_value_info("s", T.FLOAT, [4])],
    [helper.make_tensor("axes0", T.INT64, [1], [0])],
)
model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
onnx.checker.check_model(model, full_check=True)
onnx.save(model, OUT / "batch_sum.onnx")
x = np.arange(8, dtype=np.float32).reshape(2, 4)
y, s = ort.InferenceSession(str(OUT / "batch_sum.onnx"), providers=["CPUExecutionProvider"]).run(None, {"x": x})
assert np.array_equal(s, x.sum(0)) and np.array_equal(y, 2 * x)
