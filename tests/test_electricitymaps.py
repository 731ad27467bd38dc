"""Electricity Maps: saved JSON answers and CSV exports ingest; the v3 client against a local replay server."""

from __future__ import annotations

import json
import threading
import time
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlparse

import pytest

from dlwh.carbon.electricitymaps import fetch
from dlwh.errors import DlwhError, UsageError
from dlwh.ingest.loader import ingest_paths
from tests.conftest import invoke

TOKEN = "s3cr3t-T0KEN-value"


def _rows(con, source=None):
    sql = ("SELECT zone, ts, period_s, intensity_g_per_kwh, emission_factor_type, is_estimated, estimation_method, "
           "is_forecast, source, updated_at FROM carbon_intensity" + (" WHERE source = ?" if source else "") +
           " ORDER BY ts")
    return con.execute(sql, [source] if source else []).fetchall()


def _count(con, table="carbon_intensity"):
    return con.execute(f"SELECT count(*) FROM {table}").fetchone()[0]


# -- saved JSON ----------------------------------------------------------------------------------------
def test_history_fixture(con, fixtures_dir):
    path = fixtures_dir / "electricitymaps" / "voltorb-tests-history-DE.json"
    [result] = ingest_paths(con, [path])
    assert result.outcome == "loaded" and result.format == "electricitymaps-json" and result.rows == 2
    assert _rows(con) == [
        ("DE", datetime(2021, 8, 18, 13, 0), 3600.0, 413.0, "lifecycle", False, None, False, "electricitymaps-json",
         datetime(2021, 8, 19, 8, 40, 20, 886000)),
        ("DE", datetime(2021, 8, 19, 12, 0), 3600.0, 338.0, "lifecycle", False, None, False, "electricitymaps-json",
         datetime(2021, 8, 19, 12, 39, 55, 666000)),
    ]
    sha = con.execute("SELECT DISTINCT file_sha256 FROM carbon_intensity").fetchall()
    assert sha == [(con.execute("SELECT sha256 FROM files").fetchone()[0],)]


def test_latest_fixture_is_a_point_value(con, fixtures_dir):
    [result] = ingest_paths(con, [fixtures_dir / "electricitymaps" / "voltorb-tests-latest-DE.json"])
    assert result.outcome == "loaded"
    assert _rows(con) == [("DE", datetime(2018, 4, 25, 18, 7, 0, 350000), None, 302.0, "lifecycle", True,
                           "TIME_SLICER_AVERAGE", False, "electricitymaps-json", datetime(2018, 4, 25, 18, 7, 1))]
    # a point value holds for intensity_max_age_h (3 h by default)
    period = con.execute("SELECT valid_from, valid_to, intensity_source FROM carbon_intensity_periods").fetchone()
    assert period == (datetime(2018, 4, 25, 18, 7, 0, 350000), datetime(2018, 4, 25, 21, 7, 0, 350000),
                      "electricitymaps-json DE estimated")


def test_reingest_replaces_and_identical_is_unchanged(con, tmp_path, fixtures_dir):
    path = tmp_path / "de.json"
    raw = (fixtures_dir / "electricitymaps" / "voltorb-tests-history-DE.json").read_text()
    path.write_text(raw)
    ingest_paths(con, [path])
    assert ingest_paths(con, [path])[0].outcome == "unchanged"
    path.write_text(raw.replace('"carbonIntensity": 413', '"carbonIntensity": 400'))
    ingest_paths(con, [path])
    assert [r[3] for r in _rows(con)] == [400.0, 338.0]


