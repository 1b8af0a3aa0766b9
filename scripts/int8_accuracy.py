"""Issue 22's accuracy check of EfficientNet-Lite0 in int8, on photos not in the calibration
set: inferkit's int8 against its f32 (the two CSVs classify_images wrote), and onnxruntime's
static int8 (QDQ, scripts/eff_int8_onnx.py) against its f32, on the same photos.

Usage (scripts/int8-accuracy.sh runs it): int8_accuracy.py PHOTOS_DIR F32_CSV INT8_CSV

Reports top-1 agreement with f32, top-5 overlap (shared classes of the two top fives / 5,
averaged), and, when the file names start with an ImageNet WordNet id (n01440764_…; the
class index is the id's place in the sorted list of the 1,000 ids), top-1 accuracy. Writes
target/bench-data/int8-accuracy.json.
"""
import csv
import collections
import json
import pathlib
import sys

import numpy as np
import onnxruntime as ort

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
import eff_int8_onnx  # noqa: E402

ROOT = pathlib.Path(__file__).resolve().parent.parent


def read_csv(path):
    top = collections.defaultdict(list)
    for r in csv.DictReader(open(path)):
        top[r["file"]].append(int(r["class_index"]))
    return top


def compare(f32, int8, files, truth):
    out = {
        "photos": len(files),
        "top1_agreement": sum(f32[f][0] == int8[f][0] for f in files) / len(files),
        "top5_overlap": sum(len(set(f32[f][:5]) & set(int8[f][:5])) / 5 for f in files) / len(files),
    }
    if truth:
        out["top1_accuracy_f32"] = sum(f32[f][0] == truth[f] for f in files) / len(files)
        out["top1_accuracy_int8"] = sum(int8[f][0] == truth[f] for f in files) / len(files)
    return out


def ort_top5(model, files, photos):
    o = ort.SessionOptions()
    o.intra_op_num_threads = 2
    sess = ort.InferenceSession(str(model), o, providers=["CPUExecutionProvider"])
    top = {}
    for i in range(0, len(files), 50):
        part = files[i : i + 50]
        x = np.stack([eff_int8_onnx.preprocess(photos / f) for f in part])
        logits = sess.run(None, {"images": x})[0]
        for f, row in zip(part, logits):
            top[f] = list(np.argsort(-row, kind="stable")[:5])
    return top


def main():
    photos, f32_csv, int8_csv = pathlib.Path(sys.argv[1]), sys.argv[2], sys.argv[3]
    ours_f32, ours_int8 = read_csv(f32_csv), read_csv(int8_csv)
    files = sorted(ours_f32)
    ids = sorted({f.split("_")[0] for f in files})
    truth = None
    if len(ids) == 1000 and all(i.startswith("n") and i[1:].isdigit() for i in ids):
        truth = {f: ids.index(f.split("_")[0]) for f in files}
    calibration = {p.name for p in (ROOT / "assets/images").iterdir()}
    assert not calibration & set(files), "a calibration photo is among the photos checked"
    result = {"inferkit": compare(ours_f32, ours_int8, files, truth)}
    eff_int8_onnx.make()
    ort_f32 = ort_top5(eff_int8_onnx.EFF_ONNX, files, photos)
    ort_int8 = ort_top5(eff_int8_onnx.EFF_INT8_ONNX, files, photos)
    result["onnxruntime_qdq"] = compare(ort_f32, ort_int8, files, truth)
    result["onnxruntime"] = ort.__version__
    for who in ("inferkit", "onnxruntime_qdq"):
        r = result[who]
        line = f"{who}: {r['photos']} photos, top-1 agreement {r['top1_agreement']:.1%}, top-5 overlap {r['top5_overlap']:.1%}"
        if truth:
            line += f", top-1 accuracy f32 {r['top1_accuracy_f32']:.1%} → int8 {r['top1_accuracy_int8']:.1%}"
        print(line)
    d = ROOT / "target" / "bench-data"
    d.mkdir(parents=True, exist_ok=True)
    (d / "int8-accuracy.json").write_text(json.dumps(result, indent=1, default=float))


if __name__ == "__main__":
    main()
