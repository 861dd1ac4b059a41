"""Shared by the benchmark scripts: rewriting their generated block of BENCHMARKS.md."""

from __future__ import annotations

from pathlib import Path


def replace_block(path: Path, text: str, begin: str, end: str, heading: str | None = None) -> None:
    """Rewrite the block between the markers ``begin`` and ``end`` in ``path`` (re-read just
    before writing, so nothing outside the markers changes, in particular no other benchmark's
    section); append the block, after ``heading`` if given, when the markers are absent."""
    block = f"{begin}\n{text.rstrip()}\n{end}"
    old = path.read_text() if path.exists() else ""
    if begin in old and end in old:
        head, rest = old.split(begin, 1)
        _, tail = rest.split(end, 1)
        new = head + block + tail
    else:
        intro = f"{heading}\n\n" if heading else ""
        new = (old.rstrip() + "\n\n" if old else "") + intro + block + "\n"
    path.write_text(new)
