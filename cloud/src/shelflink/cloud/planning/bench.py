"""How fast one dealer is planned, against a per-pair Python loop of the same policy, same run.

``bench_planning`` draws a synthetic partition (``synthetic``), times
``plan`` over all of it, then times ``plan_naive`` on the pairs of a sample of
stores and checks that ``plan`` gives the same quantities, reasons and
figures on that sample. ``shelflink bench plan`` reuses it; ``python -m
shelflink.cloud.planning.bench`` prints its figures.
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import fields
from typing import Any

import numpy as np

from shelflink.cloud.planning.codes import Reason
from shelflink.cloud.planning.naive import plan_naive
from shelflink.cloud.planning.plan import ReplenishmentPlan, plan
from shelflink.cloud.planning.synthetic import store_subset, synthetic_partition


def bench_planning(
    stores: int = 10_000,
    skus: int = 500,
    history_days: int = 28,
    naive_sample: int = 20_000,
    seed: int = 0,
    progress: Callable[[int, int], None] | None = None,
) -> dict[str, Any]:
    """Time the vectorised plan of ``stores × skus`` pairs and the naive loop on a sample.

    The sample is the pairs of ``naive_sample // skus`` stores (at least one),
    with the warehouse scaled to their share. ``progress(done, total)``
    counts pairs drawn, pairs planned, then sample pairs planned naively.
    """
    sample_stores = min(stores, max(1, naive_sample // skus))
    total_work = 2 * stores * skus + sample_stores * skus

    def stage(offset: int) -> Callable[[int, int], None] | None:
        if progress is None:
            return None
        report = progress
        return lambda done, _total: report(offset + done, total_work)

    partition = synthetic_partition(stores, skus, history_days, seed, stage(0))
    pairs = stores * skus
    started, cpu_started = time.perf_counter(), time.process_time()
    result = plan(
        partition.stores, partition.skus, partition.pairs, partition.weekdays,
        progress=stage(pairs),
    )  # fmt: skip
    seconds, cpu_seconds = time.perf_counter() - started, time.process_time() - cpu_started

    chosen = np.sort(np.random.default_rng(seed + 1).choice(stores, sample_stores, replace=False))
    sample = store_subset(partition, chosen)
    sample_pairs = sample.pairs.store.shape[0]
    started, cpu_started = time.perf_counter(), time.process_time()
    naive = plan_naive(sample.stores, sample.skus, sample.pairs, sample.weekdays)
    naive_seconds = time.perf_counter() - started
    naive_cpu_seconds = time.process_time() - cpu_started
    if progress is not None:
        progress(total_work, total_work)
    vectorised = plan(sample.stores, sample.skus, sample.pairs, sample.weekdays)
    mismatched = _mismatched_pairs(vectorised, naive)

    pairs_per_s = pairs / seconds
    naive_pairs_per_s = sample_pairs / naive_seconds
    return {
        "pairs": pairs,
        "stores": stores,
        "skus": skus,
        "history_days": history_days,
        "seconds": round(seconds, 3),
        "pairs_per_s": round(pairs_per_s, 1),
        "naive_pairs": sample_pairs,
        "naive_seconds": round(naive_seconds, 3),
        "naive_pairs_per_s": round(naive_pairs_per_s, 1),
        "speedup": round(pairs_per_s / naive_pairs_per_s, 1),
        # CPU time is less sensitive than the wall clock to other load on the machine.
        "cpu_seconds": round(cpu_seconds, 3),
        "naive_cpu_seconds": round(naive_cpu_seconds, 3),
        "cpu_speedup": round((pairs / cpu_seconds) / (sample_pairs / naive_cpu_seconds), 1),
        "sample_identical": mismatched == 0,
        "sample_mismatched_pairs": mismatched,
        "ordered_pairs": int(np.count_nonzero(result.quantity)),
        "allocated_short_pairs": int(np.count_nonzero(result.reason == Reason.ALLOCATED_SHORT)),
        "history_mb": round(partition.pairs.history.nbytes / 2**20, 1),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
    }


def _mismatched_pairs(left: ReplenishmentPlan, right: ReplenishmentPlan) -> int:
    """Pairs where any field of the two plans differs (exactly, floats included)."""
    differs = np.zeros(left.quantity.shape[0], dtype=np.bool_)
    for field in fields(ReplenishmentPlan):
        differs |= getattr(left, field.name) != getattr(right, field.name)
    return int(np.count_nonzero(differs))


def main(argv: Sequence[str] | None = None) -> None:
    """Print the figures of one run as a JSON line."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0] if __doc__ else None)
    parser.add_argument("--stores", type=int, default=10_000)
    parser.add_argument("--skus", type=int, default=500)
    parser.add_argument("--history-days", type=int, default=28)
    parser.add_argument("--naive-sample", type=int, default=20_000)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    figures = bench_planning(
        args.stores, args.skus, args.history_days, args.naive_sample, args.seed
    )
    json.dump(figures, sys.stdout)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
