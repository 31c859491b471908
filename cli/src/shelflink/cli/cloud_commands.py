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

from shelflink.cli import plan_commands, seed_commands, webhook_commands
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
    ingest.add_argument(
        "--retention-every",
        type=float,
        default=6 * 3600.0,
        metavar="SECONDS",
        help="apply the retention ($SHELFLINK_RETENTION_DAYS) a minute after start and then"
        " every SECONDS, one worker at a time (default 21600: 6 hours; 0: never)",
    )
    ingest.set_defaults(handler=_ingest)

    gateway = sub.add_parser("gateway", help="the gateway registry")
    gsub = gateway.add_subparsers(dest="gateway_command", required=True, metavar="COMMAND")
    reg = gsub.add_parser("register", help="allow a gateway to send for a store")
    reg.add_argument("--gateway-id", required=True)
    reg.add_argument("--store-id", required=True)
    reg.set_defaults(handler=_register)

    _register_dealer(sub)
    _register_serve(sub)
    plan_commands.register(sub)
    seed_commands.register(sub)
    webhook_commands.register(sub)


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
    if not args.retention_every >= 0:  # NaN too
        print("shelflink cloud ingest: --retention-every must be 0 or more", file=sys.stderr)
        return 2
    settings = _settings()
    options = IngestOptions(
        worker_id=args.worker_id,
        shared=shared,
        retention_every_s=args.retention_every,
        retention_days=settings.retention_days,
    )

    async def main() -> None:
        async with open_database(settings) as url:
            worker = IngestWorker(args.broker, url, options)
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


# -- shelflink cloud dealer … / serve: the dealer API ------------------------------------


def _register_dealer(sub: Any) -> None:
    dealer = sub.add_parser("dealer", help="dealers and their API keys")
    dsub = dealer.add_subparsers(dest="dealer_command", required=True, metavar="COMMAND")

    create = dsub.add_parser("create", help="create a dealer and its first API key")
    create.add_argument("--name", required=True)
    create.add_argument(
        "--dealer-id", default=None, help="default: the name in lower case, words joined by -"
    )
    create.add_argument(
        "--territory", default="", metavar="REGIONS", help="region codes, comma-separated"
    )
    create.add_argument("--currency", default="EUR")
    create.add_argument(
        "--auto-approve-below",
        type=int,
        default=0,
        metavar="MINOR",
        help="orders worth less (minor units) are approved at creation; 0 (default): none",
    )
    create.set_defaults(handler=_dealer_create)

    key = dsub.add_parser("key", help="issue another API key (shown once)")
    key.add_argument("dealer_id", nargs="?", metavar="DEALER_ID")
    key.add_argument(
        "--operator", action="store_true", help="a brand operator's key (sees every dealer)"
    )
    key.add_argument("--label", default="", help="a note to recognise the key by")
    key.set_defaults(handler=_dealer_key)

    listing = dsub.add_parser("list", help="the dealers, as JSON")
    listing.set_defaults(handler=_dealer_list)

    revoke = dsub.add_parser("revoke", help="revoke an API key for good")
    revoke.add_argument("key_id", metavar="KEY_ID", help="the part after slk_ and before _")
    revoke.set_defaults(handler=_dealer_revoke)


def _register_serve(sub: Any) -> None:
    serve = sub.add_parser("serve", help="the dealer API (HTTP, docs at /docs)")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8080, help="0: any free port")
    serve.add_argument(
        "--rate", type=float, default=20.0, help="requests per second per API key (20)"
    )
    serve.add_argument("--burst", type=int, default=40, help="burst per API key (40)")
    serve.add_argument(
        "--rate-limit-store",
        choices=("database", "process"),
        default="database",
        help="where the buckets live: database (shared by every API process; the default)"
        " or process (in memory: N processes allow N times the rate)",
    )
    serve.set_defaults(handler=_serve)


def _dealer_slug(name: str) -> str:
    import re

    return re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")[:64] or "dealer"


