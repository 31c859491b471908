"""``python -m shelflink.broker.probe``: measure a broker the way docs/brokers.md reports it.

Without ``--url`` it starts the embedded broker as its own process (``--in-process`` runs
it in this process instead, sharing the interpreter with the measuring clients, as in
``shelflink demo``). Every figure comes from real paho-mqtt clients on this machine.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import platform
import sys
from collections.abc import Sequence
from typing import TypedDict

from shelflink.broker.conformance import (
    RedeliveryReport,
    SharedSubscriptionReport,
    check_session_redelivery,
    check_shared_subscription,
    supports_mqtt5,
)
from shelflink.broker.embedded import EmbeddedBroker
from shelflink.broker.process import BrokerProcess
from shelflink.broker.throughput import ThroughputReport, measure_throughput


class ProbeReport(TypedDict):
    broker: str
    url: str
    machine: str
    throughput: list[ThroughputReport]
    mqtt5: bool
    shared_subscription: SharedSubscriptionReport
    session_redelivery: RedeliveryReport


def probe(
    url: str,
    label: str,
    *,
    count: int = 20_000,
    payload_bytes: int = 300,
    window: int | None = 500,
    timeout_s: float = 120.0,
) -> ProbeReport:
    """Run every check against ``url``. Blocks (see ``measure_throughput``)."""
    throughput = [
        measure_throughput(url, count, payload_bytes, qos, window=window, timeout_s=timeout_s)
        for qos in (0, 1)
    ]
    return ProbeReport(
        broker=label,
        url=throughput[0]["url"],
        machine=f"{platform.machine()}, {platform.python_implementation()} "
        f"{platform.python_version()}",
        throughput=throughput,
        mqtt5=supports_mqtt5(url),
        shared_subscription=check_shared_subscription(url),
        session_redelivery=check_session_redelivery(url),
    )


def summary(report: ProbeReport) -> str:
    lines = [f"broker: {report['broker']} at {report['url']} ({report['machine']})"]
    for t in report["throughput"]:
        lines.append(
            f"QoS {t['qos']}: {t['received']}/{t['sent']} messages of {t['payload_bytes']} B"
            f" in {t['seconds']} s = {t['messages_per_s']:.0f} msg/s"
            f" (window {t['window']}, duplicates {t['duplicates']},"
            f" out of order {t['out_of_order']})"
        )
    shared = report["shared_subscription"]
    redelivery = report["session_redelivery"]
    lines += [
        f"MQTT 5: {'yes' if report['mqtt5'] else 'no'}",
        f"shared subscriptions: {'yes' if shared['shared'] else 'no'}"
        f" (per subscriber {shared['per_subscriber']}"
        + (f", {shared['error']}" if shared["error"] else "")
        + ")",
        f"persistent session redelivery: {redelivery['redelivered']}/{redelivery['queued']}"
        f" (in order: {redelivery['in_order']},"
        f" RETAIN set: {redelivery['retain_flag_on_redelivery']},"
        f" subscription kept: {redelivery['subscription_kept']})",
    ]
    return "\n".join(lines)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m shelflink.broker.probe", description=__doc__)
    target = parser.add_mutually_exclusive_group()
    target.add_argument("--url", help="probe this broker, e.g. mqtt://127.0.0.1:1883")
    target.add_argument(
        "--in-process", action="store_true", help="run the embedded broker in this process"
    )
    parser.add_argument("--label", help="name printed for the broker")
    parser.add_argument("--count", type=int, default=20_000)
    parser.add_argument("--payload-bytes", type=int, default=300)
    parser.add_argument(
        "--window", type=int, default=500, help="max published-not-received; 0 = unbounded"
    )
    parser.add_argument("--timeout", type=float, default=120.0, help="seconds per throughput run")
    parser.add_argument("--json", action="store_true", help="print the full report as JSON")
    return parser


async def _run(args: argparse.Namespace) -> ProbeReport:
    def run(url: str, label: str) -> ProbeReport:
        return probe(
            url,
            args.label or label,
            count=args.count,
            payload_bytes=args.payload_bytes,
            window=args.window or None,
            timeout_s=args.timeout,
        )

    if args.url:
        return await asyncio.to_thread(run, args.url, args.url)
    if args.in_process:
        async with EmbeddedBroker() as embedded:
            return await asyncio.to_thread(run, embedded.url, "embedded (amqtt, in-process)")
    async with BrokerProcess() as child:
        return await asyncio.to_thread(run, child.url, "embedded (amqtt, own process)")


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    report = asyncio.run(_run(args))
    print(json.dumps(report, indent=2) if args.json else summary(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
