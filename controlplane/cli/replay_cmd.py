"""`fleetpilot replay TRACE`: open-loop replay of a request trace against the router."""

from __future__ import annotations

import asyncio
from pathlib import Path

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from controlplane.cli import app
from controlplane.cli.common import ConfigOption, fail, print_json, settings_or_exit

err_console = Console(stderr=True)


def _event_loop_runner() -> asyncio.Runner:
    try:
        import uvloop  # noqa: PLC0415 - optional speed-up of the sender loop

        return asyncio.Runner(loop_factory=uvloop.new_event_loop)
    except ImportError:  # pragma: no cover
        return asyncio.Runner()


def _print_summary(summary: dict) -> None:
    table = Table(title=f"replay of {Path(str(summary.get('trace'))).name}", show_header=True)
    table.add_column("figure")
    table.add_column("value", justify="right", overflow="fold")
    skip = {"errors_by_reason", "by_replica", "by_priority", "trace"}
    for key, value in summary.items():
        if key not in skip:
            table.add_row(key, "-" if value is None else str(value))
    for group in ("errors_by_reason", "by_replica"):
        for name, count in summary[group].items():
            table.add_row(f"{group}.{name}", str(count))
    for name, counts in summary["by_priority"].items():
        table.add_row(f"by_priority.{name}", ", ".join(f"{k}={v}" for k, v in counts.items() if v))
    Console().print(table)


@app.command("replay")
def replay_cmd(
    trace: Path = typer.Argument(..., help="Trace file: Azure LLM CSV, JSONL, or rate CSV (ts_s,rate_rps)."),
    speed: float = typer.Option(1.0, "--speed", help="Time compression: 10 plays the trace 10x faster."),
    limit: int = typer.Option(None, "--limit", min=1, help="Replay at most N requests."),
    fmt: str = typer.Option(
        None, "--format", help="azure | jsonl | rate (default: detected from the header / extension)."
    ),
    rate_scale: float = typer.Option(
        1.0, "--rate-scale", min=0.0, help="Rate traces: multiply every rate by K."
    ),
    router_url: str = typer.Option(
        None, "--router-url", help="Router base URL (default http://{bind_host}:{router.port})."
    ),
    results: Path = typer.Option(
        None, "--results", help="Results JSONL (default <data_dir>/replay/results-<timestamp>.jsonl)."
    ),
    priority_mix: str = typer.Option(
        "standard=1",
        "--priority-mix",
        help="Priority classes and weights, e.g. premium=0.2,standard=0.6,batch=0.2.",
    ),
    seed: int = typer.Option(
        0, "--seed", help="Seed of prompts, features, complexities, priorities and Poisson arrivals."
    ),
    skip_bad_lines: bool = typer.Option(
        False,
        "--skip-bad-lines",
        help="Skip and count malformed trace lines instead of failing on the first.",
    ),
    max_prompt_tokens: int = typer.Option(
        None, "--max-prompt-tokens", min=1, help="Override replay.max_prompt_tokens."
    ),
    max_generated_tokens: int = typer.Option(
        None, "--max-generated-tokens", min=1, help="Override replay.max_generated_tokens."
    ),
    json_out: bool = typer.Option(False, "--json", help="Print exactly one JSON summary object on stdout."),
    config: str = ConfigOption,
) -> None:
    """Replay TRACE open-loop (arrivals never wait for responses) against the router.

    Token traces (azure, jsonl) stream from chat-lm; rate traces send Poisson arrivals to the
    `classifier` route. A malformed trace line fails at once naming file and line (or is
    skipped and counted with --skip-bad-lines); a timestamp going backwards counts as
    malformed. Requests beyond replay.max_concurrency open at once are recorded as dropped.
    Exit status: 0 when the replay ran (whatever the responses), 2 on a bad trace, option or
    unreachable router, 130 when interrupted (partial results are kept).
    """
    from serving.replay.payloads import Caps, format_priority_mix, parse_priority_mix  # noqa: PLC0415
    from serving.replay.results import summarize  # noqa: PLC0415
    from serving.replay.runner import (  # noqa: PLC0415
        ReplayOptions,
        RouterUnreachable,
        check_router,
        default_results_path,
        replay,
    )
    from serving.replay.traces import TraceError, open_trace  # noqa: PLC0415

    settings = settings_or_exit(config)
    if not speed > 0:
        fail(f"--speed {speed} must be > 0")
    try:
        mix = parse_priority_mix(priority_mix, set(settings.router.admit_below_load_ratio))
    except ValueError as exc:
        fail(f"--priority-mix: {exc}")
    try:
        opened = open_trace(
            trace, fmt, limit=limit, rate_scale=rate_scale, seed=seed, skip_bad_lines=skip_bad_lines
        )
    except TraceError as exc:
        fail(str(exc))
    if opened.report.skipped_lines:
        err_console.print(
            f"[yellow]skipped {opened.report.skipped_lines} malformed line(s)[/], e.g. {opened.report.examples[0]}"
        )

    url = (router_url or f"http://{settings.bind_host}:{settings.router.port}").rstrip("/")
    caps = Caps(
        max_prompt_tokens or settings.replay.max_prompt_tokens,
        max_generated_tokens or settings.replay.max_generated_tokens,
    )
    options = ReplayOptions(
        router_url=url,
        caps=caps,
        speed=speed,
        request_timeout_s=settings.replay.request_timeout_s,
        max_concurrency=settings.replay.max_concurrency,
        seed=seed,
        priority_mix=mix,
    )
    results_path = results or default_results_path(settings.data_dir)

    with _event_loop_runner() as runner:
        try:
            runner.run(check_router(url))
        except RouterUnreachable as exc:
            fail(f"{exc}; start it with `fleetpilot router --background` or pass --router-url")

        expected = opened.expected_requests
        err_console.print(
            f"replaying {trace.name} ({opened.format}, {'~' if opened.format == 'rate' else ''}{expected} requests) "
            f"at {speed:g}x against {url}"
        )
        progress = Progress(
            TextColumn("replay"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("ok {task.fields[ok]} shed {task.fields[shed]} err {task.fields[err]}"),
            TimeElapsedColumn(),
            console=err_console,
            transient=False,
        )
        counts = {"ok": 0, "shed": 0, "err": 0}
        with progress:
            bar = progress.add_task("replay", total=expected, ok=0, shed=0, err=0)

            def on_result(result) -> None:
                key = result.status if result.status in ("ok", "shed") else "err"
                counts[key] += 1
                progress.update(bar, advance=1, **counts)

            try:
                run = runner.run(replay(opened.requests, options, results_path, on_result))
            except KeyboardInterrupt:
                fail(f"interrupted; partial results in {results_path}", code=130)

    summary = summarize(
        run.results,
        duration_s=run.duration_s,
        max_prompt_tokens=caps.max_prompt_tokens,
        max_generated_tokens=caps.max_generated_tokens,
        results_file=str(results_path),
        extra={
            "trace": str(trace),
            "format": opened.format,
            "speed": speed,
            "rate_scale": rate_scale if opened.format == "rate" else None,
            "priority_mix": format_priority_mix(mix),
            "skipped_lines": opened.report.skipped_lines,
            "router_url": url,
        },
    )
    if json_out:
        print_json(summary)
    else:
        _print_summary(summary)
