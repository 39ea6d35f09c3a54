"""Property-based fuzzing of every service's API over its own OpenAPI document
(schemathesis): no input gets a 5xx, every answer matches what the document says (status,
media type, schema, headers), and no operation answers without authentication."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error
from schemathesis.core.result import Ok
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    ignored_auth,
    negative_data_rejection,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)
from tests.e2e.client import SERVICES, key_for

from devstack.stack import Stack

pytestmark = pytest.mark.integration

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    negative_data_rejection,
    ignored_auth,
]
# Where no key is needed: health and metrics for the orchestrator and Prometheus.
OPEN_PATHS = {"/healthz", "/readyz", "/metrics"}
# Examples per operation: enough to reach past validation into each route, within a minute
# or two for the whole API on two cores.
EXAMPLES = 15


@pytest.fixture(scope="module")
def fuzz_key(stack: Stack) -> str:
    # A tenant of its own, with every role: what the fuzzer creates stays out of the way of
    # the other tests, and no role check hides an operation's deeper code.
    roles = ["admin", "requester", "approver", "auditor"]
    return asyncio.run(key_for(stack, name="fuzzer", tenant="fuzz", roles=roles))


def _fuzzer(operation: Any, url: str, headers: dict[str, str], calls: list[int]) -> Any:
    @given(case=operation.as_strategy())
    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        suppress_health_check=list(HealthCheck),
        derandomize=True,
        database=None,
    )
    def fuzz(case: Any) -> None:
        calls.append(1)
        case.call_and_validate(base_url=url, headers=headers, checks=CHECKS, timeout=30)

    return fuzz


@pytest.mark.parametrize("service", SERVICES)
def test_no_input_breaks_a_service(stack: Stack, fuzz_key: str, service: str) -> None:
    url = stack.service_url(service)
    schema = schemathesis.openapi.from_url(f"{url}/openapi.json")
    failures: list[str] = []
    operations = 0
    calls: list[int] = []
    for found in schema.get_all_operations():
        assert isinstance(found, Ok), f"the OpenAPI document is invalid: {found}"
        operation = found.ok()
        operations += 1
        headers = {} if operation.path in OPEN_PATHS else {"Authorization": f"Bearer {fuzz_key}"}

        fuzz = _fuzzer(operation, url, headers, calls)
        try:
            fuzz()
        except (Exception, BaseExceptionGroup) as failure:
            failures.append(f"{operation.label}: {failure}")
    assert operations >= len(OPEN_PATHS)
    # Every operation was reached (one with no inputs needs a single case).
    assert len(calls) >= operations, (len(calls), operations)
    print(f"{service}: {len(calls)} cases over {operations} operations")
    assert not failures, "\n\n".join(failures)


@pytest.mark.parametrize("service", SERVICES)
def test_every_operation_but_health_wants_a_key(stack: Stack, service: str) -> None:
    """Stated, not only sampled: each operation without a key answers 401 before anything."""
    url = stack.service_url(service)
    document = requests.get(f"{url}/openapi.json", timeout=10).json()
    refused = []
    for path, operations in document["paths"].items():
        if path in OPEN_PATHS:
            continue
        concrete = path.replace("{", "").replace("}", "")
        for method, operation in operations.items():
            assert operation.get("security"), f"{method.upper()} {path} declares no security"
            answer = requests.request(method, f"{url}{concrete}", timeout=10)
            refused.append((method.upper(), path, answer.status_code))
    assert all(status == 401 for *_, status in refused), [r for r in refused if r[2] != 401]
    if service in ("request-api", "allocator", "deployer", "auditor"):
        assert refused, f"{service} has an API"