def test_past_range_and_forecast_envelopes(con, tmp_path):
    (tmp_path / "range.json").write_text(json.dumps({"zone": "KR", "data": [
        {"zone": "KR", "carbonIntensity": 480, "datetime": "2026-01-01T00:00:00.000Z", "isEstimated": False,
         "temporalGranularity": "hourly"},
        {"zone": "KR", "carbonIntensity": None, "datetime": "2026-01-01T01:00:00.000Z"},
        {"zone": "KR", "carbonIntensity": 470, "datetime": "2026-01-01T02:00:00+09:00", "isEstimated": True}]}))
    (tmp_path / "forecast.json").write_text(json.dumps({"zone": "KR", "forecast": [
        {"carbonIntensity": 460, "datetime": "2026-01-02T00:00:00.000Z"}], "updatedAt": "2026-01-01T23:00:00Z"}))
    results = ingest_paths(con, [tmp_path])
    assert {r.outcome for r in results} == {"loaded"}
    rows = _rows(con)
    assert [(r[0], r[1], r[3], r[5], r[7]) for r in rows] == [
        ("KR", datetime(2025, 12, 31, 17, 0), 470.0, True, False),   # +09:00 converted to UTC
        ("KR", datetime(2026, 1, 1, 0, 0), 480.0, False, False),
        ("KR", datetime(2026, 1, 2, 0, 0), 460.0, None, True),
    ]


@pytest.mark.parametrize("text, message", [
    ('{"zone": "DE", "carbonIntensity": 302, "datetime": "2018-04-25T18:07', "not valid JSON"),
    ('{"zone": "DE", "carbonIntensity": "high", "datetime": "2018-04-25T18:07:00Z"}', "is not a number"),
    ('{"zone": "DE", "carbonIntensity": 302}', "has no datetime"),
    ('{"zone": "DE", "carbonIntensity": 302, "datetime": "yesterday"}', "is not an ISO 8601 time"),
    ('{"zone": "DE", "history": [{"carbonIntensity": null, "datetime": "2018-04-25T18:07:00Z"}], '
     '"carbonIntensity": 1}', "every carbonIntensity is null"),
])
def test_bad_json_changes_nothing(con, tmp_path, fixtures_dir, text, message):
    ingest_paths(con, [fixtures_dir / "electricitymaps" / "voltorb-tests-history-DE.json"])
    before = (_rows(con), _count(con, "files"), _count(con, "runs"))
    path = tmp_path / "bad.json"
    path.write_text(text)
    [result] = ingest_paths(con, [path])
    assert result.outcome == "failed" and message in result.message, result.describe()
    assert (_rows(con), _count(con, "files"), _count(con, "runs")) == before


# -- CSV exports ---------------------------------------------------------------------------------------
NEW_HEADER = ("Datetime (UTC),Country,Zone name,Zone id,Carbon intensity gCO₂eq/kWh (direct),"
              "Carbon intensity gCO₂eq/kWh (Life cycle),Carbon-free energy percentage (CFE%),"
              "Renewable energy percentage (RE%),Data source,Data estimated,Data estimation method")
OLD_HEADER = ("Datetime (UTC),Country,Zone Name,Zone Id,Carbon Intensity gCO₂eq/kWh (direct),"
              "Carbon Intensity gCO₂eq/kWh (LCA),Low Carbon Percentage,Renewable Percentage,Data Source,"
              "Data Estimated,Data Estimation Method")


def test_hourly_csv_new_header(con, tmp_path):
    path = tmp_path / "export.csv"
    path.write_text(NEW_HEADER + "\n"
                    "2021-01-01 00:00:00,Sweden,Sweden,SE,2.54,30.02,99.42,60.13,svk.se,true,ESTIMATED_FORECASTS_HIERARCHY\n"
                    "2021-01-01 01:00:00,Sweden,Sweden,SE,2.6,30.32,99.4,59.52,svk.se,true,ESTIMATED_FORECASTS_HIERARCHY\n"
                    "2021-01-01 02:00:00,Sweden,Sweden,SE,,,99.4,59.52,svk.se,false,\n")
    [result] = ingest_paths(con, [path])
    assert result.format == "electricitymaps-csv" and result.outcome == "loaded-with-warnings"
    assert "1 rows without an intensity value were skipped" in result.message
    assert [r[:9] for r in _rows(con)] == [
        ("SE", datetime(2021, 1, 1, 0), 3600.0, 30.02, "lifecycle", True, "ESTIMATED_FORECASTS_HIERARCHY", False,
         "electricitymaps-csv"),
        ("SE", datetime(2021, 1, 1, 1), 3600.0, 30.32, "lifecycle", True, "ESTIMATED_FORECASTS_HIERARCHY", False,
         "electricitymaps-csv"),
    ]


