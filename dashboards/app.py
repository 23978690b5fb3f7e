"""fleetpilot SRE dashboards: `streamlit run dashboards/app.py` (or `fleetpilot dashboard`).

One module per page under dashboards/views/; data only through the control-plane HTTP API.
"""

from __future__ import annotations

from pathlib import Path

import streamlit as st

from dashboards import ui

HERE = Path(__file__).resolve().parent
PAGES = [
    ("views/overview.py", "Fleet overview", ":material/monitoring:", "overview"),
    ("views/model.py", "Model drill-down", ":material/query_stats:", "model"),
    ("views/anomalies.py", "Anomalies", ":material/crisis_alert:", "anomalies"),
    ("views/controller.py", "Controller", ":material/tune:", "controller"),
    ("views/capacity.py", "Capacity & cost", ":material/payments:", "capacity"),
    ("views/history.py", "History query", ":material/manage_search:", "history"),
]

st.set_page_config(page_title="fleetpilot", page_icon=":material/flight_takeoff:", layout="wide")
page = st.navigation(
    [
        st.Page(str(HERE / path), title=title, icon=icon, url_path=url, default=(url == "overview"))
        for path, title, icon, url in PAGES
    ]
)
ui.sidebar()
page.run()
