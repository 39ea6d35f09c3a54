"""What the request-api's routes share: request bodies and answers."""

from typing import Any

from fastapi.responses import JSONResponse
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from apikeys import Caller
from catalog import Catalog, CatalogItem, ParameterProblem, entitlements
from events.http import ProblemError
from request_api.leases import LeaseProblem
from request_api.models import ProvisioningRequest
from request_api.submissions import Requester


class NewRequest(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "example": {
                "catalog_item": "postgres_database",
                "parameters": {"name": "orders", "extensions": ["citext"]},
            }
        },
    )

    catalog_item: str = Field(min_length=1, max_length=100)
    parameters: dict[str, Any] = Field(default_factory=dict)
    # When the resource is deprovisioned by itself; the item's default lease otherwise.
    expires_at: AwareDatetime | None = None


class ResourceChange(BaseModel):
    """A modify: the parameters to change (the others stay), and whether to rotate the
    resource's generated secret."""

    model_config = ConfigDict(extra="forbid")

    parameters: dict[str, Any] = Field(default_factory=dict)
    rotate_credentials: bool = False


class Decision(BaseModel):
    """Why the approver decides so: it goes to the audit with their name."""

    model_config = ConfigDict(extra="forbid")

    # Control characters (other than line breaks and tabs) have no place in an audit record,
    # and PostgreSQL cannot store NUL at all.
    justification: str = Field(
        min_length=3, max_length=2000, pattern=r"^[^\x00-\x08\x0b\x0c\x0e-\x1f\x7f]*$"
    )


class LeaseExtension(BaseModel):
    model_config = ConfigDict(extra="forbid")

    expires_at: AwareDatetime


def requester_of(caller: Caller) -> Requester:
    return Requester(name=caller.name, tenant=caller.tenant, roles=caller.roles)


def accepted(request: ProvisioningRequest) -> JSONResponse:
    return JSONResponse(
        request.public(), status_code=202, headers={"Location": f"/v1/requests/{request.id}"}
    )


def invalid_lease(problem: LeaseProblem) -> ProblemError:
    return ProblemError(
        422,
        "Invalid lease",
        str(problem),
        errors=[{"field": "expires_at", "message": str(problem)}],
    )


def item_problems(
    catalog: Catalog,
    catalog_item: str,
    parameters: dict[str, Any],
    *,
    tenant: str,
    prefix: str = "",
) -> tuple[CatalogItem | None, list[dict[str, Any]]]:
    """The item, and every way the request for it fails the catalog (its schema, or a value
    the tenant may not be given), each naming its field."""
    item = catalog.get(catalog_item)
    if item is None:
        return None, [{"field": f"{prefix}catalog_item", "message": "unknown catalog item"}]
    return item, [
        {"field": f"{prefix}{p.field}", "message": p.message}
        for p in _catalog_problems(item, parameters, tenant=tenant)
    ]


def _catalog_problems(
    item: CatalogItem, parameters: dict[str, Any], *, tenant: str
) -> list[ParameterProblem]:
    # The validator refuses a value outside the allow-list too; refused here, nothing is filed.
    return item.schema_problems(parameters) or entitlements.problems(
        item.entitlements, parameters, tenant=tenant
    )


def invalid(title: str, errors: list[dict[str, Any]]) -> ProblemError:
    detail = "; ".join(f"{e['field']}: {e['message']}" for e in errors)
    return ProblemError(422, title, detail, errors=errors)


def change_problems(
    item: CatalogItem, current: dict[str, Any], changed: dict[str, Any], *, tenant: str
) -> list[dict[str, Any]]:
    """Why a modify from `current` to `changed` parameters cannot be done in place: each
    problem names its field. What the resource holds (its name, quota, pool units) stays."""
    problems = [
        {"field": p.field, "message": p.message}
        for p in _catalog_problems(item, changed, tenant=tenant)
    ]
    if changed.get("name") != current.get("name"):
        message = "the name identifies the resource; request a new resource instead"
        problems.append({"field": "parameters.name", "message": message})
    if item.quota_needs(changed) != item.quota_needs(current) or item.unit_needs(
        changed
    ) != item.unit_needs(current):
        message = "this change needs other quota or pool units; request a new resource instead"
        problems.append({"field": "parameters", "message": message})
    return problems
