"""Loads catalog items from the JSON files shipped in this package, with a deployment's own
entitlements over theirs, and checks parameters."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from functools import cached_property
from importlib import resources
from pathlib import Path
from typing import Any

from jsonschema import Draft202012Validator, ValidationError

from catalog.approvals import DEFAULT_STAGES, ApprovalStage, parse_stages
from catalog.entitlements import Entitlement, merged, parse_entitlements
from catalog.problems import ParameterProblem


@dataclass(frozen=True)
class CatalogItem:
    name: str
    title: str
    description: str
    parameters_schema: dict[str, Any]
    policy: dict[str, Any] = field(default_factory=dict)
    defaults: dict[str, Any] = field(default_factory=dict)
    allowed_roles: tuple[str, ...] = ("requester", "admin")
    # {"capacity_pool": ..., "target": ..., "units": {role: "pool:{parameter}"},
    #  "quota": {dimension: amount or {"parameter": ..., "default": ...}}}
    allocation: dict[str, Any] = field(default_factory=dict)
    monthly_cost: float = 0.0
    # {"default_days": int | None, "max_days": int | None}
    lease: dict[str, Any] = field(default_factory=dict)
    # {"when": [{"parameter": ..., "above": ..., "reason": ...}], "stages": [...]}
    approval: dict[str, Any] = field(default_factory=dict)
    # {tenant: {parameter: rule}}: what may be given (from `entitlements`; see entitlements.py)
    entitlements: dict[str, dict[str, Entitlement]] = field(default_factory=dict)
    # Who decides a request that needs approval, stage by stage (from `approval.stages`).
    approval_stages: tuple[ApprovalStage, ...] = DEFAULT_STAGES
    # {"driver": ..., "template": {...}}: what the configurator renders for the deployer
    configuration: dict[str, Any] = field(default_factory=dict)
    # How long a deprovisioned resource is kept disabled before it is deleted (0: at once).
    retention_days: float = 0.0

    def unit_needs(self, parameters: dict[str, Any]) -> dict[str, str]:
        """Which pool each identifiable unit comes from (a seat, an address, a device)."""
        return {
            role: template.format_map(_Parameters(parameters))
            for role, template in self.allocation.get("units", {}).items()
        }

    def quota_needs(self, parameters: dict[str, Any]) -> dict[str, int]:
        """How much of each tenant quota dimension one of this item consumes."""
        needs = {}
        for dimension, amount in self.allocation.get("quota", {}).items():
            if isinstance(amount, dict):
                amount = parameters.get(amount["parameter"], amount.get("default", 0))
            needs[dimension] = int(amount)
        return needs

    def schema_problems(self, parameters: Any) -> list[ParameterProblem]:
        """Every way `parameters` fails the item's JSON Schema, each naming its field."""
        problems = []
        for error in sorted(self._validator.iter_errors(parameters), key=lambda e: list(e.path)):
            path = ".".join(str(part) for part in error.absolute_path)
            if error.validator == "required":
                missing = error.message.split("'")[1] if "'" in error.message else None
                path = ".".join(p for p in (path, missing) if p)
            problems.append(
                ParameterProblem(
                    field=f"parameters.{path}" if path else "parameters",
                    message=_short(error.message),
                )
            )
        return problems

    @cached_property
    def _validator(self) -> Draft202012Validator:
        return Draft202012Validator(self.parameters_schema)

    def public(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "title": self.title,
            "description": self.description,
            "parameters": self.parameters_schema,
            "allowed_roles": list(self.allowed_roles),
            "monthly_cost": self.monthly_cost,
        }


class CatalogError(ValueError):
    """The catalog cannot be loaded as configured (a deployment's entitlements file): the
    service must not start."""


@dataclass(frozen=True)
class Catalog:
    items: dict[str, CatalogItem]
    # Names the policy that decided: a digest of every item file and the entitlements file.
    version: str = ""

    def get(self, name: str) -> CatalogItem | None:
        return self.items.get(name)


def load_catalog(*, entitlements_file: Path | None = None) -> Catalog:
    """The packaged items; `entitlements_file` (`{item: {tenant: {parameter: rule}}}`) gives
    a deployment's own tenants' rules, merged over each item's `entitlements`."""
    folder = resources.files("catalog") / "items"
    items = {}
    digest = hashlib.sha256()
    for entry in sorted(folder.iterdir(), key=lambda e: e.name):
        if not entry.name.endswith(".json"):
            continue
        text = entry.read_text()
        digest.update(text.encode())
        data = json.loads(text)
        Draft202012Validator.check_schema(data["parameters"])
        item = CatalogItem(
            name=data["name"],
            title=data["title"],
            description=data["description"],
            parameters_schema=data["parameters"],
            policy=data.get("policy", {}),
            defaults=data.get("defaults", {}),
            allowed_roles=tuple(data.get("allowed_roles", ("requester", "admin"))),
            allocation=data.get("allocation", {}),
            monthly_cost=float(data.get("cost", {}).get("monthly", 0.0)),
            lease=data.get("lease", {}),
            approval=data.get("approval", {}),
            approval_stages=parse_stages(data.get("approval", {})),
            entitlements=parse_entitlements(data.get("entitlements", {})),
            configuration=data.get("configuration", {}),
            retention_days=float(data.get("deprovision", {}).get("retention_days", 0)),
        )
        items[item.name] = item
    if entitlements_file is not None:
        text, deployment = _read_entitlements(entitlements_file, known=items.keys())
        digest.update(text.encode())
        for name, rules in deployment.items():
            items[name] = replace(items[name], entitlements=merged(items[name].entitlements, rules))
    return Catalog(items, version=f"catalog-{digest.hexdigest()[:12]}")


def _read_entitlements(
    path: Path, *, known: Iterable[str]
) -> tuple[str, dict[str, dict[str, dict[str, Entitlement]]]]:
    try:
        text = path.read_text()
        data = json.loads(text)
    except (OSError, ValueError) as error:
        raise CatalogError(f"entitlements file {path}: {error}") from error
    if not isinstance(data, dict):
        raise CatalogError(f"entitlements file {path}: not an object of catalog items")
    unknown = sorted(set(data) - set(known))
    if unknown:
        raise CatalogError(f"entitlements file {path}: no such catalog item: {', '.join(unknown)}")
    parsed = {}
    for name, block in data.items():
        try:
            parsed[name] = parse_entitlements(block)
        except ValidationError as error:
            where = "/".join(str(part) for part in (name, *error.absolute_path))
            raise CatalogError(
                f"entitlements file {path}: {where}: {_short(error.message)}"
            ) from error
    return text, parsed


def _short(message: str, limit: int = 300) -> str:
    # jsonschema echoes the offending value, which may be huge or hostile: keep it short.
    return message if len(message) <= limit else message[: limit - 1] + "…"


class _Parameters(dict[str, Any]):
    """Fills a pool template from parameters; a missing one stays visible in the name."""

    def __missing__(self, key: str) -> str:
        return "{" + key + "}"
