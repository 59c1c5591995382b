"""One run per output directory: ``datagen rl-tune`` holds ``OUTPUT/.datagen.lock`` while it runs.

The lock is ``filelock``'s (``flock`` on POSIX), so the operating system releases it when the
process ends, however it ends: a killed run never leaves a stale lock behind. Beside it,
``.datagen.lock.json`` names the holder (pid, host, start time), so a second run can say who
holds the directory; that file is information only, never the lock itself.
"""

from __future__ import annotations

import os
import socket
import time
from pathlib import Path
from typing import Any

from filelock import FileLock, Timeout

LOCK_FILE = ".datagen.lock"
HOLDER_FILE = ".datagen.lock.json"


class OutputInUse(RuntimeError):
    """Another run holds the output directory; the message names it."""


class RunLock:
    """``with RunLock(output):`` the body runs only if no other run holds ``output``.

    Raises :class:`OutputInUse` at once (no waiting) when another process holds it.
    """

    def __init__(self, directory: str | os.PathLike) -> None:
        self.directory = Path(directory)
        # filelock's default mode honours the user's umask (an explicit mode is chmod-ed).
        self._lock = FileLock(self.directory / LOCK_FILE)

    def acquire(self) -> None:
        try:
            self._lock.acquire(timeout=0)
        except Timeout:
            raise OutputInUse(
                f"--output {self.directory} is in use by another datagen run "
                f"({self._holder()}); wait for it to finish or choose another --output"
            ) from None
        from datagen_gym.atomic_io import atomic_write_json

        atomic_write_json(
            self.directory / HOLDER_FILE,
            {"pid": os.getpid(), "host": socket.gethostname(), "started": time.time()},
        )

    def release(self) -> None:
        (self.directory / HOLDER_FILE).unlink(missing_ok=True)
        self._lock.release()

    def _holder(self) -> str:
        from datagen_gym.atomic_io import read_json

        try:
            info: Any = read_json(self.directory / HOLDER_FILE)
            started = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(float(info["started"])))
            return f"pid {int(info['pid'])} on {str(info['host'])[:64]}, started {started}"
        except (OSError, ValueError, TypeError, KeyError, OverflowError):
            return "holder unknown"

    def __enter__(self) -> RunLock:
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()
