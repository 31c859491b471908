"""``shelflink bench …``: benchmarks are programs that print their figures and the
baseline they ran against; the last line is always one JSON object."""

from __future__ import annotations

import argparse
import json
from typing import Any


def register(commands: Any) -> None:
    bench = commands.add_parser("bench", help="benchmarks (figures go to docs/benchmarks.md)")
    sub = bench.add_subparsers(dest="bench_command", required=True, metavar="BENCH")

    sim = sub.add_parser("sim", help="simulated store-days per second for `sim dataset`")
    sim.add_argument("--stores", type=int, default=4)
    sim.add_argument("--days", type=float, default=5.0)
    sim.add_argument("--profile", default="convenience")
    sim.set_defaults(handler=_bench_sim)

    broker = sub.add_parser(
        "broker", help="messages per second through the embedded broker, against a baseline"
    )
    broker.add_argument("--count", type=int, default=20_000)
    broker.add_argument("--payload-bytes", type=int, default=300)
    broker.add_argument(
        "--baseline",
        metavar="URL",
        help="another broker measured in the same run, e.g. mqtt://127.0.0.1:1883 (Mosquitto)",
    )
    broker.set_defaults(handler=_bench_broker)

    gateway = sub.add_parser(
        "gateway", help="readings/s into one gateway's durable buffer vs a raw SQLite insert"
    )
    gateway.add_argument("--messages", type=int, default=200_000)
    gateway.add_argument("--devices", type=int, default=50)
    gateway.add_argument("--lanes", type=int, default=8, help="lanes per shelf")
    gateway.set_defaults(handler=_bench_gateway)

    ingest = sub.add_parser(
        "ingest", help="cloud ingest vs the whole path vs raw COPY vs a naive consumer"
    )
    ingest.add_argument("--readings", type=int, default=100_000)
    ingest.add_argument("--naive-readings", type=int, default=5_000)
    ingest.add_argument(
        "--broker", metavar="URL", help="cloud broker (default: start the embedded one)"
    )
    ingest.set_defaults(handler=_bench_ingest)

    plan = sub.add_parser(
        "plan",
        help="replenishment pairs/s, vectorised vs a per-pair loop; dealer API latency "
        "listing orders with a million in the database",
    )
    plan.add_argument("--stores", type=int, default=10_000)
    plan.add_argument("--skus", type=int, default=500)
    plan.add_argument("--history-days", type=int, default=28)
    plan.add_argument("--naive-sample", type=int, default=20_000)
    plan.add_argument("--seed", type=int, default=0)
    plan.add_argument("--orders", type=int, default=1_000_000, help="orders in the database")
    plan.add_argument(
        "--rate", type=float, default=25.0, help="list requests per second (one API process)"
    )
    plan.add_argument("--duration", type=float, default=20.0, help="seconds of steady load")
    plan.add_argument(
        "--database-url",
        help="PostgreSQL server for the API part (a scratch database is created and dropped); "
        "default: SHELFLINK_DATABASE_URL, else an embedded server",
    )
    plan.set_defaults(handler=_bench_plan)

    stream = sub.add_parser("stream", help="lane readings/s replayed through the shelf features")
    stream.add_argument("--days", type=float, default=14.0)
    stream.add_argument("--seed", type=int, default=1)
    stream.add_argument("--profile", default="convenience")
    stream.set_defaults(handler=_bench_stream)

    edge = sub.add_parser(
        "edge",
        help="readings/s through the edge (400 lanes, 10 fridges), batched vs per-lane "
        "inference, gateway memory",
    )
    edge.add_argument("--minutes", type=int, default=120, help="simulated minutes of readings")
    edge.add_argument("--ticks", type=int, default=200, help="ticks for the latency figures")
    edge.set_defaults(handler=_bench_edge)


