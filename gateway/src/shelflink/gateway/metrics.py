"""Prometheus metrics of one gateway, collected at scrape time from plain state.

Nothing on the hot path touches a metric object: intake keeps plain counters
and the collector turns them into metric families when Prometheus asks.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector, CollectorRegistry

from shelflink.gateway.buffer import DurableBuffer
from shelflink.gateway.dead_letter import DeadLetterStore
from shelflink.gateway.intake import Intake
from shelflink.gateway.registry import DeviceRegistry, Presence
from shelflink.gateway.sequence_tracker import SequenceTracker
from shelflink.gateway.uplink_stats import UplinkStats

NS = "shelflink_gateway"


@dataclass(frozen=True, slots=True)
class LinkView:
    """A southbound link's state for metrics: MQTT broker or an OPC UA session."""

    name: str
    kind: str  # "mqtt" or "opcua"
    state: Callable[[], str]
    reconnects: Callable[[], int]


class GatewayCollector(Collector):
    def __init__(
        self,
        store_id: str,
        intake: Intake,
        registry: DeviceRegistry,
        tracker: SequenceTracker,
        buffer: DurableBuffer,
        dead_letters: DeadLetterStore,
        links: list[LinkView],
        clock_ms: Callable[[], int],
        gaps_reported: Callable[[], dict[tuple[str, str], int]],
        uplink: Callable[[], UplinkStats] | None = None,
    ) -> None:
        self.store_id = store_id
        self.intake = intake
        self.registry = registry
        self.tracker = tracker
        self.buffer = buffer
        self.dead_letters = dead_letters
        self.links = links
        self.clock_ms = clock_ms
        self.gaps_reported = gaps_reported
        self.uplink = uplink

    def collect(self) -> Iterator[Metric]:
        counters = self.intake.counters
        accepted = CounterMetricFamily(
            f"{NS}_messages_accepted", "Messages committed to the durable buffer",
            labels=["device", "type"],
        )  # fmt: skip
        for (device, kind), n in counters.accepted.items():
            accepted.add_metric([device, kind], n)
        yield accepted
        rejected = CounterMetricFamily(
            f"{NS}_messages_rejected", "Messages rejected, by reason (duplicates included)",
            labels=["device", "reason"],
        )  # fmt: skip
        for (device, reason), n in counters.rejected.items():
            rejected.add_metric([device, reason], n)
        yield rejected
        yield CounterMetricFamily(
            f"{NS}_buffer_write_failures",
            "Buffer writes that failed",
            value=counters.storage_failures,
        )
        gaps = CounterMetricFamily(
            f"{NS}_sequence_gap_messages", "Sequence numbers reported missing, by kind",
            labels=["device", "kind"],
        )  # fmt: skip
        for (device, kind), n in self.gaps_reported().items():
            gaps.add_metric([device, kind], n)
        yield gaps
        pending = GaugeMetricFamily(
            f"{NS}_sequence_pending", "Missing sequence numbers within the grace period",
            labels=["device"],
        )  # fmt: skip
        for device, state in self.tracker.devices.items():
            pending.add_metric([device], state.pending())
        yield pending
        yield from self._resets()
        yield from self._buffer()
        yield from self._devices()
        yield from self._links()
        if self.uplink is not None:
            yield from self._uplink(self.uplink())
        yield CounterMetricFamily(
            f"{NS}_dead_letter_overflow",
            "Rejections counted but not kept: the dead-letter write queue was full",
            value=self.dead_letters.overflow,
        )
        yield CounterMetricFamily(
            f"{NS}_dead_letter_held_evicted",
            "Held messages removed, oldest first, to stay within the held bound",
            value=self.dead_letters.held_evicted,
        )

    def _resets(self) -> Iterator[Metric]:
        resets = CounterMetricFamily(
            f"{NS}_sequence_resets", "New boots that reused sequence numbers of their device id",
            labels=["device"],
        )  # fmt: skip
        for device, n in self.intake.counters.sequence_resets.items():
            resets.add_metric([device], n)
        yield resets
        open_ = GaugeMetricFamily(
            f"{NS}_sequence_reset_open", "1 while a device's reused numbers are being held",
            labels=["device"],
        )  # fmt: skip
        for reset in self.tracker.resets():
            open_.add_metric([reset.device], 1.0)
        yield open_

    def _buffer(self) -> Iterator[Metric]:
        stats = self.buffer.stats()
        now = self.clock_ms()
        yield GaugeMetricFamily(
            f"{NS}_buffer_records", "Records in the buffer", value=stats.records
        )
        yield GaugeMetricFamily(f"{NS}_buffer_bytes", "Accounted buffer size", value=stats.bytes)
        yield GaugeMetricFamily(f"{NS}_buffer_max_bytes", "Buffer bound", value=stats.max_bytes)
        age = 0.0 if stats.oldest_ts_ms is None else max(0.0, (now - stats.oldest_ts_ms) / 1000)
        yield GaugeMetricFamily(
            f"{NS}_buffer_oldest_age_seconds", "Age of the oldest buffered record", value=age
        )
        yield GaugeMetricFamily(
            f"{NS}_buffer_high_water", "1 while the buffer is above its high-water mark",
            value=1.0 if stats.high_water else 0.0,
        )  # fmt: skip
        dropped = CounterMetricFamily(
            f"{NS}_buffer_dropped", "Telemetry records dropped by the full-buffer policy",
            labels=["device"],
        )  # fmt: skip
        for device, n in stats.dropped_by_device.items():
            dropped.add_metric([device], n)
        yield dropped

    def _devices(self) -> Iterator[Metric]:
        now = self.clock_ms()
        presence = GaugeMetricFamily(
            f"{NS}_device_presence", "1 for the device's current presence state",
            labels=["device", "kind", "state"],
        )  # fmt: skip
        seen = GaugeMetricFamily(
            f"{NS}_device_last_seen_seconds", "Seconds since the device's last message",
            labels=["device"],
        )  # fmt: skip
        for state in self.registry.devices.values():
            for value in Presence:
                presence.add_metric(
                    [state.device_id, state.kind.value, value.value],
                    1.0 if state.presence is value else 0.0,
                )
            if state.last_seen_ms is not None:
                seen.add_metric([state.device_id], max(0.0, (now - state.last_seen_ms) / 1000))
        yield presence
        yield seen

    def _uplink(self, stats: UplinkStats) -> Iterator[Metric]:
        up = f"{NS}_uplink"
        yield GaugeMetricFamily(
            f"{up}_batches_in_flight", "Batches sent, not yet acknowledged by the cloud",
            value=stats.in_flight_batches,
        )  # fmt: skip
        for name, help_text, value in (
            ("batches_published", "Batches published (first sends)", stats.published),
            ("resends", "Batches sent again after an acknowledgement timeout", stats.resends),
            ("batches_acked", "Batches the cloud committed", stats.acked),
            ("batches_rejected", "Batches the cloud refused for good", stats.rejected),
            ("acks_unknown", "Acks for batches not in flight", stats.acks_unknown),
            ("acks_invalid", "Unreadable or foreign acks", stats.acks_invalid),
        ):
            yield CounterMetricFamily(f"{up}_{name}", help_text, value=value)
        latency = HistogramMetricFamily(
            f"{up}_ack_latency_seconds", "From publish to the cloud's committed acknowledgement"
        )
        latency.add_metric(
            [],
            [(_le(le), count) for le, count in stats.ack_latency_buckets],
            stats.ack_latency_sum_s,
        )
        yield latency

    def _links(self) -> Iterator[Metric]:
        link_state = GaugeMetricFamily(
            f"{NS}_link_up", "1 while a southbound link (MQTT broker, OPC UA session) is up",
            labels=["link", "kind", "state"],
        )  # fmt: skip
        reconnects = CounterMetricFamily(
            f"{NS}_link_reconnects", "Reconnects of a southbound link", labels=["link", "kind"]
        )
        for link in self.links:
            state = link.state()
            link_state.add_metric(
                [link.name, link.kind, state], 1.0 if state == "connected" else 0.0
            )
            reconnects.add_metric([link.name, link.kind], link.reconnects())
        yield link_state
        yield reconnects


def _le(bound: float) -> str:
    return "+Inf" if bound == float("inf") else repr(bound)


def new_registry(collector: GatewayCollector, *more: Collector) -> CollectorRegistry:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(collector)
    for extra in more:
        registry.register(extra)
    return registry
