"""Pure rules of a joiner: which bundle a user's role gets, and each item's parameters built
from the SCIM user. The role → bundle table is catalog data (`catalog/onboarding.json`)."""

from __future__ import annotations

import json
import re
from importlib import resources
from typing import Any

from pydantic import BaseModel, ConfigDict, Field
from scim2_models import EnterpriseUser, User

from catalog import Catalog

UserModel = User[EnterpriseUser]
ACCOUNT = "directory_account"
DEFAULT_DEPARTMENT = "general"
# Leaves room for a uniqueness tag, a generation and an item suffix within the catalog's
# 40-character names.
PERSON_BASE_LENGTH = 17
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


class BundleItem(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    catalog_item: str
    parameters: dict[str, Any] = Field(default_factory=dict)
    # The resource is named after the person's account: <account>_<suffix>.
    suffix: str | None = None


class Onboarding(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    description: str = ""
    default: tuple[BundleItem, ...]
    roles: dict[str, tuple[BundleItem, ...]] = Field(default_factory=dict)

    def bundle_of(self, role: str | None) -> tuple[BundleItem, ...]:
        return self.roles.get((role or "").lower(), self.default)


def load_onboarding(catalog: Catalog) -> Onboarding:
    """Read and check the table: every item it names must be in the catalog."""
    text = (resources.files("catalog") / "onboarding.json").read_text()
    onboarding = Onboarding.model_validate(json.loads(text))
    bundles = [onboarding.default, *onboarding.roles.values()]
    unknown = {i.catalog_item for b in bundles for i in b if catalog.get(i.catalog_item) is None}
    if unknown:
        raise ValueError(f"onboarding names unknown catalog items: {sorted(unknown)}")
    return onboarding


def role_of(user: UserModel) -> str | None:
    """The primary SCIM role, else the first: RFC 7643 §4.1.2 `roles` say who the user is."""
    roles = [role for role in user.roles or [] if role.value]
    primary = next((role for role in roles if role.primary), roles[0] if roles else None)
    return str(primary.value) if primary else None


def person_base(user_name: str) -> str:
    """A person name valid as an account name and an assignee, from the userName's local
    part: bjensen@example.com → bjensen."""
    local = user_name.split("@", 1)[0].lower()
    base = re.sub(r"_+", "_", re.sub(r"[^a-z0-9]", "_", local)).strip("_")
    if not base[:1].isalpha():
        base = f"u{base}"
    base = base[:PERSON_BASE_LENGTH].rstrip("_")
    return base if len(base) >= 3 else f"{base}_user"


def person_with_tag(base: str, tag: str) -> str:
    """Another person of the tenant already has `base`."""
    return f"{base}_{tag[:6]}"


def account_name(person: str, generation: int) -> str:
    """A reactivated user gets a new account: the old one is kept disabled until its
    retention ends, under its own name."""
    return person if generation <= 1 else f"{person}_{generation}"


def directory_group(display_name: str) -> str | None:
    """The directory group a SCIM group stands for, e.g. "Web Admins" → web-admins."""
    slug = re.sub(r"[^a-z0-9._-]+", "-", display_name.lower())
    slug = re.sub(r"^[^a-z0-9]+", "", slug)[:64]
    return slug or None


def directory_groups(display_names: list[str]) -> list[str]:
    return sorted({g for name in display_names if (g := directory_group(name))})


def bundle_requests(
    onboarding: Onboarding,
    user: UserModel,
    *,
    person: str,
    generation: int,
    groups: list[str],
) -> list[dict[str, Any]]:
    """The requests ({catalog_item, parameters}) of the user's onboarding bundle."""
    account = account_name(person, generation)
    requests = []
    for item in onboarding.bundle_of(role_of(user)):
        if item.catalog_item == ACCOUNT:
            parameters = {**account_parameters(user, person, groups), "name": account}
        else:
            suffix = item.suffix or item.catalog_item
            parameters = {"name": f"{account}_{suffix}", "assignee": person}
        requests.append(
            {"catalog_item": item.catalog_item, "parameters": {**item.parameters, **parameters}}
        )
    return requests


def account_parameters(user: UserModel, person: str, groups: list[str]) -> dict[str, Any]:
    """The directory account's parameters the user decides (the name aside)."""
    name = user.name
    words = (user.display_name or "").split()
    given = (name.given_name if name else None) or (words[0] if words else person)
    family = (name.family_name if name else None) or (words[-1] if words else person)
    parameters: dict[str, Any] = {
        "given_name": _text(given, person),
        "family_name": _text(family, person),
        "department": department_of(user),
        "assignee": person,
        "groups": groups,
    }
    if mail := _mail(user):
        parameters["mail"] = mail
    return parameters


def department_of(user: UserModel) -> str:
    enterprise = user[EnterpriseUser]
    department = (enterprise.department if enterprise else None) or ""
    slug = re.sub(r"[^a-z0-9-]+", "-", department.lower()).strip("-")
    slug = re.sub(r"^[^a-z]+", "", slug)[:41]
    return slug if len(slug) >= 2 else DEFAULT_DEPARTMENT


def primary_email(user: UserModel) -> str | None:
    """The primary e-mail, else the first; None when there is none."""
    emails = [email for email in user.emails or [] if email.value]
    chosen = next((e for e in emails if e.primary), emails[0] if emails else None)
    return str(chosen.value) if chosen else None


def _mail(user: UserModel) -> str | None:
    value = primary_email(user) or ""
    return value if re.fullmatch(r"[^@\s]+@[^@\s]+\.[A-Za-z]{2,}", value) else None


def _text(value: str, fallback: str) -> str:
    cleaned = _CONTROL.sub(" ", value).strip()[:100]
    return cleaned or fallback
