"""Dashboards on an API whose store holds nothing yet: every page says "no data", nothing breaks."""

from __future__ import annotations

from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from tests.support.api_seed import free_port, running_api

APP = str(Path(__file__).resolve().parents[2] / "dashboards" / "app.py")


@pytest.fixture(scope="module")
def empty_api(tmp_path_factory):
    with running_api(
        tmp_path_factory.mktemp("dash_empty"), port=free_port(range(18660, 18690)), seed=False
    ) as api:
        yield api


@pytest.mark.parametrize("page", [None, "model", "anomalies", "controller", "capacity"])
def test_pages_without_data_show_unknown_not_zero(empty_api, monkeypatch, page):
    monkeypatch.setenv("FLEETPILOT_API_URL", empty_api.base_url)
    at = AppTest.from_file(APP, default_timeout=120).run()
    if page:
        at.switch_page(f"views/{page}.py").run()
    assert not at.exception, [e.value for e in at.exception]
    assert not at.error, [e.value for e in at.error]
    assert at.info  # "no data" explained on the page
    assert not at.get("vega_lite_chart")  # no empty chart pretending to be a flat line
    shown = {m.label: m.value for m in at.metric}
    if page is None:
        assert shown["Requests/s"] == "—" and shown["SLO attainment"] == "—"
    if page == "capacity":
        assert shown["Cost per 1,000 inferences"] == "—"
        assert shown["Energy per 1,000 inferences"] == "power not reported"
