"""A checkpoint from someone else is data: it never imports code, contacts a host or reads an
environment variable; one run per output directory; interrupted runs keep their work.

Each test plays the attacker (or the unlucky user) of issue 21 against the real CLI.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from datagen.cli import main
from envs_tests.test_cli import assert_one_line_error, write_setup

REPO = Path(__file__).resolve().parents[1]


def evil_target(marker: Path) -> str:
    """A target file that proves it ran by writing ``marker``."""
    return (
        f"open({str(marker)!r}, 'w').write('ran')\n"
        "def target_model(records):\n    return {'accuracy': 0.5}\n"
    )


class Listener:
    """A loopback TCP port that counts the connections made to it (and what they sent)."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.received: list[bytes] = []
        self._stop = False
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def _serve(self) -> None:
        while not self._stop:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                continue
            conn.settimeout(1.0)
            try:
                self.received.append(conn.recv(65536))
            except OSError:
                self.received.append(b"")
            conn.close()

    def close(self) -> None:
        self._stop = True
        self._thread.join(timeout=2)
        self.sock.close()


@pytest.fixture()
def listener():
    server = Listener()
    yield server
    server.close()


@pytest.fixture(scope="module")
def finished(tmp_path_factory) -> Path:
    """A finished 2-step run with a user target file (conf/, data/, out/); tests copy it."""
    root = tmp_path_factory.mktemp("trust")
    cfg = write_setup(root)
    rc = main(
        [
            "rl-tune",
            "--config",
            str(cfg),
            "--output",
            str(root / "out"),
            "--no-tensorboard",
            "--timesteps",
            "2",
            "--n",
            "2",
            "--no-progress",
        ]
    )
    assert rc == 0
    return root


def copy_run(finished: Path, tmp_path: Path) -> tuple[Path, Path]:
    """A copy of the finished run; returns (its config, its output directory)."""
    root = tmp_path / "run"
    shutil.copytree(finished, root)
    # The config's paths were made absolute at the first run: point them at the copy.
    return root / "conf" / "rl.yaml", root / "out"


def tamper(out: Path, edit) -> dict:
    path = out / "checkpoint" / "tuner.json"
    state = json.loads(path.read_text())
    edit(state)
    path.write_text(json.dumps(state))
    return state


def resume(out: Path, *extra: str) -> list[str]:
    return [
        "rl-tune",
        "--output",
        str(out),
        "--resume",
        "--no-tensorboard",
        "--no-progress",
        "--timesteps",
        "3",
        "--n",
        "2",
        *extra,
    ]


# ---------------------------------------------------------------- a checkpoint never runs code
def test_resume_never_imports_a_target_the_checkpoint_names(finished, tmp_path, capsys):
    cfg, out = copy_run(finished, tmp_path)
    marker = tmp_path / "pwned"
    planted = out / "checkpoint" / "target.py"
    planted.write_text(evil_target(marker))

    def plant(state):
        state["config"]["rl_tuning"]["target_model_path"] = str(planted)

    tamper(out, plant)
    # Without the user's options: one line saying which ones to pass, nothing imported.
    assert main(resume(out)) == 2
    err = capsys.readouterr().err
    assert_one_line_error(err)
    assert "rl_tuning.target_model_path" in err and "--config" in err
    assert not marker.exists()
    # With the user's own config: the user's target runs; the checkpoint's is never imported.
    assert main(resume(out, "--config", str(cfg))) == 0
    err = capsys.readouterr().err
    assert f"rl_tuning.target_model_path='{cfg.parent / 'target.py'}' (was" in err
    assert not marker.exists()


def test_resume_takes_the_target_from_the_command(finished, tmp_path, capsys):
    cfg, out = copy_run(finished, tmp_path)
    # The run used a target file: resuming without naming it is refused, with the remedy.
    assert main(resume(out)) == 2
    err = capsys.readouterr().err
    assert_one_line_error(err)
    assert "--config FILE" in err and "rl_tuning.validation_data_path" in err
    # Naming it again resumes the run.
    assert main(resume(out, "--config", str(cfg))) == 0, capsys.readouterr().err
    history = [json.loads(line) for line in (out / "history.jsonl").read_text().splitlines()]
    assert [h["iteration"] for h in history] == [1, 2, 3]


