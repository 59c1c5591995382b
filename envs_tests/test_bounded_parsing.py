"""Parsing of anything on disk is bounded (issue 21): alias bombs, duplicate keys, credentials in
URLs, deep nesting, FIFOs and /dev/zero each end at once with one line naming the file."""

from __future__ import annotations

import os

import pytest

from datagen.cli import main
from datagen_gym.atomic_io import CheckpointError, read_json
from envs_tests.test_cli import assert_one_line_error

BOMB = "\n".join(
    [
        'a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]',
        *(f"{n}: &{n} [{','.join([f'*{p}'] * 9)}]" for p, n in zip("abcd", "bcde")),
        "rl_tuning:",
        "  batch_size: [*e,*e,*e,*e,*e,*e,*e,*e,*e]",
    ]
)


@pytest.mark.parametrize(
    "text, expected",
    [
        (BOMB, "aliases"),
        ("rl_tuning:\n  batch_size: 4\n  batch_size: 8\n", "duplicate key 'batch_size'"),
        ("sampling:\n  base_url: http://u:sk-abc123@h/v1\n", "holds credentials"),
        ("sampling:\n  base_url: http://h/v1?api_key=sk-abc123\n", "holds credentials"),
        ("sampling:\n  base_url: ftp://h/v1\n", "http(s) URL"),
        ("rl_tuning:\n  seed: 1\n" + "#" * (1 << 20), "at most"),
        ("rl_tuning:\n  batch_size: " + "9" * 5000 + "\n", "integer at line 2 has 5000 digits"),
    ],
)
def test_bad_configs_end_at_once_in_one_line(tmp_path, capsys, text, expected):
    cfg = tmp_path / "c.yaml"
    cfg.write_text(text)
    args = ["rl-tune", "--config", str(cfg), "--output", str(tmp_path / "o"), "--no-tensorboard"]
    assert main([*args, "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert_one_line_error(err)
    assert expected in err and "sk-abc123" not in err


def test_json_readers_are_bounded(tmp_path):
    cases = {
        "deep.json": ("[" * 200_000 + "]" * 200_000, "nested too deeply"),
        "nan.json": ('{"a": NaN}', "NaN"),
        "int.json": ('{"a": %s}' % ("9" * 5000), "int.json"),
    }
    for name, (text, _) in cases.items():
        (tmp_path / name).write_text(text)
    os.mkfifo(tmp_path / "fifo.json")
    os.symlink("/dev/zero", tmp_path / "zero.json")
    cases["fifo.json"] = ("", "not a regular file")
    cases["zero.json"] = ("", "not a regular file")
    for name, (_, expected) in cases.items():
        with pytest.raises(CheckpointError) as caught:
            read_json(tmp_path / name)
        assert expected in str(caught.value) and str(tmp_path / name) in str(caught.value)


def test_exponent_floats_are_numbers_as_users_write_them():
    """PyYAML (YAML 1.1) reads 3e-4 as a string; configs and --set read it as YAML 1.2 does."""
    from datagen.cli import _assignment
    from datagen_gym.config import Config, load_yaml

    assert load_yaml("a: 3e-4\nb: 1e5\nc: '3e-4'\nd: 2") == {
        "a": 3e-4,
        "b": 1e5,
        "c": "3e-4",
        "d": 2,
    }
    config = Config.from_dict(load_yaml("sampling:\n  temperature: 7e-1\n"))
    assert config.sampling.temperature == pytest.approx(0.7)
    assert _assignment("sampling.top_p=5e-1")[2] == 0.5
