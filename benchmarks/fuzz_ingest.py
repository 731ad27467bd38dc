"""Fuzzing the ingest: mutated copies of every fixture and test trace, ingested in-process.

Seeds: every file under ../shared/fixtures and ../shared/datasets/zeus_* that dlwh recognises, the
trace files under tests/data, and the heads of the committed example run (examples/h200-train: run.json,
spans.jsonl, nvml.csv, nvidia-smi.csv). Each case applies one or two mutations to one seed, drawn with
a fixed seed: truncations, dropped / swapped / duplicated lines, flipped bytes, NULs, huge numbers, NaN
and inf, negative numbers, far-off dates, odd units, JSON type changes, CRLF, a BOM, long runs of
spaces, appended garbage. Files of a run directory keep an intact run.json beside them.

All cases of a chunk go into one folder, ingested by ONE ``ingest_paths`` call into a real, temporary
warehouse (a folder ingest must go to the end); after each file the callback checks:

* no unexpected exception (a FileResult with ``internal`` set, or ingest_paths raising);
* no file takes more than ``SLOW_S`` seconds;
* a refused file left the warehouse as it was (row count and a hash of every table, before and after);
* a loaded file stored no NaN / inf in any DOUBLE column, and no negative or > 1 MW power;
then removes what a loaded case stored, so that the next case meets the same warehouse.

    python benchmarks/fuzz_ingest.py                    # 10,000 cases, writes docs/reliability.md
    python benchmarks/fuzz_ingest.py --count 500 --no-write
    python benchmarks/fuzz_ingest.py --start 2000 --count 1000 --json out.json   # one chunk
    python benchmarks/fuzz_ingest.py --merge out1.json out2.json ...              # report of chunks
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import re
import shutil
import signal
import sys
import tempfile
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
SHARED = ROOT.parent / "shared"
SLOW_S = 5.0          # CPU seconds (time.process_time: this process, all threads)
STALL_S = 120.0        # a case still running after this is stopped (counted as a stall)
HEAD_LINES = 300       # big seeds are cut to their first lines
SEED = 20261208

# ------------------------------------------------------------------------------------------- seeds


@dataclass
class Seed:
    path: Path               # the original file
    name: str                # file name to keep (formats may read it)
    data: bytes
    manifest: bytes | None   # an intact run.json for files of a run directory


def _head(data: bytes, lines: int = HEAD_LINES) -> bytes:
    parts = data.split(b"\n")
    return data if len(parts) <= lines + 1 else b"\n".join(parts[:lines]) + b"\n"


def find_seeds() -> list[Seed]:
    """Every trace file we have, in a fixed order (absent folders are skipped)."""
    candidates: list[Path] = []
    for base in (SHARED / "fixtures", SHARED / "datasets" / "zeus_nsdi23", SHARED / "datasets" / "zeus_profile",
                 SHARED / "datasets" / "perseus_sosp24", ROOT / "tests" / "data"):
        if base.is_dir():
            candidates += sorted(p for p in base.rglob("*") if p.is_file())
    example = ROOT / "examples" / "h200-train"
    candidates += [example / n for n in ("run.json", "spans.jsonl", "nvml.csv", "nvidia-smi.csv")
                   if (example / n).is_file()]
    seeds = []
    for path in candidates:
        if path.suffix in (".py", ".md", ".txt") and path.parent.name in ("fakes", "bin", "pylib", "collect"):
            continue
        if path.name in ("README.md", "SOURCE.txt", "SOURCES.md") or path.suffix in (".py", ".stderr"):
            continue
        manifest = path.parent / "run.json"
        seeds.append(Seed(path, path.name, _head(path.read_bytes()),
                          manifest.read_bytes() if manifest.is_file() and path.name != "run.json" else None))
    return seeds


# --------------------------------------------------------------------------------------- mutations
_NUMBER = re.compile(rb"(?<![\w.])-?\d+(?:\.\d+)?(?:[eE][+-]?\d+)?(?![\w.])")
_YEAR = re.compile(rb"(?<!\d)(?:19|20)\d\d(?=[-/])")
_UNITS = ((b" W", (b" kW", b" mW", b" MW", b" W/s", b"")), (b"MHz", (b"GHz", b"Hz", b"kHz")),
          (b"MiB", (b"GiB", b"KiB", b"B")), (b"Joules", (b"kJ", b"mJ", b"Watts")), (b"mW", (b"W", b"uW")),
          (b"%", (b" %", b"%%", b"")), (b"kWh", (b"Wh", b"MWh")))
HUGE = (b"1e309", b"9" * 5000, b"18446744073709551616", b"1e300", b"-9223372036854775809",
        b"99999999999999999999", b"1" + b"0" * 400)
NAN_INF = (b"NaN", b"nan", b"inf", b"-inf", b"Infinity", b"-Infinity", b"-nan")
JSON_ODD = (b"true", b"null", b'"NaN"', b"-1", b"[]", b"{}", b'""', b"1e400")
YEARS = (b"9999", b"0001", b"1970", b"2262", b"1677", b"2999", b"1900")


def _lines(data: bytes) -> list[bytes]:
    return data.split(b"\n")


def _replace_match(data: bytes, pattern: re.Pattern, rng: random.Random, new: bytes | None = None,
                   choices: tuple[bytes, ...] = ()) -> bytes | None:
    matches = list(pattern.finditer(data))
    if not matches:
        return None
    m = rng.choice(matches)
    value = new if new is not None else rng.choice(choices)
    return data[:m.start()] + value + data[m.end():]


def m_truncate(data, rng):
    return data[:rng.randrange(max(1, len(data)))]


def m_truncate_line(data, rng):
    lines = _lines(data)
    return b"\n".join(lines[:rng.randrange(1, max(2, len(lines)))]) + b"\n"


def m_drop_line(data, rng):
    lines = _lines(data)
    if len(lines) < 2:
        return None
    del lines[rng.randrange(len(lines))]
    return b"\n".join(lines)


def m_duplicate_line(data, rng):
    lines = _lines(data)
    i = rng.randrange(len(lines))
    lines.insert(i, lines[i])
    return b"\n".join(lines)


def m_swap_lines(data, rng):
    lines = _lines(data)
    if len(lines) < 3:
        return None
    i, j = rng.randrange(len(lines)), rng.randrange(len(lines))
    lines[i], lines[j] = lines[j], lines[i]
    return b"\n".join(lines)


def m_flip_bytes(data, rng):
    if not data:
        return None
    out = bytearray(data)
    for _ in range(rng.randint(1, 3)):
        i = rng.randrange(len(out))
        out[i] ^= 1 << rng.randrange(8)
    return bytes(out)


def m_nul(data, rng):
    i = rng.randrange(len(data) + 1)
    return data[:i] + b"\x00" + data[i:]


def m_huge(data, rng):
    return _replace_match(data, _NUMBER, rng, choices=HUGE)


def m_nan_inf(data, rng):
    return _replace_match(data, _NUMBER, rng, choices=NAN_INF)


def m_negative(data, rng):
    matches = [m for m in _NUMBER.finditer(data) if not m.group().startswith(b"-")]
    if not matches:
        return None
    m = rng.choice(matches)
    return data[:m.start()] + b"-" + data[m.start():]


def m_json_odd(data, rng):
    return _replace_match(data, _NUMBER, rng, choices=JSON_ODD)


def m_far_date(data, rng):
    return _replace_match(data, _YEAR, rng, choices=YEARS)


def m_odd_unit(data, rng):
    present = [(old, news) for old, news in _UNITS if old in data]
    if not present:
        return None
    old, news = rng.choice(present)
    spots = [m.start() for m in re.finditer(re.escape(old), data)]
    i = rng.choice(spots)
    return data[:i] + rng.choice(news) + data[i + len(old):]


def m_crlf(data, rng):
    return data.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")


def m_bom(data, rng):
    return b"\xef\xbb\xbf" + data


def m_spaces(data, rng):
    spots = [m.start() for m in re.finditer(rb" ", data[:200_000])]
    n = rng.choice((2_000, 10_000))
    if not spots:
        return b" " * n + data
    i = rng.choice(spots)
    return data[:i] + b" " * n + data[i:]


def m_garbage(data, rng):
    junk = bytes(rng.randrange(256) for _ in range(rng.randint(1, 64)))
    i = rng.randrange(len(data) + 1)
    return data[:i] + junk + data[i:]


def m_empty_field(data, rng):
    return _replace_match(data, _NUMBER, rng, new=b"")


def m_repeat(data, rng):
    return data + data


MUTATIONS = {name[2:]: fn for name, fn in globals().items() if name.startswith("m_")}


def mutate(seed: Seed, rng: random.Random) -> tuple[bytes, list[str]]:
    """``seed``'s bytes with one (sometimes two) mutations; their names."""
    data, applied = seed.data, []
    for _ in range(2 if rng.random() < 0.2 else 1):
        for _attempt in range(10):
            name = rng.choice(sorted(MUTATIONS))
            out = MUTATIONS[name](data, rng)
            if out is not None and out != data:
                data = out
                applied.append(name)
                break
    return data, applied