def test_a_run_failure_says_how_to_resume_with_the_config(tmp_path, capsys):
    from envs_tests.test_reliability import failing_setup

    cfg, ok = failing_setup(tmp_path, limit=2)
    out = tmp_path / "out"
    args = ["rl-tune", "--config", str(cfg), "--output", str(out), "--no-tensorboard"]
    rc = main([*args, "--timesteps", "4", "--checkpoint-every", "1", "--no-progress"])
    assert rc == 1
    err = capsys.readouterr().err
    assert f"--resume --no-tensorboard --config {cfg.resolve()}" in err, err


# ------------------------------------------------- a checkpoint never chooses a host or a secret
def _point_at(listener: Listener, variable: str):
    def edit(state):
        state["config"]["sampling"].update(
            backend="openai", base_url=listener.url, model="m", api_key_env=variable
        )

    return edit


def test_resume_never_contacts_a_host_the_checkpoint_names(
    finished, tmp_path, capsys, listener, monkeypatch
):
    cfg, out = copy_run(finished, tmp_path)
    monkeypatch.setenv("USER_SECRET_FOR_TEST", "sk-do-not-send")
    tamper(out, _point_at(listener, "USER_SECRET_FOR_TEST"))
    for extra in ((), ("--config", str(cfg))):
        rc = main(resume(out, *extra))
        err = capsys.readouterr().err
        assert rc == 2, err
        assert_one_line_error(err)
        assert "sampling.backend" in err
    time.sleep(0.3)
    assert listener.received == []


def test_generate_from_a_checkpoint_never_contacts_its_host(
    finished, tmp_path, capsys, listener, monkeypatch
):
    _, out = copy_run(finished, tmp_path)
    monkeypatch.setenv("USER_SECRET_FOR_TEST", "sk-do-not-send")
    tamper(out, _point_at(listener, "USER_SECRET_FOR_TEST"))
    rc = main(
        [
            "generate",
            "--checkpoint",
            str(out / "checkpoint"),
            "--n",
            "2",
            "--output",
            str(tmp_path / "gen.jsonl"),
            "--no-progress",
        ]
    )
    err = capsys.readouterr().err
    assert rc == 2, err
    assert_one_line_error(err)
    assert "sampling.base_url" in err and "--set" in err
    time.sleep(0.3)
    assert listener.received == [] and not (tmp_path / "gen.jsonl").exists()


def test_generate_from_a_checkpoint_uses_the_commands_settings(finished, tmp_path, capsys):
    """The embedded teacher named on the command line replaces the checkpoint's server."""
    _, out = copy_run(finished, tmp_path)

    def edit(state):
        state["config"]["sampling"].update(
            backend="openai", base_url="http://127.0.0.1:9/v1", model="m", api_key_env="X"
        )

    tamper(out, edit)
    gen = tmp_path / "gen.jsonl"
    rc = main(
        [
            "generate",
            "--checkpoint",
            str(out / "checkpoint"),
            "--set",
            "sampling.backend=embedded",
            "--set",
            f"rl_tuning.target_model_path={out.parent / 'conf' / 'target.py'}",
            "--set",
            f"rl_tuning.validation_data_path={out.parent / 'data' / 'val.jsonl'}",
            "--n",
            "2",
            "--output",
            str(gen),
            "--no-progress",
        ]
    )
    assert rc == 0, capsys.readouterr().err
    assert gen.is_file()


# ------------------------------------------------------------- tampered positions and history
@pytest.mark.parametrize(
    "case",
    [
        "history entry without episode",
        "history entry with a string metric",
        "negative episode_step",
        "huge episode",
        "temperature 1e308",
        "best not in history",
    ],
)
def test_tampered_positions_are_refused_before_any_step(finished, tmp_path, capsys, case):
    cfg, out = copy_run(finished, tmp_path)
    summary_before = (out / "summary.json").read_bytes()
    history_before = (out / "history.jsonl").read_bytes()

    def edit(state):
        if case == "history entry without episode":
            del state["history"][0]["episode"]
        elif case == "history entry with a string metric":
            state["history"][1]["metric"] = "0.9"
        elif case == "negative episode_step":
            state["env"]["episode_step"] = -3
        elif case == "huge episode":
            state["env"]["episode"] = 10**20
        elif case == "temperature 1e308":
            state["generator"]["temperature"] = 1e308
        elif case == "best not in history":
            state["best"] = {**state["best"], "metric": 99.0}

    tamper(out, edit)
    rc = main(resume(out, "--config", str(cfg)))
    err = capsys.readouterr().err
    assert rc == 2, err
    assert_one_line_error(err)
    assert "tuner.json" in err
    # nothing of the run was rewritten
    assert (out / "summary.json").read_bytes() == summary_before
    assert (out / "history.jsonl").read_bytes() == history_before


