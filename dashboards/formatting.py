"""Number and time formatting for metric tiles and tables: pure functions, "—" for unknown.

Unknown (None, NaN) is never shown as 0: a panel without data says so.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime
from typing import Any

NA = "—"


def known(x: Any) -> bool:
    """True for a finite number (bools excluded)."""
    return isinstance(x, int | float) and not isinstance(x, bool) and math.isfinite(x)


def _compact(x: float, digits: int = 3) -> str:
    """Three significant figures, thousands separated, no scientific notation below 1e15."""
    if x == 0:
        return "0"
    mag = abs(x)
    if mag >= 1000:
        return f"{x:,.0f}"
    decimals = max(0, digits - 1 - int(math.floor(math.log10(mag))))
    return f"{x:.{min(decimals, 6)}f}"


def number(x: Any, unit: str = "") -> str:
    if not known(x):
        return NA
    s = _compact(float(x))
    return f"{s} {unit}" if unit else s


def rate_per_s(x: Any, unit: str = "req/s") -> str:
    return number(x, unit)


def ratio_pct(x: Any, decimals: int = 1) -> str:
    """0.9912 -> '99.1 %'."""
    if not known(x):
        return NA
    return f"{float(x) * 100:.{decimals}f} %"


def ms(x: Any) -> str:
    if not known(x):
        return NA
    x = float(x)
    if abs(x) >= 1000:
        return f"{x / 1000:.2f} s"
    return number(x, "ms")


def seconds(x: Any) -> str:
    """A duration: 42 s, 3.5 min, 2.1 h, 1.5 d."""
    if not known(x):
        return NA
    x = float(x)
    for size, unit in ((86400, "d"), (3600, "h"), (60, "min")):
        if abs(x) >= size:
            return f"{x / size:.3g} {unit}"
    return f"{x:.3g} s"


def money(x: Any, currency: str = "$") -> str:
    if not known(x):
        return NA
    x = float(x)
    if abs(x) < 0.01 and x != 0:
        return f"{currency}{x:.4f}"
    return f"{currency}{x:,.2f}"


def bytes_(x: Any) -> str:
    if not known(x):
        return NA
    x = float(x)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(x) < 1024 or unit == "TiB":
            return f"{x:.0f} {unit}" if unit == "B" else f"{x:.1f} {unit}"
        x /= 1024
    return NA  # unreachable


def energy_j(x: Any) -> str:
    if not known(x):
        return NA
    x = float(x)
    if abs(x) >= 3.6e6:
        return f"{x / 3.6e6:.2f} kWh"
    if abs(x) >= 1000:
        return f"{x / 1000:.2f} kJ"
    return number(x, "J")


def window_label(window_s: int) -> str:
    """900 -> 'last 15 min', 86400 -> 'last 24 h', 604800 -> 'last 7 d'."""
    if window_s % 86400 == 0 and window_s >= 2 * 86400:
        return f"last {window_s // 86400} d"
    if window_s % 3600 == 0:
        return f"last {window_s // 3600} h"
    if window_s % 60 == 0:
        return f"last {window_s // 60} min"
    return f"last {window_s} s"


def parse_ts(value: Any) -> datetime | None:
    """An ISO-8601 timestamp from the API ('Z' or offset), as an aware UTC datetime."""
    if value is None or value == "":
        return None
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    s = str(value).replace("Z", "+00:00")
    try:
        dt = datetime.fromisoformat(s)
    except ValueError:
        raise ValueError(f"not an ISO-8601 timestamp: {value!r}") from None
    return (dt if dt.tzinfo else dt.replace(tzinfo=UTC)).astimezone(UTC)


def ago(value: Any, now: datetime) -> str:
    """'12 s ago', '3.0 min ago' relative to `now` (passed in: no clock here)."""
    dt = parse_ts(value)
    if dt is None:
        return NA
    delta = (now - dt).total_seconds()
    if delta < 0:
        return "in " + seconds(-delta)
    return seconds(delta) + " ago"
