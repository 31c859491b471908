"""The store's lanes as arrays, and the join from a scanned GTIN to the lanes that hold it."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

from shelflink.stream.lane_spec import LaneSpec

I64 = npt.NDArray[np.int64]
F64 = npt.NDArray[np.float64]


class Planogram:
    """Lane lookups: by device (in lane order) and by GTIN."""

    def __init__(self, lanes: Sequence[LaneSpec]) -> None:
        self.lanes = tuple(lanes)
        keys = [(spec.device, spec.lane) for spec in self.lanes]
        if len(set(keys)) != len(keys):
            raise ValueError("a (device, lane) appears twice in the planogram")
        self.unit_g = np.array([s.unit_g for s in self.lanes], dtype=np.float64)
        self.capacity = np.array([s.capacity for s in self.lanes], dtype=np.int64)
        by_device: dict[str, list[tuple[int, int]]] = {}
        by_gtin: dict[str, list[int]] = {}
        for i, spec in enumerate(self.lanes):
            by_device.setdefault(spec.device, []).append((spec.lane, i))
            by_gtin.setdefault(spec.gtin, []).append(i)
        self._device_index: dict[str, I64] = {}
        self._device_slot: dict[str, I64] = {}
        for device, pairs in by_device.items():
            pairs.sort()
            self._device_slot[device] = np.array([p[0] for p in pairs], dtype=np.int64)
            self._device_index[device] = np.array([p[1] for p in pairs], dtype=np.int64)
        self._gtin_index = {g: np.array(ix, dtype=np.int64) for g, ix in by_gtin.items()}
        gtins = sorted(by_gtin)
        position = {g: k for k, g in enumerate(gtins)}
        # Lanes of one product form a group: sales are per product, removals per lane.
        self.group = np.array([position[s.gtin] for s in self.lanes], dtype=np.int64)
        self.groups = len(gtins)
        self._empty = np.zeros(0, dtype=np.int64)

    def index_of(self, device: str) -> I64:
        """Lane indices of one shelf device, in lane order (empty if unknown)."""
        return self._device_index.get(device, self._empty)

    def slots_of(self, device: str) -> I64:
        """Positions in the device's ``grams`` list of :meth:`index_of`'s lanes."""
        return self._device_slot.get(device, self._empty)

    def lanes_of_gtin(self, gtin: str) -> I64:
        """Lanes holding a product (empty if the store's shelves do not carry it)."""
        return self._gtin_index.get(gtin, self._empty)

    def share_by_group(self, lane_values: F64, group_values: F64) -> F64:
        """Split each group's value over its lanes in proportion to ``lane_values``.

        Lanes of a group whose ``lane_values`` sum to zero get nothing.
        """
        total = np.bincount(self.group, weights=lane_values, minlength=self.groups)
        with np.errstate(divide="ignore", invalid="ignore"):
            share = np.where(total[self.group] > 0, lane_values / total[self.group], 0.0)
        out: F64 = group_values[self.group] * share
        return out
