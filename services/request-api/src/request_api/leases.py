"""Pure lease rules: when a resource expires, and how far a lease may reach."""

from __future__ import annotations

from datetime import datetime, timedelta

from catalog import CatalogItem


class LeaseProblem(ValueError):
    pass


def initial_expiry(
    item: CatalogItem, requested: datetime | None, *, now: datetime
) -> datetime | None:
    """The request's own expiry, else the item's default lease, else none."""
    if requested is None:
        days = item.lease.get("default_days")
        return now + timedelta(days=days) if days else None
    return check_expiry(item, requested, now=now)


def check_expiry(item: CatalogItem, expires_at: datetime, *, now: datetime) -> datetime:
    if expires_at <= now:
        raise LeaseProblem("expires_at must be in the future")
    most = item.lease.get("max_days")
    if most is not None and expires_at > now + timedelta(days=most):
        raise LeaseProblem(f"a {item.name} lease may reach at most {most} days ahead")
    return expires_at
