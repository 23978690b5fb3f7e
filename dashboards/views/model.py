"""Model drill-down: latency, queue, batching, cache, tokens and GPU of one model, per replica."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from dashboards import charts, frames, ui
from dashboards import formatting as fmt

TIMES_MS = {
    "avg_request_ms": "request",
    "avg_queue_ms": "queue",
    "avg_compute_infer_ms": "compute (infer)",
    "avg_compute_input_ms": "compute (input)",
    "avg_compute_output_ms": "compute (output)",
}


def replicas_of(replicas: list[dict], model: str) -> pd.DataFrame:
    """Replicas serving `model` with their desired and observed state (pure)."""
    rows = []
    for r in replicas:
        if model not in (r.get("models") or []):
            continue
        spec = r.get("spec") or {}
        obs = r.get("observed") or {}
        rows.append(
            {
                "replica": r.get("replica"),
                "zone": r.get("zone"),
                "desired state": spec.get("desired_state"),
                "observed state": obs.get("state"),
                "ready": obs.get("ready"),
                "instances": spec.get("instance_count"),
                "weight": r.get("weight"),
                "open incidents": r.get("open_incidents"),
                "detail": obs.get("detail"),
            }
        )
    cols = [
        "replica",
        "zone",
        "desired state",
        "observed state",
        "ready",
        "instances",
        "weight",
        "open incidents",
        "detail",
    ]
    return pd.DataFrame(rows, columns=cols)


def _selected_model(models: list[dict]) -> str | None:
    names = sorted(m["model"] for m in models if m.get("model"))
    if not names:
        st.info("The API knows no models yet: start a fleet (`fleetpilot up`) and wait for telemetry.")
        return None
    if st.session_state.get("drill_model") not in names:
        st.session_state["drill_model"] = names[0]
    return st.selectbox("Model", names, key="drill_model")


def _body(model: str, per_replica: bool) -> None:
    api = ui.client()
    w = ui.window_s()
    step = ui.step_for(w)
    by = ("model", "target") if per_replica else ("model",)
    color = "target" if per_replica else None

    def series(name: str, **kw) -> pd.DataFrame:
        return frames.series_frame(api.series(name, since_s=w, step_s=step, model=model, by=by, **kw))

    info = next((m for m in api.models() if m.get("model") == model), {})
    lat = series("latency_p99")
    times = series("request_times")
    batch = series("batch_size")
    cache = series("cache_hit_ratio")
    ttft = series("ttft_p99")
    itl = series("itl_p99")
    serving = replicas_of(api.replicas(), model)
    # GPU telemetry has no model label: keep the GPUs of the replicas serving this model.
    gpu = frames.series_frame(api.series("gpu", since_s=w, step_s=step, by=("target",)))
    if not gpu.empty and "target" in gpu.columns and not serving.empty:
        gpu = gpu[gpu["target"].isin(serving["replica"])]

    slo_ms = info.get("slo_p99_ms")
    c = st.columns(6)
    p99 = info.get("p99_ms")
    c[0].metric(
        "p99 latency",
        fmt.ms(p99),
        delta=(f"SLO {fmt.ms(slo_ms)}" if fmt.known(slo_ms) else None),
        delta_color="inverse" if fmt.known(p99) and fmt.known(slo_ms) and p99 > slo_ms else "off",
        delta_arrow="off",
        border=True,
        height="stretch",
    )
    c[1].metric("Requests/s", fmt.number(info.get("rate_rps")), border=True, height="stretch")
    c[2].metric(
        "Avg queue time",
        fmt.ms(frames.mean_value(times, "avg_queue_ms", total=False)),
        border=True,
        height="stretch",
    )
    c[3].metric(
        "Avg batch size",
        fmt.number(frames.mean_value(batch, "avg_batch_size", total=False)),
        border=True,
        height="stretch",
    )
    c[4].metric(
        "Cache hit ratio",
        fmt.ratio_pct(frames.mean_value(cache, "cache_hit_ratio", total=False)),
        border=True,
        height="stretch",
    )
    c[5].metric(
        "Ready / desired",
        f"{info.get('ready_replicas', 0)} / {info.get('desired_replicas') if info.get('desired_replicas') is not None else fmt.NA}",
        border=True,
        height="stretch",
    )

    left, right = st.columns(2)
    with left:
        lat_chart = charts.time_series(lat, "p99_latency_ms", color=color, title="p99 latency", y_title="ms")
        ui.chart(
            charts.with_rule(lat_chart, slo_ms, "SLO"),
            "No latency histogram data for this model in the window.",
        )
    with right:
        if per_replica:
            ui.chart(
                charts.time_series(times, "avg_queue_ms", color=color, title="Queue time", y_title="ms"),
                "No request timing data in the window.",
            )
        else:
            ui.chart(
                charts.multi_series(
                    times, TIMES_MS, title="Where a request's time goes (average)", y_title="ms"
                ),
                "No request timing data in the window.",
            )
    left, right = st.columns(2)
    with left:
        ui.chart(
            charts.time_series(
                batch, "avg_batch_size", color=color, title="Batch size (inferences per execution)"
            ),
            "No batching data in the window.",
        )
    with right:
        ui.chart(
            charts.time_series(
                cache, "cache_hit_ratio", color=color, title="Response-cache hit ratio", y_format=".0%"
            ),
            "No response-cache lookups in the window (cache disabled for this model?).",
        )
    if not (ttft.empty and itl.empty):
        left, right = st.columns(2)
        with left:
            ui.chart(
                charts.time_series(
                    ttft, "ttft_p99_s", color=color, title="Time to first token p99", y_title="s"
                ),
                "No time-to-first-token data in the window.",
            )
        with right:
            ui.chart(
                charts.time_series(
                    itl, "itl_p99_s", color=color, title="Inter-token latency p99", y_title="s"
                ),
                "No inter-token latency data in the window.",
            )
    left, right = st.columns(2)
    with left:
        ui.chart(
            charts.time_series(
                gpu,
                "gpu_memory_used_bytes",
                color="target",
                title="GPU memory used",
                y_title="bytes",
                y_format=".3~s",
            ),
            "No GPU memory telemetry for the replicas serving this model.",
        )
    with right:
        ui.chart(
            charts.time_series(gpu, "gpu_power_w", color="target", title="GPU power", y_title="W"),
            "No GPU power telemetry for the replicas serving this model.",
        )

    st.subheader("Replicas serving this model")
    if serving.empty:
        st.info("No replica reports this model.")
    else:
        st.dataframe(serving, hide_index=True)


def _page() -> None:
    models = ui.client().models()
    model = _selected_model(models)
    if model is None:
        return
    per_replica = st.toggle("Per replica", value=False, key="drill_per_replica")
    ui.live(lambda: _body(model, per_replica))


def render() -> None:
    ui.header("Model drill-down")
    ui.guarded(_page)


if __name__ == "__main__":
    render()
