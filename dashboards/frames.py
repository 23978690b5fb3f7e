"""API JSON -> pandas DataFrames for the pages and charts (pure functions, no Streamlit, no I/O).

Timestamps become timezone-aware UTC datetimes; numbers that the API sent as null stay NaN so a
chart leaves a gap instead of drawing a false zero.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import pandas as pd

TS_COLUMNS = ("ts", "target_ts", "window_start", "window_end", "expires_at", "last_tick_at")


def _to_utc(col: pd.Series) -> pd.Series:
    return pd.to_datetime(col, utc=True, errors="coerce", format="ISO8601")


def _with_times(df: pd.DataFrame) -> pd.DataFrame:
    for c in TS_COLUMNS:
        if c in df.columns:
            df[c] = _to_utc(df[c])
    return df


def series_frame(series: Mapping[str, Any]) -> pd.DataFrame:
    """One /v1/series answer: `ts` as datetime, the rest as returned (value columns numeric)."""
    columns = list(series.get("columns") or [])
    rows = series.get("rows") or []
    if "ts" not in columns:
        columns = ["ts", *columns]
    df = pd.DataFrame(rows, columns=columns)
    df = _with_times(df)
    for c in df.columns:
        if c != "ts" and c not in ("model", "target", "zone", "region", "reason"):
            df[c] = pd.to_numeric(df[c], errors="coerce")
    return df.sort_values("ts").reset_index(drop=True) if not df.empty else df


def complete_buckets(df: pd.DataFrame, step_s: int, now: pd.Timestamp | None) -> pd.DataFrame:
    """Drop buckets that have not ended by `now`: a rate over a half-filled bucket reads low."""
    if df.empty or now is None or pd.isna(now) or "ts" not in df.columns:
        return df
    done = df[df["ts"] + pd.Timedelta(seconds=step_s) <= now].reset_index(drop=True)
    return done if not done.empty else df  # only a young bucket so far: better than nothing


def value_columns(df: pd.DataFrame) -> list[str]:
    """Numeric columns other than the time and group columns."""
    return [
        c for c in df.columns if c not in ("ts", "model", "target", "zone", "region") and _is_numeric(df[c])
    ]


def _is_numeric(col: pd.Series) -> bool:
    return pd.api.types.is_numeric_dtype(col) and not pd.api.types.is_bool_dtype(col)


def fleet_total(df: pd.DataFrame, column: str) -> pd.DataFrame:
    """Sum `column` over every group per timestamp (e.g. requests/s of all models)."""
    if df.empty or column not in df.columns:
        return pd.DataFrame({"ts": pd.Series(dtype="datetime64[ns, UTC]"), column: pd.Series(dtype=float)})
    out = df.groupby("ts", as_index=False)[column].sum(min_count=1)
    return out.sort_values("ts").reset_index(drop=True)


def last_value(df: pd.DataFrame, column: str) -> float | None:
    """The newest non-null value of `column` (summed over groups at that timestamp)."""
    tot = fleet_total(df, column).dropna(subset=[column])
    if tot.empty:
        return None
    return float(tot[column].iloc[-1])


def mean_value(df: pd.DataFrame, column: str, *, total: bool = True) -> float | None:
    """The window mean of `column`: of the per-timestamp fleet sum when `total`, else of all rows."""
    if df.empty or column not in df.columns:
        return None
    vals = (fleet_total(df, column) if total else df)[column].dropna()
    return float(vals.mean()) if not vals.empty else None


def long_format(df: pd.DataFrame, value_cols: Sequence[str], names: Mapping[str, str] | None = None):
    """Wide -> long with `series` and `value` columns, for one chart of several measures."""
    keep = [c for c in value_cols if c in df.columns]
    ids = [c for c in df.columns if c not in keep and c in ("ts", "model", "target", "zone", "region")]
    out = df.melt(id_vars=ids, value_vars=keep, var_name="series", value_name="value")
    if names:
        out["series"] = out["series"].map(lambda s: names.get(s, s))
    return out


# --- event tables ------------------------------------------------------------------------------


def _frame(rows: Iterable[Mapping[str, Any]], columns: Sequence[str]) -> pd.DataFrame:
    df = pd.DataFrame(list(rows))
    for c in columns:
        if c not in df.columns:
            df[c] = None
    return _with_times(df)


def _codes(v: Any) -> str:
    if isinstance(v, list | tuple):
        return ", ".join(str(x) for x in v)
    return "" if v is None else str(v)


def decisions_frame(rows: Iterable[Mapping[str, Any]]) -> pd.DataFrame:
    """Decisions, newest first, with params (current/recommended/final/message) and key inputs as columns."""
    rows = list(rows)
    df = _frame(
        rows, ("ts", "model", "policy", "mode", "action", "replica", "reason_codes", "confidence_ratio")
    )
    params = [r.get("params") if isinstance(r.get("params"), dict) else {} for r in rows]
    inputs = [r.get("inputs") if isinstance(r.get("inputs"), dict) else {} for r in rows]
    for key in ("current", "recommended", "final"):
        df[key] = pd.to_numeric(pd.Series([p.get(key) for p in params], dtype=object), errors="coerce")
    df["message"] = [p.get("message", "") for p in params]
    for key in (
        "observed_replicas",
        "ready_replicas",
        "rate_rps",
        "forecast_p90_rps",
        "capacity_rps",
        "p99_ms",
    ):
        df[key] = pd.to_numeric(pd.Series([i.get(key) for i in inputs], dtype=object), errors="coerce")
    df["reasons"] = df["reason_codes"].map(_codes)
    if not df.empty:
        df = df.sort_values("ts", ascending=False).reset_index(drop=True)
    return df


def actions_frame(rows: Iterable[Mapping[str, Any]]) -> pd.DataFrame:
    df = _frame(
        rows,
        ("ts", "model", "replica", "actuator", "action", "mode", "outcome", "error", "duration_ms", "params"),
    )
    df["params"] = df["params"].map(lambda p: "" if p in (None, {}) else _short_json(p))
    if not df.empty:
        df = df.sort_values("ts", ascending=False).reset_index(drop=True)
    return df


def _short_json(v: Any) -> str:
    if isinstance(v, dict):
        return ", ".join(f"{k}={v[k]}" for k in sorted(v))
    return str(v)


def events_frame(rows: Iterable[Mapping[str, Any]]) -> pd.DataFrame:
    """Anomaly events with `kind` (open/update/close: the first reason code) and `incident_id`."""
    rows = list(rows)
    df = _frame(
        rows,
        (
            "ts",
            "event_id",
            "detector",
            "model",
            "replica",
            "zone",
            "metric",
            "severity",
            "score",
            "observed_value",
            "expected_value",
            "reason_codes",
            "window_start",
            "window_end",
        ),
    )
    df["kind"] = [
        (r.get("reason_codes") or [""])[0] if isinstance(r.get("reason_codes"), list) else "" for r in rows
    ]
    df["incident_id"] = [_incident_id(r) for r in rows]
    df["reasons"] = df["reason_codes"].map(_codes)
    if not df.empty:
        df = df.sort_values("ts", ascending=False).reset_index(drop=True)
    return df


def _incident_id(row: Mapping[str, Any]) -> str:
    inputs = row.get("inputs")
    if isinstance(inputs, dict) and inputs.get("incident_id"):
        return str(inputs["incident_id"])
    event_id = str(row.get("event_id") or "")
    return (
        event_id.split("#", 1)[0]
        if event_id
        else f"{row.get('model')}/{row.get('replica')}/{row.get('metric')}"
    )


SEVERITY_RANK = {"info": 0, "warning": 1, "critical": 2}


def incidents_frame(events: pd.DataFrame, now: pd.Timestamp) -> pd.DataFrame:
    """One row per incident: start, end (now while open), worst severity, last observed/expected."""
    cols = [
        "incident_id",
        "model",
        "replica",
        "metric",
        "severity",
        "state",
        "start",
        "end",
        "observed_value",
        "expected_value",
        "peak_score",
    ]
    if events.empty:
        return pd.DataFrame(columns=cols)
    out = []
    for inc_id, g in events.sort_values("ts").groupby("incident_id", sort=False):
        last = g.iloc[-1]
        closed = last["kind"] in ("close", "closed")
        start = g["window_start"].min() if g["window_start"].notna().any() else g["ts"].min()
        end = (g["window_end"].max() if g["window_end"].notna().any() else last["ts"]) if closed else now
        sev = max(g["severity"].fillna("info"), key=lambda s: SEVERITY_RANK.get(s, -1))
        out.append(
            {
                "incident_id": inc_id,
                "model": last["model"],
                "replica": last["replica"],
                "metric": last["metric"],
                "severity": sev,
                "state": "closed" if closed else "open",
                "start": start,
                "end": end,
                "observed_value": last["observed_value"],
                "expected_value": last["expected_value"],
                "peak_score": pd.to_numeric(g["score"], errors="coerce").max(),
            }
        )
    return pd.DataFrame(out, columns=cols).sort_values("start", ascending=False).reset_index(drop=True)


def forecasts_frame(rows: Iterable[Mapping[str, Any]]) -> pd.DataFrame:
    """Forecast rows; for each target time only the newest forecast is kept (what the loop used)."""
    df = _frame(
        rows, ("ts", "forecaster", "model", "metric", "target_ts", "horizon_s", "value", "lower", "upper")
    )
    for c in ("value", "lower", "upper", "horizon_s"):
        df[c] = pd.to_numeric(df[c], errors="coerce")
    if df.empty:
        return df
    df = df.sort_values("ts").drop_duplicates(["model", "metric", "target_ts"], keep="last")
    return df.sort_values("target_ts").reset_index(drop=True)


def query_frame(result: Mapping[str, Any]) -> pd.DataFrame:
    """A /v1/query result as a DataFrame; date/time-typed columns become datetimes."""
    columns = list(result.get("columns") or [])
    types = list(result.get("types") or [])
    df = pd.DataFrame(result.get("rows") or [], columns=columns)
    for c, t in zip(columns, types, strict=False):
        base = t.replace("Nullable(", "").replace("LowCardinality(", "")
        if base.startswith(("DateTime", "Date")):
            df[c] = pd.to_datetime(df[c], utc=True, errors="coerce", format="ISO8601")
        elif base.startswith(("Int", "UInt", "Float", "Decimal")):
            df[c] = pd.to_numeric(df[c], errors="coerce")
    return df


def chart_axes(df: pd.DataFrame) -> tuple[str | None, list[str], str | None]:
    """Guess (x, numeric y columns, color column) for charting an arbitrary query result.

    x: the first datetime column, else the first text column, else None; color: a text column
    other than x when there is one and it has few distinct values.
    """
    if df.empty:
        return None, [], None
    dt = [c for c in df.columns if pd.api.types.is_datetime64_any_dtype(df[c])]
    num = [c for c in df.columns if _is_numeric(df[c]) and c not in dt]
    text = [c for c in df.columns if c not in dt and c not in num]
    x = dt[0] if dt else (text[0] if text else None)
    color = next((c for c in text if c != x and df[c].nunique() <= 20), None)
    return x, num, color


def slo_summary(slo: Mapping[str, Any]) -> dict[str, float | None]:
    """Fleet SLO attainment (request-weighted within-SLO share) and the worst burn rate."""
    models = [m for m in slo.get("models") or [] if _finite(m.get("within_slo_ratio"))]
    total = sum(float(m.get("requests") or 0) for m in models)
    attainment = (
        sum(float(m["within_slo_ratio"]) * float(m.get("requests") or 0) for m in models) / total
        if total > 0
        else None
    )
    burns = [float(m["burn_rate"]) for m in slo.get("models") or [] if _finite(m.get("burn_rate"))]
    return {
        "attainment_ratio": attainment,
        "worst_burn_rate": max(burns) if burns else None,
        "objective_ratio": slo.get("objective_ratio"),
        "requests": total,
    }


def _finite(x: Any) -> bool:
    return isinstance(x, int | float) and not isinstance(x, bool) and math.isfinite(x)
