"""A run's stores: which profile each gets, its layout and its simulator.

Store ``i`` of a run depends only on the seed, ``i``, the profile mix and the
configuration, never on how many stores the run has.
"""

from __future__ import annotations

from collections.abc import Mapping

from shelflink.sim.catalog import Sku, build_catalog
from shelflink.sim.clock import SimClock
from shelflink.sim.config import SimConfig
from shelflink.sim.faults import FaultSchedule, random_faults
from shelflink.sim.layout import build_layout
from shelflink.sim.profiles import PROFILES, profile_for
from shelflink.sim.seeds import fault_rng
from shelflink.sim.store import StoreSim


def build_store(
    seed: int,
    index: int,
    clock: SimClock,
    *,
    catalog: tuple[Sku, ...] | None = None,
    profile: str | None = None,
    profile_mix: Mapping[str, float] | None = None,
    config: SimConfig | None = None,
    faults: FaultSchedule | None = None,
    fault_rate: float = 0.0,
    horizon_ticks: int | None = None,
) -> StoreSim:
    """The simulator of store ``index``.

    ``profile`` forces a profile; otherwise ``profile_mix`` chooses. With a
    ``fault_rate`` (faults per shelf or fridge device and day) random faults
    over ``horizon_ticks`` are added to ``faults``.
    """
    config = config or SimConfig(tick_s=clock.tick_s)
    if catalog is None:
        catalog = build_catalog(seed, config.catalog_size, config.cold_fraction)
    name = profile or profile_for(seed, index, profile_mix)
    if name not in PROFILES:
        raise ValueError(f"unknown store profile {name!r}; known: {sorted(PROFILES)}")
    layout = build_layout(seed, index, PROFILES[name], catalog)
    schedule = faults or FaultSchedule()
    if fault_rate > 0:
        if horizon_ticks is None:
            raise ValueError("random faults need the run's horizon")
        drawn = random_faults(
            fault_rng(seed, index), layout, clock.start_ms, clock.ts(horizon_ticks), fault_rate
        )
        schedule = FaultSchedule((*schedule.faults, *drawn.faults))
    own = {*layout.device_ids()}
    schedule = FaultSchedule(tuple(f for f in schedule.faults if f.device_id in own))
    return StoreSim(layout, seed=seed, clock=clock, config=config, faults=schedule)
