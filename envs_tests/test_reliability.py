"""Issue 12: a shared checkpoint runs no code, a run loses or overwrites no work, failures say
what failed. Every test reproduces a failure of the issue on tiny settings (4 records, 3-step
episodes, a cheap target), in-process through ``datagen.cli.main`` where the CLI is what
the user meets.
"""

from __future__ import annotations

import base64
import json
import os
import pickle
import stat
import sys
import zipfile
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
from test_cli import assert_one_line_error, write_setup

from agents import ReinforceAgent, SB3Agent, load_agent, make_agent
from agents.common.checkpoint import CheckpointError
from datagen.cli import UNSAVED_RECORDS_FILE, main
from datagen.rl_tuning import RLTuner
from datagen.rl_tuning.rl_tuner import TUNER_FILE
from datagen_gym.results import read_jsonl

REPO = Path(__file__).resolve().parents[1]


# ----------------------------------------------------------------------------- helpers
class Evil:
    """Unpickling this writes ``marker``: the code a tampered checkpoint would run."""

    def __init__(self, marker: Path) -> None:
        self.marker = str(marker)

    def __reduce__(self):
        return (exec, (f"open({self.marker!r}, 'w').write('pwned')",))


def evil_bytes(marker: Path) -> bytes:
    return pickle.dumps(Evil(marker))


def plant_in_zip(zip_path: Path, marker: Path, members: tuple[str, ...] = ()) -> list[str]:
    """Replace every cloudpickle entry of the zip's ``data`` JSON (and add one) with the evil
    pickle, and the named ``members`` with raw evil pickles. Returns the replaced keys."""
    with zipfile.ZipFile(zip_path) as archive:
        contents = {name: archive.read(name) for name in archive.namelist()}
    data = json.loads(contents["data"])
    payload = {
        ":type:": "<class 'function'>",
        ":serialized:": base64.b64encode(evil_bytes(marker)).decode(),
    }
    replaced = [k for k, v in data.items() if isinstance(v, dict) and ":serialized:" in v]
    for key in replaced:
        data[key] = dict(payload)
    data["planted_extra"] = dict(payload)
    contents["data"] = json.dumps(data).encode()
    for name in members:
        contents[name] = evil_bytes(marker)
    with zipfile.ZipFile(zip_path, "w") as archive:
        for name, raw in contents.items():
            archive.writestr(name, raw)
    return replaced


def cli(*args: str) -> list[str]:
    return ["rl-tune", *args, "--no-progress"]


def run_cli(capsys, *args: str) -> tuple[int, str, str]:
    rc = main(cli(*args))
    captured = capsys.readouterr()
    return rc, captured.out, captured.err


FAIL_AFTER_TARGET = """
import os
LABELS = {{"positive", "negative"}}
CALLS = [0]

def make_target_model(validation_dataset):
    def target_model(records):
        CALLS[0] += 1
        if CALLS[0] > {limit} and not os.path.exists({ok!r}):
            raise RuntimeError("the GPU fell off the bus")
        hits = sum(str(r["output"]).strip() in LABELS for r in records)
        return {{"accuracy": (hits + 1) / (len(records) + 2)}}
    return target_model
"""


def failing_setup(tmp_path: Path, limit: int = 4, **rl) -> tuple[Path, Path]:
    """A config whose target raises from its ``limit + 1``-th call on (the first call is the
    baseline at reset), until the file ``ok`` exists. Returns (config, ok-file)."""
    ok = tmp_path / "target-fixed"
    cfg = write_setup(tmp_path, target=FAIL_AFTER_TARGET.format(limit=limit, ok=str(ok)), **rl)
    return cfg, ok


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory) -> Path:
    """A finished 2-step run (config in conf/, outputs in out/); tests copy it."""
    root = tmp_path_factory.mktemp("finished")
    cfg = write_setup(root)
    rc = main(
        cli(
            "--config",
            str(cfg),
            "--output",
            str(root / "out"),
            "--no-tensorboard",
            "--timesteps",
            "2",
            "--n",
            "2",
        )
    )
    assert rc == 0
    return root


def copy_run(finished: Path, tmp_path: Path) -> Path:
    """A private copy of the finished run's output directory (its config paths stay valid)."""
    import shutil

    out = tmp_path / "out"
    shutil.copytree(finished / "out", out)
    return out


