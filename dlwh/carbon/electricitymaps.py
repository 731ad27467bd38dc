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
from dlwh.carbon.settings import normalise_zone
from dlwh.errors import DlwhError, UsageError

ENV_BASE_URL = "ELECTRICITYMAPS_API_URL"
__all__ = ["Client", "resolve_token", "make_client", "fetch", "intensity_frame", "store", "ResponseError", "DEFAULT_BASE_URL",
           "ENV_TOKEN", "PAST_RANGE_DAYS"]
API_SOURCE = "electricitymaps-api"

GRANULARITY_S: dict[str, float] = {
    "5_minutes": 300.0, "15_minutes": 900.0, "hourly": 3600.0, "daily": 86400.0,
}

COLUMNS = ("zone", "ts", "period_s", "intensity_g_per_kwh", "emission_factor_type", "is_estimated",
           "estimation_method", "is_forecast", "source", "updated_at", "fetched_at")


class ResponseError(ValueError):
    """A JSON document that is not an Electricity Maps carbon-intensity answer."""


# -- JSON -> rows ---------------------------------------------------------------------------------------
def _utc(text: Any, what: str) -> pd.Timestamp | None:
    if text is None:
        return None
    try:
        stamp = pd.Timestamp(str(text))
    except (ValueError, TypeError):
        raise ResponseError(f"{what} {text!r} is not an ISO 8601 time") from None
    if stamp.tzinfo is not None:
        stamp = stamp.tz_convert("UTC").tz_localize(None)
    return stamp


def intensity_frame(obj: Any, source: str, fetched_at: datetime | None = None,
                    default_zone: str | None = None) -> pd.DataFrame:
    """Rows for ``carbon_intensity`` from one carbon-intensity JSON answer.

    Accepts /latest and /past (one object), /history ({"history": [...]}), /past-range ({"data": [...]})
    and /forecast ({"forecast": [...]}). Lists default to hourly periods; a single value without
    ``temporalGranularity`` is a point (period NULL). Raises ResponseError saying what is missing.
    """
    if not isinstance(obj, dict):
        raise ResponseError("expected a JSON object with carbonIntensity, history, data or forecast")
    is_forecast = False
    if "forecast" in obj:
        entries, is_forecast, listed = obj["forecast"], True, True
    elif "history" in obj:
        entries, listed = obj["history"], True
    elif "data" in obj:
        entries, listed = obj["data"], True
    elif "carbonIntensity" in obj:
        entries, listed = [obj], False
    else:
        keys = ", ".join(sorted(obj)[:6]) or "nothing"
        raise ResponseError(f"no carbonIntensity, history, data or forecast in the answer (it has {keys})")
    if not isinstance(entries, list):
        raise ResponseError("history/data/forecast is not a list")
    top_zone = obj.get("zone") or default_zone
    rows = []
    for number, entry in enumerate(entries, 1):
        if not isinstance(entry, dict):
            raise ResponseError(f"entry {number} is not an object")
        value = entry.get("carbonIntensity")
        if value is None:
            continue  # the API sends null where it has no value; nothing to store
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ResponseError(f"entry {number}: carbonIntensity {value!r} is not a number")
        if not 0 <= value <= 5000:
            raise ResponseError(f"entry {number}: carbonIntensity {value} gCO2eq/kWh is out of range")
        zone = entry.get("zone") or top_zone
        if not zone:
            raise ResponseError(f"entry {number} has no zone")
        if "datetime" not in entry:
            raise ResponseError(f"entry {number} has no datetime")
        granularity = entry.get("temporalGranularity") or obj.get("temporalGranularity")
        period = GRANULARITY_S.get(str(granularity)) if granularity else (3600.0 if listed else None)
        estimated = entry.get("isEstimated")
        rows.append({
            "zone": normalise_zone(str(zone)),
            "ts": _utc(entry["datetime"], f"entry {number}: datetime"),
            "period_s": period,
            "intensity_g_per_kwh": float(value),
            "emission_factor_type": entry.get("emissionFactorType") or obj.get("emissionFactorType"),
            "is_estimated": None if estimated is None else bool(estimated),
            "estimation_method": entry.get("estimationMethod"),
            "is_forecast": is_forecast,
            "source": source,
            "updated_at": _utc(entry.get("updatedAt") or obj.get("updatedAt"), f"entry {number}: updatedAt"),
            "fetched_at": fetched_at,
        })
    frame = pd.DataFrame(rows, columns=list(COLUMNS))
    if len(frame):
        frame = frame.astype({"ts": "datetime64[us]", "updated_at": "datetime64[us]", "period_s": "float64",
                              "is_estimated": "boolean", "fetched_at": "datetime64[us]"})
    return frame


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


