"""`fleetpilot detect --nab`: output layout and clear errors on bad input."""

from __future__ import annotations

import csv

from typer.testing import CliRunner

import controlplane.cli.detect_cmd  # noqa: F401  (registers `detect` until the lead wires it)
from controlplane.cli import app


def _write(path, rows):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(rows) + "\n")


def test_detect_writes_one_score_per_row(tmp_path):
    rows = ["timestamp,value"] + [
        f"2024-01-01 {h:02d}:{m:02d}:00,{10 + (m % 7)}" for h in range(5) for m in range(0, 60, 5)
    ]
    _write(tmp_path / "data" / "cat" / "s.csv", rows)
    res = CliRunner().invoke(app, ["detect", "--nab", str(tmp_path / "data"), "--out", str(tmp_path / "out")])
    assert res.exit_code == 0, res.output
    with (tmp_path / "out" / "cat" / "s.csv").open() as fh:
        out = list(csv.reader(fh))
    assert out[0] == ["timestamp", "value", "anomaly_score"]
    assert [r[0] for r in out[1:]] == [r.split(",")[0] for r in rows[1:]]
    assert all(0.0 <= float(r[2]) <= 1.0 for r in out[1:])


def test_detect_names_file_and_line_of_a_bad_value(tmp_path):
    _write(
        tmp_path / "data" / "cat" / "bad.csv",
        ["timestamp,value", "2024-01-01 00:00:00,1", "2024-01-01 00:05:00,abc"],
    )
    res = CliRunner().invoke(app, ["detect", "--nab", str(tmp_path / "data"), "--out", str(tmp_path / "out")])
    assert res.exit_code == 2
    assert "bad.csv:3" in res.output and "'abc' is not a number" in res.output


def test_detect_names_a_missing_column(tmp_path):
    _write(tmp_path / "data" / "cat" / "nocol.csv", ["timestamp,val", "2024-01-01 00:00:00,1"])
    res = CliRunner().invoke(app, ["detect", "--nab", str(tmp_path / "data"), "--out", str(tmp_path / "out")])
    assert res.exit_code == 2 and "nocol.csv:1: missing column(s) value" in res.output
