"""``shelflink gateway run`` and ``shelflink gateway config``."""

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


def register(commands: Any) -> None:
    gateway = commands.add_parser("gateway", help="the store gateway")
    sub = gateway.add_subparsers(dest="gateway_command", required=True, metavar="COMMAND")

    run = sub.add_parser("run", help="run one store's gateway until SIGTERM or Ctrl-C")
    run.add_argument("--config", type=Path, required=True, help="the store's TOML file")
    run.set_defaults(handler=_run)

    config = sub.add_parser(
        "config", help="write gateway TOML files for simulated stores (seeded like `sim run`)"
    )
    config.add_argument("--stores", type=int, default=1)
    config.add_argument("--seed", type=int, default=1)
    add_broker_options(config, required=True)
    config.add_argument("--out", type=Path, required=True, help="folder for <store>.toml files")
    config.add_argument("--state-dir", type=Path, help="buffers and sequences (default: --out)")
    config.add_argument("--health-port", type=int, default=0, help="0 picks a free port")
    config.set_defaults(handler=_config)


def _run(args: argparse.Namespace) -> int:
    from shelflink.gateway import ConfigError, Gateway, load_config
    from shelflink.gateway.logs import configure_logging

    try:
        config = load_config(args.config)
    except ConfigError as exc:
        print(f"shelflink gateway: {exc}", file=sys.stderr)
        return 2
    configure_logging(config.log_format)

    async def main() -> None:
        gateway = Gateway(config)
        task = asyncio.create_task(gateway.run())
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, task.cancel)
        await gateway.ready.wait()
        logging.getLogger("shelflink.gateway").info(
            "gateway %s for store %s running; health on port %d",
            config.gateway_id, config.store_id, gateway.health_port,
        )  # fmt: skip
        print(json.dumps({"ready": True, "health_port": gateway.health_port}), flush=True)
        with contextlib.suppress(asyncio.CancelledError):
            await task

    asyncio.run(main())
    return 0


def _config(args: argparse.Namespace) -> int:
    import tomli_w

    from shelflink.cli.store_configs import gateway_config, sim_layouts, to_toml_dict

    state_dir = (args.state_dir or args.out).resolve()
    args.out.mkdir(parents=True, exist_ok=True)
    layouts = sim_layouts(args.stores, args.seed)
    written = []
    for layout in layouts:
        config = gateway_config(layout, args.broker, state_dir, health_port=args.health_port)
        path = args.out / f"{layout.store_id}.toml"
        path.write_bytes(tomli_w.dumps(to_toml_dict(config)).encode())
        written.append(str(path))
    print(json.dumps({"configs": written}))
    return 0
