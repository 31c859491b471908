"""The store gateway process: everything one store needs, in one TaskGroup.

Southbound adapters (MQTT, OPC UA) feed :class:`Intake`; a housekeeping task
turns sequence gaps and resets, buffer drops and the buffer alarm into events; the health
server exposes metrics. Leaving :meth:`Gateway.run` (cancellation, Ctrl-C,
SIGTERM) commits what was accepted and closes every resource.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import Counter
from collections.abc import Callable
from typing import Any

from shelflink.device import ContractError, FridgeReading, Reason
from shelflink.device.sequence import SequenceStore
from shelflink.gateway.buffer import DurableBuffer
from shelflink.gateway.buffer_record import Record
from shelflink.gateway.config import GatewayConfig
from shelflink.gateway.dead_letter import DeadLetterStore
from shelflink.gateway.edge_metrics import EdgeCollector
from shelflink.gateway.edge_runner import EdgeRunner
from shelflink.gateway.events import EventFactory
from shelflink.gateway.health_server import HealthServer
from shelflink.gateway.intake import Intake
from shelflink.gateway.metrics import GatewayCollector, LinkView, new_registry
from shelflink.gateway.opcua_source import OpcUaFridgeSource
from shelflink.gateway.registry import DeviceRegistry
from shelflink.gateway.sequence_tracker import SequenceTracker
from shelflink.gateway.southbound_mqtt import LinkState, MqttSouthbound
from shelflink.gateway.uplink import Uplink

logger = logging.getLogger(__name__)

HOUSEKEEPING_S = 1.0


def wall_ms() -> int:
    return time.time_ns() // 1_000_000


def _opcua_link(source: OpcUaFridgeSource) -> LinkView:
    return LinkView(
        source.config.device_id, "opcua", lambda: str(source.state.value),
        lambda: source.reconnects,
    )  # fmt: skip


class Gateway:
    """One store's gateway. Build it, then ``await run()`` until cancelled."""

    def __init__(self, config: GatewayConfig, *, clock_ms: Callable[[], int] = wall_ms) -> None:
        self.config = config
        self.clock_ms = clock_ms
        self.registry = DeviceRegistry(config)
        self.tracker = SequenceTracker(grace_ms=int(config.sequence.gap_grace_s * 1000))
        self.gaps_reported: Counter[tuple[str, str]] = Counter()
        self.resets_reported: Counter[str] = Counter()  # sequence reset events, by device
        self.ready = asyncio.Event()
        self.intake: Intake | None = None
        self.health: HealthServer | None = None
        self.southbound: MqttSouthbound | None = None
        self.uplink: Uplink | None = None
        self.edge: EdgeRunner | None = None
        self.events: EventFactory | None = None
        self._alarms: list[bool] = []

    @property
    def health_port(self) -> int:
        if self.health is None:
            raise RuntimeError("the gateway is not running")
        return self.health.port

    async def run(self) -> None:
        config = self.config
        state_dir = config.sequence.state_dir
        # One gateway-wide counter numbers the gateway's events and its buffered statuses.
        gateway_sequence = SequenceStore(state_dir / f"{config.gateway_id}.seq")
        events = self.events = EventFactory(config.gateway_id, gateway_sequence)
        buffer = DurableBuffer(
            config.buffer.path,
            max_bytes=config.buffer.max_bytes,
            high_water=config.buffer.high_water,
            low_water=config.buffer.low_water,
            on_high_water=self._alarms.append,
        )
        dead_letters = DeadLetterStore(
            config.dead_letter.path,
            max_rows=config.dead_letter.max_rows,
            max_raw_bytes=config.dead_letter.max_raw_bytes,
            max_held_rows=config.dead_letter.max_held_rows,
        )
        edge = self.edge = EdgeRunner(config, events) if config.edge.enabled else None
        async with buffer, dead_letters:
            intake = Intake(
                self.registry, self.tracker, buffer, dead_letters,
                config.limits.limits(), self.clock_ms, gateway_sequence,
                observer=edge.observe if edge is not None else None,
            )  # fmt: skip
            self.intake = intake
            await intake.restore_resets()
            southbound = self.southbound = MqttSouthbound(config, intake)
            sources = [
                OpcUaFridgeSource(
                    controller,
                    SequenceStore(state_dir / f"{controller.device_id}.seq"),
                    on_reading=self._opcua_reading,
                    on_reject=self._opcua_reject,
                )
                for controller in config.opcua
            ]
            uplink = self.uplink = (
                Uplink(config, buffer, self.clock_ms) if config.uplink is not None else None
            )
            links = [
                LinkView(
                    "store-broker", "mqtt", lambda: southbound.state.value,
                    lambda: southbound.reconnects,
                ),
                *(_opcua_link(source) for source in sources),
            ]  # fmt: skip
            if uplink is not None:
                links.append(
                    LinkView(
                        "cloud-broker",
                        "mqtt",
                        lambda: uplink.state.value,
                        lambda: uplink.counters.reconnects,
                    )
                )
            collector = GatewayCollector(
                config.store_id, intake, self.registry, self.tracker, buffer, dead_letters,
                links, self.clock_ms, lambda: dict(self.gaps_reported),
                uplink.stats if uplink is not None else None,
            )  # fmt: skip
            extra = [EdgeCollector(config.store_id, edge)] if edge is not None else []
            self.health = HealthServer(
                config.health.host, config.health.port, new_registry(collector, *extra),
                lambda: self._health(buffer),
            )  # fmt: skip
            await self.health.start()
            try:
                async with asyncio.TaskGroup() as tasks:
                    tasks.create_task(southbound.run(), name="southbound-mqtt")
                    for source in sources:
                        tasks.create_task(source.run(), name=f"opcua-{source.config.device_id}")
                    tasks.create_task(
                        self._housekeeping(intake, buffer, events), name="housekeeping"
                    )
                    if uplink is not None:
                        tasks.create_task(uplink.run(), name="uplink")
                    if edge is not None:
                        # The model is looked at before the first reading counts.
                        await edge.check_model(self.clock_ms())
                        tasks.create_task(edge.run(buffer, self.clock_ms), name="edge")
                    self.ready.set()
            finally:
                await self.health.stop()
                await intake.drain()

    async def _opcua_reading(self, reading: FridgeReading) -> None:
        assert self.intake is not None
        now = self.clock_ms()
        state = self.registry.devices[reading.device]
        self.registry.seen(state, reading, now)
        await self.intake.accept(reading, now, lambda: None)

    async def _opcua_reject(self, device: str, reason: Reason, detail: str) -> None:
        assert self.intake is not None
        error = ContractError(reason, detail)
        self.intake.reject(f"opcua/{device}", device, error, detail.encode(), self.clock_ms())

    async def _housekeeping(
        self, intake: Intake, buffer: DurableBuffer, events: EventFactory
    ) -> None:
        while True:
            await asyncio.sleep(HOUSEKEEPING_S)
            now = self.clock_ms()
            records: list[Record] = []
            for reset in intake.take_resets():
                self.resets_reported[reset.device] += 1
                records.append(events.sequence_reset(reset, reset.detected_ms))
            for gap in self.tracker.due(now):
                self.gaps_reported[(gap.device, gap.kind.value)] += gap.count
                logger.warning(
                    "sequence %s on %s: %d..%d", gap.kind.value, gap.device, gap.first, gap.last
                )
                records.append(events.gap(gap, now))
            for report in buffer.drain_drop_reports():
                records.append(events.dropped(report, now))
            while self._alarms:
                on = self._alarms.pop(0)
                stats = buffer.stats()
                logger.log(
                    logging.ERROR if on else logging.INFO,
                    "buffer high water %s: %d of %d bytes", "ON" if on else "off",
                    stats.bytes, stats.max_bytes,
                )  # fmt: skip
                records.append(events.high_water(on, now, stats.bytes, stats.max_bytes))
            if records:
                # Events are never dropped by the policy; a refusal here means the
                # hard ceiling is reached, which the alarm already reports.
                with contextlib.suppress(Exception):
                    await buffer.append(records)

    def _health(self, buffer: DurableBuffer) -> tuple[bool, dict[str, Any]]:
        stats = buffer.stats()
        southbound = self.southbound
        connected = southbound is not None and southbound.state is LinkState.CONNECTED
        problems = []
        if not connected:
            problems.append("store broker not connected")
        if stats.high_water:
            problems.append("buffer above high water")
        # A device's reset is the operator's to fix, not the gateway's: it is listed,
        # but a health check must not restart a gateway that is doing its job.
        device_problems = [
            f"{r.device}: sequence reset, numbers {r.first}..{r.last} reused by boot {r.boot} "
            "are held in the dead letters; give the board a new device id or restore its "
            "sequence file"
            for r in self.tracker.resets()
        ]
        uplink = self.uplink
        # An offline store keeps working and buffering: the cloud link being down
        # is reported, but does not make the gateway unhealthy on its own.
        cloud = None if uplink is None else uplink.state.value
        return not problems, {
            "store_id": self.config.store_id,
            "gateway_id": self.config.gateway_id,
            "problems": problems,
            "device_problems": device_problems,
            "buffer": {
                "records": stats.records,
                "bytes": stats.bytes,
                "max_bytes": stats.max_bytes,
            },
            "devices": {k.value: v for k, v in self.registry.counts().items()},
            "cloud_link": cloud,
            "edge": None if self.edge is None else self.edge.status(),
        }
