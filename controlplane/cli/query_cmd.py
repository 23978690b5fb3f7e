"""`fleetpilot query "SQL"`: read-only SQL against the store (table, csv or json output)."""

from __future__ import annotations

import csv
import json
import re
import sys
from datetime import date, datetime
from pathlib import Path
from typing import Any

import typer

from controlplane.cli import app
from controlplane.cli.common import ConfigOption, fail, settings_or_exit

READ_ONLY_KEYWORDS = ("SELECT", "WITH", "SHOW", "DESCRIBE", "DESC", "EXPLAIN")
_COMMENT_RE = re.compile(r"--[^\n]*|/\*.*?\*/", re.S)
_STRING_RE = re.compile(r"'(?:[^'\\]|\\.)*'|\"(?:[^\"\\]|\\.)*\"|`(?:[^`\\]|\\.)*`", re.S)
LOCKED_MESSAGE = "the embedded store is owned by a running `fleetpilot up`; query it through the API"


def check_read_only(sql: str) -> str:
    """The statement without a trailing ';', or ValueError saying why it is refused."""
    body = _COMMENT_RE.sub(" ", sql).strip().rstrip(";").strip()
    if not body:
        raise ValueError("empty statement")
    if ";" in _STRING_RE.sub("''", body):
        raise ValueError("one statement at a time: remove the ';' between statements")
    first = body.split(None, 1)[0].upper().lstrip("(")
    if first not in READ_ONLY_KEYWORDS:
        raise ValueError(
            f"`fleetpilot query` is read-only; {first} is not allowed (use {', '.join(READ_ONLY_KEYWORDS)})"
        )
    return body


def _cell(v: Any) -> Any:
    if isinstance(v, datetime | date):
        return v.isoformat()
    if isinstance(v, bytes):
        return v.decode(errors="replace")
    if isinstance(v, float) and v != v:  # NaN
        return None
    return v


def render(column_names: tuple[str, ...], rows: list[tuple], fmt: str) -> str:
    if fmt == "json":
        return json.dumps(
            [{c: _cell(v) for c, v in zip(column_names, r, strict=True)} for r in rows], indent=2, default=str
        )
    if fmt == "csv":
        import io  # noqa: PLC0415

        buf = io.StringIO()
        w = csv.writer(buf, lineterminator="\n")
        w.writerow(column_names)
        w.writerows([[_cell(v) for v in r] for r in rows])
        return buf.getvalue().rstrip("\n")
    cells = [[("" if v is None else str(_cell(v))) for v in r] for r in rows]
    widths = [max([len(c)] + [len(r[i]) for r in cells]) for i, c in enumerate(column_names)]
    line = lambda vals: "  ".join(v.ljust(w) for v, w in zip(vals, widths, strict=True)).rstrip()  # noqa: E731
    out = [line(column_names), line(["-" * w for w in widths]), *(line(r) for r in cells)]
    out.append(f"({len(rows)} row{'s' if len(rows) != 1 else ''})")
    return "\n".join(out)


@app.command("query")
def query(
    sql: str = typer.Argument(..., help="One read-only statement (SELECT, WITH, SHOW, DESCRIBE, EXPLAIN)."),
    fmt: str = typer.Option("table", "--format", "-f", help="Output format: table, csv or json."),
    config: str = ConfigOption,
) -> None:
    """Run a read-only SQL statement against the store (settings.store_dsn)."""
    from controlplane.store import StoreError, StoreLocked, embedded_path, open_store  # noqa: PLC0415

    if fmt not in ("table", "csv", "json"):
        fail(f"--format must be table, csv or json (got {fmt!r})")
    try:
        body = check_read_only(sql)
    except ValueError as exc:
        fail(str(exc))
    settings = settings_or_exit(config)
    dsn = settings.store_dsn
    path = embedded_path(dsn)
    if path is not None and not Path(path).exists():
        fail(
            f"no store at {path}: nothing has been collected yet (start `fleetpilot up` or `fleetpilot collect`)"
        )
    try:
        store = open_store(dsn, migrate=False)
    except StoreLocked:
        fail(LOCKED_MESSAGE)
    except StoreError as exc:
        fail(str(exc))
    try:
        # readonly=2 lets the engine refuse writes while still allowing per-query settings.
        res = store.query(body, settings={"readonly": 2})
    except StoreError as exc:
        fail(str(exc))
    finally:
        store.close()
    sys.stdout.write(render(res.column_names, res.rows, fmt) + "\n")
