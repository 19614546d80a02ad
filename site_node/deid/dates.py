"""Shifting DA, DT and TM values by a patient's whole-day offset.

The offset is a whole number of days, so every interval within a patient is preserved exactly and
times of day (TM, the time part of DT, the UTC offset suffix) stay as they are. Partial values keep
their precision: ``YYYY`` and ``YYYYMM`` are expanded to the first day, shifted and truncated back.
A value that does not parse as its VR is emptied (it may be free text typed into a date field).
"""

from __future__ import annotations

import datetime as dt
import re

_DT = re.compile(r"^(\d{4})(\d{2})?(\d{2})?((?:\d{2}){0,3}(?:\.\d{1,6})?)?([+-]\d{4})?$")
_TM = re.compile(r"^(?:\d{2}(?::?\d{2}(?::?\d{2}(?:\.\d{1,6})?)?)?)$")
_TZ = re.compile(r"^[+-]\d{4}$")


def _shift_ymd(year: str, month: str | None, day: str | None, days: int) -> str | None:
    try:
        base = dt.date(int(year), int(month or 1), int(day or 1))
        shifted = base + dt.timedelta(days=days)
    except (ValueError, OverflowError):
        return None
    out = f"{shifted.year:04d}"
    if month:
        out += f"{shifted.month:02d}"
    if day:
        out += f"{shifted.day:02d}"
    return out


def shift_da(value: str, days: int) -> str:
    """Shift one DA value (``YYYYMMDD``, legacy ``YYYY.MM.DD`` or partial); '' when invalid."""
    text = value.strip().replace(".", "")
    if not text.isdigit() or len(text) not in (4, 6, 8):
        return ""
    return _shift_ymd(text[:4], text[4:6] or None, text[6:8] or None, days) or ""


def shift_dt(value: str, days: int) -> str:
    """Shift one DT value, keeping its precision, time and UTC offset; '' when invalid."""
    text = value.strip()
    match = _DT.match(text)
    if not match:
        return ""
    year, month, day, rest, tz = match.groups()
    if day and not month:
        return ""
    if rest and not day:
        return ""
    date_part = _shift_ymd(year, month, day, days)
    if date_part is None:
        return ""
    return date_part + (rest or "") + (tz or "")


def check_tm(value: str) -> str:
    """A TM value is unchanged by a whole-day shift; returns '' when it is not a valid TM."""
    text = value.strip()
    return text if _TM.match(text) else ""


def check_timezone(value: str) -> str:
    """Timezone Offset From UTC (``+HHMM``) is kept when well-formed, emptied otherwise."""
    text = value.strip()
    return text if _TZ.match(text) else ""


SHIFTERS = {"DA": shift_da, "DT": shift_dt}


def shift_value(vr: str, value: str, days: int) -> str:
    """Shift or validate one value of a DA, DT or TM element; other VRs are validated as a UTC offset."""
    shifter = SHIFTERS.get(vr)
    if shifter is not None:
        return shifter(value, days)
    if vr == "TM":
        return check_tm(value)
    return check_timezone(value)
