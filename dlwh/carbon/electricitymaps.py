"""Electricity Maps: the v3 API client (carbon intensity) and the conversion of its JSON to warehouse rows.

The token comes from the caller (``--token``) or ``$ELECTRICITYMAPS_TOKEN`` and is sent only in the
``auth-token`` header: it is never stored, logged, printed or put in an error message.
The base URL is ``https://api.electricitymaps.com/v3`` unless ``base_url`` or ``$ELECTRICITYMAPS_API_URL``
says otherwise (tests point it at a local server).
"""

from __future__ import annotations

import json
import os
import socket
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any

import duckdb
from dlwh._lazy import pandas as pd

from dlwh.ingest.formats.electricitymaps._common import (  # the JSON -> rows conversion, shared with ingest
    COLUMNS, ResponseError, intensity_frame, normalise_zone,
)
from dlwh.errors import DlwhError, UsageError

DEFAULT_BASE_URL = "https://api.electricitymaps.com/v3"
ENV_TOKEN = "ELECTRICITYMAPS_TOKEN"
ENV_BASE_URL = "ELECTRICITYMAPS_API_URL"
PAST_RANGE_DAYS = 10          # the API's limit for one hourly /past-range call
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


# -- the HTTP client ------------------------------------------------------------------------------------
def _iso(t: datetime) -> str:
    if t.tzinfo is not None:
        t = t.astimezone(timezone.utc).replace(tzinfo=None)
    return t.strftime("%Y-%m-%dT%H:%MZ")


@dataclass
class Client:
    """A minimal Electricity Maps v3 client (urllib). ``str(client)`` never shows the token."""

    token: str = field(repr=False)
    base_url: str = DEFAULT_BASE_URL
    timeout_s: float = 20.0

    def __post_init__(self) -> None:
        if not self.token or not self.token.strip():
            raise UsageError(f"no Electricity Maps token: pass --token or set {ENV_TOKEN}")
        parsed = urllib.parse.urlparse(self.base_url)
        if parsed.scheme not in ("http", "https") or not parsed.netloc:
            raise UsageError(f"API URL {self.base_url!r} is not an http(s) URL such as {DEFAULT_BASE_URL}")
        self.base_url = self.base_url.rstrip("/")

    def _redact(self, text: str) -> str:
        return text.replace(self.token, "***") if self.token else text

    def get(self, path: str, params: dict[str, str]) -> Any:
        """GET base_url/path?params with the auth-token header; the parsed JSON, or DlwhError."""
        url = f"{self.base_url}/{path.lstrip('/')}?{urllib.parse.urlencode(params)}"
        where = f"{urllib.parse.urlparse(self.base_url).netloc} /{path.lstrip('/')}"
        request = urllib.request.Request(url, headers={"auth-token": self.token, "Accept": "application/json",
                                                       "User-Agent": "dlwh"})
        try:
            with _OPENER.open(request, timeout=self.timeout_s) as response:
                body = response.read()
        except urllib.error.HTTPError as err:
            raise DlwhError(self._redact(_http_message(err, where))) from None
        except (socket.timeout, TimeoutError):
            raise DlwhError(f"Electricity Maps did not answer within {self.timeout_s:g} s ({where}); "
                            "check the network or raise --timeout") from None
        except urllib.error.URLError as err:
            reason = err.reason
            if isinstance(reason, (socket.timeout, TimeoutError)):
                raise DlwhError(f"Electricity Maps did not answer within {self.timeout_s:g} s ({where}); "
                                "check the network or raise --timeout") from None
            raise DlwhError(self._redact(f"cannot reach Electricity Maps at {self.base_url} ({reason}); "
                                         "check the network or --api-url")) from None
        except (ConnectionError, OSError) as err:
            raise DlwhError(self._redact(f"connection to Electricity Maps failed ({where}: {err}); retry later")) from None
        try:
            return json.loads(body.decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError):
            start = self._redact(body[:60].decode("utf-8", errors="replace")).replace("\n", " ")
            raise DlwhError(f"Electricity Maps answered {where} with something that is not JSON ({start!r}); "
                            "check --api-url") from None

    def latest(self, zone: str) -> Any:
        """/carbon-intensity/latest for a zone."""
        return self.get("carbon-intensity/latest", {"zone": zone})

    def history(self, zone: str) -> Any:
        """/carbon-intensity/history (the last 24 hours) for a zone."""
        return self.get("carbon-intensity/history", {"zone": zone})

    def forecast(self, zone: str) -> Any:
        """/carbon-intensity/forecast for a zone."""
        return self.get("carbon-intensity/forecast", {"zone": zone})

    def past_range(self, zone: str, start: datetime, end: datetime) -> list[Any]:
        """/carbon-intensity/past-range, in calls of at most PAST_RANGE_DAYS days; one answer per call."""
        answers = []
        chunk = timedelta(days=PAST_RANGE_DAYS)
        t = start
        while t < end:
            upper = min(t + chunk, end)
            answers.append(self.get("carbon-intensity/past-range",
                                    {"zone": zone, "start": _iso(t), "end": _iso(upper)}))
            t = upper
        return answers


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    """Redirects are not followed: urllib would resend the auth-token header to the new host."""

    def redirect_request(self, req, fp, code, msg, headers, newurl):  # noqa: D102 (urllib API)
        return None


