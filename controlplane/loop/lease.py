"""A file-lock lease: one active controller per data directory; a second one waits passive.

The OS drops a flock when its holder dies (even on SIGKILL), so a crashed leader never leaves a
stale lease behind. The holder's pid and start time are written into the file for `status`.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

from filelock import FileLock, Timeout


class Lease:
    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = FileLock(str(self.path) + ".lock")
        self.held = False

    def try_acquire(self) -> bool:
        if self.held:
            return True
        try:
            self._lock.acquire(timeout=0)
        except Timeout:
            return False
        self.held = True
        self.path.write_text(json.dumps({"pid": os.getpid(), "since_s": time.time()}))
        return True

    def holder(self) -> dict | None:
        try:
            return json.loads(self.path.read_text())
        except (OSError, ValueError):
            return None

    def release(self) -> None:
        if self.held:
            self.held = False
            self._lock.release()
