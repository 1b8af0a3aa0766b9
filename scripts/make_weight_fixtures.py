"""Generates the committed weight fixtures and their expected values, with PyTorch itself.

Run once (tests and CI never need torch):

    scripts/pyvenv.sh fixtures torch safetensors numpy -- scripts/make_weight_fixtures.py

Writes tests/fixtures/weights/:
  mixed.pt / mixed_legacy.pt      one object saved in torch's zip and legacy formats: shared
                                  storages, views with offsets, transposed and stepped views,
                                  an expanded (stride 0) view, 0-d and empty tensors, every
                                  dtype torch writes for both, nn.Parameter, nested dicts
  v3.pt                           dtypes saved through _rebuild_tensor_v3 (FP8, uint16/32/64)
  mixed.safetensors               the same tensors contiguous, through the safetensors library
  sharded/                        the same split into two shards plus an index.json
  evil_zip.pt / evil_legacy.pt    pickles that name os.system (must be refused)
  expected.json                   per file, per tensor: dtype, shape, strides, sum, values
  efficientnet-lite0.expected.json   sums of the bundled checkpoint, from torch.load
  minilm.expected.json            sums of the fetched MiniLM safetensors, from safetensors+numpy
"""

import json
import os
import pickle
import sys
import zipfile
from collections import OrderedDict
from pathlib import Path

import numpy as np
import torch
from safetensors.numpy import load_file as np_load_file
from safetensors.torch import save_file

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "tests" / "fixtures" / "weights"
DTYPE_NAMES = {
    torch.float32: "F32", torch.float64: "F64", torch.float16: "F16", torch.bfloat16: "BF16",
    torch.int64: "I64", torch.int32: "I32", torch.int16: "I16", torch.int8: "I8",
    torch.uint8: "U8", torch.bool: "BOOL", torch.float8_e4m3fn: "F8_E4M3",
    torch.float8_e5m2: "F8_E5M2", torch.uint16: "U16", torch.uint32: "U32", torch.uint64: "U64",
}


def flatten(obj, prefix=""):
    if isinstance(obj, torch.Tensor):
        yield prefix, obj
    elif isinstance(obj, dict):
        for k, v in obj.items():
            yield from flatten(v, f"{prefix}.{k}" if prefix else str(k))
    elif isinstance(obj, (list, tuple)):
        for i, v in enumerate(obj):
            yield from flatten(v, f"{prefix}.{i}" if prefix else str(i))


def describe(obj):
    out = []
    for name, t in flatten(obj):
        t = t.detach()
        d = t.double() if t.dtype not in (torch.uint16, torch.uint32, torch.uint64) else t.to(torch.int64).double()
        out.append({
            "name": name,
            "dtype": DTYPE_NAMES[t.dtype],
            "shape": list(t.shape),
            "strides": list(t.stride()),
            "sum": d.sum().item(),
            "values": d.flatten().tolist(),
        })
    return out


def common_object():
    g = torch.Generator().manual_seed(7)
    base = torch.arange(24, dtype=torch.float32)
    w = torch.randn(5, 3, generator=g)
    return {
        "state_dict": OrderedDict([
            ("shared.base", base),
            ("shared.matrix", base.view(4, 6)),              # same storage, offset 0
            ("shared.row_slice", base[6:12]),                 # storage offset 6
            ("shared.transposed", base.view(4, 6).t()),       # strides (1, 6)
            ("shared.stepped", base.view(2, 3, 4)[:, 1, ::2]),  # offset 4, strides (12, 2)
            ("linear.weight", torch.nn.Parameter(w)),
            ("linear.weight_t", w.t()),
            ("expanded", torch.tensor([1.5, -2.0, 3.25]).expand(4, 3)),  # stride 0
            ("scalar", torch.tensor(3.5)),
            ("empty", torch.zeros(0, 3)),
        ]),
        "dtypes": {
            "f16": torch.tensor([[0.5, -1.25, 65504.0], [1e-4, 0.0, -0.0]], dtype=torch.float16),
            "bf16": torch.tensor([1.0, -3.140625, 1e30, 7.5], dtype=torch.bfloat16),
            "f64": torch.tensor([1.0 / 3.0, -2.5e-300, 1e300], dtype=torch.float64),
            "i64": torch.tensor([-(2**40), 7, 2**52], dtype=torch.int64),
            "i32": torch.tensor([-(2**31), 2**31 - 1], dtype=torch.int32),
            "i16": torch.tensor([-32768, 12345], dtype=torch.int16),
            "i8": torch.tensor([-128, 127, 0], dtype=torch.int8),
            "u8": torch.tensor([0, 255, 17], dtype=torch.uint8),
            "bool": torch.tensor([True, False, True, True]),
            "bf16_t": torch.arange(12, dtype=torch.bfloat16).view(3, 4).t(),
            "i64_scalar": torch.tensor(-9, dtype=torch.int64),
        },
        "meta": {"epoch": 3, "lr": 0.01, "name": "fixture", "history": [1, 2, 3]},
        "list_of_tensors": [torch.ones(2), torch.full((1, 2), 2.0)],
    }


