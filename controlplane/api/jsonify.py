"""Store values -> JSON values: ISO-8601 UTC timestamps, NaN/inf -> null, bytes -> text."""

from __future__ import annotations

import json
import math
from datetime import UTC, date, datetime
from decimal import Decimal
from ipaddress import IPv4Address, IPv6Address
from typing import Any
from uuid import UUID


def iso(ts: datetime | float | None) -> str | None:
    """ISO-8601 UTC with milliseconds and a Z (naive datetimes from the store are UTC)."""
    if ts is None:
        return None
    if not isinstance(ts, datetime):
        ts = datetime.fromtimestamp(float(ts), tz=UTC)
    elif ts.tzinfo is None:
        ts = ts.replace(tzinfo=UTC)
    return ts.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def cell(v: Any) -> Any:
    if v is None or isinstance(v, bool | int | str):
        return v
    if isinstance(v, float):
        return v if math.isfinite(v) else None
    if isinstance(v, datetime):
        return iso(v)
    if isinstance(v, date):
        return v.isoformat()
    if isinstance(v, Decimal):
        f = float(v)
        return f if math.isfinite(f) else None
    if isinstance(v, bytes):
        return v.decode(errors="replace")
    if isinstance(v, UUID | IPv4Address | IPv6Address):
        return str(v)
    if isinstance(v, dict):
        return {str(cell(k)): cell(x) for k, x in v.items()}
    if isinstance(v, list | tuple | set):
        return [cell(x) for x in v]
    if hasattr(v, "item"):  # numpy scalar
        return cell(v.item())
    return str(v)


def parse_json(text: str | None) -> Any:
    """A JSON column (`params`, `inputs`); text that is not JSON is returned as it is."""
    if not text:
        return {}
    try:
        return cell(json.loads(text))
    except (TypeError, ValueError):
        return text


def row(d: dict[str, Any], json_cols: tuple[str, ...] = ()) -> dict[str, Any]:
    return {k: (parse_json(v) if k in json_cols else cell(v)) for k, v in d.items()}
