"""What the receiver holds, in one JSON file rewritten after every call: the vendor's
assignments, the MDM's devices, the first answer to each event and the log of deliveries.
Revisions count the changes to each assignment or device, so a client can tell a state it has
seen from one it has not."""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

MAX_DELIVERIES = 10_000  # the log is for tests and demos, not an archive


@dataclass
class Outcome:
    status: int
    payload: dict[str, Any]
    verdict: str


@dataclass
class State:
    path: Path
    assignments: dict[str, dict[str, Any]] = field(default_factory=dict)
    devices: dict[str, dict[str, Any]] = field(default_factory=dict)
    # "<system>:<webhook-id>" -> {"digest", "status", "payload"}: the first answer to an event.
    seen: dict[str, dict[str, Any]] = field(default_factory=dict)
    deliveries: list[dict[str, Any]] = field(default_factory=list)

    @classmethod
    def load(cls, path: Path) -> State:
        if not path.exists():
            return cls(path)
        data = json.loads(path.read_text())
        return cls(path, data["assignments"], data["devices"], data["seen"], data["deliveries"])

    def save(self) -> None:
        """Atomically: a crash leaves the previous file or the new one, never half of one."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        data = {
            "assignments": self.assignments,
            "devices": self.devices,
            "seen": self.seen,
            "deliveries": self.deliveries[-MAX_DELIVERIES:],
        }
        fd, tmp = tempfile.mkstemp(dir=self.path.parent, prefix=".state-", suffix=".json")
        with os.fdopen(fd, "w") as out:
            json.dump(data, out)
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, self.path)


def revised(current: dict[str, Any] | None, wanted: dict[str, Any]) -> tuple[dict[str, Any], str]:
    """The record with `wanted` applied; its revision moves only when something changed."""
    revision = current["revision"] if current else 0
    wanted = {key: value for key, value in wanted.items() if key != "revision"}
    if current is not None and current == wanted | {"revision": revision}:
        return current, "unchanged"
    return wanted | {"revision": revision + 1}, "applied"


def conflict(detail: str) -> Outcome:
    return Outcome(409, {"detail": detail}, "conflict")
