"""What a live run really published: per device, the acknowledged DATA messages.

A test (or an operator) compares it with what arrived downstream: every
message counted here got its broker's PUBACK, so anything missing further on
was lost after the broker, not before it.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

MANIFEST_VERSION = 1


@dataclass(slots=True)
class DeviceRecord:
    device_id: str
    store_id: str
    kind: str
    first_seq: int | None = None
    last_seq: int | None = None
    count: int = 0

    def acknowledged(self, seq: int) -> None:
        self.count += 1
        self.first_seq = seq if self.first_seq is None else min(self.first_seq, seq)
        self.last_seq = seq if self.last_seq is None else max(self.last_seq, seq)


@dataclass(frozen=True, slots=True)
class Manifest:
    seed: int
    stores: int
    speed: float
    sim_start_ms: int
    sim_end_ms: int  # the last simulated tick's timestamp
    ticks: int
    devices: tuple[DeviceRecord, ...]

    @property
    def total(self) -> int:
        return sum(d.count for d in self.devices)

    def to_json(self) -> dict[str, Any]:
        body = asdict(self)
        body["devices"] = [asdict(d) for d in self.devices]
        return {"manifest_version": MANIFEST_VERSION, **body}

    def write(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(json.dumps(self.to_json(), indent=2) + "\n", encoding="utf-8")
        tmp.replace(path)  # a reader never sees half a manifest

    @classmethod
    def read(cls, path: Path) -> Manifest:
        body = json.loads(path.read_text(encoding="utf-8"))
        if body.pop("manifest_version") != MANIFEST_VERSION:
            raise ValueError(f"{path}: unsupported manifest version")
        devices = tuple(DeviceRecord(**d) for d in body.pop("devices"))
        return cls(devices=devices, **body)
