"""The cold-chain monitor of a store: every fridge's rules, alarms and daily records.

Pure and synchronous: :meth:`ColdChainMonitor.observe` evaluates every rule on
the reading it is given and returns at once, so an alarm is raised by the
reading that proves it, whether the gateway is online or not. The rules are in
:mod:`shelflink.edge.cold_chain_rules`, the thresholds in
:mod:`shelflink.edge.cold_chain_config`; docs/cold-chain.md explains both.
"""

from __future__ import annotations

from dataclasses import dataclass

from shelflink.edge.cold_chain_alarm import Alarm, AlarmKind
from shelflink.edge.cold_chain_config import ColdChainConfig, ProductClass
from shelflink.edge.cold_chain_day import ColdChainDay
from shelflink.edge.cold_chain_rules import FridgeRules
from shelflink.stream.fridge_features import FridgeFeatures, FridgeSample

__all__ = [
    "Alarm",
    "AlarmKind",
    "ColdChainConfig",
    "ColdChainCounters",
    "ColdChainDay",
    "ColdChainMonitor",
    "ColdChainUpdate",
    "ProductClass",
]


@dataclass(frozen=True, slots=True)
class ColdChainUpdate:
    """What one reading changed: alarm transitions, and the UTC days it closed."""

    alarms: tuple[Alarm, ...] = ()
    days: tuple[ColdChainDay, ...] = ()
    accepted: bool = True  # False: the reading was late or a duplicate and was dropped


@dataclass(frozen=True, slots=True)
class ColdChainCounters:
    """Readings seen by the monitor, all fridges together."""

    accepted: int
    late: int  # older than the fridge's last accepted reading: dropped
    duplicates: int  # same timestamp as the last accepted reading: dropped
    sensor_faulty: int  # accepted, but ignored by the temperature rules
    fridges: int


_REFUSED = ColdChainUpdate(accepted=False)


class ColdChainMonitor:
    """Cold-chain rules for any number of fridges, keyed by device id."""

    def __init__(self, config: ColdChainConfig) -> None:
        self.config = config
        self._fridges: dict[str, FridgeRules] = {}

    def observe(self, sample: FridgeSample) -> ColdChainUpdate:
        """Evaluate every rule of ``sample``'s fridge on it."""
        rules = self._fridges.get(sample.device)
        if rules is None:
            rules = self._fridges[sample.device] = FridgeRules(sample.device, self.config)
        result = rules.observe(sample)
        if result is None:
            return _REFUSED
        alarms, days = result
        if not alarms and not days:
            return ColdChainUpdate()
        return ColdChainUpdate(tuple(alarms), tuple(days))

    def active(self) -> list[Alarm]:
        """The alarms standing now (each as it was raised), by device and kind."""
        return [
            alarm
            for device in sorted(self._fridges)
            for _, alarm in sorted(self._fridges[device].active.items())
        ]

    def counters(self) -> ColdChainCounters:
        fridges = self._fridges.values()
        return ColdChainCounters(
            accepted=sum(f.raw.accepted for f in fridges),
            late=sum(f.raw.late for f in fridges),
            duplicates=sum(f.raw.duplicates for f in fridges),
            sensor_faulty=sum(f.faulty_readings for f in fridges),
            fridges=len(self._fridges),
        )

    def open_days(self) -> list[ColdChainDay]:
        """Each fridge's current UTC day so far (for a view, or a summary at shutdown)."""
        days = (self._fridges[d].open_day() for d in sorted(self._fridges))
        return [day for day in days if day is not None]

    def features(self, device: str) -> FridgeFeatures | None:
        """The fridge's current features against its class limit; ``None`` before any reading."""
        rules = self._fridges.get(device)
        if rules is None or rules.raw.last is None:
            return None
        return rules.raw.snapshot(rules.product.max_c)
