"""``kill -9`` of the gateway mid-stream: after a restart its buffer holds every
reading the simulated devices got acknowledged, exactly once.

The gateway acknowledges a message to the broker only once it is committed,
on a persistent session, so what was in flight when it died is delivered
again; the buffer's (device, seq) key absorbs what had already been committed.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from gateway_harness import clear_session

from shelflink.sim.run import run_stores

DATA_FIELDS = (8, 9, 10, 11)  # sales, receipts, shelf, fridge


def start_gateway(config: Path, log: Path) -> subprocess.Popen[str]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "shelflink.cli.main", "gateway", "run", "--config", str(config)],
        stdout=subprocess.PIPE,
        stderr=open(log, "a"),  # noqa: SIM115 - the child owns it
        text=True,
    )
    assert proc.stdout is not None
    line = proc.stdout.readline()  # blocks until ready (or the process dies: "")
    assert json.loads(line)["ready"], line
    return proc


def stop_gateway(proc: subprocess.Popen[str]) -> None:
    if proc.poll() is not None:
        return
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=15)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=10)


def buffered_seqs(path: Path) -> dict[str, list[int]]:
    seqs: dict[str, list[int]] = {}
    with sqlite3.connect(path, timeout=10) as db:
        rows = db.execute(
            f"SELECT device, seq FROM record WHERE field IN {DATA_FIELDS} ORDER BY device, seq"
        )
        for device, seq in rows:
            seqs.setdefault(device, []).append(seq)
    return seqs


@pytest.mark.slow
async def test_gateway_kill9_loses_and_duplicates_nothing(tmp_path: Path, mqtt_url: str) -> None:
    seed = 4242 + os.getpid() % 1000  # own device ids on a shared broker
    await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "shelflink.cli.main", "gateway", "config", "--stores", "1",
         "--seed", str(seed), "--broker", mqtt_url, "--out", str(tmp_path / "gw")],
        check=True, timeout=60, capture_output=True,
    )  # fmt: skip
    (config,) = (tmp_path / "gw").glob("*.toml")
    # Simulated store ids repeat across runs; a persistent session left on a
    # shared broker by an earlier run would hand this gateway its old messages.
    await asyncio.to_thread(clear_session, mqtt_url, f"gw-{config.stem}-southbound")
    log = tmp_path / "gateway.log"
    gateway = start_gateway(config, log)
    manifest_path = tmp_path / "manifest.json"
    sim = asyncio.create_task(
        run_stores(
            stores=1, seed=seed, speed=240.0, duration_s=8.0, broker_url=mqtt_url,
            manifest_path=manifest_path, state_dir=tmp_path / "devices",
        )
    )  # fmt: skip
    try:
        for _ in range(2):
            await asyncio.sleep(2.5)
            gateway.send_signal(signal.SIGKILL)
            gateway.wait(timeout=10)
            await asyncio.sleep(0.5)
            gateway = await asyncio.to_thread(start_gateway, config, log)
        manifest = await asyncio.wait_for(sim, timeout=60)
        buffer = config.parent / manifest.devices[0].store_id / "buffer.sqlite"
        expected = {
            d.device_id: list(range(d.first_seq, d.last_seq + 1))
            for d in manifest.devices
            if d.count and d.first_seq is not None and d.last_seq is not None
        }
        assert sum(len(v) for v in expected.values()) == manifest.total, "gapless manifest"
        # The gateway owns its buffer file while it runs: give it time to take
        # what the broker still holds, stop it cleanly, then read.
        await asyncio.sleep(3.0)
        await asyncio.to_thread(stop_gateway, gateway)
        found = buffered_seqs(buffer)
        missing = {d: sorted(set(s) - set(found.get(d, []))) for d, s in expected.items()}
        assert not any(missing.values()), f"missing after kill -9: {missing}"
        extra = {d: sorted(set(s) - set(expected.get(d, []))) for d, s in found.items()}
        assert not any(extra.values()), f"never acknowledged to a device, yet buffered: {extra}"
        assert found == expected
    finally:
        await asyncio.to_thread(stop_gateway, gateway)
        if not sim.done():
            sim.cancel()