# ------------------------------------------------------------------------------------------ checks
_QUERIES: dict[int, tuple[str, str, list[str]]] = {}


def _queries(con) -> tuple[str, str, list[str]]:
    """(snapshot SQL, poison SQL, tables with file_sha256), built once per connection."""
    key = id(con)
    if key not in _QUERIES:
        tables = [r[0] for r in con.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = 'main' "
            "AND table_type = 'BASE TABLE' ORDER BY 1").fetchall()]
        snap = " UNION ALL ".join(
            f"SELECT '{t}' AS name, count(*) AS n, coalesce(sum(hash(t)::HUGEINT), 0) AS h FROM \"{t}\" t" for t in tables)
        cols = con.execute(
            "SELECT table_name, column_name, data_type FROM information_schema.columns WHERE table_schema = 'main' "
            "ORDER BY table_name, ordinal_position").fetchall()
        by_table: dict[str, list[tuple[str, str]]] = {}
        for table, column, dtype in cols:
            by_table.setdefault(table, []).append((column, dtype))
        owned = [t for t in tables if any(c == "file_sha256" for c, _ in by_table.get(t, []))]
        parts = []
        for t in owned:
            conds = [f'NOT isfinite("{c}")' for c, d in by_table[t] if d == "DOUBLE"]
            conds += [f'"{c}" < 0 OR "{c}" > 1e6' for c, d in by_table[t] if d == "DOUBLE" and c.endswith("power_w")]
            if t == "samples":
                conds.append("(unit = 'W' AND (value < 0 OR value > 1e6))")
            if conds:
                parts.append(f"SELECT '{t}' AS name, count(*) AS n FROM \"{t}\" WHERE file_sha256 = $sha "
                             f"AND ({' OR '.join(conds)})")
        _QUERIES[key] = (snap, " UNION ALL ".join(parts), owned)
    return _QUERIES[key]


