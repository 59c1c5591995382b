"""Exports for trainers: ``Results.to_hf_dataset`` / ``.parquet`` in the Alpaca and TRL messages
layouts, and ``datagen generate --output X.parquet --layout ...``."""

from __future__ import annotations

import json
import os
import stat
import sys

import pytest

from datagen.cli import main
from datagen_gym.results import Results, read_jsonl

datasets = pytest.importorskip("datasets")
pq = pytest.importorskip("pyarrow.parquet")

RECORDS = [
    {
        "instruction": "Is this review positive or negative?",
        "input": "A moving, funny film.",
        "output": "positive",
        "method": "self_instruct",
        "template": "self_instruct_classification",
        "temperature": 0.7,
        "top_p": 0.9,
        "skill": "sentiment",
        "is_classification": True,
    },
    {
        "instruction": "Write a haiku about autumn.",
        "input": "",
        "output": "Leaves fall, slow.",
        "method": "evol_instruct",
        "template": "evol_deepen",
        "temperature": 1.0,
        "top_p": 0.8,
        "skill": None,
        "is_classification": False,
    },
    # a metadata key only the last record has: a column, None for the other rows
    {
        "instruction": "Translate to French.",
        "input": "  ",
        "output": "Bonjour.",
        "method": "self_instruct",
        "template": "self_instruct",
        "temperature": 0.5,
        "top_p": 1.0,
        "skill": "translation",
        "is_classification": False,
        "step": 3,
    },
]
META = ["method", "template", "temperature", "top_p", "skill", "is_classification", "step"]


def expected_alpaca() -> list[dict]:
    return [{**{k: None for k in META}, **r} for r in RECORDS]


def expected_messages() -> list[dict]:
    users = [
        "Is this review positive or negative?\n\nA moving, funny film.",
        "Write a haiku about autumn.",
        "Translate to French.",
    ]
    return [
        {
            "messages": [
                {"role": "user", "content": user},
                {"role": "assistant", "content": r["output"]},
            ],
            **{k: r.get(k) for k in META},
        }
        for user, r in zip(users, RECORDS)
    ]


@pytest.fixture
def results() -> Results:
    return Results([dict(r) for r in RECORDS], num_candidates=5, num_kept=3)


def load_parquet(path, tmp_path):
    """The file as a trainer reads it: ``datasets.load_dataset("parquet", ...)``."""
    return datasets.load_dataset(
        "parquet", data_files=str(path), split="train", cache_dir=str(tmp_path / "hf_cache")
    )


# ----------------------------------------------------------------------------- layouts
def test_alpaca_dataset_columns_and_rows(results):
    ds = results.to_hf_dataset()
    assert isinstance(ds, datasets.Dataset)
    assert ds.column_names == ["instruction", "input", "output", *META]
    assert ds.to_list() == expected_alpaca()
    assert ds.features["temperature"] == datasets.Value("float64")
    assert ds.features["is_classification"] == datasets.Value("bool")


def test_messages_layout_is_trl_conversational(results):
    """TRL's SFTTrainer conversational format: ``messages`` = user turn (instruction, blank
    line, input when there is one) then assistant turn (output); metadata columns kept, the
    Alpaca columns gone."""
    ds = results.to_hf_dataset(layout="messages")
    assert ds.column_names == ["messages", *META]
    assert ds.to_list() == expected_messages()
    for messages in ds["messages"]:
        assert [m["role"] for m in messages] == ["user", "assistant"]
        assert all(set(m) == {"role", "content"} for m in messages)
    assert results.to_rows("messages") == expected_messages_jsonl()  # no Arrow, no padding


@pytest.mark.parametrize(
    "layout, columns", [("alpaca", ["instruction", "input", "output"]), ("messages", ["messages"])]
)
def test_empty_results_export_empty_dataset_with_columns(tmp_path, layout, columns):
    ds = Results().to_hf_dataset(layout)
    assert len(ds) == 0 and ds.column_names == columns
    assert all(ds.features[c] != datasets.Value("null") for c in columns)  # typed columns
    path = tmp_path / "empty.parquet"
    Results().save(path, layout=layout)
    back = pq.read_table(path)  # (load_dataset refuses 0-row Parquet: "corresponds to no data")
    assert back.num_rows == 0 and back.column_names == columns
    assert datasets.Features.from_arrow_schema(back.schema) == ds.features
    # an empty export concatenates with a non-empty one of the same layout
    full = Results([{k: RECORDS[1][k] for k in ("instruction", "input", "output")}])
    merged = datasets.concatenate_datasets([ds, full.to_hf_dataset(layout)])
    assert merged.to_list() == full.to_hf_dataset(layout).to_list()


