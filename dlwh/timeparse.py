"""The one parser of ISO 8601 times and of durations, for options and for files (no pandas).

Times: ``2026-11-21T10:00``, ``2026-11-21 10:00:00.5``, ``...Z`` or ``...+09:00``; naive means UTC;
the result is a naive UTC ``datetime``. Durations: ``2h``, ``90m``/``90min``, ``45s``, ``1.5h``,
``3600`` (seconds) or ``H:MM:SS``; the result is seconds.
"""

from __future__ import annotations

import re
from datetime import datetime, timezone

from dlwh.errors import UsageError

_DURATION = re.compile(r"(\d+(?:\.\d+)?)\s*(h|m|min|s)?")
_CLOCK = re.compile(r"(\d+):(\d{2}):(\d{2}(?:\.\d+)?)")
_UNIT_S = {"h": 3600.0, "m": 60.0, "min": 60.0, "s": 1.0, None: 1.0}


def parse_utc(text: str) -> datetime:
    """An ISO 8601 time (``Z`` or an offset; naive means UTC) → naive UTC datetime; ValueError otherwise."""
    value = datetime.fromisoformat(str(text).strip().replace("Z", "+00:00"))
    if value.tzinfo is not None:
        value = value.astimezone(timezone.utc).replace(tzinfo=None)
    return value


def parse_time_option(text: str, option: str, example: str = "2026-11-21T10:00") -> datetime:
    """:func:`parse_utc` for a command-line value: UsageError naming ``option`` when it is not a time."""
    try:
        return parse_utc(text)
    except ValueError:
        raise UsageError(f"{option} {text!r} is not an ISO 8601 time such as {example} (UTC)") from None


def parse_duration(text: str, option: str) -> float:
    """'2h', '90m', '45s', '1.5h', '3600' or 'H:MM:SS' → seconds; UsageError naming ``option`` otherwise."""
    value = text.strip().lower()
    match = _DURATION.fullmatch(value)
    if match:
        return float(match.group(1)) * _UNIT_S[match.group(2)]
    match = _CLOCK.fullmatch(value)
    if match:
        return int(match.group(1)) * 3600 + int(match.group(2)) * 60 + float(match.group(3))
    raise UsageError(f"{option} {text!r} is not a duration such as 2h, 90m, 3600s or 1:30:00")
