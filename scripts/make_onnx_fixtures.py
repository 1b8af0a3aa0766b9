"""Small ONNX models for infer-core's tests, with onnxruntime's outputs as the reference.

Run: scripts/pyvenv.sh onnx-fixtures onnx onnxruntime numpy -- scripts/make_onnx_fixtures.py

Writes tests/fixtures/onnx/: <model>.onnx, <model>.<input>.npy inputs, <model>.<output>.npy
outputs computed by onnxruntime (CPU), and cases.json listing each case. The models:
  mlp        fixed [2, 8] -> Gemm/Relu/Gemm -> [2, 4]
  conv       [1, 3, 16, 16] -> Conv 3x3 pad 1 / Relu / GlobalAveragePool / Flatten -> [1, 4]
  dyn_batch  ["batch", 8] -> MatMul/Add/Softmax -> ["batch", 3]; cases at batch 1 and 5
  dyn_batch_v2  the same graph, other weights (a second version for the registry test)
  two_inputs a, b ["batch", 4] f32 and ids ["batch", 5] int64 -> prod (ReduceSum(a*b)),
             emb (ReduceMean(Gather(table, ids)) + a)
  gru        x [6, 2, 3] -> GRU (hidden 4, linear_before_reset=1) -> y [6, 1, 2, 4], y_h [1, 2, 4]
  lstm       x [6, 2, 3] -> LSTM (hidden 4) -> y [6, 1, 2, 4], y_h, y_c [1, 2, 4]
             (recurrent: run twice in one session, a carried hidden state would show)
  custom_op  uses an operator no runtime knows (com.example.Frobnicate): a load error
"""
import json
import os
import sys

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper, numpy_helper

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "fixtures", "onnx")
os.makedirs(OUT, exist_ok=True)
rng = np.random.default_rng(20261127)


def init(name, arr):
    return numpy_helper.from_array(np.asarray(arr), name)


def save(model, name):
    model.opset_import[0].version = 13
    model.ir_version = 8
    onnx.checker.check_model(model)
    path = os.path.join(OUT, f"{name}.onnx")
    onnx.save(model, path)
    return path


cases = []


def run_case(name, path, inputs, tag=""):
    sess = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
    outs = sess.run(None, inputs)
    case = {"model": f"{name}.onnx", "inputs": {}, "outputs": {}}
    for k, v in inputs.items():
        f = f"{name}{tag}.{k}.npy"
        np.save(os.path.join(OUT, f), v)
        case["inputs"][k] = f
    for o, v in zip(sess.get_outputs(), outs):
        f = f"{name}{tag}.{o.name}.npy"
        np.save(os.path.join(OUT, f), v)
        case["outputs"][o.name] = f
    cases.append(case)


f32 = lambda *s: rng.standard_normal(s).astype(np.float32)

# mlp
g = helper.make_graph(
    [
        helper.make_node("Gemm", ["x", "w1", "b1"], ["h"]),
        helper.make_node("Relu", ["h"], ["r"]),
        helper.make_node("Gemm", ["r", "w2", "b2"], ["y"]),
    ],
    "mlp",
    [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 8])],
    [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2, 4])],
    [init("w1", f32(8, 16)), init("b1", f32(16)), init("w2", f32(16, 4)), init("b2", f32(4))],
)
p = save(helper.make_model(g, producer_name="inferkit"), "mlp")
run_case("mlp", p, {"x": f32(2, 8)})

# conv
g = helper.make_graph(
    [
        helper.make_node("Conv", ["x", "w", "b"], ["c"], pads=[1, 1, 1, 1], kernel_shape=[3, 3]),
        helper.make_node("Relu", ["c"], ["r"]),
        helper.make_node("GlobalAveragePool", ["r"], ["p"]),
        helper.make_node("Flatten", ["p"], ["y"]),
    ],
    "conv",
    [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 16, 16])],
    [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])],
    [init("w", f32(4, 3, 3, 3)), init("b", f32(4))],
)
p = save(helper.make_model(g, producer_name="inferkit"), "conv")
run_case("conv", p, {"x": f32(1, 3, 16, 16)})

