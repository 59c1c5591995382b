"""Property test (hypothesis): a mutated checkpoint or replay cache is data, whatever it holds.

Hypothesis mutates the files a user may receive from someone else (``tuner.json``,
``agent.json``, an SB3 ``model.zip`` and a replay cache) with values chosen to tempt the loader:
paths of a target file that proves it ran, the URL of a loopback listener, the name of an
environment variable holding a secret, planted pickles, NaN, huge and deep values, truncations.
Each mutated copy is then used as a user would, through the real CLI (``rl-tune --resume``,
``rl-tune --replay``), and every example must hold:

- nothing executes (no marker file appears) and nothing connects to the listener;
- the command ends within seconds, with success or rc 2 and one line naming the file (or the
  checkpoint field it refused);
- nothing outside the run's directory changes, and the secret is in no file the run wrote.

The examples are derandomised so that CI always runs the same ones; set
``HYPOTHESIS_PROFILE=fuzz`` for a longer, random search.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import pickle
import shutil
import sqlite3
import time
import zipfile
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from datagen.cli import main
from envs_tests.test_cli import write_setup
from envs_tests.test_trust_boundary import Listener

settings.register_profile(
    "ci",
    derandomize=True,
    database=None,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
settings.register_profile(
    "fuzz",
    max_examples=300,
    database=None,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
PROFILE = os.environ.get("HYPOTHESIS_PROFILE", "ci")


def examples(n: int) -> settings:
    """``n`` examples in CI (about a second each), 300 under the fuzz profile."""
    return settings(settings.get_profile(PROFILE), max_examples=n if PROFILE == "ci" else 300)


SECRET_ENV, SECRET = "DATAGEN_FUZZ_SECRET", "sk-fuzz-secret-5b1e77"
TIME_LIMIT_S = 30.0  # a hang guard, not a speed goal: a load takes well under a second


class World:
    """Finished runs to copy, bait to plant, and a listener that must stay silent."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.config = write_setup(root)
        self.marker = root / "ran.marker"  # written by the bait target or a pickle, if run
        self.bait = root / "bait.py"
        self.bait.write_text(
            f"open({str(self.marker)!r}, 'w').write('ran')\n"
            "def target_model(records):\n    return {'accuracy': 0.5}\n"
        )
        (root / "outside.txt").write_text("must not change\n")
        self.listener = Listener()
        self.runs = root / "runs"
        for algo in ("random_search", "ppo"):
            rc = main([*self.command(self.runs / algo, algo), "--timesteps", "2", "--n", "2"])
            assert rc == 0
        self.cache = root / "runs" / "cache.sqlite"
        rc = main(
            [
                *self.command(self.runs / "replayed", "random_search"),
                "--timesteps",
                "2",
                "--n",
                "1",
                "--replay",
                str(self.cache),
            ]
        )
        assert rc == 0
        self.snapshot = self.tree_hashes()

    def command(self, output: Path, algo: str) -> list[str]:
        return [
            "rl-tune",
            "--config",
            str(self.config),
            "--algo",
            algo,
            "--output",
            str(output),
            "--no-tensorboard",
            "--no-progress",
        ]

    def tree_hashes(self) -> dict[str, str]:
        return {
            str(p.relative_to(self.root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(self.root.rglob("*"))
            if p.is_file() and not p.name.startswith(".datagen.lock")
        }

    def baits(self) -> list[Any]:
        url = self.listener.url
        return [
            str(self.bait),
            "bait.py",
            "../../bait.py",
            url,
            url.replace("/v1", ""),
            f"http://127.0.0.1:{self.listener.port}",
            SECRET_ENV,
            "openai",
            "vllm",
            "transformers",
            "smollm2",
            "/dev/zero",
            str(self.root / "outside.txt"),
            "os.system",
            "__import__('os').system('touch x')",
            "!!python/object/apply:os.system ['true']",
            "../" * 20 + "etc/passwd",
            "x" * 5000,
        ]


@pytest.fixture(scope="module")
def world(tmp_path_factory, monkeypatch_module) -> World:
    monkeypatch_module.setenv(SECRET_ENV, SECRET)
    w = World(tmp_path_factory.mktemp("fuzz_world"))
    yield w
    w.listener.close()


@pytest.fixture(scope="module")
def monkeypatch_module():
    mp = pytest.MonkeyPatch()
    yield mp
    mp.undo()


# ------------------------------------------------------------------------------ strategies
KNOWN_KEYS = [
    "target_model_path",
    "validation_data_path",
    "seed_tasks_path",
    "replay_cache",
    "backend",
    "teacher",
    "base_url",
    "api_key_env",
    "model",
    "model_path",
    "rl_algorithm",
    "algo",
    "agent",
    "model",
    "env_id",
    "format_version",
    "policy_class",
    "py/object",
    "__class__",
    ":type:",
    ":serialized:",
]


def json_values(baits: list[Any]) -> st.SearchStrategy[Any]:
    leaves = (
        st.none()
        | st.booleans()
        | st.integers(min_value=-(10**30), max_value=10**30)
        | st.floats(allow_nan=True, allow_infinity=True)
        | st.text(max_size=12)
        | st.sampled_from(baits)
    )
    return st.recursive(
        leaves,
        lambda inner: (
            st.lists(inner, max_size=3)
            | st.dictionaries(st.sampled_from(KNOWN_KEYS) | st.text(max_size=6), inner, max_size=3)
        ),
        max_leaves=10,
    )


def mutate_json(data: st.DataObject, doc: Any, baits: list[Any]) -> Any:
    """One mutation somewhere in ``doc``: a value replaced, a key removed or added."""
    if not isinstance(doc, (dict, list)) or not doc or data.draw(st.integers(0, 3)) == 0:
        return data.draw(json_values(baits))
    keys = list(doc) if isinstance(doc, dict) else list(range(len(doc)))
    key = data.draw(st.sampled_from(keys))
    op = data.draw(st.sampled_from(["descend", "descend", "replace", "delete", "add"]))
    if op == "descend":
        doc[key] = mutate_json(data, doc[key], baits)
    elif op == "replace":
        doc[key] = data.draw(json_values(baits))
    elif op == "delete":
        del doc[key]
    elif isinstance(doc, dict):
        doc[data.draw(st.sampled_from(KNOWN_KEYS))] = data.draw(json_values(baits))
    else:
        doc.append(data.draw(json_values(baits)))
    return doc


class _Planted:
    """A pickle that writes the marker when unpickled."""

    def __init__(self, marker: Path) -> None:
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


def mutate_bytes(data: st.DataObject, raw: bytes, world: World) -> bytes:
    op = data.draw(st.sampled_from(["truncate", "flip", "random", "pickle", "empty"]))
    if op == "truncate":
        return raw[: data.draw(st.integers(0, max(0, len(raw) - 1)))]
    if op == "flip":
        out = bytearray(raw)
        for _ in range(data.draw(st.integers(1, 8))):
            if out:
                out[data.draw(st.integers(0, len(out) - 1))] = data.draw(st.integers(0, 255))
        return bytes(out)
    if op == "random":
        return data.draw(st.binary(max_size=256))
    if op == "pickle":
        return pickle.dumps(_Planted(world.marker))
    return b""


def mutate_json_file(data: st.DataObject, path: Path, world: World) -> None:
    raw = path.read_bytes()
    if data.draw(st.integers(0, 4)) == 0:
        path.write_bytes(mutate_bytes(data, raw, world))
        return
    doc = mutate_json(data, json.loads(raw), world.baits())
    path.write_text(json.dumps(doc))  # NaN and Infinity written as such: non-strict JSON


def mutate_zip(data: st.DataObject, path: Path, world: World) -> None:
    if data.draw(st.integers(0, 5)) == 0:
        path.write_bytes(mutate_bytes(data, path.read_bytes(), world))
        return
    with zipfile.ZipFile(path) as z:
        members = {name: z.read(name) for name in z.namelist()}
    name = data.draw(st.sampled_from(sorted(members)))
    op = data.draw(st.sampled_from(["json", "bytes", "delete", "add"]))
    if op == "json" and name == "data":
        doc = mutate_json(data, json.loads(members[name]), world.baits())
        members[name] = json.dumps(doc).encode()
    elif op == "delete":
        del members[name]
    elif op == "add":
        members[data.draw(st.sampled_from(["data.pkl", "extra.pth", "../escape.txt"]))] = (
            pickle.dumps(_Planted(world.marker))
        )
    else:
        members[name] = mutate_bytes(data, members[name], world)
    with zipfile.ZipFile(path, "w") as z:
        for member, content in members.items():
            z.writestr(member, content)


SQL_VALUES = (
    st.none()
    | st.integers(min_value=-(2**63), max_value=2**63 - 1)
    | st.floats(allow_nan=False)
    | st.text(max_size=20)
    | st.binary(max_size=20)
    | st.sampled_from(["[", "[{}]", '[{"instruction": 1}]', "[" * 5000, "{}", "NaN"])
)
COLUMNS = [
    "template",
    "focus",
    "temperature_q",
    "top_p_q",
    "batch_size",
    "num_candidates",
    "num_kept",
    "records",
    "origin",
]


def mutate_cache(data: st.DataObject, path: Path, world: World) -> None:
    op = data.draw(st.sampled_from(["manifest", "replicas", "replicas", "schema", "bytes"]))
    if op == "bytes":
        path.write_bytes(mutate_bytes(data, path.read_bytes(), world))
        return
    with contextlib.suppress(sqlite3.IntegrityError), sqlite3.connect(path) as conn:
        if op == "manifest":  # (a NULL in a NOT NULL column is refused by SQLite itself)
            keys = [k for (k,) in conn.execute("SELECT key FROM manifest")]
            key = data.draw(st.sampled_from(keys))
            conn.execute(
                "UPDATE manifest SET value = ? WHERE key = ?", (data.draw(SQL_VALUES), key)
            )
        elif op == "replicas":
            column = data.draw(st.sampled_from(COLUMNS))
            conn.execute(f"UPDATE replicas SET {column} = ?", (data.draw(SQL_VALUES),))  # noqa: S608
        else:
            statement = data.draw(
                st.sampled_from(
                    [
                        "DELETE FROM replicas",
                        "DELETE FROM manifest",
                        "DROP TABLE replicas",
                        "CREATE TABLE extra (x)",
                        "DROP INDEX replicas_by_key",
                    ]
                )
            )
            conn.execute(statement)
    conn.close()


# ------------------------------------------------------------------------------ the checks
def check(world: World, run: Path, argv: list[str], names: list[str], capsys) -> None:
    capsys.readouterr()
    t0 = time.monotonic()
    rc = main(argv)
    elapsed = time.monotonic() - t0
    err = capsys.readouterr().err
    event(f"rc {rc}")  # --hypothesis-show-statistics: how many loads succeeded, were refused
    assert elapsed < TIME_LIMIT_S, f"took {elapsed:.1f}s"
    assert not world.marker.exists(), "a mutated file ran code"
    assert world.listener.received == [], "a mutated file made the run connect to a host"
    assert world.tree_hashes() == world.snapshot, "something outside the run changed"
    for p in run.rglob("*"):
        if p.is_file():
            assert SECRET.encode() not in p.read_bytes(), f"the secret reached {p}"
    if rc != 0:
        lines = [line for line in err.splitlines() if line.strip()]
        assert rc == 2, err
        assert len(lines) == 1 and lines[0].startswith("datagen: error:"), err
        assert "Traceback" not in err and SECRET not in err
        named = any(name in err for name in names) or "cannot change" in err
        assert named, f"the error names neither the file nor the field: {err}"


def copy(world: World, tmp_path_factory, name: str) -> Path:
    run = tmp_path_factory.mktemp("example") / name
    shutil.copytree(world.runs / name, run)
    return run


@examples(12)
@given(data=st.data(), algo=st.sampled_from(["random_search", "ppo"]))
def test_mutated_tuner_json_is_data(world, tmp_path_factory, capsys, data, algo):
    run = copy(world, tmp_path_factory, algo)
    mutate_json_file(data, run / "checkpoint" / "tuner.json", world)
    argv = [*world.command(run, algo), "--resume", "--timesteps", "3", "--n", "1"]
    check(world, run, argv, ["tuner.json", str(run / "checkpoint")], capsys)


@examples(10)
@given(data=st.data(), algo=st.sampled_from(["random_search", "ppo"]))
def test_mutated_agent_json_is_data(world, tmp_path_factory, capsys, data, algo):
    run = copy(world, tmp_path_factory, algo)
    mutate_json_file(data, run / "checkpoint" / "agent" / "agent.json", world)
    argv = [*world.command(run, algo), "--resume", "--timesteps", "3", "--n", "1"]
    check(world, run, argv, ["agent.json", str(run / "checkpoint")], capsys)


@examples(10)
@given(data=st.data())
def test_mutated_sb3_zip_is_data(world, tmp_path_factory, capsys, data):
    run = copy(world, tmp_path_factory, "ppo")
    mutate_zip(data, run / "checkpoint" / "agent" / "model.zip", world)
    argv = [*world.command(run, "ppo"), "--resume", "--timesteps", "3", "--n", "1"]
    check(world, run, argv, ["model.zip", str(run / "checkpoint")], capsys)


@examples(10)
@given(data=st.data())
def test_mutated_replay_cache_is_data(world, tmp_path_factory, capsys, data):
    run = tmp_path_factory.mktemp("example")
    cache = run / "cache.sqlite"
    shutil.copy(world.cache, cache)
    mutate_cache(data, cache, world)
    argv = [*world.command(run / "out", "random_search"), "--timesteps", "2", "--n", "1"]
    check(world, run, [*argv, "--replay", str(cache)], [str(cache)], capsys)
