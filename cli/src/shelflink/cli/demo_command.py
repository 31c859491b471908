"""``shelflink demo``: the platform on embedded defaults with simulated stores.

Today: the embedded broker, live simulated stores, one gateway per store
between the devices and the view, and the cloud: an embedded PostgreSQL (or
``SHELFLINK_DATABASE_URL``), migrated, and an ingest worker, to which every
gateway's uplink sends its batches (in the demo one broker plays both the
stores' and the cloud's). Each later component (planner, API) joins the same
TaskGroup in :func:`run_demo`, so the demo grows by adding a task, not by a
second entry point.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import sys
from pathlib import Path
from typing import Any

from shelflink.cli.options import add_broker_options, add_store_options, default_state_dir

REFRESH_S = 0.5


def register(commands: Any) -> None:
    demo = commands.add_parser(
        "demo", help="embedded broker + simulated stores with a live terminal view"
    )
    add_store_options(demo, stores=3, speed=120.0)
    demo.add_argument(
        "--duration", type=float, default=600.0, help="wall seconds to run (default 600)"
    )
    add_broker_options(demo)
    demo.add_argument(
        "--headless",
        action="store_true",
        help="print one summary line per second instead of the live table "
        "(the default when stdout is not a terminal)",
    )
    demo.add_argument("--state-dir", type=Path, default=None)
    demo.set_defaults(handler=_demo)


def _demo(args: argparse.Namespace) -> int:
    headless = args.headless or not sys.stdout.isatty()
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(run_demo(args, headless=headless))
    return 0


def _gateway_views(gateways: list[Any]) -> dict[str, Any]:
    from shelflink.cli.live_view import GatewayView

    views = {}
    for gateway in gateways:
        intake = gateway.intake
        if intake is None:
            continue
        stats = intake.buffer.stats()
        views[gateway.config.store_id] = GatewayView(
            accepted=sum(intake.counters.accepted.values()),
            rejected=sum(intake.counters.rejected.values()),
            buffer_records=stats.records,
            buffer_bytes=stats.bytes,
            high_water=stats.high_water,
            gaps=sum(gateway.gaps_reported.values()),
            in_cloud=gateway.uplink.stats().acked_records if gateway.uplink is not None else 0,
        )
    return views


async def _show(
    live: Any, broker_url: str, headless: bool, done: asyncio.Event, gateways: list[Any]
) -> None:
    from shelflink.cli.live_view import render, summary_line

    if headless:
        while not done.is_set():
            print(summary_line(live.snapshot(), _gateway_views(gateways)), flush=True)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(done.wait(), timeout=1.0)
        return
    from rich.live import Live

    def frame() -> Any:
        return render(live.snapshot(), broker_url, _gateway_views(gateways))

    with Live(frame(), refresh_per_second=4) as screen:
        while not done.is_set():
            screen.update(frame())
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(done.wait(), timeout=REFRESH_S)
        screen.update(frame())


async def run_demo(args: argparse.Namespace, *, headless: bool) -> None:
    from shelflink.broker import EmbeddedBroker
    from shelflink.cli.store_configs import gateway_config
    from shelflink.cloud.database import connect, open_database
    from shelflink.cloud.ingest import IngestOptions, IngestWorker
    from shelflink.cloud.migrations import migrate
    from shelflink.cloud.settings import load_settings
    from shelflink.cloud.writer import register_gateway
    from shelflink.gateway import Gateway
    from shelflink.sim.run import LiveRun

    state_dir: Path = (args.state_dir or default_state_dir()) / "demo"
    async with contextlib.AsyncExitStack() as stack:
        broker_url: str = args.broker
        if not broker_url:
            broker = await stack.enter_async_context(EmbeddedBroker())
            broker_url = broker.url
        live = LiveRun(
            stores=args.stores,
            seed=args.seed,
            speed=args.speed,
            duration_s=args.duration,
            broker_url=broker_url,
            state_dir=state_dir / "devices",
            manifest_path=state_dir / "manifest.json",
        )
        configs = [
            gateway_config(sim.layout, broker_url, state_dir / "gateways", uplink_url=broker_url)
            for sim in live.sims
        ]
        gateways = [Gateway(config) for config in configs]
        settings = load_settings(data_dir=state_dir / "cloud")
        database_url = await stack.enter_async_context(open_database(settings))
        conn = await connect(database_url)
        try:
            await migrate(conn)
            for config in configs:
                await register_gateway(conn, config.gateway_id, config.store_id)
        finally:
            await conn.close()
        # The embedded broker speaks MQTT 3.1.1 only: one worker, plain subscription.
        options = IngestOptions(worker_id="demo-ingest", shared=None if args.broker else False)
        worker = IngestWorker(broker_url, database_url, options)
        done = asyncio.Event()

        async def simulate() -> None:
            try:
                # Devices start once every gateway listens, so nothing is missed.
                async with asyncio.timeout(30):
                    for gateway in gateways:
                        await gateway.ready.wait()
                        assert gateway.southbound is not None
                        await gateway.southbound.connected.wait()
                await live.run()
                # Let the gateways commit what the devices sent last.
                for gateway in gateways:
                    if gateway.intake is not None:
                        await gateway.intake.drain()
            finally:
                done.set()

        async with asyncio.TaskGroup() as tasks:
            ingest_task = tasks.create_task(worker.run())
            gateway_tasks = [tasks.create_task(g.run()) for g in gateways]
            tasks.create_task(simulate())
            tasks.create_task(_show(live, broker_url, headless, done, gateways))
            await done.wait()
            # The devices stopped: give the uplinks a moment to deliver the rest.
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(15):
                    # The buffers have no "empty" event; their stats are in memory.
                    while any(g.uplink and g.intake and g.intake.buffer.stats().records  # noqa: ASYNC110
                              for g in gateways):  # fmt: skip
                        await asyncio.sleep(0.2)
            views = _gateway_views(gateways)
            for task in [*gateway_tasks, ingest_task]:
                task.cancel()
        snapshot = live.snapshot()
        print(
            json.dumps(
                {
                    "stores": len(snapshot.stores),
                    "devices": snapshot.devices,
                    "published": snapshot.published,
                    "gateway_accepted": sum(v.accepted for v in views.values()),
                    "gateway_rejected": sum(v.rejected for v in views.values()),
                    "buffered": sum(v.buffer_records for v in views.values()),
                    "in_cloud": sum(v.in_cloud for v in views.values()),
                    "cloud_rows_new": worker.counters.rows_new,
                    "manifest": str(state_dir / "manifest.json"),
                }
            )
        )
