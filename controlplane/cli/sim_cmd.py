"""`fleetpilot sim ...`: the fleet simulator (controlplane/sim); prints simulated seconds per wall second."""

from __future__ import annotations

import sys

import typer

from controlplane.cli import app
from controlplane.cli.common import fail, print_json

sim_app = typer.Typer(no_args_is_help=True, help="Fleet simulator: replay a trace through a simulated fleet.")
app.add_typer(sim_app, name="sim")


def _progress_bar(total: int, label: str):
    from rich.console import Console  # noqa: PLC0415
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn  # noqa: PLC0415

    bar = Progress(
        TextColumn(label), BarColumn(), TextColumn("{task.percentage:>3.0f}%"), TimeElapsedColumn(),
        console=Console(file=sys.stderr), transient=True,
    )  # fmt: skip
    task = bar.add_task(label, total=total)
    return bar, lambda done: bar.update(task, completed=done)


@sim_app.command("run")
def sim_run(
    trace: str = typer.Option(
        ..., "--trace", help="Trace file (Azure CSV, JSONL, or rate CSV ts_s,rate_rps)."
    ),
    fmt: str | None = typer.Option(None, "--format", help="azure | jsonl | rate (default: from the file)."),
    policy: str = typer.Option(
        "fleetpilot", "--policy", help="fleetpilot | hpa | kpa | dynamo | static | oracle"
    ),
    rate_scale: float = typer.Option(1.0, "--rate-scale", min=0.0, help="Multiply the load by K."),
    slo_ms: float = typer.Option(2000.0, "--slo-ms", min=1.0, help="p99 latency SLO (ms)."),
    startup_s: float = typer.Option(60.0, "--startup-s", min=0.0, help="Replica startup delay (seconds)."),
    zones: int = typer.Option(1, "--zones", min=1),
    mtbf_s: float = typer.Option(
        0.0, "--mtbf-s", min=0.0, help="Mean time between replica failures (s; 0: none)."
    ),
    seed: int = typer.Option(0, "--seed"),
) -> None:
    """One policy over one trace: its metrics and the simulator's speed (sim-s per wall-s), as JSON."""
    from controlplane.sim.bench import POLICIES, BenchOptions, run_bench  # noqa: PLC0415
    from controlplane.sim.workload import load_workload  # noqa: PLC0415
    from serving.replay.traces import TraceError  # noqa: PLC0415

    if policy not in POLICIES:
        fail(f"--policy {policy!r} is not one of {', '.join(POLICIES)}")
    try:
        workload = load_workload(trace, fmt, rate_scale=rate_scale, seed=seed)
        # The oracle always runs: it is the reference for gpu_hours_vs_oracle.
        pols = (policy,) if policy == "oracle" else (policy, "oracle")
        opts = BenchOptions(
            slo_ms=slo_ms, startup_s=startup_s, zones=zones, mtbf_s=mtbf_s, seed=seed, policies=pols
        )
        bar, update = _progress_bar(workload.ticks * len(pols), f"simulating {workload.name}")
        seen: dict[str, int] = {}
        with bar:

            def on_progress(name: str, done: int) -> None:
                seen[name] = done
                update(sum(seen.values()))

            report = run_bench(workload, opts, on_progress)
    except (TraceError, ValueError) as exc:
        fail(str(exc))
        return
    typer.secho(f"{report['setup']['sim_s_per_wall_s']:.0f} simulated s per wall s", err=True)
    print_json(
        {"policy": policy, **report["policies"][policy], "trace": report["trace"], "setup": report["setup"]}
    )


@sim_app.command("scale")
def sim_scale(
    replicas: int = typer.Option(10_000, "--replicas", min=1, help="Replicas at the daily peak."),
    hours: float = typer.Option(24.0, "--hours", min=0.01, help="Simulated hours."),
    zones: int = typer.Option(3, "--zones", min=1),
    mtbf_s: float = typer.Option(
        86_400.0, "--mtbf-s", min=0.0, help="Mean time between failures per replica (s)."
    ),
    seed: int = typer.Option(0, "--seed"),
) -> None:
    """A fleet of --replicas at its daily peak under fleetpilot's policy; prints sim-s per wall-s and
    the wall time a 24 h run takes at that speed."""
    from controlplane.sim.scale import scale_run  # noqa: PLC0415

    ticks = int(hours * 3600)
    bar, update = _progress_bar(ticks, f"simulating {replicas} replicas")
    with bar:
        out = scale_run(replicas, hours * 3600.0, zones=zones, mtbf_s=mtbf_s, seed=seed, progress=update)
    typer.secho(f"{out['sim_s_per_wall_s']:.0f} simulated s per wall s", err=True)
    print_json(out)
