"""Store failures, split by what the caller should do about them."""

from __future__ import annotations


class StoreError(Exception):
    """Base of every store failure."""


class StoreUnavailable(StoreError):
    """The engine or server cannot be reached or is overloaded right now: retry the same batch later."""


class StoreLocked(StoreUnavailable):
    """The embedded store path is held by another process (chDB allows one process per path)."""


class StoreRejected(StoreError):
    """The store refused this batch or statement (bad data, bad SQL): retrying it unchanged will not help."""
