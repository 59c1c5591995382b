"""The ``datagen`` CLI: rl-tune / generate end to end on tiny settings, resume, and errors."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from datagen.cli import main
from datagen_gym.results import read_jsonl

REPO = Path(__file__).resolve().parents[1]

TARGET_FILE = """
LABELS = {"positive", "negative"}

def make_target_model(validation_dataset):
    assert validation_dataset and "output" in validation_dataset[0]
    def target_model(records):
        hits = sum(str(r["output"]).strip() in LABELS for r in records)
        return {"accuracy": (hits + 1) / (len(records) + 2)}
    return target_model
"""


def write_setup(tmp_path: Path, *, target: str = TARGET_FILE, **rl) -> Path:
    """A config in tmp/conf/ pointing at tmp/conf/target.py and tmp/data/val.jsonl (relative)."""
    conf, data = tmp_path / "conf", tmp_path / "data"
    conf.mkdir(exist_ok=True)
    data.mkdir(exist_ok=True)
    (conf / "target.py").write_text(target)
    rows = [
        {
            "instruction": "Is this review positive or negative?",
            "input": f"text {i}",
            "output": "positive" if i % 2 else "negative",
        }
        for i in range(10)
    ]
    (data / "val.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    settings = {
        "batch_size": 4,
        "num_iterations": 3,
        "seed": 0,
        "target_model_path": "target.py",
        "validation_data_path": "../data/val.jsonl",
        **rl,
    }
    lines = ["rl_tuning:"] + [f"  {k}: {json.dumps(v)}" for k, v in settings.items()]
    path = conf / "rl.yaml"
    path.write_text("\n".join(lines) + "\n")
    return path


def assert_one_line_error(err: str) -> None:
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, err
    assert lines[0].startswith("datagen: error:"), err
    assert "Traceback" not in err


# ----------------------------------------------------------------------------- rl-tune
def test_rl_tune_in_process_and_resume(tmp_path, capsys):
    cfg = write_setup(tmp_path)
    out, tb = tmp_path / "out", tmp_path / "runs"
    rc = main(
        [
            "rl-tune",
            "--config",
            str(cfg),
            "--output",
            str(out),
            "--tensorboard",
            str(tb),
            "--timesteps",
            "3",
            "--n",
            "5",
            "--no-progress",
        ]
    )
    captured = capsys.readouterr()
    assert rc == 0, captured.err
    assert "best accuracy" in captured.out and "baseline" in captured.out
    assert str(out / "data.jsonl") in captured.out and "tensorboard --logdir" in captured.out
    history = read_jsonl(out / "history.jsonl")
    assert [h["iteration"] for h in history] == [1, 2, 3]
    summary = json.loads((out / "summary.json").read_text())
    assert (
        summary["steps_done"] == 3
        and summary["num_records"] == len(read_jsonl(out / "data.jsonl")) > 0
    )
    best = summary["best_params"]
    assert all(r["template"] == best["template"] for r in read_jsonl(out / "data.jsonl"))
    assert (out / "checkpoint" / "tuner.json").is_file()
    # relative paths were resolved against the config file's directory
    assert summary["config"]["rl_tuning"]["validation_data_path"] == str(
        (tmp_path / "data" / "val.jsonl").resolve()
    )
    assert list(tb.glob("random_search_*/events.out.tfevents.*"))

    # --resume with a larger total continues the same run (rl_tune alias); the target file is
    # named again (--config): a checkpoint never supplies code to import.
    rc = main(
        [
            "rl_tune",
            "--output",
            str(out),
            "--resume",
            "--config",
            str(cfg),
            "--timesteps",
            "5",
            "--no-tensorboard",
            "--n",
            "2",
            "--no-progress",
        ]
    )
    captured = capsys.readouterr()
    assert rc == 0, captured.err
    assert "resuming random_search" in captured.err
    history = read_jsonl(out / "history.jsonl")
    assert [h["iteration"] for h in history] == [1, 2, 3, 4, 5]
    assert [h["episode"] for h in history] == [1, 1, 1, 2, 2]


def test_rl_tune_with_replay_and_replay_build(tmp_path, capsys):
    """--replay fills (then reuses) a cache; replay-build passes its arguments through."""
    cfg = write_setup(tmp_path)
    cache = tmp_path / "cache.sqlite"
    argv = [
        "rl-tune",
        "--config",
        str(cfg),
        "--timesteps",
        "3",
        "--n",
        "2",
        "--no-progress",
        "--no-tensorboard",
        "--replay",
        str(cache),
    ]
    assert main([*argv, "--output", str(tmp_path / "a")]) == 0, capsys.readouterr().err
    summary = json.loads((tmp_path / "a" / "summary.json").read_text())
    assert summary["config"]["rl_tuning"]["replay_cache"] == str(cache.resolve())
    stored = cache.stat().st_size
    assert stored > 0
    assert main([*argv, "--output", str(tmp_path / "b")]) == 0, capsys.readouterr().err
    # the same seed replays the same batches: same history, nothing new in the cache
    metrics = [[h["metric"] for h in read_jsonl(tmp_path / d / "history.jsonl")] for d in "ab"]
    assert metrics[0] == metrics[1]
    capsys.readouterr()
    assert main(["replay-build", "--cache", str(cache), "--shard", "5/2"]) == 2
    assert_one_line_error(capsys.readouterr().err)


def test_rl_tune_subprocess(tmp_path):
    cfg = write_setup(tmp_path)
    out = tmp_path / "out"
    env = {
        **os.environ,
        "PYTHONPATH": str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""),
        "OMP_NUM_THREADS": "1",
        "MKL_NUM_THREADS": "1",
    }
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "datagen.cli",
            "rl-tune",
            "--config",
            str(cfg),
            "--algo",
            "reinforce",
            "--timesteps",
            "2",
            "--output",
            str(out),
            "--no-tensorboard",
            "--checkpoint-every",
            "1",
            "--n",
            "3",
        ],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr
    for name in (
        "data.jsonl",
        "history.jsonl",
        "summary.json",
        "checkpoint/tuner.json",
        "checkpoint/agent/agent.json",
    ):
        assert (out / name).is_file(), name
    assert len(read_jsonl(out / "history.jsonl")) == 2
    assert json.loads((out / "summary.json").read_text())["algorithm"] == "reinforce"
    assert "rl-tune [reinforce]" in proc.stderr  # the progress bar


# ----------------------------------------------------------------------------- generate
def test_generate_with_fixed_settings(tmp_path, capsys):
    out = tmp_path / "gen.jsonl"
    rc = main(
        [
            "generate",
            "--n",
            "4",
            "--temperature",
            "0.7",
            "--top-p",
            "0.8",
            "--template",
            "self_instruct_classification",
            "--seed",
            "3",
            "--output",
            str(out),
            "--no-progress",
        ]
    )
    captured = capsys.readouterr()
    assert rc == 0, captured.err
    rows = read_jsonl(out)
    assert 0 < len(rows) <= 4 and "generated" in captured.out
    for r in rows:
        assert (r["temperature"], r["top_p"], r["template"]) == (
            0.7,
            0.8,
            "self_instruct_classification",
        )


def test_generate_honours_enable_rl_tuning(tmp_path, capsys):
    """The design's switch: with rl_tuning.enable_rl_tuning the ordinary generation path tunes
    first (the config's algorithm, target and budget), then generates with the best settings."""
    cfg = write_setup(
        tmp_path,
        enable_rl_tuning=True,
        task="topic+spam",
        focus=True,
        skills=["topic", "spam"],
        target_model_path=None,
        validation_data_path=None,
    )
    out = tmp_path / "gen.jsonl"
    rc = main(
        [
            "generate",
            "--config",
            str(cfg),
            "--n",
            "4",
            "--timesteps",
            "3",
            "--output",
            str(out),
            "--no-progress",
        ]
    )
    captured = capsys.readouterr()
    assert rc == 0, captured.err
    assert "tuning with random_search for 3 target evaluations" in captured.err
    tuned = captured.err.split("tuned: ")[1]
    rows = read_jsonl(out)
    assert rows
    for r in rows:  # generated with the tuned settings, not the config's (1.0, 0.9)
        assert (
            f"temperature={r['temperature']:.2f} top_p={r['top_p']:.2f} "
            f"template={r['template']}" in tuned
        )
    # without the switch the same config generates with its own settings, no tuning
    plain = write_setup(
        tmp_path, task="topic+spam", target_model_path=None, validation_data_path=None
    )
    rc = main(
        ["generate", "--config", str(plain), "--n", "2", "--output", str(out), "--no-progress"]
    )
    captured = capsys.readouterr()
    assert rc == 0 and "tuning" not in captured.err
    assert {(r["temperature"], r["top_p"]) for r in read_jsonl(out)} == {(1.0, 0.9)}


# ----------------------------------------------------------------------------- errors
def _errors_cases(tmp_path: Path) -> dict[str, list[str]]:
    bad = tmp_path / "bad.yaml"
    bad.write_text("rl_tuning:\n  batch_size: 0\n")
    no_target = write_setup(tmp_path, target="x = 1\n")
    return {
        "bad config value": ["rl-tune", "--config", str(bad)],
        "missing config": ["rl-tune", "--config", str(tmp_path / "missing.yaml")],
        "no target_model": ["rl-tune", "--config", str(no_target)],
        "unknown algo": ["rl-tune", "--algo", "alphazero"],
        "bad template": ["generate", "--template", "poetry", "--output", "x.jsonl"],
        "no subcommand": [],
    }


@pytest.mark.parametrize(
    "case",
    [
        "bad config value",
        "missing config",
        "no target_model",
        "unknown algo",
        "bad template",
        "no subcommand",
    ],
)
def test_errors_are_one_line(tmp_path, capsys, case):
    args = _errors_cases(tmp_path)[case]
    rc = main(args + ["--output", str(tmp_path / "out")] if args and args[0] == "rl-tune" else args)
    captured = capsys.readouterr()
    assert rc == 2
    assert_one_line_error(captured.err)
    assert {
        "bad config value": "rl_tuning.batch_size",
        "missing config": "not found",
        "no target_model": "defines neither",
        "unknown algo": "alphazero",
        "bad template": "poetry",
        "no subcommand": "required",
    }[case] in captured.err


def test_failing_target_is_a_runtime_error(tmp_path, capsys):
    cfg = write_setup(tmp_path, target="def target_model(records):\n    return {'f1': 1.0}\n")
    rc = main(
        [
            "rl-tune",
            "--config",
            str(cfg),
            "--output",
            str(tmp_path / "out"),
            "--no-tensorboard",
            "--no-progress",
        ]
    )
    captured = capsys.readouterr()
    assert rc == 1
    assert_one_line_error(captured.err)
    assert "TargetModelError" in captured.err and "'accuracy'" in captured.err


def test_error_subprocess_has_no_traceback(tmp_path):
    env = {**os.environ, "PYTHONPATH": str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    proc = subprocess.run(
        [sys.executable, "-m", "datagen.cli", "rl-tune", "--algo", "alphazero"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 2
    assert_one_line_error(proc.stderr)
