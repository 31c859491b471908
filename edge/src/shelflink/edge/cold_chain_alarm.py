"""What the cold-chain rules conclude: alarms, raised and cleared, one transition at a time."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Final


class AlarmKind(StrEnum):
    TEMPERATURE_HIGH = "temperature_high"  # warmer than the product class allows, too long
    TEMPERATURE_LOW = "temperature_low"  # colder than the product class allows, too long
    DOOR_OPEN = "door_open"  # the door has been open on every reading for too long
    COMPRESSOR_FAILURE = "compressor_failure"  # warm and not running, or running and not cooling
    SENSOR_FAULT = "sensor_fault"  # the cabinet sensor is flat-lined or jumped impossibly
    DEFROST_OVERRUN = "defrost_overrun"  # a defrost cycle far longer than a normal one


# Critical: the product itself is (or is about to be) out of its limits.
CRITICAL_KINDS: Final = frozenset({AlarmKind.TEMPERATURE_HIGH, AlarmKind.COMPRESSOR_FAILURE})

Detail = dict[str, float | int | str | bool]


@dataclass(frozen=True, slots=True)
class Alarm:
    """A transition of one alarm of one fridge: ``raised`` True when it starts, False when it
    clears. ``ts_ms`` is the timestamp of the reading that proved the transition.
    """

    device: str
    kind: AlarmKind
    raised: bool
    ts_ms: int
    critical: bool
    detail: Detail = field(default_factory=dict)
