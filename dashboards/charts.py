"""Altair chart builders: pure functions DataFrame -> chart, or None when there is nothing to draw.

Pages show "no data" themselves when a builder returns None, so an empty panel never looks like a
flat zero. Times are UTC; tooltips carry the exact value and unit.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import altair as alt
import pandas as pd

SEVERITY_COLORS = {"info": "#4c78a8", "warning": "#f58518", "critical": "#e45756"}
ACTION_COLORS = {
    "scale_up": "#54a24b",
    "scale_down": "#4c78a8",
    "drain": "#f58518",
    "hold": "#bab0ac",
    "none": "#d8d8d8",
}
OUTCOME_COLORS = {"ok": "#54a24b", "failed": "#e45756", "skipped": "#bab0ac", "rolled_back": "#f58518"}
TIME_AXIS = alt.Axis(format="%H:%M", labelAngle=0, title=None, grid=False)
# Streamlit sizes charts with autosize "fit": heights include title, axes and legend.
HEIGHT = 280


def _scale(mapping: Mapping[str, str], values: Sequence[str]) -> alt.Scale:
    """A colour scale with fixed colours for known values, Tableau colours for the rest."""
    domain = list(dict.fromkeys([*[v for v in mapping if v in set(values)], *values]))
    extra = ["#72b7b2", "#eeca3b", "#b279a2", "#ff9da6", "#9d755d", "#79706e"]
    rng, i = [], 0
    for v in domain:
        if v in mapping:
            rng.append(mapping[v])
        else:
            rng.append(extra[i % len(extra)])
            i += 1
    return alt.Scale(domain=domain, range=rng)


def _plottable(df: pd.DataFrame | None, *cols: str) -> bool:
    if df is None or df.empty or any(c not in df.columns for c in cols):
        return False
    return bool(df[list(cols)].notna().all(axis=1).any())


def time_series(
    df: pd.DataFrame,
    y: str,
    *,
    color: str | None = None,
    title: str = "",
    y_title: str = "",
    y_format: str = ",.4~g",
    area: bool = False,
    height: int = HEIGHT,
) -> alt.Chart | None:
    """Lines (or stacked areas) of `y` over `ts`, one per `color` value; gaps where y is null."""
    if not _plottable(df, "ts", y):
        return None
    data = df[[c for c in ("ts", y, color) if c]].copy()
    enc_color = (
        alt.Color(
            f"{color}:N",
            title=None,
            legend=alt.Legend(orient="top", direction="horizontal", columns=4, offset=2),
        )
        if color
        else alt.value("#4c78a8")
    )
    tooltip = [alt.Tooltip("ts:T", title="time (UTC)", format="%Y-%m-%d %H:%M:%S")]
    if color:
        tooltip.append(alt.Tooltip(f"{color}:N"))
    tooltip.append(alt.Tooltip(f"{y}:Q", title=y_title or y, format=y_format))
    base = alt.Chart(data, title=title or alt.Undefined, height=height)
    x = alt.X("ts:T", axis=TIME_AXIS)
    y_axis = alt.Axis(title=y_title or None, format=y_format, tickCount=4)
    if area:
        mark = base.mark_area(interpolate="monotone", opacity=0.75, line=True)
        enc = mark.encode(x=x, y=alt.Y(f"{y}:Q", stack="zero", axis=y_axis), color=enc_color, tooltip=tooltip)
    else:
        mark = base.mark_line(
            interpolate="monotone", strokeWidth=2, point=alt.OverlayMarkDef(size=12, opacity=0.6)
        )
        enc = mark.encode(x=x, y=alt.Y(f"{y}:Q", axis=y_axis), color=enc_color, tooltip=tooltip)
    return enc.properties(width="container")


def multi_series(
    df: pd.DataFrame,
    names: Mapping[str, str],
    *,
    title: str = "",
    y_title: str = "",
    y_format: str = ",.4~g",
    height: int = HEIGHT,
) -> alt.Chart | None:
    """Several value columns of one frame as one line each (legend shows `names`)."""
    cols = [c for c in names if c in df.columns]
    if df is None or df.empty or not cols:
        return None
    long = df.melt(id_vars=["ts"], value_vars=cols, var_name="series", value_name="value").dropna(
        subset=["value"]
    )
    if long.empty:
        return None
    long["series"] = long["series"].map(lambda s: names.get(s, s))
    if "model" in df.columns and df["model"].nunique() > 1:
        long = long.groupby(["ts", "series"], as_index=False)["value"].mean()
    return time_series(
        long, "value", color="series", title=title, y_title=y_title, y_format=y_format, height=height
    )


def slo_bars(slo_models: pd.DataFrame, objective_ratio: float | None) -> alt.Chart | None:
    """Within-SLO share per model as horizontal bars, green when at or above the objective."""
    if not _plottable(slo_models, "model", "within_slo_ratio"):
        return None
    data = slo_models.dropna(subset=["within_slo_ratio"]).copy()
    obj = float(objective_ratio) if objective_ratio is not None else None
    data["status"] = [
        "meets SLO" if obj is None or v >= obj else "below SLO" for v in data["within_slo_ratio"]
    ]
    lo = min(float(data["within_slo_ratio"].min()), obj if obj is not None else 1.0)
    domain_lo = max(0.0, min(0.9, lo - 0.02))
    bars = (
        alt.Chart(data)
        .mark_bar(cornerRadiusEnd=3, height={"band": 0.7})
        .encode(
            y=alt.Y("model:N", title=None, sort="-x"),
            x=alt.X(
                "within_slo_ratio:Q",
                title=None,
                axis=alt.Axis(format="%"),
                scale=alt.Scale(domain=[domain_lo, 1.0], clamp=True),
            ),
            color=alt.Color(
                "status:N",
                scale=alt.Scale(domain=["meets SLO", "below SLO"], range=["#54a24b", "#e45756"]),
                legend=None,
            ),
            tooltip=[
                alt.Tooltip("model:N"),
                alt.Tooltip("within_slo_ratio:Q", title="within SLO", format=".2%"),
                alt.Tooltip("burn_rate:Q", title="burn rate", format=".2f"),
                alt.Tooltip("slo_p99_ms:Q", title="SLO p99 (ms)"),
                alt.Tooltip("requests:Q", format=",.0f"),
            ],
        )
    )
    # The share written on the bar (white, inside) or, for a short bar, just past its end.
    mid = domain_lo + (1.0 - domain_lo) / 2
    text = alt.Text("within_slo_ratio:Q", format=".2%")
    inside = (
        bars.mark_text(align="right", dx=-6, fontWeight="bold", fontSize=12)
        .encode(text=text, color=alt.value("white"))
        .transform_filter(alt.datum.within_slo_ratio >= mid)
    )
    outside = (
        bars.mark_text(align="left", dx=6, fontWeight="bold", fontSize=12)
        .encode(text=text, color=alt.value("#333"))
        .transform_filter(alt.datum.within_slo_ratio < mid)
    )
    layers = [bars, inside, outside]
    if obj is not None:
        rule = (
            alt.Chart(pd.DataFrame({"objective": [obj]}))
            .mark_rule(color="#333", strokeDash=[4, 3])
            .encode(x="objective:Q", tooltip=[alt.Tooltip("objective:Q", format=".2%")])
        )
        layers.append(rule)
    return alt.layer(*layers, title="SLO attainment by model").properties(
        width="container", height=130 + 38 * len(data)
    )


def forecast_band(
    forecasts: pd.DataFrame,
    actual: pd.DataFrame | None,
    actual_col: str,
    *,
    title: str = "",
    y_title: str = "",
) -> alt.Chart | None:
    """The forecast's lower..upper band and median line against the actual series."""
    has_fc = _plottable(forecasts, "target_ts", "value")
    has_actual = actual is not None and _plottable(actual, "ts", actual_col)
    if not has_fc and not has_actual:
        return None
    layers = []
    x = alt.X("t:T", axis=TIME_AXIS)
    legend_scale = alt.Scale(domain=["forecast", "actual"], range=["#f58518", "#4c78a8"])
    if has_fc:
        fc = forecasts.rename(columns={"target_ts": "t"})[["t", "value", "lower", "upper"]].copy()
        fc["series"] = "forecast"
        band = (
            alt.Chart(fc)
            .mark_area(opacity=0.22, color="#f58518", interpolate="monotone")
            .encode(x=x, y=alt.Y("lower:Q", title=y_title or None), y2="upper:Q")
        )
        line = (
            alt.Chart(fc)
            .mark_line(strokeDash=[5, 3], strokeWidth=2, interpolate="monotone")
            .encode(
                x=x,
                y="value:Q",
                color=alt.Color("series:N", scale=legend_scale, legend=alt.Legend(orient="top", title=None)),
                tooltip=[
                    alt.Tooltip("t:T", title="for (UTC)", format="%H:%M:%S"),
                    alt.Tooltip("value:Q", title="forecast", format=",.2f"),
                    alt.Tooltip("lower:Q", format=",.2f"),
                    alt.Tooltip("upper:Q", format=",.2f"),
                ],
            )
        )
        layers += [band, line]
    if has_actual:
        act = actual.rename(columns={"ts": "t", actual_col: "value"})[["t", "value"]].dropna().copy()
        act["series"] = "actual"
        layers.append(
            alt.Chart(act)
            .mark_line(strokeWidth=2.5, interpolate="monotone")
            .encode(
                x=x,
                y=alt.Y("value:Q", title=y_title or None),
                color=alt.Color("series:N", scale=legend_scale, legend=alt.Legend(orient="top", title=None)),
                tooltip=[
                    alt.Tooltip("t:T", title="time (UTC)", format="%H:%M:%S"),
                    alt.Tooltip("value:Q", format=",.2f"),
                ],
            )
        )
    return alt.layer(*layers, title=title or alt.Undefined).properties(width="container", height=HEIGHT)