def test_bad_layout_and_bad_records_are_value_errors(results, tmp_path):
    with pytest.raises(
        ValueError, match="unknown layout 'chatml'; expected one of alpaca, messages"
    ):
        results.to_hf_dataset("chatml")
    with pytest.raises(ValueError, match="unknown format 'csv'"):
        results.save(tmp_path / "x.csv", format="csv")
    with pytest.raises(ValueError, match="record 0: 'output' is missing"):
        Results([{"instruction": "x", "input": ""}]).to_hf_dataset()
    with pytest.raises(ValueError, match="metadata column 'skill'"):
        Results([{**RECORDS[0], "skill": "a"}, {**RECORDS[1], "skill": 2.5}]).to_hf_dataset()


def test_missing_datasets_names_the_extra(results, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "datasets", None)  # import datasets -> ImportError
    with pytest.raises(ImportError, match=r'pip install "datagen-gym\[hf\]"'):
        results.to_hf_dataset()
    with pytest.raises(ImportError, match=r'pip install "datagen-gym\[hf\]"'):
        results.save(tmp_path / "x.parquet")
    assert not (tmp_path / "x.parquet").exists()
    # JSONL, either layout, needs no datasets
    results.save(tmp_path / "x.jsonl", layout="messages")
    assert read_jsonl(tmp_path / "x.jsonl") == expected_messages_jsonl()
    rc = main(["generate", "--n", "1", "--output", str(tmp_path / "y.parquet"), "--no-progress"])
    assert rc == 2 and not (tmp_path / "y.parquet").exists()


def expected_messages_jsonl() -> list[dict]:
    """JSONL keeps each record's own keys: no ``step: null`` padding."""
    return [
        {k: v for k, v in row.items() if k != "step" or i == 2}
        for i, row in enumerate(expected_messages())
    ]


# ----------------------------------------------------------------------------- files
@pytest.mark.parametrize("layout", ["alpaca", "messages"])
def test_parquet_round_trip(results, tmp_path, layout):
    path = tmp_path / f"data.{layout}.parquet"
    results.save(path, layout=layout)
    expected = expected_alpaca() if layout == "alpaca" else expected_messages()
    back = load_parquet(path, tmp_path)
    assert back.to_list() == expected
    assert back.features == results.to_hf_dataset(layout).features
    assert (
        datasets.Dataset.from_parquet(str(path), cache_dir=str(tmp_path / "hf_cache2")).to_list()
        == expected
    )
    assert pq.read_table(path).to_pylist() == expected  # plain pyarrow reads it too
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # no temp left


def test_save_keeps_jsonl_unchanged(results, tmp_path):
    """``save(path)`` is still the JSONL of the records as held, whatever the suffix, and
    ``load`` reads it back; only ``.parquet`` (or ``format=``) switches format."""
    for name in ("data.jsonl", "data.json", "data"):
        results.save(tmp_path / name)
        assert read_jsonl(tmp_path / name) == RECORDS
        assert Results.load(tmp_path / name).data == RECORDS
    results.save(tmp_path / "forced.jsonl", format="parquet")
    assert pq.read_table(tmp_path / "forced.jsonl").num_rows == 3
    results.save(tmp_path / "forced.parquet", format="jsonl")
    assert read_jsonl(tmp_path / "forced.parquet") == RECORDS


