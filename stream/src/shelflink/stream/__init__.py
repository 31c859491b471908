"""Stream operators shared by gateway and cloud: watermarks, windows, shelf and fridge features.

The streamz operators register themselves when :mod:`shelflink.stream.operators`
is imported; it is not imported here, so that using the feature state alone
does not load streamz.
"""

from shelflink.stream._version import __version__
from shelflink.stream.lanes import (
    FEATURE_NAMES,
    LaneEvent,
    LaneEventKind,
    LaneFeatureState,
    LaneFlags,
    LaneSpec,
)
from shelflink.stream.watermark import Admission, InOrderGate, StoreWatermark, TickClock

__all__ = [
    "FEATURE_NAMES",
    "Admission",
    "InOrderGate",
    "LaneEvent",
    "LaneEventKind",
    "LaneFeatureState",
    "LaneFlags",
    "LaneSpec",
    "StoreWatermark",
    "TickClock",
    "__version__",
]
