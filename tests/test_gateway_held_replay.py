"""``shelflink gateway replay-held``: readings held for a board that reused an id reach
the buffer under the board's new id, and the command refuses what cannot work.

The held readings come from a real gateway run (a replaced board's new boot at
seq 0); the replay goes through the real broker into the restarted gateway.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
from pathlib import Path
from typing import Any

import pytest
import tomli_w
from gateway_harness import (
    Publisher,
    birth_json,
    eventually,
    now_ms,
    running_gateway,
    shelf_json,
    store_config,
)

from conftest import BrokerProcess
from shelflink.cli.main import main
from shelflink.cli.store_configs import to_toml_dict
from shelflink.device import Reason
from shelflink.gateway import Gateway, GatewayConfig
from shelflink.gateway.buffer_record import FIELD_SHELF
from shelflink.gateway.dead_letter import DeadLetter, DeadLetterStore, HeldReason

DAY_MS = 86_400_000


def write_toml(config: GatewayConfig, path: Path) -> Path:
    path.write_bytes(tomli_w.dumps(to_toml_dict(config)).encode())
    return path


def renamed(config: GatewayConfig, old: str, new: str) -> GatewayConfig:
    """The store after the board got its new id: the old entry replaced by the new one."""
    devices = [d.model_copy(update={"id": new}) if d.id == old else d for d in config.devices]
    return config.model_copy(update={"devices": devices})


async def shelflink(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, list[str], str]:
    """The command as a user runs it, in a worker thread: it runs its own event loop."""

    def run() -> int:
        try:
            main(list(argv))
        except SystemExit as done:
            return int(done.code or 0)
        raise AssertionError("main() returned without an exit status")

    code = await asyncio.to_thread(run)
    out, err = capsys.readouterr()
    return code, out.splitlines(), err


def held_seqs(path: Path, device: str) -> list[int]:
    with sqlite3.connect(path) as db:
        raws = [
            r[0] for r in db.execute("SELECT raw FROM held WHERE device = ? ORDER BY id", (device,))
        ]
    return [json.loads(raw)["seq"] for raw in raws]


def buffered_readings(path: Path, device: str) -> set[int]:
    with sqlite3.connect(path) as db:
        rows = db.execute(
            "SELECT seq FROM record WHERE device = ? AND field = ?", (device, FIELD_SHELF)
        )
        return {seq for (seq,) in rows}


def accepted(gateway: Gateway, device: str) -> int:
    assert gateway.intake is not None
    return sum(n for (d, _), n in gateway.intake.counters.accepted.items() if d == device)


def duplicates(gateway: Gateway, device: str) -> int:
    assert gateway.intake is not None
    return gateway.intake.counters.rejected[(device, Reason.DUPLICATE.value)]


def letter(store_id: str, device: str, seq: int, ts: int) -> DeadLetter:
    """A held reading as the gateway writes it."""
    topic = f"shelflink/v1/{store_id}/{device}/telemetry"
    raw = shelf_json(device, seq, ts).replace(" ", "").encode()
    return DeadLetter(ts, topic, device, HeldReason.SEQUENCE_RESET, "", raw, len(raw))


def held_count(gateway: Gateway, device: str) -> int:
    assert gateway.intake is not None
    return gateway.intake.counters.rejected[(device, HeldReason.SEQUENCE_RESET.value)]


async def test_held_readings_reach_the_buffer_under_the_new_id(
    tmp_path: Path, mqtt_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    config = store_config(tmp_path, mqtt_url)
    old, new = config.devices[0].id, f"{config.store_id}-shelf-02"
    base = f"shelflink/v1/{config.store_id}/{old}"
    async with running_gateway(config) as gateway:
        pub = Publisher(mqtt_url)
        try:
            pub.publish(f"{base}/status", birth_json(old, 0, "old-board"))
            for seq in range(4):
                pub.publish(f"{base}/telemetry", shelf_json(old, seq, now_ms()))
            await eventually(lambda: accepted(gateway, old) == 5, what="the old board's")
            # The replacement board, flashed with the same id and a fresh sequence file.
            pub.publish(f"{base}/status", birth_json(old, 0, "new-board"))
            for seq in range(3):
                pub.publish(f"{base}/telemetry", shelf_json(old, seq, now_ms(), board_c=30.0))
            await eventually(lambda: held_count(gateway, old) == 3, what="3 held")
        finally:
            pub.close()

    # The board gets a new id: the store's file says so, the gateway restarts.
    config = renamed(config, old, new)
    toml = str(write_toml(config, tmp_path / "store.toml"))
    dead_letters, buffer = config.dead_letter.path, config.buffer.path
    replay = ("gateway", "replay-held", "--config", toml, "--device", old, "--as", new)
    async with running_gateway(config) as gateway:
        code, out, _ = await shelflink(capsys, *replay, "--dry-run")
        assert code == 0
        *shown, summary = out
        assert json.loads(summary) == {
            "device": old, "as": new, "replayed": 0, "skipped_too_old": 0, "left": 3,
            "dry_run": True, "would_replay": 3,
        }  # fmt: skip
        topics = {line.split(" ", 1)[0] for line in shown}
        assert topics == {f"shelflink/v1/{config.store_id}/{new}/telemetry"}
        payloads = [json.loads(line.split(" ", 1)[1]) for line in shown]
        assert [(p["device"], p["seq"], p["board_c"]) for p in payloads] == [
            (new, seq, 30.0) for seq in range(3)
        ]
        assert held_seqs(dead_letters, old) == [0, 1, 2], "a dry run changes nothing"
        assert accepted(gateway, new) == 0

        code, out, err = await shelflink(capsys, *replay)
        assert code == 0, err
        assert json.loads(out[-1]) == {
            "device": old, "as": new, "replayed": 3, "skipped_too_old": 0, "left": 0,
        }  # fmt: skip
        assert f"{new}'s own readings must be numbered above these" in err
        await eventually(lambda: accepted(gateway, new) == 3, what="the replayed readings")
        assert held_seqs(dead_letters, old) == []

        # A replay cut off between a PUBACK and its row's deletion sends that row again
        # when it resumes: the gateway drops it as a repeat.
        async with DeadLetterStore(dead_letters) as store:
            store.hold(letter(config.store_id, old, 1, now_ms()), lambda: None)
        code, out, err = await shelflink(capsys, *replay)
        assert code == 0, err
        assert json.loads(out[-1])["replayed"] == 1
        await eventually(lambda: duplicates(gateway, new) == 1, what="the repeat dropped")
        assert accepted(gateway, new) == 3

        # Done is done: a second run has nothing to send.
        code, out, err = await shelflink(capsys, *replay)
        assert (code, out) == (2, []) and f"no held readings of {old}" in err
    assert buffered_readings(buffer, new) == {0, 1, 2}


async def test_refusals_too_old_readings_and_a_broker_nobody_listens_on(
    tmp_path: Path, broker_process: BrokerProcess, capsys: pytest.CaptureFixture[str]
) -> None:
    config = store_config(tmp_path, broker_process.url)
    old, fridge = config.devices[0].id, config.devices[1].id
    new = f"{config.store_id}-shelf-02"
    config = renamed(config, old, new)
    written: list[int] = []
    async with DeadLetterStore(config.dead_letter.path) as store:
        for seq, age_days in ((0, 31), (1, 31), (2, 0)):
            held = letter(config.store_id, old, seq, now_ms() - age_days * DAY_MS)
            store.hold(held, lambda: written.append(1))
    assert len(written) == 3
    toml = str(write_toml(config, tmp_path / "store.toml"))
    replay = ("gateway", "replay-held", "--config", toml, "--device", old)

    async def refused(*argv: str) -> str:
        code, out, err = await shelflink(capsys, *replay, *argv)
        assert (code, out) == (2, []), err
        return err

    assert "the board's new id" in await refused("--as", old)
    assert "unknown_device" in await refused("--as", "s9999-shelf-01")
    assert "configured as a fridge but sent shelf.reading" in await refused("--as", fridge)
    assert held_seqs(config.dead_letter.path, old) == [0, 1, 2]

    # Nothing subscribes to this store on this broker (its gateway never connected):
    # the broker takes the publish, but nothing would ever receive it, so the row stays.
    code, out, err = await shelflink(capsys, *replay, "--as", new)
    if broker_process.kind != "mosquitto":
        pytest.skip("the embedded broker speaks MQTT 3.1.1 only: no PUBACK reason codes")
    summary: dict[str, Any] = json.loads(out[-1])
    assert code == 1, err
    assert "nothing subscribes" in summary.pop("error")
    assert summary == {"device": old, "as": new, "replayed": 0, "skipped_too_old": 2, "left": 3}
    assert "skipped 2 readings older than the 30-day age limit (seq 0..1" in err
    assert held_seqs(config.dead_letter.path, old) == [0, 1, 2]
