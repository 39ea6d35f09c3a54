"""What every target driver offers the deployer, and what the deployer hands each call.

A driver talks to one kind of target system over its real protocol (SQL, LDAP, the AWS API, a
vendor's webhook). Every call is idempotent, because a crash after the target changed but
before the deployer's transaction committed redelivers the event: a driver marks what it
creates with the id of the request that created it (a comment, an attribute, a tag, an
idempotency key), and only ever changes or removes what carries its own request's mark.

Errors: `TargetUnavailable` for what may pass (the target is down, slow, answers 5xx), which the
consumer retries with backoff and finally rolls back; `TargetConflict` or another
`PermanentError` for what will not (the name is taken by something that is not ours).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import Any, Protocol

from events import PermanentError, RetryableError


class TargetUnavailable(RetryableError):
    """The target could not be reached or refused for a reason that may pass."""


class TargetConflict(PermanentError):
    """The name is taken in the target by something this request did not create."""


MARKER_PREFIX = "provisioned by request "


def marker(request_id: uuid.UUID) -> str:
    """The mark a driver leaves on what it creates, where the target has room for text."""
    return f"{MARKER_PREFIX}{request_id}"


@dataclass(frozen=True)
class Placement:
    """Which resource a call is about, and where it lives.

    `request_id` is the request that created the resource, whatever request the call serves
    (a deprovision, a modify, a drift check): the target's mark names it.
    """

    server_id: str
    request_id: uuid.UUID
    resource_id: uuid.UUID
    tenant: str
    owner: str


@dataclass(frozen=True)
class Deployed:
    """What the requester is told: where the resource is and how to reach it. Never a secret:
    `username` goes with the generated secret, which the deployer keeps and reveals once."""

    outputs: dict[str, str | int] = field(default_factory=dict)
    username: str | None = None


class Driver(Protocol):
    # True when the resource has a generated secret (a password) that the requester receives.
    needs_secret: bool

    async def apply(
        self, placement: Placement, configuration: dict[str, Any], secret: str | None
    ) -> Deployed:
        """Create the resource, or bring an existing one of ours to `configuration` (modify,
        remediation). `secret` is the new password to set; None keeps the current one."""
        ...

    async def verify(
        self, placement: Placement, configuration: dict[str, Any], secret: str | None
    ) -> list[str]:
        """How the target differs from `configuration`, read through the target's own
        protocol: one sentence per difference, [] when it is as expected ("missing" when it is
        gone). With `secret`, also log in (or otherwise use the resource) as its owner will."""
        ...

    async def disable(self, placement: Placement, configuration: dict[str, Any]) -> None:
        """The first step of a deprovision that keeps the resource for a retention period:
        nobody can use it any more, but it can still be restored. Idempotent."""
        ...

    async def remove(self, placement: Placement, configuration: dict[str, Any]) -> None:
        """Delete the resource if it is ours (marked with `placement.request_id`); what is gone
        already, or not ours, is left alone. Used by deprovision, rollback and cancel."""
        ...

    async def close(self) -> None: ...