def _bench_sim(args: argparse.Namespace) -> int:
    from shelflink.cli.sim_commands import progress_bar
    from shelflink.sim import bench_dataset

    figures: dict[str, Any] = {}
    with progress_bar() as bar:
        for write in (False, True):
            label = "model + Parquet" if write else "model only"
            task = bar.add_task(label, total=None)

            def progress(done: int, total: int, task: Any = task) -> None:
                bar.update(task, completed=done, total=total)

            result = bench_dataset(
                args.stores, args.days, profile=args.profile, write=write, progress=progress
            )
            figures["with_parquet" if write else "model_only"] = result
    model, full = figures["model_only"], figures["with_parquet"]
    print(f"model only:      {model['store_days_per_s']:.1f} store-days/s")
    print(f"model + Parquet: {full['store_days_per_s']:.1f} store-days/s")
    print(
        json.dumps(
            {
                "store_days_per_s": full["store_days_per_s"],
                "model_only_store_days_per_s": model["store_days_per_s"],
                "lane_readings_per_s": full["lane_readings_per_s"],
                "profile": args.profile,
                "lanes_per_store": full["lanes_per_store"],
            }
        )
    )
    return 0


def _bench_broker(args: argparse.Namespace) -> int:
    import asyncio

    from shelflink.broker import measure_throughput
    from shelflink.broker.process import BrokerProcess

    async def embedded_url_run() -> list[dict[str, Any]]:
        # The broker runs in its own process, as Mosquitto does, so the measuring
        # clients and the broker do not share one event loop.
        async with BrokerProcess() as broker:
            return [
                dict(
                    await asyncio.to_thread(
                        measure_throughput, broker.url, args.count, args.payload_bytes, qos
                    )
                )
                for qos in (0, 1)
            ]

    results: dict[str, list[dict[str, Any]]] = {"embedded": asyncio.run(embedded_url_run())}
    if args.baseline:
        results["baseline"] = [
            dict(measure_throughput(args.baseline, args.count, args.payload_bytes, qos))
            for qos in (0, 1)
        ]
    for name, runs in results.items():
        for run in runs:
            print(
                f"{name:9} qos {run['qos']}: {run['messages_per_s']:,.0f} msg/s "
                f"complete={run['complete']}"
            )
    line: dict[str, Any] = {
        "embedded_qos0_msg_per_s": results["embedded"][0]["messages_per_s"],
        "embedded_qos1_msg_per_s": results["embedded"][1]["messages_per_s"],
    }
    if "baseline" in results:
        line["baseline_qos0_msg_per_s"] = results["baseline"][0]["messages_per_s"]
        line["baseline_qos1_msg_per_s"] = results["baseline"][1]["messages_per_s"]
    print(json.dumps(line))
    return 0


def _bench_gateway(args: argparse.Namespace) -> int:
    from shelflink.gateway.bench import bench_gateway

    result = bench_gateway(args.messages, args.devices, args.lanes)
    ours, ceiling = result["gateway"], result["sqlite_ceiling"]
    print(
        f"store: {result['devices']} shelves, {result['lanes']} lanes; "
        f"{result['messages']:,} readings"
    )
    print(
        f"gateway intake (decode, checks, buffer commit): {ours['readings_per_s']:,} readings/s "
        f"({ours['lane_values_per_s']:,} lane values/s, {ours['commits']} commits)"
    )
    print(f"raw SQLite executemany, same rows (ceiling):   {ceiling['rows_per_s']:,} rows/s")
    print(f"ratio: {ours['readings_per_s'] / ceiling['rows_per_s']:.2f} of the ceiling")
    print(f"peak resident memory: {result['rss_mb']} MB")
    line = {k: result[k] for k in ("readings_per_s", "sqlite_ceiling_per_s", "rss_mb")}
    print(json.dumps(line))
    return 0


