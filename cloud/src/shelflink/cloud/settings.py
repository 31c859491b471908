"""The cloud's settings: one class, read from ``SHELFLINK_*`` environment variables.

Nothing here runs at import time: services call :func:`load_settings` in their
start-up (or a test builds :class:`CloudSettings` with explicit values).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

StorageFlavour = Literal["auto", "plain", "timescale"]


class CloudSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="SHELFLINK_", extra="ignore", frozen=True)

    # None: start the embedded PostgreSQL server in data_dir/postgres (see embedded.py).
    database_url: str | None = None
    data_dir: Path = Path("var/cloud")
    # None: the caller starts the embedded MQTT broker.
    mqtt_url: str | None = None
    # Raw readings and per-minute rollups older than this are dropped; hourly rollups stay.
    retention_days: Annotated[int, Field(ge=1, le=36_500)] = 90
    # "auto" picks TimescaleDB when the server can load it, plain partitioning otherwise.
    # Decided once, at the first migration; later runs follow the database's record.
    storage_flavour: StorageFlavour = "auto"
    # When started as root, the embedded server runs as this unprivileged user
    # (PostgreSQL refuses to run as root). None: the data folder's owner if that
    # is not root, else "nobody".
    embedded_postgres_user: str | None = None
    pool_min_size: Annotated[int, Field(ge=0, le=100)] = 1
    pool_max_size: Annotated[int, Field(ge=1, le=100)] = 4

    @property
    def embedded_postgres_dir(self) -> Path:
        return self.data_dir / "postgres"


def load_settings(**overrides: Any) -> CloudSettings:
    """Settings from the environment, with explicit overrides (CLI options) on top."""
    return CloudSettings(**{k: v for k, v in overrides.items() if v is not None})
