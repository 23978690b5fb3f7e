"""`fleetpilot bench autoscale`: fleetpilot vs HPA, Knative KPA, a Dynamo-like planner, static
and an oracle on one trace, in the fleet simulator (controlplane/sim)."""

from __future__ import annotations

import json
import sys

import typer

from controlplane.cli.bench_cmd import bench_app
from controlplane.cli.common import fail, print_json


@bench_app.command("autoscale")
def bench_autoscale(
    trace: str = typer.Option(
        ..., "--trace", help="Trace file (Azure CSV, JSONL, or rate CSV ts_s,rate_rps)."
    ),
    fmt: str | None = typer.Option(None, "--format", help="azure | jsonl | rate (default: from the file)."),
    rate_scale: float = typer.Option(
        1.0,
        "--rate-scale",
        min=0.0,
        help="Multiply the load by K (rate traces: every rate; token traces: K independent, shifted copies).",
    ),
    slo_ms: float = typer.Option(2000.0, "--slo-ms", min=1.0, help="p99 latency SLO per request (ms)."),
    startup_s: float = typer.Option(60.0, "--startup-s", min=0.0, help="Replica startup delay (seconds)."),
    tick_s: float = typer.Option(1.0, "--tick-s", min=0.01, max=2.0, help="Simulation step (seconds)."),
    zones: int = typer.Option(1, "--zones", min=1, help="Zones the replicas are spread over."),
    mtbf_s: float = typer.Option(
        0.0, "--mtbf-s", min=0.0, help="Mean time between failures of one replica (seconds; 0: none)."
    ),
    forecaster: str = typer.Option(
        "seasonal_profile", "--forecaster", help="fleetpilot's forecaster (controlplane.forecast registry)."
    ),
    seed: int = typer.Option(0, "--seed"),
    json_out: bool = typer.Option(True, "--json/--no-json"),
) -> None:
    """SLO attainment, GPU-hours (and vs the oracle), scale actions and p99 per policy, one JSON object.

    Every policy runs on the same simulated fleet with the same capacity at the SLO (profiled
    from the simulated replica); fleetpilot is the live controller's own decide_replicas.
    """
    from rich.console import Console  # noqa: PLC0415
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn  # noqa: PLC0415

    from controlplane.sim.bench import BenchOptions, run_bench  # noqa: PLC0415
    from controlplane.sim.workload import load_workload  # noqa: PLC0415
    from serving.replay.traces import TraceError  # noqa: PLC0415

    try:
        workload = load_workload(trace, fmt, rate_scale=rate_scale, tick_s=tick_s, seed=seed)
        opts = BenchOptions(
            slo_ms=slo_ms, startup_s=startup_s, zones=zones, mtbf_s=mtbf_s, seed=seed, forecaster=forecaster
        )
    except (TraceError, ValueError) as exc:
        fail(str(exc))
        return
    console = Console(file=sys.stderr)
    with Progress(
        TextColumn("{task.description}"), BarColumn(), TextColumn("{task.percentage:>3.0f}%"),
        TimeElapsedColumn(), console=console, transient=True,
    ) as bar:  # fmt: skip
        # The oracle may run more than once (its leanest load meeting the SLO): the bar counts
        # one pass per policy and the oracle's retries extend it.
        total = workload.ticks * len(opts.policies)
        task = bar.add_task(f"simulating {workload.name}", total=total)
        done: dict[str, int] = {}

        def on_progress(name: str, ticks: int) -> None:
            prev = done.get(name, 0)
            if ticks < prev:  # a new oracle pass
                bar.update(task, total=bar.tasks[0].total + workload.ticks)
                prev = 0
            done[name] = ticks
            bar.update(task, advance=ticks - prev, description=f"simulating {workload.name}: {name}")

        try:
            report = run_bench(workload, opts, on_progress)
        except ValueError as exc:
            fail(str(exc))
            return
    # stdout: exactly the object; how it was set up goes to stderr for the record.
    record = {k: report[k] for k in ("trace", "setup", "fleetpilot_verdict")}
    typer.echo(json.dumps(record), err=True)
    out = {"policies": report["policies"]}
    print_json(out) if json_out else typer.echo(out)
