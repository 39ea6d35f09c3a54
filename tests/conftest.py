"""Fixtures for the whole suite: the test stack from devstack (see devstack.pytest_plugin)."""

import pytest
from tests.recovery import summary

from devstack.pytest_plugin import infra, stack

__all__ = ["infra", "stack"]


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    summary(terminalreporter)