def replicas_steps(
    decisions: pd.DataFrame, *, now: pd.Timestamp | None = None, title: str = "Desired vs current replicas"
) -> alt.Chart | None:
    """Step lines per model: desired (after the rails, solid) and current/observed (dashed).

    Each decision holds until the next one, so the last one is drawn on to `now` when given.
    """
    if decisions is None or decisions.empty:
        return None
    names = {"final": "desired", "current": "current", "observed_replicas": "observed"}
    cols = [c for c in names if c in decisions.columns and decisions[c].notna().any()]
    if not cols:
        return None
    data = decisions[["ts", "model", *cols]].sort_values("ts")
    if now is not None:
        last = data.groupby("model", as_index=False).tail(1).copy()
        last["ts"] = now
        data = pd.concat([data, last[last["ts"] > data["ts"].max()]], ignore_index=True)
    long = data.melt(id_vars=["ts", "model"], value_vars=cols, var_name="series", value_name="replicas")
    long = long.dropna(subset=["replicas"])
    if long.empty:
        return None
    long["series"] = long["series"].map(names)
    dashes = {"desired": [1, 0], "current": [6, 4], "observed": [2, 2]}
    present = [k for k in dashes if k in set(long["series"])]
    dash = alt.Scale(domain=present, range=[dashes[k] for k in present])
    return (
        alt.Chart(long, title=title)
        .mark_line(interpolate="step-after", strokeWidth=2.5, point=alt.OverlayMarkDef(size=30))
        .encode(
            x=alt.X("ts:T", axis=TIME_AXIS),
            y=alt.Y(
                "replicas:Q",
                title="replicas",
                axis=alt.Axis(tickMinStep=1, format="d"),
                scale=alt.Scale(domainMin=0, nice=True),
            ),
            color=alt.Color("model:N", legend=alt.Legend(orient="top", title=None)),
            strokeDash=alt.StrokeDash("series:N", scale=dash, legend=alt.Legend(orient="top", title=None)),
            tooltip=[
                alt.Tooltip("ts:T", title="time (UTC)", format="%H:%M:%S"),
                "model:N",
                "series:N",
                alt.Tooltip("replicas:Q", format="d"),
            ],
        )
        .properties(width="container", height=HEIGHT)
    )


