"""Human-readable ``perf stat`` output (with or without ``-I``, any locale) → counters and RAPL samples.

Counter lines: ``[time] [CPU3|S0 [cpus]|S0-D0-C1 [cpus]|N0 [cpus]] value [unit] event [# metric] [(pct%)]``,
e.g. ``     1.001048308      19.63 Joules power/energy-pkg/``, ``    39.293.025.980  cpu_atom/cycles/  #
1,991 GHz  (58,73%)``, ``  <not counted>  cycles  (0.00%)``. The ``(58,73%)`` share becomes
``enabled_pct``; text output has no counter running time (``run_time_ns`` NULL).

Locales: perf groups digits and picks the decimal mark by the locale (``1,473.81``, ``39.293.025.980``,
``19.730,56``, ``1\u202f473,81`` with a narrow no-break space or NBSP, ``1'473.81``). The decimal mark is
decided once per file from evidence (``_perf_common.decimal_mark``: the ``seconds time elapsed`` line,
the ``(58,73%)`` shares, values such as ``1.473,81`` or ``0,44``, grouping such as ``39.293.025.980``,
metric numbers); a note says which mark was used and why. ``-I`` times are always printed with ``.``.

Runs: every ``Performance counter stats for`` header and every ``# started on`` line starts one (and
``-I`` times going backwards); the ``seconds time elapsed`` line after a run's totals is its
``interval_s``. Counter lines are looked for only after perf's first header (one of those two or the
``#  time  counts unit events`` line of ``-I``); shell prompts and other lines around pasted output
are skipped and counted in a note. Runs, anchoring and RAPL energy → samples: see ``_perf_common``. Text output is small by nature;
it is still handled with pandas string operations over all lines at once.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
from dlwh._lazy import pandas as pd

from dlwh.errors import ParseError
from dlwh.ingest.formats.perf import _common as common
from dlwh.ingest.trace import IngestContext, Trace

NAME = "perf-stat-text"
DESCRIPTION = "perf stat human-readable output, with or without -I, any locale: counters and RAPL energy"
EXTENSIONS = (".txt", ".log")

_DIGITS = r"\d[\d.,'\u2019\u00a0\u202f\u2009]*"
_ROW = (
    r"^\s*(?:(?P<time>\d+[.,]\d{9})\s+)?"
    r"(?:(?P<cpu>CPU\d+|S\d+(?:-D\d+)?(?:-C\d+|-L\d+-ID\d+|-CLS\d+)?|N\d+)\s+(?:(?P<nr>\d+)\s+)?)?"
    r"(?!\d+[.,]\d{9}\s)"  # a bare -I time is never a value
    rf"(?P<value><not counted>|<not supported>|{_DIGITS})"
    r"\s+(?:(?P<unit>[A-Za-z%][^\s#(]*)\s+)?"
    r"(?P<event>[^\s#(]\S*)"
    r"(?P<rest>.*)$"
)
_ELAPSED = r"^\s*(\d[\d.,]*)\s+(?:\+-\s+\S+\s+)?seconds time elapsed"
_USER_SYS = r"^\s*\d[\d.,]*\s+seconds\s+(?:user|sys)\s*$"
_HEADER = r"^\s*Performance counter stats for"
_INTERVAL_HEADER = re.compile(r"^#\s+time\s+.*counts\s+unit\s+events", re.M)
_PCT = r"\(\s*(\d+(?:[.,]\d+)?)\s*%\s*\)\s*$"
_NOISE = r"^\s*(?:Some events weren't counted|Try disabling|echo \d|perf stat|The events in group|$)"


def sniff(head: str, path: Path) -> bool:
    """A 'Performance counter stats for' header or the '#  time  counts unit events' header of -I."""
    return bool(re.search(_HEADER, head, re.M) or _INTERVAL_HEADER.search(head))


def parse(ctx: IngestContext) -> Trace:
    """Find counter lines by regex over all lines, read numbers in the file's locale, build the trace."""
    cut: list[str] = []
    text = common.complete_text(ctx.read_text(), cut)
    lines, stripped, comment = common.split_lines(text)
    header = lines.str.contains(_HEADER, regex=True)
    elapsed_tok = lines.str.extract(_ELAPSED, expand=False)
    footer = elapsed_tok.notna() | lines.str.match(_USER_SYS)
    starts = common.started_on_in_text(text)
    interval_header = lines.str.match(_INTERVAL_HEADER.pattern)
    # counter lines come after perf's first header ('# started on', 'Performance counter stats for',
    # or the '#  time  counts unit events' of -I, which perf repeats every 25 intervals)
    first_marker = (header | interval_header | lines.str.match(r"^\s*#\s*started on")).idxmax()
    candidates = ~(comment | header | footer | stripped.eq("")) & (lines.index > first_marker)
    found = lines[candidates].str.extract(_ROW)
    matched = found["event"].notna()
    rows_raw = found[matched]
    unknown = ~(comment | header | footer | stripped.eq("")) & (lines.index <= first_marker)
    unknown[candidates] = ~matched.to_numpy()
    unknown &= ~lines.str.contains("#", regex=False) & ~lines.str.match(_NOISE)
    if rows_raw.empty and cut:
        raise ParseError(f"no perf stat counter lines found ({cut[0]})")
    if rows_raw.empty:
        raise ParseError("no perf stat counter lines found (expected lines like '  1,234  cycles' or "
                         "'  0.99 Joules power/energy-pkg/')")
    line_no = (rows_raw.index + 1).to_numpy()

    pct_tok = rows_raw["rest"].str.extract(_PCT, expand=False)
    value_tok = rows_raw["value"].where(~rows_raw["value"].isin(list(common.NOT_COUNTED)))
    decimal, why, conflicts = common.decimal_mark(
        elapsed=elapsed_tok, pct=pct_tok, values=value_tok, metrics=rows_raw["rest"])
    notes = [f"decimal mark '{decimal}' ({why})"]
    warnings = [f"decimal mark '{decimal}' chosen from {why}, but {'; '.join(conflicts)}"] if conflicts else []
    warnings += cut

    numbers = common.locale_numbers(value_tok, decimal)
    bad = value_tok.notna() & numbers.isna()
    if bad.any():
        at = bad.idxmax()
        raise ParseError(f"value {value_tok[at]!r} is not a number", line=int(at) + 1)
    reason, value = common.reasons_and_values(rows_raw["value"], numbers)
    unit = rows_raw["unit"]
    rows = pd.DataFrame({
        "line": line_no,
        "seg": common.segments(line_no, np.concatenate([
            starts["line"].to_numpy(dtype=int), (lines.index[header] + 1).to_numpy(dtype=int)])),
        "t": pd.to_numeric(rows_raw["time"].str.replace(",", ".", regex=False), errors="coerce").to_numpy(),
        "cpu": rows_raw["cpu"].astype(object).where(rows_raw["cpu"].notna(), None).to_numpy(),
        "value": value.to_numpy(),
        "reason": reason.to_numpy(),
        "unit": unit.astype(object).where(unit.notna(), None).to_numpy(),
        "event": rows_raw["event"].to_numpy(),
        "run_time_ns": np.nan,
        "enabled_pct": pd.to_numeric(pct_tok.str.replace(",", ".", regex=False), errors="coerce").to_numpy(),
        "metric_value": np.nan,
        "metric_unit": None,
    })
    el = elapsed_tok.dropna()
    elapsed = pd.DataFrame({"line": (el.index + 1).to_numpy(),
                            "seconds": common.locale_numbers(el, decimal).to_numpy()})
    if unknown.any():
        first = int(unknown.idxmax())
        notes.append(f"{int(unknown.sum())} lines that are not perf output were skipped "
                     f"(first: line {first + 1}: {stripped[first][:60]!r})")
    return common.build_trace(ctx, NAME, rows, starts=starts, elapsed=elapsed, notes=notes, warnings=warnings)
