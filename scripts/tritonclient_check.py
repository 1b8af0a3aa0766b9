"""Drives a running `inferkit-serve` with NVIDIA's official `tritonclient[http]` and
`tritonclient[grpc]` packages: health, readiness, metadata, and inference (JSON tensors, the
binary extension, gRPC raw tensors; priority and timeout as the clients send them), checking
the answers against onnxruntime's outputs committed as fixtures (tests/fixtures/onnx,
scripts/make_onnx_fixtures.py) and HTTP's against gRPC's bit for bit; errors with their
gRPC codes; async_stream_infer (ModelStreamInfer) with a bad request answered in band. Run by scripts/check-tritonclient.sh."""

import argparse
import io
import json
import sys
import time
from pathlib import Path

import numpy as np
import tritonclient.grpc as grpc
import tritonclient.http as http
from tritonclient.utils import InferenceServerException

ROOT = Path(__file__).resolve().parent.parent
FIX = ROOT / "tests" / "fixtures" / "onnx"


def wait_live(client, seconds=120):
    end = time.time() + seconds
    while time.time() < end:
        try:
            if client.is_server_live():
                return
        except Exception:  # not listening yet
            pass
        time.sleep(0.25)
    sys.exit(f"server not live after {seconds} s")


def infer(client, model, x, version="", binary=False, **kw):
    inp = http.InferInput("x", list(x.shape), "FP32")
    inp.set_data_from_numpy(x, binary_data=binary)
    out = http.InferRequestedOutput("y", binary_data=binary)
    return client.infer(model, [inp], model_version=version, outputs=[out], **kw)


def big_photos(n):
    """n full-size photos (about 0.6 MB of JPEG each): the bundled ones enlarged to 2400 px
    on their longer side, with a little noise so they compress as photos do."""
    from PIL import Image

    rng = np.random.default_rng(7)
    out = []
    names = ["chelsea.jpg", "astronaut.jpg", "coffee.jpg", "rocket.jpg"]
    for i in range(n):
        img = Image.open(ROOT / "assets" / "images" / names[i % 4]).convert("RGB")
        scale = 2400 / max(img.size)
        img = img.resize((round(img.width * scale), round(img.height * scale)), Image.BICUBIC)
        px = np.asarray(img).astype(np.int16) + rng.integers(-6, 7, (img.height, img.width, 3))
        buf = io.BytesIO()
        Image.fromarray(px.clip(0, 255).astype(np.uint8)).save(buf, "JPEG", quality=90)
        out.append(buf.getvalue())
    return out


