"""ONNX models of the operators inferkit registers in tract-onnx's registry
(crates/infer-core/src/onnx_ops.rs), with onnxruntime's outputs, over a dynamic batch:
`Gelu` (opset 20) with `approximate` none and tanh; `Mish` (opset 18); `Dropout` (opset 13)
with its ratio and training_mode (false) inputs and its mask output, the identity in
inference; `Resize` (opset 19, crates/infer-core/src/onnx_resize.rs) in the modes tract 0.21
got wrong or lacked — linear half-pixel upsampling (wrong at the borders), PyTorch's
bilinear export (`pytorch_half_pixel`), cubic, antialiased downsampling, nearest `ceil`,
`tf_crop_and_resize` with extrapolation, `axes` with `keep_aspect_ratio_policy` — with
`scales`/`sizes` as initializers and, for one, as a graph input given at run time; and
`Dropout` in training mode with a ratio of 0.5, which is refused (it drops at random); and
a `Range` over the input's length compared with an int64 constant (`range_mask`).

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


def range_mask():
    """y = x · (position ≥ 3), the positions a `Range` over the input's own length (shape
    arithmetic, as transformers' BERT export computes position ids) compared with an int64
    constant: tract 0.21 failed `Impossible to unify TDim with I64`."""
    scalar = lambda name, v: helper.make_tensor(name, T.INT64, [], [v])  # noqa: E731
    nodes = [
        helper.make_node("Shape", ["x"], ["s"], name="shape_0"),
        helper.make_node("Gather", ["s", "axis1"], ["t"], name="gather_0", axis=0),
        helper.make_node("Range", ["zero", "t", "one"], ["pos"], name="range_0"),
        helper.make_node("GreaterOrEqual", ["pos", "three"], ["keep"], name="ge_0"),
        helper.make_node("Cast", ["keep"], ["keepf"], name="cast_0", to=T.FLOAT),
        helper.make_node("Mul", ["x", "keepf"], ["y"], name="mul_0"),
    ]
    return nodes, [scalar("axis1", 1), scalar("zero", 0), scalar("one", 1), scalar("three", 3)], []


MODELS = {
    "gelu_none": ([helper.make_node("Gelu", ["x"], ["y"], name="gelu_0", approximate="none")], [], [], 20),
    "gelu_tanh": ([helper.make_node("Gelu", ["x"], ["y"], name="gelu_0", approximate="tanh")], [], [], 20),
    "mish": ([helper.make_node("Mish", ["x"], ["y"], name="mish_0")], [], [], 18),
    "dropout": (*dropout(False), 13),
    "range_mask": (*range_mask(), 13),
}

def resize(name, x_shape, inputs, **attrs):
    """Resize of x [n, c, h, w] (n dynamic) by initializer inputs {name: (onnx type, values)}
    placed in their slots (roi, scales, sizes)."""
    slots = ["x", "", "", ""]
    inits = []
    for slot, key in ((1, "roi"), (2, "scales"), (3, "sizes")):
        if key in inputs:
            t, v = inputs[key]
            inits.append(helper.make_tensor(key, t, [len(v)], v))
            slots[slot] = key
    while slots[-1] == "":
        slots.pop()
    node = helper.make_node("Resize", slots, ["y"], name="resize_0", **attrs)
    return [node], inits, [], 19


RESIZES = {
    "resize_linear_up": ([1, 1, 2, 2], {"scales": (T.FLOAT, [1, 1, 2, 2])}, dict(mode="linear")),
    "resize_bilinear_torch": ([1, 2, 3, 5], {"sizes": (T.INT64, [7, 4])},
                              dict(mode="linear", coordinate_transformation_mode="pytorch_half_pixel", axes=[2, 3])),
    "resize_cubic": ([1, 1, 4, 4], {"scales": (T.FLOAT, [1, 1, 0.8, 1.5])},
                     dict(mode="cubic", cubic_coeff_a=-0.5, exclude_outside=1)),
    "resize_cubic_antialias": ([1, 1, 6, 6], {"sizes": (T.INT64, [3, 4])},
                               dict(mode="cubic", antialias=1, axes=[2, 3])),
    "resize_linear_antialias": ([1, 1, 6, 6], {"scales": (T.FLOAT, [1, 1, 0.5, 0.6])},
                                dict(mode="linear", antialias=1)),
    "resize_nearest_ceil": ([1, 1, 2, 3], {"sizes": (T.INT64, [5, 7])},
                            dict(mode="nearest", nearest_mode="ceil", axes=[2, 3])),
    "resize_crop": ([1, 1, 4, 4], {"roi": (T.FLOAT, [0.4, 0.6, 1.2, 1.7]), "sizes": (T.INT64, [3, 3])},
                    dict(mode="linear", coordinate_transformation_mode="tf_crop_and_resize",
                         extrapolation_value=10.0, axes=[2, 3])),
    "resize_axes_not_larger": ([1, 1, 4, 6], {"sizes": (T.INT64, [7, 8])},
                               dict(mode="nearest", axes=[2, 3], keep_aspect_ratio_policy="not_larger")),
}

cases = {}
for name, (shape, inputs, attrs) in RESIZES.items():
    nodes, inits, extra, opset = resize(name, shape, inputs, **attrs)
    graph = helper.make_graph(
        nodes, name, [helper.make_tensor_value_info("x", T.FLOAT, ["n"] + shape[1:])],
        [helper.make_tensor_value_info("y", T.FLOAT, ["n", "c", "h", "w"])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    onnx.checker.check_model(model)
    onnx.save(model, OUT / f"{name}.onnx")
    x = rng.standard_normal([3] + shape[1:]).astype(np.float32)
    y = ort.InferenceSession(str(OUT / f"{name}.onnx"), providers=["CPUExecutionProvider"]).run(None, {"x": x})[0]
    np.save(OUT / f"{name}.x.npy", x)
    np.save(OUT / f"{name}.y.npy", y)
    cases[f"{name}.onnx"] = {"x": f"{name}.x.npy", "y": f"{name}.y.npy"}

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