def decisions_timeline(decisions: pd.DataFrame) -> alt.Chart | None:
    """Every decision as a dot per model over time, coloured by action; tooltips carry the reasons."""
    if not _plottable(decisions, "ts", "model"):
        return None
    data = decisions[["ts", "model", "action", "mode", "reasons", "message", "current", "final"]].copy()
    data["action"] = data["action"].fillna("none").replace("", "none")
    return (
        alt.Chart(data, title="Decisions")
        .mark_point(filled=True, size=90, opacity=0.85)
        .encode(
            x=alt.X("ts:T", axis=TIME_AXIS),
            y=alt.Y("model:N", title=None),
            color=alt.Color(
                "action:N",
                scale=_scale(ACTION_COLORS, sorted(data["action"].unique())),
                legend=alt.Legend(orient="top", title=None),
            ),
            shape=alt.Shape("mode:N", legend=alt.Legend(orient="top", title=None)),
            tooltip=[
                alt.Tooltip("ts:T", title="time (UTC)", format="%H:%M:%S"),
                "model:N",
                "action:N",
                "mode:N",
                alt.Tooltip("current:Q", format="d"),
                alt.Tooltip("final:Q", title="desired", format="d"),
                alt.Tooltip("reasons:N", title="reason codes"),
                "message:N",
            ],
        )
        .properties(width="container", height=130 + 36 * data["model"].nunique())
    )


