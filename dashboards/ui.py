"""Streamlit pieces every page shares: settings, the API client, the sidebar, error display.

The dashboards read data only through the control-plane HTTP API; the API URL comes from
FLEETPILOT_API_URL, else `dashboard.api_url`, else http://<bind_host>:<api.port>.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

import altair as alt
import streamlit as st

from controlplane.config import ConfigError, load_settings
from dashboards import formatting as fmt
from dashboards.client import ApiClient, ApiError, ApiUnavailable
from dashboards.settings import DashboardSettings, resolve

# Window (s) -> bucket step (s): about 60-100 points per chart, aligned to the rollups from 1 h up.
# Steps are multiples of 30 s so that 5 s and 10 s scrapes land evenly in every bucket.
WINDOWS_S = {900: 30, 3600: 60, 6 * 3600: 300, 86400: 900, 7 * 86400: 3600}
# Headline rates ("now") come from the last few complete minutes, whatever the window.
RECENT_S = 300


def step_for(window_s: int) -> int:
    """The bucket step for a window: the listed one, else about 60 points rounded to a minute."""
    if window_s in WINDOWS_S:
        return WINDOWS_S[window_s]
    step = max(30, window_s // 60)
    return step - step % 60 if step >= 60 else step - step % 30


def settings() -> DashboardSettings:
    """The dashboard settings; on a bad config, a clear error on the page and a stop."""
    try:
        return resolve(load_settings(), os.environ)
    except ConfigError as exc:
        st.error(f"The fleetpilot configuration is invalid: {exc}")
        st.stop()
        raise  # unreachable: st.stop() raises


@st.cache_resource(show_spinner=False)
def _client(url: str, timeout_s: float) -> ApiClient:
    return ApiClient(url, timeout_s=timeout_s)


def client() -> ApiClient:
    s = settings()
    return _client(s.api_url, s.request_timeout_s)


def window_s() -> int:
    default = settings().default_window_s
    return int(st.session_state.get("window_s", default))


def refresh_every() -> float | None:
    """run_every for live fragments: the configured period, or None when auto-refresh is off."""
    if not st.session_state.get("auto_refresh", True):
        return None
    return settings().refresh_interval_s


def sidebar() -> None:
    s = settings()
    options = sorted({*WINDOWS_S, s.default_window_s})
    if "window_s" not in st.session_state:
        st.session_state["window_s"] = s.default_window_s
    with st.sidebar:
        st.selectbox("Time window", options, format_func=fmt.window_label, key="window_s")
        st.toggle(f"Auto-refresh every {fmt.seconds(s.refresh_interval_s)}", value=True, key="auto_refresh")
        st.caption(f"API: `{s.api_url}`")


def show_failure(exc: Exception) -> None:
    """A clear message for an API failure: what happened, the URL, and what to run."""
    if isinstance(exc, ApiUnavailable):
        st.error(
            f"**The fleetpilot API is not reachable at {exc.url}** ({exc.reason}).\n\n"
            "Start the control plane with `fleetpilot up` (it serves the API), or point the dashboard "
            "at a running one with `FLEETPILOT_API_URL` / `dashboard.api_url`.",
            icon=":material/cloud_off:",
        )
    elif isinstance(exc, ApiError):
        st.error(f"The API answered **{exc.status_code}**: {exc.detail}", icon=":material/error:")
    else:  # pragma: no cover - guarded() only passes the two API errors
        st.error(str(exc))


def guarded(render: Callable[[], Any]) -> Any:
    """Run a page body; API failures become a message on the page, never a stack trace."""
    try:
        return render()
    except (ApiUnavailable, ApiError) as exc:
        show_failure(exc)
        return None


def chart(c: alt.Chart | alt.LayerChart | alt.FacetChart | None, empty: str) -> None:
    if c is None:
        st.info(empty, icon=":material/hourglass_empty:")
    else:
        st.altair_chart(c, width="stretch")


def header(title: str, caption: str = "") -> None:
    st.title(title)
    if caption:
        st.caption(caption)


def live(body: Callable[[], Any]) -> None:
    """Render `body` in a fragment that re-runs every refresh period (API failures shown, not raised)."""

    @st.fragment(run_every=refresh_every())
    def _live() -> None:
        guarded(body)

    _live()
