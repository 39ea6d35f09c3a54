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
from collections.abc import Callable, Coroutine, Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar

T = TypeVar("T")


class StackError(RuntimeError):
    """A component of the local stack could not be started or stopped."""


class ExitedEarly(StackError):
    """A part ended before it was ready; `output` is what that start wrote to its log."""

    def __init__(self, message: str, output: str) -> None:
        super().__init__(message)
        self.output = output


# What a failed start's output says when trying again may work: the port is still held, by the
# instance stopped a moment ago or by a process about to let go of it. Lower case, matched in
# lower case: slapd's "daemon: bind(7) failed errno=98 (Address already in use)", PostgreSQL's
# "could not bind IPv4 address", Java's "java.net.BindException: Address already in use",
# uvicorn's "[Errno 98] error while attempting to bind on address".
TRANSIENT_CAUSES = ("address already in use", "errno=98", "[errno 98]", "bindexception")
RETRY_PAUSE_S = 1.0
# Written to a part's log when it is started once more.
RETRY_NOTE = "starting it once more"


# Children spawned by this interpreter, kept so they can be reaped: an unreaped child stays a
# zombie that looks alive, and dropping a running Popen emits a ResourceWarning (an error in
# pytest here).
_children: dict[int, subprocess.Popen[bytes]] = {}
# How each reaped child ended (its return code; negative: the signal that ended it).
_exit_codes: dict[int, int] = {}
# The command line of each child, as /proc shows it once its program is loaded.
_command_lines: dict[int, str] = {}


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
    _command_lines[child.pid] = " ".join(argv)
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
        del _children[pid], _command_lines[pid]
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
    if pid in _children:
        # What it was started with. /proc reads empty for a moment after the spawn: the exec
        # has released Popen, but the kernel has yet to lay out the new program's arguments
        # (longer when its binary is not in the page cache).
        return _command_lines[pid]
    deadline = time.monotonic() + 0.5
    while True:
        try:
            found = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
        except (FileNotFoundError, ProcessLookupError):
            return ""
        # Empty for a live process: an exec is under way (see above), or it is a zombie.
        if found or not is_alive(pid) or time.monotonic() > deadline:
            return found
        time.sleep(0.01)


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


def transient_cause(output: str) -> str | None:
    """The line of a failed start's output that says another start may work, if one does."""
    for line in output.splitlines():
        if any(cause in line.lower() for cause in TRANSIENT_CAUSES):
            return line.strip()
    return None


def once_more_if_transient(start: Callable[[], T], *, log: Path, pause: float = RETRY_PAUSE_S) -> T:
    """`start()`, and once more after a pause if it ended early for a transient cause (noted in
    the part's `log`, so that a start that needed two is seen)."""
    try:
        return start()
    except ExitedEarly as early:
        cause = transient_cause(early.output)
        if cause is None:
            raise
    with log.open("a") as out:
        out.write(f"--- devstack: ended during start-up ({cause}); {RETRY_NOTE} ---\n")
    time.sleep(pause)
    try:
        return start()
    except ExitedEarly as again:
        note = f"(its first start had ended too: {cause})"
        raise ExitedEarly(f"{again}\n{note}", again.output) from None


def start_process(
    part: str,
    argv: Sequence[str],
    *,
    log: Path,
    pid_file: Path,
    cwd: Path,
    ready: Callable[[], bool],
    timeout: float,
    env: Mapping[str, str] | None = None,
    interval: float = 0.1,
) -> int:
    """Spawn `argv` and wait until `ready()`; started once more if it ends for a transient cause."""

    def start() -> int:
        since = log_size(log)
        pid = spawn(argv, log=log, pid_file=pid_file, cwd=cwd, env=env)
        wait_until_ready(
            part, pid, log=log, since=since, ready=ready, timeout=timeout, interval=interval
        )
        return pid

    return once_more_if_transient(start, log=log)


def wait_until_ready(
    part: str,
    pid: int,
    *,
    log: Path,
    ready: Callable[[], bool],
    timeout: float,
    since: int = 0,
    interval: float = 0.1,
) -> None:
    """Poll `ready()` until it holds, `pid` ends (ExitedEarly) or `timeout` passes (StackError);
    both errors name the part and show its log from offset `since` on."""
    deadline = time.monotonic() + timeout
    while True:
        if not is_alive(pid):
            problem = f"exited during start-up ({how_it_ended(pid)})"
            raise ExitedEarly(failure(part, problem, log, since), log_since(log, since))
        if ready():
            return
        if time.monotonic() > deadline:
            raise StackError(failure(part, f"not ready after {timeout:.0f} s", log, since))
        time.sleep(interval)


def how_it_ended(pid: int) -> str:
    code = exit_code(pid)
    if code is None:
        return "exit code unknown: another process started it"
    if code < 0:
        return f"killed by {signal.Signals(-code).name}"
    return f"exit code {code}"


def wait_ports_released(ports: Iterable[int], *, timeout: float) -> None:
    """Wait until no process listens on any of `ports`; StackError naming who still does."""
    ports = list(ports)
    deadline = time.monotonic() + timeout
    while held := port_holders(ports):
        if time.monotonic() > deadline:
            listed = ", ".join(f"{port} ({who})" for port, who in sorted(held.items()))
            raise StackError(f"ports still held after {timeout:.0f} s: {listed}")
        time.sleep(0.1)


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


def port_holders(ports: Iterable[int]) -> dict[int, str]:
    """Those of `ports` a process still listens on, each with who does (pid and command)."""
    wanted = set(ports)
    listening: dict[str, int] = {}  # socket inode -> port
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with contextlib.suppress(FileNotFoundError):
            for row in Path(table).read_text().splitlines()[1:]:
                fields = row.split()
                port = int(fields[1].rsplit(":", 1)[1], 16)
                if fields[3] == _TCP_LISTEN and port in wanted:
                    listening[fields[9]] = port
    if not listening:
        return {}
    holders = {port: "unknown process" for port in listening.values()}
    for fd_dir in Path("/proc").glob("[0-9]*/fd"):
        with contextlib.suppress(OSError):
            for fd in fd_dir.iterdir():
                with contextlib.suppress(OSError):
                    target = os.readlink(fd)
                    inode = target.removeprefix("socket:[").removesuffix("]")
                    if target.startswith("socket:[") and inode in listening:
                        pid = int(fd_dir.parent.name)
                        holders[listening[inode]] = f"pid {pid}: {cmdline(pid)[:80].strip()}"
    return holders


_TCP_LISTEN = "0A"


def log_size(path: Path) -> int:
    """Where the next start's output begins in `path` (logs are appended to)."""
    try:
        return path.stat().st_size
    except FileNotFoundError:
        return 0


def log_since(path: Path, offset: int) -> str:
    try:
        with path.open("rb") as log:
            log.seek(offset)
            return log.read().decode(errors="replace")
    except FileNotFoundError:
        return ""


def log_tail(path: Path, lines: int = 20, width: int = 400, *, since: int = 0) -> str:
    """The last `lines` of `path` from offset `since` on."""
    if not path.exists():
        return f"(no log at {path})"
    text = log_since(path, since)
    if not text.strip():
        return "(nothing written to it)" if since == 0 else "(nothing written by this start)"
    # Cut long lines: one SQL error with its statement can fill a screen.
    tail = text.splitlines()[-lines:]
    return "\n".join(line if len(line) <= width else line[:width] + " [...]" for line in tail)


def failure(part: str, problem: str, log: Path, since: int = 0) -> str:
    """An error message naming the part, its problem and the tail of its log."""
    return f"{part} {problem}\n--- {log} ---\n{log_tail(log, since=since)}"


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
