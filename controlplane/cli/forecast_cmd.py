"""`fleetpilot forecast backtest`: score the registry's forecasters on a CSV series with the fixed
protocol of issue 5 and say which one the registry would select."""

from __future__ import annotations

from pathlib import Path

import typer

from controlplane.cli import app
from controlplane.cli.common import fail, print_json

forecast_app = typer.Typer(no_args_is_help=True, help="Load forecasts: backtests and selection.")
app.add_typer(forecast_app, name="forecast")


@forecast_app.command("backtest")
def backtest_cmd(
    series: Path = typer.Option(..., "--series", help="Time series CSV with a header row."),
    time_col: str = typer.Option(None, "--time-col", help="Timestamp column (default: the first column)."),
    value_col: str = typer.Option(None, "--value-col", help="Value column (default: the second column)."),
    horizon_steps: int = typer.Option(..., "--horizon-steps", min=1, help="Rows ahead to forecast, e.g. 6."),
    json_out: bool = typer.Option(False, "--json", help="Print one JSON object on stdout."),
    anchors: bool = typer.Option(
        True,
        "--anchors/--no-anchors",
        help="Also score the statsforecast anchors (AutoARIMA, AutoETS, MSTL); they cost most of the time.",
    ),
) -> None:
    """Rolling-origin backtest: 8 origins in the last 20% of rows; rel_mae is relative to seasonal naive."""
    from rich.console import Console  # noqa: PLC0415
    from rich.progress import Progress  # noqa: PLC0415

    from controlplane.forecast.registry import (  # noqa: PLC0415
        N_ORIGINS,
        backtest_origins,
        backtest_report,
        default_forecasters,
    )
    from controlplane.forecast.series import SeriesInputError, read_series_csv  # noqa: PLC0415

    try:
        s = read_series_csv(series, time_col, value_col)
    except SeriesInputError as exc:
        fail(str(exc))
    try:
        backtest_origins(len(s.values), horizon_steps)
    except ValueError as exc:
        fail(f"{series}: {exc}")
    # Selection runs the same protocol on the rows before the first origin: 2 x 8 origins of work.
    with Progress(console=Console(stderr=True), transient=True) as bar:
        task = bar.add_task(f"backtest {series.name}", total=2 * N_ORIGINS)
        try:
            report = backtest_report(
                s.values,
                s.timestamps_s,
                horizon_steps,
                default_forecasters(anchors=anchors),
                on_origin=lambda: bar.advance(task),
            )
        except ValueError as exc:
            fail(f"{series}: {exc}")
    if json_out:
        print_json(report)
        return
    typer.echo(f"selected: {report['selected']}")
    for name, sc in report["forecasters"].items():
        typer.echo(
            f"{name:24s} mae={sc['mae']:.4g} rel_mae={sc['rel_mae']:.3f} "
            f"pinball_p90={sc['pinball_p90']:.4g} p90_coverage={sc['p90_coverage']:.2f}"
        )
