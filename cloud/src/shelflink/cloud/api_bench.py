"""How fast the dealer API lists orders when the database holds a million of them.

The bench creates a database of its own on the given server (migrated, dropped
afterwards), seeds dealers, stores, SKUs and ``orders`` orders with their lines
in SQL (``generate_series``, no row-by-row INSERTs), starts the API under
uvicorn in a child process (so that the load generator does not share the
server's event loop or interpreter lock), and sends list-orders requests from a
dealer's key at a steady open-loop rate: request *i* is due at ``start + i /
rate`` whether or not earlier ones have answered, and its latency is counted
from that due time. A server that falls behind therefore shows its queueing in
the figures instead of silently slowing the client down (coordinated
omission).

The requests mix first pages and deep keyset pages, with and without the state
and store filters. The bench key never meets its rate limit, but every request
still spends from its bucket: ``--rate-limit-store`` picks where the buckets
live (the API's default, the database, or the process), to measure what the
shared limiter costs. ``shelflink bench plan`` runs it; ``python -m
shelflink.cloud.api_bench`` too.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import signal
import statistics
import sys
import time
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from typing import Any

import httpx

from shelflink.cloud.api.pagination import encode_cursor
from shelflink.cloud.api.rate_limit import RATE_LIMIT_STORES, RateLimitStore
from shelflink.cloud.api.state import ApiOptions
from shelflink.cloud.api_keys import issue_key
from shelflink.cloud.database import Connection, connect
from shelflink.cloud.orders_workflow import OrderState
from shelflink.cloud.storage_bench import scratch_database

# (stage, done, total): "seed" counts orders, "load" counts requests.
Progress = Callable[[str, int, int], None]

DEALERS = 20
STORES = 2_000
SKUS = 50
SEED_CHUNK = 100_000
WARMUP_S = 1.0
PAGE = 50
CONNECTIONS = 32
BENCH_DEALER = "d01"  # the largest dealer: about a fifth of the stores

# How orders are spread over states, in percent: most of a year's orders are done.
STATE_SHARES: tuple[tuple[OrderState, int], ...] = (
    (OrderState.DELIVERED, 62),
    (OrderState.CANCELLED, 5),
    (OrderState.REJECTED, 5),
    (OrderState.SHIPPED, 7),
    (OrderState.PICKING, 6),
    (OrderState.APPROVED, 7),
    (OrderState.SUGGESTED, 8),
)


@dataclass(frozen=True, slots=True)
class Seeded:
    """What the seeding produced and what the load needs."""

    orders: int
    seconds: float
    dealer_key: str
    store_ids: list[str]  # the bench dealer's stores
    dealer_orders: int  # the bench dealer's share of the orders


def _state_case() -> str:
    # A hash of the order number picks the state, so the spread is even over time
    # and the same for every run.
    branches, upper = [], 0
    for state, share in STATE_SHARES:
        upper += share
        branches.append(f"WHEN h < {upper} THEN '{state}'")
    return f"CASE {' '.join(branches)} END"


async def _seed_master_data(conn: Connection) -> None:
    await conn.execute(
        "INSERT INTO brand (name, currency) VALUES ('Bench Drinks', 'EUR')"
        " ON CONFLICT (singleton) DO NOTHING"
    )
    await conn.execute(
        "INSERT INTO dealers (dealer_id, name, territory)"
        " SELECT 'd' || lpad(k::text, 2, '0'), 'Dealer ' || k, ARRAY['R' || k]"
        " FROM generate_series(1, %s) k",
        (DEALERS,),
    )
    # Store i belongs to dealer 1 + floor(DEALERS * (i / STORES)^2): a few large
    # dealers and a long tail of small ones, as in a real distribution network.
    await conn.execute(
        """
        INSERT INTO stores (store_id, dealer_id, name, region, lead_time_days, delivery_weekdays)
        SELECT 's' || lpad(i::text, 5, '0'), 'd' || lpad(k::text, 2, '0'), 'Store ' || i,
               'R' || k, 1 + i %% 3, ARRAY[1 + i %% 5, 4]::smallint[]
        FROM generate_series(0, %(stores)s - 1) i,
             LATERAL (SELECT 1 + floor(%(dealers)s * power(i::float / %(stores)s, 2))::int AS k) d
        """,
        {"stores": STORES, "dealers": DEALERS},
    )
    await conn.execute(
        "INSERT INTO skus (gtin, name, case_pack, min_order_units, cold_chain,"
        " list_price_minor, min_resale_minor, currency)"
        " SELECT lpad((40000000 + j)::text, 8, '0'), 'SKU ' || j, 12, 12,"
        " (ARRAY['ambient', 'chilled', 'frozen'])[1 + j %% 3], 40 + 5 * j, 60 + 7 * j, 'EUR'"
        " FROM generate_series(0, %s - 1) j",
        (SKUS,),
    )


async def _seed_orders(conn: Connection, lo: int, hi: int, total: int) -> None:
    # Order g: store (g * 7919) mod STORES (7919 is prime to STORES: every store in
    # turn), created over the last year in order, with 1-3 lines whose SKU and
    # quantity come from g; value_minor is the sum of those lines.
    line = (
        f"lpad((40000000 + (g * 31 + l * 17) %% {SKUS})::text, 8, '0') AS gtin,"
        " 12 * (1 + (g + l) %% 4) AS quantity,"
        f" 40 + 5 * ((g * 31 + l * 17) %% {SKUS}) AS price"
    )
    await conn.execute(
        f"""
        INSERT INTO orders (order_id, dealer_id, store_id, state, reason, expedite,
                            value_minor, currency, version, created_at, updated_at)
        OVERRIDING SYSTEM VALUE
        SELECT g, s.dealer_id, s.store_id, {_state_case()}, 'below_reorder_point', g %% 17 = 0,
               (SELECT sum(quantity * price) FROM (
                    SELECT {line} FROM generate_series(1, 1 + g %% 3) l) v),
               'EUR', 1 + g %% 4, t, t + interval '2 hours'
        FROM generate_series(%(lo)s::bigint, %(hi)s) g
        CROSS JOIN LATERAL (SELECT (g * 2654435761) %% 100 AS h,
                                   now() - make_interval(secs => (%(total)s - g)
                                       * 31536000.0 / %(total)s) AS t) x
        JOIN stores s ON s.store_id = 's' || lpad(((g * 7919) %% {STORES})::text, 5, '0')
        """,
        {"lo": lo, "hi": hi, "total": total},
    )
    await conn.execute(
        f"""
        INSERT INTO order_lines (order_id, line_no, gtin, quantity, unit_price_minor)
        SELECT g, l, v.gtin, v.quantity, v.price
        FROM generate_series(%(lo)s::bigint, %(hi)s) g,
             generate_series(1, 1 + g %% 3) l,
             LATERAL (SELECT {line}) v
        """,
        {"lo": lo, "hi": hi},
    )


async def seed(conn: Connection, orders: int, progress: Progress | None = None) -> Seeded:
    """Fill an empty, migrated database; returns what the load needs."""
    began = time.perf_counter()
    await _seed_master_data(conn)
    for lo in range(1, orders + 1, SEED_CHUNK):
        hi = min(orders, lo + SEED_CHUNK - 1)
        await _seed_orders(conn, lo, hi, orders)
        if progress is not None:
            progress("seed", hi, orders)
    # Orders created after the seed (none in the bench) continue the numbering.
    await conn.execute("SELECT setval(pg_get_serial_sequence('orders', 'order_id'), %s)", (orders,))
    await conn.execute("ANALYZE")
    seconds = time.perf_counter() - began
    cur = await conn.execute(
        "SELECT store_id FROM stores WHERE dealer_id = %s ORDER BY store_id", (BENCH_DEALER,)
    )
    stores = [row[0] for row in await cur.fetchall()]
    cur = await conn.execute("SELECT count(*) FROM orders WHERE dealer_id = %s", (BENCH_DEALER,))
    row = await cur.fetchone()
    assert row is not None
    key = await issue_key(conn, BENCH_DEALER, label="api bench")
    return Seeded(orders, seconds, key.api_key, stores, int(row[0]))


@contextlib.asynccontextmanager
async def api_process(database_url: str, options: ApiOptions) -> AsyncIterator[str]:
    """The API under uvicorn in a child process; yields its base URL, stops it with
    SIGTERM afterwards."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "shelflink.cloud.api_bench", "--serve", database_url,
        "--serve-rate", str(options.rate_per_s), "--serve-burst", str(options.burst),
        "--serve-rate-limit-store", options.rate_limit_store,
        stdout=asyncio.subprocess.PIPE,
    )  # fmt: skip
    try:
        assert proc.stdout is not None
        async with asyncio.timeout(30):
            line = await proc.stdout.readline()
        if not line:
            raise RuntimeError(f"the API process ended before it listened ({await proc.wait()})")
        yield str(json.loads(line)["url"])
    finally:
        if proc.returncode is None:
            proc.send_signal(signal.SIGTERM)
            try:
                async with asyncio.timeout(15):
                    await proc.wait()
            except TimeoutError:
                proc.kill()
                await proc.wait()


