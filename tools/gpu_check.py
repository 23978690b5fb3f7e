"""GPU check, run on a machine with an NVIDIA GPU (issue 3's device check).

    python tools/gpu_check.py --out DIR       # on the GPU machine
    python tools/gpu_check.py --replay DIR    # here: spooled batches -> embedded store -> query

On the GPU machine: one replica with the models on the GPU (instance kind GPU), load on
classifier-large and chat-lm, the real collector scraping Triton's GPU families every 2 s. The
store lives on the other machine, so the collector's sink finds it unreachable and spools every
batch to DIR/spool (the same outage path as production); `--replay` then feeds that spool into
the embedded ClickHouse engine through Sink.replay() and queries the GPU series.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from collectors.scheduler import Collector  # noqa: E402
from collectors.sink import Sink  # noqa: E402
from controlplane.config import CollectConfig, load_settings  # noqa: E402
from controlplane.store.errors import StoreUnavailable  # noqa: E402

GPU_METRICS = (
    "nv_gpu_utilization",
    "nv_gpu_memory_used_bytes",
    "nv_gpu_power_usage",
    "nv_energy_consumption",
)


class StoreOnAnotherMachine:
    def insert_samples(self, batch, dedup_token: str) -> int:
        raise StoreUnavailable("the store is on the other machine; batches are spooled for replay there")


def _post(url: str, body: dict, timeout_s: float = 30) -> bytes:
    req = urllib.request.Request(
        url, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(req, timeout=timeout_s) as resp:
        return resp.read()


def _load(http_url: str, stop: threading.Event, counts: dict, seed: int) -> None:
    rng = np.random.default_rng(seed)
    while not stop.is_set():
        feats = rng.standard_normal((64, 64)).astype(np.float32)  # unique: the cache cannot answer
        body = {
            "inputs": [
                {"name": "features", "shape": [64, 64], "datatype": "FP32", "data": feats.ravel().tolist()}
            ]
        }
        try:
            _post(f"{http_url}/v2/models/classifier-large/infer", body)
            counts["large"] += 1
            _post(
                f"{http_url}/v2/models/chat-lm/generate_stream",
                {"input_ids": list(range(1, 65)), "max_tokens": 16},
            )
            counts["chat"] += 1
        except urllib.error.HTTPError as exc:
            counts["errors"] += 1
            counts["last_error"] = f"{exc}: {exc.read()[:300]!r}"
        except OSError as exc:
            counts["errors"] += 1
            counts["last_error"] = str(exc)[:300]


async def _scrape_loop(collector: Collector, stop: threading.Event, interval_s: float) -> int:
    cycles = 0
    while not stop.is_set():
        await collector.scrape_once()
        cycles += 1
        await asyncio.sleep(interval_s)
    await collector.scrape_once()
    await collector.close()  # final flush: into the spool, since the store is elsewhere
    return cycles + 1


def on_gpu(out: Path, load_s: float) -> dict:
    os.environ.setdefault("FLEETPILOT_DATA_DIR", tempfile.mkdtemp(prefix="fp-gpu-"))
    os.environ["FLEETPILOT_FLEET__MODELS"] = '["classifier-small", "classifier-large", "chat-lm"]'
    settings = load_settings()
    from controlplane.cli.common import fleet_manager  # noqa: PLC0415

    mgr = fleet_manager(settings)
    report: dict = {"device": mgr.device}
    t0 = time.monotonic()
    mgr.up(1)
    rec = mgr.state().replicas[0]
    report["replica_ready_s"] = round(time.monotonic() - t0, 1)
    with urllib.request.urlopen(f"{rec.http_url}/v2/models/classifier-large/config") as resp:
        report["classifier_large_instance_group"] = json.loads(resp.read())["instance_group"]
    cfg = CollectConfig(scrape_interval_s=2.0, batch_max_rows=10_000_000, batch_max_age_s=3600, nvml=False)
    collector = Collector(cfg, StoreOnAnotherMachine(), out / "spool", settings.fleet_state_path)
    stop = threading.Event()
    counts = {"large": 0, "chat": 0, "errors": 0}
    workers = [threading.Thread(target=_load, args=(rec.http_url, stop, counts, i)) for i in range(6)]
    for w in workers:
        w.start()
    timer = threading.Timer(load_s, stop.set)
    timer.start()
    try:
        report["scrape_cycles"] = asyncio.run(_scrape_loop(collector, stop, cfg.scrape_interval_s))
    finally:
        stop.set()
        for w in workers:
            w.join()
    with urllib.request.urlopen(rec.metrics_url) as resp:
        text = resp.read().decode()
    report["last_scrape_gpu_lines"] = [line for line in text.splitlines() if line.startswith(GPU_METRICS)][
        :12
    ]
    report["requests"] = counts
    log_lines = rec.log_path.read_text(errors="replace").splitlines()
    report["triton_log_errors"] = [
        line[:400] for line in log_lines if line.startswith("E") and "response cache" not in line
    ][:8]
    report["triton_log_tail"] = [line[:400] for line in log_lines[-8:]]
    mgr.down()
    report["spool_files"] = sorted(p.name for p in (out / "spool").glob("*.arrow"))
    return report


def replay(spool_dir: Path) -> dict:
    from controlplane.store import open_store  # noqa: PLC0415

    with tempfile.TemporaryDirectory(prefix="fp-gpu-replay-") as tmp:
        # Sink.replay deletes what it inserted: work on a copy of the fetched (read-only) spool.
        work = Path(tmp) / "spool"
        work.mkdir()
        for f in spool_dir.glob("*.arrow"):
            (work / f.name).write_bytes(f.read_bytes())
        store = open_store(f"chdb:///{Path(tmp) / 'clickhouse'}")
        try:
            sink = Sink(store, work)
            emptied = sink.replay()
            names = ", ".join(f"'{m}'" for m in GPU_METRICS)
            rows = store.query(
                f"SELECT metric, count() AS samples, min(value) AS min_value, max(value) AS max_value, "
                f"sum(delta) AS increase FROM samples WHERE metric IN ({names}) GROUP BY metric ORDER BY metric"
            ).to_dicts()
            total = store.query("SELECT count() FROM samples").rows[0][0]
        finally:
            store.close()
    return {"spool_replayed_completely": emptied, "rows_in_store": total, "gpu_series": rows}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", type=Path, help="GPU machine: folder for the spool and the report")
    ap.add_argument("--load-s", type=float, default=40.0)
    ap.add_argument("--replay", type=Path, help="here: a spool folder fetched from the GPU machine")
    args = ap.parse_args()
    if args.replay:
        print(json.dumps(replay(args.replay), indent=2, default=str))
        return
    args.out.mkdir(parents=True, exist_ok=True)
    report = on_gpu(args.out, args.load_s)
    (args.out / "gpu_report.json").write_text(json.dumps(report, indent=2, default=str))
    print(json.dumps(report, indent=2, default=str))


if __name__ == "__main__":
    main()
