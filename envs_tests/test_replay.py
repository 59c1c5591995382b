"""The replay tier: cache-backed generation (datagen_gym.replay)."""

import json
import multiprocessing as mp
import sqlite3

import gymnasium as gym
import pytest
from support.sizes import TINY_BATCH

import datagen_gym  # noqa: F401  (registers the envs)
from datagen_gym.config import Config
from datagen_gym.generators.generator import Generator
from datagen_gym.replay import (
    ReplayCache,
    ReplayCacheError,
    ReplayGenerator,
    generator_identity,
    quantise,
)
from datagen_gym.sampler import Sampler

SMALL = {"batch_size": TINY_BATCH, "num_iterations": 3}  # replay: many episodes
KEEP = [1, 1, 0]  # keep temperature and top_p, template 0 (self_instruct)


@pytest.fixture
def live(teacher):
    return Generator(Config(), sampler=Sampler(teacher, max_new_tokens=96), seed=0)


def _env(path, live_generator=None, env_id="DataGen-v0", **kw):
    return gym.make(
        env_id, replay_cache=str(path), generator=live_generator, **{**SMALL, **kw}
    ).unwrapped


def _episode(env, seed, actions):
    env.reset(seed=seed)
    out = []
    for a in actions:
        _, reward, _, _, info = env.step(a)
        out.append((reward, env.generator.last_replica_id, info["num_records"]))
    return out


def test_quantise_lands_drifted_settings_on_the_grid():
    assert quantise(1.0 - 3 * 0.05, 0.05) == 17  # 0.8500000000000001
    assert quantise(0.9 + 0.05, 0.05) == 19
    assert quantise(1.024, 0.05) == 20 and quantise(1.025, 0.05) == 21  # halves round up


def test_miss_generates_live_and_stores(tmp_path, live):
    gen = ReplayGenerator(live, tmp_path / "c.sqlite")
    live.set_sampling_params(temperature=0.97, top_p=0.9)
    batch = gen.generate(4, step=2)
    assert (gen.hits, gen.misses) == (0, 1)
    key = gen.current_key(4)
    assert (key.temperature_q, key.top_p_q) == (19, 18)
    assert gen.cache.replica_ids(key) == [gen.last_replica_id]
    stored = gen.cache.get(gen.last_replica_id)
    assert [{**r, "step": 2} for r in stored.records] == batch.data
    assert stored.num_candidates == batch.num_candidates
    # generated with the key's exact settings; the agent's settings are left as they were
    assert {r["temperature"] for r in batch.data} <= {0.95}
    assert live.get_sampling_params() == {"temperature": 0.97, "top_p": 0.9}


def test_no_replica_reused_within_an_episode(tmp_path, live):
    gen = ReplayGenerator(live, tmp_path / "c.sqlite")
    for _ in range(3):  # one episode, one key: each call misses and stores a replica
        gen.generate(4)
    assert gen.misses == 3
    for seed in range(3):
        gen.reseed(seed)
        gen.reset_pool()
        ids = []
        for _ in range(3):
            gen.generate(4)
            ids.append(gen.last_replica_id)
        assert sorted(ids) == gen.cache.replica_ids(gen.current_key(4))  # all, once each
    gen.generate(4)  # a fourth step in that episode: every replica used, so a live miss
    assert gen.misses == 4 and len(gen.cache.replica_ids(gen.current_key(4))) == 4


@pytest.mark.parametrize("episode_filter", [True, False])
def test_episode_filter_drops_instructions_repeated_in_the_episode(tmp_path, live, episode_filter):
    gen = ReplayGenerator(live, tmp_path / "c.sqlite", episode_filter=episode_filter)
    key = gen.current_key(4)  # self_instruct: its batches pass the ROUGE filter live

    def rec(instruction):
        return {"instruction": instruction, "input": "x", "output": "y"}

    repeated = "Count the vowels in each word of the sentence below"
    gen.cache.add(key, [rec(repeated), rec(repeated)], 3, 1, origin="test")
    gen.cache.add(
        key,
        [rec(repeated + " please"), rec("Sort these five numbers from low to high and print them")],
        3,
        2,
        origin="test",
    )
    gen.reseed(0)
    gen.reset_pool()
    sizes = sorted((len(gen.generate(4)), len(gen.generate(4))))
    # whichever replica comes first, the other loses the records of its near-duplicate
    # instruction (both of the first replica's, or one of the second's)
    assert sizes in (([0, 2], [1, 2]) if episode_filter else ([2, 2],))
    gen.reset_pool()  # a new episode forgets the instructions of the last one
    assert len(gen.generate(4)) == 2


