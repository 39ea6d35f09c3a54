"""The receiver's app: the licence vendor, the MDM, the identity provider and the test routes
on one port, sharing one state file."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from fastapi import FastAPI

from devstack.receiver import faults, identity_provider, mdm, vendor
from devstack.receiver.calls import Receiver
from devstack.receiver.state import State


def create_app(
    state_dir: Path, secrets: Mapping[str, str], jwks_file: Path | None = None
) -> FastAPI:
    """The receiver keeping its state in `state_dir`; `secrets` by system (whsec_...); the
    identity provider's public keys in `jwks_file`."""
    receiver = Receiver(State.load(state_dir / "state.json"), secrets)
    app = FastAPI(title="webhook receiver (licence vendor, MDM)")

    @app.get("/readyz")
    async def readyz() -> dict[str, str]:
        return {"status": "ready"}

    app.include_router(vendor.router(receiver))
    app.include_router(mdm.router(receiver))
    app.include_router(identity_provider.router(jwks_file))
    app.include_router(faults.router(receiver.faults, receiver.state))
    return app