def _with_dealer_schema(command: str, work: Any) -> Any:
    """Run ``work(conn)`` on the configured database; None after printing why not."""
    from shelflink.cloud.api.serve import SchemaMissing, check_schema
    from shelflink.cloud.database import connect, open_database

    async def main() -> Any:
        async with open_database(_settings()) as url:
            await check_schema(url)
            conn = await connect(url)
            try:
                return await work(conn)
            finally:
                await conn.close()

    try:
        return asyncio.run(main())
    except (SchemaMissing, LookupError, ValueError) as exc:
        print(f"shelflink cloud dealer {command}: {exc}", file=sys.stderr)
        return None


def _dealer_create(args: argparse.Namespace) -> int:
    from shelflink.cloud.api_keys import issue_key
    from shelflink.cloud.database import transaction
    from shelflink.cloud.master_data import get_dealer, upsert_dealer
    from shelflink.cloud.master_data_models import DealerChanges

    dealer_id = args.dealer_id or _dealer_slug(args.name)
    territory = [r.strip() for r in args.territory.split(",") if r.strip()]

    async def work(conn: Any) -> dict[str, Any]:
        changes = DealerChanges(
            name=args.name,
            territory=territory,
            currency=args.currency,
            auto_approve_below_minor=args.auto_approve_below,
        )
        async with transaction(conn):
            if await get_dealer(conn, dealer_id) is not None:
                raise ValueError(f"dealer {dealer_id} exists; `dealer key {dealer_id}` adds a key")
            await upsert_dealer(conn, dealer_id, changes)
            issued = await issue_key(conn, dealer_id)
        return {"dealer_id": dealer_id, "api_key": issued.api_key, "key_id": issued.key_id}

    result = _with_dealer_schema("create", work)
    if result is None:
        return 2
    print(json.dumps(result))
    return 0


def _dealer_key(args: argparse.Namespace) -> int:
    from shelflink.cloud.api_keys import issue_key

    if args.operator == (args.dealer_id is not None):
        print("shelflink cloud dealer key: give either DEALER_ID or --operator", file=sys.stderr)
        return 2

    async def work(conn: Any) -> dict[str, Any]:
        issued = await issue_key(conn, args.dealer_id, label=args.label)
        if issued.dealer_id is None:
            return {"operator": True, "api_key": issued.api_key, "key_id": issued.key_id}
        return {"dealer_id": issued.dealer_id, "api_key": issued.api_key, "key_id": issued.key_id}

    result = _with_dealer_schema("key", work)
    if result is None:
        return 2
    print(json.dumps(result))
    return 0


def _dealer_list(args: argparse.Namespace) -> int:
    from shelflink.cloud.master_data import list_dealers

    async def work(conn: Any) -> list[dict[str, Any]]:
        return [d.model_dump(mode="json") for d in await list_dealers(conn)]

    result = _with_dealer_schema("list", work)
    if result is None:
        return 2
    print(json.dumps(result))
    return 0


def _dealer_revoke(args: argparse.Namespace) -> int:
    from shelflink.cloud.api_keys import revoke_key

    async def work(conn: Any) -> dict[str, Any]:
        if not await revoke_key(conn, args.key_id):
            raise LookupError(f"no key {args.key_id}")
        return {"key_id": args.key_id, "revoked": True}

    result = _with_dealer_schema("revoke", work)
    if result is None:
        return 2
    print(json.dumps(result))
    return 0


def _serve(args: argparse.Namespace) -> int:
    from shelflink.cloud.api import ApiOptions
    from shelflink.cloud.api.serve import SchemaMissing, serve
    from shelflink.cloud.database import open_database

    settings = _settings()
    options = ApiOptions(
        rate_per_s=args.rate,
        burst=args.burst,
        rate_limit_store=args.rate_limit_store,
        pool_min_size=settings.pool_min_size,
        pool_max_size=settings.pool_max_size,
    )

    def ready(url: str) -> None:
        print(json.dumps({"ready": True, "url": url, "docs": f"{url}/docs"}), flush=True)

    async def main() -> None:
        async with open_database(settings) as database_url:
            await serve(
                database_url, host=args.host, port=args.port, options=options, on_ready=ready
            )

    try:
        asyncio.run(main())
    except SchemaMissing as exc:
        print(f"shelflink cloud serve: {exc}", file=sys.stderr)
        return 2
    return 0