def snapshot(con) -> dict[str, tuple[int, int]]:
    """{table: (rows, order-independent hash of its rows)} for every base table."""
    return {name: (int(n), int(h)) for name, n, h in con.execute(_queries(con)[0]).fetchall()}


def poison(con, sha: str) -> list[str]:
    """NaN / inf in any DOUBLE column, negative or > 1 MW power, among the rows of file ``sha``."""
    return [f"{name}: {n} NaN, inf or impossible power value(s)"
            for name, n in con.execute(_queries(con)[1], {"sha": sha}).fetchall() if n]


def forget(con, sha: str) -> None:
    """Remove what file ``sha`` loaded (every table with a file_sha256 column, and its files row)."""
    for table in _queries(con)[2]:
        con.execute(f'DELETE FROM "{table}" WHERE file_sha256 = ?', [sha])
    con.execute("DELETE FROM files WHERE sha256 = ?", [sha])


# --------------------------------------------------------------------------------------------- run
@dataclass
class Report:
    cases: int = 0
    files: int = 0
    seeds: int = 0
    outcomes: Counter = field(default_factory=Counter)
    unexpected: list[str] = field(default_factory=list)      # internal errors, or ingest_paths raising
    slow: list[str] = field(default_factory=list)            # > SLOW_S
    changed: list[str] = field(default_factory=list)         # refused but the warehouse changed
    poisoned: list[str] = field(default_factory=list)        # loaded NaN / inf / bad power
    causes: Counter = field(default_factory=Counter)         # refusals by (normalised) cause
    mutations: Counter = field(default_factory=Counter)
    slowest: list[tuple[float, str]] = field(default_factory=list)
    folder_complete: bool = True
    seconds: float = 0.0
    chunks: int = 1
    load: float = 0.0                                       # the highest 1-minute load average seen

    def to_json(self) -> dict:
        data = asdict(self)
        for key in ("outcomes", "causes", "mutations"):
            data[key] = dict(getattr(self, key))
        return data

    @classmethod
    def merge(cls, parts: list[dict]) -> "Report":
        out = cls()
        for p in parts:
            out.cases += p["cases"]
            out.files += p["files"]
            out.seeds = max(out.seeds, p["seeds"])
            for key in ("outcomes", "causes", "mutations"):
                getattr(out, key).update(p[key])
            for key in ("unexpected", "slow", "changed", "poisoned"):
                getattr(out, key).extend(p[key])
            out.slowest = sorted(out.slowest + [tuple(x) for x in p["slowest"]], reverse=True)[:10]
            out.folder_complete = out.folder_complete and p["folder_complete"]
            out.seconds += p["seconds"]
            out.load = max(out.load, p.get("load", 0.0))
        out.chunks = len(parts)
        return out


