"""Prometheus metrics of the edge, collected at scrape time from its plain counters."""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from shelflink.gateway.edge_runner import EdgeRunner

NS = "shelflink_edge"


class EdgeCollector(Collector):
    def __init__(self, store_id: str, edge: EdgeRunner) -> None:
        self.store_id = store_id
        self.edge = edge

    def collect(self) -> Iterator[Metric]:
        counters = self.edge.counters
        yield CounterMetricFamily(
            f"{NS}_ticks", "Inference ticks run (event time)", value=counters.ticks
        )
        yield CounterMetricFamily(
            f"{NS}_ticks_skipped", "Tick boundaries skipped over a gap in event time",
            value=counters.ticks_skipped,
        )  # fmt: skip
        yield CounterMetricFamily(
            f"{NS}_inference_seconds", "Time spent in batched model calls",
            value=counters.inference_s_sum,
        )  # fmt: skip
        yield CounterMetricFamily(
            f"{NS}_inferences", "Batched model calls", value=counters.inferences
        )
        yield CounterMetricFamily(
            f"{NS}_lane_readings", "Lane readings fed to the features", value=counters.readings
        )
        yield CounterMetricFamily(
            f"{NS}_readings_out_of_order", "Shelf readings dropped as late or duplicate",
            value=counters.out_of_order,
        )  # fmt: skip
        yield CounterMetricFamily(
            f"{NS}_model_loads", "Model files loaded", value=counters.model_loads
        )
        yield CounterMetricFamily(
            f"{NS}_model_load_failures", "Model files refused", value=counters.model_failures
        )
        alerts = CounterMetricFamily(
            f"{NS}_alerts", "Alerts raised and cleared, by kind", labels=["kind", "state"]
        )
        for (kind, state), n in sorted(counters.alerts.items()):
            alerts.add_metric([kind, state], n)
        yield alerts
        active = GaugeMetricFamily(
            f"{NS}_alerts_active", "Lane alerts standing now", labels=["kind"]
        )
        for kind, n in self.edge.alerts.active().items():
            active.add_metric([kind.value], n)
        yield active
        yield GaugeMetricFamily(
            f"{NS}_cold_chain_alarms_active", "Cold-chain alarms standing now",
            value=len(self.edge.cold_chain.active()),
        )  # fmt: skip
        model = GaugeMetricFamily(
            f"{NS}_model_info", "The loaded stock-out model (1) or none (no series)",
            labels=["version", "sha256"],
        )  # fmt: skip
        if self.edge.model is not None:
            info = self.edge.model.info
            model.add_metric([info.version, info.sha256[:16]], 1)
        yield model
