"""`fleetpilot query`: read-only guard, output formats, and the embedded-store ownership message."""

from __future__ import annotations

import json
import subprocess
import sys
import time

import pytest
from typer.testing import CliRunner

import controlplane.cli.query_cmd as query_cmd  # registers `query` on the app
from controlplane.cli import app
from controlplane.store import SampleBatch, open_store


@pytest.mark.parametrize(
    ("sql", "ok"),
    [
        ("SELECT 1", True),
        ("  select * from samples;", True),
        ("WITH 1 AS x SELECT x", True),
        ("-- comment\nSHOW TABLES", True),
        ("DESCRIBE TABLE samples", True),
        ("desc samples", True),
        ("EXPLAIN SELECT 1", True),
        ("(SELECT 1)", True),
        ("SELECT 'a;b'", True),  # a ';' inside a string is not a second statement
        ("INSERT INTO samples VALUES (1)", False),
        ("DROP TABLE samples", False),
        ("ALTER TABLE samples DELETE WHERE 1", False),
        ("SELECT 1; DROP TABLE samples", False),
        ("/* SELECT */ TRUNCATE TABLE samples", False),
        ("", False),
    ],
)
def test_read_only_guard(sql, ok):
    if ok:
        assert query_cmd.check_read_only(sql)
    else:
        with pytest.raises(ValueError):
            query_cmd.check_read_only(sql)


def test_render_formats():
    cols, rows = ("a", "b"), [(1, "x"), (2, None)]
    assert json.loads(query_cmd.render(cols, rows, "json")) == [{"a": 1, "b": "x"}, {"a": 2, "b": None}]
    assert query_cmd.render(cols, rows, "csv") == "a,b\n1,x\n2,"
    table = query_cmd.render(cols, rows, "table").splitlines()
    assert table[0].split() == ["a", "b"] and table[-1] == "(2 rows)"


@pytest.fixture
def data_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("FLEETPILOT_DATA_DIR", str(tmp_path))
    monkeypatch.delenv("FLEETPILOT_CONFIG", raising=False)
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_query_end_to_end(data_dir):
    st = open_store(f"chdb:///{data_dir / 'clickhouse'}")
    st.insert_samples(
        SampleBatch.from_rows([dict(ts=time.time() - 60, target="cli-r", metric="up", value=1.0)]), "cli-1"
    )
    st.close()
    runner = CliRunner()
    res = runner.invoke(
        app, ["query", "SELECT target, value FROM samples WHERE metric = 'up'", "--format", "json"]
    )
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout) == [{"target": "cli-r", "value": 1.0}]
    res = runner.invoke(app, ["query", "DROP TABLE samples"])
    assert res.exit_code == 2 and "read-only" in res.output
    res = runner.invoke(app, ["query", "SELECT 1", "--format", "xml"])
    assert res.exit_code == 2 and "--format" in res.output


def test_no_store_yet(data_dir):
    res = CliRunner().invoke(app, ["query", "SELECT 1"])
    assert res.exit_code == 2 and "no store at" in res.output


def test_store_owned_by_another_process(data_dir):
    dsn = f"chdb:///{data_dir / 'clickhouse'}"
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            f"import sys, time; from controlplane.store import open_store; s = open_store({dsn!r}); print('ready', flush=True); sys.stdin.read()",
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "ready"
        res = CliRunner().invoke(app, ["query", "SELECT 1"])
        assert res.exit_code == 2
        assert query_cmd.LOCKED_MESSAGE in " ".join(res.output.split())
    finally:
        holder.stdin.close()
        holder.wait(timeout=30)
