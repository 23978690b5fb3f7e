"""`fleetpilot profile MODEL --replica URL`: stepped-load sweep of one replica, the fitted
capacity at the SLO, and the curve stored in the `capacity_curves` table."""

from __future__ import annotations

import typer

from controlplane.cli import app
from controlplane.cli.common import ConfigOption, fail, print_json, settings_or_exit

# SLO used when no --slo-ms is given (milliseconds). Settings have no SLO section yet.
DEFAULT_P99_SLO_MS = 50.0  # classifiers: end-to-end p99
DEFAULT_TTFT_SLO_MS = 500.0  # chat-lm: time to first token, p99
DEFAULT_ITL_SLO_MS = 100.0  # chat-lm: inter-token latency, p99


@app.command("profile")
def profile_cmd(
    model: str = typer.Argument(..., help="Model to profile, e.g. classifier-small or chat-lm."),
    replica: str = typer.Option(
        ..., "--replica", help="The replica's Triton HTTP URL, e.g. http://127.0.0.1:8100."
    ),
    slo_ms: float = typer.Option(
        None,
        "--slo-ms",
        help=f"p99 bound (ms; for chat-lm the TTFT p99 bound). Default {DEFAULT_P99_SLO_MS:g}.",
    ),
    itl_slo_ms: float = typer.Option(
        DEFAULT_ITL_SLO_MS, "--itl-slo-ms", help="chat-lm: inter-token p99 bound (ms)."
    ),
    step_s: float = typer.Option(5.0, "--step-s", min=0.2, help="Length of each load step (seconds)."),
    start_rps: float = typer.Option(10.0, "--start-rps", min=0.1, help="First load step (requests/s)."),
    max_rps: float = typer.Option(2000.0, "--max-rps", min=0.1, help="Highest load step (requests/s)."),
    bisect_steps: int = typer.Option(
        2, "--bisect-steps", min=0, help="Refinement steps after the first bad one."
    ),
    min_requests: int = typer.Option(
        50, "--min-requests", min=1, help="Each step lasts long enough for this many requests (count)."
    ),
    arrivals: str = typer.Option(
        "constant", "--arrivals", help="Request spacing in a step: constant | poisson."
    ),
    no_store: bool = typer.Option(
        False, "--no-store", help="Print the curve only; do not write it to the store."
    ),
    json_out: bool = typer.Option(False, "--json", help="Print one JSON object on stdout."),
    config: str = ConfigOption,
) -> None:
    """Double the load until the SLO breaks, bisect, fit a monotone curve, print the capacity."""
    from rich.console import Console  # noqa: PLC0415

    from controlplane.capacity.model import Slo  # noqa: PLC0415
    from controlplane.capacity.profile import (  # noqa: PLC0415
        CHAT_MODEL,
        ReplicaNotReady,
        SweepOptions,
        curve_row,
        profile_replica,
    )

    settings = settings_or_exit(config)
    try:
        if model == CHAT_MODEL:
            slo = Slo(ttft_p99_ms=slo_ms or DEFAULT_TTFT_SLO_MS, itl_p99_ms=itl_slo_ms)
        else:
            slo = Slo(p99_ms=slo_ms or DEFAULT_P99_SLO_MS)
        opts = SweepOptions(
            step_s=step_s,
            start_rps=start_rps,
            max_rps=max_rps,
            bisect_steps=bisect_steps,
            min_requests=min_requests,
            arrivals=arrivals,
        )
    except ValueError as exc:
        fail(str(exc))
    err = Console(stderr=True)

    def on_step(p) -> None:
        lat = f"p99={p.p99_ms}ms" if slo.p99_ms else f"ttft_p99={p.ttft_p99_ms}ms itl_p99={p.itl_p99_ms}ms"
        err.print(
            f"  offered {p.offered_rps:>8.1f} rps  achieved {p.achieved_rps:>8.1f}  {lat}  "
            f"errors={p.error_ratio:.2%}  send_lag_p99={p.send_lag_p99_ms}ms"
        )

    err.print(f"profiling {model} on {replica} ({step_s:g} s steps, SLO {slo.metrics()})")
    try:
        result = profile_replica(replica.rstrip("/"), model, slo, opts, on_step=on_step)
    except ReplicaNotReady as exc:
        fail(str(exc))
    out = result.to_json()
    out["stored"], out["store_note"] = False, "not stored (--no-store)"
    if not no_store:
        out["stored"], out["store_note"] = _store(settings.store_dsn, curve_row(result))
    if json_out:
        print_json(out)
        return
    est = result.estimate
    bound = " (lower bound: the SLO held at every load tried)" if est.lower_bound else ""
    typer.echo(
        f"{model} on {result.kind.name}: capacity {est.capacity_rps:.1f} rps at SLO {slo.metrics()} "
        f"[{est.reason}]{bound}"
    )
    if result.client_limited():
        typer.secho(
            "warning: the sender fell behind its schedule at the first failing step; the capacity "
            "may be the load generator's limit (run the profile from another machine)",
            fg=typer.colors.YELLOW,
            err=True,
        )
    typer.echo(f"curve {result.curve_id}: {out['store_note']}")
    if not out["stored"] and not no_store:
        typer.secho(
            "the curve was NOT stored; the points above are all there is", fg=typer.colors.YELLOW, err=True
        )


def _store(dsn: str, row: dict) -> tuple[bool, str]:
    """Insert the curve; (False, why) when the store cannot be used from this process."""
    from controlplane.store import StoreError, StoreLocked, open_store  # noqa: PLC0415

    try:
        with open_store(dsn) as store:
            store.insert_rows("capacity_curves", [row])
    except StoreLocked:
        return False, (
            f"not stored: the embedded store {dsn} is owned by another process (fleetpilot up?); "
            "the curve above was printed only"
        )
    except StoreError as exc:
        return False, f"not stored: {exc}"
    return True, f"stored in capacity_curves ({dsn})"
