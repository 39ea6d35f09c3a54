"""The identity provider's stand-in for OAuth2 access tokens: `/idp/jwks.json` serves the
public keys whose private half devstack keeps in its secrets (tests and developers sign with
it)."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

from fastapi import APIRouter
from fastapi.responses import JSONResponse


def router(jwks_file: Path | None) -> APIRouter:
    routes = APIRouter()

    @routes.get("/idp/jwks.json")
    async def jwks() -> JSONResponse:
        # Read at every call, so a new key pair is served without a restart.
        keys = await asyncio.to_thread(_read_jwks, jwks_file)
        if keys is None:
            return JSONResponse({"detail": "no identity provider keys"}, status_code=404)
        return JSONResponse(keys)

    return routes


def _read_jwks(path: Path | None) -> Any:
    return json.loads(path.read_text()) if path is not None and path.exists() else None