def cause_of(message: str) -> str:
    """A refusal's message with its particulars (numbers, quoted text) blanked, to count causes."""
    text = re.sub(r"'[^']*'|\"[^\"]*\"", "'…'", message)
    text = re.sub(r"[-+]?\d[\d:.e+-]*(?: \d[\d:.]*)*", "N", text)
    text = re.sub(r"\(.*", "", text) if text.startswith(("could not load", "cannot read this CSV")) else text
    return text[:110]


class _Stall(Exception):
    pass


def _alarm(signum, frame):  # pragma: no cover - only on a stall
    raise _Stall(f"still running after {STALL_S:.0f} s")


def write_cases(seeds: list[Seed], start: int, count: int, folder: Path, seed: int = SEED) -> dict[str, str]:
    """Write cases start..start+count-1 under ``folder``; {file path: 'seed file: mutations'}."""
    written = {}
    for i in range(start, start + count):
        rng = random.Random(seed * 1_000_003 + i)
        s = seeds[i % len(seeds)]
        data, applied = mutate(s, rng)
        case = folder / f"c{i:05d}"
        case.mkdir(parents=True)
        if s.manifest is not None:
            (case / "run.json").write_bytes(s.manifest)
        target = case / s.name
        target.write_bytes(data)
        where = (s.path.relative_to(ROOT) if ROOT in s.path.parents else
                 s.path.relative_to(ROOT.parent) if ROOT.parent in s.path.parents else s.path.name)
        written[str(target.resolve())] = f"{where}: {'+'.join(applied) or 'none'}"
    return written