def _requests(seeded: Seeded, count: int, rng: random.Random) -> list[tuple[str, dict[str, Any]]]:
    """(kind, query) per request: first pages and deep keyset pages, filtered or not."""
    states = [state for state, _ in STATE_SHARES]
    plan: list[tuple[str, dict[str, Any]]] = []
    for _ in range(count):
        query: dict[str, Any] = {"limit": PAGE}
        draw = rng.random()
        if draw < 0.35:
            kind = "first"
        elif draw < 0.50:
            kind, query["state"] = "first_state", rng.choice(states)
        elif draw < 0.65:
            kind, query["store_id"] = "first_store", rng.choice(seeded.store_ids)
        elif draw < 0.85:
            kind = "deep"
        else:
            kind, query["state"] = "deep_state", rng.choice(states)
        if kind.startswith("deep"):
            # A cursor as a client paging back in time would hold: older than a
            # random order of the year.
            query["cursor"] = encode_cursor(rng.randint(1, seeded.orders))
        plan.append((kind, query))
    return plan


def _percentile(values: Sequence[float], q: float) -> float:
    if not values:
        return float("nan")
    if len(values) == 1:
        return values[0]
    return statistics.quantiles(values, n=1000, method="inclusive")[int(q * 1000) - 1]


async def _load(
    base_url: str,
    seeded: Seeded,
    rate_per_s: float,
    duration_s: float,
    progress: Progress | None,
) -> dict[str, Any]:
    rng = random.Random(20240601)
    warmup = int(rate_per_s * WARMUP_S)
    total = warmup + max(1, int(rate_per_s * duration_s))
    plan = _requests(seeded, total, rng)
    latencies: dict[str, list[float]] = {}
    errors = 0
    headers = {"Authorization": f"Bearer {seeded.dealer_key}"}
    limits = httpx.Limits(max_connections=CONNECTIONS, max_keepalive_connections=CONNECTIONS)
    # Requests beyond the connections wait here, in a FIFO whose wait is part of their
    # latency, rather than in the HTTP client's pool, whose bookkeeping grows with
    # the square of the queue and would make the client the bottleneck.
    connections = asyncio.Semaphore(CONNECTIONS)
    async with httpx.AsyncClient(
        base_url=base_url, headers=headers, limits=limits, timeout=30.0, trust_env=False
    ) as client:

        async def one(i: int, due: float) -> None:
            nonlocal errors
            kind, query = plan[i]
            try:
                async with connections:
                    response = await client.get("/api/v1/orders", params=query)
                ok = response.status_code == 200 and b'"order_id"' in response.content
            except httpx.HTTPError:
                ok = False
            finished = time.perf_counter()
            if i < warmup:
                return
            if not ok:
                errors += 1
            latencies.setdefault(kind, []).append((finished - due) * 1000.0)

        start = time.perf_counter()
        async with asyncio.TaskGroup() as group:
            for i in range(total):
                due = start + i / rate_per_s
                delay = due - time.perf_counter()
                if delay > 0:
                    await asyncio.sleep(delay)
                group.create_task(one(i, due))
                if progress is not None and i % max(1, int(rate_per_s)) == 0:
                    progress("load", i, total)
        measured_s = time.perf_counter() - start - WARMUP_S
    every = sorted(v for values in latencies.values() for v in values)
    by_kind = {
        kind: {
            "requests": len(values),
            "p50_ms": round(_percentile(sorted(values), 0.5), 2),
            "p99_ms": round(_percentile(sorted(values), 0.99), 2),
        }
        for kind, values in sorted(latencies.items())
    }
    return {
        "requests": len(every),
        "api_p50_ms": round(_percentile(every, 0.5), 2),
        "api_p90_ms": round(_percentile(every, 0.9), 2),
        "api_p99_ms": round(_percentile(every, 0.99), 2),
        "api_max_ms": round(every[-1], 2) if every else None,
        "errors": errors,
        "achieved_rate": round(len(every) / measured_s, 1) if measured_s > 0 else 0.0,
        "by_kind": by_kind,
    }


