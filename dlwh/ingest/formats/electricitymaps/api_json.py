"""Electricity Maps carbon-intensity JSON saved by hand (/latest, /past, /history, /past-range, /forecast)
→ the carbon_intensity table (source 'electricitymaps-json')."""

from __future__ import annotations

import json
import re
from datetime import datetime, timezone
from pathlib import Path

from dlwh.ingest.formats.electricitymaps._common import ResponseError, intensity_frame
from dlwh.errors import ParseError, UsageError
import dlwh.ingest.validate as validate
from dlwh.ingest.trace import IngestContext, Trace

NAME = "electricitymaps-json"
DESCRIPTION = "Electricity Maps API answers saved as JSON (/latest, /past, /history, /past-range, /forecast)"
EXTENSIONS = (".json",)
SOURCE = "electricitymaps-json"
_KEY = re.compile(r'"carbonIntensity"\s*:')


def sniff(head: str, path: Path) -> bool:
    """A JSON object mentioning "carbonIntensity" and "zone"."""
    text = head.lstrip("\ufeff \t\r\n")
    return text.startswith("{") and bool(_KEY.search(text)) and '"zone"' in text


def parse(ctx: IngestContext) -> Trace:
    """Parse the whole document; every entry with a value becomes one intensity row."""
    text = ctx.read_text().lstrip("\ufeff")
    try:
        obj = json.loads(text)
    except json.JSONDecodeError as err:
        raise ParseError(f"not valid JSON ({err.msg}); file truncated?", line=err.lineno) from None
    except ValueError as err:  # an integer over Python's 4,300-digit limit
        raise ParseError(f"not valid JSON ({str(err).splitlines()[0][:100]})") from None
    try:
        frame = intensity_frame(obj, SOURCE, datetime.now(timezone.utc).replace(tzinfo=None))
    except (ResponseError, UsageError) as err:
        raise ParseError(f"not an Electricity Maps carbon-intensity answer: {err}") from None
    if frame.empty:
        raise ParseError("no carbon intensity values in the file (every carbonIntensity is null)")
    if frame["ts"].isna().any():  # "datetime": "NaN" reads as no time at all
        raise ParseError(f"entry {int(frame['ts'].isna().to_numpy().argmax()) + 1}: datetime is not a time")
    validate.check_times(frame["ts"], None, validate.limits_of(ctx), "datetime")
    zones = ", ".join(sorted(set(frame["zone"])))
    kind = "forecast" if frame["is_forecast"].any() else "values"
    note = (f"{len(frame)} intensity {kind} for {zones}, {frame['ts'].min():%Y-%m-%d %H:%M}"
            f"..{frame['ts'].max():%Y-%m-%d %H:%M} UTC")
    return Trace(format=NAME, tables={"carbon_intensity": frame}, notes=[note])