def run(start: int = 0, count: int = 500, seed: int = SEED, verbose: bool = False, only: str = "") -> Report:
    """Fuzz cases start..start+count-1 in one folder ingest; the Report of what went wrong.

    ``only``: use just the seed files whose path contains this text (for working on one format)."""
    from dlwh.ingest.loader import IngestOptions, format_summary, ingest_paths
    from dlwh.warehouse import open_warehouse

    seeds = [s for s in find_seeds() if only in str(s.path)]
    report = Report(cases=count, seeds=len(seeds))
    tmp = Path(tempfile.mkdtemp(prefix="dlwh-fuzz-"))
    old_tz = os.environ.get("TZ")
    os.environ["TZ"] = "Europe/Berlin"  # local-time formats go through the zone planner
    handler = signal.signal(signal.SIGALRM, _alarm) if hasattr(signal, "SIGALRM") else None
    try:
        cases = write_cases(seeds, start, count, tmp / "in", seed)
        for what in cases.values():
            for m in what.split(": ", 1)[1].split("+"):
                report.mutations[m] += 1
        con = open_warehouse(tmp / "fuzz.duckdb")
        state = {"before": snapshot(con), "t": time.perf_counter(), "cpu": time.process_time()}

        def on_file(result, done, total):
            signal.alarm(0) if handler else None
            took = time.perf_counter() - state["t"]
            cpu = time.process_time() - state["cpu"]
            path = str(result.path)
            what = f"{path.split('/in/', 1)[-1]} ({cases.get(path, 'companion run.json')})"
            report.files += 1
            report.outcomes[result.outcome.replace("-with-warnings", "")] += 1
            report.slowest = sorted(report.slowest + [(round(cpu, 3), f"{what}, {took:.2f} s wall")], reverse=True)[:10]
            if cpu > SLOW_S:
                report.slow.append(f"{cpu:.1f} s CPU ({took:.1f} s wall): {what}")
            if result.internal:
                report.unexpected.append(f"{what}: {result.message}")
            after = snapshot(con)
            if result.outcome == "failed":
                report.causes[cause_of(result.message)] += 1
                if after != state["before"]:
                    diff = [t for t in after if after[t] != state["before"].get(t)]
                    report.changed.append(f"{what}: {', '.join(diff)}")
            elif result.outcome.startswith("loaded") and path in cases:
                sha = con.execute("SELECT sha256 FROM files WHERE path = ?", [path]).fetchone()
                if sha:
                    bad = poison(con, sha[0])
                    if bad:
                        report.poisoned.append(f"{what}: {'; '.join(bad)}")
                    forget(con, sha[0])
                    after = snapshot(con)
            if verbose:
                print(f"[{done}/{total}] {took:6.2f}s {cpu:6.2f}s-cpu {result.describe()[:200]}", file=sys.stderr)
            state["before"] = after
            state["t"], state["cpu"] = time.perf_counter(), time.process_time()
            signal.alarm(int(STALL_S)) if handler else None

        t0 = time.perf_counter()
        signal.alarm(int(STALL_S)) if handler else None
        try:
            results = ingest_paths(con, [tmp / "in"], IngestOptions(), on_file)
            summary = format_summary(results)
            report.folder_complete = len(results) == report.files and bool(summary)
        except Exception as err:  # the folder ingest itself stopped: the worst failure
            report.folder_complete = False
            report.unexpected.append(f"ingest_paths raised {type(err).__name__}: {str(err)[:200]}")
        finally:
            signal.alarm(0) if handler else None
        report.seconds = round(time.perf_counter() - t0, 1)
        report.load = round(os.getloadavg()[0], 1) if hasattr(os, "getloadavg") else 0.0
        con.close()
    finally:
        if handler is not None:
            signal.signal(signal.SIGALRM, handler)
        if old_tz is None:
            os.environ.pop("TZ", None)
        else:
            os.environ["TZ"] = old_tz
        shutil.rmtree(tmp, ignore_errors=True)
    return report


