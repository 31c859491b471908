"""``shelflink sim run`` and ``shelflink sim dataset``."""

from __future__ import annotations

import argparse
import asyncio
import json
from pathlib import Path
from typing import Any

from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

from shelflink.cli.options import add_broker_options, add_store_options, default_state_dir


def register(commands: Any) -> None:
    sim = commands.add_parser("sim", help="simulated stores: live publishing or datasets")
    sub = sim.add_subparsers(dest="sim_command", required=True, metavar="COMMAND")

    run = sub.add_parser("run", help="publish simulated stores to a broker, write a manifest")
    add_store_options(run, stores=3, speed=60.0)
    run.add_argument("--duration", type=float, default=60.0, help="wall seconds (default 60)")
    add_broker_options(run, required=True)
    run.add_argument("--manifest", type=Path, help="write the manifest JSON here at exit")
    run.add_argument(
        "--state-dir",
        type=Path,
        default=None,
        help="device sequence files (default: $SHELFLINK_STATE_DIR or ./var, under sim/)",
    )
    run.set_defaults(handler=_run)

    dataset = sub.add_parser("dataset", help="write a labelled Parquet dataset (no broker)")
    dataset.add_argument("--stores", type=int, default=4)
    dataset.add_argument("--days", type=float, default=7.0)
    dataset.add_argument("--seed", type=int, default=1)
    dataset.add_argument("--out", type=Path, required=True, help="output folder")
    dataset.add_argument(
        "--fault-rate", type=float, default=0.0, help="random sensor faults per device-day"
    )
    dataset.add_argument(
        "--profile-mix",
        type=_profile_mix,
        default=None,
        metavar="NAME=WEIGHT,...",
        help="store profile weights, e.g. kiosk=1,convenience=1 "
        "(default: kiosk 1, convenience 2, supermarket 1)",
    )
    dataset.set_defaults(handler=_dataset)


def _run(args: argparse.Namespace) -> int:
    from shelflink.sim.run import run_stores

    state_dir = (args.state_dir or default_state_dir()) / "sim"
    manifest = asyncio.run(
        run_stores(
            stores=args.stores,
            seed=args.seed,
            speed=args.speed,
            duration_s=args.duration,
            broker_url=args.broker,
            manifest_path=args.manifest,
            state_dir=state_dir,
        )
    )
    print(json.dumps({"devices": len(manifest.devices), "published": manifest.total}))
    return 0


def progress_bar() -> Progress:
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        TextColumn("{task.percentage:>3.0f}%"),
        TimeRemainingColumn(),
    )


def _dataset(args: argparse.Namespace) -> int:
    from shelflink.sim import write_dataset

    with progress_bar() as bar:
        task = bar.add_task(f"simulating {args.stores} stores × {args.days:g} days", total=None)

        def progress(done: int, total: int) -> None:
            bar.update(task, completed=done, total=total)

        summary = write_dataset(
            args.stores,
            args.days,
            args.seed,
            args.out,
            fault_rate=args.fault_rate,
            profile_mix=args.profile_mix,
            progress=progress,
        )
    print(
        json.dumps(
            {
                "out": str(summary.out),
                "stores": summary.stores,
                "days": summary.days,
                "seed": summary.seed,
                "rows": summary.rows,
            }
        )
    )
    return 0


def _profile_mix(text: str) -> dict[str, float]:
    """``kiosk=1,convenience=2`` → ``{"kiosk": 1.0, "convenience": 2.0}``."""
    from shelflink.sim import PROFILES

    mix: dict[str, float] = {}
    for part in text.split(","):
        name, _, weight = part.strip().partition("=")
        if name not in PROFILES:
            known = ", ".join(PROFILES)
            raise argparse.ArgumentTypeError(f"unknown profile {name!r}; one of {known}")
        try:
            mix[name] = float(weight) if weight else 1.0
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"weight of {name} is not a number: {weight!r}"
            ) from None
    return mix
