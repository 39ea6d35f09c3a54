"""`make bench`: the pipeline's throughput and latency, next to two baselines measured in
the same run on the same machine:

- raw relay: the same number of messages of the same size through 4 aiokafka hops with the
  same producer settings and no database: what Kafka alone costs;
- direct work: a plain asyncpg loop creating the same role and schema: what the target costs.

Completion is observed on the deployment topic, not by polling the API, so measuring does
not load the system under test. Run it against a started stack (`make up`).
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
import uuid
from dataclasses import dataclass

import asyncpg
import httpx
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from devstack.config import StackConfig, repo_root
from devstack.stack import Stack
from events.contracts.deployment import TOPIC as DEPLOYMENT_TOPIC
from events.contracts.validation import RequestValidated
from events.envelope import Envelope
from events.topics import EVENT_TOPICS

HOPS = 4  # validator, allocator, configurator, deployer


@dataclass(frozen=True)
class PipelineResult:
    completed: int
    failed: int
    seconds: float
    latencies_ms: list[float]

    @property
    def per_second(self) -> float:
        return self.completed / self.seconds


async def pipeline(stack: Stack, count: int, rate: float) -> PipelineResult:
    run = uuid.uuid4().hex[:8]
    submitted: dict[str, float] = {}
    finished: dict[str, tuple[float, str]] = {}
    watcher = AIOKafkaConsumer(
        DEPLOYMENT_TOPIC,
        bootstrap_servers=stack.bootstrap_servers,
        group_id=f"bench-{run}",
        auto_offset_reset="latest",
        enable_auto_commit=False,
    )
    await watcher.start()
    await _assigned(watcher)

    async def watch() -> None:
        while len(finished) < len(submitted) or len(submitted) < count:
            for records in (await watcher.getmany(timeout_ms=200)).values():
                now = time.monotonic()
                for record in records:
                    envelope = Envelope.model_validate_json(record.value or b"{}")
                    ended = envelope.type in ("provisioning.completed", "provisioning.failed")
                    if ended and envelope.subject in submitted and envelope.subject not in finished:
                        finished[envelope.subject] = (now, envelope.type)

    headers = {"Authorization": f"Bearer {stack.admin_key()}"}
    # Drop idle connections before the server (keep-alive 5 s) does, or a POST races its close.
    limits = httpx.Limits(max_connections=50, keepalive_expiry=2.0)
    async with httpx.AsyncClient(
        base_url=stack.service_url("request-api"), headers=headers, limits=limits, timeout=30
    ) as api:

        async def submit(i: int) -> None:
            body = {"catalog_item": "postgres_schema", "parameters": {"name": f"b{run}_{i}"}}
            sent = time.monotonic()
            answer = await api.post("/v1/requests", json=body)
            answer.raise_for_status()
            submitted[answer.json()["id"]] = sent

        watching = asyncio.create_task(watch())
        started = time.monotonic()
        posts = []
        for i in range(count):
            # A constant offered rate, whatever the answers' latency.
            await asyncio.sleep(max(0.0, started + i / rate - time.monotonic()))
            posts.append(asyncio.create_task(submit(i)))
        await asyncio.gather(*posts)
        await asyncio.wait_for(watching, timeout=600)
    await watcher.stop()
    ends = [at for at, _ in finished.values()]
    latencies = [1000 * (finished[r][0] - submitted[r]) for r in finished]
    failed = sum(1 for _, kind in finished.values() if kind != "provisioning.completed")
    return PipelineResult(len(finished) - failed, failed, max(ends) - started, latencies)


async def raw_relay(bootstrap: str, count: int, message_size: int) -> float:
    """Messages per second through `HOPS` consume-and-produce hops with no database."""
    run = uuid.uuid4().hex[:8]
    topics = [f"bench.{run}.hop{i}" for i in range(HOPS + 1)]
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    await admin.create_topics([NewTopic(t, num_partitions=6, replication_factor=1) for t in topics])

    async def hop(source: str, target: str) -> None:
        consumer = AIOKafkaConsumer(
            source,
            bootstrap_servers=bootstrap,
            group_id=f"bench-{source}",
            auto_offset_reset="earliest",
            enable_auto_commit=False,
        )
        producer = AIOKafkaProducer(
            bootstrap_servers=bootstrap, enable_idempotence=True, linger_ms=5
        )
        await consumer.start()
        await producer.start()
        try:
            moved = 0
            while moved < count:
                for tp, records in (
                    await consumer.getmany(timeout_ms=200, max_records=200)
                ).items():
                    sends = [await producer.send(target, r.value, key=r.key) for r in records]
                    await asyncio.gather(*sends)
                    await consumer.commit({tp: records[-1].offset + 1})
                    moved += len(records)
        finally:
            await consumer.stop()
            await producer.stop()

    payload = b"x" * message_size
    hops = [asyncio.create_task(hop(topics[i], topics[i + 1])) for i in range(HOPS)]
    sink = AIOKafkaConsumer(
        topics[-1],
        bootstrap_servers=bootstrap,
        group_id=f"bench-sink-{run}",
        auto_offset_reset="earliest",
    )
    await sink.start()
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, enable_idempotence=True, linger_ms=5)
    await producer.start()
    started = time.monotonic()
    sends = [await producer.send(topics[0], payload, key=str(i).encode()) for i in range(count)]
    await asyncio.gather(*sends)
    arrived = 0
    while arrived < count:
        arrived += sum(len(r) for r in (await sink.getmany(timeout_ms=200)).values())
    seconds = time.monotonic() - started
    await producer.stop()
    await sink.stop()
    await asyncio.gather(*hops)
    await admin.delete_topics(topics)
    await admin.close()
    return count / seconds


async def direct_work(stack: Stack, count: int) -> float:
    """Roles and schemas per second created by a plain asyncpg loop on the same server."""
    run = uuid.uuid4().hex[:8]
    admin = await asyncpg.connect(stack.database_dsn("postgres"))
    await admin.execute(f"CREATE DATABASE bench_{run}")
    await admin.close()
    connection = await asyncpg.connect(
        stack.database_dsn("postgres").replace("/postgres?", f"/bench_{run}?")
    )
    started = time.monotonic()
    for i in range(count):
        role = f"bench_{run}_{i}"
        await connection.execute(
            f"CREATE ROLE {role} LOGIN PASSWORD 'SCRAM-SHA-256$4096:c2FsdA==$a:b'"
        )
        await connection.execute(f"CREATE SCHEMA {role} AUTHORIZATION {role}")
    seconds = time.monotonic() - started
    for i in range(count):
        await connection.execute(f"DROP SCHEMA bench_{run}_{i}; DROP ROLE bench_{run}_{i}")
    await connection.close()
    admin = await asyncpg.connect(stack.database_dsn("postgres"))
    await admin.execute(f"DROP DATABASE bench_{run}")
    await admin.close()
    return count / seconds


@dataclass(frozen=True)
class LagSamples:
    """A consumer group's lag (messages behind the end of its topics) over time."""

    group: str
    seconds_and_lag: list[tuple[float, int]]
    drained_after_s: float | None  # after the burst, until the lag was back to 0

    @property
    def peak(self) -> int:
        return max((lag for _, lag in self.seconds_and_lag), default=0)

    def mean_between(self, start: float, end: float) -> float:
        inside = [lag for at, lag in self.seconds_and_lag if start <= at < end]
        return statistics.fmean(inside) if inside else 0.0


