"""Everything the router needs to run, as one plain dataclass.

Built from controlplane Settings by `controlplane.cli.router_cmd.router_options`; serving
code never imports controlplane (dependencies point one way).
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

DEFAULT_ADMIT_BELOW_LOAD_RATIO = {"premium": 1.0, "standard": 0.8, "batch": 0.5}


@dataclass
class RouterOptions:
    state_path: Path  # fleet state file (serving.fleet_state) listing the replicas
    api_token: str = field(repr=False)  # bearer token of the admin endpoints; never logged
    host: str = "127.0.0.1"
    port: int = 7000
    max_inflight_requests: int = 64  # router in-flight count at which load ratio is 1.0
    # Per priority class: admitted only while load ratio < this; lower classes shed first.
    admit_below_load_ratio: dict[str, float] = field(
        default_factory=lambda: dict(DEFAULT_ADMIT_BELOW_LOAD_RATIO)
    )
    default_priority: str = "standard"  # class of a request without X-Priority
    tier_complexity_threshold_ratio: float = 0.5  # X-Complexity >= this -> large tier
    large_tier_model: str = "classifier-large"
    # Zone of this router's clients ("" = no preference); a request's X-Client-Zone overrides it.
    local_zone: str = ""
    # A zone whose replicas average this many in-flight requests (or more) is saturated and its
    # requests spill to every zone; 0 always spills (no zone preference).
    spill_inflight_per_replica: float = 8.0
    upstream_timeout_s: float = 60.0  # one upstream request (streams: max silence between chunks)
    health_check_interval_s: float = 1.0
    ejection_s: float = 5.0  # out of rotation after a connection failure
    retries: int = 1  # further replicas tried after a connection failure
    state_poll_interval_s: float = 0.5

    def __post_init__(self) -> None:
        self.state_path = Path(self.state_path)
        s = self.spill_inflight_per_replica
        if isinstance(s, bool) or not isinstance(s, int | float) or not (math.isfinite(s) and s >= 0):
            raise ValueError(
                f"spill_inflight_per_replica = {s!r} is invalid: expected a finite number >= 0 "
                "(in-flight requests per replica)"
            )
        if self.default_priority not in self.admit_below_load_ratio:
            raise ValueError(
                f"default_priority {self.default_priority!r} is not one of the classes "
                f"{sorted(self.admit_below_load_ratio)}"
            )

    @property
    def url(self) -> str:
        host = "127.0.0.1" if self.host in ("0.0.0.0", "::", "") else self.host
        return f"http://{host}:{self.port}"

    def to_json(self, include_token: bool = False) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["state_path"] = str(self.state_path)
        if not include_token:
            d.pop("api_token")
        return d

    @classmethod
    def from_json(cls, d: dict[str, Any], api_token: str) -> RouterOptions:
        known = {f.name for f in dataclasses.fields(cls)}
        kwargs = {k: v for k, v in d.items() if k in known}
        kwargs["api_token"] = api_token
        return cls(**kwargs)
