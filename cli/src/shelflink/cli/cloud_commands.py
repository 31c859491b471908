"""``shelflink cloud …`` and ``shelflink verify``."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import signal
import sys
from pathlib import Path
from typing import Any

from shelflink.cli.options import add_broker_options
from shelflink.cloud.migrations import MigrationError


def register(commands: Any) -> None:
    cloud = commands.add_parser("cloud", help="the cloud: storage, ingest")
    sub = cloud.add_subparsers(dest="cloud_command", required=True, metavar="COMMAND")

    migrate = sub.add_parser("migrate", help="apply the database migrations")
    migrate.set_defaults(handler=_migrate)

    retention = sub.add_parser(
        "retention", help="drop raw readings and minute rollups older than the retention"
    )
    retention.add_argument(
        "--days", type=int, default=None, help="default: $SHELFLINK_RETENTION_DAYS or 90"
    )
    retention.set_defaults(handler=_retention)

    ingest = sub.add_parser("ingest", help="one ingest worker: cloud broker → PostgreSQL")
    add_broker_options(ingest, required=True)
    ingest.add_argument("--worker-id", default="ingest-1", help="its MQTT client id")
    ingest.add_argument(
        "--shared",
        choices=("auto", "yes", "no"),
        default="auto",
        help="MQTT 5 shared subscription (auto: when the broker speaks MQTT 5)",
    )
    ingest.set_defaults(handler=_ingest)

    gateway = sub.add_parser("gateway", help="the gateway registry")
    gsub = gateway.add_subparsers(dest="gateway_command", required=True, metavar="COMMAND")
    reg = gsub.add_parser("register", help="allow a gateway to send for a store")
    reg.add_argument("--gateway-id", required=True)
    reg.add_argument("--store-id", required=True)
    reg.set_defaults(handler=_register)


def register_verify(commands: Any) -> None:
    verify = commands.add_parser(
        "verify", help="compare a simulator manifest with the database (exit 1 on loss)"
    )
    verify.add_argument("--manifest", type=Path, required=True)
    verify.set_defaults(handler=_verify)


def _settings() -> Any:
    from shelflink.cloud.settings import load_settings

    return load_settings()


def _migrate(args: argparse.Namespace) -> int:
    from shelflink.cloud.database import connect, open_database
    from shelflink.cloud.migrations import migrate

    async def main() -> list[str]:
        async with open_database(_settings()) as url:
            conn = await connect(url)
            try:
                return await migrate(conn)
            finally:
                await conn.close()

    print(json.dumps({"applied": asyncio.run(main())}))
    return 0


def _retention(args: argparse.Namespace) -> int:
    from shelflink.cloud.database import connect, open_database
    from shelflink.cloud.partitions import apply_retention

    settings = _settings()
    days = args.days or settings.retention_days

    async def main() -> list[str]:
        async with open_database(settings) as url:
            conn = await connect(url)
            try:
                return await apply_retention(conn, days)
            finally:
                await conn.close()

    try:
        dropped = asyncio.run(main())
    except MigrationError as exc:
        print(f"shelflink cloud retention: {exc}", file=sys.stderr)
        return 2
    print(json.dumps({"retention_days": days, "dropped": dropped}))
    return 0


def _register(args: argparse.Namespace) -> int:
    from shelflink.cloud.database import connect, open_database
    from shelflink.cloud.writer import register_gateway

    async def main() -> None:
        async with open_database(_settings()) as url:
            conn = await connect(url)
            try:
                await register_gateway(conn, args.gateway_id, args.store_id)
            finally:
                await conn.close()

    asyncio.run(main())
    print(json.dumps({"gateway_id": args.gateway_id, "store_id": args.store_id}))
    return 0


def _ingest(args: argparse.Namespace) -> int:
    from shelflink.cloud.database import open_database
    from shelflink.cloud.ingest import IngestOptions, IngestWorker
    from shelflink.gateway.logs import configure_logging

    configure_logging("json")
    shared = {"auto": None, "yes": True, "no": False}[args.shared]

    async def main() -> None:
        async with open_database(_settings()) as url:
            worker = IngestWorker(
                args.broker, url, IngestOptions(worker_id=args.worker_id, shared=shared)
            )
            task = asyncio.create_task(worker.run())
            loop = asyncio.get_running_loop()
            for sig in (signal.SIGTERM, signal.SIGINT):
                loop.add_signal_handler(sig, task.cancel)
            await worker.connected.wait()
            print(json.dumps({"ready": True, "shared": worker.shared}), flush=True)
            with contextlib.suppress(asyncio.CancelledError):
                await task

    asyncio.run(main())
    return 0


def _verify(args: argparse.Namespace) -> int:
    from shelflink.cloud.database import connect, open_database
    from shelflink.cloud.migrations import storage_flavour
    from shelflink.cloud.verify import verify

    manifest = json.loads(args.manifest.read_text())

    async def main() -> dict[str, Any]:
        async with open_database(_settings()) as url:
            conn = await connect(url)
            try:
                await storage_flavour(conn)  # a clear error when nothing was migrated
                return await verify(conn, manifest)
            finally:
                await conn.close()

    try:
        report = asyncio.run(main())
    except MigrationError as exc:
        print(f"shelflink verify: {exc}", file=sys.stderr)
        return 2
    print(json.dumps(report))
    if report["missing"] or report["duplicates"]:
        logging.getLogger("shelflink.verify").error(
            "%d missing, %d duplicated", report["missing"], report["duplicates"]
        )
        return 1
    return 0
