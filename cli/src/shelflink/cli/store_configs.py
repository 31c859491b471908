"""Gateway configurations for simulated stores: the planogram comes from the simulator.

In a real deployment the store's TOML file is written by whoever installs the
shelves; for the demo and the tests the simulator's layout is the truth.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from shelflink.device import DeviceKind
from shelflink.gateway.config import GatewayConfig
from shelflink.sim import PROFILES, SimConfig, build_catalog, build_layout, profile_for
from shelflink.sim.layout import StoreLayout


def sim_layouts(stores: int, seed: int, config: SimConfig | None = None) -> list[StoreLayout]:
    """The layouts ``sim run`` / the demo use for the same seed (default profile mix)."""
    config = config or SimConfig()
    catalog = build_catalog(seed, config.catalog_size, config.cold_fraction)
    return [
        build_layout(seed, i, PROFILES[profile_for(seed, i, None)], catalog) for i in range(stores)
    ]


def gateway_config(
    layout: StoreLayout,
    broker_url: str,
    state_dir: Path,
    *,
    health_port: int = 0,
    uplink_url: str | None = None,
) -> GatewayConfig:
    store = layout.store_id
    devices: list[dict[str, Any]] = []
    for shelf in layout.shelves:
        lanes = [
            {
                "gtin": layout.skus[int(layout.lane_sku[lane])].gtin,
                "unit_g": float(layout.unit_g[lane]),
                "capacity": int(layout.capacity[lane]),
            }
            for lane in range(shelf.start, shelf.stop)
        ]
        devices.append({"id": shelf.device_id, "kind": DeviceKind.SHELF, "lanes": lanes})
    devices += [{"id": f.device_id, "kind": DeviceKind.FRIDGE} for f in layout.fridges]
    devices += [
        {"id": scanner, "kind": DeviceKind.SCANNER} for scanner in (*layout.tills, layout.receiving)
    ]
    uplink = {"uplink": {"url": uplink_url, "linger_s": 0.5}} if uplink_url else {}
    return GatewayConfig.model_validate(
        {
            **uplink,
            "store_id": store,
            "gateway_id": f"gw-{store}",
            "broker": {"url": broker_url},
            "buffer": {"path": state_dir / store / "buffer.sqlite"},
            "dead_letter": {"path": state_dir / store / "dead_letter.sqlite"},
            "health": {"port": health_port},
            "sequence": {"state_dir": state_dir / store / "sequences"},
            "devices": devices,
            "log_format": "text",
        }
    )


def to_toml_dict(config: GatewayConfig) -> dict[str, Any]:
    """The config as TOML-ready data (paths as strings, no nulls: TOML has none)."""
    data: dict[str, Any] = config.model_dump(mode="json", exclude_none=True)
    return data
