"""The one ISO 8601 time and duration parser (dlwh.timeparse)."""

from __future__ import annotations

from datetime import datetime

import pytest

from dlwh.errors import UsageError
from dlwh.timeparse import parse_duration, parse_time_option, parse_utc


@pytest.mark.parametrize("text, expected", [
    ("2026-11-21T10:00", datetime(2026, 11, 21, 10, 0)),
    ("2026-11-21T10:00Z", datetime(2026, 11, 21, 10, 0)),
    ("2026-11-21T19:00+09:00", datetime(2026, 11, 21, 10, 0)),
    (" 2026-11-21 10:00:00.5 ", datetime(2026, 11, 21, 10, 0, 0, 500000)),
])
def test_times_become_naive_utc(text, expected):
    assert parse_utc(text) == expected == parse_time_option(text, "--at")


def test_bad_time_is_a_usage_error():
    with pytest.raises(UsageError) as err:
        parse_time_option("yesterday", "--start")
    assert str(err.value) == "--start 'yesterday' is not an ISO 8601 time such as 2026-11-21T10:00 (UTC)"
    with pytest.raises(ValueError):
        parse_utc("2026-13-01")


@pytest.mark.parametrize("text, seconds", [("2h", 7200), ("90m", 5400), ("90min", 5400), ("45s", 45),
                                           ("1.5h", 5400), ("3600", 3600), ("1:30:00", 5400), ("0:00:01.5", 1.5)])
def test_durations(text, seconds):
    assert parse_duration(text, "--duration") == seconds


def test_bad_duration_is_a_usage_error():
    with pytest.raises(UsageError) as err:
        parse_duration("2 days", "--step")
    assert str(err.value) == "--step '2 days' is not a duration such as 2h, 90m, 3600s or 1:30:00"
