"""A stack configuration of its own for a driver's integration tests: a temporary root and free
ports, so that one target server runs beside the shared test stack without touching it."""

from __future__ import annotations

import dataclasses
import socket
from pathlib import Path

from devstack.config import StackConfig, repo_root


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def isolated_config(root: Path, *port_fields: str) -> StackConfig:
    """The test profile under `root`, with a free port for each named field."""
    ports = {field: free_port() for field in port_fields}
    return dataclasses.replace(StackConfig.for_tests(repo_root()), root=root, **ports)  # type: ignore[arg-type]
