"""Routes of the auditor: a request's history; verification of the whole record; a record's
inclusion proof against its signed checkpoint; an export for offline verification."""

import base64
import uuid
from typing import Annotated, Any

from cryptography.hazmat.primitives import serialization
from fastapi import APIRouter, Depends, Path, Query
from fastapi.responses import PlainTextResponse

from apikeys import ApiKeyBearer, Caller
from apikeys.authorization import Action, Forbidden, Relation, documented, relations
from auditor import entries, evidence, read_access, repository, sealing, timeline, verification
from auditor.models import AuditRecord
from events import ServiceRuntime
from events.http import PRINTABLE, ProblemError, UtcMoment

# An export is a range of records: bounded, so that one call cannot hold the database.
MAX_EXPORT = 10_000
# Sequence numbers are PostgreSQL bigints.
Seq = Annotated[int, Path(ge=1, le=2**63 - 1)]
SeqQuery = Annotated[int, Query(ge=1, le=2**63 - 1)]


def create_router(
    runtime: ServiceRuntime,
    authenticate: ApiKeyBearer,
    *,
    chain_key: bytes,
    sealer: sealing.Sealer,
) -> APIRouter:
    router = APIRouter(prefix="/v1/audit")
    CallerDep = Annotated[Caller, Depends(authenticate)]
    public_key = sealer.private_key.public_key()

    # The whole record (every tenant's) is checked and exported only by admins and auditors;
    # it answers where it breaks, never another tenant's data.
    OverseerDep = Annotated[
        Caller,
        Depends(
            authenticate.then(
                read_access.only_who_may(runtime, chain_key, Action.READ_AUDIT_REPORTS)
            )
        ),
    ]
    ExporterDep = Annotated[
        Caller,
        Depends(
            authenticate.then(read_access.only_who_may(runtime, chain_key, Action.EXPORT_AUDIT))
        ),
    ]

    @router.get("/requests/{request_id}", openapi_extra=documented(Action.READ_AUDIT))
    async def request_history(request_id: uuid.UUID, caller: CallerDep) -> dict[str, Any]:
        """The request's records. An auditor or admin reads any request of the tenant;
        anyone else only one they asked for or that was done for them. A request of another
        tenant has no history here: row-level security hides it. The read is recorded."""
        async with runtime.tenant_transaction(caller.tenant) as session:
            records = await repository.records_of_request(session, str(request_id))
        people = timeline.requesters_of(entries.entry_of(record) for record in records)
        allowed = read_access.may_read(caller, people)
        query = {"request_id": str(request_id), "view": "history"}
        refused = bool(records) and not allowed
        await read_access.record(
            runtime, chain_key, caller, query, len(records) if allowed else 0, refused=refused
        )
        if not records:
            raise ProblemError(404, "No audit records for this request")
        if not allowed:
            raise Forbidden(Action.READ_AUDIT)
        return {"request_id": str(request_id), "events": [_event(r) for r in records]}

    @router.get("/records")
    async def find_records(
        caller: CallerDep,
        request_id: uuid.UUID | None = None,
        resource_id: uuid.UUID | None = None,
        person: Annotated[str | None, Query(max_length=200, pattern=PRINTABLE)] = None,
        event_type: Annotated[str | None, Query(max_length=200, pattern=PRINTABLE)] = None,
        occurred_after: UtcMoment | None = None,
        occurred_before: UtcMoment | None = None,
        limit: Annotated[int, Query(ge=1, le=500)] = 100,
        cursor: Annotated[str | None, Query(max_length=40)] = None,
    ) -> dict[str, Any]:
        """The tenant's records, oldest first, by request, resource, person (who acted or was
        acted for), event type and time. An auditor or admin reads every record of the
        tenant; anyone else only those they acted in or were acted for. The read itself is
        recorded."""
        overseer = read_access.oversees(caller)
        if not overseer and person not in (None, caller.name):
            refused = {"person": person, "view": "records"}
            await read_access.record(runtime, chain_key, caller, refused, 0, refused=True)
            raise Forbidden(Action.READ_AUDIT)
        query = {
            "request_id": str(request_id) if request_id else None,
            "resource_id": str(resource_id) if resource_id else None,
            "person": person if overseer else caller.name,
            "event_type": event_type,
        }
        async with runtime.tenant_transaction(caller.tenant) as session:
            rows = await repository.find_records(
                session,
                **query,
                occurred_after=occurred_after,
                occurred_before=occurred_before,
                after_seq=_after(cursor),
                limit=limit,
            )
        await read_access.record(
            runtime,
            chain_key,
            caller,
            {k: v for k, v in query.items() if v is not None},
            len(rows),
        )
        more = len(rows) == limit
        return {
            "items": [_event(r) for r in rows],
            "next_cursor": _cursor(rows[-1].seq) if more else None,
        }

    @router.get("/verify")
    async def verify(caller: OverseerDep) -> dict[str, Any]:
        """The keyed chain over every record, then every checkpoint published outside the
        database (the file) against the records it seals: where it breaks, if it does."""
        async with runtime.session_factory() as session:
            return await verification.verify_all(
                session,
                chain_key=chain_key,
                sealed=sealing.read_file(sealer.checkpoint_file),
                public_key=public_key,
            )

    @router.get("/public-key", response_class=PlainTextResponse)
    async def signing_public_key(_: CallerDep) -> str:
        """The Ed25519 public key (PEM) that verifies checkpoints, for offline verifiers."""
        pem = public_key.public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        return pem.decode()

    @router.get("/checkpoints")
    async def signed_checkpoints(_: OverseerDep) -> dict[str, Any]:
        return {"items": [c.to_dict() for c in sealing.read_file(sealer.checkpoint_file)]}

    @router.get("/records/{seq}/proof", openapi_extra=documented(Action.READ_AUDIT))
    async def inclusion_proof(seq: Seq, caller: CallerDep) -> dict[str, Any]:
        """The record, its checkpoint and its Merkle audit path: checkable offline with the
        public key alone. An auditor or admin reads any record of the tenant; anyone else
        one they acted in or were acted for. A record of another tenant is not found. The
        read is recorded."""
        async with runtime.tenant_transaction(caller.tenant) as session:
            record = await repository.get_record(session, seq)
        if record is None:
            raise ProblemError(404, "No such audit record")
        people = {person for person in (record.actor, record.on_behalf_of) if person}
        allowed = read_access.may_read(caller, people)
        query = {"seq": seq, "view": "proof"}
        await read_access.record(
            runtime, chain_key, caller, query, 1 if allowed else 0, refused=not allowed
        )
        if not allowed:
            raise Forbidden(Action.READ_AUDIT)
        async with runtime.session_factory() as session:
            proof = (await evidence.proofs_of(session, [seq])).get(seq)
        if proof is None:
            raise ProblemError(409, "Not sealed yet", "Its checkpoint is still to come.")
        return {
            "seq": seq,
            "leaf": record.leaf,
            "content": repository.content_of(record),
            "index": proof.index,
            "proof": list(proof.path),
            "checkpoint": proof.checkpoint.to_dict(),
        }

    @router.get("/export")
    async def export(
        caller: ExporterDep,
        first: SeqQuery = 1,
        last: Annotated[int | None, Query(ge=1, le=2**63 - 1)] = None,
    ) -> dict[str, Any]:
        """Records `first`..`last` (at most 10 000) as the offline verifier reads them: the
        caller's tenant's in full, every other tenant's as its leaf hash alone (`content`
        null), which still proves its place under the signed roots without saying what it
        is. The platform's operator exports every tenant's in full. Each record carries its
        chain links (`prev_hash`, `hash`), so a number the sequence skipped (after a database
        crash) is seen to be no missing record. The read is recorded."""
        last = last if last is not None else min(first + MAX_EXPORT - 1, 2**63 - 1)
        if last < first or last - first >= MAX_EXPORT:
            raise ProblemError(422, "Invalid range", f"first..last spans 1 to {MAX_EXPORT}.")
        everyone = Relation.OPERATOR in relations(caller)
        # The chain spans every tenant, so this reads past row-level security, and the
        # tenant is decided here, row by row.
        async with runtime.session_factory() as session:
            rows = await repository.records_between(session, first, last)
        readable = {r.seq for r in rows if everyone or r.tenant == caller.tenant}
        query = {"first": first, "last": last, "view": "export"}
        await read_access.record(runtime, chain_key, caller, query, len(readable))
        return {
            "records": [
                {
                    "seq": r.seq,
                    "leaf": r.leaf,
                    "content": repository.content_of(r) if r.seq in readable else None,
                    "prev_hash": r.prev_hash,
                    "hash": r.hash,
                }
                for r in rows
            ]
        }

    return router


