"""What an account or resource may be given, per tenant, as catalog data: the allow-list of
each parameter's values (groups, department, extensions, image...) and the privileged values
that are allowed only through the item's approval stages. Pure: no I/O."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from fnmatch import fnmatchcase
from typing import Any

from jsonschema import Draft202012Validator

from catalog.problems import ParameterProblem

DEFAULT_TENANT = "default"

_VALUES = {"type": "array", "items": {"type": "string", "minLength": 1}, "uniqueItems": True}
SCHEMA: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "type": "object",
    "additionalProperties": {
        "type": "object",
        "additionalProperties": {
            "type": "object",
            "additionalProperties": False,
            "properties": {
                "allowed": _VALUES,
                "privileged": _VALUES,
                "maximum": {"type": "number"},
                "privileged_above": {"type": "number"},
            },
        },
    },
}


@dataclass(frozen=True)
class Entitlement:
    """One parameter's rule for a tenant. `allowed` and `privileged` hold values or shell
    patterns (`oncall-*`); a value matching neither is refused. A number above `maximum` is
    refused, above `privileged_above` it needs approval."""

    allowed: tuple[str, ...] = ()
    privileged: tuple[str, ...] = ()
    maximum: float | None = None
    privileged_above: float | None = None

    def is_privileged(self, value: Any) -> bool:
        if _is_number(value):
            return self.privileged_above is not None and value > self.privileged_above
        return _matches(value, self.privileged)

    def permits(self, value: Any) -> bool:
        if _is_number(value):
            return self.maximum is None or value <= self.maximum
        if not (self.allowed or self.privileged):
            return True  # a rule of numbers only says nothing about other values
        return _matches(value, self.allowed) or self.is_privileged(value)


Entitlements = Mapping[str, Mapping[str, Entitlement]]


def parse_entitlements(data: dict[str, Any]) -> dict[str, dict[str, Entitlement]]:
    """`{tenant: {parameter: rule}}` from an item's `entitlements` block."""
    Draft202012Validator(SCHEMA).validate(data)
    return {
        tenant: {
            parameter: Entitlement(
                allowed=tuple(rule.get("allowed", ())),
                privileged=tuple(rule.get("privileged", ())),
                maximum=rule.get("maximum"),
                privileged_above=rule.get("privileged_above"),
            )
            for parameter, rule in rules.items()
        }
        for tenant, rules in data.items()
    }


def merged(packaged: Entitlements, deployment: Entitlements) -> dict[str, dict[str, Entitlement]]:
    """A deployment's rules over an item's own: a tenant the deployment names takes its rule
    for each parameter it names and keeps the item's for the others, as a tenant's rule
    replaces the default's."""
    tenants = [*packaged, *(tenant for tenant in deployment if tenant not in packaged)]
    return {
        tenant: {**packaged.get(tenant, {}), **deployment.get(tenant, {})} for tenant in tenants
    }


def rules_for(entitlements: Entitlements, tenant: str) -> dict[str, Entitlement]:
    """The tenant's rule for each parameter it names, the default's for the others."""
    return {**entitlements.get(DEFAULT_TENANT, {}), **entitlements.get(tenant, {})}


def problems(
    entitlements: Entitlements, parameters: Mapping[str, Any], *, tenant: str
) -> list[ParameterProblem]:
    """Every value the tenant may not be given, each naming its field."""
    return [
        ParameterProblem(
            field=field,
            message=f"{value!r} is not among the {parameter} tenant {tenant!r} may be given",
            code="not_entitled",
        )
        for parameter, rule in rules_for(entitlements, tenant).items()
        for field, value in _values(parameters, parameter)
        if not rule.permits(value)
    ]


def privileged(
    entitlements: Entitlements,
    parameters: Mapping[str, Any],
    *,
    tenant: str,
    previous: Mapping[str, Any] | None = None,
) -> list[ParameterProblem]:
    """The privileged values that need an approver; on a modify, only those the resource
    does not hold already (`previous`)."""
    reasons = []
    for parameter, rule in rules_for(entitlements, tenant).items():
        held = [v for _, v in _values(previous or {}, parameter) if rule.is_privileged(v)]
        for field, value in _values(parameters, parameter):
            if not rule.is_privileged(value) or _already_held(value, held):
                continue
            reasons.append(
                ParameterProblem(
                    field=field,
                    message=f"{parameter} {value!r} is privileged: it needs an approver",
                    code="approval_required",
                )
            )
    return reasons


def _already_held(value: Any, held: list[Any]) -> bool:
    # A number is held when the resource already had at least as much; a value when it had it.
    if _is_number(value):
        return any(_is_number(h) and value <= h for h in held)
    return value in held


def _values(parameters: Mapping[str, Any], parameter: str) -> Iterator[tuple[str, Any]]:
    value = parameters.get(parameter)
    if isinstance(value, list):
        for index, entry in enumerate(value):
            yield f"parameters.{parameter}[{index}]", entry
    elif value is not None:
        yield f"parameters.{parameter}", value


def _matches(value: Any, patterns: tuple[str, ...]) -> bool:
    return isinstance(value, str) and any(fnmatchcase(value, p) for p in patterns)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)
