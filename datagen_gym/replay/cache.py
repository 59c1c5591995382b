"""The replay cache: real teacher batches in one SQLite file, keyed by the generation settings.

A key is ``(template, focus, temperature index, top_p index, batch size)``: temperature and top_p
are stored as integer indices on the cache's grid (``round(value / resolution)``), so no float
is ever compared for equality; ``focus`` is the skill name or ``""`` for "any". Each key holds
any number of *replicas*: independent batches generated with those settings from the human seed
pool. A replica row keeps its records as JSON text plus the batch counts the env observes
(``num_candidates``, ``num_kept``).

Why SQLite: one file to copy or share, transactions so that several processes (the workers of a
``SubprocVecEnv``) can add replicas at once without corrupting it (a busy timeout makes a writer
wait for another's lock instead of failing), and no pickle: the file holds only text and
numbers. The rollback journal (not WAL) is used on purpose: between writes the cache is exactly
one file, with no ``-wal`` side file that a copy could miss.

The ``manifest`` table records what the batches were generated with: the teacher's identity
(a hash of its weights and tokenizer), the world version (a hash of the task world, the seed
tasks, the prompt formats and the generation settings that shape a batch), the grid resolution
and the library version that created the file. :class:`ReplayCache` refuses a file whose
teacher or world differ from the caller's, with a one-line error naming the file and the field.
"""

from __future__ import annotations

import json
import math
import os
import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

# Bump when the schema or the meaning of a stored field changes; older files are then refused.
FORMAT_VERSION = 1
# Settings grid step. 0.05 is the env's default action delta, so every discrete action moves to
# a neighbouring key (a coarser grid would make half of the +-0.05 actions invisible in replay);
# an episode from the default start visits at most 21 temperatures x 13 top_p values.
DEFAULT_RESOLUTION = 0.05
# A writer waits this long for another process's lock before giving up (a miss generates a batch
# in ~1 s and holds the lock for milliseconds, so this is only reached if a process hangs).
BUSY_TIMEOUT_S = 60.0
ANY_FOCUS = ""  # the focus column's value for "any skill" (NULL would not compare equal)
#: The longest records text a replica may hold (a batch of 64 records is about 30 kB).
MAX_REPLICA_CHARS = 64 << 20
_MAX_COUNT = 1 << 20  # a replica's candidate and kept counts (a batch is at most thousands)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS manifest (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS replicas (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    template TEXT NOT NULL,
    focus TEXT NOT NULL,
    temperature_q INTEGER NOT NULL,
    top_p_q INTEGER NOT NULL,
    batch_size INTEGER NOT NULL,
    num_candidates INTEGER NOT NULL,
    num_kept INTEGER NOT NULL,
    records TEXT NOT NULL,
    created_at REAL NOT NULL,
    origin TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS replicas_by_key
    ON replicas (template, focus, temperature_q, top_p_q, batch_size, id);
"""
# Identity fields a cache must match to be used; the others are informational.
_MATCHED = ("teacher", "world")


def _no_constant(name: str) -> Any:
    raise ValueError(f"holds {name}, which strict JSON does not allow")


class ReplayCacheError(RuntimeError):
    """The cache file is unreadable, not a replay cache, or built for another teacher/world."""


@dataclass(frozen=True)
class CacheKey:
    """Generation settings on the cache's grid."""

    template: str
    focus: str | None
    temperature_q: int
    top_p_q: int
    batch_size: int

    def values(self, resolution: float) -> tuple[float, float]:
        """The (temperature, top_p) this key stands for."""
        return (round(self.temperature_q * resolution, 6), round(self.top_p_q * resolution, 6))

    def _row(self) -> tuple[str, str, int, int, int]:
        return (
            self.template,
            self.focus or ANY_FOCUS,
            self.temperature_q,
            self.top_p_q,
            self.batch_size,
        )


def quantise(value: float, resolution: float) -> int:
    """The grid index of ``value``: nearest multiple of ``resolution``, halves rounded up.

    The small epsilon absorbs float drift: 1.0 - 3 * 0.05 is 0.8500000000000001, and a setting
    reached by actions must land on the same key as the one typed in."""
    return int(math.floor(value / resolution + 0.5 + 1e-9))