class LagProbe:
    """Samples a consumer group's lag over the pipeline's topics, as Kafka's own tools
    compute it: the end offset of each partition minus the group's committed offset."""

    def __init__(self, bootstrap: str, group: str) -> None:
        self._group = group
        self._admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
        self._reader = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
        self._partitions: list[TopicPartition] = []

    async def __aenter__(self) -> LagProbe:
        await self._admin.start()
        await self._reader.start()
        self._partitions = [
            TopicPartition(described["topic"], partition["partition"])
            for described in await self._admin.describe_topics(list(EVENT_TOPICS))
            for partition in described["partitions"]
        ]
        return self

    async def __aexit__(self, *_: object) -> None:
        await self._reader.stop()
        await self._admin.close()

    async def lag(self) -> int:
        ends = await self._reader.end_offsets(self._partitions)
        committed = await self._admin.list_consumer_group_offsets(self._group)
        # The topics the group reads are those it has committed offsets on.
        topics = {tp.topic for tp in committed}
        return sum(
            ends[tp] - (committed[tp].offset if tp in committed else 0)
            for tp in self._partitions
            if tp.topic in topics
        )

    async def follow(self, burst_over: asyncio.Event, *, drain_timeout_s: float) -> LagSamples:
        """Sample every 0.5 s through the burst, then until the group has caught up."""
        started = time.monotonic()
        samples: list[tuple[float, int]] = []
        over_at: float | None = None
        while True:
            lag = await self.lag()
            now = time.monotonic()
            samples.append((now - started, lag))
            if burst_over.is_set():
                over_at = over_at or now
                if lag == 0:
                    return LagSamples(self._group, samples, now - over_at)
                if now - over_at > drain_timeout_s:
                    return LagSamples(self._group, samples, None)
            await asyncio.sleep(0.5)


