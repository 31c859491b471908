"""Prometheus view of the OPC UA sources: read at scrape time, nothing to keep in step.

Register one :class:`OpcUaSourceCollector` with the gateway's registry; it
reads each source's :meth:`~shelflink.gateway.opcua_source.OpcUaFridgeSource.stats`
when Prometheus scrapes, so the sources hold plain counters and no metric objects.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from shelflink.gateway.opcua_source import OpcUaFridgeSource, SourceState

PREFIX = "shelflink_gateway_opcua"
_LABELS = ["device", "store"]


class OpcUaSourceCollector(Collector):
    def __init__(self, sources: Callable[[], Iterable[OpcUaFridgeSource]]) -> None:
        self._sources = sources

    def collect(self) -> Iterator[Metric]:
        state = GaugeMetricFamily(
            f"{PREFIX}_state",
            "1 for the state the source is in (connecting, connected, backoff), else 0",
            labels=[*_LABELS, "state"],
        )
        counters = {
            name: CounterMetricFamily(f"{PREFIX}_{name}", help_, labels=_LABELS)
            for name, help_ in (
                ("readings", "fridge readings handed on"),
                ("rejects", "changes rejected against the contract"),
                ("reconnects", "sessions re-established after a loss"),
                ("connect_failures", "connection attempts that got no session"),
                ("refusals", "attempts refused by the server's security checks"),
            )
        }
        alarm = GaugeMetricFamily(
            f"{PREFIX}_alarm",
            "the controller's own alarm (1 raised); absent when unknown",
            labels=_LABELS,
        )
        for source in self._sources():
            stats = source.stats()
            labels = [stats.device_id, stats.store_id]
            for candidate in SourceState:
                state.add_metric([*labels, candidate.value], float(stats.state is candidate))
            for name, family in counters.items():
                family.add_metric(labels, float(getattr(stats, name)))
            if stats.alarm is not None:
                alarm.add_metric(labels, float(stats.alarm))
        yield state
        yield from counters.values()
        yield alarm