def _bench_ingest(args: argparse.Namespace) -> int:
    import asyncio
    import contextlib

    from shelflink.broker.process import BrokerProcess
    from shelflink.cli.ingest_bench import run_ingest_bench
    from shelflink.cloud.database import open_database
    from shelflink.cloud.settings import load_settings

    async def main() -> dict[str, Any]:
        async with contextlib.AsyncExitStack() as stack:
            broker_url = args.broker
            if not broker_url:
                broker_url = (await stack.enter_async_context(BrokerProcess())).url
            database_url = await stack.enter_async_context(open_database(load_settings()))
            return await run_ingest_bench(
                broker_url, database_url, args.readings, args.naive_readings
            )

    result = asyncio.run(main())
    copy = result["copy_rows_per_s"]
    print(f"rows: {result['rows']:,} in {result['batches']} batches")
    for label, key in (
        ("ingest alone (broker → committed rows)", "ingest_rows_per_s"),
        ("whole path (gateway buffer → committed rows)", "path_rows_per_s"),
        ("raw COPY of the same rows (ceiling)", "copy_rows_per_s"),
        ("naive: one INSERT and commit per reading", "naive_rows_per_s"),
    ):
        print(f"{label:46} {result[key]:>10,} rows/s  {result[key] / copy:5.2f}× COPY")
    print(f"ingest vs naive: {result['ingest_rows_per_s'] / result['naive_rows_per_s']:.1f}×")
    keys = ("ingest_rows_per_s", "path_rows_per_s", "copy_rows_per_s", "naive_rows_per_s")
    print(json.dumps({k: result[k] for k in keys}))
    return 0


def _bench_edge(args: argparse.Namespace) -> int:
    import sys

    from shelflink.cli.edge_bench import bench_edge

    result = bench_edge(
        minutes=args.minutes,
        infer_ticks=args.ticks,
        progress=lambda text: print(text, file=sys.stderr, flush=True),
    )
    print(
        f"{result['readings']:,} readings ({result['lanes']} lanes, {result['fridges']} fridges, "
        f"{result['ticks']} ticks) in {result['seconds']:.2f} s on one core: "
        f"{result['readings_per_s']:,.0f} readings/s"
    )
    print(
        f"inference per tick, {result['lanes']} lanes: batched p50 {result['infer_p50_ms']:.3f} ms "
        f"p99 {result['infer_p99_ms']:.3f} ms; one call per lane p50 "
        f"{result['per_lane_p50_ms']:.2f} ms p99 {result['per_lane_p99_ms']:.2f} ms"
    )
    print(
        f"gateway process with the model loaded: {result['rss_mb']:.0f} MB resident "
        f"(the same gateway without its edge: {result['rss_without_edge_mb']:.0f} MB)"
    )
    keys = ("readings_per_s", "infer_p50_ms", "infer_p99_ms", "per_lane_p99_ms", "rss_mb")
    print(json.dumps({k: round(result[k], 3) for k in keys}))
    return 0


