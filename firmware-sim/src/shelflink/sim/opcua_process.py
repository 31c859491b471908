"""The simulated controller server as a child process that a test or a demo can kill.

Gateways must survive a controller that vanishes (power cut, crash) and comes
back on the same address; a server in its own process is the only honest way
to show that. :class:`OpcUaSimProcess` starts ``python -m
shelflink.sim.opcua_fridge``, waits for its ready line, and kills (SIGKILL) or
stops (SIGTERM) it; ``start`` may be called again to restart on the same port.
"""

from __future__ import annotations

import asyncio
import select
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from shelflink.sim.opcua_fridge import READY, Security
from shelflink.sim.opcua_layout import ENDPOINT_PATH
from shelflink.sim.opcua_security import SERVER_CERT


def free_port(host: str = "127.0.0.1") -> int:
    """A port that was free a moment ago (the usual small race; fine on loopback)."""
    with socket.socket() as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port


class SimProcessError(RuntimeError):
    """The server process exited or stayed silent instead of becoming ready."""


@dataclass
class OpcUaSimProcess:
    workdir: Path  # stderr log goes here
    port: int = field(default_factory=free_port)
    host: str = "127.0.0.1"
    fridges: int = 1
    seed: int = 0
    speed: float = 60.0
    tick_s: int | None = None
    security: Security = "none"
    cert_dir: Path | None = None
    trust: tuple[Path, ...] = ()
    username: str | None = None
    password: str | None = None
    faults: tuple[str, ...] = ()  # FRIDGE=KIND
    proc: subprocess.Popen[bytes] | None = None
    ready_line: str = ""

    @property
    def endpoint(self) -> str:
        return f"opc.tcp://{self.host}:{self.port}{ENDPOINT_PATH}"

    @property
    def server_certificate(self) -> Path:
        if self.cert_dir is None:
            raise ValueError("a server without --cert-dir has no certificate")
        return self.cert_dir / SERVER_CERT

    @property
    def log_path(self) -> Path:
        return self.workdir / f"opcua-fridge-{self.port}.log"

    def command(self) -> list[str]:
        cmd = [sys.executable, "-m", "shelflink.sim.opcua_fridge", "--host", self.host]
        cmd += ["--port", str(self.port), "--fridges", str(self.fridges)]
        cmd += ["--seed", str(self.seed), "--speed", repr(self.speed)]
        cmd += ["--security", self.security]
        if self.tick_s is not None:
            cmd += ["--tick-s", str(self.tick_s)]
        if self.cert_dir is not None:
            cmd += ["--cert-dir", str(self.cert_dir)]
        for cert in self.trust:
            cmd += ["--trust", str(cert)]
        if self.username is not None and self.password is not None:
            cmd += ["--username", self.username, "--password", self.password]
        for fault in self.faults:
            cmd += ["--fault", fault]
        return cmd

    def _spawn(self) -> IO[bytes]:
        if self.proc is not None:
            raise SimProcessError("already running")
        self.workdir.mkdir(parents=True, exist_ok=True)
        with open(self.log_path, "ab") as log:
            # The child keeps its own copy of the log descriptor.
            self.proc = subprocess.Popen(self.command(), stdout=subprocess.PIPE, stderr=log)
        assert self.proc.stdout is not None
        return self.proc.stdout

    def _check_line(self, line: bytes) -> bool:
        text = line.decode(errors="replace").strip()
        if text.startswith(READY):
            self.ready_line = text
            return True
        if not line:  # end of file: the process is gone or going
            if self.proc is not None:
                self.proc.wait(timeout=10)
            self.proc = None
            raise SimProcessError(self._failure("exited"))
        return False

    def _failure(self, what: str) -> str:
        tail = self.log_path.read_text(errors="replace")[-2000:] if self.log_path.exists() else ""
        return f"OPC UA sim on port {self.port} {what} before it was ready:\n{tail}"

    def start(self, timeout_s: float = 30.0) -> str:
        """Start and block until the ready line; returns the endpoint."""
        stdout = self._spawn()
        deadline = time.monotonic() + timeout_s
        while (left := deadline - time.monotonic()) > 0:
            readable, _, _ = select.select([stdout], [], [], left)
            if readable and self._check_line(stdout.readline()):
                return self.endpoint
        self.kill()
        raise SimProcessError(self._failure(f"was silent for {timeout_s} s"))

    async def start_async(self, timeout_s: float = 30.0) -> str:
        """:meth:`start` that lets the event loop run while the server boots."""
        stdout = self._spawn()
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            readable, _, _ = select.select([stdout], [], [], 0)
            if readable:
                # The ready line is written whole and flushed, so this does not block.
                if self._check_line(stdout.readline()):
                    return self.endpoint
            else:
                await asyncio.sleep(0.05)
        self.kill()
        raise SimProcessError(self._failure(f"was silent for {timeout_s} s"))

    def kill(self) -> None:
        """SIGKILL: no goodbye to clients, no session close, like a power cut."""
        self._end(signal.SIGKILL)

    def stop(self) -> None:
        self._end(signal.SIGTERM)

    def _end(self, sig: signal.Signals) -> None:
        proc, self.proc = self.proc, None
        if proc is None:
            return
        if proc.poll() is None:
            proc.send_signal(sig)
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=10)
        if proc.stdout is not None:
            proc.stdout.close()
