"""A reason a request cannot proceed (or must wait): shared by the loader, policy and
entitlements without an import cycle."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ParameterProblem:
    """One reason a request cannot proceed, with a stable machine-readable code."""

    field: str | None
    message: str
    code: str = "invalid_parameter"
