"""The fleet manager against real tritonserver replicas (the shared session fleet)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request

import pytest

from serving.faults import Faults
from serving.fleet import FleetError

pytestmark = pytest.mark.integration


def _get_json(url: str) -> dict:
    with urllib.request.urlopen(url, timeout=10) as resp:
        return json.loads(resp.read())


def _cli(fleet, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "controlplane", *args],
        env=fleet.env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_status_json_lists_ready_replicas_in_two_zones(fleet):
    out = _cli(fleet, "fleet", "status", "--json")
    assert out.returncode == 0, out.stderr
    replicas = json.loads(out.stdout)
    assert len(replicas) == 2
    for r in replicas:
        assert {"name", "zone", "state", "http_url", "metrics_url"} <= r.keys()
        assert r["state"] == "ready"
    assert {r["zone"] for r in replicas} == {"zone-a", "zone-b"}


def test_instance_count_changes_live(fleet):
    rec = fleet.replicas[0]
    pid_before = rec.pid
    fleet.manager.set_instance_count(rec.name, "classifier-small", 2)
    cfg = _get_json(f"{rec.http_url}/v2/models/classifier-small/config")
    assert cfg["instance_group"][0]["count"] == 2
    assert fleet.manager.state().by_name(rec.name).instance_counts["classifier-small"] == 2
    assert fleet.replicas[0].pid == pid_before  # no restart
    fleet.manager.set_instance_count(rec.name, "classifier-small", 1)
    assert _get_json(f"{rec.http_url}/v2/models/classifier-small/config")["instance_group"][0]["count"] == 1


def test_cache_off_fault_reloads_cached_models_without_restart(fleet):
    rec = fleet.replicas[1]
    try:
        fleet.manager.set_faults(rec.name, Faults(cache_off=True))
        cfg = _get_json(f"{rec.http_url}/v2/models/classifier-small/config")
        assert not cfg.get("response_cache", {}).get("enable", False)
    finally:
        fleet.manager.set_faults(rec.name, Faults())
    cfg = _get_json(f"{rec.http_url}/v2/models/classifier-small/config")
    assert cfg["response_cache"]["enable"] is True
    assert fleet.replicas[1].pid == rec.pid


def test_bad_requests_give_clear_errors(fleet):
    name = fleet.replicas[0].name
    with pytest.raises(FleetError, match="does not serve model 'nope'"):
        fleet.manager.set_instance_count(name, "nope", 2)
    out = _cli(fleet, "fleet", "remove", "replica-77")
    assert (
        out.returncode == 2
        and "no replica named 'replica-77'" in out.stderr
        and "Traceback" not in out.stderr
    )


def test_killed_replica_shows_as_exited_and_replace_restores(fleet):
    added = fleet.manager.add(zone="zone-b")
    fleet.manager.set_instance_count(added.name, "classifier-small", 2)
    os.killpg(added.pid, signal.SIGKILL)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        st = {s.record.name: s.state for s in fleet.manager.status()}
        if st[added.name] == "exited":
            break
        time.sleep(0.2)
    assert st[added.name] == "exited"
    new = fleet.manager.replace(added.name)
    assert new.zone == "zone-b" and new.name != added.name
    st = {s.record.name: s.state for s in fleet.manager.status()}
    assert st[new.name] == "ready" and added.name not in st
    # the replacement starts with its predecessor's live instance count
    assert _get_json(f"{new.http_url}/v2/models/classifier-small/config")["instance_group"][0]["count"] == 2
    fleet.manager.remove(new.name)
    assert len(fleet.replicas) == 2
