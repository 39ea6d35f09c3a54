"""What an audit record says about its event (who did what to which request, with what
outcome and why), read purely from the event; and the event's copy with secrets masked."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from typing import Any

from events.contracts import lifecycle
from events.logs import SECRET_WORDS

# Widths of the audit record's columns: hostile events must not make an insert fail.
REASON_MAX_CHARS = 2000
PERSON_MAX_CHARS = 200
ID_MAX_CHARS = 100

REDACTED = "[redacted]"
# Every key of every event is checked: the words without underscores are made once.
_BARE_SECRET_WORDS = tuple(word.replace("_", "") for word in SECRET_WORDS)
# References name where a secret is kept, never the secret: they are what the record needs.
REFERENCES = frozenset({"credentials_ref"})
# Deeper than any contract nests; what lies below is masked rather than inspected.
MAX_DEPTH = 32


@dataclass(frozen=True)
class Facts:
    tenant: str | None
    actor: str | None
    on_behalf_of: str | None
    request_id: str | None
    resource_id: str | None
    step: str
    outcome: str
    reason: str | None
    before: str | None
    after: str | None
    service: str


@dataclass(frozen=True)
class _Row:
    step: str
    outcome: str
    # The request's status before and after the event, where the event moves it.
    before: str | None = None
    after: str | None = None
    # The field naming the person who acted; None: the emitting service acted.
    actor_field: str | None = None


# What each event says about the request's status (`before` and `after`) is the lifecycle's
# table; a row here names its step, its outcome and who acted.
_STEPS: dict[str, _Row] = {
    # request-api
    "request.submitted": _Row("submission", "requested", actor_field="requester"),
    "request.cancellation_requested": _Row("cancellation", "requested"),
    "request.compensation_retry_requested": _Row(
        "compensation", "requested", actor_field="requested_by"
    ),
    # The status moves on the validator's answer to a decision, not on the decision itself.
    "request.approved": _Row("approval", "approved", "awaiting_approval", None, "approver"),
    "request.denied": _Row("approval", "denied", "awaiting_approval", None, "approver"),
    "approval.decision_recorded": _Row("approval", "recorded", None, None, "approver"),
    "approval.escalated": _Row("approval", "escalated"),
    "lease.expiring": _Row("lease", "expiring"),
    "lease.extended": _Row("lease", "extended", None, None, "extended_by"),
    "resource.verification_requested": _Row(
        "verification", "requested", None, None, "requested_by"
    ),
    # Not on the audited topics (the events that moved the status are), but readable.
    "request.status_changed": _Row("status", "changed"),
    # validator
    "request.validated": _Row("validation", "succeeded"),
    "request.awaiting_approval": _Row("approval", "requested"),
    "request.rejected": _Row("validation", "rejected"),
    "validation.failed": _Row("validation", "failed"),
    # allocator
    "resource.allocated": _Row("allocation", "succeeded"),
    "allocation.backordered": _Row("allocation", "backordered"),
    "allocation.failed": _Row("allocation", "failed"),
    "allocation.released": _Row("compensation", "compensated"),
    "quota.warning_reached": _Row("quota", "warned"),
    # configurator
    "resource.configured": _Row("configuration", "succeeded"),
    "configuration.failed": _Row("configuration", "failed"),
    "configuration.rolled_back": _Row("compensation", "compensated"),
    # deployer
    "resource.deployed": _Row("deployment", "succeeded"),
    "resource.verified": _Row("verification", "succeeded"),
    "provisioning.completed": _Row("completion", "succeeded"),
    "provisioning.failed": _Row("deployment", "failed"),
    "deployment.rolled_back": _Row("compensation", "compensated"),
    "compensation.failed": _Row("compensation", "failed"),
    "drift.detected": _Row("drift", "detected"),
    "drift.resolved": _Row("drift", "resolved"),
    "resource.purged": _Row("retention", "purged"),
    # any service's consume loop
    "processing.retried": _Row("retry", "retried"),
}


def _with_move(event_type: str, row: _Row) -> _Row:
    """The row with the status move the lifecycle gives its event, where the event alone
    says it (a cancel moves only a request awaiting approval: its record cannot tell)."""
    move = lifecycle.MOVES.get(event_type)
    if move is None or move.only_from is not None:
        return row
    before = move.usually_from.value if move.usually_from is not None else None
    return replace(row, before=before, after=move.to.value)


_ROWS = {event_type: _with_move(event_type, row) for event_type, row in _STEPS.items()}
_UNKNOWN = _Row("other", "recorded")

_OPERATIONS_BESIDES_PROVISION = frozenset({"modify", "deprovision"})
_DEPLOYER_STEPS = {"deploy": "deployment", "verify": "verification"}
_DECISIONS = {"approve": "approved", "deny": "denied"}


def facts_of(
    event_type: str,
    source: str,
    subject: str,
    data: Mapping[str, Any],
    *,
    tenant: str | None = None,
) -> Facts:
    """Never raises: whatever `data` holds, a field that is missing or of the wrong type is
    simply not known. `tenant` is the one the envelope names, for events whose data does
    not state it."""
    if not isinstance(data, Mapping):
        data = {}
    if not isinstance(event_type, str):
        event_type = ""
    row = _ROWS.get(event_type, _UNKNOWN)
    refine = _REFINEMENTS.get(event_type)
    if refine is not None:
        row = refine(row, data)
    service = _text(source, ID_MAX_CHARS) or "unknown"
    requester = _text(data.get("requester"), PERSON_MAX_CHARS)
    actor = _text(data.get(row.actor_field), PERSON_MAX_CHARS) if row.actor_field else service
    return Facts(
        tenant=_text(data.get("tenant"), ID_MAX_CHARS) or _text(tenant, ID_MAX_CHARS),
        actor=actor,
        on_behalf_of=requester if requester != actor else None,
        request_id=_text(data.get("request_id"), ID_MAX_CHARS) or _text(subject, ID_MAX_CHARS),
        resource_id=_resource_id(data),
        step=row.step,
        outcome=row.outcome,
        reason=_reason(data),
        before=row.before,
        after=row.after,
        service=service,
    )


def redacted(data: Mapping[str, Any]) -> dict[str, Any]:
    """`data` with the value of every key named like a secret masked, at any depth."""
    masked = _masked(data, 0)
    return masked if isinstance(masked, dict) else {}


def is_secret_name(key: object) -> bool:
    """Named like a secret (the platform's word list, which the logs mask too), with or
    without its underscores (`privateKey`, `api-key`)."""
    name = str(key).lower()
    if name.replace("-", "_") in REFERENCES:
        return False
    bare = name.replace("-", "").replace("_", "")
    return any(word in bare for word in _BARE_SECRET_WORDS)


def _masked(value: Any, depth: int) -> Any:
    if isinstance(value, Mapping | list | tuple) and depth >= MAX_DEPTH:
        return REDACTED
    if isinstance(value, Mapping):
        return {
            key: REDACTED if is_secret_name(key) else _masked(item, depth + 1)
            for key, item in value.items()
        }
    if isinstance(value, list | tuple):
        return [_masked(item, depth + 1) for item in value]
    return value


def _text(value: Any, limit: int) -> str | None:
    return value[:limit] if isinstance(value, str) and value else None


def _resource_id(data: Mapping[str, Any]) -> str | None:
    # A failed deployment names its resource only in what it may have left behind.
    leftover = data.get("leftover")
    return _text(data.get("resource_id"), ID_MAX_CHARS) or (
        _text(leftover.get("resource_id"), ID_MAX_CHARS) if isinstance(leftover, Mapping) else None
    )


def _reason(data: Mapping[str, Any]) -> str | None:
    return (
        _text(data.get("reason"), REASON_MAX_CHARS)
        or _joined(_messages(data.get("reasons")))
        or _text(data.get("justification"), REASON_MAX_CHARS)
        or _joined(data.get("differences"))
        or _quota_warning(data)
        or _text(data.get("last_error"), REASON_MAX_CHARS)
    )


def _messages(reasons: Any) -> list[Any]:
    if not isinstance(reasons, list):
        return []
    return [problem.get("message") for problem in reasons if isinstance(problem, Mapping)]


def _joined(parts: Any) -> str | None:
    if not isinstance(parts, list):
        return None
    texts: list[str] = []
    length = 0
    for part in parts:
        if isinstance(part, str) and part:
            texts.append(part)
            length += len(part) + 2
            # A hostile list may be endless; what the record keeps is capped anyway.
            if length > REASON_MAX_CHARS:
                break
    return _text("; ".join(texts), REASON_MAX_CHARS)


def _quota_warning(data: Mapping[str, Any]) -> str | None:
    dimension, in_use, limit = data.get("dimension"), data.get("in_use"), data.get("limit")
    if not (isinstance(dimension, str) and _is_count(in_use) and _is_count(limit)):
        return None
    return _text(f"{dimension}: {in_use} in use of {limit}", REASON_MAX_CHARS)


def _is_count(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _after_refusal(row: _Row, data: Mapping[str, Any]) -> _Row:
    """As the request-api decides: a clean refusal (a code such as `quota_exceeded`) ends
    `failed`; a step that gave up on an error (`internal`, or no code) ends `rolled_back`.
    A cancel in flight ends `cancelled` instead, which the event alone cannot tell."""
    code = data.get("code")
    return replace(
        row, after=lifecycle.end_of_refusal(code if isinstance(code, str) else None).value
    )


def _by_decision(row: _Row, data: Mapping[str, Any]) -> _Row:
    decision = data.get("decision")
    if not isinstance(decision, str):
        return row
    return replace(row, outcome=_DECISIONS.get(decision, row.outcome))


def _after_denial(row: _Row, data: Mapping[str, Any]) -> _Row:
    # The validator turns an approver's denial into a rejection coded `denied`.
    reasons = data.get("reasons")
    denied = isinstance(reasons, list) and any(
        isinstance(problem, Mapping) and problem.get("code") == "denied" for problem in reasons
    )
    return replace(row, before="awaiting_approval") if denied else row


def _by_operation(row: _Row, data: Mapping[str, Any]) -> _Row:
    """A modify or a deprovision runs the same pipeline; where it ends, its step is named
    after it, and giving capacity back is then its last step, not an undo."""
    operation = data.get("operation")
    if not isinstance(operation, str) or operation not in _OPERATIONS_BESIDES_PROVISION:
        return row
    if row.step == "compensation":
        return _Row(operation, "released")
    return replace(row, step=operation)


def _failed_deployment(row: _Row, data: Mapping[str, Any]) -> _Row:
    step = data.get("step")
    if isinstance(step, str):
        row = replace(row, step=_DEPLOYER_STEPS.get(step, row.step))
    if data.get("operation", "provision") == "provision":
        return row
    # A failed modify or deprovision leaves the resource as it was: nothing to undo.
    return _after_refusal(row, data)


_REFINEMENTS: dict[str, Callable[[_Row, Mapping[str, Any]], _Row]] = {
    "validation.failed": _after_refusal,
    "allocation.failed": _after_refusal,
    "approval.decision_recorded": _by_decision,
    "request.rejected": _after_denial,
    "allocation.released": _by_operation,
    "provisioning.completed": _by_operation,
    "provisioning.failed": _failed_deployment,
}
