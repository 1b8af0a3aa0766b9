"""Reads scripts/load-serve.sh's results (DIR/<server>-<workload>-<protocol>-<clients>.json
from the serve_load client, DIR/<server>-<workload>.rss peak RSS in kB) and prints the
comparison tables: inferkit-serve against the best Python service for each workload and
client count (highest throughput, lowest p99, lowest peak RSS), every run's figures, and
the overload runs.
Usage: python3 serve_report.py DIR"""
import json
import sys
from pathlib import Path

d = Path(sys.argv[1])
PY = {"image": ["fastapi-image-http", "grpcio-image-grpc"], "text": ["fastapi-text-http"]}
NAMES = {
    "fastapi-image-http": "FastAPI + Pillow + onnxruntime",
    "grpcio-image-grpc": "grpcio + Pillow + onnxruntime",
    "fastapi-text-http": "FastAPI + sentence-transformers",
}


def run(name):
    f = d / f"{name}.json"
    return json.loads(f.read_text()) if f.exists() else None


def rss(server):
    f = d / f"{server}.rss"
    return int(f.read_text().split()[0]) / 1024 if f.exists() else None


print("| measure | workload | clients | inferkit-serve | best Python | ratio | target |")
print("|---|---|---|---|---|---|---|")
for workload in ("image", "text"):
    for clients in (16, 64):
        py = {p: run(f"{p}-{clients}") for p in PY[workload]}
        py = {p: r for p, r in py.items() if r}
        if not py:
            continue
        for proto in ("http", "grpc"):
            ours = run(f"ours-{workload}-{proto}-{clients}")
            if not ours:
                continue
            best = max(py, key=lambda p: py[p]["throughput"])
            print(f"| throughput, {proto} (req/s) | {workload} | {clients} | {ours['throughput']:.1f} | "
                  f"{py[best]['throughput']:.1f} ({NAMES[best]}) | "
                  f"{ours['throughput'] / py[best]['throughput']:.2f}x | >= 3x |")
            best = min(py, key=lambda p: py[p]["p99_ms"])
            print(f"| p99 latency, {proto} (ms) | {workload} | {clients} | {ours['p99_ms']:.1f} | "
                  f"{py[best]['p99_ms']:.1f} ({NAMES[best]}) | "
                  f"{ours['p99_ms'] / py[best]['p99_ms']:.2f}x | <= 0.3x |")
    ours_rss = rss(f"ours-{workload}")
    py_rss = {p: rss(p.rsplit("-", 1)[0]) for p in PY[workload]}
    py_rss = {p: v for p, v in py_rss.items() if v}
    if ours_rss and py_rss:
        best = min(py_rss, key=py_rss.get)
        print(f"| peak RSS (MB) | {workload} | all | {ours_rss:.0f} | {py_rss[best]:.0f} ({NAMES[best]}) | "
              f"{ours_rss / py_rss[best]:.2f}x | <= 0.5x |")

print()
print("Every run (closed loop; latency of successful answers):")
print("| server | workload | protocol | clients | req/s | p50 ms | p90 ms | p99 ms | sent | ok | refused | failed | unanswered |")
print("|---|---|---|---|---|---|---|---|---|---|---|---|---|")
for f in sorted(d.glob("*.json")):
    r = json.loads(f.read_text())
    if r.get("rate"):
        continue
    server, workload, proto, clients = f.stem.rsplit("-", 3)
    print(f"| {NAMES.get(f'{server}-{workload}-{proto}', 'inferkit-serve')} | {workload} | {proto} | {clients} | "
          f"{r['throughput']:.1f} | {r['p50_ms']:.1f} | {r['p90_ms']:.1f} | {r['p99_ms']:.1f} | "
          f"{r['sent']} | {r['ok']} | {r['refused']} | {sum(r['failed'].values())} | "
          f"{sum(r['unanswered'].values())} |")

series = d / "ours-image-overload.rss-series"
print()
print("Overload: inferkit-serve, images, requests sent at 4x its 64-client throughput (open loop);")
print("every request must be answered (200, or 503 / RESOURCE_EXHAUSTED when the queue is full).")
print("| protocol | rate (req/s) | sent | ok | refused | failed | unanswered | ok req/s | p99 ms (ok) |")
print("|---|---|---|---|---|---|---|---|---|")
for proto in ("http", "grpc"):
    r = run(f"ours-image-{proto}-overload")
    if r:
        print(f"| {proto} | {r['rate']:.0f} | {r['sent']} | {r['ok']} | {r['refused']} | "
              f"{sum(r['failed'].values())} | {sum(r['unanswered'].values())} | "
              f"{r['throughput']:.1f} | {r['p99_ms']:.1f} |")
if series.exists():
    kb = [int(x) for x in series.read_text().split()]
    if kb:
        half = kb[len(kb) // 2:]
        print(f"RSS during overload: {min(kb) / 1024:.0f}-{max(kb) / 1024:.0f} MB over {len(kb)} samples; "
              f"second half {min(half) / 1024:.0f}-{max(half) / 1024:.0f} MB.")
