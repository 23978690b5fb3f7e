"""One message shape for every policy's config error: section.key, the value, the allowed range."""

from __future__ import annotations

from typing import NoReturn


def out_of_range(section: str, key: str, value: object, allowed: str) -> NoReturn:
    raise ValueError(f"{section}.{key}={value!r} is out of range; allowed: {allowed}")
