"""Results: generated records with their metadata, JSONL persistence and summary statistics.

Exports for trainers (:meth:`Results.to_hf_dataset`, :meth:`Results.save` to ``.parquet``) come
in two layouts: ``"alpaca"`` (``instruction``, ``input``, ``output`` columns) and ``"messages"``
(TRL's conversational layout: a ``messages`` column of one user and one assistant turn). Both
keep the metadata columns. They need the Hugging Face ``datasets`` package, imported lazily:
``pip install "datagen-gym[hf]"``.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from datagen_gym.atomic_io import atomic_write_jsonl, atomic_write_with

if TYPE_CHECKING:
    import datasets

RECORD_FIELDS = ("instruction", "input", "output")
#: Export layouts: Alpaca columns, or TRL's conversational ``messages`` column.
LAYOUTS = ("alpaca", "messages")
#: File formats :meth:`Results.save` writes, by file suffix.
FORMATS = {".jsonl": "jsonl", ".parquet": "parquet"}
HF_INSTALL_HINT = 'pip install "datagen-gym[hf]"'


def import_datasets() -> Any:
    """The ``datasets`` module, or an ImportError that says how to install it."""
    try:
        import datasets
        import pyarrow  # noqa: F401 - a datasets dependency; the exports build Arrow tables
    except ImportError as exc:
        raise ImportError(
            f"exporting to a Hugging Face Dataset / Parquet needs the "
            f"'datasets' package ({exc}); install it with: "
            f"{HF_INSTALL_HINT}"
        ) from exc
    return datasets


def check_layout(layout: str) -> str:
    if layout not in LAYOUTS:
        raise ValueError(f"unknown layout {layout!r}; expected one of {', '.join(LAYOUTS)}")
    return layout


def format_for_path(path: str | Path) -> str:
    """``"jsonl"`` or ``"parquet"`` from the file suffix (case-insensitive); any other suffix is
    a ValueError naming the suffixes understood."""
    suffix = Path(path).suffix.lower()
    if suffix not in FORMATS:
        what = f"unknown file suffix {suffix!r}" if suffix else "no file suffix"
        raise ValueError(f"{path}: {what}; expected {' or '.join(FORMATS)}")
    return FORMATS[suffix]


def _text(record: dict[str, Any], key: str, index: int) -> str:
    """A record's instruction / input / output as a string (a missing or null input is "")."""
    value = record.get(key)
    if value is None:
        if key == "input":
            return ""
        raise ValueError(
            f"record {index}: {key!r} is missing or null; each record needs {list(RECORD_FIELDS)}"
        )
    return value if isinstance(value, str) else str(value)


def user_content(instruction: str, input_text: str) -> str:
    """The user turn of the messages layout: the instruction, then the input (if any) after a
    blank line - the Alpaca prompt without its template."""
    return f"{instruction}\n\n{input_text}" if input_text.strip() else instruction


def write_jsonl_atomic(path: str | Path, rows: Iterable[dict[str, Any]]) -> None:
    """Write rows to ``path`` so that a crash mid-write leaves the old file intact (the file
    honours the umask)."""
    atomic_write_jsonl(path, rows)


