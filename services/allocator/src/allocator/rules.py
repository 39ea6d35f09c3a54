"""Pure quota rules: may these needs be held, and what the ledger looks like afterwards."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace

from events.contracts.common import Problem


@dataclass(frozen=True)
class Quota:
    limit: int
    warning: int | None = None
    held: int = 0
    committed: int = 0

    @property
    def in_use(self) -> int:
        """Holds of requests in flight count, as well as what is committed."""
        return self.held + self.committed


Ledger = Mapping[str, Quota]


def problems(needs: Mapping[str, int], ledger: Ledger) -> list[Problem]:
    """Every dimension these needs would push past its limit. No quota: not limited."""
    found = []
    for dimension, amount in sorted(needs.items()):
        quota = ledger.get(dimension)
        if quota is not None and quota.in_use + amount > quota.limit:
            found.append(
                Problem(
                    code="quota_exceeded",
                    field=dimension,
                    message=f"{dimension}: {quota.in_use} of {quota.limit} in use, "
                    f"{amount} more requested",
                )
            )
    return found


def hold(needs: Mapping[str, int], ledger: Ledger) -> dict[str, Quota]:
    """The ledger with `needs` held; call only when `problems` found none."""
    return {
        dim: replace(quota, held=quota.held + needs[dim]) if dim in needs else quota
        for dim, quota in ledger.items()
    }


def commit(needs: Mapping[str, int], ledger: Ledger) -> dict[str, Quota]:
    """A completed request's hold becomes a commitment."""
    return {
        dim: replace(quota, held=quota.held - needs[dim], committed=quota.committed + needs[dim])
        if dim in needs
        else quota
        for dim, quota in ledger.items()
    }


def release(needs: Mapping[str, int], ledger: Ledger, *, committed: bool) -> dict[str, Quota]:
    """Give back a hold (failure, cancel, rollback) or a commitment (deprovision)."""
    changed = {}
    for dim, quota in ledger.items():
        amount = needs.get(dim, 0)
        if committed:
            changed[dim] = replace(quota, committed=quota.committed - amount)
        else:
            changed[dim] = replace(quota, held=quota.held - amount)
    return changed


def warnings(needs: Mapping[str, int], ledger: Ledger) -> list[str]:
    """Dimensions that pass their warning level once these needs are held."""
    return [
        dim
        for dim, amount in sorted(needs.items())
        if (quota := ledger.get(dim)) is not None
        and quota.warning is not None
        and quota.in_use + amount > quota.warning
    ]
