"""What an Electricity Maps carbon-intensity answer looks like: its JSON as carbon_intensity rows, and zone keys.

Shared by the ingest format (JSON saved by hand) and the API client in dlwh/carbon/electricitymaps.py.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from dlwh._lazy import pandas as pd

from dlwh.errors import UsageError

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


def normalise_zone(zone: str) -> str:
    """An Electricity Maps zone key in its canonical (upper) case; raises UsageError when malformed."""
    text = zone.strip().upper()
    if not text or len(text) > 40 or not all(c.isalnum() or c in "-_" for c in text):
        raise UsageError(f"zone {zone!r} is not a zone key such as DE, KR or US-CAL-CISO")
    return text
