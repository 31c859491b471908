"""``shelflink broker``: the embedded MQTT broker as a foreground process."""

from __future__ import annotations

import argparse
from typing import Any


def register(commands: Any) -> None:
    broker = commands.add_parser(
        "broker", help="run the embedded MQTT broker (the zero-install default)"
    )
    broker.add_argument("--host", default="127.0.0.1")
    broker.add_argument("--port", type=int, default=1883)
    broker.set_defaults(handler=_run)


def _run(args: argparse.Namespace) -> int:
    from shelflink.broker.__main__ import main as broker_main

    return broker_main(["--host", args.host, "--port", str(args.port)])
