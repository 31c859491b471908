"""``shelflink cloud seed --demo``: master data, serial shipments, sales history and API
keys for the simulated stores, in the configured database."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from datetime import UTC, datetime, timedelta
from typing import Any


def register(cloud_subparsers: Any) -> None:
    """Add ``seed`` under ``shelflink cloud``."""
    seed = cloud_subparsers.add_parser(
        "seed", help="seed master data for the simulated stores (brand, dealers, planograms…)"
    )
    seed.add_argument(
        "--demo",
        action="store_true",
        required=True,
        help="the demo's dealers and the stores of `shelflink sim run` with the same seed",
    )
    seed.add_argument("--stores", type=int, default=3, help="simulated stores (default 3)")
    seed.add_argument("--seed", type=int, default=1, help="simulation seed (default 1)")
    seed.add_argument(
        "--history-days",
        type=int,
        default=28,
        metavar="DAYS",
        help="days of daily sales history before today to import (28; 0: none)",
    )
    seed.set_defaults(handler=seed_command)


def seed_command(args: argparse.Namespace) -> int:
    """Seed, then print one JSON object (the keys issued now are in it, shown once)."""
    from shelflink.cloud.api.serve import SchemaMissing

    if args.stores < 1 or args.history_days < 0:
        print("shelflink cloud seed: --stores must be >= 1, --history-days >= 0", file=sys.stderr)
        return 2
    try:
        summary = asyncio.run(_seed(args.stores, args.seed, args.history_days))
    except SchemaMissing as exc:
        print(f"shelflink cloud seed: {exc}", file=sys.stderr)
        return 2
    print(json.dumps(summary))
    return 0


async def _seed(stores: int, seed: int, history_days: int) -> dict[str, Any]:
    from shelflink.cli.demo_history import import_sales_history
    from shelflink.cli.demo_seed import (
        LEAD_TIME_DAYS,
        issue_demo_keys,
        seed_demo,
        seed_serial_shipments,
    )
    from shelflink.cli.store_configs import sim_layouts
    from shelflink.cloud.api.serve import check_schema
    from shelflink.cloud.database import connect, open_database
    from shelflink.cloud.settings import load_settings

    layouts = sim_layouts(stores, seed)
    now = datetime.now(UTC)
    async with open_database(load_settings()) as url:
        await check_schema(url)
        async with await connect(url) as conn:
            seeded = await seed_demo(conn, layouts)
            # The opening stock was shipped a lead time before the stores start selling.
            serials = await seed_serial_shipments(
                conn, layouts, seed=seed, shipped_at=now - timedelta(days=LEAD_TIME_DAYS)
            )
            history = await import_sales_history(
                conn, layouts, seed=seed, until=now, days=history_days
            )
            keys = await issue_demo_keys(conn, replace=False)
    return {
        **seeded.as_dict(),
        # What the seeding covers, not what it added: the same on every run.
        "serials": serials.serials,
        "diversion": serials.diversion.as_dict() if serials.diversion else None,
        "history_rows_new": history,
        # Shown once: a second seed issues none while these are valid.
        "api_keys": keys.as_dict(),
    }
