"""Sequence numbers survive kill -9: across restarts none is reused and they only increase.

A real process draws numbers and prints each one after drawing it; the test
SIGKILLs it at random moments (sometimes mid-fsync of a block reservation)
and restarts it on the same file.
"""

from __future__ import annotations

import itertools
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from shelflink.device import SequenceError, SequenceStore

BLOCK = 50
RESTARTS = 8

DRAWER = """
import sys
from shelflink.device import SequenceStore
store = SequenceStore(sys.argv[1], block=int(sys.argv[2]))
while True:
    print(store.next(), flush=True)
"""


def run_until_killed(seq_path: Path, out_path: Path, delay_s: float) -> list[int]:
    """Start a drawer, let it run ``delay_s`` after its first number, SIGKILL it."""
    with open(out_path, "wb") as out:
        # Output to a file, not a pipe: a full pipe would block the drawer in
        # write() and every kill would land at the same place.
        drawer = subprocess.Popen(
            [sys.executable, "-c", DRAWER, str(seq_path), str(BLOCK)], stdout=out
        )
        try:
            deadline = time.monotonic() + 30
            while out_path.stat().st_size == 0:
                assert drawer.poll() is None, "the drawer died on its own"
                assert time.monotonic() < deadline, "the drawer printed nothing in 30 s"
                time.sleep(0.01)
            time.sleep(delay_s)
        finally:
            drawer.send_signal(signal.SIGKILL)
            drawer.wait(timeout=10)
    text = out_path.read_text(encoding="ascii")
    # The last line may be cut short by the kill: only complete lines count.
    complete = text[: text.rfind("\n") + 1]
    return [int(line) for line in complete.splitlines()]


@pytest.mark.slow
def test_numbers_are_never_reused_across_kill_9(tmp_path: Path) -> None:
    rng = random.Random(20_251_126)
    seq_path = tmp_path / "device.seq"
    runs: list[list[int]] = []
    for restart in range(RESTARTS):
        drawn = run_until_killed(seq_path, tmp_path / f"run{restart}.out", rng.uniform(0.0, 0.3))
        assert drawn, f"run {restart} printed no complete number"
        runs.append(drawn)
    everything = [n for run in runs for n in run]
    assert runs[0][0] == 0
    assert all(a < b for a, b in itertools.pairwise(everything)), "reused or reordered"
    for before, after in itertools.pairwise(runs):
        # A restart skips at most what was reserved ahead (plus one drawn but not printed).
        assert 1 <= after[0] - before[-1] <= BLOCK + 2
    # Not one fsync per number: the mark only moves once per block.
    assert int(seq_path.read_text()) % BLOCK == 0


@settings(max_examples=50, deadline=None)
@given(
    block=st.integers(min_value=1, max_value=20),
    draws=st.lists(st.integers(min_value=0, max_value=45), min_size=1, max_size=5),
)
def test_reopening_after_any_number_of_draws_never_goes_back(block: int, draws: list[int]) -> None:
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "seq"
        highest = -1
        for count in draws:
            # Abandoning the store without a goodbye is what a crash looks like.
            store = SequenceStore(path, block=block)
            assert store.peek() == store.boot_start > highest
            for _ in range(count):
                value = store.next()
                assert value > highest
                highest = value


def test_a_fresh_store_starts_at_zero_and_reserves_ahead(tmp_path: Path) -> None:
    path = tmp_path / "nested" / "device.seq"
    store = SequenceStore(path, block=10)
    assert (store.peek(), store.boot_start) == (0, 0)
    assert [store.next() for _ in range(3)] == [0, 1, 2]
    assert path.read_text() == "10\n"


@pytest.mark.parametrize(
    ("content", "complaint"),
    [
        (b"garbage\n", "not a number"),
        (b"", "not a number"),
        (b"-5\n", "out of range"),
        (str(2**63).encode(), "out of range"),
        (b"\xff\xfe\x00\x01", "not ASCII"),
    ],
)
def test_a_corrupt_file_is_refused_with_a_clear_reason(
    tmp_path: Path, content: bytes, complaint: str
) -> None:
    path = tmp_path / "device.seq"
    path.write_bytes(content)
    with pytest.raises(SequenceError, match=complaint) as refused:
        SequenceStore(path)
    assert str(path) in str(refused.value)
    assert path.read_bytes() == content  # left for a person to inspect, not overwritten


def test_the_mark_is_written_atomically(tmp_path: Path) -> None:
    path = tmp_path / "device.seq"
    SequenceStore(path, block=7)
    assert sorted(os.listdir(tmp_path)) == ["device.seq"]  # no temporary file left behind
