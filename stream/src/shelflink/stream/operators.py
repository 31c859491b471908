"""streamz operators for a store's device messages, and the shelf pipeline built from them.

Importing this module registers four methods on every ``streamz.Stream``:

- ``in_order(gate=None, key=..., event_time=...)``: the watermark gate as a
  filter; a message passes only if its key's (device's) event time moves
  forward. Duplicates and late messages are counted on the gate and dropped.
- ``shelf_features(state)``: folds shelf readings and till sales into a
  :class:`~shelflink.stream.lanes.LaneFeatureState` and passes every message on.
- ``event_watermark(watermark)``: emits the store watermark (int ms) each
  time a message moves it forward.
- ``ticks(clock)``: emits every tick boundary (int ms) the incoming
  watermark crosses, oldest first.

:func:`shelf_pipeline` chains them: ``emit()`` device messages into the
source it returns, and ``on_tick(boundary_ms)`` runs once per crossed tick,
after every reading up to the watermark has been folded in.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from streamz import Stream  # type: ignore[import-untyped]

from shelflink.device.models import Sale, ShelfReading
from shelflink.stream.lane_state import LaneFeatureState
from shelflink.stream.watermark import Admission, InOrderGate, StoreWatermark, TickClock


def device_of(message: Any) -> str:
    """The in-order key of a device message: its device id."""
    device: str = message.device
    return device


def event_time_of(message: Any) -> int:
    """The event time of a device message: its ``ts`` (epoch ms)."""
    ts: int = message.ts
    return ts


@Stream.register_api()
class in_order(Stream):  # type: ignore[misc]
    """Pass a message on only if its key's event time moves forward."""

    def __init__(
        self,
        upstream: Stream,
        gate: InOrderGate[str] | None = None,
        key: Callable[[Any], str] = device_of,
        event_time: Callable[[Any], int] = event_time_of,
        **kwargs: Any,
    ) -> None:
        self.gate: InOrderGate[str] = gate if gate is not None else InOrderGate()
        self.key = key
        self.event_time = event_time
        super().__init__(upstream, **kwargs)

    def update(self, x: Any, who: Any = None, metadata: Any = None) -> Any:
        if self.gate.admit(self.key(x), self.event_time(x)) is Admission.ACCEPTED:
            return self._emit(x, metadata=metadata)
        return None


@Stream.register_api()
class shelf_features(Stream):  # type: ignore[misc]
    """Fold shelf readings and sales into a lane feature state; pass every message on."""

    def __init__(self, upstream: Stream, state: LaneFeatureState, **kwargs: Any) -> None:
        self.state = state
        super().__init__(upstream, **kwargs)

    def update(self, x: Any, who: Any = None, metadata: Any = None) -> Any:
        if isinstance(x, ShelfReading):
            self.state.observe_shelf(x.device, x.ts, x.grams, x.board_c)
        elif isinstance(x, Sale):
            self.state.observe_sale(x.ts, x.gtin, x.qty)
        return self._emit(x, metadata=metadata)


@Stream.register_api()
class event_watermark(Stream):  # type: ignore[misc]
    """Emit the store watermark each time a message moves it forward."""

    def __init__(
        self,
        upstream: Stream,
        watermark: StoreWatermark | None = None,
        event_time: Callable[[Any], int] = event_time_of,
        **kwargs: Any,
    ) -> None:
        self.watermark = watermark if watermark is not None else StoreWatermark()
        self.event_time = event_time
        super().__init__(upstream, **kwargs)

    def update(self, x: Any, who: Any = None, metadata: Any = None) -> Any:
        before = self.watermark.value
        after = self.watermark.observe(self.event_time(x))
        if before is None or after > before:
            return self._emit(after, metadata=metadata)
        return None


@Stream.register_api()
class ticks(Stream):  # type: ignore[misc]
    """Emit each tick boundary the incoming watermark crosses, oldest first."""

    def __init__(self, upstream: Stream, clock: TickClock, **kwargs: Any) -> None:
        self.clock = clock
        super().__init__(upstream, **kwargs)

    def update(self, x: Any, who: Any = None, metadata: Any = None) -> Any:
        results: list[Any] = []
        for boundary in self.clock.advance(int(x)):
            results.extend(self._emit(boundary, metadata=metadata))
        return results


def shelf_pipeline(
    state: LaneFeatureState,
    *,
    tick_ms: int = 60_000,
    allowed_lateness_ms: int = 0,
    on_tick: Callable[[int], None] | None = None,
    gate: InOrderGate[str] | None = None,
) -> Stream:
    """A source to ``emit()`` device messages into: in-order gate → features → ticks.

    Only shelf readings move the watermark (a till's clock does not decide when
    the shelves are scored). ``on_tick`` receives each crossed tick boundary.
    The chain ends in a streamz sink, which keeps it alive as long as the
    process runs; call ``destroy()`` on the returned source's downstream nodes
    to drop it earlier.
    """
    source = Stream(stream_name="device messages")
    boundaries = (
        source.in_order(gate)
        .shelf_features(state)
        .filter(lambda m: isinstance(m, ShelfReading))
        .event_watermark(StoreWatermark(allowed_lateness_ms))
        .ticks(TickClock(tick_ms))
    )
    boundaries.sink(on_tick if on_tick is not None else _ignore)
    return source


def _ignore(_: object) -> None:
    """A sink for a pipeline whose ticks nobody listens to (the state still updates)."""