def incident_timeline(incidents: pd.DataFrame) -> alt.Chart | None:
    """Incidents as bars from start to end (open ones reach now), one row per replica/metric."""
    if not _plottable(incidents, "start", "end"):
        return None
    data = incidents.copy()
    data["series"] = (
        data["replica"].fillna("").astype(str).replace("", "(fleet)") + " · " + data["metric"].astype(str)
    )
    return (
        alt.Chart(data, title="Incident timeline")
        .mark_bar(cornerRadius=3, height={"band": 0.6})
        .encode(
            x=alt.X("start:T", axis=TIME_AXIS),
            x2="end:T",
            y=alt.Y("series:N", title=None),
            color=alt.Color(
                "severity:N",
                scale=_scale(SEVERITY_COLORS, sorted(data["severity"].dropna().unique())),
                legend=alt.Legend(orient="top", title=None),
            ),
            opacity=alt.condition(alt.datum.state == "open", alt.value(1.0), alt.value(0.55)),
            tooltip=[
                "model:N",
                "replica:N",
                "metric:N",
                "severity:N",
                "state:N",
                alt.Tooltip("start:T", format="%H:%M:%S"),
                alt.Tooltip("end:T", format="%H:%M:%S"),
                alt.Tooltip("observed_value:Q", title="observed", format=",.3~f"),
                alt.Tooltip("expected_value:Q", title="expected", format=",.3~f"),
                alt.Tooltip("peak_score:Q", title="peak score", format=".2f"),
            ],
        )
        .properties(width="container", height=140 + 40 * data["series"].nunique())
    )


def expected_vs_observed(events: pd.DataFrame, metric: str) -> alt.LayerChart | None:
    """Events of one metric: a grey tick at the expected value, a dot at the observed one, a rule
    between them (one chart per metric: their units differ)."""
    if not _plottable(events, "ts", "observed_value", "expected_value", "metric"):
        return None
    data = events[events["metric"] == metric].dropna(subset=["observed_value", "expected_value"]).copy()
    if data.empty:
        return None
    base = alt.Chart().encode(x=alt.X("ts:T", axis=TIME_AXIS))
    tooltip = [
        alt.Tooltip("ts:T", title="time (UTC)", format="%H:%M:%S"),
        "model:N",
        "replica:N",
        "kind:N",
        alt.Tooltip("observed_value:Q", title="observed", format=",.4~g"),
        alt.Tooltip("expected_value:Q", title="expected", format=",.4~g"),
        alt.Tooltip("score:Q", format=".2f"),
    ]
    rule = base.mark_rule(color="#bbb", strokeWidth=2).encode(
        y=alt.Y("expected_value:Q", title=metric), y2="observed_value:Q"
    )
    expected = base.mark_tick(color="#79706e", thickness=3, size=16).encode(
        y="expected_value:Q", tooltip=tooltip
    )
    observed = base.mark_point(filled=True, size=90, opacity=1).encode(
        y="observed_value:Q",
        color=alt.Color(
            "severity:N",
            scale=_scale(SEVERITY_COLORS, sorted(data["severity"].dropna().unique())),
            legend=alt.Legend(orient="top", title=None),
        ),
        shape=alt.Shape("replica:N", legend=alt.Legend(orient="top", title=None)),
        tooltip=tooltip,
    )
    return alt.layer(
        rule, expected, observed, data=data, title=f"{metric}: expected (tick) vs observed (dot)"
    ).properties(width="container", height=HEIGHT)


def capacity_bars(models: pd.DataFrame) -> alt.Chart | None:
    """Per model: current load, forecast p90 and what the observed replicas can carry (rps)."""
    if models is None or models.empty:
        return None
    data = models.copy()
    data["carry_rps"] = data["capacity_rps"] * data["observed_replicas"]
    names = {"rate_rps": "load now", "forecast_p90_rps": "forecast p90", "carry_rps": "fleet capacity"}
    long = data.melt(id_vars=["model"], value_vars=list(names), var_name="series", value_name="rps").dropna(
        subset=["rps"]
    )
    if long.empty:
        return None
    long["series"] = long["series"].map(names)
    scale = alt.Scale(domain=list(names.values()), range=["#4c78a8", "#f58518", "#54a24b"])
    return (
        alt.Chart(long, title="Load vs capacity")
        .mark_bar(cornerRadiusEnd=3)
        .encode(
            y=alt.Y("model:N", title=None),
            yOffset=alt.YOffset("series:N", sort=list(names.values())),
            x=alt.X("rps:Q", title="requests/s"),
            color=alt.Color("series:N", scale=scale, legend=alt.Legend(orient="top", title=None)),
            tooltip=["model:N", "series:N", alt.Tooltip("rps:Q", format=",.2f")],
        )
        .properties(width="container", height=110 + 70 * long["model"].nunique())
    )


