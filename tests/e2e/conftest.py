from collections.abc import AsyncIterator

import pytest
from tests.e2e.client import Platform

from devstack.stack import Stack


@pytest.fixture
async def platform(stack: Stack) -> AsyncIterator[Platform]:
    client = Platform(stack)
    yield client
    await client.close()
