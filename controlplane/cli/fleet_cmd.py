"""`fleetpilot fleet ...`: start, inspect and change the local fleet of Triton replicas."""

from __future__ import annotations

import signal
import sys
import threading

import typer
from rich.console import Console
from rich.table import Table

from controlplane.cli import app
from controlplane.cli.common import ConfigOption, fail, fleet_manager, print_json, settings_or_exit

fleet_app = typer.Typer(no_args_is_help=True, help="Local fleet of real tritonserver replicas.")
app.add_typer(fleet_app, name="fleet")
console = Console(stderr=True)


def _manager(config: str | None):
    return fleet_manager(settings_or_exit(config))


def _run(fn, *args):
    from serving.fleet import FleetError  # noqa: PLC0415
    from serving.fleet_state import FleetStateError  # noqa: PLC0415
    from serving.triton_env import TritonNotFound  # noqa: PLC0415

    try:
        return fn(*args)
    except (FleetError, FleetStateError, TritonNotFound, ValueError) as exc:
        fail(str(exc))


def _print_table(statuses) -> None:
    table = Table(title="fleet")
    for col in ("name", "zone", "state", "device", "http_url", "metrics_url", "pid"):
        table.add_column(col)
    for st in statuses:
        r = st.record
        table.add_row(r.name, r.zone, st.state, r.device, r.http_url, r.metrics_url, str(r.pid))
    Console(width=None if sys.stdout.isatty() else 200).print(table)


@fleet_app.command("up")
def up(
    replicas: int = typer.Option(
        None, "--replicas", "-n", min=1, help="Replicas to run (default fleet.replicas_default)."
    ),
    json_out: bool = typer.Option(False, "--json", help="Print the fleet as JSON."),
    foreground: bool = typer.Option(
        False, "--foreground", help="Stay in the foreground; SIGTERM/SIGINT stops the fleet (containers)."
    ),
    config: str = ConfigOption,
) -> None:
    """Start replicas until N are running; returns when all are ready (or stays, with --foreground)."""
    settings = settings_or_exit(config)
    mgr = fleet_manager(settings)
    n = replicas or settings.fleet.replicas_default
    console.print(
        f"starting fleet of {n} replica(s) on {mgr.device} (models: {', '.join(settings.fleet.models)}) ..."
    )
    _run(mgr.up, n)
    statuses = mgr.status()
    print_json([s.to_json() for s in statuses]) if json_out else _print_table(statuses)
    if foreground:
        stop = threading.Event()
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda *_: stop.set())
        stop.wait()
        _run(mgr.down)


@fleet_app.command("status")
def status(json_out: bool = typer.Option(False, "--json"), config: str = ConfigOption) -> None:
    """Replicas in the state file and their live state (ready, unready, starting, exited)."""
    statuses = _run(_manager(config).status)
    print_json([s.to_json() for s in statuses]) if json_out else _print_table(statuses)


@fleet_app.command("down")
def down(config: str = ConfigOption) -> None:
    """Stop every replica (SIGTERM, then SIGKILL after fleet.stop_timeout_s)."""
    stopped = _run(_manager(config).down)
    console.print(f"stopped {len(stopped)} replica(s)")


@fleet_app.command("add")
def add(
    zone: str = typer.Option(None, help="Zone for the new replica (default: the emptiest)."),
    config: str = ConfigOption,
) -> None:
    """Add one replica."""
    rec = _run(_manager(config).add, zone)
    print_json(rec.to_json())


@fleet_app.command("remove")
def remove(name: str, config: str = ConfigOption) -> None:
    """Stop and forget one replica."""
    rec = _run(_manager(config).remove, name)
    console.print(f"removed {rec.name}")


@fleet_app.command("replace")
def replace(name: str, config: str = ConfigOption) -> None:
    """Start a fresh replica in the same zone, then stop the old one."""
    rec = _run(_manager(config).replace, name)
    print_json(rec.to_json())


@fleet_app.command("instances")
def instances(
    name: str, model: str, count: int = typer.Argument(..., min=1, max=64), config: str = ConfigOption
) -> None:
    """Change a model's instance count on a live replica (Triton model load API)."""
    rec = _run(_manager(config).set_instance_count, name, model, count)
    console.print(f"{rec.name}: {model} now has {count} instance(s)")


@fleet_app.command("fault")
def fault(
    name: str,
    latency_ms: float = typer.Option(0.0, "--latency-ms", min=0, help="Latency added to every request (ms)."),
    error_rate: float = typer.Option(
        0.0, "--error-rate", min=0, max=1, help="Fraction of requests that fail (0-1)."
    ),
    cache_off: bool = typer.Option(False, "--cache-off", help="Disable the response cache on this replica."),
    memory_growth_mb_per_s: float = typer.Option(
        0.0, "--memory-growth-mb-per-s", min=0, help="Leak memory at this rate (MiB/s)."
    ),
    clear: bool = typer.Option(False, "--clear", help="Remove every fault."),
    config: str = ConfigOption,
) -> None:
    """Inject faults into a live replica without restarting it (--clear removes them)."""
    from serving.faults import Faults  # noqa: PLC0415

    faults = Faults() if clear else Faults(latency_ms, error_rate, cache_off, memory_growth_mb_per_s)
    rec = _run(_manager(config).set_faults, name, faults)
    console.print(f"{rec.name}: faults now {faults}")
