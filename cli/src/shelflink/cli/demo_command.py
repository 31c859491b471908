"""``shelflink demo``: the platform on embedded defaults with simulated stores.

The embedded broker, live simulated stores, one gateway per store between
the devices and the view, and the cloud: an embedded PostgreSQL (or
``SHELFLINK_DATABASE_URL``), migrated and seeded with the stores' master data
and sales history, an ingest worker to which every gateway's uplink sends its
batches (in the demo one broker plays both the stores' and the cloud's), the
replenishment planner on the simulated clock, the dealer API on a loopback
port, the demo dealers, who work the orders through the workflow and deliver
into the simulated stores, and channel control, which finds a staged diversion
and a staged price violation in the sales. The stores' own standing orders are
off: what the cloud orders is all they get. Every component is a task of the
same TaskGroup in :func:`run_demo`, so the demo grows by adding a task, not by
a second entry point.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import sys
from collections import deque
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from shelflink.cli.options import add_broker_options, add_store_options, default_state_dir

REFRESH_S = 0.5
NOTICES_SHOWN = 12  # edge alerts under the table
MOVES_SHOWN = 12  # order moves under the alerts
CHANNEL_ALERTS_SHOWN = 8  # channel-control alerts under the orders
# 120x: a wall minute is two simulated hours, so within a minute or two the
# first orders appear and are delivered (DealerPace). Faster runs fall behind:
# everything runs in this one process, and at 240x three stores (one of them a
# supermarket) outrun the gateways on a busy two-core machine.
DEFAULT_SPEED = 120.0


def register(commands: Any) -> None:
    demo = commands.add_parser(
        "demo", help="embedded broker + simulated stores with a live terminal view"
    )
    add_store_options(demo, stores=3, speed=DEFAULT_SPEED)
    demo.add_argument(
        "--duration", type=float, default=600.0, help="wall seconds to run (default 600)"
    )
    demo.add_argument(
        "--api-port",
        type=int,
        default=0,
        help="loopback port of the dealer API (default 0: any free port; the URL is printed)",
    )
    add_broker_options(demo)
    demo.add_argument(
        "--headless",
        action="store_true",
        help="print one summary line per second instead of the live table "
        "(the default when stdout is not a terminal)",
    )
    demo.add_argument(
        "--no-faults",
        action="store_true",
        help="do not stage the simulator's faults (a fridge door left ajar, a failing "
        "compressor, tills selling one SKU below its minimum resale price)",
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
            **_edge_view(gateway.edge),
        )
    return views


def _edge_view(edge: Any) -> dict[str, Any]:
    if edge is None:
        return {}
    from shelflink.edge.lane_alerts import AlertKind

    active = edge.alerts.active()
    return {
        "at_risk": active[AlertKind.STOCKOUT_RISK],
        "edge_out": active[AlertKind.OUT_OF_STOCK],
        "cold_alarms": len(edge.cold_chain.active()),
        "model": edge.model.info.version if edge.model is not None else None,
    }


def _edge_alert_totals(gateways: list[Any]) -> dict[str, int]:
    """Alerts raised by all edges during the run, by kind."""
    totals: dict[str, int] = {}
    for gateway in gateways:
        if gateway.edge is None:
            continue
        for (kind, state), n in gateway.edge.counters.alerts.items():
            if state == "raised":
                totals[kind] = totals.get(kind, 0) + n
    return dict(sorted(totals.items()))


def _new_notices(gateways: list[Any], seen: dict[str, int]) -> list[Any]:
    """Edge notices not shown before, oldest first; ``seen`` remembers per store."""
    from shelflink.cli.live_view import NoticeView

    fresh = []
    for gateway in gateways:
        edge = gateway.edge
        if edge is None:
            continue
        store = gateway.config.store_id
        total = edge.notices_total
        new = min(total - seen.get(store, 0), len(edge.recent))
        seen[store] = total
        for notice in list(edge.recent)[len(edge.recent) - new :]:
            fresh.append(
                NoticeView(
                    store, notice.ts_ms, notice.kind, notice.raised, notice.critical, notice.text
                )
            )
    return sorted(fresh, key=lambda n: n.ts_ms)


def _new_moves(dealer: Any, seen: list[int]) -> list[Any]:
    """Order moves not shown before, oldest first; ``seen`` holds the count shown so far."""
    new = min(dealer.moves_total - seen[0], len(dealer.recent))
    seen[0] = dealer.moves_total
    return list(dealer.recent)[len(dealer.recent) - new :] if new else []


def _new_alerts(channel: Any, seen: list[int]) -> list[Any]:
    """Channel-control alerts not shown before, oldest first (as :func:`_new_moves`)."""
    new = min(channel.alerts_total - seen[0], len(channel.recent))
    seen[0] = channel.alerts_total
    return list(channel.recent)[len(channel.recent) - new :] if new else []


def _orders_view(dealer: Any, planner: Any, api_url: str, moves: list[Any]) -> Any:
    from shelflink.cli.live_view import OrdersView

    return OrdersView(
        api_docs=f"{api_url}/docs",
        counts=dealer.counts,
        deliveries=dealer.deliveries,
        units_delivered=dealer.units_delivered,
        planning_runs=planner.runs,
        moves=moves,
    )


async def _show(
    live: Any,
    broker_url: str,
    headless: bool,
    done: asyncio.Event,
    gateways: list[Any],
    dealer: Any,
    planner: Any,
    api_url: str,
    channel: Any,
) -> None:
    from shelflink.cli.live_view import (
        ChannelView,
        alert_line,
        notice_line,
        order_line,
        render,
        summary_line,
    )

    seen: dict[str, int] = {}
    seen_moves = [0]
    seen_alerts = [0]
    if headless:
        while True:
            for notice in _new_notices(gateways, seen):
                print(notice_line(notice), flush=True)
            for move in _new_moves(dealer, seen_moves):
                print(order_line(move), flush=True)
            for alert in _new_alerts(channel, seen_alerts):
                print(alert_line(alert), flush=True)
            print(summary_line(live.snapshot(), _gateway_views(gateways)), flush=True)
            if done.is_set():
                return  # after one last round, so that nothing seen goes unprinted
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(done.wait(), timeout=1.0)
    from rich.live import Live

    shown: deque[Any] = deque(maxlen=NOTICES_SHOWN)
    moves: deque[Any] = deque(maxlen=MOVES_SHOWN)
    alerts: deque[Any] = deque(maxlen=CHANNEL_ALERTS_SHOWN)

    def frame() -> Any:
        shown.extend(_new_notices(gateways, seen))
        moves.extend(_new_moves(dealer, seen_moves))
        alerts.extend(_new_alerts(channel, seen_alerts))
        orders = _orders_view(dealer, planner, api_url, list(moves))
        found = ChannelView(dict(channel.counts), channel.scans, list(alerts))
        views = _gateway_views(gateways)
        return render(live.snapshot(), broker_url, views, list(shown), orders, found)

    with Live(frame(), refresh_per_second=4) as screen:
        while not done.is_set():
            screen.update(frame())
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(done.wait(), timeout=REFRESH_S)
        screen.update(frame())


def _print_api(api_url: str, keys: Any) -> None:
    """The API's address and keys, printed once before the view starts."""
    print(f"dealer API {api_url}/docs (send a key as Authorization: Bearer <key>)", flush=True)
    for holder, key in keys.as_dict().items():
        print(f"api key {holder}: {key}", flush=True)


