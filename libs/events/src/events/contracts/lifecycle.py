"""A request's lifecycle: which event moves a request from which status to which, and the
rule that a status never goes back. Defined once here; the request-api's doorway obeys it,
the audit records it and whoever follows requests reads it.

submitted → (awaiting_approval) → validated → (backordered) → allocated → configured →
deployed → verified → completed, with the exits rejected, failed (nothing to undo),
cancelled, and compensating → rolled_back | compensation_failed | cancelled.
Events of one request arrive on several topics, so a late one must not undo a newer status.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType

from events.contracts.allocation import (
    AllocationBackordered,
    AllocationFailed,
    AllocationReleased,
    ResourceAllocated,
)
from events.contracts.configuration import ConfigurationFailed, ResourceConfigured
from events.contracts.deployment import (
    CompensationFailed,
    ProvisioningCompleted,
    ProvisioningFailed,
    ResourceDeployed,
    ResourceVerified,
)
from events.contracts.requests import (
    CancellationRequested,
    CompensationRetryRequested,
    RequestStatus,
    RequestSubmitted,
)
from events.contracts.validation import (
    ApprovalRequired,
    RequestRejected,
    RequestValidated,
    ValidationFailed,
)

S = RequestStatus
FORWARD: tuple[RequestStatus, ...] = (
    S.SUBMITTED,
    S.AWAITING_APPROVAL,
    S.VALIDATED,
    S.BACKORDERED,
    S.ALLOCATED,
    S.CONFIGURED,
    S.DEPLOYED,
    S.VERIFIED,
)
ENDS_OF_UNDOING = frozenset({S.ROLLED_BACK, S.COMPENSATION_FAILED, S.CANCELLED})
TERMINAL = frozenset({S.COMPLETED, S.REJECTED, S.FAILED, *ENDS_OF_UNDOING})
# Every status a request may still leave on its own.
IN_FLIGHT: tuple[RequestStatus, ...] = (*FORWARD, S.COMPENSATING)
# Ended without the resource it asked for.
UNSUCCESSFUL = TERMINAL - {S.COMPLETED}
# Ended by an error or a step's refusal (not by a policy's rejection or a cancel): what a
# report counts as failed.
FAILED = frozenset({S.FAILED, S.ROLLED_BACK, S.COMPENSATION_FAILED})


@dataclass(frozen=True)
class Move:
    """What an event does to a request's status."""

    to: RequestStatus
    # The status it leaves on the way it usually comes (a history's `before`); the doorway
    # moves from any status `may_move` allows.
    usually_from: RequestStatus | None
    # Where it may lead instead, as the request stands: cancelled meanwhile, a step that gave
    # up on an error rather than refusing cleanly, a modify with nothing to undo.
    instead: frozenset[RequestStatus] = frozenset()
    # Moves only a request in one of these statuses; elsewhere the event by itself moves
    # nothing (a cancel in flight is ended by the undo it starts).
    only_from: frozenset[RequestStatus] | None = None

    @property
    def ends(self) -> frozenset[RequestStatus]:
        return frozenset({self.to, *self.instead})


_REFUSED = frozenset({S.ROLLED_BACK, S.CANCELLED})

MOVES: Mapping[str, Move] = MappingProxyType(
    {
        RequestSubmitted.type: Move(S.SUBMITTED, None),
        ApprovalRequired.type: Move(S.AWAITING_APPROVAL, S.SUBMITTED),
        RequestValidated.type: Move(S.VALIDATED, S.SUBMITTED),
        RequestRejected.type: Move(S.REJECTED, S.SUBMITTED),
        ValidationFailed.type: Move(S.FAILED, S.SUBMITTED, _REFUSED),
        AllocationBackordered.type: Move(S.BACKORDERED, S.VALIDATED),
        ResourceAllocated.type: Move(S.ALLOCATED, S.VALIDATED),
        AllocationFailed.type: Move(S.FAILED, S.VALIDATED, _REFUSED),
        ResourceConfigured.type: Move(S.CONFIGURED, S.ALLOCATED),
        ConfigurationFailed.type: Move(S.COMPENSATING, S.ALLOCATED),
        ResourceDeployed.type: Move(S.DEPLOYED, S.CONFIGURED),
        ResourceVerified.type: Move(S.VERIFIED, S.DEPLOYED),
        # Cancelled in time, a completed provision is undone instead.
        ProvisioningCompleted.type: Move(S.COMPLETED, S.VERIFIED, frozenset({S.COMPENSATING})),
        # A failed modify or deprovision leaves the resource as it was: nothing to undo.
        ProvisioningFailed.type: Move(
            S.COMPENSATING, S.CONFIGURED, frozenset({S.FAILED, *_REFUSED})
        ),
        AllocationReleased.type: Move(S.ROLLED_BACK, S.COMPENSATING, frozenset({S.CANCELLED})),
        CompensationFailed.type: Move(S.COMPENSATION_FAILED, S.COMPENSATING),
        # Awaiting approval, nothing is held and no step will hear of it again: it ends there.
        CancellationRequested.type: Move(
            S.CANCELLED, S.AWAITING_APPROVAL, only_from=frozenset({S.AWAITING_APPROVAL})
        ),
        # An operator's retry of the undo: the one way out of a terminal status.
        CompensationRetryRequested.type: Move(S.COMPENSATING, S.COMPENSATION_FAILED),
    }
)


def may_move(current: str, new: str, *, cause: str | None = None) -> bool:
    """Never backwards and never out of an end, but for an operator's retry of the undo;
    `cause`, the event moving it, may move only some statuses."""
    if current == new:
        return False
    move = MOVES.get(cause) if cause is not None else None
    if move is not None and move.only_from is not None and current not in move.only_from:
        return False
    if current in TERMINAL:
        reopening = MOVES[CompensationRetryRequested.type]
        return cause == CompensationRetryRequested.type and (current, new) == (
            reopening.usually_from,
            reopening.to,
        )
    if current == S.COMPENSATING:
        return new in ENDS_OF_UNDOING
    if new in FORWARD:
        return current in FORWARD and FORWARD.index(S(new)) > FORWARD.index(S(current))
    return True


def may_move_from(new: str, *, cause: str | None = None) -> frozenset[RequestStatus]:
    """Every status a request may be in for `new` to replace it."""
    return frozenset(status for status in S if may_move(status, new, cause=cause))


def end_of_refusal(code: str | None, *, cancel_requested: bool = False) -> RequestStatus:
    """Where a step's refusal ends a request it held nothing for. A clean refusal (a code
    such as `quota_exceeded`) ends `failed`; a step that gave up on an error (`internal`, or
    no code) ends `rolled_back`: its transaction was undone and nothing was held before it,
    so the compensation is complete at once. A cancel in flight ends it `cancelled`."""
    if cancel_requested:
        return S.CANCELLED
    return S.ROLLED_BACK if (code or "internal") == "internal" else S.FAILED