def test_same_seed_and_cache_give_the_same_rewards(tmp_path, live):
    path = tmp_path / "c.sqlite"
    actions = [KEEP, [2, 1, 0], KEEP]
    filler = _env(path, live)
    for seed in range(2):  # two episodes fill 2 replicas per visited key
        _episode(filler, seed, actions)
    before = filler.generator.cache.stats()["replicas"]
    runs = [_episode(_env(path, live), 7, actions) for _ in range(2)]
    assert runs[0] == runs[1]
    assert all(rid > 0 for _, rid, _ in runs[0])
    assert ReplayCache(path, generator_identity(live)).stats()["replicas"] == before  # all hits


@pytest.mark.parametrize("field", ["teacher", "world"])
def test_cache_of_another_teacher_or_world_is_refused(tmp_path, live, field):
    path = tmp_path / "old.sqlite"
    identity = generator_identity(live)
    ReplayCache(path, {**identity, field: "0" * 64}).close()
    with pytest.raises(ReplayCacheError) as err:
        ReplayGenerator(live, path)
    msg = str(err.value)
    assert str(path) in msg and f"another {field}" in msg and "\n" not in msg


def test_cache_object_of_another_identity_is_refused(tmp_path, live):
    cache = ReplayCache(tmp_path / "c.sqlite", {"teacher": "a" * 64, "world": "b" * 64})
    with pytest.raises(ReplayCacheError, match="opened for another teacher"):
        ReplayGenerator(live, cache)


def test_teacher_files_changing_under_a_running_generator_stop_it(tmp_path, teacher):
    import shutil

    from datagen_gym.backends import EMBEDDED_TEACHER

    model_dir = tmp_path / "teacher"
    shutil.copytree(EMBEDDED_TEACHER, model_dir)
    backend = type(teacher).__new__(type(teacher))  # the loaded teacher, claiming the copy
    backend.__dict__.update(teacher.__dict__, model_path=model_dir)
    gen = ReplayGenerator(
        Generator(Config(), sampler=Sampler(backend, max_new_tokens=96)), tmp_path / "c.sqlite"
    )
    gen.generate(4)
    with open(model_dir / "config.json", "a") as fh:  # a retrained teacher written in place
        fh.write("\n")
    with pytest.raises(ReplayCacheError, match="teacher's files changed"):
        gen.generate(4)


def test_world_identity_follows_the_generation_settings(live, teacher):
    other = Generator(
        Config().replace(generation={"max_instances_per_task": 2}),
        sampler=Sampler(teacher, max_new_tokens=96),
    )
    assert generator_identity(other)["world"] != generator_identity(live)["world"]
    assert generator_identity(other)["teacher"] == generator_identity(live)["teacher"]


def test_teacher_identity_of_a_single_file_model_and_of_chat_prompts(tmp_path):
    from types import SimpleNamespace

    from datagen_gym.replay.identity import model_dir_hash, teacher_identity

    gguf = tmp_path / "model.Q4_1.gguf"
    gguf.write_bytes(b"weights v1")
    first = model_dir_hash(gguf)
    gguf.write_bytes(b"weights v2, retrained")
    assert model_dir_hash(gguf) != first  # a single-file model is hashed by its content

    def backend(fmt):
        return SimpleNamespace(
            model_path=gguf, model=SimpleNamespace(dtype="float32"), prompt_format=fmt
        )

    assert teacher_identity(backend("chat"))[0] != teacher_identity(backend("completion"))[0]