def test_csv_cut_last_line_loads_the_complete_rows_and_warns(con, tmp_path):
    path = tmp_path / "export.csv"
    path.write_text(NEW_HEADER + "\n"
                    "2021-01-01 00:00:00,Sweden,Sweden,SE,2.54,30.02,99.42,60.13,svk.se,true,ESTIMATED_FORECASTS_HIERARCHY\n"
                    "2021-01-01 01:00:00,Sweden,Sweden,SE,2.6,30.32,99.4,59.52,svk.se,true,ESTIMATED_FORECASTS_HIERARCHY\n"
                    "2021-01-01 02:00:00,Sweden,Swe")
    [result] = ingest_paths(con, [path])
    assert result.outcome == "loaded-with-warnings", result.describe()
    assert result.message.endswith("; line 4 is cut off (the recording stopped mid-line?): skipped")
    assert [r[:4] for r in _rows(con)] == [("SE", datetime(2021, 1, 1, 0), 3600.0, 30.02),
                                           ("SE", datetime(2021, 1, 1, 1), 3600.0, 30.32)]


def test_old_header_monthly_and_yearly_periods(con, tmp_path):
    (tmp_path / "monthly.csv").write_text(
        OLD_HEADER + "\n2022-01-01 00:00:00,Germany,Germany,DE,380.1,420.5,50,45,entsoe.eu,false,\n"
        "2022-02-01 00:00:00,Germany,Germany,DE,360.0,401.0,52,47,entsoe.eu,false,\n")
    (tmp_path / "yearly.csv").write_text(
        NEW_HEADER + "\n2024-01-01 00:00:00,France,France,FR,20,33,95,28,rte-france.com,false,\n")
    assert {r.outcome for r in ingest_paths(con, [tmp_path])} == {"loaded"}
    got = con.execute("SELECT zone, ts, period_s, intensity_g_per_kwh, is_estimated FROM carbon_intensity "
                      "ORDER BY zone, ts").fetchall()
    assert got == [("DE", datetime(2022, 1, 1), 31 * 86400.0, 420.5, False),
                   ("DE", datetime(2022, 2, 1), 28 * 86400.0, 401.0, False),
                   ("FR", datetime(2024, 1, 1), 366 * 86400.0, 33.0, False)]


@pytest.mark.parametrize("body, message, line", [
    ("", "no rows after the header", 2),
    ("2021-01-01 00:00:00,Sweden,Sweden,SE,2.54,abc,99.42,60.13,svk.se,true,X\n", "'abc' is not a number", 2),
    ("2021-01-01 00:00:00,Sweden,Sweden,SE,2.54,30.02,99.42,60.13,svk.se,true,X\nnot a time,Sweden,Sweden,SE,1,2,3,4,x,true,X\n",
     "is not a date and time", 3),
    ("2021-01-01 00:00:00,Sweden,Sweden,SE,2.54,30.02\n", "row has 6 fields, the header 11", 2),
])
def test_bad_csv_changes_nothing(con, tmp_path, body, message, line):
    path = tmp_path / "bad.csv"
    path.write_text(NEW_HEADER + "\n" + body)
    [result] = ingest_paths(con, [path])
    assert result.outcome == "failed" and message in result.message, result.describe()
    if line:
        assert result.line == line
    assert _count(con) == 0 and _count(con, "files") == 0 and _count(con, "runs") == 0