def _bench_stream(args: argparse.Namespace) -> int:
    import tempfile
    from pathlib import Path

    import numpy as np
    import pyarrow.parquet as pq

    from shelflink.sim import write_dataset
    from shelflink.stream.lane_replay import numpy_call_cost_us, time_replay
    from shelflink.stream.lanes import LaneFeatureState, LaneSpec

    with tempfile.TemporaryDirectory() as folder:
        out = Path(folder)
        write_dataset(1, args.days, args.seed, out, profile_mix={args.profile: 1})
        rows = pq.read_table(out / "lanes.parquet").to_pylist()
        readings = pq.read_table(out / "readings.parquet")
    lanes = [LaneSpec(r["device"], r["lane"], r["gtin"], r["unit_g"], r["capacity"]) for r in rows]
    position = {(s.device, s.lane): i for i, s in enumerate(lanes)}
    devices = readings.column("device").to_pylist()
    numbers = readings.column("lane").to_pylist()
    idx = np.array([position[p] for p in zip(devices, numbers, strict=True)], dtype=np.int64)
    ts = readings.column("ts").cast("int64").to_numpy()
    grams = readings.column("grams").to_numpy(zero_copy_only=False).astype(np.float64)
    board_c = readings.column("board_c").to_numpy().astype(np.float64)
    # The fixed cost of one small numpy call on this machine now: the replay's unit of work.
    baseline = numpy_call_cost_us()
    figures = {}
    for label, every in (("readings", 0), ("readings + features every 15 ticks", 15)):
        f = time_replay(LaneFeatureState(lanes), ts, idx, grams, board_c, features_every=every)
        figures[label] = f
        print(
            f"{label}: {f.lane_readings:,} lane readings of {f.lanes} lanes over {f.ticks:,} "
            f"ticks in {f.seconds:.2f} s ({f.cpu_seconds:.2f} s CPU): "
            f"{f.lane_readings_per_s:,.0f} lane readings/s, {f.us_per_tick:.0f} µs/tick"
        )
    print(f"baseline: {baseline:.2f} µs per small numpy call on this machine")
    plain, full = figures["readings"], figures["readings + features every 15 ticks"]
    summary = {
        "lane_readings_per_s": round(plain.lane_readings_per_s),
        "us_per_tick": round(plain.us_per_tick, 1),
        "seconds": round(plain.seconds, 2),
        "cpu_seconds": round(plain.cpu_seconds, 2),
        "with_features_seconds": round(full.seconds, 2),
        "lanes": plain.lanes,
        "ticks": plain.ticks,
        "profile": args.profile,
        "days": args.days,
        "numpy_call_us": round(baseline, 2),
    }
    print(json.dumps(summary))
    return 0


def _bench_plan(args: argparse.Namespace) -> int:
    import asyncio

    from shelflink.cli.sim_commands import progress_bar
    from shelflink.cloud.api_bench import run_api_bench
    from shelflink.cloud.database import open_database
    from shelflink.cloud.planning.bench import bench_planning
    from shelflink.cloud.settings import load_settings

    with progress_bar() as bar:
        task = bar.add_task(f"planning {args.stores:,} stores × {args.skus} SKUs", total=None)

        def progress(done: int, total: int) -> None:
            bar.update(task, completed=done, total=total)

        plan = bench_planning(
            args.stores, args.skus, args.history_days, args.naive_sample, args.seed, progress
        )
    print(f"vectorised: {plan['pairs_per_s']:,.0f} pairs/s ({plan['pairs']:,} pairs)")
    print(
        f"naive loop: {plan['naive_pairs_per_s']:,.0f} pairs/s "
        f"({plan['naive_pairs']:,} pairs, the baseline)"
    )
    print(
        f"speedup {plan['speedup']}× (CPU time {plan['cpu_speedup']}×), identical on the "
        f"sample: {plan['sample_identical']}, peak RSS {plan['peak_rss_mb']} MB"
    )

    async def api() -> dict[str, Any]:
        settings = load_settings(database_url=args.database_url)
        async with open_database(settings) as url:
            with progress_bar() as bar:
                tasks: dict[str, Any] = {}

                def progress(stage: str, done: int, total: int) -> None:
                    if stage not in tasks:
                        tasks[stage] = bar.add_task(stage, total=total)
                    bar.update(tasks[stage], completed=done, total=total)

                return await run_api_bench(url, args.orders, args.rate, args.duration, progress)

    figures = asyncio.run(api())
    print(
        f"dealer API, list orders with {figures['orders']:,} orders at {args.rate:g} req/s "
        f"(achieved {figures['achieved_rate']:.0f}): p50 {figures['api_p50_ms']:.1f} ms, "
        f"p99 {figures['api_p99_ms']:.1f} ms, {figures['errors']} errors "
        f"(seeding took {figures['seed_s']} s)"
    )
    summary = {
        "pairs_per_s": round(plan["pairs_per_s"]),
        "naive_pairs_per_s": round(plan["naive_pairs_per_s"]),
        "api_p50_ms": round(figures["api_p50_ms"], 2),
        "api_p99_ms": round(figures["api_p99_ms"], 2),
    }
    print(json.dumps(summary))
    return 0 if plan["sample_identical"] and not figures["errors"] else 1
