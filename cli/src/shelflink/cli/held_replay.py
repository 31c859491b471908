"""``shelflink gateway replay-held``: readings held for a sequence reset, sent again
under the board's new device id.

The held rows of the old id are read from the gateway's dead-letter file, oldest
first, checked as the gateway will check them (contract, then this store's
registry under the new id), rewritten to the new id in topic and payload and
published at QoS 1 on the store broker, as the device itself would. A row is
deleted only once the broker has acknowledged its message, so an interrupted
replay resumes where it stopped: whatever was acknowledged but not yet deleted
is sent again, and the gateway drops it as a repeat of a ``(device, seq)`` it has.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, TextIO

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion
from paho.mqtt.reasoncodes import ReasonCode

from shelflink.device import ContractError, Limits, decode, encode
from shelflink.device.codec import channel_of
from shelflink.device.session import Endpoint
from shelflink.device.topics import topic as topic_of
from shelflink.gateway.config import GatewayConfig
from shelflink.gateway.dead_letter import DeadLetterStore, HeldRow
from shelflink.gateway.registry import DeviceRegistry

WINDOW = 20  # messages published and not yet acknowledged (Mosquitto's default receive maximum)
PAGE = 1000
DELETE_EVERY = 200  # acknowledged rows deleted in one transaction
PROGRESS_EVERY = 1000
CONNECT_TIMEOUT_S = 10.0
MQTT5_WAIT_S = 3.0  # then MQTT 3.1.1 is tried
PUBACK_TIMEOUT_S = 10.0
# A reading this close to the age limit could expire on its way through the broker
# and be rejected as clock_skew after its row is gone: it counts as too old.
EXPIRY_MARGIN_MS = 10 * 60 * 1000
_NO_MATCHING_SUBSCRIBERS = 0x10
_UNSUPPORTED_PROTOCOL_VERSION = 0x84


class ReplayRefused(Exception):
    """Nothing was sent: the request cannot work as asked (exit status 2)."""


class ReplayFailed(Exception):
    """The replay stopped part way; what was acknowledged is deleted, the rest kept."""


class _NoConnack(Exception):
    """The broker did not answer the CONNECT."""


@dataclass(frozen=True, slots=True)
class Outgoing:
    row_id: int
    seq: int
    ts: int
    topic: str
    payload: bytes


@dataclass(slots=True)
class Plan:
    sends: list[Outgoing] = field(default_factory=list)
    too_old: list[tuple[HeldRow, int, int]] = field(default_factory=list)  # row, seq, ts
    unsendable: list[tuple[HeldRow, str]] = field(default_factory=list)  # row, why


def plan_replay(
    rows: list[HeldRow], new_id: str, registry: DeviceRegistry, limits: Limits, now_ms: int
) -> Plan:
    """Each held row rewritten to ``new_id``, or set aside (too old, unreadable).

    Raises :class:`ReplayRefused` when the new id's configuration would make the
    gateway reject a reading (another kind, another number of lanes).
    """
    plan = Plan()
    # The age is judged here, with a margin; the contract checks everything else.
    ageless = dataclasses.replace(limits, max_age_ms=now_ms)
    oldest_ms = now_ms - limits.max_age_ms + EXPIRY_MARGIN_MS
    for row in rows:
        letter = row.letter
        try:
            _, message = decode(letter.topic, letter.raw, now_ms=now_ms, limits=ageless)
            if message.ts < oldest_ms:
                plan.too_old.append((row, message.seq, message.ts))
                continue
            renamed = message.model_copy(update={"device": new_id})
            where = topic_of(registry.store_id, new_id, channel_of(message))
            payload = encode(renamed)
            checked_where, checked = decode(where, payload, now_ms=now_ms, limits=limits)
        except ContractError as error:
            plan.unsendable.append((row, str(error)))
            continue
        try:
            registry.check(checked_where, checked)
        except ContractError as error:
            raise ReplayRefused(
                f"the gateway would reject row {row.id} under {new_id}: {error}"
            ) from None
        plan.sends.append(Outgoing(row.id, message.seq, message.ts, where, payload))
    return plan


@dataclass(frozen=True, slots=True)
class ReplayRequest:
    config: GatewayConfig
    device: str
    new_id: str
    endpoint: Endpoint | None  # None: a dry run, no broker
    client_id: str


async def replay_held(request: ReplayRequest, out: TextIO, err: TextIO) -> dict[str, Any]:
    """Replay (or with no endpoint, show) the held readings; returns the summary.

    A replay that stopped part way has its reason under ``"error"`` in the summary.
    """
    config, device, new_id = request.config, request.device, request.new_id
    registry = DeviceRegistry(config)
    if new_id == device:
        raise ReplayRefused(
            f"--as {new_id} is the id whose numbers the held readings reuse; "
            "replay them under the board's new id"
        )
    if new_id not in registry.devices:
        raise ReplayRefused(
            f"{new_id} is not one of this store's [[devices]]: the gateway would reject every "
            "reading as unknown_device. Add it, restart the gateway, then replay"
        )
    path = config.dead_letter.path
    if not path.exists():
        raise ReplayRefused(f"no held readings: {path} does not exist")
    async with DeadLetterStore(path) as store:
        rows = await _all_held(store, device)
        if not rows:
            raise ReplayRefused(f"no held readings of {device} in {path}")
        now_ms = time.time_ns() // 1_000_000
        plan = plan_replay(rows, new_id, registry, config.limits.limits(), now_ms)
        _report_set_aside(plan, config.limits.max_age_days, err)
        summary: dict[str, Any] = {
            "device": device,
            "as": new_id,
            "replayed": 0,
            "skipped_too_old": len(plan.too_old),
            "left": len(rows),
        }
        if request.endpoint is None:
            for item in plan.sends:
                print(f"{item.topic} {item.payload.decode()}", file=out)
            return {**summary, "dry_run": True, "would_replay": len(plan.sends)}
        if plan.sends:
            first, last = plan.sends[0], plan.sends[-1]
            print(
                f"replaying {len(plan.sends)} readings of {device} as {new_id} "
                f"(seq {min(s.seq for s in plan.sends)}..{max(s.seq for s in plan.sends)}, "
                f"{_when(first.ts)} to {_when(last.ts)}); {new_id}'s own readings must be "
                "numbered above these, or one or the other is dropped as a repeat",
                file=err,
            )
            tally = _Tally(len(plan.sends))
            publisher = Publisher(request.endpoint, request.client_id, config.broker.keepalive_s)
            try:
                await publisher.connect(err)
                await _send(publisher, store, device, plan.sends, tally, err)
            except ReplayFailed as failure:
                summary["error"] = str(failure)
            finally:
                publisher.close()
            summary["replayed"] = tally.replayed
        summary["left"] = await store.count_held(device)
        return summary


async def _all_held(store: DeadLetterStore, device: str) -> list[HeldRow]:
    rows: list[HeldRow] = []
    while page := await store.held_rows(device, after_id=rows[-1].id if rows else 0, limit=PAGE):
        rows += page
    return rows


def _when(ts_ms: int) -> str:
    return datetime.fromtimestamp(ts_ms / 1000, UTC).isoformat(timespec="seconds")


def _report_set_aside(plan: Plan, max_age_days: int, err: TextIO) -> None:
    if plan.too_old:
        seqs = [seq for _, seq, _ in plan.too_old]
        oldest, newest = min(ts for *_, ts in plan.too_old), max(ts for *_, ts in plan.too_old)
        print(
            f"skipped {len(plan.too_old)} readings older than the {max_age_days}-day age limit "
            f"(seq {min(seqs)}..{max(seqs)}, {_when(oldest)} to {_when(newest)}): the gateway "
            "would reject them as clock_skew; they stay in the file",
            file=err,
        )
    for row, why in plan.unsendable:
        print(f"kept row {row.id}, which cannot be sent: {why}", file=err)


@dataclass(slots=True)
class _Tally:
    total: int
    replayed: int = 0


async def _send(
    publisher: Publisher,
    store: DeadLetterStore,
    device: str,
    sends: list[Outgoing],
    tally: _Tally,
    err: TextIO,
) -> None:
    """Publish in order with a bounded window; delete each row once its PUBACK is in."""
    window: deque[tuple[Outgoing, asyncio.Future[ReasonCode]]] = deque()
    acknowledged: list[int] = []

    async def settle() -> None:
        item, puback = window.popleft()
        try:
            async with asyncio.timeout(PUBACK_TIMEOUT_S):
                code = await puback
        except TimeoutError:
            raise ReplayFailed(
                f"no PUBACK for seq {item.seq} within {PUBACK_TIMEOUT_S:g} s"
            ) from None
        if code.is_failure:
            raise ReplayFailed(f"the store broker refused seq {item.seq}: {code}")
        if code.value == _NO_MATCHING_SUBSCRIBERS:
            # Nobody would ever receive it: the gateway has no session on this broker.
            raise ReplayFailed(
                f"nothing subscribes to {item.topic} on this broker: has the gateway ever "
                "connected to it? (its persistent session takes readings while it restarts)"
            )
        acknowledged.append(item.row_id)
        tally.replayed += 1
        if len(acknowledged) >= DELETE_EVERY:
            await _delete(store, device, acknowledged)
        if tally.total > PROGRESS_EVERY and tally.replayed % PROGRESS_EVERY == 0:
            print(f"replayed {tally.replayed}/{tally.total}", file=err, flush=True)

    try:
        for item in sends:
            if len(window) >= WINDOW:
                await settle()
            window.append((item, publisher.publish(item.topic, item.payload)))
        while window:
            await settle()
    finally:
        for _, puback in window:  # left behind by a failure: nothing waits for them
            if puback.done() and not puback.cancelled():
                puback.exception()
            puback.cancel()
        # Also when stopped or interrupted: a row sent again is dropped by the
        # gateway as a repeat, but there is no need to.
        await _delete(store, device, acknowledged)


async def _delete(store: DeadLetterStore, device: str, row_ids: list[int]) -> None:
    await store.delete_held(device, row_ids)
    row_ids.clear()


class Publisher:
    """A plain QoS 1 publisher with PUBACK reason codes, which aiomqtt does not expose.

    MQTT 5 first, so that a publish the broker refuses (its ACL) or that no one
    subscribes to is told apart from one that was taken; MQTT 3.1.1 when the broker
    speaks nothing newer. paho runs its network loop on its own thread (named
    ``paho-mqtt-client-<id>``); its callbacks only hand results to the event loop.
    """

    def __init__(self, endpoint: Endpoint, client_id: str, keepalive_s: int) -> None:
        self._endpoint = endpoint
        self._client_id = client_id
        self._keepalive_s = keepalive_s
        self._loop = asyncio.get_running_loop()
        self._client: paho.Client | None = None
        self._connack: asyncio.Future[ReasonCode] | None = None
        self._pubacks: dict[int, asyncio.Future[ReasonCode]] = {}

    async def connect(self, err: TextIO) -> None:
        endpoint = self._endpoint
        where = f"{endpoint.host}:{endpoint.port}"
        for protocol, wait_s in (
            (MQTTProtocolVersion.MQTTv5, MQTT5_WAIT_S),
            (MQTTProtocolVersion.MQTTv311, CONNECT_TIMEOUT_S),
        ):
            try:
                code = await self._attempt(protocol, wait_s)
            except OSError as exc:  # refused, unreachable, TLS
                raise ReplayFailed(f"cannot reach the store broker at {where}: {exc}") from None
            except _NoConnack as silence:
                # A broker that speaks only 3.1.1 may not parse MQTT 5 at all.
                if protocol is MQTTProtocolVersion.MQTTv5:
                    code = None
                else:
                    raise ReplayFailed(f"the store broker at {where} {silence}") from None
            if code is not None and not code.is_failure:
                return
            if protocol is MQTTProtocolVersion.MQTTv5 and (
                code is None or code.value == _UNSUPPORTED_PROTOCOL_VERSION
            ):
                print(
                    f"the store broker at {where} did not take MQTT 5; using 3.1.1, with which "
                    "a publish the broker refuses cannot be told from one it took",
                    file=err,
                )
                continue
            raise ReplayFailed(f"the store broker at {where} refused the connection: {code}")

    async def _attempt(self, protocol: MQTTProtocolVersion, wait_s: float) -> ReasonCode:
        """The CONNACK's code; raises :class:`_NoConnack` when none came."""
        self.close()
        self._connack = self._loop.create_future()
        client = self._client = self._build(protocol)
        client.connect_timeout = CONNECT_TIMEOUT_S
        # Blocking, but bounded, and it raises the reason a connection failed
        # (paho's own thread would only retry).
        client.connect(self._endpoint.host, self._endpoint.port, self._keepalive_s)
        client.loop_start()
        try:
            async with asyncio.timeout(wait_s):
                return await self._connack
        except TimeoutError:
            raise _NoConnack(f"did not answer in {wait_s:g} s") from None

    def publish(self, topic: str, payload: bytes) -> asyncio.Future[ReasonCode]:
        assert self._client is not None
        puback: asyncio.Future[ReasonCode] = self._loop.create_future()
        info = self._client.publish(topic, payload, qos=1)
        if info.rc != paho.MQTT_ERR_SUCCESS:
            raise ReplayFailed(f"could not publish: {paho.error_string(info.rc)}")
        # The PUBACK's callback reaches the loop only after this returns.
        self._pubacks[info.mid] = puback
        return puback

    def close(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            client.disconnect()
            client.loop_stop()

    def _build(self, protocol: MQTTProtocolVersion) -> paho.Client:
        endpoint = self._endpoint
        client = paho.Client(
            CallbackAPIVersion.VERSION2,
            client_id=self._client_id,
            protocol=protocol,
            reconnect_on_failure=False,
        )
        client.max_inflight_messages_set(WINDOW)
        if endpoint.username is not None:
            client.username_pw_set(endpoint.username, endpoint.password)
        if endpoint.tls_context is not None:
            client.tls_set_context(endpoint.tls_context)
        client.on_connect = lambda _c, _u, _f, code, _p: self._call(client, self._on_connack, code)
        client.on_disconnect = lambda _c, _u, _f, code, _p: self._call(client, self._on_lost, code)
        client.on_publish = lambda _c, _u, mid, code, _p: self._call(
            client, self._on_puback, mid, code
        )
        return client

    def _call(self, client: paho.Client, callback: Callable[..., None], *args: object) -> None:
        # On paho's thread: only hand over. The loop may be gone after close().
        with contextlib.suppress(RuntimeError):
            self._loop.call_soon_threadsafe(self._current, client, callback, args)

    def _current(
        self, client: paho.Client, callback: Callable[..., None], args: tuple[object, ...]
    ) -> None:
        # A client given up on (the MQTT 5 attempt, a closed one) may still report.
        if client is self._client:
            callback(*args)

    def _on_connack(self, code: ReasonCode) -> None:
        if self._connack is not None and not self._connack.done():
            self._connack.set_result(code)

    def _on_lost(self, code: ReasonCode) -> None:
        if self._connack is not None and not self._connack.done():
            self._connack.set_exception(_NoConnack("closed the connection without a CONNACK"))
        error = ReplayFailed(f"the connection to the store broker was lost: {code}")
        for puback in self._pubacks.values():
            if not puback.done():
                puback.set_exception(error)
        self._pubacks.clear()

    def _on_puback(self, mid: int, code: ReasonCode) -> None:
        puback = self._pubacks.pop(mid, None)
        if puback is not None and not puback.done():
            puback.set_result(code)
