"""The uplink's pure parts: pacing, linger, the send window, ack parsing, payloads, config."""

from __future__ import annotations

import random
import re
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from shelflink.device.proto import batch_pb2 as pb
from shelflink.device.uplink import unframe_batch
from shelflink.gateway.buffer_record import Lease, Record, record_of
from shelflink.gateway.config import ConfigError, GatewayConfig, load_config
from shelflink.gateway.uplink_pacing import Linger, ReplayPacer, TokenBucket, is_backlog
from shelflink.gateway.uplink_stats import LATENCY_BUCKETS_S, LatencyHistogram
from shelflink.gateway.uplink_window import Window
from shelflink.gateway.uplink_wire import AckError, batch_payload, parse_ack

T0 = 1_764_150_000_000


def shelf(seq: int, ts: int = T0) -> Record:
    return record_of(pb.ShelfReading(device="shelf-a", seq=seq, ts=ts, grams=[1.5, 2.5]))


def event(seq: int, ts: int = T0) -> Record:
    return record_of(pb.Event(source="gw-1", seq=seq, ts=ts, type="gap"))


def lease(batch_seq: int, *records: Record) -> Lease:
    return Lease(batch_seq, T0, records or (shelf(batch_seq),), 1, 1)


# -- pacing --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("rate", "burst", "takes", "now", "cost", "wait"),
    [
        (5.0, 1.0, [], 0.0, 1.0, 0.0),  # a full bucket lets the first go at once
        (5.0, 1.0, [(0.0, 1.0)], 0.0, 1.0, 0.2),  # then one every 1/rate
        (5.0, 1.0, [(0.0, 1.0)], 0.1, 1.0, 0.1),
        (5.0, 1.0, [(0.0, 1.0)], 5.0, 1.0, 0.0),  # saving up stops at the burst
        (100.0, 100.0, [], 0.0, 500.0, 0.0),  # bigger than the burst: allowed when full ...
        (100.0, 100.0, [(0.0, 500.0)], 0.0, 1.0, 4.01),  # ... and the debt is paid after
    ],
)
def test_token_bucket_waits(
    rate: float,
    burst: float,
    takes: list[tuple[float, float]],
    now: float,
    cost: float,
    wait: float,
) -> None:
    bucket = TokenBucket(rate, burst)
    for at, taken in takes:
        bucket.take(at, taken)
    assert bucket.wait_s(now, cost) == pytest.approx(wait)


@given(
    rate=st.floats(0.5, 50.0),
    gaps=st.lists(st.floats(0.0, 0.5), min_size=1, max_size=60),
)
def test_a_token_bucket_never_lets_more_than_burst_plus_rate_times_elapsed(
    rate: float, gaps: list[float]
) -> None:
    bucket = TokenBucket(rate, 1.0)
    now, start = 0.0, 0.0
    for taken, gap in enumerate(gaps, start=1):
        now += gap
        wait = bucket.wait_s(now, 1.0)
        now += wait  # the caller sleeps exactly as told
        assert bucket.wait_s(now, 1.0) == pytest.approx(0.0, abs=1e-9)
        bucket.take(now, 1.0)
        assert taken <= 1.0 + rate * (now - start) + 1e-6


def test_replay_pacer_applies_both_limits_and_none_when_off() -> None:
    assert not ReplayPacer(None, None).limited
    assert ReplayPacer(None, None).wait_s(0.0, 10**9) == 0.0
    pacer = ReplayPacer(batches_per_s=10.0, bytes_per_s=1000)
    pacer.take(0.0, 1000)
    # The batch limit alone would allow the next after 0.1 s; the byte limit after 1 s.
    assert pacer.wait_s(0.0, 1000) == pytest.approx(1.0)
    assert pacer.wait_s(0.0, 1) == pytest.approx(0.1)


@pytest.mark.parametrize(
    ("ages_ms", "backlog"),
    [
        ([0, 1_000], False),
        ([59_999], False),
        ([60_001], True),
        ([0, 0, 3_600_000], True),  # one old record makes the batch backlog
    ],
)
def test_a_batch_is_backlog_when_any_record_is_older_than_the_threshold(
    ages_ms: list[int], backlog: bool
) -> None:
    now = T0 + 10 * 3_600_000
    records = [shelf(i + 1, ts=now - age) for i, age in enumerate(ages_ms)]
    assert is_backlog(records, now, replay_after_ms=60_000) is backlog


