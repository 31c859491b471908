"""Options several commands share, so that they are spelt the same everywhere."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

BROKER_URL_ENV = "SHELFLINK_MQTT_URL"


def add_broker_options(parser: argparse.ArgumentParser, *, required: bool = False) -> None:
    parser.add_argument(
        "--broker",
        default=os.environ.get(BROKER_URL_ENV),
        required=required and BROKER_URL_ENV not in os.environ,
        metavar="URL",
        help=f"mqtt://[user:pass@]host:port or mqtts://… (default: ${BROKER_URL_ENV}"
        + (")" if required else "; unset: start the embedded broker)"),
    )


def add_store_options(parser: argparse.ArgumentParser, *, stores: int, speed: float) -> None:
    parser.add_argument("--stores", type=int, default=stores, help=f"stores (default {stores})")
    parser.add_argument("--seed", type=int, default=1, help="simulation seed (default 1)")
    parser.add_argument(
        "--speed", type=float, default=speed, help=f"simulated seconds per second ({speed:g})"
    )


def default_state_dir() -> Path:
    return Path(os.environ.get("SHELFLINK_STATE_DIR", "var"))
