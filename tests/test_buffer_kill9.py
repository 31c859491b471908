"""An acknowledged append survives kill -9: every printed seq is in the buffer exactly once.

A real process appends numbered shelf readings from several concurrent
producers and prints each seq only after ``append`` returned (committed). The
test SIGKILLs it at a random moment, reopens the buffer, checks, and restarts
the writer from the last printed seq of each shelf, so records that were
committed but not yet printed are appended again (and must not be doubled).
"""

from __future__ import annotations

import asyncio
import collections
import json
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from shelflink.gateway.buffer import DurableBuffer
from shelflink.gateway.buffer_record import FIELD_SHELF, Lease

ROUNDS = 3
SHELVES = [f"shelf-{i}" for i in range(4)]

WRITER = """
import asyncio, json, sys
from shelflink.device.proto import batch_pb2 as pb
from shelflink.gateway.buffer import DurableBuffer
from shelflink.gateway.buffer_record import record_of

CHUNK = 20

async def produce(buffer, device, seq):
    while True:
        chunk = [
            record_of(pb.ShelfReading(device=device, seq=s, ts=s, grams=[float(s)] * 8))
            for s in range(seq, seq + CHUNK)
        ]
        await buffer.append(chunk)
        # Committed: only now may the world hear of it.
        sys.stdout.write("".join(f"{device} {s}\\n" for s in range(seq, seq + CHUNK)))
        sys.stdout.flush()
        seq += CHUNK

async def main():
    starts = json.loads(sys.argv[2])
    async with DurableBuffer(sys.argv[1], commit_interval_s=0.002) as buffer:
        async with asyncio.TaskGroup() as group:
            for device, seq in starts.items():
                group.create_task(produce(buffer, device, seq))

asyncio.run(main())
"""


def run_until_killed(
    path: Path, out_path: Path, starts: dict[str, int], delay_s: float
) -> list[tuple[str, int]]:
    """Start a writer, let it run ``delay_s`` after its first line, SIGKILL it."""
    with open(out_path, "wb") as out:
        # A file, not a pipe: a full pipe would stall the writer in write().
        writer = subprocess.Popen(
            [sys.executable, "-c", WRITER, str(path), json.dumps(starts)], stdout=out
        )
        try:
            deadline = time.monotonic() + 30
            while out_path.stat().st_size == 0:
                assert writer.poll() is None, "the writer died on its own"
                assert time.monotonic() < deadline, "the writer printed nothing in 30 s"
                time.sleep(0.01)
            time.sleep(delay_s)
        finally:
            writer.send_signal(signal.SIGKILL)
            writer.wait(timeout=10)
    text = out_path.read_text(encoding="ascii")
    # The last line may be cut short by the kill: only complete lines count.
    complete = text[: text.rfind("\n") + 1]
    return [(device, int(seq)) for device, seq in (line.split() for line in complete.splitlines())]


async def everything_in(path: Path) -> tuple[list[Lease], Lease | None]:
    """The buffer's content: the leases of earlier checks, and a lease of the rest."""
    async with DurableBuffer(path) as buffer:
        earlier = await buffer.leased()
        rest = await buffer.lease(10**9, 2**62)
        assert buffer.stats().records == sum(
            len(lease.records) for lease in [*earlier, *([rest] if rest else [])]
        )
        return earlier, rest


@pytest.mark.slow
def test_acknowledged_appends_survive_kill_9(tmp_path: Path) -> None:
    rng = random.Random(20_251_126)
    path = tmp_path / "buffer.db"
    starts = dict.fromkeys(SHELVES, 0)
    printed: set[tuple[str, int]] = set()
    leases: list[Lease] = []
    for round_ in range(ROUNDS):
        out = tmp_path / f"run{round_}.out"
        lines = run_until_killed(path, out, starts, rng.uniform(0.1, 1.5))
        assert lines, f"round {round_} printed no complete line"
        printed.update(lines)

        earlier, rest = asyncio.run(everything_in(path))
        # The leases taken by earlier checks survived the writer's runs and kills intact.
        assert earlier == leases
        if rest is not None:
            assert all(rest.batch_seq > lease.batch_seq for lease in earlier), "batch_seq reused"
            leases.append(rest)
        stored = [(r.device, r.seq) for lease in leases for r in lease.records]
        assert all(r.field == FIELD_SHELF for lease in leases for r in lease.records)

        twice = [key for key, n in collections.Counter(stored).items() if n > 1]
        assert not twice, f"stored more than once: {twice[:10]}"
        lost = printed - set(stored)
        assert not lost, f"acknowledged but lost: {sorted(lost)[:10]}"
        per_shelf = collections.defaultdict(set)
        for device, seq in stored:
            per_shelf[device].add(seq)
        for device, seqs in per_shelf.items():
            # Each producer appends in order and each append is all or nothing.
            assert seqs == set(range(len(seqs))), f"{device} has a hole"

        # Resume after the last seq the world heard of: committed-but-unprinted
        # records are appended again, which must be a no-op.
        for device, seq in lines:
            starts[device] = max(starts[device], seq + 1)
