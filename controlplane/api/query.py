"""POST /v1/query: one read-only statement over the telemetry history, with limits.

Two layers, so that a statement the guard misreads is still stopped:
  1. `check_read_only` scans the text once, left to right (strings, quoted names and comments are
     recognised together, so `--` inside a string or `;` inside a comment hides nothing), and
     admits exactly one SELECT/WITH/SHOW/DESCRIBE/EXPLAIN/EXISTS statement without SETTINGS,
     FORMAT or INTO OUTFILE. What is sent is the scanned text with comments removed, so the
     engine executes exactly what was checked.
  2. `execute_read_only` appends `SETTINGS ..., readonly = 1` to that statement: the engine refuses
     writes, DDL, table functions and any later settings change itself. A per-query SETTINGS
     clause (not session settings) is used on purpose: the embedded engine applies session
     settings with SET and cannot undo `readonly` afterwards, which would leave the whole
     process's store read-only (seen with chDB 4.x / ClickHouse 26.9).
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from typing import Any

from controlplane.api.jsonify import cell

ALLOWED_FIRST = ("SELECT", "WITH", "SHOW", "DESCRIBE", "DESC", "EXPLAIN", "EXISTS")
ONE_STATEMENT = "only one SELECT/WITH/SHOW/DESCRIBE/EXPLAIN statement is allowed"
_WORD_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_TIMEOUT_RE = re.compile(r"Code: 159\b|TIMEOUT_EXCEEDED")
_READONLY_RE = re.compile(r"Code: 164\b|\(READONLY\)")
_ENGINE_MSG_RE = re.compile(r"(?:DB::Exception: )+(.*?)(?: \(version [^)]*\))?(?: Stack trace|$)", re.S)


class QueryRefused(ValueError):
    """The statement is not allowed (status 400); `reason` is a short label for metrics."""

    def __init__(self, message: str, reason: str, status: int = 400):
        super().__init__(message)
        self.reason = reason
        self.status = status


@dataclass(frozen=True)
class Limits:
    max_rows: int
    max_execution_s: float
    max_result_bytes: int


@dataclass(frozen=True)
class QueryAnswer:
    columns: list[str]
    types: list[str]
    rows: list[list[Any]]
    truncated: bool
    elapsed_ms: float
    message: str | None

    def as_json(self) -> dict[str, Any]:
        return {
            "columns": self.columns,
            "types": self.types,
            "rows": self.rows,
            "row_count": len(self.rows),
            "truncated": self.truncated,
            "elapsed_ms": round(self.elapsed_ms, 3),
            "message": self.message,
        }


def _scan(sql: str) -> tuple[str, str]:
    """(text without comments, same with string/identifier contents blanked) in one pass.

    Raises QueryRefused on an unterminated string, identifier or comment.
    """
    out: list[str] = []
    masked: list[str] = []
    i, n = 0, len(sql)
    while i < n:
        c = sql[i]
        if c in "'\"`":
            j = i + 1
            while j < n:
                if sql[j] == "\\":
                    j += 2
                    continue
                if sql[j] == c:
                    if j + 1 < n and sql[j + 1] == c:  # '' inside a string is one quote
                        j += 2
                        continue
                    break
                j += 1
            if j >= n:
                kind = "string" if c == "'" else "quoted identifier"
                raise QueryRefused(f"unterminated {kind} starting at character {i + 1}", "syntax")
            out.append(sql[i : j + 1])
            masked.append(c + " " * (j - i - 1) + c)
            i = j + 1
        elif sql.startswith("--", i) or c == "#":
            j = sql.find("\n", i)
            j = n if j < 0 else j
            out.append(" ")
            masked.append(" ")
            i = j
        elif sql.startswith("/*", i):
            j = sql.find("*/", i + 2)
            if j < 0:
                raise QueryRefused(f"unterminated /* comment starting at character {i + 1}", "syntax")
            out.append(" ")
            masked.append(" ")
            i = j + 2
        elif c == "$" and re.match(r"\$[A-Za-z0-9_]*\$", sql[i:]):
            # ClickHouse heredoc strings ($$...$$, $tag$...$tag$): refused rather than parsed.
            raise QueryRefused("heredoc ($$...$$) strings are not supported here; use '...'", "syntax")
        else:
            out.append(c)
            masked.append(c)
            i += 1
    return "".join(out), "".join(masked)


def check_read_only(sql: str) -> str:
    """The statement to run (comments removed, no trailing ';'), or QueryRefused saying why not."""
    if not isinstance(sql, str) or not sql.strip():
        raise QueryRefused("sql is empty", "empty")
    text, masked = _scan(sql)
    # Drop trailing ';' (one statement may end with one) and whitespace, in both views alike.
    end = len(masked.rstrip().rstrip(";").rstrip())
    text, masked = text[:end].strip(), masked[:end].strip()
    if not masked:
        raise QueryRefused("sql holds only comments", "empty")
    if ";" in masked:
        raise QueryRefused(f"{ONE_STATEMENT}: remove the ';' between statements", "multiple_statements")
    words = [w.upper() for w in _WORD_RE.findall(masked)]
    first = words[0] if words else ""
    if first not in ALLOWED_FIRST or not masked.lstrip("( \t\r\n").upper().startswith(first):
        shown = first or masked.split(None, 1)[0][:20]
        raise QueryRefused(f"{ONE_STATEMENT}; {shown} is not allowed (read-only access)", "not_read_only")
    if "SETTINGS" in words:
        raise QueryRefused(
            "SETTINGS clauses are not allowed: the API sets read-only mode, time and row limits itself",
            "settings",
        )
    if "OUTFILE" in words:
        raise QueryRefused("INTO OUTFILE is not allowed: results come back in the response", "outfile")
    if re.search(r"\bFORMAT\s+[A-Za-z_]", masked, re.I):
        raise QueryRefused("FORMAT clauses are not allowed: the API returns JSON rows", "format")
    return text


def limits_clause(limits: Limits) -> str:
    # readonly last: once it is set no further setting may change. Rows: one more than the cap
    # to tell "exactly max_rows" from "truncated"; break mode stops at a block boundary, so the
    # block size is capped near the row limit too.
    rows = limits.max_rows + 1
    return (
        f"\nSETTINGS max_execution_time = {limits.max_execution_s:g}, max_result_rows = {rows}, "
        f"max_result_bytes = {limits.max_result_bytes}, result_overflow_mode = 'break', "
        f"max_block_size = {max(min(rows, 65536), 1)}, readonly = 1"
    )


def engine_message(exc: BaseException, limit: int = 300) -> str:
    """The engine's own sentence, without the stack trace and version noise."""
    text = " ".join(str(exc).split())
    m = _ENGINE_MSG_RE.search(text)
    msg = (m.group(1) if m else text).strip()
    return msg if len(msg) <= limit else msg[:limit] + "..."


