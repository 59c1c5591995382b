"""Fuzzing the input files a user hands the CLI: the YAML config, the validation JSONL, and
``--set`` values. Whatever the bytes - random keys, wrong types, out-of-range numbers, other
encodings, truncated files - the answer is one ``datagen: error:`` line naming the file or
field (exit code 2), never a traceback. Example counts are small so the file runs in seconds;
``derandomize`` keeps CI reproducible.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from datagen.cli import CLIError, load_config, main
from datagen.rl_tuning.user_target import load_validation_data
from datagen_gym.config import Config, ConfigError

FUZZ = settings(
    max_examples=60,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)

SECTIONS = {
    f.name: [g.name for g in dataclasses.fields(getattr(Config(), f.name))]
    for f in dataclasses.fields(Config)
}

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(10**30), max_value=10**30),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=12),
)
values = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=6), inner, max_size=3)
    ),
    max_leaves=6,
)
# Mostly real keys (so the checks behind them run), sometimes typos and non-string keys.
section_names = st.one_of(st.sampled_from(sorted(SECTIONS)), st.text(max_size=8))


@st.composite
def config_dicts(draw) -> dict:
    out = {}
    for section in draw(st.lists(section_names, max_size=3, unique=True)):
        keys = SECTIONS.get(section, [])
        key_st = (
            st.one_of(st.sampled_from(keys), st.text(max_size=8)) if keys else st.text(max_size=8)
        )
        out[section] = draw(st.one_of(st.dictionaries(key_st, values, max_size=4), values))
    return out


def assert_one_line(err: str) -> None:
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("datagen: error:"), err
    assert "Traceback" not in err


def _render(data: dict, style: str) -> bytes:
    text = yaml.safe_dump(data, allow_unicode=True) if style != "json" else json.dumps(data)
    if style == "utf-16":
        return text.encode("utf-16")
    if style == "latin-1":
        return text.encode("latin-1", errors="replace") + b"\xe9\xff"
    return text.encode("utf-8")


# ----------------------------------------------------------------------------- config
@FUZZ
@given(
    data=config_dicts(),
    style=st.sampled_from(["yaml", "json", "utf-16", "latin-1"]),
    cut=st.floats(0.0, 1.0),
)
def test_config_files_load_or_fail_with_one_named_error(tmp_path_factory, data, style, cut):
    raw = _render(data, style)
    if cut < 0.3:  # a truncated file
        raw = raw[: int(len(raw) * cut / 0.3)]
    path = tmp_path_factory.mktemp("cfg") / "rl.yaml"
    path.write_bytes(raw)
    try:
        config = load_config(str(path))
    except (ConfigError, CLIError) as exc:
        # The file, or the field (section.key / the section list) is named.
        message = str(exc)
        assert str(path) in message or any(s in message for s in SECTIONS), message
    else:
        assert isinstance(config, Config)
        assert Config.from_dict(config.to_dict()) == config  # what loads is valid


@FUZZ
@given(data=config_dicts())
def test_config_cli_is_one_line(tmp_path_factory, capsys, data):
    path = tmp_path_factory.mktemp("cli") / "rl.yaml"
    path.write_text(yaml.safe_dump(data, allow_unicode=True))
    try:
        Config.load(path)
    except ConfigError:
        pass
    except Exception:  # noqa: BLE001 - config.py's own gaps; the CLI must still be one line
        pass
    else:
        assume(False)  # a valid config would start a run: not what this test is about
    rc = main(
        [
            "rl-tune",
            "--config",
            str(path),
            "--output",
            str(path.parent / "out"),
            "--no-tensorboard",
            "--no-progress",
        ]
    )
    assert rc == 2
    assert_one_line(capsys.readouterr().err)


@pytest.mark.parametrize(
    "raw",
    [
        b"rl_tuning:\n  batch_size: 4\n  seed: [",
        b"\xff\xfe\x00\x00garbage",
        b"rl_tuning: 3\n",
        b"- a\n- b\n",
        b"rl_tuning:\n  learning_rate: " + b"9" * 400 + b"\n",
        b"1: 2\nrl_tuning: {}\n",
        b"!!python/object/apply:os.system ['true']\n",
        b"[" * 2000,
        b"rl_tuning:\n  target_model_path: ~nosuchuser_datagen/x.py\n",
    ],
)
def test_config_edge_files(tmp_path, capsys, raw):
    path = tmp_path / "rl.yaml"
    path.write_bytes(raw)
    rc = main(
        [
            "rl-tune",
            "--config",
            str(path),
            "--output",
            str(tmp_path / "out"),
            "--no-tensorboard",
            "--no-progress",
        ]
    )
    err = capsys.readouterr().err
    assert rc == 2, err
    assert_one_line(err)
    assert str(path) in err or "rl_tuning" in err


@FUZZ
@given(
    key=st.sampled_from(
        [f"{s}.{k}" for s, ks in SECTIONS.items() for k in ks] + ["nope.key", "rl_tuning.nope"]
    ),
    value=st.one_of(
        st.text(max_size=10),
        st.integers(-(10**400), 10**400).map(str),
        st.sampled_from(["[1, 2]", "{a: 1}", "nan", "-inf", "1e999", "~", "'"]),
    ),
)
def test_set_values_are_validated(tmp_path_factory, capsys, key, value):
    from datagen.cli import _assignment

    section, name, parsed = _assignment(f"{key}={value}")
    try:
        Config().replace(**{section: {name: parsed}})
    except ConfigError:
        pass
    except Exception:  # noqa: BLE001 - config.py's own gaps; the CLI must still be one line
        pass
    else:
        assume(False)  # valid: it would start a run
    out = tmp_path_factory.mktemp("set") / "out"
    rc = main(
        [
            "rl-tune",
            "--set",
            f"{key}={value}",
            "--output",
            str(out),
            "--no-tensorboard",
            "--no-progress",
        ]
    )
    err = capsys.readouterr().err
    assert rc == 2, err
    assert_one_line(err)


# ----------------------------------------------------------------------------- validation data
record_values = st.one_of(
    st.text(max_size=8),
    st.integers(),
    st.none(),
    st.booleans(),
    st.lists(st.text(max_size=3), max_size=2),
    st.floats(allow_nan=True),
)


@st.composite
def jsonl_bytes(draw) -> bytes:
    rows = draw(
        st.lists(
            st.one_of(
                st.fixed_dictionaries(
                    {"instruction": record_values, "output": record_values},
                    optional={"input": record_values},
                ),
                st.dictionaries(st.text(max_size=6), record_values, max_size=3),
                record_values,
            ),
            max_size=4,
        )
    )
    text = "".join(json.dumps(r) + "\n" for r in rows)
    style = draw(st.sampled_from(["utf-8", "utf-16", "junk", "truncated"]))
    if style == "utf-16":
        return text.encode("utf-16")
    if style == "junk":
        return text.encode() + draw(st.binary(min_size=1, max_size=12))
    if style == "truncated":
        return text.encode()[: draw(st.integers(0, max(0, len(text) - 1)))]
    return text.encode()


@FUZZ
@given(raw=jsonl_bytes())
def test_validation_files_load_or_fail_naming_the_file(tmp_path_factory, raw):
    path = tmp_path_factory.mktemp("val") / "val.jsonl"
    path.write_bytes(raw)
    try:
        rows = load_validation_data(path)
    except (ConfigError, ValueError) as exc:
        assert str(path) in str(exc) and "\n" not in str(exc)
    else:
        assert rows and all(
            isinstance(r["instruction"], str)
            and isinstance(r["output"], str)
            and isinstance(r["input"], str)
            for r in rows
        )


@FUZZ
@given(raw=jsonl_bytes())
def test_validation_files_through_the_cli(tmp_path_factory, capsys, raw):
    root = tmp_path_factory.mktemp("valcli")
    try:
        load_validation_data_ok = bool(load_validation_data(_write(root / "v.jsonl", raw)))
    except (ConfigError, ValueError):
        load_validation_data_ok = False
    assume(not load_validation_data_ok)  # a valid file would start a run
    cfg = root / "rl.yaml"
    cfg.write_text("rl_tuning:\n  validation_data_path: v.jsonl\n")
    rc = main(
        [
            "rl-tune",
            "--config",
            str(cfg),
            "--output",
            str(root / "out"),
            "--no-tensorboard",
            "--no-progress",
        ]
    )
    err = capsys.readouterr().err
    assert rc == 2, err
    assert_one_line(err)
    assert str(root / "v.jsonl") in err


def _write(path: Path, raw: bytes) -> Path:
    path.write_bytes(raw)
    return path


def test_validation_edge_cases(tmp_path):
    cases = {
        b"": "holds no records",
        b'{"instruction": "x"}\n': "lacks ['output']",
        b'{"instruction": 3, "output": "a"}\n': "'instruction' must be a string",
        b'{"instruction": "x", "output": "a", "input": [1]}\n': "'input' must be a string",
        b"\xff\xfe\x00": "not UTF-8",
        b'{"instruction": "x", "output": "a"}\n{"instr': "not valid JSON",
    }
    for raw, expected in cases.items():
        path = _write(tmp_path / "v.jsonl", raw)
        with pytest.raises(ValueError) as info:
            load_validation_data(path)
        assert expected in str(info.value) and str(path) in str(info.value), raw
    ok = load_validation_data(
        _write(tmp_path / "v.jsonl", b'{"instruction": "x", "output": "a", "input": null}\n')
    )
    assert ok == [{"instruction": "x", "output": "a", "input": ""}]
