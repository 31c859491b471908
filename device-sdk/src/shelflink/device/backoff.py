"""The one retry delay policy: exponential backoff with full jitter.

Full jitter (a uniform draw between zero and the exponential cap) keeps a
store's devices from reconnecting in lock-step after a broker restart.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field


@dataclass(slots=True)
class Backoff:
    initial_s: float = 0.5
    maximum_s: float = 30.0
    factor: float = 2.0
    rng: random.Random = field(default_factory=random.Random)
    attempt: int = 0

    def next_delay(self) -> float:
        cap = min(self.maximum_s, self.initial_s * self.factor**self.attempt)
        self.attempt += 1
        return self.rng.uniform(0.0, cap)

    def reset(self) -> None:
        self.attempt = 0