# -- the API client against a local replay server -------------------------------------------------------
class _Replay(BaseHTTPRequestHandler):
    """Answers each path with its route: (status, body, headers, delay), or a list of them used in turn."""

    routes: dict = {}
    seen: list = []

    def do_GET(self):  # noqa: N802 (http.server API)
        url = urlparse(self.path)
        self.seen.append((url.path, parse_qs(url.query), self.headers.get("auth-token")))
        route = self.routes.get(url.path, (404, b'{"message": "no such route"}', {}, 0))
        if isinstance(route, list):
            route = route.pop(0) if len(route) > 1 else route[0]
        status, body, headers, delay = route
        if callable(body):
            body = body(parse_qs(url.query))
        if delay:
            time.sleep(delay)
        try:
            self.send_response(status)
            for key, value in headers.items():
                self.send_header(key, value)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(body)
        except (BrokenPipeError, ConnectionResetError):  # the client gave up (timeout test)
            pass

    def log_message(self, *args):  # keep test output quiet
        pass


@pytest.fixture
def server(fixtures_dir, monkeypatch):
    """A local HTTP server on 127.0.0.1 replaying the saved Electricity Maps answers; stops by itself."""
    monkeypatch.delenv("ELECTRICITYMAPS_TOKEN", raising=False)
    monkeypatch.delenv("ELECTRICITYMAPS_API_URL", raising=False)
    history = (fixtures_dir / "electricitymaps" / "voltorb-tests-history-DE.json").read_bytes()
    latest = (fixtures_dir / "electricitymaps" / "voltorb-tests-latest-DE.json").read_bytes()
    entries = json.loads(history)["history"]

    def past_range(query):  # the real /history entries, re-wrapped in /past-range's "data" envelope
        lo, hi = query["start"][0], query["end"][0]
        inside = [e for e in entries if lo <= e["datetime"][:16] + "Z" < hi]
        return json.dumps({"zone": "DE", "data": inside}).encode()

    _Replay.routes = {
        "/v3/carbon-intensity/history": (200, history, {}, 0),
        "/v3/carbon-intensity/latest": (200, latest, {}, 0),
        "/v3/carbon-intensity/past-range": (200, past_range, {}, 0),
    }
    _Replay.seen = []
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Replay)
    httpd.daemon_threads = True
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    stopper = threading.Timer(60, httpd.shutdown)  # bounded: never outlives a minute
    stopper.daemon = True
    stopper.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}/v3"
    stopper.cancel()
    httpd.shutdown()
    httpd.server_close()
    thread.join(timeout=5)


def test_fetch_history_and_latest(con, server):
    result = fetch(con, "de", token=TOKEN, base_url=server, allow_http=True)
    assert (result.zone, result.rows, result.endpoints) == ("DE", 3, ["history", "latest"])
    assert [(r[1], r[2], r[3], r[5], r[8]) for r in _rows(con)] == [
        (datetime(2018, 4, 25, 18, 7, 0, 350000), None, 302.0, True, "electricitymaps-api"),
        (datetime(2021, 8, 18, 13), 3600.0, 413.0, False, "electricitymaps-api"),
        (datetime(2021, 8, 19, 12), 3600.0, 338.0, False, "electricitymaps-api"),
    ]
    paths = [(p, q["zone"], tok) for p, q, tok in _Replay.seen]
    assert paths == [("/v3/carbon-intensity/history", ["DE"], TOKEN), ("/v3/carbon-intensity/latest", ["DE"], TOKEN)]
    assert con.execute("SELECT count(*) FROM carbon_intensity WHERE file_sha256 IS NULL AND fetched_at IS NOT NULL"
                       ).fetchone()[0] == 3
    # fetching again replaces, never duplicates
    fetch(con, "DE", token=TOKEN, base_url=server, allow_http=True)
    assert _count(con) == 3


def test_fetch_past_range_in_chunks(con, server):
    result = fetch(con, "DE", token=TOKEN, base_url=server, start=datetime(2021, 8, 10), end=datetime(2021, 8, 25),
                   allow_http=True)
    assert result.rows == 2 and result.endpoints == ["past-range", "past-range"]
    calls = [(q["start"][0], q["end"][0]) for _, q, _ in _Replay.seen]
    assert calls == [("2021-08-10T00:00Z", "2021-08-20T00:00Z"), ("2021-08-20T00:00Z", "2021-08-25T00:00Z")]
    assert [r[3] for r in _rows(con)] == [413.0, 338.0]