def test_world_hash_ignores_documentation_and_layout_but_not_code(tmp_path):
    from datagen_gym.replay.identity import code_fingerprint

    base = (
        '"""Doc."""\nTEMPLATE = "Come up with {n} tasks:"\n\n\ndef f(x: int) -> int:\n'
        '    """Doc of f."""\n    return x + 1  # a comment\n'
    )
    variants = {
        "same": base,
        "docs": base.replace("Doc.", "Other words.").replace("Doc of f.", "More."),
        "layout": base.replace("\n\n\ndef", "\ndef").replace("  # a comment", ""),
        "annotations": base.replace("x: int) -> int", "x)"),
        "prompt text": base.replace("Come up with", "Write"),
        "code": base.replace("x + 1", "x + 2"),
    }
    prints = {}
    for name, text in variants.items():
        (tmp_path / f"{name.replace(' ', '_')}.py").write_text(text)
        prints[name] = code_fingerprint(tmp_path / f"{name.replace(' ', '_')}.py")
    assert prints["docs"] == prints["layout"] == prints["annotations"] == prints["same"]
    assert prints["prompt text"] != prints["same"] and prints["code"] != prints["same"]


@pytest.mark.parametrize("content", [b"this is not a database" * 100, b""])
def test_corrupt_cache_file_is_a_clear_error(tmp_path, live, content):
    path = tmp_path / "broken.sqlite"
    path.write_bytes(content)
    if not content:  # an empty file is a valid, empty SQLite database: it becomes a cache
        ReplayGenerator(live, path)
        return
    with pytest.raises(ReplayCacheError, match="not a readable replay cache") as err:
        ReplayGenerator(live, path)
    assert str(path) in str(err.value)


@pytest.mark.parametrize(
    "schema",
    [
        [
            "CREATE TABLE notes (id INTEGER PRIMARY KEY, text TEXT)",
            "INSERT INTO notes VALUES (1, 'x')",
        ],
        # a manifest of its own but no replicas table: still not ours
        [
            "CREATE TABLE manifest (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
            "INSERT INTO manifest VALUES ('format_version', '1')",
        ],
    ],
)
def test_a_users_own_database_is_refused_and_left_byte_identical(tmp_path, live, schema):
    path = tmp_path / "mine.sqlite"
    with sqlite3.connect(path) as conn:
        for statement in schema:
            conn.execute(statement)
    conn.close()
    before = path.read_bytes()
    for read_only in (False, True):
        with pytest.raises(ReplayCacheError, match="not a replay cache") as err:
            ReplayGenerator(live, path, store_misses=not read_only)
        assert str(path) in str(err.value) and "left unchanged" in str(err.value)
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mine.sqlite"]  # no journal either


def test_cache_of_another_format_version_is_refused(tmp_path, live):
    path = tmp_path / "other.sqlite"
    ReplayGenerator(live, path).cache.close()
    with sqlite3.connect(path) as conn:
        conn.execute("UPDATE manifest SET value = '99' WHERE key = 'format_version'")
    conn.close()
    with pytest.raises(ReplayCacheError, match=r"format_version='99'"):
        ReplayGenerator(live, path)


@pytest.mark.parametrize(
    "sql, expected",
    [
        ("UPDATE replicas SET records = '[{\"instruction\": '", "records are not valid JSON"),
        ("UPDATE replicas SET records = '{\"a\": 1}'", "not a JSON list of records"),
        ("UPDATE replicas SET records = '[NaN]'", "records are not valid JSON"),
        (f"UPDATE replicas SET records = '{'[' * 100_000}{']' * 100_000}'", "nested too deeply"),
        ("UPDATE replicas SET num_kept = 'abc'", "num_kept is 'abc', expected an integer"),
        ("UPDATE replicas SET num_candidates = -4", "num_candidates is '-4'"),
        ("UPDATE replicas SET num_kept = 1.5", "num_kept is '1.5'"),
    ],
)
def test_corrupt_replica_is_one_line_naming_the_file_replica_and_field(
    tmp_path, live, sql, expected
):
    path = tmp_path / "c.sqlite"
    gen = ReplayGenerator(live, path)
    gen.generate(4)
    with sqlite3.connect(path) as conn:
        conn.execute(sql)
    conn.close()
    gen.reset_pool()
    with pytest.raises(ReplayCacheError) as err:
        gen.generate(4)
    message = str(err.value)
    assert message.startswith(f"{path}: replica 1: ") and expected in message
    assert "\n" not in message and len(message) < 300