@dataclass
class Replica:
    """One cached batch."""

    id: int
    records: list[dict[str, Any]]
    num_candidates: int
    num_kept: int


class ReplayCache:
    """A replay cache file (see the module docstring).

    Args:
        path: the SQLite file; created when missing (unless ``read_only``).
        identity: ``{"teacher": ..., "world": ...}`` hashes of the caller's teacher and world
            (see :mod:`datagen_gym.replay.identity`). An existing file with other values is
            refused; a new file records them.
        resolution: the settings grid of a new file; an existing file keeps its own (it is
            refused if ``resolution`` is given and differs).
        read_only: open without write access (a shared, read-only copy); adding raises.
        info: extra manifest entries for a new file (descriptions of the teacher and world).

    The connection is opened lazily and per process, so an object built before a ``fork``
    never shares its SQLite handle with the child.
    """

    def __init__(
        self,
        path: str | Path,
        identity: dict[str, str],
        resolution: float | None = None,
        read_only: bool = False,
        info: dict[str, str] | None = None,
    ) -> None:
        self.path = Path(path)
        self.read_only = read_only
        self._identity = {k: str(identity[k]) for k in _MATCHED}
        self._conn: sqlite3.Connection | None = None
        self._pid: int | None = None
        self.manifest = self._open(resolution, info or {})
        self.resolution = float(self.manifest["resolution"])

    # ------------------------------------------------------------------ opening
    def _connect(self) -> sqlite3.Connection:
        if self._conn is not None and self._pid == os.getpid():
            return self._conn
        uri = f"file:{self.path}?mode={'ro' if self.read_only else 'rwc'}"
        try:
            conn = sqlite3.connect(
                uri, uri=True, timeout=BUSY_TIMEOUT_S, isolation_level=None
            )  # explicit BEGIN/COMMIT below
            conn.execute(f"PRAGMA busy_timeout = {int(BUSY_TIMEOUT_S * 1000)}")
        except sqlite3.Error as exc:
            raise ReplayCacheError(f"{self.path}: cannot open the replay cache ({exc})") from None
        self._conn, self._pid = conn, os.getpid()
        return conn

    def _open(self, resolution: float | None, info: dict[str, str]) -> dict[str, str]:
        if self.read_only and not self.path.is_file():
            raise ReplayCacheError(f"{self.path}: replay cache not found")
        if self.path.exists() and not self.path.is_file():
            raise ReplayCacheError(f"{self.path}: not a regular file, expected a replay cache")
        if not self.path.exists():
            self.path.parent.mkdir(parents=True, exist_ok=True)
        conn = self._connect()
        try:
            if self.read_only:
                self._check_tables(conn)
            else:
                # The write lock makes the look at the schema and its creation one step: of two
                # processes creating the same new file, one writes the schema and manifest, the
                # other then reads them. Nothing is written into a file that holds anything but
                # a cache of ours (a user's own database stays byte-identical).
                conn.execute("BEGIN IMMEDIATE")
                try:
                    if self._check_tables(conn):
                        for statement in filter(str.strip, _SCHEMA.split(";")):
                            conn.execute(statement)
                        self._write_manifest(conn, resolution, info)
                    conn.execute("COMMIT")
                except BaseException:
                    conn.execute("ROLLBACK")
                    raise
            manifest = dict(conn.execute("SELECT key, value FROM manifest").fetchall())
        except sqlite3.DatabaseError as exc:
            raise ReplayCacheError(
                f"{self.path}: not a readable replay cache (SQLite: {exc})"
            ) from None
        self._check_manifest(manifest, resolution)
        return manifest

    def _check_tables(self, conn: sqlite3.Connection) -> bool:
        """True for an empty database (a new cache); raise unless it holds our tables."""
        objects = {
            (kind, name)
            for kind, name in conn.execute("SELECT type, name FROM sqlite_master").fetchall()
            if not name.startswith("sqlite_")  # SQLite's own (sqlite_sequence)
        }
        if not objects and not self.read_only:
            return True
        tables = {name for kind, name in objects if kind == "table"}
        if tables != {"manifest", "replicas"}:
            found = ", ".join(sorted(tables)[:5]) or "none"
            raise ReplayCacheError(
                f"{self.path}: not a replay cache (an SQLite database whose tables are "
                f"{found}; expected manifest and replicas); left unchanged"
            )
        return False

    def _write_manifest(
        self, conn: sqlite3.Connection, resolution: float | None, info: dict[str, str]
    ) -> None:
        from datagen_gym import __version__

        resolution = DEFAULT_RESOLUTION if resolution is None else float(resolution)
        if not 0.0 < resolution <= 1.0:
            raise ReplayCacheError(
                f"{self.path}: resolution={resolution} is out of range; allowed: (0, 1]"
            )
        entries = {
            **{str(k): str(v) for k, v in info.items()},
            "format_version": str(FORMAT_VERSION),
            **self._identity,
            "resolution": repr(resolution),
            "created_by": f"datagen_gym {__version__}",
            "created_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        }
        conn.executemany("INSERT INTO manifest (key, value) VALUES (?, ?)", entries.items())

    def _check_manifest(self, manifest: dict[str, str], resolution: float | None) -> None:
        version = manifest.get("format_version")
        if version != str(FORMAT_VERSION):
            raise ReplayCacheError(
                f"{self.path}: replay cache format_version={version!r}; "
                f"this library reads {FORMAT_VERSION}"
            )
        for field in _MATCHED:
            if manifest.get(field) != self._identity[field]:
                described = manifest.get(f"{field}_description", "")
                raise ReplayCacheError(
                    f"{self.path}: built with another {field} ({field} hash "
                    f"{str(manifest.get(field))[:12]}{f', {described}' if described else ''}; "
                    f"the current {field} is {self._identity[field][:12]}); rebuild the cache "
                    f"or use one built with this {field}"
                )
        try:
            stored = float(manifest["resolution"])
        except (KeyError, ValueError):
            raise ReplayCacheError(f"{self.path}: manifest has no valid 'resolution'") from None
        if resolution is not None and not math.isclose(stored, float(resolution)):
            raise ReplayCacheError(
                f"{self.path}: cache resolution is {stored}, {resolution} was requested"
            )

    def check_identity(self, identity: dict[str, str]) -> None:
        """Refuse this cache for a generator of another teacher or world."""
        for field in _MATCHED:
            if str(identity[field]) != self._identity[field]:
                raise ReplayCacheError(
                    f"{self.path}: opened for another {field} ({field} hash "
                    f"{self._identity[field][:12]}) than the generator's "
                    f"({str(identity[field])[:12]})"
                )

    def close(self) -> None:
        if self._conn is not None and self._pid == os.getpid():
            self._conn.close()
        self._conn = None

    def __getstate__(self) -> dict[str, Any]:
        # Pickled into a worker (a vector env), the copy reconnects there.
        return {**self.__dict__, "_conn": None, "_pid": None}

    # ------------------------------------------------------------------ keys
    def key(
        self, template: str, focus: str | None, temperature: float, top_p: float, batch_size: int
    ) -> CacheKey:
        """The key of these settings on this cache's grid."""
        return CacheKey(
            template,
            focus or None,
            quantise(temperature, self.resolution),
            quantise(top_p, self.resolution),
            int(batch_size),
        )

    # ------------------------------------------------------------------ reading
    def _query(self, sql: str, params: tuple = ()) -> list[tuple]:
        try:
            return self._connect().execute(sql, params).fetchall()
        except sqlite3.DatabaseError as exc:
            raise ReplayCacheError(
                f"{self.path}: replay cache read failed (SQLite: {exc})"
            ) from None

    def replica_ids(self, key: CacheKey) -> list[int]:
        """The ids of the key's replicas, oldest first (a stable order: same file, same ids)."""
        return [
            r[0]
            for r in self._query(
                "SELECT id FROM replicas WHERE template = ? AND focus = ? AND temperature_q = ? "
                "AND top_p_q = ? AND batch_size = ? ORDER BY id",
                key._row(),
            )
        ]

    def get(self, replica_id: int) -> Replica:
        # One query; an oversized text is measured in SQLite and never read into memory.
        rows = self._query(
            "SELECT length(records), CASE WHEN length(records) <= ? THEN records END, "
            "num_candidates, num_kept FROM replicas WHERE id = ?",
            (MAX_REPLICA_CHARS, int(replica_id)),
        )
        if not rows:
            raise ReplayCacheError(f"{self.path}: no replica with id {replica_id}")
        size, text, num_candidates, num_kept = rows[0]
        where = f"{self.path}: replica {replica_id}"
        if not isinstance(size, int) or size > MAX_REPLICA_CHARS:
            raise ReplayCacheError(
                f"{where}: records are {size} characters, more than {MAX_REPLICA_CHARS}"
            )
        try:
            records = json.loads(text, parse_constant=_no_constant)
        except RecursionError:
            raise ReplayCacheError(f"{where}: records are nested too deeply") from None
        except (TypeError, ValueError) as exc:
            raise ReplayCacheError(f"{where}: records are not valid JSON ({exc})") from None
        if not isinstance(records, list) or not all(isinstance(r, dict) for r in records):
            raise ReplayCacheError(f"{where}: records are not a JSON list of records")
        counts = {"num_candidates": num_candidates, "num_kept": num_kept}
        for field, value in counts.items():
            if type(value) is not int or not 0 <= value <= _MAX_COUNT:
                raise ReplayCacheError(
                    f"{where}: {field} is {str(value)[:40]!r}, expected an integer in "
                    f"0..{_MAX_COUNT}"
                )
        return Replica(int(replica_id), records, num_candidates, num_kept)

    def counts(self) -> dict[CacheKey, int]:
        """Replicas per key."""
        rows = self._query(
            "SELECT template, focus, temperature_q, top_p_q, batch_size, "
            "COUNT(*) FROM replicas GROUP BY template, focus, temperature_q, "
            "top_p_q, batch_size"
        )
        return {CacheKey(t, f or None, tq, pq, b): n for t, f, tq, pq, b, n in rows}

    def stats(self) -> dict[str, Any]:
        """Keys, replicas, records and file size (for ``build --info`` and the README)."""
        n_rep, n_rec = self._query(
            "SELECT COUNT(*), COALESCE(SUM(json_array_length(records)), 0) FROM replicas"
        )[0]
        return {
            "path": str(self.path),
            "keys": len(self.counts()),
            "replicas": int(n_rep),
            "records": int(n_rec),
            "bytes": self.path.stat().st_size,
            "resolution": self.resolution,
        }

    # ------------------------------------------------------------------ writing
    def add(
        self,
        key: CacheKey,
        records: list[dict[str, Any]],
        num_candidates: int,
        num_kept: int,
        origin: str = "miss",
        max_replicas: int | None = None,
    ) -> int | None:
        """Store one batch as a new replica of ``key``; returns its id.

        One short transaction: concurrent writers queue on SQLite's lock (busy timeout), so
        every committed replica is complete and none is lost. With ``max_replicas`` the batch is
        stored only while the key holds fewer (``None`` is returned otherwise): the count and
        the insert are one transaction, so two builds filling one key never overfill it."""
        if self.read_only:
            raise ReplayCacheError(f"{self.path}: opened read-only; cannot store a replica")
        text = json.dumps(records, ensure_ascii=False, allow_nan=False)
        conn = self._connect()
        try:
            conn.execute("BEGIN IMMEDIATE")
            try:
                if max_replicas is not None:
                    (held,) = conn.execute(
                        "SELECT COUNT(*) FROM replicas WHERE template = ? AND focus = ? AND "
                        "temperature_q = ? AND top_p_q = ? AND batch_size = ?",
                        key._row(),
                    ).fetchone()
                    if held >= max_replicas:
                        conn.execute("ROLLBACK")
                        return None
                cur = conn.execute(
                    "INSERT INTO replicas (template, focus, temperature_q, top_p_q, batch_size, "
                    "num_candidates, num_kept, records, created_at, origin) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (*key._row(), int(num_candidates), int(num_kept), text, time.time(), origin),
                )
                conn.execute("COMMIT")
            except BaseException:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise
        except sqlite3.DatabaseError as exc:
            raise ReplayCacheError(
                f"{self.path}: replay cache write failed (SQLite: {exc})"
            ) from None
        return int(cur.lastrowid)