def test_base_url_and_token_from_environment_and_cli(con, db_path, server, runner):
    con.close()
    env = {"ELECTRICITYMAPS_API_URL": server, "ELECTRICITYMAPS_TOKEN": TOKEN}
    result = invoke(runner, "carbon", "fetch", "--zone", "DE", "--allow-http", "--db", str(db_path), env=env)
    assert result.exit_code == 0, result.output
    assert result.stdout == "DE: 3 intensity values stored, 2018-04-25 18:07..2021-08-19 12:00 UTC (history, latest)\n"
    assert result.stderr == ""  # the environment is the recommended way: no warning
    assert TOKEN.encode() not in db_path.read_bytes()
    wal = db_path.with_name(db_path.name + ".wal")
    assert not wal.exists() or TOKEN.encode() not in wal.read_bytes()


@pytest.mark.parametrize("status, body, headers, message", [
    (401, b'{"message": "Invalid auth-token"}', {}, "refused the token (HTTP 401: Invalid auth-token ***)"),
    (403, b"Access denied", {}, "refused the token (HTTP 403: Access denied ***)"),
    (429, b'{"message": "Too many requests"}', {"Retry-After": "30"},
     "rate limit reached (HTTP 429: Too many requests ***); wait 30 s"),
    (400, b'{"error": "zone XX does not exist"}', {}, "rejected the request (HTTP 400 for 127.0.0.1"),
    (404, b'{"message": "no such zone"}', {}, "has no such resource (HTTP 404 for 127.0.0.1"),
    (503, b"maintenance", {}, "server error (HTTP 503"),
    (502, b"<html>bad gateway</html>", {}, "server error (HTTP 502"),
    (302, b"", {"Location": "http://elsewhere.example/v3/carbon-intensity/history"},
     "redirected 127.0.0.1"),
    (200, b"<html>captive portal</html>", {}, "something that is not JSON"),
    (200, b'{"zone": "DE", "status": "ok"}', {}, "/history answer is not usable: no carbonIntensity, history"),
    (200, b'{"zone": "FR", "history": [{"carbonIntensity": 50, "datetime": "2021-08-18T13:00:00Z"}]}', {},
     "answered for zone FR, not DE"),
])
def test_bad_answers_are_clear_and_change_nothing(con, server, db_path, runner, tmp_path, status, body, headers,
                                                  message):
    # the server echoes the token in its answer: it must still never be shown
    if status != 200:
        body = body[:-2] + f' {TOKEN}"}}'.encode() if body.startswith(b"{") else body + b" " + TOKEN.encode()
    _Replay.routes["/v3/carbon-intensity/history"] = (status, body, headers, 0)
    with pytest.raises(DlwhError) as caught:
        fetch(con, "DE", token=TOKEN, base_url=server, allow_http=True, retries=0)
    assert message in str(caught.value)
    assert TOKEN not in str(caught.value)
    assert _count(con) == 0
    con.close()
    token_file = tmp_path / "token"
    token_file.write_text(TOKEN + "\r\n")
    token_file.chmod(0o600)
    result = invoke(runner, "carbon", "fetch", "--zone", "DE", "--token-file", str(token_file), "--api-url", server,
                    "--allow-http", "--retries", "0", "--db", str(db_path))
    assert result.exit_code == 1 and result.stderr.startswith("error: ") and message in result.stderr
    assert len(result.stderr.splitlines()) == 1
    assert "Traceback" not in result.stderr and TOKEN not in result.stderr + result.stdout


