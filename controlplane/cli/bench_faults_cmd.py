"""`fleetpilot bench faults`: the live-fault protocol of issue 4 on a fleet of its own.

Starts replicas in a temporary data directory, `fleetpilot up --advisory` (detectors on, nothing
actuated), steady load on every replica, a clean period that must raise no incident, then a slow
replica, an error burst, a response-cache collapse and memory growth on one replica, each timed
from injection to the incident the loop opens. Prints one JSON object.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import typer

from controlplane.cli.bench_cmd import bench_app
from controlplane.cli.common import fail, print_json


@bench_app.command("faults")
def bench_faults(
    clean_s: float = typer.Option(
        300.0, "--clean-s", min=0, help="Clean period before the faults (seconds)."
    ),
    scrape_interval_s: float = typer.Option(
        2.0, "--scrape-interval-s", min=0.5, help="Scrape interval (seconds)."
    ),
    rate_rps: float = typer.Option(15.0, "--rate-rps", min=1, help="Load per replica (requests/s)."),
    replicas: int = typer.Option(3, "--replicas", min=2, help="Replicas in the fleet."),
    base_port: int = typer.Option(18740, "--base-port", help="First Triton port of the bench's own fleet."),
    api_port: int = typer.Option(18738, "--api-port", help="API port of the bench's `up`."),
    json_out: bool = typer.Option(True, "--json/--no-json"),
) -> None:
    """Time-to-detect of injected faults on real replicas (JSON)."""
    from controlplane.cli.common import fleet_manager  # noqa: PLC0415
    from controlplane.config import load_settings_with_env  # noqa: PLC0415
    from controlplane.loop.faultcheck import ApiEvents, SteadyLoad, run_cases  # noqa: PLC0415
    from controlplane.loop.up_process import UpProcess  # noqa: PLC0415

    with tempfile.TemporaryDirectory(prefix="fleetpilot-bench-faults-") as tmp:
        env = {
            "FLEETPILOT_DATA_DIR": tmp,
            "FLEETPILOT_FLEET__TRITON_BASE_PORT": str(base_port),
            "FLEETPILOT_FLEET__MODELS": '["classifier-small"]',
            "FLEETPILOT_API__PORT": str(api_port),
            "FLEETPILOT_COLLECT__SCRAPE_INTERVAL_S": str(scrape_interval_s),
            "FLEETPILOT_COLLECT__BATCH_MAX_AGE_S": "2",
            "FLEETPILOT_CONTROL__FORECAST": "false",
        }
        settings = load_settings_with_env(env)
        manager = fleet_manager(settings)
        load = up = None
        try:
            manager.up(replicas)
            load = SteadyLoad(lambda: [r.http_url for r in manager.state().replicas], rate_rps).start()
            up = UpProcess(env, f"http://127.0.0.1:{api_port}", Path(tmp) / "up.log", ("--advisory",)).start()
            victim = manager.state().replicas[-1].name
            report = run_cases(
                set_faults=manager.set_faults,
                victim=victim,
                events_since=ApiEvents(up.api_url).since,
                scrape_interval_s=scrape_interval_s,
                clean_s=clean_s,
            )
            report["replicas"] = replicas
            report["rate_rps_per_replica"] = rate_rps
            report["requests_sent"] = load.sent
        except Exception as exc:  # noqa: BLE001 - report the reason, clean up below
            fail(f"bench faults failed: {exc}")
        finally:
            if load is not None:
                load.stop()
            if up is not None:
                up.stop()
            manager.down()
    if json_out:
        print_json(report)
