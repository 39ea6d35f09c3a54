"""How the local stack waits for each part it starts, and when it starts one again: a start that
ended because its port was still held is made once more, any other failure is reported at once
with the part's name and what it wrote to its log."""

from __future__ import annotations

import os
import socket
import sys
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from devstack import cycles, proc
from devstack.proc import ExitedEarly, StackError

PORT_STILL_HELD = [
    # slapd -d none
    "6b16ce5c.15b37a05 0x7f29125e6200 daemon: bind(6) failed errno=98 (Address already in use)",
    # PostgreSQL
    '2026-12-07 13:05:01 UTC [812] LOG:  could not bind IPv4 address "127.0.0.1": Address'
    " already in use",
    # Kafka
    "org.apache.kafka.common.KafkaException: Socket server failed to bind to 127.0.0.1:9092:"
    " Address already in use.",
    "Caused by: java.net.BindException: Address already in use",
    # uvicorn
    "ERROR:    [Errno 98] error while attempting to bind on address ('127.0.0.1', 8000): address"
    " already in use",
    # moto (werkzeug)
    "OSError: [Errno 98] Address already in use",
]
LASTING = [
    '6b16ce5c.15b37a05 0x7f29125e6200 could not stat config file "/nope": No such file (2)',
    "6b16ce5c.15b37a05 0x7f29125e6200 daemon: bind(6) failed errno=13 (Permission denied)",
    'FATAL:  lock file "postmaster.pid" already exists',
    "FATAL:  database files are incompatible with server",
    "ModuleNotFoundError: No module named 'request_api'",
    "Error: Could not find or load main class kafka.Kafka",
    "java.lang.OutOfMemoryError: Java heap space",
]


@pytest.mark.parametrize("line", PORT_STILL_HELD)
def test_a_port_still_held_is_a_transient_cause_whoever_says_it(line: str) -> None:
    output = f"starting\n{line}\nstopped\n"
    assert proc.transient_cause(output) == line


@pytest.mark.parametrize("line", LASTING)
def test_other_failures_are_not_transient(line: str) -> None:
    assert proc.transient_cause(f"starting\n{line}\nstopped\n") is None


def test_a_start_that_wrote_nothing_is_not_transient() -> None:
    assert proc.transient_cause("") is None


@given(
    before=st.lists(st.sampled_from(LASTING)),
    held=st.sampled_from(PORT_STILL_HELD),
    after=st.lists(st.sampled_from(LASTING)),
)
def test_the_cause_is_found_among_any_other_lines(
    before: list[str], held: str, after: list[str]
) -> None:
    assert proc.transient_cause("\n".join([*before, held, *after])) == held


def test_a_transient_failure_is_started_once_more_and_noted_in_the_log(tmp_path: Path) -> None:
    log = tmp_path / "part.log"
    outcomes: list[Exception | None] = [ExitedEarly("bound", PORT_STILL_HELD[0]), None]

    def start() -> str:
        outcome = outcomes.pop(0)
        if outcome is not None:
            raise outcome
        return "ready"

    assert proc.once_more_if_transient(start, log=log, pause=0) == "ready"
    assert outcomes == []
    assert proc.RETRY_NOTE in log.read_text()


def test_a_lasting_failure_is_not_started_again(tmp_path: Path) -> None:
    calls = []

    def start() -> None:
        calls.append(1)
        raise ExitedEarly("no config", LASTING[0])

    with pytest.raises(ExitedEarly, match="no config"):
        proc.once_more_if_transient(start, log=tmp_path / "part.log", pause=0)
    assert calls == [1]


def test_a_part_is_started_twice_at_most_and_the_error_names_the_first_cause(
    tmp_path: Path,
) -> None:
    calls = []

    def start() -> None:
        calls.append(1)
        raise ExitedEarly("slapd exited during start-up", PORT_STILL_HELD[0])

    with pytest.raises(ExitedEarly, match=r"first start had ended too: .*errno=98"):
        proc.once_more_if_transient(start, log=tmp_path / "part.log", pause=0)
    assert calls == [1, 1]


def script(code: str) -> list[str]:
    return [sys.executable, "-c", code]


def test_a_part_that_exits_is_named_with_its_exit_code_and_what_this_start_wrote(
    tmp_path: Path,
) -> None:
    log = tmp_path / "part.log"
    log.write_text("an earlier start's last words\n")
    since = proc.log_size(log)
    argv = script("print('daemon: bind(6) failed errno=98 (Address already in use)'); exit(1)")
    pid = proc.spawn(argv, log=log, pid_file=tmp_path / "part.pid", cwd=tmp_path)
    with pytest.raises(ExitedEarly) as raised:
        proc.wait_until_ready("slapd", pid, log=log, since=since, ready=lambda: False, timeout=30)
    message = str(raised.value)
    assert message.startswith("slapd exited during start-up (exit code 1)")
    assert "errno=98" in message
    assert "an earlier start" not in message
    assert proc.transient_cause(raised.value.output) is not None


