"""Controller: decisions with reason codes, desired vs observed, forecast vs actual, actions, overrides."""

from __future__ import annotations

from typing import Any

import pandas as pd
import streamlit as st

from dashboards import charts, frames, ui
from dashboards import formatting as fmt
from dashboards.client import ApiError

ACTIONS = ["pause", "resume", "pin", "unpin", "mode"]
MODES = ["active", "advisory", "off"]
DECISION_COLUMNS = [
    "ts",
    "model",
    "policy",
    "mode",
    "action",
    "current",
    "final",
    "reasons",
    "message",
    "replica",
]
ACTION_COLUMNS = [
    "ts",
    "model",
    "replica",
    "actuator",
    "action",
    "mode",
    "outcome",
    "error",
    "duration_ms",
    "params",
]
# Forecast metric -> (series name, column) of the actual values it predicts.
ACTUALS = {"token": ("token_rate", "generation_tokens_per_s")}
DEFAULT_ACTUAL = ("request_rate", "requests_per_s")


def model_state_table(models: list[dict]) -> pd.DataFrame:
    """Per model: mode, overrides in force, desired vs observed replicas and the last decision (pure)."""
    rows = []
    for m in models:
        last = m.get("last_decision") or {}
        codes = last.get("reason_codes") or []
        rows.append(
            {
                "model": m.get("model"),
                "mode": m.get("mode"),
                "paused": bool(m.get("paused")),
                "pinned": m.get("pinned_replicas"),
                "desired": m.get("desired_replicas"),
                "observed": m.get("observed_replicas"),
                "ready": m.get("ready_replicas"),
                "load rps": m.get("rate_rps"),
                "forecast p90 rps": m.get("forecast_p90_rps"),
                "capacity rps/replica": m.get("capacity_rps"),
                "last decision": last.get("action"),
                "reason codes": ", ".join(codes) if isinstance(codes, list) else str(codes),
            }
        )
    cols = [
        "model",
        "mode",
        "paused",
        "pinned",
        "desired",
        "observed",
        "ready",
        "load rps",
        "forecast p90 rps",
        "capacity rps/replica",
        "last decision",
        "reason codes",
    ]
    return pd.DataFrame(rows, columns=cols)


def overrides_table(overrides: list[dict]) -> pd.DataFrame:
    cols = ["ts", "model", "action", "replicas", "mode", "reason", "expires_at", "source", "override_id"]
    df = pd.DataFrame(overrides, columns=cols)
    for c in ("ts", "expires_at"):
        df[c] = pd.to_datetime(df[c], utc=True, errors="coerce", format="ISO8601")
    return df


def actual_for(metric: str) -> tuple[str, str]:
    """Which series holds the actual values of a forecast metric (request rate unless tokens)."""
    for key, target in ACTUALS.items():
        if key in metric:
            return target
    return DEFAULT_ACTUAL


def override_request(
    model: str, action: str, replicas: int, mode: str, reason: str, ttl_min: float
) -> dict[str, Any]:
    """The keyword arguments of ApiClient.post_override from the form's values (pure)."""
    if action not in ACTIONS:
        raise ValueError(f"action must be one of {ACTIONS} (got {action!r})")
    return {
        "model": model,
        "action": action,
        "reason": reason.strip(),
        "replicas": int(replicas) if action == "pin" else None,
        "mode": mode if action == "mode" else None,
        "ttl_s": float(ttl_min) * 60.0 if ttl_min and ttl_min > 0 else None,
    }


def _status_row() -> dict:
    status = ui.client().status()
    ctl = status.get("controller") or {}
    c = st.columns(5)
    running = bool(ctl.get("running"))
    c[0].metric(
        "Control loop",
        "running" if running else "stopped",
        delta=(f"role: {ctl.get('role')}" if running else "API only"),
        delta_color="off",
        delta_arrow="off",
        border=True,
        height="stretch",
    )
    c[1].metric("Ticks", fmt.number(ctl.get("tick_count")), border=True, height="stretch")
    c[2].metric(
        "Last tick", str(ctl.get("last_tick_at") or fmt.NA)[11:19] or fmt.NA, border=True, height="stretch"
    )
    c[3].metric(
        "Tick interval",
        fmt.seconds(ctl.get("interval_s")) if running else fmt.NA,
        border=True,
        height="stretch",
    )
    c[4].metric("Active overrides", len(status.get("overrides") or []), border=True, height="stretch")
    if ctl.get("last_error"):
        st.warning(f"Last control-loop error: {ctl['last_error']}", icon=":material/warning:")
    return status


def _decisions_body() -> None:
    api = ui.client()
    w = ui.window_s()
    now = pd.to_datetime(api.status().get("now"), utc=True, errors="coerce")
    st.dataframe(
        model_state_table(api.models()),
        hide_index=True,
        column_config={
            "load rps": st.column_config.NumberColumn(format="%.2f"),
            "forecast p90 rps": st.column_config.NumberColumn(format="%.2f"),
            "capacity rps/replica": st.column_config.NumberColumn(format="%.2f"),
        },
    )
    dec = frames.decisions_frame(api.decisions(policy="replicas", since_s=w, limit=2000))
    all_dec = frames.decisions_frame(api.decisions(since_s=w, limit=500))
    left, right = st.columns(2)
    with left:
        ui.chart(charts.replicas_steps(dec, now=now), "No replica decisions in this window.")
    with right:
        ui.chart(charts.decisions_timeline(all_dec), "No decisions in this window.")
    st.subheader("Decisions and reason codes")
    if all_dec.empty:
        st.info("No decisions in this window: the control loop has not run or every model is off.")
    else:
        st.dataframe(
            all_dec[DECISION_COLUMNS],
            hide_index=True,
            column_config={"ts": st.column_config.DatetimeColumn("time (UTC)", format="YYYY-MM-DD HH:mm:ss")},
        )