def _print_staged(diversion: Any, price_faults: list[Any]) -> None:
    """What channel control is about to find, so that a person knows what to look for."""
    if diversion is None:
        return
    print(
        f"staged diversion {diversion.store_id} {diversion.gtin}: opening stock shipped "
        f"to {diversion.shipped_to}, in a store of {diversion.sold_by}",
        flush=True,
    )
    if price_faults:
        fault = price_faults[0]
        start, end = (
            datetime.fromtimestamp(ms / 1000, tz=UTC).strftime("%a %H:%M")
            for ms in (fault.start_ms, fault.end_ms)
        )
        print(
            f"staged price {diversion.store_id} {diversion.gtin}: its tills sell it below "
            f"the minimum resale price from {start} to {end} UTC",
            flush=True,
        )


# Staged so that a person watching sees the cold chain work: simulated minutes
# after the start, and how long each fault lasts.
DOOR_AJAR_AFTER_MIN, DOOR_AJAR_FOR_MIN = 20, 45
COMPRESSOR_FAILS_AFTER_MIN, COMPRESSOR_FAILS_FOR_MIN = 90, 180


def stage_cold_chain_faults(live: Any) -> list[Any]:
    """A door left ajar in the first store's first fridge, then a compressor failure
    in the last store's: the edge raises the alarms, the planner holds chilled SKUs."""
    from shelflink.sim.faults import Fault, FaultKind

    staged = []
    plan = [
        (live.sims[0], FaultKind.DOOR_AJAR, DOOR_AJAR_AFTER_MIN, DOOR_AJAR_FOR_MIN),
        (live.sims[-1], FaultKind.COMPRESSOR_FAILURE, COMPRESSOR_FAILS_AFTER_MIN,
         COMPRESSOR_FAILS_FOR_MIN),
    ]  # fmt: skip
    for sim, kind, after_min, for_min in plan:
        if not sim.layout.fridges:
            continue
        start = sim.clock.ts(sim.tick) + after_min * 60_000
        fault = Fault(sim.layout.fridges[0].device_id, kind, start, start + for_min * 60_000)
        live.inject_fault(fault)
        staged.append(fault)
    return staged


