"""Bearer-token check for the endpoints that change something (POST /v1/overrides)."""

from __future__ import annotations

import hmac

from fastapi import HTTPException, Request

from controlplane.api.context import ApiContext


def configured_token(ctx: ApiContext) -> str | None:
    """api_token / FLEETPILOT_API_TOKEN, else the token generated into <data_dir>/api_token (never
    generated here: a server without either answers 503)."""
    tok = ctx.settings.api_token
    value = tok.get_secret_value() if tok is not None else ""
    if value:
        return value
    path = ctx.settings.data_dir.resolve() / "api_token"
    try:
        return path.read_text().strip() or None
    except OSError:
        return None


def require_token(request: Request) -> None:
    """503 when no token is configured, 401 without a bearer token, 403 with a wrong one."""
    ctx: ApiContext = request.app.state.ctx
    want = configured_token(ctx)
    if want is None:
        raise HTTPException(
            503,
            "no API token is configured on the server: set FLEETPILOT_API_TOKEN (or api_token in the config, or <data_dir>/api_token)",
        )
    header = request.headers.get("authorization", "")
    scheme, _, got = header.partition(" ")
    if scheme.lower() != "bearer" or not got.strip():
        raise HTTPException(
            401, "missing bearer token: send `Authorization: Bearer <token>`", {"WWW-Authenticate": "Bearer"}
        )
    if not hmac.compare_digest(got.strip().encode(), want.encode()):
        raise HTTPException(403, "wrong API token")
