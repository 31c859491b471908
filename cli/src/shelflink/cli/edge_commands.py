"""``shelflink edge evaluate``: the stock-out model against the baseline on a data set."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any


def register(commands: Any) -> None:
    edge = commands.add_parser("edge", help="the gateway's stock-out model and rules")
    sub = edge.add_subparsers(dest="edge_command", required=True, metavar="COMMAND")

    evaluate = sub.add_parser(
        "evaluate",
        help="replay a simulated data set; compare the stock-out model with the baseline",
        description=(
            "Replay a data set written by `shelflink sim dataset` through the gateway's lane "
            'features and print one JSON object {"model": {...}, "baseline": {...}}: '
            "ROC-AUC, PR-AUC, precision and recall at the model's threshold (the baseline at "
            "equal precision) and the median warning lead time of the stock-outs."
        ),
    )
    evaluate.add_argument("--dataset", type=Path, required=True, help="a data set folder")
    evaluate.add_argument(
        "--model",
        type=Path,
        default=None,
        help="a .tflite with its card (default: the packaged one)",
    )
    evaluate.set_defaults(handler=_evaluate)


def _evaluate(args: argparse.Namespace) -> int:
    from shelflink.edge.evaluation import evaluate
    from shelflink.edge.stockout_model import ModelError

    def progress(message: str) -> None:
        print(message, file=sys.stderr, flush=True)

    try:
        result = evaluate(args.dataset, args.model, progress=progress)
    except (ModelError, FileNotFoundError, ValueError) as exc:
        print(f"shelflink edge evaluate: {exc}", file=sys.stderr)
        return 2
    print(json.dumps(result, sort_keys=True))
    return 0