def test_a_cache_that_is_not_a_regular_file_is_refused(tmp_path, live):
    (tmp_path / "dir.sqlite").mkdir()
    with pytest.raises(ReplayCacheError, match="not a regular file"):
        ReplayGenerator(live, tmp_path / "dir.sqlite")


def test_rl_tune_with_a_corrupt_or_foreign_cache_exits_2(tmp_path, capsys):
    from datagen.cli import main
    from envs_tests.test_cli import assert_one_line_error, write_setup

    cfg = write_setup(tmp_path)
    corrupt = tmp_path / "corrupt.sqlite"
    corrupt.write_bytes(b"this is not a database" * 100)
    foreign = tmp_path / "foreign.sqlite"
    with sqlite3.connect(foreign) as conn:
        conn.execute("CREATE TABLE notes (text TEXT)")
    conn.close()
    for i, cache in enumerate((corrupt, foreign)):
        before = cache.read_bytes()
        argv = ["rl-tune", "--config", str(cfg), "--timesteps", "1", "--no-progress"]
        rc = main(
            [*argv, "--no-tensorboard", "--replay", str(cache), "--output", f"{tmp_path}/o{i}"]
        )
        err = capsys.readouterr().err
        assert rc == 2, err
        assert_one_line_error(err)
        assert str(cache) in err and cache.read_bytes() == before


def _writer(path, identity, worker, n):
    cache = ReplayCache(path, identity)
    key = cache.key("self_instruct", None, 1.0, 0.9, 4)
    for i in range(n):
        cache.add(
            key,
            [{"instruction": f"w{worker} r{i}", "input": "", "output": "x" * 2000}],
            num_candidates=1,
            num_kept=1,
            origin=f"worker{worker}",
        )


