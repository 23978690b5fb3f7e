"""Capacity and cost: GPU-hours, cost per 1,000 inferences, energy, and load against capacity."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from dashboards import charts, frames, ui
from dashboards import formatting as fmt


def capacity_table(models: list[dict]) -> pd.DataFrame:
    """Per model: what the running replicas can carry against load and forecast (pure)."""
    rows = []
    for m in models:
        cap = m.get("capacity_rps")
        n = m.get("observed_replicas") or 0
        fleet = cap * n if fmt.known(cap) else None
        load = m.get("rate_rps")
        headroom = 1 - load / fleet if fmt.known(load) and fleet else None
        rows.append(
            {
                "model": m.get("model"),
                "replicas": n,
                "capacity rps/replica": cap,
                "fleet capacity rps": fleet,
                "load rps": load,
                "forecast p90 rps": m.get("forecast_p90_rps"),
                "headroom": headroom,
            }
        )
    cols = [
        "model",
        "replicas",
        "capacity rps/replica",
        "fleet capacity rps",
        "load rps",
        "forecast p90 rps",
        "headroom",
    ]
    return pd.DataFrame(rows, columns=cols)


def _body() -> None:
    api = ui.client()
    w = ui.window_s()
    cost = api.cost(since_s=w)
    price = cost.get("gpu_price_per_hour")
    st.caption(
        f"{fmt.window_label(w)} · GPU price {fmt.money(price)} per GPU-hour (set in the control plane's config)"
    )

    c = st.columns(4)
    c[0].metric(
        "GPU-hours",
        fmt.number(cost.get("gpu_hours")),
        help="Replica-hours on GPUs in the window.",
        border=True,
        height="stretch",
    )
    c[1].metric("Replica-hours", fmt.number(cost.get("replica_hours")), border=True, height="stretch")
    c[2].metric("Cost in window", fmt.money(cost.get("cost")), border=True, height="stretch")
    c[3].metric("Cost per hour", fmt.money(cost.get("cost_per_hour")), border=True, height="stretch")
    c = st.columns(4)
    c[0].metric("Inferences", fmt.number(cost.get("inferences")), border=True, height="stretch")
    c[1].metric(
        "Cost per 1,000 inferences",
        fmt.money(cost.get("cost_per_1k_inferences")),
        help="Cost in the window divided by the inferences served, times 1,000.",
        border=True,
        height="stretch",
    )
    energy = cost.get("energy_j_per_1k_inferences")
    c[2].metric(
        "Energy per 1,000 inferences",
        fmt.energy_j(energy) if fmt.known(energy) else "power not reported",
        help="GPU energy counters (Triton nv_energy_consumption or DCGM) per 1,000 inferences.",
        border=True,
        height="stretch",
    )
    c[3].metric(
        "Inferences per GPU-hour",
        fmt.number(cost["inferences"] / cost["gpu_hours"])
        if fmt.known(cost.get("inferences")) and fmt.known(cost.get("gpu_hours")) and cost["gpu_hours"] > 0
        else fmt.NA,
        border=True,
        height="stretch",
    )

    models = api.models()
    left, right = st.columns(2)
    with left:
        ui.chart(
            charts.capacity_bars(
                pd.DataFrame(
                    models,
                    columns=["model", "rate_rps", "forecast_p90_rps", "capacity_rps", "observed_replicas"],
                )
            ),
            "No capacity figures yet: profile a model (`fleetpilot profile`) or wait for telemetry.",
        )
    with right:
        en = frames.series_frame(api.series("energy", since_s=w, step_s=ui.step_for(w), by=()))
        ui.chart(
            charts.time_series(
                en, "energy_j_per_1k_inferences", title="Energy per 1,000 inferences", y_title="J"
            ),
            "No GPU energy telemetry: energy per inference needs a GPU power/energy exporter.",
        )
    st.subheader("Headroom per model")
    st.dataframe(
        capacity_table(models),
        hide_index=True,
        column_config={
            "capacity rps/replica": st.column_config.NumberColumn(format="%.2f"),
            "fleet capacity rps": st.column_config.NumberColumn(format="%.2f"),
            "load rps": st.column_config.NumberColumn(format="%.2f"),
            "forecast p90 rps": st.column_config.NumberColumn(format="%.2f"),
            "headroom": st.column_config.NumberColumn(format="percent"),
        },
    )


def render() -> None:
    ui.header("Capacity & cost")
    ui.live(_body)


if __name__ == "__main__":
    render()
