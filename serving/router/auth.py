"""Bearer-token check for admin endpoints (constant-time comparison)."""

from __future__ import annotations

import hmac


def check_bearer(authorization: str | None, token: str) -> int:
    """HTTP status for the Authorization header: 200 ok, 401 missing/malformed, 403 wrong token."""
    if not authorization:
        return 401
    scheme, _, value = authorization.partition(" ")
    if scheme.lower() != "bearer" or not value.strip():
        return 401
    if not token or not hmac.compare_digest(value.strip().encode(), token.encode()):
        return 403
    return 200