async def run_api_bench(
    server_url: str,
    orders: int = 1_000_000,
    rate_per_s: float = 200.0,
    duration_s: float = 20.0,
    progress: Progress | None = None,
    *,
    rate_limit_store: RateLimitStore = "database",
) -> dict[str, Any]:
    """Seed a scratch database on ``server_url``'s server, load the API, drop it."""
    if orders < 1 or rate_per_s <= 0 or duration_s <= 0:
        raise ValueError("orders, rate_per_s and duration_s must be positive")
    async with scratch_database(server_url) as url:
        async with await connect(url) as conn:
            seeded = await seed(conn, orders, progress)
            cur = await conn.execute("SHOW server_version")
            row = await cur.fetchone()
        # The bench key must never meet the rate limit: the limit is not measured.
        options = ApiOptions(
            rate_per_s=rate_per_s * 10,
            burst=int(rate_per_s * 10),
            rate_limit_store=rate_limit_store,
        )
        async with api_process(url, options) as base_url:
            result = await _load(base_url, seeded, rate_per_s, duration_s, progress)
    return {
        "orders": orders,
        "seed_s": round(seeded.seconds, 1),
        "rate_per_s": rate_per_s,
        "duration_s": duration_s,
        "rate_limit_store": rate_limit_store,
        "dealer_orders": seeded.dealer_orders,
        "server": str(row[0]) if row else "?",
        **result,
    }