async def run_demo(args: argparse.Namespace, *, headless: bool) -> None:
    from shelflink.broker import EmbeddedBroker
    from shelflink.cli.demo_api import dealer_api
    from shelflink.cli.demo_channel import DemoChannel, stage_price_fault
    from shelflink.cli.demo_dealer import DemoDealer
    from shelflink.cli.demo_planner import DemoPlanner
    from shelflink.cli.demo_seed import staged_diversion
    from shelflink.cli.store_configs import gateway_config
    from shelflink.cloud.ingest import IngestOptions, IngestWorker
    from shelflink.cloud.settings import load_settings
    from shelflink.gateway import Gateway
    from shelflink.sim import SimConfig
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
            # The cloud's orders are the stores' only supply: the loop is closed.
            config=SimConfig(auto_replenish=False),
        )
        diversion = staged_diversion([sim.layout for sim in live.sims])
        price_faults: list[Any] = []
        if not args.no_faults:
            stage_cold_chain_faults(live)
            if diversion is not None:
                price_faults = stage_price_fault(live, diversion)
        configs = [
            gateway_config(sim.layout, broker_url, state_dir / "gateways", uplink_url=broker_url)
            for sim in live.sims
        ]
        gateways = [Gateway(config) for config in configs]
        settings = load_settings(data_dir=state_dir / "cloud")
        cloud = await _prepare_cloud(stack, settings, live, configs)
        database_url, keys = cloud.database_url, cloud.keys
        api_url = await stack.enter_async_context(dealer_api(database_url, port=args.api_port))
        _print_api(api_url, keys)
        _print_staged(diversion, price_faults)

        def sim_now_ms() -> int:
            return int(live.sims[0].now_ms)

        dealer = DemoDealer(
            live,
            [sim.layout.store_id for sim in live.sims],
            sim_now_ms,
            actors=_dealer_actors(keys),
            after_order_id=cloud.after_order_id,
        )
        channel = DemoChannel(after_alert_id=cloud.after_alert_id)
        shelves = [shelf.device_id for sim in live.sims for shelf in sim.layout.shelves]
        planner = DemoPlanner(database_url, sim_now_ms, args.speed, shelf_devices=shelves)
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
            background = [
                tasks.create_task(worker.run()),
                *(tasks.create_task(g.run()) for g in gateways),
                tasks.create_task(planner.run()),
                tasks.create_task(dealer.run(database_url)),
            ]
            tasks.create_task(simulate())
            # Channel control scans until the drain below is over, then once more.
            last_scan = asyncio.Event()
            scanning = tasks.create_task(channel.run(database_url, last_scan))
            # The view outlives the devices by the drain below, so that orders moved
            # meanwhile are shown too, up to the final counts.
            closing = asyncio.Event()
            tasks.create_task(
                _show(live, broker_url, headless, closing, gateways, dealer, planner, api_url,
                      channel)
            )  # fmt: skip
            await done.wait()
            # The devices stopped: give the uplinks a moment to deliver the rest.
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(15):
                    # The buffers have no "empty" event; their stats are in memory.
                    while any(g.uplink and g.intake and g.intake.buffer.stats().records  # noqa: ASYNC110
                              for g in gateways):  # fmt: skip
                        await asyncio.sleep(0.2)
            views = _gateway_views(gateways)
            last_scan.set()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(scanning), timeout=15)
            closing.set()
            scanning.cancel()
            for task in background:
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
                    "gateway_events": sum(g.events.created for g in gateways if g.events),
                    "edge_alerts": _edge_alert_totals(gateways),
                    "cloud_rows_new": worker.counters.rows_new,
                    "planning_runs": planner.runs,
                    "orders": dealer.counts,
                    "deliveries": dealer.deliveries,
                    "units_delivered": dealer.units_delivered,
                    "alerts": dict(channel.counts),
                    "api_docs": f"{api_url}/docs",
                    "manifest": str(state_dir / "manifest.json"),
                }
            )
        )


