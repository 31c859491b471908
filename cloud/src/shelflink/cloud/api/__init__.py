"""The dealer API (FastAPI, under ``/api/v1``): master data, orders and their
workflow, alerts and API keys, with per-key authorisation, idempotent POSTs, rate
limits and problem-details errors."""

from __future__ import annotations

from shelflink.cloud.api.app import API_PREFIX, create_app
from shelflink.cloud.api.state import ApiOptions

__all__ = ["API_PREFIX", "ApiOptions", "create_app"]
