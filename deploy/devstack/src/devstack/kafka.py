"""A single-node KRaft Apache Kafka broker run from the Maven Central jars."""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import socket
import subprocess
from pathlib import Path

from aiokafka.admin import AIOKafkaAdminClient

from devstack.config import StackConfig
from devstack.proc import (
    StackError,
    live_pid,
    run_async,
    start_process,
    stop_pid_files,
    wait_until_ready,
)

# A fixed id is fine for a local node: a base64url UUID of 22 characters not starting with "-".
CLUSTER_ID = "Do7gaLSGXNWspUdUGp4OTQ"
MAIN_CLASS = "kafka.Kafka"
READY_TIMEOUT = 60.0
STOP_TIMEOUT = 30.0
JVM_OPTIONS = (
    "-Xms256m",
    "-Xmx512m",
    # The G1 settings kafka-run-class.sh uses.
    "-XX:+UseG1GC",
    "-XX:MaxGCPauseMillis=20",
    "-XX:InitiatingHeapOccupancyPercent=35",
    "-XX:+ExplicitGCInvokesConcurrent",
    # C1 only: noticeably faster start-up on two cores, plenty for a local broker.
    "-XX:TieredStopAtLevel=1",
    "-Djava.awt.headless=true",
)


def render_server_properties(config: StackConfig) -> str:
    settings = {
        "process.roles": "broker,controller",
        "node.id": "1",
        "controller.quorum.voters": f"1@127.0.0.1:{config.kafka_controller_port}",
        "listeners": (
            f"PLAINTEXT://127.0.0.1:{config.kafka_port},"
            f"CONTROLLER://127.0.0.1:{config.kafka_controller_port}"
        ),
        "advertised.listeners": f"PLAINTEXT://127.0.0.1:{config.kafka_port}",
        "inter.broker.listener.name": "PLAINTEXT",
        "controller.listener.names": "CONTROLLER",
        "listener.security.protocol.map": "CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT",
        "log.dirs": str(config.kafka_data),
        # Topics are created explicitly (events.topics): a typo must not create a topic.
        "auto.create.topics.enable": "false",
        "num.partitions": str(config.partitions),
        # One broker, so every replicated internal topic has one replica.
        "default.replication.factor": "1",
        "min.insync.replicas": "1",
        "offsets.topic.replication.factor": "1",
        "transaction.state.log.replication.factor": "1",
        "transaction.state.log.min.isr": "1",
        "share.coordinator.state.topic.replication.factor": "1",
        "share.coordinator.state.topic.min.isr": "1",
        # The default 3 s delays every first group join; tests start many groups.
        "group.initial.rebalance.delay.ms": "0",
        # Lets tests use short consumer session timeouts to see a killed consumer's partitions move.
        "group.min.session.timeout.ms": "3000",
        # A broker restarted after a crash may register again only once its previous
        # registration has expired: the default 9 s session made up most of a restart
        # (12.5 s after a SIGKILL; 6-8 s with 3 s). The controller is in the same process, so
        # a heartbeat every 0.5 s is cheap and a 3 s silence means the broker is gone.
        "broker.session.timeout.ms": "3000",
        "broker.heartbeat.interval.ms": "500",
        # Small and fast: defaults are sized for production clusters.
        "offsets.topic.num.partitions": "1",
        "transaction.state.log.num.partitions": "1",
        "num.network.threads": "2",
        "num.io.threads": "2",
        "log.cleaner.dedupe.buffer.size": "16777216",
    }
    return "".join(f"{key}={value}\n" for key, value in settings.items())


def ensure_jars(config: StackConfig) -> None:
    """Download the broker's classpath with Maven unless it is already there."""
    if any(config.kafka_libs.glob("kafka_2.13-*.jar")):
        return
    mvn = shutil.which("mvn")
    if mvn is None:
        raise StackError("Kafka jars missing and mvn not found (apt-get install maven)")
    config.kafka_libs.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(
        [
            mvn, "-q", "-B",
            "-f", str(config.repo / "deploy" / "kafka" / "pom.xml"),
            "dependency:copy-dependencies",
            "-DincludeScope=runtime",
            f"-DoutputDirectory={config.kafka_libs}",
        ],
        capture_output=True,
        text=True,
        check=False,
    )  # fmt: skip
    if done.returncode != 0:
        raise StackError(f"mvn failed ({done.returncode}):\n{done.stdout}{done.stderr}")


def running_pid(config: StackConfig) -> int | None:
    return live_pid(config.pid_file("kafka"), MAIN_CLASS)


def start(config: StackConfig) -> None:
    """Start the broker unless it is running, then wait until it answers metadata requests."""
    pid = running_pid(config)
    if pid is None:
        ensure_jars(config)
        config.kafka_dir.mkdir(parents=True, exist_ok=True)
        config.kafka_properties.write_text(render_server_properties(config))
        if not (config.kafka_data / "meta.properties").exists():
            _format_storage(config)
        start_process(
            "Kafka",
            [*_java(config), MAIN_CLASS, str(config.kafka_properties)],
            log=config.log_file("kafka"),
            pid_file=config.pid_file("kafka"),
            cwd=config.kafka_dir,
            ready=lambda: _answers(config),
            timeout=READY_TIMEOUT,
            interval=0.2,
        )
    else:
        wait_until_ready(
            "Kafka",
            pid,
            log=config.log_file("kafka"),
            ready=lambda: _answers(config),
            timeout=READY_TIMEOUT,
            interval=0.2,
        )


def stop(config: StackConfig) -> None:
    # SIGTERM runs the broker's shutdown hook: a controlled shutdown that flushes the logs.
    stop_pid_files([(config.pid_file("kafka"), MAIN_CLASS)], timeout=STOP_TIMEOUT)


def _answers(config: StackConfig) -> bool:
    return _port_open(config.kafka_port) and run_async(_metadata_round_trip(config))


def _java(config: StackConfig) -> list[str]:
    java_home = os.environ.get("JAVA_HOME")
    java = str(Path(java_home) / "bin" / "java") if java_home else shutil.which("java")
    if not java:
        raise StackError("java not found (apt-get install openjdk-17-jre-headless)")
    log4j = config.repo / "deploy" / "kafka" / "log4j2.properties"
    return [
        java,
        *JVM_OPTIONS,
        f"-Dlog4j2.configurationFile={log4j}",
        f"-Dkafka.logs.dir={config.logs_dir}",
        # Quoting is not needed without a shell: the JVM expands the trailing `*` itself.
        "-cp",
        f"{config.kafka_libs}/*",
    ]


def _format_storage(config: StackConfig) -> None:
    done = subprocess.run(
        [
            *_java(config),
            "kafka.tools.StorageTool",
            "format",
            "-t",
            CLUSTER_ID,
            "-c",
            str(config.kafka_properties),
            "--ignore-formatted",
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        raise StackError(f"Kafka storage format failed:\n{done.stdout}{done.stderr}")


def _port_open(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return True
    except OSError:
        return False


async def _metadata_round_trip(config: StackConfig) -> bool:
    admin = AIOKafkaAdminClient(bootstrap_servers=config.bootstrap_servers, request_timeout_ms=5000)
    try:
        await asyncio.wait_for(admin.start(), 10)
        await asyncio.wait_for(admin.list_topics(), 10)
        return True
    except Exception:
        # Any failure here means "not yet": the caller retries until its deadline.
        return False
    finally:
        with contextlib.suppress(Exception):
            await admin.close()
