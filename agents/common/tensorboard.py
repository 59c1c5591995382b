"""One TensorBoard code path for every agent, so hand-rolled and SB3 curves overlay.

Which ``info`` entries become which tags is the env's choice, not the agents': an env declares
it in ``metadata["info_log"]`` (the agents know no env). :class:`InfoTBWriter` turns each step's
``info`` into those tags. :class:`InfoTensorboardCallback` gives it the ``SummaryWriter`` inside
SB3's logger, so the env's tags land in the same event file as the ``rollout/*`` and ``train/*``
scalars the logger dumps. Every agent runs that callback: SB3's algorithms with their own logger,
the hand-rolled agents with the logger :meth:`agents.common.base.BaseAgent._setup_learn`
configures the way SB3 does. An env without the declaration gets ``rollout/*`` and ``train/*``
only.

The declaration (see ``DataGenEnv.metadata["info_log"]``), every part optional::

    {"scalars": {tag: info_key},          # a finite number each (absent, None, NaN skipped)
     "mappings": {tag_prefix: info_key},  # a dict of numbers: one tag per entry
     "reward": tag,                       # the step reward
     "text": {"tag": tag, "key": info_key,           # a list of records, as a markdown table
              "columns": [field, ...], "header": [[label, info_key], ...]}}
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.logger import Logger, TensorBoardOutputFormat

try:  # tensorboard is a hard dependency of the project, but keep the import error readable
    from torch.utils.tensorboard import SummaryWriter
except ImportError as exc:  # pragma: no cover
    raise ImportError("TensorBoard logging needs `pip install tensorboard`") from exc

from agents.common.parsing import finite_float
from agents.common.wrappers import StepInfoRecorder

InfoLogSpec = Mapping[str, Any]


def info_log_spec(env: Any) -> InfoLogSpec | None:
    """The env's ``metadata["info_log"]`` through its wrappers, or of a vectorised env's first
    env (None: the env declares none)."""
    if env is None:
        return None
    spec = (getattr(env, "metadata", None) or {}).get("info_log")
    if spec is None and hasattr(env, "get_attr"):  # a VecEnv that did not copy the metadata
        try:
            spec = (env.get_attr("metadata", [0])[0] or {}).get("info_log")
        except Exception:  # noqa: BLE001 - any failure means "no declaration"
            spec = None
    return spec


def logger_summary_writer(logger: Logger) -> SummaryWriter | None:
    """The ``SummaryWriter`` of ``logger``'s TensorBoard output (None: it has none)."""
    for fmt in logger.output_formats:
        if isinstance(fmt, TensorBoardOutputFormat):
            return fmt.writer
    return None


def purge_from(writer: Any, step: int) -> None:
    """Make TensorBoard drop the events of ``writer``'s run at ``step`` and later that an
    earlier process wrote (what ``SummaryWriter(purge_step=...)`` does, for a writer that
    already exists, such as the one inside SB3's logger).

    A run resumed from a checkpoint redoes the steps after it; without this their points
    would appear twice. Readers that honour it: TensorBoard, ``EventAccumulator``.
    """
    if writer is None:
        return
    from tensorboard.compat.proto.event_pb2 import Event, SessionLog

    writer._get_file_writer().add_event(
        Event(step=int(step), session_log=SessionLog(status=SessionLog.START))
    )


def _as_float(value: Any) -> float | None:
    """A finite float, or None for missing / NaN / non-numeric values."""
    if value is None or isinstance(value, (str, bytes)):
        return None
    if np.ndim(value):
        flat = np.asarray(value).reshape(-1)
        return finite_float(flat[0]) if flat.size else None
    return finite_float(value)


def info_scalars(
    info: Mapping[str, Any] | None, reward: float | None, spec: InfoLogSpec | None
) -> dict[str, float]:
    """The scalars ``spec`` declares for one step's ``info`` and reward."""
    if not spec:
        return {}
    info = info or {}
    out = {
        tag: v
        for tag, key in (spec.get("scalars") or {}).items()
        if (v := _as_float(info.get(key))) is not None
    }
    for prefix, key in (spec.get("mappings") or {}).items():
        values = info.get(key)
        if isinstance(values, Mapping):
            out.update(
                {prefix + str(k): x for k, v in values.items() if (x := _as_float(v)) is not None}
            )
    r = _as_float(reward)
    if r is not None and spec.get("reward"):
        out[spec["reward"]] = r
    return out


def _cell(value: Any, max_chars: int) -> str:
    """Make one markdown table cell: no pipes or newlines, bounded length."""
    text = "" if value is None else str(value)
    if len(text) > max_chars:
        text = text[: max_chars - 1] + "…"
    return text.replace("\\", "\\\\").replace("|", "\\|").replace("\r", "").replace("\n", "<br>")


