"""ONNX models using what tract 0.21 computes wrongly without an error (issue 21: ONNX's
backend tests `test_gru_reverse` 0.23 relative error, `test_lstm_reverse` 0.20;
AveragePool/MaxPool ignoring `dilations`, a wrong output shape; MaxPool's indices with
strides): the ONNX backend must refuse
each at prepare, naming the node, the operator and the attribute. Beside them, the
bidirectional recurrent layers, which tract computes right (measured here: <= 3e-7 from
onnxruntime; so are PyTorch's exported bidirectional GRU and LSTM), with onnxruntime's
outputs, so that the refusal stays as narrow as the fault.

Run: scripts/pyvenv.sh onnx-export torch onnx onnxscript onnxruntime numpy -- scripts/make_inexact_onnx_fixtures.py
Writes tests/fixtures/onnx/inexact/*.onnx and inexact.json ("refused": file -> what the
error names; "exact": file -> its input and onnxruntime's output, .npy); every model is run by
onnxruntime, so each is a valid model a user could bring.
"""
import json
import pathlib

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper

OUT = pathlib.Path(__file__).resolve().parent.parent / "tests/fixtures/onnx/inexact"
OUT.mkdir(parents=True, exist_ok=True)
rng = np.random.default_rng(21)
T, N, I, H = 4, 2, 3, 5


def rnn(op, direction, gates):
    dirs = 2 if direction == "bidirectional" else 1
    w = helper.make_tensor("W", TensorProto.FLOAT, [dirs, gates * H, I],
                           rng.standard_normal(dirs * gates * H * I).astype(np.float32))
    r = helper.make_tensor("R", TensorProto.FLOAT, [dirs, gates * H, H],
                           rng.standard_normal(dirs * gates * H * H).astype(np.float32))
    node = helper.make_node(op, ["x", "W", "R"], ["y"], name=f"{op.lower()}_0",
                            hidden_size=H, direction=direction)
    graph = helper.make_graph(
        [node], f"{op.lower()}_{direction}",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [T, N, I])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [T, dirs, N, H])],
        initializer=[w, r])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 14)]), {"x": (T, N, I)}


def gru_full():
    """A GRU with every input and attribute ours takes: bidirectional, hidden size 24 at
    batch 3 (where tract 0.21's own was wrong), linear_before_reset, clip, bias, per-row
    sequence lengths (6, 4, 1) and an initial state; its own random stream, so that adding
    it left the other fixtures as they were."""
    g = np.random.default_rng(24)
    t, n, i, h, dirs = 6, 3, 5, 24, 2
    tensor = lambda name, shape, v, dt=TensorProto.FLOAT: helper.make_tensor(name, dt, shape, v)  # noqa: E731
    inits = [
        tensor("W", [dirs, 3 * h, i], g.standard_normal(dirs * 3 * h * i).astype(np.float32)),
        tensor("R", [dirs, 3 * h, h], (g.standard_normal(dirs * 3 * h * h) * 0.3).astype(np.float32)),
        tensor("B", [dirs, 6 * h], g.standard_normal(dirs * 6 * h).astype(np.float32)),
        tensor("lens", [n], [6, 4, 1], TensorProto.INT32),
        tensor("h0", [dirs, n, h], g.standard_normal(dirs * n * h).astype(np.float32)),
    ]
    node = helper.make_node("GRU", ["x", "W", "R", "B", "lens", "h0"], ["y", "y_h"], name="gru_0",
                            hidden_size=h, direction="bidirectional", linear_before_reset=1, clip=3.0)
    graph = helper.make_graph(
        [node], "gru_full", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [t, n, i])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [t, dirs, n, h]),
         helper.make_tensor_value_info("y_h", TensorProto.FLOAT, [dirs, n, h])],
        initializer=inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 14)]), {"x": (t, n, i)}


