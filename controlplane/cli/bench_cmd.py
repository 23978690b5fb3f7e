"""`fleetpilot bench ...`: benchmarks that print one JSON object (ratios against a baseline run in the same process)."""

from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path

import typer

from controlplane.cli import app
from controlplane.cli.common import ConfigOption, fail, fleet_manager, print_json, settings_or_exit

bench_app = typer.Typer(no_args_is_help=True, help="Benchmarks (JSON output).")
app.add_typer(bench_app, name="bench")


@bench_app.command("router")
def bench_router(
    rate_rps: float = typer.Option(
        500.0, "--rate-rps", min=1, help="Open-loop request rate, each path (requests/s)."
    ),
    duration_s: float = typer.Option(10.0, "--duration-s", min=1, help="Measured duration per path (s)."),
    model: str = typer.Option("classifier-small", "--model"),
    json_out: bool = typer.Option(True, "--json/--no-json"),
    config: str = ConfigOption,
) -> None:
    """Requests/s and added latency (p50, p99) through the router vs straight to Triton, same run.

    Starts its own one-replica fleet and router on spare ports (base config ports + 500) in a
    temporary data dir, so a running fleet is left alone.
    """
    from controlplane.cli.router_cmd import router_options  # noqa: PLC0415
    from serving.router.bench import measure_router_overhead  # noqa: PLC0415
    from serving.router.server import RouterStartError, start_background, stop_background  # noqa: PLC0415

    base = settings_or_exit(config)
    with tempfile.TemporaryDirectory(prefix="fleetpilot-bench-") as tmp:
        env = {
            "FLEETPILOT_DATA_DIR": tmp,
            "FLEETPILOT_FLEET__TRITON_BASE_PORT": str(base.fleet.triton_base_port + 500),
            "FLEETPILOT_ROUTER__PORT": str(base.router.port + 500),
            "FLEETPILOT_FLEET__MODELS": f'["{model}"]',
            # The bench must not shed its own load.
            "FLEETPILOT_ROUTER__MAX_INFLIGHT_REQUESTS": "100000",
        }
        os.environ.update(env)
        settings = settings_or_exit(config)
        mgr = fleet_manager(settings)
        typer.secho(f"starting 1 replica with {model} ...", err=True)
        run_dir = Path(tmp) / "router"
        try:
            mgr.up(1)
            replica = mgr.state().replicas[0]
            try:
                router = start_background(router_options(settings), run_dir)
            except RouterStartError as exc:
                fail(f"the bench's router did not start: {exc}")
            # One health round marks the replica healthy.
            time.sleep(2 * settings.router.health_check_interval_s)
            result = measure_router_overhead(replica.http_url, router.url, model, rate_rps, duration_s)
        finally:
            stop_background(run_dir)
            mgr.down()
    result["machine_cores"] = os.cpu_count()
    print_json(result) if json_out else typer.echo(result)


@bench_app.command("int8")
def bench_int8(json_out: bool = typer.Option(True, "--json/--no-json")) -> None:
    """Speed and agreement of classifier-large-int8 (dynamic quantisation) against fp32, same process."""
    from serving.models.classifier import int8_report  # noqa: PLC0415

    report = int8_report()
    print_json(report) if json_out else typer.echo(report)


@bench_app.command("ingest")
def bench_ingest(
    targets: int = typer.Option(100, "--targets", min=1, help="Triton-shaped targets scraped per round."),
    models_per_target: int = typer.Option(20, "--models-per-target", min=1),
    rounds: int = typer.Option(8, "--rounds", min=1, help="Timed scrape rounds."),
    json_out: bool = typer.Option(True, "--json/--no-json"),
) -> None:
    """Exposition text -> committed rows, vs a naive pipeline and the raw insert ceiling, same process."""
    from collectors.bench_ingest import run_ingest_bench  # noqa: PLC0415

    result = run_ingest_bench(targets=targets, models_per_target=models_per_target, rounds=rounds)
    print_json(result) if json_out else typer.echo(result)


@bench_app.command("query")
def bench_query(
    replicas: int = typer.Option(1000, "--replicas", min=1, help="Replicas in the synthetic fleet."),
    days: float = typer.Option(7.0, "--days", min=0.1, help="History length (days)."),
    json_out: bool = typer.Option(True, "--json/--no-json"),
) -> None:
    """Dashboard standard panels over days of a large fleet: from rollups vs raw, same run."""
    from controlplane.store.bench_query import run_query_bench  # noqa: PLC0415

    with tempfile.TemporaryDirectory(prefix="fleetpilot-bench-query-") as tmp:
        result = run_query_bench(tmp, replicas=replicas, days=days)
    print_json(result) if json_out else typer.echo(result)


@bench_app.command("nab")
def bench_nab(
    data: Path = typer.Option(
        ..., "--data", exists=True, file_okay=False, help="NAB data folder (<category>/<name>.csv)."
    ),
    labels: Path = typer.Option(
        ..., "--labels", exists=True, dir_okay=False, help="NAB combined_windows.json."
    ),
    scores: Path = typer.Option(
        None, "--scores", help="Score files from `fleetpilot detect --nab`; default runs the detector."
    ),
    json_out: bool = typer.Option(True, "--json/--no-json"),
) -> None:
    """NAB normalised scores (standard, reward_low_FP_rate, reward_low_FN_rate) of the detector."""
    from controlplane.anomaly.nab_bench import run_nab_bench  # noqa: PLC0415

    result = run_nab_bench(data, labels, scores)
    print_json(result) if json_out else typer.echo(result)


@bench_app.command("detect")
def bench_detect(json_out: bool = typer.Option(True, "--json/--no-json")) -> None:
    """Milliseconds per detection tick over 1,000 series (target: under 50 ms)."""
    from controlplane.anomaly.tick import run_tick_bench  # noqa: PLC0415

    result = run_tick_bench()
    print_json(result) if json_out else typer.echo(result)
