"""macOS powermetrics text output → cpu / gpu / ane / soc / dram sensors (power W, frequency MHz, residency %).

Each sample is a block opened by
``*** Sampled system activity (Fri Nov 10 12:37:08 2023 +0100) (104.51ms elapsed) ***``.
Lines read in a block (any section, any order; layouts differ between macOS versions):
- ``<X> Power: N mW`` (or ``N W``) → sensor X, metric ``power`` in W: ``CPU``, ``GPU``, ``ANE``,
  ``DRAM``, ``Package``, ``Combined Power (CPU + GPU + ANE)``, clusters (``E-Cluster``,
  ``P-Cluster``, ``P0-Cluster``) and Intel Macs' ``Intel energy model derived package power
  (CPUs+GT+SA): 1.23W`` (sensor ``package``);
- ``<X> [HW active] frequency: N MHz`` → ``frequency`` (clusters, ``CPU n``, ``GPU``);
- ``<X> [HW] active residency: P% (...)`` → ``residency`` (%).
macOS 12 (M1) prints cluster power, ``DRAM Power`` and ``Package Power`` under
``**** Processor usage ****``; macOS 13 and later print ``CPU Power``, ``GPU Power``, ``ANE Power``
and ``Combined Power (CPU + GPU + ANE)`` there and repeat ``GPU Power`` under ``**** GPU usage ****``:
when a block names the same sensor and metric twice, the first line counts.
Kinds: ``cpu`` (CPU, clusters, cores), ``gpu``, ``ane``, ``dram``, ``soc`` (Package, Combined).

Time. The header's date carries its UTC offset, so samples are absolute. powermetrics measures
the elapsed time of a sample when it takes the sample and prints the date with it, at the end of
the window; so the header time is read as the window's end. It has whole seconds, while samples
come every ~100 ms, so the sub-second part is rebuilt from the elapsed times: consecutive windows
are contiguous, so window k ends at T0 + (sum of elapsed up to k), and T0 is the middle of the
range that keeps every end inside its header's second (in the shared fixture the header second
changes between the 7th and 8th windows, which fixes T0 to within 0.11 s). A jump of a second or
more starts a new stretch with its own T0 (a pause, or two recordings in one file); where the
elapsed times drift against the clock, each time is clamped into its header's second and a
warning says so. Every reading covers its window: it is placed at the window's middle with
duration_s = elapsed. Headers without a date are anchored at ctx.start_utc (the start of the
first window) plus the elapsed times; without a start the file is refused.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
from dlwh._lazy import pandas as pd

from dlwh.errors import ParseError
from dlwh.ingest.formats.powermetrics._common import build_trace, window_ends
from dlwh.ingest.lines import drop_cut_line, shaped_like
from dlwh.ingest.trace import IngestContext, Trace

NAME = "powermetrics-text"
DESCRIPTION = "macOS powermetrics text: CPU, GPU, ANE, DRAM and package power, frequency, residency"
EXTENSIONS = (".txt", ".log")

HEADER_START = "*** Sampled system activity"
_HEADER_RE = (r"^\*\*\* Sampled system activity(?: \((?P<date>(?![^()]*elapsed)[^()]+)\))?"
              r"(?: \((?P<elapsed>\d+(?:\.\d+)?)\s*ms elapsed\))? \*\*\*\s*$")
# One pass over the whole file (bytes, multi-line mode) finds the sample headers and every
# "label: number unit" line, in file order; the labels are classified afterwards.
# Linear time on any line (no two quantifiers may take the same characters): the label is everything
# before the first ':' (its spaces are stripped when classified); a line of 10,000 spaces costs 10,000 steps.
_SCAN = re.compile(rb"^(?:(\*\*\* Sampled system activity[^\n]*)"
                   rb"|([^:\n]+):[ \t]*(-?\d+(?:\.\d+)?)[ \t]*(mW|W|MHz|%))", re.M)
_HEADER_LINES = re.compile(rb"^\*\*\* Sampled system activity", re.M)
# label pattern per (unit, metric); the group 'sensor' names the sensor where it is not the whole label
_CLASSES = (
    ("power", ("mW", "W"), r"(?i)^(?P<sensor>.*power.*)$"),
    ("frequency", ("MHz",), r"^(?P<sensor>.*?\S)\s+(?:HW\s+)?(?:active\s+)?frequency$"),
    ("residency", ("%",), r"^(?P<sensor>.*?\S)\s+(?:HW\s+)?active\s+residency$"),
)

def sniff(head: str, path: Path) -> bool:
    """A line starting ``*** Sampled system activity``, and no plist."""
    return "<plist" not in head and any(ln.startswith(HEADER_START) for ln in head.splitlines())


def parse(ctx: IngestContext) -> Trace:
    """Blocks → samples at each window's middle; see the module docstring."""
    cut: list[str] = []
    data = _checked_bytes(ctx.read_text(), cut)
    found = pd.DataFrame(_SCAN.findall(data), columns=["header", "label", "value", "unit"])
    is_header = found["header"].to_numpy() != b""
    block = np.cumsum(is_header)
    n_blocks = int(block[-1]) if len(block) else 0
    if n_blocks == 0:
        raise ParseError("no '*** Sampled system activity' header: not powermetrics text output")

    def header_line(k: int) -> int:
        """1-based line of the k-th header (0-based); only computed for messages."""
        for number, match in enumerate(_HEADER_LINES.finditer(data)):
            if number == k:
                return data.count(b"\n", 0, match.start()) + 1
        return 0

    texts = found.loc[is_header, "header"].map(lambda b: b.decode("utf-8", "replace").rstrip("\r")).reset_index(drop=True)
    header = texts.str.extract(_HEADER_RE)
    bad = header["date"].isna() & header["elapsed"].isna() & ~texts.str.match(r"^\*\*\* Sampled system activity \*\*\*\s*$")
    if bad.any():
        raise ParseError("sample header not understood", line=header_line(int(bad.to_numpy().argmax())))
    if header["elapsed"].isna().any():
        raise ParseError("sample header has no '(N ms elapsed)': dlwh needs it to place the sample in time",
                         line=header_line(int(header["elapsed"].isna().to_numpy().argmax())))

    values = found[~is_header & (block > 0)].assign(block=block[~is_header & (block > 0)])
    readings = _classify(values)
    if readings.empty:
        raise ParseError(f"{n_blocks} samples but no power, frequency or residency lines; record with "
                         "`powermetrics --samplers cpu_power,gpu_power`")
    before = len(readings)
    readings = readings.drop_duplicates(["block", "key", "metric"], keep="first")
    notes: list[str] = []
    if len(readings) < before:
        notes.append(f"{before - len(readings)} repeated lines (e.g. GPU Power in the GPU usage section) ignored")
    if _last_block_incomplete(readings, n_blocks):  # the recording stopped inside its last sample
        cut = [f"the last sample (from line {header_line(n_blocks - 1)}) is incomplete "
               "(the recording stopped mid-sample?): skipped"]
        n_blocks -= 1
        readings = readings[readings["block"] <= n_blocks]
        header = header.iloc[:n_blocks]

    dates = header["date"].str.replace(r"\s+", " ", regex=True).str.strip()
    utc = pd.to_datetime(dates, format="%a %b %d %H:%M:%S %Y %z", utc=True, errors="coerce")
    unreadable = dates.notna() & utc.isna()
    if unreadable.any():
        first = int(unreadable.to_numpy().argmax())
        raise ParseError(f"sample date {dates[first]!r} not understood", line=header_line(first))
    header_ns = utc.dt.tz_localize(None).astype("datetime64[ns]").to_numpy()
    elapsed_ns = np.round(pd.to_numeric(header["elapsed"]).to_numpy() * 1e6).astype("int64")
    warnings: list[str] = list(cut)
    end_ns = window_ends(header_ns, elapsed_ns, ctx, header_line, notes, warnings)
    if dates.notna().all():
        offsets = sorted(set(dates.str.extract(r"([+-]\d{4})$", expand=False).dropna()))
        notes.append(f"times from the sample headers (UTC offset {', '.join(offsets)}); each sample placed "
                     "at the middle of its elapsed window, the header time read as the window's end")
    return build_trace(NAME, readings, end_ns, elapsed_ns, notes, warnings)


