"""ONNX models of the operators inferkit registers in tract-onnx's registry
(crates/infer-core/src/onnx_ops.rs), with onnxruntime's outputs, over a dynamic batch:
`Gelu` (opset 20) with `approximate` none and tanh; `Mish` (opset 18); `Dropout` (opset 13)
with its ratio and training_mode (false) inputs and its mask output, the identity in
inference; and `Dropout` in training mode with a ratio of 0.5, which is refused (it drops
at random).

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

def dropout(training):
    ratio = helper.make_tensor("ratio", T.FLOAT, [], [0.5])
    mode = helper.make_tensor("training_mode", T.BOOL, [], [training])
    return ([helper.make_node("Dropout", ["x", "ratio", "training_mode"], ["y", "mask"], name="dropout_0")],
            [ratio, mode], [helper.make_tensor_value_info("mask", T.BOOL, ["n", 16])])


MODELS = {
    "gelu_none": ([helper.make_node("Gelu", ["x"], ["y"], name="gelu_0", approximate="none")], [], [], 20),
    "gelu_tanh": ([helper.make_node("Gelu", ["x"], ["y"], name="gelu_0", approximate="tanh")], [], [], 20),
    "mish": ([helper.make_node("Mish", ["x"], ["y"], name="mish_0")], [], [], 18),
    "dropout": (*dropout(False), 13),
}

cases = {}
graph = helper.make_graph(*dropout(True)[:1], "dropout_training",
                          [helper.make_tensor_value_info("x", T.FLOAT, ["n", 16])],
                          [helper.make_tensor_value_info("y", T.FLOAT, ["n", 16]), dropout(True)[2][0]],
                          dropout(True)[1])
onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]), OUT / "dropout_training.onnx")
for name, (nodes, inits, extra_outputs, opset) in MODELS.items():
    graph = helper.make_graph(
        nodes, name,
        [helper.make_tensor_value_info("x", T.FLOAT, ["n", 16])],
        [helper.make_tensor_value_info("y", T.FLOAT, ["n", 16])] + extra_outputs, inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    onnx.checker.check_model(model, full_check=True)
    onnx.save(model, OUT / f"{name}.onnx")
    x = (rng.standard_normal((3, 16)) * 3).astype(np.float32)
    y = ort.InferenceSession(str(OUT / f"{name}.onnx"), providers=["CPUExecutionProvider"]).run(None, {"x": x})[0]
    np.save(OUT / f"{name}.x.npy", x)
    np.save(OUT / f"{name}.y.npy", y)
    cases[f"{name}.onnx"] = {"x": f"{name}.x.npy", "y": f"{name}.y.npy"}
(OUT / "ops.json").write_text(json.dumps({"onnxruntime": ort.__version__, "cases": cases,
                                          "refused": {"dropout_training.onnx": ["dropout_0", "training mode"]}},
                                         indent=1) + "\n")
print("wrote", OUT)
