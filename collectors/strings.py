"""Process-wide string interning for LowCardinality columns.

Every target, zone, metric, model and kind string gets a small integer code once; batches then
carry int32 codes plus one shared dictionary (an Arrow DictionaryArray), which the store passes
to ClickHouse's LowCardinality columns without touching a Python string per row.
"""

from __future__ import annotations

import threading

import pyarrow as pa


class Interner:
    def __init__(self):
        self._codes: dict[str, int] = {}
        self._values: list[str] = []
        self._lock = threading.Lock()
        self._arrow: pa.Array | None = None
        self._arrow_len = -1

    def code(self, s: str) -> int:
        c = self._codes.get(s)
        if c is None:
            with self._lock:
                c = self._codes.get(s)
                if c is None:
                    c = len(self._values)
                    self._values.append(s)
                    self._codes[s] = c
        return c

    def value(self, code: int) -> str:
        return self._values[code]

    def dictionary(self) -> pa.Array:
        """All strings interned so far, as an Arrow string array (codes index into it)."""
        n = len(self._values)
        if self._arrow is None or self._arrow_len != n:
            self._arrow = pa.array(self._values[:n], pa.string())
            self._arrow_len = n
        return self._arrow


STRINGS = Interner()