def execute_read_only(client: Any, statement: str, limits: Limits) -> QueryAnswer:
    """Run `statement` with the engine's read-only mode and limits (no guard here: see module doc).

    `client` is the store's clickhouse-connect client; the caller holds the store lock.
    Raises QueryRefused (engine refusal, timeout, SQL error) or the store's error for an outage.
    """
    from controlplane.store.client import classify  # noqa: PLC0415
    from controlplane.store.errors import StoreUnavailable  # noqa: PLC0415

    t0 = time.perf_counter()
    try:
        res = client.query(statement + limits_clause(limits))
    except Exception as exc:
        text = str(exc)
        if _TIMEOUT_RE.search(text):
            raise QueryRefused(
                f"query stopped after the {limits.max_execution_s:g} s limit (api.query_max_execution_s)",
                "timeout",
                status=408,
            ) from None
        if _READONLY_RE.search(text):
            raise QueryRefused(
                f"refused by the engine's read-only mode: {engine_message(exc)}", "engine_readonly"
            ) from None
        err = classify(exc, "query failed")
        if isinstance(err, StoreUnavailable):
            raise err from exc
        raise QueryRefused(f"SQL error: {engine_message(exc)}", "sql_error") from None
    elapsed_ms = (time.perf_counter() - t0) * 1000.0
    names = list(res.column_names)
    types = [getattr(t, "name", str(t)) for t in (res.column_types or ())]
    rows = res.result_rows
    truncated = len(rows) > limits.max_rows
    if truncated:
        rows = rows[: limits.max_rows]
    message = (
        f"result truncated to {limits.max_rows} rows (max_rows / api.query_max_rows); add LIMIT or aggregate"
        if truncated
        else None
    )
    return QueryAnswer(
        columns=names,
        types=types,
        rows=[[cell(v) for v in r] for r in rows],
        truncated=truncated,
        elapsed_ms=elapsed_ms,
        message=message,
    )
