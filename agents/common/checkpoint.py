"""Crash-safe checkpoint and output files: JSON for metadata, safetensors for tensors, never
pickle. This is the project's one atomic-I/O module (the RL tuner and the CLI write through it).

Every write goes to a temporary file in the destination's own directory, is fsync'ed and then
``os.replace``'d over the destination. ``os.replace`` is atomic on POSIX and Windows when both
paths are on the same filesystem (hence the same directory), so a reader - or a run resumed
after a crash or a pre-emption - sees either the old file or the new one, never a torn one.
Temporary files and directories are created with mode 0666 / 0777 minus the umask, like any
ordinary file (``tempfile.mkstemp`` / ``mkdtemp`` would make them private: 0600 / 0700, and the
rename would keep that, so teammates could not read the outputs).
Pickle is avoided because loading a pickle executes code; checkpoints get shared between runs
and machines. Readers raise :class:`CheckpointError` naming the file and what is wrong.
"""

from __future__ import annotations

import json
import math
import os
import secrets
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save

PathLike = str | os.PathLike


class CheckpointError(ValueError):
    """A checkpoint (or output) file is unreadable, corrupt or incompatible; the message names
    the file and what is wrong, on one line."""


def _temp_name(directory: Path, name: str, suffix: str = "") -> Path:
    """A fresh hidden sibling name for ``name`` in ``directory`` (not created)."""
    return directory / f".{name}.{secrets.token_hex(6)}.tmp{suffix}"


def create_temp_file(directory: Path, name: str, suffix: str = "") -> Path:
    """Create an empty, unique temporary file next to ``directory/name``.

    ``O_EXCL`` makes the creation race-free like ``mkstemp``; mode 0666 lets the umask decide
    the final permissions (the file keeps them through the rename).
    """
    for _ in range(100):
        tmp = _temp_name(directory, name, suffix)
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
        except FileExistsError:
            continue
        os.close(fd)
        return tmp
    raise FileExistsError(f"cannot create a temporary file in {directory}")  # pragma: no cover


def create_temp_dir(directory: PathLike, name: str) -> Path:
    """Create a unique temporary directory next to ``directory/name`` (mode 0777 minus umask)."""
    directory = Path(directory)
    for _ in range(100):
        tmp = _temp_name(directory, name)
        try:
            os.mkdir(tmp, 0o777)
        except FileExistsError:
            continue
        return tmp
    raise FileExistsError(f"cannot create a temporary directory in {directory}")  # pragma: no cover


def ensure_writable_dir(path: PathLike) -> Path:
    """Create the directory ``path`` if needed and prove it writable with a probe file.

    Raises ``OSError`` subclasses (``NotADirectoryError`` when ``path`` is a file). Creating a
    file is the only reliable test: ``os.access`` says yes to root on a read-only mount, and
    cannot see that e.g. ``/proc`` refuses new entries.
    """
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise NotADirectoryError(20, "exists and is not a directory", str(path))
    path.mkdir(parents=True, exist_ok=True)
    create_temp_file(path, "write-test").unlink()
    return path


def fsync_dir(directory: PathLike) -> None:
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
    tmp = os.fspath(create_temp_file(path.parent, path.name, suffix))
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
    fsync_dir(path.parent)
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


def atomic_write_jsonl(path: PathLike, rows: Iterable[Mapping[str, Any]]) -> Path:
    """Atomically write ``rows`` as JSON Lines (one strict JSON object per line)."""
    lines = [json.dumps(to_jsonable(row), ensure_ascii=False, allow_nan=False) + "\n"
             for row in rows]
    return atomic_write_bytes(path, "".join(lines).encode("utf-8"))


def read_json(path: PathLike) -> Any:
    """Read a JSON file written by :func:`atomic_write_json`.

    A missing file raises ``FileNotFoundError``; a file that is not UTF-8 JSON (truncated,
    binary, a planted pickle) raises :class:`CheckpointError` naming it. ``json`` never runs
    code, whatever the bytes.
    """
    path = Path(path)
    try:
        with open(path, encoding="utf-8") as fh:
            return json.load(fh)
    except FileNotFoundError:
        raise FileNotFoundError(f"{path} not found") from None
    except IsADirectoryError:
        raise CheckpointError(f"{path} is a directory, expected a JSON file") from None
    except UnicodeDecodeError:
        raise CheckpointError(f"{path} is not a JSON text file (not UTF-8)") from None
    except json.JSONDecodeError as exc:
        raise CheckpointError(f"{path} is not valid JSON ({exc.msg} at line {exc.lineno} "
                              f"column {exc.colno}; truncated or corrupt?)") from None


def read_json_object(path: PathLike, required: Mapping[str, type | tuple[type, ...]] = {}
                     ) -> dict[str, Any]:
    """:func:`read_json` of a file that must hold an object with ``required`` keys and types."""
    data = read_json(path)
    if not isinstance(data, dict):
        raise CheckpointError(f"{path} holds a JSON {_json_kind(data)}, expected an object")
    for key, types in required.items():
        if key not in data:
            raise CheckpointError(f"{path} lacks the key {key!r}; it is not a complete "
                                  f"checkpoint of this version")
        if not isinstance(data[key], types) or (isinstance(data[key], bool)
                                                 and bool not in _as_tuple(types)):
            raise CheckpointError(f"{path}: {key!r} is a JSON {_json_kind(data[key])}, "
                                  f"expected {_kinds(types)}")
    return data


def _as_tuple(types: type | tuple[type, ...]) -> tuple[type, ...]:
    return types if isinstance(types, tuple) else (types,)


_KIND = {dict: "object", list: "array", str: "string", int: "integer", float: "number",
         bool: "boolean", type(None): "null"}


def _json_kind(value: Any) -> str:
    return _KIND.get(type(value), type(value).__name__)


def _kinds(types: type | tuple[type, ...]) -> str:
    return " or ".join(dict.fromkeys(_KIND.get(t, t.__name__) for t in _as_tuple(types)))


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
    import json

    return json.dumps(to_jsonable(space_to_dict(a)), sort_keys=True) == json.dumps(
        to_jsonable(space_to_dict(b)), sort_keys=True
    )
