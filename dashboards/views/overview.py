"""Fleet overview: SLO attainment and burn, load, tokens, GPU, cost and incidents at a glance."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from dashboards import charts, frames, ui
from dashboards import formatting as fmt


def models_table(models: list[dict]) -> pd.DataFrame:
    """The per-model summary table (pure: API rows in, display frame out)."""
    rows = []
    for m in models:
        rows.append(
            {
                "model": m.get("model"),
                "mode": ("paused" if m.get("paused") else m.get("mode")),
                "replicas ready": m.get("ready_replicas"),
                "replicas observed": m.get("observed_replicas"),
                "replicas desired": m.get("desired_replicas"),
                "requests/s": m.get("rate_rps"),
                "p99 ms": m.get("p99_ms"),
                "SLO p99 ms": m.get("slo_p99_ms"),
                "open incidents": m.get("open_incidents"),
            }
        )
    cols = [
        "model",
        "mode",
        "replicas ready",
        "replicas observed",
        "replicas desired",
        "requests/s",
        "p99 ms",
        "SLO p99 ms",
        "open incidents",
    ]
    return pd.DataFrame(rows, columns=cols)


def spark(df: pd.DataFrame, column: str) -> list[float] | None:
    tot = frames.fleet_total(df, column).dropna(subset=[column])
    return [float(v) for v in tot[column].tail(40)] if len(tot) > 1 else None


def _body() -> None:
    api = ui.client()
    w = ui.window_s()
    step = ui.step_for(w)
    status = api.status()
    now = pd.to_datetime(status.get("now"), utc=True, errors="coerce")
    slo = api.slo(since_s=w)
    cost = api.cost(since_s=w)
    # Rates only over finished buckets: the current one would read low and look like a drop.
    rr = frames.complete_buckets(
        frames.series_frame(api.series("request_rate", since_s=w, step_s=step)), step, now
    )
    tok = frames.complete_buckets(
        frames.series_frame(api.series("token_rate", since_s=w, step_s=step)), step, now
    )
    gpu = frames.series_frame(api.series("gpu", since_s=w, step_s=step, by=()))
    # "Now" figures: the last few complete minutes, the same whatever window is picked.
    recent_rr = frames.complete_buckets(
        frames.series_frame(api.series("request_rate", since_s=ui.RECENT_S, step_s=60)), 60, now
    )
    recent_tok = frames.complete_buckets(
        frames.series_frame(api.series("token_rate", since_s=ui.RECENT_S, step_s=60)), 60, now
    )
    summary = frames.slo_summary(slo)

    ctl = status.get("controller") or {}
    role = ctl.get("role", "none")
    st.caption(
        f"{fmt.window_label(w)} · updated {str(status.get('now', ''))[11:19]} UTC · controller "
        f"{'running as ' + role if ctl.get('running') else 'not running'} · store {status.get('store', {}).get('kind', '?')}"
    )

    objective = summary["objective_ratio"]
    att = summary["attainment_ratio"]
    burn = summary["worst_burn_rate"]
    c = st.columns(4)
    c[0].metric(
        "SLO attainment",
        fmt.ratio_pct(att, 2),
        delta=(
            f"{(att - objective) * 100:+.2f} pts vs {fmt.ratio_pct(objective, 1)}"
            if fmt.known(att) and fmt.known(objective)
            else None
        ),
        delta_color="normal",
        help="Share of requests within each model's p99 latency SLO, weighted by requests.",
        border=True,
        height="stretch",
    )
    c[1].metric(
        "Error-budget burn (worst model)",
        f"{burn:.2f}×" if fmt.known(burn) else fmt.NA,
        delta=(
            "over budget" if fmt.known(burn) and burn > 1 else ("within budget" if fmt.known(burn) else None)
        ),
        delta_color="inverse" if fmt.known(burn) and burn > 1 else "normal",
        delta_arrow="off",
        help="(1 - within SLO) / (1 - objective): 1× spends the budget exactly over the window.",
        border=True,
        height="stretch",
    )
    c[2].metric(
        "Requests/s",
        fmt.rate_per_s(frames.mean_value(recent_rr, "requests_per_s")),
        help="Successful requests per second, all models, over the last complete minutes.",
        chart_data=spark(rr, "requests_per_s"),
        chart_type="area",
        border=True,
        height="stretch",
    )
    c[3].metric(
        "Tokens/s",
        fmt.rate_per_s(frames.mean_value(recent_tok, "generation_tokens_per_s"), "tok/s"),
        help="Generated tokens per second (vLLM-style token counters), over the last complete minutes.",
        chart_data=spark(tok, "generation_tokens_per_s"),
        chart_type="area",
        border=True,
        height="stretch",
    )
    c = st.columns(4)
    gpu_util = frames.mean_value(gpu, "gpu_utilization_ratio", total=False)
    c[0].metric(
        "GPU utilisation",
        fmt.ratio_pct(gpu_util) if fmt.known(gpu_util) else "no GPU data",
        help="Average over GPUs and the window (Triton / DCGM / NVML telemetry).",
        chart_data=spark(gpu, "gpu_utilization_ratio"),
        border=True,
        height="stretch",
    )
    c[1].metric(
        "Cost per hour",
        fmt.money(cost.get("cost_per_hour")),
        help=f"At {fmt.money(cost.get('gpu_price_per_hour'))} per GPU-hour; {fmt.number(cost.get('gpu_hours'))} GPU-hours in the window.",
        border=True,
        height="stretch",
    )
    open_inc = int(status.get("open_incidents") or 0)
    c[2].metric(
        "Open incidents",
        open_inc,
        delta=("needs a look" if open_inc else "all clear"),
        delta_color="inverse" if open_inc else "normal",
        delta_arrow="off",
        border=True,
        height="stretch",
    )
    c[3].metric(
        "Replicas ready",
        f"{status.get('replicas_ready', 0)} / {status.get('replicas', 0)}",
        help=f"{status.get('models', 0)} models; ready replicas / replicas known to the control plane.",
        border=True,
        height="stretch",
    )

    left, right = st.columns(2)
    with left:
        ui.chart(
            charts.time_series(
                rr, "requests_per_s", color="model", title="Requests/s by model", y_title="req/s", area=True
            ),
            "No request telemetry in this window.",
        )
    with right:
        ui.chart(
            charts.time_series(
                tok,
                "generation_tokens_per_s",
                color="model",
                title="Generated tokens/s",
                y_title="tok/s",
                area=True,
            ),
            "No token telemetry in this window (only LLM models report tokens).",
        )
    left, right = st.columns(2)
    with left:
        ui.chart(
            charts.slo_bars(pd.DataFrame(slo.get("models") or []), objective),
            "No latency histogram data yet to compute SLO attainment.",
        )
    with right:
        ui.chart(
            charts.time_series(
                gpu, "gpu_utilization_ratio", title="GPU utilisation", y_title="utilisation", y_format=".0%"
            ),
            "No GPU telemetry: the replicas run on CPU or no GPU exporter is scraped.",
        )

    st.subheader("Models")
    st.dataframe(
        models_table(api.models()),
        hide_index=True,
        column_config={
            "requests/s": st.column_config.NumberColumn(format="%.2f"),
            "p99 ms": st.column_config.NumberColumn(format="%.1f"),
            "SLO p99 ms": st.column_config.NumberColumn(format="%.0f"),
        },
    )


def render() -> None:
    ui.header("Fleet overview")
    ui.live(_body)


if __name__ == "__main__":
    render()
