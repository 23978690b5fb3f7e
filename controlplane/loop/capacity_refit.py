"""`fleetpilot up` relearns each model's capacity from the telemetry it stores.

Every `control.capacity_refit_s` the newest `capacity_window_s` of load-vs-latency points of each
model the loop decides on is fitted (controlplane/capacity/telemetry.py) and stored as a
`capacity_curves` row; the loop's capacity lookup picks it up. A fit that only shows the SLO held
at every load seen is a lower bound: the lookup never sizes the fleet by it (latest_capacity).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable

from controlplane.capacity.model import Slo
from controlplane.capacity.telemetry import fit_from_store
from controlplane.config import ControlConfig

log = logging.getLogger(__name__)


def slo_of(model: str, c: ControlConfig) -> Slo:
    """The loop's SLO as the capacity model's: chat-lm is judged on time to first token (the
    loop's latency for it), every other model on end-to-end p99."""
    from controlplane.capacity.profile import CHAT_MODEL  # noqa: PLC0415 - the sweep's imports are heavy

    bound_ms = c.slo_for(model)
    return Slo(ttft_p99_ms=bound_ms) if model == CHAT_MODEL else Slo(p99_ms=bound_ms)


def due(now_s: float, last_s: float | None, every_s: float) -> bool:
    """Pure: whether a refit is due (never when every_s is 0)."""
    return every_s > 0 and (last_s is None or now_s - last_s >= every_s)


class CapacityRefit:
    def __init__(
        self, store, control: ControlConfig, fit: Callable = fit_from_store, last_s: float | None = None
    ) -> None:
        self.store = store
        self.c = control
        self.fit = fit
        self.last_s = last_s  # the last refit (None: due at once)
        self.last_error: str | None = None
        self.fitted: dict[str, float] = {}  # model -> capacity of its newest fit (rps)

    def tick(self, now_s: float, models: Iterable[str]) -> bool:
        """Refit every model when due; True when it ran. One model's failure does not stop the rest."""
        if not due(now_s, self.last_s, self.c.capacity_refit_s):
            return False
        self.last_s = now_s
        for model in sorted(models):
            try:
                est = self.fit(self.store, model, slo_of(model, self.c), now_s, self.c.capacity_window_s)
            except Exception as exc:  # noqa: BLE001 - no refit keeps the last curve; never a crash
                self.last_error = f"{model}: {exc}"
                log.warning("capacity refit of %s failed: %s", model, exc)
                continue
            self.fitted[model] = est.capacity_rps
            log.info("capacity of %s from telemetry: %s", model, est.to_json())
        return True
