"""The overview in a real headless browser: the real API (seeded embedded store), `fleetpilot
dashboard` (headless Streamlit) on a free port in 18650-18659, Debian's Chromium through the PyPI
`playwright` package (no browser download). Checks the charts render with data and the seeded
numbers show; saves a screenshot to the test's tmp dir and to build/screenshots/overview.png.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from tests.support.api_seed import free_port, running_api

REPO = Path(__file__).resolve().parents[2]
SCREENSHOT = REPO / "build" / "screenshots" / "overview.png"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
CHARTS = "[data-testid='stVegaLiteChart']"
# Per chart: data marks drawn (areas, lines, bars, points; not axes or legends) and the widest one.
MARKS_JS = """() => Array.from(document.querySelectorAll("[data-testid='stVegaLiteChart']")).map(el => {
  const svg = el.querySelector('svg');
  if (!svg) return {svg: false, marks: 0, widest: 0, width: 0};
  const sel = ['area', 'line', 'rect', 'symbol'].map(t => `g.mark-${t}.role-mark > path`).join(',');
  const marks = Array.from(svg.querySelectorAll(sel)).filter(p => (p.getAttribute('d') || '').length > 4);
  const widest = Math.max(0, ...marks.map(p => p.getBoundingClientRect().width));
  return {svg: true, marks: marks.length, widest, width: svg.getBoundingClientRect().width};
})"""

pytestmark = pytest.mark.skipif(
    shutil.which("chromium") is None,
    reason="Debian's chromium is not installed: `make test` installs it (apt-get install -y chromium)",
)


def _wait_http(url: str, timeout_s: float, proc: subprocess.Popen) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"the dashboard exited with {proc.returncode} before {url} answered")
        try:
            with urllib.request.urlopen(url, timeout=2) as r:
                if r.status == 200:
                    return
        except OSError:
            time.sleep(0.3)
    raise RuntimeError(f"{url} did not answer within {timeout_s:g} s")


@pytest.fixture
def dashboard(tmp_path):
    """(dashboard URL, seeded API) with `fleetpilot dashboard` running against the real API."""
    with running_api(tmp_path / "api", port=free_port(range(18690, 18700)), freeze_clock=True) as api:
        port = free_port(range(18650, 18660))
        env = {k: v for k, v in os.environ.items() if not k.startswith("FLEETPILOT_")}
        env["HOME"] = str(tmp_path)  # Streamlit writes ~/.streamlit; keep the user's untouched
        cmd = [
            sys.executable,
            "-m",
            "controlplane",
            "dashboard",
            "--port",
            str(port),
            "--api-url",
            api.base_url,
        ]
        log = (tmp_path / "dashboard.log").open("w")
        proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT)
        try:
            _wait_http(f"http://127.0.0.1:{port}/_stcore/health", 60, proc)
            yield f"http://127.0.0.1:{port}/", api
        finally:
            proc.terminate()
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)
            log.close()


def test_overview_renders_charts_with_data_in_chromium(dashboard, tmp_path):
    from playwright.sync_api import sync_playwright  # noqa: PLC0415 - dev extra

    url, api = dashboard
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=shutil.which("chromium"), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1500, "height": 1800})
            page.goto(url, timeout=60_000)
            page.wait_for_selector(CHARTS, timeout=90_000)
            page.wait_for_function(f'document.querySelectorAll("{CHARTS}").length >= 4', timeout=60_000)
            page.wait_for_selector(f"{CHARTS} svg g.role-mark", timeout=30_000)
            page.wait_for_selector("[data-testid='stDataFrame']", timeout=30_000)  # the models table
            # The script has finished when Streamlit's "running" widget is gone.
            page.wait_for_selector("[data-testid='stStatusWidget']", state="detached", timeout=30_000)
            page.wait_for_timeout(1500)  # let Vega finish its last layout pass before the shot
            charts = page.evaluate(MARKS_JS)
            body = page.inner_text("body")
            shot = tmp_path / "overview.png"
            page.screenshot(path=str(shot))
            SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(shot, SCREENSHOT)
            exceptions = page.locator("[data-testid='stException']").count()
        finally:
            browser.close()

    assert exceptions == 0
    assert len(charts) == 4, charts
    for c in charts:
        assert c["svg"] and c["marks"] > 0, charts
    # The request-rate areas and the GPU line span the 30-minute seed: most of the plot's width.
    assert max(c["widest"] / c["width"] for c in charts) > 0.5, charts
    seed = api.seed
    assert "Fleet overview" in body
    assert f"{sum(seed['rate_rps'].values()):.1f} req/s" in body  # 66.0 req/s
    assert f"{seed['generation_tokens_per_s']:.0f} tok/s" in body  # 384 tok/s
    assert "3 / 3" in body and "classifier-small" in body
    assert shot.stat().st_size > 20_000
