"""A whole deployment in processes, for the delivery and fault tests.

Simulated devices → store broker → gateway (its own process) → cloud broker →
ingest workers (their own processes) → PostgreSQL. Every part can be killed
with SIGKILL and started again; every wait is bounded.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import tomli_w
from gateway_harness import clear_session

from shelflink.cloud.database import connect
from shelflink.cloud.verify import verify
from shelflink.cloud.writer import register_gateway

CLI = [sys.executable, "-m", "shelflink.cli.main"]


def _add_uplink(path: Path, cloud_broker: str) -> dict[str, Any]:
    config: dict[str, Any] = tomllib.loads(path.read_text())
    # Short timers so that a fault test recovers within seconds.
    config["uplink"] = {
        "url": cloud_broker, "linger_s": 0.2, "ack_timeout_s": 3.0,
        "ack_timeout_max_s": 10.0, "reconnect_max_s": 2.0,
    }  # fmt: skip
    config["sequence"]["gap_grace_s"] = 5.0
    path.write_text(tomli_w.dumps(config))
    return config


@dataclass
class Service:
    """One ``shelflink …`` process that prints a JSON ready line when it is up."""

    name: str
    args: list[str]
    log: Path
    env: dict[str, str]
    proc: subprocess.Popen[str] | None = None
    _log_file: IO[str] | None = None

    def start(self, timeout_s: float = 60.0) -> None:
        assert self.proc is None, f"{self.name} already runs"
        self._log_file = open(self.log, "a")  # noqa: SIM115 - closed in _reaped
        self.proc = subprocess.Popen(
            [*CLI, *self.args], stdout=subprocess.PIPE, stderr=self._log_file, text=True,
            env=self.env,
        )  # fmt: skip
        assert self.proc.stdout is not None
        deadline = time.monotonic() + timeout_s
        line = ""
        while time.monotonic() < deadline:
            line = self.proc.stdout.readline()
            if not line or line.startswith("{"):
                break
        if not line or not json.loads(line).get("ready"):
            self.kill()
            raise RuntimeError(f"{self.name} did not start: {self.log.read_text()[-3000:]}")

    def kill(self) -> None:
        if self.proc is not None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(timeout=10)
            self._reaped()

    def stop(self) -> None:
        if self.proc is None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=10)
        self._reaped()

    def _reaped(self) -> None:
        self.proc = None
        if self._log_file is not None:
            self._log_file.close()
            self._log_file = None


@dataclass
class Deployment:
    root: Path
    store_broker: str
    cloud_broker: str
    database_url: str
    seed: int
    workers: int = 2
    services: dict[str, Service] = field(default_factory=dict)
    config: Path | None = None

    @property
    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("SHELFLINK_")}
        env["SHELFLINK_DATABASE_URL"] = self.database_url
        return env

    async def prepare(self) -> None:
        out = self.root / "gateways"
        done = await asyncio.to_thread(
            subprocess.run,
            [*CLI, "gateway", "config", "--stores", "1", "--seed", str(self.seed),
             "--broker", self.store_broker, "--out", str(out)],
            check=True, capture_output=True, timeout=60, env=self.env,
        )  # fmt: skip
        (path,) = json.loads(done.stdout)["configs"]
        config = await asyncio.to_thread(_add_uplink, Path(path), self.cloud_broker)
        await asyncio.to_thread(
            clear_session, self.store_broker, f"{config['gateway_id']}-southbound"
        )
        self.config = Path(path)
        conn = await connect(self.database_url)
        try:
            await register_gateway(conn, config["gateway_id"], config["store_id"])
        finally:
            await conn.close()
        self.services["gateway"] = Service(
            "gateway", ["gateway", "run", "--config", path], self.root / "gateway.log", self.env
        )
        for n in range(self.workers):
            name = f"ingest-{n}"
            self.services[name] = Service(
                name,
                ["cloud", "ingest", "--broker", self.cloud_broker, "--worker-id",
                 f"{name}-{self.seed}"],
                self.root / f"{name}.log", self.env,
            )  # fmt: skip

    async def start(self, *names: str) -> None:
        for name in names or tuple(self.services):
            await asyncio.to_thread(self.services[name].start)

    async def kill(self, name: str) -> None:
        await asyncio.to_thread(self.services[name].kill)

    async def stop_all(self) -> None:
        for service in self.services.values():
            await asyncio.to_thread(service.stop)

    async def report(self, manifest: Path) -> dict[str, Any]:
        conn = await connect(self.database_url)
        try:
            text = await asyncio.to_thread(manifest.read_text)
            return await verify(conn, json.loads(text))
        finally:
            await conn.close()

    async def until_delivered(self, manifest: Path, timeout_s: float = 90.0) -> dict[str, Any]:
        deadline = time.monotonic() + timeout_s
        report = await self.report(manifest)
        while report["missing"] and time.monotonic() < deadline:
            await asyncio.sleep(0.5)
            report = await self.report(manifest)
        return report

    def logs(self) -> str:
        return "\n".join(
            f"--- {s.name}\n{s.log.read_text()[-2000:]}" for s in self.services.values()
            if s.log.exists()
        )  # fmt: skip
