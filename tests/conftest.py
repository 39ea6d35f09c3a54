"""Fixtures for the whole suite: the test stack from devstack (see devstack.pytest_plugin)."""

from devstack.pytest_plugin import infra, stack

__all__ = ["infra", "stack"]
