"""ONNX models of the operators inferkit registers in tract-onnx's registry
(crates/infer-core/src/onnx_ops.rs), with onnxruntime's outputs: `Gelu` (opset 20) with
`approximate` none and tanh, over a dynamic batch.

Run: scripts/pyvenv.sh onnx-dtypes onnx onnxruntime numpy -- scripts/make_op_onnx_fixtures.py
Writes tests/fixtures/onnx/ops/{<name>.onnx, <name>.x.npy, <name>.y.npy, ops.json}.
"""
import json
import pathlib

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto as T, helper

OUT = pathlib.Path(__file__).resolve().parent.parent / "tests/fixtures/onnx/ops"
OUT.mkdir(parents=True, exist_ok=True)
rng = np.random.default_rng(2109)

cases = {}
for approximate in ("none", "tanh"):
    name = f"gelu_{approximate}"
    graph = helper.make_graph(
        [helper.make_node("Gelu", ["x"], ["y"], name="gelu_0", approximate=approximate)], name,
        [helper.make_tensor_value_info("x", T.FLOAT, ["n", 16])],
        [helper.make_tensor_value_info("y", T.FLOAT, ["n", 16])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 20)])
    onnx.checker.check_model(model, full_check=True)
    onnx.save(model, OUT / f"{name}.onnx")
    x = (rng.standard_normal((3, 16)) * 3).astype(np.float32)
    y = ort.InferenceSession(str(OUT / f"{name}.onnx"), providers=["CPUExecutionProvider"]).run(None, {"x": x})[0]
    np.save(OUT / f"{name}.x.npy", x)
    np.save(OUT / f"{name}.y.npy", y)
    cases[f"{name}.onnx"] = {"x": f"{name}.x.npy", "y": f"{name}.y.npy"}
(OUT / "ops.json").write_text(json.dumps({"onnxruntime": ort.__version__, "cases": cases}, indent=1) + "\n")
print("wrote", OUT)