def examples_markdown(
    info: Mapping[str, Any] | None,
    step: int | None,
    spec: InfoLogSpec | None,
    max_chars: int = 300,
) -> str | None:
    """Render the records ``spec["text"]`` names as a markdown table under a one-line header
    (None when the step has none)."""
    text = (spec or {}).get("text")
    if not info or not text:
        return None
    records = info.get(text["key"])
    if not records:
        return None
    head = [] if step is None else [f"step {step}"]
    for label, key in text.get("header", ()):
        value = info.get(key)
        number = _as_float(value)
        if number is not None and not isinstance(value, str):
            head.append(f"{label}={number:.4g}")
        elif value is not None:
            head.append(f"{label} `{value}`")
    columns = list(text.get("columns") or ("text",))
    lines = [" · ".join(head), ""] if head else []
    lines += ["| # | " + " | ".join(columns) + " |", "|---|" + "---|" * len(columns)]
    for i, record in enumerate(records):
        record = record if isinstance(record, Mapping) else {columns[0]: record}
        cells = [_cell(record.get(c), max_chars) for c in columns]
        lines.append(f"| {i + 1} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


class InfoTBWriter:
    """Write the env's declared ``info`` tags (``spec``), one point per env step.

    ``writer`` may be ``None`` (TensorBoard off): then only ``record`` (if given) is fed, which is
    how the env's scalars also reach the logger's stdout/CSV tables.
    Several envs reporting at the same step (SB3 vec envs) are averaged into one point so the
    curves do not zig-zag; the text summary shows the first env's examples.
    """

    def __init__(
        self,
        writer: SummaryWriter | None,
        spec: InfoLogSpec | None = None,
        text_every: int = 10,
        record: Callable[[str, float], None] | None = None,
    ) -> None:
        self.writer = writer
        self.spec = spec
        self.text_every = int(text_every)
        self.record = record
        self._last_text_step: int | None = None

    def log_step(
        self, infos: Sequence[Mapping[str, Any]], rewards: Sequence[float] | None, step: int
    ) -> dict[str, float]:
        """Log one (possibly vectorised) env step; returns the scalars written."""
        rewards = list(rewards) if rewards is not None else [None] * len(infos)
        sums: dict[str, float] = {}
        counts: dict[str, int] = {}
        for info, reward in zip(infos, rewards, strict=True):
            for tag, value in info_scalars(info, reward, self.spec).items():
                sums[tag] = sums.get(tag, 0.0) + value
                counts[tag] = counts.get(tag, 0) + 1
        means = {tag: sums[tag] / counts[tag] for tag in sums}
        self.log_scalars(means, step)
        if (
            self.writer is not None
            and self.text_every > 0
            and (self._last_text_step is None or step - self._last_text_step >= self.text_every)
        ):
            for info in infos:
                text = examples_markdown(info, step, self.spec)
                if text is not None:
                    self.writer.add_text(self.spec["text"]["tag"], text, step)
                    self._last_text_step = step
                    break
        return means

    def log_scalars(self, values: Mapping[str, float], step: int) -> None:
        """Write per-step scalars at ``step`` (the env's tags, a bandit's ``bandit/*``).

        They go straight into the ``SummaryWriter``: SB3's logger keeps only the last
        ``record`` before each ``dump``, which would leave one point per log interval.
        """
        for tag, value in values.items():
            if self.writer is not None:
                self.writer.add_scalar(tag, float(value), step)
            if self.record is not None:
                self.record(tag, float(value))

    def flush(self) -> None:
        """Flush pending events to disk."""
        if self.writer is not None:
            self.writer.flush()


class InfoTensorboardCallback(BaseCallback):
    """SB3 callback that writes the env's declared ``info`` tags from ``self.locals["infos"]``.

    Every agent runs it first in its callback list: SB3's algorithms and the hand-rolled agents
    (whose ``locals`` carry the same ``infos`` / ``rewards``). The scalars go straight into the
    ``SummaryWriter`` of the logger's TensorBoard output at ``num_timesteps`` (SB3's logger only
    keeps the last ``record`` before each ``dump``, which would leave one point per rollout);
    their means are also ``record_mean``'ed, excluded from TensorBoard, so the logger's
    console/CSV tables show them. ``recorders`` are drained when the algorithm does not put
    ``infos`` in ``locals`` (ARS).
    """

    def __init__(
        self,
        text_every: int = 10,
        recorders: Sequence[StepInfoRecorder] = (),
        verbose: int = 0,
        purge: bool = False,
    ) -> None:
        super().__init__(verbose)
        self.text_every = text_every
        self.recorders = list(recorders)
        self.purge = purge  # a continued run: drop points an interrupted process left after now
        self.tb: InfoTBWriter | None = None

    def _on_training_start(self) -> None:
        writer = logger_summary_writer(self.logger)
        if self.purge:
            purge_from(writer, self.num_timesteps + 1)

        def record(tag: str, value: float) -> None:
            self.logger.record_mean(tag, value, exclude="tensorboard")

        self.tb = InfoTBWriter(
            writer, info_log_spec(self.training_env), text_every=self.text_every, record=record
        )

    def _on_step(self) -> bool:
        assert self.tb is not None, "on_training_start was not called"
        infos = self.locals.get("infos")
        rewards = self.locals.get("rewards")
        if infos is not None:
            self.tb.log_step(
                list(infos),
                None if rewards is None else np.asarray(rewards).reshape(-1).tolist(),
                self.num_timesteps,
            )
            for rec in self.recorders:  # keep the fallback buffer from replaying old steps
                rec.drain()
            return True
        drained = [item for rec in self.recorders for item in rec.drain()]
        if drained:
            self.tb.log_step(
                [info for _, info in drained], [r for r, _ in drained], self.num_timesteps
            )
        return True

    def _on_training_end(self) -> None:
        if self.tb is not None:
            self.tb.flush()
