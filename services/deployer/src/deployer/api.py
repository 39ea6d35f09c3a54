"""Routes of the deployer: the one-time reveal of a resource's credentials."""

import uuid
from collections.abc import Awaitable, Callable
from typing import Annotated

from fastapi import APIRouter, Depends, Request

from apikeys import Caller
from deployer import repository
from events import ServiceRuntime
from events.http import ProblemError
from events.sealing import SecretCipher


def create_router(
    runtime: ServiceRuntime,
    cipher: SecretCipher,
    authenticate: Callable[[Request], Awaitable[Caller]],
) -> APIRouter:
    router = APIRouter(prefix="/v1")

    @router.get("/credentials/{resource_id}")
    async def reveal_credentials(
        resource_id: uuid.UUID, caller: Annotated[Caller, Depends(authenticate)]
    ) -> dict[str, str]:
        """Another tenant's resource is not found: the row-level security hides it."""
        async with runtime.tenant_transaction(caller.tenant) as session:
            sealed = await repository.take_for_reveal(session, resource_id)
            if sealed is None:
                if await repository.credential_exists(session, resource_id):
                    raise ProblemError(
                        410,
                        "Credentials already revealed",
                        "Credentials are shown once; rotate them to get new ones.",
                    )
                raise ProblemError(404, "No credentials for this resource")
            password = cipher.decrypt(resource_id, sealed.nonce, sealed.ciphertext)
        return {"username": sealed.username, "password": password}

    return router
