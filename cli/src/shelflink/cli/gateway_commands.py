"""``shelflink gateway run``, ``gateway config`` and ``gateway replay-held``."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import os
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

    replay = sub.add_parser(
        "replay-held",
        help="send the readings held for a sequence reset again, under the board's new id",
        description="Replay what the gateway held for a device id used twice (docs/gateway.md, "
        "Sequence resets) under the board's new id, oldest first, deleting each held row once "
        "the store broker has acknowledged it. Prints one JSON summary line; exit status 1 "
        "if the replay stopped part way (run it again to resume), 2 if it refused to start.",
    )
    replay.add_argument("--config", type=Path, required=True, help="the store's TOML file")
    replay.add_argument(
        "--device", required=True, metavar="OLD_ID", help="the id whose readings are held"
    )
    replay.add_argument(
        "--as",
        dest="new_id",
        required=True,
        metavar="NEW_ID",
        help="the board's new id, one of the store's [[devices]]",
    )
    replay.add_argument(
        "--dry-run", action="store_true", help="print what would be sent; send and delete nothing"
    )
    replay.add_argument(
        "--broker",
        metavar="URL",
        help="mqtt://[user:pass@]host:port or mqtts://… (default: the config's [broker] url)",
    )
    replay.add_argument(
        "--username", help="MQTT username (default: the URL's, else NEW_ID, as the device's own)"
    )
    replay.add_argument(
        "--password-env",
        metavar="VAR",
        help="the environment variable that holds the password (default: the URL's, if any)",
    )
    replay.add_argument(
        "--ca-file", type=Path, help="server verification (default: the config's [broker] one)"
    )
    replay.add_argument("--cert-file", type=Path, help="the new id's client certificate")
    replay.add_argument("--key-file", type=Path, help="its key")
    replay.set_defaults(handler=_replay_held)


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


def _replay_held(args: argparse.Namespace) -> int:
    from shelflink.cli.held_replay import ReplayRefused, ReplayRequest, replay_held
    from shelflink.device.identity import BrokerAddress, TlsSettings
    from shelflink.device.session import resolve_endpoint
    from shelflink.gateway import ConfigError, load_config

    def refuse(reason: object) -> int:
        print(f"shelflink gateway replay-held: {reason}", file=sys.stderr)
        return 2

    try:
        config = load_config(args.config)
    except ConfigError as exc:
        return refuse(exc)
    endpoint = None
    if not args.dry_run:
        url = args.broker or config.broker.url
        try:
            address = BrokerAddress.parse(url)
        except ValueError as exc:
            return refuse(exc)
        password = address.password
        if args.password_env is not None:
            password = os.environ.get(args.password_env)
            if password is None:
                return refuse(f"--password-env names {args.password_env}, which is not set")
        ca_file = args.ca_file or (config.broker.ca_file if args.broker is None else None)
        tls = None
        if address.tls or ca_file or args.cert_file:
            tls = TlsSettings(ca_file, args.cert_file, args.key_file)
        try:
            endpoint = resolve_endpoint(
                url,
                username=args.username or address.username or args.new_id,
                password=password,
                tls=tls,
            )
        except OSError as exc:  # an unreadable certificate or key
            return refuse(exc)
    request = ReplayRequest(config, args.device, args.new_id, endpoint, f"{args.new_id}-replay")
    try:
        summary = asyncio.run(replay_held(request, sys.stdout, sys.stderr))
    except ReplayRefused as exc:
        return refuse(exc)
    except KeyboardInterrupt:
        print(
            "shelflink gateway replay-held: interrupted; acknowledged readings are deleted, "
            "run it again to send the rest",
            file=sys.stderr,
        )
        return 130
    print(json.dumps(summary), flush=True)
    if "error" in summary:
        print(
            f"shelflink gateway replay-held: stopped: {summary['error']}; nothing unacknowledged "
            "was deleted, run it again to resume",
            file=sys.stderr,
        )
        return 1
    return 0
