"""macOS ``powermetrics -f plist`` → the same sensors and metrics as the text parser.

The output is a stream of XML plist documents, one per sample, separated by NUL bytes
(powermetrics writes a NUL before each new sample). Each is read with plistlib. Keys used:
- ``elapsed_ns`` (the sample's window) and ``timestamp`` (a UTC date, whole seconds: the
  window's end, as in the text headers; the sub-second part is rebuilt from the elapsed times as
  described in powermetrics_text);
- in ``processor`` and ``gpu``: ``<x>_power`` (mW) → sensor x, ``power`` in W; ``<x>_energy`` (mJ
  over the window) → ``energy`` in J, at the window's end; Intel's ``<x>_watts`` / ``<x>_joules``
  likewise; x is cpu, gpu, ane, combined (kind soc), package (soc), dram, ...;
- ``processor.clusters[]``: ``name`` (E-Cluster, P0-Cluster, ...), ``freq_hz`` → ``frequency``,
  ``idle_ratio`` → ``residency`` = (1 - idle_ratio) x 100 %, and the same for each of its ``cpus[]``
  (sensor ``cpu<n>``); ``gpu.freq_hz`` / ``gpu.idle_ratio`` likewise for the GPU.
  ``freq_hz`` is in Hz for CPUs but, despite its name, in MHz for Apple GPUs: values below 100 000
  are read as MHz.
A sensor and metric named twice in one sample (``gpu_energy`` in both dicts) counts once (processor first).
Samples without ``timestamp`` are anchored at ctx.start_utc plus the elapsed times, else refused.
"""

from __future__ import annotations

import math
import plistlib
import re
from datetime import datetime
from pathlib import Path
from typing import Any, Iterator

import numpy as np
from dlwh._lazy import pandas as pd

from dlwh.errors import ParseError
from dlwh.ingest.formats.powermetrics._common import build_trace, window_ends
from dlwh.ingest.trace import IngestContext, Trace

NAME = "powermetrics-plist"
DESCRIPTION = "macOS powermetrics -f plist: CPU, GPU, ANE, DRAM and package power, frequency, residency"
EXTENSIONS = (".plist", ".xml")
_SNIFF_KEYS = re.compile(r"<key>(?:elapsed_ns|is_delta|hw_model|kern_boottime)</key>")
_DOC = re.compile(rb"(?:<\?xml[^>]*\?>\s*)?(?:<!DOCTYPE[^>]*>\s*)?<plist\b.*?</plist>", re.S)
_NAMES = {"cpu": "CPU", "gpu": "GPU", "ane": "ANE", "dram": "DRAM", "package": "Package",
          "combined": "Combined (CPU + GPU + ANE)"}
# key suffix -> (metric, scale to W or J)
_SUFFIXES = (("_power", "power", 1e-3), ("_energy", "energy", 1e-3), ("_watts", "power", 1.0),
             ("_joules", "energy", 1.0))


def sniff(head: str, path: Path) -> bool:
    """A plist whose keys include powermetrics' elapsed_ns / is_delta / hw_model / kern_boottime."""
    return "<plist" in head and bool(_SNIFF_KEYS.search(head))


def parse(ctx: IngestContext) -> Trace:
    """Each document → one sample window; see the module docstring."""
    data = ctx.read_bytes()
    rows: list[tuple[int, str, str, str, float]] = []
    stamps: list[datetime | None] = []
    elapsed: list[int] = []
    lines: list[int] = []
    for number, (line, doc) in enumerate(_documents(data), 1):
        elapsed_ns = doc.get("elapsed_ns")
        if not isinstance(elapsed_ns, int) or elapsed_ns <= 0:
            raise ParseError("sample has no elapsed_ns: dlwh needs it to place the sample in time", line=line)
        stamp = doc.get("timestamp")
        stamps.append(stamp if isinstance(stamp, datetime) else None)
        elapsed.append(elapsed_ns)
        lines.append(line)
        rows.extend((number, label, key, metric, value) for label, key, metric, value in _readings(doc))
    if not elapsed:
        raise ParseError("no plist documents in this file")
    readings = pd.DataFrame(rows, columns=["block", "label", "key", "metric", "value"])
    if readings.empty:
        raise ParseError(f"{len(elapsed)} samples but no power, energy, frequency or residency keys; record with "
                         "`powermetrics -f plist --samplers cpu_power,gpu_power`")
    readings = readings.drop_duplicates(["block", "key", "metric"], keep="first")
    header = pd.to_datetime(pd.Series(stamps, dtype="object"), errors="coerce").dt.floor("s")
    header_ns = header.astype("datetime64[ns]").to_numpy()
    elapsed_ns = np.asarray(elapsed, dtype="int64")
    notes: list[str] = []
    warnings: list[str] = []
    end_ns = window_ends(header_ns, elapsed_ns, ctx, lambda k: lines[k], notes, warnings)
    if not np.isnat(header_ns).any():
        notes.append("times from the plist timestamps (UTC); each sample placed at the middle of its elapsed "
                     "window, the timestamp read as the window's end")
    return build_trace(NAME, readings, end_ns, elapsed_ns, notes, warnings)


