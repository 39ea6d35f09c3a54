"""Consumer lag of this service's group, measured by the service itself.

For each partition this instance holds: the end offset and the group's committed offset from
the broker (what kafka_exporter reports), and the age of the oldest message not yet
processed: the timestamp of the message at the committed offset, read by a probe consumer of
no group (a fetch of one batch, only for partitions that lag). Each replica reports the
partitions it holds, so summing over instances counts each partition once.
"""

from __future__ import annotations

import asyncio
import contextlib
import time

from aiokafka import AIOKafkaConsumer, TopicPartition
from prometheus_client import Gauge

from events.metrics import RuntimeMetrics

_PROBE_FETCH_BYTES = 64 * 1024  # a fetch returns at least one whole batch anyway


class LagMonitor:
    def __init__(
        self,
        *,
        group: str,
        bootstrap_servers: str,
        metrics: RuntimeMetrics,
        timeout_s: float = 5.0,
    ) -> None:
        self._group = group
        self._bootstrap_servers = bootstrap_servers
        self._metrics = metrics
        self._timeout_s = timeout_s
        self._reported: set[TopicPartition] = set()
        self._probe: AIOKafkaConsumer | None = None

    async def refresh(self, kafka: AIOKafkaConsumer | None) -> None:
        """Measure the partitions `kafka` holds now; forget those it no longer holds."""
        held = set(kafka.assignment()) if kafka is not None else set()
        for tp in self._reported - held:
            labels = self._labels(tp)
            for gauge in self._gauges():
                with contextlib.suppress(KeyError):
                    gauge.remove(*labels)
        self._reported &= held
        if kafka is None or not held:
            return
        async with asyncio.timeout(self._timeout_s):
            committed = await self._committed(kafka, sorted(held))
            end = await kafka.end_offsets(sorted(held))
        lagging = {tp: offset for tp, offset in committed.items() if end[tp] > offset}
        timestamps = await self._timestamps(lagging) if lagging else {}
        now_ms = time.time() * 1000
        for tp in held:
            labels = self._labels(tp)
            self._metrics.consumer_offset.labels(*labels).set(committed[tp])
            self._metrics.consumer_lag.labels(*labels).set(max(end[tp] - committed[tp], 0))
            if tp not in lagging:
                self._metrics.consumer_lag_seconds.labels(*labels).set(0)
            elif tp in timestamps:
                age_s = max(now_ms - timestamps[tp], 0) / 1000
                self._metrics.consumer_lag_seconds.labels(*labels).set(age_s)
            # else: the probe found nothing in time; the last age stands until it does.
        self._reported |= held

    async def close(self) -> None:
        probe, self._probe = self._probe, None
        if probe is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(probe.stop(), self._timeout_s)

    async def _committed(
        self, kafka: AIOKafkaConsumer, partitions: list[TopicPartition]
    ) -> dict[TopicPartition, int]:
        """The group's committed offsets; a partition never committed starts at its beginning
        (the consumer reads from `earliest`)."""
        offsets = await asyncio.gather(*(kafka.committed(tp) for tp in partitions))
        committed = {tp: o for tp, o in zip(partitions, offsets, strict=True) if o is not None}
        missing = [tp for tp in partitions if tp not in committed]
        if missing:
            committed.update(await kafka.beginning_offsets(missing))
        return committed

    async def _timestamps(self, offsets: dict[TopicPartition, int]) -> dict[TopicPartition, int]:
        """Timestamp (ms) of the message at each offset, for those found within the timeout."""
        probe = await self._started_probe()
        probe.assign(list(offsets))
        for tp, offset in offsets.items():
            probe.seek(tp, offset)
        found: dict[TopicPartition, int] = {}
        try:
            async with asyncio.timeout(self._timeout_s):
                while len(found) < len(offsets):
                    batches = await probe.getmany(timeout_ms=500)
                    for tp, records in batches.items():
                        if records and tp not in found:
                            found[tp] = records[0].timestamp
                            probe.pause(tp)
        except TimeoutError:
            pass
        finally:
            probe.unsubscribe()  # nothing left to fetch in the background
        return found

    async def _started_probe(self) -> AIOKafkaConsumer:
        if self._probe is None:
            probe = AIOKafkaConsumer(
                bootstrap_servers=self._bootstrap_servers,
                group_id=None,
                client_id=f"{self._group}-lag-probe",
                enable_auto_commit=False,
                max_partition_fetch_bytes=_PROBE_FETCH_BYTES,
            )
            try:
                await asyncio.wait_for(probe.start(), self._timeout_s)
            except BaseException:
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(probe.stop(), self._timeout_s)
                raise
            self._probe = probe
        return self._probe

    def _labels(self, tp: TopicPartition) -> tuple[str, str, str]:
        return (self._group, tp.topic, str(tp.partition))

    def _gauges(self) -> tuple[Gauge, ...]:
        return (
            self._metrics.consumer_lag,
            self._metrics.consumer_lag_seconds,
            self._metrics.consumer_offset,
        )
