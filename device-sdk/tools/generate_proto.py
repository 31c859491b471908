"""Regenerate the committed protobuf modules (``make proto``).

The generated code is committed so that gateways need no compiler; a test runs
this script into a temporary folder and fails when the committed files differ.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from grpc_tools import protoc  # type: ignore[import-untyped]

SRC = Path(__file__).resolve().parents[1] / "src"
PROTOS = ["shelflink/device/proto/batch.proto"]


def generate(out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    # protoc finds the mypy plugin (protoc-gen-mypy) on PATH, beside this interpreter.
    bin_dir = str(Path(sys.executable).parent)
    os.environ["PATH"] = bin_dir + os.pathsep + os.environ.get("PATH", "")
    args = ["protoc", f"-I{SRC}", f"--python_out={out}", f"--mypy_out={out}", *PROTOS]
    if protoc.main(args) != 0:
        raise SystemExit(f"protoc failed: {' '.join(args)}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", type=Path, default=SRC, help="output root (default: src/)")
    generate(parser.parse_args().out)


if __name__ == "__main__":
    main()
