"""Line-level tolerance shared by the line-based parsers: a cut last line, and a tool's own noise lines.

A recording killed mid-write (the usual end of an ``nvidia-smi -l`` log) ends inside a line. Parsers
load every complete line and skip the cut one with a warning that names it (``cut_warning``). A last
line without a newline that is a complete record is simply complete: each parser says what a complete
record is (``is_complete``), since only it knows. A tool's error lines printed between its records
(ipmitool's ``Unable to send command: ...`` between ``sdr elist`` rows, when stderr goes to the log)
do not make a file another format (``mostly_records``), and are skipped with one warning
(``noise_warning``: how many, and the first line).
"""

from __future__ import annotations

import os
import re
import tempfile
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable, Iterator

_CHUNK = 1 << 24


@dataclass(frozen=True)
class Tail:
    """The file's unterminated last line: its text ('' when the file ends with a line end), its 1-based
    line number, and the byte offset where it starts (the size of the complete part)."""

    text: str
    line: int
    start: int

    @property
    def cut(self) -> bool:
        """True when there is a last line without its line end (blank text does not count)."""
        return bool(self.text.strip())


def cut_warning(line: int) -> str:
    """The one warning for a skipped cut last line."""
    return f"line {line} is cut off (the recording stopped mid-line?): skipped"


def noise_warning(count: int, first_line: int, what: str) -> str:
    """The one warning for a tool's noise lines skipped among its records ('3 ipmitool error lines ...')."""
    return f"{count} {what} lines skipped (first at line {first_line})"


def text_tail(text: str) -> Tail:
    """The unterminated last line of ``text`` ('\\r' alone counts as a line end)."""
    if not text or text.endswith(("\n", "\r")):
        return Tail("", 0, len(text.encode("utf-8")))
    cut_at = text.rfind("\n") + 1
    return Tail(text[cut_at:], text.count("\n", 0, cut_at) + 1, len(text[:cut_at].encode("utf-8")))


def file_tail(path: Path, data: bytes | None = None) -> Tail:
    """``text_tail`` of a file without reading it whole: the end is read first, and the lines are counted
    (in 16 MiB blocks) only when the last one has no line end. ``data``: the bytes, if already read."""
    if data is not None:
        end = data.rfind(b"\n") + 1
        if not data or data.endswith((b"\n", b"\r")):
            return Tail("", 0, len(data))
        return Tail(data[end:].decode("utf-8", errors="replace"), data.count(b"\n", 0, end) + 1, end)
    with path.open("rb") as handle:
        size = handle.seek(0, os.SEEK_END)
        if size == 0:
            return Tail("", 0, 0)
        back = min(size, 1 << 16)
        handle.seek(size - back)
        end_block = handle.read(back)
        if end_block.endswith((b"\n", b"\r")):
            return Tail("", 0, size)
        newline = end_block.rfind(b"\n")
        while newline == -1 and back < size:  # a last line longer than 64 KiB
            back = min(size, back * 4)
            handle.seek(size - back)
            end_block = handle.read(back)
            newline = end_block.rfind(b"\n")
        start = size - back + newline + 1
        handle.seek(0)
        count, done = 0, 0
        while done < start:
            block = handle.read(min(_CHUNK, start - done))
            if not block:
                break
            count += block.count(b"\n")
            done += len(block)
    return Tail(end_block[newline + 1:].decode("utf-8", errors="replace"), count + 1, start)


def lines_before(path: Path, tail: Tail, data: bytes | None = None, count: int = 200) -> list[str]:
    """Up to ``count`` lines before the tail (from its last 64 KiB), to judge whether the tail is complete."""
    if data is not None:
        block = data[max(0, tail.start - (1 << 16)):tail.start]
    else:
        with path.open("rb") as handle:
            handle.seek(max(0, tail.start - (1 << 16)))
            block = handle.read(tail.start - max(0, tail.start - (1 << 16)))
    return block.decode("utf-8", errors="replace").replace("\r\n", "\n").split("\n")[-count - 1:-1]


@contextmanager
def complete_part(path: Path, tail: Tail) -> Iterator[Path]:
    """A temporary copy of the file's complete lines (all before ``tail``), for readers that take a path
    and would stop at the cut line (DuckDB's strict CSV reader); removed on exit."""
    with tempfile.TemporaryDirectory(prefix="dlwh-") as folder:
        copy = Path(folder) / path.name
        with path.open("rb") as src, copy.open("wb") as dst:
            left = tail.start
            while left > 0:
                block = src.read(min(_CHUNK, left))
                if not block:
                    break
                dst.write(block)
                left -= len(block)
        yield copy


def drop_cut_line(text: str, is_complete: Callable[[str], bool], warnings: list[str]) -> str:
    """``text`` without its last line when that line has no line end and is not a complete record
    (a warning names it); otherwise ``text`` unchanged."""
    tail = text_tail(text)
    if not tail.cut or is_complete(tail.text):
        return text
    warnings.append(cut_warning(tail.line))
    return text[: len(text) - len(tail.text)]


_NUMBER = re.compile(r"[-+]?\d[\d.,'\u202f\u00a0]*")
_WORD = re.compile(r"[^\W\d_][\w/\-.:]*")


def line_shape(text: str, sep: str | None = None) -> str:
    """A line's shape: numbers as '9', words as 'w', blanks folded (per ``sep``-separated cell when given).
    A complete record has the shape of records before it; one cut mid-write mostly has not."""
    if sep is not None:
        return sep.join(line_shape(cell) for cell in text.split(sep))
    return " ".join(_WORD.sub("w", _NUMBER.sub("9", text)).split())


def shaped_like(recent: Iterable[str], sep: str | None = None, known_words: bool = False) -> Callable[[str], bool]:
    """An ``is_complete`` test: the line has the shape of one of the ``recent`` lines (the lines before it)
    and, with ``known_words``, each of its words is a word of those lines ('cycl' cut from 'cycles')."""
    recent = [line for line in recent if line.strip()]
    shapes = {line_shape(line, sep) for line in recent}
    words = {w for line in recent for w in _WORD.findall(line)} if known_words else set()
    return lambda line: line_shape(line, sep) in shapes and (not known_words or set(_WORD.findall(line)) <= words)


def mostly_records(lines: Iterable[str], is_record: Callable[[str], bool], is_noise: Callable[[str], bool],
                   threshold: float = 0.8, limit: int = 500) -> bool:
    """Detection that tolerates a tool's noise: at least one record, and records make up at least
    ``threshold`` of the first ``limit`` lines that are neither blank, nor comments, nor the tool's noise."""
    records = others = 0
    for line in lines:
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        if is_record(line):
            records += 1
        elif not is_noise(line):
            others += 1
        if records + others >= limit:
            break
    return records >= 1 and records >= threshold * (records + others)


def head_lines(head: str) -> list[str]:
    """The lines of a detection head without the last, which may be cut (at 64 KiB, or mid-write),
    unless it is the only one."""
    lines = head.splitlines()
    return lines[:-1] if len(lines) > 1 else lines
