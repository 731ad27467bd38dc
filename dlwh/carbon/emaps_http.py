"""The Electricity Maps v3 HTTP client: requests with urllib3's ``Retry``, and a token that stays secret.

- The token comes from ``--token`` (discouraged: shell history, ``ps``), a file (``--token-file``)
  or ``$ELECTRICITYMAPS_TOKEN``. It is stripped (a CRLF ``.env`` line) and must then be printable
  ASCII without spaces; it is sent only in the ``auth-token`` header, and every message dlwh makes
  from an answer or an exception has it replaced by ``***``.
- Plain ``http://`` API URLs are refused unless ``allow_http`` (``--allow-http``); URLs holding a
  user name or password are refused; redirects are not followed (the header would go along).
- HTTP 429 and 500/502/503/504 and failed connections are retried ``retries`` times with
  exponential backoff (0.5, 1, 2 s ...), honouring ``Retry-After`` up to ``MAX_RETRY_AFTER_S``.
  A read timeout is not retried (``--timeout`` is the user's choice).
"""

from __future__ import annotations

import json
import os
import re
import stat
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Optional
from urllib.parse import urlsplit, urlunsplit

from dlwh.errors import DlwhError, UsageError

DEFAULT_BASE_URL = "https://api.electricitymaps.com/v3"
ENV_TOKEN = "ELECTRICITYMAPS_TOKEN"
RETRY_STATUSES = (429, 500, 502, 503, 504)
BACKOFF_S = 0.5
MAX_RETRY_AFTER_S = 60.0
PAST_RANGE_DAYS = 10          # the API's limit for one hourly /past-range call
_TOKEN_OK = re.compile(r"[\x21-\x7e]+")


def clean_token(raw: str, where: str) -> str:
    """The token without surrounding whitespace; UsageError (never showing it) when it cannot be one."""
    token = raw.strip().lstrip("\ufeff").strip()
    if not token:
        raise UsageError(f"the Electricity Maps token from {where} is empty; set it to your API token")
    if not _TOKEN_OK.fullmatch(token):
        bad = next(c for c in token if not 0x21 <= ord(c) <= 0x7E)
        what = ("a space" if bad == " " else "a line break" if bad in "\r\n" else
                "a control character" if ord(bad) < 0x20 or ord(bad) == 0x7F else "a non-ASCII character")
        raise UsageError(f"the Electricity Maps token from {where} has {what} inside; an API token is printable "
                         "ASCII without spaces: check what was copied")
    return token


def resolve_token(token: Optional[str] = None, token_file: Optional[str] = None) -> str:
    """The token given, else the one in ``token_file``, else $ELECTRICITYMAPS_TOKEN; cleaned.

    UsageError when there is none or it cannot be a token. Warns about a file others can read.
    """
    if token is not None:
        return clean_token(token, "--token")
    if token_file is not None:
        path = Path(token_file)
        try:
            text = path.read_text(encoding="utf-8")
            mode = path.stat().st_mode
        except FileNotFoundError:
            raise UsageError(f"no token file at {path}; check --token-file") from None
        except (OSError, UnicodeDecodeError) as err:
            why = err.strerror if isinstance(err, OSError) and err.strerror else "not UTF-8 text"
            raise UsageError(f"cannot read the token file {path} ({why}); check --token-file") from None
        if mode & (stat.S_IRGRP | stat.S_IROTH):
            import sys

            print(f"warning: the token file {path} is readable by other users; chmod 600 {path}", file=sys.stderr)
        return clean_token(text, f"the token file {path}")
    value = os.environ.get(ENV_TOKEN)
    if value is None or not value.strip():
        raise UsageError(f"no Electricity Maps token: set {ENV_TOKEN} or pass --token-file "
                         "(or use --intensity G / the shipped yearly averages without API access)")
    return clean_token(value, f"${ENV_TOKEN}")


def safe_url(url: str) -> str:
    """``url`` with a password (``user:pass@``) and a query (``?...``) replaced by ``***``."""
    parts = urlsplit(url)
    if parts.password is not None:
        host = parts.netloc.rsplit("@", 1)[1]
        parts = parts._replace(netloc=f"{parts.username}:***@{host}")
    if parts.query:
        parts = parts._replace(query="***")
    return urlunsplit(parts)


