"""`python -m devstack.cycles [-n 20]`: N rounds of `down` then `up`, to show the stack starts
every time. Not part of `make test`: it takes about half a minute a round.

Each round runs `python -m devstack down` and `python -m devstack up` as processes of their own,
as `make down` and `make up` do (without `make install`), so that each stop meets processes a
previous interpreter started and left running.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from devstack.config import StackConfig, repo_root
from devstack.proc import RETRY_NOTE, log_since, log_size


@dataclass(frozen=True)
class Round:
    number: int
    seconds: float
    error: str | None
    # Parts that needed a second start (their port was still held at the first).
    started_twice: tuple[str, ...] = ()

    @property
    def succeeded(self) -> bool:
        return self.error is None


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    repo = repo_root()
    config = StackConfig.for_tests(repo) if args.profile == "test" else StackConfig.default(repo)
    rounds = [_round(config, args.profile, number, args.n) for number in range(1, args.n + 1)]
    print(summary(rounds))
    if args.leave_down:
        _devstack(args.profile, "down")
    return 0 if all(round_.succeeded for round_ in rounds) else 1


def summary(rounds: list[Round]) -> str:
    succeeded = [round_ for round_ in rounds if round_.succeeded]
    lines = [f"{len(succeeded)}/{len(rounds)} cycles succeeded"]
    twice = [round_.number for round_ in rounds if round_.started_twice]
    if twice:
        lines.append(f"a part was started twice in cycles {', '.join(map(str, twice))}")
    if succeeded:
        seconds = [round_.seconds for round_ in succeeded]
        lines.append(
            f"successful cycles took {min(seconds):.1f} s to {max(seconds):.1f} s"
            f" (median {statistics.median(seconds):.1f} s)"
        )
    return "\n".join(lines)


def first_error_line(output: str) -> str:
    """The line the CLI starts its error with (`error: ...`), else the last line written."""
    lines = [line for line in output.splitlines() if line.strip()]
    for line in lines:
        if line.startswith("error:"):
            return line
    return lines[-1] if lines else "(no output)"


def _round(config: StackConfig, profile: str, number: int, total: int) -> Round:
    started = time.monotonic()
    error = None
    started_twice: tuple[str, ...] = ()
    # `down` also fails if it leaves one of the stack's ports held (Stack.down).
    down = _devstack(profile, "down")
    if down.returncode != 0:
        error = f"down: {first_error_line(down.stdout)}"
    else:
        offsets = {log: log_size(log) for log in config.logs_dir.glob("*.log")}
        up = _devstack(profile, "up")
        if up.returncode != 0:
            error = first_error_line(up.stdout)
            _keep_output(config, number, up.stdout)
        started_twice = tuple(
            log.stem
            for log in sorted(config.logs_dir.glob("*.log"))
            if RETRY_NOTE in log_since(log, offsets.get(log, 0))
        )
    round_ = Round(number, time.monotonic() - started, error, started_twice)
    outcome = "ok" if round_.succeeded else f"FAILED: {round_.error}"
    if started_twice:
        outcome += f" (started twice: {', '.join(started_twice)})"
    print(f"cycle {number:>2}/{total}  {round_.seconds:5.1f} s  {outcome}", flush=True)
    return round_


def _devstack(profile: str, command: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "devstack", "--profile", profile, command],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        check=False,
    )


def _keep_output(config: StackConfig, number: int, output: str) -> None:
    path: Path = config.logs_dir / f"cycle-{number}.out"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(output)
    print(f"  whole output of the failed `up`: {path}")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m devstack.cycles", description=__doc__)
    parser.add_argument("-n", type=int, default=20, help="how many down/up rounds (default 20)")
    parser.add_argument(
        "--profile",
        choices=["default", "test"],
        default="default",
        help="which stack: `make up`'s (default) or the test suite's (TEST_STACK_SLOT applies)",
    )
    parser.add_argument(
        "--leave-down", action="store_true", help="stop the stack after the last round"
    )
    return parser


if __name__ == "__main__":
    sys.exit(main())
