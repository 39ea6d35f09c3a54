"""Starting detached processes, pid files, liveness checks and stopping by pid."""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import os
import signal
import subprocess
import threading
import time
from collections.abc import Coroutine, Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar

T = TypeVar("T")


class StackError(RuntimeError):
    """A component of the local stack could not be started or stopped."""


# Children spawned by this interpreter, kept so they can be reaped: an unreaped child stays a
# zombie that looks alive, and dropping a running Popen emits a ResourceWarning (an error in
# pytest here).
_children: dict[int, subprocess.Popen[bytes]] = {}
# How each reaped child ended (its return code; negative: the signal that ended it).
_exit_codes: dict[int, int] = {}


def spawn(
    argv: Sequence[str],
    *,
    log: Path,
    pid_file: Path,
    cwd: Path,
    env: Mapping[str, str] | None = None,
) -> int:
    """Start `argv` in its own session (outlives us, ignores Ctrl-C), output appended to `log`."""
    log.parent.mkdir(parents=True, exist_ok=True)
    pid_file.parent.mkdir(parents=True, exist_ok=True)
    with log.open("ab") as out:
        child = subprocess.Popen(
            list(argv),
            cwd=cwd,
            env=dict(env) if env is not None else None,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    _children[child.pid] = child
    pid_file.write_text(f"{child.pid}\n")
    return child.pid


def exit_code(pid: int) -> int | None:
    """How a child this interpreter spawned ended, once `is_alive` found it dead."""
    return _exit_codes.get(pid)


def read_pid(pid_file: Path) -> int | None:
    try:
        return int(pid_file.read_text().split()[0])
    except (FileNotFoundError, IndexError, ValueError):
        return None


def is_alive(pid: int) -> bool:
    child = _children.get(pid)
    if child is not None and child.poll() is not None:
        _exit_codes[pid] = child.returncode
        del _children[pid]
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # Orphans we did not start are reaped by pid 1 only if it reaps: a zombie is dead.
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except (FileNotFoundError, ProcessLookupError):
        return ""


def live_pid(pid_file: Path, marker: str) -> int | None:
    """The pid in `pid_file` if that process is alive and ours (pids are reused after a reboot)."""
    pid = read_pid(pid_file)
    if pid is None or not is_alive(pid) or marker not in cmdline(pid):
        return None
    return pid


def terminate(pids: Iterable[int], *, timeout: float) -> None:
    """SIGTERM all at once (shutdowns overlap), then SIGKILL whatever is left after `timeout`."""
    pending = list(pids)
    for pid in pending:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
    if _wait_dead(pending, timeout):
        return
    for pid in pending:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    if not _wait_dead(pending, 10):
        raise StackError(f"processes survived SIGKILL: {[p for p in pending if is_alive(p)]}")


def stop_pid_files(targets: Iterable[tuple[Path, str]], *, timeout: float) -> None:
    """Stop the live processes named by (pid file, cmdline marker) pairs; remove the pid files."""
    targets = list(targets)
    live = [live_pid(pid_file, marker) for pid_file, marker in targets]
    terminate([pid for pid in live if pid is not None], timeout=timeout)
    for pid_file, _ in targets:
        pid_file.unlink(missing_ok=True)


def _wait_dead(pids: list[int], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while any(is_alive(pid) for pid in pids):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


@contextlib.contextmanager
def exclusive_lock(path: Path, *, timeout: float) -> Iterator[None]:
    """Hold an flock on `path`; the kernel releases it when the holder exits, even on SIGKILL."""
    path.parent.mkdir(parents=True, exist_ok=True)
    deadline = time.monotonic() + timeout
    with path.open("a") as handle:
        while True:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise StackError(f"{path} still held by another session") from None
                time.sleep(0.5)
        yield


def log_tail(path: Path, lines: int = 20, width: int = 400) -> str:
    try:
        text = path.read_text(errors="replace")
    except FileNotFoundError:
        return f"(no log at {path})"
    # Cut long lines: one SQL error with its statement can fill a screen.
    tail = text.splitlines()[-lines:]
    return "\n".join(line if len(line) <= width else line[:width] + " [...]" for line in tail)


def run_async(coro: Coroutine[Any, Any, T]) -> T:
    """Run a coroutine to completion from sync code, even when the caller's thread has a loop.

    A private thread keeps asyncio.run from replacing the caller's event loop (pytest-asyncio's
    session loop, for instance) and works from inside a running loop too.
    """
    result: list[T] = []
    error: list[BaseException] = []

    def target() -> None:
        try:
            result.append(asyncio.run(coro))
        except BaseException as exc:
            error.append(exc)

    thread = threading.Thread(target=target, name="devstack-async")
    thread.start()
    thread.join()
    if error:
        raise error[0]
    return result[0]
