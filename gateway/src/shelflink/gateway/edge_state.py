"""The edge's learnt state on disk, so that a restart does not forget it.

What the edge knows after a week — each lane's tare and temperature drift,
its hour-of-day depletion profile, which alerts stand, each fridge's alarms
and the day's cold-chain record — would take days to relearn and, lost, would
re-announce every standing alert after each reboot. It is written every few
ticks (atomically: a temporary file, fsync, rename) and read back at start.

A snapshot is only used by the gateway that wrote it, for the same planogram
and the same feature code: a file that does not match (lanes changed, a new
stream version, or damage) is set aside with a warning and the edge starts
fresh; nothing else depends on it. The format is pickle because the state is
the edge's own objects and the file is the gateway's own, in its state
folder: it is never accepted from elsewhere.
"""

from __future__ import annotations

import logging
import os
import pickle
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from shelflink.edge.cold_chain import ColdChainMonitor
from shelflink.edge.lane_alerts import LaneAlerts
from shelflink.edge.stockout_model import feature_code_digest
from shelflink.stream.lanes import LaneFeatureState, LaneSpec

logger = logging.getLogger(__name__)

FORMAT = 1


@dataclass(slots=True)
class EdgeState:
    features: LaneFeatureState
    alerts: LaneAlerts
    cold_chain: ColdChainMonitor
    watermark_ms: int | None
    last_boundary_ms: int | None


def dump(state: EdgeState, lanes: tuple[LaneSpec, ...]) -> bytes:
    header = {"format": FORMAT, "lanes": lanes, "code": feature_code_digest()}
    return pickle.dumps((header, state), protocol=pickle.HIGHEST_PROTOCOL)


def write(path: Path, data: bytes) -> None:
    """Replace ``path`` with ``data`` so that a crash leaves the old file or the new one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(path.name + ".tmp")
    with temporary.open("wb") as file:
        file.write(data)
        file.flush()
        os.fsync(file.fileno())
    temporary.replace(path)


def read(path: Path, lanes: tuple[LaneSpec, ...]) -> EdgeState | None:
    """The saved state if it fits this gateway; None (and a reason in the log) if not."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return None
    problem = _check(raw, lanes)
    if isinstance(problem, EdgeState):
        return problem
    aside = path.with_name(path.name + ".rejected")
    path.replace(aside)
    logger.warning("edge state %s not used (%s); starting fresh, kept as %s", path, problem, aside)
    return None


def _check(raw: bytes, lanes: tuple[LaneSpec, ...]) -> EdgeState | str:
    try:
        header, state = pickle.loads(raw)  # our own file: see the module docstring
    except Exception as exc:
        return f"unreadable: {exc.__class__.__name__}"
    if not isinstance(header, dict) or not isinstance(state, EdgeState):
        return "not an edge state"
    checks: dict[str, Any] = {"format": FORMAT, "lanes": lanes, "code": feature_code_digest()}
    for key, expected in checks.items():
        if header.get(key) != expected:
            return {
                "format": "another format",
                "lanes": "the planogram changed",
                "code": "written by another version of the feature code",
            }[key]
    return state