# dynamic batch
g = helper.make_graph(
    [
        helper.make_node("MatMul", ["x", "w"], ["m"]),
        helper.make_node("Add", ["m", "b"], ["a"]),
        helper.make_node("Softmax", ["a"], ["y"], axis=1),
    ],
    "dyn_batch",
    [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 8])],
    [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 3])],
    [init("w", f32(8, 3)), init("b", f32(3))],
)
p = save(helper.make_model(g, producer_name="inferkit"), "dyn_batch")
run_case("dyn_batch", p, {"x": f32(1, 8)}, ".b1")
x5 = f32(5, 8)
run_case("dyn_batch", p, {"x": x5}, ".b5")
# the same graph with other weights: "version 2" for the registry's hot-swap test
g2 = helper.make_graph(g.node, "dyn_batch", g.input, g.output, [init("w", f32(8, 3)), init("b", f32(3))])
p = save(helper.make_model(g2, producer_name="inferkit"), "dyn_batch_v2")
run_case("dyn_batch_v2", p, {"x": x5}, ".b5")

# two (three) inputs, int64 ids, two outputs
g = helper.make_graph(
    [
        helper.make_node("Mul", ["a", "b"], ["ab"]),
        helper.make_node("ReduceSum", ["ab", "axes1"], ["prod"], keepdims=0),
        helper.make_node("Gather", ["table", "ids"], ["g"], axis=0),
        helper.make_node("ReduceMean", ["g"], ["gm"], axes=[1], keepdims=0),
        helper.make_node("Add", ["gm", "a"], ["emb"]),
    ],
    "two_inputs",
    [
        helper.make_tensor_value_info("a", TensorProto.FLOAT, ["batch", 4]),
        helper.make_tensor_value_info("b", TensorProto.FLOAT, ["batch", 4]),
        helper.make_tensor_value_info("ids", TensorProto.INT64, ["batch", 5]),
    ],
    [
        helper.make_tensor_value_info("prod", TensorProto.FLOAT, ["batch"]),
        helper.make_tensor_value_info("emb", TensorProto.FLOAT, ["batch", 4]),
    ],
    [init("axes1", np.array([1], dtype=np.int64)), init("table", f32(10, 4))],
)
p = save(helper.make_model(g, producer_name="inferkit"), "two_inputs")
run_case("two_inputs", p, {"a": f32(3, 4), "b": f32(3, 4), "ids": rng.integers(0, 10, (3, 5)).astype(np.int64)})

# recurrent layers: their hidden state must not carry from one run into the next
H = 4
g = helper.make_graph(
    [helper.make_node("GRU", ["x", "w", "r", "b"], ["y", "y_h"], hidden_size=H, linear_before_reset=1)],
    "gru",
    [helper.make_tensor_value_info("x", TensorProto.FLOAT, [6, 2, 3])],
    [
        helper.make_tensor_value_info("y", TensorProto.FLOAT, [6, 1, 2, H]),
        helper.make_tensor_value_info("y_h", TensorProto.FLOAT, [1, 2, H]),
    ],
    [init("w", f32(1, 3 * H, 3)), init("r", f32(1, 3 * H, H)), init("b", f32(1, 6 * H))],
)
p = save(helper.make_model(g, producer_name="inferkit"), "gru")
run_case("gru", p, {"x": f32(6, 2, 3)})
g = helper.make_graph(
    [helper.make_node("LSTM", ["x", "w", "r", "b"], ["y", "y_h", "y_c"], hidden_size=H)],
    "lstm",
    [helper.make_tensor_value_info("x", TensorProto.FLOAT, [6, 2, 3])],
    [
        helper.make_tensor_value_info("y", TensorProto.FLOAT, [6, 1, 2, H]),
        helper.make_tensor_value_info("y_h", TensorProto.FLOAT, [1, 2, H]),
        helper.make_tensor_value_info("y_c", TensorProto.FLOAT, [1, 2, H]),
    ],
    [init("w", f32(1, 4 * H, 3)), init("r", f32(1, 4 * H, H)), init("b", f32(1, 8 * H))],
)
p = save(helper.make_model(g, producer_name="inferkit"), "lstm")
run_case("lstm", p, {"x": f32(6, 2, 3)})

# an operator nobody implements
g = helper.make_graph(
    [helper.make_node("Frobnicate", ["x"], ["y"], domain="com.example")],
    "custom_op",
    [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])],
    [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])],
)
m = helper.make_model(g, producer_name="inferkit", opset_imports=[helper.make_opsetid("", 13), helper.make_opsetid("com.example", 1)])
m.ir_version = 8
onnx.save(m, os.path.join(OUT, "custom_op.onnx"))

with open(os.path.join(OUT, "cases.json"), "w") as f:
    json.dump({"onnxruntime": ort.__version__, "onnx": onnx.__version__, "cases": cases}, f, indent=1)
print(f"{len(cases)} cases written to {os.path.normpath(OUT)}")
