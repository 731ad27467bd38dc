"""Parsing of the collector's command-line values (shared by the CLI and ``python -m``)."""

from __future__ import annotations

from typing import Sequence, Union

from dlwh.errors import UsageError


def parse_tags(items: Sequence[str]) -> dict[str, Union[str, int, float]]:
    """``["model=resnet18", "batch_size=64"]`` → {"model": "resnet18", "batch_size": 64}.

    Values that read as integers or decimals become numbers.
    """
    tags: dict[str, Union[str, int, float]] = {}
    for item in items:
        key, sep, value = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise UsageError(f"bad --tag {item!r}; use key=value, e.g. --tag model=resnet18")
        tags[key] = _number(value.strip())
    return tags


def _number(text: str) -> Union[str, int, float]:
    try:
        return int(text)
    except ValueError:
        pass
    try:
        f = float(text)
    except ValueError:
        return text
    return f if text.lower() not in ("nan", "inf", "-inf", "infinity", "-infinity") else text
