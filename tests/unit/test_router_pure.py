"""Table-driven tests of the router's pure parts: balancer, admission, tiers, auth, admin validation."""

from __future__ import annotations

import random
from collections import Counter

import pytest

from serving.router import balancer
from serving.router.admin import AdminError, validate_thresholds, validate_weights
from serving.router.admission import PriorityError, parse_priority, shed_reason
from serving.router.auth import check_bearer
from serving.router.balancer import Candidate
from serving.router.tiers import TierError, resolve_model

CLASSES = {"premium": 1.0, "standard": 0.8, "batch": 0.5}


def _split(cands: list[Candidate], n: int, seed: int = 1) -> Counter:
    current: dict[str, float] = {}
    rng = random.Random(seed)
    return Counter(balancer.pick(cands, current, rng).name for _ in range(n))


# --- balancer -------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "weights, n, expected",
    [
        ({"a": 1, "b": 1}, 100, {"a": 50, "b": 50}),
        ({"a": 3, "b": 1}, 200, {"a": 150, "b": 50}),
        ({"a": 5, "b": 3, "c": 2}, 1000, {"a": 500, "b": 300, "c": 200}),
        ({"a": 0.5, "b": 1.5}, 400, {"a": 100, "b": 300}),
        ({"a": 1, "b": 0}, 50, {"a": 50}),  # weight 0 = drained
        ({"a": 0, "b": 0}, 0, {}),
    ],
)
def test_sequential_traffic_follows_weights_exactly(weights, n, expected):
    cands = [Candidate(name, w, inflight=0) for name, w in weights.items()]
    assert dict(_split(cands, n)) == expected


def test_all_drained_picks_nothing():
    assert balancer.pick([Candidate("a", 0, 0), Candidate("b", 0, 0)], {}, random.Random(0)) is None
    assert balancer.pick([], {}, random.Random(0)) is None


@pytest.mark.parametrize(
    "a_inflight, b_inflight, min_b_share",
    [
        (10, 0, 0.45),  # a busy: b wins whenever sampled as the second choice (~half the picks)
        (0, 0, 0.49),  # equal load: round-robin, exactly half
        (4, 2, 0.45),  # per unit weight b is less loaded
    ],
)
def test_fewer_inflight_per_weight_wins(a_inflight, b_inflight, min_b_share):
    cands = [Candidate("a", 1, a_inflight), Candidate("b", 1, b_inflight)]
    split = _split(cands, 1000)
    assert split["b"] / 1000 >= min_b_share


def test_busy_replica_loses_every_comparison():
    # b has three times the weight but 30x the in-flight per weight: a gets every pick where
    # it is either first (round-robin) or the sampled second.
    cands = [Candidate("a", 1, 0), Candidate("b", 3, 90)]
    split = _split(cands, 400)
    assert split["a"] == 400


def test_inflight_normalised_by_weight():
    # 6 in flight at weight 3 (2 per unit) beats 3 in flight at weight 1.
    assert balancer._load(Candidate("x", 3, 6)) < balancer._load(Candidate("y", 1, 3))


# --- zone preference and spill-over ------------------------------------------------------------
def _zc(spec: str) -> list[Candidate]:
    """'a1:zone-a:w=1:i=3 ...' -> candidates (name, zone, weight, in-flight)."""
    out = []
    for item in spec.split():
        name, zone, w, i = item.split(":")
        out.append(Candidate(name, float(w[2:]), int(i[2:]), zone))
    return out


@pytest.mark.parametrize(
    "spec, zone, threshold, expected_names, spill",
    [
        # no zone asked for: every candidate, never a spill
        ("a1:zone-a:w=1:i=9 b1:zone-b:w=1:i=0", "", 1.0, ["a1", "b1"], ""),
        # the zone's own replicas while below the threshold
        ("a1:zone-a:w=1:i=0 a2:zone-a:w=1:i=1 b1:zone-b:w=1:i=0", "zone-a", 2.0, ["a1", "a2"], ""),
        # mean in-flight (1+2)/2 = 1.5 < 2: stays
        ("a1:zone-a:w=1:i=1 a2:zone-a:w=1:i=2 b1:zone-b:w=1:i=0", "zone-a", 2.0, ["a1", "a2"], ""),
        # mean (2+2)/2 = 2 >= 2: saturated, spills to all (the saturated zone stays a candidate)
        (
            "a1:zone-a:w=1:i=2 a2:zone-a:w=1:i=2 b1:zone-b:w=1:i=0",
            "zone-a",
            2.0,
            ["a1", "a2", "b1"],
            "saturated",
        ),
        # per replica, not per unit of weight: weight 100 does not hide 8 in flight
        ("a1:zone-a:w=100:i=8 b1:zone-b:w=100:i=0", "zone-a", 8.0, ["a1", "b1"], "saturated"),
        # a drained replica (weight 0) neither counts nor is a zone candidate
        (
            "a1:zone-a:w=0:i=0 a2:zone-a:w=1:i=3 b1:zone-b:w=1:i=0",
            "zone-a",
            2.0,
            ["a1", "a2", "b1"],
            "saturated",
        ),
        ("a1:zone-a:w=0:i=0 a2:zone-a:w=1:i=1 b1:zone-b:w=1:i=0", "zone-a", 2.0, ["a2"], ""),
        # every zone replica drained, or none in the zone at all: spill, no_replica
        ("a1:zone-a:w=0:i=0 b1:zone-b:w=1:i=0", "zone-a", 2.0, ["a1", "b1"], "no_replica"),
        ("a1:zone-a:w=1:i=0 b1:zone-b:w=1:i=0", "zone-c", 2.0, ["a1", "b1"], "no_replica"),
        # threshold 0: any zone is saturated, so no preference at all
        ("a1:zone-a:w=1:i=0 b1:zone-b:w=1:i=0", "zone-a", 0.0, ["a1", "b1"], "saturated"),
        # a saturated zone-b client still spills even when zone-a is saturated too
        ("a1:zone-a:w=1:i=5 b1:zone-b:w=1:i=5", "zone-b", 4.0, ["a1", "b1"], "saturated"),
    ],
)
def test_zone_candidates(spec, zone, threshold, expected_names, spill):
    cands, reason = balancer.zone_candidates(_zc(spec), zone, threshold)
    assert [c.name for c in cands] == expected_names
    assert reason == spill


