"""ONNX's own backend node tests through inferkit's two ONNX backends (tract, pure Rust; and
onnxruntime through the `ort` crate) and through onnxruntime's Python API, one table per
operator: docs/onnx-conformance.md.

Run by scripts/onnx-conformance.sh (which builds `run_onnx` and makes the virtualenv).
Recent `onnx` wheels ship the generators of the node tests, not their data: the cases are
collected in memory (`onnx.backend.test.case.node.collect_testcases`, the same generators
`backend-test-tools generate-data` writes out). For each test of the operators below (not
the `_expanded` variants, which test ONNX's function expansion): the model and its data
set; onnxruntime runs it
in-process; inferkit runs it with `run_onnx --backend tract` and `--backend ort` (one process
per test and backend, a time limit each; the ort backend loads the very libonnxruntime of the
Python package) on inputs written as .npy; all compared with the expected outputs at ONNX's backend-test
tolerance (rtol 1e-3, atol 1e-7). A test inferkit answers outside the tolerance is a
WRONG ANSWER — the one outcome that must never happen; an error is a named refusal.

Usage: onnx_conformance.py RUN_ONNX_BINARY OUT.md
       onnx_conformance.py --gate RUN_ONNX_BINARY DOC.md   (CI: fails on any wrong answer or
       panic of either backend (the ort backend answering as onnxruntime's Python API does is
       onnxruntime's answer), or on fewer passes of the tests onnxruntime passes than DOC.md
       records for either backend; writes nothing but target/onnx-conformance/results.json)
"""
import collections
import json
import os
import pathlib
import re
import shutil
import subprocess
import sys
import tempfile

import numpy as np
import onnx
import onnxruntime as ort

ROOT = pathlib.Path(__file__).resolve().parent.parent
GATE = sys.argv[1] == "--gate"
RUN_ONNX, OUT = pathlib.Path(sys.argv[1 + GATE]), pathlib.Path(sys.argv[2 + GATE])
RTOL, ATOL = 1e-3, 1e-7
TIME_LIMIT_S = 60

# The operators common in vision, NLP and sequence models (issue 21's list and their kin),
# and those of int8 models (issue 22).
OPS = """Abs Add And ArgMax ArgMin AveragePool BatchNormalization Cast Ceil Clip Concat Constant
ConstantOfShape Conv ConvTranspose Cos CumSum DepthToSpace Div Dropout Einsum Elu Equal Erf Exp
Expand Flatten Floor GRU Gather GatherElements Gelu Gemm GlobalAveragePool GlobalMaxPool Greater
GreaterOrEqual HardSigmoid HardSwish Identity InstanceNormalization LRN LSTM LayerNormalization
LeakyRelu Less LessOrEqual Log LogSoftmax MatMul Max MaxPool Mean Min Mish Mod Mul Neg NonZero Not
OneHot Or PRelu Pad Pow RNN Range Reciprocal ReduceL2 ReduceLogSumExp ReduceMax ReduceMean ReduceMin
ReduceProd ReduceSum ReduceSumSquare Relu Reshape Resize ScatterElements ScatterND Selu Shape Sigmoid
Sign Sin Size Slice Softmax Softplus Softsign SpaceToDepth Split Sqrt Squeeze Sub Sum Tanh
ThresholdedRelu Tile TopK Transpose Trilu Unsqueeze Where Xor
QuantizeLinear DequantizeLinear DynamicQuantizeLinear QLinearConv QLinearMatMul MatMulInteger
ConvInteger""".split()
# (ONNX_CONFORMANCE_OPS="Conv Relu" narrows the run, for a quick look)
OPS = os.environ.get("ONNX_CONFORMANCE_OPS", " ".join(OPS)).split()


def close(got, want):
    got = np.asarray(got)
    if got.shape != want.shape:
        return False, f"shape {list(got.shape)} != {list(want.shape)}"
    if want.dtype.kind in "fc":
        ok = np.allclose(got.astype(np.float64), want.astype(np.float64), rtol=RTOL, atol=ATOL, equal_nan=True)
        return ok, "" if ok else f"max |diff| {float(np.nanmax(np.abs(got.astype(np.float64) - want))):.3g}"
    ok = np.array_equal(got.astype(want.dtype), want)
    return ok, "" if ok else "values differ"


def run_ort(path, inputs, outputs):
    try:
        sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        got = sess.run(list(outputs), inputs)
    except Exception as e:  # noqa: BLE001 - any failure is a failed test
        return "error", str(e).splitlines()[0][:160]
    for g, (name, want) in zip(got, outputs.items()):
        ok, why = close(g, want)
        if not ok:
            return "wrong", f"{name}: {why}"
    return "pass", ""


# the ort backend loads the library of the onnxruntime this script imported
ORT_LIBRARY = next((pathlib.Path(ort.__file__).parent / "capi").glob("libonnxruntime.so*"), None)
BACKENDS = ("tract", "ort")


