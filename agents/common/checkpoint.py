"""Crash-safe agent checkpoints: JSON for metadata, safetensors for tensors, never pickle.

The atomic file primitives live in :mod:`datagen_gym.atomic_io` (re-exported here); this module
adds the tensor and space formats of agent checkpoints.

Pickle is avoided because loading a pickle executes code; checkpoints get shared between runs
and machines. Readers raise :class:`CheckpointError` naming the file and what is wrong.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save

from datagen_gym.atomic_io import (  # noqa: F401  (re-exported for the agents)
    CheckpointError,
    PathLike,
    atomic_write_bytes,
    atomic_write_json,
    atomic_write_jsonl,
    atomic_write_with,
    create_temp_dir,
    create_temp_file,
    ensure_writable_dir,
    fsync_dir,
    read_json,
    read_json_object,
    to_jsonable,
)


def atomic_save_safetensors(
    tensors: Mapping[str, torch.Tensor], path: PathLike, metadata: Mapping[str, str] | None = None
) -> Path:
    """Atomically write a flat ``name -> tensor`` mapping as a safetensors file."""
    # safetensors refuses non-contiguous or shared-storage tensors; clone to be safe.
    flat = {k: v.detach().cpu().contiguous().clone() for k, v in tensors.items()}
    data = save(flat, metadata=dict(metadata) if metadata else None)
    return atomic_write_bytes(path, data)


def load_safetensors(path: PathLike) -> dict[str, torch.Tensor]:
    """Load a safetensors file onto the CPU (the format holds raw tensors only: no code).

    A file that is not safetensors raises :class:`CheckpointError` naming it.
    """
    if not Path(path).is_file():
        raise FileNotFoundError(f"{path} not found")
    try:
        return load_file(os.fspath(path), device="cpu")
    except Exception as exc:  # SafetensorError has no stable import path across versions
        detail = " ".join(str(exc).split())
        raise CheckpointError(f"{path} is not a valid safetensors file ({detail})") from None


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

    return json.dumps(to_jsonable(space_to_dict(a)), sort_keys=True) == json.dumps(
        to_jsonable(space_to_dict(b)), sort_keys=True
    )