@pytest.mark.parametrize("first", [
    (429, b'{"message": "Too many requests"}', {"Retry-After": "0"}, 0),
    (503, b"busy", {}, 0),
    (502, b"bad gateway", {}, 0),
])
def test_429_and_5xx_are_retried(con, server, first, monkeypatch):
    monkeypatch.setattr("dlwh.carbon.emaps_http.BACKOFF_S", 0.01)  # urllib3 waits 0, then 2 x this
    history = _Replay.routes["/v3/carbon-intensity/history"]
    _Replay.routes["/v3/carbon-intensity/history"] = [first, first, history]
    result = fetch(con, "DE", token=TOKEN, base_url=server, allow_http=True, retries=2)
    assert result.rows == 3
    assert [p for p, _, _ in _Replay.seen] == ["/v3/carbon-intensity/history"] * 3 + ["/v3/carbon-intensity/latest"]
    assert {tok for _, _, tok in _Replay.seen} == {TOKEN}


def test_retries_run_out_with_a_clear_message(con, server, monkeypatch):
    monkeypatch.setattr("dlwh.carbon.emaps_http.BACKOFF_S", 0.01)
    _Replay.routes["/v3/carbon-intensity/history"] = (429, b'{"message": "slow down"}', {"Retry-After": "0"}, 0)
    with pytest.raises(DlwhError) as caught:
        fetch(con, "DE", token=TOKEN, base_url=server, allow_http=True, retries=2)
    assert str(caught.value) == ("Electricity Maps rate limit reached (HTTP 429: slow down) after 3 attempts; wait 0 s "
                                 "and retry, or fetch a shorter range")
    assert len(_Replay.seen) == 3 and _count(con) == 0


def test_timeout_is_clear(con, server):
    _Replay.routes["/v3/carbon-intensity/history"] = (200, b"{}", {}, 1.5)
    with pytest.raises(DlwhError, match=r"did not answer within 0.3 s .*raise --timeout") as caught:
        fetch(con, "DE", token=TOKEN, base_url=server, timeout_s=0.3, allow_http=True)
    assert TOKEN not in str(caught.value) and _count(con) == 0 and len(_Replay.seen) == 1  # a read timeout is not retried


def test_unreachable_and_missing_token(con, monkeypatch):
    monkeypatch.delenv("ELECTRICITYMAPS_TOKEN", raising=False)
    with pytest.raises(UsageError) as caught:
        fetch(con, "DE")
    assert str(caught.value) == ("no Electricity Maps token: set ELECTRICITYMAPS_TOKEN or pass --token-file (or use "
                                 "--intensity G / the shipped yearly averages without API access)")
    with pytest.raises(DlwhError) as caught:
        fetch(con, "DE", token=TOKEN, base_url="http://127.0.0.1:9/v3", timeout_s=2, allow_http=True, retries=0)
    assert str(caught.value) == ("cannot reach Electricity Maps at http://127.0.0.1:9/v3 ([Errno 111] Connection "
                                 "refused); check the network or --api-url")
    assert TOKEN not in str(caught.value)
    with pytest.raises(UsageError, match="is not an http"):
        fetch(con, "DE", token=TOKEN, base_url="ftp://example.org")
    with pytest.raises(UsageError, match="is not after --start"):
        fetch(con, "DE", token=TOKEN, base_url="http://127.0.0.1:9/v3", start=datetime(2021, 1, 2),
              end=datetime(2021, 1, 1), allow_http=True)


def test_client_repr_hides_token():
    from dlwh.carbon.electricitymaps import Client

    client = Client(TOKEN, "http://127.0.0.1:9/v3", allow_http=True)
    assert TOKEN not in repr(client) and TOKEN not in str(client)


# -- the token and the URL are checked before use, and never shown ----------------------------------------
def test_a_crlf_token_is_stripped_and_sent_clean(con, server, monkeypatch):
    monkeypatch.setenv("ELECTRICITYMAPS_TOKEN", f"  {TOKEN}\r\n")
    fetch(con, "DE", base_url=server, allow_http=True)
    assert {tok for _, _, tok in _Replay.seen} == {TOKEN}


