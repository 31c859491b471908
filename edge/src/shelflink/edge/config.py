"""``[edge]`` in the gateway's TOML file: the model, the tick, the alerts, the cold chain.

Every key is documented with an example in docs/edge.md.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field

from shelflink.edge.cold_chain_config import ColdChainConfig
from shelflink.edge.lane_alerts import LaneAlertConfig


class EdgeConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, protected_namespaces=())

    enabled: bool = True
    # None: the model shipped with the package. A file named here is watched:
    # replace it (card first, then the .tflite, each by rename) and the gateway
    # loads it within model_check_s, without a restart.
    model_path: Path | None = None
    model_check_s: Annotated[float, Field(gt=0, le=3600)] = 5.0
    # Inference runs once per tick of *event* time (the readings' ts), so a
    # replay or an accelerated simulation ticks like a real store.
    tick_s: Annotated[int, Field(ge=1, le=3600)] = 60
    # Minutes east of UTC of the store's wall clock, for hour-of-week features.
    utc_offset_min: Annotated[int, Field(ge=-14 * 60, le=14 * 60)] = 0
    # Every this many ticks, one ``shelf_units`` event per shelf: the units
    # estimate the cloud's planner counts as "on shelf". 0: never.
    units_report_ticks: Annotated[int, Field(ge=0, le=1440)] = 15
    # What the edge has learnt (tare, drift, depletion profiles, standing
    # alerts, cold-chain days), saved every state_save_ticks ticks and at
    # shutdown, read back at start. 0: never saved. None: edge-state.pickle
    # in the gateway's state folder ([sequence] state_dir).
    state_file: Path | None = None
    state_save_ticks: Annotated[int, Field(ge=0, le=1440)] = 15
    alerts: LaneAlertConfig = LaneAlertConfig()
    cold_chain: ColdChainConfig = ColdChainConfig()

    def resolve_paths(self, base: Path) -> EdgeConfig:
        def at(path: Path) -> Path:
            return path if path.is_absolute() else base / path

        update: dict[str, Path] = {}
        if self.state_file is not None:
            update["state_file"] = at(self.state_file)
        if self.model_path is not None:
            update["model_path"] = at(self.model_path)
        return self.model_copy(update=update)
