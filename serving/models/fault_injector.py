"""Applies the replica's injected faults (serving/faults.py) inside a model instance.

- added latency: a sleep per batch (classifiers) or a later admission (chat-lm);
- error rate: each request fails with "injected fault: ..." with that probability (seeded RNG,
  so a run is reproducible);
- memory growth: a daemon thread allocates and keeps touched bytearrays at the configured
  MiB/s, capped at `memory_cap_bytes` so a test cannot take the machine down; the memory is
  released when the fault is cleared (a replica recovers without a restart). The rate is per
  replica: every model instance of a replica runs a FaultInjector on the same faults file, and
  only the one holding an flock on `<faults file>.leak.lock` leaks.
"""

from __future__ import annotations

import fcntl
import os
import random
import threading
import time

from serving.faults import Faults, FaultWatcher

MIB = 1024 * 1024
MEMORY_CAP_BYTES = 2 * 1024 * MIB  # per model instance
PAGE_BYTES = 4096


def touched_block(n_bytes: int) -> bytearray:
    """A bytearray whose pages are really resident (a fresh one is lazily zero-mapped)."""
    block = bytearray(n_bytes)
    block[::PAGE_BYTES] = b"\x01" * len(range(0, n_bytes, PAGE_BYTES))
    return block


class FaultInjector:
    def __init__(
        self,
        watcher: FaultWatcher | None = None,
        *,
        seed: int = 0,
        memory_cap_bytes: int = MEMORY_CAP_BYTES,
        tick_s: float = 0.25,
        clock=time.monotonic,
        sleep=time.sleep,
    ):
        self.watcher = watcher or FaultWatcher()
        self.rng = random.Random(seed)
        self.memory_cap_bytes = memory_cap_bytes
        self.tick_s = tick_s
        self.clock = clock
        self.sleep = sleep
        self.leaked: list[bytearray] = []
        self.leaked_bytes = 0
        self._lock = threading.Lock()
        self._last_grow_s: float | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._leader_fd: int | None = None

    def poll(self) -> Faults:
        with self._lock:  # request threads and the memory thread share the watcher
            return self.watcher.poll()

    def delay(self, faults: Faults, batch_size: int = 1) -> None:
        delay_ms = faults.added_latency_ms + faults.added_latency_per_item_ms * batch_size
        if delay_ms > 0:
            self.sleep(delay_ms / 1000.0)

    def error_for(self, faults: Faults) -> str | None:
        """The error message if this request is to fail, else None."""
        if faults.error_rate_ratio > 0 and self.rng.random() < faults.error_rate_ratio:
            return f"injected fault: error_rate_ratio={faults.error_rate_ratio}"
        return None

    def grow_memory(self, faults: Faults) -> int:
        """Leak rate * elapsed since the last call (up to the cap); release all when inactive."""
        now = self.clock()
        if faults.memory_growth_mb_per_s <= 0:
            self.leaked, self.leaked_bytes, self._last_grow_s = [], 0, None
            self._release_leadership()
            return 0
        if not self._lead():
            return 0
        if self._last_grow_s is not None:
            want = int(faults.memory_growth_mb_per_s * MIB * (now - self._last_grow_s))
            want = min(want, self.memory_cap_bytes - self.leaked_bytes)
            if want > 0:
                self.leaked.append(touched_block(want))
                self.leaked_bytes += want
        self._last_grow_s = now
        return self.leaked_bytes

    def _lead(self) -> bool:
        """True when this instance is the replica's one leaker (holds the leak lock)."""
        if self._leader_fd is not None or self.watcher.path is None:
            return True
        fd = os.open(f"{self.watcher.path}.leak.lock", os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            return False
        self._leader_fd = fd
        return True

    def _release_leadership(self) -> None:
        if self._leader_fd is not None:
            os.close(self._leader_fd)  # closing drops the flock
            self._leader_fd = None

    def start(self) -> FaultInjector:
        self._thread = threading.Thread(target=self._memory_loop, name="fault-memory", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(2.0)
        self.leaked, self.leaked_bytes = [], 0
        self._release_leadership()

    def _memory_loop(self) -> None:
        while not self._stop.wait(self.tick_s):
            try:
                self.grow_memory(self.poll())
            except MemoryError:
                self.leaked, self.leaked_bytes = [], 0
