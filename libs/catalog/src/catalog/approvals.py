"""Approval policy as catalog data: the stages a request above an item's thresholds goes
through, who decides each, by which rule, and what happens when nobody does in time."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from jsonschema import Draft202012Validator

Rule = Literal["any", "all", "quorum"]

_NAMES = {"type": "array", "items": {"type": "string", "minLength": 1}, "uniqueItems": True}
_SECONDS = {"type": "number", "exclusiveMinimum": 0}

STAGES_SCHEMA: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "type": "array",
    "minItems": 1,
    "items": {
        "type": "object",
        "additionalProperties": False,
        "required": ["name"],
        "properties": {
            "name": {"type": "string", "pattern": "^[a-z][a-z0-9_]{0,63}$"},
            "roles": _NAMES,
            "people": _NAMES,
            "rule": {"enum": ["any", "all", "quorum"]},
            "quorum": {"type": "integer", "minimum": 1},
            "escalate_after_s": _SECONDS,
            "deny_after_s": _SECONDS,
            "fallback": {
                "type": "object",
                "additionalProperties": False,
                "properties": {"roles": _NAMES, "people": _NAMES},
            },
        },
    },
}


@dataclass(frozen=True)
class Approvers:
    """Who may decide: anyone with one of `roles`, and the `people` named."""

    roles: tuple[str, ...] = ()
    people: tuple[str, ...] = ()

    def include(self, name: str, roles: tuple[str, ...] | list[str]) -> bool:
        return name in self.people or bool(set(roles) & set(self.roles))

    def __bool__(self) -> bool:
        return bool(self.roles or self.people)


@dataclass(frozen=True)
class ApprovalStage:
    """One stage: `any` approver decides, `all` the people named must approve, or a `quorum`
    of approvals. Undecided after `escalate_after_s`, the `fallback` approvers may decide too;
    still undecided after `deny_after_s` (counted from the stage's start), it is denied."""

    name: str
    approvers: Approvers
    rule: Rule = "any"
    quorum: int = 1
    escalate_after_s: float | None = None
    deny_after_s: float | None = None
    fallback: Approvers = field(default_factory=Approvers)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ApprovalStage:
        return cls(
            name=data["name"],
            approvers=_approvers(data["approvers"]),
            rule=data["rule"],
            quorum=data["quorum"],
            escalate_after_s=data["escalate_after_s"],
            deny_after_s=data["deny_after_s"],
            fallback=_approvers(data["fallback"]),
        )


# An item that names no stages: one approver (or admin) decides.
DEFAULT_STAGES = (ApprovalStage(name="approval", approvers=Approvers(roles=("approver", "admin"))),)


class InvalidApprovalPolicy(ValueError):
    pass


def parse_stages(approval: dict[str, Any]) -> tuple[ApprovalStage, ...]:
    """The item's stages from its `approval` block; refuses a policy nobody could satisfy."""
    declared = approval.get("stages")
    if declared is None:
        return DEFAULT_STAGES
    errors = sorted(Draft202012Validator(STAGES_SCHEMA).iter_errors(declared), key=str)
    if errors:
        raise InvalidApprovalPolicy(f"approval.stages: {errors[0].message}")
    stages = tuple(_stage(entry) for entry in declared)
    if len({stage.name for stage in stages}) != len(stages):
        raise InvalidApprovalPolicy("approval.stages: stage names must be unique")
    for stage in stages:
        _check(stage)
    return stages


def _stage(entry: dict[str, Any]) -> ApprovalStage:
    rule = entry.get("rule", "any")
    return ApprovalStage(
        name=entry["name"],
        approvers=_approvers(entry),
        rule=rule,
        quorum=entry.get("quorum", 1),
        escalate_after_s=entry.get("escalate_after_s"),
        deny_after_s=entry.get("deny_after_s"),
        fallback=_approvers(entry.get("fallback", {})),
    )


def _approvers(data: dict[str, Any]) -> Approvers:
    return Approvers(roles=tuple(data.get("roles", ())), people=tuple(data.get("people", ())))


def _check(stage: ApprovalStage) -> None:
    where = f"approval.stages.{stage.name}"
    if not stage.approvers:
        raise InvalidApprovalPolicy(f"{where}: names no roles and no people")
    if stage.rule == "all" and (stage.approvers.roles or not stage.approvers.people):
        # "All holders of a role" is not a set the platform knows: `all` is for named people.
        raise InvalidApprovalPolicy(f"{where}: rule 'all' needs people and no roles")
    if (
        stage.rule == "quorum"
        and not stage.approvers.roles
        and stage.quorum > len(stage.approvers.people)
    ):
        raise InvalidApprovalPolicy(f"{where}: quorum larger than the people named")
    if (stage.escalate_after_s is None) != (not stage.fallback):
        raise InvalidApprovalPolicy(f"{where}: escalate_after_s and fallback go together")
    if (
        stage.escalate_after_s is not None
        and stage.deny_after_s is not None
        and stage.deny_after_s <= stage.escalate_after_s
    ):
        raise InvalidApprovalPolicy(f"{where}: deny_after_s must come after escalate_after_s")
