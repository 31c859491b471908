"""``shelflink cloud webhooks``: the dispatcher that delivers order events to dealers."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import ipaddress
import json
import signal
from typing import Any


def register(cloud_subparsers: Any) -> None:
    webhooks = cloud_subparsers.add_parser(
        "webhooks",
        help="deliver order events to the dealers' webhooks (signed, retried) until stopped",
    )
    webhooks.add_argument(
        "--max-attempts", type=int, default=10, help="attempts before a delivery is dead"
    )
    webhooks.add_argument(
        "--allow-private-targets",
        action="store_true",
        help="also deliver to loopback and private addresses (tests, a lab)",
    )
    webhooks.add_argument(
        "--allow-network",
        dest="allowed_networks",
        action="append",
        type=ipaddress.ip_network,
        default=[],
        metavar="CIDR",
        help="also deliver to this private network, e.g. 10.20.0.0/16 (repeatable); "
        "every other private address stays refused",
    )
    webhooks.set_defaults(handler=_webhooks)


def _webhooks(args: argparse.Namespace) -> int:
    from shelflink.cloud.database import open_database
    from shelflink.cloud.settings import load_settings
    from shelflink.cloud.webhooks_dispatcher import DispatchOptions, WebhookDispatcher

    options = DispatchOptions(
        max_attempts=args.max_attempts,
        allow_private_targets=args.allow_private_targets,
        allowed_networks=tuple(args.allowed_networks),
    )

    async def main() -> None:
        async with (
            open_database(load_settings()) as url,
            WebhookDispatcher(url, options) as dispatcher,
        ):
            loop = asyncio.get_running_loop()
            for sig in (signal.SIGTERM, signal.SIGINT):
                loop.add_signal_handler(sig, dispatcher.stop)
            print(json.dumps({"ready": True}), flush=True)
            with contextlib.suppress(asyncio.CancelledError):
                await dispatcher.run()

    asyncio.run(main())
    return 0
