"""Anomalies: open incidents, their timeline, and expected vs observed for each event."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from dashboards import charts, frames, ui
from dashboards import formatting as fmt

EVENT_COLUMNS = [
    "ts",
    "kind",
    "severity",
    "model",
    "replica",
    "zone",
    "metric",
    "observed_value",
    "expected_value",
    "score",
    "detector",
    "reasons",
]


def _filters() -> tuple[str | None, bool]:
    models = sorted(m["model"] for m in ui.client().models() if m.get("model"))
    left, right = st.columns([3, 1])
    model = left.selectbox("Model", ["all models", *models], key="anomaly_model")
    open_only = right.toggle("Open incidents only", value=False, key="anomaly_open_only")
    return (None if model == "all models" else model), open_only


def _body(model: str | None, open_only: bool) -> None:
    api = ui.client()
    w = ui.window_s()
    answer = api.anomalies(model=model, state="all", since_s=w, limit=1000)
    events = frames.events_frame(answer.get("events") or [])
    open_now = frames.events_frame(answer.get("open") or [])
    # Open incidents' bars run to the API's "now" (its clock, not this machine's).
    now = pd.to_datetime(api.status().get("now"), utc=True, errors="coerce")
    if pd.isna(now):
        now = pd.Timestamp.now(tz="UTC")
    incidents = frames.incidents_frame(events, now)
    if open_only and not incidents.empty:
        incidents = incidents[incidents["state"] == "open"]

    c = st.columns(4)
    c[0].metric("Open incidents", len(open_now), border=True, height="stretch")
    crit = int((open_now["severity"] == "critical").sum()) if not open_now.empty else 0
    c[1].metric("Critical (open)", crit, border=True, height="stretch")
    c[2].metric(
        f"Incidents ({fmt.window_label(w)})",
        len(frames.incidents_frame(events, now)),
        border=True,
        height="stretch",
    )
    c[3].metric("Events", len(events), border=True, height="stretch")

    if not open_now.empty:
        st.subheader("Open now")
        st.dataframe(
            open_now[
                [
                    "ts",
                    "severity",
                    "model",
                    "replica",
                    "metric",
                    "observed_value",
                    "expected_value",
                    "reasons",
                ]
            ],
            hide_index=True,
            column_config={"ts": st.column_config.DatetimeColumn("since", format="HH:mm:ss")},
        )

    ui.chart(charts.incident_timeline(incidents), "No incidents in this window.")
    shown = events if not open_only else events[events["incident_id"].isin(incidents["incident_id"])]
    metrics = sorted(shown["metric"].dropna().unique()) if not shown.empty else []
    if not metrics:
        st.info("No anomaly events to compare in this window.", icon=":material/hourglass_empty:")
    for i in range(0, len(metrics), 2):
        for col, metric in zip(st.columns(2), metrics[i : i + 2], strict=False):
            with col:
                ui.chart(charts.expected_vs_observed(shown, metric), f"No {metric} events.")

    st.subheader("Events")
    if events.empty:
        st.info("No anomaly events in this window.")
    else:
        st.dataframe(
            shown[EVENT_COLUMNS],
            hide_index=True,
            column_config={
                "ts": st.column_config.DatetimeColumn("time (UTC)", format="YYYY-MM-DD HH:mm:ss"),
                "score": st.column_config.ProgressColumn(min_value=0.0, max_value=1.0, format="%.2f"),
            },
        )


def _page() -> None:
    model, open_only = _filters()
    ui.live(lambda: _body(model, open_only))


def render() -> None:
    ui.header("Anomalies", "Incidents open, update and close; each event shows what the detectors expected.")
    ui.guarded(_page)


if __name__ == "__main__":
    render()
