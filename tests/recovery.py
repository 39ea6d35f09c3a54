"""Recovery times of the fault tests, printed at the end of the run (and kept in a file
under the test stack's directory), since a passing test's output is captured."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass

import pytest

from devstack.config import StackConfig, repo_root


@dataclass(frozen=True)
class Recovery:
    fault: str
    seconds: float
    after_resume: float | None
    make_up_s: float | None
    accepted: int

    def line(self) -> str:
        resumed = (
            f" ({self.after_resume:.1f} s after it was resumed)"
            if self.after_resume is not None
            else ""
        )
        make_up = f", `make up` took {self.make_up_s:.1f} s" if self.make_up_s is not None else ""
        return (
            f"{self.fault}: recovered in {self.seconds:.1f} s{resumed}{make_up},"
            f" {self.accepted} requests"
        )


MEASURED: list[Recovery] = []


def report_recovery(
    fault: str,
    *,
    seconds: float,
    after_resume: float | None,
    make_up_s: float | None,
    accepted: int,
) -> None:
    found = Recovery(
        fault,
        round(seconds, 2),
        after_resume and round(after_resume, 2),
        make_up_s and round(make_up_s, 2),
        accepted,
    )
    MEASURED.append(found)
    path = StackConfig.for_tests(repo_root()).root / "fault-recovery.jsonl"
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as out:
        out.write(json.dumps(asdict(found)) + "\n")


def summary(terminal: pytest.TerminalReporter) -> None:
    if MEASURED:
        terminal.section("recovery after each fault")
        for found in MEASURED:
            terminal.write_line(found.line())
