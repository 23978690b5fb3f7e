"""`fleetpilot replay` end to end: the Azure conversation trace through the real router and fleet."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.integration.conftest import REPO_ROOT

pytestmark = pytest.mark.integration


def test_replay_200_azure_conversation_requests_all_ok(fleet, router_url, shared_data, tmp_path):
    trace = shared_data / "traces" / "azure_llm_2023" / "AzureLLMInferenceTrace_conv.csv"
    if not trace.exists():
        pytest.skip(f"{trace} is absent")
    results = tmp_path / "results.jsonl"
    # The first 200 requests span ~61 s of trace; at 20x they arrive over ~3 s (peaks ~200 rps).
    # Small caps keep the CPU work small; premium priority keeps admission control from
    # shedding on a busy shared machine (this test is about the replay path, not shedding).
    cmd = [
        sys.executable, "-m", "controlplane", "replay", str(trace),
        "--limit", "200", "--speed", "20", "--router-url", router_url,
        "--max-prompt-tokens", "32", "--max-generated-tokens", "8",
        "--priority-mix", "premium=1", "--results", str(results), "--json",
    ]  # fmt: skip
    proc = subprocess.run(cmd, env=fleet.env, cwd=REPO_ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    summary = json.loads(proc.stdout)  # stdout is exactly one JSON object
    assert (summary["requests"], summary["ok"]) == (200, 200), summary["errors_by_reason"]
    assert summary["errors"] == summary["shed"] == summary["timeouts"] == summary["dropped"] == 0
    assert summary["clipped_output"] > 0 and summary["max_generated_tokens"] == 8
    assert summary["ttft_p99_ms"] is not None and summary["ttft_p99_ms"] <= summary["p99_ms"]

    rows = [json.loads(line) for line in Path(results).read_text().splitlines()]
    assert len(rows) == 200
    # chat-lm generates exactly max_tokens, so every stream is complete
    assert all(r["status"] == "ok" and r["tokens"] == r["max_tokens"] <= 8 for r in rows)
    assert summary["tokens_generated"] == sum(r["max_tokens"] for r in rows)
    assert all(1 <= r["prompt_tokens"] <= 32 for r in rows)
    # the router spreads the load and says who answered
    assert {r["replica"] for r in rows} == {rec.name for rec in fleet.replicas}
