"""Routes of the deployer: the one-time reveal of a resource's credentials."""

import uuid
from collections.abc import Awaitable, Callable
from typing import Annotated

from fastapi import APIRouter, Depends, Request

from apikeys import Caller
from apikeys.authorization import Action, Subject, documented, require
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

    @router.get("/credentials/{resource_id}", openapi_extra=documented(Action.REVEAL_CREDENTIALS))
    async def reveal_credentials(
        resource_id: uuid.UUID, caller: Annotated[Caller, Depends(authenticate)]
    ) -> dict[str, str]:
        """Once, to the resource's owner or its requester. Another tenant's resource is not
        found: the row-level security hides it."""
        async with runtime.tenant_transaction(caller.tenant) as session:
            managed = await repository.get_managed(session, resource_id)
            if managed is None:
                raise ProblemError(404, "No credentials for this resource")
            subject = Subject(requester=managed.requester, owner=managed.owner)
            require(caller, Action.REVEAL_CREDENTIALS, subject)
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