def read_jsonl(path: str | Path) -> list[dict[str, Any]]:
    """Read a JSONL file; a malformed line is an error naming the file and line."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"JSONL file not found: {path}")
    rows = []
    try:
        with open(path, encoding="utf-8") as fh:
            lines = list(fh)
    except UnicodeDecodeError as exc:
        raise ValueError(
            f"{path}: not UTF-8 text (byte {exc.start}); expected JSON Lines"
        ) from None
    for lineno, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            raise ValueError(f"{path}:{lineno}: not valid JSON ({exc.msg})") from None
        if not isinstance(row, dict):
            raise ValueError(f"{path}:{lineno}: expected a JSON object per line")
        rows.append(row)
    return rows


class Results:
    """Generated records: ``instruction``, ``input``, ``output`` plus metadata.

    Metadata per record: ``method``, ``template``, ``temperature``, ``top_p``, ``step`` and
    whatever the generator adds (``is_classification``). ``num_candidates`` counts the
    instructions proposed before filtering, so :attr:`kept_fraction` says how much survived.
    """

    def __init__(
        self,
        records: Iterable[dict[str, Any]] = (),
        num_candidates: int = 0,
        num_kept: int = 0,
        num_off_label: int = 0,
        num_parsed: int = 0,
    ) -> None:
        self.data: list[dict[str, Any]] = list(records)
        self.num_candidates = num_candidates
        self.num_kept = num_kept
        # instances dropped because their label is not one of the task's (see datagen_gym.task)
        self.num_off_label = num_off_label
        # instance pairs the parsers found in the teacher's replies, before any instance filter
        self.num_parsed = num_parsed

    def __len__(self) -> int:
        return len(self.data)

    def __iter__(self) -> Iterator[dict[str, Any]]:
        return iter(self.data)

    def __getitem__(self, i):
        return self.data[i]

    def extend(self, other: Results) -> None:
        self.data.extend(other.data)
        self.num_candidates += other.num_candidates
        self.num_kept += other.num_kept
        self.num_off_label += other.num_off_label
        self.num_parsed += other.num_parsed

    def stages(self) -> str:
        """Where the records went, stage by stage (for a warning that names the stage that
        dropped them): instructions proposed -> kept by the filters -> instances parsed from
        the replies -> off-label dropped -> records."""
        return (
            f"{self.num_candidates} instructions proposed, {self.num_kept} kept by the "
            f"instruction filters, {self.num_parsed} instances parsed from the replies, "
            f"{self.num_off_label} dropped for a label outside the task's, {len(self)} records"
        )

    @property
    def kept_fraction(self) -> float:
        """Share of proposed instructions that passed every filter (1.0 if none proposed)."""
        return self.num_kept / self.num_candidates if self.num_candidates else 0.0

    @property
    def unique_ratio(self) -> float:
        """Share of distinct (instruction, input, output) triples among the records."""
        if not self.data:
            return 0.0
        keys = {tuple(r.get(k, "") for k in RECORD_FIELDS) for r in self.data}
        return len(keys) / len(self.data)

    @property
    def mean_length(self) -> float:
        """Mean number of words over instruction + input + output."""
        if not self.data:
            return 0.0
        return sum(
            len(" ".join(str(r.get(k, "")) for k in RECORD_FIELDS).split()) for r in self.data
        ) / len(self.data)

    def summary(self) -> dict[str, float]:
        return {
            "count": len(self.data),
            "num_candidates": self.num_candidates,
            "num_kept": self.num_kept,
            "kept_fraction": self.kept_fraction,
            "unique_ratio": self.unique_ratio,
            "mean_length": self.mean_length,
        }

    def to_rows(self, layout: str = "alpaca") -> list[dict[str, Any]]:
        """The records as export rows; no third-party package needed.

        ``"alpaca"``: ``instruction``, ``input``, ``output`` (strings; a missing input is "")
        then the metadata. ``"messages"``: ``messages`` = ``[{"role": "user", "content":
        instruction + "\\n\\n" + input}, {"role": "assistant", "content": output}]`` (TRL's
        conversational format; no blank line and no input when the input is empty), then the
        metadata. A record without an instruction or output is a ValueError naming it.
        """
        check_layout(layout)
        rows = []
        for i, record in enumerate(self.data):
            instruction, input_text, output = (_text(record, k, i) for k in RECORD_FIELDS)
            meta = {k: v for k, v in record.items() if k not in RECORD_FIELDS}
            if layout == "alpaca":
                rows.append(
                    {"instruction": instruction, "input": input_text, "output": output, **meta}
                )
                continue
            if "messages" in meta:
                raise ValueError(
                    f"record {i}: has a 'messages' field, which the messages layout would overwrite"
                )
            rows.append(
                {
                    "messages": [
                        {"role": "user", "content": user_content(instruction, input_text)},
                        {"role": "assistant", "content": output},
                    ],
                    **meta,
                }
            )
        return rows

    def to_hf_dataset(self, layout: str = "alpaca") -> datasets.Dataset:
        """The records as a ``datasets.Dataset`` in the given layout (see :meth:`to_rows`).

        Columns: ``instruction``, ``input``, ``output`` (strings) or ``messages`` (a list of
        ``{"role", "content"}`` structs), then every metadata key found in any record, in
        first-seen order (``None`` where a record lacks it). An empty ``Results`` gives an empty
        dataset with the layout's columns. Needs ``datasets``: ``pip install
        "datagen-gym[hf]"``.
        """
        rows = self.to_rows(layout)  # validates the layout and the records first
        hf = import_datasets()
        import pyarrow as pa

        core = {
            "alpaca": {k: pa.string() for k in RECORD_FIELDS},
            "messages": {
                "messages": pa.list_(pa.struct([("role", pa.string()), ("content", pa.string())]))
            },
        }[layout]
        names = list(core) + list(dict.fromkeys(k for r in rows for k in r if k not in core))
        columns = {name: [r.get(name) for r in rows] for name in names}
        fields = []
        for name in names:
            try:
                fields.append(pa.field(name, pa.array(columns[name], type=core.get(name)).type))
            except (pa.ArrowException, ValueError, TypeError) as exc:
                raise ValueError(
                    f"metadata column {name!r} cannot be stored in one Arrow "
                    f"column (mixed value types?): {exc}"
                ) from None
        features = hf.Features.from_arrow_schema(pa.schema(fields))
        return hf.Dataset.from_dict(columns, features=features)

    def save(self, path: str | Path, format: str | None = None, layout: str = "alpaca") -> None:
        """Write the records to ``path`` atomically (the file honours the umask).

        ``format``: ``"jsonl"`` or ``"parquet"``; by default ``"parquet"`` for a ``.parquet``
        path and JSONL for any other. ``layout``: ``"alpaca"`` or ``"messages"`` (see
        :meth:`to_rows`). Alpaca JSONL writes the records exactly as held (what
        :meth:`load` reads back); Parquet needs ``datasets`` (``pip install
        "datagen-gym[hf]"``) and is what ``datasets.load_dataset("parquet", ...)`` reads.
        """
        check_layout(layout)
        if format is None:
            format = "parquet" if Path(path).suffix.lower() == ".parquet" else "jsonl"
        if format == "jsonl":
            write_jsonl_atomic(path, self.data if layout == "alpaca" else self.to_rows(layout))
        elif format == "parquet":
            self.save_parquet(path, layout)
        else:
            raise ValueError(f"unknown format {format!r}; expected 'jsonl' or 'parquet'")

    def save_parquet(self, path: str | Path, layout: str = "alpaca") -> None:
        """Write :meth:`to_hf_dataset` as one Parquet file, atomically (honours the umask); the
        schema carries the ``datasets`` features, so ``load_dataset`` restores them."""
        dataset = self.to_hf_dataset(layout)
        import pyarrow.parquet as pq

        table = dataset.with_format("arrow")[:]  # an Arrow table carrying the HF features

        def write(tmp: str) -> None:
            if table.num_rows:
                pq.write_table(table, tmp)
            else:  # no row group at all, like datasets' own to_parquet of an empty dataset
                pq.ParquetWriter(tmp, table.schema).close()

        atomic_write_with(path, write, suffix=".parquet")

    @classmethod
    def load(cls, path: str | Path) -> Results:
        rows = read_jsonl(path)
        for i, row in enumerate(rows, start=1):
            missing = [k for k in RECORD_FIELDS if k not in row]
            if missing:
                raise ValueError(
                    f"{path}:{i}: record lacks {missing}; each record needs {list(RECORD_FIELDS)}"
                )
        return cls(rows, num_candidates=len(rows), num_kept=len(rows))