def _forecast_body(model: str) -> None:
    api = ui.client()
    w = ui.window_s()
    fc = frames.forecasts_frame(api.forecasts(model=model, since_s=w))
    metrics = sorted(fc["metric"].dropna().unique()) if not fc.empty else []
    metric = metrics[0] if metrics else ""
    if len(metrics) > 1:
        metric = st.selectbox("Forecast metric", metrics, key="ctl_forecast_metric")
    fc = fc[fc["metric"] == metric] if metric else fc
    name, col = actual_for(metric)
    actual = frames.series_frame(api.series(name, since_s=w, step_s=ui.step_for(w), model=model))
    ui.chart(
        charts.forecast_band(fc, actual, col, title=f"{model}: forecast band vs actual", y_title=col),
        "No forecasts and no load data for this model in the window.",
    )
    if not fc.empty:
        st.caption(
            f"{len(fc)} forecasts by {', '.join(sorted(fc['forecaster'].dropna().unique()))}; "
            "the band is lower..upper, the dashed line the point forecast for that time."
        )


def _actions_body() -> None:
    api = ui.client()
    acts = frames.actions_frame(api.actions(since_s=ui.window_s(), limit=1000))
    ui.chart(charts.actions_timeline(acts), "No actions in this window.")
    if not acts.empty:
        ok = (acts["outcome"] == "ok").mean()
        st.caption(f"{len(acts)} actions, {fmt.ratio_pct(ok)} ok.")
        st.dataframe(
            acts[ACTION_COLUMNS],
            hide_index=True,
            column_config={"ts": st.column_config.DatetimeColumn("time (UTC)", format="YYYY-MM-DD HH:mm:ss")},
        )


def _overrides(models: list[str]) -> None:
    left, right = st.columns([2, 3], gap="large")
    with left:
        st.markdown("**New override**")
        with st.form("override_form", clear_on_submit=False):
            model = st.selectbox(
                "Model",
                ["*", *models],
                format_func=lambda m: "all models (*)" if m == "*" else m,
                key="ov_model",
            )
            action = st.selectbox(
                "Action",
                ACTIONS,
                help="pause: no scaling; pin: hold a replica count; mode: active / advisory / off.",
                key="ov_action",
            )
            c1, c2 = st.columns(2)
            replicas = c1.number_input(
                "Replicas (pin)", min_value=0, max_value=1000, value=1, step=1, key="ov_replicas"
            )
            mode = c2.selectbox("Mode (mode)", MODES, index=1, key="ov_mode")
            reason = st.text_input("Reason", placeholder="why (kept in the audit trail)", key="ov_reason")
            ttl_min = st.number_input(
                "Expires after (minutes, 0 = never)", min_value=0.0, value=0.0, step=5.0, key="ov_ttl_min"
            )
            token = st.text_input(
                "API token", type="password", help="FLEETPILOT_API_TOKEN of the control plane", key="ov_token"
            )
            submitted = st.form_submit_button("Apply override", type="primary", key="ov_submit")
        if submitted:
            try:
                kw = override_request(model, action, replicas, mode, reason, ttl_min)
                ov = ui.client().post_override(token, **kw)
                st.success(
                    f"Override stored: {ov.get('action')} on {ov.get('model')} ({ov.get('override_id')}).",
                    icon=":material/check_circle:",
                )
            except ApiError as exc:
                if exc.status_code in (401, 403):
                    st.error(f"Not allowed ({exc.status_code}): {exc.detail}", icon=":material/lock:")
                else:
                    st.error(f"The API refused the override ({exc.status_code}): {exc.detail}")
    with right:
        st.markdown("**Active overrides**")
        ovs = overrides_table(ui.client().overrides())
        if ovs.empty:
            st.info("No override in force: the controller decides on its own.")
        else:
            st.dataframe(
                ovs,
                hide_index=True,
                column_config={
                    "ts": st.column_config.DatetimeColumn("set at (UTC)", format="YYYY-MM-DD HH:mm:ss"),
                    "expires_at": st.column_config.DatetimeColumn(
                        "expires (UTC)", format="YYYY-MM-DD HH:mm:ss"
                    ),
                },
            )


def _page() -> None:
    _status_row()
    models = sorted(m["model"] for m in ui.client().models() if m.get("model"))
    tabs = st.tabs(["Replicas & decisions", "Forecast vs actual", "Actions", "Overrides & mode"])
    with tabs[0]:
        ui.live(_decisions_body)
    with tabs[1]:
        if models:
            model = st.selectbox("Model", models, key="ctl_forecast_model")
            ui.live(lambda: _forecast_body(model))
        else:
            st.info("The API knows no models yet.")
    with tabs[2]:
        ui.live(_actions_body)
    with tabs[3]:
        _overrides(models)


def render() -> None:
    ui.header("Controller", "What the control loop decided, why, and what it did; operator overrides.")
    ui.guarded(_page)


if __name__ == "__main__":
    render()
