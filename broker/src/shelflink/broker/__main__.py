"""``python -m shelflink.broker``: the embedded broker as a foreground process.

Prints ``listening mqtt://HOST:PORT`` on stdout once it accepts connections (the only
line it writes there, so a parent can read it to learn the port when given ``--port 0``)
and exits with status 0 on SIGTERM or SIGINT.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import signal
import sys
from collections.abc import Sequence

from shelflink.broker.embedded import LOCALHOST, EmbeddedBroker
from shelflink.broker.errors import BrokerStartError
from shelflink.broker.process import READY_PREFIX


def _user(text: str) -> tuple[str, str]:
    name, sep, password = text.partition(":")
    if not sep or not name:
        raise argparse.ArgumentTypeError("expected NAME:PASSWORD")
    return name, password


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m shelflink.broker",
        description="Run Shelflink's embedded MQTT 3.1.1 broker in the foreground.",
    )
    parser.add_argument("--host", default=LOCALHOST, help="address to bind (default %(default)s)")
    parser.add_argument("--port", type=int, default=1883, help="0 picks a free port")
    parser.add_argument(
        "--user",
        type=_user,
        action="append",
        default=[],
        metavar="NAME:PASSWORD",
        help="accept this user (repeatable); visible in the process list, so for tests only",
    )
    parser.add_argument(
        "--no-anonymous", action="store_true", help="refuse clients without a username"
    )
    parser.add_argument("--max-packet-bytes", type=int, default=None)
    parser.add_argument("--session-expiry-s", type=int, default=None)
    parser.add_argument(
        "--log-level",
        default="WARNING",
        choices=["DEBUG", "INFO", "WARNING", "ERROR"],
        help="for Shelflink's messages; amqtt's own stay at ERROR",
    )
    return parser


async def serve(args: argparse.Namespace) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        # Not available on Windows' event loop; Ctrl-C still ends asyncio.run there.
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(signum, stop.set)
    async with EmbeddedBroker(
        args.host,
        args.port,
        users=dict(args.user),
        allow_anonymous=not args.no_anonymous,
        max_packet_bytes=args.max_packet_bytes,
        session_expiry_s=args.session_expiry_s,
    ) as broker:
        print(f"{READY_PREFIX}{broker.url}", flush=True)
        await stop.wait()


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(
        level=args.log_level,
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    try:
        asyncio.run(serve(args))
    except (BrokerStartError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