def check_base_url(url: str, allow_http: bool) -> str:
    """The API base URL without a trailing slash; UsageError for other schemes, credentials, plain http."""
    parts = urlsplit(url)
    shown = safe_url(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise UsageError(f"API URL {shown!r} is not an http(s) URL such as {DEFAULT_BASE_URL}")
    if parts.username or parts.password:
        raise UsageError(f"API URL {shown!r} holds a user name or password; remove it (the token goes in the "
                         "auth-token header)")
    if parts.query or parts.fragment:
        raise UsageError(f"API URL {shown!r} has a query or fragment; give the base URL only, such as "
                         f"{DEFAULT_BASE_URL} (the token goes in the auth-token header)")
    if parts.scheme == "http" and not allow_http:
        raise UsageError(f"API URL {shown!r} is plain http: the token would cross the network unencrypted; "
                         "use https, or pass --allow-http (e.g. for a local test server)")
    return url.rstrip("/")


def _retry(retries: int) -> Any:
    from urllib3.util.retry import Retry

    class CappedRetry(Retry):  # type: ignore[misc]
        """Retry that waits at most MAX_RETRY_AFTER_S however long Retry-After asks for."""

        def parse_retry_after(self, retry_after: str) -> float:
            return min(float(super().parse_retry_after(retry_after)), MAX_RETRY_AFTER_S)

    return CappedRetry(total=retries, connect=retries, read=0, other=0, status=retries,
                       status_forcelist=RETRY_STATUSES, allowed_methods=frozenset({"GET"}),
                       backoff_factor=BACKOFF_S, respect_retry_after_header=True, raise_on_status=False,
                       redirect=0)


@dataclass
class Client:
    """An Electricity Maps v3 client. ``str(client)`` never shows the token."""

    token: str = field(repr=False)
    base_url: str = DEFAULT_BASE_URL
    timeout_s: float = 20.0
    allow_http: bool = False
    retries: int = 3
    _session: Any = field(default=None, repr=False, compare=False)

    def __post_init__(self) -> None:
        self.token = clean_token(self.token or "", "the caller")
        self.base_url = check_base_url(self.base_url, self.allow_http)
        if self.retries < 0:
            raise UsageError("--retries must be 0 or more")

    def _redact(self, text: str) -> str:
        return text.replace(self.token, "***")

    def session(self) -> Any:
        """The requests session, with retries on both schemes (made on first use)."""
        if self._session is None:
            import requests
            from requests.adapters import HTTPAdapter

            s = requests.Session()
            adapter = HTTPAdapter(max_retries=_retry(self.retries))
            s.mount("https://", adapter)
            s.mount("http://", adapter)
            self._session = s
        return self._session

    def get(self, path: str, params: dict[str, str]) -> Any:
        """GET base_url/path?params with the auth-token header; the parsed JSON, or DlwhError."""
        import requests

        path = path.lstrip("/")
        where = f"{urlsplit(self.base_url).netloc} /{path}"
        headers = {"auth-token": self.token, "Accept": "application/json", "User-Agent": "dlwh"}
        try:
            r = self.session().get(f"{self.base_url}/{path}", params=params, headers=headers,
                                   timeout=self.timeout_s, allow_redirects=False)
        except requests.exceptions.Timeout:
            raise DlwhError(f"Electricity Maps did not answer within {self.timeout_s:g} s ({where}); "
                            "check the network or raise --timeout") from None
        except requests.exceptions.ConnectionError as err:
            if _timed_out(err):  # a read timeout after urllib3 gave up (it is not retried)
                raise DlwhError(f"Electricity Maps did not answer within {self.timeout_s:g} s ({where}); "
                                "check the network or raise --timeout") from None
            raise DlwhError(self._redact(f"cannot reach Electricity Maps at {self.base_url} ({_why(err)}); "
                                         "check the network or --api-url")) from None
        except requests.exceptions.RequestException as err:
            raise DlwhError(self._redact(f"the request to Electricity Maps failed ({where}: {type(err).__name__}); "
                                         "retry later")) from None
        if r.status_code >= 300:
            raise DlwhError(self._redact(http_message(r.status_code, r.headers, r.content, where, self.retries)))
        try:
            return json.loads(r.content.decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError):
            start = self._redact(r.content[:60].decode("utf-8", errors="replace")).replace("\n", " ")
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


def _iso(t: datetime) -> str:
    if t.tzinfo is not None:
        t = t.astimezone(timezone.utc).replace(tzinfo=None)
    return t.strftime("%Y-%m-%dT%H:%MZ")


def _timed_out(err: BaseException) -> bool:
    from urllib3.exceptions import ConnectTimeoutError, NewConnectionError, ReadTimeoutError

    reason = getattr(err.args[0], "reason", None) if err.args else None
    # NewConnectionError (refused, unknown host) is a subclass of ConnectTimeoutError in urllib3
    return isinstance(reason, ReadTimeoutError) or (isinstance(reason, ConnectTimeoutError)
                                                    and not isinstance(reason, NewConnectionError))


def _why(err: BaseException) -> str:
    """A short reason for a failed connection (``[Errno 111] Connection refused``), nothing else."""
    text = str(err)
    m = re.search(r"\[Errno -?\d+\] [^'\")\]]+", text)
    if m:
        return m.group(0).strip()
    for word in ("Name or service not known", "Temporary failure in name resolution", "Connection refused",
                 "timed out", "Connection reset"):
        if word in text:
            return word
    return "connection failed"


def http_message(code: int, headers: Any, body: bytes, where: str, retries: int) -> str:
    """The one line for an HTTP error answer (the caller redacts it)."""
    raw = body[:2000].decode("utf-8", errors="replace")
    try:
        parsed = json.loads(raw)
        detail = str(parsed.get("message") or parsed.get("error") or parsed.get("detail") or "") \
            if isinstance(parsed, dict) else raw
    except json.JSONDecodeError:
        detail = raw
    detail = " ".join(detail.split())[:200]
    said = f": {detail}" if detail else ""
    tried = f" after {retries + 1} attempts" if retries and code in RETRY_STATUSES else ""
    if code in (401, 403):
        return (f"Electricity Maps refused the token (HTTP {code}{said}); check ${ENV_TOKEN} or --token-file "
                "and that the token covers this zone and endpoint")
    if code == 429:
        retry = headers.get("Retry-After") if headers else None
        wait = f"wait {retry} s" if retry else "wait a minute"
        return (f"Electricity Maps rate limit reached (HTTP 429{said}){tried}; {wait} and retry, "
                "or fetch a shorter range")
    if 300 <= code < 400:
        target = headers.get("Location") if headers else None
        return (f"Electricity Maps redirected {where} (HTTP {code}{' to ' + target if target else ''}); "
                "redirects are not followed so the token stays with the API; pass the right --api-url")
    if code == 404:
        return f"Electricity Maps has no such resource (HTTP 404 for {where}{said}); check the zone key and --api-url"
    if 400 <= code < 500:
        return f"Electricity Maps rejected the request (HTTP {code} for {where}{said}); check --zone, --start and --end"
    return f"Electricity Maps server error (HTTP {code} for {where}{said}){tried}; retry later"
