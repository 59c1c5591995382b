"""Sections of ``results/summary.md``, the page ``python -m benchmarks.run`` writes.

A benchmark re-run on its own (``--rerun``, ``--render``, ``python -m benchmarks.step_cost``)
replaces its own section so the summary never mixes old and new figures.
"""

from __future__ import annotations

from pathlib import Path


def replace_section(path: Path, title: str, body: list[str]) -> bool:
    """Replace the text under ``## {title}`` (up to the next ``## ``) with ``body``.

    Returns False, changing nothing, when the file or the section does not exist.
    """
    if not path.exists():
        return False
    head, sep, rest = path.read_text().partition(f"## {title}\n")
    if not sep:
        return False
    tail = rest[rest.find("\n## ") :] if "\n## " in rest else ""
    path.write_text(head + sep + "\n".join(["", *body, ""]) + tail)
    return True
