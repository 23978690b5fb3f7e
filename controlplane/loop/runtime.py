"""`fleetpilot up`: one process owning the store, running collectors, detectors, forecasters, the
control loop and the API (ARCHITECTURE.md: the embedded store is owned by exactly one process).

Threads: the asyncio main thread scrapes (and wakes the loop after every scrape, so detection
sees a scrape at once); the loop thread ticks; a forecast thread refits and forecasts on its own
cadence; uvicorn serves the API. Shutdown (SIGTERM, SIGINT or `stop()`) is idempotent with a
deadline: the loop finishes its tick, the collector flushes, the recorder flushes, the lease is
released. A second `up` on the same data directory waits passive until the lease is free.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import threading
import time
from collections.abc import Callable
from typing import Any

from controlplane.config import Settings
from controlplane.loop.capacity_refit import CapacityRefit
from controlplane.loop.controller import Controller
from controlplane.loop.fleet_plan import FleetReplica
from controlplane.loop.lease import Lease
from controlplane.loop.live import LiveWindow
from controlplane.loop.recorder import Recorder

log = logging.getLogger(__name__)


class ControllerHandle:
    """The API's view of the running loop (controlplane.api.context.ControllerView)."""

    def __init__(self, runtime: UpRuntime) -> None:
        self.rt = runtime

    def status(self) -> dict:
        c = self.rt.controller
        return {
            "running": c is not None and not self.rt.stopping.is_set(),
            "role": "leader" if self.rt.lease.held else "passive",
            "tick_count": c.tick_count if c else 0,
            "last_tick_at": c.last_tick_s if c else None,
            "interval_s": self.rt.settings.control.interval_s,
            "last_error": self.rt.last_error,
        }

    def models(self) -> list[dict]:
        return self.rt.controller.models_view() if self.rt.controller else []

    def replicas(self) -> list[dict]:
        return self.rt.controller.replicas_view() if self.rt.controller else []

    def on_override(self, ov) -> None:
        if self.rt.controller is not None:
            self.rt.controller.add_override(ov)


class ForecastCache:
    """Latest p90 forecasts per model from controlplane.forecast.service (refreshed on its own thread)."""

    def __init__(self, store: Any, step_s: int) -> None:
        from controlplane.forecast.service import ForecastService  # noqa: PLC0415

        self.service = ForecastService(store, step_s=step_s)
        self._lock = threading.Lock()
        self._latest: dict[str, Any] = {}
        self.last_error: str | None = None

    def refresh(self, now_s: float) -> None:
        try:
            latest = self.service.tick(now_s)
        except Exception as exc:  # noqa: BLE001 - no forecast is "no floor", never a crash
            self.last_error = str(exc)
            log.warning("forecast refresh failed: %s", exc)
            return
        with self._lock:
            self._latest = dict(latest)

    def p90(self, model: str, ahead_s: float) -> float | None:
        with self._lock:
            f = self._latest.get(model)
        return None if f is None else f.p90_at(ahead_s)


class CapacityCache:
    """One replica's capacity per model: the config's value, else the newest stored curve."""

    def __init__(self, store: Any, configured: dict[str, float], refresh_s: float = 60.0) -> None:
        self.store = store
        self.configured = dict(configured)
        self.refresh_s = refresh_s
        self._cache: dict[str, tuple[float, float | None]] = {}

    def __call__(self, model: str) -> float | None:
        if model in self.configured:
            return self.configured[model]
        now = time.monotonic()
        hit = self._cache.get(model)
        if hit is not None and now - hit[0] < self.refresh_s:
            return hit[1]
        try:
            from controlplane.capacity.telemetry import latest_capacity  # noqa: PLC0415

            value = latest_capacity(self.store, model)
        except Exception as exc:  # noqa: BLE001 - no curve: the policy runs reactive only
            log.debug("no capacity for %s: %s", model, exc)
            value = None
        self._cache[model] = (now, value)
        return value