# ------------------------------------------------------------------------------------------ report
def markdown(report: Report, seed: int, command: str) -> str:
    """docs/reliability.md from a Report."""
    def listed(items: list[str], limit: int = 20) -> str:
        if not items:
            return "none\n"
        shown = "\n".join(f"- `{x[:300]}`" for x in items[:limit])
        return shown + (f"\n- ... and {len(items) - limit} more" if len(items) > limit else "") + "\n"

    refusals = sum(report.causes.values())
    lines = [
        "# Reliability",
        "## Ingest: what damaged input does",
        "",
        "Every trace we have (the shared fixtures, the Zeus and Perseus datasets, tests/data and the example run's",
        "files, big ones cut to their first 300 lines) is mutated with a fixed seed: truncations, dropped,",
        "swapped and duplicated lines, flipped bytes, NULs, huge numbers (1e309, 5,000 digits, 2^64), NaN and",
        "inf, negative numbers, far-off years (0001, 1677, 1900, 1970, 2262, 2999, 9999), odd units (kW, GHz,",
        "GiB, ...), JSON values of another type, CRLF line ends, a byte-order mark, 2,000 or 10,000 spaces in a",
        "line, random bytes, the file twice. All cases go into one folder, ingested by one `ingest_paths`",
        "call into a real temporary warehouse; after each file the harness checks that no unexpected exception",
        f"happened, that the file took at most {SLOW_S:.0f} s of CPU time (the process's, DuckDB's threads included:",
        "a stall is CPU-bound, while wall time on a shared machine also counts waiting for a core), that a",
        "refused file left every table as it was",
        "(row count and a hash of all rows), and that a loaded file stored no NaN or inf in any DOUBLE column",
        "and no negative or > 1 MW power. What a loaded case stored is then removed.",
        "",
        f"Measured by `{command}`"
        + (f" (the same cases as {report.chunks} processes at once: `--start K --count {report.cases // report.chunks} "
           f"--json part-K.json` for K = 0, {report.cases // report.chunks}, ..., then `--merge part-*.json`)"
           if report.chunks > 1 else "")
        + f" (seed {seed}), {platform.python_implementation()} "
        f"{platform.python_version()}, {os.cpu_count()} CPUs (shared with other work), "
        f"{time.strftime('%Y-%m-%d', time.gmtime())}:",
        "",
        "| | |",
        "| --- | --- |",
        f"| mutated inputs | {report.cases:,} (from {report.seeds} seed files) |",
        f"| files ingested (with the intact run.json beside run-directory files) | {report.files:,} |",
        f"| outcomes | {', '.join(f'{k} {v:,}' for k, v in sorted(report.outcomes.items()))} |",
        f"| unexpected exceptions (internal errors) | **{len(report.unexpected)}** |",
        f"| inputs taking more than {SLOW_S:.0f} s of CPU | **{len(report.slow)}** |",
        f"| slowest input | {report.slowest[0][0]:.2f} s CPU ({report.slowest[0][1]}) |" if report.slowest else "| slowest input | - |",
        f"| refused inputs that changed the warehouse | **{len(report.changed)}** |",
        f"| loaded inputs that stored NaN/inf/negative or > 1 MW power | **{len(report.poisoned)}** |",
        f"| the folder ingest went to the end with a summary | **{'yes' if report.folder_complete else 'no'}** |",
        f"| time | {report.seconds:,.0f} s in all ({report.chunks} process{'es' if report.chunks > 1 else ''} at once"
        f"{f', 1-minute load average up to {report.load:g} on the shared machine' if report.load else ''}) |",
        "",
        "### Unexpected exceptions",
        "",
        listed(report.unexpected),
        f"### Inputs slower than {SLOW_S:.0f} s",
        "",
        listed(report.slow),
        "### Slowest inputs",
        "",
        "\n".join(f"- {s:.2f} s CPU: `{w}`" for s, w in report.slowest[:5]) + "\n",
        "### Refused inputs that changed the warehouse",
        "",
        listed(report.changed),
        "### Loaded inputs with NaN, inf or impossible power",
        "",
        listed(report.poisoned),
        f"### Refusals by cause ({refusals:,} refused files; particulars blanked: N = a number, '…' = text)",
        "",
        "| refusals | cause |",
        "| ---: | --- |",
        *[f"| {n:,} | {c.replace('|', '/')} |" for c, n in report.causes.most_common(40)],
        *([f"| {sum(n for _, n in report.causes.most_common()[40:]):,} | ({len(report.causes) - 40} other causes) |"]
          if len(report.causes) > 40 else []),
        "",
        "### Mutations applied",
        "",
        ", ".join(f"{k} {v:,}" for k, v in sorted(report.mutations.items())),
        "",
        "### What the ingest guarantees (and how)",
        "",
        "- One file's failure never stops a folder: whatever a parser raises becomes that file's one-line",
        "  failure (file, line where known, cause); an exception dlwh does not expect is reported as",
        "  `internal error: ...` (summary row `internal-error`, exit code 1; `DLWH_DEBUG=1` prints the",
        "  traceback). `dlwh.ingest.failure` turns every exception into that line, DuckDB's included.",
        "- The file's transaction is rolled back before any cleanup, so the error shown is the first one.",
        "- Every table passes `dlwh.ingest.validate` on its way into the warehouse: times inside a window",
        "  (2000-01-01 up to seven days after now; `DLWH_INGEST_TS_MIN` / `DLWH_INGEST_TS_MAX` move it), finite",
        "  numbers, power within 0 and a per-kind ceiling, %, MHz, J, MiB not negative and % at most 100,",
        "  energy counters that never go down, integer columns from whole numbers in range. What breaks a",
        "  rule refuses the file, naming the value, the sensor or column, the time and the line where known.",
        "- The CI test (`tests/test_fuzz_ingest.py`) runs the first 400 cases of the same sequence.",
        "",
    ]
    return "\n".join(lines)