def v3_object():
    return {
        "f8_e4m3": torch.tensor([0.5, -1.5, 448.0, 0.0], dtype=torch.float32).to(torch.float8_e4m3fn),
        "f8_e5m2": torch.tensor([0.25, -3.0, 57344.0], dtype=torch.float32).to(torch.float8_e5m2),
        "u16": torch.tensor([0, 65535, 3], dtype=torch.uint16),
        "u32": torch.tensor([0, 2**32 - 1], dtype=torch.uint32),
        "u64": torch.tensor([5, 2**40], dtype=torch.uint64),
    }


# A pickle that, if executed, would call os.system: written by hand so that it names the
# global `os.system` literally (pickle itself would write `posix.system`).
EVIL = b"\x80\x02cos\nsystem\nq\x00X\x19\x00\x00\x00touch /tmp/inferkit-pwnedq\x01\x85q\x02Rq\x03."


def write_evil():
    with zipfile.ZipFile(OUT / "evil_zip.pt", "w", zipfile.ZIP_STORED) as z:
        z.writestr("evil_zip/data.pkl", EVIL)
        z.writestr("evil_zip/byteorder", "little")
        z.writestr("evil_zip/version", "3\n")
    magic = 0x1950A86A20F9469CFC6C
    sys_info = dict(protocol_version=1001, little_endian=True, type_sizes=dict(short=2, int=4, long=4))
    with open(OUT / "evil_legacy.pt", "wb") as f:
        for obj in (magic, 1001, sys_info):
            f.write(pickle.dumps(obj, protocol=2))
        f.write(EVIL)
        f.write(pickle.dumps([], protocol=2))


def main():
    OUT.mkdir(parents=True, exist_ok=True)
    expected = {}

    common = common_object()
    torch.save(common, OUT / "mixed.pt")
    torch.save(common, OUT / "mixed_legacy.pt", _use_new_zipfile_serialization=False)
    for f in ("mixed.pt", "mixed_legacy.pt"):
        loaded = torch.load(OUT / f, weights_only=True)
        expected[f] = describe(loaded)

    v3 = v3_object()
    torch.save(v3, OUT / "v3.pt")
    expected["v3.pt"] = describe(torch.load(OUT / "v3.pt", weights_only=True))

    flat = {n: t.detach().contiguous().clone() for n, t in flatten(common)}
    save_file(flat, OUT / "mixed.safetensors", metadata={"format": "pt", "source": "make_weight_fixtures.py"})
    st = describe(flat)
    for e in st:
        e["strides"] = [int(np.prod(e["shape"][i + 1:])) for i in range(len(e["shape"]))]
    expected["mixed.safetensors"] = st

    shard_dir = OUT / "sharded"
    shard_dir.mkdir(exist_ok=True)
    names = sorted(flat)
    halves = [names[: len(names) // 2], names[len(names) // 2:]]
    weight_map = {}
    for i, part in enumerate(halves):
        fname = f"model-{i + 1:05d}-of-00002.safetensors"
        save_file({n: flat[n] for n in part}, shard_dir / fname, metadata={"format": "pt"})
        weight_map.update({n: fname for n in part})
    total = sum(t.numel() * t.element_size() for t in flat.values())
    (shard_dir / "model.safetensors.index.json").write_text(
        json.dumps({"metadata": {"total_size": total}, "weight_map": weight_map}, indent=2) + "\n")
    expected["sharded/model.safetensors.index.json"] = st

    write_evil()
    (OUT / "expected.json").write_text(json.dumps(expected, indent=1) + "\n")

    eff = torch.load(ROOT / "assets" / "models" / "efficientnet-lite0.pth", weights_only=True)
    (OUT / "efficientnet-lite0.expected.json").write_text(json.dumps([
        {"name": n, "dtype": DTYPE_NAMES[t.dtype], "shape": list(t.shape), "strides": list(t.stride()),
         "sum": t.double().sum().item()}
        for n, t in eff.items()
    ], indent=0) + "\n")

    minilm = Path(os.environ.get("INFERKIT_MODELS", ROOT / ".cache" / "models")) / "all-MiniLM-L6-v2" / "model.safetensors"
    if minilm.exists():
        arrays = np_load_file(str(minilm))
        (OUT / "minilm.expected.json").write_text(json.dumps([
            {"name": n, "dtype": str(a.dtype), "shape": list(a.shape), "sum": float(a.astype(np.float64).sum())}
            for n, a in sorted(arrays.items())
        ], indent=0) + "\n")
    else:
        print(f"note: {minilm} missing (run scripts/fetch-models.sh); minilm.expected.json not refreshed", file=sys.stderr)
    print(f"fixtures written to {OUT}")


if __name__ == "__main__":
    main()