# ----------------------------------------------------------------------------- 1. no pickle
def test_the_planted_payload_is_live():
    """Sanity: SB3's own reader does run the planted pickle (so the tests below can fail)."""
    from stable_baselines3.common.save_util import json_to_data

    marker = Path(os.environ.get("TMPDIR", "/tmp")) / f"datagen-marker-{os.getpid()}"
    marker.unlink(missing_ok=True)
    payload = base64.b64encode(evil_bytes(marker)).decode()
    json_to_data(json.dumps({"lr_schedule": {":serialized:": payload}}))
    assert marker.read_text() == "pwned"
    marker.unlink()


@pytest.mark.parametrize("algo", ["ppo", "dqn", "td3"])
def test_sb3_load_never_unpickles_the_zip_data(tmp_path, algo):
    env = gym.make("Pendulum-v1" if algo == "td3" else "CartPole-v1")
    kwargs = (
        {"n_steps": 8, "batch_size": 8}
        if algo == "ppo"
        else {"learning_starts": 4, "batch_size": 4}
    )
    agent = make_agent(algo, env, seed=0, **kwargs)
    agent.learn(16)
    agent.save(tmp_path / "a")
    marker = tmp_path / "marker"
    replaced = plant_in_zip(tmp_path / "a" / "model.zip", marker)
    assert {"lr_schedule", "observation_space", "action_space", "policy_class"} <= set(replaced)

    loaded = load_agent(tmp_path / "a", env=env)
    assert not marker.exists()
    assert isinstance(loaded, SB3Agent) and loaded.model.num_timesteps == 16
    obs = np.stack([env.observation_space.sample() for _ in range(4)])
    np.testing.assert_array_equal(
        loaded.predict(obs, deterministic=True)[0], agent.predict(obs, deterministic=True)[0]
    )
    loaded.learn(4, reset_num_timesteps=False)  # the rebuilt model trains
    assert loaded.model.num_timesteps >= 20 and not marker.exists()


@pytest.mark.parametrize("member", ["policy.pth", "policy.optimizer.pth", "pytorch_variables.pth"])
def test_sb3_load_refuses_a_pickle_in_a_tensor_member(tmp_path, member):
    env = gym.make("CartPole-v1")
    make_agent("ppo", env, seed=0, n_steps=8, batch_size=8).save(tmp_path / "a")
    marker = tmp_path / "marker"
    plant_in_zip(tmp_path / "a" / "model.zip", marker, members=(member,))
    with pytest.raises(CheckpointError) as info:
        load_agent(tmp_path / "a", env=env)
    assert not marker.exists()
    message = str(info.value)
    assert "\n" not in message and "model.zip" in message and member in message


def test_json_and_safetensors_files_refuse_planted_pickles(tmp_path):
    env = gym.make("CartPole-v1")
    marker = tmp_path / "marker"
    ReinforceAgent(env, seed=0).save(tmp_path / "rf")
    make_agent("random_search", env, seed=0).save(tmp_path / "rs")
    make_agent("ppo", env, seed=0, n_steps=8, batch_size=8).save(tmp_path / "ppo")
    planted = [
        tmp_path / "rf" / "policy.safetensors",
        tmp_path / "rf" / "agent.json",
        tmp_path / "rs" / "agent.json",
        tmp_path / "ppo" / "agent.json",
    ]
    for file in planted:
        original = file.read_bytes()
        file.write_bytes(evil_bytes(marker))
        with pytest.raises(CheckpointError) as info:
            load_agent(file.parent, env=env)
        assert str(file) in str(info.value) and "\n" not in str(info.value)
        file.write_bytes(original)
    assert not marker.exists()