def _run_writers(writer, path, identity, *args) -> None:
    """Two processes running ``writer(path, identity, worker, *args)`` at once."""
    # fork: the writers only use sqlite3, and a spawned child would re-import torch (seconds)
    ctx = mp.get_context("fork" if "fork" in mp.get_all_start_methods() else "spawn")
    procs = [ctx.Process(target=writer, args=(path, identity, w, *args)) for w in range(2)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
        assert p.exitcode == 0


def test_two_processes_writing_one_cache(tmp_path):
    path = tmp_path / "shared.sqlite"
    identity = {"teacher": "t" * 64, "world": "w" * 64}
    _run_writers(_writer, path, identity, 60)
    cache = ReplayCache(path, identity)
    ids = cache.replica_ids(cache.key("self_instruct", None, 1.0, 0.9, 4))
    assert len(ids) == 120
    texts = {cache.get(i).records[0]["instruction"] for i in ids}
    assert texts == {f"w{w} r{i}" for w in range(2) for i in range(60)}
    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"


def _bounded_writer(path, identity, worker, n, limit):
    cache = ReplayCache(path, identity)
    key = cache.key("self_instruct", None, 1.0, 0.9, 4)
    for i in range(n):
        record = {"instruction": f"w{worker} r{i}", "input": "", "output": "x"}
        cache.add(key, [record], 1, 1, origin=f"worker{worker}", max_replicas=limit)


def test_two_builds_never_fill_a_key_past_its_replicas(tmp_path):
    """The count and the store are one transaction: two writers racing on one key with
    max_replicas=25 leave exactly 25 (before, two unsharded builds left 3 of 2, two of them
    byte-identical)."""
    path = tmp_path / "shared.sqlite"
    identity = {"teacher": "t" * 64, "world": "w" * 64}
    _run_writers(_bounded_writer, path, identity, 40, 25)
    cache = ReplayCache(path, identity)
    key = cache.key("self_instruct", None, 1.0, 0.9, 4)
    assert len(cache.replica_ids(key)) == 25
    assert cache.add(key, [{"instruction": "late"}], 1, 1, max_replicas=25) is None


def test_a_second_build_of_the_same_shard_is_refused(tmp_path, capsys):
    from filelock import FileLock

    from datagen_gym.replay import build

    path = tmp_path / "grid.sqlite"
    argv = ["--cache", str(path), "--templates", "self_instruct", "--temperatures", "1.0"]
    argv += ["--top-ps", "0.9", "--batch-size", "4", "--replicas", "1"]
    holder = FileLock(f"{path}.shard-0-of-1.lock")  # another build, running
    with holder:
        with pytest.raises(SystemExit, match="another replay build of shard 0/1 is running"):
            build.main(argv)
        assert build.main([*argv, "--shard", "0/2"]) == 0  # another shard may run beside it
    assert build.main(argv) == 0


def test_read_only_cache_generates_misses_without_storing(tmp_path, live):
    path = tmp_path / "c.sqlite"
    ReplayGenerator(live, path).generate(4)
    gen = ReplayGenerator(live, path, store_misses=False)
    gen.reset_pool()
    gen.generate(4)
    gen.generate(4)  # the one replica is used: live, not stored
    assert (gen.hits, gen.misses) == (1, 1) and gen.last_replica_id < 0
    assert len(gen.cache.replica_ids(gen.current_key(4))) == 1


def test_skills_env_with_replay(tmp_path, live):
    path = tmp_path / "skills.sqlite"
    actions = [[1, 1, 0, 1], [1, 1, 4, 2]]  # focus on skill 0, then Evol-Instruct on skill 1
    first = _episode(_env(path, live, "DataGen-Skills-v0", num_iterations=2), 0, actions)
    env = _env(path, live, "DataGen-Skills-v0", num_iterations=2)
    again = _episode(env, 0, actions)
    assert [r[1] for r in again] == [r[1] for r in first]  # one replica per key: replayed
    assert [r[0] for r in again] == pytest.approx([r[0] for r in first])
    keys = set(env.generator.cache.counts())
    assert {(k.template, k.focus) for k in keys} == {
        ("self_instruct", env.skills[0]),
        ("evol_add_constraints", env.skills[1]),
    }


def test_env_config_field_and_vector_env(tmp_path):
    from datagen_gym.envs.vector import make_vec_env

    path = tmp_path / "vec.sqlite"
    cfg = Config().replace(rl_tuning={"replay_cache": str(path)})
    assert cfg.rl_tuning.replay_cache == str(path)
    venv = make_vec_env(2, env_kwargs={**SMALL, "replay_cache": str(path)}, vec_cls="dummy", seed=0)
    try:
        venv.reset()
        venv.step([KEEP, KEEP])
        gens = [e.unwrapped.generator for e in venv.envs]
    finally:
        venv.close()
    # env 0 missed and stored; env 1, stepped next, replays that batch (episodes of different
    # envs share the replicas; only one episode never sees a replica twice)
    assert [(g.hits, g.misses) for g in gens] == [(0, 1), (1, 0)]
    with sqlite3.connect(path) as conn:
        assert conn.execute("SELECT COUNT(*) FROM replicas").fetchone()[0] == 1
        json.loads(conn.execute("SELECT records FROM replicas").fetchone()[0])


def test_build_fills_a_grid_and_resumes(tmp_path, capsys):
    from datagen_gym.replay import build

    path = tmp_path / "grid.sqlite"
    argv = [
        "--cache",
        str(path),
        "--templates",
        "self_instruct,evol_breadth",
        "--temperatures",
        "0.9,1.0",
        "--top-ps",
        "0.9",
        "--batch-size",
        "4",
        "--seed",
        "3",
    ]
    assert build.main(argv + ["--replicas", "1"]) == 0
    assert "4 keys" in capsys.readouterr().err  # 2 templates x 2 temperatures x 1 top_p
    with sqlite3.connect(path) as conn:
        manifest = dict(conn.execute("SELECT key, value FROM manifest").fetchall())
    cache = ReplayCache(path, manifest)
    counts = cache.counts()
    assert len(counts) == 4 and set(counts.values()) == {1}
    first = {k: cache.get(cache.replica_ids(k)[0]).records for k in counts}
    assert build.main(argv + ["--replicas", "2"]) == 0  # resume: only the second replicas
    assert "4 batches to generate" in capsys.readouterr().err
    assert all(len(cache.replica_ids(k)) == 2 for k in counts)
    assert {k: cache.get(cache.replica_ids(k)[0]).records for k in counts} == first
