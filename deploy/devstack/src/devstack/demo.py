"""`make demo`: submits one postgres_database request and prints its journey."""

from __future__ import annotations

import time
import uuid
from typing import Any

import httpx

from devstack.config import StackConfig
from devstack.stack import Stack

TERMINAL = {"completed", "rejected", "failed", "rolled_back", "compensation_failed", "cancelled"}


def run(config: StackConfig) -> None:
    stack = Stack(config)
    headers = {"Authorization": f"Bearer {stack.admin_key()}"}
    api = httpx.Client(base_url=stack.service_url("request-api"), headers=headers, timeout=10)
    audit = httpx.Client(base_url=stack.service_url("auditor"), headers=headers, timeout=10)
    name = f"demo_{uuid.uuid4().hex[:8]}"
    body = {"catalog_item": "postgres_database", "parameters": {"name": name}}
    print(f"POST /v1/requests {body}")
    started = time.monotonic()
    answer = api.post("/v1/requests", json=body)
    answer.raise_for_status()
    request = answer.json()
    print(f"  -> {answer.status_code}, Location: {answer.headers['location']}")

    request = _follow(api, request["id"], started)
    if request["reasons"]:
        print(f"  reasons: {request['reasons']}")

    if request.get("resource_id"):
        resource = api.get(f"/v1/resources/{request['resource_id']}").json()
        print(f"resource {resource['id']}: {resource['state']}, outputs {resource['outputs']}")
        reveal_path = f"/v1/resources/{resource['id']}/credentials"
        username = api.get(reveal_path).json()["username"]
        second = api.get(reveal_path).status_code
        print(
            f"credentials revealed once for {username} (password not printed); "
            f"a second reveal answers {second}"
        )

        resource_path = f"/v1/resources/{resource['id']}"
        print(f"DELETE {resource_path}")
        removal = api.delete(resource_path).json()
        _follow(api, removal["id"], time.monotonic())
        print(f"resource state: {api.get(resource_path).json()['state']}")

    print("audit history:")
    for event in audit.get(f"/v1/audit/requests/{request['id']}").json()["events"]:
        print(f"  #{event['seq']:<5} {event['time']}  {event['source']:<13} {event['type']}")
    print(f"audit chain: {audit.get('/v1/audit/verify').json()}")


def _follow(api: httpx.Client, request_id: str, started: float) -> dict[str, Any]:
    """Print each status the request passes through until it ends."""
    status = None
    while True:
        request: dict[str, Any] = api.get(f"/v1/requests/{request_id}").json()
        if request["status"] != status:
            status = request["status"]
            print(f"  {1000 * (time.monotonic() - started):7.0f} ms  {status}")
        if status in TERMINAL or time.monotonic() - started > 60:
            return request
        time.sleep(0.05)
