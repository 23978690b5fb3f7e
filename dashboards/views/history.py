"""History: read-only SQL over the telemetry store through the API; table, chart, CSV download."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from dashboards import charts, frames, ui
from dashboards.client import ApiError, ApiUnavailable

EXAMPLES = {
    "Requests/s per model, last hour (1-minute rollup)": (
        "SELECT ts, model, sum(increase) / 60 AS requests_per_s\n"
        "FROM fleet_1m\n"
        "WHERE metric = 'nv_inference_request_success' AND ts >= now() - INTERVAL 1 HOUR\n"
        "GROUP BY ts, model\n"
        "ORDER BY ts, model"
    ),
    "Busiest metrics, last hour": (
        "SELECT metric, count() AS samples\n"
        "FROM samples\n"
        "WHERE ts >= now() - INTERVAL 1 HOUR\n"
        "GROUP BY metric\n"
        "ORDER BY samples DESC\n"
        "LIMIT 20"
    ),
    "Decisions by reason code, last day": (
        "SELECT arrayJoin(reason_codes) AS reason, count() AS decisions\n"
        "FROM decisions\n"
        "WHERE ts >= now() - INTERVAL 1 DAY\n"
        "GROUP BY reason\n"
        "ORDER BY decisions DESC"
    ),
    "Anomaly events per replica and severity, last day": (
        "SELECT replica, severity, count() AS events\n"
        "FROM anomaly_events\n"
        "WHERE ts >= now() - INTERVAL 1 DAY\n"
        "GROUP BY replica, severity\n"
        "ORDER BY replica, severity"
    ),
}
DEFAULT_SQL = next(iter(EXAMPLES.values()))


def csv_bytes(df: pd.DataFrame) -> bytes:
    """The result as UTF-8 CSV (ISO timestamps, no index)."""
    return df.to_csv(index=False, date_format="%Y-%m-%dT%H:%M:%S.%fZ").encode("utf-8")


def _use_example() -> None:
    st.session_state["history_sql"] = EXAMPLES[st.session_state["history_example"]]


def _run(sql: str, max_rows: int) -> None:
    try:
        result = ui.client().query(sql, max_rows=max_rows)
    except ApiError as exc:
        st.session_state.pop("history_result", None)
        st.session_state["history_error"] = f"The query was refused ({exc.status_code}): {exc.detail}"
        return
    st.session_state.pop("history_error", None)
    st.session_state["history_result"] = result


def _show(result: dict) -> None:
    df = frames.query_frame(result)
    note = " (truncated at the row limit)" if result.get("truncated") else ""
    st.caption(f"{result.get('row_count', len(df))} rows in {result.get('elapsed_ms', 0):.0f} ms{note}")
    if result.get("truncated"):
        st.warning("The result was cut at the row limit; add a LIMIT or aggregate to see everything.")
    st.dataframe(df, hide_index=True)
    x, ys, color = frames.chart_axes(df)
    if x is not None and ys:
        c1, c2, c3 = st.columns(3)
        cols = list(df.columns)
        x = c1.selectbox("x", cols, index=cols.index(x), key="history_x")
        ys_all = [c for c in frames.chart_axes(df)[1] if c != x] or ys
        y = c2.selectbox("y", ys_all, key="history_y")
        color_opts = ["(none)", *[c for c in cols if c not in (x, y)]]
        color_sel = c3.selectbox(
            "colour",
            color_opts,
            index=color_opts.index(color) if color in color_opts else 0,
            key="history_color",
        )
        ui.chart(
            charts.result_chart(df, x, [y], None if color_sel == "(none)" else color_sel),
            "Nothing to chart in this result.",
        )
    else:
        st.caption("No numeric column to chart.")
    st.download_button(
        "Download CSV",
        data=csv_bytes(df),
        file_name="fleetpilot_query.csv",
        mime="text/csv",
        icon=":material/download:",
        on_click="ignore",
    )


def _page() -> None:
    s = ui.settings()
    if "history_sql" not in st.session_state:
        st.session_state["history_sql"] = DEFAULT_SQL
    st.selectbox("Examples", list(EXAMPLES), key="history_example", on_change=_use_example)
    sql = st.text_area("SQL (one read-only SELECT)", key="history_sql", height=160)
    c1, c2 = st.columns([1, 4], vertical_alignment="bottom")
    max_rows = c1.number_input(
        "Max rows",
        min_value=1,
        max_value=s.query_max_rows,
        value=min(1000, s.query_max_rows),
        key="history_max_rows",
    )
    if c2.button("Run query", type="primary", icon=":material/play_arrow:", key="history_run"):
        _run(sql, int(max_rows))
    if st.session_state.get("history_error"):
        st.error(st.session_state["history_error"])
    elif st.session_state.get("history_result") is not None:
        _show(st.session_state["history_result"])


def render() -> None:
    ui.header(
        "History query",
        "Read-only SQL over the telemetry store, through the API (tables: samples, "
        "samples_1m, samples_1h, fleet_1m, fleet_1h, decisions, actions, anomaly_events, forecasts).",
    )
    try:
        _page()
    except ApiUnavailable as exc:
        ui.show_failure(exc)


if __name__ == "__main__":
    render()
