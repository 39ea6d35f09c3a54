"""The OpenAPI documents under docs/openapi/ are what the services serve."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest

from devstack import openapi
from devstack.config import SERVICES, StackConfig

REPO = Path(__file__).resolve().parents[1]


def test_the_committed_documents_are_what_the_code_serves():
    # The test stack's settings: the documents do not depend on where a stack runs.
    drifted = openapi.drifted(StackConfig.for_tests(REPO), REPO)
    assert drifted == [], f"run `make openapi` and commit docs/openapi/: {drifted} drifted"


@pytest.mark.parametrize("name", SERVICES)
def test_every_operation_has_a_verb_for_an_id_unique_in_its_service(name: str):
    document = json.loads((openapi.directory(REPO) / f"{name}.json").read_text())
    ids = [op["operationId"] for ops in document["paths"].values() for op in ops.values()]
    assert [i for i, n in Counter(ids).items() if n > 1] == []
    # camelCase, never FastAPI's default (`submit_request_v1_requests_post`).
    assert all("_" not in i and i[:1].islower() for i in ids), ids