def test_a_start_that_wrote_nothing_says_so(tmp_path: Path) -> None:
    log = tmp_path / "part.log"
    log.write_text("an earlier start's last words\n")
    since = proc.log_size(log)
    pid = proc.spawn(
        script("import os; os.kill(os.getpid(), 9)"),
        log=log,
        pid_file=tmp_path / "p.pid",
        cwd=tmp_path,
    )
    with pytest.raises(ExitedEarly) as raised:
        proc.wait_until_ready("moto", pid, log=log, since=since, ready=lambda: False, timeout=30)
    assert "(killed by SIGKILL)" in str(raised.value)
    assert "(nothing written by this start)" in str(raised.value)


def test_a_part_that_never_gets_ready_is_named_after_the_timeout(tmp_path: Path) -> None:
    log = tmp_path / "part.log"
    argv = script("print('still thinking', flush=True); import time; time.sleep(60)")
    pid = proc.spawn(argv, log=log, pid_file=tmp_path / "part.pid", cwd=tmp_path)
    try:
        with pytest.raises(StackError, match="receiver not ready after 0 s") as raised:
            proc.wait_until_ready("receiver", pid, log=log, ready=lambda: False, timeout=0.3)
        assert not isinstance(raised.value, ExitedEarly)
    finally:
        proc.terminate([pid], timeout=5)


def test_a_process_whose_port_was_still_held_is_started_once_more(tmp_path: Path) -> None:
    # Fails like a server finding its port taken the first time, stays up the second.
    first_time = tmp_path / "first-time"
    up = tmp_path / "up"
    code = (
        "import pathlib, sys, time\n"
        f"first, up = pathlib.Path({str(first_time)!r}), pathlib.Path({str(up)!r})\n"
        "if not first.exists():\n"
        "    first.touch(); print('[Errno 98] Address already in use'); sys.exit(1)\n"
        "up.touch(); time.sleep(60)\n"
    )
    log = tmp_path / "part.log"
    pid = proc.start_process(
        "part",
        script(code),
        log=log,
        pid_file=tmp_path / "part.pid",
        cwd=tmp_path,
        ready=up.exists,
        timeout=30,
    )
    try:
        assert proc.read_pid(tmp_path / "part.pid") == pid
        assert proc.RETRY_NOTE in log.read_text()
    finally:
        proc.terminate([pid], timeout=5)


def test_a_child_is_known_by_its_command_line_from_the_moment_it_is_spawned(
    tmp_path: Path,
) -> None:
    # /proc/<pid>/cmdline reads empty while the kernel is still loading the new program: a
    # check made just then took a live process for a dead one ("exited during start-up").
    pid_file = tmp_path / "sleeper.pid"
    argv = script("import time; time.sleep(60)")
    pid = proc.spawn(argv, log=tmp_path / "sleeper.log", pid_file=pid_file, cwd=tmp_path)
    try:
        assert proc.live_pid(pid_file, "time.sleep(60)") == pid
    finally:
        proc.terminate([pid], timeout=5)


def test_a_port_still_listened_on_is_named_with_its_holder() -> None:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        port = listener.getsockname()[1]
        assert proc.port_holders([port])[port].startswith(f"pid {os.getpid()}: ")
        with pytest.raises(StackError, match=f"ports still held after 0 s: {port} \\(pid"):
            proc.wait_ports_released([port], timeout=0.2)
    assert proc.port_holders([port]) == {}
    proc.wait_ports_released([port], timeout=0.2)


def test_the_cycles_report_counts_successes_and_quotes_the_error() -> None:
    rounds = [
        cycles.Round(1, 20.0, None),
        cycles.Round(2, 3.0, "error: x"),
        cycles.Round(3, 30.0, None, started_twice=("slapd",)),
    ]
    assert cycles.summary(rounds).splitlines() == [
        "2/3 cycles succeeded",
        "a part was started twice in cycles 3",
        "successful cycles took 20.0 s to 30.0 s (median 25.0 s)",
    ]
    output = "postgres ready in 0.2 s\nerror: slapd exited during start-up (exit code 1)\n--- log"
    assert cycles.first_error_line(output) == "error: slapd exited during start-up (exit code 1)"
