"""``[edge.cold_chain]`` in the gateway's TOML file: product classes, fridges and rule thresholds.

Every key, its default and the reason for it is in docs/cold-chain.md.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any, Final, Self

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

Minutes = Annotated[float, Field(gt=0, le=7 * 24 * 60)]
Celsius = Annotated[float, Field(ge=-60, le=60)]


class ProductClass(BaseModel):
    """The limits of one class of product, and how a healthy cabinet for it behaves."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    max_c: Celsius
    # None: nothing in this class is harmed by cold (frozen food).
    min_c: Celsius | None = None
    max_minutes_above: Minutes
    max_minutes_below: Minutes = 30.0
    # A working thermostat always runs the compressor above this: the cut-in
    # temperature plus a margin. Warmer with the compressor off means it failed.
    cut_in_c: Celsius

    @model_validator(mode="after")
    def _ordered(self) -> Self:
        if self.min_c is not None and self.min_c >= self.max_c:
            raise ValueError(f"min_c ({self.min_c}) must be below max_c ({self.max_c})")
        if self.cut_in_c > self.max_c:
            raise ValueError(f"cut_in_c ({self.cut_in_c}) must not be above max_c ({self.max_c})")
        return self


DEFAULT_CLASSES: Final[Mapping[str, ProductClass]] = {
    # 8 °C is the legal chill-holding limit in England, Wales and Northern Ireland;
    # -1 °C is about where chilled produce and dairy start to freeze.
    "chilled": ProductClass(max_c=8.0, min_c=-1.0, max_minutes_above=30.0, cut_in_c=6.0),
    # 5 °C (41 °F) is the US FDA Food Code's cold-holding limit and the UK's
    # recommended target: fresh meat, fish, ready-to-eat food.
    "chilled_strict": ProductClass(max_c=5.0, min_c=-1.0, max_minutes_above=30.0, cut_in_c=4.5),
    # Quick-frozen food is held at -18 °C; retail display cabinets may drift up
    # to 3 °C above that (Directive 89/108/EEC).
    "frozen": ProductClass(max_c=-15.0, max_minutes_above=30.0, cut_in_c=-16.0),
}


class ColdChainConfig(BaseModel):
    """Which product class each fridge holds, and the thresholds of the rules."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    # A class named like a default inherits the keys it does not set, so
    # ``[edge.cold_chain.classes.chilled] max_c = 7.0`` changes only max_c.
    classes: dict[str, ProductClass] = Field(default_factory=lambda: dict(DEFAULT_CLASSES))
    default_class: str = "chilled"
    fridges: dict[str, str] = Field(default_factory=dict)  # device id -> class
    # An alarm clears only this far back inside the limit, so that a cabinet
    # hovering at the limit does not raise and clear it every minute.
    clear_hysteresis_c: Annotated[float, Field(ge=0, le=5)] = 0.5
    door_open_max_min: Minutes = 15.0
    # Suppress the temperature rules during a defrost and for this long after it.
    defrost_grace_min: Annotated[float, Field(ge=0, le=24 * 60)] = 30.0
    # A defrost longer than this is a fault in itself (the usual one is 20 min).
    defrost_max_min: Minutes = 45.0
    # Compressor off while the cabinet is above the class's cut_in_c, outside defrost.
    compressor_off_max_min: Minutes = 10.0
    # Compressor running this long while the cabinet keeps rising this fast.
    compressor_rise_window_min: Minutes = 20.0
    compressor_rise_c_per_min: Annotated[float, Field(gt=0, le=10)] = 0.05
    # A real sensor always shows some noise; identical readings this long mean a dead one.
    flat_line_min: Minutes = 30.0
    flat_line_spread_c: Annotated[float, Field(ge=0, le=1)] = 0.01
    # Faster than any cabinet can change, even with its door wide open in a hot room.
    jump_c_per_min: Annotated[float, Field(gt=0, le=100)] = 5.0
    # A reading stands for at most this much time before it; longer silence is unknown.
    max_gap_min: Minutes = 15.0
    # The window of the duty-cycle and door-share figures reported with alarms.
    window_min: Minutes = 60.0

    @field_validator("classes", mode="before")
    @classmethod
    def _inherit_defaults(cls, value: Any) -> Any:
        if not isinstance(value, Mapping):
            return value
        merged: dict[str, Any] = dict(DEFAULT_CLASSES)
        for name, given in value.items():
            base = DEFAULT_CLASSES.get(name)
            if base is not None and isinstance(given, Mapping):
                merged[name] = {**base.model_dump(), **given}
            else:
                merged[name] = given
        return merged

    @model_validator(mode="after")
    def _known_classes(self) -> Self:
        known = sorted(self.classes)
        if self.default_class not in self.classes:
            raise ValueError(f"default_class {self.default_class!r} is not one of {known}")
        unknown = sorted({c for c in self.fridges.values() if c not in self.classes})
        if unknown:
            raise ValueError(f"fridges name unknown classes {unknown}; known: {known}")
        return self

    def class_of(self, device: str) -> ProductClass:
        """The product class of a fridge: its own entry, else the default class."""
        return self.classes[self.fridges.get(device, self.default_class)]
