"""Reads the load test's wrk outputs and peak RSS figures and prints the comparison table.
Usage: python serve_report.py DIR (with DIR/{ours,anchor}.{wrk,rss})"""
import re
import sys
from pathlib import Path

d = Path(sys.argv[1])


def to_ms(v):
    n, unit = float(re.match(r"[\d.]+", v).group()), re.sub(r"[\d.]+", "", v)
    return n * {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 6e4}[unit]


def parse(name):
    text = (d / f"{name}.wrk").read_text()
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", text).group(1))
    pct = {int(p): to_ms(v) for p, v in re.findall(r"^\s+(\d+)%\s+(\S+)", text, re.M)}
    non2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", text)
    errors = re.search(r"Socket errors:.*", text)
    total = int(re.search(r"(\d+) requests in", text).group(1))
    rss = int((d / f"{name}.rss").read_text().split()[0]) / 1024
    return dict(rps=rps, p50=pct[50], p99=pct[99], non2xx=int(non2xx.group(1)) if non2xx else 0,
                errors=errors.group(0) if errors else "", total=total, rss=rss)


ours, anchor = parse("ours"), parse("anchor")
print("| measure | inferkit serve | FastAPI + onnxruntime | ratio | target |")
print("|---|---|---|---|---|")
print(f"| throughput (req/s) | {ours['rps']:.1f} | {anchor['rps']:.1f} | {ours['rps'] / anchor['rps']:.2f}x | >= 2x |")
print(f"| p50 latency (ms) | {ours['p50']:.1f} | {anchor['p50']:.1f} | {ours['p50'] / anchor['p50']:.2f}x | |")
print(f"| p99 latency (ms) | {ours['p99']:.1f} | {anchor['p99']:.1f} | {ours['p99'] / anchor['p99']:.2f}x | <= 0.4x |")
print(f"| peak RSS (MB) | {ours['rss']:.0f} | {anchor['rss']:.0f} | {ours['rss'] / anchor['rss']:.2f}x | <= 0.6x |")
print(f"| requests / non-2xx | {ours['total']} / {ours['non2xx']} | {anchor['total']} / {anchor['non2xx']} | | |")
for n, r in (("inferkit", ours), ("anchor", anchor)):
    if r["errors"]:
        print(f"{n}: {r['errors']}")