def _checked_bytes(text: str, cut: list[str]) -> bytes:
    """The text as UTF-8 bytes (offsets then match newline positions), without a last line cut mid-write
    (``cut`` gets the warning: a last line is complete when it has the shape and words of a line before
    it); ParseError if empty."""
    if not text.strip():
        raise ParseError("the file is empty")
    recent = text[max(0, len(text) - 65536):].split("\n")[-201:-1]
    return drop_cut_line(text, shaped_like(recent, known_words=True), cut).encode("utf-8")


def _classify(found: pd.DataFrame) -> pd.DataFrame:
    """``label: number unit`` lines (bytes; block) → block, label, key, metric, value (W for power).

    The distinct (label, unit) pairs, a few dozen, are classified; the lines then take their class.
    """
    kinds = found[["label", "unit"]].drop_duplicates()
    text = kinds["label"].map(lambda b: b.decode("utf-8", "replace").strip())
    unit = kinds["unit"].map(lambda b: b.decode())
    kinds = kinds.assign(metric=None, sensor=None)
    for metric, units, pattern in _CLASSES:
        sensor = text.str.extract(pattern, expand=False)
        hit = unit.isin(units) & sensor.notna() & kinds["metric"].isna()
        kinds.loc[hit, "metric"] = metric
        kinds.loc[hit, "sensor"] = sensor[hit].str.strip()
    kinds = kinds[kinds["metric"].notna()]
    kinds["key"] = sensor_keys(kinds["sensor"]).to_numpy()
    rows = found.join(kinds.set_index(["label", "unit"]), on=["label", "unit"], how="inner").sort_index(kind="stable")
    value = np.array(rows["value"].tolist() or [], dtype="S").astype(float)
    value = np.where(rows["unit"].to_numpy() == b"mW", value / 1000.0, value)
    return pd.DataFrame({"block": rows["block"].to_numpy(), "label": rows["sensor"].to_numpy(),
                         "metric": rows["metric"].to_numpy(), "value": value, "key": rows["key"].to_numpy()})


def sensor_keys(labels: pd.Series) -> pd.Series:
    """'CPU Power' → 'cpu', 'Combined Power (CPU + GPU + ANE)' → 'combined', 'CPU 0' → 'cpu0',
    'E-Cluster HW' → 'e-cluster', Intel's '... package power (CPUs+GT+SA)' → 'package'."""
    base = labels.str.replace(r"(?<!\s)\s*\(.*\)\s*$", "", regex=True).str.replace(r"(?i)(?<!\s)\s*power$", "", regex=True)
    base = base.mask(labels.str.contains(r"(?i)package power", regex=True), "package")
    return base.str.lower().str.replace(r"\s+", "", regex=True)


def _last_block_incomplete(readings: pd.DataFrame, n_blocks: int) -> bool:
    """True when the last sample lacks lines the one before it has: the recording was cut inside it."""
    if n_blocks < 2:
        return False
    last = readings[readings["block"] == n_blocks]
    prev = readings[readings["block"] == n_blocks - 1]
    have = set(zip(last["label"], last["metric"]))
    return any((label, metric) not in have for label, metric in zip(prev["label"], prev["metric"]))
