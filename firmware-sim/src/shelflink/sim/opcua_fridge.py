"""Simulated refrigeration controllers on OPC UA: ``python -m shelflink.sim.opcua_fridge``.

One asyncua server serves ``--fridges`` controllers (layout in
:mod:`shelflink.sim.opcua_layout`, model in :mod:`shelflink.sim.opcua_controller`).
Physics runs ``--speed`` times faster than the wall, but values are stamped
with the wall clock (SourceTimestamp), as a real controller's clock would
stamp them: the simulated clock only drives the room's daily cycle and the
defrost schedule, so readings are never stamped in the future.

A client write to one of a fridge's variables *forces* it (a service
technician's sensor override): the model stops driving that variable until
``<fridge>.Simulation.ReleaseForced`` is called. Tests use it to put values
such as 500 °C or NaN in front of a gateway.

The process prints one line on stdout when it listens (``ready <endpoint> ...``)
and logs to stderr; asyncua's loggers are held at WARNING and repeated
messages are rate-limited, so a gateway retrying all night cannot fill a disk.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hmac
import logging
import math
import signal
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC
from pathlib import Path
from typing import Any, Final, Literal

from asyncua import ua
from asyncua.common.callback import CallbackService, CallbackType, ServerItemCallback
from asyncua.crypto.permission_rules import User, UserRole
from asyncua.server.server import Server
from asyncua.server.user_managers import UserManager
from asyncua.ua.attribute_ids import AttributeIds
from asyncua.ua.status_codes import StatusCodes

from shelflink.sim.faults import FaultKind
from shelflink.sim.opcua_controller import (
    CONTROLLER_FAULTS,
    ControllerParams,
    ControllerValues,
    FridgeController,
    due_ticks,
)
from shelflink.sim.opcua_layout import (
    APPLICATION_URI,
    CLEAR_FAULTS,
    ENDPOINT_PATH,
    INJECT_FAULT,
    NAMESPACE_INDEX,
    NAMESPACE_URI,
    RELEASE_FORCED,
    SIMULATION,
    VARIABLES,
    VariableSpec,
    fridge_name,
    node_id,
)
from shelflink.sim.opcua_security import (
    SERVER_CERT,
    TRUSTED,
    TrustedClients,
    ensure_server_certificate,
    prepare,
)

log = logging.getLogger("shelflink.sim.opcua")

Security = Literal["none", "basic256sha256"]
READY: Final = "ready"
FOREVER_S: Final = 10 * 365 * 86_400.0  # how long a --fault lasts: the whole run
_VARIANT: Final = {"Double": ua.VariantType.Double, "Boolean": ua.VariantType.Boolean}


@dataclass(frozen=True, slots=True)
class ServerOptions:
    host: str = "127.0.0.1"
    port: int = 4840
    fridges: int = 1
    seed: int = 0
    speed: float = 60.0
    security: Security = "none"
    cert_dir: Path | None = None  # required for basic256sha256
    trust: tuple[Path, ...] = ()  # client certificates to copy into <cert_dir>/trusted
    username: str | None = None  # set: clients must log in, anonymous is refused
    password: str | None = None
    # How often (wall) the model is stepped and changed values are written; a
    # step covers every tick that fell due, so speed does not change the load.
    update_interval_s: float = 0.1
    faults: tuple[tuple[str, FaultKind], ...] = ()  # (fridge, kind), active from the start
    params: ControllerParams = field(default_factory=ControllerParams)

    def __post_init__(self) -> None:
        if not 1 <= self.fridges <= 99:
            raise ValueError("--fridges must be 1..99")
        if not (math.isfinite(self.speed) and self.speed > 0):
            raise ValueError("--speed must be a positive number")
        if self.security == "basic256sha256" and self.cert_dir is None:
            raise ValueError("basic256sha256 needs --cert-dir for the server's certificate")
        if (self.username is None) != (self.password is None):
            raise ValueError("--username and --password go together")
        if self.update_interval_s <= 0:
            raise ValueError("update_interval_s must be positive")
        served = {fridge_name(i) for i in range(self.fridges)}
        for fridge, _ in self.faults:
            if fridge not in served:
                raise ValueError(f"--fault names {fridge}, which this server does not serve")

    @property
    def endpoint(self) -> str:
        return f"opc.tcp://{self.host}:{self.port}{ENDPOINT_PATH}"


class _OneUser(UserManager):
    """Accepts exactly one username and password; anonymous and everyone else are refused."""

    def __init__(self, username: str, password: str) -> None:
        self._username = username
        self._password = password.encode()

    def get_user(
        self,
        iserver: Any,
        username: str | None = None,
        password: str | None = None,
        certificate: Any = None,
    ) -> User | None:
        if username != self._username or password is None:
            return None
        if not hmac.compare_digest(password.encode(), self._password):
            return None
        return User(role=UserRole.User)


@dataclass(slots=True)
class _Fridge:
    controller: FridgeController
    nodes: dict[str, ua.NodeId]  # browse name -> node id
    written: dict[str, bool | float] = field(default_factory=dict)
    forced: set[str] = field(default_factory=set)


class FridgeControllerServer:
    """The server; ``async with`` starts it listening, :meth:`run` drives the model."""

    def __init__(self, options: ServerOptions) -> None:
        self.options = options
        user_manager = (
            _OneUser(options.username, options.password)
            if options.username is not None and options.password is not None
            else None
        )
        self._server = Server(user_manager=user_manager)
        self._fridges: dict[str, _Fridge] = {}
        self._by_node: dict[ua.NodeId, tuple[_Fridge, str]] = {}
        self._by_simulation: dict[ua.NodeId, _Fridge] = {}
        self.trusted: TrustedClients | None = None

    @property
    def endpoint(self) -> str:
        return self.options.endpoint

    @property
    def server_certificate(self) -> Path | None:
        return None if self.options.cert_dir is None else self.options.cert_dir / SERVER_CERT

    def controller(self, name: str) -> FridgeController:
        return self._fridges[name].controller

    async def __aenter__(self) -> FridgeControllerServer:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self._server.stop()

    async def start(self) -> None:
        opts = self.options
        server = self._server
        await server.init()
        server.set_endpoint(opts.endpoint)
        server.set_server_name("Shelflink simulated fridge controller")
        server.product_uri = "urn:shelflink:sim"
        await server.set_application_uri(APPLICATION_URI)
        await self._configure_security()
        # Offer only the login this server accepts, so clients pick it and
        # asyncua does not warn about certificate logins nobody configured.
        server.set_identity_tokens(
            [ua.AnonymousIdentityToken if opts.username is None else ua.UserNameIdentityToken]
        )
        index = await server.register_namespace(NAMESPACE_URI)
        if index != NAMESPACE_INDEX:  # documented and configured in gateways: never drift
            raise RuntimeError(f"namespace {NAMESPACE_URI} got index {index}")
        start_ms = time.time_ns() // 1_000_000
        for i in range(opts.fridges):
            name = fridge_name(i)
            controller = FridgeController(name, i, opts.seed, start_ms, opts.params)
            for fridge, kind in opts.faults:
                if fridge == name:
                    controller.inject(kind, FOREVER_S)
            self._fridges[name] = await self._add_fridge(controller)
        server.subscribe_server_callback(CallbackType.PostWrite, self._on_client_write)
        await self._step(1)  # realistic values before the first client reads
        await server.start()

    async def _configure_security(self) -> None:
        opts, server = self.options, self._server
        if opts.security == "none":
            server.set_security_policy([ua.SecurityPolicyType.NoSecurity])
            return
        assert opts.cert_dir is not None
        prepare(opts.cert_dir, opts.trust)
        cert, key = await ensure_server_certificate(opts.cert_dir)
        await server.load_certificate(str(cert))
        await server.load_private_key(str(key))
        server.set_security_policy(
            [
                ua.SecurityPolicyType.Basic256Sha256_Sign,
                ua.SecurityPolicyType.Basic256Sha256_SignAndEncrypt,
            ]
        )
        self.trusted = TrustedClients(opts.cert_dir / TRUSTED)
        count = await self.trusted.load()
        if count == 0:
            log.warning(
                "no trusted client certificates in %s: every client is refused", opts.cert_dir
            )
        server.set_certificate_validator(self.trusted)

    async def _add_fridge(self, controller: FridgeController) -> _Fridge:
        idx, name = NAMESPACE_INDEX, controller.name
        # Ids and names as strings ("ns=2;s=...", "2:Name"): asyncua parses them,
        # and its constructors want its own int subclasses for the index.
        obj = await self._server.nodes.objects.add_object(node_id(name), f"{idx}:{name}")
        nodes: dict[str, ua.NodeId] = {}
        for spec in VARIABLES:
            var = await obj.add_variable(
                node_id(name, spec.browse_name),
                f"{idx}:{spec.browse_name}",
                _initial(spec),
                _VARIANT[spec.kind],
            )
            await var.write_attribute(
                AttributeIds.Description,
                ua.DataValue(ua.Variant(ua.LocalizedText(spec.description))),
            )
            await var.set_writable()  # a client write forces the value (see module doc)
            nodes[spec.browse_name] = var.nodeid
        sim = await obj.add_object(node_id(name, SIMULATION), f"{idx}:{SIMULATION}")
        methods: tuple[tuple[str, Any, list[ua.VariantType]], ...] = (
            (INJECT_FAULT, self._inject_fault, [ua.VariantType.String, ua.VariantType.Double]),
            (CLEAR_FAULTS, self._clear_faults, []),
            (RELEASE_FORCED, self._release_forced, []),
        )
        for method, callback, inputs in methods:
            await sim.add_method(
                node_id(name, SIMULATION, method),
                f"{idx}:{method}",
                callback,
                inputs,
                [],
            )
        fridge = _Fridge(controller, nodes)
        for browse_name, node in nodes.items():
            self._by_node[node] = (fridge, browse_name)
        self._by_simulation[sim.nodeid] = fridge
        return fridge

    async def run(self) -> None:
        """Step the model by the wall clock until cancelled."""
        loop = asyncio.get_running_loop()
        started, done = loop.time(), 0
        tick_s = self.options.params.tick_s
        while True:
            await asyncio.sleep(self.options.update_interval_s)
            due = due_ticks(loop.time() - started, self.options.speed, tick_s, done)
            if due:
                await self._step(due)
                done += due

    async def _step(self, ticks: int) -> None:
        now = ua.DateTime.now(UTC)
        for fridge in self._fridges.values():
            values = fridge.controller.advance(ticks)
            await self._publish(fridge, values, now)

    async def _publish(self, fridge: _Fridge, values: ControllerValues, now: ua.DateTime) -> None:
        for spec in VARIABLES:
            value: bool | float = getattr(values, spec.field)
            name = spec.browse_name
            # An unchanged value keeps its SourceTimestamp: it is when the value
            # last changed, which is what a subscriber's reading should carry.
            if name in fridge.forced or fridge.written.get(name) == value:
                continue
            fridge.written[name] = value
            await self._server.write_attribute_value(
                fridge.nodes[name],
                ua.DataValue(
                    ua.Variant(value, _VARIANT[spec.kind]),
                    SourceTimestamp=now,
                    ServerTimestamp=now,
                ),
            )

    async def _on_client_write(self, event: ServerItemCallback, _: CallbackService) -> None:
        if not event.is_external or event.response_params is None:
            return
        writes: list[ua.WriteValue] = event.request_params.NodesToWrite
        for write, status in zip(writes, event.response_params, strict=False):
            if write.AttributeId != AttributeIds.Value or not status.is_good():
                continue
            found = self._by_node.get(write.NodeId)
            if found is None:
                continue
            fridge, name = found
            if name not in fridge.forced:
                log.info(
                    "%s.%s forced by a client; %s.%s.%s releases it",
                    fridge.controller.name,
                    name,
                    fridge.controller.name,
                    SIMULATION,
                    RELEASE_FORCED,
                )
            fridge.forced.add(name)

    def _fridge_of(self, parent: ua.NodeId) -> _Fridge:
        return self._by_simulation[parent]

    async def _inject_fault(
        self, parent: ua.NodeId, kind: ua.Variant, duration_s: ua.Variant
    ) -> list[ua.Variant] | ua.StatusCode:
        fridge = self._fridge_of(parent)
        try:
            fault = fridge.controller.inject(FaultKind(str(kind.Value)), float(duration_s.Value))
        except (ValueError, TypeError) as exc:
            log.warning("%s: fault refused: %s", fridge.controller.name, exc)
            return ua.StatusCode(ua.UInt32(StatusCodes.BadInvalidArgument))
        log.info(
            "%s: %s injected for %.0f simulated seconds",
            fault.device_id,
            fault.kind.value,
            (fault.end_ms - fault.start_ms) / 1000,
        )
        return []

    async def _clear_faults(self, parent: ua.NodeId) -> list[ua.Variant]:
        fridge = self._fridge_of(parent)
        fridge.controller.clear_faults()
        log.info("%s: faults cleared", fridge.controller.name)
        return []

    async def _release_forced(self, parent: ua.NodeId) -> list[ua.Variant]:
        fridge = self._fridge_of(parent)
        released = sorted(fridge.forced)
        fridge.forced.clear()
        for name in released:
            fridge.written.pop(name, None)  # the next step writes the model's value again
        await self._publish(fridge, fridge.controller.values, ua.DateTime.now(UTC))
        if released:
            log.info("%s: released %s", fridge.controller.name, ", ".join(released))
        return []


def _initial(spec: VariableSpec) -> bool | float:
    return 0.0 if spec.kind == "Double" else False


class _RateLimit(logging.Filter):
    """Lets each message template through ``burst`` times per ``window_s``; drops the rest.

    Keyed by logger and unformatted message, so a client that retries every
    second logs its first few refusals and then a line a minute at most.
    """

    def __init__(self, burst: int = 5, window_s: float = 60.0) -> None:
        super().__init__()
        self._burst, self._window_s = burst, window_s
        self._seen: dict[tuple[str, str], tuple[float, int]] = {}

    def filter(self, record: logging.LogRecord) -> bool:
        key = (record.name, str(record.msg))
        now = time.monotonic()
        start, count = self._seen.get(key, (now, 0))
        if now - start >= self._window_s:
            start, count = now, 0
        self._seen[key] = (start, count + 1)
        if len(self._seen) > 1000:  # bounded memory too
            self._seen.clear()
        return count < self._burst


def configure_logging(verbose: bool) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    handler.addFilter(_RateLimit())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.INFO if verbose else logging.WARNING)
    log.setLevel(logging.INFO)
    # asyncua logs every request at INFO and some client hang-ups at WARNING.
    logging.getLogger("asyncua").setLevel(logging.WARNING)


def _fault_arg(text: str) -> tuple[str, FaultKind]:
    fridge, sep, kind = text.partition("=")
    try:
        parsed = FaultKind(kind)
    except ValueError:
        parsed = None
    if not sep or parsed not in CONTROLLER_FAULTS or parsed is None:
        allowed = ", ".join(sorted(CONTROLLER_FAULTS))
        raise argparse.ArgumentTypeError(f"expected FRIDGE=KIND with KIND one of {allowed}")
    return fridge, parsed


def parse_args(argv: Sequence[str] | None = None) -> tuple[ServerOptions, bool]:
    """The server's options and whether to log verbosely."""
    parser = argparse.ArgumentParser(
        prog="python -m shelflink.sim.opcua_fridge",
        description="Serve simulated refrigeration controllers over OPC UA.",
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=4840)
    parser.add_argument("--fridges", type=int, default=1)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--speed", type=float, default=60.0, help="simulated seconds per second")
    parser.add_argument("--tick-s", type=int, default=ControllerParams().tick_s)
    parser.add_argument("--security", choices=("none", "basic256sha256"), default="none")
    parser.add_argument("--cert-dir", type=Path, help="server certificate and trusted/ folder")
    parser.add_argument(
        "--trust", type=Path, action="append", default=[], help="a client certificate to trust"
    )
    parser.add_argument("--username")
    parser.add_argument("--password")
    parser.add_argument(
        "--fault",
        type=_fault_arg,
        action="append",
        default=[],
        help="FRIDGE=KIND active from the start, e.g. fridge-01=compressor_failure",
    )
    parser.add_argument("--verbose", action="store_true", help="log at INFO")
    args = parser.parse_args(argv)
    try:
        options = ServerOptions(
            host=args.host,
            port=args.port,
            fridges=args.fridges,
            seed=args.seed,
            speed=args.speed,
            security=args.security,
            cert_dir=args.cert_dir,
            trust=tuple(args.trust),
            username=args.username,
            password=args.password,
            faults=tuple(args.fault),
            params=ControllerParams(tick_s=args.tick_s),
        )
    except ValueError as exc:
        parser.error(str(exc))
    return options, bool(args.verbose)


async def serve(options: ServerOptions) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    async with FridgeControllerServer(options) as server:
        line = f"{READY} {server.endpoint} fridges={options.fridges} security={options.security}"
        if server.server_certificate is not None:
            line += f" certificate={server.server_certificate}"
        print(line, flush=True)
        simulation = asyncio.create_task(server.run(), name="opcua-fridge-model")
        try:
            await stop.wait()
        finally:
            simulation.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await simulation


def main(argv: Sequence[str] | None = None) -> int:
    options, verbose = parse_args(argv)
    configure_logging(verbose)
    asyncio.run(serve(options))
    return 0


if __name__ == "__main__":
    sys.exit(main())