async def _assigned(consumer: AIOKafkaConsumer) -> None:
    while not consumer.assignment():
        await consumer.getmany(timeout_ms=100)


def _message_size() -> int:
    sample = RequestValidated(
        request_id=uuid.uuid4(),
        catalog_item="postgres_schema",
        parameters={"name": "b1234abcd_1999"},
        requester="bootstrap-admin",
    )
    return len(Envelope.wrap(sample, source="validator").to_bytes())


async def main(count: int, rate: float) -> None:
    stack = Stack(StackConfig.default(repo_root()))
    size = _message_size()
    print(f"pipeline: {count} postgres_schema requests offered at {rate:.0f}/s ...", flush=True)
    burst_over = asyncio.Event()
    # The auditor reads every topic; the deployer, the pipeline's slowest step, is the yardstick.
    async with (
        LagProbe(stack.bootstrap_servers, "auditor") as auditor,
        LagProbe(stack.bootstrap_servers, "deployer") as deployer,
    ):
        following = [
            asyncio.create_task(probe.follow(burst_over, drain_timeout_s=120))
            for probe in (auditor, deployer)
        ]
        try:
            result = await pipeline(stack, count, rate)
        finally:
            burst_over.set()
        lags = await asyncio.gather(*following)
    latencies = sorted(result.latencies_ms)
    p50 = statistics.median(latencies)
    p99 = latencies[min(len(latencies) - 1, int(0.99 * len(latencies)))]
    print(f"raw {HOPS}-hop aiokafka relay, {count} messages of {size} bytes ...", flush=True)
    raw = await raw_relay(stack.bootstrap_servers, count, size)
    print(f"direct asyncpg loop, {count} roles + schemas ...", flush=True)
    direct = await direct_work(stack, count)
    rps = result.per_second
    print()
    print(f"pipeline completed   {result.completed} ({result.failed} failed)")
    print(f"  in {result.seconds:.1f} s        {rps:.1f} requests/s")
    print(f"  end-to-end latency p50 {p50:.0f} ms, p99 {p99:.0f} ms")
    print(f"raw 4-hop relay      {raw:.0f} messages/s; pipeline / raw = {rps / raw:.3f}")
    print(f"direct target work   {direct:.0f} per s; pipeline / direct = {rps / direct:.3f}")
    third = result.seconds / 3
    for lag in lags:
        drained = f"{lag.drained_after_s:.1f} s" if lag.drained_after_s is not None else "never"
        print(
            f"{lag.group + ' lag':<21}peak {lag.peak} events; mean over the burst's thirds "
            f"{lag.mean_between(0, third):.0f} / {lag.mean_between(third, 2 * third):.0f} / "
            f"{lag.mean_between(2 * third, result.seconds):.0f}; back to 0 {drained} after"
        )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", "--count", type=int, default=2000)
    parser.add_argument(
        "-r", "--rate", type=float, default=20.0, help="requests offered per second"
    )
    arguments = parser.parse_args()
    asyncio.run(main(arguments.count, arguments.rate))
