"""Routes for compliance: a tenant's report for a period (JSON, CSV per section, HTML) and a
request's evidence pack for an external auditor. Admins and auditors only; each read is
itself recorded."""

import uuid
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Query
from fastapi.encoders import jsonable_encoder
from fastapi.responses import JSONResponse, Response

from apikeys import ApiKeyBearer, Caller
from apikeys.authorization import Action, documented
from auditor import entries, evidence, read_access, repository, sealing, timeline
from auditor.compliance import formats, reports
from events import ServiceRuntime
from events.http import ProblemError, UtcMoment

MAX_PERIOD = timedelta(days=366)
Section = Literal[
    "activity",
    "access",
    "approvals",
    "bypassed_approvals",
    "self_approvals",
    "leases_past_end",
    "drift",
    "cost",
    "cost_per_tenant",
]
_REPORT_CONTENT = {
    "application/json": {"schema": {"type": "object"}},
    "text/csv": {"schema": {"type": "string"}},
    "text/html": {"schema": {"type": "string"}},
}
_ZIP_CONTENT = {"application/zip": {"schema": {"type": "string", "format": "binary"}}}


def create_router(
    runtime: ServiceRuntime,
    authenticate: ApiKeyBearer,
    *,
    chain_key: bytes,
    sealer: sealing.Sealer,
    prices: Mapping[str, reports.Price] | None = None,
) -> APIRouter:
    """`prices` (catalog item → monthly price) prices the cost sections; without them the
    report counts each item's resources and active days and leaves the cost unset."""
    router = APIRouter(prefix="/v1/audit")
    public_key = sealer.private_key.public_key()

    # Reports and evidence cover the whole tenant: for its admins and auditors.
    OverseerDep = Annotated[
        Caller,
        Depends(
            authenticate.then(
                read_access.only_who_may(runtime, chain_key, Action.READ_AUDIT_REPORTS)
            )
        ),
    ]

    @router.get(
        "/reports",
        response_class=Response,
        responses={200: {"description": "The report", "content": _REPORT_CONTENT}},
    )
    async def compliance_report(
        caller: OverseerDep,
        start: Annotated[UtcMoment, Query(alias="from")],
        to: UtcMoment,
        format: Literal["json", "csv", "html"] = "json",
        section: Section | None = None,
    ) -> Response:
        """The tenant's compliance report for [from, to) (at most 366 days): activity per
        catalog item, access granted and removed per person, approval decisions, requests
        that bypassed approval, self-approvals, resources past their lease or with unresolved
        drift, and cost. `format=json` (every section, or only `section`), `format=csv`
        (one section, which `section` names: required) or `format=html` (one page)."""
        if not start < to or to - start > MAX_PERIOD:
            raise _invalid("query.to", "must be after `from`, at most 366 days later")
        if format == "csv" and section is None:
            raise _invalid("query.section", "a CSV holds one section: name it")
        period = reports.Period(start, to)
        builder = reports.ReportBuilder(caller.tenant, period, prices=prices)
        async with runtime.tenant_transaction(caller.tenant) as session:
            async for record in repository.history_before(session, period.end):
                builder.add(entries.entry_of(record))
        report = builder.report()
        query = {
            "view": "report",
            "from": period.start.isoformat(),
            "to": period.end.isoformat(),
            "format": format,
            **({"section": section} if section else {}),
        }
        await read_access.record(runtime, chain_key, caller, query, report.records)
        if format == "csv" and section is not None:
            return Response(
                formats.report_csv(report, section),
                media_type=formats.CSV_MEDIA_TYPE,
                headers={"Content-Disposition": f'attachment; filename="{section}.csv"'},
            )
        chosen = [section] if section else list(reports.SECTIONS)
        if format == "html":
            return Response(
                formats.report_html(report, chosen),
                media_type=formats.HTML_MEDIA_TYPE,
            )
        body = report.to_dict()
        body["sections"] = {name: body["sections"][name] for name in chosen}
        return JSONResponse(body)

    @router.get(
        "/requests/{request_id}/evidence",
        response_class=Response,
        responses={200: {"description": "The evidence pack (zip)", "content": _ZIP_CONTENT}},
        openapi_extra=documented(Action.READ_AUDIT_REPORTS),
    )
    async def evidence_pack(request_id: uuid.UUID, caller: OverseerDep) -> Response:
        """One zip for an external auditor: the request's records, their inclusion proofs,
        the signed checkpoints and the public key that verify them offline, and a readable
        summary. Until every record of the request is sealed by a checkpoint (at most one
        checkpoint period), it answers 409: a pack is only made complete."""
        async with runtime.tenant_transaction(caller.tenant) as session:
            records = await repository.records_of_request(session, str(request_id))
        if not records:
            raise ProblemError(404, "No audit records for this request")
        async with runtime.session_factory() as session:
            proofs = await evidence.proofs_of(session, [r.seq for r in records])
        unsealed = [r.seq for r in records if r.seq not in proofs]
        if unsealed:
            raise ProblemError(
                409,
                "Not sealed yet",
                f"{len(unsealed)} of its records await their checkpoint; retry shortly.",
            )
        query = {"request_id": str(request_id), "view": "evidence"}
        await read_access.record(runtime, chain_key, caller, query, len(records))
        journey = timeline.timeline_of(str(request_id), [entries.entry_of(r) for r in records])
        pack = evidence.build_pack(
            str(request_id),
            records,
            proofs,
            public_key,
            made_at=datetime.now(UTC).isoformat(),
            timeline=jsonable_encoder(journey),
        )
        return Response(
            pack,
            media_type="application/zip",
            headers={"Content-Disposition": f'attachment; filename="evidence-{request_id}.zip"'},
        )

    return router


def _invalid(field: str, message: str) -> ProblemError:
    return ProblemError(
        422, "Invalid request", message, errors=[{"field": field, "message": message}]
    )
