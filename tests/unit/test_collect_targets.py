"""Targets from the fleet state file + static config; rendezvous sharding; the collect config section."""

import pytest
from pydantic import ValidationError

from collectors.targets import Target, assign, discover, owner_shard
from controlplane.config import CollectConfig, StaticTarget
from serving.fleet_state import FleetState, ReplicaRecord, write_state


def _targets(n):
    return [Target(f"replica-{i}", f"http://h:{i}/metrics", None) for i in range(n)]


@pytest.mark.parametrize("shards", [1, 2, 3, 5, 8])
def test_every_target_has_exactly_one_shard(shards):
    ts = _targets(500)
    owned = [assign(ts, i, shards) for i in range(shards)]
    names = [t.name for part in owned for t in part]
    assert sorted(names) == sorted(t.name for t in ts)
    # roughly balanced: no shard holds more than twice its fair share
    assert max(len(p) for p in owned) < 2 * len(ts) / shards


@pytest.mark.parametrize("n_before", [1, 2, 4, 9])
def test_adding_a_shard_moves_about_one_over_n_and_only_to_the_new_shard(n_before):
    names = [f"replica-{i}" for i in range(2000)]
    before = {n: owner_shard(n, n_before) for n in names}
    after = {n: owner_shard(n, n_before + 1) for n in names}
    moved = [n for n in names if before[n] != after[n]]
    assert all(after[n] == n_before for n in moved)  # moved targets only go to the new shard
    expected = len(names) / (n_before + 1)
    assert 0.8 * expected < len(moved) < 1.2 * expected


def _rec(name, slot):
    return ReplicaRecord(
        name=name,
        zone="zone-a",
        region="local",
        slot=slot,
        host="127.0.0.1",
        http_port=9000 + 3 * slot,
        grpc_port=9001 + 3 * slot,
        metrics_port=9002 + 3 * slot,
        pid=None,
        models=["m"],
        workdir="/tmp/x",
    )


def test_discover_merges_fleet_state_and_static_targets(tmp_path):
    path = tmp_path / "state.json"
    write_state(path, FleetState([_rec("replica-0", 0), _rec("replica-1", 1)]))
    cfg = CollectConfig(
        static_targets=[StaticTarget(name="dcgm@gpu-1", metrics_url="http://gpu-1:9400/metrics", kind="dcgm")]
    )
    got = {t.name: t for t in discover(cfg, path)}
    assert set(got) == {"replica-0", "replica-1", "dcgm@gpu-1"}
    r1 = got["replica-1"]
    assert r1.metrics_url == "http://127.0.0.1:9005/metrics" and r1.stats_url == "http://127.0.0.1:9003"
    assert (r1.zone, r1.region) == ("zone-a", "local")
    assert got["dcgm@gpu-1"].stats_url is None
    assert discover(CollectConfig(stats_api=False), path)[0].stats_url is None
    assert discover(CollectConfig(), tmp_path / "missing.json") == []
    both = [t.name for i in range(2) for t in discover(CollectConfig(shard_index=i, shard_count=2), path)]
    assert sorted(both) == ["replica-0", "replica-1"]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"shard_index": 2, "shard_count": 2}, "shard_index 2 is out of range"),
        ({"scrape_interval_s": 0}, "greater than 0"),
        ({"series_limit_per_target": 0}, "greater than or equal to 1"),
        ({"static_targets": [{"name": "x"}]}, "needs metrics_url or stats_url"),
        (
            {
                "static_targets": [
                    {"name": "x", "metrics_url": "http://a"},
                    {"name": "x", "metrics_url": "http://b"},
                ]
            },
            "repeated",
        ),
        ({"no_such_key": 1}, "Extra inputs"),
    ],
)
def test_config_validation_names_the_problem(kwargs, message):
    with pytest.raises(ValidationError, match=message):
        CollectConfig(**kwargs)


def test_config_fields_document_their_unit():
    for name, f in CollectConfig.model_fields.items():
        assert f.description, name
