"""``shelflink cloud plan`` and ``shelflink cloud channel-scan``: replenishment runs and
channel control against the configured database."""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import sys
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any

SCHEMA_HINT = "the database has no replenishment tables: run `shelflink cloud migrate`"


def register(cloud_subparsers: Any) -> None:
    """Add ``plan`` and ``channel-scan`` under ``shelflink cloud``."""
    plan = cloud_subparsers.add_parser(
        "plan", help="plan replenishment: suggested orders for every dealer (or those named)"
    )
    plan.add_argument(
        "--dealer", action="append", default=None, metavar="ID",
        help="plan this dealer only (repeat for several); default: every dealer",
    )  # fmt: skip
    plan.add_argument(
        "--every", type=float, default=None, metavar="SECONDS",
        help="keep planning every SECONDS, and at once when a stock-out risk is raised "
        "(one JSON line per run); default: one run",
    )  # fmt: skip
    plan.add_argument(
        "--history-days", type=int, default=28, metavar="DAYS",
        help="days of demand history the forecast reads (28)",
    )  # fmt: skip
    plan.add_argument(
        "--service-level", type=float, default=0.95,
        help="cycle service level for safety stock, in [0.5, 1) (0.95)",
    )  # fmt: skip
    plan.add_argument(
        "--no-channel-scan", action="store_true",
        help="with --every: do not run channel control on each scheduled run",
    )  # fmt: skip
    plan.set_defaults(handler=plan_command)

    scan = cloud_subparsers.add_parser(
        "channel-scan", help="channel control: diversion and price alerts from new sales"
    )
    scan.add_argument(
        "--since", type=datetime.fromisoformat, default=None, metavar="ISO_TIME",
        help="scan sales that arrived since then (with a zone); default: since the last scan",
    )  # fmt: skip
    scan.set_defaults(handler=channel_scan_command)


def plan_command(args: argparse.Namespace) -> int:
    """One planning run (prints one JSON object) or, with ``--every``, the schedule."""
    from shelflink.cloud.replenishment import PlanningOptions

    if args.history_days < 1 or not 0.5 <= args.service_level < 1.0:
        print("shelflink cloud plan: --history-days ≥ 1, --service-level in [0.5, 1)",
              file=sys.stderr)  # fmt: skip
        return 2
    options = PlanningOptions(history_days=args.history_days, service_level=args.service_level)
    if args.every is not None:
        return _schedule(args, options)

    async def work(url: str) -> dict[str, Any]:
        from shelflink.cloud.database import connect
        from shelflink.cloud.replenishment import run_planning

        async with await connect(url) as conn:
            summary = await run_planning(conn, dealer_ids=args.dealer, options=options)
        return summary.as_dict()

    return _run("plan", work)


def channel_scan_command(args: argparse.Namespace) -> int:
    """One channel-control scan; prints what it read and the alerts it created."""

    async def work(url: str) -> dict[str, Any]:
        from shelflink.cloud.channel_control import scan_channel
        from shelflink.cloud.database import connect

        if args.since is not None and args.since.tzinfo is None:
            raise ValueError("--since needs a time zone, e.g. 2024-05-01T00:00:00+00:00")
        async with await connect(url) as conn:
            return (await scan_channel(conn, since=args.since)).as_dict()

    return _run("channel-scan", work)


def _schedule(args: argparse.Namespace, options: Any) -> int:
    from shelflink.cloud.plan_scheduler import ScheduleOptions, run_schedule

    if args.every <= 0:
        print("shelflink cloud plan: --every must be above 0", file=sys.stderr)
        return 2
    schedule = ScheduleOptions(
        every_s=args.every, channel_scan=not args.no_channel_scan, planning=options
    )

    def report(line: dict[str, Any]) -> None:
        print(json.dumps(line), flush=True)

    async def work(url: str) -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        try:
            await run_schedule(url, schedule, report, stop=stop, dealer_ids=args.dealer)
        finally:
            for sig in (signal.SIGTERM, signal.SIGINT):
                loop.remove_signal_handler(sig)

    return _run("plan", work, prints=False)


def _run(command: str, work: Callable[[str], Awaitable[Any]], *, prints: bool = True) -> int:
    """``work(url)`` on the configured database (the embedded one when none is set)."""
    from shelflink.cloud.database import connect, open_database
    from shelflink.cloud.settings import load_settings

    class SchemaMissing(RuntimeError):
        pass

    async def main() -> Any:
        async with open_database(load_settings()) as url:
            async with await connect(url) as conn:
                cur = await conn.execute("SELECT to_regclass('planning_runs') IS NOT NULL")
                row = await cur.fetchone()
            if row is None or not row[0]:
                raise SchemaMissing(SCHEMA_HINT)
            return await work(url)

    try:
        result = asyncio.run(main())
    except (SchemaMissing, ValueError) as exc:
        print(f"shelflink cloud {command}: {exc}", file=sys.stderr)
        return 2
    if prints:
        print(json.dumps(result))
    return 0