def pool(op):
    node = helper.make_node(op, ["x"], ["y"], name=f"{op.lower()}_0", kernel_shape=[2, 2],
                            dilations=[2, 2])
    graph = helper.make_graph(
        [node], f"{op.lower()}_dilated",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 1, 6, 6])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 1, 4, 4])])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 19)]), {"x": (1, 1, 6, 6)}


def maxpool_indices():
    node = helper.make_node("MaxPool", ["x"], ["y", "z"], name="maxpool_0", kernel_shape=[2, 2],
                            strides=[2, 2])
    graph = helper.make_graph(
        [node], "maxpool_indices",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 1, 6, 6])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 1, 3, 3]),
         helper.make_tensor_value_info("z", TensorProto.INT64, [1, 1, 3, 3])])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 12)]), {"x": (1, 1, 6, 6)}


def single(op, inputs, out_shape, opset, initializers=(), **attrs):
    """One node `op` named `<op>_0` over float inputs `x` (and initializers)."""
    node = helper.make_node(op, ["x"] + [i.name for i in initializers], ["y"], name=f"{op.lower()}_0", **attrs)
    graph = helper.make_graph(
        [node], op.lower(), [helper.make_tensor_value_info("x", TensorProto.FLOAT, inputs)],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, out_shape)], initializer=list(initializers))
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)]), {"x": tuple(inputs)}


def scatter_reduction():
    idx = helper.make_tensor("i", TensorProto.INT64, [1, 2], [1, 1])
    upd = helper.make_tensor("u", TensorProto.FLOAT, [1, 2], [1.5, 2.5])
    return single("ScatterElements", [1, 5], [1, 5], 18, [idx, upd], axis=1, reduction="add")


def instancenorm_epsilon():
    scale = helper.make_tensor("s", TensorProto.FLOAT, [3], [1.0, 1.5, 2.0])
    bias = helper.make_tensor("b", TensorProto.FLOAT, [3], [0.0, 0.5, -1.0])
    return single("InstanceNormalization", [2, 3, 4], [2, 3, 4], 6, [scale, bias], epsilon=0.01)


# found by scripts/onnx-conformance.sh (its first run: ONNX's test_scatter_elements_with_
# duplicate_indices, test_instancenorm_epsilon, test_spacetodepth_crd_mode_example)
CONFORMANCE = {
    "instancenorm_epsilon.onnx": (instancenorm_epsilon(), ["instancenormalization_0", "InstanceNormalization", "epsilon"]),
    "spacetodepth_crd.onnx": (single("SpaceToDepth", [1, 2, 4, 4], [1, 8, 2, 2], 28, blocksize=2, mode="CRD"),
                              ["spacetodepth_0", "SpaceToDepth", "mode"]),
}


def reduce_max():
    """ReduceMax over a dynamic axis: of an empty set (ONNX's test_reduce_max_empty_set)
    wrong in tract 0.21, of a non-empty one right."""
    node = helper.make_node("ReduceMax", ["x"], ["y"], name="reducemax_0", axes=[1], keepdims=0)
    graph = helper.make_graph(
        [node], "reduce_max",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, "n", 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2, 4])])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


# refused at the shapes (and values) where they are wrong, answered at the others
AT_SHAPES = {
    "reduce_max.onnx": (reduce_max(), {"x": np.float32}, {"x": (2, 0, 4)}, {"x": (2, 3, 4)},
                        ["reducemax_0", "ReduceMax", "empty"]),
}


cases = {
    "lstm_reverse.onnx": (rnn("LSTM", "reverse", 4), ["lstm_0", "LSTM", "direction"]),
    "rnn_reverse.onnx": (rnn("RNN", "reverse", 1), ["rnn_0", "RNN", "direction"]),
    "maxpool_dilations.onnx": (pool("MaxPool"), ["maxpool_0", "MaxPool", "dilations"]),
    "averagepool_dilations.onnx": (pool("AveragePool"), ["averagepool_0", "AveragePool", "dilations"]),
    # ONNX's test_maxpool_with_argmax_2d_precomputed_strides: other indices than onnxruntime's
    "maxpool_indices_strides.onnx": (maxpool_indices(), ["maxpool_0", "MaxPool", "Indices"]),
}


