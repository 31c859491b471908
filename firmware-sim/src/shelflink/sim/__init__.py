"""Shelflink's seeded store simulator: shelves, fridges, scanners, ground truth.

The model (:class:`StoreSim` and the modules it uses) does no I/O; the data
set writer (:func:`write_dataset`) and the live publisher (``run_stores`` in
:mod:`shelflink.sim.run`) are the shells around it. docs/simulator.md
describes the model, docs/datasets.md the files it writes.
"""

from shelflink.sim._version import __version__
from shelflink.sim.backroom import Delivery, serial_code
from shelflink.sim.catalog import Sku, build_catalog
from shelflink.sim.clock import DEFAULT_START, SimClock, live_start_ms
from shelflink.sim.config import SimConfig
from shelflink.sim.dataset import DatasetSummary, bench_dataset, write_dataset
from shelflink.sim.faults import Fault, FaultKind, FaultSchedule, random_faults
from shelflink.sim.ground_truth import LaneLedger
from shelflink.sim.layout import StoreLayout, build_layout, store_id_for
from shelflink.sim.profiles import DEFAULT_MIX, PROFILES, StoreProfile, profile_for
from shelflink.sim.step import StoreStep
from shelflink.sim.store import StoreSim

__all__ = [
    "DEFAULT_MIX",
    "DEFAULT_START",
    "PROFILES",
    "DatasetSummary",
    "Delivery",
    "Fault",
    "FaultKind",
    "FaultSchedule",
    "LaneLedger",
    "SimClock",
    "SimConfig",
    "Sku",
    "StoreLayout",
    "StoreProfile",
    "StoreSim",
    "StoreStep",
    "__version__",
    "bench_dataset",
    "build_catalog",
    "build_layout",
    "live_start_ms",
    "profile_for",
    "random_faults",
    "serial_code",
    "store_id_for",
    "write_dataset",
]
