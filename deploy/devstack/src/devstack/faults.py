"""Faults of an operator's bad day, for the fault tests: a process killed, the broker killed,
PostgreSQL crashed, a service frozen. Each acts on the stack's own processes by their pid
files; recovering is what an operator does (`make up`, or resuming what was frozen)."""

from __future__ import annotations

import os
import signal
import time

from devstack import kafka, postgres, services
from devstack.config import StackConfig
from devstack.proc import StackError, is_alive

DEATH_TIMEOUT = 30.0


def kill_broker(config: StackConfig) -> int:
    """SIGKILL the Kafka broker: no controlled shutdown, its logs recovered at the next start."""
    return _end(kafka.running_pid(config), signal.SIGKILL, "Kafka")


def crash_postgres(config: StackConfig) -> int:
    """What `pg_ctl stop -m immediate` does (SIGQUIT to the postmaster): every backend ends at
    once, nothing is checkpointed, and the next start runs crash recovery from the WAL."""
    return _end(postgres.running_pid(config), signal.SIGQUIT, "PostgreSQL")


def freeze(config: StackConfig, name: str, replica: int = 0) -> int:
    """SIGSTOP a service: alive to the kernel, silent to its consumer group."""
    return _signal(config, name, replica, signal.SIGSTOP)


def thaw(config: StackConfig, name: str, replica: int = 0) -> int:
    return _signal(config, name, replica, signal.SIGCONT)


def _signal(config: StackConfig, name: str, replica: int, sig: signal.Signals) -> int:
    pid = services.kill_service(config, name, sig, replica)
    if pid is None:
        raise StackError(f"{services.instance_name(name, replica)} is not running")
    return pid


def _end(pid: int | None, sig: signal.Signals, what: str) -> int:
    """Send `sig` to a part of the stack and wait until it has ended."""
    if pid is None:
        raise StackError(f"{what} is not running")
    os.kill(pid, sig)
    deadline = time.monotonic() + DEATH_TIMEOUT
    while is_alive(pid):
        if time.monotonic() > deadline:
            raise StackError(
                f"{what} (pid {pid}) still alive {DEATH_TIMEOUT:.0f} s after the fault"
            )
        time.sleep(0.05)
    return pid
