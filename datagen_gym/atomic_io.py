"""Crash-safe output files: every write is atomic, files honour the umask, readers name the file.

Every write goes to a temporary file in the destination's own directory, is fsync'ed and then
``os.replace``'d over the destination. ``os.replace`` is atomic on POSIX and Windows when both
paths are on the same filesystem (hence the same directory), so a reader - or a run resumed
after a crash or a pre-emption - sees either the old file or the new one, never a torn one.
Temporary files and directories are created with mode 0666 / 0777 minus the umask, like any
ordinary file (``tempfile.mkstemp`` / ``mkdtemp`` would make them private: 0600 / 0700, and the
rename would keep that, so teammates could not read the outputs). This is the project's one
atomic-I/O module: the library, the agents' checkpoints (:mod:`agents.common.checkpoint`), the
RL tuner and the CLI all write through it. Readers raise :class:`CheckpointError` naming the
file and what is wrong.
"""

from __future__ import annotations

import json
import math
import os
import re
import secrets
import shutil
import stat
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

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


def current_umask() -> int:
    """The process umask (read by setting it and setting it back)."""
    mask = os.umask(0)
    os.umask(mask)
    return mask


def honour_umask(directory: Path) -> None:
    """Set every file under ``directory`` to mode 0666 minus the umask: some writers make
    theirs private (transformers' ``save_pretrained`` writes ``model.safetensors`` as 0600),
    and a model directory is ordinary data."""
    mode = 0o666 & ~current_umask()
    for f in Path(directory).rglob("*"):
        if f.is_file():
            os.chmod(f, mode)


def atomic_write_dir(path: PathLike, write: Callable[[Path], None]) -> Path:
    """Call ``write(tmp_dir)`` to fill a directory, then move it to ``path`` in one rename.

    Files get mode 0666 minus the umask before the rename (:func:`honour_umask`). An existing
    ``path`` is replaced only once the new one is complete; a failed ``write`` leaves it as it
    was.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = create_temp_dir(path.parent, path.name)
    old = None
    try:
        write(tmp)
        honour_umask(tmp)
        if path.exists():  # move the old one aside, so ``path`` is never half-written
            old = create_temp_dir(path.parent, path.name + ".old")
            os.replace(path, old / path.name)
        os.replace(tmp, path)
    except BaseException:
        if old is not None and not path.exists():
            os.replace(old / path.name, path)
        raise
    finally:
        for leftover in (tmp, old):
            if leftover is not None and leftover.exists():
                shutil.rmtree(leftover, ignore_errors=True)
    fsync_dir(path.parent)
    return path


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
    lines = [
        json.dumps(to_jsonable(row), ensure_ascii=False, allow_nan=False) + "\n" for row in rows
    ]
    return atomic_write_bytes(path, "".join(lines).encode("utf-8"))


def read_json(path: PathLike) -> Any:
    """Read a JSON file written by :func:`atomic_write_json`.

    A missing file raises ``FileNotFoundError``; a file that is not UTF-8 JSON (truncated,
    binary, a planted pickle) raises :class:`CheckpointError` naming it. ``json`` never runs
    code, whatever the bytes.
    """
    path = Path(path)
    try:
        # O_NONBLOCK: opening a FIFO must not wait for a writer; then regular files only, read
        # up to the limit (a symlink to /dev/zero can neither hang nor fill the memory).
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
        with os.fdopen(fd, "rb") as fh:
            if not stat.S_ISREG(os.fstat(fh.fileno()).st_mode):
                raise CheckpointError(f"{path} is not a regular file, expected a JSON file")
            raw = fh.read(MAX_JSON_BYTES + 1)
        if len(raw) > MAX_JSON_BYTES:
            raise CheckpointError(f"{path} is larger than {MAX_JSON_BYTES} bytes")
        return json.loads(raw.decode("utf-8"), parse_constant=_no_constant)
    except FileNotFoundError:
        raise FileNotFoundError(f"{path} not found") from None
    except IsADirectoryError:
        raise CheckpointError(f"{path} is a directory, expected a JSON file") from None
    except RecursionError:
        raise CheckpointError(f"{path} is nested too deeply to be a checkpoint") from None
    except UnicodeDecodeError:
        raise CheckpointError(f"{path} is not a JSON text file (not UTF-8)") from None
    except json.JSONDecodeError as exc:
        raise CheckpointError(
            f"{path} is not valid JSON ({exc.msg} at line {exc.lineno} "
            f"column {exc.colno}; truncated or corrupt?)"
        ) from None
    except CheckpointError:
        raise
    except ValueError as exc:  # NaN / Infinity, an integer too long to convert
        raise CheckpointError(f"{path}: {' '.join(str(exc).split())[:120]}") from None


#: The largest JSON file :func:`read_json` reads (checkpoints are kilobytes to megabytes).
MAX_JSON_BYTES = 256 << 20


def _no_constant(name: str) -> Any:
    raise ValueError(f"holds {name}, which strict JSON does not allow")


def read_json_object(
    path: PathLike, required: Mapping[str, type | tuple[type, ...]] = {}
) -> dict[str, Any]:
    """:func:`read_json` of a file that must hold an object with ``required`` keys and types."""
    data = read_json(path)
    if not isinstance(data, dict):
        raise CheckpointError(f"{path} holds a JSON {_json_kind(data)}, expected an object")
    for key, types in required.items():
        if key not in data:
            raise CheckpointError(
                f"{path} lacks the key {key!r}; it is not a complete checkpoint of this version"
            )
        if not isinstance(data[key], types) or (
            isinstance(data[key], bool) and bool not in _as_tuple(types)
        ):
            raise CheckpointError(
                f"{path}: {key!r} is a JSON {_json_kind(data[key])}, expected {_kinds(types)}"
            )
    return data


def _as_tuple(types: type | tuple[type, ...]) -> tuple[type, ...]:
    return types if isinstance(types, tuple) else (types,)


_KIND = {
    dict: "object",
    list: "array",
    str: "string",
    int: "integer",
    float: "number",
    bool: "boolean",
    type(None): "null",
}


def _json_kind(value: Any) -> str:
    return _KIND.get(type(value), type(value).__name__)


def _kinds(types: type | tuple[type, ...]) -> str:
    return " or ".join(dict.fromkeys(_KIND.get(t, t.__name__) for t in _as_tuple(types)))


#: The names :func:`create_temp_file` / :func:`create_temp_dir` give: ``.<name>.<12 hex>.tmp``
#: with an optional suffix (SB3's ``.zip``).
_TEMP_NAME = re.compile(r"^\..+\.[0-9a-f]{12}\.tmp(\.[A-Za-z0-9]+)?$")


def remove_stale_temps(directory: PathLike) -> list[Path]:
    """Remove the temporary files and directories this module left directly in ``directory``
    (a process killed mid-write never renames them); returns what it removed.

    Call it only while no other writer is active there (the CLI holds the output directory's
    lock). ``.<name>.old-*`` directories are kept: they are a crash's fallback checkpoint.
    """
    removed = []
    for entry in Path(directory).iterdir():
        if not _TEMP_NAME.match(entry.name):
            continue
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry, ignore_errors=True)
        else:
            entry.unlink(missing_ok=True)
        removed.append(entry)
    return removed
