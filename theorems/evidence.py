"""Saved evidence: a theorem's run output on disk, so that its claims can be re-checked without re-running.

DIR/<id>.npz holds every array; DIR/<id>.json holds the structure (dicts, lists, tuples, named tuples, numbers,
strings, None; arrays by reference into the npz) and metadata: package versions, budget, seed, wall time, date.
Arrays come back as NumPy arrays (JAX arrays are saved as NumPy), so ``check`` must not rely on JAX types.
"""

import dataclasses
import datetime
import importlib
import importlib.metadata
import json
import math
import os
import platform

import numpy as np

FORMAT = 1
PACKAGES = ("dynamics", "jax", "jaxlib", "diffrax", "equinox", "optax", "numpy", "scipy")


class EvidenceError(ValueError):
    """Evidence that cannot be saved (an unsupported type, named by its path) or loaded (missing or wrong format)."""


def _versions():
    out = {"python": platform.python_version()}
    for name in PACKAGES:
        try:
            out[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            out[name] = None
    return out


def _encode(x, path, arrays):
    if x is None or isinstance(x, (bool, str)):
        return {"value": x}
    if isinstance(x, (int, np.integer)) and not isinstance(x, bool):
        return {"value": int(x)}
    if isinstance(x, (float, np.floating)) and np.ndim(x) == 0 and not isinstance(x, np.ndarray):
        value = float(x)
        return {"value": value} if math.isfinite(value) else {"float": repr(value)}
    if isinstance(x, np.bool_):
        return {"value": bool(x)}
    if isinstance(x, dict):
        if not all(isinstance(k, str) for k in x):
            raise EvidenceError(f"evidence{path}: dict keys must be strings, got {[type(k).__name__ for k in x]}")
        return {"dict": {k: _encode(v, f"{path}[{k!r}]", arrays) for k, v in x.items()}}
    if isinstance(x, tuple) and hasattr(x, "_fields"):
        return {"namedtuple": f"{type(x).__module__}:{type(x).__qualname__}",
                "items": {k: _encode(v, f"{path}.{k}", arrays) for k, v in zip(x._fields, x)}}
    if dataclasses.is_dataclass(x) and not isinstance(x, type):
        return {"dataclass": f"{type(x).__module__}:{type(x).__qualname__}",
                "items": {f.name: _encode(getattr(x, f.name), f"{path}.{f.name}", arrays)
                          for f in dataclasses.fields(x)}}
    if isinstance(x, (list, tuple)):
        items = [_encode(v, f"{path}[{i}]", arrays) for i, v in enumerate(x)]
        return {"tuple" if isinstance(x, tuple) else "list": items}
    if hasattr(x, "__array__") and hasattr(x, "shape") and hasattr(x, "dtype"):
        array = np.asarray(x)
        if array.dtype == object:
            raise EvidenceError(f"evidence{path}: object arrays cannot be saved")
        key = f"a{len(arrays)}"
        arrays[key] = array
        return {"array": key}
    raise EvidenceError(f"evidence{path}: cannot save a {type(x).__module__}.{type(x).__qualname__}; evidence holds "
                        "arrays, numbers, strings, None, and dicts/lists/tuples/named tuples/dataclasses of them")


def _class(spec):
    module, qualname = spec.split(":")
    obj = importlib.import_module(module)
    for part in qualname.split("."):
        obj = getattr(obj, part)
    return obj


def _decode(node, arrays):
    if "value" in node:
        return node["value"]
    if "float" in node:
        return float(node["float"])
    if "array" in node:
        return arrays[node["array"]]
    if "dict" in node:
        return {k: _decode(v, arrays) for k, v in node["dict"].items()}
    if "list" in node:
        return [_decode(v, arrays) for v in node["list"]]
    if "tuple" in node:
        return tuple(_decode(v, arrays) for v in node["tuple"])
    if "namedtuple" in node:
        return _class(node["namedtuple"])(**{k: _decode(v, arrays) for k, v in node["items"].items()})
    if "dataclass" in node:
        return _class(node["dataclass"])(**{k: _decode(v, arrays) for k, v in node["items"].items()})
    raise EvidenceError(f"unknown evidence node {sorted(node)}")


def save_evidence(directory, theorem, evidence, budget, seconds):
    """Write DIR/<id>.npz and DIR/<id>.json; returns the JSON path."""
    os.makedirs(directory, exist_ok=True)
    arrays = {}
    tree = _encode(evidence, "", arrays)
    np.savez_compressed(os.path.join(directory, f"{theorem.id}.npz"), **arrays)
    meta = {"format": FORMAT, "id": theorem.id, "reference": theorem.reference, "budget": budget,
            "seed": getattr(theorem, "seed", None), "wall_seconds": seconds,
            "saved": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            "versions": _versions()}
    path = os.path.join(directory, f"{theorem.id}.json")
    with open(path, "w") as f:
        json.dump({"metadata": meta, "evidence": tree}, f, indent=1)
    return path


def saved_ids(directory):
    """Theorem ids with saved evidence in ``directory`` (sorted)."""
    if not os.path.isdir(directory):
        raise EvidenceError(f"no evidence directory {directory!r}")
    return sorted(name[:-5] for name in os.listdir(directory)
                  if name.endswith(".json") and os.path.exists(os.path.join(directory, name[:-5] + ".npz")))


def load_evidence(directory, theorem_id):
    """(evidence, metadata) saved by `save_evidence`."""
    path = os.path.join(directory, f"{theorem_id}.json")
    if not os.path.exists(path):
        raise EvidenceError(f"no saved evidence for {theorem_id!r} in {directory!r} (run: python -m theorems verify "
                            f"{theorem_id} --evidence {directory})")
    with open(path) as f:
        saved = json.load(f)
    if saved.get("metadata", {}).get("format") != FORMAT:
        raise EvidenceError(f"{path}: evidence format {saved.get('metadata', {}).get('format')} is not {FORMAT}")
    with np.load(os.path.join(directory, f"{theorem_id}.npz"), allow_pickle=False) as npz:
        arrays = {k: npz[k] for k in npz.files}
    return _decode(saved["evidence"], arrays), saved["metadata"]