@pytest.mark.parametrize(
    "spec, zone, expected",
    [
        ("a1:zone-a:w=1:i=1 a2:zone-a:w=1:i=4 b1:zone-b:w=1:i=9", "zone-a", 2.5),
        ("a1:zone-a:w=0:i=7 a2:zone-a:w=1:i=4", "zone-a", 4.0),
        ("a1:zone-a:w=0:i=7", "zone-a", None),
        ("a1:zone-a:w=1:i=1", "zone-b", None),
    ],
)
def test_zone_inflight_per_replica(spec, zone, expected):
    assert balancer.zone_inflight_per_replica(_zc(spec), zone) == expected


def test_zone_candidates_then_pick_stays_in_zone_until_saturated():
    # zone-a holds 1 replica; sequential picks stay there until its in-flight reaches 3.
    current: dict[str, float] = {}
    rng = random.Random(2)
    seen = []
    for inflight in range(5):
        cands = [Candidate("a1", 1, inflight, "zone-a"), Candidate("b1", 1, 0, "zone-b")]
        zc, _ = balancer.zone_candidates(cands, "zone-a", 3.0)
        seen.append(balancer.pick(zc, current, rng).name)
    assert seen == ["a1", "a1", "a1", "b1", "b1"]  # at 3 and 4 in flight the less-loaded b1 wins


# --- admission ------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "header, expected",
    [
        (None, "standard"),
        ("", "standard"),
        ("premium", "premium"),
        ("Batch", "batch"),
        (" standard ", "standard"),
    ],
)
def test_parse_priority(header, expected):
    assert parse_priority(header, "standard", CLASSES) == expected


def test_unknown_priority_names_allowed_classes():
    with pytest.raises(PriorityError, match="premium, standard, batch"):
        parse_priority("urgent", "standard", CLASSES)


@pytest.mark.parametrize(
    "inflight, admitted",
    [
        (0, {"premium", "standard", "batch"}),
        (4, {"premium", "standard", "batch"}),
        (5, {"premium", "standard"}),  # load 0.5: batch shed first
        (7, {"premium", "standard"}),
        (8, {"premium"}),  # load 0.8: standard shed next
        (9, {"premium"}),
        (10, set()),  # load 1.0: premium last
    ],
)
def test_shedding_order(inflight, admitted):
    got = {p for p in CLASSES if shed_reason(p, inflight, 10, CLASSES) is None}
    assert got == admitted


def test_shed_message():
    assert shed_reason("batch", 52, 100, CLASSES) == "overloaded: shed priority 'batch' at load 0.52 >= 0.50"


# --- tiers ----------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "model, complexity, tier, expected",
    [
        ("classifier", None, None, "classifier-small"),
        ("classifier", "0.2", None, "classifier-small"),
        ("classifier", "0.5", None, "classifier-large"),  # >= threshold
        ("classifier", "0.99", None, "classifier-large"),
        ("classifier", "0.9", "small", "classifier-small"),  # override wins
        ("classifier", None, "large-int8", "classifier-large-int8"),
        ("classifier", "0.1", "LARGE", "classifier-large"),
        ("classifier-small", "0.9", "large", "classifier-small"),  # concrete model: headers ignored
        ("chat-lm", None, None, "chat-lm"),
    ],
)
def test_resolve_model(model, complexity, tier, expected):
    assert resolve_model(model, complexity, tier, 0.5, "classifier-large") == expected


def test_large_tier_model_is_configurable():
    assert resolve_model("classifier", "0.7", None, 0.5, "classifier-large-int8") == "classifier-large-int8"


@pytest.mark.parametrize(
    "complexity, tier", [("abc", None), ("1.5", None), ("-0.1", None), ("nan", None), (None, "huge")]
)
def test_bad_tier_headers(complexity, tier):
    with pytest.raises(TierError):
        resolve_model("classifier", complexity, tier, 0.5, "classifier-large")


