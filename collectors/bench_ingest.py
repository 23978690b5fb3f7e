"""Ingest benchmark: exposition text of many Triton-shaped targets -> committed rows, one process.

Three pipelines over the same embedded store, same run:
- ours: ExpositionParser (identity cached across scrapes) -> columnar chunks -> Sink -> Store.insert_samples;
- naive: prometheus_client's text parser -> one Python row per sample -> row-oriented client.insert;
- ceiling: Store.insert_samples of the very batches `ours` produced, prebuilt (no parsing at all).
Rates are samples per wall-clock second; CPU seconds of this process are reported beside them
(the embedded engine may use extra threads while inserting).
"""

from __future__ import annotations

import datetime as dt
import os
import random
import tempfile
import time
from pathlib import Path

from collectors.columns import Chunk
from collectors.exposition import ExpositionParser
from collectors.sink import Sink
from collectors.telemetry import CollectorMetrics

_REASONS = ("OTHER", "BACKEND", "CANCELED", "REJECTED")
_COUNTERS = (
    "nv_inference_request_success",
    "nv_inference_count",
    "nv_inference_exec_count",
    "nv_inference_request_duration_us",
    "nv_inference_queue_duration_us",
    "nv_inference_compute_input_duration_us",
    "nv_inference_compute_infer_duration_us",
    "nv_inference_compute_output_duration_us",
    "nv_cache_num_hits_per_model",
    "nv_cache_num_misses_per_model",
    "nv_cache_hit_duration_per_model",
    "nv_cache_miss_duration_per_model",
)
_TTFT_LE = ("0.01", "0.025", "0.05", "0.1", "0.25", "0.5", "1", "+Inf")


def triton_text(models: int, rnd: int, seed: int) -> str:
    """One scrape of a Triton replica serving `models` models (values grow with round `rnd`)."""
    r = random.Random(seed * 1000 + rnd)
    out: list[str] = []
    base = rnd * 100
    for name in _COUNTERS:
        out.append(f"# HELP {name} cumulative\n# TYPE {name} counter")
        for m in range(models):
            out.append(f'{name}{{model="model-{m}",version="1"}} {base * (m + 1) + r.randint(0, 99)}')
    out.append("# HELP nv_inference_request_failure failures\n# TYPE nv_inference_request_failure counter")
    for m in range(models):
        for reason in _REASONS:
            out.append(
                f'nv_inference_request_failure{{model="model-{m}",reason="{reason}",version="1"}} {rnd}'
            )
    out.append("# TYPE nv_inference_pending_request_count gauge")
    for m in range(models):
        out.append(f'nv_inference_pending_request_count{{model="model-{m}",version="1"}} {r.randint(0, 8)}')
    out.append("# TYPE vllm:time_to_first_token_seconds histogram")
    for m in range(models):
        for i, le in enumerate(_TTFT_LE):
            out.append(
                f'vllm:time_to_first_token_seconds_bucket{{le="{le}",model="model-{m}",version="1"}} {base * (i + 1)}'
            )
        out.append(f'vllm:time_to_first_token_seconds_sum{{model="model-{m}",version="1"}} {base * 0.05:.3f}')
        out.append(
            f'vllm:time_to_first_token_seconds_count{{model="model-{m}",version="1"}} {base * len(_TTFT_LE)}'
        )
    gpu = 'gpu_uuid="GPU-5fd2a7a3-1c4e-7b7a-9a3e-0f1d2c3b4a50"'
    out += [
        "# TYPE nv_gpu_utilization gauge",
        f"nv_gpu_utilization{{{gpu}}} {r.random():.4f}",
        "# TYPE nv_gpu_memory_used_bytes gauge",
        f"nv_gpu_memory_used_bytes{{{gpu}}} {r.randint(1, 80) << 30}",
        "# TYPE nv_gpu_power_usage gauge",
        f"nv_gpu_power_usage{{{gpu}}} {r.uniform(60, 700):.3f}",
        "# TYPE nv_energy_consumption counter",
        f"nv_energy_consumption{{{gpu}}} {base * 500.5:.3f}",
        "# TYPE nv_cpu_utilization gauge",
        f"nv_cpu_utilization {r.random():.4f}",
    ]
    return "\n".join(out) + "\n"


class _Capture:
    """A store stand-in that keeps the batches it is given (to prebuild the ceiling's columns)."""

    def __init__(self):
        self.batches = []

    def insert_samples(self, batch, dedup_token):
        self.batches.append(batch)
        return len(batch)


def _feed(parsers, texts, rounds, now, sink) -> int:
    rejected = 0
    for r in rounds:
        ts = now - (len(texts) - r) * 5
        for t, parser in enumerate(parsers):
            p = parser.parse(texts[r][t])
            rejected += p.rejected_total
            sink.add(Chunk(ts, parser.target, "zone-a", "local", p.table, p.idx, p.values))
    return rejected


def _count(store, target_prefix: str) -> int:
    return int(
        store.query(f"SELECT count() FROM samples WHERE startsWith(target, '{target_prefix}')").rows[0][0]
    )


