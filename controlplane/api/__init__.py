"""The control-plane HTTP API (FastAPI): status, fleet views, audit trail, overrides, read-only SQL.

`create_app(ApiContext(...))` builds the app; `start_api_thread` serves it from a daemon thread
(`fleetpilot up` and the tests); `fleetpilot api` serves it alone against the configured store.
"""

from controlplane.api.app import create_app
from controlplane.api.context import ApiContext, ControllerView
from controlplane.api.overrides import EffectiveOverride, Override, effective_overrides
from controlplane.api.server import ApiServerHandle, start_api_thread

__all__ = [
    "ApiContext",
    "ApiServerHandle",
    "ControllerView",
    "EffectiveOverride",
    "Override",
    "create_app",
    "effective_overrides",
    "start_api_thread",
]