@dataclass(frozen=True, slots=True)
class _Cloud:
    """The migrated, seeded cloud: where it is, the fresh API keys, and the newest
    order and alert ids so far (those of earlier runs on the database are not this run's)."""

    database_url: str
    keys: Any
    after_order_id: int
    after_alert_id: int


async def _prepare_cloud(
    stack: contextlib.AsyncExitStack, settings: Any, live: Any, configs: list[Any]
) -> _Cloud:
    """Migrate and seed the cloud for the live run's stores."""
    from shelflink.cli.demo_channel import latest_alert_id
    from shelflink.cli.demo_dealer import latest_order_id
    from shelflink.cli.demo_history import import_sales_history
    from shelflink.cli.demo_seed import (
        LEAD_TIME_DAYS,
        issue_demo_keys,
        seed_demo,
        seed_serial_shipments,
    )
    from shelflink.cloud.database import connect, open_database
    from shelflink.cloud.migrations import migrate
    from shelflink.cloud.writer import register_gateway

    database_url: str = await stack.enter_async_context(open_database(settings))
    layouts = [sim.layout for sim in live.sims]
    async with await connect(database_url) as conn:
        await migrate(conn)
        for config in configs:
            await register_gateway(conn, config.gateway_id, config.store_id)
        await seed_demo(conn, layouts, currency=live.config.currency)
        # The history ends where the simulated clock starts; the live run adds the rest.
        start = datetime.fromtimestamp(live.clock.start_ms / 1000, tz=UTC)
        await seed_serial_shipments(
            conn, layouts, seed=live.seed, demand=live.config.demand,
            shipped_at=start - timedelta(days=LEAD_TIME_DAYS),
        )  # fmt: skip
        await import_sales_history(
            conn, layouts, seed=live.seed, until=start, currency=live.config.currency
        )
        keys = await issue_demo_keys(conn, replace=True)
        return _Cloud(database_url, keys, await latest_order_id(conn), await latest_alert_id(conn))


def _dealer_actors(keys: Any) -> dict[str, Any]:
    """Each demo dealer acts with its own demo key, so the audit trail names the key."""
    from shelflink.cloud.orders_models import Actor

    return {
        dealer_id: Actor(kind="dealer", key_id=key.key_id, dealer_id=dealer_id)
        for dealer_id, key in keys.dealers.items()
    }
