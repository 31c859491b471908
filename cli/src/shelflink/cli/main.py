"""The ``shelflink`` command: one entry to every component.

Each subcommand lives in its own module and registers itself here; imports of
heavy components happen inside the handlers, so ``shelflink --help`` is fast
and a gateway install without the cloud still runs its own commands.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence

from shelflink.cli import (
    bench_commands,
    broker_commands,
    cloud_commands,
    demo_command,
    edge_commands,
    gateway_commands,
    sim_commands,
)
from shelflink.cli._version import __version__


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="shelflink",
        description="Shelflink: shelf truth to dealer replenishment.",
    )
    parser.add_argument("--version", action="version", version=f"shelflink {__version__}")
    parser.add_argument(
        "--log-level", default="WARNING", help="DEBUG, INFO, WARNING (default) or ERROR"
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    demo_command.register(commands)
    sim_commands.register(commands)
    gateway_commands.register(commands)
    edge_commands.register(commands)
    cloud_commands.register(commands)
    cloud_commands.register_verify(commands)
    broker_commands.register(commands)
    bench_commands.register(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> None:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=args.log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s %(message)s",
        stream=sys.stderr,
    )
    code: int = args.handler(args)
    sys.exit(code)


if __name__ == "__main__":
    main()
