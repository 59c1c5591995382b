import json

import pytest

from datagen_gym import Results


def _records():
    return [
        {
            "instruction": "Add the two numbers.",
            "input": "1 and 2",
            "output": "3",
            "method": "self_instruct",
            "template": "self_instruct",
            "temperature": 0.7,
            "top_p": 0.9,
            "step": 0,
        },
        {
            "instruction": "Add the two numbers.",
            "input": "1 and 2",
            "output": "3",
            "method": "self_instruct",
            "template": "self_instruct",
            "temperature": 0.7,
            "top_p": 0.9,
            "step": 0,
        },
        {
            "instruction": "Is this message spam or not spam?",
            "input": "free cash now",
            "output": "spam",
            "method": "evol_instruct",
            "template": "evol_deepen",
            "temperature": 1.0,
            "top_p": 1.0,
            "step": 1,
        },
    ]


def test_round_trip_and_summary(tmp_path):
    res = Results(_records(), num_candidates=6, num_kept=3)
    path = tmp_path / "out" / "data.jsonl"
    res.save(path)
    loaded = Results.load(path)
    assert loaded.data == res.data
    s = res.summary()
    assert s["count"] == 3 and s["kept_fraction"] == 0.5
    assert s["unique_ratio"] == pytest.approx(2 / 3)
    assert s["mean_length"] > 3
    assert [json.loads(line)["step"] for line in path.read_text().splitlines()] == [0, 0, 1]


def test_load_errors(tmp_path):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"instruction": "x", "input": "", "output": "y"}\n{not json}\n')
    with pytest.raises(ValueError, match="bad.jsonl:2"):
        Results.load(bad)
    missing = tmp_path / "missing.jsonl"
    missing.write_text('{"instruction": "x"}\n')
    with pytest.raises(ValueError, match="lacks"):
        Results.load(missing)


def test_save_is_atomic(tmp_path, monkeypatch):
    path = tmp_path / "data.jsonl"
    Results(_records()).save(path)
    before = path.read_text()

    class Boom:
        def __iter__(self):
            yield _records()[0]
            raise KeyboardInterrupt

    from datagen_gym import results as results_mod

    with pytest.raises(KeyboardInterrupt):
        results_mod.write_jsonl_atomic(path, Boom())
    assert path.read_text() == before
    assert [p.name for p in tmp_path.iterdir()] == ["data.jsonl"]
