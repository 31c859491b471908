"""Live publishing: simulated stores as real devices on an MQTT broker.

Every device gets its own :class:`~shelflink.device.AsyncDeviceClient` (its
own connection, last will and persisted sequence numbers under
``state_dir``), as a store's devices would. The simulated clock runs ``speed``
times faster than the wall and starts in the past (see
:func:`~shelflink.sim.clock.live_start_ms`), so no reading is ever stamped
in the future. When publishing falls behind, the run simulates the ticks
that are due in one step (results do not depend on step sizes) rather than
drifting. At exit the manifest lists, per device, the data messages its broker
acknowledged.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Mapping
from pathlib import Path

import numpy as np

from shelflink.device import AsyncDeviceClient, DeviceIdentity, SequenceStore
from shelflink.sim.backroom import Delivery
from shelflink.sim.catalog import build_catalog
from shelflink.sim.clock import MS_PER_DAY, SimClock, live_start_ms
from shelflink.sim.config import SimConfig
from shelflink.sim.faults import Fault, FaultSchedule
from shelflink.sim.fleet import build_store
from shelflink.sim.live import LiveSnapshot, Rate, StoreView
from shelflink.sim.manifest import DeviceRecord, Manifest
from shelflink.sim.messages import identities, step_messages, with_seq
from shelflink.sim.step import StoreStep
from shelflink.sim.store import StoreSim

log = logging.getLogger("shelflink.sim.run")

OnTick = Callable[[LiveSnapshot], None]

# The gateway accepts readings up to 30 days old; keep a day of margin.
MAX_LEAD_MS = 29 * MS_PER_DAY
LOW_STOCK_SHARE = 0.2


class LiveRun:
    """One live run; :meth:`snapshot` may be polled while :meth:`run` is running."""

    def __init__(
        self,
        *,
        stores: int,
        seed: int,
        speed: float,
        duration_s: float,
        broker_url: str,
        state_dir: Path,
        manifest_path: Path | None = None,
        username: str | None = None,
        password: str | None = None,
        profile_mix: Mapping[str, float] | None = None,
        config: SimConfig | None = None,
        faults: FaultSchedule | None = None,
        on_tick: OnTick | None = None,
        connect_timeout_s: float = 30.0,
        drain_timeout_s: float = 10.0,
    ) -> None:
        if stores < 1 or speed <= 0 or duration_s <= 0:
            raise ValueError("a live run needs stores >= 1, speed > 0 and duration_s > 0")
        lead_ms = max(speed - 1.0, 0.0) * duration_s * 1000.0
        if lead_ms > MAX_LEAD_MS:
            raise ValueError(
                f"speed {speed:g} for {duration_s:g} s starts the simulated clock "
                f"{lead_ms / MS_PER_DAY:.0f} days in the past; gateways refuse readings "
                "older than 30 days: lower the speed or the duration"
            )
        self.stores, self.seed, self.speed, self.duration_s = stores, seed, speed, duration_s
        self.broker_url, self.state_dir, self.manifest_path = broker_url, state_dir, manifest_path
        self._username, self._password = username, password
        self._profile_mix, self._faults, self._on_tick = profile_mix, faults, on_tick
        self.config = config or SimConfig()
        self._connect_timeout_s, self._drain_timeout_s = connect_timeout_s, drain_timeout_s
        tick_s = self.config.tick_s
        self.clock = SimClock(live_start_ms(_now_ms(), duration_s, speed, tick_s), tick_s)
        self.ticks_total = max(1, int(duration_s * speed // tick_s))
        catalog = build_catalog(seed, self.config.catalog_size, self.config.cold_fraction)
        self.sims: list[StoreSim] = [
            build_store(
                seed,
                i,
                self.clock,
                catalog=catalog,
                profile_mix=profile_mix,
                config=self.config,
                faults=faults,
            )
            for i in range(stores)
        ]
        self._identities = [identities(sim.layout, tick_s) for sim in self.sims]
        self._clients: list[dict[str, AsyncDeviceClient]] = []
        self._rates = [Rate() for _ in self.sims]
        self._last_steps: list[StoreStep | None] = [None] * stores
        self._views = [self._view(i, None, 0.0) for i in range(stores)]
        self._started_s: float | None = None

    # -- hooks for other components ----------------------------------------------

    def sim(self, store_id: str) -> StoreSim:
        for sim in self.sims:
            if sim.layout.store_id == store_id:
                return sim
        raise KeyError(f"no store {store_id!r} in this run")

    def inject_delivery(
        self,
        store_id: str,
        units_by_gtin: Mapping[str, int],
        arrive_ms: int | None = None,
        ref: str | None = None,
    ) -> Delivery:
        """A delivery into a store's backroom, by default with its next tick."""
        sim = self.sim(store_id)
        when = arrive_ms if arrive_ms is not None else sim.clock.ts(sim.tick)
        return sim.inject_delivery(units_by_gtin, when, ref)

    def inject_fault(self, fault: Fault) -> None:
        """Add a fault to the store that owns the device; it acts from its start on."""
        for sim in self.sims:
            if fault.device_id in sim.layout.device_ids():
                schedule = sim.faults.with_fault(fault)
                schedule.validate(sim.layout)
                sim.faults = schedule
                return
        raise KeyError(f"no device {fault.device_id!r} in this run")

    def snapshot(self) -> LiveSnapshot:
        elapsed = 0.0 if self._started_s is None else time.monotonic() - self._started_s
        clients = [c for store in self._clients for c in store.values()]
        done = self.sims[0].tick
        return LiveSnapshot(
            elapsed_s=elapsed,
            sim_ms=self.clock.ts(max(done - 1, 0)),
            ticks_done=done,
            ticks_total=self.ticks_total,
            speed=self.speed,
            connected=sum(1 for c in clients if c.stats.connected),
            devices=sum(len(i) for i in self._identities),
            stores=tuple(self._views),
        )

    # -- the run -------------------------------------------------------------------

    async def run(self) -> Manifest:
        try:
            async with contextlib.AsyncExitStack() as stack:
                for ids in self._identities:
                    self._clients.append({i.device_id: self._client(i) for i in ids})
                for store in self._clients:
                    for client in store.values():
                        await stack.enter_async_context(client)
                async with asyncio.TaskGroup() as group:
                    for store in self._clients:
                        for client in store.values():
                            group.create_task(client.wait_connected(self._connect_timeout_s))
                await self._publish_loop()
            # Leaving the stack flushed every client (bounded by the drain timeout)
            # and said goodbye, so their counters are final: show them once more.
            self._refresh_views()
            if self._on_tick is not None:
                self._on_tick(self.snapshot())
        finally:
            manifest = self._manifest()
            if self.manifest_path is not None:
                manifest.write(self.manifest_path)
        return manifest

    def _client(self, identity: DeviceIdentity) -> AsyncDeviceClient:
        sequence = SequenceStore(self.state_dir / "seq" / f"{identity.device_id}.seq")
        return AsyncDeviceClient(
            identity,
            self.broker_url,
            sequence,
            username=self._username,
            password=self._password,
            close_timeout_s=self._drain_timeout_s,
        )

    async def _publish_loop(self) -> None:
        tick_s = self.clock.tick_s
        self._started_s = started = time.monotonic()
        done = 0
        while done < self.ticks_total:
            elapsed = time.monotonic() - started
            due = min(self.ticks_total, int(elapsed * self.speed / tick_s))
            if due <= done:
                next_at = started + (done + 1) * tick_s / self.speed
                await asyncio.sleep(max(0.0, next_at - time.monotonic()))
                continue
            for index, sim in enumerate(self.sims):
                step = sim.advance(due - done)
                self._publish(index, step)
                self._last_steps[index] = step
            self._refresh_views()
            done = due
            if self._on_tick is not None:
                self._on_tick(self.snapshot())
            # Let the clients' tasks send what was just queued.
            await asyncio.sleep(0)

    def _publish(self, index: int, step: StoreStep) -> None:
        sim = self.sims[index]
        clients = self._clients[index]
        outgoing = step_messages(sim.layout, step, sim.config.currency, sim.deliveries)
        for device_id, messages in outgoing.items():
            client = clients[device_id]
            for message in messages:
                # Queued, not awaited: the client sends in seq order with a window
                # of PUBACKs outstanding, and its counters say what was acknowledged.
                client.publish_nowait(with_seq(message, client.next_seq()))

    def _refresh_views(self) -> None:
        now = time.monotonic()
        self._views = [self._view(i, self._last_steps[i], now) for i in range(self.stores)]

    def _view(self, index: int, step: StoreStep | None, now_s: float) -> StoreView:
        sim = self.sims[index]
        layout = sim.layout
        stats = [c.stats for c in self._clients[index].values()] if self._clients else []
        published = sum(s.published for s in stats)
        units = sim.stock
        low = units <= np.floor(LOW_STOCK_SHARE * layout.capacity)
        fridge_c: tuple[float, ...] = ()
        if step is not None and len(step):
            fridge_c = tuple(float(c) for c in step.cabinet_c[-1])
        return StoreView(
            store_id=layout.store_id,
            profile=layout.profile.name,
            sim_ms=sim.now_ms,
            published=published,
            backlog=sum(s.queued + s.in_flight for s in stats),
            dropped=sum(s.dropped for s in stats),
            msgs_per_s=self._rates[index].sample(now_s, published) if stats else 0.0,
            lanes=layout.lanes,
            lanes_low=int(low.sum()),
            lanes_out=int((units == 0).sum()),
            fridge_c=fridge_c,
            units_sold=int(sim.ledger.sold.sum()),
            units_lost=int(sim.ledger.lost.sum()),
        )

    def _manifest(self) -> Manifest:
        records: list[DeviceRecord] = []
        for index, ids in enumerate(self._identities):
            clients = self._clients[index] if index < len(self._clients) else {}
            for identity in ids:
                record = DeviceRecord(identity.device_id, identity.store_id, identity.kind.value)
                client = clients.get(identity.device_id)
                if client is not None:
                    stats = client.stats
                    record.count = stats.published
                    record.first_seq, record.last_seq = stats.first_seq, stats.last_seq
                records.append(record)
        ticks = self.sims[0].tick
        return Manifest(
            seed=self.seed,
            stores=self.stores,
            speed=self.speed,
            sim_start_ms=self.clock.start_ms,
            sim_end_ms=self.clock.ts(max(ticks - 1, 0)),
            ticks=ticks,
            devices=tuple(records),
        )


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


async def run_stores(
    stores: int,
    seed: int,
    speed: float,
    duration_s: float,
    broker_url: str,
    manifest_path: Path | None,
    state_dir: Path,
    username: str | None = None,
    password: str | None = None,
    on_tick: OnTick | None = None,
    *,
    profile_mix: Mapping[str, float] | None = None,
    config: SimConfig | None = None,
    faults: FaultSchedule | None = None,
) -> Manifest:
    """Publish ``stores`` simulated stores live for ``duration_s`` wall seconds.

    ``on_tick`` receives a :class:`LiveSnapshot` after every simulated step;
    to poll instead, build a :class:`LiveRun` and call its ``snapshot()``.
    """
    live = LiveRun(
        stores=stores,
        seed=seed,
        speed=speed,
        duration_s=duration_s,
        broker_url=broker_url,
        state_dir=state_dir,
        manifest_path=manifest_path,
        username=username,
        password=password,
        profile_mix=profile_mix,
        config=config,
        faults=faults,
        on_tick=on_tick,
    )
    return await live.run()
