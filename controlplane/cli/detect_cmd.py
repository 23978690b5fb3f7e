"""`fleetpilot detect --nab DATA_DIR --out OUT_DIR`: score NAB-style series files."""

from __future__ import annotations

from pathlib import Path

import typer

from controlplane.cli import app
from controlplane.cli.common import fail


@app.command("detect")
def detect(
    nab: Path = typer.Option(..., "--nab", help="Folder of <category>/<name>.csv files (timestamp,value)."),
    out: Path = typer.Option(..., "--out", help="Output folder: <category>/<name>.csv with anomaly_score."),
) -> None:
    """Score every series with fleetpilot's detector (one anomaly_score in [0,1] per row)."""
    from rich.console import Console  # noqa: PLC0415
    from rich.progress import Progress  # noqa: PLC0415

    from controlplane.anomaly.nab_detector import score_many  # noqa: PLC0415
    from controlplane.anomaly.nab_io import NabInputError, list_corpus, read_series, write_scores  # noqa: PLC0415

    try:
        files = list_corpus(nab)
        if not files:
            fail(f"{nab}: no <category>/<name>.csv files found")
        series = {}
        with Progress(console=Console(stderr=True)) as bar:
            task = bar.add_task("reading", total=len(files))
            for key, path in files:
                series[key] = read_series(path, key)
                bar.advance(task)
            # Series are scored side by side in batches (vectorised over time); each file's scores
            # depend only on its own rows.
            task = bar.add_task("scoring", total=len(files))
            batch = 16
            keys = list(series)
            for i in range(0, len(keys), batch):
                chunk = keys[i : i + batch]
                scores = score_many([(series[k].values, series[k].timestamps) for k in chunk])
                for k, sc in zip(chunk, scores, strict=True):
                    write_scores(out / k, series[k], sc)
                bar.advance(task, len(chunk))
    except NabInputError as exc:
        fail(str(exc))
    typer.echo(f"wrote {len(files)} files under {out}", err=True)