@pytest.mark.parametrize("raw, what", [
    (f"{TOKEN}\r\nX-Evil: 1", "a line break"),
    (f"{TOKEN} {TOKEN}", "a space"),
    (f"{TOKEN}\x07", "a control character"),
    (f"{TOKEN}é", "a non-ASCII character"),
])
def test_a_malformed_token_is_refused_without_showing_it(con, db_path, runner, monkeypatch, raw, what):
    monkeypatch.setenv("ELECTRICITYMAPS_TOKEN", raw)
    with pytest.raises(UsageError) as caught:
        fetch(con, "DE", base_url="https://127.0.0.1:9/v3")
    assert str(caught.value) == (f"the Electricity Maps token from $ELECTRICITYMAPS_TOKEN has {what} inside; an API "
                                 "token is printable ASCII without spaces: check what was copied")
    con.close()
    result = invoke(runner, "carbon", "fetch", "--zone", "DE", "--db", str(db_path), env={"ELECTRICITYMAPS_TOKEN": raw})
    assert result.exit_code == 2 and result.stderr == f"error: {caught.value}\n"
    assert TOKEN not in result.stdout + result.stderr and "Invalid header" not in result.stderr


def test_token_on_the_command_line_is_discouraged(con, db_path, server, runner):
    con.close()
    result = invoke(runner, "carbon", "fetch", "--zone", "DE", "--token", TOKEN, "--api-url", server, "--allow-http",
                    "--db", str(db_path))
    assert result.exit_code == 0, result.output
    assert result.stderr == ("warning: --token shows the token to other users (ps) and keeps it in your shell "
                             "history; set ELECTRICITYMAPS_TOKEN or use --token-file instead\n")
    assert TOKEN not in result.stdout + result.stderr


def test_token_file_errors(con, tmp_path, server, capsys):
    with pytest.raises(UsageError) as caught:
        fetch(con, "DE", token_file=str(tmp_path / "none"), base_url=server, allow_http=True)
    assert str(caught.value) == f"no token file at {tmp_path / 'none'}; check --token-file"
    loose = tmp_path / "loose"
    loose.write_text(TOKEN + "\n")
    loose.chmod(0o644)
    fetch(con, "DE", token_file=str(loose), base_url=server, allow_http=True)
    assert capsys.readouterr().err == f"warning: the token file {loose} is readable by other users; chmod 600 {loose}\n"
    empty = tmp_path / "empty"
    empty.write_text("\r\n")
    with pytest.raises(UsageError, match=r"the Electricity Maps token from the token file .*empty is empty"):
        fetch(con, "DE", token_file=str(empty), base_url=server, allow_http=True)


def test_plain_http_needs_allow_http_and_credentials_in_the_url_are_refused(con, db_path, runner, server):
    with pytest.raises(UsageError) as caught:
        fetch(con, "DE", token=TOKEN, base_url=server)
    assert str(caught.value) == (f"API URL '{server}' is plain http: the token would cross the network unencrypted; "
                                 "use https, or pass --allow-http (e.g. for a local test server)")
    assert _Replay.seen == []  # nothing was sent
    with pytest.raises(UsageError) as caught:
        fetch(con, "DE", token=TOKEN, base_url=f"https://me:{TOKEN}@api.example/v3")
    assert str(caught.value) == ("API URL 'https://me:***@api.example/v3' holds a user name or password; remove it "
                                 "(the token goes in the auth-token header)")
    with pytest.raises(UsageError) as caught:
        fetch(con, "DE", token=TOKEN, base_url=f"https://api.example/v3?auth-token={TOKEN}")
    assert str(caught.value) == ("API URL 'https://api.example/v3?***' has a query or fragment; give the base URL "
                                 "only, such as https://api.electricitymaps.com/v3 (the token goes in the auth-token "
                                 "header)")
    con.close()
    fresh = db_path.with_name("never.duckdb")
    result = invoke(runner, "carbon", "fetch", "--zone", "DE", "--db", str(fresh),
                    env={"ELECTRICITYMAPS_TOKEN": TOKEN, "ELECTRICITYMAPS_API_URL": server})
    assert result.exit_code == 2 and "is plain http" in result.stderr and not fresh.exists()