def run_ingest_bench(
    targets: int = 100,
    models_per_target: int = 20,
    rounds: int = 8,
    naive_rounds: int = 1,
    batch_max_rows: int = 200_000,
    store_dsn: str | None = None,
    work_dir: Path | None = None,
) -> dict:
    """Measure all three pipelines in this process; returns one JSON-able dict."""
    from prometheus_client.parser import text_string_to_metric_families  # noqa: PLC0415

    from controlplane.store import open_store  # noqa: PLC0415

    tmp = tempfile.TemporaryDirectory(prefix="fleetpilot-ingest-") if work_dir is None else None
    root = Path(tmp.name if tmp else work_dir)
    store = open_store(store_dsn or f"chdb:///{root / 'clickhouse'}")
    try:
        texts = [
            [triton_text(models_per_target, r + 1, t) for t in range(targets)] for r in range(rounds + 1)
        ]
        now = time.time()
        timed = range(1, rounds + 1)  # round 0 is the warm-up scrape that teaches each parser its series

        # --- ceiling: the rows of the timed rounds, prebuilt as columns, then inserted -----------
        cap = _Capture()
        sink = Sink(
            cap,
            root / "spool-ceiling",
            batch_max_rows=batch_max_rows,
            batch_max_age_s=3600,
            metrics=CollectorMetrics(),
        )
        parsers = [ExpositionParser(f"ceil-{t}", series_limit=100_000) for t in range(targets)]
        for p in parsers:
            p.parse(texts[0][int(p.target.split("-")[1])])
        _feed(parsers, texts, timed, now, sink)
        sink.flush()
        c0, t0 = time.process_time(), time.perf_counter()
        for i, batch in enumerate(cap.batches):
            store.insert_samples(batch, dedup_token=f"bench-ceiling-{i}-{time.time_ns()}")
        ceil_s, ceil_cpu = time.perf_counter() - t0, time.process_time() - c0
        ceiling_rows = _count(store, "ceil-")

        # --- ours: parse (identity cached) -> columnar chunks -> sink -> store ------------------
        sink = Sink(
            store,
            root / "spool",
            batch_max_rows=batch_max_rows,
            batch_max_age_s=3600,
            metrics=CollectorMetrics(),
        )
        parsers = [ExpositionParser(f"ours-{t}", series_limit=100_000) for t in range(targets)]
        t0 = time.perf_counter()
        for t, p in enumerate(parsers):
            p.parse(texts[0][t])
        cold_s = time.perf_counter() - t0
        cold_lines = sum(len(p.table) for p in parsers)
        c0, t0 = time.process_time(), time.perf_counter()
        rejected = _feed(parsers, texts, timed, now, sink)
        res = sink.flush()
        ours_s, ours_cpu = time.perf_counter() - t0, time.process_time() - c0
        ours_rows = _count(store, "ours-")
        if res.spooled_rows or res.dropped_rows or len(sink.spool):
            raise RuntimeError(f"the store did not take the benchmark batches: {res}")

        # --- naive: prometheus_client parser + row inserts ----------------------------------
        names = ["ts", "target", "zone", "region", "model", "metric", "labels", "kind", "value", "series_id"]
        naive_rows = 0
        c0, t0 = time.process_time(), time.perf_counter()
        for r in range(1, naive_rounds + 1):
            ts = dt.datetime.fromtimestamp(now - (rounds + 1 - r) * 5, tz=dt.UTC)
            rows = []
            for t in range(targets):
                target = f"naive-{t}"
                for fam in text_string_to_metric_families(texts[r][t]):
                    for s in fam.samples:
                        labels = dict(s.labels)
                        model = labels.pop("model", "")
                        sid = hash((target, s.name, tuple(sorted(s.labels.items())))) & 0xFFFFFFFFFFFFFFFF
                        rows.append(
                            (
                                ts,
                                target,
                                "zone-a",
                                "local",
                                model,
                                s.name,
                                labels,
                                fam.type,
                                float(s.value),
                                sid,
                            )
                        )
            store.client.insert("samples", rows, column_names=names)
            naive_rows += len(rows)
        naive_s, naive_cpu = time.perf_counter() - t0, time.process_time() - c0
        naive_committed = _count(store, "naive-")
    finally:
        store.close()
        if tmp is not None:
            tmp.cleanup()
    sps = ours_rows / ours_s
    ceiling = ceiling_rows / ceil_s
    naive = naive_rows / naive_s
    return {
        "targets": targets,
        "models_per_target": models_per_target,
        "rounds": rounds,
        "samples": ours_rows,
        "samples_rejected": rejected,
        "first_scrape_series_per_s": round(
            cold_lines / cold_s
        ),  # warm-up round: every series parsed the slow way
        "samples_per_s": round(sps),
        "samples_per_cpu_s": round(ours_rows / ours_cpu) if ours_cpu else None,
        "naive_samples_per_s": round(naive),
        "naive_samples": naive_committed,
        "naive_samples_per_cpu_s": round(naive_rows / naive_cpu) if naive_cpu else None,
        "ceiling_samples_per_s": round(ceiling),
        "ceiling_samples": ceiling_rows,
        "ceiling_samples_per_cpu_s": round(ceiling_rows / ceil_cpu) if ceil_cpu else None,
        "ratio_to_ceiling": round(sps / ceiling, 3),
        "ratio_to_naive": round(sps / naive, 2),
        "targets_met": {
            "samples_per_s>=1e6": sps >= 1e6,
            "ratio_to_ceiling>=0.5": sps / ceiling >= 0.5,
            "ratio_to_naive>=10": sps / naive >= 10,
        },
        "batch_max_rows": batch_max_rows,
        "machine_cores": os.cpu_count(),
        "load_avg_1m": round(os.getloadavg()[0], 2),
    }


if __name__ == "__main__":  # pragma: no cover - `fleetpilot bench ingest --json` is the front door
    import json
    import sys

    print(
        json.dumps(run_ingest_bench(**{k: int(v) for k, v in (a.split("=") for a in sys.argv[1:])}), indent=2)
    )
