"""Shelf lanes: the planogram entry, the feature state of a store, its features, events and flags.

The public face of the shelf feature engine; the parts live in their own
modules (:mod:`~shelflink.stream.load_cell` counts units,
:mod:`~shelflink.stream.lane_state` folds readings and sales into features).
"""

from shelflink.stream.feature_names import FEATURE_CAPS, FEATURE_NAMES
from shelflink.stream.lane_events import LaneEvent, LaneEventKind, LaneFlags
from shelflink.stream.lane_spec import LaneSpec
from shelflink.stream.lane_state import LaneFeatureState
from shelflink.stream.load_cell import LoadCellTuning
from shelflink.stream.watermark import Admission

__all__ = [
    "FEATURE_CAPS",
    "FEATURE_NAMES",
    "Admission",
    "LaneEvent",
    "LaneEventKind",
    "LaneFeatureState",
    "LaneFlags",
    "LaneSpec",
    "LoadCellTuning",
]
