"""The stock-out model's input columns, in order, with the cap applied to each.

Every column is float32 and finite; docs/stream.md gives each formula. The
order is part of a trained model's contract: append, never reorder.
"""

from __future__ import annotations

from typing import Final

# name -> upper cap (every feature is also floored, at 0 or -1 for the angles).
FEATURE_CAPS: Final[dict[str, float]] = {
    "units": 1000.0,
    "fill_fraction": 1.5,
    "capacity": 1000.0,
    "depletion_per_h_1h": 500.0,
    "depletion_per_h_3h": 500.0,
    "depletion_per_h_24h": 500.0,
    "depletion_per_h_ewma": 500.0,
    "sales_per_h_3h": 500.0,
    "sales_per_h_24h": 500.0,
    "shrink_units_24h": 1000.0,
    "hours_since_restock": 72.0,
    "hour_sin": 1.0,
    "hour_cos": 1.0,
    "dow_sin": 1.0,
    "dow_cos": 1.0,
    "expected_removals_3h": 1000.0,
    "profile_days": 14.0,
    "minutes_to_empty_linear": 1440.0,
    "minutes_to_empty_profile": 1440.0,
    "stuck": 1.0,
    "data_age_min": 60.0,
}

FEATURE_NAMES: Final[tuple[str, ...]] = tuple(FEATURE_CAPS)