def shape(start=None, end=None):
    kw = {k: v for k, v in (("start", start), ("end", end)) if v is not None}
    node = helper.make_node("Shape", ["x"], ["y"], name="shape_0", **kw)
    graph = helper.make_graph(
        [node], "shape", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [3, 4, 5])],
        [helper.make_tensor_value_info("y", TensorProto.INT64, [None])])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 15)]), {"x": (3, 4, 5)}


# tract panics on this graph (ONNX's test_shape_start_greater_than_end): an error, not a crash
failing = {"shape_start_greater_than_end.onnx": (shape(2, 1), ["tract failed", "slice index"])}

exact_cases = {
    # refused once (tract 0.21 overwrites); our own ScatterElements with reduction now
    "scatterelements_reduction.onnx": scatter_reduction(),
    # a `Shape` as the graph's output: tract's TDim tensor, handed out as i64
    "shape.onnx": shape(),
    "gru_bidirectional.onnx": rnn("GRU", "bidirectional", 3),
    # refused once (tract 0.21 runs it forward); our own GRU now (crate::onnx_gru)
    "gru_reverse.onnx": rnn("GRU", "reverse", 3),
    "gru_full.onnx": gru_full(),
    "lstm_bidirectional.onnx": rnn("LSTM", "bidirectional", 4),
    "rnn_bidirectional.onnx": rnn("RNN", "bidirectional", 1),
}


def save_and_run(file, model, feeds):
    onnx.checker.check_model(model)
    onnx.save(model, OUT / file)
    sess = ort.InferenceSession(str(OUT / file), providers=["CPUExecutionProvider"])
    x = {k: rng.standard_normal(s).astype(np.float32) for k, s in feeds.items()}
    return x, sess.run(None, x)[0]


for old in OUT.glob("*"):
    old.unlink()
refused, exact = {}, {}
for file, ((model, feeds), names) in {**cases, **CONFORMANCE}.items():
    save_and_run(file, model, feeds)
    refused[file] = names
errors = {}
for file, ((model, feeds), names) in failing.items():
    save_and_run(file, model, feeds)
    errors[file] = names
for file, (model, feeds) in exact_cases.items():
    x, y = save_and_run(file, model, feeds)
    stem = file.removesuffix(".onnx")
    np.save(OUT / f"{stem}.x.npy", x["x"])
    np.save(OUT / f"{stem}.y.npy", y)
    exact[file] = {"x": f"{stem}.x.npy", "y": f"{stem}.y.npy"}
at_shapes = {}
for file, (model, types, bad, good, names) in AT_SHAPES.items():
    onnx.checker.check_model(model)
    onnx.save(model, OUT / file)
    sess = ort.InferenceSession(str(OUT / file), providers=["CPUExecutionProvider"])
    stem = file.removesuffix(".onnx")
    entry = {"names": names}
    for which, spec in (("refused", bad), ("exact", good)):
        feeds = {k: (rng.standard_normal(v).astype(t) if t == np.float32 else np.array(v, t))
                 for (k, v), t in zip(spec.items(), types.values())}
        files = {}
        for k, v in feeds.items():
            np.save(OUT / f"{stem}.{which}.{k}.npy", v)
            files[k] = f"{stem}.{which}.{k}.npy"
        entry[which] = {"inputs": files}
        if which == "exact":
            np.save(OUT / f"{stem}.exact.y.npy", sess.run(None, feeds)[0])
            entry[which]["y"] = f"{stem}.exact.y.npy"
    at_shapes[file] = entry
(OUT / "inexact.json").write_text(json.dumps({"onnx": onnx.__version__, "onnxruntime": ort.__version__,
                                              "refused": refused, "errors": errors, "exact": exact,
                                              "at_shapes": at_shapes}, indent=1) + "\n")
print(len(refused), "refused,", len(errors), "errors,", len(exact), "exact")