BEGIN, END = "<!-- fuzz_ingest.py: begin (generated; edit the script, not this section) -->", "<!-- fuzz_ingest.py: end -->"


def write_section(path: Path, text: str) -> None:
    """Put ``text`` (a '# ' title, then the report) into ``path`` between BEGIN and END, keeping the rest of
    the page (other sections, e.g. the power-limit fault injection) as it is."""
    title, _, body = text.partition("\n")
    section = f"{BEGIN}\n{body.strip()}\n{END}"
    old = path.read_text() if path.exists() else f"{title}\n\n"
    if BEGIN in old and END in old:
        new = old[:old.index(BEGIN)] + section + old[old.index(END) + len(END):]
    else:
        new = old.rstrip("\n") + "\n\n" + section + "\n"
    path.write_text(new)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=10_000)
    parser.add_argument("--start", type=int, default=0)
    parser.add_argument("--seed", type=int, default=SEED)
    parser.add_argument("--json", help="write the chunk's report as JSON here (for --merge)")
    parser.add_argument("--merge", nargs="+", help="merge chunk JSON reports and write docs/reliability.md")
    parser.add_argument("--no-write", action="store_true", help="do not write docs/reliability.md")
    parser.add_argument("--verbose", "-v", action="store_true")
    parser.add_argument("--only", default="", help="only seed files whose path contains this text")
    args = parser.parse_args(argv)
    sys.path.insert(0, str(ROOT))
    if args.merge:
        report = Report.merge([json.loads(Path(p).read_text()) for p in args.merge])
        command = f"python benchmarks/fuzz_ingest.py --count {report.cases}"
    else:
        report = run(args.start, args.count, args.seed, args.verbose, args.only)
        command = f"python benchmarks/fuzz_ingest.py --count {args.count}" + (f" --start {args.start}" if args.start else "")
        if args.json:
            Path(args.json).write_text(json.dumps(report.to_json(), indent=1))
    print(f"cases {report.cases}, files {report.files}, unexpected {len(report.unexpected)}, slow {len(report.slow)}, "
          f"changed {len(report.changed)}, poisoned {len(report.poisoned)}, folder complete {report.folder_complete}, "
          f"{report.seconds:.0f} s")
    for label in ("unexpected", "slow", "changed", "poisoned"):
        for item in getattr(report, label)[:30]:
            print(f"{label}: {item}")
    if not args.no_write and not args.json:
        write_section(ROOT / "docs" / "reliability.md", markdown(report, args.seed, command))
    bad = report.unexpected or report.slow or report.changed or report.poisoned or not report.folder_complete
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
