"""Crash-safe checkpoint files: JSON for metadata, safetensors for tensors, never pickle.

Every write goes to a temporary file in the destination's own directory, is fsync'ed and then
``os.replace``'d over the destination. ``os.replace`` is atomic on POSIX and Windows when both
paths are on the same filesystem (hence the same directory), so a reader - or a run resumed
after a crash or a pre-emption - sees either the old file or the new one, never a torn one.
Pickle is avoided because loading a pickle executes code; checkpoints get shared between runs
and machines.
"""

from __future__ import annotations

import json
import math
import os
import tempfile
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save

PathLike = str | os.PathLike


def _fsync_dir(directory: Path) -> None:
    """Persist the rename itself; without it a power cut can lose the new directory entry."""
    if os.name != "posix":  # directories cannot be opened for fsync on Windows
        return
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def atomic_write_with(path: PathLike, write: Callable[[str], None], suffix: str = "") -> Path:
    """Call ``write(tmp_path)`` to produce the file, then atomically move it to ``path``.

    This is the one primitive the other helpers (and the SB3 zip saver) build on. ``suffix`` lets
    libraries that insist on an extension (SB3 appends ``.zip``) write the temp file as-is.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=f".tmp{suffix}", dir=path.parent)
    os.close(fd)
    try:
        write(tmp)
        # Reopen to fsync: ``write`` may have used its own file handle.
        with open(tmp, "rb+") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    _fsync_dir(path.parent)
    return path


def atomic_write_bytes(path: PathLike, data: bytes) -> Path:
    """Atomically replace ``path`` with ``data``."""

    def _write(tmp: str) -> None:
        with open(tmp, "wb") as fh:
            fh.write(data)

    return atomic_write_with(path, _write)


def to_jsonable(obj: Any) -> Any:
    """Convert numpy scalars/arrays and non-finite floats so ``json`` accepts them strictly.

    NaN and +-inf become ``None``: the JSON standard has no spelling for them and other readers
    (jq, JavaScript) reject Python's ``NaN`` extension.
    """
    if isinstance(obj, Mapping):
        return {str(k): to_jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [to_jsonable(v) for v in obj]
    if hasattr(obj, "tolist") and not isinstance(obj, (str, bytes)):  # numpy array / scalar
        return to_jsonable(obj.tolist())
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, (str, int, float, bool)) or obj is None:
        return obj
    if isinstance(obj, os.PathLike):
        return os.fspath(obj)
    raise TypeError(f"cannot store {type(obj).__name__} in a JSON checkpoint: {obj!r}")


def atomic_write_json(path: PathLike, obj: Any) -> Path:
    """Atomically write ``obj`` as indented, strict JSON."""
    text = json.dumps(to_jsonable(obj), indent=2, sort_keys=True, allow_nan=False)
    return atomic_write_bytes(path, (text + "\n").encode("utf-8"))


def read_json(path: PathLike) -> Any:
    """Read a JSON file written by :func:`atomic_write_json`."""
    with open(path, encoding="utf-8") as fh:
        return json.load(fh)


def atomic_save_safetensors(
    tensors: Mapping[str, torch.Tensor], path: PathLike, metadata: Mapping[str, str] | None = None
) -> Path:
    """Atomically write a flat ``name -> tensor`` mapping as a safetensors file."""
    # safetensors refuses non-contiguous or shared-storage tensors; clone to be safe.
    flat = {k: v.detach().cpu().contiguous().clone() for k, v in tensors.items()}
    data = save(flat, metadata=dict(metadata) if metadata else None)
    return atomic_write_bytes(path, data)


def load_safetensors(path: PathLike) -> dict[str, torch.Tensor]:
    """Load a safetensors file onto the CPU."""
    return load_file(os.fspath(path), device="cpu")


def flatten_state(prefix: str, state: Mapping[str, Any]) -> dict[str, torch.Tensor]:
    """Flatten a ``state_dict`` (module or optimizer) into safetensors-storable tensors.

    Optimizer state dicts nest tensors and Python numbers (``step`` may be an int or a tensor);
    numbers are wrapped in 0-d tensors so that everything lives in the one safetensors file and
    nothing needs pickle. Non-tensor, non-number leaves (param group hyper-parameters) are not
    stored here: they belong in the JSON side file.
    """
    out: dict[str, torch.Tensor] = {}
    for key, value in state.items():
        name = f"{prefix}.{key}" if prefix else str(key)
        if isinstance(value, torch.Tensor):
            out[name] = value
        elif isinstance(value, Mapping):
            out.update(flatten_state(name, value))
        elif isinstance(value, bool):
            continue
        elif isinstance(value, (int, float)):
            out[name] = torch.tensor(
                value, dtype=torch.float64 if isinstance(value, float) else torch.int64
            )
    return out


# ------------------------------------------------------------------ spaces <-> JSON
def space_to_dict(space: Any) -> dict[str, Any]:
    """Describe a Box / Discrete / MultiDiscrete / MultiBinary space in JSON-able form."""
    from gymnasium import spaces

    if isinstance(space, spaces.Box):
        # +-inf bounds are written as null (strict JSON); ``space_from_dict`` restores them.
        return {
            "type": "Box",
            "low": space.low,
            "high": space.high,
            "shape": list(space.shape),
            "dtype": str(space.dtype),
        }
    if isinstance(space, spaces.Discrete):
        return {"type": "Discrete", "n": int(space.n), "start": int(space.start)}
    if isinstance(space, spaces.MultiDiscrete):
        return {
            "type": "MultiDiscrete",
            "nvec": space.nvec,
            "start": space.start,
            "dtype": str(space.dtype),
        }
    if isinstance(space, spaces.MultiBinary):
        return {"type": "MultiBinary", "n": space.n}
    raise TypeError(f"cannot describe space {space} in a checkpoint")


def space_from_dict(d: Mapping[str, Any]) -> Any:
    """Inverse of :func:`space_to_dict`."""
    import numpy as np
    from gymnasium import spaces

    kind = d["type"]
    if kind == "Box":

        def bound(values: Any, inf: float) -> np.ndarray:
            arr = np.asarray(values, dtype=object)
            return np.where(arr == None, inf, arr).astype(np.float64)  # noqa: E711 - null means inf

        dtype = np.dtype(d["dtype"])
        # The stored floats came from ``dtype`` values, so casting back is exact.
        low = bound(d["low"], -np.inf).astype(dtype).reshape(d["shape"])
        high = bound(d["high"], np.inf).astype(dtype).reshape(d["shape"])
        return spaces.Box(low=low, high=high, shape=tuple(d["shape"]), dtype=dtype)
    if kind == "Discrete":
        return spaces.Discrete(d["n"], start=d.get("start", 0))
    if kind == "MultiDiscrete":
        return spaces.MultiDiscrete(
            np.asarray(d["nvec"]),
            dtype=np.dtype(d.get("dtype", "int64")),
            start=np.asarray(d["start"]) if d.get("start") is not None else None,
        )
    if kind == "MultiBinary":
        return spaces.MultiBinary(d["n"])
    raise ValueError(f"unknown space type {kind!r} in checkpoint")


def spaces_match(a: Any, b: Any) -> bool:
    """Compare two spaces by their JSON description (robust to dtype-equal bound arrays)."""
    import json

    return json.dumps(to_jsonable(space_to_dict(a)), sort_keys=True) == json.dumps(
        to_jsonable(space_to_dict(b)), sort_keys=True
    )