def test_resume_of_a_tampered_sb3_run(tmp_path, capsys):
    cfg = write_setup(tmp_path)
    out = tmp_path / "out"
    rc, _, err = run_cli(
        capsys,
        "--config",
        str(cfg),
        "--algo",
        "ppo",
        "--timesteps",
        "2",
        "--output",
        str(out),
        "--no-tensorboard",
        "--n",
        "2",
    )
    assert rc == 0, err
    marker = tmp_path / "marker"
    zip_path = out / "checkpoint" / "agent" / "model.zip"
    plant_in_zip(zip_path, marker)
    resume = ["--output", str(out), "--resume", "--config", str(cfg), "--algo", "ppo"]
    resume.append("--no-tensorboard")
    rc, _, err = run_cli(capsys, *resume, "--timesteps", "3", "--n", "2")
    assert rc == 0, err
    assert not marker.exists()
    assert len(read_jsonl(out / "history.jsonl")) == 3

    plant_in_zip(zip_path, marker, members=("policy.pth",))
    rc, _, err = run_cli(capsys, *resume, "--timesteps", "4")
    assert rc == 2 and not marker.exists()
    assert_one_line_error(err)
    assert "policy.pth" in err and str(zip_path) in err

    (out / "checkpoint" / TUNER_FILE).write_bytes(evil_bytes(marker))
    rc, _, err = run_cli(capsys, *resume)
    assert rc == 2 and not marker.exists()
    assert_one_line_error(err)
    assert str(out / "checkpoint" / TUNER_FILE) in err


# ----------------------------------------------------------------------------- 2. paths
def _bad_paths(tmp_path: Path) -> dict[str, tuple[list[str], str]]:
    a_file = tmp_path / "a-file"
    a_file.write_text("not a directory\n")
    cases = {
        "output is a file": (
            ["--output", str(a_file)],
            f"--output {a_file}: exists and is not a directory",
        ),
        "output under a file": (["--output", str(a_file / "sub")], f"--output {a_file / 'sub'}"),
        "tensorboard is a file": (
            ["--output", str(tmp_path / "o"), "--tensorboard", str(a_file)],
            f"--tensorboard {a_file}",
        ),
    }
    if sys.platform.startswith("linux"):
        cases["output in /proc"] = (["--output", "/proc/datagen-foo"], "--output /proc/datagen-foo")
        cases["tensorboard in /proc"] = (
            ["--output", str(tmp_path / "o"), "--tensorboard", "/proc/datagen-foo"],
            "--tensorboard /proc/datagen-foo",
        )
    return cases


@pytest.mark.parametrize(
    "case",
    [
        "output is a file",
        "output under a file",
        "tensorboard is a file",
        "output in /proc",
        "tensorboard in /proc",
    ],
)
def test_bad_output_paths_fail_before_the_first_step(tmp_path, capsys, monkeypatch, case):
    cases = _bad_paths(tmp_path)
    if case not in cases:
        pytest.skip("needs Linux /proc")
    args, expected = cases[case]
    calls = []
    monkeypatch.setattr(RLTuner, "train", lambda *a, **k: calls.append(1))
    rc, _, err = run_cli(capsys, *args, "--timesteps", "1000")
    assert rc == 2 and not calls
    assert_one_line_error(err)
    assert expected in err


@pytest.mark.skipif(
    not hasattr(os, "geteuid") or os.geteuid() == 0, reason="root writes into read-only directories"
)
def test_unwritable_output_directory(tmp_path, capsys):
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        rc, _, err = run_cli(capsys, "--output", str(locked / "out"))
    finally:
        locked.chmod(0o700)
    assert rc == 2
    assert_one_line_error(err)
    assert f"--output {locked / 'out'}" in err


def test_existing_run_needs_resume_or_overwrite(tmp_path, capsys):
    cfg = write_setup(tmp_path)
    out = tmp_path / "out"
    common = ["--config", str(cfg), "--output", str(out), "--no-tensorboard", "--n", "2"]
    assert run_cli(capsys, *common, "--timesteps", "4")[0] == 0
    before = (out / "checkpoint" / TUNER_FILE).read_text()

    rc, _, err = run_cli(capsys, *common, "--timesteps", "2")
    assert rc == 2
    assert_one_line_error(err)
    assert "--resume" in err and "--overwrite" in err and "4 steps" in err
    assert (out / "checkpoint" / TUNER_FILE).read_text() == before  # untouched

    rc, _, err = run_cli(capsys, *common, "--timesteps", "2", "--overwrite")
    assert rc == 0, err
    assert "removed the previous run" in err
    assert len(read_jsonl(out / "history.jsonl")) == 2
    assert json.loads((out / "checkpoint" / TUNER_FILE).read_text())["counters"]["steps_done"] == 2
    rc, _, err = run_cli(capsys, *common, "--resume", "--overwrite")
    assert rc == 2 and "exclude each other" in err