# ------------------------------------------------------------------ one run per output directory
def test_a_second_run_on_the_same_output_is_refused(tmp_path, capsys):
    out = tmp_path / "out"
    out.mkdir()
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys; from datagen.run_lock import RunLock; l = RunLock(sys.argv[1]); "
            "l.acquire(); print('held', flush=True); sys.stdin.read()",
            str(out),
        ],
        cwd=REPO,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "held"
        args = ["rl-tune", "--output", str(out), "--no-tensorboard", "--no-progress"]
        rc = main([*args, "--timesteps", "1", "--batch-size", "2", "--num-iterations", "1"])
        err = capsys.readouterr().err
        assert rc == 2
        assert_one_line_error(err)
        assert "in use by another datagen run" in err and f"pid {holder.pid}" in err
        assert not (out / "checkpoint").exists() and not (out / "summary.json").exists()
    finally:
        holder.kill()
        holder.wait()
    # The holder died without releasing: the operating system did, so the next run goes.
    rc = main([*args, "--timesteps", "1", "--batch-size", "2", "--num-iterations", "1"])
    assert rc == 0, capsys.readouterr().err


def test_lock_files_honour_the_umask(tmp_path):
    from datagen.run_lock import LOCK_FILE, RunLock

    old = os.umask(0o077)
    try:
        with RunLock(tmp_path):
            pass
    finally:
        os.umask(old)
    assert (tmp_path / LOCK_FILE).stat().st_mode & 0o777 == 0o600


def test_stale_temp_files_of_a_killed_run_are_removed(finished, tmp_path, capsys):
    cfg, out = copy_run(finished, tmp_path)
    stale = [out / ".data.jsonl.0123456789ab.tmp", out / ".summary.json.ba9876543210.tmp"]
    for path in stale:
        path.write_text("half-written")
    stale_dir = out / ".checkpoint.00112233aabb.tmp"
    (stale_dir / "agent").mkdir(parents=True)
    keep = out / "notes.txt"
    keep.write_text("mine")
    assert main(resume(out, "--config", str(cfg))) == 0, capsys.readouterr().err
    assert not any(p.exists() for p in [*stale, stale_dir])
    assert keep.read_text() == "mine"


# ------------------------------------------------------------------------------ interruption
def test_ctrl_c_in_the_final_generation_keeps_the_summary_and_the_data(tmp_path):
    out = tmp_path / "out"
    cmd = [
        sys.executable,
        "-m",
        "datagen.cli",
        "rl-tune",
        "--output",
        str(out),
        "--no-tensorboard",
        "--no-progress",
        "--timesteps",
        "1",
        "--num-iterations",
        "1",
        "--batch-size",
        "4",
        "--n",
        "5000",
    ]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(cmd, cwd=REPO, env=env, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while not (out / "history.jsonl").exists() and time.monotonic() < deadline:
        assert proc.poll() is None, proc.stderr.read()
        time.sleep(0.1)
    time.sleep(1.0)  # inside the final generation (5000 records take far longer)
    proc.send_signal(signal.SIGINT)
    try:
        _, err = proc.communicate(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        raise AssertionError("Ctrl-C did not stop the run within 30 s") from None
    assert proc.returncode == 130, err
    summary = json.loads((out / "summary.json").read_text())
    assert summary["complete"] is False and summary["data_complete"] is False
    assert summary["steps_done"] == 1  # training had finished
    assert "interrupted while generating the final dataset" in summary["error"]
    lines = (out / "data.jsonl").read_text().splitlines()
    assert summary["num_records"] == len(lines) < 5000
    assert "final records in" in err
