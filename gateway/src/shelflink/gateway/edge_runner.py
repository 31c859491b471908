"""The edge inside the gateway: features, the stock-out model and cold-chain rules.

Intake hands every message it accepts (after de-duplication, before the
buffer commit) to :meth:`EdgeRunner.observe`, synchronously: the edge sees
each reading once, as it arrives, online or offline. Shelf readings and sales
feed the lane feature state; when the readings' event time crosses a tick
boundary, all lanes of the store are scored in one batched model call and the
lane alerts advance. Fridge readings go through the cold-chain rules at once,
so an alarm is raised by the reading that proves it.

What the edge concludes becomes gateway events, queued here and appended to
the durable buffer by :meth:`run` at EVENT priority, ahead of raw telemetry.
The model file is watched and reloaded in a worker thread; the swap is one
reference assignment between two readings, so no reading waits for a model
and none is lost. Without a usable model (missing, corrupt, wrong features)
the gateway logs why, says so in an event and its health, and keeps the rules
that need no model: out_of_stock, low_stock and the cold chain.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from shelflink.device import DeviceKind, DeviceMessage, FridgeReading, Sale, ShelfReading
from shelflink.edge.cold_chain import Alarm, ColdChainDay, ColdChainMonitor
from shelflink.edge.config import EdgeConfig
from shelflink.edge.lane_alerts import AlertKind, LaneAlert, LaneAlerts
from shelflink.edge.stockout_model import ModelError, StockoutModel, default_model_path
from shelflink.gateway import edge_state
from shelflink.gateway.buffer import DurableBuffer
from shelflink.gateway.buffer_record import Record
from shelflink.gateway.config import GatewayConfig
from shelflink.gateway.events import CRITICAL, INFO, WARNING, EventFactory
from shelflink.stream.fridge_features import FridgeSample
from shelflink.stream.lanes import LaneFeatureState, LaneSpec
from shelflink.stream.watermark import TickClock

logger = logging.getLogger(__name__)

RECENT = 50  # notices kept for a console (the demo's view)


@dataclass(frozen=True, slots=True)
class EdgeNotice:
    """A human line about something the edge concluded."""

    ts_ms: int
    kind: str
    source: str
    raised: bool
    critical: bool
    text: str


@dataclass(slots=True)
class EdgeCounters:
    ticks: int = 0
    ticks_skipped: int = 0  # boundaries passed in one jump of event time (a gap)
    inference_s_sum: float = 0.0
    inferences: int = 0
    readings: int = 0
    out_of_order: int = 0
    model_loads: int = 0
    model_failures: int = 0
    alerts: Counter[tuple[str, str]] = field(default_factory=Counter)  # (kind, raised/cleared)


def lane_specs(config: GatewayConfig) -> tuple[LaneSpec, ...]:
    """Every lane of every shelf device in the config, in config order."""
    return tuple(
        LaneSpec(device.id, i, lane.gtin, lane.unit_g, lane.capacity)
        for device in config.devices
        if device.kind is DeviceKind.SHELF
        for i, lane in enumerate(device.lanes)
    )


def _file_signature(path: Path) -> tuple[int, int] | None:
    try:
        stat = path.stat()
    except OSError:
        return None
    return stat.st_mtime_ns, stat.st_size


class EdgeRunner:
    def __init__(self, config: GatewayConfig, events: EventFactory) -> None:
        self.store_id = config.store_id
        self.config: EdgeConfig = config.edge
        self.events = events
        self.lanes = lane_specs(config)
        self._device_lanes = {
            device: np.array([i for i, lane in enumerate(self.lanes) if lane.device == device])
            for device in dict.fromkeys(lane.device for lane in self.lanes)
        }
        self.features = LaneFeatureState(self.lanes, utc_offset_min=self.config.utc_offset_min)
        self.alerts = LaneAlerts(self.lanes, self.config.alerts)
        self.cold_chain = ColdChainMonitor(self.config.cold_chain)
        self.ticks = TickClock(self.config.tick_s * 1000)
        self.model_path = self.config.model_path or default_model_path()
        self.state_file = self.config.state_file or config.sequence.state_dir / "edge-state.pickle"
        self.model: StockoutModel | None = None
        self.model_error: str | None = None
        self._model_signature: tuple[object, ...] | None = None
        self.counters = EdgeCounters()
        self.recent: deque[EdgeNotice] = deque(maxlen=RECENT)
        self.notices_total = 0  # ever appended to recent: lets a console show only new ones
        self.cold_chain_days: deque[ColdChainDay] = deque(maxlen=RECENT)
        self._outbox: list[Record] = []
        self._appending = 0  # taken from the outbox, not yet committed by the buffer
        self._wake = asyncio.Event()
        self._watermark_ms: int | None = None
        self._state_blob: bytes | None = None  # a snapshot waiting to be written
        self.restored = self._restore()

    # -- learnt state ------------------------------------------------------------

    def _restore(self) -> bool:
        if not self.config.state_save_ticks:
            return False
        saved = edge_state.read(self.state_file, self.lanes)
        if saved is None:
            return False
        self.features, self.alerts, self.cold_chain = saved.features, saved.alerts, saved.cold_chain
        # The alert thresholds come from today's config, not the saved one.
        self.alerts.config = self.config.alerts
        self._watermark_ms = saved.watermark_ms
        self.ticks.last_boundary_ms = saved.last_boundary_ms
        logger.info("edge state restored from %s", self.state_file)
        return True

    def snapshot(self) -> bytes:
        state = edge_state.EdgeState(
            self.features, self.alerts, self.cold_chain, self._watermark_ms,
            self.ticks.last_boundary_ms,
        )  # fmt: skip
        return edge_state.dump(state, self.lanes)

    async def save_state(self) -> None:
        """Write the latest snapshot (taken on the loop, written in a thread)."""
        blob, self._state_blob = self._state_blob, None
        if blob is None or not self.config.state_save_ticks:
            return
        try:
            await asyncio.to_thread(edge_state.write, self.state_file, blob)
        except OSError:
            logger.exception("could not save the edge state to %s", self.state_file)

    # -- readings (synchronous, called by intake) --------------------------------

    def observe(self, message: DeviceMessage) -> None:
        """Feed one accepted message; never raises into intake."""
        try:
            if isinstance(message, ShelfReading):
                self._shelf(message)
            elif isinstance(message, FridgeReading):
                self._fridge(message)
            elif isinstance(message, Sale):
                self.features.observe_sale(message.ts, message.gtin, message.qty)
        except Exception:
            # A bug in a feature must not cost a reading its place in the buffer.
            logger.exception("edge failed on %s seq %d", message.device, message.seq)

    def _shelf(self, reading: ShelfReading) -> None:
        self.counters.readings += len(reading.grams)
        admission = self.features.observe_shelf(
            reading.device, reading.ts, reading.grams, reading.board_c
        )
        if admission.value != "accepted":
            self.counters.out_of_order += 1
            return
        if self._watermark_ms is not None and reading.ts <= self._watermark_ms:
            return
        self._watermark_ms = reading.ts
        boundaries = self.ticks.advance(reading.ts)
        if boundaries:
            # After a gap only the latest boundary is worth scoring: the
            # earlier ones describe a past nobody can act on any more.
            self.counters.ticks_skipped += len(boundaries) - 1
            self._tick(boundaries[-1])

    def _tick(self, now_ms: int) -> None:
        self.counters.ticks += 1
        flags = self.features.lane_flags()
        blind = np.asarray(flags.stuck) | np.asarray(flags.stale)
        units = self.features.units()
        eta = self.features.expected_minutes_to_empty(now_ms)
        probability = None
        risk_on = self.config.alerts.risk_on
        model = self.model
        if model is not None and self.lanes:
            started = time.perf_counter()
            probability = model.predict(self.features.features(now_ms)).astype(np.float64)
            self.counters.inference_s_sum += time.perf_counter() - started
            self.counters.inferences += 1
            if risk_on is None:
                risk_on = model.info.threshold
        alerts = self.alerts.update(now_ms, units, probability, eta, blind, risk_on or 0.5)
        for alert in alerts:
            self._lane_alert(alert)
        every = self.config.units_report_ticks
        if every and self.counters.ticks % every == 1 % every:
            self._units_report(now_ms, units, blind)
        save = self.config.state_save_ticks
        if save and self.counters.ticks % save == 0:
            self._state_blob = self.snapshot()
            self._wake.set()

    def _units_report(self, now_ms: int, units: np.ndarray, blind: np.ndarray) -> None:
        """One ``shelf_units`` event per shelf device: the cloud's view of what is on shelf."""
        for device, idx in self._device_lanes.items():
            body = {
                "units": [int(u) for u in units[idx]],
                "blind": [bool(b) for b in blind[idx]],
            }
            self._outbox.append(self.events.event("shelf_units", INFO, now_ms, device, **body))
        self._wake.set()

    def _lane_alert(self, alert: LaneAlert) -> None:
        state = "raised" if alert.raised else "cleared"
        self.counters.alerts[(alert.kind.value, state)] += 1
        severity = {
            AlertKind.STOCKOUT_RISK: WARNING,
            AlertKind.OUT_OF_STOCK: CRITICAL,
            AlertKind.LOW_STOCK: INFO,
        }[alert.kind]
        lane = alert.lane
        body: dict[str, Any] = {
            "state": state,
            "lane": lane.lane,
            "gtin": lane.gtin,
            "units": alert.units,
            "capacity": lane.capacity,
        }
        if alert.probability is not None:
            body["probability"] = round(alert.probability, 4)
        if alert.minutes_to_empty is not None:
            body["expected_minutes_to_empty"] = round(alert.minutes_to_empty, 1)
        if alert.kind is AlertKind.STOCKOUT_RISK and self.model is not None:
            body["model_version"] = self.model.info.version
            body["horizon_min"] = self.model.info.horizon_min
        self._emit(
            alert.kind.value, severity if alert.raised else INFO, alert.ts_ms, lane.device, body
        )
        text = f"lane {lane.device}/{lane.lane} ({lane.gtin}) {alert.units} units"
        if alert.probability is not None and alert.kind is AlertKind.STOCKOUT_RISK:
            text += f", p={alert.probability:.2f}"
        if alert.minutes_to_empty is not None and alert.raised and alert.units > 0:
            text += f", empty in ~{alert.minutes_to_empty:.0f} min"
        self._notice(alert.ts_ms, alert.kind.value, lane.device, alert.raised,
                     alert.kind is AlertKind.OUT_OF_STOCK, text)  # fmt: skip

    def _fridge(self, reading: FridgeReading) -> None:
        sample = FridgeSample(
            device=reading.device,
            ts_ms=reading.ts,
            cabinet_c=reading.cabinet_c,
            evaporator_c=reading.evaporator_c,
            door_open=reading.door_open,
            compressor_on=reading.compressor_on,
            defrost_on=reading.defrost_on,
        )
        update = self.cold_chain.observe(sample)
        for alarm in update.alarms:
            self._alarm(alarm)
        for day in update.days:
            self._day(day)

    def _alarm(self, alarm: Alarm) -> None:
        state = "raised" if alarm.raised else "cleared"
        self.counters.alerts[(f"cold_chain_{alarm.kind.value}", state)] += 1
        severity = (CRITICAL if alarm.critical else WARNING) if alarm.raised else INFO
        body = {"state": state, "alarm": alarm.kind.value, **alarm.detail}
        self._emit("cold_chain_alarm", severity, alarm.ts_ms, alarm.device, body)
        detail = ", ".join(
            f"{k}={v:.1f}" if isinstance(v, float) else f"{k}={v}" for k, v in alarm.detail.items()
        )
        self._notice(alarm.ts_ms, f"cold_chain_{alarm.kind.value}", alarm.device, alarm.raised,
                     alarm.critical, f"{alarm.kind.value} {detail}".strip())  # fmt: skip

    def _day(self, day: ColdChainDay) -> None:
        self.cold_chain_days.append(day)
        body = {
            "day": day.day.isoformat(),
            "samples": day.samples,
            "minutes_above_limit": round(day.minutes_above_limit, 1),
            "mkt_c": round(day.mkt_c, 2),
            "min_c": round(day.min_c, 2),
            "max_c": round(day.max_c, 2),
            "limit_c": day.limit_c,
        }
        day_end_ms = int(day.day.toordinal() - 719_162) * 86_400_000 + 86_400_000
        self._emit("cold_chain_day", INFO, day_end_ms, day.device, body)

    def _emit(
        self, type_: str, severity: Any, ts_ms: int, source: str, body: dict[str, Any]
    ) -> None:
        self._outbox.append(self.events.event(type_, severity, ts_ms, source, **body))
        self._wake.set()

    def _notice(
        self, ts_ms: int, kind: str, source: str, raised: bool, critical: bool, text: str
    ) -> None:
        self.recent.append(EdgeNotice(ts_ms, kind, source, raised, critical, text))
        self.notices_total += 1

    # -- the model ---------------------------------------------------------------

    def _signature(self) -> tuple[object, ...]:
        return (
            _file_signature(self.model_path),
            _file_signature(self.model_path.with_suffix(".json")),
        )

    async def check_model(self, now_ms: int) -> None:
        """Load the model file if it changed since the last look (or was never loaded)."""
        signature = await asyncio.to_thread(self._signature)
        if signature == self._model_signature:
            return
        self._model_signature = signature
        try:
            model = await asyncio.to_thread(StockoutModel.load, self.model_path)
        except ModelError as exc:
            self.counters.model_failures += 1
            self.model_error = str(exc)
            kept = self.model.info.version if self.model is not None else None
            logger.error(
                "stock-out model not loaded (%s); %s", exc,
                f"keeping version {kept}" if kept else "risk alerts are off, rules still run",
            )  # fmt: skip
            body = {"path": self.model_path.name, "error": str(exc), "kept": kept}
            self._emit("model_load_failed", WARNING, now_ms, self.store_id, body)
            self._notice(now_ms, "model_load_failed", self.store_id, True, False, str(exc))
            return
        self.model = model  # the swap: the next tick uses it
        self.model_error = None
        self.counters.model_loads += 1
        info = model.info
        logger.info("stock-out model %s loaded (%s, sha256 %s)", info.version,
                    info.quantization, info.sha256[:12])  # fmt: skip
        loaded = {
            "version": info.version,
            "sha256": info.sha256,
            "quantization": info.quantization,
            "horizon_min": info.horizon_min,
        }
        self._emit("model_loaded", INFO, now_ms, self.store_id, loaded)
        self._notice(now_ms, "model_loaded", self.store_id, True, False, f"model {info.version}")

    # -- the task ----------------------------------------------------------------

    async def run(self, buffer: DurableBuffer, clock_ms: Callable[[], int]) -> None:
        """Watch the model file and move queued events into the buffer."""
        flusher = asyncio.create_task(self._flush(buffer), name="edge-flush")
        try:
            while True:
                await self.check_model(clock_ms())
                await asyncio.sleep(self.config.model_check_s)
        finally:
            flusher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await flusher
            await self._append(buffer)
            if self.config.state_save_ticks:
                self._state_blob = self.snapshot()
                await self.save_state()

    async def _flush(self, buffer: DurableBuffer) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            await self._append(buffer)
            await self.save_state()

    async def _append(self, buffer: DurableBuffer) -> None:
        records, self._outbox = self._outbox, []
        if not records:
            return
        self._appending += len(records)
        try:
            await buffer.append(records)
        except Exception:
            # Events are never refused by the full policy; this is the hard
            # ceiling or a broken disk, which the buffer alarm already reports.
            logger.exception("could not buffer %d edge events", len(records))
        finally:
            self._appending -= len(records)

    def pending_events(self) -> int:
        """Events concluded and not yet committed by the buffer (queued or being written)."""
        return len(self._outbox) + self._appending

    def status(self) -> dict[str, Any]:
        info = self.model.info if self.model is not None else None
        return {
            "model": None if info is None else {"version": info.version, "sha256": info.sha256},
            "model_error": self.model_error,
            "lanes": len(self.lanes),
            "active": {k.value: v for k, v in self.alerts.active().items()},
            "cold_chain_alarms": len(self.cold_chain.active()),
            "ticks": self.counters.ticks,
            "state": "restored" if self.restored else "fresh",
        }
