"""Safety factors: the standard normal quantile of a cycle service level."""

from __future__ import annotations

from statistics import NormalDist

import numpy as np

from shelflink.cloud.planning.inputs import AnyFloats, FloatArray

_STANDARD_NORMAL = NormalDist()


def safety_factor(service_level: float) -> float:
    """z such that P(Z ≤ z) = ``service_level`` for a standard normal Z."""
    return _STANDARD_NORMAL.inv_cdf(service_level)


def safety_factors(service_levels: AnyFloats) -> FloatArray:
    """``safety_factor`` element by element.

    A dealer has a handful of distinct service levels, so the exact quantile
    is computed once per distinct value and broadcast back.
    """
    levels = np.asarray(service_levels, dtype=np.float64)
    distinct, where = np.unique(levels, return_inverse=True)
    z = np.array([safety_factor(float(level)) for level in distinct], dtype=np.float64)
    result: FloatArray = z[where].reshape(levels.shape)
    return result