def run_ours(path, inputs, outputs, tmp, backend):
    shutil.rmtree(tmp / "out", ignore_errors=True)
    args = [str(RUN_ONNX), str(path), "--out", str(tmp / "out"), "--backend", backend]
    env = dict(os.environ)
    if backend == "ort":
        if ORT_LIBRARY is None:
            sys.exit(f"no libonnxruntime.so* next to {ort.__file__}")
        env["ORT_DYLIB_PATH"] = str(ORT_LIBRARY)
    for i, (name, value) in enumerate(inputs.items()):
        f = tmp / f"in{i}.npy"
        # (run_onnx reads no f16 .npy: f16 values go as the f32s they exactly are)
        np.save(f, value.astype(np.float32) if value.dtype == np.float16 else value)
        args += ["--input", f"{name}={f}"]
    try:
        r = subprocess.run(args, capture_output=True, text=True, timeout=TIME_LIMIT_S, env=env)
    except subprocess.TimeoutExpired:
        return "error", f"no answer in {TIME_LIMIT_S} s"
    if r.returncode != 0:
        lines = [l for l in r.stderr.splitlines() if l.strip()]
        # 101: a panic that reached `main` (one the library caught and named exits 1)
        panic = r.returncode == 101
        msg = next((l for l in lines if l.startswith("error")), lines[-1] if lines else f"exit {r.returncode}")
        return ("panic" if panic else "error"), msg.removeprefix("error: ")[:200]
    # each output's file, from run_onnx's summary line (names are made safe as file names)
    try:
        files = {o["name"]: o["file"] for o in json.loads(r.stdout.strip().splitlines()[-1])["outputs"]}
    except (ValueError, KeyError, IndexError):
        return "error", "no summary line from run_onnx"
    for name, want in outputs.items():
        f = pathlib.Path(files.get(name, tmp / "out" / f"{name}.npy"))
        if not f.exists():
            return "error", f"no output {name}"
        ok, why = close(np.load(f), want)
        if not ok:
            return "wrong", f"{name}: {why}"
    return "pass", ""


def main():
    from onnx.backend.test.case import node

    tests = []
    for case in node.collect_testcases():
        if "_expanded" in case.name:
            continue
        ops = sorted({n.op_type for n in case.model.graph.node})
        op = ops[0] if len(ops) == 1 else None
        if op in OPS:
            tests.append((case, op))
    tests.sort(key=lambda t: t[0].name)
    results = []
    with tempfile.TemporaryDirectory() as t:
        tmp = pathlib.Path(t)
        for n, (case, op) in enumerate(tests):
            model = case.model
            path = tmp / "model.onnx"
            path.write_bytes(model.SerializeToString())
            ins, outs = case.data_sets[0]
            inputs = {i.name: np.asarray(v) for i, v in zip(model.graph.input, ins)}
            outputs = {o.name: np.asarray(v) for o, v in zip(model.graph.output, outs)}
            o = run_ort(path, inputs, outputs)
            r = run_ours(path, inputs, outputs, tmp, "tract")
            b = run_ours(path, inputs, outputs, tmp, "ort")
            results.append({"test": case.name, "op": op, "ort": o[0], "ort_why": o[1], "ours": r[0], "why": r[1],
                            "ort_backend": b[0], "ort_backend_why": b[1]})
            if n % 50 == 0:
                print(f"{n}/{len(tests)}", file=sys.stderr)
    out = ROOT / "target" / "onnx-conformance"
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.json").write_text(json.dumps(results, indent=1))
    if GATE:
        gate(results)
    else:
        write_report(results)


def gate(results):
    recorded = re.search(r"of the tests onnxruntime passes, \*\*(\d+) ", OUT.read_text())
    floor = int(recorded.group(1)) if recorded else 0
    ort_pass = [r for r in results if r["ort"] == "pass"]
    ours = sum(r["ours"] == "pass" for r in ort_pass)
    # (the ort backend answering as wrongly as onnxruntime's Python API does is onnxruntime's
    # own answer — its library, the same: listed in the report, not a failure of ours)
    bad = [(r, k) for r in results for k in ("ours", "ort_backend") if r[k] in ("wrong", "panic")
           and not (k == "ort_backend" and r[k] == "wrong" and r["ort"] == "wrong")]
    missed = [r for r in ort_pass if r["ort_backend"] != "pass"]
    recorded_ob = re.search(r"inferkit \(ort\) passes \*\*\d+\*\*; of the tests onnxruntime passes, \*\*(\d+)\*\*",
                            OUT.read_text())
    floor_ob = int(recorded_ob.group(1)) if recorded_ob else len(ort_pass)
    print(f"{len(results)} tests; onnxruntime {len(ort_pass)}; inferkit tract {ours} of those "
          f"({OUT} records {floor}); inferkit ort {len(ort_pass) - len(missed)} of those ({floor_ob}); "
          f"wrong or panicking: {len(bad)}")
    for r, k in bad:
        why = r["why"] if k == "ours" else r["ort_backend_why"]
        print(f"  {r[k].upper()} ({'tract' if k == 'ours' else 'ort'}): {r['test']} ({r['op']}): {why}")
    for r in missed:
        print(f"  ort backend fails what onnxruntime passes: {r['test']} ({r['op']}): {r['ort_backend_why']}")
    if bad or ours < floor or len(ort_pass) - len(missed) < floor_ob:
        sys.exit(1)