class UpRuntime:
    def __init__(self, settings: Settings, *, api: bool = True, manage_fleet: bool = True) -> None:
        self.settings = settings
        self.api_enabled = api
        self.manage_fleet = manage_fleet
        self.lease = Lease(settings.data_dir.resolve() / "controller.lease")
        self.stopping = threading.Event()
        self.controller: Controller | None = None
        self.store = None
        self.collector = None
        self.api_handle = None
        self.last_error: str | None = None
        self._wake = threading.Event()
        self._threads: list[threading.Thread] = []
        self._closed = False
        self.forecasts: ForecastCache | None = None
        self.capacity_refit: CapacityRefit | None = None
        self.on_tick: Callable[[dict], None] | None = None  # the demo's live summary

    # ---- start -----------------------------------------------------------------------------
    def wait_for_lease(self, poll_s: float = 2.0) -> bool:
        """Block (passive) until this process holds the lease or stop() is called."""
        announced = False
        while not self.lease.try_acquire():
            if not announced:
                log.warning(
                    "another controller holds %s (%s); waiting passive", self.lease.path, self.lease.holder()
                )
                announced = True
            if self.stopping.wait(poll_s):
                return False
        return True

    def start(self) -> None:
        from collectors.gpu import NvmlSampler  # noqa: PLC0415
        from collectors.procmem import ProcMemSampler  # noqa: PLC0415
        from collectors.scheduler import Collector  # noqa: PLC0415
        from controlplane.store import open_store  # noqa: PLC0415

        s = self.settings
        self.store = open_store(
            s.store_dsn,
            cluster=s.store.cluster,
            raw_ttl_days=s.store.raw_ttl_days,
            rollup_ttl_days=s.store.rollup_ttl_days,
        )
        self.live = LiveWindow(keep_s=max(180.0, 3 * s.control.stable_window_s))
        from prometheus_client import CollectorRegistry  # noqa: PLC0415

        from collectors.telemetry import CollectorMetrics  # noqa: PLC0415
        from controlplane.loop.metrics import LoopMetrics  # noqa: PLC0415

        # One registry: the API's /metrics shows the collector's, the loop's and its own.
        self.registry = CollectorRegistry()
        nvml = NvmlSampler.open() if s.collect.nvml else None
        self.collector = Collector(
            s.collect,
            self.store,
            s.spool_dir,
            s.fleet_state_path,
            nvml=nvml,
            procmem=ProcMemSampler(s.fleet_state_path),
            on_chunk=self.live.add_chunk,
            metrics=CollectorMetrics(self.registry),
        )
        recorder = Recorder(self.store)
        processes = router = None
        fleet_state = self._fleet_state
        if self.manage_fleet:
            from controlplane.actuators.replicas import FleetReplicaProcesses  # noqa: PLC0415
            from controlplane.actuators.router import HttpRouterControl  # noqa: PLC0415
            from controlplane.cli.common import fleet_manager  # noqa: PLC0415

            processes = FleetReplicaProcesses(fleet_manager(s), zones=list(s.fleet.zones))
            router = HttpRouterControl(
                f"http://{s.bind_host}:{s.router.port}", s.resolved_api_token(), timeout_s=2.0
            )
        if s.control.forecast:
            try:
                self.forecasts = ForecastCache(self.store, step_s=int(max(10, s.collect.scrape_interval_s)))
            except ImportError as exc:
                log.warning("forecasting unavailable (%s); the replica floor is off", exc)
        self.controller = Controller(
            s,
            self.live,
            recorder,
            fleet_state=fleet_state,
            processes=processes,
            router=router,
            forecast_p90=self.forecasts.p90 if self.forecasts else None,
            capacity=CapacityCache(self.store, s.control.capacity_rps_by_model),
            scrape_interval_s=s.collect.scrape_interval_s,
            metrics=LoopMetrics(self.registry),
        )
        self._load_overrides()
        if self.api_enabled:
            self._start_api()
        self._spawn("control-loop", self._loop)
        if self.forecasts is not None:
            self._spawn("forecasts", self._forecast_loop)
        if s.control.capacity_refit_s > 0:
            # The first fit waits one period: at start the store holds no fresh telemetry.
            self.capacity_refit = CapacityRefit(self.store, s.control, last_s=time.time())
            self._spawn("capacity-refit", self._capacity_loop)

    def _fleet_state(self) -> list[FleetReplica]:
        from serving.fleet_state import FleetStateError, read_state  # noqa: PLC0415

        try:
            st = read_state(self.settings.fleet_state_path)
        except FleetStateError:
            return []
        return [FleetReplica(r.name, r.zone, r.started_at_s) for r in st.replicas]

    def _load_overrides(self) -> None:
        try:
            from controlplane.api.overrides import Override  # noqa: PLC0415

            res = self.store.query("SELECT * FROM overrides ORDER BY ts")
            for row in res.to_dicts():
                self.controller.add_override(Override.from_row(row))
        except Exception as exc:  # noqa: BLE001 - no stored overrides is a fresh start
            log.info("no stored overrides loaded: %s", exc)

    def _start_api(self) -> None:
        from controlplane.api.app import create_app  # noqa: PLC0415
        from controlplane.api.context import ApiContext  # noqa: PLC0415
        from controlplane.api.server import start_api_thread  # noqa: PLC0415

        ctx = ApiContext(
            settings=self.settings,
            store=self.store,
            controller=ControllerHandle(self),
            store_lock=self.store._lock,
        )
        from controlplane.api.metrics import ApiMetrics  # noqa: PLC0415

        app = create_app(ctx, ApiMetrics(self.registry))
        self.api_handle = start_api_thread(app, self.settings.bind_host, self.settings.api.port)

    def _spawn(self, name: str, fn) -> None:
        t = threading.Thread(target=fn, name=name, daemon=True)
        t.start()
        self._threads.append(t)

    # ---- threads ---------------------------------------------------------------------------
    def _loop(self) -> None:
        interval = self.settings.control.interval_s
        while not self.stopping.is_set():
            self._wake.wait(interval)  # a scrape wakes it early; the interval bounds the gap
            self._wake.clear()
            if self.stopping.is_set():
                break
            try:
                report = self.controller.tick()
                self.last_error = None
                if self.on_tick is not None:
                    self.on_tick(report)
            except Exception as exc:  # noqa: BLE001 - one bad tick must not end the loop
                self.last_error = f"{type(exc).__name__}: {exc}"
                log.exception("control tick failed")

    def _forecast_loop(self) -> None:
        every_s = max(10.0, self.settings.collect.scrape_interval_s)
        while not self.stopping.is_set():
            self.forecasts.refresh(time.time())
            self.stopping.wait(every_s)

    def _capacity_loop(self) -> None:
        while not self.stopping.wait(min(60.0, self.settings.control.capacity_refit_s)):
            self.capacity_refit.tick(time.time(), [m["model"] for m in self.controller.models_view()])

    async def scrape_forever(self) -> None:
        interval = self.settings.collect.scrape_interval_s
        next_at = time.monotonic()
        while not self.stopping.is_set():
            try:
                await self.collector.scrape_once()
            except Exception:  # noqa: BLE001 - one bad scrape must not end collection
                log.exception("collector tick failed")
            self._wake.set()
            next_at += interval
            delay = next_at - time.monotonic()
            if delay < 0:
                next_at, delay = time.monotonic(), 0
            await asyncio.sleep(min(delay, interval))

    # ---- stop ------------------------------------------------------------------------------
    def stop(self) -> None:
        self.stopping.set()
        self._wake.set()

    def close(self, deadline_s: float = 30.0) -> None:
        """Idempotent: join threads, final flushes, release the lease."""
        if self._closed:
            return
        self._closed = True
        self.stop()
        end = time.monotonic() + deadline_s
        for t in self._threads:
            t.join(timeout=max(0.1, end - time.monotonic()))
        if self.controller is not None:
            self.controller.close(timeout_s=max(0.1, end - time.monotonic()))
        if self.forecasts is not None:
            self.forecasts.service.close()
        if self.collector is not None and not self.collector._closed:
            try:
                asyncio.run(self.collector.close())  # final flush of scraped samples
            except Exception:  # noqa: BLE001
                log.exception("final collector flush failed")
        if self.api_handle is not None:
            self.api_handle.stop(timeout_s=5.0)
        if self.store is not None:
            self.store.close()
        self.lease.release()
        c = self.controller
        log.info(
            "stopped: %d ticks, %d rows recorded, %d left unwritten",
            c.tick_count if c else 0,
            c.recorder.written_rows if c else 0,
            c.recorder.pending() if c else 0,
        )


async def serve(runtime: UpRuntime) -> None:
    """Scrape until runtime.stop(); then the final collector flush (on this event loop)."""
    stopper = asyncio.ensure_future(asyncio.to_thread(runtime.stopping.wait))
    scraper = asyncio.ensure_future(runtime.scrape_forever())
    await asyncio.wait({stopper, scraper}, return_when=asyncio.FIRST_COMPLETED)
    runtime.stop()
    scraper.cancel()
    try:
        await scraper
    except asyncio.CancelledError:
        pass
    await runtime.collector.close()


def run_up(runtime: UpRuntime) -> int:
    """Run until SIGTERM / SIGINT (main thread). Returns the exit code."""

    async def main() -> None:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, runtime.stop)
        await serve(runtime)

    try:
        asyncio.run(main())
    finally:
        runtime.close()
    return 0


def start_in_thread(runtime: UpRuntime) -> threading.Thread:
    """Start the runtime and serve it from a background thread (tests, the demo); stop with
    runtime.stop() then runtime.close()."""
    runtime.start()
    t = threading.Thread(target=lambda: asyncio.run(serve(runtime)), name="up-scraper", daemon=True)
    t.start()
    runtime._threads.insert(0, t)
    return t