@pytest.mark.parametrize(
    ("steps", "ready"),
    [
        ([(0.0, 0, 0)], False),  # nothing waiting
        ([(0.0, 5, 500)], False),  # something, not yet waited
        ([(0.0, 5, 500), (0.99, 5, 500)], False),
        ([(0.0, 5, 500), (1.0, 5, 500)], True),  # waited the linger
        ([(0.0, 10, 500)], True),  # a full batch by count ...
        ([(0.0, 1, 4096)], True),  # ... or by bytes
        ([(0.0, 5, 500), (0.5, 0, 0), (1.2, 5, 500)], False),  # emptied: the clock restarts
    ],
)
def test_linger(steps: list[tuple[float, int, int]], ready: bool) -> None:
    linger = Linger(max_records=10, max_bytes=4096, linger_s=1.0)
    results = [linger.ready(now, records, size) for now, records, size in steps]
    assert results[-1] is ready


def test_linger_restarts_after_a_batch_is_taken() -> None:
    linger = Linger(max_records=10, max_bytes=4096, linger_s=1.0)
    assert linger.ready(1.0, 3, 10) is False
    assert linger.wake_at() == 2.0
    linger.taken()
    assert linger.wake_at() is None
    assert linger.ready(2.5, 3, 10) is False


# -- the window ----------------------------------------------------------------------------


def test_the_window_holds_at_most_its_size_and_resends_oldest_first() -> None:
    window = Window(2, ack_timeout_s=1.0, ack_timeout_max_s=10.0, rng=random.Random(1))
    a, b = window.add(lease(7), b"seven"), window.add(lease(3), b"three")
    assert not window.has_room()
    window.sent(a, 0.0)
    window.sent(b, 0.5)
    assert window.due(0.9) == []
    assert [f.batch_seq for f in window.due(1.5)] == [3, 7]
    assert window.pop(99) is None
    assert window.pop(7) is a and window.has_room()
    window.put_back(a)
    assert [f.batch_seq for f in window.in_order()] == [3, 7]
    with pytest.raises(ValueError, match="already in flight"):
        window.add(lease(3), b"again")


def test_each_resend_waits_longer_at_most_and_never_beyond_the_maximum() -> None:
    base, most = 1.0, 6.0
    for seed in range(50):
        window = Window(1, ack_timeout_s=base, ack_timeout_max_s=most, rng=random.Random(seed))
        flight = window.add(lease(1), b"x")
        waits = []
        for now in range(8):
            window.sent(flight, float(now))
            waits.append(flight.deadline - now)
        assert waits[0] == base  # the first wait is the plain timeout
        for k, wait in enumerate(waits[1:]):
            # Full jitter under a cap that doubles per resend, within the maximum.
            assert base <= wait <= base + min(base * 2**k, most - base)
    assert flight.sends == 8 and flight.first_sent == 0.0


def test_window_rejects_nonsense_settings() -> None:
    with pytest.raises(ValueError):
        Window(0, 1.0, 2.0)
    with pytest.raises(ValueError):
        Window(1, 2.0, 1.0)


# -- stats ---------------------------------------------------------------------------------


def test_latency_histogram_is_cumulative_and_inclusive_at_bounds() -> None:
    histogram = LatencyHistogram()
    for seconds in (0.05, 0.07, 2.0, 1000.0):
        histogram.observe(seconds)
    buckets = dict(histogram.cumulative())
    assert buckets[0.05] == 1  # "le": a value on a bound counts in that bucket
    assert buckets[0.1] == 2
    assert buckets[2.5] == 3
    assert buckets[LATENCY_BUCKETS_S[-1]] == 3
    assert buckets[float("inf")] == 4
    assert (histogram.count, histogram.last_s) == (4, 1000.0)
    assert histogram.sum_s == pytest.approx(1002.12)


# -- wire ----------------------------------------------------------------------------------


