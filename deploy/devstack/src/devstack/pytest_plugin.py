"""Session fixtures that start the isolated test stack once: `infra` (PostgreSQL, Kafka, topics)
and `stack` (plus the six services). Tests fail, never skip, when it cannot start."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from devstack.config import StackConfig, repo_root
from devstack.proc import exclusive_lock
from devstack.stack import Stack

# Below pytest-timeout's 300 s, which also covers the first test's fixture setup.
LOCK_TIMEOUT = 180.0


@pytest.fixture(scope="session")
def infra() -> Iterator[Stack]:
    stack = Stack(StackConfig.for_tests(repo_root()))
    # Two pytest runs at once would wipe each other's stack: the second one waits its turn.
    with exclusive_lock(stack.config.session_lock, timeout=LOCK_TIMEOUT):
        try:
            stack.start_infrastructure(fresh=True)
            yield stack
        finally:
            # Also after a failed start: a half-started stack must not outlive the session.
            stack.down()


@pytest.fixture(scope="session")
def stack(infra: Stack) -> Stack:
    infra.up()
    return infra
