"""A small client of the platform's REST API for the end-to-end tests."""

from __future__ import annotations

import asyncio
from typing import Any

import asyncpg
import httpx

from devstack.stack import Stack

TERMINAL = {"completed", "rejected", "failed", "rolled_back", "compensation_failed", "cancelled"}
SERVICES = ("request-api", "validator", "allocator", "configurator", "deployer", "auditor")


async def login(outputs: dict[str, Any], credentials: dict[str, str]) -> asyncpg.Connection:
    """Connect as a requester would, with a resource's outputs and revealed credentials."""
    return await asyncpg.connect(
        host=outputs["host"],
        port=outputs["port"],
        user=credentials["username"],
        password=credentials["password"],
        database=outputs["database"],
    )


class Platform:
    def __init__(self, stack: Stack) -> None:
        self.stack = stack
        self.key = stack.admin_key()
        self.api = httpx.AsyncClient(
            base_url=stack.service_url("request-api"),
            headers={"Authorization": f"Bearer {self.key}"},
            timeout=30.0,
        )
        self.audit = httpx.AsyncClient(
            base_url=stack.service_url("auditor"),
            headers={"Authorization": f"Bearer {self.key}"},
            timeout=30.0,
        )

    async def close(self) -> None:
        await self.api.aclose()
        await self.audit.aclose()

    async def submit(self, catalog_item: str, **parameters: Any) -> dict[str, Any]:
        answer = await self.api.post(
            "/v1/requests", json={"catalog_item": catalog_item, "parameters": parameters}
        )
        assert answer.status_code == 202, answer.text
        return dict(answer.json())

    async def completed(self, catalog_item: str, **parameters: Any) -> dict[str, Any]:
        """Submit and wait: the request must complete. Returns the request."""
        request = await self.wait_terminal((await self.submit(catalog_item, **parameters))["id"])
        assert request["status"] == "completed", request
        return request

    async def resource(self, resource_id: str) -> dict[str, Any]:
        answer = await self.api.get(f"/v1/resources/{resource_id}")
        assert answer.status_code == 200, answer.text
        return dict(answer.json())

    async def reveal(self, resource_id: str) -> dict[str, str]:
        answer = await self.api.get(f"/v1/resources/{resource_id}/credentials")
        assert answer.status_code == 200, answer.text
        return dict(answer.json())

    async def modify(
        self, resource_id: str, *, rotate: bool = False, **parameters: Any
    ) -> dict[str, Any]:
        body = {"parameters": parameters, "rotate_credentials": rotate}
        answer = await self.api.patch(f"/v1/resources/{resource_id}", json=body)
        assert answer.status_code == 202, answer.text
        return await self.wait_terminal(answer.json()["id"])

    async def deprovision(self, resource_id: str) -> dict[str, Any]:
        answer = await self.api.delete(f"/v1/resources/{resource_id}")
        assert answer.status_code == 202, answer.text
        return await self.wait_terminal(answer.json()["id"])

    async def wait_terminal(self, request_id: str, timeout_s: float = 60.0) -> dict[str, Any]:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        while True:
            answer = await self.api.get(f"/v1/requests/{request_id}")
            assert answer.status_code == 200, answer.text
            request = dict(answer.json())
            if request["status"] in TERMINAL:
                return request
            if loop.time() > deadline:
                raise AssertionError(f"request {request_id} stuck in {request['status']}")
            await asyncio.sleep(0.2)


async def fetchval(stack: Stack, database: str, query: str, *args: Any) -> Any:
    connection = await asyncpg.connect(stack.database_dsn(database))
    try:
        return await connection.fetchval(query, *args)
    finally:
        await connection.close()


async def usage(stack: Stack, tenant: str = "default") -> dict[str, Any]:
    """What the allocator holds: capacity used per item and the tenant's quota usage."""
    connection = await asyncpg.connect(stack.database_dsn("allocator"))
    try:
        capacity = await connection.fetch(
            "SELECT server_id, catalog_item, used FROM server_capacity ORDER BY 1, 2"
        )
        quotas = await connection.fetch(
            "SELECT dimension, held, committed FROM tenant_quotas WHERE tenant = $1 ORDER BY 1",
            tenant,
        )
    finally:
        await connection.close()
    return {
        "capacity": [tuple(row) for row in capacity],
        "quotas": [tuple(row) for row in quotas],
    }


async def key_for(stack: Stack, *, name: str, tenant: str, roles: list[str]) -> str:
    """A new API key for a person of `tenant` (the admin API for keys is still to come)."""
    from sqlalchemy.ext.asyncio import AsyncSession, create_async_engine

    from apikeys import create_key

    engine = create_async_engine(stack.database_url("identity"))
    try:
        async with AsyncSession(engine) as session, session.begin():
            return await create_key(
                session, name=name, scopes=["requests"], tenant=tenant, roles=roles
            )
    finally:
        await engine.dispose()