def check_repository(client, g, check):
    """The models of examples/model_repository: photos and texts sent as BYTES, the
    classification extension, and a batch of 16 full-size photos (~10 MB)."""
    names = ["chelsea.jpg", "astronaut.jpg", "coffee.jpg", "rocket.jpg"]
    photos = np.array([[(ROOT / "assets" / "images" / n).read_bytes()] for n in names], dtype=object)
    ref = json.loads((ROOT / "tests/fixtures/models/efficientnet_lite0.json").read_text())
    torch_top1 = {im["file"]: im["top5"][0][0] for im in ref["images"]}
    meta = client.get_model_metadata("efficientnet_lite0")
    check(meta["inputs"] == [{"name": "image", "datatype": "BYTES", "shape": [-1]}], f"image model inputs: {meta}")

    # HTTP: the photos' bytes (binary data extension), logits and the top 3 classes
    inp = http.InferInput("image", list(photos.shape), "BYTES")
    inp.set_data_from_numpy(photos, binary_data=True)
    outs = [http.InferRequestedOutput("logits", binary_data=True)]
    logits = client.infer("efficientnet_lite0", [inp], outputs=outs).as_numpy("logits")
    check(logits.shape == (4, 1000), f"image logits shape {logits.shape}")
    for n, row in zip(names, logits):
        check(int(row.argmax()) == torch_top1[n], f"{n}: top-1 {int(row.argmax())}, PyTorch's {torch_top1[n]}")
    outs = [http.InferRequestedOutput("logits", binary_data=True, class_count=3)]
    classes = client.infer("efficientnet_lite0", [inp], outputs=outs).as_numpy("logits")
    check(classes.shape == (4, 3), f"classification shape {classes.shape}")
    first = classes[0][0].decode()
    score, index, label = first.split(":", 2)
    check(index == "285" and label == "Egyptian cat", f"chelsea's top class: {first}")
    check(abs(float(score) - float(logits[0][285])) <= 1e-6, f"classification score {score} vs logit {logits[0][285]}")

    # gRPC: the same bytes, the same logits bit for bit, and the classes
    ginp = grpc.InferInput("image", list(photos.shape), "BYTES")
    ginp.set_data_from_numpy(photos)
    glogits = g.infer("efficientnet_lite0", [ginp]).as_numpy("logits")
    check(glogits.tobytes() == logits.tobytes(), "image logits: gRPC and HTTP differ bit for bit")
    gclasses = g.infer("efficientnet_lite0", [ginp], outputs=[grpc.InferRequestedOutput("logits", class_count=3)]).as_numpy("logits")
    check((gclasses == classes).all(), f"classification: gRPC {gclasses[0]} vs HTTP {classes[0]}")

    # the FP32 model of the repository: its metadata
    meta = g.get_model_metadata("efficientnet_lite0_f32", as_json=True)
    check([int(d) for d in meta["inputs"][0]["shape"]] == [-1, 3, 224, 224], f"f32 model input: {meta}")

    # texts: sentence-transformers' embeddings of the MiniLM fixture texts, over both protocols
    texts = json.loads((ROOT / "tests/fixtures/models/minilm.texts.json").read_text())["texts"]
    want = np.load(ROOT / "tests/fixtures/models/minilm.embeddings.npy")
    arr = np.array([[t.encode()] for t in texts], dtype=object)
    tin = grpc.InferInput("text", list(arr.shape), "BYTES")
    tin.set_data_from_numpy(arr)
    emb = g.infer("minilm", [tin]).as_numpy("sentence_embedding")
    cos = (emb * want).sum(1) / (np.linalg.norm(emb, axis=1) * np.linalg.norm(want, axis=1))
    check(emb.shape == want.shape and float(cos.min()) >= 0.9999, f"text embeddings vs sentence-transformers: min cosine {cos.min()}")
    hin = http.InferInput("text", list(arr.shape), "BYTES")
    hin.set_data_from_numpy(arr, binary_data=True)
    hemb = client.infer("minilm", [hin], outputs=[http.InferRequestedOutput("sentence_embedding", binary_data=True)]).as_numpy("sentence_embedding")
    check(hemb.tobytes() == emb.tobytes(), "text embeddings: gRPC and HTTP differ bit for bit")

    # 16 full-size photos in one request (about 10 MB) pass over both protocols
    big = big_photos(16)
    size = sum(len(b) for b in big)
    check(size > 8_000_000, f"16 photos are {size} bytes")
    barr = np.array([[b] for b in big], dtype=object)
    hbig = http.InferInput("image", list(barr.shape), "BYTES")
    hbig.set_data_from_numpy(barr, binary_data=True)
    top = client.infer("efficientnet_lite0", [hbig], outputs=[http.InferRequestedOutput("logits", binary_data=True, class_count=1)]).as_numpy("logits")
    check(top.shape == (16, 1), f"16 photos over HTTP: {top.shape}")
    gbig = grpc.InferInput("image", list(barr.shape), "BYTES")
    gbig.set_data_from_numpy(barr)
    gtop = g.infer("efficientnet_lite0", [gbig], outputs=[grpc.InferRequestedOutput("logits", class_count=1)]).as_numpy("logits")
    check((gtop == top).all(), "16 photos: gRPC and HTTP classes differ")
    print(f"16 full-size photos ({size / 1e6:.1f} MB) classified over both protocols")

    # a corrupt photo: INVALID_ARGUMENT naming the element; the server keeps serving
    bad = photos.copy()
    bad[2][0] = bad[2][0][: len(bad[2][0]) // 3]
    bin_ = grpc.InferInput("image", list(bad.shape), "BYTES")
    bin_.set_data_from_numpy(bad)
    try:
        g.infer("efficientnet_lite0", [bin_])
        check(False, "a corrupt photo was accepted")
    except InferenceServerException as e:
        check(e.status() == "StatusCode.INVALID_ARGUMENT" and "element 2" in str(e), f"corrupt photo: {e.status()} {e}")
    check(g.infer("efficientnet_lite0", [ginp]).as_numpy("logits").tobytes() == logits.tobytes(), "served after a corrupt photo")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--url", default="127.0.0.1:8000")
    ap.add_argument("--grpc-url", default="127.0.0.1:8001")
    args = ap.parse_args()
    url = args.url
    client = http.InferenceServerClient(url=url)
    wait_live(client)
    checks = 0

    def check(ok, what):
        nonlocal checks
        if not ok:
            sys.exit(f"FAILED: {what}")
        checks += 1

    check(client.is_server_ready(), "server ready")
    check(client.is_model_ready("dyn"), "model dyn ready")
    check(client.is_model_ready("dyn", "1"), "model dyn version 1 ready")
    check(not client.is_model_ready("nope"), "unknown model not ready")

    meta = client.get_model_metadata("dyn")
    check(meta["name"] == "dyn", f"metadata name: {meta}")
    check(meta["versions"] == ["1.0.0", "2.0.0"], f"metadata versions: {meta}")
    check(meta["inputs"][0]["name"] == "x" and meta["inputs"][0]["datatype"] == "FP32", f"inputs: {meta}")
    check(meta["inputs"][0]["shape"] == [-1, 8], f"input shape: {meta}")
    check(meta["outputs"][0]["name"] == "y", f"outputs: {meta}")
    effnet = client.get_model_metadata("efficientnet-lite0")
    check(effnet["inputs"][0]["shape"][1:] == [3, 224, 224], f"efficientnet input: {effnet}")
    check(effnet["outputs"][0]["shape"][1:] == [1000], f"efficientnet output: {effnet}")

    # JSON tensors and the binary tensor data extension (the client's default), both ways
    for (version, stem), binary in [((v, s), b) for v, s in [("1", "dyn_batch"), ("2", "dyn_batch_v2")]
                                    for b in (False, True)]:
        x = np.load(FIX / f"{stem}.b5.x.npy")
        want = np.load(FIX / f"{stem}.b5.y.npy")
        r = infer(client, "dyn", x, version, binary, request_id=f"v{version}", priority=1,
                  timeout=5_000_000)
        got = r.as_numpy("y")
        check(got.shape == want.shape, f"version {version}: shape {got.shape} != {want.shape}")
        diff = float(np.abs(got - want).max())
        check(diff <= 1e-5, f"version {version}: max abs diff {diff} > 1e-5")
        resp = r.get_response()
        check(resp["model_version"] == f"{version}.0.0", f"model_version: {resp}")
        check(resp.get("id") == f"v{version}", f"request id echoed: {resp}")

    x = np.random.default_rng(0).standard_normal((1, 3, 224, 224)).astype(np.float32)
    inp = http.InferInput("images", [1, 3, 224, 224], "FP32")
    inp.set_data_from_numpy(x)
    r = client.infer("efficientnet-lite0", [inp],
                     outputs=[http.InferRequestedOutput("logits")])
    logits = r.as_numpy("logits")
    check(logits.shape == (1, 1000) and np.isfinite(logits).all(), f"efficientnet logits {logits.shape}")

    try:
        infer(client, "dyn", np.zeros((2, 7), np.float32))
        check(False, "a wrong shape was accepted")
    except InferenceServerException as e:
        check("400" in str(e.status()) or "shape" in str(e).lower() or "dim" in str(e).lower(),
              f"wrong shape error: {e}")
    try:
        client.get_model_metadata("nope")
        check(False, "unknown model answered")
    except InferenceServerException as e:
        check("nope" in str(e), f"unknown model error: {e}")
    # gRPC: the same server, the same answers
    g = grpc.InferenceServerClient(url=args.grpc_url)
    check(g.is_server_live() and g.is_server_ready(), "grpc: server live and ready")
    check(g.is_model_ready("dyn") and g.is_model_ready("dyn", "2"), "grpc: model dyn ready")
    check(not g.is_model_ready("nope"), "grpc: unknown model not ready")
    gmeta = g.get_model_metadata("dyn", as_json=True)
    check(gmeta["name"] == "dyn" and gmeta["versions"] == ["1.0.0", "2.0.0"], f"grpc metadata: {gmeta}")
    check([int(d) for d in gmeta["inputs"][0]["shape"]] == [-1, 8], f"grpc input shape: {gmeta}")
    for version, stem in [("1", "dyn_batch"), ("2", "dyn_batch_v2")]:
        x = np.load(FIX / f"{stem}.b5.x.npy")
        want = np.load(FIX / f"{stem}.b5.y.npy")
        inp = grpc.InferInput("x", list(x.shape), "FP32")
        inp.set_data_from_numpy(x)
        r = g.infer("dyn", [inp], model_version=version, request_id=f"g{version}",
                    outputs=[grpc.InferRequestedOutput("y")], priority=1, timeout=5_000_000)
        got = r.as_numpy("y")
        check(float(np.abs(got - want).max()) <= 1e-5, f"grpc version {version}: outputs")
        resp = r.get_response(as_json=True)
        check(resp["model_version"] == f"{version}.0.0" and resp["id"] == f"g{version}", f"grpc response: {resp}")
        over_http = infer(client, "dyn", x, version, True).as_numpy("y")
        check(got.tobytes() == over_http.tobytes(), f"grpc and http answers differ bit for bit (version {version})")
    # the repository index, both protocols
    hidx = client.get_model_repository_index()
    check(sorted((m["name"], m["version"], m["state"]) for m in hidx)
          == [("dyn", "1.0.0", "READY"), ("dyn", "2.0.0", "READY"), ("efficientnet-lite0", "1.0.0", "READY"),
              ("efficientnet_lite0", "1.0.0", "READY"), ("efficientnet_lite0_f32", "1.0.0", "READY"),
              ("minilm", "1.0.0", "READY")],
          f"http repository index: {hidx}")
    gidx = g.get_model_repository_index(as_json=True)["models"]
    check(sorted((m["name"], m["version"]) for m in gidx) == sorted((m["name"], m["version"]) for m in hidx),
          f"grpc repository index: {gidx}")

    # Triton's streaming extension: async_stream_infer, answers through the callback
    import queue
    answers = queue.Queue()
    g.start_stream(callback=lambda result, error: answers.put((result, error)))
    x = np.load(FIX / "dyn_batch.b5.x.npy")
    want = np.load(FIX / "dyn_batch.b5.y.npy")
    for i in range(4):
        inp = grpc.InferInput("x", list(x.shape), "FP32")
        inp.set_data_from_numpy(x)
        g.async_stream_infer("dyn", [inp], model_version="1", request_id=f"s{i}")
    bad = grpc.InferInput("x", [2, 7], "FP32")
    bad.set_data_from_numpy(np.zeros((2, 7), np.float32))
    g.async_stream_infer("dyn", [bad], model_version="1", request_id="bad")
    got_ids, errors = set(), []
    for _ in range(5):
        result, error = answers.get(timeout=60)
        if error is not None:
            errors.append(str(error))
        else:
            got_ids.add(result.get_response().id)
            check(float(np.abs(result.as_numpy("y") - want).max()) <= 1e-5, "stream: outputs")
    g.stop_stream()
    check(got_ids == {f"s{i}" for i in range(4)}, f"stream answers: {got_ids}")
    check(len(errors) == 1 and "x" in errors[0], f"stream error in band: {errors}")
    try:
        inp = grpc.InferInput("x", [2, 7], "FP32")
        inp.set_data_from_numpy(np.zeros((2, 7), np.float32))
        g.infer("dyn", [inp])
        check(False, "grpc: a wrong shape was accepted")
    except InferenceServerException as e:
        check(e.status() == "StatusCode.INVALID_ARGUMENT", f"grpc wrong shape: {e.status()} {e}")
    try:
        g.get_model_metadata("nope")
        check(False, "grpc: unknown model answered")
    except InferenceServerException as e:
        check(e.status() == "StatusCode.NOT_FOUND" and "nope" in str(e), f"grpc unknown model: {e}")
    check_repository(client, g, check)
    print(f"tritonclient {getattr(http, '__version__', '')}: {checks} checks passed against {url} (HTTP) and {args.grpc_url} (gRPC)")


if __name__ == "__main__":
    main()
