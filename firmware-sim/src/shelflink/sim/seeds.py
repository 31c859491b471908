"""Where every random number of the simulator comes from.

Each random stream is a PCG64 generator seeded by ``SeedSequence(seed,
spawn_key=key)``. That is exactly the child ``SeedSequence(seed).spawn`` would
hand out at that position, so keys are stable: store 7's streams are the same
whether 8 or 800 stores are simulated, and day 3's draws are the same whether
the simulation ran in one-minute steps or in whole days.
"""

from __future__ import annotations

from enum import IntEnum

import numpy as np


class Stream(IntEnum):
    """The second level of a store's key: one stream per concern, so that, for
    example, switching sensor noise off does not change the customers."""

    PROFILE = 0
    LAYOUT = 1
    DEMAND = 2
    SENSOR = 3
    FRIDGE = 4
    SUPPLY = 5


# The first key level separates brand-wide streams from per-store ones.
_CATALOG = 0
_STORE = 1
_FAULTS = 2
_PROFILES = 3


def rng_for(seed: int, *key: int) -> np.random.Generator:
    if seed < 0:
        raise ValueError("seed must be non-negative")
    return np.random.Generator(np.random.PCG64(np.random.SeedSequence(seed, spawn_key=key)))


def catalog_rng(seed: int) -> np.random.Generator:
    return rng_for(seed, _CATALOG)


def store_rng(seed: int, store_index: int, stream: Stream, *rest: int) -> np.random.Generator:
    """The generator of one store's stream; ``rest`` selects a device and/or a day."""
    return rng_for(seed, _STORE, store_index, int(stream), *rest)


def fault_rng(seed: int, store_index: int) -> np.random.Generator:
    return rng_for(seed, _FAULTS, store_index)


def profile_offset(seed: int) -> float:
    """A run-wide phase for spreading store profiles (see :mod:`shelflink.sim.profiles`)."""
    return float(rng_for(seed, _PROFILES).random())