@pytest.mark.parametrize("umask", [0o022, 0o027])
def test_outputs_honour_the_umask(tmp_path, capsys, umask):
    cfg = write_setup(tmp_path)
    out, tb = tmp_path / "out", tmp_path / "runs"
    old = os.umask(umask)
    try:
        rc, _, err = run_cli(
            capsys,
            "--config",
            str(cfg),
            "--output",
            str(out),
            "--tensorboard",
            str(tb),
            "--timesteps",
            "2",
            "--n",
            "2",
        )
    finally:
        os.umask(old)
    assert rc == 0, err
    files = [
        out / "data.jsonl",
        out / "history.jsonl",
        out / "summary.json",
        out / "checkpoint" / TUNER_FILE,
        out / "checkpoint" / "agent" / "agent.json",
    ]
    dirs = [out, out / "checkpoint", out / "checkpoint" / "agent"]
    for f in files:
        assert stat.S_IMODE(f.stat().st_mode) == 0o666 & ~umask, f
    for d in dirs:
        assert stat.S_IMODE(d.stat().st_mode) == 0o777 & ~umask, d


@pytest.mark.parametrize(
    "content, expected",
    [
        (None, "is not valid JSON"),  # truncated
        ('{"format_version": 1}', "lacks the key 'config'"),
        ("[]", "holds a JSON array, expected an object"),
        ('{"format_version": 7}', "format_version 7"),
        (b"\x80\x04\x95garbage", "not a JSON text file"),
    ],
)
def test_corrupt_checkpoint_is_one_line_naming_the_file(
    tmp_path, capsys, finished_run, content, expected
):
    out = copy_run(finished_run, tmp_path)
    tuner_json = out / "checkpoint" / TUNER_FILE
    text = tuner_json.read_text()
    if content is None:
        tuner_json.write_text(text[: len(text) // 2])
    elif isinstance(content, bytes):
        tuner_json.write_bytes(content)
    else:
        tuner_json.write_text(content)
    rc, _, err = run_cli(capsys, "--output", str(out), "--resume", "--no-tensorboard")
    assert rc == 2
    assert_one_line_error(err)
    assert str(tuner_json) in err and expected in err
    # `datagen generate --checkpoint` reads the same file the same way.
    rc = main(
        [
            "generate",
            "--checkpoint",
            str(out / "checkpoint"),
            "--output",
            str(tmp_path / "g.jsonl"),
            "--no-progress",
        ]
    )
    err = capsys.readouterr().err
    assert rc == 2 and str(tuner_json) in err
    assert_one_line_error(err)


def test_corrupt_agent_files_name_the_file(tmp_path):
    tuner = RLTuner(
        {"rl_tuning": {"batch_size": 4, "num_iterations": 3, "seed": 0}},
        target_model=lambda records: {"accuracy": len(records) / 100},
    )
    tuner.train(total_timesteps=1, progress=False)
    tuner.save(tmp_path / "ckpt")
    agent_json = tmp_path / "ckpt" / "agent" / "agent.json"
    agent_json.write_text("[]")
    with pytest.raises(CheckpointError, match="agent"):
        RLTuner.load(tmp_path / "ckpt")
    agent_json.unlink()
    with pytest.raises(CheckpointError, match="incomplete checkpoint"):
        RLTuner.load(tmp_path / "ckpt")


def test_tampered_env_state_is_refused_before_any_step(tmp_path):
    tuner = RLTuner(
        {"rl_tuning": {"batch_size": 4, "num_iterations": 3, "seed": 0}},
        target_model=lambda records: {"accuracy": len(records) / 100},
    )
    tuner.train(total_timesteps=1, progress=False)
    tuner.save(tmp_path / "ckpt")
    file = tmp_path / "ckpt" / TUNER_FILE
    state = json.loads(file.read_text())
    for key, value, expected in [
        ("actions", [[7, 7, 7]], "env.actions[0]"),
        ("rng_state", {"bit_generator": "seed"}, "env.rng_state"),
    ]:
        bad = json.loads(json.dumps(state))
        bad["env"][key] = value
        file.write_text(json.dumps(bad))
        with pytest.raises(CheckpointError, match=expected.replace("[", r"\[")):
            RLTuner.load(tmp_path / "ckpt")


# ----------------------------------------------------------------------------- 3. failures
def test_target_failure_keeps_the_work_and_says_how_to_resume(tmp_path, capsys):
    """Also issue item 8 for a hand-rolled agent: see the TensorBoard check at the end."""
    cfg, ok = failing_setup(tmp_path, limit=5)
    out, tb = tmp_path / "out", tmp_path / "runs"
    rc, _, err = run_cli(
        capsys,
        "--config",
        str(cfg),
        "--output",
        str(out),
        "--tensorboard",
        str(tb),
        "--timesteps",
        "6",
        "--checkpoint-every",
        "3",
    )
    assert rc == 1
    assert_one_line_error(err)
    target_path = str((tmp_path / "conf" / "target.py").resolve())
    assert f"the target model ({target_path}) failed at step" in err
    assert "GPU fell off the bus" in err and "TargetModelError" in err
    assert f"datagen rl-tune --output {out} --resume --tensorboard {tb}" in err
    history = read_jsonl(out / "history.jsonl")
    summary = json.loads((out / "summary.json").read_text())
    assert summary["complete"] is False and "GPU fell off the bus" in summary["error"]
    assert summary["steps_done"] == len(history) >= 3
    assert [h["iteration"] for h in history] == list(range(1, len(history) + 1))
    assert summary["checkpoint_steps"] == 3
    # The steps after the checkpoint (a resume redoes them) keep their records.
    unsaved = read_jsonl(out / UNSAVED_RECORDS_FILE)
    steps = {r["step"] for r in unsaved}
    assert steps and steps <= set(range(4, len(history) + 1))
    assert all({"instruction", "input", "output"} <= set(r) for r in unsaved)

    ok.write_text("fixed")
    rc, _, err = run_cli(
        capsys, "--output", str(out), "--resume", "--config", str(cfg), "--tensorboard", str(tb)
    )
    assert rc == 0, err
    summary = json.loads((out / "summary.json").read_text())
    assert summary["complete"] is True and summary["steps_done"] == 6
    history = read_jsonl(out / "history.jsonl")
    assert len(history) == 6
    assert_tensorboard_matches(tb, "random_search", history)


def test_ctrl_c_keeps_the_finished_steps(tmp_path, capsys):
    cfg = write_setup(
        tmp_path,
        target=FAIL_AFTER_TARGET.format(limit=3, ok="/nonexistent").replace(
            'raise RuntimeError("the GPU fell off the bus")', "raise KeyboardInterrupt"
        ),
    )
    out = tmp_path / "out"
    rc, _, err = run_cli(
        capsys, "--config", str(cfg), "--output", str(out), "--no-tensorboard", "--timesteps", "6"
    )
    assert rc == 130 and "interrupted" in err and "Traceback" not in err
    summary = json.loads((out / "summary.json").read_text())
    assert summary["complete"] is False and summary["error"] == "interrupted"
    assert summary["steps_done"] == len(read_jsonl(out / "history.jsonl")) >= 2


def test_library_train_checks_its_paths_first(tmp_path):
    tuner = RLTuner(
        {"rl_tuning": {"batch_size": 4, "num_iterations": 3, "seed": 0}},
        target_model=lambda records: {"accuracy": len(records) / 100},
    )
    a_file = tmp_path / "f"
    a_file.write_text("x")
    for kwargs, name in [
        ({"checkpoint_dir": a_file / "ckpt"}, "checkpoint_dir"),
        ({"checkpoint_dir": a_file}, "checkpoint_dir"),
        ({"tensorboard_log": a_file}, "tensorboard_log"),
    ]:
        with pytest.raises(ValueError, match=name):
            tuner.train(total_timesteps=2, progress=False, **kwargs)
        assert tuner.steps_done == 0


class DiesAfter:
    """A teacher whose server answers ``calls`` requests and then only HTTP 503 (it died)."""

    deterministic = True

    def __init__(self, inner, calls: int) -> None:
        self.inner, self.calls, self.server = inner, calls, None

    def generate(self, prompts, **kwargs):
        self.calls -= 1
        if self.calls == 0:
            self.server.inject("503", count=10**6)
        return self.inner.generate(prompts, **kwargs)


def test_backend_failure_names_the_url_and_a_moved_server_resumes(tmp_path, capsys, teacher):
    from support.openai_server import OpenAICompatServer

    dying = DiesAfter(teacher, 16)
    out = tmp_path / "out"
    with OpenAICompatServer(dying, model_name="teacher") as server:
        dying.server = server
        cfg = write_setup(tmp_path)
        cfg.write_text(
            cfg.read_text() + "sampling:\n  backend: openai\n"
            f"  base_url: {server.base_url}\n  model: teacher\n"
            "  max_retries: 0\n  max_concurrency: 1\n  timeout_s: 20\n"
        )
        rc, _, err = run_cli(
            capsys,
            "--config",
            str(cfg),
            "--output",
            str(out),
            "--no-tensorboard",
            "--timesteps",
            "30",
            "--checkpoint-every",
            "1",
        )
    assert rc == 1
    assert_one_line_error(err)
    assert f"the teacher backend (openai at {server.base_url}) failed at step" in err
    assert "completions kept" in err and ".completions" not in err
    assert "--resume" in err
    summary = json.loads((out / "summary.json").read_text())
    assert summary["complete"] is False and summary["checkpoint_steps"] >= 1
    done = summary["steps_done"]
    assert done == len(read_jsonl(out / "history.jsonl"))

    # The teacher came back elsewhere: the resume points at it and finishes the run.
    with OpenAICompatServer(teacher, model_name="teacher") as moved:
        rc, _, err = run_cli(
            capsys,
            "--output",
            str(out),
            "--resume",
            "--config",
            str(cfg),
            "--no-tensorboard",
            "--timesteps",
            str(done + 1),
            "--n",
            "1",
            "--set",
            f"sampling.base_url={moved.base_url}",
        )
    assert rc == 0, err
    assert f"sampling.base_url='{moved.base_url}' (was '{server.base_url}')" in err
    summary = json.loads((out / "summary.json").read_text())
    assert summary["complete"] is True and summary["steps_done"] == done + 1
    assert summary["config"]["sampling"]["base_url"] == moved.base_url


# ----------------------------------------------------------------------------- 4. resume options
def test_resume_applies_run_length_and_connection_settings(tmp_path, capsys):
    cfg, ok = failing_setup(tmp_path, limit=5)
    out = tmp_path / "out"
    common = ["--output", str(out), "--no-tensorboard", "--n", "2"]
    assert (
        run_cli(
            capsys, "--config", str(cfg), *common, "--timesteps", "8", "--checkpoint-every", "2"
        )[0]
        == 1
    )
    ok.write_text("fixed")
    rc, _, err = run_cli(
        capsys,
        *common,
        "--resume",
        "--config",
        str(cfg),
        "--timesteps",
        "5",
        "--set",
        "sampling.timeout_s=5",
        "--set",
        "sampling.max_concurrency=2",
    )
    assert rc == 0, err
    assert "applied:" in err and "--timesteps 5 (was 8)" in err
    assert "sampling.timeout_s=5 (was 60.0)" in err and "sampling.max_concurrency=2" in err
    summary = json.loads((out / "summary.json").read_text())
    assert summary["steps_done"] == 5 and summary["complete"] is True
    assert summary["config"]["sampling"]["timeout_s"] == 5
    assert summary["config"]["sampling"]["max_concurrency"] == 2

    # The same command again (same config and flags): nothing to refuse.
    rc, _, err = run_cli(capsys, "--config", str(cfg), *common, "--resume")
    assert rc == 0, err


def test_set_paths_are_stored_absolute(tmp_path, capsys, monkeypatch):
    write_setup(tmp_path)
    monkeypatch.chdir(tmp_path)
    out = tmp_path / "out"
    rc, _, err = run_cli(
        capsys,
        "--set",
        "rl_tuning.validation_data_path=data/val.jsonl",
        "--set",
        "rl_tuning.batch_size=4",
        "--set",
        "rl_tuning.num_iterations=2",
        "--output",
        str(out),
        "--no-tensorboard",
        "--timesteps",
        "1",
        "--n",
        "1",
    )
    assert rc == 0, err
    saved = json.loads((out / "checkpoint" / TUNER_FILE).read_text())["config"]
    assert saved["rl_tuning"]["validation_data_path"] == str(tmp_path / "data" / "val.jsonl")
    # Resuming from elsewhere with the same relative --set is the same path: accepted.
    monkeypatch.chdir(tmp_path / "data")
    rc, _, err = run_cli(
        capsys,
        "--set",
        "rl_tuning.validation_data_path=val.jsonl",
        "--output",
        str(out),
        "--resume",
        "--no-tensorboard",
        "--n",
        "1",
    )
    assert rc == 0, err


@pytest.mark.parametrize(
    "args, field",
    [
        (["--seed", "1"], "rl_tuning.seed"),
        (["--set", "generation.template=evol_deepen"], "generation.template"),
        (["--set", "sampling.backend=transformers"], "sampling.backend"),
        (["--batch-size", "8"], "rl_tuning.batch_size"),
        (["--algo", "ppo"], "rl_tuning.rl_algorithm"),
    ],
)
def test_resume_refuses_result_changing_settings(tmp_path, capsys, finished_run, args, field):
    out = copy_run(finished_run, tmp_path)
    cfg = finished_run / "conf" / "rl.yaml"
    rc, _, err = run_cli(
        capsys, "--output", str(out), "--resume", "--config", str(cfg), "--no-tensorboard", *args
    )
    assert rc == 2
    assert_one_line_error(err)
    assert f"cannot change {field}" in err and "start a new run" in err


def test_library_resume_config_changes(tmp_path):
    tuner = RLTuner(
        {"rl_tuning": {"batch_size": 4, "num_iterations": 3, "seed": 0}},
        target_model=lambda records: {"accuracy": len(records) / 100},
    )
    tuner.train(total_timesteps=1, checkpoint_dir=tmp_path / "ckpt", progress=False)
    loaded = RLTuner.load(tmp_path / "ckpt", config_changes={"sampling": {"max_retries": 1}})
    assert loaded.config.sampling.max_retries == 1
    assert loaded.resume_changes == ["sampling.max_retries=1 (was 4)"]
    with pytest.raises(ValueError, match="cannot change rl_tuning.seed"):
        RLTuner.load(tmp_path / "ckpt", config_changes={"rl_tuning": {"seed": 3}})
    with pytest.raises(ValueError, match="sampling.timeout_s"):  # not an OverflowError
        RLTuner.load(tmp_path / "ckpt", config_changes={"sampling": {"timeout_s": 10**400}})


# ----------------------------------------------------------------------------- 5. TensorBoard
def _scalar_steps(run_dir: Path, tag: str) -> list[tuple[int, float]]:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(run_dir))
    acc.Reload()
    return [(e.step, e.value) for e in acc.Scalars(tag)]


def assert_tensorboard_matches(tb: Path, algo: str, history: list[dict]) -> None:
    """One run directory whose datagen/metric has each step once, with the history's values
    (the failed run's points after its checkpoint were purged, not duplicated)."""
    runs = sorted(tb.iterdir())
    assert [r.name for r in runs] == [f"{algo}_1"]
    points = _scalar_steps(runs[0], "datagen/metric")
    assert [s for s, _ in points] == list(range(1, len(history) + 1))
    assert [v for _, v in points] == pytest.approx([h["metric"] for h in history])


def test_tensorboard_has_no_duplicate_steps_after_resume_sb3(tmp_path, capsys):
    algo = "ppo"
    cfg, ok = failing_setup(tmp_path, limit=5)
    out, tb = tmp_path / "out", tmp_path / "runs"
    common = ["--output", str(out), "--tensorboard", str(tb), "--n", "1"]
    assert (
        run_cli(
            capsys,
            "--config",
            str(cfg),
            "--algo",
            algo,
            *common,
            "--timesteps",
            "6",
            "--checkpoint-every",
            "3",
            "--set",
            "rl_tuning.learning_rate=0.01",
        )[0]
        == 1
    )
    failed_steps = len(read_jsonl(out / "history.jsonl"))
    assert failed_steps > 3  # steps after the checkpoint were logged by the failed run
    ok.write_text("fixed")
    rc, _, err = run_cli(
        capsys,
        *common,
        "--resume",
        "--config",
        str(cfg),
        "--algo",
        algo,
        "--set",
        "rl_tuning.learning_rate=0.01",
    )
    assert rc == 0, err
    history = read_jsonl(out / "history.jsonl")
    assert len(history) == 6
    assert_tensorboard_matches(tb, algo, history)


# ----------------------------------------------------------------------------- 6. smaller
def test_outputs_have_no_float_noise_and_no_null_step(tmp_path, capsys):
    cfg = write_setup(tmp_path)
    out = tmp_path / "out"
    rc, _, err = run_cli(
        capsys,
        "--config",
        str(cfg),
        "--output",
        str(out),
        "--no-tensorboard",
        "--timesteps",
        "6",
        "--n",
        "3",
    )
    assert rc == 0, err
    summary = json.loads((out / "summary.json").read_text())
    for entry in read_jsonl(out / "history.jsonl") + [summary["best_params"]]:
        for key in ("temperature", "top_p"):
            assert entry[key] == round(entry[key], 6), entry
    for record in read_jsonl(out / "data.jsonl"):
        assert "step" not in record


def test_make_validation_data_names_the_file_after_the_task(tmp_path):
    import importlib.util

    script = REPO / "examples" / "make_validation_data.py"
    spec = importlib.util.spec_from_file_location("make_validation_data", script)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert module.default_output("topic") == REPO / "examples" / "validation_topic.jsonl"
    # The example config's file keeps its name.
    assert module.default_output("sentiment").name == "validation_sentiment.jsonl"
    assert (REPO / "examples" / "validation_sentiment.jsonl").is_file()
    out = tmp_path / "v.jsonl"
    module.main(["--task", "topic", "--n", "5", "--output", str(out)])
    rows = read_jsonl(out)
    assert len(rows) == 5 and {r["output"] for r in rows} <= {
        "sports",
        "politics",
        "science",
        "business",
    }


def test_gitignore_lists_the_readme_output():
    assert "out/" in (REPO / ".gitignore").read_text().split()


def test_library_use_shows_no_weight_loading_bar(capfd):
    from transformers.utils import logging as hf_logging

    from datagen_gym.backends.transformers_backend import EMBEDDED_TEACHER, TransformersBackend

    hf_logging.enable_progress_bar()  # as in a fresh process (the CLI turns it off)
    TransformersBackend(EMBEDDED_TEACHER)
    assert "Loading weights" not in capfd.readouterr().err
    assert hf_logging.is_progress_bar_enabled()  # the user's setting is left as it was


@pytest.mark.parametrize("umask", [0o022, 0o027])
def test_model_directories_honour_the_umask(tmp_path, umask):
    """transformers writes model.safetensors as 0600; the student cache and a retrained teacher
    (both through save_pretrained) must come out like any other file."""
    from datagen_gym.targets.lora_target import make_tiny_student

    old = os.umask(umask)
    try:
        path = make_tiny_student(tmp_path / "student", init="random", seed=0)
    finally:
        os.umask(old)
    files = [f for f in path.iterdir() if f.is_file()]
    assert "model.safetensors" in {f.name for f in files}
    for f in files:
        assert stat.S_IMODE(f.stat().st_mode) == 0o666 & ~umask, f


def test_atomic_write_dir_replaces_whole_or_not_at_all(tmp_path):
    from datagen_gym.atomic_io import atomic_write_dir

    target = tmp_path / "model"

    def write(text):
        def _write(tmp):
            (tmp / "a.txt").write_text(text)
            (tmp / "b.txt").write_text(text)

        return _write

    atomic_write_dir(target, write("one"))
    atomic_write_dir(target, write("two"))
    assert {f.read_text() for f in target.iterdir()} == {"two"}

    def fail(tmp):
        (tmp / "a.txt").write_text("three")
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError, match="disk full"):
        atomic_write_dir(target, fail)
    assert {f.read_text() for f in target.iterdir()} == {"two"}  # the old one is intact
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model"]  # no temporaries left