def write_report(results):
    by_op = collections.defaultdict(list)
    for r in results:
        by_op[r["op"]].append(r)
    ort_pass = [r for r in results if r["ort"] == "pass"]
    ours_of_ort = [r for r in ort_pass if r["ours"] == "pass"]
    wrong = [r for r in results if r["ours"] == "wrong"]
    panics = [r for r in results if r["ours"] == "panic"]
    ob_of_ort = [r for r in ort_pass if r["ort_backend"] == "pass"]
    ob_bad = [r for r in results if r["ort_backend"] == "panic" or (r["ort_backend"] == "wrong" and r["ort"] != "wrong")]
    ob_as_ort = [r for r in results if r["ort_backend"] == "wrong" and r["ort"] == "wrong"]
    lines = [
        "# ONNX conformance: ONNX's backend node tests",
        "",
        f"`scripts/onnx-conformance.sh` (onnx {onnx.__version__}, onnxruntime {ort.__version__}): "
        f"{len(results)} node tests of {len(by_op)} operators common in vision, NLP and sequence models and in int8 ones "
        f"(the `_expanded` variants left out), each run by onnxruntime's Python API and by inferkit's "
        f"two ONNX backends through `run_onnx`: tract (pure Rust, the default) and ort (onnxruntime "
        f"through the `ort` crate, loading the Python package's own library), compared with ONNX's expected outputs at rtol "
        f"{RTOL:g}, atol {ATOL:g}.",
        "",
        f"- onnxruntime passes **{len(ort_pass)}** of {len(results)}.",
        f"- inferkit (tract) passes **{sum(r['ours'] == 'pass' for r in results)}**; of the tests onnxruntime "
        f"passes, **{len(ours_of_ort)} ({100 * len(ours_of_ort) / max(1, len(ort_pass)):.0f}%)**.",
        f"- wrong answers without an error (inferkit): **{len(wrong)}**; panics: **{len(panics)}**; "
        f"the rest are named errors.",
        f"- inferkit (ort) passes **{sum(r['ort_backend'] == 'pass' for r in results)}**; of the tests "
        f"onnxruntime passes, **{len(ob_of_ort)}**; wrong answers or panics of its own: **{len(ob_bad)}**; "
        f"answers of onnxruntime's that differ from ONNX's reference outputs, the Python API's the same: "
        f"**{len(ob_as_ort)}** (listed below).",
        "",
        "| operator | tests | onnxruntime | inferkit (tract) | inferkit (ort) | tract's failures (first line of each) |",
        "|---|---|---|---|---|---|",
    ]
    for op in sorted(by_op):
        rs = by_op[op]
        fails = [f"`{r['test']}` {r['ours']}: {r['why']}".replace("|", "\\|") for r in rs if r["ours"] != "pass"]
        lines.append(f"| {op} | {len(rs)} | {sum(r['ort'] == 'pass' for r in rs)} | "
                     f"{sum(r['ours'] == 'pass' for r in rs)} | {sum(r['ort_backend'] == 'pass' for r in rs)} | "
                     f"{'<br>'.join(fails[:4])}"
                     f"{'<br>… ' + str(len(fails) - 4) + ' more' if len(fails) > 4 else ''} |")
    if wrong:
        lines += ["", "## Wrong answers without an error", ""]
        lines += [f"- `{r['test']}` ({r['op']}): {r['why']}" for r in wrong]
    ob_fails = [r for r in results if r["ort_backend"] != "pass" and r["ort"] == "pass"]
    if ob_as_ort:
        lines += ["", "## Where onnxruntime itself differs from ONNX's reference outputs", "",
                  "The ort backend gives onnxruntime's answer, as its Python API does (the same library); "
                  "these are onnxruntime's, not the backend's:", ""]
        lines += [f"- `{r['test']}` ({r['op']}): {r['ort_backend_why']}".replace("|", "\\|") for r in ob_as_ort]
    if ob_fails:
        lines += ["", "## Tests onnxruntime's Python API passes and the ort backend does not", ""]
        lines += [f"- `{r['test']}` ({r['op']}) {r['ort_backend']}: {r['ort_backend_why']} "
                  f"(onnxruntime's Python API: {r['ort']}{': ' + r['ort_why'] if r['ort_why'] else ''})"
                  .replace("|", "\\|") for r in ob_fails]
    OUT.write_text("\n".join(lines) + "\n")
    print(f"{len(results)} tests; onnxruntime {len(ort_pass)}; inferkit {len(ours_of_ort)} of those; "
          f"wrong {len(wrong)}, panics {len(panics)}; ort backend {len(ob_of_ort)} of those, "
          f"wrong or panics of its own {len(ob_bad)}, onnxruntime's own {len(ob_as_ort)}")


if __name__ == "__main__":
    main()