def _cursor(seq: int) -> str:
    return base64.urlsafe_b64encode(f"after:{seq}".encode()).decode().rstrip("=")


def _after(cursor: str | None) -> int:
    if cursor is None:
        return 0
    try:
        text = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        seq = int(text.removeprefix("after:")) if text.startswith("after:") else -1
    except (ValueError, UnicodeDecodeError):
        seq = -1
    if not 0 <= seq < 2**63:
        errors = [{"field": "query.cursor", "message": "not a cursor this API made"}]
        raise ProblemError(422, "Invalid request", "not a cursor this API made", errors=errors)
    return seq


def _event(record: AuditRecord) -> dict[str, Any]:
    return {
        "seq": record.seq,
        "event_id": str(record.event_id),
        "type": record.event_type,
        "source": record.source,
        "time": record.occurred_at.isoformat(),
        "recorded_at": record.recorded_at.isoformat(),
        "trace_id": record.trace_id,
        "tenant": record.tenant,
        "request_id": record.request_id,
        "resource_id": record.resource_id,
        "service": record.service,
        "actor": record.actor,
        "on_behalf_of": record.on_behalf_of,
        "step": record.step,
        "outcome": record.outcome,
        "reason": record.reason,
        "before": record.before,
        "after": record.after,
        "data": record.envelope.get("data", {}),
        "hash": record.hash,
    }
