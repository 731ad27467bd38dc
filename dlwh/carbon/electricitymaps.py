"""Electricity Maps: fetching carbon intensity into the warehouse, and the conversion of its JSON to rows.

The HTTP client, the token's handling and the retries are in :mod:`dlwh.carbon.emaps_http`: the token
(``$ELECTRICITYMAPS_TOKEN``, a token file, or ``--token``) is sent only in the ``auth-token`` header and
is never stored, logged, printed or put in an error message. The base URL is
``https://api.electricitymaps.com/v3`` unless ``base_url`` or ``$ELECTRICITYMAPS_API_URL`` says
otherwise (plain http only with ``allow_http``; tests point it at a local server).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

import duckdb
from dlwh._lazy import pandas as pd

from dlwh.carbon.emaps_http import DEFAULT_BASE_URL, ENV_TOKEN, PAST_RANGE_DAYS, Client, resolve_token
from dlwh.ingest.formats.electricitymaps._common import (  # the JSON -> rows conversion, shared with ingest
    COLUMNS, ResponseError, intensity_frame, normalise_zone,
)
from dlwh.errors import DlwhError, UsageError

ENV_BASE_URL = "ELECTRICITYMAPS_API_URL"
__all__ = ["Client", "resolve_token", "make_client", "fetch", "intensity_frame", "store", "ResponseError",
           "DEFAULT_BASE_URL", "ENV_TOKEN", "PAST_RANGE_DAYS"]
API_SOURCE = "electricitymaps-api"


def store(con: duckdb.DuckDBPyConnection, frame: pd.DataFrame) -> int:
    """Insert fetched rows (file_sha256 NULL), replacing earlier fetched values of the same zone, time and kind.

    Runs in the caller's transaction if one is open, else in its own. Returns the rows stored.
    """
    if frame.empty:
        return 0
    con.register("_dlwh_em_rows", frame)
    try:
        con.execute(
            "DELETE FROM carbon_intensity c USING _dlwh_em_rows n "
            "WHERE c.file_sha256 IS NULL AND c.source = n.source AND c.zone = n.zone AND c.ts = n.ts "
            "AND c.is_forecast = n.is_forecast")
        con.execute(f"INSERT INTO carbon_intensity ({', '.join(COLUMNS)}) SELECT {', '.join(COLUMNS)} FROM _dlwh_em_rows")
    finally:
        con.unregister("_dlwh_em_rows")
    return len(frame)


@dataclass
class FetchResult:
    """What `fetch` stored: rows, their time span, and the endpoints called."""

    zone: str
    rows: int
    first_ts: datetime | None
    last_ts: datetime | None
    endpoints: list[str]


def make_client(*, token: str | None = None, token_file: str | None = None, base_url: str | None = None,
                timeout_s: float = 20.0, allow_http: bool = False, retries: int = 3) -> Client:
    """A checked client: token from ``token``/``token_file``/$ELECTRICITYMAPS_TOKEN, URL from ``base_url``/
    $ELECTRICITYMAPS_API_URL/the default. UsageError for a missing or malformed token or a refused URL."""
    return Client(resolve_token(token, token_file), base_url or os.environ.get(ENV_BASE_URL) or DEFAULT_BASE_URL,
                  timeout_s, allow_http=allow_http, retries=retries)


def fetch(con: duckdb.DuckDBPyConnection, zone: str, *, token: str | None = None,
          start: datetime | None = None, end: datetime | None = None, forecast: bool = False,
          base_url: str | None = None, timeout_s: float = 20.0, token_file: str | None = None,
          allow_http: bool = False, retries: int = 3, client: Client | None = None) -> FetchResult:
    """Fetch a zone's carbon intensity and store it in ``carbon_intensity`` (one transaction).

    Without ``start``: /history (last 24 h) and /latest; with ``start`` (and ``end``, default now):
    /past-range in chunks. ``forecast`` adds /forecast. Times naive = UTC. Every call is made before
    anything is written, so a failed call (or a bad answer) leaves the warehouse unchanged.
    ``client`` (see :func:`make_client`) replaces the token, URL, timeout and retry arguments.
    """
    zone = normalise_zone(zone)
    if client is None:
        client = make_client(token=token, token_file=token_file, base_url=base_url, timeout_s=timeout_s,
                             allow_http=allow_http, retries=retries)
    now = datetime.now(timezone.utc).replace(tzinfo=None)
    answers: list[tuple[str, Any]] = []
    if start is not None:
        lo = start.astimezone(timezone.utc).replace(tzinfo=None) if start.tzinfo else start
        hi = end.astimezone(timezone.utc).replace(tzinfo=None) if end is not None and end.tzinfo else (end or now)
        if hi <= lo:
            raise UsageError(f"--end {hi:%Y-%m-%dT%H:%M} is not after --start {lo:%Y-%m-%dT%H:%M}")
        answers += [("past-range", a) for a in client.past_range(zone, lo, hi)]
    else:
        if end is not None:
            raise UsageError("--end needs --start")
        answers.append(("history", client.history(zone)))
        answers.append(("latest", client.latest(zone)))
    if forecast:
        answers.append(("forecast", client.forecast(zone)))
    frames = []
    for endpoint, answer in answers:
        try:
            frames.append(intensity_frame(answer, API_SOURCE, now, default_zone=zone))
        except ResponseError as err:
            raise DlwhError(f"Electricity Maps /{endpoint} answer is not usable: {err}") from None
    frame = pd.concat([f for f in frames if len(f)], ignore_index=True) if any(len(f) for f in frames) \
        else pd.DataFrame(columns=list(COLUMNS))
    if len(frame):
        other = sorted(set(frame["zone"]) - {zone})
        if other:
            raise DlwhError(f"Electricity Maps answered for zone {other[0]}, not {zone}; nothing stored")
        frame = frame.drop_duplicates(subset=["zone", "ts", "is_forecast"], keep="last")
    from dlwh.warehouse.db import transaction

    with transaction(con):
        rows = store(con, frame)
    first = frame["ts"].min().to_pydatetime() if rows else None
    last = frame["ts"].max().to_pydatetime() if rows else None
    return FetchResult(zone, rows, first, last, [e for e, _ in answers])


