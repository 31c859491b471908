"""Struct-of-arrays records: events of one kind as parallel numpy arrays.

Sales, receipts and goods receipts are produced in their thousands per
simulated day; keeping them as columns lets them be built, filtered and
written to Parquet without a Python object per event.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, fields
from typing import Any, Self

import numpy as np


@dataclass(frozen=True, slots=True, eq=False)
class Columns:
    def __len__(self) -> int:
        first = fields(self)[0].name
        return int(getattr(self, first).shape[0])

    def take(self, index: Any) -> Self:
        """Rows selected by a boolean mask or an index array."""
        return type(self)(**{f.name: getattr(self, f.name)[index] for f in fields(self)})

    @classmethod
    def empty(cls) -> Self:
        return cls(**{f.name: np.zeros(0, dtype=np.int64) for f in fields(cls)})

    @classmethod
    def concat(cls, parts: Sequence[Self]) -> Self:
        if not parts:
            return cls.empty()
        if len(parts) == 1:
            return parts[0]
        return cls(
            **{f.name: np.concatenate([getattr(p, f.name) for p in parts]) for f in fields(cls)}
        )
