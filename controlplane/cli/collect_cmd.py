"""`fleetpilot collect`: scrape the fleet's Triton replicas (and static targets) into the store."""

from __future__ import annotations

import asyncio
import logging
import signal

import typer

from controlplane.cli import app
from controlplane.cli.common import ConfigOption, fail, print_json, settings_or_exit


@app.command("collect")
def collect(
    once: bool = typer.Option(
        False, "--once", help="Scrape every target once, write, print a JSON report and exit."
    ),
    config: str = ConfigOption,
) -> None:
    """Scrape Triton metrics, statistics and GPU telemetry into the store (Ctrl-C to stop)."""
    from collectors.gpu import NvmlSampler  # noqa: PLC0415
    from collectors.scheduler import Collector  # noqa: PLC0415

    try:
        from controlplane.store import StoreError, open_store  # noqa: PLC0415
    except ImportError as exc:
        fail(f"the store package is not available: {exc}")
        raise
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    settings = settings_or_exit(config)
    cfg = settings.collect
    try:
        store = open_store(
            settings.store_dsn,
            cluster=settings.store.cluster,
            raw_ttl_days=settings.store.raw_ttl_days,
            rollup_ttl_days=settings.store.rollup_ttl_days,
        )
    except StoreError as exc:
        fail(f"cannot open the store {settings.store_dsn}: {exc}")
        raise
    nvml = NvmlSampler.open() if cfg.nvml else None
    collector = Collector(cfg, store, settings.spool_dir, settings.fleet_state_path, nvml=nvml)

    async def main() -> dict | None:
        if once:
            report = await collector.scrape_once()
            report.flush = await collector.flush()
            await collector.close()
            return report.to_json()
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        typer.secho(
            f"collecting every {cfg.scrape_interval_s} s (shard {cfg.shard_index}/{cfg.shard_count}); Ctrl-C stops",
            err=True,
        )
        await collector.run(stop)
        return None

    try:
        result = asyncio.run(main())
    finally:
        store.close()
    if result is not None:
        print_json(result)
        if result["flush"] and result["flush"]["dropped_rows"]:
            raise typer.Exit(1)