def _documents(data: bytes) -> Iterator[tuple[int, dict[str, Any]]]:
    """(line of its start, parsed dict) per plist document; ParseError for a broken or cut one."""
    position = 0
    for match in _DOC.finditer(data):
        _check_gap(data, position, match.start())
        position = match.end()
        line = data.count(b"\n", 0, match.start()) + 1
        try:
            doc = plistlib.loads(match.group(0).strip(), fmt=plistlib.FMT_XML)
        except Exception as err:  # plistlib raises ExpatError, ValueError, InvalidFileException, ...
            raise ParseError(f"plist document is not valid ({str(err).splitlines()[0][:80]})", line=line) from None
        if not isinstance(doc, dict):
            raise ParseError("plist document is not a dictionary of powermetrics keys", line=line)
        yield line, doc
    _check_gap(data, position, len(data))


def _check_gap(data: bytes, start: int, end: int) -> None:
    """Only NULs and white space may lie between documents; anything else is a cut-off or foreign part."""
    rest = data[start:end]
    if rest.replace(b"\x00", b"").strip():
        offset = start + len(rest) - len(rest.lstrip(b"\x00 \t\r\n"))
        line = data.count(b"\n", 0, offset) + 1
        what = ("an incomplete plist document (file truncated?); delete it and ingest again"
                if b"<plist" in rest or b"<?xml" in rest else "text that is not part of a plist document")
        raise ParseError(what, line=line)


def _float(value: Any) -> float:
    """A plist number as float; an integer too large for one is inf (the check at the boundary refuses it)."""
    try:
        return float(value)
    except OverflowError:
        return math.inf if value > 0 else -math.inf


def _readings(doc: dict[str, Any]) -> Iterator[tuple[str, str, str, float]]:
    """(label, sensor key, metric, value in W / J / MHz / %) for one sample document."""
    for section in ("processor", "gpu"):
        part = doc.get(section)
        if not isinstance(part, dict):
            continue
        for name, value in part.items():
            if not _is_number(value):
                continue
            for suffix, metric, scale in _SUFFIXES:
                if name.endswith(suffix):
                    key = name[: -len(suffix)]
                    yield _NAMES.get(key, key), key, metric, _float(value) * scale
                    break
        if section == "gpu":
            yield from _activity("GPU", "gpu", part)
        clusters = part.get("clusters") if section == "processor" else None
        for cluster in clusters or []:
            if not isinstance(cluster, dict):
                continue
            label = str(cluster.get("name") or "cluster")
            yield from _activity(label, re.sub(r"\s+", "", label.lower()), cluster)
            for cpu in cluster.get("cpus") or []:
                if isinstance(cpu, dict) and isinstance(cpu.get("cpu"), int):
                    yield from _activity(f"CPU {cpu['cpu']}", f"cpu{cpu['cpu']}", cpu)


def _activity(label: str, key: str, part: dict[str, Any]) -> Iterator[tuple[str, str, str, float]]:
    """frequency (MHz) from freq_hz and residency (%) from idle_ratio."""
    freq = part.get("freq_hz")
    if _is_number(freq) and freq > 0:
        yield label, key, "frequency", _float(freq) / 1e6 if freq >= 1e5 else _float(freq)
    idle = part.get("idle_ratio")
    if _is_number(idle):
        yield label, key, "residency", (1.0 - _float(idle)) * 100.0


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)
