"""Time helpers: local zones, UTC conversion (vectorised), ISO parsing."""

from __future__ import annotations

import os
from datetime import datetime, timedelta, timezone, tzinfo
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from dlwh._lazy import pandas as pd

from dlwh.errors import UsageError
from dlwh.timeparse import parse_utc  # noqa: F401 - the one ISO 8601 parser; ingest modules import it from here


def zone_from_name(name: str) -> tzinfo:
    """A tzinfo for an IANA name ('Europe/Berlin'), 'UTC', or an offset ('+01:00', 'UTC-05:00')."""
    text = name.strip()
    upper = text.upper()
    if upper in ("UTC", "Z", "GMT"):
        return timezone.utc
    offset = upper[3:] if upper.startswith(("UTC", "GMT")) else upper
    if offset[:1] in "+-" and len(offset) > 1:
        sign = 1 if offset[0] == "+" else -1
        hh, _, mm = offset[1:].partition(":")
        try:
            return timezone(sign * timedelta(hours=int(hh), minutes=int(mm or 0)))
        except ValueError:
            pass
    try:
        return ZoneInfo(text)
    except (ZoneInfoNotFoundError, ValueError):
        raise UsageError(
            f"unknown time zone {name!r}; give an IANA name such as Europe/Berlin or an offset such as +01:00"
        ) from None


def local_zone() -> tuple[tzinfo, str]:
    """This machine's zone and its name: $TZ, else /etc/localtime's target, else the current offset."""
    env = os.environ.get("TZ", "").lstrip(":")
    if env:
        try:
            return zone_from_name(env), env
        except UsageError:
            pass
    link = Path("/etc/localtime")
    try:
        target = str(link.resolve())
        if "zoneinfo/" in target:
            name = target.split("zoneinfo/", 1)[1]
            return ZoneInfo(name), name
    except (OSError, ZoneInfoNotFoundError, ValueError):
        pass
    tz = datetime.now().astimezone().tzinfo or timezone.utc
    return tz, str(tz)


def zone_name(tz: tzinfo) -> str:
    """The name DuckDB's timezone() accepts for ``tz`` (IANA key or 'UTC'); offsets become Etc/GMT±N."""
    key = getattr(tz, "key", None)
    if key:
        return key
    offset = tz.utcoffset(None) or timedelta(0)
    if offset == timedelta(0):
        return "UTC"
    hours = offset.total_seconds() / 3600
    if hours.is_integer():
        # POSIX sign convention: Etc/GMT-1 is UTC+01:00
        return f"Etc/GMT{'-' if hours > 0 else '+'}{abs(int(hours))}"
    raise UsageError(f"fractional fixed offset {offset} is not supported; pass --tz with an IANA zone name")


def local_to_utc(values: pd.Series, tz: tzinfo) -> pd.Series:
    """Naive local datetimes in zone ``tz`` → naive UTC datetimes (vectorised).

    Ambiguous times in the autumn DST change are inferred from order where possible, else read as
    standard time; times skipped by the spring change are shifted forward.
    """
    if tz is timezone.utc:
        return values
    try:
        aware = values.dt.tz_localize(tz, ambiguous="infer", nonexistent="shift_forward")
    except Exception:  # pytz-style AmbiguousTimeError when order cannot tell
        aware = values.dt.tz_localize(tz, ambiguous=False, nonexistent="shift_forward")
    return aware.dt.tz_convert("UTC").dt.tz_localize(None)


def to_naive_utc(value: datetime, tz: tzinfo) -> datetime:
    """A datetime (naive = local time in ``tz``) → naive UTC."""
    if value.tzinfo is None:
        value = value.replace(tzinfo=tz)
    return value.astimezone(timezone.utc).replace(tzinfo=None)