# --- auth -----------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "header, expected",
    [
        (None, 401),
        ("", 401),
        ("Basic abc", 401),
        ("Bearer", 401),
        ("Bearer wrong", 403),
        ("Bearer s3cret", 200),
        ("bearer s3cret", 200),
    ],
)
def test_check_bearer(header, expected):
    assert check_bearer(header, "s3cret") == expected


def test_empty_configured_token_never_authorises():
    assert check_bearer("Bearer ", "") == 401
    assert check_bearer("Bearer x", "") == 403


# --- admin validation -------------------------------------------------------------------------
@pytest.mark.parametrize(
    "payload, message",
    [
        ({}, "body must be"),
        ({"weights": {}}, "body must be"),
        ({"weights": {"replica-9": 1}}, "weights.replica-9: unknown replica"),
        ({"weights": {"replica-0": -1}}, "weights.replica-0 = -1"),
        ({"weights": {"replica-0": "3"}}, "weights.replica-0 = '3'"),
        ({"weights": {"replica-0": True}}, "weights.replica-0 = True"),
        ({"weights": {"replica-0": 1}, "x": 1}, "unknown field"),
    ],
)
def test_validate_weights_rejects(payload, message):
    with pytest.raises(AdminError, match=message):
        validate_weights(payload, {"replica-0", "replica-1"})


def test_validate_weights_accepts_zero_to_drain():
    assert validate_weights({"weights": {"replica-0": 3, "replica-1": 0}}, {"replica-0", "replica-1"}) == {
        "replica-0": 3.0,
        "replica-1": 0.0,
    }


CURRENT = {
    "tier_complexity_threshold_ratio": 0.5,
    "admit_below_load_ratio": CLASSES,
    "max_inflight_requests": 64,
    "large_tier_model": "classifier-large",
    "default_priority": "standard",
    "local_zone": "",
    "spill_inflight_per_replica": 8.0,
}


@pytest.mark.parametrize(
    "payload, message",
    [
        ({"tier_complexity_threshold_ratio": 1.5}, "tier_complexity_threshold_ratio = 1.5"),
        ({"max_inflight_requests": 0}, "max_inflight_requests = 0"),
        ({"max_inflight_requests": 2.5}, "max_inflight_requests = 2.5"),
        ({"admit_below_load_ratio": {"batch": 0}}, r"admit_below_load_ratio.batch = 0 .*\(0, 1\]"),
        ({"admit_below_load_ratio": {"batch": 1.2}}, "admit_below_load_ratio.batch = 1.2"),
        ({"admit_below_load_ratio": []}, "admit_below_load_ratio = "),
        ({"default_priority": "gold"}, "default_priority = 'gold'"),
        ({"bogus": 1}, r"unknown field\(s\) \['bogus'\]"),
        ({"spill_inflight_per_replica": -1}, r"spill_inflight_per_replica = -1 .*\[0, 1000000\]"),
        ({"spill_inflight_per_replica": "2"}, "spill_inflight_per_replica = '2' is invalid"),
        ({"spill_inflight_per_replica": float("inf")}, "spill_inflight_per_replica = inf"),
        ({"local_zone": 3}, "local_zone = 3 is invalid"),
        ({"local_zone": "z" * 65}, "local_zone = 'zzz.* at most 64"),
        ({}, "body must be"),
    ],
)
def test_validate_thresholds_rejects(payload, message):
    with pytest.raises(AdminError, match=message):
        validate_thresholds(payload, CURRENT)


def test_validate_thresholds_merges_classes():
    out = validate_thresholds(
        {"admit_below_load_ratio": {"batch": 0.3, "bulk": 0.2}, "max_inflight_requests": 10}, CURRENT
    )
    assert out == {
        "admit_below_load_ratio": {"premium": 1.0, "standard": 0.8, "batch": 0.3, "bulk": 0.2},
        "max_inflight_requests": 10,
    }
    assert CURRENT["admit_below_load_ratio"]["batch"] == 0.5  # input not mutated


@pytest.mark.parametrize(
    "payload, expected",
    [
        ({"spill_inflight_per_replica": 2}, {"spill_inflight_per_replica": 2.0}),
        ({"spill_inflight_per_replica": 0}, {"spill_inflight_per_replica": 0.0}),
        ({"local_zone": " zone-b "}, {"local_zone": "zone-b"}),
        ({"local_zone": ""}, {"local_zone": ""}),
    ],
)
def test_validate_thresholds_zone_fields(payload, expected):
    assert validate_thresholds(payload, CURRENT) == expected


def test_router_options_reject_bad_spill_threshold(tmp_path):
    from serving.router.options import RouterOptions

    with pytest.raises(ValueError, match="spill_inflight_per_replica = -2"):
        RouterOptions(state_path=tmp_path / "s.json", api_token="t", spill_inflight_per_replica=-2)
    opts = RouterOptions(state_path=tmp_path / "s.json", api_token="t", local_zone="zone-a")
    assert opts.to_json()["local_zone"] == "zone-a"
    assert opts.to_json()["spill_inflight_per_replica"] == 8.0