_OPENER = urllib.request.build_opener(_NoRedirect)


def _http_message(err: urllib.error.HTTPError, where: str) -> str:
    detail = ""
    try:
        raw = err.read()[:2000].decode("utf-8", errors="replace")
        try:
            parsed = json.loads(raw)
            if isinstance(parsed, dict):
                detail = str(parsed.get("message") or parsed.get("error") or parsed.get("detail") or "")
            else:
                detail = raw
        except json.JSONDecodeError:
            detail = raw
    except Exception:  # the body is optional
        pass
    detail = " ".join(detail.split())[:200]
    said = f": {detail}" if detail else ""
    code = err.code
    if code in (401, 403):
        return (f"Electricity Maps refused the token (HTTP {code}{said}); check --token or ${ENV_TOKEN} "
                "and that the token covers this zone and endpoint")
    if code == 429:
        retry = err.headers.get("Retry-After") if err.headers else None
        wait = f"wait {retry} s" if retry else "wait a minute"
        return f"Electricity Maps rate limit reached (HTTP 429{said}); {wait} and retry, or fetch a shorter range"
    if 300 <= code < 400:
        target = err.headers.get("Location") if err.headers else None
        return (f"Electricity Maps redirected {where} (HTTP {code}{' to ' + target if target else ''}); "
                "redirects are not followed so the token stays with the API; pass the right --api-url")
    if code == 404:
        return f"Electricity Maps has no such resource (HTTP 404 for {where}{said}); check the zone key and --api-url"
    if 400 <= code < 500:
        return f"Electricity Maps rejected the request (HTTP {code} for {where}{said}); check --zone, --start and --end"
    return f"Electricity Maps server error (HTTP {code} for {where}{said}); retry later"


@dataclass
class FetchResult:
    """What `fetch` stored: rows, their time span, and the endpoints called."""

    zone: str
    rows: int
    first_ts: datetime | None
    last_ts: datetime | None
    endpoints: list[str]


def resolve_token(token: str | None) -> str:
    """The token given, else $ELECTRICITYMAPS_TOKEN; UsageError when neither."""
    value = token or os.environ.get(ENV_TOKEN)
    if not value:
        raise UsageError(f"no Electricity Maps token: pass --token or set {ENV_TOKEN} "
                         "(or use --intensity G / the shipped yearly averages without API access)")
    return value


def fetch(con: duckdb.DuckDBPyConnection, zone: str, *, token: str | None = None,
          start: datetime | None = None, end: datetime | None = None, forecast: bool = False,
          base_url: str | None = None, timeout_s: float = 20.0) -> FetchResult:
    """Fetch a zone's carbon intensity and store it in ``carbon_intensity`` (one transaction).

    Without ``start``: /history (last 24 h) and /latest; with ``start`` (and ``end``, default now):
    /past-range in chunks. ``forecast`` adds /forecast. Times naive = UTC. Every call is made before
    anything is written, so a failed call (or a bad answer) leaves the warehouse unchanged.
    """
    zone = normalise_zone(zone)
    client = Client(resolve_token(token), base_url or os.environ.get(ENV_BASE_URL) or DEFAULT_BASE_URL, timeout_s)
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


