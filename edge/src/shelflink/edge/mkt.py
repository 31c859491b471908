"""Mean kinetic temperature (MKT): one temperature that ages a product as a fluctuating one did.

Degradation follows the Arrhenius law, so an hour at 12 °C does more harm than an
hour at 2 °C does good; the arithmetic mean hides that. The MKT is the constant
temperature that would have caused the same total degradation:

    T_K = (ΔH / R) / -ln( Σ w_i · exp(-ΔH / (R · T_i)) / Σ w_i )

with temperatures in kelvin, ΔH the activation energy and w_i the time each
reading stands for (equal weights for evenly spaced readings, the usual case).
USP <1079> and the ICH stability guideline (Q1A) use ΔH = 83.144 kJ/mol with
R = 8.3144 J/(mol·K), which makes ΔH/R exactly 10 000 K; we keep that pairing
rather than the CODATA value of R so that our figures match theirs.
"""

from __future__ import annotations

import math
from typing import Final

import numpy as np
import numpy.typing as npt

GAS_CONSTANT_J_PER_MOL_K: Final = 8.3144
DEFAULT_DELTA_H_J_PER_MOL: Final = 83_144.0
KELVIN_OFFSET: Final = 273.15


def mean_kinetic_temperature(
    temps_c: npt.ArrayLike,
    delta_h_j_per_mol: float = DEFAULT_DELTA_H_J_PER_MOL,
    weights: npt.ArrayLike | None = None,
) -> float:
    """The mean kinetic temperature of ``temps_c`` (°C), in °C.

    ``weights`` are the durations the readings stand for (any unit, all >= 0,
    not all zero); without them every reading counts the same. Raises
    ``ValueError`` on no readings, non-finite values or temperatures at or
    below absolute zero.
    """
    temps = np.asarray(temps_c, dtype=np.float64).ravel()
    if temps.size == 0:
        raise ValueError("the mean kinetic temperature needs at least one reading")
    if not np.all(np.isfinite(temps)):
        raise ValueError("temperatures must be finite")
    kelvin = temps + KELVIN_OFFSET
    if np.any(kelvin <= 0.0):
        raise ValueError("temperatures must be above absolute zero")
    if not (math.isfinite(delta_h_j_per_mol) and delta_h_j_per_mol > 0.0):
        raise ValueError("the activation energy must be positive")
    if weights is None:
        w = np.ones_like(kelvin)
    else:
        w = np.asarray(weights, dtype=np.float64).ravel()
        if w.shape != kelvin.shape:
            raise ValueError("one weight per temperature")
        if not np.all(np.isfinite(w)) or np.any(w < 0.0) or not np.any(w > 0.0):
            raise ValueError("weights must be finite, non-negative and not all zero")
    ratio = delta_h_j_per_mol / GAS_CONSTANT_J_PER_MOL_K
    # exp(-ΔH/RT) is about 1e-15 at fridge temperatures: shift by the largest
    # exponent (log-sum-exp) so that no sum underflows, whatever ΔH a caller picks.
    exponents = -ratio / kelvin
    used = w > 0.0
    top = float(np.max(exponents[used]))
    mean_log = top + math.log(float(np.sum(w * np.exp(exponents - top))) / float(np.sum(w)))
    return ratio / -mean_log - KELVIN_OFFSET