def test_failed_parquet_write_keeps_the_old_file(results, tmp_path, monkeypatch):
    path = tmp_path / "data.parquet"
    results.save(path)
    before = path.read_bytes()

    def boom(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(pq, "write_table", boom)
    with pytest.raises(OSError, match="disk full"):
        Results(RECORDS[:1]).save(path)
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data.parquet"]


@pytest.mark.parametrize("umask", [0o022, 0o027])
def test_exports_honour_the_umask(results, tmp_path, umask):
    old = os.umask(umask)
    try:
        for name, layout in (
            ("a.parquet", "alpaca"),
            ("m.parquet", "messages"),
            ("m.jsonl", "messages"),
            ("sub/a.jsonl", "alpaca"),
        ):
            results.save(tmp_path / name, layout=layout)
    finally:
        os.umask(old)
    for name in ("a.parquet", "m.parquet", "m.jsonl", "sub/a.jsonl"):
        assert stat.S_IMODE((tmp_path / name).stat().st_mode) == 0o666 & ~umask, name
    assert stat.S_IMODE((tmp_path / "sub").stat().st_mode) == 0o777 & ~umask


# ----------------------------------------------------------------------------- CLI
def test_generate_writes_parquet_and_messages_jsonl(tmp_path, capsys):
    """One generation (--n 2), then the same settings to messages JSONL and Parquet."""
    common = [
        "generate",
        "--n",
        "2",
        "--temperature",
        "0.7",
        "--top-p",
        "0.8",
        "--template",
        "self_instruct_classification",
        "--seed",
        "3",
        "--no-progress",
    ]
    old = os.umask(0o027)
    try:
        for name, layout in (
            ("a.jsonl", "alpaca"),
            ("m.jsonl", "messages"),
            ("m.parquet", "messages"),
            ("a.parquet", "alpaca"),
        ):
            rc = main(common + ["--output", str(tmp_path / name), "--layout", layout])
            captured = capsys.readouterr()
            assert rc == 0, captured.err
            assert f"({layout} layout)" in captured.out
    finally:
        os.umask(old)
    alpaca = read_jsonl(tmp_path / "a.jsonl")
    assert 0 < len(alpaca) <= 2
    assert {(r["temperature"], r["top_p"]) for r in alpaca} == {(0.7, 0.8)}
    messages = Results(alpaca).to_rows("messages")
    assert read_jsonl(tmp_path / "m.jsonl") == messages
    assert (
        load_parquet(tmp_path / "m.parquet", tmp_path).to_list()
        == Results(alpaca).to_hf_dataset("messages").to_list()
    )
    assert (
        load_parquet(tmp_path / "a.parquet", tmp_path).to_list()
        == Results(alpaca).to_hf_dataset("alpaca").to_list()
    )
    for row, record in zip(read_jsonl(tmp_path / "m.jsonl"), alpaca):
        assert row["messages"][1] == {"role": "assistant", "content": record["output"]}
        assert row["messages"][0]["content"].startswith(record["instruction"])
        assert "instruction" not in row and row["template"] == "self_instruct_classification"
    for name in ("a.jsonl", "m.jsonl", "m.parquet", "a.parquet"):
        assert stat.S_IMODE((tmp_path / name).stat().st_mode) == 0o640, name


@pytest.mark.parametrize(
    "args, expected",
    [
        (
            ["--output", "out.csv"],
            "--output out.csv: unknown file suffix '.csv'; expected .jsonl or .parquet",
        ),
        (["--output", "out"], "--output out: no file suffix; expected .jsonl or .parquet"),
        (
            ["--output", "x.jsonl", "--layout", "chatml"],
            "argument --layout: invalid choice: 'chatml'",
        ),
        (["--output", "{dir}"], "is a directory; expected a .jsonl or .parquet file path"),
    ],
)
def test_generate_bad_output_or_layout_is_one_line(tmp_path, capsys, monkeypatch, args, expected):
    args = [a.replace("{dir}", str(tmp_path)) for a in args]
    monkeypatch.chdir(tmp_path)  # a failure must not leave files in the repo
    rc = main(["generate", "--n", "1", "--no-progress", *args])
    err = capsys.readouterr().err
    assert rc == 2
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("datagen: error:"), err
    assert expected in err
    assert "alpaca" in err or "--layout" not in args  # names what is expected
    assert sorted(p.name for p in tmp_path.iterdir()) == []


def test_jsonl_lines_are_strict_json(results, tmp_path):
    results.save(tmp_path / "m.jsonl", layout="messages")
    for line in (tmp_path / "m.jsonl").read_text(encoding="utf-8").splitlines():
        assert json.loads(line)["messages"][0]["role"] == "user"