def ack(
    gateway_id: str = "gw-1",
    batch_seq: int = 5,
    outcome: pb.BatchAck.Outcome.ValueType = pb.BatchAck.OUTCOME_COMMITTED,
    reason: str = "",
) -> bytes:
    return pb.BatchAck(
        gateway_id=gateway_id, batch_seq=batch_seq, outcome=outcome, reason=reason
    ).SerializeToString()


@pytest.mark.parametrize(
    ("payload", "problem"),
    [
        (ack(), None),
        (ack(outcome=pb.BatchAck.OUTCOME_REJECTED, reason="bad store"), None),
        (ack(gateway_id="gw-2"), "ack for gateway 'gw-2'"),
        (ack(batch_seq=0), "without a batch_seq"),
        (ack(outcome=pb.BatchAck.OUTCOME_UNSPECIFIED), "neither committed nor rejected"),
        (b"", "ack for gateway ''"),
        (b"\xff\xff\xff", "not a protobuf BatchAck"),
    ],
)
def test_parse_ack(payload: bytes, problem: str | None) -> None:
    if problem is None:
        assert parse_ack(payload, "gw-1").batch_seq == 5
    else:
        with pytest.raises(AckError, match=re.escape(problem)):
            parse_ack(payload, "gw-1")


def test_a_lease_always_becomes_the_same_payload_with_its_own_header() -> None:
    taken = Lease(42, T0 + 7, (shelf(1), shelf(2), event(9)), 1, 3)
    payload = batch_payload("s-1", "gw-1", taken)
    assert payload == batch_payload("s-1", "gw-1", taken)  # resends are byte-identical
    batch = unframe_batch(payload)
    assert (batch.version, batch.store_id, batch.gateway_id) == (1, "s-1", "gw-1")
    assert (batch.batch_seq, batch.created_ms) == (42, T0 + 7)
    assert [e.seq for e in batch.events] == [9]
    assert [s.seq for s in batch.shelf] == [1, 2]


# -- config --------------------------------------------------------------------------------

MINIMAL = 'store_id = "s1"\ngateway_id = "gw-1"\n'


def test_the_uplink_section_is_optional_and_its_defaults_are_sane(tmp_path: Path) -> None:
    assert GatewayConfig.model_validate({"store_id": "s1", "gateway_id": "gw-1"}).uplink is None
    path = tmp_path / "store.toml"
    path.write_text(MINIMAL + '[uplink]\nurl = "mqtts://cloud.example:8883"\n')
    uplink = load_config(path).uplink
    assert uplink is not None
    assert (uplink.window, uplink.linger_s, uplink.username) == (8, 1.0, None)


@pytest.mark.parametrize(
    ("section", "problem"),
    [
        ('url = "mqtt://c:1883"\nmax_record = 10', "uplink.max_record: Extra inputs"),
        ("window = 4", "uplink.url: Field required"),
        ('url = "mqtt://c:1883"\nack_timeout_s = 20\nack_timeout_max_s = 10', "ack_timeout_max_s"),
        ('url = "mqtt://c:1883"\nreplay_max_batches_per_s = 0', "replay_max_batches_per_s"),
    ],
)
def test_a_bad_uplink_section_stops_the_gateway(tmp_path: Path, section: str, problem: str) -> None:
    path = tmp_path / "store.toml"
    path.write_text(f"{MINIMAL}[uplink]\n{section}\n")
    with pytest.raises(ConfigError, match=re.escape(problem)):
        load_config(path)


def test_an_unset_password_variable_is_a_config_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SHELFLINK_TEST_CLOUD_PASSWORD", raising=False)
    config = GatewayConfig.model_validate(
        {
            "store_id": "s1",
            "gateway_id": "gw-1",
            "uplink": {"url": "mqtt://c:1883", "password_env": "SHELFLINK_TEST_CLOUD_PASSWORD"},
        }
    )
    assert config.uplink is not None
    with pytest.raises(ConfigError, match=r"uplink\.password_env"):
        config.uplink.password()
    monkeypatch.setenv("SHELFLINK_TEST_CLOUD_PASSWORD", "s3cret")
    assert config.uplink.password() == "s3cret"