def actions_timeline(actions: pd.DataFrame) -> alt.Chart | None:
    """Actions taken over time per model, coloured by outcome."""
    if not _plottable(actions, "ts", "model"):
        return None
    data = actions[["ts", "model", "replica", "actuator", "action", "outcome", "error", "duration_ms"]].copy()
    data["outcome"] = data["outcome"].fillna("unknown")
    return (
        alt.Chart(data, title="Actions and outcomes")
        .mark_point(filled=True, size=110, shape="diamond")
        .encode(
            x=alt.X("ts:T", axis=TIME_AXIS),
            y=alt.Y("model:N", title=None),
            color=alt.Color(
                "outcome:N",
                scale=_scale(OUTCOME_COLORS, sorted(data["outcome"].unique())),
                legend=alt.Legend(orient="top", title=None),
            ),
            tooltip=[
                alt.Tooltip("ts:T", title="time (UTC)", format="%H:%M:%S"),
                "model:N",
                "replica:N",
                "actuator:N",
                "action:N",
                "outcome:N",
                "error:N",
                alt.Tooltip("duration_ms:Q", format=",.0f"),
            ],
        )
        .properties(width="container", height=120 + 36 * data["model"].nunique())
    )


def result_chart(df: pd.DataFrame, x: str | None, ys: Sequence[str], color: str | None) -> alt.Chart | None:
    """A chart of an arbitrary query result: lines over time, bars over categories."""
    if df is None or df.empty or x is None or not ys:
        return None
    y = ys[0]
    if color is None and len(ys) > 1:
        long = df.melt(id_vars=[x], value_vars=list(ys), var_name="column", value_name="value")
        y, color, data = "value", "column", long
    else:
        data = df[[c for c in dict.fromkeys([x, y, color]) if c]]
    temporal = pd.api.types.is_datetime64_any_dtype(df[x])
    tooltip = [alt.Tooltip(f"{x}:{'T' if temporal else 'N'}"), alt.Tooltip(f"{y}:Q", format=",.4~f")]
    if color:
        tooltip.append(alt.Tooltip(f"{color}:N"))
    enc = {
        "x": alt.X(f"{x}:T", axis=TIME_AXIS) if temporal else alt.X(f"{x}:N", sort=None, title=x),
        "y": alt.Y(f"{y}:Q", title=y),
        "tooltip": tooltip,
    }
    if color:
        enc["color"] = alt.Color(f"{color}:N", legend=alt.Legend(orient="top", title=None))
    base = alt.Chart(data)
    if temporal:
        mark = base.mark_line(interpolate="monotone", strokeWidth=2, point=alt.OverlayMarkDef(size=14))
    else:
        if color:
            enc["xOffset"] = alt.XOffset(f"{color}:N")
        mark = base.mark_bar(cornerRadiusEnd=2)
    return mark.encode(**enc).properties(width="container", height=280)


def with_rule(
    chart: alt.Chart | None, y_value: float | None, label: str
) -> alt.Chart | alt.LayerChart | None:
    """`chart` with a dashed horizontal line at `y_value` (e.g. the SLO), labelled at its right end."""
    if chart is None or y_value is None:
        return chart
    ref = pd.DataFrame({"y": [float(y_value)], "label": [f"{label} {y_value:g}"]})
    rule = (
        alt.Chart(ref)
        .mark_rule(color="#e45756", strokeDash=[6, 4], strokeWidth=1.5)
        .encode(y="y:Q", tooltip=[alt.Tooltip("label:N", title=label)])
    )
    text = (
        alt.Chart(ref)
        .mark_text(align="right", baseline="bottom", dy=-3, color="#e45756", fontSize=11)
        .encode(y="y:Q", x=alt.value("width"), text="label:N")
    )
    return alt.layer(chart, rule, text)
