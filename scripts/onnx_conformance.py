"""ONNX's own backend node tests through inferkit's ONNX backend and through onnxruntime's
Python API, one table per operator: docs/onnx-conformance.md.

Run by scripts/onnx-conformance.sh (which builds `run_onnx` and makes the virtualenv).
Recent `onnx` wheels ship the generators of the node tests, not their data: the cases are
collected in memory (`onnx.backend.test.case.node.collect_testcases`, the same generators
`backend-test-tools generate-data` writes out). For each test of the operators below (not
the `_expanded` variants, which test ONNX's function expansion): the model and its data
set; onnxruntime runs it
in-process; inferkit runs it with `run_onnx` (one process per test, a time limit each) on
inputs written as .npy; both compared with the expected outputs at ONNX's backend-test
tolerance (rtol 1e-3, atol 1e-7). A test inferkit answers outside the tolerance is a
WRONG ANSWER — the one outcome that must never happen; an error is a named refusal.

Usage: onnx_conformance.py RUN_ONNX_BINARY OUT.md
       onnx_conformance.py --gate RUN_ONNX_BINARY DOC.md   (CI: fails on any wrong answer or
       panic, or on fewer passes of the tests onnxruntime passes than DOC.md records; writes
       nothing but target/onnx-conformance/results.json)
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

# The operators common in vision, NLP and sequence models (issue 21's list and their kin).
OPS = """Abs Add And ArgMax ArgMin AveragePool BatchNormalization Cast Ceil Clip Concat Constant
ConstantOfShape Conv ConvTranspose Cos CumSum DepthToSpace Div Dropout Einsum Elu Equal Erf Exp
Expand Flatten Floor GRU Gather GatherElements Gelu Gemm GlobalAveragePool GlobalMaxPool Greater
GreaterOrEqual HardSigmoid HardSwish Identity InstanceNormalization LRN LSTM LayerNormalization
LeakyRelu Less LessOrEqual Log LogSoftmax MatMul Max MaxPool Mean Min Mish Mod Mul Neg NonZero Not
OneHot Or PRelu Pad Pow RNN Range Reciprocal ReduceL2 ReduceLogSumExp ReduceMax ReduceMean ReduceMin
ReduceProd ReduceSum ReduceSumSquare Relu Reshape Resize ScatterElements ScatterND Selu Shape Sigmoid
Sign Sin Size Slice Softmax Softplus Softsign SpaceToDepth Split Sqrt Squeeze Sub Sum Tanh
ThresholdedRelu Tile TopK Transpose Trilu Unsqueeze Where Xor""".split()
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


def run_ours(path, inputs, outputs, tmp):
    shutil.rmtree(tmp / "out", ignore_errors=True)
    args = [str(RUN_ONNX), str(path), "--out", str(tmp / "out")]
    for i, (name, value) in enumerate(inputs.items()):
        f = tmp / f"in{i}.npy"
        # (run_onnx reads no f16 .npy: f16 values go as the f32s they exactly are)
        np.save(f, value.astype(np.float32) if value.dtype == np.float16 else value)
        args += ["--input", f"{name}={f}"]
    try:
        r = subprocess.run(args, capture_output=True, text=True, timeout=TIME_LIMIT_S)
    except subprocess.TimeoutExpired:
        return "error", f"no answer in {TIME_LIMIT_S} s"
    if r.returncode != 0:
        lines = [l for l in r.stderr.splitlines() if l.strip()]
        # 101: a panic that reached `main` (one the library caught and named exits 1)
        panic = r.returncode == 101
        msg = next((l for l in lines if l.startswith("error")), lines[-1] if lines else f"exit {r.returncode}")
        return ("panic" if panic else "error"), msg.removeprefix("error: ")[:200]
    for name, want in outputs.items():
        f = tmp / "out" / f"{name}.npy"
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
            r = run_ours(path, inputs, outputs, tmp)
            results.append({"test": case.name, "op": op, "ort": o[0], "ort_why": o[1], "ours": r[0], "why": r[1]})
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
    bad = [r for r in results if r["ours"] in ("wrong", "panic")]
    print(f"{len(results)} tests; onnxruntime {len(ort_pass)}; inferkit {ours} of those "
          f"({OUT} records {floor}); wrong or panicking: {len(bad)}")
    for r in bad:
        print(f"  {r['ours'].upper()}: {r['test']} ({r['op']}): {r['why']}")
    if bad or ours < floor:
        sys.exit(1)


def write_report(results):
    by_op = collections.defaultdict(list)
    for r in results:
        by_op[r["op"]].append(r)
    ort_pass = [r for r in results if r["ort"] == "pass"]
    ours_of_ort = [r for r in ort_pass if r["ours"] == "pass"]
    wrong = [r for r in results if r["ours"] == "wrong"]
    panics = [r for r in results if r["ours"] == "panic"]
    lines = [
        "# ONNX conformance: ONNX's backend node tests",
        "",
        f"`scripts/onnx-conformance.sh` (onnx {onnx.__version__}, onnxruntime {ort.__version__}): "
        f"{len(results)} node tests of {len(by_op)} operators common in vision, NLP and sequence models "
        f"(the `_expanded` variants left out), each run by onnxruntime's Python API and by inferkit's "
        f"ONNX backend (tract, through `run_onnx`), compared with ONNX's expected outputs at rtol "
        f"{RTOL:g}, atol {ATOL:g}.",
        "",
        f"- onnxruntime passes **{len(ort_pass)}** of {len(results)}.",
        f"- inferkit (tract) passes **{sum(r['ours'] == 'pass' for r in results)}**; of the tests onnxruntime "
        f"passes, **{len(ours_of_ort)} ({100 * len(ours_of_ort) / max(1, len(ort_pass)):.0f}%)**.",
        f"- wrong answers without an error (inferkit): **{len(wrong)}**; panics: **{len(panics)}**; "
        f"the rest are named errors.",
        "",
        "| operator | tests | onnxruntime | inferkit | inferkit's failures (first line of each) |",
        "|---|---|---|---|---|",
    ]
    for op in sorted(by_op):
        rs = by_op[op]
        fails = [f"`{r['test']}` {r['ours']}: {r['why']}".replace("|", "\\|") for r in rs if r["ours"] != "pass"]
        lines.append(f"| {op} | {len(rs)} | {sum(r['ort'] == 'pass' for r in rs)} | "
                     f"{sum(r['ours'] == 'pass' for r in rs)} | {'<br>'.join(fails[:4])}"
                     f"{'<br>… ' + str(len(fails) - 4) + ' more' if len(fails) > 4 else ''} |")
    if wrong:
        lines += ["", "## Wrong answers without an error", ""]
        lines += [f"- `{r['test']}` ({r['op']}): {r['why']}" for r in wrong]
    OUT.write_text("\n".join(lines) + "\n")
    print(f"{len(results)} tests; onnxruntime {len(ort_pass)}; inferkit {len(ours_of_ort)} of those; "
          f"wrong {len(wrong)}, panics {len(panics)}")


if __name__ == "__main__":
    main()