def bench_api(
    database_url: str,
    orders: int = 1_000_000,
    rate_per_s: float = 200.0,
    duration_s: float = 20.0,
    progress: Progress | None = None,
    *,
    rate_limit_store: RateLimitStore = "database",
) -> dict[str, Any]:
    """Run :func:`run_api_bench` in its own event loop (for the command line).

    ``database_url`` names the server; the bench works in a database of its own
    there and drops it afterwards. Returns orders, requests, api_p50_ms,
    api_p99_ms, errors and achieved_rate, and more detail beside them.
    """
    return asyncio.run(
        run_api_bench(
            database_url,
            orders,
            rate_per_s,
            duration_s,
            progress,
            rate_limit_store=rate_limit_store,
        )
    )


async def _serve(database_url: str, rate: float, burst: int, store: RateLimitStore) -> None:
    from shelflink.cloud.api.serve import serve

    def ready(url: str) -> None:
        print(json.dumps({"url": url}), flush=True)

    await serve(
        database_url,
        host="127.0.0.1",
        port=0,
        options=ApiOptions(rate_per_s=rate, burst=burst, rate_limit_store=store),
        on_ready=ready,
    )


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0] if __doc__ else None)
    parser.add_argument("--database-url", default=os.environ.get("SHELFLINK_DATABASE_URL"))
    parser.add_argument("--orders", type=int, default=1_000_000)
    parser.add_argument("--rate", type=float, default=200.0)
    parser.add_argument("--duration", type=float, default=20.0)
    parser.add_argument(
        "--rate-limit-store",
        choices=RATE_LIMIT_STORES,
        default="database",
        help="where the API keeps its rate-limit buckets (database, the API's default)",
    )
    # The child process the bench starts: the API alone, on a free loopback port.
    parser.add_argument("--serve", metavar="DATABASE_URL", help=argparse.SUPPRESS)
    parser.add_argument("--serve-rate", type=float, default=2000.0, help=argparse.SUPPRESS)
    parser.add_argument("--serve-burst", type=float, default=2000, help=argparse.SUPPRESS)
    parser.add_argument(
        "--serve-rate-limit-store", choices=RATE_LIMIT_STORES, default="database",
        help=argparse.SUPPRESS,
    )  # fmt: skip
    args = parser.parse_args(argv)
    if args.serve:
        asyncio.run(
            _serve(args.serve, args.serve_rate, int(args.serve_burst), args.serve_rate_limit_store)
        )
        return
    if not args.database_url:
        parser.error("--database-url (or SHELFLINK_DATABASE_URL) names the PostgreSQL server")

    def progress(stage: str, done: int, total: int) -> None:
        print(f"{stage}: {done:,}/{total:,}", file=sys.stderr, flush=True)

    result = bench_api(
        args.database_url,
        args.orders,
        args.rate,
        args.duration,
        progress,
        rate_limit_store=args.rate_limit_store,
    )
    print(json.dumps(result))


if __name__ == "__main__":
    main()
